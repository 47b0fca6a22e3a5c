// softmax.wgsl — Softmax and LogSoftmax over the last dimension, forward and backward.
//
// Math:     the input is `rows` rows of `cols` values; the override LOG picks the function, written
//           in the order of operations of PyTorch 1.13's CPU kernels (vec_softmax_lastdim,
//           vec_log_softmax_lastdim and their backward):
//           LOG 0 Softmax     forward  m = max_j x_j, e_j = exp(x_j − m), y_j = e_j·(1/Σ_k e_k)
//                             backward dX_j = (dY_j − Σ_k dY_k·y_k)·y_j
//           LOG 1 LogSoftmax  forward  y_j = (x_j − m) − log(Σ_k exp(x_k − m))
//                             backward dX_j = dY_j − exp(y_j)·Σ_k dY_k
//           Subtracting the row's max keeps every exp ≤ 1 and the sum in [1, cols]: no overflow.
// Accuracy: exp_f32 is kernels/pointwise.wgsl's (the same code: Cody–Waite reduction, degree-6
//           polynomial, measured ≤ 1.25 ulp on lavapipe). log_f32 is fdlibm's logf scheme:
//           x = 2^k·(1 + f), √½ ≤ 1 + f < √2, s = f/(2 + f), log(1 + f) = f − (f²/2 − s·(f²/2 +
//           R(s²))) with R the first four terms of its series 2s²/3 + 2s⁴/5 + …; WGSL's log is off by
//           2000 ulp near 1 on lavapipe, where a row with one dominant logit puts its sum.
//           Worst errors measured against float64 (tests/activations_test.ts, which allows 2 ulp):
//           exp_f32 1.25 ulp, log_f32 0.72 ulp.
// Bindings: @group(0) 0 src (storage, read: x in forward, y in backward), 1 dy (storage, read;
//           backward only), 2 dst (storage, read_write: y or dX), 3 p: Params (uniform).
// Dispatch: one workgroup per row; grid = grid1d(rows), the row is wid.x + wid.y·nwg.x. Its WG
//           invocations (a power of two) stride over the row's columns, each keeping a partial
//           max or sum, then halve them in workgroup memory (log2(WG) steps). forward writes e_j
//           to dst before it knows the sum and scales it afterwards, so x is read twice, not three
//           times; each invocation rereads only what it wrote itself.

struct Params {
  rows: u32,
  cols: u32,
}

override WG: u32 = 64u;
override LOG: u32 = 0u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> partial: array<f32, WG>;

const LOG2E: f32 = 1.44269504;
// ln2 = LN2_HI + LN2_LO; LN2_HI has 15 significant bits, so n·LN2_HI is exact for |n| < 512.
const LN2_HI: f32 = 0.693145752;
const LN2_LO: f32 = 1.42860677e-6;
const SQRT1_2: f32 = 0.707106781;

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

// log(x) for a positive normal x (here a row's sum, in [1, cols]).
fn log_f32(x: f32) -> f32 {
  let parts = frexp(x);
  var m = parts.fract;
  var k = parts.exp;
  if (m < SQRT1_2) {
    m = 2.0 * m;
    k = k - 1;
  }
  let f = m - 1.0;
  let s = f / (2.0 + f);
  let z = s * s;
  let r = z * (0.666666687 + z * (0.400000006 + z * (0.285714298 + z * 0.222222224)));
  let hfsq = 0.5 * f * f;
  let kf = f32(k);
  return kf * LN2_HI + (f - (hfsq - (s * (hfsq + r) + kf * LN2_LO)));
}

// The workgroup's max of `v`, returned to every invocation.
fn reduce_max(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      partial[lid] = max(partial[lid], partial[lid + k]);
    }
    workgroupBarrier();
  }
  let out = partial[0];
  // Everyone has read partial[0] before the next reduction overwrites it.
  workgroupBarrier();
  return out;
}

// The workgroup's sum of `v`, returned to every invocation.
fn reduce_sum(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      partial[lid] = partial[lid] + partial[lid + k];
    }
    workgroupBarrier();
  }
  let out = partial[0];
  workgroupBarrier();
  return out;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  // The row depends only on the workgroup, so this return keeps the barriers below uniform.
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  var m = src[base];
  for (var j = lid.x; j < p.cols; j += WG) {
    m = max(m, src[base + j]);
  }
  m = reduce_max(lid.x, m);
  var s = 0.0;
  for (var j = lid.x; j < p.cols; j += WG) {
    let e = exp_f32(src[base + j] - m);
    s += e;
    if (LOG == 0u) {
      dst[base + j] = e;
    }
  }
  s = reduce_sum(lid.x, s);
  if (LOG == 0u) {
    let inv = 1.0 / s;
    for (var j = lid.x; j < p.cols; j += WG) {
      dst[base + j] = dst[base + j] * inv;
    }
  } else {
    let log_sum = log_f32(s);
    for (var j = lid.x; j < p.cols; j += WG) {
      dst[base + j] = (src[base + j] - m) - log_sum;
    }
  }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  // Softmax needs Σ dY·y, LogSoftmax Σ dY.
  var s = 0.0;
  for (var j = lid.x; j < p.cols; j += WG) {
    if (LOG == 0u) {
      s += dy[base + j] * src[base + j];
    } else {
      s += dy[base + j];
    }
  }
  s = reduce_sum(lid.x, s);
  for (var j = lid.x; j < p.cols; j += WG) {
    let g = dy[base + j];
    let y = src[base + j];
    if (LOG == 0u) {
      dst[base + j] = (g - s) * y;
    } else {
      dst[base + j] = g - exp_f32(y) * s;
    }
  }
}
