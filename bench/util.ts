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
