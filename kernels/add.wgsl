// add.wgsl — element-wise sum of two tensors: the skip connection of a Residual.
//
// Math:     dst = a + b, one f32 rounding, as PyTorch's `x + f(x)` (and a + b = b + a exactly,
//           so the order in which autograd sums the two gradients does not matter).
//           Forward: a = x, b = f(x). Backward: a = dY (the skip's gradient), b = f's dX.
// Bindings: @group(0) 0 a (storage, read), 1 b (storage, read; may be a's buffer), 2 dst
//           (storage, read_write), 3 p: Params (uniform).
// Dispatch: one invocation per element; workgroup WG; grid = grid1d(ceil(n / WG)); the linear
//           index is (wid.x + wid.y·nwg.x)·WG + lid.x.

struct Params {
  n: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (i >= p.n) {
    return;
  }
  dst[i] = a[i] + b[i];
}
