/**
 * wgnn for the browser: the part of the core entry (`@wgnn/wgnn`) that runs on any WebGPU
 * runtime, with no Deno API in its module graph. `deno task build` bundles it, with every WGSL
 * kernel inlined, to `dist/wgnn.js`, an ES module a page imports as it is.
 *
 * It holds the GPU runtime and tensors, every layer with its forward/backward pair, the losses,
 * the optimizers and learning-rate schedules, `evaluate`, and the plumbing of `advanced.ts` that
 * needs no file or environment (pipelines, buffers, the matmul engine and its kernel choice).
 * Safetensors travel as bytes (`encodeSafetensors`, `decodeSafetensors`, `stateDictOf`: a
 * checkpoint a page offers for download). CIFAR-10 comes as bytes too: `parseBatches` parses
 * batch files a page fetched or the user picked, and `GpuDataset` and `Loader` put them on the
 * GPU and gather the batches there, as in Deno. A page's own training loop encodes each step with
 * `encodeTrainingStep`, the step `fit` runs (web/app.ts is such a page). Left out, because they
 * read or write files: `save`/`load` and the safetensors file helpers, `fit` (checkpoints, run
 * folders), `loadCifar10` and the download, `matmulVariant` (it reads `WGNN_MATMUL`) and
 * `useLavapipeVectorWidth`. `tests/browser_entry_test.ts` keeps it so.
 *
 * @example Two Adam steps of a small model, in a page (after `deno task build`)
 * ```ts ignore
 * import * as nn from "./dist/wgnn.js";
 *
 * const gpu = await nn.requestGpu();
 * nn.manualSeed(0);
 * const model = new nn.Sequential(new nn.Linear(4, 8), new nn.LeakyReLU(), new nn.Linear(8, 3))
 *   .to(gpu);
 * const loss = new nn.CrossEntropyLoss();
 * const optimizer = new nn.Adam(model.parameters(), { lr: 1e-2 });
 * const x = nn.Tensor.from(gpu, new Float32Array(8).fill(0.5), [2, 4]);
 * const y = nn.Tensor.from(gpu, Uint32Array.of(0, 2), [2]);
 * for (let step = 0; step < 2; step++) {
 *   const enc = new nn.StepEncoder(gpu);
 *   optimizer.zeroGrad(enc);
 *   loss.forward(enc, model.forward(enc, x), y);
 *   model.backward(enc, loss.backward());
 *   optimizer.step(enc);
 *   enc.submit();
 * }
 * console.log((await loss.stats.read()).lastLoss);
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
export { BufferPool, GpuBuffer, GpuTexture } from "./lib/gpu/buffer.ts";
export type { BufferOwner, MemoryStats } from "./lib/gpu/buffer.ts";
export { StepEncoder } from "./lib/gpu/encoder.ts";
export { grid1d, PipelineCache } from "./lib/gpu/kernels.ts";
export type { Constants, Kernel, PipelineOwner } from "./lib/gpu/kernels.ts";
export { ParamsLayout } from "./lib/gpu/params.ts";
export type { ScalarType } from "./lib/gpu/params.ts";
export { Tensor } from "./lib/tensor.ts";
export type { DType, TensorFromOptions } from "./lib/tensor.ts";
export type { StagedOperand } from "./lib/ops/staging.ts";
export type { RowSource } from "./lib/ops/rows.ts";

// The matmul engine and the choice of its kernel
export { Matmul, matmul } from "./lib/ops/matmul.ts";
export type { MatmulOptions } from "./lib/ops/matmul.ts";
export { chooseMatmul } from "./lib/ops/matmul_choice.ts";
export type { MatmulChoice, MatmulVariant } from "./lib/ops/matmul_choice.ts";
export { adapterVectorWidth } from "./lib/gpu/vector_width.ts";

// Layers, loss, parameters
export { manualSeed } from "./lib/nn/random.ts";
export { checkInput, Module, PerBatch } from "./lib/nn/module.ts";
export type { AttachContext, HostTensor } from "./lib/nn/module.ts";
export { entryPoint, KernelCall } from "./lib/nn/kernel_call.ts";
export type {
  BindingTable,
  EntryBindings,
  EntryPoint,
  KernelFamily,
  Resource,
  Resources,
} from "./lib/nn/kernel_call.ts";
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
export type { StateDict } from "./lib/nn/sequential.ts";
export { Residual } from "./lib/nn/residual.ts";
export { Conv2d, type Conv2dOptions, type Pair } from "./lib/nn/conv.ts";
export type { ConvAlgorithm, ConvChoice } from "./lib/nn/conv_choice.ts";
export { AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, Pool2d, PoolWindow } from "./lib/nn/pool.ts";
export { BatchNorm2d } from "./lib/nn/batchnorm2d.ts";
export { lectureModel, VARIANTS } from "./lib/nn/lecture.ts";
export { CNN_RECIPE, CNN_WIDTHS, cnnModel } from "./lib/nn/cnn.ts";
export type { Variant } from "./lib/nn/lecture.ts";
export { CrossEntropyLoss, LabelRangeError, LossStats } from "./lib/nn/loss.ts";
export type { CrossEntropyOptions, LossSummary } from "./lib/nn/loss.ts";
export type { LabelLoss, Loss, Reduction } from "./lib/nn/loss_contract.ts";
export { BCEWithLogitsLoss, L1Loss, MSELoss } from "./lib/nn/elementwise_loss.ts";
export type { BCEWithLogitsOptions, ReductionOptions } from "./lib/nn/elementwise_loss.ts";
export { NLLLoss } from "./lib/nn/nll_loss.ts";
export type { NLLOptions } from "./lib/nn/nll_loss.ts";
export { ParameterArena } from "./lib/nn/parameter.ts";
export type { Parameter, ParameterSpec } from "./lib/nn/parameter.ts";
export { decodeSafetensors, encodeSafetensors, stateDictOf } from "./lib/io/safetensors.ts";
export type { Safetensors, StateDictOfOptions, StateTensor } from "./lib/io/safetensors.ts";
export type {
  HostTensor as SafetensorsTensor,
  HostTensorData,
  SafetensorsDType,
} from "./lib/io/safetensors.ts";

// Optimizers and learning-rate schedules
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

// CIFAR-10 from bytes (fetched by a page or picked by the user), and datasets on the GPU
export {
  CLASS_NAMES,
  IMAGE_BYTES,
  META_FILE,
  NUM_CLASSES,
  parseBatch,
  parseBatches,
  parseMeta,
  RECORD_BYTES,
  TEST_FILE,
  TRAIN_FILES,
} from "./lib/data/cifar10_format.ts";
export type { Cifar10, ImageSet } from "./lib/data/cifar10_format.ts";
export { GpuDataset, splitDataset } from "./lib/data/dataset.ts";
export type { DatasetSubset, GpuDatasetOptions, LoaderData } from "./lib/data/dataset.ts";
export { Loader } from "./lib/data/loader.ts";
export type { Augment, Batch, LoaderOptions, Normalize } from "./lib/data/loader.ts";

// A training step, as fit encodes it, and evaluation over any batch source
export { encodeTrainingStep } from "./lib/train/step.ts";
export type { AccumulationWindow, StepHooks, StepInfo, Trainer } from "./lib/train/step.ts";
export { evaluate } from "./lib/train/evaluate.ts";
export type { EvaluateOptions, Evaluation } from "./lib/train/evaluate.ts";
export type { BatchSource } from "./lib/train/schedule.ts";
