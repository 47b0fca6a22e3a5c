/**
 * A small seeded random number generator for data order and augmentation.
 *
 * xoshiro128** (Blackman and Vigna) over 32-bit words, seeded through splitmix32, so every
 * value is reproducible from (seed, stream) on any machine. `Math.random` is never used.
 *
 * @module
 */

/** One splitmix32 step: a well-mixed 32-bit value from a 32-bit state. */
function splitmix32(state: number): number {
  let z = (state + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Mixes several non-negative integers into one 32-bit seed (e.g. seed, epoch, purpose). */
export function mixSeed(...parts: number[]): number {
  let h = 0x2545f491;
  for (const part of parts) {
    if (!Number.isInteger(part) || part < 0) {
      throw new RangeError(
        `Cannot seed the RNG: parts must be non-negative integers: current value is ${part}`,
      );
    }
    // Split values above 2^32 into two words so large seeds still differ.
    h = splitmix32((h ^ (part >>> 0)) >>> 0);
    h = splitmix32((h ^ Math.floor(part / 0x100000000)) >>> 0);
  }
  return h;
}

/**
 * xoshiro128** generator.
 *
 * @example Shuffle reproducibly
 * ```ts
 * import { Rng } from "./rng.ts";
 * const rng = new Rng(42);
 * const order = rng.permutation(10); // same 10 indices for every run with seed 42
 * ```
 */
export class Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  /** Seeds the four state words from `seed` through splitmix32 (never all zero). */
  constructor(seed: number) {
    let x = mixSeed(seed);
    x = splitmix32(x);
    this.#s0 = x;
    x = splitmix32(x);
    this.#s1 = x;
    x = splitmix32(x);
    this.#s2 = x;
    x = splitmix32(x);
    this.#s3 = x | 1;
  }

  /** The next uniformly distributed 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#s1 << 9) >>> 0;
    this.#s2 = (this.#s2 ^ this.#s0) >>> 0;
    this.#s3 = (this.#s3 ^ this.#s1) >>> 0;
    this.#s1 = (this.#s1 ^ this.#s2) >>> 0;
    this.#s0 = (this.#s0 ^ this.#s3) >>> 0;
    this.#s2 = (this.#s2 ^ t) >>> 0;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  /** A uniform float in [0, 1) with 32 random bits. */
  float(): number {
    return this.nextU32() / 0x100000000;
  }

  /** A uniform integer in [0, n), unbiased (rejection of the short final range). */
  below(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) {
      throw new RangeError(
        `Cannot draw an integer below n: n must be in 1..2^32: current value is ${n}`,
      );
    }
    const limit = 0x100000000 - (0x100000000 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Uint32Array {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const t = out[i];
      out[i] = out[j];
      out[j] = t;
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
