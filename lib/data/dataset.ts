/**
 * A GPU-resident dataset of samples of any shape `[N, ...shape]`: uint8 samples (images) packed
 * four to a `u32` (147 MiB for CIFAR-10's training set instead of 586 MiB of f32) or float32
 * samples (tabular rows), with class labels as `u32` or float targets as `f32`, and CPU-side
 * subsets.
 *
 * The samples are split into shards only where the adapter's `maxStorageBufferBindingSize`
 * (or `maxBufferSize`) is smaller than the whole set; the gather kernel binds up to four. Each
 * shard is zero-padded to a multiple of 16 bytes, since the kernel reads it as `vec4<u32>`.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { checkLabels, describeData, Tensor } from "../tensor.ts";
import { NUM_CLASSES } from "./cifar10_format.ts";
import { mixSeed, Rng } from "./rng.ts";

/** Most shards the gather kernel can bind (kernels/gather.wgsl). */
export const MAX_SHARDS = 4;

/** The shape of a CIFAR-10 image, `[3, 32, 32]`: the default of {@link SampleSet.shape}. */
export const CIFAR_SHAPE: readonly number[] = Object.freeze([3, 32, 32]);

/** What one sample's values are stored as: uint8 (scaled to [0, 1] by /255) or float32. */
export type SampleDType = "uint8" | "float32";

/**
 * Samples and what they are labelled with, as {@link GpuDataset.upload} takes them: `images`
 * (uint8) or `features` (float32), each `count × prod(shape)` values, sample i first at
 * `i × prod(shape)`; and `labels` (classes) or `targets` (regression). A CIFAR-10 split
 * (`loadCifar10(dir).train`, an `ImageSet`) is one, with the default shape.
 *
 * @example An MNIST-shaped set and a tabular one
 * ```ts
 * import type { SampleSet } from "@wgnn/wgnn";
 *
 * const digits: SampleSet = {
 *   images: new Uint8Array(100 * 784),
 *   labels: new Uint8Array(100),
 *   shape: [1, 28, 28],
 * };
 * const houses: SampleSet = {
 *   features: new Float32Array(50 * 13),
 *   targets: new Float32Array(50), // one value per row: y is f32 [batch, 1]
 *   shape: [13],
 * };
 * ```
 */
export interface SampleSet {
  /** uint8 samples, `count × prod(shape)` bytes. Give this or `features`. Default: none. */
  images?: Uint8Array;
  /** float32 samples, `count × prod(shape)` finite values. Default: none. */
  features?: Float32Array;
  /**
   * One class label per sample, each a non-negative integer below the dataset's `classes`.
   * Give this or `targets`. Default: none.
   */
  labels?: ArrayLike<number>;
  /**
   * Float targets, `count × k` finite values (k per sample, e.g. for `MSELoss`): batches get
   * `y` f32 `[size, k]`. Default: none.
   */
  targets?: Float32Array;
  /**
   * Shape of one sample: positive integers; `[C, H, W]` is an image (per-channel
   * normalisation, flips and crops). Default: `[3, 32, 32]` (a CIFAR-10 image).
   */
  shape?: readonly number[];
  /** Number of samples. Default: the number of labels (or of values / prod(shape)). */
  count?: number;
}

/** Options of {@link GpuDataset.upload}. */
export interface GpuDatasetOptions {
  /** Debug label. Default: "dataset". */
  label?: string;
  /**
   * Cap on one shard's bytes below the adapter's limits (tests use it to force sharding).
   * Default: none (the adapter's limits alone).
   */
  maxShardBytes?: number;
  /** Number of classes: every label must be below it. Default: 10 (CIFAR-10). */
  classes?: number;
}

/** `shape` as text, `[1, 28, 28]`. */
export const showShape = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/**
 * Samples and labels on the GPU, uploaded once and read by a {@link Loader} every epoch. The
 * dataset owns its tensors: call {@link GpuDataset.dispose} (or declare it with `using`).
 *
 * @example Upload both splits
 * ```ts
 * import { type Gpu, GpuDataset } from "@wgnn/wgnn";
 * import { loadCifar10 } from "@wgnn/wgnn/data";
 *
 * async function upload(gpu: Gpu): Promise<[GpuDataset, GpuDataset]> {
 *   const data = await loadCifar10("data");
 *   const train = GpuDataset.upload(gpu, data.train, { label: "train" }); // 147 MiB as u8
 *   const test = GpuDataset.upload(gpu, data.test, { label: "test" });
 *   return [train, test];
 * }
 * ```
 */
export class GpuDataset {
  /** The GPU holding the data. */
  readonly gpu: Gpu;
  /** Number of samples. */
  readonly count: number;
  /** Shape of one sample (`[3, 32, 32]` for CIFAR-10). */
  readonly shape: readonly number[];
  /** What the samples' values are stored as: uint8 (scaled by /255) or float32. */
  readonly dtype: "uint8" | "float32";
  /** Values per sample: the product of {@link GpuDataset.shape}. */
  readonly rowLength: number;
  /**
   * Sample shards, flat u8 (uint8) or f32 (float32) tensors: shard k holds samples
   * `k·shardImages …` one after another, then zeros up to a multiple of 16 bytes.
   */
  readonly shards: readonly Tensor[];
  /** Samples per shard (the last may hold fewer). */
  readonly shardImages: number;
  /**
   * Labels, u32 `[count]`, each below {@link GpuDataset.classes}; or targets, f32
   * `[count, targetWidth]`.
   */
  readonly labels: Tensor;
  /** Number of classes the labels were checked against (0 for targets). */
  readonly classes: number;
  /** Target values per sample; 0 for class labels. */
  readonly targetWidth: number;

  private constructor(
    gpu: Gpu,
    layout: { count: number; shape: readonly number[]; dtype: SampleDType },
    shards: Tensor[],
    shardImages: number,
    labels: Tensor,
    labelling: { classes: number; targetWidth: number },
  ) {
    this.gpu = gpu;
    this.count = layout.count;
    this.shape = Object.freeze([...layout.shape]);
    this.dtype = layout.dtype;
    this.rowLength = layout.shape.reduce((a, b) => a * b, 1);
    this.shards = shards;
    this.shardImages = shardImages;
    this.labels = labels;
    this.classes = labelling.classes;
    this.targetWidth = labelling.targetWidth;
  }

  /**
   * Whether the samples are images `[C, H, W]` (normalised per channel, augmentable).
   */
  get isImage(): boolean {
    return this.shape.length === 3;
  }

  /**
   * The samples in words, for messages and a run's settings: `uint8 [1, 28, 28], 10 classes`,
   * or `float32 [13], targets [1]`.
   */
  describe(): string {
    const y = this.targetWidth > 0 ? `targets [${this.targetWidth}]` : `${this.classes} classes`;
    return `${this.dtype} ${showShape(this.shape)}, ${y}`;
  }

  /**
   * Uploads `set`: `loadCifar10(dir).train` as it is (shape `[3, 32, 32]` implied), or samples
   * of any `shape`, uint8 `images` or float32 `features`, with class `labels` or float
   * `targets`. Refuses, with a RangeError or TypeError naming the problem and the value: an
   * empty set, a shape that is not positive integers, data whose length is not `count ×
   * prod(shape)`, a non-finite feature or target, a label that is not an integer below
   * `options.classes` (default 10; the first such sample and its label), both or neither of
   * images/features or labels/targets, and a set needing more than 4 shards (`MAX_SHARDS`).
   *
   * @example A tiny synthetic CIFAR-shaped set
   * ```ts
   * import { type Gpu, GpuDataset } from "@wgnn/wgnn";
   *
   * function tiny(gpu: Gpu): GpuDataset {
   *   const count = 8;
   *   const images = new Uint8Array(count * 3072).map((_, i) => i % 256);
   *   const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
   *   return GpuDataset.upload(gpu, { images, labels, count }, { label: "tiny" });
   * }
   * ```
   *
   * @example MNIST-shaped images and a tabular regression set
   * ```ts
   * import { type Gpu, GpuDataset } from "@wgnn/wgnn";
   *
   * function digits(gpu: Gpu, images: Uint8Array, labels: Uint8Array): GpuDataset {
   *   // 784 bytes per image; a wrong length throws a RangeError naming the shape.
   *   return GpuDataset.upload(gpu, { images, labels, shape: [1, 28, 28] }, { label: "mnist" });
   * }
   * function houses(gpu: Gpu, features: Float32Array, prices: Float32Array): GpuDataset {
   *   // 13 float features and one float target per row: batches of f32 x [n, 13], y [n, 1].
   *   return GpuDataset.upload(gpu, { features, targets: prices, shape: [13] });
   * }
   * ```
   *
   * @example Fewer classes than CIFAR-10
   * ```ts
   * import { type Gpu, GpuDataset } from "@wgnn/wgnn";
   *
   * function binary(gpu: Gpu, images: Uint8Array, labels: Uint8Array): GpuDataset {
   *   // A label of 2 or more throws a RangeError before anything is uploaded.
   *   return GpuDataset.upload(gpu, { images, labels, count: labels.length }, { classes: 2 });
   * }
   * ```
   */
  static upload(gpu: Gpu, set: SampleSet, options: GpuDatasetOptions = {}): GpuDataset {
    const label = options.label ?? "dataset";
    const what = `upload dataset "${label}"`;
    const { data, dtype } = sampleData(what, set);
    const shape = checkSampleShape(what, set.shape);
    const row = shape.reduce((a, b) => a * b, 1);
    const count = set.count ?? set.labels?.length ?? data.length / row;
    if (!Number.isInteger(count) || count <= 0) {
      throw new RangeError(
        `Cannot ${what}: need count > 0 samples of shape ${
          showShape(shape)
        } (${row} values each): current count is ${count} (from ${data.length} values)`,
      );
    }
    if (data.length !== count * row) {
      const which = set.shape === undefined
        ? `the default shape ${
          showShape(shape)
        } (a CIFAR-10 image; pass shape for other samples, e.g. [1, 28, 28])`
        : `shape ${showShape(shape)}`;
      throw new RangeError(
        `Cannot ${what}: ${count} samples of ${which} need ${count} × ${row} = ${
          count * row
        } values, ${data.length / count} per sample: current length is ${data.length}`,
      );
    }
    if (data instanceof Float32Array) checkFinite(what, "features", data, row);
    const { values: labelValues, classes, targetWidth } = labelData(what, set, count, options);
    const rowBytes = row * (dtype === "uint8" ? 1 : 4);
    const limit = Math.min(
      gpu.limits.maxStorageBufferBindingSize,
      gpu.limits.maxBufferSize,
      options.maxShardBytes ?? Infinity,
    );
    let shardImages = Math.min(count, Math.floor(limit / rowBytes));
    while (shardImages > 0 && padded16(shardImages * rowBytes) > limit) shardImages--;
    const shardCount = shardImages > 0 ? Math.ceil(count / shardImages) : Infinity;
    if (shardCount > MAX_SHARDS) {
      throw new RangeError(
        `Cannot ${what}: ${count} samples need more than ${MAX_SHARDS} shards of at most ${limit} bytes (the storage-binding limit)`,
      );
    }
    const shards: Tensor[] = [];
    try {
      for (let k = 0; k < shardCount; k++) {
        const first = k * shardImages;
        const n = Math.min(shardImages, count - first);
        const values = data.subarray(first * row, (first + n) * row);
        const length = padded16(n * rowBytes) / (rowBytes / row);
        const shard = Tensor.empty(
          gpu,
          [length],
          dtype === "uint8" ? "u8" : "f32",
          `${label} samples ${k}`,
        );
        shards.push(shard);
        if (length === values.length) {
          shard.write(values);
        } else {
          // Zero padding up to 16 bytes: the kernel reads whole vec4<u32>s.
          const full = dtype === "uint8" ? new Uint8Array(length) : new Float32Array(length);
          full.set(values);
          shard.write(full);
        }
      }
      const labels = targetWidth > 0
        ? Tensor.from(gpu, labelValues as Float32Array, [count, targetWidth], `${label} targets`)
        : Tensor.from(gpu, labelValues as Uint32Array, [count], `${label} labels`);
      return new GpuDataset(gpu, { count, shape, dtype }, shards, shardImages, labels, {
        classes,
        targetWidth,
      });
    } catch (error) {
      for (const s of shards) s.dispose();
      throw error;
    }
  }

  /** Frees the samples and labels. */
  dispose(): void {
    for (const s of this.shards) s.dispose();
    this.labels.dispose();
  }

  /** Same as {@link GpuDataset.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** `bytes` rounded up to a multiple of 16. */
const padded16 = (bytes: number) => Math.ceil(bytes / 16) * 16;

/** The set's samples: exactly one of `images` (a Uint8Array) and `features` (a Float32Array). */
function sampleData(
  what: string,
  set: SampleSet,
): { data: Uint8Array | Float32Array; dtype: SampleDType } {
  if (set === null || typeof set !== "object") {
    throw new TypeError(`Cannot ${what}: the set must be an object: current value is ${set}`);
  }
  const { images, features } = set;
  if ((images === undefined) === (features === undefined)) {
    throw new TypeError(
      `Cannot ${what}: give images (uint8) or features (float32), one of them: current set has ${
        images === undefined ? "neither" : "both"
      }`,
    );
  }
  if (images !== undefined && !(images instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot ${what}: images must be a Uint8Array: current value is ${describeData(images)}`,
    );
  }
  if (features !== undefined && !(features instanceof Float32Array)) {
    throw new TypeError(
      `Cannot ${what}: features must be a Float32Array: current value is ${describeData(features)}`,
    );
  }
  return images !== undefined
    ? { data: images, dtype: "uint8" }
    : { data: features!, dtype: "float32" };
}

/** `shape` checked: a non-empty array of positive integers (default: a CIFAR-10 image). */
export function checkSampleShape(what: string, shape: readonly number[] | undefined): number[] {
  if (shape === undefined) return [...CIFAR_SHAPE];
  if (
    !Array.isArray(shape) || shape.length === 0 ||
    !shape.every((d) => Number.isInteger(d) && d > 0)
  ) {
    const shown = Array.isArray(shape) ? showShape(shape) : String(shape);
    throw new RangeError(
      `Cannot ${what}: shape must be a non-empty array of positive integers: current value is ${shown}`,
    );
  }
  return [...shape];
}

/** Throws naming the first non-finite value of `values` (rows of `row`), as sample and index. */
function checkFinite(what: string, name: string, values: Float32Array, row: number): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new RangeError(
        `Cannot ${what}: ${name} must be finite: current value at index ${i} (sample ${
          Math.floor(i / row)
        }, value ${i % row}) is ${values[i]}`,
      );
    }
  }
}

/** The labels (u32, checked below `classes`) or the targets (f32, checked finite). */
function labelData(
  what: string,
  set: SampleSet,
  count: number,
  options: GpuDatasetOptions,
): { values: Uint32Array | Float32Array; classes: number; targetWidth: number } {
  const { labels, targets } = set;
  if ((labels === undefined) === (targets === undefined)) {
    throw new TypeError(
      `Cannot ${what}: give labels (classes) or targets (float values), one of them: current set has ${
        labels === undefined ? "neither" : "both"
      }`,
    );
  }
  if (targets !== undefined) {
    if (!(targets instanceof Float32Array)) {
      throw new TypeError(
        `Cannot ${what}: targets must be a Float32Array: current value is ${describeData(targets)}`,
      );
    }
    const width = targets.length / count;
    if (!Number.isInteger(width) || width === 0) {
      throw new RangeError(
        `Cannot ${what}: targets must hold the same whole number (≥ 1) of values for each of the ${count} samples: current length is ${targets.length}`,
      );
    }
    if (options.classes !== undefined) {
      throw new RangeError(
        `Cannot ${what}: classes applies to labels, not targets: current value is ${options.classes}`,
      );
    }
    checkFinite(what, "targets", targets, width);
    return { values: targets, classes: 0, targetWidth: width };
  }
  if (labels!.length !== count) {
    throw new RangeError(
      `Cannot ${what}: need one label per sample (${count} samples): current length is ${
        labels!.length
      }`,
    );
  }
  // Checked here, where the data enter: on the GPU a bad label would only surface in the loss.
  const classes = options.classes ?? NUM_CLASSES;
  checkLabels(what, labels!, classes);
  if (!(labels instanceof Uint8Array || labels instanceof Uint32Array)) {
    for (let i = 0; i < labels!.length; i++) {
      if (!Number.isInteger(labels![i]) || labels![i] < 0) {
        throw new RangeError(
          `Cannot ${what}: every label must be a non-negative integer: current value at index ${i} is ${
            labels![i]
          }`,
        );
      }
    }
  }
  return { values: Uint32Array.from(labels!), classes, targetWidth: 0 };
}

/**
 * Some images of a {@link GpuDataset}, by index (CPU-side; no GPU memory of its own). It does
 * not own the dataset.
 *
 * @example The first thousand images
 * ```ts
 * import type { DatasetSubset, GpuDataset } from "@wgnn/wgnn";
 *
 * function firstThousand(dataset: GpuDataset): DatasetSubset {
 *   const n = Math.min(1000, dataset.count);
 *   return { dataset, indices: Uint32Array.from({ length: n }, (_, i) => i) };
 * }
 * ```
 */
export interface DatasetSubset {
  /** The dataset the indices refer to. */
  dataset: GpuDataset;
  /** Indices into `dataset`, in order. */
  indices: Uint32Array;
}

/**
 * A whole dataset or a subset: what a loader reads and {@link splitDataset} splits.
 *
 * @example Count the images of either
 * ```ts
 * import { GpuDataset, type LoaderData } from "@wgnn/wgnn";
 *
 * const size = (data: LoaderData): number =>
 *   data instanceof GpuDataset ? data.count : data.indices.length;
 * ```
 */
export type LoaderData = GpuDataset | DatasetSubset;

/** The dataset and index list behind a {@link LoaderData}. */
export function resolveView(view: LoaderData): DatasetSubset {
  if (view instanceof GpuDataset) {
    const indices = new Uint32Array(view.count);
    for (let i = 0; i < view.count; i++) indices[i] = i;
    return { dataset: view, indices };
  }
  return view;
}

/**
 * Splits a dataset at random into two subsets, as the lecture's `split_dataset`: each image goes
 * to the first with probability `share` (a uniform draw ≤ share), otherwise to the second;
 * indices keep their order. Reproducible from `seed`.
 *
 * @example The lecture's 90/10 train/validation split
 * ```ts
 * import { type DatasetSubset, type GpuDataset, splitDataset } from "@wgnn/wgnn";
 *
 * function trainAndValidation(train: GpuDataset): [DatasetSubset, DatasetSubset] {
 *   const [fit, validation] = splitDataset(train, 0.9, 0);
 *   console.log(fit.indices.length + validation.indices.length === train.count); // true
 *   return [fit, validation]; // about 45,000 and 5,000 images of CIFAR-10's 50,000
 * }
 * ```
 */
export function splitDataset(
  view: LoaderData,
  share: number,
  seed: number,
): [DatasetSubset, DatasetSubset] {
  if (!(share >= 0 && share <= 1)) {
    throw new RangeError(
      `Cannot split dataset: share must be in [0, 1]: current value is ${share}`,
    );
  }
  const { dataset, indices } = resolveView(view);
  const rng = new Rng(mixSeed(seed, 0x5b11));
  const first: number[] = [];
  const second: number[] = [];
  for (const i of indices) (rng.float() <= share ? first : second).push(i);
  return [{ dataset, indices: Uint32Array.from(first) }, {
    dataset,
    indices: Uint32Array.from(second),
  }];
}
