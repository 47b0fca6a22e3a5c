/**
 * Float64 twins of kernels/pointwise.wgsl and kernels/softmax.wgsl: the plainest loops of the
 * exact functions (x [rows][cols], row-major). Backward twins take the input x, as the exact
 * derivative does; the kernels' Tanh and Sigmoid read their f32 output instead, as PyTorch does,
 * and tests/reference/activation_bounds.ts accounts for the difference.
 *
 * @module
 */

type Arr = ArrayLike<number>;

/** The element-wise functions, by the names lib/nn/pointwise_kernel.ts gives them. */
export type PointwiseName = "tanh" | "sigmoid" | "gelu" | "gelu_tanh" | "silu";

/** The five element-wise functions, in kernels/pointwise.wgsl's FN order. */
export const POINTWISE_NAMES: readonly PointwiseName[] = [
  "tanh",
  "sigmoid",
  "gelu",
  "gelu_tanh",
  "silu",
];

/**
 * erf(x) to float64 accuracy: for |x| < 3 the series 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(2n+1)!!, whose
 * terms are all positive (no cancellation); beyond, 1 − erfc(|x|) with the sign of x.
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a >= 3) return Math.sign(x) * (1 - erfcLarge(a));
  let term = a;
  let sum = a;
  for (let n = 1; term > 1e-18 * sum; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
}

/** erfc(a) for a ≥ 3 by Laplace's continued fraction e^(−a²)/√π / (a + ½/(a + 1/(a + 3/2/…))). */
function erfcLarge(a: number): number {
  let k = a;
  for (let n = 80; n >= 1; n--) k = a + n / 2 / k;
  return Math.exp(-a * a) / Math.sqrt(Math.PI) / k;
}

/** The standard normal distribution function Φ(x) = ½·erfc(−x/√2), without cancellation. */
export function normalCdf(x: number): number {
  const z = -x / Math.SQRT2;
  return z >= 3 ? 0.5 * erfcLarge(z) : 0.5 * (1 - erf(z));
}

/** The standard normal density φ(x). */
export function normalPdf(x: number): number {
  return Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}

const SQRT_2_PI = Math.sqrt(2 / Math.PI);
const KAPPA = 0.044715;

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** y = f(x) for one element. */
export function pointwiseValue(name: PointwiseName, x: number): number {
  switch (name) {
    case "tanh":
      return Math.tanh(x);
    case "sigmoid":
      return sigmoid(x);
    case "gelu":
      return x * normalCdf(x);
    case "gelu_tanh":
      return 0.5 * x * (1 + Math.tanh(SQRT_2_PI * (x + KAPPA * x ** 3)));
    case "silu":
      return x * sigmoid(x);
  }
}

/** f′(x) for one element. */
export function pointwiseDerivative(name: PointwiseName, x: number): number {
  switch (name) {
    case "tanh":
      return 1 - Math.tanh(x) ** 2;
    case "sigmoid":
      return sigmoid(x) * (1 - sigmoid(x));
    case "gelu":
      return normalCdf(x) + x * normalPdf(x);
    case "gelu_tanh": {
      const t = Math.tanh(SQRT_2_PI * (x + KAPPA * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_PI * (1 + 3 * KAPPA * x * x);
    }
    case "silu": {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
  }
}

/** y = f(x) element-wise. */
export function pointwiseForward(name: PointwiseName, x: Arr): Float64Array {
  return Float64Array.from(x, (v) => pointwiseValue(name, v));
}

/** dX = dY·f′(x) element-wise. */
export function pointwiseBackward(name: PointwiseName, x: Arr, dy: Arr): Float64Array {
  return Float64Array.from(dy, (g, i) => g * pointwiseDerivative(name, x[i]));
}

/** Per row: its max, its log Σ exp(x − max), and the softmax. */
function rowStats(x: Arr, rows: number, cols: number) {
  const max = new Float64Array(rows);
  const logSum = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
    max[r] = m;
    logSum[r] = Math.log(s);
  }
  return { max, logSum };
}

/** Softmax over each row of cols values: y = exp(x − max)/Σ exp(x − max). */
export function softmaxForward(x: Arr, rows: number, cols: number): Float64Array {
  const { max, logSum } = rowStats(x, rows, cols);
  return Float64Array.from(
    x,
    (v, i) => Math.exp(v - max[Math.floor(i / cols)] - logSum[Math.floor(i / cols)]),
  );
}

/** LogSoftmax over each row: y = x − max − log Σ exp(x − max). */
export function logSoftmaxForward(x: Arr, rows: number, cols: number): Float64Array {
  const { max, logSum } = rowStats(x, rows, cols);
  return Float64Array.from(
    x,
    (v, i) => v - max[Math.floor(i / cols)] - logSum[Math.floor(i / cols)],
  );
}

/** Softmax's dX = y ⊙ (dY − Σ dY⊙y) per row, y = softmax(x). */
export function softmaxBackward(x: Arr, dy: Arr, rows: number, cols: number): Float64Array {
  const y = softmaxForward(x, rows, cols);
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += dy[r * cols + c] * y[r * cols + c];
    for (let c = 0; c < cols; c++) dx[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - s);
  }
  return dx;
}

/** LogSoftmax's dX = dY − softmax(x)·Σ dY per row. */
export function logSoftmaxBackward(x: Arr, dy: Arr, rows: number, cols: number): Float64Array {
  const p = softmaxForward(x, rows, cols);
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += dy[r * cols + c];
    for (let c = 0; c < cols; c++) dx[r * cols + c] = dy[r * cols + c] - p[r * cols + c] * s;
  }
  return dx;
}
