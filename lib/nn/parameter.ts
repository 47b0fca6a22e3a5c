/**
 * A trainable tensor and its gradient, owned by the module that created it.
 *
 * Gradients accumulate (backward kernels add into `grad`) until {@link Parameter.zeroGrad},
 * as in PyTorch. Optimizers read `value` and `grad` and own their own state tensors.
 *
 * @module
 */

import { Tensor } from "../tensor.ts";
import type { Gpu } from "../gpu/device.ts";
import type { StepEncoder } from "../gpu/encoder.ts";

/** A trainable f32 tensor with a same-shaped gradient. */
export class Parameter {
  /** PyTorch state-dict name, e.g. "1.weight" (set by the owning Sequential). */
  name: string;
  /** The values, f32, row-major in PyTorch's layout (Linear weight is [out, in]). */
  readonly value: Tensor;
  /** The gradient, same shape; accumulated by backward, cleared by zeroGrad. */
  readonly grad: Tensor;

  constructor(gpu: Gpu, name: string, data: Float32Array, shape: readonly number[]) {
    this.name = name;
    this.value = Tensor.from(gpu, data, shape, name);
    this.grad = Tensor.empty(gpu, shape, "f32", `${name}.grad`);
  }

  /** Encodes `grad = 0` (a clearBuffer; no kernel). */
  zeroGrad(enc: StepEncoder): void {
    enc.commands().clearBuffer(this.grad.buffer);
  }

  /** Frees value and gradient. */
  dispose(): void {
    this.value.dispose();
    this.grad.dispose();
  }
}
