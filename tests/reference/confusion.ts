/**
 * Integer twin of kernels/confusion.wgsl: the plainest loop over rows and columns.
 *
 * A row's prediction is its first largest logit: scan from column 0 and move only on a strictly
 * larger value, so the lowest index wins a tie, as in PyTorch's `argmax` (and -0 ties +0).
 * Logits are compared as the f64 values of their f32s, which orders them exactly as f32 does.
 *
 * NaN is where the kernel and PyTorch part: `z > best` is false against NaN, so a NaN is never
 * picked unless it is in column 0 (then it is kept), while PyTorch's argmax returns the first
 * NaN. This twin follows the kernel; the tests use no NaN.
 *
 * @module
 */

/** The first index of the largest of `C` values of row `r` (strict `>`, as the kernel). */
export function firstArgmax(logits: ArrayLike<number>, r: number, C: number): number {
  let best = logits[r * C];
  let arg = 0;
  for (let c = 1; c < C; c++) {
    if (logits[r * C + c] > best) {
      best = logits[r * C + c];
      arg = c;
    }
  }
  return arg;
}

/**
 * `counts` [C×C] plus one count per row of `logits` [B×C] at
 * counts[labels[r]·C + firstArgmax(row r)]; labels must lie in [0, C).
 */
export function confusionRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  B: number,
  C: number,
  counts: Uint32Array = new Uint32Array(C * C),
): Uint32Array {
  for (let r = 0; r < B; r++) counts[labels[r] * C + firstArgmax(logits, r, C)] += 1;
  return counts;
}
