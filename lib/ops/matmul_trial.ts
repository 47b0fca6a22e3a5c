/**
 * The start-up choice of the matmul kernel, made once per GPU before its first plan and
 * recorded with `chooseMatmul` (matmul_choice.ts): `WGNN_MATMUL` when it may be read; the
 * storage-buffer family where a probe shows textures do not work; the texture kernel on software
 * adapters; else a short timed trial of the texture kernel and each tiling of the tiled one,
 * whose answer is kept across runs in Deno's localStorage.
 *
 * @module
 */

import { adapterKind } from "../gpu/defaults.ts";
import type { Gpu } from "../gpu/device.ts";
import { StepEncoder } from "../gpu/encoder.ts";
import { Tensor } from "../tensor.ts";
import { Matmul, matmul } from "./matmul.ts";
import {
  bufferVariant,
  chooseMatmul,
  DEFAULT_TILING,
  defaultMatmulChoice,
  formatMatmulChoice,
  madeMatmulChoice,
  type MatmulChoice,
  type MatmulVariant,
  parseMatmulChoice,
  TILINGS,
} from "./matmul_choice.ts";

/**
 * Chooses the matmul kernel of `gpu`'s plans and returns its family, once per GPU: the choice
 * already made (by an earlier call, `chooseMatmul`, or the first plan, which takes the adapter's
 * default) when there is one; else `WGNN_MATMUL=texture|tiled|blocked` (or `tiled:<tiling>`, a
 * key of `TILINGS`: "64x64", "32x32" or "32x32-64") when that variable may be read; when a small texture-variant product
 * fails or is wrong on this backend, "blocked" on software adapters and "tiled" on real GPUs;
 * "texture" on software adapters; else a short timed trial of the texture kernel and each of the
 * tiled kernel's tilings (`TILINGS`) on the lecture's first-layer products, remembered per adapter
 * across runs. Call it before building any plan: `WGNN_MATMUL` naming another kernel than the
 * one plans already use throws a RangeError.
 *
 * @example Choose first, then build the model
 * ```ts ignore
 * const gpu = await requestGpu();
 * await matmulVariant(gpu); // "texture" on lavapipe
 * const model = lectureModel("plain").to(gpu);
 * ```
 */
export async function matmulVariant(gpu: Gpu): Promise<MatmulVariant> {
  const fromEnv = readEnv("WGNN_MATMUL");
  const asked = fromEnv === undefined ? null : parseMatmulChoice(fromEnv);
  if (fromEnv !== undefined && asked === null) {
    throw new RangeError(
      `Cannot choose matmul variant: WGNN_MATMUL must be "texture", "tiled", "tiled:<tiling>" (${
        Object.keys(TILINGS).join(", ")
      }) or "blocked": current value is "${fromEnv}"`,
    );
  }
  const made = madeMatmulChoice(gpu);
  if (made !== null) return (asked ? chooseMatmul(gpu, asked) : made).variant;
  return chooseMatmul(gpu, asked ?? await probeOrTrial(gpu)).variant;
}

/**
 * The choice without `WGNN_MATMUL`: the storage-buffer family where textures do not work, the
 * default on software adapters, else the timed trial's (stored) answer.
 */
async function probeOrTrial(gpu: Gpu): Promise<MatmulChoice> {
  const kind = adapterKind(gpu);
  if (!(await textureVariantWorks(gpu))) return { variant: bufferVariant(kind) };
  if (kind === "software") return defaultMatmulChoice(kind);
  // The timed trial's answer is kept across runs (Deno's localStorage, no permission needed),
  // keyed by the adapter, so only the first run on a GPU pays for it.
  const key =
    `wgnn.matmul-choice.${gpu.adapter.vendor}.${gpu.adapter.architecture}.${gpu.adapter.description}`;
  const stored = storage()?.getItem(key);
  const known = stored ? parseMatmulChoice(stored) : null;
  if (known !== null) return known;
  const answer = await trial(gpu);
  try {
    storage()?.setItem(key, formatMatmulChoice(answer));
  } catch {
    // A full or unavailable store only costs the trial again next time.
  }
  return answer;
}

/**
 * Times the texture kernel and each tiling of the tiled kernel on the lecture's first-layer
 * products (forward 1024×3072·3072×128 and weight gradient 3072ᵀ×1024·1024×128) and returns
 * the fastest.
 */
async function trial(gpu: Gpu): Promise<MatmulChoice> {
  let best: MatmulChoice = { variant: "tiled", tiling: DEFAULT_TILING };
  let bestMs = Infinity;
  const candidates: MatmulChoice[] = [
    { variant: "texture" },
    ...Object.keys(TILINGS).map((tiling) => ({ variant: "tiled" as const, tiling })),
  ];
  for (const candidate of candidates) {
    const ms = await timeCandidate(gpu, candidate);
    if (ms < bestMs) [best, bestMs] = [candidate, ms];
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
function readEnv(name: string): string | undefined {
  try {
    const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
    return state === "granted" ? Deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Milliseconds for one forward and one weight-gradient product of the lecture's first layer with
 * `options`. A round ends in one wait of at least 11 ms (Deno polls the GPU every 10 ms), so the
 * products per round grow until a round takes 50 ms or more; then the best of three rounds counts.
 */
export async function timeCandidate(gpu: Gpu, options: MatmulChoice): Promise<number> {
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
  if (adapterKind(gpu) === "software" && madeMatmulChoice(gpu)?.variant === "blocked") {
    return "note: this software adapter cannot read storage textures (Mesa's OpenGL backend), so " +
      "training runs several times slower; `apt-get install mesa-vulkan-drivers` provides the " +
      "Vulkan one (lavapipe), which is picked automatically";
  }
  return null;
}
