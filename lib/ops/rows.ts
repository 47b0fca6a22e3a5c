/**
 * Matmul operand A read straight from a uint8 dataset: batch row b is the sample whose bytes
 * start at byte `order[start + b]` of its shard (bit 31 set for the second shard; the loader
 * writes these starts beside each epoch's order), each byte v taken as `v / 255` and, with
 * normalisation,
 * `(v / 255 − mean[e]) / std[e]` for feature e. These are the gather kernel's float operations
 * (kernels/gather.wgsl), in the same order, so a product over these rows equals one over the
 * gathered batch bit for bit; the batch is never written out as f32.
 *
 * A loader describes one batch as a {@link RowSource}; the first Linear's plans (forward X·W and
 * weight gradient Xᵀ·dZ) bind its buffers and read the rows in their operand loads
 * (`A_ROWS` in kernels/matmul_*.wgsl). Plans that read A from where it is bind
 * {@link dummyRows} in the same slots, since WebGPU counts a binding as used even where a
 * pipeline constant turns its code off.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { ParamsLayout } from "../gpu/params.ts";

/** The kernels' `Rows` uniform struct: where the batch's row starts begin, rows, bytes a row. */
export const ROWS_PARAMS = new ParamsLayout("matmul.Rows", {
  start: "u32",
  count: "u32",
  row: "u32",
});

/** Bit 31 of a row start: the row is in the second shard. */
export const SECOND_SHARD = 0x80000000;

/** Most shards a fused plan binds (`shard0`, `shard1`); larger datasets keep the gather. */
export const MAX_ROW_SHARDS = 2;

/** Bindings of the row source in every matmul kernel, after its own 0–4. */
export const ROWS_BINDINGS = { order: 5, rows: 6, shard0: 7, shard1: 8, norm: 9 } as const;

/**
 * One batch's rows in a uint8 dataset, as a matmul plan binds them for operand A. Made by the
 * loader once per batch index and epoch parity, and reused: plans cache their bind groups by it.
 */
export interface RowSource {
  /** Samples in the batch: the rows of A (forward) or the reduced dimension (weight gradient). */
  readonly count: number;
  /** Bytes per sample: the features, the columns of A. */
  readonly row: number;
  /**
   * u32 row starts: batch row b's bytes begin at byte `order[start + b]` of shard 0, or with
   * {@link SECOND_SHARD} set at the rest of it in shard 1 (`start` in {@link RowSource.params}).
   */
  readonly order: GPUBufferBinding;
  /** A {@link ROWS_PARAMS} uniform: start, count, row. */
  readonly params: GPUBufferBinding;
  /** The dataset's shards (1 or 2), uint8 packed four to a u32, little-endian. */
  readonly shards: readonly GPUBufferBinding[];
  /**
   * f32 means of the `row` features, then their stds (2·row values); null without
   * normalisation (then a value is `v / 255`).
   */
  readonly norm: GPUBufferBinding | null;
}

/** Pipeline constants of a plan reading `rows` (`A_ROWS`, `A_NORM`, `A_SHARDS`). */
export function rowConstants(rows: RowSource | null): Record<string, number> {
  if (rows === null) return { A_ROWS: 0 };
  return { A_ROWS: 1, A_NORM: Number(rows.norm !== null), A_SHARDS: rows.shards.length };
}

/** The bind group entries 5–9 of a plan reading `rows`, or the dummies when it reads none. */
export function rowEntries(gpu: Gpu, rows: RowSource | null): GPUBindGroupEntry[] {
  const d = dummyRows(gpu);
  const b = ROWS_BINDINGS;
  return [
    { binding: b.order, resource: rows?.order ?? { buffer: d.storage.buffer } },
    { binding: b.rows, resource: rows?.params ?? { buffer: d.uniform.buffer } },
    { binding: b.shard0, resource: rows?.shards[0] ?? { buffer: d.storage.buffer } },
    {
      binding: b.shard1,
      resource: rows?.shards[1] ?? rows?.shards[0] ?? { buffer: d.storage.buffer },
    },
    { binding: b.norm, resource: rows?.norm ?? { buffer: d.storage.buffer } },
  ];
}

interface Dummies {
  storage: GpuBuffer;
  uniform: GpuBuffer;
}

const dummies = new WeakMap<Gpu, Dummies>();

/** Small never-written buffers for the row-source slots of plans that read A themselves. */
export function dummyRows(gpu: Gpu): Dummies {
  let d = dummies.get(gpu);
  if (d === undefined) {
    d = {
      storage: gpu.createBuffer(32, GPUBufferUsage.STORAGE, "matmul no rows"),
      uniform: gpu.createBuffer(ROWS_PARAMS.byteSize, GPUBufferUsage.UNIFORM, "matmul no rows"),
    };
    dummies.set(gpu, d);
  }
  return d;
}
