// batchnorm2d.wgsl — BatchNorm2d over an NCHW batch, as PyTorch computes it: statistics per
// channel over the N·H·W values of that channel.
//
// Math (train):  m = N·H·W;  μ = Σ x/m,  σ² = Σ (x−μ)²/m (biased),  r = 1/√(σ²+eps)
//                y = (x−μ)·r·γ + β
//                running_mean ← (1−momentum)·running_mean + momentum·μ
//                running_var  ← (1−momentum)·running_var  + momentum·σ²·m/(m−1) (unbiased)
//                num_batches_tracked += 1
// Math (eval):   y = (x−running_mean)/√(running_var+eps)·γ + β (batch statistics when !TRACK)
// Fused:         with ACT, y = a(bn(x)), a(v) = v > 0 ? v : SLOPE·v (a following ReLU or
//                LeakyReLU with slope ≥ 0, as activation.wgsl; +0, not −0, when SLOPE = 0),
//                and backward first takes dy ← bn(x) > 0 ? dy : SLOPE·dy, with bn(x)
//                recomputed from x by the forward's own expression (no read of y).
// Math (backward, train statistics): x̂ = (x−μ)·r
//                dγ += Σ dy·x̂,  dβ += Σ dy
//                dx = γ·r·(dy − Σ dy/m − x̂·Σ(dy·x̂)/m)
//           Two passes (mean, then variance) keep σ² accurate in f32. Sums are per-lane strided
//           sums, then a fixed-order tree over the workgroup: the same bits every run.
// Layout:   as batchnorm.wgsl: `saved` = [μ (C), r (C)] of the last training forward;
//           `state` = [running_mean (C), running_var (C), num_batches_tracked (1, u32 bits)].
// Bindings: forward_*: 0 x, 1 gamma, 2 beta (storage, read), 3 y, 4 saved, 5 state (storage,
//           read_write), 6 p: Params (storage, read; see batchnorm.wgsl).
//           backward:  0 x, 1 gamma, 2 beta, 7 dy, 8 saved_in (storage, read), 9 dx, 10 dgamma,
//           11 dbeta (storage, read_write), 6 p.
//           The *4 entry points (H·W a multiple of 4) bind the same buffers as vec4 views,
//           12 x_v4 for x, 13 y_v4 for y, 14 dy_v4 for dy, 15 dx_v4 for dx, and work on 4
//           values of a plane at a time: Mesa's software adapters turn each storage load into
//           a loop over the SIMD lanes, so fewer, wider loads are cheaper.
// Dispatch: one workgroup of WG = 64 invocations per channel (WG sizes the reduction array);
//           grid = [C, 1, 1]. Lane l visits the channel's values l, l + WG, … (vec4 values in the
//           *4 entry points) with its position carried along (no division, no read of p, in the
//           loops: on Mesa each storage read of p in a loop costs as much as a data load).

struct Params {
  N: u32,
  C: u32,
  HW: u32,
  eps: f32,
  momentum: f32,
}

override AFFINE: bool = true;
override TRACK: bool = true;
override ACT: bool = false;
override SLOPE: f32 = 0.0;

const WG = 64u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> saved: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;
@group(0) @binding(6) var<storage, read> p: Params;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read> saved_in: array<f32>;
@group(0) @binding(9) var<storage, read_write> dx: array<f32>;
@group(0) @binding(10) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(11) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(12) var<storage, read> x_v4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> y_v4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read> dy_v4: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read_write> dx_v4: array<vec4<f32>>;

var<workgroup> red: array<vec2<f32>, 64>;

// The fused activation and its gradient mask at pre-activation z (the identity without ACT).
// With SLOPE = 0 (ReLU) the negative side is +0, as PyTorch's relu gives, whether or not a
// compiler folds 0·v.
fn act(v: f32) -> f32 {
  let neg = select(SLOPE * v, 0.0, SLOPE == 0.0);
  return select(v, select(neg, v, v > 0.0), ACT);
}

fn act4(v: vec4<f32>) -> vec4<f32> {
  let neg = select(SLOPE * v, vec4<f32>(0.0), SLOPE == 0.0);
  return select(v, select(neg, v, v > vec4<f32>(0.0)), ACT);
}

fn act_grad(g: f32, z: f32) -> f32 {
  let neg = select(SLOPE * g, 0.0, SLOPE == 0.0);
  return select(g, select(neg, g, z > 0.0), ACT);
}

fn act_grad4(g: vec4<f32>, z: vec4<f32>) -> vec4<f32> {
  let neg = select(SLOPE * g, vec4<f32>(0.0), SLOPE == 0.0);
  return select(g, select(neg, g, z > vec4<f32>(0.0)), ACT);
}

// The workgroup's sum of v (two sums at once), in a fixed order; every lane gets it.
fn total(v: vec2<f32>, li: u32) -> vec2<f32> {
  red[li] = v;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half >>= 1u) {
    if (li < half) {
      red[li] += red[li + half];
    }
    workgroupBarrier();
  }
  let s = red[0];
  workgroupBarrier();
  return s;
}

// A lane's walk over one channel's values (vec4s in the *4 entry points, width 4): a plane is
// `hw` of them, planes are `plane` apart, and the step of WG is `dn` whole planes plus `dk`
// (< hw). Everything is read from p once, so the loops load only data.
struct Walk {
  N: u32,
  hw: u32,
  plane: u32,
  dn: u32,
  dk: u32,
  step: u32,
  wrap: u32,
}

fn walk(width: u32) -> Walk {
  let hw = p.HW / width;
  let plane = p.C * hw;
  let dn = WG / hw;
  let dk = WG % hw;
  return Walk(p.N, hw, plane, dn, dk, dn * plane + dk, plane - hw);
}

// Lane li's position in channel c: image n, offset k in the plane, flat index i.
struct Pos {
  n: u32,
  k: u32,
  i: u32,
}

fn first(li: u32, c: u32, w: Walk) -> Pos {
  let n = li / w.hw;
  let k = li % w.hw;
  return Pos(n, k, n * w.plane + c * w.hw + k);
}

fn next(q: Pos, w: Walk) -> Pos {
  var k = q.k + w.dk;
  var n = q.n + w.dn;
  var i = q.i + w.step;
  if (k >= w.hw) {
    k -= w.hw;
    n += 1u;
    i += w.wrap;
  }
  return Pos(n, k, i);
}

// (μ, σ²) of channel c, σ² biased.
fn batch_stats(c: u32, li: u32) -> vec2<f32> {
  let w = walk(1u);
  let m = f32(p.N * p.HW);
  var s = 0.0;
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    s += x[q.i];
  }
  let mean = total(vec2<f32>(s, 0.0), li).x / m;
  var ss = 0.0;
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    let d = x[q.i] - mean;
    ss += d * d;
  }
  return vec2<f32>(mean, total(vec2<f32>(ss, 0.0), li).x / m);
}

// (γ, β) of channel c: (1, 0) without AFFINE.
fn affine(c: u32) -> vec2<f32> {
  if (AFFINE) {
    return vec2<f32>(gamma[c], beta[c]);
  }
  return vec2<f32>(1.0, 0.0);
}

fn normalize(c: u32, li: u32, mean: f32, rstd: f32) {
  let w = walk(1u);
  let gb = affine(c);
  let scale = rstd * gb.x;
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    y[q.i] = act(pre(x[q.i], mean, scale, gb.y));
  }
}

// Lane 0's epilogue of a training forward: the saved statistics and the running estimates.
fn update_stats(c: u32, st: vec2<f32>, rstd: f32) {
  saved[c] = st.x;
  saved[p.C + c] = rstd;
  if (TRACK) {
    let m = f32(p.N * p.HW);
    let unbiased = st.y * m / (m - 1.0);
    state[c] = (1.0 - p.momentum) * state[c] + p.momentum * st.x;
    state[p.C + c] = (1.0 - p.momentum) * state[p.C + c] + p.momentum * unbiased;
    if (c == 0u) {
      state[2u * p.C] = bitcast<f32>(bitcast<u32>(state[2u * p.C]) + 1u);
    }
  }
}

@compute @workgroup_size(WG)
fn forward_train(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wg.x;
  let st = batch_stats(c, li);
  let rstd = inverseSqrt(st.y + p.eps);
  normalize(c, li, st.x, rstd);
  if (li == 0u) {
    update_stats(c, st, rstd);
  }
}

@compute @workgroup_size(WG)
fn forward_eval(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wg.x;
  var mean: f32;
  var variance: f32;
  if (TRACK) {
    mean = state[c];
    variance = state[p.C + c];
  } else {
    let st = batch_stats(c, li);
    mean = st.x;
    variance = st.y;
  }
  normalize(c, li, mean, inverseSqrt(variance + p.eps));
}

// The pre-activation of the forward, recomputed from x by the same expression: backward's
// mask needs no read of y.
fn pre(v: f32, mean: f32, scale: f32, b: f32) -> f32 {
  return (v - mean) * scale + b;
}

fn pre4(v: vec4<f32>, mean: f32, scale: f32, b: f32) -> vec4<f32> {
  return (v - mean) * scale + b;
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wg.x;
  let w = walk(1u);
  let mean = saved_in[c];
  let rstd = saved_in[p.C + c];
  let gb = affine(c);
  let scale = rstd * gb.x;
  var part = vec2<f32>(0.0);
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    let v = x[q.i];
    let g = act_grad(dy[q.i], pre(v, mean, scale, gb.y));
    part += vec2<f32>(g, g * (v - mean) * rstd);
  }
  let sums = total(part, li);
  if (AFFINE && li == 0u) {
    dgamma[c] += sums.y;
    dbeta[c] += sums.x;
  }
  let inv_m = 1.0 / f32(p.N * p.HW);
  let mdy = sums.x * inv_m;
  let mdx = sums.y * inv_m;
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    let v = x[q.i];
    let g = act_grad(dy[q.i], pre(v, mean, scale, gb.y));
    dx[q.i] = scale * (g - mdy - (v - mean) * rstd * mdx);
  }
}

// ---- The vec4 entry points: the same math on 4 consecutive values of a plane at a time. ----

fn sum4(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

fn batch_stats4(c: u32, li: u32, w: Walk) -> vec2<f32> {
  let m = f32(p.N * p.HW);
  var s = vec4<f32>(0.0);
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    s += x_v4[q.i];
  }
  let mean = total(vec2<f32>(sum4(s), 0.0), li).x / m;
  var ss = vec4<f32>(0.0);
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    let d = x_v4[q.i] - mean;
    ss += d * d;
  }
  return vec2<f32>(mean, total(vec2<f32>(sum4(ss), 0.0), li).x / m);
}

fn normalize4(c: u32, li: u32, mean: f32, rstd: f32, w: Walk) {
  let gb = affine(c);
  let scale = rstd * gb.x;
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    y_v4[q.i] = act4(pre4(x_v4[q.i], mean, scale, gb.y));
  }
}

@compute @workgroup_size(WG)
fn forward_train4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wg.x;
  let w = walk(4u);
  let st = batch_stats4(c, li, w);
  let rstd = inverseSqrt(st.y + p.eps);
  normalize4(c, li, st.x, rstd, w);
  if (li == 0u) {
    update_stats(c, st, rstd);
  }
}

@compute @workgroup_size(WG)
fn forward_eval4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wg.x;
  let w = walk(4u);
  var mean: f32;
  var variance: f32;
  if (TRACK) {
    mean = state[c];
    variance = state[p.C + c];
  } else {
    let st = batch_stats4(c, li, w);
    mean = st.x;
    variance = st.y;
  }
  normalize4(c, li, mean, inverseSqrt(variance + p.eps), w);
}

@compute @workgroup_size(WG)
fn backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = wg.x;
  let w = walk(4u);
  let mean = saved_in[c];
  let rstd = saved_in[p.C + c];
  let gb = affine(c);
  let scale = rstd * gb.x;
  var sg = vec4<f32>(0.0);
  var sgx = vec4<f32>(0.0);
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    let v = x_v4[q.i];
    let g = act_grad4(dy_v4[q.i], pre4(v, mean, scale, gb.y));
    sg += g;
    sgx += g * (v - mean) * rstd;
  }
  let sums = total(vec2<f32>(sum4(sg), sum4(sgx)), li);
  if (AFFINE && li == 0u) {
    dgamma[c] += sums.y;
    dbeta[c] += sums.x;
  }
  let inv_m = 1.0 / f32(p.N * p.HW);
  let mdy = sums.x * inv_m;
  let mdx = sums.y * inv_m;
  for (var q = first(li, c, w); q.n < w.N; q = next(q, w)) {
    let v = x_v4[q.i];
    let g = act_grad4(dy_v4[q.i], pre4(v, mean, scale, gb.y));
    dx_v4[q.i] = scale * (g - mdy - (v - mean) * rstd * mdx);
  }
}
