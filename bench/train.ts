/**
 * Training-step benchmark: the seed's three models at batch 1024 with Adam on synthetic data
 * resident on the GPU (uint8 images gathered by the loader, as in real training), in steady
 * state: many steps per submission, no waits inside a round, median of rounds after warm-up.
 */

import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Adam } from "../lib/optim/adam.ts";
import { lectureModel, type Variant, VARIANTS } from "../lib/train/experiment.ts";
import { type BenchResult, median, syntheticSet } from "./util.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";

/** Options of {@link benchTraining}. */
export interface TrainBenchOptions {
  batchSize?: number;
  /** Steps per timed round (one submission). */
  steps?: number;
  rounds?: number;
  /** Also time one full CIFAR-10-sized epoch (50,000 images) of the plain model. */
  epoch?: boolean;
  /** Also time training at batch 32, where fixed per-dispatch costs dominate. */
  smallBatch?: boolean;
}

/** Train and eval samples/s of each variant, dispatches per step and peak GPU bytes. */
export async function benchTraining(gpu: Gpu, o: TrainBenchOptions = {}): Promise<BenchResult[]> {
  const B = o.batchSize ?? 1024;
  const steps = o.steps ?? 10;
  const rounds = o.rounds ?? 5;
  const results: BenchResult[] = [];
  const data = GpuDataset.upload(gpu, syntheticSet(B * 8, 1));
  try {
    if (o.smallBatch) {
      // Batch 32, where per-dispatch costs dominate; first, before any larger batch has run in
      // this process: lavapipe once recompiled BatchNorm at every bind for p.B <= 32 until it
      // had seen a larger batch (see batchnorm.wgsl), so bn here should cost what plain does.
      for (const variant of VARIANTS) {
        const [train] = await benchVariant(gpu, data, variant, 32, steps, rounds);
        results.push({ ...train, name: `train-b32/${variant}` });
      }
    }
    for (const variant of VARIANTS) {
      results.push(...await benchVariant(gpu, data, variant, B, steps, rounds));
    }
    if (o.epoch) results.push(await benchEpoch(gpu, B));
  } finally {
    data.dispose();
  }
  return results;
}

async function benchVariant(
  gpu: Gpu,
  data: GpuDataset,
  variant: Variant,
  B: number,
  steps: number,
  rounds: number,
) {
  manualSeed(0);
  const model = lectureModel(variant).to(gpu);
  const optimizer = new Adam(model.parameters());
  const loss = new CrossEntropyLoss();
  const loader = new Loader(gpu, data, { batchSize: B, shuffle: true, seed: 0, dropLast: true });
  let dispatches = 0;
  let epoch = 0;
  let batch = 0;
  // `steps` training steps in one command buffer, not yet submitted. Each round starts a new
  // loader epoch (its order upload lands before the round's commands run) and cycles through its
  // batches, so a round longer than an epoch never uploads an order its own steps still need.
  const encodeRound = (label: string): GPUCommandBuffer => {
    loader.startEpoch(epoch++);
    const enc = new StepEncoder(gpu, label);
    for (let i = 0; i < steps; i++) {
      const { x, y } = loader.encodeBatchFor(enc, batch, model);
      batch = (batch + 1) % loader.batchesPerEpoch;
      encodeTrainingStep(enc, { model, loss, optimizer }, x, y);
    }
    dispatches = enc.dispatches;
    return enc.finish();
  };
  const trainRound = async () => {
    const start = performance.now();
    gpu.device.queue.submit([encodeRound("bench train")]);
    await gpu.sync();
    return (steps * B) / ((performance.now() - start) / 1000);
  };
  model.train();
  await trainRound(); // warm-up: pipelines, first touch of every buffer
  const live = gpu.memory.liveBytes;
  const train: number[] = [];
  for (let r = 0; r < rounds; r++) train.push(await trainRound());
  const flat = gpu.memory.liveBytes === live;

  // CPU time to encode, finish and submit a step (JavaScript, wgpu and the driver), with the GPU
  // idle so that a software adapter's threads do not compete for the cores: on a fast GPU this,
  // not the GPU, bounds the step rate.
  const hostMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    gpu.device.queue.submit([encodeRound("bench host")]);
    hostMs.push((performance.now() - start) / steps);
    await gpu.sync();
  }

  model.eval();
  const evalRound = async () => {
    const start = performance.now();
    const enc = new StepEncoder(gpu, "bench eval");
    for (let i = 0; i < steps; i++) {
      const { x, y } = loader.encodeBatch(enc, i % loader.batchesPerEpoch);
      loss.forward(enc, model.forward(enc, x), y);
    }
    enc.submit();
    await gpu.sync();
    return (steps * B) / ((performance.now() - start) / 1000);
  };
  await evalRound();
  const evals: number[] = [];
  for (let r = 0; r < rounds; r++) evals.push(await evalRound());
  const peak = gpu.memory.peakBytes;
  for (const x of [loader, loss, optimizer, model]) x.dispose();
  return [
    {
      name: `train/${variant}`,
      unit: "samples/s",
      value: median(train),
      dispatchesPerStep: dispatches / steps,
      hostMsPerStep: median(hostMs),
      submissionsPerStep: 1 / steps,
      liveMemoryFlat: flat,
      peakBytes: peak,
    },
    { name: `eval/${variant}`, unit: "samples/s", value: median(evals) },
  ] satisfies BenchResult[];
}

/** Seconds for one CIFAR-10-sized training epoch (50,000 synthetic images) of the plain model. */
async function benchEpoch(gpu: Gpu, B: number): Promise<BenchResult> {
  const data = GpuDataset.upload(gpu, syntheticSet(50_000, 2));
  manualSeed(0);
  const model = lectureModel("plain").to(gpu);
  const optimizer = new Adam(model.parameters());
  const loss = new CrossEntropyLoss();
  const loader = new Loader(gpu, data, { batchSize: B, shuffle: true, seed: 0 });
  const times: number[] = [];
  for (let e = 0; e < 3; e++) {
    const start = performance.now();
    loader.startEpoch(e);
    const enc = new StepEncoder(gpu, "bench epoch");
    for (let i = 0; i < loader.batchesPerEpoch; i++) {
      const { x, y } = loader.encodeBatchFor(enc, i, model);
      encodeTrainingStep(enc, { model, loss, optimizer }, x, y);
    }
    enc.submit();
    await loss.stats.read(); // the epoch's one readback
    if (e > 0) times.push((performance.now() - start) / 1000);
  }
  for (const x of [loader, loss, optimizer, model, data]) x.dispose();
  return { name: "epoch/plain", unit: "s", value: median(times) };
}
