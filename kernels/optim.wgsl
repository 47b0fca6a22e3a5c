// optim.wgsl — PyTorch 1.13's optimizer update rules (SGD, Adam/AdamW, RMSprop), element-wise over
// a flat range of parameters; `tick`, which advances the step counter on the GPU so that many
// steps can be encoded into one submission; and `norm_*`, PyTorch's clip_grad_norm_ as a
// deterministic two-stage reduction whose coefficient the updates multiply in.
//
// Math (g = grad, x = param, t = step count after tick; f32; ± is − when MAXIMIZE). The gradient
//       the rule sees is prepared in this order, each stage behind its override:
//         GRAD_SCALE  g = g·grad_scale                         (gradient accumulation: 1/k)
//         CLIP_VALUE  g = clamp(g, −clip_value, clip_value)    (PyTorch's clip_grad_value_)
//         CLIP_NORM   g = g·coef                               (PyTorch's clip_grad_norm_)
//   tick     t += 1; step_size = lr / (1 − β1^t); bc2_sqrt = sqrt(1 − β2^t)
//            (1 − β^t = −expm1(t·ln β), with ln β from the host, so it stays accurate for β → 1)
//   norm_partial_*  norm[2 + norm_base + w] = Σ g² of the prepared g (scaled, clamped) over the
//            units i ≡ w·WG + lane (mod NORM_WG·nwg) of this target, summed per lane in index
//            order, then over the workgroup's lanes by a fixed tree (deterministic)
//   norm_finish  total = sqrt(Σ_{j < norm_count} norm[2 + j]) (lanes sum j ≡ lane mod NORM_WG in
//            order, then a fixed tree); norm[1] = total;
//            norm[0] = coef = min(1, max_norm / (total + 1e-6))  (PyTorch 1.13's formula)
//   sgd      d = ±g + wd·x
//            buf = t == 1 ? d : μ·buf + (1 − dampening)·d      (PyTorch clones d on the first step)
//            d = NESTEROV ? d + μ·buf : buf                     (only when HAS_MOMENTUM)
//            x = x − lr·d
//   adam     d = ±g, then Adam: d += wd·x, or AdamW (DECOUPLED): x = x·(1 − lr·wd)
//            m = β1·m + (1 − β1)·d;  v = β2·v + (1 − β2)·d²
//            v̂ = AMSGRAD ? (vmax = max(vmax, v)) : v
//            x = x − step_size · m / (sqrt(v̂) / bc2_sqrt + eps)  (eps outside the square root)
//   rmsprop  d = ±g + wd·x;  v = α·v + (1 − α)·d²
//            avg = CENTERED ? sqrt(v − ḡ²) with ḡ = α·ḡ + (1 − α)·d : sqrt(v);  avg += eps
//            HAS_MOMENTUM ? (buf = μ·buf + d/avg; x = x − lr·buf) : x = x − lr·d/avg
// State:    one buffer of slots, each `stride` units long (units: f32, or vec4 in *_vec4):
//           sgd [momentum_buffer]; adam [exp_avg, exp_avg_sq, max_exp_avg_sq if AMSGRAD];
//           rmsprop [square_avg, momentum_buffer if HAS_MOMENTUM, grad_avg if CENTERED].
// Bindings: @group(0) 0 grad (storage, read), 1 param (storage, read_write), 2 state (storage,
//           read_write; a 16-byte dummy when the rule keeps none), 3 scalars (storage, read_write:
//           [t, step_size, bc2_sqrt, 0], written by tick), 4 p: Params (uniform), 5 norm
//           (storage, read_write: [coef, total, partials...] of clip_grad_norm_; a 16-byte dummy
//           without CLIP_NORM).
//           `*_vec4` and `*_scalar` entry points view the same bindings as vec4 or f32 arrays.
// Dispatch: tick: one workgroup of one invocation, encoded before the update. With CLIP_NORM,
//           then norm_partial_* per target (NORM_WG lanes; grid [G, 1, 1] with G ≤ 64 workgroups,
//           the target's partials at norm_base), then norm_finish (one workgroup of NORM_WG), all
//           before the updates. Updates: one invocation per unit (`*_vec4` when the length is a
//           multiple of 4, else `*_scalar`); workgroup WG; grid = grid1d(ceil(n / WG)); linear
//           index (wid.x + wid.y·nwg.x)·WG + lid.x.

struct Params {
  n: u32, // units to update (vec4s or floats)
  stride: u32, // distance between state slots, in the same units
  lr: f32,
  weight_decay: f32,
  momentum: f32,
  one_minus_dampening: f32,
  beta1: f32,
  beta2: f32,
  one_minus_beta1: f32, // 1 − β computed in f64 on the host, as PyTorch's Python scalars are
  one_minus_beta2: f32,
  log_beta1: f32, // ln β (0 when the rule has no bias correction)
  log_beta2: f32,
  eps: f32,
  alpha: f32,
  one_minus_alpha: f32,
  decay: f32, // AdamW: 1 − lr·wd
  clip_value: f32, // CLIP_VALUE: g is clamped to [−clip_value, clip_value] first
  grad_scale: f32, // GRAD_SCALE: g is multiplied by it before anything else
  max_norm: f32, // CLIP_NORM: clip_grad_norm_'s max_norm
  norm_base: u32, // norm_partial_*: this target's first partial
  norm_count: u32, // norm_finish: partials of all targets
}

override WG: u32 = 64u;
override MAXIMIZE: bool = false;
override HAS_MOMENTUM: bool = false;
override NESTEROV: bool = false;
override AMSGRAD: bool = false;
override DECOUPLED: bool = false;
override CENTERED: bool = false;
override CLIP_VALUE: bool = false;
override GRAD_SCALE: bool = false;
override CLIP_NORM: bool = false;

@group(0) @binding(0) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> state4: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> grad1: array<f32>;
@group(0) @binding(1) var<storage, read_write> param1: array<f32>;
@group(0) @binding(2) var<storage, read_write> state1: array<f32>;
@group(0) @binding(3) var<storage, read_write> scalars: array<f32, 4>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read_write> norm: array<f32>;

// Lanes of the norm reductions (fixed, so that the reduction order is the same everywhere).
const NORM_WG: u32 = 64u;
var<workgroup> lanes: array<f32, NORM_WG>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

// 1 − e^x for x ≤ 0. Near 0 a Taylor series avoids the cancellation of 1 − exp(x); beyond
// |x| = 0.5 the result is ≥ 0.39 and exp's relative error carries over unamplified.
fn one_minus_exp(x: f32) -> f32 {
  if (x > -0.5) {
    var term = x;
    var sum = x;
    for (var k = 2; k <= 12; k++) {
      term = term * x / f32(k);
      sum += term;
    }
    return -sum;
  }
  return 1.0 - exp(x);
}

@compute @workgroup_size(1)
fn tick() {
  let t = scalars[0] + 1.0;
  var bc1 = 1.0;
  var bc2 = 1.0;
  if (p.log_beta1 < 0.0) {
    bc1 = one_minus_exp(t * p.log_beta1);
  }
  if (p.log_beta2 < 0.0) {
    bc2 = one_minus_exp(t * p.log_beta2);
  }
  scalars[0] = t;
  scalars[1] = p.lr / bc1;
  scalars[2] = sqrt(bc2);
  scalars[3] = 0.0;
}

// The gradient scaled (GRAD_SCALE) and clamped to ±clip_value (CLIP_VALUE): what the norm sums.
fn prepared(g: vec4<f32>) -> vec4<f32> {
  var c = g;
  if (GRAD_SCALE) {
    c = c * p.grad_scale;
  }
  if (CLIP_VALUE) {
    c = clamp(c, vec4<f32>(-p.clip_value), vec4<f32>(p.clip_value));
  }
  return c;
}

// The prepared gradient times clip_grad_norm_'s coefficient (CLIP_NORM), then ±g for MAXIMIZE.
fn signed(g: vec4<f32>) -> vec4<f32> {
  var c = prepared(g);
  if (CLIP_NORM) {
    c = c * norm[0];
  }
  return select(c, -c, MAXIMIZE);
}

// Sums `lanes` into lanes[0] by a fixed tree; every lane must call it.
fn reduce_lanes(lane: u32) {
  workgroupBarrier();
  for (var k = NORM_WG / 2u; k > 0u; k = k / 2u) {
    if (lane < k) {
      lanes[lane] += lanes[lane + k];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(NORM_WG)
fn norm_partial_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = wid.x * NORM_WG + lid.x; i < p.n; i += nwg.x * NORM_WG) {
    let g = prepared(grad4[i]);
    s += dot(g, g);
  }
  lanes[lid.x] = s;
  reduce_lanes(lid.x);
  if (lid.x == 0u) {
    norm[2u + p.norm_base + wid.x] = lanes[0];
  }
}

@compute @workgroup_size(NORM_WG)
fn norm_partial_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = wid.x * NORM_WG + lid.x; i < p.n; i += nwg.x * NORM_WG) {
    let g = prepared(vec4<f32>(grad1[i])).x;
    s += g * g;
  }
  lanes[lid.x] = s;
  reduce_lanes(lid.x);
  if (lid.x == 0u) {
    norm[2u + p.norm_base + wid.x] = lanes[0];
  }
}

@compute @workgroup_size(NORM_WG)
fn norm_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var j = lid.x; j < p.norm_count; j += NORM_WG) {
    s += norm[2u + j];
  }
  lanes[lid.x] = s;
  reduce_lanes(lid.x);
  if (lid.x == 0u) {
    let total = sqrt(lanes[0]);
    norm[1] = total;
    norm[0] = min(1.0, p.max_norm / (total + 1e-6));
  }
}

struct Sgd {
  x: vec4<f32>,
  buf: vec4<f32>,
}

fn sgd_rule(g: vec4<f32>, x: vec4<f32>, buf_old: vec4<f32>) -> Sgd {
  var d = signed(g);
  if (p.weight_decay != 0.0) {
    d = d + p.weight_decay * x;
  }
  var buf = buf_old;
  if (HAS_MOMENTUM) {
    if (scalars[0] == 1.0) {
      buf = d;
    } else {
      buf = buf * p.momentum + p.one_minus_dampening * d;
    }
    if (NESTEROV) {
      d = d + p.momentum * buf;
    } else {
      d = buf;
    }
  }
  return Sgd(x - p.lr * d, buf);
}

struct Adam {
  x: vec4<f32>,
  m: vec4<f32>,
  v: vec4<f32>,
  vmax: vec4<f32>,
}

fn adam_rule(g: vec4<f32>, x_old: vec4<f32>, m_old: vec4<f32>, v_old: vec4<f32>, vmax_old: vec4<f32>) -> Adam {
  var d = signed(g);
  var x = x_old;
  if (DECOUPLED) {
    x = x * p.decay;
  } else if (p.weight_decay != 0.0) {
    d = d + p.weight_decay * x;
  }
  let m = m_old * p.beta1 + p.one_minus_beta1 * d;
  let v = v_old * p.beta2 + p.one_minus_beta2 * (d * d);
  var vmax = vmax_old;
  var vhat = v;
  if (AMSGRAD) {
    vmax = max(vmax_old, v);
    vhat = vmax;
  }
  let denom = sqrt(vhat) / scalars[2] + p.eps;
  return Adam(x - scalars[1] * (m / denom), m, v, vmax);
}

struct Rmsprop {
  x: vec4<f32>,
  v: vec4<f32>,
  buf: vec4<f32>,
  gavg: vec4<f32>,
}

fn rmsprop_rule(g: vec4<f32>, x: vec4<f32>, v_old: vec4<f32>, buf_old: vec4<f32>, gavg_old: vec4<f32>) -> Rmsprop {
  var d = signed(g);
  if (p.weight_decay != 0.0) {
    d = d + p.weight_decay * x;
  }
  let v = v_old * p.alpha + p.one_minus_alpha * (d * d);
  var gavg = gavg_old;
  var avg: vec4<f32>;
  if (CENTERED) {
    gavg = gavg_old * p.alpha + p.one_minus_alpha * d;
    avg = sqrt(v - gavg * gavg);
  } else {
    avg = sqrt(v);
  }
  avg = avg + p.eps;
  var buf = buf_old;
  if (HAS_MOMENTUM) {
    buf = buf_old * p.momentum + d / avg;
    return Rmsprop(x - p.lr * buf, v, buf, gavg);
  }
  return Rmsprop(x - p.lr * (d / avg), v, buf, gavg);
}

// RMSprop's slots: square_avg, then momentum_buffer, then grad_avg (each only when used).
fn gavg_slot() -> u32 {
  return select(1u, 2u, HAS_MOMENTUM);
}

@compute @workgroup_size(WG)
fn sgd_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  var buf = vec4<f32>(0.0);
  if (HAS_MOMENTUM) {
    buf = state4[i];
  }
  let r = sgd_rule(grad4[i], param4[i], buf);
  param4[i] = r.x;
  if (HAS_MOMENTUM) {
    state4[i] = r.buf;
  }
}

@compute @workgroup_size(WG)
fn sgd_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  var buf = 0.0;
  if (HAS_MOMENTUM) {
    buf = state1[i];
  }
  let r = sgd_rule(vec4<f32>(grad1[i]), vec4<f32>(param1[i]), vec4<f32>(buf));
  param1[i] = r.x.x;
  if (HAS_MOMENTUM) {
    state1[i] = r.buf.x;
  }
}

@compute @workgroup_size(WG)
fn adam_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  let s = p.stride;
  var vmax = vec4<f32>(0.0);
  if (AMSGRAD) {
    vmax = state4[2u * s + i];
  }
  let r = adam_rule(grad4[i], param4[i], state4[i], state4[s + i], vmax);
  param4[i] = r.x;
  state4[i] = r.m;
  state4[s + i] = r.v;
  if (AMSGRAD) {
    state4[2u * s + i] = r.vmax;
  }
}

@compute @workgroup_size(WG)
fn adam_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  let s = p.stride;
  var vmax = 0.0;
  if (AMSGRAD) {
    vmax = state1[2u * s + i];
  }
  let r = adam_rule(vec4<f32>(grad1[i]), vec4<f32>(param1[i]), vec4<f32>(state1[i]), vec4<f32>(state1[s + i]), vec4<f32>(vmax));
  param1[i] = r.x.x;
  state1[i] = r.m.x;
  state1[s + i] = r.v.x;
  if (AMSGRAD) {
    state1[2u * s + i] = r.vmax.x;
  }
}

@compute @workgroup_size(WG)
fn rmsprop_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  let s = p.stride;
  var buf = vec4<f32>(0.0);
  var gavg = vec4<f32>(0.0);
  if (HAS_MOMENTUM) {
    buf = state4[s + i];
  }
  if (CENTERED) {
    gavg = state4[gavg_slot() * s + i];
  }
  let r = rmsprop_rule(grad4[i], param4[i], state4[i], buf, gavg);
  param4[i] = r.x;
  state4[i] = r.v;
  if (HAS_MOMENTUM) {
    state4[s + i] = r.buf;
  }
  if (CENTERED) {
    state4[gavg_slot() * s + i] = r.gavg;
  }
}

@compute @workgroup_size(WG)
fn rmsprop_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  let s = p.stride;
  var buf = 0.0;
  var gavg = 0.0;
  if (HAS_MOMENTUM) {
    buf = state1[s + i];
  }
  if (CENTERED) {
    gavg = state1[gavg_slot() * s + i];
  }
  let r = rmsprop_rule(vec4<f32>(grad1[i]), vec4<f32>(param1[i]), vec4<f32>(state1[i]), vec4<f32>(buf), vec4<f32>(gavg));
  param1[i] = r.x.x;
  state1[i] = r.v.x;
  if (HAS_MOMENTUM) {
    state1[s + i] = r.buf.x;
  }
  if (CENTERED) {
    state1[gavg_slot() * s + i] = r.gavg.x;
  }
}
