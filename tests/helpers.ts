/**
 * Shared test helpers: GPU acquisition that skips cleanly, seeded data, and a tolerance
 * comparison that prints the first mismatches with their index.
 */

import { requestGpu } from "../lib/gpu/device.ts";
import type { Gpu } from "../lib/gpu/device.ts";

// Seeded data lives in a GPU-free module; re-exported here for the GPU tests.
export { randomArray, rng } from "./fixtures/random.ts";

let gpuOrReason: Promise<Gpu | string> | null = null;

/** The shared GPU, or a string saying why there is none. */
export function testGpu(): Promise<Gpu | string> {
  gpuOrReason ??= requestGpu().catch((e) => `no GPU: ${(e as Error).message}`);
  return gpuOrReason;
}

/** True when a WebGPU adapter can be requested (used for `ignore:` on GPU tests). */
export const hasGpu: boolean = typeof navigator !== "undefined" && !!navigator.gpu &&
  (await navigator.gpu.requestAdapter()) !== null;

if (!hasGpu) console.log("no WebGPU adapter: the GPU tests of this file are reported as ignored");

/** GPU tests run only where an adapter exists; elsewhere they are reported as ignored. */
export function gpuTest(name: string, fn: (gpu: Gpu) => Promise<void>): void {
  Deno.test({
    name,
    ignore: !hasGpu,
    // WebGPU keeps internal timers/resources alive across tests; the device is shared.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const gpu = await testGpu();
      if (typeof gpu === "string") throw new Error(gpu);
      await fn(gpu);
      await gpu.sync();
    },
  });
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| element-wise; the error lists the first
 * five mismatches with their index.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-5, what = "values" }: { atol?: number; rtol?: number; what?: string } =
    {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length} != expected ${expected.length}`);
  }
  const bad: string[] = [];
  let count = 0;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    const tol = atol + rtol * Math.abs(expected[i]);
    if (!(diff <= tol)) {
      count++;
      worst = Math.max(worst, diff);
      if (bad.length < 5) {
        bad.push(
          `  [${i}] got ${actual[i]}, expected ${expected[i]} (diff ${diff.toExponential(2)})`,
        );
      }
    }
  }
  if (count > 0) {
    throw new Error(
      `${what}: ${count} of ${actual.length} outside atol ${atol} + rtol ${rtol}; worst diff ${
        worst.toExponential(2)
      }\n${bad.join("\n")}`,
    );
  }
}

/**
 * Asserts |actual[i] − expected[i]| ≤ bound[i] (or one bound for all) element-wise, lists the
 * first five mismatches with their index, and returns the largest diff/bound (≤ 1 on success),
 * so a caller can print how much room was left.
 */
export function assertWithin(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  bound: number | ArrayLike<number>,
  what = "values",
): number {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length} != expected ${expected.length}`);
  }
  const bad: string[] = [];
  let count = 0;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    const tol = typeof bound === "number" ? bound : bound[i];
    worst = Math.max(worst, diff / tol);
    if (!(diff <= tol)) {
      count++;
      if (bad.length < 5) {
        bad.push(
          `  [${i}] got ${actual[i]}, expected ${expected[i]} (diff ${diff.toExponential(2)}, ` +
            `bound ${tol.toExponential(2)})`,
        );
      }
    }
  }
  if (count > 0 || Number.isNaN(worst)) {
    throw new Error(
      `${what}: ${count} of ${actual.length} outside the bound; worst diff/bound ${
        worst.toFixed(2)
      }\n${bad.join("\n")}`,
    );
  }
  return worst;
}
