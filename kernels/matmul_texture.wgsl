// matmul_texture.wgsl — register-blocked matmul reading operands from read-only storage textures.
//
// Math:     C[M×N] = op(A)·op(B) (+ bias[n]) (→ LeakyReLU) (+ C_old when ACCUMULATE)
//           op(A) = A stored [M][K], or Aᵀ of A stored [K][M] when TRANS_A
//           op(B) = B stored [K][N], or Bᵀ of B stored [N][K] when TRANS_B
//           LeakyReLU(v) = v > 0 ? v : slope·v. Accumulation is in f32.
// Why textures: on Mesa's software adapters every `var<storage>` load becomes a per-lane scalar
//           loop with a bounds check; read-only rgba32float storage textures compile to 128-bit
//           loads (about 10× cheaper). Real GPUs use matmul_tiled.wgsl instead (lib/ops/matmul.ts).
// Blocking: each invocation owns a 16×16 block of C held in sixteen mat4x4 accumulators
//           (row i of the block is c_i; column t of c_i is C[m0+i][4(t0+t) .. +3]). The block is
//           written out by hand, not as arrays indexed in loops: Mesa lowers per-lane arrays
//           with variable indices to memory gathers, which ran 4× slower.
//           Per step of 4 along K: 16 A texels + 16 B texels feed 1,024 multiply-adds.
// Layout:   each operand texture holds its matrix row-major, 4 consecutive columns per texel,
//           zero-padded so every load below is in bounds: rows of A up to 16·mBlocks (or K up
//           to a multiple of 4), columns of B up to 16·nBlocks.
// Bindings: @group(0) 0 texA (read), 1 texB (read), 2 bias (storage, read; a dummy when !BIAS),
//           3 c (storage, read_write), 4 p: Params (uniform).
// Dispatch: one invocation per 16×16 block of C; blocks are numbered n-fastest so neighbouring
//           SIMD lanes (local_invocation_id.x) share A texels. Linear workgroup index is
//           wid.x + wid.y·nwg.x; grid = grid1d(ceil(mBlocks·nBlocks / WG_X)).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  slope: f32,
}

override WG_X: u32 = 8u; // invocations per workgroup: a multiple of the SIMD width
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
override LEAKY: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var texA: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var texB: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn at(t: texture_storage_2d<rgba32float, read>, x: u32, y: u32) -> vec4<f32> {
  return textureLoad(t, vec2<u32>(x, y));
}

// Rows m0+4q .. m0+4q+3 of op(A) at k = 4·k4 .. +3: column r is row 4q+r's four k values.
fn loadA(q: u32, k4: u32, m0: u32) -> mat4x4<f32> {
  if (TRANS_A) {
    let x = m0 / 4u + q;
    let k = 4u * k4;
    return transpose(mat4x4<f32>(at(texA, x, k), at(texA, x, k + 1u), at(texA, x, k + 2u), at(texA, x, k + 3u)));
  }
  let m = m0 + 4u * q;
  return mat4x4<f32>(at(texA, k4, m), at(texA, k4, m + 1u), at(texA, k4, m + 2u), at(texA, k4, m + 3u));
}

// Columns 4t .. 4t+3 of op(B) at k = 4·k4 .. +3: column kk holds B[k+kk][4t .. 4t+3], so
// (loadB · a) = Σ_kk a[kk]·B[k+kk][4t .. 4t+3].
fn loadB(t: u32, k4: u32) -> mat4x4<f32> {
  let k = 4u * k4;
  if (TRANS_B) {
    let n = 4u * t;
    return transpose(mat4x4<f32>(at(texB, k4, n), at(texB, k4, n + 1u), at(texB, k4, n + 2u), at(texB, k4, n + 3u)));
  }
  return mat4x4<f32>(at(texB, t, k), at(texB, t, k + 1u), at(texB, t, k + 2u), at(texB, t, k + 3u));
}

// One row of the block: 16 outputs += 4 k-values × 16 columns.
fn row(acc: mat4x4<f32>, a: vec4<f32>, b0: mat4x4<f32>, b1: mat4x4<f32>, b2: mat4x4<f32>, b3: mat4x4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(acc[0] + b0 * a, acc[1] + b1 * a, acc[2] + b2 * a, acc[3] + b3 * a);
}

fn epilogue(v: f32, m: u32, n: u32) {
  var x = v;
  if (BIAS) {
    x += bias[n];
  }
  if (LEAKY) {
    x = select(p.slope * x, x, x > 0.0);
  }
  let o = m * p.N + n;
  if (ACCUMULATE) {
    x += c[o];
  }
  c[o] = x;
}

fn store(acc: mat4x4<f32>, m: u32, n0: u32) {
  if (m >= p.M) {
    return;
  }
  for (var t = 0u; t < 4u; t++) {
    for (var e = 0u; e < 4u; e++) {
      let n = n0 + 4u * t + e;
      if (n < p.N) {
        epilogue(acc[t][e], m, n);
      }
    }
  }
}

@compute @workgroup_size(WG_X, 1, 1)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let nBlocks = (p.N + 15u) / 16u;
  let mBlocks = (p.M + 15u) / 16u;
  let id = (wid.x + wid.y * nwg.x) * WG_X + lid.x;
  if (id >= nBlocks * mBlocks) {
    return;
  }
  let m0 = (id / nBlocks) * 16u;
  let t0 = (id % nBlocks) * 4u; // first texel column of this block in B

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

  let K4 = (p.K + 3u) / 4u;
  for (var k4 = 0u; k4 < K4; k4++) {
    let b0 = loadB(t0, k4);
    let b1 = loadB(t0 + 1u, k4);
    let b2 = loadB(t0 + 2u, k4);
    let b3 = loadB(t0 + 3u, k4);
    let a0 = loadA(0u, k4, m0);
    c0 = row(c0, a0[0], b0, b1, b2, b3);
    c1 = row(c1, a0[1], b0, b1, b2, b3);
    c2 = row(c2, a0[2], b0, b1, b2, b3);
    c3 = row(c3, a0[3], b0, b1, b2, b3);
    let a1 = loadA(1u, k4, m0);
    c4 = row(c4, a1[0], b0, b1, b2, b3);
    c5 = row(c5, a1[1], b0, b1, b2, b3);
    c6 = row(c6, a1[2], b0, b1, b2, b3);
    c7 = row(c7, a1[3], b0, b1, b2, b3);
    let a2 = loadA(2u, k4, m0);
    c8 = row(c8, a2[0], b0, b1, b2, b3);
    c9 = row(c9, a2[1], b0, b1, b2, b3);
    c10 = row(c10, a2[2], b0, b1, b2, b3);
    c11 = row(c11, a2[3], b0, b1, b2, b3);
    let a3 = loadA(3u, k4, m0);
    c12 = row(c12, a3[0], b0, b1, b2, b3);
    c13 = row(c13, a3[1], b0, b1, b2, b3);
    c14 = row(c14, a3[2], b0, b1, b2, b3);
    c15 = row(c15, a3[3], b0, b1, b2, b3);
  }

  let n0 = 4u * t0;
  store(c0, m0, n0);
  store(c1, m0 + 1u, n0);
  store(c2, m0 + 2u, n0);
  store(c3, m0 + 3u, n0);
  store(c4, m0 + 4u, n0);
  store(c5, m0 + 5u, n0);
  store(c6, m0 + 6u, n0);
  store(c7, m0 + 7u, n0);
  store(c8, m0 + 8u, n0);
  store(c9, m0 + 9u, n0);
  store(c10, m0 + 10u, n0);
  store(c11, m0 + 11u, n0);
  store(c12, m0 + 12u, n0);
  store(c13, m0 + 13u, n0);
  store(c14, m0 + 14u, n0);
  store(c15, m0 + 15u, n0);
}
