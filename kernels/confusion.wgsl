// confusion.wgsl — adds a batch's predictions to a confusion matrix.
//
// Math:     pred_r = first argmax_c logits[r][c];  counts[labels[r]·C + pred_r] += 1
// Bindings: @group(0) 0 logits (storage, read, [B×C]), 1 labels (storage, read, u32 [B]),
//           2 counts (storage, read_write, atomic u32 [C×C]), 3 p: Params (uniform).
// Dispatch: one invocation per row; workgroup WG; grid = grid1d(ceil(B / WG)).

struct Params {
  B: u32,
  C: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid.x;
  if (r >= p.B) {
    return;
  }
  var best = logits[r * p.C];
  var arg = 0u;
  for (var c = 1u; c < p.C; c++) {
    let z = logits[r * p.C + c];
    if (z > best) {
      best = z;
      arg = c;
    }
  }
  atomicAdd(&counts[labels[r] * p.C + arg], 1u);
}
