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
 * @module
 */

import { BindGroupCache, bufferKey } from "../gpu/bind_cache.ts";
import type { Gpu, GpuTexture } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { ceilDiv, checkGrid, KERNELS } from "../gpu/kernels.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { ParamsLayout } from "../gpu/params.ts";
import type { Tensor } from "../tensor.ts";

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
  /** The texture (owned by the plan that staged it). */
  readonly texture: GpuTexture;
  /**
   * The tensor a producer last wrote straight into the texture in place of its buffer (see
   * {@link StagedOperand.fill}), while the texture still holds it; else null.
   */
  readonly filledFrom: Tensor | null;
  /**
   * Records that the commands encoded just before wrote `source`'s values into the texture
   * instead of into `source`'s buffer (which is then stale): the plan owning the texture reads
   * them from there and does not stage `source` again.
   */
  fill(source: Tensor): void;
  /** Forgets `source` (when it is what the texture holds): its buffer was written since. */
  release(source: Tensor): void;
  /** Whether the texture holds `t`'s current values: `t` views the elements last filled in. */
  holds(t: Tensor): boolean;
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
  #filledFrom: Tensor | null = null;

  constructor(gpu: Gpu, label: string, rows: number, cols: number, width: number, height: number) {
    this.rows = rows;
    this.cols = cols;
    this.width = width;
    this.height = height;
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
    return this.#filledFrom;
  }

  fill(source: Tensor): void {
    source.expectShape("Cannot fill a staged operand", [this.rows, this.cols]);
    this.#filledFrom = source;
  }

  release(source: Tensor): void {
    if (this.#filledFrom !== null && sameElements(this.#filledFrom, source)) {
      this.#filledFrom = null;
    }
  }

  holds(t: Tensor): boolean {
    return this.#filledFrom !== null && sameElements(this.#filledFrom, t);
  }

  /** Encodes the staging of `source`'s buffer into the texture, which then holds no fill. */
  encode(enc: StepEncoder, source: Tensor): void {
    this.#filledFrom = null;
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
