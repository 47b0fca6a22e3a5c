/**
 * wgnn: train neural networks on WebGPU from Deno, with PyTorch's numerics.
 *
 * Start here: five things train a model. {@link requestGpu} gives the {@link Gpu}; a
 * {@link Sequential} of layers ({@link Linear}, {@link LeakyReLU}, {@link BatchNorm1d},
 * {@link Dropout}, {@link Flatten}) moved onto it with `to(gpu)` is the model;
 * {@link CrossEntropyLoss} is the loss; {@link Adam} (or {@link SGD}, {@link AdamW},
 * {@link RMSprop}) over `model.parameters()` is the optimizer; and {@link fit} trains it on a
 * {@link Loader} over a {@link GpuDataset}. Everything else here is what those take or return.
 *
 * This core entry holds the GPU runtime, tensors, layers with explicit forward/backward pairs,
 * the fused loss, PyTorch's optimizers, safetensors state dicts, the dataset and loader that
 * live on the GPU, and the training loop, which never waits on the GPU inside an epoch. Every
 * kernel is a WGSL compute shader, imported as text. It pulls in no npm package (only
 * `node:path`), so importing it for one layer costs only its own modules.
 *
 * The other entries: `@wgnn/wgnn/data` (`data.ts`) reads and downloads CIFAR-10 (tar-stream);
 * `@wgnn/wgnn/plot` (`plot.ts`) draws the figures and the report (Observable Plot, linkedom);
 * `@wgnn/wgnn/experiment` (`experiment.ts`) is the lecture's experiment; `@wgnn/wgnn/advanced`
 * (`advanced.ts`) is the plumbing for kernels and layers of your own (pipeline cache, buffer
 * pool, matmul engine, kernel choice). The last two re-export this entry.
 *
 * @example The lecture's BatchNorm model, trained with fit
 * ```ts
 * import * as nn from "@wgnn/wgnn";
 *
 * async function trainBn(images: nn.ImageSet, val: nn.ImageSet): Promise<nn.History> {
 *   const gpu = await nn.requestGpu();
 *   nn.manualSeed(0);
 *   const model = new nn.Sequential(
 *     new nn.Flatten(),
 *     new nn.Linear(3072, 128), new nn.LeakyReLU(), new nn.BatchNorm1d(128),
 *     new nn.Linear(128, 128), new nn.LeakyReLU(), new nn.BatchNorm1d(128),
 *     new nn.Linear(128, 10),
 *   ).to(gpu);
 *   const loss = new nn.CrossEntropyLoss();
 *   const optimizer = new nn.Adam(model.parameters(), { lr: 1e-3 });
 *   const batches = { batchSize: 1024 };
 *   return await nn.fit(model, {
 *     train: new nn.Loader(gpu, nn.GpuDataset.upload(gpu, images), { ...batches, shuffle: true }),
 *     val: new nn.Loader(gpu, nn.GpuDataset.upload(gpu, val), batches),
 *     epochs: 20,
 *     loss,
 *     optimizer,
 *   });
 * }
 * ```
 *
 * @example One training step by hand: encode everything, submit once
 * ```ts
 * import * as nn from "@wgnn/wgnn";
 *
 * async function step(model: nn.Sequential, optimizer: nn.Optimizer, x: nn.Tensor, y: nn.Tensor) {
 *   const loss = new nn.CrossEntropyLoss();
 *   const enc = new nn.StepEncoder(x.gpu);
 *   optimizer.zeroGrad(enc);
 *   loss.forward(enc, model.forward(enc, x), y); // loss and its gradient, fused
 *   model.backward(enc, loss.backward());
 *   optimizer.step(enc); // one dispatch for the whole parameter arena
 *   enc.submit();
 *   return (await loss.stats.read()).lastLoss; // a readback: do it rarely
 * }
 * ```
 *
 * @module
 */

// GPU runtime and tensors
export { DeviceLostError, Gpu, GpuMemoryError, requestGpu } from "./lib/gpu/device.ts";
export type {
  AdapterDescription,
  GpuMemoryErrorInfo,
  RequestGpuOptions,
} from "./lib/gpu/device.ts";
export { GpuBuffer } from "./lib/gpu/buffer.ts";
export type { MemoryStats } from "./lib/gpu/buffer.ts";
export { StepEncoder } from "./lib/gpu/encoder.ts";
export { Tensor } from "./lib/tensor.ts";
export type { DType, TensorFromOptions } from "./lib/tensor.ts";
// Named by Module.inputStaging and Loader.encodeBatchFor (a loader writing the first layer's
// matmul texture, or handing it the batch as dataset rows); the matmul engine itself is in
// advanced.ts.
export type { GpuTexture } from "./lib/gpu/buffer.ts";
export type { StagedOperand } from "./lib/ops/staging.ts";
export type { RowSource } from "./lib/ops/rows.ts";

// Layers, loss, parameters
export { manualSeed } from "./lib/nn/random.ts";
export { Module } from "./lib/nn/module.ts";
export type { AttachContext, HostTensor } from "./lib/nn/module.ts";
export { Flatten, LeakyReLU, ReLU, Unflatten } from "./lib/nn/layers.ts";
export { GELU, Sigmoid, SiLU, Tanh } from "./lib/nn/activations.ts";
export type { GELUOptions } from "./lib/nn/activations.ts";
export { LogSoftmax, Softmax } from "./lib/nn/softmax.ts";
export { Linear } from "./lib/nn/linear.ts";
export type { LinearOptions } from "./lib/nn/linear.ts";
export { BatchNorm1d } from "./lib/nn/batchnorm.ts";
export type { BatchNormOptions } from "./lib/nn/batchnorm.ts";
export { Dropout } from "./lib/nn/dropout.ts";
export { Sequential } from "./lib/nn/sequential.ts";
export { Residual } from "./lib/nn/residual.ts";
export { Conv2d, type Conv2dOptions, type Pair } from "./lib/nn/conv.ts";
export type { ConvAlgorithm, ConvChoice } from "./lib/nn/conv_choice.ts";
export { AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, Pool2d, PoolWindow } from "./lib/nn/pool.ts";
export { BatchNorm2d } from "./lib/nn/batchnorm2d.ts";
export { load, optimizerPath, save } from "./lib/nn/save.ts";
export type { SavedOptimizer, SaveLoadOptions } from "./lib/nn/save.ts";
export type { StateDict } from "./lib/nn/sequential.ts";
export { CrossEntropyLoss, LabelRangeError, LossStats } from "./lib/nn/loss.ts";
export type { CrossEntropyOptions, LossSummary } from "./lib/nn/loss.ts";
export type { LabelLoss, Loss, Reduction } from "./lib/nn/loss_contract.ts";
export { BCEWithLogitsLoss, L1Loss, MSELoss } from "./lib/nn/elementwise_loss.ts";
export type { BCEWithLogitsOptions, ReductionOptions } from "./lib/nn/elementwise_loss.ts";
export { NLLLoss } from "./lib/nn/nll_loss.ts";
export type { NLLOptions } from "./lib/nn/nll_loss.ts";
export { ParameterArena } from "./lib/nn/parameter.ts";
export type { Parameter, ParameterSpec } from "./lib/nn/parameter.ts";

// Optimizers
export { Optimizer } from "./lib/optim/optimizer.ts";
export type { Hyperparameters, RuleGroup, RuleSpec } from "./lib/optim/optimizer.ts";
export type { ParameterGroup, TensorPair } from "./lib/optim/group.ts";
export type { OptimizerParams, ParamGroup } from "./lib/optim/param_groups.ts";
export { SGD } from "./lib/optim/sgd.ts";
export type { SGDOptions } from "./lib/optim/sgd.ts";
export { Adam, AdamW } from "./lib/optim/adam.ts";
export type { AdamOptions } from "./lib/optim/adam.ts";
export { RMSprop } from "./lib/optim/rmsprop.ts";
export type { RMSpropOptions } from "./lib/optim/rmsprop.ts";
export {
  CosineAnnealingLR,
  ExponentialLR,
  LinearLR,
  MultiStepLR,
  OneCycleLR,
  SequentialLR,
  StepLR,
} from "./lib/optim/scheduler.ts";
export type {
  CosineAnnealingLROptions,
  LinearLROptions,
  LrScheduler,
  MultiStepLROptions,
  OneCycleLROptions,
  StepLROptions,
} from "./lib/optim/scheduler.ts";

// Safetensors
export { decodeSafetensors, encodeSafetensors, stateDictOf } from "./lib/io/safetensors.ts";
export { readSafetensorsFile, writeSafetensorsFile } from "./lib/io/safetensors_file.ts";
export type {
  HostTensor as SafetensorsTensor,
  HostTensorData,
  Safetensors,
  SafetensorsDType,
  StateDictOfOptions,
  StateTensor,
} from "./lib/io/safetensors.ts";

// Datasets on the GPU (reading and downloading CIFAR-10: ./data.ts)
export type { ImageSet } from "./lib/data/cifar10.ts";
export { GpuDataset, splitDataset } from "./lib/data/dataset.ts";
export type { DatasetSubset, GpuDatasetOptions, LoaderData } from "./lib/data/dataset.ts";
export { Loader } from "./lib/data/loader.ts";
export type { Augment, Batch, LoaderOptions, Normalize } from "./lib/data/loader.ts";

// Training (the lecture's experiment: ./experiment.ts; plots: ./plot.ts)
export { fit, NonFiniteLossError } from "./lib/train/fit.ts";
export type { FitOptions, Monitor } from "./lib/train/fit.ts";
export type { StepHooks, StepInfo } from "./lib/train/step.ts";
export { evaluate } from "./lib/train/evaluate.ts";
export type { EvaluateOptions, Evaluation } from "./lib/train/evaluate.ts";
export { predict } from "./lib/train/predict.ts";
export type { Prediction, PredictOptions } from "./lib/train/predict.ts";
export type { BatchSource } from "./lib/train/schedule.ts";
export type { ProgressSink, ProgressState } from "./lib/train/progress.ts";
export type { EpochRecord, History } from "./lib/train/history.ts";
export { RunLock } from "./lib/train/run_dir.ts";
export type { LockHolder, RunSettings } from "./lib/train/run_dir.ts";
export { RunExistsError } from "./lib/train/run_start.ts";
