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
// Bindings: @group(0) 0 a (storage, read), 1 b (storage, read), 2 bias (storage, read; a dummy
//           when !BIAS), 3 c (storage, read_write), 4 p: Params (uniform).
// Dispatch: grid = (ceil(N / BN), ceil(M / BM)).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  slope: f32,
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

const MAX_R: u32 = 8u;
const BK: u32 = 16u;
// Shared tiles sized for the largest allowed tile (16·8 = 128 rows or columns).
const MAX_B: u32 = 128u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> tileA: array<f32, 2048>; // BK × MAX_B, [kk][mm]
var<workgroup> tileB: array<f32, 2048>; // BK × MAX_B, [kk][nn]

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) {
    return 0.0;
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
