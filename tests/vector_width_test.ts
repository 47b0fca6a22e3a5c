/**
 * The vector width `deno task train` picks on Mesa's software adapters (lib/gpu/lavapipe.ts):
 * 512 bits only for long MLP runs on an AVX-512 CPU, and the CPU's flags as /proc/cpuinfo lists
 * them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { chooseVectorWidth, MIN_EPOCHS_512, readCpuFlags } from "../lib/gpu/lavapipe.ts";

const AVX512 = "fpu vme sse sse2 avx avx2 avx512f avx512dq avx512bw avx512vl";
const AVX2 = "fpu vme sse sse2 avx avx2 fma";

Deno.test("vector width: 512 for long MLP runs on AVX-512, else 256, with the reason", () => {
  const mlp = (epochs: number) => ({ epochs, convolutional: false });
  assert.deepEqual(chooseVectorWidth(AVX512, mlp(200)), {
    width: 512,
    reason: "AVX-512 CPU, 200 epochs",
  });
  assert.equal(chooseVectorWidth(AVX512, mlp(MIN_EPOCHS_512)).width, 512);
  assert.match(chooseVectorWidth(AVX512, mlp(MIN_EPOCHS_512 - 1)).reason, /do not pay/);
  assert.equal(chooseVectorWidth(AVX512, mlp(MIN_EPOCHS_512 - 1)).width, 256);
  assert.deepEqual(chooseVectorWidth(AVX2, mlp(200)), {
    width: 256,
    reason: "the CPU has no AVX-512",
  });
  // "avx512fp16" alone is not AVX-512 Foundation; the flag must be the whole word.
  assert.equal(chooseVectorWidth("avx2 avx512fp16", mlp(200)).width, 256);
  assert.equal(chooseVectorWidth(null, mlp(200)).width, 256);
  const cnn = chooseVectorWidth(AVX512, { epochs: 200, convolutional: true });
  assert.equal(cnn.width, 256);
  assert.match(cnn.reason, /convolutions/);
});

Deno.test("readCpuFlags: null without --allow-all, the flags line with it (Linux)", async () => {
  // This test process has scoped reads: Deno refuses /proc/cpuinfo to anything short of -A.
  assert.equal(readCpuFlags(), null);
  const script = `import { readCpuFlags } from ${
    JSON.stringify(
      new URL("../lib/gpu/lavapipe.ts", import.meta.url).href,
    )
  }; console.log(JSON.stringify(readCpuFlags()));`;
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "-A", script],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(code, 0);
  const flags = JSON.parse(new TextDecoder().decode(stdout)) as string | null;
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return;
  assert.ok(flags !== null, "-A reads /proc/cpuinfo on Linux");
  assert.match(flags, /\bfpu\b/, "x86 CPUs list fpu");
  assert.doesNotMatch(flags, /^flags|\n/, "the value only, one line");
});
