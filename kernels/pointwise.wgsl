// pointwise.wgsl — Tanh, Sigmoid, GELU (erf and tanh forms) and SiLU, forward and backward.
//
// Math:     the override FN picks the function (one pipeline per function and pass), written in
//           the order of operations of PyTorch 1.13's CPU kernels; `ref` is what backward reads:
//           FN 0 Tanh       y = tanh(x)                          dX = dY·(1 − y·y)      ref = y
//           FN 1 Sigmoid    y = 1/(1 + e^−x)                     dX = dY·(1 − y)·y      ref = y
//           FN 2 GELU       y = x·0.5·(1 + erf(x/√2))            dX = dY·(Φ + x·φ)      ref = x
//                           Φ = 0.5·(1 + erf(x/√2)), φ = e^(−x²/2)/√(2π)
//           FN 3 GELU tanh  y = 0.5·x·(1 + t), t = tanh(√(2/π)·(x + κ·x³)), κ = 0.044715
//                           dX = dY·(0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3κ·x²))   ref = x
//           FN 4 SiLU       y = x/(1 + e^−x)                     dX = dY·s·(1 + x·(1 − s)),
//                           s = 1/(1 + e^−x)                                           ref = x
// Accuracy: WGSL has no erf, and its exp and tanh are loose where PyTorch's are not (on Mesa's
//           lavapipe exp is off by 64 ulp near ±87, from rounding x·log2(e), and tanh by 1000 ulp
//           near 0, from (e^2x − 1)/(e^2x + 1)), so this file brings its own three, with
//           coefficients fitted near-minimax and rounded to f32 (tests/reference/fit_coefficients.py):
//           exp_f32   x = n·ln2 + r, |r| ≤ ln2/2 (Cody–Waite: ln2's head has 15 bits, so n·head is
//                     exact), e^r = 1 + (r + r²·Q(r)), Q of degree 4; 2ⁿ by two ldexp.
//           tanh_f32  |x| < 0.9: x + x·s·P(s), s = x², P of degree 7; else 1 − 2/(e^2|x| + 1).
//           erf_f32   |z| < 0.92: z + z·E(z²), E of degree 5 (Abramowitz–Stegun's 7.1.26, whose
//                     error is 1.5e-7 absolute, would be 2.5 ulp near 1 and far worse near 0);
//                     0.92 ≤ |z| < 3.92: 1 − e^R(|z|), R of degree 8 fitted to log(erfc); beyond,
//                     ±1 (erfc(3.92) < 2⁻²⁵, so erf rounds to 1).
//           Worst errors on lavapipe against float64 over dense grids, in ulps of the exact result
//           (tests/activations_test.ts, which allows 2): exp_f32 1.25, tanh_f32 1.00, erf_f32 1.13.
//           NaN and ±inf give PyTorch's results (a NaN stays NaN: the divergence check sees it).
// Bindings: @group(0) 0 src (storage, read: x in forward, ref in backward), 1 dy (storage, read;
//           backward only), 2 dst (storage, read_write: y or dX), 3 p: Params (uniform).
// Dispatch: one invocation per element; workgroup WG; grid = grid1d(ceil(n / WG)); the linear
//           index is (wid.x + wid.y·nwg.x)·WG + lid.x.

struct Params {
  n: u32,
}

override WG: u32 = 64u;
override FN: u32 = 0u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const LOG2E: f32 = 1.44269504;
// ln2 = LN2_HI + LN2_LO; LN2_HI has 15 significant bits, so n·LN2_HI is exact for |n| < 512.
const LN2_HI: f32 = 0.693145752;
const LN2_LO: f32 = 1.42860677e-6;
const SQRT1_2: f32 = 0.707106781;
// 1/√(2π) = (2/√π)·(1/√2)·0.5, PyTorch's kBeta for the erf form.
const INV_SQRT_2PI: f32 = 0.398942280;
// √(2/π) = √2·(2/√π)·0.5, PyTorch's kBeta for the tanh form; κ its kKappa.
const SQRT_2_PI: f32 = 0.797884561;
const KAPPA: f32 = 0.044715;

fn exp_f32(x: f32) -> f32 {
  // n from x clamped to where e^x is finite and nonzero in f32 (|n| ≤ 150, so each ldexp below
  // stays in range); r from x itself, so that a NaN stays NaN and x > 89 overflows to inf.
  let n = round(clamp(x, -104.0, 89.0) * LOG2E);
  let r = (x - n * LN2_HI) - n * LN2_LO;
  let q = 0.49999994 + r * (0.166665211 + r * (0.041668389 + r * (0.00836873055 + r * 0.00138145708)));
  let e = 1.0 + (r + r * r * q);
  // 2ⁿ in two halves so that each ldexp's exponent is in range; the second rounds once, to inf,
  // a subnormal or 0 where the result is out of the normal range.
  let k = i32(n);
  let h = k / 2;
  // Below −104 (e^x < 2⁻¹⁵⁰) r is outside the polynomial's range: the result is 0.
  return select(ldexp(ldexp(e, h), k - h), 0.0, x < -104.0);
}

fn tanh_f32(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.9) {
    let s = x * x;
    let q = -0.333333313 + s * (0.133332938 + s * (-0.0539626665 + s * (0.0218312275 + s * (-0.00871566311 + s * (0.00325008505 + s * (-0.000967463187 + s * 0.000159149349))))));
    return x + x * s * q;
  }
  // e^2|x| ≥ 6.05, so 2/(e + 1) ≤ 0.29 and the subtraction loses nothing; e = inf gives 1.
  let t = 1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0);
  return select(t, -t, x < 0.0);
}

fn erf_f32(z: f32) -> f32 {
  let a = abs(z);
  if (a < 0.92) {
    let s = z * z;
    let q = 0.128379151 + s * (-0.376124978 + s * (0.112818457 + s * (-0.0267677195 + s * (0.00499483058 + s * -0.000599940598))));
    return z + z * q;
  }
  // R(a) ≈ log(erfc(a)) on [0.92, 3.92].
  let r = 0.000160403375 + a * (-1.12943411 + a * (-0.633543491 + a * (-0.108011924 + a * (0.0248951819 + a * (-0.00405343389 + a * (0.000396685937 + a * (-1.43075413e-5 + a * -5.22175753e-7)))))));
  let e = select(1.0 - exp_f32(r), 1.0, a >= 3.92);
  return select(e, -e, z < 0.0);
}

fn forward_of(x: f32) -> f32 {
  switch FN {
    case 0u: {
      return tanh_f32(x);
    }
    case 1u: {
      return 1.0 / (1.0 + exp_f32(-x));
    }
    case 2u: {
      return x * 0.5 * (1.0 + erf_f32(x * SQRT1_2));
    }
    case 3u: {
      let inner = SQRT_2_PI * (x + KAPPA * (x * x * x));
      return 0.5 * x * (1.0 + tanh_f32(inner));
    }
    default: {
      return x / (1.0 + exp_f32(-x));
    }
  }
}

// `v` is ref: y for Tanh and Sigmoid, x for the others; `g` is dY.
fn backward_of(v: f32, g: f32) -> f32 {
  switch FN {
    case 0u: {
      return g * (1.0 - v * v);
    }
    case 1u: {
      return g * (1.0 - v) * v;
    }
    case 2u: {
      let x = v;
      let cdf = 0.5 * (1.0 + erf_f32(x * SQRT1_2));
      let pdf = INV_SQRT_2PI * exp_f32(x * x * -0.5);
      return g * (cdf + x * pdf);
    }
    case 3u: {
      let x = v;
      let x_sq = x * x;
      let t = tanh_f32(SQRT_2_PI * (x + KAPPA * (x_sq * x)));
      let left_derivative = 0.5 * (1.0 + t);
      let inner_derivative = SQRT_2_PI * (1.0 + 3.0 * KAPPA * x_sq);
      let right_derivative = 0.5 * x * (1.0 - t * t) * inner_derivative;
      return g * (left_derivative + right_derivative);
    }
    default: {
      let x = v;
      let s = 1.0 / (1.0 + exp_f32(-x));
      return g * s * (1.0 + x * (1.0 - s));
    }
  }
}

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  dst[i] = forward_of(src[i]);
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  dst[i] = backward_of(src[i], dy[i]);
}
