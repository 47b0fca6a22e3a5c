/**
 * The toolkit's seeded random numbers on the CPU: parameter initialisation and anything else
 * drawn at build time. `manualSeed(n)` makes model construction reproducible, and its value
 * also keys Dropout masks (which are drawn on the GPU from a counter-based hash).
 *
 * @module
 */

let seedValue = 0;
let state = 0;

/** The generator: mulberry32, a small 32-bit state generator with good statistical quality. */
function next(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/**
 * Seeds the toolkit's random numbers, as `torch.manual_seed` does: parameter initialisation and
 * the Dropout mask seed of layers built afterwards. Throws a RangeError unless `seed` is an
 * integer in [0, 2³²).
 *
 * @example Reproducible construction
 * ```ts
 * import { Linear, manualSeed } from "@wgnn/wgnn";
 * import { deepEqual, notDeepEqual, throws } from "node:assert/strict";
 *
 * manualSeed(0);
 * const first = new Linear(4, 3).parameterSpecs()[0].init;
 * const other = new Linear(4, 3).parameterSpecs()[0].init; // the generator moved on
 * manualSeed(0);
 * const again = new Linear(4, 3).parameterSpecs()[0].init;
 * deepEqual(again, first);
 * notDeepEqual(other, first);
 * throws(() => manualSeed(-1), RangeError);
 * ```
 */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(
      `Cannot seed: seed must be an integer in [0, 2^32): current value is ${seed}`,
    );
  }
  seedValue = seed;
  state = seed;
}

/** The seed last given to {@link manualSeed} (0 by default). */
export function currentSeed(): number {
  return seedValue;
}

/** `n` values uniform in [lo, hi) as float32. */
export function uniform(n: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * next();
  return out;
}
