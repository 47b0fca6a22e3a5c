/**
 * RMSprop with PyTorch 1.13's update rule (`torch.optim.RMSprop`).
 *
 * @module
 */

import { Optimizer } from "./optimizer.ts";
import { type BuiltRule, type OptimizerParams, ruleGroups } from "./param_groups.ts";
import { checkMin } from "./validate.ts";

/**
 * Options of {@link RMSprop}; defaults as PyTorch's.
 *
 * @example Centered RMSprop with momentum
 * ```ts
 * import { type ParameterGroup, RMSprop, type RMSpropOptions } from "@wgnn/wgnn";
 *
 * const options: RMSpropOptions = { lr: 1e-3, momentum: 0.9, centered: true };
 * const make = (params: ParameterGroup) => new RMSprop(params, options);
 * ```
 */
export interface RMSpropOptions {
  /** Learning rate (≥ 0). Default: 1e-2. */
  lr?: number;
  /** Smoothing constant α of the squared-gradient average (≥ 0). Default: 0.99. */
  alpha?: number;
  /** Added to the square root of the average (≥ 0). Default: 1e-8. */
  eps?: number;
  /** L2 penalty added to the gradient (≥ 0). Default: 0. */
  weightDecay?: number;
  /** Momentum factor (≥ 0). Default: 0. */
  momentum?: number;
  /**
   * Normalise by an estimate of the gradient's variance instead of its second moment.
   * Default: false.
   */
  centered?: boolean;
  /** Maximise the objective instead of minimising it. Default: false. */
  maximize?: boolean;
  /**
   * Clamp every gradient element to [−v, v] first, fused into the update (PyTorch's
   * `clip_grad_value_` before `step`; > 0). Default: Infinity (no clipping).
   */
  clipGradValue?: number;
  /**
   * Scale all gradients by min(1, v / (‖g‖ + 1e-6)) first, ‖g‖ their 2-norm over every
   * parameter, computed on the GPU (PyTorch's `clip_grad_norm_` before `step`; > 0).
   * Default: Infinity (no clipping).
   */
  clipGradNorm?: number;
}

/**
 * RMSprop, exactly as PyTorch 1.13: d = ±g + wd·x; v = α·v + (1 − α)·d²; avg = sqrt(v) + eps, or
 * sqrt(v − ḡ²) + eps when centered (ḡ = α·ḡ + (1 − α)·d); with momentum buf = μ·buf + d/avg and
 * x −= lr·buf, else x −= lr·d/avg. State: `square_avg`, `momentum_buffer` (momentum > 0),
 * `grad_avg` (centered) and `step`.
 *
 * @example RMSprop over a model's arena
 * ```ts
 * import { RMSprop, type Sequential } from "@wgnn/wgnn";
 *
 * function makeRmsprop(model: Sequential): RMSprop {
 *   const opt = new RMSprop(model.parameters(), { lr: 1e-3, momentum: 0.9, centered: true });
 *   console.log(Object.keys(opt.stateTensors())); // ["square_avg", "momentum_buffer", ...]
 *   return opt; // the caller disposes it
 * }
 * ```
 */
export class RMSprop extends Optimizer {
  /** The options in effect (lr as at construction; see {@link Optimizer.lr}). */
  readonly options: Readonly<Required<RMSpropOptions>>;

  /**
   * Allocates the averages (and momentum buffer) and compiles the update. `params` is one group,
   * or a list of groups each with its own options (see {@link ParamGroup}).
   */
  constructor(params: OptimizerParams<RMSpropOptions>, options: RMSpropOptions = {}) {
    const { base, groups } = ruleGroups("RMSprop", params, options, rmspropRule);
    super(groups, base.spec);
    this.options = Object.freeze(base.options);
  }
}

/** Validates RMSprop's options and describes its rule. */
function rmspropRule(options: RMSpropOptions, what: string): BuiltRule<RMSpropOptions> {
  const o: Required<RMSpropOptions> = {
    lr: options?.lr ?? 1e-2,
    alpha: options?.alpha ?? 0.99,
    eps: options?.eps ?? 1e-8,
    weightDecay: options?.weightDecay ?? 0,
    momentum: options?.momentum ?? 0,
    centered: options?.centered ?? false,
    maximize: options?.maximize ?? false,
    clipGradValue: options?.clipGradValue ?? Infinity,
    clipGradNorm: options?.clipGradNorm ?? Infinity,
  };
  checkMin(what, "lr", o.lr, 0);
  checkMin(what, "alpha", o.alpha, 0);
  checkMin(what, "eps", o.eps, 0);
  checkMin(what, "weightDecay", o.weightDecay, 0);
  checkMin(what, "momentum", o.momentum, 0);
  const hasMomentum = o.momentum > 0;
  const slots = ["square_avg"];
  if (hasMomentum) slots.push("momentum_buffer");
  if (o.centered) slots.push("grad_avg");
  const spec = {
    name: "RMSprop",
    rule: "rmsprop" as const,
    slots,
    constants: {
      MAXIMIZE: Number(o.maximize),
      HAS_MOMENTUM: Number(hasMomentum),
      CENTERED: Number(o.centered),
    },
    hyperparameters: (lr: number) => ({
      lr,
      weight_decay: o.weightDecay,
      momentum: o.momentum,
      eps: o.eps,
      alpha: o.alpha,
      one_minus_alpha: 1 - o.alpha,
    }),
    lr: o.lr,
    clipGradValue: o.clipGradValue,
    clipGradNorm: o.clipGradNorm,
  };
  return { spec, options: o };
}
