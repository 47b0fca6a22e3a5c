// matmul_blocked.wgsl — register-blocked matmul over storage buffers, no shared memory: the
// variant for software adapters that cannot read storage textures (Mesa's GL backend), where
// shared-memory tiles and barriers (coroutine switches on llvmpipe) make matmul_tiled.wgsl slow.
//
// Math:     C[M×N] = op(A)·op(B) (+ bias[n]) (→ LeakyReLU) (+ C_old when ACCUMULATE)
//           op(A)[m][k] = TRANS_A ? a[k·M + m] : a[m·K + k]
//           op(B)[k][n] = TRANS_B ? b[n·K + k] : b[k·N + n]
//           LeakyReLU(v) = v > 0 ? v : slope·v. Accumulation is in f32.
// Blocking: each invocation owns an 8×8 block of C in eight mat2x4 accumulators (row i of the
//           block is c_i; its two columns are C[m0+i][n0 .. n0+3] and [n0+4 .. n0+7]), written
//           out by hand: Mesa lowers per-lane arrays indexed in loops to memory gathers.
//           Per step along K: 8 loads of A and 8 of B feed 64 multiply-adds. Out-of-range rows,
//           columns and k read as 0, so any M, N, K work.
// Rows:     with A_ROWS, op(A)'s batch rows come straight from a uint8 dataset instead of a:
//           batch row b is the sample whose bytes start at byte order[rows.start + b] of its
//           shard (bit 31: shard1; the loader writes these starts beside the epoch's order), its
//           feature e the byte at e, taken as u = f32(byte) / 255 and, with A_NORM,
//           (u − mean[e]) / std[e]: the gather kernel's operations (gather.wgsl), so the product
//           equals one over the gathered batch bit for bit. Rows are batch rows m (forward X·W)
//           or k (TRANS_A: Xᵀ·dZ).
// Bindings: @group(0) 0 a (storage, read), 1 b (storage, read), 2 bias (storage, read; a dummy
//           when !BIAS), 3 c (storage, read_write), 4 p: Params (uniform), 5 order, 6 rows: Rows
//           (uniform), 7 shard0, 8 shard1, 9 norm (storage, read; dummies when !A_ROWS) — as
//           matmul_tiled.wgsl.
// Dispatch: one invocation per 8×8 block, numbered n-fastest so neighbouring SIMD lanes share A
//           loads; linear workgroup index wid.x + wid.y·nwg.x;
//           grid = grid1d(ceil(ceil(M/8)·ceil(N/8) / WG_X)).

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

override WG_X: u32 = 8u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
override LEAKY: bool = false;
override ACCUMULATE: bool = false;
override A_ROWS: bool = false; // op(A) from the dataset's rows (see Rows above)
override A_NORM: bool = false; // normalise those rows with norm
override A_SHARDS: u32 = 1u; // the dataset's shards, 1 or 2

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> order: array<u32>;
@group(0) @binding(6) var<uniform> rows: Rows;
@group(0) @binding(7) var<storage, read> shard0: array<u32>;
@group(0) @binding(8) var<storage, read> shard1: array<u32>;
@group(0) @binding(9) var<storage, read> norm: array<f32>;

// Feature e of batch row b, read from the dataset as the gather converts it (A_ROWS).
fn rowValue(b: u32, e: u32) -> f32 {
  let start = order[rows.start + b];
  let at = (start & 0x7fffffffu) + e; // byte in the shard
  var word: u32;
  if (A_SHARDS > 1u && start >= 0x80000000u) {
    word = shard1[at / 4u];
  } else {
    word = shard0[at / 4u];
  }
  let unit = f32((word >> ((at % 4u) * 8u)) & 255u) / 255.0;
  if (!A_NORM) {
    return unit;
  }
  return (unit - norm[e]) / norm[rows.row + e];
}

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= p.M) {
    return 0.0;
  }
  if (A_ROWS && TRANS_A) {
    return rowValue(k, m);
  }
  if (A_ROWS) {
    return rowValue(m, k);
  }
  if (TRANS_A) {
    return a[k * p.M + m];
  }
  return a[m * p.K + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  if (n >= p.N) {
    return 0.0;
  }
  if (TRANS_B) {
    return b[n * p.K + k];
  }
  return b[k * p.N + n];
}

// One row of the block: 8 outputs += a · B[k][n0 .. n0+7].
fn row(acc: mat2x4<f32>, av: f32, lo: vec4<f32>, hi: vec4<f32>) -> mat2x4<f32> {
  return mat2x4<f32>(fma(vec4<f32>(av), lo, acc[0]), fma(vec4<f32>(av), hi, acc[1]));
}

// The epilogue is the same as matmul_texture.wgsl's and matmul_tiled.wgsl's: each kernel file
// stays complete on its own page rather than depending on a hidden shared preamble.
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

fn store(acc: mat2x4<f32>, m: u32, n0: u32) {
  if (m >= p.M) {
    return;
  }
  for (var h = 0u; h < 2u; h++) {
    for (var e = 0u; e < 4u; e++) {
      let n = n0 + 4u * h + e;
      if (n < p.N) {
        epilogue(acc[h][e], m, n);
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
  let nBlocks = (p.N + 7u) / 8u;
  let mBlocks = (p.M + 7u) / 8u;
  let id = (wid.x + wid.y * nwg.x) * WG_X + lid.x;
  if (id >= nBlocks * mBlocks) {
    return;
  }
  let m0 = (id / nBlocks) * 8u;
  let n0 = (id % nBlocks) * 8u;

  var c0 = mat2x4<f32>();
  var c1 = mat2x4<f32>();
  var c2 = mat2x4<f32>();
  var c3 = mat2x4<f32>();
  var c4 = mat2x4<f32>();
  var c5 = mat2x4<f32>();
  var c6 = mat2x4<f32>();
  var c7 = mat2x4<f32>();
  for (var k = 0u; k < p.K; k++) {
    let lo = vec4<f32>(loadB(k, n0), loadB(k, n0 + 1u), loadB(k, n0 + 2u), loadB(k, n0 + 3u));
    let hi = vec4<f32>(loadB(k, n0 + 4u), loadB(k, n0 + 5u), loadB(k, n0 + 6u), loadB(k, n0 + 7u));
    c0 = row(c0, loadA(m0, k), lo, hi);
    c1 = row(c1, loadA(m0 + 1u, k), lo, hi);
    c2 = row(c2, loadA(m0 + 2u, k), lo, hi);
    c3 = row(c3, loadA(m0 + 3u, k), lo, hi);
    c4 = row(c4, loadA(m0 + 4u, k), lo, hi);
    c5 = row(c5, loadA(m0 + 5u, k), lo, hi);
    c6 = row(c6, loadA(m0 + 6u, k), lo, hi);
    c7 = row(c7, loadA(m0 + 7u, k), lo, hi);
  }
  store(c0, m0, n0);
  store(c1, m0 + 1u, n0);
  store(c2, m0 + 2u, n0);
  store(c3, m0 + 3u, n0);
  store(c4, m0 + 4u, n0);
  store(c5, m0 + 5u, n0);
  store(c6, m0 + 6u, n0);
  store(c7, m0 + 7u, n0);
}
