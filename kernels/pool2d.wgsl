// pool2d.wgsl — MaxPool2d, AvgPool2d and AdaptiveAvgPool2d over NCHW tensors, as PyTorch
// (floor mode, no dilation).
//
// Math:     windows of output (i, j): rows [i·SH − PH, i·SH − PH + KH), columns likewise,
//           clipped to the image; ADAPTIVE: rows [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉), columns likewise.
//           max:  y = max over the window; idx = h·W + w of the first maximum in row-major
//                 window order (a NaN wins, as PyTorch); dx[h,w] = Σ dy over the outputs whose
//                 idx is (h, w).
//           avg:  y = Σ window / count; count = KH·KW (count_include_pad, PyTorch's default;
//                 in floor mode no window reaches past the padding), ADAPTIVE: the clipped
//                 window's size. dx[h,w] = Σ dy/count over the windows holding (h, w).
//           Backward gathers at each input (no scatter, no atomics): the same bits every run.
// Layout:   x and dx [N·C planes, H, W]; y, dy and idx [N·C, OH, OW].
// Bindings: 0 x, 1 dy, 2 idx_in (storage, read), 3 y, 4 idx, 5 dx (storage, read_write),
//           6 p: Params (storage, read; see batchnorm.wgsl).
//           max_forward: x, y, idx, p. max_backward: dy, idx_in, dx, p. avg_forward: x, y, p.
//           avg_backward: dy, dx, p.
// Dispatch: one invocation per output position (i, j) (forward) or input position (h, w)
//           (backward) of a plane, TX×TY = 8×8 positions per workgroup, looping over the planes
//           gid.z, gid.z + nwg.z, …: grid = [ceil(OW / 8), ceil(OH / 8), Z] (forward; W and H
//           in backward), Z = min(ceil(planes / 4), 65535). A position's window (or the
//           outputs that hold it) is worked out once for all its planes, and nothing divides
//           per element (integer division is a scalar loop on CPU adapters). Each entry point
//           reads p once into a local: on Mesa every storage read is a load, and loops do not
//           hoist them.

struct Params {
  planes: u32,
  H: u32,
  W: u32,
  OH: u32,
  OW: u32,
  KH: u32,
  KW: u32,
  SH: u32,
  SW: u32,
  PH: u32,
  PW: u32,
}

const TX = 8u;
const TY = 8u;
override ADAPTIVE: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> idx_in: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> idx: array<u32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read> p: Params;

// [start, end) of output o's window along a dimension of input size n and output size m,
// clipped to [0, n).
fn window(o: u32, n: u32, m: u32, k: u32, s: u32, pad: u32) -> vec2<u32> {
  if (ADAPTIVE) {
    return vec2<u32>(o * n / m, ((o + 1u) * n + m - 1u) / m);
  }
  let start = i32(o * s) - i32(pad);
  return vec2<u32>(u32(max(start, 0)), u32(min(start + i32(k), i32(n))));
}

// The outputs [lo, hi] whose windows may hold input position t (a superset for ADAPTIVE).
fn outputs_of(t: u32, n: u32, m: u32, k: u32, s: u32, pad: u32) -> vec2<u32> {
  if (ADAPTIVE) {
    return vec2<u32>(t * m / n, min(((t + 1u) * m + n - 1u) / n, m) - 1u);
  }
  // o·s − pad ≤ t < o·s − pad + k  ⇔  (t + pad − k)/s < o ≤ (t + pad)/s
  let top = i32(t + pad);
  let lo = max(top - i32(k) + i32(s), 0) / i32(s);
  let hi = min(top / i32(s), i32(m) - 1);
  return vec2<u32>(u32(lo), u32(max(hi, lo - 1)));
}

fn divisor(q: Params, rows: vec2<u32>, cols: vec2<u32>) -> f32 {
  if (ADAPTIVE) {
    return f32((rows.y - rows.x) * (cols.y - cols.x));
  }
  return f32(q.KH * q.KW);
}

@compute @workgroup_size(TX, TY)
fn max_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let q = p;
  let j = gid.x;
  let i = gid.y;
  if (j >= q.OW || i >= q.OH) {
    return;
  }
  let rows = window(i, q.H, q.OH, q.KH, q.SH, q.PH);
  let cols = window(j, q.W, q.OW, q.KW, q.SW, q.PW);
  let first = rows.x * q.W + cols.x;
  for (var plane = gid.z; plane < q.planes; plane += nwg.z) {
    let base = plane * q.H * q.W;
    var best = x[base + first];
    var at = first;
    for (var h = rows.x; h < rows.y; h++) {
      for (var w = cols.x; w < cols.y; w++) {
        let v = x[base + h * q.W + w];
        // Strictly greater: the first maximum wins ties. A NaN wins once and stays (v != v).
        if ((v > best || v != v) && best == best) {
          best = v;
          at = h * q.W + w;
        }
      }
    }
    let e = (plane * q.OH + i) * q.OW + j;
    y[e] = best;
    idx[e] = at;
  }
}

@compute @workgroup_size(TX, TY)
fn max_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let q = p;
  let w = gid.x;
  let h = gid.y;
  if (w >= q.W || h >= q.H) {
    return;
  }
  let me = h * q.W + w;
  let ri = outputs_of(h, q.H, q.OH, q.KH, q.SH, q.PH);
  let rj = outputs_of(w, q.W, q.OW, q.KW, q.SW, q.PW);
  for (var plane = gid.z; plane < q.planes; plane += nwg.z) {
    var s = 0.0;
    for (var i = ri.x; i <= ri.y; i++) {
      for (var j = rj.x; j <= rj.y; j++) {
        let o = (plane * q.OH + i) * q.OW + j;
        if (idx_in[o] == me) {
          s += dy[o];
        }
      }
    }
    dx[plane * q.H * q.W + me] = s;
  }
}

@compute @workgroup_size(TX, TY)
fn avg_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let q = p;
  let j = gid.x;
  let i = gid.y;
  if (j >= q.OW || i >= q.OH) {
    return;
  }
  let rows = window(i, q.H, q.OH, q.KH, q.SH, q.PH);
  let cols = window(j, q.W, q.OW, q.KW, q.SW, q.PW);
  let d = divisor(q, rows, cols);
  for (var plane = gid.z; plane < q.planes; plane += nwg.z) {
    let base = plane * q.H * q.W;
    var s = 0.0;
    for (var h = rows.x; h < rows.y; h++) {
      for (var w = cols.x; w < cols.y; w++) {
        s += x[base + h * q.W + w];
      }
    }
    y[(plane * q.OH + i) * q.OW + j] = s / d;
  }
}

@compute @workgroup_size(TX, TY)
fn avg_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let q = p;
  let w = gid.x;
  let h = gid.y;
  if (w >= q.W || h >= q.H) {
    return;
  }
  let ri = outputs_of(h, q.H, q.OH, q.KH, q.SH, q.PH);
  let rj = outputs_of(w, q.W, q.OW, q.KW, q.SW, q.PW);
  for (var plane = gid.z; plane < q.planes; plane += nwg.z) {
    var s = 0.0;
    for (var i = ri.x; i <= ri.y; i++) {
      let rows = window(i, q.H, q.OH, q.KH, q.SH, q.PH);
      if (h < rows.x || h >= rows.y) {
        continue;
      }
      for (var j = rj.x; j <= rj.y; j++) {
        let cols = window(j, q.W, q.OW, q.KW, q.SW, q.PW);
        if (w >= cols.x && w < cols.y) {
          s += dy[(plane * q.OH + i) * q.OW + j] / divisor(q, rows, cols);
        }
      }
    }
    dx[plane * q.H * q.W + h * q.W + w] = s;
  }
}
