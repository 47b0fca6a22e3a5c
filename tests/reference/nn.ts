/**
 * Float64 twins of the layer kernels: the plainest loops, in PyTorch's conventions
 * (Linear weight [out][in]; x [batch][features], row-major).
 */

type Arr = ArrayLike<number>;

/** y = x·Wᵀ + b (W is [out][in]). */
export function linearForward(
  x: Arr,
  w: Arr,
  b: Arr | null,
  B: number,
  inF: number,
  outF: number,
): Float64Array {
  const y = new Float64Array(B * outF);
  for (let r = 0; r < B; r++) {
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = s;
    }
  }
  return y;
}

/** Gradients of linearForward: dX = dY·W, dW = dYᵀ·X ([out][in]), dB = Σ_rows dY. */
export function linearBackward(x: Arr, w: Arr, dy: Arr, B: number, inF: number, outF: number) {
  const dx = new Float64Array(B * inF);
  const dw = new Float64Array(outF * inF);
  const db = new Float64Array(outF);
  for (let r = 0; r < B; r++) {
    for (let o = 0; o < outF; o++) {
      const g = dy[r * outF + o];
      db[o] += g;
      for (let i = 0; i < inF; i++) {
        dx[r * inF + i] += g * w[o * inF + i];
        dw[o * inF + i] += g * x[r * inF + i];
      }
    }
  }
  return { dx, dw, db };
}

export function leakyForward(x: Arr, slope: number): Float64Array {
  return Float64Array.from(x, (v) => (v > 0 ? v : slope * v));
}

export function leakyBackward(x: Arr, dy: Arr, slope: number): Float64Array {
  return Float64Array.from(dy, (g, i) => (x[i] > 0 ? g : slope * g));
}

/** BatchNorm1d in train mode: output, batch mean, biased variance, and the running update. */
export function batchnormTrain(x: Arr, gamma: Arr, beta: Arr, B: number, F: number, eps: number) {
  const mean = new Float64Array(F);
  const variance = new Float64Array(F);
  for (let f = 0; f < F; f++) {
    let s = 0;
    for (let b = 0; b < B; b++) s += x[b * F + f];
    mean[f] = s / B;
    let q = 0;
    for (let b = 0; b < B; b++) q += (x[b * F + f] - mean[f]) ** 2;
    variance[f] = q / B;
  }
  const y = new Float64Array(B * F);
  for (let b = 0; b < B; b++) {
    for (let f = 0; f < F; f++) {
      y[b * F + f] = ((x[b * F + f] - mean[f]) / Math.sqrt(variance[f] + eps)) * gamma[f] + beta[f];
    }
  }
  return { y, mean, variance };
}

/** BatchNorm1d in eval mode with running statistics. */
export function batchnormEval(
  x: Arr,
  gamma: Arr,
  beta: Arr,
  rm: Arr,
  rv: Arr,
  B: number,
  F: number,
  eps: number,
) {
  const y = new Float64Array(B * F);
  for (let b = 0; b < B; b++) {
    for (let f = 0; f < F; f++) {
      y[b * F + f] = ((x[b * F + f] - rm[f]) / Math.sqrt(rv[f] + eps)) * gamma[f] + beta[f];
    }
  }
  return y;
}

/** Gradients of batchnormTrain (batch statistics). */
export function batchnormBackward(x: Arr, gamma: Arr, dy: Arr, B: number, F: number, eps: number) {
  const { mean, variance } = batchnormTrain(x, gamma, new Float64Array(F), B, F, eps);
  const dx = new Float64Array(B * F);
  const dgamma = new Float64Array(F);
  const dbeta = new Float64Array(F);
  for (let f = 0; f < F; f++) {
    const rstd = 1 / Math.sqrt(variance[f] + eps);
    let sdy = 0;
    let sdyx = 0;
    for (let b = 0; b < B; b++) {
      const xhat = (x[b * F + f] - mean[f]) * rstd;
      sdy += dy[b * F + f];
      sdyx += dy[b * F + f] * xhat;
    }
    dgamma[f] = sdyx;
    dbeta[f] = sdy;
    for (let b = 0; b < B; b++) {
      const xhat = (x[b * F + f] - mean[f]) * rstd;
      dx[b * F + f] = gamma[f] * rstd * (dy[b * F + f] - sdy / B - (xhat * sdyx) / B);
    }
  }
  return { dx, dgamma, dbeta };
}

/**
 * Cross-entropy (mean, optional weights and label smoothing) and its gradient. A row whose label
 * is not an integer in [0, C) adds no loss, no gradient, no weight to D and no correct count;
 * `badRow`/`badLabel` name the first such row (null when none), as the kernel flags the batch.
 */
export function crossEntropy(
  z: Arr,
  labels: ArrayLike<number>,
  B: number,
  C: number,
  { weight, smoothing = 0 }: { weight?: Arr; smoothing?: number } = {},
) {
  const w = (c: number) => (weight ? weight[c] : 1);
  const inRange = (y: number) => Number.isInteger(y) && y >= 0 && y < C;
  let badRow: number | null = null;
  for (let r = B - 1; r >= 0; r--) if (!inRange(labels[r])) badRow = r;
  let denom = 0;
  for (let r = 0; r < B; r++) {
    // Unweighted, D = B counts every row (the kernel's Params.B); weighted, only good labels.
    if (!weight) denom += 1;
    else if (inRange(labels[r])) denom += w(labels[r]);
  }
  let wsum = 0;
  for (let c = 0; c < C; c++) wsum += w(c);
  let total = 0;
  let correct = 0;
  const grad = new Float64Array(B * C);
  for (let r = 0; r < B; r++) {
    const y = labels[r];
    if (!inRange(y)) continue;
    const row = Array.from({ length: C }, (_, c) => z[r * C + c]);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    let smooth = 0;
    for (let c = 0; c < C; c++) {
      smooth += w(c) * (lse - row[c]);
      const p = Math.exp(row[c] - lse);
      grad[r * C + c] =
        ((1 - smoothing) * w(y) * (p - (c === y ? 1 : 0)) + (smoothing / C) * (p * wsum - w(c))) /
        denom;
    }
    total += (1 - smoothing) * w(y) * (lse - row[y]) + (smoothing / C) * smooth;
    if (row.indexOf(m) === y) correct++;
  }
  const badLabel = badRow === null ? null : labels[badRow];
  return { loss: total / denom, grad, correct, badRow, badLabel };
}

/** Central finite differences of a scalar function f at x, for the entries `indices`. */
export function finiteDiff(
  f: (x: Float64Array) => number,
  x: Float64Array,
  indices: number[],
  h = 1e-6,
): number[] {
  return indices.map((i) => {
    const xp = Float64Array.from(x);
    const xm = Float64Array.from(x);
    xp[i] += h;
    xm[i] -= h;
    return (f(xp) - f(xm)) / (2 * h);
  });
}
