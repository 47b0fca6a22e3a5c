/**
 * Float64 twin of kernels/gather.wgsl: the plainest loop over batch rows, channels, rows and
 * columns, reading bytes from the CPU copy of the images.
 *
 * @module
 */

export interface GatherRefOptions {
  normalize?: { mean: readonly number[]; std: readonly number[] };
  flip?: boolean;
  crop?: number;
}

/**
 * Batch rows `start … start + count − 1` of an epoch: `order[k]` is the sample at position k,
 * `aug[k]` its augmentation word (bit 0 flip, bits 8–15 dx, bits 16–23 dy).
 * Returns x (count × 3072, f64) and y (count).
 */
export function gatherRef(
  images: Uint8Array,
  labels: ArrayLike<number>,
  order: ArrayLike<number>,
  aug: ArrayLike<number>,
  start: number,
  count: number,
  options: GatherRefOptions = {},
): { x: Float64Array; y: Uint32Array } {
  const crop = options.crop ?? 0;
  const x = new Float64Array(count * 3072);
  const y = new Uint32Array(count);
  for (let b = 0; b < count; b++) {
    const s = order[start + b];
    const a = aug[start + b];
    const flip = (options.flip ?? false) && (a & 1) === 1;
    const dx = ((a >> 8) & 255) - crop;
    const dy = ((a >> 16) & 255) - crop;
    y[b] = labels[s];
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 32; i++) {
        for (let j = 0; j < 32; j++) {
          const si = i + dy;
          const sj = (flip ? 31 - j : j) + dx;
          let v = 0;
          if (si >= 0 && si < 32 && sj >= 0 && sj < 32) {
            v = images[s * 3072 + c * 1024 + si * 32 + sj];
          }
          let value = v / 255;
          if (options.normalize) {
            value = (value - options.normalize.mean[c]) / options.normalize.std[c];
          }
          x[b * 3072 + c * 1024 + i * 32 + j] = value;
        }
      }
    }
  }
  return { x, y };
}

/**
 * Compares GPU values with a reference: |gpu − ref| ≤ atol + rtol·|ref|. Returns a message
 * listing the first 5 mismatches with their index, or null when all match.
 */
export function compare(
  gpu: ArrayLike<number>,
  ref: ArrayLike<number>,
  atol: number,
  rtol: number,
): string | null {
  if (gpu.length !== ref.length) return `length ${gpu.length} != ${ref.length}`;
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!(Math.abs(gpu[i] - ref[i]) <= atol + rtol * Math.abs(ref[i]))) {
      count++;
      if (bad.length < 5) bad.push(`[${i}] gpu ${gpu[i]} ref ${ref[i]}`);
    }
  }
  return count === 0 ? null : `${count} mismatches, first: ${bad.join("; ")}`;
}
