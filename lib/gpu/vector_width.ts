/**
 * The SIMD vector width of Mesa's software adapters, read from the adapter's description. Kept
 * apart from `lavapipe.ts`, which sets the width through environment variables (Deno only), so
 * that the matmul engine and the browser build import no Deno API.
 *
 * @module
 */

/**
 * The vector width a software adapter reports in its description ("…, 512 bits)"), else null.
 *
 * @example
 * ```ts
 * import { adapterVectorWidth } from "@wgnn/wgnn/advanced";
 * console.assert(adapterVectorWidth("llvmpipe (LLVM 15.0.6, 512 bits)") === 512);
 * ```
 */
export function adapterVectorWidth(description: string): number | null {
  const m = /(\d+) bits\)/.exec(description);
  return m ? Number(m[1]) : null;
}
