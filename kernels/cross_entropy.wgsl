// cross_entropy.wgsl — softmax cross-entropy on logits: loss and gradient in one pass per row,
// then a one-workgroup reduction that accumulates the batch loss and accuracy on the GPU.
//
// Math (row r, label y, C classes, weights w (all 1 unless WEIGHTED), smoothing ε):
//           lse = m + log Σ_c exp(z_c − m), m = max_c z_c     (max-shifted: no overflow)
//           p_c = exp(z_c − lse)
//           ℓ_r = (1−ε)·w_y·(lse − z_y) + (ε/C)·Σ_c w_c·(lse − z_c)
//           loss = Σ_r ℓ_r / D, D = Σ_r w_{y_r}                 (PyTorch's 'mean' reduction)
//           dz_c = [(1−ε)·w_y·(p_c − [c = y]) + (ε/C)·(p_c·Σ_k w_k − w_c)] / D
//           With WEIGHTED every row recomputes D from the labels (O(B) per row; the unweighted
//           default uses D = B from Params).
//           correct_r = (first argmax_c z_c) == y.
// Bad labels: a row with y >= C (PyTorch raises "Target y is out of bounds") reads nothing at
//           index y: its ℓ_r, dz and correct_r are 0 and it adds nothing to a weighted D. The
//           reduction flags the batch; LossStats.read throws LabelRangeError.
// Reduction (`reduce`, one workgroup): acc[0] += loss, acc[1] += 1 (batches), acc[2] += Σ correct,
//           acc[3] += B, acc[4] = loss (the last batch), acc[5] = 1 + index of the first batch whose
//           loss was not finite (0 while none, so clearBuffer resets it), acc[6] += 1 (batches
//           since the last reset); acc[7] (batches without accuracy) is left as is. For the first
//           batch (since the reset) holding a label >= C, at its first such row: acc[8] = 1 + batch
//           index (0 while none), acc[9] = label >> 16, acc[10] = label & 0xffff (two halves, each
//           exact in f32), acc[11] = C; acc[12] (the loss that saw it) stays 0, cross-entropy's code.
// Bindings: rows: 0 logits, 1 labels (u32), 2 weights (storage, read), 3 dlogits, 4 row_stats
//           (storage, read_write: [loss_r·… (B), correct_r (B)]), 5 p: Params (uniform).
//           reduce: 6 row_stats_in (storage, read), 1 labels, 7 acc (storage, read_write, 16 f32),
//           5 p.
// Dispatch: rows: one invocation per row, grid = grid1d(ceil(B / WG)); reduce: one workgroup of
//           RWG invocations, grid (1, 1, 1).

struct Params {
  B: u32,
  C: u32,
  smoothing: f32,
  _pad: u32,
}

override WG: u32 = 64u;
override RWG: u32 = 64u;
override WEIGHTED: bool = false;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_stats: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> row_stats_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> acc: array<f32>;

fn weight(c: u32) -> f32 {
  if (WEIGHTED) {
    return weights[c];
  }
  return 1.0;
}

@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (r >= p.B) {
    return;
  }
  let base = r * p.C;
  let y = labels[r];
  if (y >= p.C) {
    // Out of range: logits[base + y] would be another row's, weights[y] past the end.
    for (var c = 0u; c < p.C; c++) {
      dlogits[base + c] = 0.0;
    }
    row_stats[r] = 0.0;
    row_stats[p.B + r] = 0.0;
    return;
  }
  var m = logits[base];
  var arg = 0u;
  for (var c = 1u; c < p.C; c++) {
    let z = logits[base + c];
    if (z > m) {
      m = z;
      arg = c;
    }
  }
  var s = 0.0;
  for (var c = 0u; c < p.C; c++) {
    s += exp(logits[base + c] - m);
  }
  let lse = m + log(s);
  var denom = f32(p.B);
  var wsum = f32(p.C);
  if (WEIGHTED) {
    denom = 0.0;
    for (var i = 0u; i < p.B; i++) {
      let yi = labels[i];
      if (yi < p.C) {
        denom += weights[yi];
      }
    }
    wsum = 0.0;
    for (var c = 0u; c < p.C; c++) {
      wsum += weights[c];
    }
  }
  let eps = p.smoothing;
  let wy = weight(y);
  var smooth_sum = 0.0;
  for (var c = 0u; c < p.C; c++) {
    let z = logits[base + c];
    let prob = exp(z - lse);
    let wc = weight(c);
    smooth_sum += wc * (lse - z);
    let hot = select(0.0, 1.0, c == y);
    dlogits[base + c] = ((1.0 - eps) * wy * (prob - hot) + (eps / f32(p.C)) * (prob * wsum - wc)) / denom;
  }
  let loss = (1.0 - eps) * wy * (lse - logits[base + y]) + (eps / f32(p.C)) * smooth_sum;
  row_stats[r] = loss / denom;
  row_stats[p.B + r] = select(0.0, 1.0, arg == y);
}

var<workgroup> partial: array<vec2<f32>, 256>;
// The first row with a label >= C (B when none), min-reduced alongside the sums.
var<workgroup> first_bad: array<u32, 256>;

@compute @workgroup_size(RWG)
fn reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = vec2<f32>(0.0);
  var bad = p.B;
  for (var r = lid.x; r < p.B; r += RWG) {
    s += vec2<f32>(row_stats_in[r], row_stats_in[p.B + r]);
    if (labels[r] >= p.C) {
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
    let loss = partial[0].x;
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
    }
    acc[0] += loss;
    acc[1] += 1.0;
    acc[2] += partial[0].y;
    acc[3] += f32(p.B);
    acc[4] = loss;
    acc[6] += 1.0;
  }
}
