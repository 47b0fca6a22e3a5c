// matmul_yardstick.wgsl — the plainest register-blocked matmul: 4×4 outputs per invocation,
// operands read straight from storage buffers, no shared memory. The benchmark runs it in the
// same process as the real engine, because ratios hold where absolute speed drifts ±30%.
//
// Math:     C[M×N] = A[M×K]·B[K×N], all row-major f32.
// Bindings: @group(0) 0 a (storage, read), 1 b (storage, read), 2 c (storage, read_write),
//           3 p: Params (uniform).
// Dispatch: one invocation per 4×4 block of C; workgroup (8, 8);
//           grid = (ceil(N / 32), ceil(M / 32)).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  var acc: array<f32, 16>;
  for (var k = 0u; k < p.K; k++) {
    var bk: array<f32, 4>;
    for (var j = 0u; j < 4u; j++) {
      bk[j] = select(0.0, b[k * p.N + n0 + j], n0 + j < p.N);
    }
    for (var i = 0u; i < 4u; i++) {
      let ai = select(0.0, a[(m0 + i) * p.K + k], m0 + i < p.M);
      for (var j = 0u; j < 4u; j++) {
        acc[i * 4u + j] = fma(ai, bk[j], acc[i * 4u + j]);
      }
    }
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      if (m0 + i < p.M && n0 + j < p.N) {
        c[(m0 + i) * p.N + n0 + j] = acc[i * 4u + j];
      }
    }
  }
}
