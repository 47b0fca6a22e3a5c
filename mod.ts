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
export { manualSeed } from "./lib/nn/random.ts";
export { Module } from "./lib/nn/module.ts";
export type { HostTensor } from "./lib/nn/module.ts";
export { Flatten, LeakyReLU, Linear, ReLU } from "./lib/nn/layers.ts";
export type { LinearOptions } from "./lib/nn/layers.ts";
export { BatchNorm1d } from "./lib/nn/batchnorm.ts";
export type { BatchNormOptions } from "./lib/nn/batchnorm.ts";
export { Dropout } from "./lib/nn/dropout.ts";
export { Sequential } from "./lib/nn/sequential.ts";
export type { StateDict } from "./lib/nn/sequential.ts";
export { CrossEntropyLoss, LossStats } from "./lib/nn/loss.ts";
export type { CrossEntropyOptions, LossSummary } from "./lib/nn/loss.ts";
export { ParameterArena } from "./lib/nn/parameter.ts";
export type { Parameter } from "./lib/nn/parameter.ts";
