/**
 * Mesa llvmpipe/lavapipe tuning: the software adapters compile shaders for 256-bit (AVX2)
 * vectors by default; `LP_NATIVE_VECTOR_WIDTH=512` switches them to AVX-512, which ran the
 * matmul about 1.4× faster on CPUs that have it. Mesa reads the variable when the driver loads,
 * so it must be set before the first `requestAdapter()` of the process; and its on-disk shader
 * cache ignores the width and would silently reuse code built for the other one, so each width
 * gets its own `MESA_SHADER_CACHE_DIR`.
 *
 * @module
 */

// The adapter-description parser is Deno-free, so the matmul engine (and the browser build) takes
// it from its own module; it is re-exported here, where the vector width is set.
export { adapterVectorWidth } from "./vector_width.ts";

/** Vector widths llvmpipe accepts. */
export type VectorWidth = 256 | 512;

/**
 * Asks Mesa's software adapters to use `width`-bit vectors, with a shader cache of its own:
 * `cacheDir` when given, else `wgnn/mesa-shader-cache-<width>` in the user's cache folder. Call
 * before {@link requestGpu}; needs `--allow-env`, and write permission for the folder (without
 * it the disk cache is turned off, and every run compiles its kernels again: about 25 s at 512
 * bits). Has no effect on hardware adapters. Returns the cache folder ("" when turned off).
 *
 * @param cacheDir The shader cache folder. Default: `wgnn/mesa-shader-cache-<width>` in the
 * user's cache folder.
 *
 * @example Train with AVX-512 on a software adapter
 * ```ts ignore
 * import { requestGpu, useLavapipeVectorWidth } from "@wgnn/wgnn/advanced";
 * useLavapipeVectorWidth(512); // before the first requestGpu() of the process
 * const gpu = await requestGpu();
 * console.log(gpu.adapter.description); // "llvmpipe (LLVM 15.0.6, 512 bits)"
 * ```
 */
export function useLavapipeVectorWidth(width: VectorWidth, cacheDir?: string): string {
  if (width !== 256 && width !== 512) {
    throw new RangeError(
      `Cannot set the llvmpipe vector width: it must be 256 or 512: current value is ${width}`,
    );
  }
  const dir = cacheDir ?? `${userCacheDir()}/wgnn/mesa-shader-cache-${width}`;
  Deno.env.set("LP_NATIVE_VECTOR_WIDTH", String(width));
  // Mesa does not create the folder itself. Without write permission for it, turn the disk cache
  // off rather than share the default one with the other width.
  let canWrite = false;
  try {
    canWrite = Deno.permissions.querySync({ name: "write", path: dir }).state === "granted";
    if (canWrite) Deno.mkdirSync(dir, { recursive: true });
  } catch {
    canWrite = false;
  }
  if (canWrite) Deno.env.set("MESA_SHADER_CACHE_DIR", dir);
  else Deno.env.set("MESA_SHADER_CACHE_DISABLE", "true");
  return canWrite ? dir : "";
}

function userCacheDir(): string {
  return Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
}

/** What {@link chooseVectorWidth} picked, and the reason in a few words (printed by the CLI). */
export interface VectorWidthChoice {
  /** The width to set with {@link useLavapipeVectorWidth} (256: leave the driver's default). */
  width: VectorWidth;
  /** Why, e.g. "AVX-512 CPU, 200 epochs". */
  reason: string;
}

/**
 * Epochs of an MLP run from which 512-bit vectors pay for their longer first compile. Measured on
 * a 2-core AMD EPYC with AVX-512 (BENCHMARKS.md, "512-bit mode"): the lecture's MLPs train
 * 1.1–1.2× faster per epoch at 512 bits, and a cold shader cache costs several seconds more.
 */
export const MIN_EPOCHS_512 = 40;

/**
 * The vector width for a training run on Mesa's software adapters: 512 where the CPU has AVX-512
 * (`avx512f` in `cpuFlags`), the model is an MLP (convolutional models gained nothing from 512
 * bits in the same measurements) and the run has at least {@link MIN_EPOCHS_512} epochs; else
 * 256, the driver's default. Pure: pass the flags from {@link readCpuFlags}.
 *
 * @example
 * ```ts
 * import { chooseVectorWidth } from "./lavapipe.ts";
 * const flags = "fpu sse2 avx2 avx512f avx512bw";
 * console.assert(chooseVectorWidth(flags, { epochs: 200, convolutional: false }).width === 512);
 * console.assert(chooseVectorWidth(flags, { epochs: 5, convolutional: false }).width === 256);
 * console.assert(chooseVectorWidth(null, { epochs: 200, convolutional: false }).width === 256);
 * ```
 *
 * @param cpuFlags The CPU's feature flags (as /proc/cpuinfo lists them), or null when unknown.
 * @param run The run's length and whether its model is convolutional.
 */
export function chooseVectorWidth(
  cpuFlags: string | null,
  run: { epochs: number; convolutional: boolean },
): VectorWidthChoice {
  if (cpuFlags === null) {
    return {
      width: 256,
      reason: "the CPU's flags are unknown: Deno reads /proc/cpuinfo only with --allow-all; " +
        "on a CPU with AVX-512, --vector-width 512 trains the MLPs 1.1-1.2x faster",
    };
  }
  if (!/\bavx512f\b/.test(cpuFlags)) return { width: 256, reason: "the CPU has no AVX-512" };
  if (run.convolutional) {
    return { width: 256, reason: "AVX-512 CPU, but convolutions gain nothing from 512 bits" };
  }
  if (run.epochs < MIN_EPOCHS_512) {
    return {
      width: 256,
      reason: `AVX-512 CPU, but ${run.epochs} epochs do not pay for 512 bits' longer compile`,
    };
  }
  return { width: 512, reason: `AVX-512 CPU, ${run.epochs} epochs` };
}

/**
 * The CPU's feature flags from /proc/cpuinfo's first "flags" line (Linux), or null where it
 * cannot be read: another OS, or any permission short of `--allow-all` (Deno 2.9 refuses
 * /proc/cpuinfo even to an unscoped `--allow-read`), as under the `train` task's permissions.
 */
export function readCpuFlags(): string | null {
  try {
    const text = Deno.readTextFileSync("/proc/cpuinfo");
    return /^flags\s*:(.*)$/m.exec(text)?.[1].trim() ?? null;
  } catch {
    return null;
  }
}
