/**
 * Stochastic gradient descent with PyTorch 1.13's update rule (`torch.optim.SGD`).
 *
 * @module
 */

import { Optimizer } from "./optimizer.ts";
import { type BuiltRule, type OptimizerParams, ruleGroups } from "./param_groups.ts";
import { checkMin } from "./validate.ts";

/**
 * Options of {@link SGD}; defaults as PyTorch's.
 *
 * @example Nesterov momentum with weight decay
 * ```ts
 * import { type ParameterGroup, SGD, type SGDOptions } from "@wgnn/wgnn";
 *
 * const options: SGDOptions = { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 };
 * const make = (params: ParameterGroup) => new SGD(params, options);
 * ```
 */
export interface SGDOptions {
  /** Learning rate (required, ≥ 0). */
  lr: number;
  /** Momentum factor μ (≥ 0). Default: 0 (no momentum buffer is kept). */
  momentum?: number;
  /** Dampening of the momentum's gradient term. Default: 0. */
  dampening?: number;
  /** Nesterov momentum; needs momentum > 0 and dampening 0. Default: false. */
  nesterov?: boolean;
  /** L2 penalty added to the gradient (≥ 0). Default: 0. */
  weightDecay?: number;
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
 * SGD, exactly as PyTorch 1.13: with d = ±g + wd·x, the momentum buffer is d on the first step
 * (no dampening) and μ·buf + (1 − dampening)·d afterwards; nesterov uses d + μ·buf, plain
 * momentum uses buf; then x −= lr·d. State: `momentum_buffer` (when momentum > 0) and `step`.
 *
 * @example SGD with momentum over a model's arena
 * ```ts
 * import { SGD, type Sequential, StepEncoder } from "@wgnn/wgnn";
 *
 * function makeSgd(model: Sequential): SGD {
 *   const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
 *   const enc = new StepEncoder(model.parameters().values.gpu);
 *   opt.zeroGrad(enc); // ... forward and backward encode here ...
 *   opt.step(enc);
 *   enc.submit();
 *   return opt; // the caller disposes it (the parameters stay the model's)
 * }
 * ```
 */
export class SGD extends Optimizer {
  /** The options in effect (lr as at construction; see {@link Optimizer.lr}). */
  readonly options: Readonly<Required<SGDOptions>>;

  /**
   * Allocates the momentum buffer (when momentum > 0) and compiles the update. `params` is one
   * group, or a list of groups each with its own options (see {@link ParamGroup}).
   */
  constructor(params: OptimizerParams<SGDOptions>, options: SGDOptions) {
    const { base, groups } = ruleGroups("SGD", params, options, sgdRule);
    super(groups, base.spec);
    this.options = Object.freeze(base.options);
  }
}

/** Validates SGD's options and describes its rule. */
function sgdRule(options: SGDOptions, what: string): BuiltRule<SGDOptions> {
  const o: Required<SGDOptions> = {
    lr: options?.lr,
    momentum: options?.momentum ?? 0,
    dampening: options?.dampening ?? 0,
    nesterov: options?.nesterov ?? false,
    weightDecay: options?.weightDecay ?? 0,
    maximize: options?.maximize ?? false,
    clipGradValue: options?.clipGradValue ?? Infinity,
    clipGradNorm: options?.clipGradNorm ?? Infinity,
  };
  checkMin(what, "lr", o.lr, 0);
  checkMin(what, "momentum", o.momentum, 0);
  checkMin(what, "weightDecay", o.weightDecay, 0);
  if (typeof o.dampening !== "number" || !Number.isFinite(o.dampening)) {
    throw new RangeError(`${what}: dampening must be finite: current value is ${o.dampening}`);
  }
  if (o.nesterov && o.momentum <= 0) {
    throw new RangeError(`${what}: nesterov needs momentum > 0: current value is ${o.momentum}`);
  }
  if (o.nesterov && o.dampening !== 0) {
    throw new RangeError(`${what}: nesterov needs dampening 0: current value is ${o.dampening}`);
  }
  const hasMomentum = o.momentum !== 0;
  const spec = {
    name: "SGD",
    rule: "sgd" as const,
    slots: hasMomentum ? ["momentum_buffer"] : [],
    constants: {
      MAXIMIZE: Number(o.maximize),
      HAS_MOMENTUM: Number(hasMomentum),
      NESTEROV: Number(o.nesterov),
    },
    hyperparameters: (lr: number) => ({
      lr,
      weight_decay: o.weightDecay,
      momentum: o.momentum,
      one_minus_dampening: 1 - o.dampening,
    }),
    lr: o.lr,
    clipGradValue: o.clipGradValue,
    clipGradNorm: o.clipGradNorm,
  };
  return { spec, options: o };
}
