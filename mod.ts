/**
 * wgnn: train neural networks on WebGPU from Deno, with PyTorch's numerics.
 *
 * @example Multiply two matrices on the GPU
 * ```ts ignore
 * import { matmul, requestGpu, Tensor } from "./mod.ts";
 * const gpu = await requestGpu();
 * const a = Tensor.from(gpu, [1, 2, 3, 4], [2, 2]);
 * const b = Tensor.from(gpu, [1, 0, 0, 1], [2, 2]);
 * console.log(await matmul(a, b).toFloat32());
 * ```
 *
 * @module
 */

export { Gpu, requestGpu } from "./lib/gpu/device.ts";
export type { AdapterDescription, RequestGpuOptions } from "./lib/gpu/device.ts";
export { StepEncoder } from "./lib/gpu/encoder.ts";
export { Tensor } from "./lib/tensor.ts";
export type { DType } from "./lib/tensor.ts";
export { Matmul, matmul, matmulVariant } from "./lib/ops/matmul.ts";
export type { MatmulOptions, MatmulVariant } from "./lib/ops/matmul.ts";
