// batchnorm.wgsl — BatchNorm1d over a [B×F] batch, as PyTorch computes it.
//
// Math (train):  μ = Σ_b x/B,  σ² = Σ_b (x−μ)²/B (biased),  r = 1/√(σ²+eps)
//                y = (x−μ)·r·γ + β
//                running_mean ← (1−momentum)·running_mean + momentum·μ
//                running_var  ← (1−momentum)·running_var  + momentum·σ²·B/(B−1) (unbiased)
//                num_batches_tracked += 1
// Math (eval):   y = (x−running_mean)/√(running_var+eps)·γ + β (batch statistics when !TRACK)
// Math (backward, train statistics): x̂ = (x−μ)·r
//                dγ += Σ_b dy·x̂,  dβ += Σ_b dy
//                dx = γ·r·(dy − Σ_b dy/B − x̂·Σ_b(dy·x̂)/B)
//           Two passes over the column (mean, then variance) keep σ² accurate in f32.
// Layout:   `saved` = [μ (F), r (F)] from the last training forward, read by backward;
//           `state` = [running_mean (F), running_var (F), num_batches_tracked (1, u32 bits)].
// Bindings: forward_*: 0 x, 1 gamma, 2 beta (storage, read), 3 y, 4 saved, 5 state (storage,
//           read_write), 6 p: Params (uniform).
//           backward:  0 x, 1 gamma, 7 dy, 8 saved_in (storage, read), 9 dx, 10 dgamma,
//           11 dbeta (storage, read_write), 6 p.
// Params:   bound as a read-only storage struct, not a uniform. lavapipe (Mesa 22.3) inlines
//           uniform loop bounds: with p.B ≤ 32 it recompiled this kernel, unrolled, each time
//           the pipeline was bound again in a pass: 6.6 ms a dispatch at B = 16 and 21 ms at
//           B = 32 instead of 0.1 ms. The few loads of p cost nothing measurable anywhere.
// Dispatch: one invocation per feature (a column loop over the batch; neighbouring lanes read
//           neighbouring features); workgroup WG; grid = ceil(F / WG).

struct Params {
  B: u32,
  F: u32,
  eps: f32,
  momentum: f32,
}

override WG: u32 = 32u;
override AFFINE: bool = true;
override TRACK: bool = true;

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

fn scale_shift(f: u32) -> vec2<f32> {
  if (AFFINE) {
    return vec2<f32>(gamma[f], beta[f]);
  }
  return vec2<f32>(1.0, 0.0);
}

// Returns (μ, σ²) of column f over the batch, σ² biased.
fn batch_stats(f: u32) -> vec2<f32> {
  var s = 0.0;
  for (var b = 0u; b < p.B; b++) {
    s += x[b * p.F + f];
  }
  let mean = s / f32(p.B);
  var q = 0.0;
  for (var b = 0u; b < p.B; b++) {
    let d = x[b * p.F + f] - mean;
    q += d * d;
  }
  return vec2<f32>(mean, q / f32(p.B));
}

fn normalize(f: u32, mean: f32, rstd: f32) {
  let gb = scale_shift(f);
  for (var b = 0u; b < p.B; b++) {
    let i = b * p.F + f;
    y[i] = (x[i] - mean) * rstd * gb.x + gb.y;
  }
}

@compute @workgroup_size(WG)
fn forward_train(@builtin(global_invocation_id) gid: vec3<u32>) {
  let f = gid.x;
  if (f >= p.F) {
    return;
  }
  let st = batch_stats(f);
  let rstd = inverseSqrt(st.y + p.eps);
  normalize(f, st.x, rstd);
  saved[f] = st.x;
  saved[p.F + f] = rstd;
  if (TRACK) {
    let unbiased = st.y * f32(p.B) / f32(p.B - 1u);
    state[f] = (1.0 - p.momentum) * state[f] + p.momentum * st.x;
    state[p.F + f] = (1.0 - p.momentum) * state[p.F + f] + p.momentum * unbiased;
    if (f == 0u) {
      state[2u * p.F] = bitcast<f32>(bitcast<u32>(state[2u * p.F]) + 1u);
    }
  }
}

@compute @workgroup_size(WG)
fn forward_eval(@builtin(global_invocation_id) gid: vec3<u32>) {
  let f = gid.x;
  if (f >= p.F) {
    return;
  }
  var mean: f32;
  var variance: f32;
  if (TRACK) {
    mean = state[f];
    variance = state[p.F + f];
  } else {
    let st = batch_stats(f);
    mean = st.x;
    variance = st.y;
  }
  normalize(f, mean, inverseSqrt(variance + p.eps));
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let f = gid.x;
  if (f >= p.F) {
    return;
  }
  let mean = saved_in[f];
  let rstd = saved_in[p.F + f];
  var sum_dy = 0.0;
  var sum_dy_xhat = 0.0;
  for (var b = 0u; b < p.B; b++) {
    let i = b * p.F + f;
    let g = dy[i];
    sum_dy += g;
    sum_dy_xhat += g * (x[i] - mean) * rstd;
  }
  var g_scale = 1.0;
  if (AFFINE) {
    g_scale = gamma[f];
    dgamma[f] += sum_dy_xhat;
    dbeta[f] += sum_dy;
  }
  let k = g_scale * rstd;
  let inv_b = 1.0 / f32(p.B);
  for (var b = 0u; b < p.B; b++) {
    let i = b * p.F + f;
    let xhat = (x[i] - mean) * rstd;
    dx[i] = k * (dy[i] - sum_dy * inv_b - xhat * sum_dy_xhat * inv_b);
  }
}
