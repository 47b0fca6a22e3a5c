/**
 * Float64 twins of kernels/elementwise_loss.wgsl and kernels/nll_loss.wgsl: the plainest loops,
 * in PyTorch 1.13's definitions (torch.nn.MSELoss, L1Loss, BCEWithLogitsLoss, NLLLoss) with the
 * "mean" and "sum" reductions. Each returns the reduced loss and its gradient with respect to
 * the output; finite differences vouch for them (tests/losses_test.ts).
 */

type Arr = ArrayLike<number>;

/** "mean" or "sum", as the losses take it. */
export type Reduction = "mean" | "sum";

/** A loss and its gradient, in float64. */
export interface LossAndGrad {
  loss: number;
  grad: Float64Array;
}

function reduce(terms: Float64Array, reduction: Reduction): number {
  let s = 0;
  for (const v of terms) s += v;
  return reduction === "mean" ? s / terms.length : s;
}

/** Σ or mean of (x − t)²; gradient 2·(x − t) (/ N). */
export function mse(x: Arr, t: Arr, reduction: Reduction = "mean"): LossAndGrad {
  const n = x.length;
  const k = reduction === "mean" ? 2 / n : 2;
  const terms = Float64Array.from(x, (v, i) => (v - t[i]) ** 2);
  return { loss: reduce(terms, reduction), grad: Float64Array.from(x, (v, i) => k * (v - t[i])) };
}

/** Σ or mean of |x − t|; gradient sign(x − t) (/ N), 0 where x = t. */
export function l1(x: Arr, t: Arr, reduction: Reduction = "mean"): LossAndGrad {
  const n = x.length;
  const k = reduction === "mean" ? 1 / n : 1;
  const terms = Float64Array.from(x, (v, i) => Math.abs(v - t[i]));
  return {
    loss: reduce(terms, reduction),
    grad: Float64Array.from(x, (v, i) => k * Math.sign(v - t[i])),
  };
}

/**
 * Binary cross-entropy on logits, −[pw·t·log σ(x) + (1 − t)·log(1 − σ(x))], with pw the
 * positive weight of the element's column (the last dimension, `columns` wide; 1 without
 * `posWeight`). Written from the definition (log σ(x) = −log(1 + e^−x), computed stably), not
 * from the kernel's rearrangement; gradient (pw·t + 1 − t)·σ(x) − pw·t (/ N).
 */
export function bceWithLogits(
  x: Arr,
  t: Arr,
  columns: number,
  { posWeight, reduction = "mean" }: { posWeight?: Arr; reduction?: Reduction } = {},
): LossAndGrad {
  const n = x.length;
  const logSigmoid = (
    v: number,
  ) => (v >= 0 ? -Math.log1p(Math.exp(-v)) : v - Math.log1p(Math.exp(v)));
  const terms = new Float64Array(n);
  const grad = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const pw = posWeight ? posWeight[i % columns] : 1;
    const sig = 1 / (1 + Math.exp(-x[i]));
    terms[i] = -(pw * t[i] * logSigmoid(x[i]) + (1 - t[i]) * logSigmoid(-x[i]));
    grad[i] = (pw * t[i] + 1 - t[i]) * sig - pw * t[i];
    if (reduction === "mean") grad[i] /= n;
  }
  return { loss: reduce(terms, reduction), grad };
}

/** What {@link nll} returns besides the loss and gradient. */
export interface NllResult extends LossAndGrad {
  /** Counted rows whose first argmax equals the label. */
  correct: number;
  /** Rows whose label is not the ignored one. */
  counted: number;
  /** The mean's denominator: Σ w over the counted rows with a label in range. */
  denom: number;
  /** The first row with a label >= C that is not ignored, and its label (null when none). */
  badRow: number | null;
  badLabel: number | null;
}

/**
 * Negative log-likelihood of `labels` under log-probabilities `logp` [B][C]: ℓ_r = −w_y·logp[r][y]
 * over rows whose label is not `ignoreIndex` and is < C; "mean" divides by D = Σ w_y over them
 * (0 / 0 = NaN when there are none), "sum" does not. A bad label (>= C, not ignored) adds nothing,
 * as in the kernel; PyTorch raises instead.
 */
export function nll(
  logp: Arr,
  labels: ArrayLike<number>,
  B: number,
  C: number,
  { weight, ignoreIndex, reduction = "mean" }: {
    weight?: Arr;
    ignoreIndex?: number;
    reduction?: Reduction;
  } = {},
): NllResult {
  const w = (c: number) => (weight ? weight[c] : 1);
  const ignored = (y: number) => ignoreIndex !== undefined && y === ignoreIndex;
  let denom = 0, total = 0, correct = 0, counted = 0;
  let badRow: number | null = null;
  for (let r = 0; r < B; r++) {
    const y = labels[r];
    if (ignored(y)) continue;
    counted++;
    if (y >= C) {
      badRow ??= r;
      continue;
    }
    denom += w(y);
    total += -w(y) * logp[r * C + y];
    const row = Array.from({ length: C }, (_, c) => logp[r * C + c]);
    if (row.indexOf(Math.max(...row)) === y) correct++;
  }
  const d = reduction === "mean" ? denom : 1;
  const grad = new Float64Array(B * C);
  for (let r = 0; r < B; r++) {
    const y = labels[r];
    if (!ignored(y) && y < C) grad[r * C + y] = -w(y) / d;
  }
  return {
    loss: total / d,
    grad,
    correct,
    counted,
    denom,
    badRow,
    badLabel: badRow === null ? null : labels[badRow],
  };
}

// ---- Error bounds of the float32 computations, for comparing a GPU or PyTorch result with the
// twins. Each is a first-order bound derived from the operations each implementation performs,
// with u = 2^-24 the unit roundoff of f32 and one ULP at most 2u relative. ----

const U = 2 ** -24;
const ULP = 2 * U;

/** γ_k = k·u / (1 − k·u): the relative error bound of a sum whose terms pass k additions. */
export const gamma = (k: number): number => (k * U) / (1 - k * U);

/** What an f32 implementation guarantees for the operations the losses use. */
export interface Arithmetic {
  /** Additions any one term passes through in a sum of `n` terms. */
  sumDepth(n: number): number;
  /** Relative error of a division. */
  div: number;
  /** Relative error of exp(v). */
  exp(v: number): number;
  /** Absolute error of log(a). */
  log(a: number): number;
}

/**
 * The GPU as WGSL guarantees it (WGSL §"Floating Point Accuracy": x / y 2.5 ULP, exp(x)
 * 3 + 2·|x| ULP, log absolute 2^-21 on [0.5, 2] and 3 ULP elsewhere) and as the kernels sum:
 * `elements` sums WG = 64 values by a 6-level tree, `reduce` each lane's ⌈G / 64⌉ partials in a
 * loop and then a 6-level tree (the row kernels: ⌈B / 64⌉ and the tree).
 */
export function gpuArithmetic(kind: "elements" | "rows"): Arithmetic {
  return {
    sumDepth: kind === "elements"
      ? (n) => 6 + Math.ceil(Math.ceil(n / 64) / 64) + 6
      : (n) => Math.ceil(n / 64) + 6,
    div: 2.5 * ULP,
    exp: (v) => (3 + 2 * Math.abs(v)) * ULP,
    log: (a) => (a >= 0.5 && a <= 2 ? 2 ** -21 : 3 * ULP * Math.abs(Math.log(a))),
  };
}

/**
 * PyTorch on the CPU: divisions correctly rounded, exp and log within 1 ULP (SLEEF's u10
 * functions), and sums in an order we do not assume (any order: n − 1 additions).
 */
export const TORCH_ARITHMETIC: Arithmetic = {
  sumDepth: (n) => Math.max(1, n - 1),
  div: U,
  exp: () => ULP,
  log: (a) => ULP * Math.abs(Math.log(a)) + U,
};

/**
 * Bounds on |f32 loss − exact loss| and on each |f32 gradient − exact gradient| (never 0, so
 * that an exact 0 compares as 0 / bound).
 */
export interface LossBounds {
  loss: number;
  grad: Float64Array;
}

const positive = (b: LossBounds): LossBounds => ({
  loss: Math.max(b.loss, Number.MIN_VALUE),
  grad: b.grad.map((v) => Math.max(v, Number.MIN_VALUE)),
});

/** The bound of a reduced sum of terms with absolute errors `errors`, then / D (mean). */
function reducedBound(
  terms: Float64Array,
  errors: Float64Array,
  d: number,
  dRel: number,
  a: Arithmetic,
  mean: boolean,
): number {
  let s = 0, e = 0;
  for (let i = 0; i < terms.length; i++) {
    s += Math.abs(terms[i]);
    e += errors[i];
  }
  const sumErr = e + gamma(a.sumDepth(terms.length)) * (s + e);
  if (!mean) return sumErr;
  const value = s / d;
  return (sumErr / d) * (1 + a.div) + value * (a.div + dRel);
}

/** Bounds for {@link mse} (x − t: 1 rounding; its square: 1; the gradient's 2/N·d: 2 and the
 * rounding of 2/N). */
export function mseBounds(x: Arr, t: Arr, reduction: Reduction, a: Arithmetic): LossBounds {
  const ref = mse(x, t, reduction);
  const terms = Float64Array.from(x, (v, i) => (v - t[i]) ** 2);
  const errors = terms.map((v) => 3.01 * U * v);
  const mean = reduction === "mean";
  return positive({
    loss: reducedBound(terms, errors, x.length, 0, a, mean),
    grad: ref.grad.map((g) => 3.01 * U * Math.abs(g)),
  });
}

/** Bounds for {@link l1} (|x − t|: 1 rounding; the gradient is exact but for fl(1/N)). */
export function l1Bounds(x: Arr, t: Arr, reduction: Reduction, a: Arithmetic): LossBounds {
  const ref = l1(x, t, reduction);
  const terms = Float64Array.from(x, (v, i) => Math.abs(v - t[i]));
  const errors = terms.map((v) => 1.01 * U * v);
  return positive({
    loss: reducedBound(terms, errors, x.length, 0, a, reduction === "mean"),
    grad: ref.grad.map((g) => 1.01 * U * Math.abs(g)),
  });
}

/**
 * Bounds for {@link bceWithLogits}, following the kernel's (and PyTorch's) evaluation:
 * m = max(−x, 0), lse = log(exp(−m) + exp(−x − m)), ℓ = (1 − t)·x + lw·(lse + m) with
 * lw = (pw − 1)·t + 1; σ = 1 / (1 + exp(−x)), g = (pw·t + 1 − t)·σ − pw·t (/ N).
 */
export function bceBounds(
  x: Arr,
  t: Arr,
  columns: number,
  { posWeight, reduction = "mean" }: { posWeight?: Arr; reduction?: Reduction },
  a: Arithmetic,
): LossBounds {
  const n = x.length;
  const terms = new Float64Array(n);
  const errors = new Float64Array(n);
  const grad = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = x[i], ti = t[i];
    const pw = posWeight ? posWeight[i % columns] : 1;
    const m = Math.max(-v, 0);
    const e1 = Math.exp(-m), e2 = Math.exp(-v - m);
    const s = e1 + e2;
    const lse = Math.log(s);
    const sErr = e1 * a.exp(m) + e2 * a.exp(v + m) + 2 * U * s;
    const lseErr = a.log(s) + sErr / s;
    const lw = (pw - 1) * ti + 1;
    const linear = Math.abs((1 - ti) * v);
    terms[i] = linear + Math.abs(lw) * (lse + m);
    errors[i] = 6 * U * terms[i] + Math.abs(lw) * lseErr;
    const ex = Math.exp(-v);
    const sig = 1 / (1 + ex);
    const sigRel = a.exp(v) + U + a.div;
    const pt = pw * ti;
    const coef = pt + 1 - ti;
    const g0 = coef * sig - pt;
    let gErr = Math.abs(coef) * sig * (sigRel + 3 * U) + 2 * U * Math.abs(pt) + U * Math.abs(g0);
    if (reduction === "mean") gErr = gErr / n + a.div * Math.abs(g0 / n);
    grad[i] = 1.01 * gErr;
  }
  return positive({ loss: reducedBound(terms, errors, n, 0, a, reduction === "mean"), grad });
}

/**
 * Bounds for {@link nll}: each term −w·x one rounding; D a sum of the counted weights (relative
 * error γ_depth, all weights >= 0); the mean's division; the gradient −(1 / D)·w.
 */
export function nllBounds(
  logp: Arr,
  labels: ArrayLike<number>,
  B: number,
  C: number,
  o: { weight?: Arr; ignoreIndex?: number; reduction?: Reduction },
  a: Arithmetic,
): LossBounds {
  const ref = nll(logp, labels, B, C, o);
  const mean = (o.reduction ?? "mean") === "mean";
  const terms = new Float64Array(B);
  for (let r = 0; r < B; r++) {
    const y = labels[r];
    if ((o.ignoreIndex !== undefined && y === o.ignoreIndex) || y >= C) continue;
    terms[r] = (o.weight ? o.weight[y] : 1) * logp[r * C + y];
  }
  const dRel = o.weight ? gamma(a.sumDepth(B)) : 0; // unweighted, D is a count: exact
  const errors = terms.map((v) => 1.01 * U * Math.abs(v));
  const gRel = mean ? a.div + dRel + U : 0;
  return positive({
    loss: reducedBound(terms, errors, ref.denom, dRel, a, mean),
    grad: ref.grad.map((g) => 1.01 * gRel * Math.abs(g)),
  });
}
