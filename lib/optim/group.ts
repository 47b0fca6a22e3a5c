/**
 * What an optimizer updates, as its own module so that both the optimizer and the argument
 * checks of lib/optim/validate.ts can name it without importing each other.
 *
 * @module
 */

import type { ParameterArena } from "../nn/parameter.ts";
import type { Tensor } from "../tensor.ts";

/**
 * A tensor to update and its gradient (same shape, both f32), for optimizing tensors that are
 * not in a model's arena.
 *
 * @example Fit one tensor of your own
 * ```ts
 * import { type Gpu, SGD, Tensor, type TensorPair } from "@wgnn/wgnn";
 *
 * function optimizerFor(gpu: Gpu): SGD {
 *   const pair: TensorPair = {
 *     value: Tensor.from(gpu, new Float32Array([1, 2, 3]), [3], "w"),
 *     grad: Tensor.empty(gpu, [3], "f32", "w.grad"), // filled by your backward kernel
 *   };
 *   return new SGD([pair], { lr: 0.1 }); // one dispatch per pair; the caller owns the tensors
 * }
 * ```
 */
export interface TensorPair {
  /** The values, updated in place. */
  readonly value: Tensor;
  /** The gradient, read by {@link Optimizer.step} and cleared by {@link Optimizer.zeroGrad}. */
  readonly grad: Tensor;
}

/**
 * What an optimizer updates: a model's whole {@link ParameterArena} (one dispatch per step, the
 * fast path), or a list of tensors with their gradients (one dispatch per tensor).
 *
 * @example Either form
 * ```ts
 * import { Adam, type ParameterGroup, type Sequential } from "@wgnn/wgnn";
 *
 * function optimizers(model: Sequential): Adam[] {
 *   const whole: ParameterGroup = model.parameters();
 *   const lastLayerOnly: ParameterGroup = model.parameters().params.slice(-2);
 *   return [new Adam(whole), new Adam(lastLayerOnly, { lr: 1e-4 })];
 * }
 * ```
 */
export type ParameterGroup = ParameterArena | readonly TensorPair[];
