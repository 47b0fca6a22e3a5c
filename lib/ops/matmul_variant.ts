/**
 * Which matmul kernel family an adapter uses, chosen once per process: `WGNN_MATMUL` when it may
 * be read, the tiled kernel where a probe shows textures do not work, the texture kernel on
 * software adapters, else a short timed trial of both.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { StepEncoder } from "../gpu/encoder.ts";
import { Tensor } from "../tensor.ts";
import { Matmul, matmul, type MatmulVariant } from "./matmul.ts";

const chosen = new WeakMap<Gpu, MatmulVariant>();

/** The variant plans default to: the choice made so far, else the table's. */
export function cachedVariant(gpu: Gpu): MatmulVariant {
  return chosen.get(gpu) ?? defaultVariant(gpu);
}

/** The table part of the choice: software adapters are known to favour textures. */
function defaultVariant(gpu: Gpu): MatmulVariant {
  return gpu.adapter.fallback ? "texture" : "tiled";
}

/**
 * Chooses the matmul variant for `gpu`, once per process: `WGNN_MATMUL=texture|tiled|blocked`
 * when that variable may be read; when a small texture-variant product fails or is wrong on this
 * backend, "blocked" on software adapters and "tiled" on real GPUs; "texture" on software
 * adapters; else a short timed trial of texture and tiled on a 1024×1024×128 product, remembered
 * per adapter across runs. Later plans default to the result.
 */
export async function matmulVariant(gpu: Gpu): Promise<MatmulVariant> {
  const known = chosen.get(gpu);
  if (known) return known;
  let pick: MatmulVariant | null = null;
  const fromEnv = readEnv("WGNN_MATMUL");
  if (fromEnv === "texture" || fromEnv === "tiled" || fromEnv === "blocked") pick = fromEnv;
  else if (fromEnv !== undefined) {
    throw new RangeError(
      `Cannot choose matmul variant: WGNN_MATMUL must be "texture", "tiled" or "blocked": current value is "${fromEnv}"`,
    );
  }
  // Without usable storage textures: the register-blocked kernel on software adapters (no
  // shared memory, which llvmpipe runs slowly), the shared-memory tiles on real GPUs.
  if (pick === null && !(await textureVariantWorks(gpu))) {
    pick = gpu.adapter.fallback ? "blocked" : "tiled";
  }
  if (pick === null && gpu.adapter.fallback) pick = "texture";
  if (pick === null) {
    // The timed trial's answer is kept across runs (Deno's localStorage, no permission needed),
    // keyed by the adapter, so only the first run on a GPU pays for it.
    const key =
      `wgnn.matmul-variant.${gpu.adapter.vendor}.${gpu.adapter.architecture}.${gpu.adapter.description}`;
    const stored = storage()?.getItem(key);
    if (stored === "texture" || stored === "tiled") pick = stored;
    else {
      const texture = await timeVariant(gpu, "texture");
      const tiled = await timeVariant(gpu, "tiled");
      pick = texture < tiled ? "texture" : "tiled";
      try {
        storage()?.setItem(key, pick);
      } catch {
        // A full or unavailable store only costs the trial again next time.
      }
    }
  }
  chosen.set(gpu, pick);
  return pick;
}

/** Deno's localStorage where the runtime offers it (not in every context), else null. */
function storage(): Storage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}

/**
 * Runs a small texture-variant product and checks it against the CPU. Some backends lack
 * read-only storage textures (Mesa's GL backend fails with an internal error), and then the
 * tiled variant is used everywhere.
 */
async function textureVariantWorks(gpu: Gpu): Promise<boolean> {
  const [M, N, K] = [19, 21, 23];
  const a = Float32Array.from({ length: M * K }, (_, i) => ((i * 7) % 13) - 6);
  const b = Float32Array.from({ length: K * N }, (_, i) => ((i * 5) % 11) - 5);
  const device = gpu.device;
  device.pushErrorScope("internal");
  device.pushErrorScope("validation");
  let ok = false;
  try {
    const A = Tensor.from(gpu, a, [M, K], "probe A");
    const B = Tensor.from(gpu, b, [K, N], "probe B");
    const C = matmul(A, B, { variant: "texture" });
    const got = await C.toFloat32();
    ok = got.every((v, i) => {
      const m = Math.floor(i / N);
      const n = i % N;
      let want = 0;
      for (let k = 0; k < K; k++) want += a[m * K + k] * b[k * N + n];
      return v === want; // small integers: exact in f32
    });
    for (const t of [A, B, C]) t.dispose();
  } catch {
    ok = false;
  }
  const errors = [await device.popErrorScope(), await device.popErrorScope()];
  try {
    gpu.check(); // drop anything the probe left recorded
  } catch {
    ok = false;
  }
  return ok && errors.every((e) => e === null);
}

/** Reads an environment variable only when permission is already granted (never prompts). */
export function readEnv(name: string): string | undefined {
  try {
    const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
    return state === "granted" ? Deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}

async function timeVariant(gpu: Gpu, variant: MatmulVariant): Promise<number> {
  const [M, N, K] = [1024, 128, 1024];
  const a = Tensor.empty(gpu, [M, K], "f32", "autotune A");
  const b = Tensor.empty(gpu, [K, N], "f32", "autotune B");
  const c = Tensor.empty(gpu, [M, N], "f32", "autotune C");
  const plan = new Matmul(gpu, M, N, K, { variant });
  try {
    let best = Infinity;
    for (let rep = 0; rep < 4; rep++) {
      const start = performance.now();
      const enc = new StepEncoder(gpu, "autotune");
      for (let i = 0; i < 4; i++) plan.encode(enc, a, b, c);
      enc.submit();
      await gpu.sync();
      if (rep > 0) best = Math.min(best, performance.now() - start);
    }
    return best;
  } finally {
    plan.dispose();
    a.dispose();
    b.dispose();
    c.dispose();
  }
}

/**
 * A one-line hint when the chosen kernels will be slow for a reason the user can fix: a software
 * adapter without storage-texture reads is Mesa's GL backend, and lavapipe (Vulkan) is several
 * times faster. Null otherwise. Call after {@link matmulVariant}.
 *
 * @example
 * ```ts ignore
 * const hint = slowAdapterHint(gpu);
 * if (hint) console.error(hint);
 * ```
 */
export function slowAdapterHint(gpu: Gpu): string | null {
  if (gpu.adapter.fallback && chosen.get(gpu) === "blocked") {
    return "note: this software adapter cannot read storage textures (Mesa's OpenGL backend), so " +
      "training runs several times slower; `apt-get install mesa-vulkan-drivers` provides the " +
      "Vulkan one (lavapipe), which is picked automatically";
  }
  return null;
}
