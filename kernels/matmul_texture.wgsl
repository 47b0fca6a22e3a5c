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
// Rows:     with A_ROWS, op(A)'s batch rows come straight from a uint8 dataset instead of texA:
//           batch row b (b < rows.count; rows past it are 0) is the sample whose bytes start at
//           byte order[rows.start + b] of its shard (bit 31: shard1; the loader writes these
//           starts beside the epoch's order), its feature e the byte at e, taken as
//           u = f32(byte) / 255 and, with A_NORM, (u − mean[e]) / std[e]: the gather kernel's
//           operations (gather.wgsl), so the product equals one over the gathered batch bit for
//           bit. Forward (X·W, !TRANS_A): the block's 16 rows are located once, and every fourth
//           step reads one vec4<u32> (16 features) per row. Weight gradient (Xᵀ·dZ, TRANS_A):
//           each step locates its 4 batch rows and reads one vec4<u32> (the block's 16 features)
//           of each. Needs rows.row % 16 == 0 (16-byte-aligned samples, K4 % 4 == 0).
// Bindings: @group(0) 0 texA (read), 1 texB (read), 2 bias (storage, read; a dummy when !BIAS),
//           3 c (storage, read_write), 4 p: Params (uniform), 5 order (storage, read: u32 row
//           starts at rows.start), 6 rows: Rows (uniform), 7 shard0, 8 shard1 (storage, read: the
//           dataset's bytes as vec4<u32>; shard1 repeats shard0 when A_SHARDS = 1), 9 norm
//           (storage, read: row means then row stds, as vec4s). 5–9 are dummies when !A_ROWS, 0 is unread when
//           A_ROWS (WebGPU counts a binding as used even where a constant turns its code off).
// Dispatch: one invocation per 16×16 block of C; blocks are numbered n-fastest so neighbouring
//           SIMD lanes (local_invocation_id.x) share A texels. Linear workgroup index is
//           wid.x + wid.y·nwg.x; grid = grid1d(ceil(mBlocks·nBlocks / WG_X)).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  slope: f32,
}

struct Rows {
  start: u32, // where the batch's row starts begin in order
  count: u32, // samples in the batch
  row: u32,   // bytes (features) per sample
}

override WG_X: u32 = 8u; // invocations per workgroup: a multiple of the SIMD width
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
override LEAKY: bool = false;
override ACCUMULATE: bool = false;
override A_ROWS: bool = false; // op(A) from the dataset's rows (see Rows above)
override A_NORM: bool = false; // normalise those rows with norm
override A_SHARDS: u32 = 1u; // the dataset's shards, 1 or 2

@group(0) @binding(0) var texA: texture_storage_2d<rgba32float, read>;
@group(0) @binding(1) var texB: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> order: array<u32>;
@group(0) @binding(6) var<uniform> rows: Rows;
@group(0) @binding(7) var<storage, read> shard0: array<vec4<u32>>;
@group(0) @binding(8) var<storage, read> shard1: array<vec4<u32>>;
@group(0) @binding(9) var<storage, read> norm: array<vec4<f32>>;

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

// ---- A_ROWS: operand A from the dataset ------------------------------------------------------

const NO_ROW: u32 = 0xffffffffu;

// Where batch row b's bytes start in its shard, as the loader wrote it beside the order (bit 31
// set for shard1); NO_ROW past the batch.
fn rowStart(b: u32) -> u32 {
  if (b >= rows.count) {
    return NO_ROW;
  }
  return order[rows.start + b];
}

// Bytes 16v … 16v + 15 of the row starting at `at` (rows are 16-byte aligned). A NO_ROW start
// reads some in-bounds vector (robust access); its values are discarded.
fn rowVec(at: u32, v: u32) -> vec4<u32> {
  if (A_SHARDS > 1u && at >= 0x80000000u) {
    return shard1[(at & 0x7fffffffu) / 16u + v];
  }
  return shard0[at / 16u + v];
}

// Component j (uniform) of w.
fn pick(w: vec4<u32>, j: u32) -> u32 {
  return select(select(w.x, w.y, j == 1u), select(w.z, w.w, j == 3u), j >= 2u);
}

// Four bytes as the gather converts them: v / 255, then (· − mean) / sd with A_NORM.
fn convert(word: u32, mean: vec4<f32>, sd: vec4<f32>) -> vec4<f32> {
  let v = vec4<u32>(word & 255u, (word >> 8u) & 255u, (word >> 16u) & 255u, word >> 24u);
  let unit = vec4<f32>(v) / 255.0;
  if (!A_NORM) {
    return unit;
  }
  return (unit - mean) / sd;
}

// Mean and std of features 4·t … 4·t + 3 (A_NORM).
fn normMean(t: u32) -> vec4<f32> {
  return norm[t];
}

fn normStd(t: u32) -> vec4<f32> {
  return norm[rows.row / 4u + t];
}

// Rows m0+4q … +3 of op(A) at k = 4·k4 … +3, from texA or (A_ROWS) the dataset's `words`:
// forward, the four rows' words at features 4·k4 … +3; weight gradient (TRANS_A), the words of
// features m0+4q … +3 in batch rows 4·k4 … +3, of which those not `valid` (past the batch) are
// 0, like texA's padding. `mean` and `sd` belong to the words' features.
fn operandA(q: u32, k4: u32, m0: u32, words: vec4<u32>, valid: vec4<bool>, mean: vec4<f32>,
            sd: vec4<f32>) -> mat4x4<f32> {
  if (!A_ROWS) {
    return loadA(q, k4, m0);
  }
  let a = mat4x4<f32>(convert(words.x, mean, sd), convert(words.y, mean, sd),
                      convert(words.z, mean, sd), convert(words.w, mean, sd));
  if (!TRANS_A) {
    return a;
  }
  let zero = vec4<f32>();
  return transpose(mat4x4<f32>(select(zero, a[0], valid.x), select(zero, a[1], valid.y),
                               select(zero, a[2], valid.z), select(zero, a[3], valid.w)));
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

  // A_ROWS: what stays fixed over k, read once. Forward: the starts of the block's 16 rows.
  // Weight gradient with A_NORM: the normalisation of the block's 16 features.
  var at0 = vec4<u32>();
  var at1 = vec4<u32>();
  var at2 = vec4<u32>();
  var at3 = vec4<u32>();
  var mean0 = vec4<f32>();
  var mean1 = vec4<f32>();
  var mean2 = vec4<f32>();
  var mean3 = vec4<f32>();
  var sd0 = vec4<f32>(1.0);
  var sd1 = vec4<f32>(1.0);
  var sd2 = vec4<f32>(1.0);
  var sd3 = vec4<f32>(1.0);
  if (A_ROWS && !TRANS_A) {
    at0 = vec4<u32>(rowStart(m0), rowStart(m0 + 1u), rowStart(m0 + 2u), rowStart(m0 + 3u));
    at1 = vec4<u32>(rowStart(m0 + 4u), rowStart(m0 + 5u), rowStart(m0 + 6u), rowStart(m0 + 7u));
    at2 = vec4<u32>(rowStart(m0 + 8u), rowStart(m0 + 9u), rowStart(m0 + 10u), rowStart(m0 + 11u));
    at3 = vec4<u32>(rowStart(m0 + 12u), rowStart(m0 + 13u), rowStart(m0 + 14u), rowStart(m0 + 15u));
  }
  if (A_ROWS && TRANS_A && A_NORM) {
    let t = m0 / 4u;
    mean0 = normMean(t);
    mean1 = normMean(t + 1u);
    mean2 = normMean(t + 2u);
    mean3 = normMean(t + 3u);
    sd0 = normStd(t);
    sd1 = normStd(t + 1u);
    sd2 = normStd(t + 2u);
    sd3 = normStd(t + 3u);
  }
  // Forward A_ROWS: the 16 rows' next 16 bytes, read every fourth step (one vector per row).
  var w0 = vec4<u32>();
  var w1 = vec4<u32>();
  var w2 = vec4<u32>();
  var w3 = vec4<u32>();
  var w4 = vec4<u32>();
  var w5 = vec4<u32>();
  var w6 = vec4<u32>();
  var w7 = vec4<u32>();
  var w8 = vec4<u32>();
  var w9 = vec4<u32>();
  var w10 = vec4<u32>();
  var w11 = vec4<u32>();
  var w12 = vec4<u32>();
  var w13 = vec4<u32>();
  var w14 = vec4<u32>();
  var w15 = vec4<u32>();

  let K4 = (p.K + 3u) / 4u;
  for (var k4 = 0u; k4 < K4; k4++) {
    let b0 = loadB(t0, k4);
    let b1 = loadB(t0 + 1u, k4);
    let b2 = loadB(t0 + 2u, k4);
    let b3 = loadB(t0 + 3u, k4);
    // A_ROWS: this step's words of A (see operandA) and the normalisation of their features.
    var words0 = vec4<u32>();
    var words1 = vec4<u32>();
    var words2 = vec4<u32>();
    var words3 = vec4<u32>();
    var valid = vec4<bool>(true);
    var mean = vec4<f32>();
    var sd = vec4<f32>(1.0);
    if (A_ROWS && TRANS_A) {
      let k = 4u * k4;
      let at = vec4<u32>(rowStart(k), rowStart(k + 1u), rowStart(k + 2u), rowStart(k + 3u));
      valid = at != vec4<u32>(NO_ROW);
      let v = m0 / 16u;
      let r0 = rowVec(at.x, v);
      let r1 = rowVec(at.y, v);
      let r2 = rowVec(at.z, v);
      let r3 = rowVec(at.w, v);
      words0 = vec4<u32>(r0.x, r1.x, r2.x, r3.x);
      words1 = vec4<u32>(r0.y, r1.y, r2.y, r3.y);
      words2 = vec4<u32>(r0.z, r1.z, r2.z, r3.z);
      words3 = vec4<u32>(r0.w, r1.w, r2.w, r3.w);
    }
    if (A_ROWS && !TRANS_A) {
      let j = k4 & 3u;
      if (j == 0u) {
        let v = k4 / 4u;
        w0 = rowVec(at0.x, v);
        w1 = rowVec(at0.y, v);
        w2 = rowVec(at0.z, v);
        w3 = rowVec(at0.w, v);
        w4 = rowVec(at1.x, v);
        w5 = rowVec(at1.y, v);
        w6 = rowVec(at1.z, v);
        w7 = rowVec(at1.w, v);
        w8 = rowVec(at2.x, v);
        w9 = rowVec(at2.y, v);
        w10 = rowVec(at2.z, v);
        w11 = rowVec(at2.w, v);
        w12 = rowVec(at3.x, v);
        w13 = rowVec(at3.y, v);
        w14 = rowVec(at3.z, v);
        w15 = rowVec(at3.w, v);
      }
      words0 = vec4<u32>(pick(w0, j), pick(w1, j), pick(w2, j), pick(w3, j));
      words1 = vec4<u32>(pick(w4, j), pick(w5, j), pick(w6, j), pick(w7, j));
      words2 = vec4<u32>(pick(w8, j), pick(w9, j), pick(w10, j), pick(w11, j));
      words3 = vec4<u32>(pick(w12, j), pick(w13, j), pick(w14, j), pick(w15, j));
      if (A_NORM) {
        mean = normMean(k4);
        sd = normStd(k4);
      }
    }
    let a0 = operandA(0u, k4, m0, words0, valid, select(mean, mean0, TRANS_A),
                      select(sd, sd0, TRANS_A));
    c0 = row(c0, a0[0], b0, b1, b2, b3);
    c1 = row(c1, a0[1], b0, b1, b2, b3);
    c2 = row(c2, a0[2], b0, b1, b2, b3);
    c3 = row(c3, a0[3], b0, b1, b2, b3);
    let a1 = operandA(1u, k4, m0, words1, valid, select(mean, mean1, TRANS_A),
                      select(sd, sd1, TRANS_A));
    c4 = row(c4, a1[0], b0, b1, b2, b3);
    c5 = row(c5, a1[1], b0, b1, b2, b3);
    c6 = row(c6, a1[2], b0, b1, b2, b3);
    c7 = row(c7, a1[3], b0, b1, b2, b3);
    let a2 = operandA(2u, k4, m0, words2, valid, select(mean, mean2, TRANS_A),
                      select(sd, sd2, TRANS_A));
    c8 = row(c8, a2[0], b0, b1, b2, b3);
    c9 = row(c9, a2[1], b0, b1, b2, b3);
    c10 = row(c10, a2[2], b0, b1, b2, b3);
    c11 = row(c11, a2[3], b0, b1, b2, b3);
    let a3 = operandA(3u, k4, m0, words3, valid, select(mean, mean3, TRANS_A),
                      select(sd, sd3, TRANS_A));
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
