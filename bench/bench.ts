/**
 * `deno task bench`: the toolkit's benchmark on the current WebGPU adapter.
 *
 * Prints a table and, with `--out FILE`, writes JSON of the shape
 * `{"adapter", "fallback", "results": [{"name", "unit", "value"}]}`. `--adapters all` also runs
 * the benchmark in child processes on lavapipe's 512-bit mode and on the GL backend.
 */

import { parseArgs } from "node:util";
import { requestGpu } from "../lib/gpu/device.ts";
import { useLavapipeVectorWidth } from "../lib/gpu/lavapipe.ts";
import { writeTextFileAtomic } from "../lib/io/atomic.ts";
import { benchMatmul } from "./matmul.ts";
import { benchConv } from "./conv.ts";
import { benchCnn } from "./cnn.ts";
import { benchTraining } from "./train.ts";
import { profileStep } from "./profile.ts";
import { benchGather, benchLoad } from "./data.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { matmulVariant } from "../lib/ops/matmul_trial.ts";
import { matmulChoice } from "../lib/ops/matmul_choice.ts";
import { benchExperiment } from "./experiment.ts";
import { benchTfjs } from "./peers/tfjs.ts";
import { benchTorch } from "./peers/torch.ts";
import { benchJaxjs, JAXJS_BACKENDS, JAXJS_VERSION, releaseJaxjs } from "./peers/jaxjs.ts";
import { type BenchReport, type BenchResult, syntheticSet } from "./util.ts";
import { scriptArgs } from "../lib/cli/args.ts";

const HELP =
  `Usage: deno task bench [--out FILE] [--only LIST] [--quick] [--rounds N] [--adapters current|all]

Measures, on the current WebGPU adapter: the matmul engine on the seed's shapes (GFLOP/s) against
an in-process yardstick kernel; Conv2d's forward, dX and dW on a CIFAR-10 CNN's shapes (GFLOP/s,
implicit GEMMs and direct loops); training and evaluation of the seed's three models (samples/s,
batch 1024, Adam, synthetic data on the GPU) and one CIFAR-10-sized epoch; and, in the same run,
the same models in TensorFlow.js's WebGPU backend, in PyTorch on the CPU and in jax-js (its wasm
backend with 2 workers and its WebGPU backend), with ratios. Figures are medians of rounds after
warm-up.

  --out FILE        also write the results as JSON
  --only LIST       comma-separated sections:
                    matmul,conv,cnn,train,profile,data,experiment,tfjs,torch,jaxjs
                    (default all; cnn: the cnn recipe's network at batch 256 against
                    PyTorch CPU and TF.js WebGPU)
  --experiment-epochs N
                    epochs per variant of the timed full experiment (default 200, the seed's,
                    on hardware adapters; 2 on software ones, with the figure scaled to 200)
  --data DIR        CIFAR-10 for the data section (default ../shared/data; skipped if absent)
  --quick           fewer shapes and steps (a smoke run)
  --rounds N        timed rounds per figure (default 5)
  --adapters all    also run on lavapipe at 512 bits and on the GL backend (child processes)
  --vector-width N  256 or 512: Mesa's software adapters only (AVX-512 needs 512)
  --help            this text`;

/** Child-process configurations for `--adapters all` on Mesa's software adapters. */
const OTHER_ADAPTERS: { label: string; env: Record<string, string>; args: string[] }[] = [
  {
    label: "vulkan, 512-bit vectors",
    env: { DENO_WEBGPU_BACKEND: "vulkan" },
    args: ["--vector-width", "512", "--only", "matmul,train"],
  },
  // GL compiles each large kernel for 20-40 s with a cold shader cache: matmul only.
  { label: "gl", env: { DENO_WEBGPU_BACKEND: "gl" }, args: ["--only", "matmul"] },
];

function fail(message: string): never {
  console.error(`bench: ${message}`);
  Deno.exit(2);
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      args: scriptArgs(),
      options: {
        out: { type: "string" },
        quick: { type: "boolean", default: false },
        rounds: { type: "string", default: "5" },
        adapters: { type: "string", default: "current" },
        only: {
          type: "string",
          default: "matmul,conv,cnn,train,profile,data,experiment,tfjs,torch,jaxjs",
        },
        "experiment-epochs": { type: "string" },
        data: { type: "string", default: "../shared/data" },
        "vector-width": { type: "string" },
        help: { type: "boolean", default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    fail(`${(e as Error).message}\n${HELP}`);
  }
  if (args.help) {
    console.log(HELP);
    return;
  }
  const rounds = Number(args.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    fail(`--rounds must be a positive integer: current value is ${args.rounds}`);
  }
  if (args.adapters !== "current" && args.adapters !== "all") {
    fail(`--adapters must be "current" or "all": current value is ${args.adapters}`);
  }

  if (args["vector-width"] !== undefined) {
    const width = Number(args["vector-width"]);
    if (width !== 256 && width !== 512) {
      fail(`--vector-width must be 256 or 512: current value is ${args["vector-width"]}`);
    }
    useLavapipeVectorWidth(width);
  }
  const gpu = await requestGpu();
  console.log(
    `adapter: ${gpu.adapter.description}${gpu.adapter.fallback ? " (software/fallback)" : ""}`,
  );
  const only = new Set(args.only.split(",").map((s) => s.trim()));
  for (const s of only) {
    if (!SECTIONS.includes(s)) {
      fail(`--only: unknown section "${s}"`);
    }
  }
  const variant = await matmulVariant(gpu); // the start-up choice (table or timed trial)
  console.log(
    `matmul variant: ${variant}${variant === "tiled" ? ` (${matmulChoice(gpu).tiling})` : ""}`,
  );
  const results: BenchResult[] = [];
  // Steps per timed round, each round ending in one wait (at least 11 ms in Deno): 10 suffice
  // where a step takes tens of milliseconds; a fast GPU needs many more, or the wait dominates.
  const stepsPerRound = gpu.adapter.fallback ? 10 : 200;
  if (only.has("matmul")) results.push(...await benchMatmul(gpu, { rounds, quick: args.quick }));
  if (only.has("conv")) results.push(...await benchConv(gpu, { rounds, quick: args.quick }));
  if (only.has("cnn")) {
    results.push(
      ...await benchCnn(gpu, {
        batchSize: args.quick ? 32 : 256,
        steps: args.quick ? 2 : gpu.adapter.fallback ? 4 : 50,
        rounds,
        torchSteps: args.quick ? 1 : 4,
        tfjsSteps: args.quick ? 1 : 2,
        tfjsTimeoutMs: 300_000,
      }),
    );
  }
  if (only.has("train")) {
    results.push(
      ...await benchTraining(gpu, {
        rounds,
        steps: args.quick ? 4 : stepsPerRound,
        epoch: !args.quick,
        smallBatch: !args.quick,
      }),
    );
  }
  if (only.has("profile")) {
    for (const v of args.quick ? ["plain" as const] : VARIANT_NAMES) {
      results.push(...await profileStep(gpu, v, { rounds, steps: stepsPerRound }));
    }
  }
  if (only.has("data")) results.push(...await dataResults(gpu, args.data));
  if (only.has("experiment")) {
    const fast = !gpu.adapter.fallback;
    const epochs = args["experiment-epochs"] === undefined
      ? (fast ? 200 : 2)
      : Number(args["experiment-epochs"]);
    if (!Number.isInteger(epochs) || epochs < 1) {
      fail(
        `--experiment-epochs must be a positive integer: current value is ${
          args["experiment-epochs"]
        }`,
      );
    }
    // Software adapters are compute-bound (concurrency gains nothing): time their default only.
    const modes = fast ? ["concurrent", "sequential"] as const : ["sequential"] as const;
    results.push(
      ...await benchExperiment(gpu, { epochs: args.quick ? 1 : epochs, modes: [...modes] }),
    );
  }
  if (only.has("torch")) results.push(...await torchResults(args.quick));
  if (only.has("tfjs")) {
    results.push(...await tfjsResults(args.quick, gpu.adapter.fallback ? 5 : 50));
  }
  if (only.has("jaxjs")) {
    results.push(
      ...await jaxjsResults(args.quick, gpu.adapter.fallback ? 5 : 50, gpu.adapter.description),
    );
  }
  printTable(results);
  const report: BenchReport & { others?: { label: string; report: BenchReport }[] } = {
    adapter: gpu.adapter.description,
    fallback: gpu.adapter.fallback,
    results,
  };
  if (args.adapters === "all") {
    report.others = [];
    for (const other of OTHER_ADAPTERS) {
      console.log(`\n--- ${other.label} (child process) ---`);
      const child = await runChild(other.env, other.args, rounds, args.quick);
      if (child) report.others.push({ label: other.label, report: child });
    }
  }
  if (args.out) {
    await writeTextFileAtomic(args.out, JSON.stringify(report, null, 2) + "\n");
    console.log(`wrote ${args.out}`);
  }
}

const VARIANT_NAMES = ["plain", "bn", "dropout"] as const;
const SECTIONS = [
  "matmul",
  "conv",
  "cnn",
  "train",
  "profile",
  "data",
  "experiment",
  "tfjs",
  "torch",
  "jaxjs",
];

/** Loading CIFAR-10 onto the GPU, and gathering one batch (issue 4's targets). */
async function dataResults(
  gpu: Awaited<ReturnType<typeof requestGpu>>,
  dir: string,
): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  try {
    const load = await benchLoad(gpu, dir);
    out.push({
      name: "data/load-60000",
      unit: "s",
      value: load.totalMs / 1000,
      parseS: load.parseMs / 1000,
      uploadS: load.uploadMs / 1000,
    });
  } catch (e) {
    console.log(`data: load skipped (${(e as Error).message})`);
  }
  const set = GpuDataset.upload(gpu, syntheticSet(4096));
  // Gathers per timed submission: enough that its one wait (>= 11 ms) does not dominate.
  const gathers = gpu.adapter.fallback ? 20 : 2000;
  try {
    out.push({
      name: "data/gather-1024",
      unit: "ms",
      value: await benchGather(gpu, set, { steps: gathers }),
    });
    out.push({
      name: "data/gather-1024-to-texture",
      unit: "ms",
      value: await benchGather(gpu, set, { steps: gathers, toTexture: true }),
    });
  } finally {
    set.dispose();
  }
  return out;
}

/** PyTorch on the CPU, same models, when /usr/bin/python3 has torch. */
async function torchResults(quick: boolean): Promise<BenchResult[]> {
  const report = await benchTorch({
    steps: quick ? 3 : 10,
    warmupSteps: 2,
    rounds: quick ? 1 : 3,
    onSkip: (why) => console.log(`torch: skipped (${why})`),
  });
  if (!report) return [];
  if (report.warning) console.log(`torch: ${report.warning}`);
  return VARIANT_NAMES.flatMap((v) => {
    const r = report.results[v];
    return r
      ? [{ name: `torch/train/${v}`, unit: "samples/s", value: r.train }, {
        name: `torch/eval/${v}`,
        unit: "samples/s",
        value: r.eval,
      }]
      : [];
  });
}

/** TensorFlow.js's WebGPU backend on the same adapter, same models. */
async function tfjsResults(quick: boolean, steps: number): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  for (const v of quick ? ["plain" as const] : VARIANT_NAMES) {
    try {
      const r = await benchTfjs({
        variant: v,
        batchSize: 1024,
        warmupSteps: 2,
        // Its rounds end in one readback too: as many steps per round on a fast GPU as it
        // needs to be measured fairly (5 where a step takes ~0.5 s).
        steps: quick ? 2 : steps,
        rounds: quick ? 1 : 3,
      });
      out.push({ name: `tfjs/train/${v}`, unit: "samples/s", value: r.train }, {
        name: `tfjs/eval/${v}`,
        unit: "samples/s",
        value: r.eval,
      });
    } catch (e) {
      console.log(`tfjs: ${v} failed: ${(e as Error).message}`);
    }
  }
  return out;
}

/**
 * jax-js on its wasm backend (2 workers) and its WebGPU backend (the same adapter), same models.
 * Each variant's losses go to a debug line: they should start near ln 10 and fall like wgnn's.
 */
async function jaxjsResults(
  quick: boolean,
  gpuSteps: number,
  adapter: string,
): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  try {
    for (const backend of JAXJS_BACKENDS) {
      for (const v of quick ? ["plain" as const] : VARIANT_NAMES) {
        try {
          const r = await benchJaxjs({
            backend,
            variant: v,
            batchSize: 1024,
            warmupSteps: 2,
            // wasm takes ~0.2 s a step on 2 cores; WebGPU as many steps per round as TF.js.
            steps: quick ? 2 : backend === "wasm" ? 10 : gpuSteps,
            rounds: quick ? 1 : 3,
          });
          const where = backend === "wasm"
            ? `${r.workers} workers`
            : `${r.adapter}${
              r.adapter === adapter ? "" : `, NOT the toolkit's adapter (${adapter})`
            }`;
          // Steps alternate between two batches: compare losses two steps apart.
          const l = r.losses.map((x) => x.toFixed(4));
          const shown = l.length <= 8 ? l : [...l.slice(0, 4), "...", ...l.slice(-4)];
          console.log(
            `jaxjs ${JAXJS_VERSION} ${backend} ${v} (${where}): loss by step ${shown.join(" ")}`,
          );
          out.push({ name: `jaxjs-${backend}/train/${v}`, unit: "samples/s", value: r.train }, {
            name: `jaxjs-${backend}/eval/${v}`,
            unit: "samples/s",
            value: r.eval,
          });
        } catch (e) {
          console.log(`jaxjs: ${backend} ${v} failed: ${(e as Error).message}`);
        }
      }
    }
  } finally {
    releaseJaxjs(); // its wasm workers would keep the process alive
  }
  return out;
}

function printTable(results: BenchResult[]): void {
  const value = (name: string) => results.find((r) => r.name === name)?.value;
  const yard = value("matmul/1024x3072x128/yardstick");
  console.log(`${"name".padEnd(36)} ${"value".padStart(10)}  unit       notes`);
  for (const r of results) {
    const notes: string[] = [];
    if (r.variant) notes.push(String(r.variant));
    if (
      yard && r.name.startsWith("matmul/") && r.unit === "GFLOP/s" && !r.name.endsWith("/yardstick")
    ) {
      notes.push(`${(r.value / yard).toFixed(1)}x yardstick`);
    }
    const own = /^(train|eval)\//.test(r.name) ? r.value : undefined;
    if (own !== undefined) {
      const tf = value(`tfjs/${r.name}`);
      const pt = value(`torch/${r.name}`);
      if (tf) notes.push(`${(own / tf).toFixed(1)}x TF.js`);
      if (pt) notes.push(`${(own / pt).toFixed(2)}x PyTorch CPU`);
      const jw = value(`jaxjs-wasm/${r.name}`);
      const jg = value(`jaxjs-webgpu/${r.name}`);
      if (jw) notes.push(`${(own / jw).toFixed(2)}x jax-js wasm`);
      if (jg) notes.push(`${(own / jg).toFixed(1)}x jax-js WebGPU`);
    }
    if (typeof r.dispatchesPerStep === "number") {
      notes.push(`${r.dispatchesPerStep.toFixed(0)} dispatches/step`);
    }
    if (typeof r.hostMsPerStep === "number") {
      notes.push(`host ${r.hostMsPerStep.toFixed(2)} ms/step`);
    }
    if (typeof r.peakBytes === "number") {
      notes.push(`peak ${(r.peakBytes / 2 ** 20).toFixed(0)} MiB`);
    }
    if (r.liveMemoryFlat === false) notes.push("LIVE MEMORY GREW");
    if (typeof r.projected200 === "number") {
      notes.push(`3 variants x ${r.epochsPerVariant} epochs`);
      if (r.epochsPerVariant !== 200) notes.push(`${r.projected200.toFixed(1)} s scaled to 200`);
    }
    const shown = r.unit === "s" || r.unit === "ms" || r.unit === "ms/step"
      ? r.value.toFixed(2)
      : r.value >= 1000
      ? Math.round(r.value).toLocaleString("en-US")
      : r.value.toFixed(1);
    console.log(
      `${r.name.padEnd(36)} ${shown.padStart(10)}  ${r.unit.padEnd(10)} ${notes.join(", ")}`,
    );
  }
}

async function runChild(
  env: Record<string, string>,
  extra: string[],
  rounds: number,
  quick: boolean,
): Promise<BenchReport | null> {
  // Inside the project folder: the bench task may write there and nowhere else.
  const out = await Deno.makeTempFile({ dir: ".", prefix: ".bench-child-", suffix: ".json" });
  // Mesa's shader cache ignores the vector width: give each configuration its own folder.
  const cache = await Deno.makeTempDir({ dir: ".", prefix: ".bench-mesa-cache-" });
  const args = [
    "run",
    "--allow-env",
    "--allow-read=.,..",
    "--allow-write=.",
    "--allow-run",
    "bench/bench.ts",
    "--out",
    out,
    "--rounds",
    String(rounds),
    ...extra,
  ];
  if (quick) args.push("--quick");
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { ...env, MESA_SHADER_CACHE_DIR: cache },
    stdout: "inherit",
    stderr: "inherit",
  });
  const { code } = await child.output();
  try {
    if (code !== 0) {
      console.log(`(child exited with code ${code})`);
      return null;
    }
    return JSON.parse(await Deno.readTextFile(out)) as BenchReport;
  } finally {
    await Deno.remove(out).catch(() => {});
    await Deno.remove(cache, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
