// conv_gemm.wgsl — Conv2d over NCHW tensors as implicit GEMMs on the matmul engine's design
// (matmul_texture.wgsl): operands in read-only rgba32float storage textures, a 16×16 block of
// the product per invocation in sixteen named mat4x4 accumulators, no shared memory. The
// im2col matrix is never built: each operand load computes its im2col address.
//
// Math:     y[n,o,i,j] = b[o] + Σ_k W[o,k]·col[k,(n,i,j)], k = (u, v, c) over KH·KW·Cg,
//           col[(u,v,c),(n,i,j)] = x[n, g·Cg+c, i·SH−PT+u·DH, j·SW−PL+v·DW] (0 outside: padding)
//           dx[n,g·Cg+c,h,w] = Σ_{o in g, u, v} dy[n,o,i,j]·w[o,c,u,v] over the (i, j) with
//           i·SH−PT+u·DH = h, j·SW−PL+v·DW = w (the transposed convolution, in gather form)
//           dw[o,c,u,v] += Σ_{n,i,j} dy[n,o,i,j]·col[(u,v,c),(n,i,j)]
//           (g = o / OCg, Cg = C/G, OCg = OC/G).
// Textures: tx holds x as padded NHWC4: texel ((n%XR)·XWP + w')·CT + g·CG4 + c4, row
//           (n/XR)·XHP + h' holds channels g·Cg + 4·c4 .. +3 (0 past the group's Cg) at the
//           padded pixel h' = h + PT, w' = w + PL; XR images side by side per texture row keep
//           both extents under the limit. Padding texels are never written, so they stay 0
//           from creation: im2col loads need no bounds test. CT = G·CG4, CG4 = ⌈Cg/4⌉.
//           tdy holds dy alike (OT = G·OG4 texels per pixel, OG4 = ⌈OCg/4⌉), with DPT rows
//           and DPL columns of zeros before each image and enough after, so that dx's gather
//           reads land in zeros past the edges.
//           x and dy are packed into staging buffers laid out as the textures' rows (TXW and
//           TDW texels wide, a multiple of 16 so that copyBufferToTexture takes them whole):
//           storage stores of vec4 cost a fraction of texture stores on llvmpipe.
//           tw: texel (tap·CG4 + c4, g·OCP + oo) holds w[g·OCg+oo, 4·c4 .. +3, u, v] (tap =
//           u·KW + v; OCP = OCg rounded up to 16, rows past OCg are 0). twt: texel
//           (tap·OG4 + o4, g·CGP + c) holds w[g·OCg + 4·o4 .. +3, c, u, v] (CGP = Cg up to 16).
// Blocks:   forward: 16 output channels × 16 consecutive pixels (n, i, j) of y; per texel
//           step along k, 16 weight texels + 16 input texels feed 1,024 multiply-adds.
//           backward_input: 16 input channels × 16 consecutive pixels of one residue class
//           (h mod SH, w mod SW): the taps that reach a class are the same for all its pixels,
//           so a block skips the others as a whole and never tests divisibility per pixel.
//           backward_weight: 16 output channels × 16 k values (4 texels of 4 channels), summed
//           over a chunk of CHUNK rows (n, i) of dy, 4 pixels per step: 16 + 16 texels feed
//           1,024 multiply-adds. Chunk t writes partial[t]; reduce_weight adds the SPLIT slices in a
//           fixed order into dw: the same bits every run, no atomics. With BIAS, the blocks
//           of the first k texels also sum dy per channel over their chunk, and
//           reduce_weight adds those slices into db the same way.
//           Pixels past the last are read clamped to it and never written.
// Layout:   x, dx [N,C,H,W]; w, dw [OC,Cg,KH,KW]; y, dy [N,OC,OH,OW]; db [OC];
//           partial [SPLIT, OC·Cg·KH·KW] then [SPLIT, OC].
// Bindings: storage, read: 0 x, 1 w, 2 b, 3 dy, 15 partial_in, 20 x_v4, 21 dy_v4 (x_v4 and
//           dy_v4: vec4 views of x and dy). rgba32float storage textures, read: 4 tx, 5 tw,
//           6 twt, 7 tdy; write: 9 tw_out, 10 twt_out (tw and twt). storage, read_write:
//           8 tx_stage, 11 tdy_stage (tx's and tdy's rows, copied into them), 12 y, 13 dx,
//           14 partial, 16 dw, 18 y_v4, 19 dx_v4 (vec4 views of y and dx), 22 db.
//           17 p: Params (storage, read).
//           pack_x: x, tx_stage, p. pack_x4: x_v4, tx_stage, p. pack_dy: dy, tdy_stage, p.
//           pack_dy4: dy_v4, tdy_stage, p. pack_w: w, tw_out, p. pack_wt: w, twt_out, p.
//           forward: tx, tw, b, y, y_v4, p (one of y, y_v4 a dummy, per VEC_OUT).
//           backward_input: tdy, twt, dx, dx_v4, p (likewise). backward_weight: tx, tdy,
//           partial, p. reduce_weight: partial_in, dw, db, p (db a dummy without BIAS).
// Params:   a read-only storage struct, not a uniform, for the reason batchnorm.wgsl gives
//           (lavapipe inlines small uniform loop bounds and recompiles on every bind).
// Dispatch: one invocation per block (per texel for the packs, per weight element for
//           reduce_weight), workgroup WG_X, linear workgroup index wid.x + wid.y·nwg.x;
//           grid = grid1d(ceil(count / WG_X)). pack_x4 and pack_dy4: one invocation per 4
//           texels, grid = [ceil(plane / 4 / WG_X), N·CT (or N·OT), 1] (plane: H·W, OH·OW).
//           Blocks are numbered pixels-fastest (k-fastest in backward_weight), so neighbouring
//           SIMD lanes read the same weight (or dy) texels.

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
  CG4: u32,
  OG4: u32,
  XR: u32,
  XWP: u32,
  XHP: u32,
  DR: u32,
  DWP: u32,
  DHP: u32,
  DPT: u32,
  DPL: u32,
  OCP: u32,
  CGP: u32,
  HA: u32,
  WB: u32,
  SPLIT: u32,
  CHUNK: u32,
  TXW: u32,
  TDW: u32,
}

override WG_X: u32 = 8u; // invocations per workgroup: a multiple of the SIMD width
override BIAS: bool = true;
// Write y (forward) or dx (backward_input) as vec4 of 4 consecutive pixels, through y_v4 / dx_v4
// (the scalar binding then holds a dummy): the host sets it where each run of 4 pixels of a
// block is contiguous in the output (OH·OW, or H·W at stride 1, a multiple of 4). A vec4
// store costs about as much as a scalar one on llvmpipe.
override VEC_OUT: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var tx: texture_storage_2d<rgba32float, read>;
@group(0) @binding(5) var tw: texture_storage_2d<rgba32float, read>;
@group(0) @binding(6) var twt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(7) var tdy: texture_storage_2d<rgba32float, read>;
@group(0) @binding(8) var<storage, read_write> tx_stage: array<vec4<f32>>;
@group(0) @binding(9) var tw_out: texture_storage_2d<rgba32float, write>;
@group(0) @binding(10) var twt_out: texture_storage_2d<rgba32float, write>;
@group(0) @binding(11) var<storage, read_write> tdy_stage: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> y: array<f32>;
@group(0) @binding(13) var<storage, read_write> dx: array<f32>;
@group(0) @binding(14) var<storage, read_write> partial: array<f32>;
@group(0) @binding(15) var<storage, read> partial_in: array<f32>;
@group(0) @binding(16) var<storage, read_write> dw: array<f32>;
@group(0) @binding(17) var<storage, read> p: Params;
@group(0) @binding(18) var<storage, read_write> y_v4: array<vec4<f32>>;
@group(0) @binding(19) var<storage, read_write> dx_v4: array<vec4<f32>>;
@group(0) @binding(20) var<storage, read> x_v4: array<vec4<f32>>;
@group(0) @binding(21) var<storage, read> dy_v4: array<vec4<f32>>;
@group(0) @binding(22) var<storage, read_write> db: array<f32>;

// The Params, copied once per invocation: a storage load is a per-lane loop on llvmpipe.
var<private> P: Params;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG_X + lid.x;
}

// ---- Packing into textures (once per step per operand). ----

// Four values v(e) = src(base + e·stride) for e < count, 0 after, read from x.
fn gather_x(base: u32, stride: u32, count: u32) -> vec4<f32> {
  var v = vec4<f32>();
  for (var e = 0u; e < count; e++) {
    v[e] = x[base + e * stride];
  }
  return v;
}

fn gather_dy(base: u32, stride: u32, count: u32) -> vec4<f32> {
  var v = vec4<f32>();
  for (var e = 0u; e < count; e++) {
    v[e] = dy[base + e * stride];
  }
  return v;
}

fn gather_w(base: u32, stride: u32, count: u32) -> vec4<f32> {
  var v = vec4<f32>();
  for (var e = 0u; e < count; e++) {
    v[e] = w[base + e * stride];
  }
  return v;
}

@compute @workgroup_size(WG_X)
fn pack_x(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let ct = P.G * P.CG4;
  let id = linear_id(wid, nwg, lid);
  if (id >= P.N * ct * P.H * P.W) {
    return;
  }
  // id = ((n·CT + t)·H + h)·W + w: neighbouring lanes read neighbouring x.
  let col = id % P.W;
  var r = id / P.W;
  let h = r % P.H;
  r /= P.H;
  let t = r % ct;
  let n = r / ct;
  let g = t / P.CG4;
  let c = 4u * (t % P.CG4);
  let hw = P.H * P.W;
  let v = gather_x(((n * P.C + g * cg + c) * P.H + h) * P.W + col, hw, min(4u, cg - c));
  let pos = vec2<u32>(((n % P.XR) * P.XWP + P.PL + col) * ct + t, (n / P.XR) * P.XHP + P.PT + h);
  tx_stage[pos.y * P.TXW + pos.x] = v;
}

@compute @workgroup_size(WG_X)
fn pack_dy(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let ocg = P.OC / P.G;
  let ot = P.G * P.OG4;
  let id = linear_id(wid, nwg, lid);
  if (id >= P.N * ot * P.OH * P.OW) {
    return;
  }
  let j = id % P.OW;
  var r = id / P.OW;
  let i = r % P.OH;
  r /= P.OH;
  let t = r % ot;
  let n = r / ot;
  let g = t / P.OG4;
  let o = 4u * (t % P.OG4);
  let ohw = P.OH * P.OW;
  let v = gather_dy(((n * P.OC + g * ocg + o) * P.OH + i) * P.OW + j, ohw, min(4u, ocg - o));
  let pos = vec2<u32>(((n % P.DR) * P.DWP + P.DPL + j) * ot + t, (n / P.DR) * P.DHP + P.DPT + i);
  tdy_stage[pos.y * P.TDW + pos.x] = v;
}

// Four channels' vec4 of 4 consecutive pixels (channel e < count, 0 after), from x_v4 or dy_v4:
// column e of the result is channel e, so its transpose's column k is pixel k's texel. The
// loads are written out (clamped to the last channel, then zeroed): a loop filling a local
// matrix by a variable index would put it in memory.
fn x16(base: u32, stride: u32, count: u32) -> mat4x4<f32> {
  let l = count - 1u;
  let m = mat4x4<f32>(x_v4[base], x_v4[base + min(1u, l) * stride],
    x_v4[base + min(2u, l) * stride], x_v4[base + min(3u, l) * stride]);
  return transpose(mat4x4<f32>(m[0], select(vec4<f32>(), m[1], count > 1u),
    select(vec4<f32>(), m[2], count > 2u), select(vec4<f32>(), m[3], count > 3u)));
}

fn dy16(base: u32, stride: u32, count: u32) -> mat4x4<f32> {
  let l = count - 1u;
  let m = mat4x4<f32>(dy_v4[base], dy_v4[base + min(1u, l) * stride],
    dy_v4[base + min(2u, l) * stride], dy_v4[base + min(3u, l) * stride]);
  return transpose(mat4x4<f32>(m[0], select(vec4<f32>(), m[1], count > 1u),
    select(vec4<f32>(), m[2], count > 2u), select(vec4<f32>(), m[3], count > 3u)));
}

// pack_x for W a multiple of 4: one invocation per 4 texels (4 consecutive pixels of a row).
// Grid: x over the plane's H·W/4 runs (linear workgroup index wid.x, WG_X per group), y over
// (n, texel t) = wid.y: a uniform value, so its division costs one scalar op per workgroup.
@compute @workgroup_size(WG_X)
fn pack_x4(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let ct = P.G * P.CG4;
  let w4s = P.W / 4u;
  let id = wid.x * WG_X + lid.x;
  if (id >= P.H * w4s) {
    return;
  }
  let col = 4u * (id % w4s);
  let h = id / w4s;
  let t = wid.y % ct;
  let n = wid.y / ct;
  let g = t / P.CG4;
  let c = 4u * (t % P.CG4);
  let hw4 = P.H * w4s;
  let m = x16((((n * P.C + g * cg + c) * P.H + h) * P.W + col) / 4u, hw4, min(4u, cg - c));
  let x0 = ((n % P.XR) * P.XWP + P.PL + col) * ct + t;
  let ty = (n / P.XR) * P.XHP + P.PT + h;
  let at = ty * P.TXW + x0;
  tx_stage[at] = m[0];
  tx_stage[at + ct] = m[1];
  tx_stage[at + 2u * ct] = m[2];
  tx_stage[at + 3u * ct] = m[3];
}

// pack_dy for OW a multiple of 4; grid as pack_x4's, over OH·OW/4 and (n, t).
@compute @workgroup_size(WG_X)
fn pack_dy4(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let ocg = P.OC / P.G;
  let ot = P.G * P.OG4;
  let j4s = P.OW / 4u;
  let id = wid.x * WG_X + lid.x;
  if (id >= P.OH * j4s) {
    return;
  }
  let j = 4u * (id % j4s);
  let i = id / j4s;
  let t = wid.y % ot;
  let n = wid.y / ot;
  let g = t / P.OG4;
  let o = 4u * (t % P.OG4);
  let ohw4 = P.OH * j4s;
  let m = dy16((((n * P.OC + g * ocg + o) * P.OH + i) * P.OW + j) / 4u, ohw4, min(4u, ocg - o));
  let x0 = ((n % P.DR) * P.DWP + P.DPL + j) * ot + t;
  let ty = (n / P.DR) * P.DHP + P.DPT + i;
  let at = ty * P.TDW + x0;
  tdy_stage[at] = m[0];
  tdy_stage[at + ot] = m[1];
  tdy_stage[at + 2u * ot] = m[2];
  tdy_stage[at + 3u * ot] = m[3];
}

@compute @workgroup_size(WG_X)
fn pack_w(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let ocg = P.OC / P.G;
  let taps = P.KH * P.KW;
  let width = taps * P.CG4;
  let id = linear_id(wid, nwg, lid);
  if (id >= width * P.G * P.OCP) {
    return;
  }
  let k4 = id % width;
  let wrow = id / width;
  let g = wrow / P.OCP;
  let oo = wrow % P.OCP;
  let tap = k4 / P.CG4;
  let c = 4u * (k4 % P.CG4);
  var v = vec4<f32>();
  if (oo < ocg) {
    v = gather_w(((g * ocg + oo) * cg + c) * taps + tap, taps, min(4u, cg - c));
  }
  textureStore(tw_out, vec2<u32>(k4, wrow), v);
}

@compute @workgroup_size(WG_X)
fn pack_wt(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let ocg = P.OC / P.G;
  let taps = P.KH * P.KW;
  let width = taps * P.OG4;
  let id = linear_id(wid, nwg, lid);
  if (id >= width * P.G * P.CGP) {
    return;
  }
  let k4 = id % width;
  let wrow = id / width;
  let g = wrow / P.CGP;
  let c = wrow % P.CGP;
  let tap = k4 / P.OG4;
  let o = 4u * (k4 % P.OG4);
  var v = vec4<f32>();
  if (c < cg) {
    v = gather_w(((g * ocg + o) * cg + c) * taps + tap, cg * taps, min(4u, ocg - o));
  }
  textureStore(twt_out, vec2<u32>(k4, wrow), v);
}

// ---- The GEMMs. ----

fn ld(t: texture_storage_2d<rgba32float, read>, at: vec2<i32>) -> vec4<f32> {
  return textureLoad(t, at);
}

// Four rows r0 .. r0+3 of a weight texture at texel column k4: column e is row r0+e's texel.
fn rows4(t: texture_storage_2d<rgba32float, read>, k4: i32, r0: i32) -> mat4x4<f32> {
  return mat4x4<f32>(ld(t, vec2<i32>(k4, r0)), ld(t, vec2<i32>(k4, r0 + 1)),
    ld(t, vec2<i32>(k4, r0 + 2)), ld(t, vec2<i32>(k4, r0 + 3)));
}

// Four pixels' texels at their coordinates plus `off`: column e is pixel e's 4 k values.
fn px4(t: texture_storage_2d<rgba32float, read>, q0: vec2<i32>, q1: vec2<i32>, q2: vec2<i32>,
  q3: vec2<i32>, off: vec2<i32>) -> mat4x4<f32> {
  return mat4x4<f32>(ld(t, q0 + off), ld(t, q1 + off), ld(t, q2 + off), ld(t, q3 + off));
}

// One row of a 16×16 block: acc[t][e] += dot(a, pixel 4t+e's texel).
fn row(acc: mat4x4<f32>, a: vec4<f32>, b0: mat4x4<f32>, b1: mat4x4<f32>, b2: mat4x4<f32>,
  b3: mat4x4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(acc[0] + a * b0, acc[1] + a * b1, acc[2] + a * b2, acc[3] + a * b3);
}

// A walk over the block's 16 pixels (n, i, j), row-major over [N, OH, OW] (forward) or over
// one residue class's [N, HA, WB] (backward_input): the next pixel, or the same at the last.
fn advance(s: vec3<u32>, q: u32, count: u32, rows: u32, cols: u32) -> vec3<u32> {
  if (q + 1u >= count) {
    return s;
  }
  var t = s;
  t.z += 1u;
  if (t.z == cols) {
    t.z = 0u;
    t.y += 1u;
    if (t.y == rows) {
      t.y = 0u;
      t.x += 1u;
    }
  }
  return t;
}

fn start(q: u32, rows: u32, cols: u32) -> vec3<u32> {
  let plane = rows * cols;
  return vec3<u32>(q / plane, (q % plane) / cols, q % cols);
}

// Where pixel s = (n, i, j) of y reads tap (0, 0) of its window in tx.
fn x_coord(s: vec3<u32>, g: u32) -> vec2<i32> {
  let ct = P.G * P.CG4;
  return vec2<i32>(i32(((s.x % P.XR) * P.XWP + s.z * P.SW) * ct + g * P.CG4),
    i32((s.x / P.XR) * P.XHP + s.y * P.SH));
}

// Writes row o of a forward block: y[n, o, i, j] = acc (+ b[o]) for its 16 pixels from s.
fn put_y(acc: mat4x4<f32>, o: u32, s0: vec3<u32>, q0: u32) {
  let ohw = P.OH * P.OW;
  let total = P.N * ohw;
  var bias = 0.0;
  if (BIAS) {
    bias = b[o];
  }
  if (VEC_OUT) {
    // Groups of 4 pixels start at multiples of 4 and OH·OW is one: each is contiguous.
    var n = s0.x;
    var rem = s0.y * P.OW + s0.z;
    for (var t = 0u; t < 4u; t++) {
      if (q0 + 4u * t < total) {
        y_v4[((n * P.OC + o) * ohw + rem) / 4u] = acc[t] + vec4<f32>(bias);
      }
      rem += 4u;
      if (rem == ohw) {
        rem = 0u;
        n += 1u;
      }
    }
    return;
  }
  var s = s0;
  for (var t = 0u; t < 4u; t++) {
    for (var e = 0u; e < 4u; e++) {
      let q = q0 + 4u * t + e;
      if (q < total) {
        y[(s.x * P.OC + o) * ohw + s.y * P.OW + s.z] = acc[t][e] + bias;
      }
      s = advance(s, q, total, P.OH, P.OW);
    }
  }
}

@compute @workgroup_size(WG_X)
fn forward(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let ocg = P.OC / P.G;
  let total = P.N * P.OH * P.OW;
  let pBlocks = (total + 15u) / 16u;
  let oBlocks = P.OCP / 16u;
  let id = linear_id(wid, nwg, lid);
  if (id >= pBlocks * oBlocks * P.G) {
    return;
  }
  let q0 = (id % pBlocks) * 16u;
  let t = id / pBlocks;
  let ob = t % oBlocks;
  let g = t / oBlocks;
  let r0 = i32(g * P.OCP + ob * 16u);

  // The 16 pixels' window origins, walked once.
  let s0 = start(q0, P.OH, P.OW);
  var s = s0;
  let p0 = x_coord(s, g);
  s = advance(s, q0, total, P.OH, P.OW);
  let p1 = x_coord(s, g);
  s = advance(s, q0 + 1u, total, P.OH, P.OW);
  let p2 = x_coord(s, g);
  s = advance(s, q0 + 2u, total, P.OH, P.OW);
  let p3 = x_coord(s, g);
  s = advance(s, q0 + 3u, total, P.OH, P.OW);
  let p4 = x_coord(s, g);
  s = advance(s, q0 + 4u, total, P.OH, P.OW);
  let p5 = x_coord(s, g);
  s = advance(s, q0 + 5u, total, P.OH, P.OW);
  let p6 = x_coord(s, g);
  s = advance(s, q0 + 6u, total, P.OH, P.OW);
  let p7 = x_coord(s, g);
  s = advance(s, q0 + 7u, total, P.OH, P.OW);
  let p8 = x_coord(s, g);
  s = advance(s, q0 + 8u, total, P.OH, P.OW);
  let p9 = x_coord(s, g);
  s = advance(s, q0 + 9u, total, P.OH, P.OW);
  let p10 = x_coord(s, g);
  s = advance(s, q0 + 10u, total, P.OH, P.OW);
  let p11 = x_coord(s, g);
  s = advance(s, q0 + 11u, total, P.OH, P.OW);
  let p12 = x_coord(s, g);
  s = advance(s, q0 + 12u, total, P.OH, P.OW);
  let p13 = x_coord(s, g);
  s = advance(s, q0 + 13u, total, P.OH, P.OW);
  let p14 = x_coord(s, g);
  s = advance(s, q0 + 14u, total, P.OH, P.OW);
  let p15 = x_coord(s, g);

  var c0 = mat4x4<f32>();
  var c1 = mat4x4<f32>();
  var c2 = mat4x4<f32>();
  var c3 = mat4x4<f32>();
  var c4 = mat4x4<f32>();
  var c5 = mat4x4<f32>();
  var c6 = mat4x4<f32>();
  var c7 = mat4x4<f32>();
  var c8 = mat4x4<f32>();
  var c9 = mat4x4<f32>();
  var c10 = mat4x4<f32>();
  var c11 = mat4x4<f32>();
  var c12 = mat4x4<f32>();
  var c13 = mat4x4<f32>();
  var c14 = mat4x4<f32>();
  var c15 = mat4x4<f32>();

  let ct = i32(P.G * P.CG4);
  let cg4 = i32(P.CG4);
  for (var u = 0; u < i32(P.KH); u++) {
    for (var v = 0; v < i32(P.KW); v++) {
      let tapOff = vec2<i32>(v * i32(P.DW) * ct, u * i32(P.DH));
      let k0 = (u * i32(P.KW) + v) * cg4;
      for (var k = 0; k < cg4; k++) {
        let off = tapOff + vec2<i32>(k, 0);
        let b0 = px4(tx, p0, p1, p2, p3, off);
        let b1 = px4(tx, p4, p5, p6, p7, off);
        let b2 = px4(tx, p8, p9, p10, p11, off);
        let b3 = px4(tx, p12, p13, p14, p15, off);
        let k4 = k0 + k;
        let a0 = rows4(tw, k4, r0);
        c0 = row(c0, a0[0], b0, b1, b2, b3);
        c1 = row(c1, a0[1], b0, b1, b2, b3);
        c2 = row(c2, a0[2], b0, b1, b2, b3);
        c3 = row(c3, a0[3], b0, b1, b2, b3);
        let a1 = rows4(tw, k4, r0 + 4);
        c4 = row(c4, a1[0], b0, b1, b2, b3);
        c5 = row(c5, a1[1], b0, b1, b2, b3);
        c6 = row(c6, a1[2], b0, b1, b2, b3);
        c7 = row(c7, a1[3], b0, b1, b2, b3);
        let a2 = rows4(tw, k4, r0 + 8);
        c8 = row(c8, a2[0], b0, b1, b2, b3);
        c9 = row(c9, a2[1], b0, b1, b2, b3);
        c10 = row(c10, a2[2], b0, b1, b2, b3);
        c11 = row(c11, a2[3], b0, b1, b2, b3);
        let a3 = rows4(tw, k4, r0 + 12);
        c12 = row(c12, a3[0], b0, b1, b2, b3);
        c13 = row(c13, a3[1], b0, b1, b2, b3);
        c14 = row(c14, a3[2], b0, b1, b2, b3);
        c15 = row(c15, a3[3], b0, b1, b2, b3);
      }
    }
  }

  let o0 = ob * 16u;
  let ob0 = g * ocg + o0;
  // Rows past the group's last channel are zero weights, computed but not written.
  let valid = min(16u, ocg - o0);
  put_y(c0, ob0, s0, q0);
  if (valid > 1u) { put_y(c1, ob0 + 1u, s0, q0); }
  if (valid > 2u) { put_y(c2, ob0 + 2u, s0, q0); }
  if (valid > 3u) { put_y(c3, ob0 + 3u, s0, q0); }
  if (valid > 4u) { put_y(c4, ob0 + 4u, s0, q0); }
  if (valid > 5u) { put_y(c5, ob0 + 5u, s0, q0); }
  if (valid > 6u) { put_y(c6, ob0 + 6u, s0, q0); }
  if (valid > 7u) { put_y(c7, ob0 + 7u, s0, q0); }
  if (valid > 8u) { put_y(c8, ob0 + 8u, s0, q0); }
  if (valid > 9u) { put_y(c9, ob0 + 9u, s0, q0); }
  if (valid > 10u) { put_y(c10, ob0 + 10u, s0, q0); }
  if (valid > 11u) { put_y(c11, ob0 + 11u, s0, q0); }
  if (valid > 12u) { put_y(c12, ob0 + 12u, s0, q0); }
  if (valid > 13u) { put_y(c13, ob0 + 13u, s0, q0); }
  if (valid > 14u) { put_y(c14, ob0 + 14u, s0, q0); }
  if (valid > 15u) { put_y(c15, ob0 + 15u, s0, q0); }
}

// Where pixel s = (n, a, b) of a residue class reads dy at offset (0, 0) in tdy.
fn dy_coord(s: vec3<u32>, g: u32) -> vec2<i32> {
  let ot = P.G * P.OG4;
  return vec2<i32>(i32(((s.x % P.DR) * P.DWP + P.DPL + s.z) * ot + g * P.OG4),
    i32((s.x / P.DR) * P.DHP + P.DPT + s.y));
}

// Writes row c (a channel of x) of a backward_input block for its 16 class pixels from s.
fn put_dx(acc: mat4x4<f32>, c: u32, s0: vec3<u32>, q0: u32, rh: u32, rw: u32) {
  let total = P.N * P.HA * P.WB;
  let hw = P.H * P.W;
  if (VEC_OUT) {
    // Stride 1 (one class, the whole image) and H·W a multiple of 4.
    var n = s0.x;
    var rem = s0.y * P.W + s0.z;
    for (var t = 0u; t < 4u; t++) {
      if (q0 + 4u * t < total) {
        dx_v4[((n * P.C + c) * hw + rem) / 4u] = acc[t];
      }
      rem += 4u;
      if (rem == hw) {
        rem = 0u;
        n += 1u;
      }
    }
    return;
  }
  var s = s0;
  for (var t = 0u; t < 4u; t++) {
    for (var e = 0u; e < 4u; e++) {
      let q = q0 + 4u * t + e;
      let h = rh + P.SH * s.y;
      let col = rw + P.SW * s.z;
      if (q < total && h < P.H && col < P.W) {
        dx[(s.x * P.C + c) * hw + h * P.W + col] = acc[t][e];
      }
      s = advance(s, q, total, P.HA, P.WB);
    }
  }
}

@compute @workgroup_size(WG_X)
fn backward_input(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let total = P.N * P.HA * P.WB;
  let pBlocks = (total + 15u) / 16u;
  let cBlocks = P.CGP / 16u;
  let id = linear_id(wid, nwg, lid);
  if (id >= pBlocks * cBlocks * P.G * P.SH * P.SW) {
    return;
  }
  let q0 = (id % pBlocks) * 16u;
  var t = id / pBlocks;
  let cb = t % cBlocks;
  t /= cBlocks;
  let g = t % P.G;
  let cls = t / P.G;
  let rh = cls / P.SW;
  let rw = cls % P.SW;
  let r0 = i32(g * P.CGP + cb * 16u);

  let s0 = start(q0, P.HA, P.WB);
  var s = s0;
  let p0 = dy_coord(s, g);
  s = advance(s, q0, total, P.HA, P.WB);
  let p1 = dy_coord(s, g);
  s = advance(s, q0 + 1u, total, P.HA, P.WB);
  let p2 = dy_coord(s, g);
  s = advance(s, q0 + 2u, total, P.HA, P.WB);
  let p3 = dy_coord(s, g);
  s = advance(s, q0 + 3u, total, P.HA, P.WB);
  let p4 = dy_coord(s, g);
  s = advance(s, q0 + 4u, total, P.HA, P.WB);
  let p5 = dy_coord(s, g);
  s = advance(s, q0 + 5u, total, P.HA, P.WB);
  let p6 = dy_coord(s, g);
  s = advance(s, q0 + 6u, total, P.HA, P.WB);
  let p7 = dy_coord(s, g);
  s = advance(s, q0 + 7u, total, P.HA, P.WB);
  let p8 = dy_coord(s, g);
  s = advance(s, q0 + 8u, total, P.HA, P.WB);
  let p9 = dy_coord(s, g);
  s = advance(s, q0 + 9u, total, P.HA, P.WB);
  let p10 = dy_coord(s, g);
  s = advance(s, q0 + 10u, total, P.HA, P.WB);
  let p11 = dy_coord(s, g);
  s = advance(s, q0 + 11u, total, P.HA, P.WB);
  let p12 = dy_coord(s, g);
  s = advance(s, q0 + 12u, total, P.HA, P.WB);
  let p13 = dy_coord(s, g);
  s = advance(s, q0 + 13u, total, P.HA, P.WB);
  let p14 = dy_coord(s, g);
  s = advance(s, q0 + 14u, total, P.HA, P.WB);
  let p15 = dy_coord(s, g);

  var c0 = mat4x4<f32>();
  var c1 = mat4x4<f32>();
  var c2 = mat4x4<f32>();
  var c3 = mat4x4<f32>();
  var c4 = mat4x4<f32>();
  var c5 = mat4x4<f32>();
  var c6 = mat4x4<f32>();
  var c7 = mat4x4<f32>();
  var c8 = mat4x4<f32>();
  var c9 = mat4x4<f32>();
  var c10 = mat4x4<f32>();
  var c11 = mat4x4<f32>();
  var c12 = mat4x4<f32>();
  var c13 = mat4x4<f32>();
  var c14 = mat4x4<f32>();
  var c15 = mat4x4<f32>();

  let ot = i32(P.G * P.OG4);
  let og4 = i32(P.OG4);
  let sh = i32(P.SH);
  let sw = i32(P.SW);
  for (var u = 0; u < i32(P.KH); u++) {
    // Pixel h = rh + SH·a reads dy row i = a + (rh + PT − u·DH)/SH when that divides.
    let th = i32(rh + P.PT) - u * i32(P.DH);
    if (th % sh != 0) {
      continue;
    }
    for (var v = 0; v < i32(P.KW); v++) {
      let tv = i32(rw + P.PL) - v * i32(P.DW);
      if (tv % sw != 0) {
        continue;
      }
      let tapOff = vec2<i32>((tv / sw) * ot, th / sh);
      let k0 = (u * i32(P.KW) + v) * og4;
      for (var k = 0; k < og4; k++) {
        let off = tapOff + vec2<i32>(k, 0);
        let b0 = px4(tdy, p0, p1, p2, p3, off);
        let b1 = px4(tdy, p4, p5, p6, p7, off);
        let b2 = px4(tdy, p8, p9, p10, p11, off);
        let b3 = px4(tdy, p12, p13, p14, p15, off);
        let k4 = k0 + k;
        let a0 = rows4(twt, k4, r0);
        c0 = row(c0, a0[0], b0, b1, b2, b3);
        c1 = row(c1, a0[1], b0, b1, b2, b3);
        c2 = row(c2, a0[2], b0, b1, b2, b3);
        c3 = row(c3, a0[3], b0, b1, b2, b3);
        let a1 = rows4(twt, k4, r0 + 4);
        c4 = row(c4, a1[0], b0, b1, b2, b3);
        c5 = row(c5, a1[1], b0, b1, b2, b3);
        c6 = row(c6, a1[2], b0, b1, b2, b3);
        c7 = row(c7, a1[3], b0, b1, b2, b3);
        let a2 = rows4(twt, k4, r0 + 8);
        c8 = row(c8, a2[0], b0, b1, b2, b3);
        c9 = row(c9, a2[1], b0, b1, b2, b3);
        c10 = row(c10, a2[2], b0, b1, b2, b3);
        c11 = row(c11, a2[3], b0, b1, b2, b3);
        let a3 = rows4(twt, k4, r0 + 12);
        c12 = row(c12, a3[0], b0, b1, b2, b3);
        c13 = row(c13, a3[1], b0, b1, b2, b3);
        c14 = row(c14, a3[2], b0, b1, b2, b3);
        c15 = row(c15, a3[3], b0, b1, b2, b3);
      }
    }
  }

  let cl = cb * 16u;
  let cb0 = g * cg + cl;
  let valid = min(16u, cg - cl);
  put_dx(c0, cb0, s0, q0, rh, rw);
  if (valid > 1u) { put_dx(c1, cb0 + 1u, s0, q0, rh, rw); }
  if (valid > 2u) { put_dx(c2, cb0 + 2u, s0, q0, rh, rw); }
  if (valid > 3u) { put_dx(c3, cb0 + 3u, s0, q0, rh, rw); }
  if (valid > 4u) { put_dx(c4, cb0 + 4u, s0, q0, rh, rw); }
  if (valid > 5u) { put_dx(c5, cb0 + 5u, s0, q0, rh, rw); }
  if (valid > 6u) { put_dx(c6, cb0 + 6u, s0, q0, rh, rw); }
  if (valid > 7u) { put_dx(c7, cb0 + 7u, s0, q0, rh, rw); }
  if (valid > 8u) { put_dx(c8, cb0 + 8u, s0, q0, rh, rw); }
  if (valid > 9u) { put_dx(c9, cb0 + 9u, s0, q0, rh, rw); }
  if (valid > 10u) { put_dx(c10, cb0 + 10u, s0, q0, rh, rw); }
  if (valid > 11u) { put_dx(c11, cb0 + 11u, s0, q0, rh, rw); }
  if (valid > 12u) { put_dx(c12, cb0 + 12u, s0, q0, rh, rw); }
  if (valid > 13u) { put_dx(c13, cb0 + 13u, s0, q0, rh, rw); }
  if (valid > 14u) { put_dx(c14, cb0 + 14u, s0, q0, rh, rw); }
  if (valid > 15u) { put_dx(c15, cb0 + 15u, s0, q0, rh, rw); }
}

// Writes row o (relative to the group) of a weight block into partial: acc[e] holds k texel
// kb4 + e, channels 4·c4 .. +3 of tap (u, v).
fn put_partial(acc: mat4x4<f32>, base: u32, kb4: u32) {
  let cg = P.C / P.G;
  let taps = P.KH * P.KW;
  let k4s = taps * P.CG4;
  for (var e = 0u; e < 4u; e++) {
    let k4 = kb4 + e;
    if (k4 < k4s) {
      let tap = k4 / P.CG4;
      let c0 = 4u * (k4 % P.CG4);
      for (var ch = 0u; ch < min(4u, cg - c0); ch++) {
        partial[base + (c0 + ch) * taps + tap] = acc[e][ch];
      }
    }
  }
}

// Where k texel k4 of a weight block reads tx, relative to the pixel's window origin.
fn k_off(k4: u32, g: u32) -> vec2<i32> {
  let ct = P.G * P.CG4;
  let k = min(k4, P.KH * P.KW * P.CG4 - 1u);
  let tap = k / P.CG4;
  let u = tap / P.KW;
  let v = tap % P.KW;
  return vec2<i32>(i32(v * P.DW * ct + g * P.CG4 + k % P.CG4), i32(u * P.DH));
}

// Where image n's pixel (0, 0) lies in tx (padded: its window origin) and in tdy.
fn image_x(n: u32) -> vec2<i32> {
  return vec2<i32>(i32((n % P.XR) * P.XWP * P.G * P.CG4), i32((n / P.XR) * P.XHP));
}

fn image_dy(n: u32) -> vec2<i32> {
  return vec2<i32>(i32(((n % P.DR) * P.DWP + P.DPL) * P.G * P.OG4),
    i32((n / P.DR) * P.DHP + P.DPT));
}

@compute @workgroup_size(WG_X)
fn backward_weight(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let cg = P.C / P.G;
  let ocg = P.OC / P.G;
  let taps = P.KH * P.KW;
  let kBlocks = (taps * P.CG4 + 3u) / 4u;
  let oBlocks = P.OCP / 16u;
  let id = linear_id(wid, nwg, lid);
  if (id >= kBlocks * oBlocks * P.G * P.SPLIT) {
    return;
  }
  let kb = id % kBlocks;
  var t = id / kBlocks;
  let ob = t % oBlocks;
  t /= oBlocks;
  let g = t % P.G;
  let chunk = t / P.G;
  let kb4 = kb * 4u;
  let k0 = k_off(kb4, g);
  let k1 = k_off(kb4 + 1u, g);
  let k2 = k_off(kb4 + 2u, g);
  let k3 = k_off(kb4 + 3u, g);
  // dy texels of output channels 16·ob .. +15 of the group, clamped to its last.
  let dLast = P.OG4 - 1u;
  let dg = g * P.OG4;
  let d0 = vec2<i32>(i32(dg + min(ob * 4u, dLast)), 0);
  let d1 = vec2<i32>(i32(dg + min(ob * 4u + 1u, dLast)), 0);
  let d2 = vec2<i32>(i32(dg + min(ob * 4u + 2u, dLast)), 0);
  let d3 = vec2<i32>(i32(dg + min(ob * 4u + 3u, dLast)), 0);

  var c0 = mat4x4<f32>();
  var c1 = mat4x4<f32>();
  var c2 = mat4x4<f32>();
  var c3 = mat4x4<f32>();
  var c4 = mat4x4<f32>();
  var c5 = mat4x4<f32>();
  var c6 = mat4x4<f32>();
  var c7 = mat4x4<f32>();
  var c8 = mat4x4<f32>();
  var c9 = mat4x4<f32>();
  var c10 = mat4x4<f32>();
  var c11 = mat4x4<f32>();
  var c12 = mat4x4<f32>();
  var c13 = mat4x4<f32>();
  var c14 = mat4x4<f32>();
  var c15 = mat4x4<f32>();
  // Column q of sb: dy summed over the chunk for channels 16·ob + 4q .. +3 (db, with BIAS).
  var sb = mat4x4<f32>();

  let ct = P.G * P.CG4;
  let ot = P.G * P.OG4;
  let xStep = vec2<i32>(i32(P.SW * ct), 0);
  let dStep = vec2<i32>(i32(ot), 0);
  let rowEnd = min((chunk + 1u) * P.CHUNK, P.N * P.OH);
  // Rows (n, i) are walked with i carried along: the divisions that place an image in the
  // textures run once per image, not once per row (a row of 8 pixels is two steps).
  let r0 = chunk * P.CHUNK;
  var n = r0 / P.OH;
  var i = r0 % P.OH;
  var xImage = image_x(n);
  var dImage = image_dy(n);
  // One flat loop over the chunk's quads (a row of 8 pixels is only two: a loop per row
  // would pay its entry and exit for every two steps).
  let steps = (rowEnd - r0) * ((P.OW + 3u) / 4u);
  var j = 0u;
  var xq = xImage + vec2<i32>(0, i32(i * P.SH));
  var dq = dImage + vec2<i32>(0, i32(i));
  for (var step = 0u; step < steps; step++) {
    // Four pixels per step, reduced in registers: with vectors over the 4 pixels, each
    // accumulator takes one dot product per step (as the forward's), not four multiply-adds.
    // A row's last quad may reach past OW into zero columns of tdy: it adds 0.
    let xb = xq + xStep;
    let xc = xb + xStep;
    let xd = xc + xStep;
    let dq1 = dq + dStep;
    let dq2 = dq1 + dStep;
    let dq3 = dq2 + dStep;
    // X_e[ch]: channel ch of k texel e at the 4 pixels; D_q[r]: channel 4q + r of dy.
    let x0 = transpose(px4(tx, xq, xb, xc, xd, k0));
    let x1 = transpose(px4(tx, xq, xb, xc, xd, k1));
    let x2 = transpose(px4(tx, xq, xb, xc, xd, k2));
    let x3 = transpose(px4(tx, xq, xb, xc, xd, k3));
    let t0 = px4(tdy, dq, dq1, dq2, dq3, d0);
    let e0 = transpose(t0);
    c0 = row(c0, e0[0], x0, x1, x2, x3);
    c1 = row(c1, e0[1], x0, x1, x2, x3);
    c2 = row(c2, e0[2], x0, x1, x2, x3);
    c3 = row(c3, e0[3], x0, x1, x2, x3);
    let t1 = px4(tdy, dq, dq1, dq2, dq3, d1);
    let e1 = transpose(t1);
    c4 = row(c4, e1[0], x0, x1, x2, x3);
    c5 = row(c5, e1[1], x0, x1, x2, x3);
    c6 = row(c6, e1[2], x0, x1, x2, x3);
    c7 = row(c7, e1[3], x0, x1, x2, x3);
    let t2 = px4(tdy, dq, dq1, dq2, dq3, d2);
    let e2 = transpose(t2);
    c8 = row(c8, e2[0], x0, x1, x2, x3);
    c9 = row(c9, e2[1], x0, x1, x2, x3);
    c10 = row(c10, e2[2], x0, x1, x2, x3);
    c11 = row(c11, e2[3], x0, x1, x2, x3);
    let t3 = px4(tdy, dq, dq1, dq2, dq3, d3);
    let e3 = transpose(t3);
    c12 = row(c12, e3[0], x0, x1, x2, x3);
    c13 = row(c13, e3[1], x0, x1, x2, x3);
    c14 = row(c14, e3[2], x0, x1, x2, x3);
    c15 = row(c15, e3[3], x0, x1, x2, x3);
    if (BIAS) {
      // db's partial sum rides along: 16 adds per 1,024 multiply-adds.
      sb = mat4x4<f32>(sb[0] + t0[0] + t0[1] + t0[2] + t0[3], sb[1] + t1[0] + t1[1] + t1[2] + t1[3],
        sb[2] + t2[0] + t2[1] + t2[2] + t2[3], sb[3] + t3[0] + t3[1] + t3[2] + t3[3]);
    }
    j += 4u;
    if (j < P.OW) {
      xq = xd + xStep;
      dq = dq3 + dStep;
    } else {
      j = 0u;
      i += 1u;
      if (i == P.OH) {
        i = 0u;
        n += 1u;
        xImage = image_x(n);
        dImage = image_dy(n);
      }
      xq = xImage + vec2<i32>(0, i32(i * P.SH));
      dq = dImage + vec2<i32>(0, i32(i));
    }
  }

  // partial[chunk][o][c][u][v] for o = g·OCg + 16·ob + row.
  let numel = P.OC * cg * taps;
  let o0 = ob * 16u;
  let valid = min(16u, ocg - o0);
  let base = chunk * numel + (g * ocg + o0) * cg * taps;
  let oStride = cg * taps;
  if (BIAS && kb == 0u) {
    // After the SPLIT weight slices: partial[SPLIT·numel + chunk·OC + o].
    let bBase = P.SPLIT * numel + chunk * P.OC + g * ocg + o0;
    for (var r = 0u; r < valid; r++) {
      partial[bBase + r] = sb[r / 4u][r % 4u];
    }
  }
  put_partial(c0, base, kb4);
  if (valid > 1u) { put_partial(c1, base + oStride, kb4); }
  if (valid > 2u) { put_partial(c2, base + 2u * oStride, kb4); }
  if (valid > 3u) { put_partial(c3, base + 3u * oStride, kb4); }
  if (valid > 4u) { put_partial(c4, base + 4u * oStride, kb4); }
  if (valid > 5u) { put_partial(c5, base + 5u * oStride, kb4); }
  if (valid > 6u) { put_partial(c6, base + 6u * oStride, kb4); }
  if (valid > 7u) { put_partial(c7, base + 7u * oStride, kb4); }
  if (valid > 8u) { put_partial(c8, base + 8u * oStride, kb4); }
  if (valid > 9u) { put_partial(c9, base + 9u * oStride, kb4); }
  if (valid > 10u) { put_partial(c10, base + 10u * oStride, kb4); }
  if (valid > 11u) { put_partial(c11, base + 11u * oStride, kb4); }
  if (valid > 12u) { put_partial(c12, base + 12u * oStride, kb4); }
  if (valid > 13u) { put_partial(c13, base + 13u * oStride, kb4); }
  if (valid > 14u) { put_partial(c14, base + 14u * oStride, kb4); }
  if (valid > 15u) { put_partial(c15, base + 15u * oStride, kb4); }
}

@compute @workgroup_size(WG_X)
fn reduce_weight(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  P = p;
  let numel = P.OC * (P.C / P.G) * P.KH * P.KW;
  let i = linear_id(wid, nwg, lid);
  if (i < numel) {
    var s = 0.0;
    for (var t = 0u; t < P.SPLIT; t++) {
      s += partial_in[t * numel + i];
    }
    dw[i] += s;
  } else if (BIAS && i < numel + P.OC) {
    let o = i - numel;
    var s = 0.0;
    for (var t = 0u; t < P.SPLIT; t++) {
      s += partial_in[P.SPLIT * numel + t * P.OC + o];
    }
    db[o] += s;
  }
}
