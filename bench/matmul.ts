/**
 * Matmul benchmark: GFLOP/s of the seed's shapes and their backward forms on the current
 * adapter, with a plain 4×4-per-invocation storage-buffer kernel as an in-process yardstick.
 */

import { adapterKind } from "../lib/gpu/defaults.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { KERNELS } from "../lib/gpu/kernels.ts";
import { ParamsLayout } from "../lib/gpu/params.ts";
import { Matmul, type MatmulOptions } from "../lib/ops/matmul.ts";
import { TILINGS } from "../lib/ops/matmul_choice.ts";
import { Tensor } from "../lib/tensor.ts";
import { type BenchResult, median } from "./util.ts";

interface Case {
  name: string;
  M: number;
  K: number;
  N: number;
  options: MatmulOptions;
}

/**
 * The seed's matmuls at batch 1024, with weights stored [in][out] as the layers keep them:
 * forward X·W (nn), input gradient dY·Wᵀ (nt), weight gradient Xᵀ·dY (tn). The first layer's
 * forward is also measured with PyTorch's [out][in] layout (X·Wᵀ) for comparison.
 */
export function seedCases(): Case[] {
  const layers: [number, number][] = [[3072, 128], [128, 128], [128, 10]];
  const cases: Case[] = [];
  for (const [inF, outF] of layers) {
    cases.push({ name: `matmul/1024x${inF}x${outF}`, M: 1024, K: inF, N: outF, options: {} });
    cases.push({
      name: `matmul/1024x${outF}x${inF}/nt`,
      M: 1024,
      K: outF,
      N: inF,
      options: { transB: true },
    });
    cases.push({
      name: `matmul/${inF}x1024x${outF}/tn`,
      M: inF,
      K: 1024,
      N: outF,
      options: { transA: true },
    });
  }
  cases.push({
    name: "matmul/1024x3072x128/nt",
    M: 1024,
    K: 3072,
    N: 128,
    options: { transB: true },
  });
  return cases;
}

async function timeEncoded(
  gpu: Gpu,
  reps: number,
  rounds: number,
  encode: (enc: StepEncoder) => void,
): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < rounds + 1; r++) {
    const start = performance.now();
    const enc = new StepEncoder(gpu, "bench");
    for (let i = 0; i < reps; i++) encode(enc);
    enc.submit();
    await gpu.sync();
    // Round 0 is warm-up (pipeline compilation, first-touch of memory).
    if (r > 0) times.push((performance.now() - start) / reps);
  }
  return median(times);
}

/**
 * Products per timed round. A round ends in one wait of at least 11 ms (Deno polls the GPU every
 * 10 ms), so it must hold much more work than that: about 2 GFLOP on a software adapter (tens of
 * ms), 1 TFLOP on a hardware one, where a product of the seed's shapes takes microseconds.
 */
function repsFor(gpu: Gpu, flops: number): number {
  const [work, most] = adapterKind(gpu) === "software" ? [2e9, 20] : [1e12, 20_000];
  return Math.max(2, Math.min(most, Math.round(work / flops)));
}

/** GFLOP/s of case `c` planned with `options`. */
async function gflops(gpu: Gpu, c: Case, options: MatmulOptions, rounds: number): Promise<number> {
  const { M, K, N } = c;
  const A = Tensor.from(gpu, new Float32Array(M * K).fill(0.5), options.transA ? [K, M] : [M, K]);
  const B = Tensor.from(gpu, new Float32Array(K * N).fill(0.25), options.transB ? [N, K] : [K, N]);
  const C = Tensor.empty(gpu, [M, N]);
  const plan = new Matmul(gpu, M, N, K, options);
  try {
    const ms = await timeEncoded(
      gpu,
      repsFor(gpu, plan.flops),
      rounds,
      (enc) => plan.encode(enc, A, B, C),
    );
    return plan.flops / ms / 1e6;
  } finally {
    for (const x of [plan, A, B, C]) x.dispose();
  }
}

/** Runs every seed shape (and the yardstick); returns GFLOP/s results. */
export async function benchMatmul(
  gpu: Gpu,
  { rounds = 5, quick = false } = {},
): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const cases = quick ? seedCases().slice(0, 2) : seedCases();
  for (const c of cases) {
    const plan = new Matmul(gpu, c.M, c.N, c.K, c.options);
    const variant = plan.tiling ? `${plan.variant} ${plan.tiling}` : plan.variant;
    plan.dispose();
    results.push({
      name: c.name,
      unit: "GFLOP/s",
      value: await gflops(gpu, c, c.options, rounds),
      variant,
    });
  }
  if (adapterKind(gpu) === "hardware" && !quick) {
    // Every candidate of the start-up trial on the first layer's two big products, so a run on a
    // GPU shows what the trial chose between.
    for (
      const c of cases.filter((c) => c.M * c.N * c.K === 1024 * 3072 * 128 && !c.options.transB)
    ) {
      for (const tiling of [null, ...Object.keys(TILINGS)]) {
        const options = tiling === null
          ? { ...c.options, variant: "texture" as const }
          : { ...c.options, variant: "tiled" as const, tiling };
        const value = await gflops(gpu, c, options, rounds);
        results.push({
          name: `${c.name}/${tiling === null ? "texture" : `tiled-${tiling}`}`,
          unit: "GFLOP/s",
          value,
        });
      }
    }
  }
  results.push(await benchYardstick(gpu, rounds));
  return results;
}

/** The 4×4-per-invocation storage-buffer kernel on 1024×3072×128, in the same process. */
async function benchYardstick(gpu: Gpu, rounds: number): Promise<BenchResult> {
  const [M, K, N] = [1024, 3072, 128];
  const A = Tensor.from(gpu, new Float32Array(M * K).fill(0.5), [M, K]);
  const B = Tensor.from(gpu, new Float32Array(K * N).fill(0.25), [K, N]);
  const C = Tensor.empty(gpu, [M, N]);
  const params = new ParamsLayout("yardstick", { M: "u32", N: "u32", K: "u32", _pad: "u32" })
    .upload(gpu, { M, N, K, _pad: 0 });
  const pipeline = gpu.pipelines.get(KERNELS.matmul_yardstick, "main");
  const bindGroup = gpu.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [A, B, C].map((t, i) => ({ binding: i, resource: t.binding() }))
      .concat([{ binding: 3, resource: { buffer: params.buffer } }]),
  });
  const grid: [number, number, number] = [Math.ceil(N / 32), Math.ceil(M / 32), 1];
  const ms = await timeEncoded(
    gpu,
    adapterKind(gpu) === "software" ? 2 : repsFor(gpu, 2 * M * N * K),
    Math.min(rounds, 3),
    (enc) => enc.dispatch("yardstick", pipeline, bindGroup, grid),
  );
  for (const x of [A, B, C, params]) x.dispose();
  return {
    name: `matmul/${M}x${K}x${N}/yardstick`,
    unit: "GFLOP/s",
    value: (2 * M * N * K) / ms / 1e6,
  };
}
