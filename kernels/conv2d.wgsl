// conv2d.wgsl — Conv2d over NCHW tensors (PyTorch's layout), computed directly: no im2col
// buffer, no shared memory. Register-blocked like matmul_blocked.wgsl, for the same reasons:
// on llvmpipe barriers are coroutine switches and per-lane arrays indexed in loops become
// memory gathers, so each invocation keeps its block in named mat2x4 accumulators.
//
// Math:     y[n,o,i,j]  = b[o] + Σ_{c,u,v} x[n, g·Cg+c, i·SH−PT+u·DH, j·SW−PL+v·DW]·w[o,c,u,v]
//           (g = o / OCg, Cg = C/G, OCg = OC/G; x outside the image reads as 0: zero padding)
//           dx[n,g·Cg+c,h,w] = Σ_{o in g, u, v} dy[n,o,i,j]·w[o,c,u,v] over the (i, j) with
//           i·SH−PT+u·DH = h and j·SW−PL+v·DW = w
//           dw[o,c,u,v] += Σ_{n,i,j} dy[n,o,i,j]·x[n, g·Cg+c, i·SH−PT+u·DH, j·SW−PL+v·DW]
//           db[o] += Σ_{n,i,j} dy[n,o,i,j]
// Blocks:   forward: 8 output channels × 4 neighbouring output columns of one row.
//           backward_input: 8 input channels × 4 input columns w = r + SW·(4·b + k), k < 4,
//           of one row: columns of one residue r mod SW, so one divisibility test per tap
//           serves all 4 and the test sits outside the channel loop.
//           backward_weight: 8 output channels × 4 input channels of one tap (u, v), over a
//           chunk of CHUNK rows (n, i) of dy; chunk t writes partial[t], and reduce_weight adds
//           the SPLIT slices in a fixed order into dw (the same bits every run).
//           Channels past the group's last are read clamped to it and never written.
// Layout:   x [N,C,H,W], w [OC,Cg,KH,KW] (PyTorch's state-dict layout), y and dy [N,OC,OH,OW],
//           partial [SPLIT, OC·Cg·KH·KW].
// Bindings: 0 x, 1 w, 2 b, 3 dy, 7 partial_in (storage, read), 4 y, 5 dx, 6 partial, 8 dw,
//           9 db (storage, read_write), 10 p: Params (storage, read).
//           forward: x, w, b, y, p. backward_input: w, dy, dx, p. backward_weight: x, dy,
//           partial, p. reduce_weight: partial_in, dw, p. backward_bias: dy, db, p.
// Params:   a read-only storage struct, not a uniform, for the reason batchnorm.wgsl gives
//           (lavapipe inlines small uniform loop bounds and recompiles on every bind).
// Dispatch: forward, backward_input, backward_weight and reduce_weight: one invocation per
//           block (per weight element for reduce_weight), workgroup WG, linear workgroup index
//           wid.x + wid.y·nwg.x; grid = grid1d(ceil(blocks / WG)). Block numbering puts the
//           columns (forward, backward_input) or the tap (backward_weight) fastest, so
//           neighbouring lanes read the same weights or the same dy.
//           backward_bias: one workgroup of RW invocations per output channel, grid = [OC, 1, 1];
//           a fixed-order tree sum.

struct Params {
  N: u32,
  C: u32,
  H: u32,
  W: u32,
  OC: u32,
  OH: u32,
  OW: u32,
  G: u32,
  KH: u32,
  KW: u32,
  SH: u32,
  SW: u32,
  PT: u32,
  PL: u32,
  DH: u32,
  DW: u32,
  SPLIT: u32,
  CHUNK: u32,
}

override WG: u32 = 64u;
override BIAS: bool = true;

// Workgroup size of backward_bias (it sizes the reduction array).
const RW = 64u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(7) var<storage, read> partial_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw: array<f32>;
@group(0) @binding(9) var<storage, read_write> db: array<f32>;
@group(0) @binding(10) var<storage, read> p: Params;

// The Params, copied once per invocation: a storage load is a per-lane loop on llvmpipe, and
// the compiler cannot hoist loads of p out of loops that write other storage buffers.
var<private> P: Params;
var<workgroup> red: array<f32, 64>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

// x[row + col], or 0 when col is outside [0, W): the zero padding.
fn x_at(row: u32, col: i32) -> f32 {
  let c = clamp(col, 0, i32(P.W) - 1);
  return select(0.0, x[row + u32(c)], c == col);
}

// dy[row + col], or 0 when col is outside [0, OW).
fn dy_at(row: u32, col: i32) -> f32 {
  let c = clamp(col, 0, i32(P.OW) - 1);
  return select(0.0, dy[row + u32(c)], c == col);
}

// Eight values v(q) = buf[base + min(q, last)·stride], q < 8, as two vec4 (lo: q < 4).
fn w8(base: u32, stride: u32, last: u32) -> mat2x4<f32> {
  return mat2x4<f32>(
    vec4<f32>(w[base], w[base + min(1u, last) * stride], w[base + min(2u, last) * stride],
      w[base + min(3u, last) * stride]),
    vec4<f32>(w[base + min(4u, last) * stride], w[base + min(5u, last) * stride],
      w[base + min(6u, last) * stride], w[base + min(7u, last) * stride]),
  );
}

fn dy8(base: u32, stride: u32, last: u32) -> mat2x4<f32> {
  return mat2x4<f32>(
    vec4<f32>(dy[base], dy[base + min(1u, last) * stride], dy[base + min(2u, last) * stride],
      dy[base + min(3u, last) * stride]),
    vec4<f32>(dy[base + min(4u, last) * stride], dy[base + min(5u, last) * stride],
      dy[base + min(6u, last) * stride], dy[base + min(7u, last) * stride]),
  );
}

fn mac(acc: mat2x4<f32>, s: f32, v: mat2x4<f32>) -> mat2x4<f32> {
  return mat2x4<f32>(fma(vec4<f32>(s), v[0], acc[0]), fma(vec4<f32>(s), v[1], acc[1]));
}

// Writes channel q < count of a block column: dst[base + q·stride] = acc[q] (+ b[o0 + q]).
fn put_y(acc: mat2x4<f32>, base: u32, stride: u32, count: u32, o0: u32) {
  for (var q = 0u; q < count; q++) {
    var v = acc[q / 4u][q % 4u];
    if (BIAS) {
      v += b[o0 + q];
    }
    y[base + q * stride] = v;
  }
}

fn put_dx(acc: mat2x4<f32>, base: u32, stride: u32, count: u32) {
  for (var q = 0u; q < count; q++) {
    dx[base + q * stride] = acc[q / 4u][q % 4u];
  }
}

@compute @workgroup_size(WG)
fn forward(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let ocg = P.OC / P.G;
  let taps = P.KH * P.KW;
  let colBlocks = (P.OW + 3u) / 4u;
  let chanBlocks = (ocg + 7u) / 8u;
  let id = linear_id(wid, nwg, lid);
  if (id >= P.N * P.G * chanBlocks * P.OH * colBlocks) {
    return;
  }
  let j0 = (id % colBlocks) * 4u;
  var t = id / colBlocks;
  let i = t % P.OH;
  t /= P.OH;
  let cb = t % chanBlocks;
  t /= chanBlocks;
  let g = t % P.G;
  let n = t / P.G;
  let o0 = g * ocg + cb * 8u;
  let count = min(8u, ocg - cb * 8u);
  let K = cg * taps;

  var a0 = mat2x4<f32>();
  var a1 = mat2x4<f32>();
  var a2 = mat2x4<f32>();
  var a3 = mat2x4<f32>();
  let sw = i32(P.SW);
  for (var c = 0u; c < cg; c++) {
    let plane = (n * P.C + g * cg + c) * P.H;
    for (var u = 0u; u < P.KH; u++) {
      let h = i32(i * P.SH + u * P.DH) - i32(P.PT);
      if (h < 0 || h >= i32(P.H)) {
        continue;
      }
      let row = (plane + u32(h)) * P.W;
      for (var v = 0u; v < P.KW; v++) {
        let col = i32(j0 * P.SW + v * P.DW) - i32(P.PL);
        let wt = w8(o0 * K + c * taps + u * P.KW + v, K, count - 1u);
        a0 = mac(a0, x_at(row, col), wt);
        a1 = mac(a1, x_at(row, col + sw), wt);
        a2 = mac(a2, x_at(row, col + 2 * sw), wt);
        a3 = mac(a3, x_at(row, col + 3 * sw), wt);
      }
    }
  }
  let ohw = P.OH * P.OW;
  let base = (n * P.OC + o0) * ohw + i * P.OW + j0;
  put_y(a0, base, ohw, count, o0);
  if (j0 + 1u < P.OW) {
    put_y(a1, base + 1u, ohw, count, o0);
  }
  if (j0 + 2u < P.OW) {
    put_y(a2, base + 2u, ohw, count, o0);
  }
  if (j0 + 3u < P.OW) {
    put_y(a3, base + 3u, ohw, count, o0);
  }
}

@compute @workgroup_size(WG)
fn backward_input(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let ocg = P.OC / P.G;
  let taps = P.KH * P.KW;
  // Columns of one residue class mod SW, in blocks of 4; SW classes per row.
  let perClass = (P.W + P.SW - 1u) / P.SW;
  let colBlocks = P.SW * ((perClass + 3u) / 4u);
  let chanBlocks = (cg + 7u) / 8u;
  let id = linear_id(wid, nwg, lid);
  if (id >= P.N * P.G * chanBlocks * P.H * colBlocks) {
    return;
  }
  let bx = id % colBlocks;
  var t = id / colBlocks;
  let h = t % P.H;
  t /= P.H;
  let cb = t % chanBlocks;
  t /= chanBlocks;
  let g = t % P.G;
  let n = t / P.G;
  let c0 = cb * 8u;
  let count = min(8u, cg - c0);
  let w0 = bx % P.SW + P.SW * 4u * (bx / P.SW);
  if (w0 >= P.W) {
    return;
  }

  var a0 = mat2x4<f32>();
  var a1 = mat2x4<f32>();
  var a2 = mat2x4<f32>();
  var a3 = mat2x4<f32>();
  let sh = i32(P.SH);
  let sw = i32(P.SW);
  for (var u = 0u; u < P.KH; u++) {
    let th = i32(h + P.PT) - i32(u * P.DH);
    if (th < 0 || th % sh != 0 || th / sh >= i32(P.OH)) {
      continue;
    }
    let i = u32(th / sh);
    for (var v = 0u; v < P.KW; v++) {
      // Column k of the block, w0 + k·SW, comes from output column j0 + k.
      let tw = i32(w0 + P.PL) - i32(v * P.DW);
      if (tw % sw != 0) {
        continue;
      }
      let j0 = tw / sw;
      for (var o = 0u; o < ocg; o++) {
        let oc = g * ocg + o;
        let row = ((n * P.OC + oc) * P.OH + i) * P.OW;
        let wt = w8((oc * cg + c0) * taps + u * P.KW + v, taps, count - 1u);
        a0 = mac(a0, dy_at(row, j0), wt);
        a1 = mac(a1, dy_at(row, j0 + 1), wt);
        a2 = mac(a2, dy_at(row, j0 + 2), wt);
        a3 = mac(a3, dy_at(row, j0 + 3), wt);
      }
    }
  }
  let hw = P.H * P.W;
  let base = (n * P.C + g * cg + c0) * hw + h * P.W + w0;
  put_dx(a0, base, hw, count);
  if (w0 + P.SW < P.W) {
    put_dx(a1, base + P.SW, hw, count);
  }
  if (w0 + 2u * P.SW < P.W) {
    put_dx(a2, base + 2u * P.SW, hw, count);
  }
  if (w0 + 3u * P.SW < P.W) {
    put_dx(a3, base + 3u * P.SW, hw, count);
  }
}

// Four input channels c0 .. c0+3 (clamped to `last`) at one pixel, 0 outside the image.
fn x4(base: u32, plane: u32, last: u32, inside: bool) -> vec4<f32> {
  let v = vec4<f32>(x[base], x[base + min(1u, last) * plane], x[base + min(2u, last) * plane],
    x[base + min(3u, last) * plane]);
  return select(vec4<f32>(0.0), v, inside);
}

fn put_partial(acc: vec4<f32>, base: u32, stride: u32, count: u32) {
  for (var q = 0u; q < count; q++) {
    partial[base + q * stride] = acc[q];
  }
}

@compute @workgroup_size(WG)
fn backward_weight(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let ocg = P.OC / P.G;
  let taps = P.KH * P.KW;
  let oBlocks = (ocg + 7u) / 8u;
  let cBlocks = (cg + 3u) / 4u;
  let id = linear_id(wid, nwg, lid);
  if (id >= P.SPLIT * P.G * oBlocks * cBlocks * taps) {
    return;
  }
  let tap = id % taps;
  var t = id / taps;
  let cb = t % cBlocks;
  t /= cBlocks;
  let ob = t % oBlocks;
  t /= oBlocks;
  let g = t % P.G;
  let chunk = t / P.G;
  let u = tap / P.KW;
  let v = tap % P.KW;
  let o0 = g * ocg + ob * 8u;
  let oCount = min(8u, ocg - ob * 8u);
  let c0 = g * cg + cb * 4u;
  let cCount = min(4u, cg - cb * 4u);
  let rows = P.N * P.OH;
  let rowEnd = min((chunk + 1u) * P.CHUNK, rows);
  let ohw = P.OH * P.OW;
  let hw = P.H * P.W;

  // acc_q[k] = Σ dy[o0 + q]·x[c0 + k] over the chunk's pixels.
  var a0 = vec4<f32>();
  var a1 = vec4<f32>();
  var a2 = vec4<f32>();
  var a3 = vec4<f32>();
  var a4 = vec4<f32>();
  var a5 = vec4<f32>();
  var a6 = vec4<f32>();
  var a7 = vec4<f32>();
  for (var r = chunk * P.CHUNK; r < rowEnd; r++) {
    let n = r / P.OH;
    let i = r % P.OH;
    let h = i32(i * P.SH + u * P.DH) - i32(P.PT);
    if (h < 0 || h >= i32(P.H)) {
      continue;
    }
    let xRow = (n * P.C + c0) * hw + u32(h) * P.W;
    let dyRow = (n * P.OC + o0) * ohw + i * P.OW;
    for (var j = 0u; j < P.OW; j++) {
      let col = i32(j * P.SW + v * P.DW) - i32(P.PL);
      let cc = clamp(col, 0, i32(P.W) - 1);
      let xs = x4(xRow + u32(cc), hw, cCount - 1u, cc == col);
      let d = dy8(dyRow + j, ohw, oCount - 1u);
      a0 = fma(vec4<f32>(d[0][0]), xs, a0);
      a1 = fma(vec4<f32>(d[0][1]), xs, a1);
      a2 = fma(vec4<f32>(d[0][2]), xs, a2);
      a3 = fma(vec4<f32>(d[0][3]), xs, a3);
      a4 = fma(vec4<f32>(d[1][0]), xs, a4);
      a5 = fma(vec4<f32>(d[1][1]), xs, a5);
      a6 = fma(vec4<f32>(d[1][2]), xs, a6);
      a7 = fma(vec4<f32>(d[1][3]), xs, a7);
    }
  }
  // partial[chunk][o][c - g·Cg][u][v]
  let numel = P.OC * cg * taps;
  let base = chunk * numel + (o0 * cg + cb * 4u) * taps + tap;
  let oStride = cg * taps;
  put_partial(a0, base, taps, cCount);
  if (oCount > 1u) {
    put_partial(a1, base + oStride, taps, cCount);
  }
  if (oCount > 2u) {
    put_partial(a2, base + 2u * oStride, taps, cCount);
  }
  if (oCount > 3u) {
    put_partial(a3, base + 3u * oStride, taps, cCount);
  }
  if (oCount > 4u) {
    put_partial(a4, base + 4u * oStride, taps, cCount);
  }
  if (oCount > 5u) {
    put_partial(a5, base + 5u * oStride, taps, cCount);
  }
  if (oCount > 6u) {
    put_partial(a6, base + 6u * oStride, taps, cCount);
  }
  if (oCount > 7u) {
    put_partial(a7, base + 7u * oStride, taps, cCount);
  }
}

@compute @workgroup_size(WG)
fn reduce_weight(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let numel = P.OC * (P.C / P.G) * P.KH * P.KW;
  let i = linear_id(wid, nwg, lid);
  if (i >= numel) {
    return;
  }
  var s = 0.0;
  for (var t = 0u; t < P.SPLIT; t++) {
    s += partial_in[t * numel + i];
  }
  dw[i] += s;
}

@compute @workgroup_size(RW)
fn backward_bias(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  P = p;
  let o = wg.x;
  let ohw = P.OH * P.OW;
  // Element e = n·OH·OW + k of channel o, stepped by RW with (n, k) carried along: no
  // division in the loop (llvmpipe has no vector integer division).
  var s = 0.0;
  var n = li / ohw;
  var k = li % ohw;
  while (n < P.N) {
    s += dy[(n * P.OC + o) * ohw + k];
    k += RW;
    while (k >= ohw) {
      k -= ohw;
      n += 1u;
    }
  }
  red[li] = s;
  workgroupBarrier();
  for (var half = RW / 2u; half > 0u; half >>= 1u) {
    if (li < half) {
      red[li] += red[li + half];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    db[o] += red[0];
  }
}
