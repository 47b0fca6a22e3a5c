/**
 * Trainable tensors and the flat arena that holds them.
 *
 * All parameters of a model live in one value buffer and one gradient buffer (a
 * {@link ParameterArena}); each {@link Parameter} is a view at an aligned offset. An optimizer
 * can then update the whole model in one dispatch over the arena. Padding between views is
 * zero in values and gradients, so element-wise update rules keep it zero.
 *
 * Gradients accumulate (backward kernels add into `grad`) until zeroed, as in PyTorch.
 *
 * @module
 */

import { Tensor } from "../tensor.ts";
import type { Gpu } from "../gpu/device.ts";
import type { StepEncoder } from "../gpu/encoder.ts";

/**
 * A trainable f32 tensor with a same-shaped gradient (both views into a
 * {@link ParameterArena}; the arena owns them).
 *
 * @example Gradient norms per parameter
 * ```ts
 * import type { Parameter } from "@wgnn/wgnn";
 *
 * async function gradNorms(params: readonly Parameter[]): Promise<Map<string, number>> {
 *   const norms = new Map<string, number>();
 *   for (const p of params) {
 *     const g = await p.grad.toFloat32(); // waits for the GPU
 *     norms.set(p.name, Math.hypot(...g));
 *   }
 *   return norms;
 * }
 * // gradNorms(model.parameters().params) → "1.weight" → 0.42, "1.bias" → 0.03, ...
 * ```
 */
export interface Parameter {
  /** PyTorch state-dict name, e.g. "1.weight". */
  readonly name: string;
  /**
   * The values, row-major. Shapes are the module's GPU layout: a Linear weight is [in, out]
   * here; {@link Sequential.stateDict} transposes it to PyTorch's [out, in], as its
   * {@link ParameterSpec.layout} says.
   */
  readonly value: Tensor;
  /** The gradient, same shape; accumulated by backward, cleared by zeroGrad. */
  readonly grad: Tensor;
}

/**
 * What a module declares for each of its parameters: a name relative to the module, a shape,
 * the initial values (drawn when the module is built) and, where PyTorch stores it otherwise,
 * its state-dict layout.
 *
 * @example BatchNorm's γ and β
 * ```ts
 * import { BatchNorm1d, type ParameterSpec } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * const specs: ParameterSpec[] = new BatchNorm1d(3).parameterSpecs();
 * deepEqual(specs.map((s) => s.name), ["weight", "bias"]);
 * deepEqual(specs[0].init, new Float32Array([1, 1, 1])); // γ starts at 1, β at 0
 * ```
 */
export interface ParameterSpec {
  /** State-dict name. */
  name: string;
  /** Shape on the GPU (PyTorch's unless `layout` says otherwise). */
  shape: readonly number[];
  /** Initial values (length = product of shape). */
  init: Float32Array;
  /**
   * How the state dict holds it, against `shape`: "transposed" for a 2-D parameter that PyTorch
   * stores as [cols, rows] (a Linear weight, [in, out] on the GPU and [out, in] in PyTorch);
   * absent for the same layout. Default: none (the same layout).
   */
  layout?: "transposed";
}

/** The shape `spec`'s parameter has in a state dict. */
export function stateShape(spec: ParameterSpec): number[] {
  return spec.layout === "transposed" ? [spec.shape[1], spec.shape[0]] : [...spec.shape];
}

/** `data` (GPU layout, as `spec.shape`) in the state dict's layout. */
export function toStateLayout(spec: ParameterSpec, data: Float32Array): Float32Array {
  return spec.layout === "transposed" ? transpose(data, spec.shape[0], spec.shape[1]) : data;
}

/** `data` (state-dict layout) in the GPU layout of `spec.shape`. */
export function fromStateLayout(spec: ParameterSpec, data: Float32Array): Float32Array {
  return spec.layout === "transposed" ? transpose(data, spec.shape[1], spec.shape[0]) : data;
}

/** Transposes a row-major [rows][cols] matrix. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  }
  return out;
}

/**
 * One value buffer and one gradient buffer holding every parameter of a model. A
 * {@link Sequential} makes one in `to(gpu)` and owns it; pass `model.parameters()` to an
 * optimizer, which then updates the whole model in one dispatch.
 *
 * @example An arena for two parameters of your own
 * ```ts
 * import { type Gpu, ParameterArena } from "@wgnn/wgnn";
 *
 * function makeArena(gpu: Gpu): ParameterArena {
 *   const arena = new ParameterArena(gpu, [
 *     { name: "w", shape: [4, 2], init: new Float32Array(8).fill(0.5) },
 *     { name: "b", shape: [2], init: new Float32Array(2) },
 *   ]);
 *   console.log(arena.params.map((p) => p.value.shape)); // [[4, 2], [2]]
 *   return arena; // the caller disposes it
 * }
 * ```
 */
export class ParameterArena {
  /** All values, flat (f32), including alignment padding. */
  readonly values: Tensor;
  /** All gradients, flat (f32), same layout as {@link ParameterArena.values}. */
  readonly grads: Tensor;
  /** The parameters, in declaration order. */
  readonly params: Parameter[];

  /**
   * Uploads every spec's initial values into one buffer (each view at an aligned offset) and
   * allocates the zeroed gradients. Throws a RangeError when an `init` does not fill its shape.
   */
  constructor(gpu: Gpu, specs: readonly ParameterSpec[], label = "params") {
    // Views must start at the storage-offset alignment (256 bytes on most GPUs).
    const align = gpu.limits.minStorageBufferOffsetAlignment / 4;
    const offsets: number[] = [];
    let total = 0;
    for (const spec of specs) {
      const numel = spec.shape.reduce((a, b) => a * b, 1);
      if (spec.init.length !== numel) {
        throw new RangeError(
          `Cannot create parameter "${spec.name}": ${spec.init.length} initial values for shape [${
            spec.shape.join(", ")
          }]`,
        );
      }
      offsets.push(total);
      total += Math.ceil(numel / align) * align;
    }
    const host = new Float32Array(Math.max(total, 1));
    specs.forEach((spec, i) => host.set(spec.init, offsets[i]));
    this.values = Tensor.from(gpu, host, [host.length], `${label}.values`);
    this.grads = Tensor.empty(gpu, [host.length], "f32", `${label}.grads`);
    this.params = specs.map((spec, i) => ({
      name: spec.name,
      value: Tensor.view(this.values, offsets[i] * 4, spec.shape, spec.name),
      grad: Tensor.view(this.grads, offsets[i] * 4, spec.shape, `${spec.name}.grad`),
    }));
  }

  /**
   * The parameters in declaration order (as {@link ParameterArena.params}), each with its
   * state-dict name: `for (const p of model.parameters())` visits them as PyTorch's
   * `named_parameters()` does, values in the GPU layout (see {@link Parameter.value}).
   *
   * @example Count a model's parameters
   * ```ts
   * import type { Sequential } from "@wgnn/wgnn";
   *
   * function countParameters(model: Sequential): number {
   *   let total = 0;
   *   for (const p of model.parameters()) total += p.value.numel; // "0.weight", "0.bias", ...
   *   return total;
   * }
   * ```
   */
  [Symbol.iterator](): IterableIterator<Parameter> {
    return this.params.values();
  }

  /** Encodes `grad = 0` for every parameter (one clearBuffer; no kernel). */
  zeroGrad(enc: StepEncoder): void {
    enc.commands().clearBuffer(this.grads.buffer);
  }

  /** Frees both buffers (every view becomes unusable). */
  dispose(): void {
    this.values.dispose();
    this.grads.dispose();
  }
}
