// elementwise_loss.wgsl — losses that compare an output with an f32 target of its shape element
// by element (MSELoss, L1Loss, BCEWithLogitsLoss): loss and gradient in one pass per element with
// a partial sum per workgroup, then a one-workgroup reduction into a LossStats accumulator.
//
// Math (element i of N, output x, target t, d = x − t; the gradient of the reduced loss):
//           KIND 0, MSE:  ℓ_i = d·d                        dx_i = scale·d      (scale = 2/N or 2)
//           KIND 1, L1:   ℓ_i = |d|                        dx_i = scale·sign(d) (scale = 1/N or 1;
//                         sign(0) = 0, as PyTorch's sgn)
//           KIND 2, BCE with logits, m = max(−x, 0), σ = 1 / (1 + exp(−x)):
//                         ℓ_i = (1 − t)·x + m + log(exp(−m) + exp(−x − m))
//                         dx_i = (σ − t) / N (sum: no division)
//             with POS_WEIGHTED, pw = pos_weight[i mod O] (O = the last dimension) and
//             lw = (pw − 1)·t + 1:
//                         ℓ_i = (1 − t)·x + lw·(log(exp(−m) + exp(−x − m)) + m)
//                         dx_i = ((pw·t + 1 − t)·σ − pw·t) / N
//           The max-shift keeps exp from overflowing; the operations are in PyTorch 1.13's order
//           (aten/src/ATen/native/Loss.cpp), so float32 results are close to its bit for bit.
//           scale is computed on the CPU in f64 and rounded to f32, as PyTorch rounds its `norm`.
// Reduction: `elements` writes partial[g] = Σ ℓ_i over workgroup g's elements (a tree in
//           workgroup memory); `reduce` (one workgroup) sums the G partials, loss = Σ / denom
//           (MEAN; denom = N) or Σ (sum), and adds the batch to acc as cross_entropy.wgsl does:
//           acc[0] += loss, acc[1] += 1, acc[3] += rows, acc[4] = loss, acc[5] = first non-finite
//           batch + 1, acc[6] += 1, and acc[7] += 1: a batch without accuracy (acc[2] unchanged),
//           so LossStats.read reports NaN accuracy.
// Bindings: elements: 0 outputs (storage, read), 1 targets (storage, read), 2 pos_weight
//           (storage, read, O f32; unread unless POS_WEIGHTED), 3 doutputs (storage, read_write),
//           4 partial (storage, read_write, G f32), 5 p: Params (uniform).
//           reduce: 6 partial_in (storage, read: partial), 7 acc (storage, read_write, 16 f32), 5 p.
// Dispatch: elements: one invocation per element, grid = grid1d(G), G = ceil(N / WG) (a 2-D grid
//           past 65535 workgroups may hold more than G: those return); reduce: one workgroup of
//           RWG invocations, grid (1, 1, 1). WG and RWG are powers of two <= 256.

struct Params {
  N: u32,
  O: u32,
  G: u32,
  rows: u32,
  scale: f32,
  denom: f32,
  _pad0: u32,
  _pad1: u32,
}

override WG: u32 = 64u;
override RWG: u32 = 64u;
override KIND: u32 = 0u;
override MEAN: bool = true;
override POS_WEIGHTED: bool = false;

@group(0) @binding(0) var<storage, read> outputs: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read> pos_weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> doutputs: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> partial_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> acc: array<f32>;

var<workgroup> sums: array<f32, 256>;

// BCE with logits of element i: (loss, gradient before the mean's division).
fn bce(i: u32, x: f32, t: f32) -> vec2<f32> {
  let m = max(-x, 0.0);
  let lse = log(exp(-m) + exp(-x - m));
  let sig = 1.0 / (1.0 + exp(-x));
  if (POS_WEIGHTED) {
    let pw = pos_weight[i % p.O];
    let lw = (pw - 1.0) * t + 1.0;
    let pt = pw * t;
    return vec2<f32>((1.0 - t) * x + lw * (lse + m), (pt + 1.0 - t) * sig - pt);
  }
  return vec2<f32>((1.0 - t) * x + m + lse, sig - t);
}

@compute @workgroup_size(WG)
fn elements(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= p.G) {
    return; // the whole workgroup: the barrier below is reached by all or none
  }
  let i = g * WG + lid.x;
  var loss = 0.0;
  if (i < p.N) {
    let x = outputs[i];
    let t = targets[i];
    let d = x - t;
    if (KIND == 0u) {
      loss = d * d;
      doutputs[i] = p.scale * d;
    } else if (KIND == 1u) {
      loss = abs(d);
      doutputs[i] = p.scale * sign(d);
    } else {
      let lg = bce(i, x, t);
      loss = lg.x;
      doutputs[i] = select(lg.y, lg.y / p.denom, MEAN);
    }
  }
  sums[lid.x] = loss;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid.x < stride) {
      sums[lid.x] += sums[lid.x + stride];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    partial[g] = sums[0];
  }
}

@compute @workgroup_size(RWG)
fn reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var g = lid.x; g < p.G; g += RWG) {
    s += partial_in[g];
  }
  sums[lid.x] = s;
  workgroupBarrier();
  for (var stride = RWG / 2u; stride > 0u; stride /= 2u) {
    if (lid.x < stride) {
      sums[lid.x] += sums[lid.x + stride];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    let loss = select(sums[0], sums[0] / p.denom, MEAN);
    // Exponent bits all ones means Inf or NaN (compilers may fold `x != x` away).
    let finite = (bitcast<u32>(loss) & 0x7f800000u) != 0x7f800000u;
    if (!finite && acc[5] == 0.0) {
      acc[5] = acc[6] + 1.0;
    }
    acc[0] += loss;
    acc[1] += 1.0;
    acc[3] += f32(p.rows);
    acc[4] = loss;
    acc[6] += 1.0;
    acc[7] += 1.0;
  }
}
