// dropout.wgsl — inverted dropout with counter-based masks, and the step counter it keys on.
//
// Math:     keep(i) = u(i) ≥ p with u(i) = (hash(i ^ key) >> 8)·2⁻²⁴ ∈ [0, 1), evaluated exactly
//           as the integer test (hash(i ^ key) >> 8) ≥ threshold, threshold = ceil(p·2²⁴) (host, f64)
//           key = hash(seed ^ hash(step ^ hash(layer))), hash = lowbias32 (below)
//           forward   y  = keep(i) ? x·scale : 0,  scale = 1/(1−p)
//           backward  dX = keep(i) ? dY·scale : 0  (the mask is recomputed, never stored)
//           `step` is counter[0]: the 0-based number of training forwards of the model so far,
//           set by `advance` (counter[0] = counter[1]; counter[1] += 1) at the start of each
//           training forward, so it is stable from a forward to its backward and needs no
//           per-step upload when many steps share one submission. tests/reference/dropout_mask.ts
//           reproduces the mask bit for bit.
// Bindings: main: 0 src (storage, read: x or dY), 1 counter (storage, read), 2 dst (storage,
//           read_write: y or dX), 3 p: Params (uniform). advance: 4 counter_rw (storage, read_write).
// Dispatch: main: one invocation per element; grid = grid1d(ceil(n / WG)), linear index
//           (wid.x + wid.y·nwg.x)·WG + lid.x. advance: a single invocation, grid (1, 1, 1).

struct Params {
  n: u32,
  seed: u32,
  layer: u32,
  threshold: u32,
  scale: f32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> counter: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> counter_rw: array<u32>;

// lowbias32 (Chris Wellons): a well-mixed 32-bit integer hash.
fn hash(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (i >= p.n) {
    return;
  }
  let key = hash(p.seed ^ hash(counter[0] ^ hash(p.layer)));
  dst[i] = select(0.0, src[i] * p.scale, (hash(i ^ key) >> 8u) >= p.threshold);
}

@compute @workgroup_size(1)
fn advance() {
  counter_rw[0] = counter_rw[1];
  counter_rw[1] = counter_rw[1] + 1u;
}
