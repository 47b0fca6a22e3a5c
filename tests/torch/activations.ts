/**
 * Runs tests/torch/activations.py for the activation tests: PyTorch's float32 and float64 answers
 * on the tests' own inputs, and a test wrapper that is ignored, with one line saying why, where
 * /usr/bin/python3 cannot import torch.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type { Gpu } from "../../lib/gpu/device.ts";
import { gpuTest } from "../helpers.ts";
import { PYTHON, torchMissing } from "../fixtures/torch.ts";

const SCRIPT = fileURLToPath(new URL("./activations.py", import.meta.url));

/** Why PyTorch cannot run here, or null. */
export const MISSING: string | null = await torchMissing();
if (MISSING !== null) console.log(`activations: the PyTorch checks are ignored (${MISSING})`);

/** tests/torch/activations.py's answer for `spec`, in float32 and float64. */
export async function runTorch<T>(spec: object): Promise<{ float32: T; float64: T }> {
  const child = new Deno.Command(PYTHON, {
    args: [SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(spec)));
  await writer.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(`activations.py failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** A GPU test that also needs PyTorch; ignored (with the line above) when it is missing. */
export function torchTest(name: string, fn: (gpu: Gpu) => Promise<void>): void {
  if (MISSING !== null) {
    Deno.test({ name, ignore: true, fn: () => {} });
    return;
  }
  gpuTest(name, fn);
}
