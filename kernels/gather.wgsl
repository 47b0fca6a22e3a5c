// gather.wgsl — gathers a batch of samples by index from the dataset (uint8 bytes or float32
// values, any per-sample shape), converts uint8 to f32 in [0, 1] (the lecture's ToTensor),
// optionally normalises, optionally flips and crops images (augmentation); also gathers the
// labels (one u32 class) or targets (yWidth f32 words, copied as bits).
//
// Three entry-point families, chosen by the loader (lib/data/loader.ts) per dataset:
//   main / to_texture  CIFAR-10's [3, 32, 32] uint8 with class labels: the fast path, with the
//                      image's size as constants (192 vectors, 32-byte rows; divisions by a
//                      constant compile to multiplications) and the mean/std of R, G, B in Params.
//   rows16             any other uint8 sample whose bytes are a multiple of 16 (MNIST's 784), or
//                      float32 whose values are a multiple of 4: one vec4<u32> load per
//                      invocation; no augmentation.
//   rows1              everything else (13 bytes, 5 floats, and augmentation of any [C, H, W]):
//                      one output value per invocation.
//   batch_labels       the labels (or targets) alone, for a batch whose samples the first
//                      layer's matmul reads from the dataset itself (lib/ops/rows.ts).
// Shapes ride in Params; dtype, normalisation, augmentation and shard count in overrides.
//
// Math:     for batch row b < count, sample s = order[start + b], augmentation word
//           a = order[total + start + b] (flip = a & 1, dx = (a >> 8) & 255, dy = (a >> 16) & 255):
//             x[b][c·H·W + i·W + j] = norm(c·H·W + i·W + j, P(s, c, i + dy − CROP, j' + dx − CROP))
//             with j' = FLIP && flip ? W − 1 − j : j,
//             P(s, c, i, j) = value (c, i, j) of sample s when 0 ≤ i < H, 0 ≤ j < W, else 0 (zero
//             padding); for a sample that is not an image (or no augmentation) x[b][e] =
//             norm(e, value e of sample s). A uint8 value v counts as v / 255 (a division, not a
//             multiplication by 1/255, so it rounds like the CPU's v / 255), a float32 as it is.
//             norm(e, u) = NORMALIZE ? (u − mean_k) / std_k : u, k = e / group (group = H·W: per
//             channel; 1: per feature); main takes mean/std of R, G, B from Params, the others
//             from the table after the order: mean_k = order[2·total + k], std_k =
//             order[2·total + entries + k] (f32 bits).
//             y[b·yWidth + t] = labels[s·yWidth + t], t < yWidth.
//           main: with CROP = 0 and FLIP = false the 16 bytes of one load are converted as they
//           are; otherwise the source row (32 bytes, two loads) is read once and bytes picked.
// Data:     samples packed in u32s (uint8 four to a word, little-endian; float32 one), read as
//           vec4<u32>, one sample after another over up to four shards of shardImages samples
//           each (the storage-binding limit), each shard zero-padded to 16 bytes.
// Bindings: @group(0) 0 order (storage, read: 2·total u32, indices then augmentation words, then
//           the normalisation table for rows16/rows1), 1–4 shard0..shard3 (storage, read;
//           unused shards repeat shard0), 5 labels (storage, read), 6 x (storage, read_write,
//           vec4<f32>; main, rows16) or 7 xt (rgba32float storage texture, write, ≥ 768 × count
//           texels; to_texture) or 10 xs (storage, read_write, f32; rows1), 8 y (storage,
//           read_write), 9 p: Params (uniform).
// Dispatch: main / to_texture: one invocation per 16 output values (a vec4<u32> of input):
//           count·192 of them, so a storage load of the order and the shard choice serve 16 values
//           (on llvmpipe every storage access costs a bounds-checked per-lane loop). rows16: one
//           per vec4<u32> (count·units, units = row/16 for uint8, row/4 for float32). rows1: one
//           per value (count·row, units = row). Workgroup WG_X; grid = grid1d(ceil(count·units /
//           WG_X)), linear index = wid.x + wid.y·num_workgroups.x. batch_labels: one per batch
//           row (count of them).

struct Params {
  count: u32,       // samples in this batch
  start: u32,       // position of the batch's first sample in order
  total: u32,       // samples per epoch (where the augmentation words begin)
  shardImages: u32, // samples per shard
  mean_r: f32,      // mean_r … std_b: main / to_texture only
  mean_g: f32,
  mean_b: f32,
  std_r: f32,
  std_g: f32,
  std_b: f32,
  row: u32,         // values per sample (the product of the shape)
  units: u32,       // invocations per sample (rows16, rows1)
  height: u32,      // H and W of an image [C, H, W] (rows1's augmentation)
  width: u32,
  group: u32,       // consecutive values sharing a normalisation entry (H·W, or 1)
  entries: u32,     // normalisation entries, row / group
  yWidth: u32,      // label words per sample
}

override WG_X: u32 = 64u;
override NORMALIZE: bool = false;
override FLIP: bool = false;
override SHARDS: u32 = 1u; // shards in use, 1–4
override CROP: u32 = 0u; // zero padding on each side; offsets dx, dy range over 0..2·CROP
override FLOAT: bool = false; // float32 samples (rows16, rows1); else uint8

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
@group(0) @binding(10) var<storage, read_write> xs: array<f32>;

const VECS: u32 = 192u; // vec4<u32> per CIFAR-10 image (3072 bytes)

// Vector `at` of shard `shard`. SHARDS is a pipeline constant, so a one-shard dataset compiles
// to a single load.
fn shard_vec(shard: u32, at: u32) -> vec4<u32> {
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

// Vector `v` (bytes 16v … 16v + 15) of CIFAR-10 image `s`, from whichever shard holds it.
fn load_vec(s: u32, v: u32) -> vec4<u32> {
  let shard = s / p.shardImages;
  return shard_vec(shard, (s - shard * p.shardImages) * VECS + v);
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

// ---------------------------------------------------------------------------------------------
// Samples of any shape: rows16 and rows1.

// Copies sample s's label words into batch row b.
fn write_label(b: u32, s: u32) {
  for (var t = 0u; t < p.yWidth; t++) {
    y[b * p.yWidth + t] = labels[s * p.yWidth + t];
  }
}

// Value e of sample s as f32: a byte as v / 255, a float as it is.
fn value_at(s: u32, e: u32) -> f32 {
  let shard = s / p.shardImages;
  let q = (s - shard * p.shardImages) * p.row + e; // value index in the shard
  if (FLOAT) {
    return bitcast<f32>(shard_vec(shard, q / 4u)[q % 4u]);
  }
  let word = shard_vec(shard, q / 16u)[(q / 4u) % 4u];
  return f32((word >> ((q % 4u) * 8u)) & 255u) / 255.0;
}

// norm(e, u): value e of a row normalised with its table entry e / group.
fn normalise(u: f32, e: u32) -> f32 {
  if (!NORMALIZE) {
    return u;
  }
  let k = e / p.group;
  let table = 2u * p.total;
  let mean = bitcast<f32>(order[table + k]);
  let sd = bitcast<f32>(order[table + p.entries + k]);
  return (u - mean) / sd;
}

fn normalise4(u: vec4<f32>, e: u32) -> vec4<f32> {
  if (!NORMALIZE) {
    return u;
  }
  return vec4<f32>(normalise(u.x, e), normalise(u.y, e + 1u), normalise(u.z, e + 2u),
                   normalise(u.w, e + 3u));
}

// Rows of a multiple of 16 bytes, unaugmented: invocation g converts vector v = g % units of
// batch row b = g / units (16 bytes into four vec4s, or 4 floats into one) into x.
@compute @workgroup_size(WG_X, 1, 1)
fn rows16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let g = (wid.x + wid.y * nwg.x) * WG_X + lid;
  if (g >= p.count * p.units) {
    return;
  }
  let b = g / p.units;
  let v = g - b * p.units;
  let s = order[p.start + b];
  if (v == 0u) {
    write_label(b, s);
  }
  let shard = s / p.shardImages;
  // Rows are whole vectors, so sample s's vector v is at (s's index in its shard)·units + v.
  let w = shard_vec(shard, (s - shard * p.shardImages) * p.units + v);
  if (FLOAT) {
    x[g] = normalise4(bitcast<vec4<f32>>(w), v * 4u);
    return;
  }
  for (var k = 0u; k < 4u; k++) {
    x[g * 4u + k] = normalise4(vec4<f32>(unpack(w[k])) / 255.0, v * 16u + k * 4u);
  }
}

// Any row: invocation g writes value e = g % row of batch row b = g / row into xs, reading the
// value at the flipped and shifted position when augmenting an image [C, H, W].
@compute @workgroup_size(WG_X, 1, 1)
fn rows1(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let g = (wid.x + wid.y * nwg.x) * WG_X + lid;
  if (g >= p.count * p.row) {
    return;
  }
  let b = g / p.row;
  let e = g - b * p.row;
  let s = order[p.start + b];
  if (e == 0u) {
    write_label(b, s);
  }
  if (CROP == 0u && !FLIP) {
    xs[g] = normalise(value_at(s, e), e);
    return;
  }
  let a = order[p.total + p.start + b];
  let flip = FLIP && (a & 1u) == 1u;
  let dx = i32((a >> 8u) & 255u) - i32(CROP);
  let dy = i32((a >> 16u) & 255u) - i32(CROP);
  let plane = p.height * p.width;
  let c = e / plane;
  let at = e - c * plane;
  let w = i32(p.width);
  let i = i32(at / p.width) + dy;
  let j = select(i32(at % p.width), w - 1 - i32(at % p.width), flip) + dx;
  var u = 0.0; // zero padding, normalised like a zero byte
  if (i >= 0 && i < i32(p.height) && j >= 0 && j < w) {
    u = value_at(s, c * plane + u32(i) * p.width + u32(j));
  }
  xs[g] = normalise(u, e);
}

// Labels only: invocation b copies batch row b's label words; the samples stay in the dataset.
@compute @workgroup_size(WG_X, 1, 1)
fn batch_labels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let b = (wid.x + wid.y * nwg.x) * WG_X + lid;
  if (b >= p.count) {
    return;
  }
  write_label(b, order[p.start + b]);
}
