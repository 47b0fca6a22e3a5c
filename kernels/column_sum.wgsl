// column_sum.wgsl — adds the column sums of a matrix into a vector (a Linear's bias gradient).
//
// Math:     out[n] += Σ_m x[m·N + n]   (accumulates, as PyTorch's gradients do until zeroed)
// Bindings: @group(0) 0 x (storage, read, [M×N]), 1 out (storage, read_write, [N]),
//           2 p: Params (uniform).
// Dispatch: one invocation per column; neighbouring lanes read neighbouring columns, so each row
//           is read contiguously; workgroup WG; grid = ceil(N / WG).

struct Params {
  M: u32,
  N: u32,
}

override WG: u32 = 32u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N) {
    return;
  }
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) {
    s += x[m * p.N + n];
  }
  out[n] += s;
}
