import assert from "node:assert/strict";
import { Matmul, matmul } from "../lib/ops/matmul.ts";
import {
  chooseMatmul,
  defaultMatmulChoice,
  formatMatmulChoice,
  madeMatmulChoice,
  matmulChoice,
  type MatmulVariant,
  parseMatmulChoice,
  TILINGS,
} from "../lib/ops/matmul_choice.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import { timeCandidate } from "../lib/ops/matmul_trial.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { matmulRef } from "./reference/matmul.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";

const VARIANTS: MatmulVariant[] = ["texture", "tiled", "blocked"];
const SHAPES: [number, number, number][] = [[37, 61, 53], [1, 3072, 128], [1000, 7, 3], [
  64,
  128,
  10,
]];

// Every transpose combination at odd sizes, both kernel variants, against the f64 twin.
for (const variant of VARIANTS) {
  for (const [M, K, N] of SHAPES) {
    gpuTest(
      `matmul ${variant} ${M}x${K}x${N}: all transpose flags match the f64 twin`,
      async (gpu) => {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const a = randomArray(M * K, M + K);
            const b = randomArray(K * N, K + N + 1);
            const A = Tensor.from(gpu, a, transA ? [K, M] : [M, K], "A");
            const B = Tensor.from(gpu, b, transB ? [N, K] : [K, N], "B");
            const C = matmul(A, B, { transA, transB, variant });
            const got = await C.toFloat32();
            const want = matmulRef(a, b, M, N, K, { transA, transB });
            assertClose(got, want, {
              atol: 1e-5 * Math.sqrt(K),
              rtol: 1e-5,
              what: `tA=${transA} tB=${transB}`,
            });
            for (const t of [A, B, C]) t.dispose();
          }
        }
      },
    );
  }
}

for (const variant of VARIANTS) {
  gpuTest(`matmul ${variant}: fused bias + LeakyReLU epilogue and accumulation`, async (gpu) => {
    const [M, K, N] = [45, 70, 29];
    const a = randomArray(M * K, 1);
    const b = randomArray(N * K, 2);
    const bias = randomArray(N, 3);
    const old = randomArray(M * N, 4);
    const A = Tensor.from(gpu, a, [M, K]);
    const B = Tensor.from(gpu, b, [N, K]);
    const Bias = Tensor.from(gpu, bias, [N]);
    const C = Tensor.from(gpu, old, [M, N]);
    const fused = new Matmul(gpu, M, N, K, {
      transB: true,
      bias: true,
      activation: "leaky_relu",
      slope: 0.2,
      variant,
    });
    const acc = new Matmul(gpu, M, N, K, { transB: true, accumulate: true, variant });
    const D = Tensor.empty(gpu, [M, N]);
    const enc = new StepEncoder(gpu);
    fused.encode(enc, A, B, D, Bias);
    acc.encode(enc, A, B, C);
    enc.submit();
    assertClose(
      await D.toFloat32(),
      matmulRef(a, b, M, N, K, { transB: true, bias, leakySlope: 0.2 }),
      {
        what: "bias+leaky",
      },
    );
    assertClose(await C.toFloat32(), matmulRef(a, b, M, N, K, { transB: true, accumulate: old }), {
      what: "accumulate",
    });
    for (const x of [fused, acc, A, B, Bias, C, D]) x.dispose();
  });
}

gpuTest(
  "matmul: many encodes in one submission reuse the plan and give the same answer",
  async (gpu) => {
    const [M, K, N] = [33, 17, 9];
    const a = randomArray(M * K, 5);
    const b = randomArray(K * N, 6);
    const A = Tensor.from(gpu, a, [M, K]);
    const B = Tensor.from(gpu, b, [K, N]);
    const C = Tensor.empty(gpu, [M, N]);
    const plan = new Matmul(gpu, M, N, K, { accumulate: true });
    const before = gpu.memory.liveBytes;
    const enc = new StepEncoder(gpu);
    for (let i = 0; i < 5; i++) plan.encode(enc, A, B, C);
    enc.submit();
    assert.equal(gpu.memory.liveBytes, before, "encoding must not allocate");
    const once = matmulRef(a, b, M, N, K);
    assertClose(await C.toFloat32(), once.map((v) => 5 * v), {
      atol: 1e-4,
      what: "5× accumulated",
    });
    for (const x of [plan, A, B, C]) x.dispose();
  },
);

gpuTest("matmul: bad shapes and options throw errors naming the value", async (gpu) => {
  assert.throws(() => new Matmul(gpu, 0, 4, 4), /M must be a positive integer: current value is 0/);
  assert.throws(
    () => new Matmul(gpu, 4, -2, 4),
    /N must be a positive integer: current value is -2/,
  );
  assert.throws(
    () => new Matmul(gpu, 4, 4, 4, { slope: NaN }),
    /slope must be finite: current value is NaN/,
  );
  const A = Tensor.empty(gpu, [4, 5]);
  const B = Tensor.empty(gpu, [6, 3]);
  assert.throws(() => matmul(A, B), /inner dimensions differ: op\(A\) is 4x5, op\(B\) is 6x3/);
  const plan = new Matmul(gpu, 4, 3, 5);
  const enc = new StepEncoder(gpu);
  assert.throws(
    () => plan.encode(enc, A, B, Tensor.empty(gpu, [4, 3])),
    /operand B: expected shape \[5, 3\]: current shape of "tensor" is \[6, 3\]/,
  );
  assert.throws(
    () =>
      plan.encode(
        enc,
        A,
        Tensor.empty(gpu, [5, 3]),
        Tensor.empty(gpu, [4, 3]),
        Tensor.empty(gpu, [3]),
      ),
    /built without bias/,
  );
  enc.submit();
  A.dispose();
  assert.throws(() => A.buffer, /Cannot use buffer "tensor": it was disposed/);
  plan.dispose();
  B.dispose();
  await gpu.sync();
});

// Every tiling the start-up trial may choose on a hardware adapter, at sizes that leave partial
// tiles on every side, with all transpose flags and the fused epilogue, against the f64 twin.
for (const tiling of Object.keys(TILINGS)) {
  gpuTest(
    `matmul tiled, tiling ${tiling}: transposes and epilogue match the f64 twin`,
    async (gpu) => {
      const [M, K, N] = [71, 45, 133];
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = randomArray(M * K, 11), b = randomArray(K * N, 12), bias = randomArray(N, 13);
          const A = Tensor.from(gpu, a, transA ? [K, M] : [M, K]);
          const B = Tensor.from(gpu, b, transB ? [N, K] : [K, N]);
          const Bias = Tensor.from(gpu, bias, [N]);
          const C = Tensor.empty(gpu, [M, N]);
          const plan = new Matmul(gpu, M, N, K, {
            transA,
            transB,
            bias: true,
            activation: "leaky_relu",
            slope: 0.1,
            variant: "tiled",
            tiling,
          });
          assert.equal(plan.tiling, tiling);
          const enc = new StepEncoder(gpu, "tiling test");
          plan.encode(enc, A, B, C, Bias);
          enc.submit();
          const want = matmulRef(a, b, M, N, K, { transA, transB }).map((v, i) => {
            const z = v + bias[i % N];
            return z > 0 ? z : 0.1 * z;
          });
          assertClose(await C.toFloat32(), want, {
            atol: 1e-5 * Math.sqrt(K),
            rtol: 1e-5,
            what: `${tiling} tA=${transA} tB=${transB}`,
          });
          for (const t of [plan, A, B, Bias, C]) t.dispose();
        }
      }
    },
  );
}

gpuTest("an unknown tiling is refused by name", (gpu) => {
  assert.throws(
    () => new Matmul(gpu, 8, 8, 8, { variant: "tiled", tiling: "7x7" }),
    /unknown tiling "7x7" \(expected one of 64x64, 32x32, 32x32-64\)/,
  );
  return Promise.resolve();
});

gpuTest("the start-up trial times a candidate and frees what it allocated", async (gpu) => {
  const live = gpu.memory.liveBytes;
  const ms = await timeCandidate(gpu, { variant: "texture" });
  assert(Number.isFinite(ms) && ms > 0, `${ms} ms`);
  assert.equal(gpu.memory.liveBytes, live);
});

/**
 * Runs `body` in a fresh process (so the GPU has no matmul choice yet) with `Matmul`,
 * `matmulVariant` and `gpu` in scope and WGNN_MATMUL set to `value` (unset for null); returns its
 * output and exit code. An error's message is printed instead of failing the process.
 */
async function fresh(value: string | null, body: string): Promise<{ code: number; text: string }> {
  const url = (path: string) => new URL(path, import.meta.url).href;
  const program = `
    import { Matmul } from "${url("../lib/ops/matmul.ts")}";
    import { matmulVariant } from "${url("../lib/ops/matmul_trial.ts")}";
    import { requestGpu } from "${url("../lib/gpu/device.ts")}";
    const gpu = await requestGpu();
    try {
      ${body}
    } catch (e) {
      console.log(e.message);
    }`;
  const env: Record<string, string> = {};
  if (value !== null) env.WGNN_MATMUL = value;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", program],
    env,
    stdout: "piped",
    stderr: "null",
  }).output();
  return { code: out.code, text: new TextDecoder().decode(out.stdout).trim() };
}

/** Chooses with WGNN_MATMUL set to `value`, then prints the choice and a new plan's tiling. */
function withEnv(value: string): Promise<{ code: number; text: string }> {
  return fresh(
    value,
    `const variant = await matmulVariant(gpu);
      console.log(variant, new Matmul(gpu, 4, 4, 4).tiling);`,
  );
}

gpuTest("WGNN_MATMUL chooses the variant and the tiled kernel's tiling", async () => {
  assert.equal((await withEnv("tiled:32x32")).text, "tiled 32x32");
  assert.equal((await withEnv("tiled")).text, "tiled 64x64");
  assert.equal((await withEnv("texture")).text, "texture null");
  assert.match(
    (await withEnv("tiled:9x9")).text,
    /WGNN_MATMUL must be "texture", "tiled", "tiled:<tiling>" \(64x64, 32x32, 32x32-64\) or "blocked": current value is "tiled:9x9"/,
  );
});

gpuTest(
  "a plan built before the choice fixes the adapter's default for every later plan",
  async () => {
    // Without WGNN_MATMUL: matmulVariant returns the kernel the first plan took, no other.
    const first = `const plan = new Matmul(gpu, 4, 4, 4);
      const variant = await matmulVariant(gpu);
      console.log(variant === plan.variant, new Matmul(gpu, 4, 4, 4).variant === plan.variant);`;
    assert.equal((await fresh(null, first)).text, "true true");
    // WGNN_MATMUL asking for another kernel than the plans already use is refused, by name.
    const late = `new Matmul(gpu, 4, 4, 4);
      await matmulVariant(gpu);`;
    assert.match(
      (await fresh("tiled:32x32", late)).text,
      /^Cannot choose the matmul kernel tiled:32x32: this GPU's plans already use (texture|tiled:64x64); choose before building any plan$/,
    );
  },
);

Deno.test("a matmul choice reads and writes its text form", () => {
  for (const text of ["texture", "blocked", ...Object.keys(TILINGS).map((t) => `tiled:${t}`)]) {
    assert.equal(formatMatmulChoice(parseMatmulChoice(text)!), text);
  }
  assert.deepEqual(parseMatmulChoice("tiled"), { variant: "tiled", tiling: "64x64" });
  for (const bad of ["tiled:9x9", "tiled:", "tiled:constructor", "Texture", ""]) {
    assert.equal(parseMatmulChoice(bad), null, bad);
  }
  assert.deepEqual(defaultMatmulChoice("software"), { variant: "texture" });
  assert.deepEqual(defaultMatmulChoice("hardware"), { variant: "tiled", tiling: "64x64" });
});

Deno.test("a GPU's matmul choice is made once: by chooseMatmul or by its first plan", () => {
  // Stand-ins: the choice looks at nothing of a Gpu but the adapter's kind.
  const software = { adapter: { fallback: true } } as Gpu;
  const hardware = { adapter: { fallback: false } } as Gpu;
  assert.equal(madeMatmulChoice(software), null);
  assert.deepEqual(matmulChoice(software), { variant: "texture" }); // what a first plan does
  assert.deepEqual(madeMatmulChoice(software), { variant: "texture" });
  assert.deepEqual(chooseMatmul(software, { variant: "texture" }), { variant: "texture" });
  assert.throws(
    () => chooseMatmul(software, { variant: "blocked" }),
    /^RangeError: Cannot choose the matmul kernel blocked: this GPU's plans already use texture; choose before building any plan$/,
  );
  assert.throws(
    () => chooseMatmul(hardware, { variant: "tiled", tiling: "7x7" }),
    /unknown tiling "7x7" \(expected one of 64x64, 32x32, 32x32-64\)/,
  );
  assert.deepEqual(chooseMatmul(hardware, { variant: "tiled", tiling: "32x32" }), {
    variant: "tiled",
    tiling: "32x32",
  });
  assert.deepEqual(matmulChoice(hardware), { variant: "tiled", tiling: "32x32" });
  // A tiled choice without a tiling is the default tiling, so it is no other choice.
  assert.throws(() => chooseMatmul(hardware, { variant: "tiled" }), /already use tiled:32x32/);
});
