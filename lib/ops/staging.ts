/**
 * Matmul operands staged into read-only storage textures: the texture variant's input path.
 * A row whose byte length is a multiple of 256 is staged with `copyBufferToTexture`; other
 * widths go through kernels/pack_texture.wgsl.
 *
 * A producer may also write a texture directly (the loader gathering a batch for the first
 * Linear) instead of the tensor's buffer, and say so with {@link StagedOperand.fill}. The
 * operand then records that it holds that tensor's values, and the plan owning it skips staging
 * when it is given that tensor (or a view of the same elements). Every write of the texture
 * replaces the record: the plan's own staging clears it, the producer's next fill replaces it,
 * and a producer that writes the tensor's buffer instead calls {@link StagedOperand.release}.
 *
 * Or the producer writes nothing: {@link StagedOperand.fillRows} records that the tensor's
 * values are rows of a uint8 dataset (a {@link RowSource}), which the plans reading this operand
 * convert in their own loads (every variant; the storage-buffer ones offer a {@link RowsPort},
 * an operand without a texture, for this alone).
 *
 * @module
 */

import { BindGroupCache, bufferKey } from "../gpu/bind_cache.ts";
import type { Gpu, GpuTexture } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { ceilDiv, checkGrid, KERNELS } from "../gpu/kernels.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { ParamsLayout } from "../gpu/params.ts";
import type { Tensor } from "../tensor.ts";
import { MAX_ROW_SHARDS, type RowSource } from "./rows.ts";

/**
 * A matrix staged into a texture by a texture-variant plan; see `Matmul.staged` (the matmul
 * engine is in `@wgnn/wgnn/advanced`).
 */
export interface StagedOperand {
  /** Rows of the stored matrix. */
  readonly rows: number;
  /** Columns of the stored matrix. */
  readonly cols: number;
  /** The texture's width in texels (4 columns each, padded). */
  readonly width: number;
  /** The texture's height in texels (rows, padded). */
  readonly height: number;
  /**
   * The texture (owned by the plan that staged it); null for an operand of a storage-buffer
   * plan ({@link RowsPort}), which takes {@link StagedOperand.fillRows} only.
   */
  readonly texture: GpuTexture | null;
  /**
   * The tensor a producer last filled in place of its buffer (see {@link StagedOperand.fill}
   * and {@link StagedOperand.fillRows}), while the record stands; else null.
   */
  readonly filledFrom: Tensor | null;
  /**
   * Records that the commands encoded just before wrote `source`'s values into the texture
   * instead of into `source`'s buffer (which is then stale): the plan owning the texture reads
   * them from there and does not stage `source` again. Throws a TypeError without a texture.
   */
  fill(source: Tensor): void;
  /**
   * Records that `source`'s values are the batch rows `rows` describes, which the plans reading
   * this operand convert in their loads (`source`'s buffer is not written). Returns false, and
   * records nothing, when those plans cannot read them (the rows' shape, shard count or
   * alignment, or the adapter's storage-buffer limit): the producer then writes `source`.
   */
  fillRows(source: Tensor, rows: RowSource): boolean;
  /** The rows recorded for `t` by {@link StagedOperand.fillRows}, while they stand; else null. */
  rowsOf(t: Tensor): RowSource | null;
  /** Forgets `source` (when it is what the operand holds): its buffer was written since. */
  release(source: Tensor): void;
  /**
   * Whether the operand holds `t`'s current values (in the texture, or as dataset rows): `t`
   * views the elements last filled in.
   */
  holds(t: Tensor): boolean;
}

/**
 * Whether the plans of `variant` behind an operand of `rows` × `cols` can read `source`'s rows:
 * the shape, at most {@link MAX_ROW_SHARDS} shards, 16-byte samples for the texture kernel,
 * and the storage buffers the fused kernel binds (6 texture, 8 buffers) within the adapter's
 * `maxStorageBuffersPerShaderStage`.
 */
export function canReadRows(
  limits: GPUSupportedLimits,
  texture: boolean,
  rows: number,
  cols: number,
  source: RowSource,
): boolean {
  return source.count === rows && source.row === cols && source.shards.length >= 1 &&
    source.shards.length <= MAX_ROW_SHARDS && (!texture || source.row % 16 === 0) &&
    (texture ? 6 : 8) <= limits.maxStorageBuffersPerShaderStage;
}

/**
 * The fill records an operand keeps: the tensor filled, and for a row fill its rows. Shared by
 * {@link TextureOperand} and {@link RowsPort}.
 */
class FillRecord {
  from: Tensor | null = null;
  rows: RowSource | null = null;

  set(from: Tensor | null, rows: RowSource | null = null): void {
    this.from = from;
    this.rows = rows;
  }

  holds(t: Tensor): boolean {
    return this.from !== null && sameElements(this.from, t);
  }

  release(source: Tensor): void {
    if (this.holds(source)) this.set(null);
  }
}

/**
 * Operand A of a storage-buffer plan (tiled, blocked), offered to producers for row fills only:
 * such a plan reads A from its buffer, or (after {@link StagedOperand.fillRows}) from the
 * dataset's rows. It has no texture.
 */
export class RowsPort implements StagedOperand {
  readonly texture = null;
  readonly width = 0;
  readonly height = 0;
  readonly #limits: GPUSupportedLimits;
  readonly #fill = new FillRecord();

  /** The port of a `rows` × `cols` stored matrix on a device with `limits`. */
  constructor(limits: GPUSupportedLimits, readonly rows: number, readonly cols: number) {
    this.#limits = limits;
  }

  get filledFrom(): Tensor | null {
    return this.#fill.from;
  }

  fill(_source: Tensor): void {
    throw new TypeError("Cannot fill a storage-buffer operand: it has no texture (use fillRows)");
  }

  fillRows(source: Tensor, rows: RowSource): boolean {
    if (!canReadRows(this.#limits, false, this.rows, this.cols, rows)) return false;
    source.expectShape("Cannot fill a staged operand", [this.rows, this.cols]);
    this.#fill.set(source, rows);
    return true;
  }

  rowsOf(t: Tensor): RowSource | null {
    return this.#fill.holds(t) ? this.#fill.rows : null;
  }

  release(source: Tensor): void {
    this.#fill.release(source);
  }

  holds(t: Tensor): boolean {
    return this.#fill.holds(t);
  }
}

/** Whether `a` and `b` view the same elements of the same buffer (a reshape is the same). */
function sameElements(a: Tensor, b: Tensor): boolean {
  return a.storage === b.storage && a.byteOffset === b.byteOffset && a.numel === b.numel;
}

const PACK_PARAMS = new ParamsLayout("pack_texture.Params", {
  rows: "u32",
  cols: "u32",
  width: "u32",
  height: "u32",
  offset: "u32",
});

const PACK_WG: [number, number] = [16, 4];

/**
 * One operand staged into a texture. A row whose byte length is a multiple of 256 is copied
 * with `copyBufferToTexture` (about 3× faster than the pack kernel on lavapipe); other widths
 * go through pack_texture.wgsl, which also writes the zero padding. Copies never touch the
 * padding, which stays zero from the texture's creation.
 */
export class TextureOperand implements StagedOperand {
  readonly texture: GpuTexture;
  readonly rows: number;
  readonly cols: number;
  readonly width: number;
  readonly height: number;
  readonly params: GpuBuffer;
  readonly grid: [number, number, number];
  /** The pack kernel, looked up once; null when rows are copied instead. */
  readonly #pipeline: GPUComputePipeline | null;
  readonly #groups = new BindGroupCache();
  readonly #limits: GPUSupportedLimits;
  readonly #fill = new FillRecord();

  constructor(gpu: Gpu, label: string, rows: number, cols: number, width: number, height: number) {
    this.rows = rows;
    this.cols = cols;
    this.width = width;
    this.height = height;
    this.#limits = gpu.limits;
    // Rows whose byte length is a multiple of 256 can be copied; the padding stays zero.
    const copy = (cols * 4) % 256 === 0 && width >= cols / 4 && height >= rows;
    this.texture = gpu.createTexture(
      width,
      height,
      "rgba32float",
      GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
      label,
    );
    this.params = PACK_PARAMS.upload(
      gpu,
      { rows, cols, width, height, offset: 0 },
      `${label} params`,
    );
    this.#pipeline = copy ? null : gpu.pipelines.get(KERNELS.pack_texture, "main", {
      WG_X: PACK_WG[0],
      WG_Y: PACK_WG[1],
    });
    this.grid = checkGrid(`pack ${label}`, [
      ceilDiv(width, PACK_WG[0]),
      ceilDiv(height, PACK_WG[1]),
      1,
    ]);
  }

  get filledFrom(): Tensor | null {
    return this.#fill.from;
  }

  fill(source: Tensor): void {
    source.expectShape("Cannot fill a staged operand", [this.rows, this.cols]);
    this.#fill.set(source);
  }

  fillRows(source: Tensor, rows: RowSource): boolean {
    if (!canReadRows(this.#limits, true, this.rows, this.cols, rows)) return false;
    source.expectShape("Cannot fill a staged operand", [this.rows, this.cols]);
    this.#fill.set(source, rows);
    return true;
  }

  rowsOf(t: Tensor): RowSource | null {
    return this.#fill.holds(t) ? this.#fill.rows : null;
  }

  release(source: Tensor): void {
    this.#fill.release(source);
  }

  holds(t: Tensor): boolean {
    return this.#fill.holds(t);
  }

  /** Encodes the staging of `source`'s buffer into the texture, which then holds no fill. */
  encode(enc: StepEncoder, source: Tensor): void {
    this.#fill.set(null);
    if (this.#pipeline === null) {
      this.#encodeCopy(enc.commands(), source);
      return;
    }
    const pipeline = this.#pipeline;
    const group = this.#groups.get(
      [source],
      () => bufferKey(source.binding()),
      () =>
        enc.gpu.device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: source.binding() },
            { binding: 1, resource: this.texture.texture.createView() },
            { binding: 2, resource: { buffer: this.params.buffer } },
          ],
        }),
    );
    enc.dispatch("pack_texture", pipeline, group, this.grid);
  }

  #encodeCopy(encoder: GPUCommandEncoder, source: Tensor): void {
    encoder.copyBufferToTexture(
      {
        buffer: source.buffer,
        offset: source.byteOffset,
        bytesPerRow: this.cols * 4,
        rowsPerImage: this.rows,
      },
      { texture: this.texture.texture },
      [this.cols / 4, this.rows, 1],
    );
  }

  dispose(): void {
    this.texture.dispose();
    this.params.dispose();
  }
}
