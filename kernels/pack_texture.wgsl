// pack_texture.wgsl — copies a row-major f32 matrix from a storage buffer into an rgba32float
// storage texture, 4 consecutive columns per texel, zero-filling the padding.
//
// Math:     dst[y][x] = (src[y·cols + 4x], …, src[y·cols + 4x + 3]) where y < rows and the
//           column < cols, else 0. The whole texture (width × height texels) is written, so the
//           padding that matmul_texture.wgsl relies on is always zero.
// Bindings: @group(0) 0 src (storage, read), 1 dst (rgba32float storage texture, write),
//           2 p: Params (uniform).
// Dispatch: one invocation per destination texel; workgroup (WG_X, WG_Y);
//           grid = (ceil(width / WG_X), ceil(height / WG_Y)).

struct Params {
  rows: u32,
  cols: u32,
  width: u32,
  height: u32,
  offset: u32, // first element of the matrix in src
}

override WG_X: u32 = 16u;
override WG_Y: u32 = 4u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var dst: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x = gid.x;
  let y = gid.y;
  if (x >= p.width || y >= p.height) {
    return;
  }
  var v = vec4<f32>(0.0);
  if (y < p.rows) {
    let base = p.offset + y * p.cols;
    for (var e = 0u; e < 4u; e++) {
      let col = 4u * x + e;
      if (col < p.cols) {
        v[e] = src[base + col];
      }
    }
  }
  textureStore(dst, vec2<u32>(x, y), v);
}
