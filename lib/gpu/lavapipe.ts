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
