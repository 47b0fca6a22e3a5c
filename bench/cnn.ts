/**
 * The cnn recipe's speed (issue 14): `cnnModel()` trained with the recipe's optimizer
 * (`cnnOptimizer("sgd", ...)`) and CrossEntropyLoss with label smoothing 0.1 on synthetic uint8
 * data resident on the GPU, one command encoder per round of steps and no readback inside a
 * round (as bench/train.ts times the MLPs: warm-up round, then the median of rounds); eval-mode
 * forwards likewise. In the same run, PyTorch on the CPU (`torch_cnn.py --speed`, same network
 * and batch) and TensorFlow.js's WebGPU backend on the same adapter (`tfjs.ts --model cnn`,
 * NHWC), the latter in a child process with a timeout so that the section always ends.
 */

import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { CNN_RECIPE, CNN_WIDTHS, cnnModel } from "../lib/nn/cnn.ts";
import { cnnOptimizer } from "../lib/train/experiment.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";
import { benchTorchCnn } from "./peers/torch.ts";
import { type BenchResult, median, syntheticSet } from "./util.ts";

/** Options of {@link benchCnn}. */
export interface CnnBenchOptions {
  batchSize: number;
  /** Steps per timed round (one submission). */
  steps: number;
  rounds: number;
  /** PyTorch CPU's steps per round (its rounds are `rounds`, capped at 3). */
  torchSteps: number;
  /** TF.js WebGPU's steps per round (1 round) and its child process's limit. */
  tfjsSteps: number;
  tfjsTimeoutMs: number;
}

/** Multiply-adds of one image's forward pass through `cnnModel()` (its convolutions and Linear). */
export function cnnMacsPerImage(): number {
  let macs = 0;
  let side = 32;
  let inChannels = 3;
  for (const width of CNN_WIDTHS) {
    for (let i = 0; i < 2; i++) {
      macs += side * side * width * inChannels * 9;
      inChannels = width;
    }
    side /= 2;
  }
  return macs + inChannels * 10;
}

/** wgnn's, PyTorch's and TF.js's train and eval samples/s, and wgnn's training GFLOP/s. */
export async function benchCnn(gpu: Gpu, o: CnnBenchOptions): Promise<BenchResult[]> {
  const B = o.batchSize;
  const results: BenchResult[] = [];
  const data = GpuDataset.upload(gpu, syntheticSet(B * 4, 3));
  manualSeed(0);
  const model = cnnModel().to(gpu);
  const optimizer = cnnOptimizer("sgd", model, CNN_RECIPE.lr);
  const loss = new CrossEntropyLoss({ labelSmoothing: CNN_RECIPE.labelSmoothing });
  const loader = new Loader(gpu, data, { batchSize: B, shuffle: true, seed: 0, dropLast: true });
  try {
    let epoch = 0;
    let batch = 0;
    const trainRound = async () => {
      loader.startEpoch(epoch++);
      const start = performance.now();
      const enc = new StepEncoder(gpu, "bench cnn train");
      for (let i = 0; i < o.steps; i++) {
        const { x, y } = loader.encodeBatchFor(enc, batch, model);
        batch = (batch + 1) % loader.batchesPerEpoch;
        encodeTrainingStep(enc, { model, loss, optimizer }, x, y);
      }
      enc.submit();
      await gpu.sync();
      return (o.steps * B) / ((performance.now() - start) / 1000);
    };
    model.train();
    await trainRound(); // warm-up: pipelines, first touch of every buffer
    const train: number[] = [];
    for (let r = 0; r < o.rounds; r++) train.push(await trainRound());
    model.eval();
    const evalRound = async () => {
      const start = performance.now();
      const enc = new StepEncoder(gpu, "bench cnn eval");
      for (let i = 0; i < o.steps; i++) {
        const { x, y } = loader.encodeBatch(enc, i % loader.batchesPerEpoch);
        loss.forward(enc, model.forward(enc, x), y);
      }
      enc.submit();
      await gpu.sync();
      return (o.steps * B) / ((performance.now() - start) / 1000);
    };
    await evalRound();
    const evals: number[] = [];
    for (let r = 0; r < o.rounds; r++) evals.push(await evalRound());
    const trainRate = median(train);
    // Training ≈ 3× the forward's multiply-adds (forward, dX, dW), 2 FLOPs each.
    const gflops = trainRate * 3 * 2 * cnnMacsPerImage() / 1e9;
    results.push(
      { name: "train/cnn", unit: "samples/s", value: trainRate, batch: B },
      { name: "eval/cnn", unit: "samples/s", value: median(evals), batch: B },
      { name: "cnn/train-step", unit: "GFLOP/s", value: gflops, batch: B },
    );
  } finally {
    for (const x of [loader, loss, optimizer, model, data]) x.dispose();
  }

  const torch = await benchTorchCnn({
    batchSize: B,
    steps: o.torchSteps,
    warmupSteps: 1,
    rounds: Math.min(o.rounds, 3),
    onSkip: (why) => console.log(`cnn: PyTorch skipped (${why})`),
  }).catch((e) => {
    console.log(`cnn: PyTorch failed: ${(e as Error).message}`);
    return null;
  });
  if (torch) {
    if (torch.warning) console.log(`cnn: ${torch.warning}`);
    console.log(`cnn: PyTorch ${torch.torch}, ${torch.threads} threads, BLAS ${torch.blas.kind}`);
    results.push(
      { name: "torch/train/cnn", unit: "samples/s", value: torch.train, batch: B },
      { name: "torch/eval/cnn", unit: "samples/s", value: torch.eval, batch: B },
    );
  }

  const tf = await tfjsCnn(B, o.tfjsSteps, o.tfjsTimeoutMs);
  if ("error" in tf) console.log(`cnn: TF.js WebGPU ${tf.error}`);
  else {
    console.log(`cnn: TF.js WebGPU on ${tf.adapter} (NHWC), ${o.tfjsSteps} steps, 1 round`);
    results.push(
      { name: "tfjs/train/cnn", unit: "samples/s", value: tf.train, batch: B },
      { name: "tfjs/eval/cnn", unit: "samples/s", value: tf.eval, batch: B },
    );
  }
  const value = (name: string) => results.find((r) => r.name === name)?.value;
  for (const mode of ["train", "eval"]) {
    const own = value(`${mode}/cnn`)!;
    const pt = value(`torch/${mode}/cnn`);
    const tj = value(`tfjs/${mode}/cnn`);
    console.log(
      `cnn ${mode}: wgnn ${own.toFixed(0)} samples/s; ${
        pt ? `${(own / pt).toFixed(2)}x PyTorch CPU (${pt.toFixed(0)})` : "PyTorch: none"
      }; ${tj ? `${(own / tj).toFixed(1)}x TF.js WebGPU (${tj.toFixed(1)})` : "TF.js: none"}`,
    );
  }
  return results;
}

/** TF.js WebGPU's figures from a child process, or why there are none ("timed out after ..."). */
async function tfjsCnn(
  batch: number,
  steps: number,
  timeoutMs: number,
): Promise<{ train: number; eval: number; adapter?: string } | { error: string }> {
  const script = new URL("./peers/tfjs.ts", import.meta.url).pathname;
  const args = ["run", "--allow-env", "--allow-read", script, "--model", "cnn"];
  args.push("--batch", String(batch), "--warmup", "1", "--steps", String(steps), "--rounds", "1");
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const out = await child.output();
    if (out.signal === "SIGKILL") return { error: `timed out after ${timeoutMs / 1000} s` };
    const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().slice(-400);
      return { error: `failed (exit ${out.code}): ${err}` };
    }
    return JSON.parse(text);
  } finally {
    clearTimeout(timer);
  }
}
