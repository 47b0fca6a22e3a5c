/**
 * How far a float32 evaluation of each activation may land from the exact value: a first-order
 * running error bound of the kernel's formula (kernels/pointwise.wgsl, kernels/softmax.wgsl,
 * which follow PyTorch 1.13's order of operations). Every rounded operation on a value v adds at
 * most U·|v| times the sensitivity of the result to v (U = 2⁻²⁴, float32's unit roundoff); exp,
 * tanh, log and erf add their budget below. The bounds are computed from the exact (float64)
 * values, so they serve both the GPU against the twin and, summed for both sides, the GPU against
 * PyTorch's float32. A floor of 2⁻¹²⁰ allows for subnormals flushed to zero.
 *
 * @module
 */

import { erf, normalPdf, type PointwiseName, softmaxForward } from "./activations.ts";

type Arr = ArrayLike<number>;

/** float32's unit roundoff: a correctly rounded result is within U·|exact| (half an ulp). */
export const U = 2 ** -24;
/** Allowance for subnormal results flushed to zero (GPUs may). */
export const FLOOR = 2 ** -120;

/** One float32 implementation's error budgets, in units of U. */
export interface Budgets {
  /** Name used in messages. */
  name: string;
  /** exp, relative (1 ulp ≤ 2U). */
  exp: number;
  /** tanh, relative. */
  tanh: number;
  /** log, relative. */
  log: number;
  /** erf, absolute (|erf| ≤ 1). */
  erf: number;
  /** Rounding depth of a row sum of `cols` non-negative terms (its relative error ≤ depth·U). */
  sumDepth(cols: number): number;
}

/**
 * kernels/*.wgsl: exp_f32, tanh_f32, erf_f32 and log_f32 within 2 ulp (measured ≤ 1.3 ulp on
 * lavapipe by tests/activations_test.ts), i.e. 4U; a row sum strides over ⌈cols/64⌉ terms per
 * invocation, then halves 64 partial sums in 6 steps.
 */
export const GPU_BUDGETS: Budgets = {
  name: "GPU",
  exp: 4,
  tanh: 4,
  log: 4,
  erf: 4,
  sumDepth: (cols) => Math.ceil(cols / 64) + 6,
};

/**
 * PyTorch 1.13 on an x86 CPU with AVX2 (its vectorized kernels): Sleef's exp, tanh and log
 * (1 ulp = 2U). GELU's erf there is Abramowitz–Stegun 7.1.26 evaluated in float32: 1.5e-7 = 2.5U
 * from the formula, and 1 − r·t·e^(−z²) rounds some 16 operations on values ≤ 1 (≤ 16U), so 20U
 * absolute. A row sum runs 8 lanes over ⌈cols/8⌉ terms each, then adds the lanes in 3 steps.
 */
export const TORCH_BUDGETS: Budgets = {
  name: "PyTorch",
  exp: 2,
  tanh: 2,
  log: 2,
  erf: 20,
  sumDepth: (cols) => Math.ceil(cols / 8) + 3,
};

const BETA = Math.sqrt(2 / Math.PI);
const KAPPA = 0.044715;
const sig = (x: number) => 1 / (1 + Math.exp(-x));

/** tanh(√(2/π)·(x + κx³)) and the error of its f32 evaluation, in units of U. */
function geluTanhInner(x: number, b: Budgets) {
  const t = Math.tanh(BETA * (x + KAPPA * x ** 3));
  // x³, κ·x³, the sum and β·(…), with β and κ rounded: at most 6U relative on each term.
  const dInner = 6 * BETA * (Math.abs(x) + KAPPA * Math.abs(x) ** 3);
  return { t, dt: (1 - t * t) * dInner + b.tanh * Math.abs(t) };
}

/** The bound on |f32 forward − exact| at x. */
export function pointwiseForwardBound(name: PointwiseName, x: number, b: Budgets): number {
  const ax = Math.abs(x);
  switch (name) {
    case "tanh":
      return b.tanh * U * Math.abs(Math.tanh(x)) + FLOOR;
    case "sigmoid":
      // exp, 1 + e and the division; the sensitivity of y to e's relative error is e/(1 + e) ≤ 1.
      return (b.exp + 2) * U * sig(x) + FLOOR;
    case "silu":
      return (b.exp + 2) * U * Math.abs(x * sig(x)) + FLOOR;
    case "gelu": {
      // z = x·(1/√2) is off by 2U·|z|, which moves erf by 2U·|z|·erf′(z) = 4U·|x|·φ(x).
      const e = erf(x / Math.SQRT2);
      const y = 0.5 * x * (1 + e);
      return U * (0.5 * ax * (b.erf + Math.abs(1 + e) + 4 * ax * normalPdf(x)) + Math.abs(y)) +
        FLOOR;
    }
    case "gelu_tanh": {
      const { t, dt } = geluTanhInner(x, b);
      return U * (0.5 * ax * (dt + Math.abs(1 + t)) + Math.abs(0.5 * x * (1 + t))) + FLOOR;
    }
  }
}

/** The bound on |f32 backward − exact| at x with upstream gradient g. */
export function pointwiseBackwardBound(
  name: PointwiseName,
  x: number,
  g: number,
  b: Budgets,
): number {
  const ax = Math.abs(x);
  const ag = Math.abs(g);
  switch (name) {
    case "tanh": {
      // dX = g·(1 − y·y) from the f32 y (off by b.tanh·U·|y|; sensitivity 2|g·y|).
      const y = Math.tanh(x);
      const dx = g * (1 - y * y);
      return U * (ag * ((2 * b.tanh + 1) * y * y + Math.abs(1 - y * y)) + Math.abs(dx)) + FLOOR;
    }
    case "sigmoid": {
      // dX = g·(1 − y)·y from the f32 y (off by (exp + 2)·U·y; sensitivity |g·(1 − 2y)|).
      const y = sig(x);
      const dx = g * (1 - y) * y;
      return U * (ag * y * (Math.abs(1 - 2 * y) * (b.exp + 2) + 2 * (1 - y)) + Math.abs(dx)) +
        FLOOR;
    }
    case "gelu": {
      // dX = g·(cdf + x·pdf); pdf = e^(−x·x/2)/√(2π), whose argument is off by U·x²/2.
      const e = erf(x / Math.SQRT2);
      const cdf = 0.5 * (1 + e);
      const pdf = normalPdf(x);
      const dcdf = 0.5 * (4 * ax * pdf + b.erf + Math.abs(1 + e));
      const dpdf = ax * pdf * (x * x / 2 + b.exp + 3);
      return U * (ag * (dcdf + dpdf + Math.abs(cdf + x * pdf)) + Math.abs(g * (cdf + x * pdf))) +
        FLOOR;
    }
    case "gelu_tanh": {
      // dX = g·(L + R), L = 0.5·(1 + t), R = 0.5·x·(1 − t²)·D, D = β·(1 + 3κx²).
      const { t, dt } = geluTanhInner(x, b);
      const d = BETA * (1 + 3 * KAPPA * x * x);
      const l = 0.5 * (1 + t);
      const r = 0.5 * x * (1 - t * t) * d;
      const rounding = 0.5 * Math.abs(1 + t) + 0.5 * ax * d * (t * t + Math.abs(1 - t * t)) +
        6 * Math.abs(r) + Math.abs(l + r);
      return U * (ag * ((0.5 + Math.abs(x * t * d)) * dt + rounding) + Math.abs(g * (l + r))) +
        FLOOR;
    }
    case "silu": {
      // dX = (g·s)·(1 + x·(1 − s)); s off by (exp + 2)·U·s, sensitivity |g·(1 + x − 2xs)|.
      const s = sig(x);
      const inner = 1 + x * (1 - s);
      const rounding = 2 * Math.abs(x * (1 - s)) + 2 * Math.abs(inner);
      return U * (ag * s * (Math.abs(1 + x - 2 * x * s) * (b.exp + 2) + rounding) +
            Math.abs(g * s * inner)) + FLOOR;
    }
  }
}

/** Per row: its max, the exact softmax, and the relative error of the f32 sum Σ exp(x − max). */
function rowErrors(x: Arr, rows: number, cols: number, b: Budgets) {
  const p = softmaxForward(x, rows, cols);
  const max = new Float64Array(rows);
  const sumError = new Float64Array(rows);
  const logSum = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    let err = b.sumDepth(cols);
    for (let c = 0; c < cols; c++) {
      const d = x[r * cols + c] - m;
      s += Math.exp(d);
      // x − m rounds (U·|d|, which exp turns into a relative error) and exp adds its budget.
      err += p[r * cols + c] * (b.exp + Math.abs(d));
    }
    max[r] = m;
    sumError[r] = err;
    logSum[r] = Math.log(s);
  }
  return { p, max, sumError, logSum };
}

/** Bounds on |f32 forward − exact| per element: softmax when `log` is false, else log-softmax. */
export function softmaxForwardBound(
  x: Arr,
  rows: number,
  cols: number,
  log: boolean,
  b: Budgets,
): Float64Array {
  const { p, max, sumError, logSum } = rowErrors(x, rows, cols, b);
  return Float64Array.from(x, (v, i) => {
    const r = Math.floor(i / cols);
    const d = Math.abs(v - max[r]);
    if (!log) return U * p[i] * (b.exp + d + sumError[r] + 2) + FLOOR;
    const y = v - max[r] - logSum[r];
    return U * (d + sumError[r] + b.log * Math.abs(logSum[r]) + Math.abs(y)) + FLOOR;
  });
}

/** Bounds on |f32 backward − exact| per element, with the f32 forward's own output. */
export function softmaxBackwardBound(
  x: Arr,
  dy: Arr,
  rows: number,
  cols: number,
  log: boolean,
  b: Budgets,
): Float64Array {
  const p = softmaxForward(x, rows, cols);
  const dyOut = softmaxForwardBound(x, rows, cols, log, b);
  const out = new Float64Array(rows * cols);
  const depth = b.sumDepth(cols);
  for (let r = 0; r < rows; r++) {
    const row = (c: number) => r * cols + c;
    let s = 0;
    let sAbs = 0;
    let sErr = 0;
    for (let c = 0; c < cols; c++) {
      const g = dy[row(c)];
      s += log ? g : g * p[row(c)];
      sAbs += Math.abs(g);
      sErr += log ? 0 : Math.abs(g) * (dyOut[row(c)] + U * p[row(c)] * (1 + depth));
    }
    for (let c = 0; c < cols; c++) {
      const i = row(c);
      const g = dy[i];
      if (log) {
        // dX = g − exp(y)·Σg: y off by dyOut (absolute), exp's budget, the product, the difference.
        const dx = g - p[i] * s;
        out[i] = p[i] * depth * U * sAbs + Math.abs(p[i] * s) * (dyOut[i] + (b.exp + 1) * U) +
          U * Math.abs(dx) + FLOOR;
      } else {
        // dX = (g − σ)·y, σ = Σ g·y: σ off by sErr, y off by dyOut.
        const dx = (g - s) * p[i];
        out[i] = p[i] * (sErr + U * Math.abs(g - s)) + Math.abs(g - s) * dyOut[i] +
          U * Math.abs(dx) + FLOOR;
      }
    }
  }
  return out;
}
