/// <reference lib="dom" />
/**
 * The page's training loop for one of the lecture's variants: `fit`'s schedule without its files.
 * Each chunk of steps is one command buffer (the loader's gather and `encodeTrainingStep`, the
 * step `fit` encodes, per batch), submitted without waiting; at most two chunks are queued on the
 * GPU. The running loss is read back after an epoch's first chunk, then at most every
 * {@link READ_EVERY_MS} and at the epoch's end, never per step; each epoch is then validated with
 * `evaluate` (one round trip).
 *
 * @module
 */

import type { Gpu, GpuDataset, LossSummary, Variant } from "../browser.ts";
import { nn } from "./nn.ts";

/** The shortest time between two readbacks of the running loss, in milliseconds. */
export const READ_EVERY_MS = 250;
/** Chunks of steps queued on the GPU at most (as `fit`'s schedule). */
const MAX_QUEUED = 2;

/** The lecture's settings, as `deno task train` takes them. */
export interface RunSettings {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Steps per command buffer. */
  stepsPerChunk: number;
}

/** One point of a loss curve: `x` in epochs (2.5 is half-way through epoch 3). */
export interface LossPoint {
  variant: Variant;
  x: number;
  loss: number;
  split: "train" | "val";
}

/** One finished epoch. */
export interface EpochRow {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number;
  valAccuracy: number;
  /** Training images per second of wall time: encoding, GPU and readbacks (no validation). */
  samplesPerSecond: number;
}

/** What a variant's run gives the page. */
export interface RunResult {
  variant: Variant;
  rows: EpochRow[];
  /** True when the user stopped it before its last epoch ended. */
  stopped: boolean;
  /** Optimizer steps taken. */
  steps: number;
  /** The test split, measured after the last step. */
  test: { loss: number; accuracy: number };
  /** Training images per second over the whole run (the first epoch compiles the shaders). */
  samplesPerSecond: number;
  /** The weights with PyTorch's names, as a safetensors file. */
  checkpoint: Uint8Array;
}

/** How the loop talks to the page. */
export interface RunHooks {
  /** Asked before each chunk: true stops the run there. */
  stopped(): boolean;
  /** A new point of the curves. */
  point(p: LossPoint): void;
  /** A line of status. */
  say(line: string): void;
}

/** The datasets on the GPU, shared by the variants. */
export interface GpuSets {
  train: GpuDataset;
  val: GpuDataset;
}

/** Mean of `key` over summaries, weighted by `weight` (batches for losses, rows for accuracy). */
function weighted(
  list: readonly LossSummary[],
  key: "meanLoss" | "accuracy",
  weight: "batches" | "samples",
): number {
  const total = list.reduce((n, s) => n + s[weight], 0);
  return list.reduce((sum, s) => sum + s[key] * s[weight], 0) / total;
}

/** Trains `variant` as the lecture does (Adam, shuffled batches, validation every epoch). */
export async function trainVariant(
  gpu: Gpu,
  variant: Variant,
  sets: GpuSets,
  s: RunSettings,
  hooks: RunHooks,
): Promise<RunResult> {
  const owned: { dispose(): void }[] = [];
  const own = <T extends { dispose(): void }>(x: T): T => (owned.push(x), x);
  try {
    nn.manualSeed(s.seed);
    const model = own(nn.lectureModel(variant).to(gpu));
    const optimizer = own(new nn.Adam(model.parameters(), { lr: s.lr }));
    const loss = own(new nn.CrossEntropyLoss());
    const train = own(
      new nn.Loader(gpu, sets.train, { batchSize: s.batchSize, shuffle: true, seed: s.seed }),
    );
    const val = own(
      new nn.Loader(gpu, sets.val, { batchSize: s.batchSize, shuffle: true, seed: s.seed + 1 }),
    );
    const stats = own(new nn.LossStats(gpu, `${variant} running loss`));
    const rows: EpochRow[] = [];
    let stopped = false, steps = 0, samples = 0, seconds = 0;
    for (let epoch = 1; epoch <= s.epochs && !stopped; epoch++) {
      const started = performance.now();
      const batches = train.batchesPerEpoch;
      model.train();
      train.startEpoch(epoch - 1);
      const reads: Promise<LossSummary>[] = [];
      const queued: Promise<unknown>[] = [];
      // The first chunk of an epoch is read back at once: the curve moves from the start.
      let lastRead = -Infinity, open = false, trained = 0;
      for (let b = 0; b < batches; b += s.stepsPerChunk) {
        if (hooks.stopped()) {
          stopped = true;
          break;
        }
        if (queued.length >= MAX_QUEUED) await queued.shift();
        const end = Math.min(batches, b + s.stepsPerChunk);
        const enc = new nn.StepEncoder(gpu, `${variant} epoch ${epoch}`);
        if (!open) stats.reset(enc);
        for (let i = b; i < end; i++) {
          const { x, y } = train.encodeBatchFor(enc, i, model);
          nn.encodeTrainingStep(enc, { model, loss, optimizer }, x, y, stats);
          trained += train.sizeOf(i);
        }
        enc.submit();
        queued.push(gpu.device.queue.onSubmittedWorkDone());
        steps += end - b;
        open = true;
        if (end === batches || performance.now() - lastRead >= READ_EVERY_MS) {
          const at = epoch - 1 + end / batches;
          // Submitted now, so it is ordered before the next chunk's reset.
          reads.push(
            stats.read().then((summary) => {
              hooks.point({ variant, x: at, loss: summary.meanLoss, split: "train" });
              return summary;
            }),
          );
          open = false;
          lastRead = performance.now();
        }
      }
      if (open) reads.push(stats.read()); // a stopped epoch's last window
      const summaries = await Promise.all(reads);
      const took = (performance.now() - started) / 1000;
      samples += trained;
      seconds += took;
      const bad = summaries.find((r) => r.firstNonFiniteBatch !== null);
      if (bad) {
        throw new Error(`Cannot train ${variant}: the loss is not finite in epoch ${epoch}`);
      }
      if (stopped) break;
      const v = await nn.evaluate(model, val, { loss, epoch: epoch - 1 });
      hooks.point({ variant, x: epoch, loss: v.loss, split: "val" });
      rows.push({
        epoch,
        trainLoss: weighted(summaries, "meanLoss", "batches"),
        trainAccuracy: weighted(summaries, "accuracy", "samples"),
        valLoss: v.loss,
        valAccuracy: v.accuracy!,
        samplesPerSecond: trained / took,
      });
      hooks.say(
        `${variant}: epoch ${epoch}/${s.epochs}, val loss ${v.loss.toFixed(4)}, ` +
          `accuracy ${(100 * v.accuracy!).toFixed(1)}%, ${Math.round(trained / took)} images/s`,
      );
    }
    // The last epoch's validation measured the final weights; a stopped run measures them now.
    const last = rows.at(-1);
    const test = stopped || last === undefined
      ? await nn.evaluate(model, val, { loss })
      : { loss: last.valLoss, accuracy: last.valAccuracy };
    const checkpoint = nn.encodeSafetensors(await model.stateDict(), {
      format: "pt",
      variant,
      epochs: String(rows.length),
      steps: String(steps),
      "batch-size": String(s.batchSize),
      lr: String(s.lr),
      seed: String(s.seed),
    });
    return {
      variant,
      rows,
      stopped,
      steps,
      test: { loss: test.loss, accuracy: test.accuracy! },
      samplesPerSecond: samples / seconds,
      checkpoint,
    };
  } finally {
    for (const x of owned.reverse()) x.dispose();
  }
}
