/** Shared benchmark types and statistics. */

/** One figure of the benchmark's JSON output. */
export interface BenchResult {
  /** e.g. "matmul/1024x3072x128" or "train/plain". */
  name: string;
  /** e.g. "GFLOP/s", "samples/s", "s". */
  unit: string;
  value: number;
  /** Free-form detail (kernel variant, ratio), not part of the stable shape. */
  [extra: string]: unknown;
}

/** The benchmark's JSON document. */
export interface BenchReport {
  adapter: string;
  fallback: boolean;
  results: BenchResult[];
}

/** Median of a non-empty list. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * `count` pseudo-random CIFAR-shaped images (uint8, 3072 bytes each) and labels 0–9, from a
 * small LCG: the synthetic data every section of the benchmark trains and gathers on.
 */
export function syntheticSet(count: number, seed = 1) {
  let s = seed >>> 0;
  const images = new Uint8Array(count * 3072);
  for (let i = 0; i < images.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    images[i] = s >>> 24;
  }
  const labels = Uint8Array.from({ length: count }, (_, i) => (i * 7) % 10);
  return { images, labels, count };
}
