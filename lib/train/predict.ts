/**
 * A trained model run on host data: {@link predict} takes uint8 samples or float32 rows of any
 * shape (fed through a loader's own gather kernel when they are uint8 or normalised, so that
 * its logits are those a forward on that loader's batches gives, bit for bit), in eval mode,
 * and returns the outputs and the predicted labels. It restores the model's mode, submits once
 * and waits once.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { StepEncoder } from "../gpu/encoder.ts";
import { checkSampleShape, CIFAR_SHAPE, GpuDataset, showShape } from "../data/dataset.ts";
import { Loader, type Normalize } from "../data/loader.ts";
import type { Sequential } from "../nn/sequential.ts";
import { describeData, Tensor } from "../tensor.ts";

/** Options of {@link predict}. */
export interface PredictOptions {
  /**
   * A loader whose sample shape, dtype and normalisation `x` gets, and whose batch size is the
   * default: the samples then reach the model exactly as that loader's batches do (never
   * augmented). `x` must be of its dataset's dtype (Uint8Array for uint8, Float32Array for
   * float32). Default: none.
   */
  like?: Loader;
  /**
   * The normalisation, when no `like` gives it: per channel of an image shape, else per value
   * (see `Normalize`). Default: none (uint8 /255 only, float32 as it is).
   */
  normalize?: Normalize;
  /** Rows per forward. Default: `like`'s batch size, else 1024. */
  batchSize?: number;
  /**
   * The shape of one sample of `x`. Default: `like`'s, else `[features]` when `features` is
   * given, else `[3, 32, 32]` (a CIFAR-10 image).
   */
  shape?: readonly number[];
  /** Values per row of `x`, a shape of `[features]`. Default: the product of `shape`. */
  features?: number;
}

/** What {@link predict} returns. */
export interface Prediction {
  /** The model's output, row-major `[rows, classes]`. */
  logits: Float32Array;
  /**
   * The first argmax of each row, as the confusion matrix and the accuracy count it (a NaN
   * never wins over the row's first value).
   */
  labels: Uint32Array;
  /** Outputs per row. */
  classes: number;
}

/**
 * Runs `model` in eval mode on host data and returns its outputs and predicted labels. `x` holds
 * whole samples of `shape` (or `like`'s): a `Uint8Array`, gathered on the GPU by a
 * {@link Loader}'s own kernel (/255, then `normalize` or `like`'s normalisation), or a
 * `Float32Array`, taken as it is or, with a normalisation, gathered the same way. The batches
 * and the output are allocated once per call and freed before it returns; everything is
 * submitted at once and read back in one round trip. The model's train/eval mode is restored
 * afterwards.
 *
 * @example Classify the test images as the training loader fed them
 * ```ts
 * import type { ImageSet, Loader, Sequential } from "@wgnn/wgnn";
 * import { predict } from "./predict.ts";
 *
 * async function testAccuracy(model: Sequential, train: Loader, test: ImageSet) {
 *   const { labels } = await predict(model, test.images, { like: train });
 *   return labels.filter((label, i) => label === test.labels[i]).length / test.count;
 * }
 * ```
 *
 * @example MNIST-shaped digits, normalised as in torchvision's examples
 * ```ts
 * import type { Sequential } from "@wgnn/wgnn";
 * import { predict } from "./predict.ts";
 *
 * async function digits(model: Sequential, images: Uint8Array): Promise<Uint32Array> {
 *   const normalize = { mean: [0.1307], std: [0.3081] }; // one channel
 *   return (await predict(model, images, { shape: [1, 28, 28], normalize })).labels;
 * }
 * ```
 */
export async function predict(
  model: Sequential,
  x: Uint8Array | Float32Array,
  options: PredictOptions = {},
): Promise<Prediction> {
  const images = x instanceof Uint8Array;
  if (!images && !(x instanceof Float32Array)) {
    throw new TypeError(
      `Cannot predict: x must be a Uint8Array of images or a Float32Array of rows: current value is ${
        describeData(x)
      }`,
    );
  }
  const { like, normalize } = options;
  if (like && normalize) {
    throw new RangeError("Cannot predict: give like or normalize, not both");
  }
  if (like && like.dataset.dtype !== (images ? "uint8" : "float32")) {
    throw new RangeError(
      `Cannot predict: like's dataset holds ${like.dataset.dtype} samples, so x must be a ${
        images ? "Float32Array" : "Uint8Array"
      }: current value is ${describeData(x)}`,
    );
  }
  const shape = sampleShape(options);
  const features = shape.reduce((a, b) => a * b, 1);
  const rows = x.length / features;
  if (!Number.isInteger(rows) || rows === 0) {
    const which = options.shape || options.features || like ? "" : ", the default";
    throw new RangeError(
      `Cannot predict: x must hold whole rows of ${features} values, at least one: current length is ${x.length} (samples of shape ${
        showShape(shape)
      }${which})`,
    );
  }
  const batchSize = options.batchSize ?? like?.options.batchSize ?? 1024;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new RangeError(
      `Cannot predict: batchSize must be a positive integer: current value is ${batchSize}`,
    );
  }
  const gpu = model.parameters().values.gpu;
  const norm = like?.options.normalize ?? normalize;
  const input = images || norm
    ? new GatherBatches(gpu, x, shape, batchSize, norm)
    : new RowBatches(gpu, x, features, batchSize);
  let out: Tensor | null = null;
  const wasTraining = model.training;
  try {
    model.eval();
    const enc = new StepEncoder(gpu, "predict");
    for (let i = 0, row = 0; i < input.batches; i++) {
      const logits = model.forward(enc, input.encode(enc, i, model));
      if (logits.shape.length !== 2 || logits.dtype !== "f32") {
        throw new RangeError(
          `Cannot predict: the model's output must be [batch, classes] f32: current output is [${
            logits.shape.join(", ")
          }] ${logits.dtype}`,
        );
      }
      // The model reuses its output tensor for the next batch: copy each batch out first.
      out ??= Tensor.empty(gpu, [rows, logits.shape[1]], "f32", "predict logits");
      const bytes = logits.byteLength;
      enc.commands().copyBufferToBuffer(logits.buffer, logits.byteOffset, out.buffer, row, bytes);
      row += bytes;
    }
    enc.submit();
    model.train(wasTraining);
    const logits = await out!.toFloat32();
    const classes = out!.shape[1];
    return { logits, labels: firstArgmax(logits, rows, classes), classes };
  } finally {
    model.train(wasTraining);
    out?.dispose();
    input.dispose();
  }
}

/** The batches of {@link predict}'s input, encoded where the model reads them. */
interface PredictBatches {
  readonly batches: number;
  encode(enc: StepEncoder, index: number, model: Sequential): Tensor;
  dispose(): void;
}

/**
 * The shape of one sample of predict's `x`: `shape`, `[features]`, `like`'s, else CIFAR-10's;
 * any two given must agree.
 */
function sampleShape(options: PredictOptions): number[] {
  const { like, features } = options;
  const shape = options.shape === undefined
    ? undefined
    : checkSampleShape("predict", options.shape);
  if (features !== undefined && (!Number.isInteger(features) || features <= 0)) {
    throw new RangeError(
      `Cannot predict: features must be a positive integer: current value is ${features}`,
    );
  }
  const product = shape?.reduce((a, b) => a * b, 1);
  if (shape && features !== undefined && product !== features) {
    throw new RangeError(
      `Cannot predict: features must be the product of shape ${
        showShape(shape)
      } (${product}): current value is ${features}`,
    );
  }
  const own = shape ?? (features !== undefined ? [features] : undefined);
  if (like) {
    const theirs = like.dataset.shape;
    const flat = theirs.reduce((a, b) => a * b, 1);
    if (own && (shape ? showShape(shape) !== showShape(theirs) : features !== flat)) {
      throw new RangeError(
        `Cannot predict: like's samples have shape ${showShape(theirs)}: current ${
          shape ? `shape is ${showShape(shape)}` : `features is ${features}`
        }`,
      );
    }
    return [...theirs];
  }
  return own ?? [...CIFAR_SHAPE];
}

/**
 * Samples through the loader's gather (kernels/gather.wgsl): the dataset holds them with
 * placeholder labels, and the loader visits them in order, unaugmented.
 */
class GatherBatches implements PredictBatches {
  readonly batches: number;
  readonly #dataset: GpuDataset;
  readonly #loader: Loader;

  constructor(
    gpu: Gpu,
    x: Uint8Array | Float32Array,
    shape: number[],
    batchSize: number,
    normalize?: Normalize,
  ) {
    const count = x.length / shape.reduce((a, b) => a * b, 1);
    const samples = x instanceof Uint8Array ? { images: x } : { features: x };
    this.#dataset = GpuDataset.upload(gpu, {
      ...samples,
      labels: new Uint8Array(count),
      shape,
    }, { label: "predict" });
    try {
      this.#loader = new Loader(gpu, this.#dataset, { batchSize, normalize });
    } catch (error) {
      this.#dataset.dispose();
      throw error;
    }
    this.#loader.startEpoch(0);
    this.batches = this.#loader.batchesPerEpoch;
  }

  encode(enc: StepEncoder, index: number, model: Sequential): Tensor {
    return this.#loader.encodeBatchFor(enc, index, model).x;
  }

  dispose(): void {
    this.#loader.dispose();
    this.#dataset.dispose();
  }
}

/**
 * Float32 rows: uploaded once, and each batch copied into one of two batch tensors (full and
 * last) inside the command buffer, since a queued write would land before every batch's forward.
 */
class RowBatches implements PredictBatches {
  readonly batches: number;
  readonly #all: Tensor;
  readonly #full: Tensor;
  readonly #last: Tensor;
  readonly #batchSize: number;

  constructor(gpu: Gpu, rows: Float32Array, features: number, batchSize: number) {
    const count = rows.length / features;
    const size = Math.min(batchSize, count);
    const rest = count % size;
    this.batches = Math.ceil(count / size);
    this.#batchSize = size;
    this.#all = Tensor.from(gpu, rows, [count, features], "predict rows");
    this.#full = Tensor.empty(gpu, [size, features], "f32", `predict batch ${size}`);
    this.#last = rest === 0
      ? this.#full
      : Tensor.empty(gpu, [rest, features], "f32", `predict batch ${rest}`);
  }

  encode(enc: StepEncoder, index: number): Tensor {
    const batch = index === this.batches - 1 ? this.#last : this.#full;
    const at = index * this.#batchSize * batch.shape[1] * 4;
    enc.commands().copyBufferToBuffer(this.#all.buffer, at, batch.buffer, 0, batch.byteLength);
    return batch;
  }

  dispose(): void {
    this.#all.dispose();
    this.#full.dispose();
    if (this.#last !== this.#full) this.#last.dispose();
  }
}

/** Each row's first index of its maximum, as kernels/confusion.wgsl picks it. */
function firstArgmax(logits: Float32Array, rows: number, classes: number): Uint32Array {
  const labels = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = logits[r * classes];
    for (let c = 1; c < classes; c++) {
      const z = logits[r * classes + c];
      if (z > best) {
        best = z;
        labels[r] = c;
      }
    }
  }
  return labels;
}
