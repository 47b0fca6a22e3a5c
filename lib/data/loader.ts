/**
 * Batching on the GPU: each step gathers its samples by index from the dataset (uint8 or
 * float32, any shape) into an f32 batch (kernels/gather.wgsl), optionally normalised and, for
 * images, augmented. CIFAR-10's [3, 32, 32] uint8 takes the kernel's fast path; other rows of a
 * multiple of 16 bytes one vec4 load per invocation; the rest one value per invocation.
 *
 * Many steps are encoded into one submission, so nothing changes between steps through
 * `queue.writeBuffer`: each batch index has its own slot in one uniform buffer, written once
 * at construction, and its own bind group. The epoch's order (and augmentation draws) is
 * uploaded once per epoch by {@link Loader.startEpoch}, into one of two buffers chosen by the
 * epoch's parity, so the steps of epoch e may still be unsubmitted while epoch e + 1 is
 * started and encoded. Epoch e's steps must be submitted before epoch e + 2 starts.
 *
 * Randomness (order, flips, crop offsets) is drawn on the CPU from (seed, epoch), so it is
 * reproducible and the CPU twin in tests reproduces the GPU batch exactly.
 *
 * No gather at all where it can be avoided: {@link Loader.encodeBatchFor} gives a model whose
 * first layer is a Linear (after Flatten) the batch as rows of the uint8 dataset
 * (lib/ops/rows.ts), which that layer's forward and weight-gradient products convert in their
 * operand loads with the gather's own float operations, bit for bit; only the labels are
 * gathered. This applies to uint8 samples without augmentation in at most two shards; float32
 * samples, flips and crops, larger datasets and other first layers keep the gather
 * (`fuseInput: false` forces it).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StagedOperand } from "../ops/staging.ts";
import { MAX_ROW_SHARDS, ROWS_PARAMS, type RowSource, SECOND_SHARD } from "../ops/rows.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d, type Kernel } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import { IMAGE_BYTES } from "./cifar10_format.ts";
import { type GpuDataset, type LoaderData, resolveView, showShape } from "./dataset.ts";
import { mixSeed, Rng } from "./rng.ts";
import gatherSource from "../../kernels/gather.wgsl" with { type: "text" };

const KERNEL: Kernel = { name: "gather", source: gatherSource };
const WG_X = 64;
/** Invocations per CIFAR-10 image on the fast path: each converts one vec4<u32> (16 bytes). */
const VECS = IMAGE_BYTES / 16;
/** Texels (vec4 of f32) per image row of a batch. */
const WORDS = IMAGE_BYTES / 4;
/**
 * The kernel's path for a dataset: "cifar" (main / to_texture: [3, 32, 32] uint8 with class
 * labels), "vec" (rows16: rows of a multiple of 16 bytes, unaugmented), "scalar" (rows1).
 */
type GatherPath = "cifar" | "vec" | "scalar";
const ENTRY: Record<GatherPath, string> = { cifar: "main", vec: "rows16", scalar: "rows1" };
const PARAMS = new ParamsLayout("gather.Params", {
  count: "u32",
  start: "u32",
  total: "u32",
  shardImages: "u32",
  mean_r: "f32",
  mean_g: "f32",
  mean_b: "f32",
  std_r: "f32",
  std_g: "f32",
  std_b: "f32",
  row: "u32",
  units: "u32",
  height: "u32",
  width: "u32",
  group: "u32",
  entries: "u32",
  yWidth: "u32",
});

/**
 * Normalisation `(x − mean) / std` after scaling uint8 to [0, 1]: per channel for images
 * `[C, H, W]` (C values each, e.g. R, G, B), per value for other shapes (prod(shape) values).
 */
export interface Normalize {
  /** Means: one per channel of an image, else one per value of a sample. */
  mean: readonly number[];
  /** Standard deviations (finite, > 0), as many as `mean`. */
  std: readonly number[];
}

/**
 * Random augmentation, applied per sample with draws from (seed, epoch). Only for image
 * samples `[C, H, W]`: a loader over other shapes refuses it.
 */
export interface Augment {
  /** Random horizontal flip with probability 1/2. Default: false. */
  flip?: boolean;
  /**
   * Random H×W crop of the image zero-padded by this many pixels per side (0–32). Default: 0
   * (no crop).
   */
  crop?: number;
}

/** Options of a {@link Loader}. */
export interface LoaderOptions {
  /** Samples per batch. */
  batchSize: number;
  /** Reshuffle every epoch. Default: false (as PyTorch's DataLoader). */
  shuffle?: boolean;
  /** Drop the last batch when it is smaller than batchSize. Default: false. */
  dropLast?: boolean;
  /** Seed of the order and augmentation draws. Default: 0. */
  seed?: number;
  /**
   * Normalise per channel (images) or per value (other shapes) after scaling uint8 to [0, 1].
   * Default: none (uint8 scaled to [0, 1], float32 as it is).
   */
  normalize?: Normalize;
  /** Data augmentation, for image samples only. Default: none (no flip, no crop). */
  augment?: Augment;
  /**
   * Let {@link Loader.encodeBatchFor} hand the first layer the batch as rows of the uint8
   * dataset, read by its matmuls, instead of gathering it (where that applies: uint8 samples,
   * no augmentation, at most two shards). `false` always gathers (tests compare the two); the
   * results are the same bits either way. Default: true on hardware adapters, false on software
   * ones (Mesa's lavapipe: its storage-buffer loads of the rows made a training step of the
   * lecture's MLPs 10-20% slower than gathering first, BENCHMARKS.md).
   */
  fuseInput?: boolean;
}

/**
 * One gathered batch: `x` f32 `[size, prod(shape)]` (CHW rows for images), `y` u32 `[size]`
 * (labels) or f32 `[size, k]` (targets).
 */
export interface Batch {
  /** Samples, f32 `[size, prod(shape)]`, one flattened sample per row, scaled or normalised. */
  x: Tensor;
  /** Labels, u32 `[size]`; or targets, f32 `[size, k]`. */
  y: Tensor;
  /** Samples in this batch (the last batch may be smaller). */
  size: number;
}

/**
 * Gathers batches of a {@link GpuDataset} (or subset) on the GPU.
 *
 * @example One epoch
 * ```ts
 * import { type Gpu, type GpuDataset, Loader, StepEncoder } from "@wgnn/wgnn";
 * function oneEpoch(gpu: Gpu, train: GpuDataset) {
 *   const loader = new Loader(gpu, train, { batchSize: 1024, shuffle: true, seed: 0 });
 *   loader.startEpoch(0);
 *   const enc = new StepEncoder(gpu);
 *   for (let i = 0; i < loader.batchesPerEpoch; i++) {
 *     const { x, y } = loader.encodeBatch(enc, i);
 *     // ... encode the step that reads x and y ...
 *   }
 *   enc.submit();
 * }
 * ```
 */
export class Loader {
  /** Samples per epoch. */
  readonly length: number;
  /** Batches per epoch. */
  readonly batchesPerEpoch: number;
  /** The options in force, defaults filled in. */
  readonly options: Readonly<
    Required<Omit<LoaderOptions, "normalize" | "fuseInput">> & {
      normalize?: Normalize;
      augment: Required<Augment>;
    }
  >;
  /** The dataset the batches come from (not owned by the loader). */
  readonly dataset: GpuDataset;
  readonly #gpu: Gpu;
  readonly #path: GatherPath;
  /** Invocations per sample. */
  readonly #units: number;
  /** The normalisation table (means, then stds) after the order words, for vec and scalar. */
  readonly #table: Float32Array;
  readonly #indices: Uint32Array;
  readonly #orders: GpuBuffer[];
  readonly #params: GpuBuffer;
  readonly #batches: Batch[];
  readonly #bindGroups: GPUBindGroup[][];
  #texturePipeline: GPUComputePipeline | null = null;
  readonly #pipeline: GPUComputePipeline;
  readonly #constants: Record<string, number>;
  readonly #slot: number;
  readonly #textureGroups = new Map<GPUTexture, GPUBindGroup[][]>();
  /**
   * The staging texture each batch tensor's last gather went to instead of its buffer, so a
   * gather into the buffer can tell that texture it no longer holds the tensor's values.
   */
  readonly #filled = new Map<Tensor, StagedOperand>();
  /** Row sources for the first layer (uint8, unaugmented, ≤ 2 shards); null: always gather. */
  readonly #rows: {
    params: GpuBuffer;
    norm: GpuBuffer | null;
    sources: (RowSource | undefined)[][];
    groups: (GPUBindGroup | undefined)[][];
    pipeline: GPUComputePipeline | null;
  } | null = null;
  #epoch: number | null = null;

  /** Builds the loader: allocates its order, uniform and batch buffers and its bind groups. */
  constructor(gpu: Gpu, data: LoaderData, options: LoaderOptions) {
    const { dataset, indices } = resolveView(data);
    const { batchSize } = options;
    const crop = options.augment?.crop ?? 0;
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new RangeError(
        `Cannot create Loader: batchSize must be a positive integer: current value is ${batchSize}`,
      );
    }
    if (!Number.isInteger(crop) || crop < 0 || crop > 32) {
      throw new RangeError(
        `Cannot create Loader: augment.crop must be an integer in 0..32: current value is ${crop}`,
      );
    }
    const flip = options.augment?.flip ?? false;
    if ((flip || crop > 0) && !dataset.isImage) {
      throw new RangeError(
        `Cannot create Loader: augment (flip, crop) needs image samples [C, H, W]: current sample shape is ${
          showShape(dataset.shape)
        }`,
      );
    }
    const entries = dataset.isImage ? dataset.shape[0] : dataset.rowLength;
    const norm = options.normalize;
    if (norm) checkNormalize(norm, entries, dataset);
    const seed = options.seed ?? 0;
    mixSeed(seed); // validates
    this.options = {
      batchSize,
      shuffle: options.shuffle ?? false,
      dropLast: options.dropLast ?? false,
      seed,
      normalize: options.normalize,
      augment: { flip, crop },
    };
    this.#gpu = gpu;
    const cifar = dataset.dtype === "uint8" && dataset.targetWidth === 0 &&
      showShape(dataset.shape) === "[3, 32, 32]";
    const rowBytes = dataset.rowLength * (dataset.dtype === "uint8" ? 1 : 4);
    this.#path = cifar ? "cifar" : rowBytes % 16 === 0 && !flip && crop === 0 ? "vec" : "scalar";
    this.#units = this.#path === "cifar"
      ? VECS
      : this.#path === "vec"
      ? rowBytes / 16
      : dataset.rowLength;
    this.#table = new Float32Array(this.#path !== "cifar" && norm ? 2 * entries : 0);
    if (this.#table.length > 0) {
      this.#table.set(norm!.mean);
      this.#table.set(norm!.std, entries);
    }
    this.dataset = dataset;
    this.#indices = indices;
    this.length = indices.length;
    const full = Math.floor(this.length / batchSize);
    const rest = this.length % batchSize;
    this.batchesPerEpoch = full + (rest > 0 && !this.options.dropLast ? 1 : 0);
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(
        `Cannot create Loader: ${this.length} samples make no batch of ${batchSize} with dropLast`,
      );
    }

    // The first layer may read the rows itself: uint8, unaugmented, shards it can bind whose
    // byte offsets fit the 31 bits of a row start.
    const fuses = (options.fuseInput ?? !gpu.adapter.fallback) && dataset.dtype === "uint8" &&
      !flip &&
      crop === 0 && dataset.shards.length <= MAX_ROW_SHARDS &&
      dataset.shardImages * dataset.rowLength < SECOND_SHARD;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    // Order, augmentation words, normalisation table, and with fusion the rows' byte starts.
    const orderBytes = 8 * this.length + 4 * this.#table.length + (fuses ? 4 * this.length : 0);
    this.#orders = [0, 1].map((k) => gpu.createBuffer(orderBytes, usage, `loader order ${k}`));
    // One uniform slot per batch index, at the adapter's offset alignment.
    const slot = Math.max(PARAMS.byteSize, gpu.limits.minUniformBufferOffsetAlignment);
    this.#slot = slot;
    this.#params = gpu.createBuffer(
      slot * this.batchesPerEpoch,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      "loader params",
    );
    const packed = new Uint8Array(slot * this.batchesPerEpoch);
    const n = this.#path === "cifar" ? this.options.normalize : undefined;
    const [height, width] = dataset.isImage ? dataset.shape.slice(1) : [1, dataset.rowLength];
    for (let i = 0; i < this.batchesPerEpoch; i++) {
      const values = {
        count: this.#batchSize(i),
        start: i * batchSize,
        total: this.length,
        shardImages: dataset.shardImages,
        mean_r: n?.mean[0] ?? 0,
        mean_g: n?.mean[1] ?? 0,
        mean_b: n?.mean[2] ?? 0,
        std_r: n?.std[0] ?? 1,
        std_g: n?.std[1] ?? 1,
        std_b: n?.std[2] ?? 1,
        row: dataset.rowLength,
        units: this.#units,
        height,
        width,
        group: dataset.isImage ? height * width : 1,
        entries,
        yWidth: Math.max(1, dataset.targetWidth),
      };
      packed.set(new Uint8Array(PARAMS.pack(values)), i * slot);
    }
    this.#params.write(packed);

    // Output tensors: one pair for full batches, one for a smaller last batch.
    const k = dataset.targetWidth;
    const make = (size: number): Batch => ({
      x: Tensor.empty(gpu, [size, dataset.rowLength], "f32", `batch x ${size}`),
      y: k > 0
        ? Tensor.empty(gpu, [size, k], "f32", `batch y ${size}`)
        : Tensor.empty(gpu, [size], "u32", `batch y ${size}`),
      size,
    });
    const fullPair = full > 0 ? make(batchSize) : null;
    const lastSize = this.#batchSize(this.batchesPerEpoch - 1);
    const lastPair = lastSize === batchSize ? fullPair! : make(lastSize);
    this.#batches = Array.from(
      { length: this.batchesPerEpoch },
      (_, i) => (this.#batchSize(i) === batchSize ? fullPair! : lastPair),
    );

    this.#constants = {
      WG_X,
      NORMALIZE: Number(norm !== undefined),
      FLIP: Number(flip),
      CROP: crop,
      SHARDS: dataset.shards.length,
    };
    // The fast path's constants stay as they were (one pipeline-cache key for CIFAR-10).
    if (!cifar) this.#constants.FLOAT = Number(dataset.dtype === "float32");
    this.#pipeline = gpu.pipelines.get(KERNEL, ENTRY[this.#path], this.#constants);
    if (fuses) this.#rows = this.#rowBuffers(norm);
    const output = (batch: Batch) => ({
      binding: this.#path === "scalar" ? 10 : 6,
      resource: batch.x.binding(),
    });
    const layout = this.#pipeline.getBindGroupLayout(0);
    this.#bindGroups = this.#orders.map((order) =>
      this.#batches.map((batch, i) =>
        gpu.device.createBindGroup({
          label: `gather batch ${i}`,
          layout,
          entries: this.#entries(order, i, output(batch)),
        })
      )
    );
  }

  /**
   * The first layer's view of the batches as dataset rows: a {@link ROWS_PARAMS} slot per batch
   * index, and the normalisation per feature (means, then stds, f32, zero-padded to 16 bytes).
   */
  /** Where the rows' byte starts begin in an order buffer, in u32s (after the table). */
  get #startsAt(): number {
    return 2 * this.length + this.#table.length;
  }

  #rowBuffers(norm: Normalize | undefined) {
    const { dataset } = this;
    const slot = Math.max(ROWS_PARAMS.byteSize, this.#gpu.limits.minUniformBufferOffsetAlignment);
    const packed = new Uint8Array(slot * this.batchesPerEpoch);
    for (let i = 0; i < this.batchesPerEpoch; i++) {
      const values = {
        start: this.#startsAt + i * this.options.batchSize,
        count: this.#batchSize(i),
        row: dataset.rowLength,
      };
      packed.set(new Uint8Array(ROWS_PARAMS.pack(values)), i * slot);
    }
    const params = this.#gpu.createBuffer(
      packed.byteLength,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      "loader rows",
    );
    params.write(packed);
    let table: GpuBuffer | null = null;
    if (norm) {
      // Feature e's entry: its channel's for images, its own otherwise (as the gather's).
      const row = dataset.rowLength;
      const group = dataset.isImage ? dataset.shape[1] * dataset.shape[2] : 1;
      const values = new Float32Array(Math.ceil((2 * row) / 4) * 4);
      for (let e = 0; e < row; e++) {
        values[e] = norm.mean[Math.floor(e / group)];
        values[row + e] = norm.std[Math.floor(e / group)];
      }
      table = this.#gpu.createBuffer(
        values.byteLength,
        GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
        "loader rows norm",
      );
      table.write(values);
    }
    const empty = () => [0, 1].map(() => new Array(this.batchesPerEpoch));
    return { params, norm: table, sources: empty(), groups: empty(), pipeline: null };
  }

  /** Batch `index` of the current epoch as dataset rows (made once per epoch parity). */
  #rowSource(index: number): RowSource {
    const rows = this.#rows!;
    const parity = this.#epoch! % 2;
    const slot = Math.max(ROWS_PARAMS.byteSize, this.#gpu.limits.minUniformBufferOffsetAlignment);
    return rows.sources[parity][index] ??= {
      count: this.#batchSize(index),
      row: this.dataset.rowLength,
      order: { buffer: this.#orders[parity].buffer },
      params: { buffer: rows.params.buffer, offset: index * slot, size: ROWS_PARAMS.byteSize },
      shards: this.dataset.shards.map((t) => t.binding()),
      norm: rows.norm ? { buffer: rows.norm.buffer } : null,
    };
  }

  /** Encodes the gather of batch `index`'s labels alone (its samples are read as rows). */
  #encodeLabels(enc: StepEncoder, index: number, batch: Batch): void {
    const rows = this.#rows!;
    const parity = this.#epoch! % 2;
    const pipeline = rows.pipeline ??= this.#gpu.pipelines.get(KERNEL, "batch_labels", { WG_X });
    const group = rows.groups[parity][index] ??= this.#gpu.device.createBindGroup({
      label: `gather labels ${index}`,
      layout: pipeline.getBindGroupLayout(0),
      entries: this.#entries(this.#orders[parity], index, null).filter((e) =>
        [0, 5, 8, 9].includes(e.binding)
      ),
    });
    enc.dispatch(
      `gather labels ${batch.size}`,
      pipeline,
      group,
      grid1d(Math.ceil(batch.size / WG_X)),
    );
  }

  /** Bind group entries of batch `index` with `output` (x buffer or texture). */
  #entries(
    order: GpuBuffer,
    index: number,
    output: GPUBindGroupEntry | null,
  ): GPUBindGroupEntry[] {
    const { shards, labels } = this.dataset;
    return [
      { binding: 0, resource: { buffer: order.buffer } },
      ...[0, 1, 2, 3].map((k) => ({
        binding: 1 + k,
        resource: (shards[k] ?? shards[0]).binding(),
      })),
      { binding: 5, resource: labels.binding() },
      ...(output ? [output] : []),
      { binding: 8, resource: this.#batches[index].y.binding() },
      {
        binding: 9,
        resource: {
          buffer: this.#params.buffer,
          offset: index * this.#slot,
          size: PARAMS.byteSize,
        },
      },
    ];
  }

  #batchSize(index: number): number {
    const { batchSize } = this.options;
    return Math.min(batchSize, this.length - index * batchSize);
  }

  /** Dataset indices in the order epoch `epoch` visits them (deterministic from seed and epoch). */
  order(epoch: number): Uint32Array {
    if (!this.options.shuffle) return this.#indices.slice();
    const perm = new Rng(mixSeed(this.options.seed, epoch, 1)).permutation(this.length);
    return perm.map((p) => this.#indices[p]);
  }

  /**
   * Augmentation words of epoch `epoch`, one per position: bit 0 flip, bits 8–15 the crop's
   * x offset, bits 16–23 its y offset (0..2·crop; crop offset `crop` means no shift).
   */
  augmentation(epoch: number): Uint32Array {
    const { flip, crop } = this.options.augment;
    const words = new Uint32Array(this.length);
    if (!flip && crop === 0) return words;
    const rng = new Rng(mixSeed(this.options.seed, epoch, 2));
    for (let i = 0; i < this.length; i++) {
      const f = flip ? rng.below(2) : 0;
      const dx = crop > 0 ? rng.below(2 * crop + 1) : 0;
      const dy = crop > 0 ? rng.below(2 * crop + 1) : 0;
      words[i] = f | (dx << 8) | (dy << 16);
    }
    return words;
  }

  /**
   * Uploads epoch `epoch`'s order and augmentation (one write) and makes it current. Two order
   * buffers alternate by the epoch's parity, so the upload never disturbs the previous epoch's
   * steps that are encoded but not yet submitted (a training loop encoding ahead relies on this).
   */
  startEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new RangeError(
        `Cannot start epoch: epoch must be a non-negative integer: current value is ${epoch}`,
      );
    }
    const order = this.order(epoch);
    const data = new Uint32Array(this.#startsAt + (this.#rows ? this.length : 0));
    data.set(order, 0);
    data.set(this.augmentation(epoch), this.length);
    data.set(new Uint32Array(this.#table.buffer), 2 * this.length);
    if (this.#rows) {
      // Each position's sample as the first layer's matmuls find it: the byte where its row
      // begins in its shard, bit 31 set for the second shard.
      const { shardImages, rowLength } = this.dataset;
      const starts = data.subarray(this.#startsAt);
      for (let i = 0; i < this.length; i++) {
        const shard = Math.floor(order[i] / shardImages);
        starts[i] =
          ((order[i] - shard * shardImages) * rowLength + (shard > 0 ? SECOND_SHARD : 0)) >>> 0;
      }
    }
    this.#orders[epoch % 2].write(data);
    this.#epoch = epoch;
  }

  /** The epoch last started, or null. */
  get epoch(): number | null {
    return this.#epoch;
  }

  /**
   * Encodes the gather of batch `index` of the current epoch. The returned tensors are owned by
   * the loader and reused by every batch of the same size: read them before the next gather.
   */
  encodeBatch(enc: StepEncoder, index: number): Batch {
    const batch = this.#check(index);
    this.#release(batch.x); // the buffer is written: a texture filled before is out of date
    const grid = grid1d(Math.ceil((batch.size * this.#units) / WG_X));
    enc.dispatch(
      `gather ${batch.size}`,
      this.#pipeline,
      this.#bindGroups[this.#epoch! % 2][index],
      grid,
    );
    return batch;
  }

  /** The batch of `index`, after checking that an epoch was started and the index is valid. */
  #check(index: number): Batch {
    if (this.#epoch === null) {
      throw new Error("Cannot encode a batch: call startEpoch(epoch) first");
    }
    if (!Number.isInteger(index) || index < 0 || index >= this.batchesPerEpoch) {
      throw new RangeError(
        `Cannot encode batch: index must be in 0..${
          this.batchesPerEpoch - 1
        }: current value is ${index}`,
      );
    }
    return this.#batches[index];
  }

  /**
   * Encodes the gather of batch `index` straight into `texture` (rgba32float, storage binding,
   * at least 768 × size texels): texel (q, b) holds values 4q … 4q + 3 of row b, the operand
   * layout of the texture matmul, so the batch needs no f32 buffer of its own. `x` of the
   * returned batch is not written. The bind groups for a texture are made on its first use.
   */
  encodeBatchToTexture(enc: StepEncoder, index: number, texture: GPUTexture): Batch {
    const batch = this.#check(index);
    if (this.#path !== "cifar") {
      throw new RangeError(
        `Cannot gather into texture: only CIFAR-10's uint8 [3, 32, 32] samples with labels can: current samples are ${this.dataset.describe()}`,
      );
    }
    if (texture.format !== "rgba32float" || texture.width < WORDS || texture.height < batch.size) {
      throw new RangeError(
        `Cannot gather into texture: need rgba32float of at least ${WORDS}×${batch.size}: current is ${texture.format} ${texture.width}×${texture.height}`,
      );
    }
    // Looked up on first use only: a loader that never feeds a texture never compiles it.
    const pipeline = this.#texturePipeline ??= this.#gpu.pipelines.get(
      KERNEL,
      "to_texture",
      this.#constants,
    );
    let groups = this.#textureGroups.get(texture);
    if (!groups) {
      const layout = pipeline.getBindGroupLayout(0);
      const view = texture.createView();
      groups = this.#orders.map((order) =>
        this.#batches.map((_, i) =>
          this.#gpu.device.createBindGroup({
            label: `gather batch ${i} to texture`,
            layout,
            entries: this.#entries(order, i, { binding: 7, resource: view }),
          })
        )
      );
      this.#textureGroups.set(texture, groups);
    }
    const grid = grid1d(Math.ceil((batch.size * VECS) / WG_X));
    enc.dispatch(
      `gather ${batch.size} to texture`,
      pipeline,
      groups[this.#epoch! % 2][index],
      grid,
    );
    return batch;
  }

  /** Rows of batch `index` (the last batch may be smaller). */
  sizeOf(index: number): number {
    return this.#check(index).size;
  }

  /**
   * Encodes batch `index` where `model` reads it best. When the model's first layer offers its
   * input operand (`model.inputStaging`) and the samples are uint8 without augmentation,
   * nothing is gathered but the labels: the operand records the batch as rows of the dataset
   * ({@link StagedOperand.fillRows}), which the layer's matmuls read and convert themselves.
   * Else, for CIFAR-10's samples, the batch is gathered straight into the layer's staging
   * texture (saving a 12 MiB copy per step on software adapters; see
   * {@link StagedOperand.fill}); else into `x`'s buffer. In the first two cases `x`'s buffer
   * is stale.
   */
  encodeBatchFor(
    enc: StepEncoder,
    index: number,
    model: { inputStaging(batch: number): StagedOperand | null },
  ): Batch {
    const batch = this.#check(index);
    const operand = model.inputStaging(batch.size);
    if (operand !== null && this.#rows !== null) {
      const previous = this.#filled.get(batch.x);
      if (operand.fillRows(batch.x, this.#rowSource(index))) {
        if (previous !== undefined && previous !== operand) previous.release(batch.x);
        this.#filled.set(batch.x, operand);
        this.#encodeLabels(enc, index, batch);
        return batch;
      }
    }
    // Only the fast path gathers into a texture; other batches are staged from x's buffer.
    const staging = this.#path === "cifar" ? operand : null;
    if (staging === null || staging.texture === null) return this.encodeBatch(enc, index);
    this.encodeBatchToTexture(enc, index, staging.texture.texture);
    if (this.#filled.get(batch.x) !== staging) this.#release(batch.x);
    staging.fill(batch.x);
    this.#filled.set(batch.x, staging);
    return batch;
  }

  /** Tells the texture `x` was last gathered into (if any) that it holds `x` no longer. */
  #release(x: Tensor): void {
    this.#filled.get(x)?.release(x);
    this.#filled.delete(x);
  }

  /** Frees the loader's buffers and batch tensors (not the dataset). */
  dispose(): void {
    this.#textureGroups.clear();
    for (const b of new Set(this.#batches)) this.#release(b.x);
    for (const b of this.#orders) b.dispose();
    this.#params.dispose();
    this.#rows?.params.dispose();
    this.#rows?.norm?.dispose();
    for (const b of new Set(this.#batches)) {
      b.x.dispose();
      b.y.dispose();
    }
  }

  /** Same as {@link Loader.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Throws unless `norm` holds `entries` finite means and as many finite stds > 0. */
function checkNormalize(norm: Normalize, entries: number, dataset: GpuDataset): void {
  const per = dataset.isImage
    ? `one value per channel of the ${showShape(dataset.shape)} images (${entries})`
    : `one value per element of the ${showShape(dataset.shape)} samples (${entries})`;
  for (const key of ["mean", "std"] as const) {
    const values = norm[key];
    if (!Array.isArray(values) && !ArrayBuffer.isView(values)) {
      throw new TypeError(
        `Cannot create Loader: normalize.${key} must be an array of numbers: current value is ${values}`,
      );
    }
    if (values.length !== entries) {
      throw new RangeError(
        `Cannot create Loader: normalize.${key} must hold ${per}: current length is ${values.length}`,
      );
    }
    const bad = values.findIndex((v) => !Number.isFinite(v) || (key === "std" && !(v > 0)));
    if (bad >= 0) {
      throw new RangeError(
        `Cannot create Loader: normalize.${key} must be finite${
          key === "std" ? " and > 0" : ""
        }: current value at index ${bad} is ${values[bad]}`,
      );
    }
  }
}
