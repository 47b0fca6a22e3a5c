/**
 * wgnn: train neural networks on WebGPU from Deno, with PyTorch's numerics.
 *
 * The core entry: the GPU runtime, tensors, layers with explicit forward/backward pairs, a
 * fused cross-entropy loss, PyTorch's optimizers, safetensors state dicts, a dataset and loader
 * that live on the GPU, and `fit`, a training loop that never waits on the GPU inside an epoch.
 * Every kernel is a WGSL compute shader, imported as text. It pulls in no npm package (only
 * `node:path`), so importing it for one layer costs only its own modules.
 *
 * The other entries: `@wgnn/wgnn/data` (`data.ts`) reads and downloads CIFAR-10 (tar-stream);
 * `@wgnn/wgnn/plot` (`plot.ts`) draws the figures and the report (Observable Plot, linkedom);
 * `@wgnn/wgnn/experiment` (`experiment.ts`) is the lecture's experiment, and re-exports this
 * entry.
 *
 * @example The lecture's BatchNorm model, one training step
 * ```ts ignore
 * import * as nn from "./mod.ts";
 * const gpu = await nn.requestGpu();
 * nn.manualSeed(0);
 * const model = new nn.Sequential(
 *   new nn.Flatten(),
 *   new nn.Linear(3072, 128), new nn.LeakyReLU(), new nn.BatchNorm1d(128),
 *   new nn.Linear(128, 128), new nn.LeakyReLU(), new nn.BatchNorm1d(128),
 *   new nn.Linear(128, 10),
 * ).to(gpu);
 * const optimizer = new nn.Adam(model.parameters(), { lr: 1e-3 });
 * const loss = new nn.CrossEntropyLoss();
 * const x = nn.Tensor.from(gpu, new Float32Array(64 * 3072), [64, 3072]);
 * const y = nn.Tensor.from(gpu, new Uint32Array(64), [64]);
 * const enc = new nn.StepEncoder(gpu);
 * optimizer.zeroGrad(enc);
 * loss.forward(enc, model.forward(enc, x), y);
 * model.backward(enc, loss.backward());
 * optimizer.step(enc);
 * enc.submit();
 * console.log((await loss.stats.read()).lastLoss);
 * ```
 *
 * @module
 */

// GPU runtime
export { DeviceLostError, Gpu, GpuMemoryError, GpuTexture, requestGpu } from "./lib/gpu/device.ts";
export type {
  AdapterDescription,
  GpuMemoryErrorInfo,
  RequestGpuOptions,
} from "./lib/gpu/device.ts";
export { BufferPool, GpuBuffer } from "./lib/gpu/buffer.ts";
export type { MemoryStats } from "./lib/gpu/buffer.ts";
export { StepEncoder } from "./lib/gpu/encoder.ts";
export { adapterVectorWidth, useLavapipeVectorWidth } from "./lib/gpu/lavapipe.ts";
export type { VectorWidth } from "./lib/gpu/lavapipe.ts";
export { PipelineCache } from "./lib/gpu/kernels.ts";
export type { Constants, Kernel } from "./lib/gpu/kernels.ts";
export { Tensor } from "./lib/tensor.ts";
export type { DType, TensorFromOptions } from "./lib/tensor.ts";
export { Matmul, matmul } from "./lib/ops/matmul.ts";
export type { MatmulOptions, StagedOperand } from "./lib/ops/matmul.ts";
export { chooseMatmul } from "./lib/ops/matmul_choice.ts";
export type { MatmulChoice, MatmulVariant } from "./lib/ops/matmul_choice.ts";
export { matmulVariant, slowAdapterHint } from "./lib/ops/matmul_trial.ts";

// Layers, loss, parameters
export { manualSeed } from "./lib/nn/random.ts";
export { Module } from "./lib/nn/module.ts";
export type { AttachContext, HostTensor } from "./lib/nn/module.ts";
export { Flatten, LeakyReLU, ReLU } from "./lib/nn/layers.ts";
export { Linear } from "./lib/nn/linear.ts";
export type { LinearOptions } from "./lib/nn/linear.ts";
export { BatchNorm1d } from "./lib/nn/batchnorm.ts";
export type { BatchNormOptions } from "./lib/nn/batchnorm.ts";
export { Dropout } from "./lib/nn/dropout.ts";
export { Sequential } from "./lib/nn/sequential.ts";
export type { StateDict } from "./lib/nn/sequential.ts";
export { CrossEntropyLoss, LabelRangeError, LossStats } from "./lib/nn/loss.ts";
export type { CrossEntropyOptions, LossSummary } from "./lib/nn/loss.ts";
export { ParameterArena } from "./lib/nn/parameter.ts";
export type { Parameter, ParameterSpec } from "./lib/nn/parameter.ts";

// Optimizers
export { Optimizer } from "./lib/optim/optimizer.ts";
export type { Hyperparameters, RuleSpec } from "./lib/optim/optimizer.ts";
export type { ParameterGroup, TensorPair } from "./lib/optim/group.ts";
export { SGD } from "./lib/optim/sgd.ts";
export type { SGDOptions } from "./lib/optim/sgd.ts";
export { Adam, AdamW } from "./lib/optim/adam.ts";
export type { AdamOptions } from "./lib/optim/adam.ts";
export { RMSprop } from "./lib/optim/rmsprop.ts";
export type { RMSpropOptions } from "./lib/optim/rmsprop.ts";

// Safetensors
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensorsFile,
  writeSafetensorsFile,
} from "./lib/io/safetensors.ts";
export type {
  HostTensor as SafetensorsTensor,
  HostTensorData,
  Safetensors,
  SafetensorsDType,
} from "./lib/io/safetensors.ts";

// CIFAR-10 on the GPU (reading and downloading the files: ./data.ts)
export type { ImageSet } from "./lib/data/cifar10.ts";
export { GpuDataset, splitDataset } from "./lib/data/dataset.ts";
export type { DatasetSubset, LoaderData } from "./lib/data/dataset.ts";
export { Loader } from "./lib/data/loader.ts";
export type { Augment, Batch, LoaderOptions, Normalize } from "./lib/data/loader.ts";

// Training (the lecture's experiment: ./experiment.ts; plots: ./plot.ts)
export { fit, NonFiniteLossError } from "./lib/train/fit.ts";
export type { FitOptions } from "./lib/train/fit.ts";
export type { ProgressSink, ProgressState } from "./lib/train/progress.ts";
export type { EpochRecord, History } from "./lib/train/history.ts";
export { RunLock } from "./lib/train/run_dir.ts";
export type { LockHolder, RunSettings } from "./lib/train/run_dir.ts";
export { RunExistsError } from "./lib/train/run_start.ts";
