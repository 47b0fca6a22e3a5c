/**
 * Adam and AdamW with PyTorch 1.13's update rules (`torch.optim.Adam`, `torch.optim.AdamW`).
 *
 * @module
 */

import { Optimizer } from "./optimizer.ts";
import { type BuiltRule, type OptimizerParams, ruleGroups } from "./param_groups.ts";
import { checkMin, checkUnit } from "./validate.ts";

/**
 * Options of {@link Adam} and {@link AdamW}; defaults as PyTorch's.
 *
 * @example The lecture's settings
 * ```ts
 * import { Adam, type AdamOptions, type Sequential } from "@wgnn/wgnn";
 *
 * const options: AdamOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8 };
 * const make = (model: Sequential) => new Adam(model.parameters(), options);
 * ```
 */
export interface AdamOptions {
  /** Learning rate (≥ 0). Default: 1e-3. */
  lr?: number;
  /**
   * Decay rates (β1, β2) of the first and second moment averages, each in [0, 1).
   * Default: [0.9, 0.999].
   */
  betas?: readonly [number, number];
  /** Added to the bias-corrected square root of the second moment (≥ 0). Default: 1e-8. */
  eps?: number;
  /**
   * Adam: L2 penalty added to the gradient; AdamW: decoupled decay x *= 1 − lr·wd (≥ 0).
   * Default: 0 (AdamW 1e-2).
   */
  weightDecay?: number;
  /** Normalise by the running maximum of the second moment (AMSGrad). Default: false. */
  amsgrad?: boolean;
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

/** Validates Adam-family options and builds the rule description for {@link Optimizer}. */
function adamRule(
  name: "Adam" | "AdamW",
  options: AdamOptions,
  what: string,
): BuiltRule<AdamOptions> {
  const defaultWeightDecay = name === "AdamW" ? 1e-2 : 0;
  const o: Required<AdamOptions> = {
    lr: options?.lr ?? 1e-3,
    betas: options?.betas ?? [0.9, 0.999],
    eps: options?.eps ?? 1e-8,
    weightDecay: options?.weightDecay ?? defaultWeightDecay,
    amsgrad: options?.amsgrad ?? false,
    maximize: options?.maximize ?? false,
    clipGradValue: options?.clipGradValue ?? Infinity,
    clipGradNorm: options?.clipGradNorm ?? Infinity,
  };
  checkMin(what, "lr", o.lr, 0);
  if (!Array.isArray(o.betas) || o.betas.length !== 2) {
    throw new RangeError(
      `${what}: betas must be a pair [beta1, beta2]: current value is ${JSON.stringify(o.betas)}`,
    );
  }
  checkUnit(what, "betas[0]", o.betas[0]);
  checkUnit(what, "betas[1]", o.betas[1]);
  checkMin(what, "eps", o.eps, 0);
  checkMin(what, "weightDecay", o.weightDecay, 0);
  const [beta1, beta2] = o.betas;
  const decoupled = name === "AdamW";
  const spec = {
    name,
    rule: "adam" as const,
    slots: o.amsgrad ? ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] : ["exp_avg", "exp_avg_sq"],
    constants: {
      MAXIMIZE: Number(o.maximize),
      AMSGRAD: Number(o.amsgrad),
      DECOUPLED: Number(decoupled),
    },
    // 1 − β and 1 − lr·wd are formed in f64, as PyTorch forms them from Python floats.
    hyperparameters: (lr: number) => ({
      lr,
      weight_decay: o.weightDecay,
      beta1,
      beta2,
      one_minus_beta1: 1 - beta1,
      one_minus_beta2: 1 - beta2,
      log_beta1: logBeta(beta1),
      log_beta2: logBeta(beta2),
      eps: o.eps,
      decay: decoupled ? 1 - lr * o.weightDecay : 1,
    }),
    lr: o.lr,
    clipGradValue: o.clipGradValue,
    clipGradNorm: o.clipGradNorm,
  };
  return { spec, options: o };
}

/**
 * Adam, exactly as PyTorch 1.13: d = ±g (+ wd·x); m = β1·m + (1 − β1)·d; v = β2·v + (1 − β2)·d²;
 * x −= lr/(1 − β1^t) · m / (sqrt(v̂)/sqrt(1 − β2^t) + eps), with t counted from 1 on the GPU and
 * v̂ = v, or its running maximum with amsgrad. State: `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`
 * (amsgrad) and `step`.
 *
 * @example Adam over a model's arena, several steps per submission
 * ```ts
 * import { Adam, type Sequential, StepEncoder } from "@wgnn/wgnn";
 *
 * function trainALittle(model: Sequential): Adam {
 *   const opt = new Adam(model.parameters(), { lr: 1e-3 });
 *   const enc = new StepEncoder(model.parameters().values.gpu);
 *   for (let i = 0; i < 10; i++) {
 *     opt.zeroGrad(enc); // ... forward and backward encode here ...
 *     opt.step(enc); // the step counter t lives on the GPU, so steps can share a submission
 *   }
 *   enc.submit();
 *   return opt; // the caller disposes it
 * }
 * ```
 */
export class Adam extends Optimizer {
  /** The options in effect (lr as at construction; see {@link Optimizer.lr}). */
  readonly options: Readonly<Required<AdamOptions>>;

  /**
   * Allocates the moment buffers and compiles the update. `params` is one group, or a list of
   * groups each with its own options (see {@link ParamGroup}).
   */
  constructor(params: OptimizerParams<AdamOptions>, options: AdamOptions = {}) {
    const { base, groups } = ruleGroups(
      "Adam",
      params,
      options,
      (o, what) => adamRule("Adam", o, what),
    );
    super(groups, base.spec);
    this.options = Object.freeze(base.options);
  }
}

/**
 * AdamW, exactly as PyTorch 1.13: Adam whose weight decay is decoupled from the gradient,
 * x *= 1 − lr·wd before the moment update (default weightDecay 1e-2). Same state as {@link Adam}.
 *
 * @example AdamW with stronger decay
 * ```ts
 * import { AdamW, type Sequential } from "@wgnn/wgnn";
 *
 * const make = (model: Sequential) =>
 *   new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.05 });
 * ```
 */
export class AdamW extends Optimizer {
  /** The options in effect (lr as at construction; see {@link Optimizer.lr}). */
  readonly options: Readonly<Required<AdamOptions>>;

  /**
   * Allocates the moment buffers and compiles the update. `params` is one group, or a list of
   * groups each with its own options (see {@link ParamGroup}).
   */
  constructor(params: OptimizerParams<AdamOptions>, options: AdamOptions = {}) {
    const { base, groups } = ruleGroups(
      "AdamW",
      params,
      options,
      (o, what) => adamRule("AdamW", o, what),
    );
    super(groups, base.spec);
    this.options = Object.freeze(base.options);
  }
}

/** ln β for the bias correction; β = 0 (β^t = 0 for t ≥ 1) maps to a finite stand-in. */
function logBeta(beta: number): number {
  return beta === 0 ? -1000 : Math.log(beta);
}
