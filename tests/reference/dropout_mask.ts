/**
 * CPU twin of the toolkit's deterministic dropout mask (also applied, in numpy, by
 * `tests/torch/make_goldens.py`, so PyTorch trains with exactly the same masks).
 *
 * All arithmetic is on uint32, mod 2^32:
 *
 *   hash(x)   = lowbias32(x):
 *               x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
 *   key       = hash(seed ^ hash(step ^ hash(layer)))
 *   bits(i)   = hash(i ^ key), i = row * features + col
 *   keep(i)   = (bits(i) >> 8) · 2⁻²⁴ ≥ p
 *
 * `step` is the 0-based count of training-mode forward calls of the model; `layer` is the
 * Dropout's index in its Sequential.
 */

/** lowbias32 (Chris Wellons' hash prospector): a bijective uint32 → uint32 mix. */
export function lowbias32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The per-(seed, step, layer) key: hash(seed ^ hash(step ^ hash(layer))). */
export function dropoutKey(seed: number, step: number, layer: number): number {
  return lowbias32((seed ^ lowbias32((step ^ lowbias32(layer)) >>> 0)) >>> 0);
}

function keepBits(key: number, index: number, p: number): boolean {
  const bits = lowbias32((index ^ key) >>> 0);
  return (bits >>> 8) * 2 ** -24 >= p;
}

/** Whether element `index` (= row · features + col) is kept by the mask of (seed, step, layer). */
export function dropoutKeep(
  seed: number,
  step: number,
  layer: number,
  index: number,
  p: number,
): boolean {
  return keepBits(dropoutKey(seed, step, layer), index, p);
}

/** The [rows, cols] mask, row-major, 1 = kept, 0 = dropped. */
export function dropoutMask(
  seed: number,
  step: number,
  layer: number,
  rows: number,
  cols: number,
  p: number,
): Uint8Array {
  const key = dropoutKey(seed, step, layer);
  const mask = new Uint8Array(rows * cols);
  for (let i = 0; i < mask.length; i++) mask[i] = keepBits(key, i, p) ? 1 : 0;
  return mask;
}
