/**
 * A GPU-resident image dataset: uint8 images packed four to a `u32` (147 MiB for CIFAR-10's
 * training set instead of 586 MiB of f32), labels as `u32`, and CPU-side subsets.
 *
 * The images are split into shards only where the adapter's `maxStorageBufferBindingSize`
 * (or `maxBufferSize`) is smaller than the whole set; the gather kernel binds up to four.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { checkLabels, Tensor } from "../tensor.ts";
import { IMAGE_BYTES, type ImageSet, NUM_CLASSES } from "./cifar10.ts";
import { mixSeed, Rng } from "./rng.ts";

/** Most shards the gather kernel can bind (kernels/gather.wgsl). */
export const MAX_SHARDS = 4;

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

/**
 * Images and labels on the GPU, uploaded once and read by a {@link Loader} every epoch. The
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
  /** Number of images. */
  readonly count: number;
  /** Image shards, u8 `[n_i, 3072]`, CHW rows; shard k holds images `k·shardImages …`. */
  readonly shards: readonly Tensor[];
  /** Images per shard (the last may hold fewer). */
  readonly shardImages: number;
  /** Labels, u32 `[count]`, each below {@link GpuDataset.classes}. */
  readonly labels: Tensor;
  /** Number of classes the labels were checked against. */
  readonly classes: number;

  private constructor(
    gpu: Gpu,
    count: number,
    shards: Tensor[],
    shardImages: number,
    labels: Tensor,
    classes: number,
  ) {
    this.gpu = gpu;
    this.classes = classes;
    this.count = count;
    this.shards = shards;
    this.shardImages = shardImages;
    this.labels = labels;
  }

  /**
   * Uploads `set` (e.g. `loadCifar10(dir).train`). Throws a RangeError when the set is empty,
   * would need more than 4 shards (`MAX_SHARDS`), or holds a label at or above
   * `options.classes` (default 10), naming the first such image and its label.
   *
   * @example A tiny synthetic set
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
  static upload(gpu: Gpu, set: ImageSet, options: GpuDatasetOptions = {}): GpuDataset {
    const label = options.label ?? "dataset";
    const { count, images } = set;
    if (
      !Number.isInteger(count) || count <= 0 || images.length !== count * IMAGE_BYTES ||
      set.labels.length !== count
    ) {
      throw new RangeError(
        `Cannot upload dataset "${label}": need count > 0 with ${IMAGE_BYTES} image bytes and one label per image: current count is ${count}`,
      );
    }
    // Checked here, where the data enter: on the GPU a bad label would only surface in the loss.
    const classes = options.classes ?? NUM_CLASSES;
    checkLabels(`upload dataset "${label}"`, set.labels, classes);
    const limit = Math.min(
      gpu.limits.maxStorageBufferBindingSize,
      gpu.limits.maxBufferSize,
      options.maxShardBytes ?? Infinity,
    );
    const shardImages = Math.min(count, Math.floor(limit / IMAGE_BYTES));
    const shardCount = shardImages > 0 ? Math.ceil(count / shardImages) : Infinity;
    if (shardCount > MAX_SHARDS) {
      throw new RangeError(
        `Cannot upload dataset "${label}": ${count} images need more than ${MAX_SHARDS} shards of at most ${limit} bytes (the storage-binding limit)`,
      );
    }
    const shards: Tensor[] = [];
    for (let k = 0; k < shardCount; k++) {
      const first = k * shardImages;
      const n = Math.min(shardImages, count - first);
      const bytes = images.subarray(first * IMAGE_BYTES, (first + n) * IMAGE_BYTES);
      shards.push(Tensor.from(gpu, bytes, [n, IMAGE_BYTES], `${label} images ${k}`));
    }
    const labels = Tensor.from(gpu, Uint32Array.from(set.labels), [count], `${label} labels`);
    return new GpuDataset(gpu, count, shards, shardImages, labels, classes);
  }

  /** Frees the images and labels. */
  dispose(): void {
    for (const s of this.shards) s.dispose();
    this.labels.dispose();
  }

  /** Same as {@link GpuDataset.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
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
