// activation.wgsl — LeakyReLU (and ReLU as slope 0), forward and backward.
//
// Math:     forward   y  = x > 0 ? x : slope·x
//           backward  dX = dY · (ref > 0 ? 1 : slope)
//           `ref` is the layer's input x, or its output y when the activation was fused into
//           the matmul epilogue: for slope ≥ 0, y > 0 exactly when x > 0, so both give PyTorch's
//           gradient (which is `slope` at x = 0).
// Bindings: @group(0) 0 src (storage, read: x, or ref in backward), 1 dy (storage, read;
//           backward only), 2 dst (storage, read_write: y or dX), 3 p: Params (uniform).
// Dispatch: one invocation per element; workgroup WG; grid = grid1d(ceil(n / WG)); the linear
//           index is (wid.x + wid.y·nwg.x)·WG + lid.x.

struct Params {
  n: u32,
  slope: f32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  let x = src[i];
  dst[i] = select(p.slope * x, x, x > 0.0);
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wid, nwg, lid);
  if (i >= p.n) {
    return;
  }
  let g = dy[i];
  dst[i] = select(p.slope * g, g, src[i] > 0.0);
}
