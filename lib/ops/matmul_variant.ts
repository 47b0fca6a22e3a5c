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
import { DEFAULT_TILING, Matmul, matmul, type MatmulVariant, TILINGS } from "./matmul.ts";

/** A choice of kernel: a family, and for `tiled` one of {@link TILINGS}. */
export interface Choice {
  variant: MatmulVariant;
  tiling?: string;
}

const chosen = new WeakMap<Gpu, Choice>();

/**
 * Reads a choice written as `texture`, `blocked`, `tiled` (the default tiling) or
 * `tiled:<tiling>`, as `WGNN_MATMUL` and the trial's stored answer spell it; null otherwise.
 */
function parseChoice(text: string): Choice | null {
  if (text === "texture" || text === "tiled" || text === "blocked") return { variant: text };
  const tiling = text.startsWith("tiled:") ? text.slice("tiled:".length) : "";
  return tiling in TILINGS ? { variant: "tiled", tiling } : null;
}

/** The `tiled` variant's tiling plans default to: the choice made so far, else the default. */
export function cachedTiling(gpu: Gpu): string {
  return chosen.get(gpu)?.tiling ?? DEFAULT_TILING;
}

/** The variant plans default to: the choice made so far, else the table's. */
export function cachedVariant(gpu: Gpu): MatmulVariant {
  return chosen.get(gpu)?.variant ?? defaultVariant(gpu);
}

/** The table part of the choice: software adapters are known to favour textures. */
function defaultVariant(gpu: Gpu): MatmulVariant {
  return gpu.adapter.fallback ? "texture" : "tiled";
}

/**
 * Chooses the matmul variant for `gpu`, once per process: `WGNN_MATMUL=texture|tiled|blocked`
 * (or `tiled:<tiling>`, a key of {@link TILINGS}) when that variable may be read; when a small
 * texture-variant product fails or is wrong on this backend, "blocked" on software adapters and "tiled" on real GPUs; "texture" on software
 * adapters; else a short timed trial of the texture kernel and each of the tiled kernel's
 * {@link TILINGS} on the seed's first-layer products, remembered per adapter across runs. Later
 * plans default to the result (and its tiling).
 */
export async function matmulVariant(gpu: Gpu): Promise<MatmulVariant> {
  const known = chosen.get(gpu);
  if (known) return known.variant;
  let pick: Choice | null = null;
  const fromEnv = readEnv("WGNN_MATMUL");
  if (fromEnv !== undefined) {
    pick = parseChoice(fromEnv);
    if (pick === null) {
      throw new RangeError(
        `Cannot choose matmul variant: WGNN_MATMUL must be "texture", "tiled", "tiled:<tiling>" (${
          Object.keys(TILINGS).join(", ")
        }) or "blocked": current value is "${fromEnv}"`,
      );
    }
  }
  // Without usable storage textures: the register-blocked kernel on software adapters (no
  // shared memory, which llvmpipe runs slowly), the shared-memory tiles on real GPUs.
  if (pick === null && !(await textureVariantWorks(gpu))) {
    pick = { variant: gpu.adapter.fallback ? "blocked" : "tiled" };
  }
  if (pick === null && gpu.adapter.fallback) pick = { variant: "texture" };
  if (pick === null) {
    // The timed trial's answer is kept across runs (Deno's localStorage, no permission needed),
    // keyed by the adapter, so only the first run on a GPU pays for it.
    const key =
      `wgnn.matmul-choice.${gpu.adapter.vendor}.${gpu.adapter.architecture}.${gpu.adapter.description}`;
    const stored = storage()?.getItem(key);
    pick = stored ? parseChoice(stored) : null;
    if (pick === null) {
      const answer = await trial(gpu);
      pick = parseChoice(answer)!;
      try {
        storage()?.setItem(key, answer);
      } catch {
        // A full or unavailable store only costs the trial again next time.
      }
    }
  }
  chosen.set(gpu, pick);
  return pick.variant;
}

/**
 * Times the texture kernel and each tiling of the tiled kernel on the seed's first-layer
 * products (forward 1024×3072·3072×128 and weight gradient 3072ᵀ×1024·1024×128) and returns
 * the fastest: "texture" or "tiled:<tiling>".
 */
async function trial(gpu: Gpu): Promise<string> {
  let best = "tiled:" + DEFAULT_TILING;
  let bestMs = Infinity;
  for (const name of ["texture", ...Object.keys(TILINGS).map((t) => `tiled:${t}`)]) {
    const ms = await timeCandidate(gpu, parseChoice(name)!);
    if (ms < bestMs) [best, bestMs] = [name, ms];
  }
  return best;
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

/**
 * Milliseconds for one forward and one weight-gradient product of the seed's first layer with
 * `options`. A round ends in one wait of at least 11 ms (Deno polls the GPU every 10 ms), so the
 * products per round grow until a round takes 50 ms or more; then the best of three rounds counts.
 */
export async function timeCandidate(gpu: Gpu, options: Choice): Promise<number> {
  const [M, N, K] = [1024, 128, 3072];
  const x = Tensor.empty(gpu, [M, K], "f32", "autotune X");
  const w = Tensor.empty(gpu, [K, N], "f32", "autotune W");
  const y = Tensor.empty(gpu, [M, N], "f32", "autotune Y");
  const dw = Tensor.empty(gpu, [K, N], "f32", "autotune dW");
  const forward = new Matmul(gpu, M, N, K, options);
  const gradient = new Matmul(gpu, K, N, M, { ...options, transA: true });
  const round = async (pairs: number) => {
    const start = performance.now();
    const enc = new StepEncoder(gpu, "autotune");
    for (let i = 0; i < pairs; i++) {
      forward.encode(enc, x, w, y);
      gradient.encode(enc, x, y, dw);
    }
    enc.submit();
    await gpu.sync();
    return performance.now() - start;
  };
  try {
    let pairs = 2;
    await round(pairs); // warm-up: pipelines, first touch
    while ((await round(pairs)) < 50 && pairs < 4096) pairs *= 4;
    let best = Infinity;
    for (let r = 0; r < 3; r++) best = Math.min(best, await round(pairs));
    return best / pairs;
  } finally {
    for (const t of [forward, gradient, x, w, y, dw]) t.dispose();
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
  if (gpu.adapter.fallback && chosen.get(gpu)?.variant === "blocked") {
    return "note: this software adapter cannot read storage textures (Mesa's OpenGL backend), so " +
      "training runs several times slower; `apt-get install mesa-vulkan-drivers` provides the " +
      "Vulkan one (lavapipe), which is picked automatically";
  }
  return null;
}
