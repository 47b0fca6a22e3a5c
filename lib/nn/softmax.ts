/**
 * Softmax and LogSoftmax over the last dimension (kernels/softmax.wgsl), with the formulas of
 * PyTorch 1.13's CPU kernels in float32: the row's max is subtracted before exp, and backward reads
 * the saved output. Outputs, gradients and uniforms are allocated once per batch size; the first
 * forward fixes the per-sample shape. No parameters; train and eval mode compute the same thing.
 *
 * @module
 */

import { ActivationLayer, softmaxKernels } from "./activation_runner.ts";
import type { Module } from "./module.ts";

/** Throws unless `dim` is -1 or the last index of an input of per-sample shape `input`. */
function checkLastDim(module: Module, dim: number, input: readonly number[]): void {
  if (dim !== -1 && dim !== input.length) {
    throw new RangeError(
      `Cannot run ${module.describe()}: only the last dimension (dim=-1 or ${input.length}) is supported: current input is [batch, ${
        input.join(", ")
      }]`,
    );
  }
}

/** Throws unless `dim` is an integer ≥ -1, naming the layer. */
function checkDim(what: string, dim: number): void {
  if (!Number.isInteger(dim) || dim < -1) {
    throw new RangeError(
      `Cannot create ${what}: dim must be -1 or a non-negative integer: current value is ${dim}`,
    );
  }
}

/**
 * `y = exp(x − max)/Σ exp(x − max)` over the last dimension, as PyTorch's `Softmax(dim=-1)`;
 * backward `dX = y ⊙ (dY − Σ dY⊙y)` from the saved output. `dim` counts the batch, as PyTorch's:
 * on [batch, classes], `dim` 1 and -1 are the same; only the last dimension is supported.
 *
 * @example Probabilities out of a classifier
 * ```ts
 * import { Linear, Sequential, Softmax } from "@wgnn/wgnn";
 * import { equal, throws } from "node:assert/strict";
 *
 * const model = new Sequential(new Linear(8, 3), new Softmax(1)).eval();
 * equal(model.modules[1].describe(), "Softmax(dim=1)");
 * throws(() => new Softmax(1).outputShape([3, 4]), /only the last dimension/);
 * ```
 */
export class Softmax extends ActivationLayer {
  /** The dimension, as given (-1: the last). */
  readonly dim: number;

  /**
   * Declares the layer; throws a RangeError unless `dim` is -1 or a non-negative integer.
   * `dim` default: -1 (the last dimension).
   */
  constructor(dim = -1) {
    checkDim("Softmax", dim);
    super(true, (gpu) => softmaxKernels(gpu, false));
    this.dim = dim;
  }

  /** `Softmax(dim=…)`. */
  describe(): string {
    return `Softmax(dim=${this.dim})`;
  }

  /** Per-sample output shape: the input's; throws unless `dim` is its last dimension. */
  override outputShape(input: readonly number[]): number[] {
    checkLastDim(this, this.dim, input);
    return [...input];
  }
}

/**
 * `y = x − max − log Σ exp(x − max)` over the last dimension, as PyTorch's `LogSoftmax(dim=-1)`;
 * backward `dX = dY − exp(y)·Σ dY` from the saved output. `dim` as for {@link Softmax}.
 *
 * @example Log-probabilities for a likelihood computed elsewhere
 * ```ts
 * import { Linear, LogSoftmax, Sequential } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * const model = new Sequential(new Linear(8, 5), new LogSoftmax());
 * equal(model.modules[1].describe(), "LogSoftmax(dim=-1)");
 * ```
 */
export class LogSoftmax extends ActivationLayer {
  /** The dimension, as given (-1: the last). */
  readonly dim: number;

  /**
   * Declares the layer; throws a RangeError unless `dim` is -1 or a non-negative integer.
   * `dim` default: -1 (the last dimension).
   */
  constructor(dim = -1) {
    checkDim("LogSoftmax", dim);
    super(true, (gpu) => softmaxKernels(gpu, true));
    this.dim = dim;
  }

  /** `LogSoftmax(dim=…)`. */
  describe(): string {
    return `LogSoftmax(dim=${this.dim})`;
  }

  /** Per-sample output shape: the input's; throws unless `dim` is its last dimension. */
  override outputShape(input: readonly number[]): number[] {
    checkLastDim(this, this.dim, input);
    return [...input];
  }
}
