// nll_loss.wgsl — negative log-likelihood on log-probabilities with u32 labels (PyTorch's
// NLLLoss): the denominator, then loss and gradient in one pass per row, then a one-workgroup
// reduction that accumulates the batch loss and accuracy on the GPU.
//
// Math (row r, label y, C classes, weights w (all 1 unless WEIGHTED); a row counts when y is not
//           the ignore index (IGNORE) and y < C):
//           D = Σ_{counted r} w_{y_r}                 (`denominator`; 1 for the sum reduction)
//           ℓ_r = −w_y·x_{r,y}
//           loss = (Σ_r ℓ_r) / D ('mean', MEAN) or Σ_r ℓ_r ('sum'); all rows ignored under 'mean'
//           gives 0 / 0 = NaN, as PyTorch 1.13
//           dx_{r,c} = [c = y]·w_y·g, g = −(1 / D) ('mean') or −1 ('sum')   (PyTorch's order)
//           correct_r = (first argmax_c x_{r,c}) == y, for counted rows.
// Ignored rows (y == ignore with IGNORE): no loss, gradient 0, no weight in D, no correct count,
//           and not among the samples. Bad labels: a row with y >= C that is not ignored (PyTorch
//           raises "Target y is out of bounds") reads nothing at index y: ℓ_r, dx and correct_r
//           are 0, it adds nothing to D, and the reduction flags the batch; LossStats.read throws
//           a LabelRangeError naming NLL.
// Reduction (`reduce`, one workgroup): acc[0] += loss, acc[1] += 1 (batches), acc[2] += Σ correct,
//           acc[3] += rows not ignored, acc[4] = loss (the last batch), acc[5] = 1 + index of the
//           first batch whose loss was not finite (0 while none), acc[6] += 1 (batches since the
//           reset). For the first batch (since the reset) holding a bad label, at its first such
//           row: acc[8] = 1 + batch index, acc[9] = label >> 16, acc[10] = label & 0xffff,
//           acc[11] = C, acc[12] = 1 (NLL's code; cross-entropy's is 0).
// Bindings: denominator: 1 labels (u32), 2 weights (storage, read), 8 denom (storage, read_write,
//           1 f32), 5 p: Params (uniform).
//           rows: 0 logp (storage, read, [B×C] log-probabilities), 1 labels, 2 weights, 3 dlogp
//           (storage, read_write), 4 row_stats (storage, read_write: [ℓ_r (B), correct_r (B)]),
//           8 denom, 5 p.
//           reduce: 6 row_stats_in (storage, read: row_stats), 1 labels, 7 acc (storage,
//           read_write, 16 f32), 8 denom, 5 p.
// Dispatch: denominator and reduce: one workgroup of RWG invocations, grid (1, 1, 1); rows: one
//           invocation per row, grid = grid1d(ceil(B / WG)). RWG is a power of two <= 256.

struct Params {
  B: u32,
  C: u32,
  ignore: u32,
  _pad: u32,
}

override WG: u32 = 64u;
override RWG: u32 = 64u;
override WEIGHTED: bool = false;
override IGNORE: bool = false;
override MEAN: bool = true;

@group(0) @binding(0) var<storage, read> logp: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogp: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_stats: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> row_stats_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> acc: array<f32>;
@group(0) @binding(8) var<storage, read_write> denom: array<f32>;

fn weight(c: u32) -> f32 {
  if (WEIGHTED) {
    return weights[c];
  }
  return 1.0;
}

fn ignored(y: u32) -> bool {
  return IGNORE && y == p.ignore;
}

var<workgroup> partial: array<vec3<f32>, 256>;
// The first bad row (B when none), min-reduced alongside the sums.
var<workgroup> first_bad: array<u32, 256>;

@compute @workgroup_size(RWG)
fn denominator(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var r = lid.x; r < p.B; r += RWG) {
    let y = labels[r];
    if (!ignored(y) && y < p.C) {
      s += weight(y);
    }
  }
  partial[lid.x] = vec3<f32>(s, 0.0, 0.0);
  workgroupBarrier();
  for (var stride = RWG / 2u; stride > 0u; stride /= 2u) {
    if (lid.x < stride) {
      partial[lid.x] += partial[lid.x + stride];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    denom[0] = select(1.0, partial[0].x, MEAN);
  }
}

@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (r >= p.B) {
    return;
  }
  let base = r * p.C;
  let y = labels[r];
  for (var c = 0u; c < p.C; c++) {
    dlogp[base + c] = 0.0;
  }
  row_stats[r] = 0.0;
  row_stats[p.B + r] = 0.0;
  if (ignored(y) || y >= p.C) {
    return; // out of range: logp[base + y] would be another row's, weights[y] past the end
  }
  var best = logp[base];
  var arg = 0u;
  for (var c = 1u; c < p.C; c++) {
    let v = logp[base + c];
    if (v > best) {
      best = v;
      arg = c;
    }
  }
  let wy = weight(y);
  let g = select(-1.0, -(1.0 / denom[0]), MEAN);
  dlogp[base + y] = wy * g;
  row_stats[r] = -(wy * logp[base + y]);
  row_stats[p.B + r] = select(0.0, 1.0, arg == y);
}

@compute @workgroup_size(RWG)
fn reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = vec3<f32>(0.0);
  var bad = p.B;
  for (var r = lid.x; r < p.B; r += RWG) {
    let y = labels[r];
    let counted = select(1.0, 0.0, ignored(y));
    s += vec3<f32>(row_stats_in[r], row_stats_in[p.B + r], counted);
    if (!ignored(y) && y >= p.C) {
      bad = min(bad, r);
    }
  }
  partial[lid.x] = s;
  first_bad[lid.x] = bad;
  workgroupBarrier();
  for (var stride = RWG / 2u; stride > 0u; stride /= 2u) {
    if (lid.x < stride) {
      partial[lid.x] += partial[lid.x + stride];
      first_bad[lid.x] = min(first_bad[lid.x], first_bad[lid.x + stride]);
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    let loss = select(partial[0].x, partial[0].x / denom[0], MEAN);
    // Exponent bits all ones means Inf or NaN (compilers may fold `x != x` away).
    let finite = (bitcast<u32>(loss) & 0x7f800000u) != 0x7f800000u;
    if (!finite && acc[5] == 0.0) {
      acc[5] = acc[6] + 1.0;
    }
    let row = first_bad[0];
    if (row < p.B && acc[8] == 0.0) {
      let y = labels[row];
      acc[8] = acc[6] + 1.0;
      acc[9] = f32(y >> 16u);
      acc[10] = f32(y & 0xffffu);
      acc[11] = f32(p.C);
      acc[12] = 1.0;
    }
    acc[0] += loss;
    acc[1] += 1.0;
    acc[2] += partial[0].y;
    acc[3] += partial[0].z;
    acc[4] = loss;
    acc[6] += 1.0;
  }
}
