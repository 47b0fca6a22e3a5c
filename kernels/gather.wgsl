// gather.wgsl — gathers a batch of CIFAR-10 images by index from the uint8 dataset, converts
// them to f32 in [0, 1] (the seed's ToTensor), optionally normalises per channel, and
// optionally flips and crops them (augmentation); also gathers the labels.
//
// Math:     for batch row b < count, sample s = order[start + b], augmentation word
//           a = order[total + start + b] (flip = a & 1, dx = (a >> 8) & 255, dy = (a >> 16) & 255):
//             x[b][c·1024 + i·32 + j] = norm_c(P(s, c, i + dy − CROP, j' + dx − CROP) / 255)
//             with j' = FLIP && flip ? 31 − j : j,
//             P(s, c, i, j) = byte (c, i, j) of image s when 0 ≤ i, j < 32, else 0 (zero padding),
//             norm_c(v) = NORMALIZE ? (v − mean_c) / std_c : v
//             y[b] = labels[s]
//           With CROP = 0 and FLIP = false the 16 bytes of one load are converted as they are;
//           otherwise the source row (32 bytes, two loads) is read once and bytes picked from it.
//           The division by 255 (not a multiplication by 1/255) rounds like the CPU's v / 255.
// Data:     images are CHW bytes packed four to a u32 (little-endian), read as vec4<u32>: 192
//           vectors (3072 bytes) per image, over up to four shards of shardImages images each
//           (the storage-binding limit).
// Bindings: @group(0) 0 order (storage, read: 2·total u32, indices then augmentation words),
//           1–4 shard0..shard3 (storage, read; unused shards repeat shard0), 5 labels (storage,
//           read), 6 x (storage, read_write, [count][768] vec4<f32>; entry point main) or
//           7 xt (rgba32float storage texture, write, ≥ 768 × count texels; entry point
//           to_texture), 8 y (storage, read_write), 9 p: Params (uniform).
// Dispatch: one invocation per 16 output values (a vec4<u32> of input): count·192 of them, so a
//           storage load of the order and the shard choice serve 16 values (on llvmpipe every
//           storage access costs a bounds-checked per-lane loop). Workgroup WG_X;
//           grid = grid1d(ceil(count·192 / WG_X)), linear index = wid.x + wid.y·num_workgroups.x.

struct Params {
  count: u32,       // images in this batch
  start: u32,       // position of the batch's first sample in order
  total: u32,       // samples per epoch (where the augmentation words begin)
  shardImages: u32, // images per shard
  mean_r: f32,
  mean_g: f32,
  mean_b: f32,
  std_r: f32,
  std_g: f32,
  std_b: f32,
}

override WG_X: u32 = 64u;
override NORMALIZE: bool = false;
override FLIP: bool = false;
override SHARDS: u32 = 1u; // shards in use, 1–4
override CROP: u32 = 0u; // zero padding on each side; offsets dx, dy range over 0..2·CROP

@group(0) @binding(0) var<storage, read> order: array<u32>;
@group(0) @binding(1) var<storage, read> shard0: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> shard1: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> shard2: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> shard3: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(7) var xt: texture_storage_2d<rgba32float, write>;
@group(0) @binding(8) var<storage, read_write> y: array<u32>;
@group(0) @binding(9) var<uniform> p: Params;

const VECS: u32 = 192u; // vec4<u32> per image (3072 bytes)

// Vector `v` (bytes 16v … 16v + 15) of image `s`, from whichever shard holds it.
fn load_vec(s: u32, v: u32) -> vec4<u32> {
  let shard = s / p.shardImages;
  let at = (s - shard * p.shardImages) * VECS + v;
  // SHARDS is a pipeline constant, so a one-shard dataset compiles to a single load.
  if (SHARDS == 1u || shard == 0u) {
    return shard0[at];
  }
  if (SHARDS == 2u || shard == 1u) {
    return shard1[at];
  }
  if (SHARDS == 3u || shard == 2u) {
    return shard2[at];
  }
  return shard3[at];
}

fn unpack(word: u32) -> vec4<u32> {
  return vec4<u32>(word & 255u, (word >> 8u) & 255u, (word >> 16u) & 255u, word >> 24u);
}

fn convert(v: vec4<u32>, c: u32) -> vec4<f32> {
  let unit = vec4<f32>(v) / 255.0;
  if (!NORMALIZE) {
    return unit;
  }
  let mean = select(select(p.mean_r, p.mean_g, c == 1u), p.mean_b, c == 2u);
  let sd = select(select(p.std_r, p.std_g, c == 1u), p.std_b, c == 2u);
  return (unit - vec4<f32>(mean)) / vec4<f32>(sd);
}

// The 16 values of invocation g (batch row b = g / 192, vector v = g % 192: channel c, row i,
// columns j0 … j0 + 15), as four vec4s; also writes the row's label when v = 0.
fn gather16(g: u32) -> array<vec4<f32>, 4> {
  let b = g / VECS;
  let v = g % VECS;
  let s = order[p.start + b];
  if (v == 0u) {
    y[b] = labels[s];
  }
  let c = v / 64u;
  var out: array<vec4<f32>, 4>;
  if (CROP == 0u && !FLIP) {
    let w = load_vec(s, v);
    for (var k = 0u; k < 4u; k++) {
      out[k] = convert(unpack(w[k]), c);
    }
    return out;
  }
  let a = order[p.total + p.start + b];
  let flip = FLIP && (a & 1u) == 1u;
  let dx = i32((a >> 8u) & 255u) - i32(CROP);
  let dy = i32((a >> 16u) & 255u) - i32(CROP);
  // Source row i + dy of channel c: 32 bytes, two vectors, loaded once; zeros outside.
  let i = i32((v % 64u) / 2u) + dy;
  var row: array<u32, 8>;
  if (i >= 0 && i < 32) {
    let first = c * 64u + u32(i) * 2u;
    let lo = load_vec(s, first);
    let hi = load_vec(s, first + 1u);
    row = array<u32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
  }
  let j0 = i32((v % 2u) * 16u);
  for (var k = 0; k < 4; k++) {
    var px: vec4<u32>;
    for (var e = 0; e < 4; e++) {
      let j = j0 + 4 * k + e;
      let src = select(j, 31 - j, flip) + dx;
      let inside = src >= 0 && src < 32;
      let at = u32(clamp(src, 0, 31));
      px[e] = select(0u, (row[at / 4u] >> ((at % 4u) * 8u)) & 255u, inside);
    }
    out[k] = convert(px, c);
  }
  return out;
}

// Batch into a storage buffer: x[b][768] vec4s.
@compute @workgroup_size(WG_X, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let g = (wid.x + wid.y * nwg.x) * WG_X + lid;
  if (g >= p.count * VECS) {
    return;
  }
  let values = gather16(g);
  for (var k = 0u; k < 4u; k++) {
    x[g * 4u + k] = values[k];
  }
}

// Batch straight into an rgba32float texture, texel (q, b) = x[b][4q … 4q + 3]: the layout of
// matmul_texture.wgsl's operand for X (rows = batch, 768 texels per row), so the first layer
// can read the batch without a copy of its own.
@compute @workgroup_size(WG_X, 1, 1)
fn to_texture(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let g = (wid.x + wid.y * nwg.x) * WG_X + lid;
  if (g >= p.count * VECS) {
    return;
  }
  let values = gather16(g);
  let b = g / VECS;
  let q = (g % VECS) * 4u;
  for (var k = 0u; k < 4u; k++) {
    textureStore(xt, vec2<u32>(q + k, b), values[k]);
  }
}
