// matmul_tiled.wgsl — shared-memory tiled, register-blocked matmul over storage buffers; the
// variant for real GPUs (and the fallback where an operand is too large for a texture).
//
// Math:     C[M×N] = op(A)·op(B) (+ bias[n]) (→ LeakyReLU) (+ C_old when ACCUMULATE)
//           op(A)[m][k] = TRANS_A ? a[k·M + m] : a[m·K + k]
//           op(B)[k][n] = TRANS_B ? b[n·K + k] : b[k·N + n]
//           LeakyReLU(v) = v > 0 ? v : slope·v. Accumulation is in f32.
// Tiles:    a workgroup of WG_X × WG_Y invocations computes a BM × BN tile of C
//           (BM = WG_Y·RM, BN = WG_X·RN); each invocation holds RM × RN accumulators, rows
//           strided by WG_Y and columns by WG_X so neighbouring invocations read neighbouring
//           shared-memory words. The K dimension advances BK at a time through shared memory.
// Rows:     with A_ROWS, op(A)'s batch rows come straight from a uint8 dataset instead of a:
//           batch row b is the sample whose bytes start at byte order[rows.start + b] of its
//           shard (bit 31: shard1; the loader writes these starts beside the epoch's order), its
//           feature e the byte at e, taken as u = f32(byte) / 255 and, with A_NORM,
//           (u − mean[e]) / std[e]: the gather kernel's operations (gather.wgsl), so the product
//           equals one over the gathered batch bit for bit. Rows are batch rows m (forward X·W)
//           or k (TRANS_A: Xᵀ·dZ).
// Bindings: @group(0) 0 a (storage, read), 1 b (storage, read), 2 bias (storage, read; a dummy
//           when !BIAS), 3 c (storage, read_write), 4 p: Params (uniform), 5 order (storage,
//           read: u32 row starts at rows.start), 6 rows: Rows (uniform), 7 shard0, 8 shard1
//           (storage, read: the dataset's bytes, four to a u32), 9 norm (storage, read: row means, then row
//           stds). 5–9 are dummies when !A_ROWS (WebGPU counts a binding as used even where a
//           constant turns its code off).
// Dispatch: grid = (ceil(N / BN), ceil(M / BM)).

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

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override RM: u32 = 4u; // at most MAX_R
override RN: u32 = 4u; // at most MAX_R
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
override LEAKY: bool = false;
override ACCUMULATE: bool = false;
override A_ROWS: bool = false; // op(A) from the dataset's rows (see Rows above)
override A_NORM: bool = false; // normalise those rows with norm
override A_SHARDS: u32 = 1u; // the dataset's shards, 1 or 2

const MAX_R: u32 = 8u;
const BK: u32 = 16u;
// Shared tiles sized for the largest allowed tile (16·8 = 128 rows or columns).
const MAX_B: u32 = 128u;

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

var<workgroup> tileA: array<f32, 2048>; // BK × MAX_B, [kk][mm]
var<workgroup> tileB: array<f32, 2048>; // BK × MAX_B, [kk][nn]

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
  if (m >= p.M || k >= p.K) {
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
  if (k >= p.K || n >= p.N) {
    return 0.0;
  }
  if (TRANS_B) {
    return b[n * p.K + k];
  }
  return b[k * p.N + n];
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let BM = WG_Y * RM;
  let BN = WG_X * RN;
  let threads = WG_X * WG_Y;
  let t = lid.y * WG_X + lid.x;
  let tileM = wid.y * BM;
  let tileN = wid.x * BN;

  var acc: array<f32, 64>; // MAX_R × MAX_R
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // Cooperative loads. Consecutive invocations walk the operand's contiguous axis, so a
    // row-major A walks k and a transposed A walks m (coalesced on real GPUs).
    for (var e = t; e < BK * BM; e += threads) {
      var kk: u32;
      var mm: u32;
      if (TRANS_A) {
        kk = e / BM;
        mm = e % BM;
      } else {
        mm = e / BK;
        kk = e % BK;
      }
      tileA[kk * MAX_B + mm] = loadA(tileM + mm, k0 + kk);
    }
    for (var e = t; e < BK * BN; e += threads) {
      var kk: u32;
      var nn: u32;
      if (TRANS_B) {
        nn = e / BK;
        kk = e % BK;
      } else {
        kk = e / BN;
        nn = e % BN;
      }
      tileB[kk * MAX_B + nn] = loadB(k0 + kk, tileN + nn);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var bv: array<f32, 8>;
      for (var j = 0u; j < RN; j++) {
        bv[j] = tileB[kk * MAX_B + lid.x + j * WG_X];
      }
      for (var i = 0u; i < RM; i++) {
        let av = tileA[kk * MAX_B + lid.y + i * WG_Y];
        for (var j = 0u; j < RN; j++) {
          acc[i * MAX_R + j] = fma(av, bv[j], acc[i * MAX_R + j]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < RM; i++) {
    let m = tileM + lid.y + i * WG_Y;
    for (var j = 0u; j < RN; j++) {
      let n = tileN + lid.x + j * WG_X;
      if (m < p.M && n < p.N) {
        var v = acc[i * MAX_R + j];
        if (BIAS) {
          v += bias[n];
        }
        if (LEAKY) {
          v = select(p.slope * v, v, v > 0.0);
        }
        let o = m * p.N + n;
        if (ACCUMULATE) {
          v += c[o];
        }
        c[o] = v;
      }
    }
  }
}
