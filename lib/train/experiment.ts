/**
 * The seed lecture's experiment: three MLPs (plain, BatchNorm, Dropout) trained on CIFAR-10
 * with Adam, each from `manualSeed(seed)`, with per-variant outputs and a summary.
 *
 * @module
 */

import { join } from "node:path";
import type { Gpu } from "../gpu/device.ts";
import { type Cifar10, type ImageSet, loadCifar10 } from "../data/cifar10.ts";
import { GpuDataset } from "../data/dataset.ts";
import { Loader } from "../data/loader.ts";
import { matmulVariant } from "../ops/matmul.ts";
import { BatchNorm1d } from "../nn/batchnorm.ts";
import { Dropout } from "../nn/dropout.ts";
import { Flatten, LeakyReLU, Linear } from "../nn/layers.ts";
import { CrossEntropyLoss } from "../nn/loss.ts";
import { manualSeed } from "../nn/random.ts";
import { Sequential } from "../nn/sequential.ts";
import { Adam, AdamW } from "../optim/adam.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { RMSprop } from "../optim/rmsprop.ts";
import { SGD } from "../optim/sgd.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import type { SummaryRow } from "../plot/load.ts";
import { checkLast, hasCheckpoint } from "./checkpoint.ts";
import { fit } from "./fit.ts";
import type { History } from "./history.ts";
import { ProgressBoard, type ProgressSink } from "./progress.ts";

/** The seed's model variants. */
export const VARIANTS = ["plain", "bn", "dropout"] as const;
/** One of {@link VARIANTS}. */
export type Variant = typeof VARIANTS[number];
/** Optimizers the scripts can choose. */
export const OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop"] as const;
/** One of {@link OPTIMIZERS}. */
export type OptimizerChoice = typeof OPTIMIZERS[number];

/**
 * Builds one of the seed's MLPs (3072 → 128 → 128 → 10 with LeakyReLU), optionally with
 * BatchNorm1d or Dropout(0.5) after each hidden activation. Call `manualSeed` first.
 */
export function seedModel(variant: Variant): Sequential {
  const extra =
    () => (variant === "bn"
      ? [new BatchNorm1d(128)]
      : variant === "dropout"
      ? [new Dropout(0.5)]
      : []);
  return new Sequential(
    new Flatten(),
    new Linear(3072, 128),
    new LeakyReLU(),
    ...extra(),
    new Linear(128, 128),
    new LeakyReLU(),
    ...extra(),
    new Linear(128, 10),
  );
}

/** Builds the optimizer named `name` over `model`'s parameters. */
export function makeOptimizer(
  name: OptimizerChoice,
  model: Sequential,
  lr: number,
): Optimizer {
  const params = model.parameters();
  switch (name) {
    case "adam":
      return new Adam(params, { lr });
    case "adamw":
      return new AdamW(params, { lr });
    case "sgd":
      return new SGD(params, { lr, momentum: 0.9 });
    case "rmsprop":
      return new RMSprop(params, { lr });
  }
}

/** The `Optimizer.name` each of {@link OPTIMIZERS} builds (as stored in checkpoints). */
export const OPTIMIZER_NAMES: Readonly<Record<OptimizerChoice, string>> = {
  adam: "Adam",
  adamw: "AdamW",
  sgd: "SGD",
  rmsprop: "RMSprop",
};

/**
 * Checks, before anything is trained or written, that a resume can work: each variant's
 * `<outDir>/<variant>/last.*` that exists fits that variant's model and the optimizer. Returns
 * the variants that have a checkpoint (the others start afresh); throws a RangeError naming the
 * file otherwise. Leaves the global seed at `seed`.
 */
export async function checkResume(
  o: Pick<ExperimentOptions, "variants" | "outDir" | "optimizer" | "seed">,
): Promise<Variant[]> {
  const found: Variant[] = [];
  for (const variant of o.variants) {
    const dir = join(o.outDir, variant);
    if (!(await hasCheckpoint(dir))) continue;
    manualSeed(o.seed);
    const model = seedModel(variant); // on the CPU: only its description and shapes are needed
    await checkLast(dir, model, OPTIMIZER_NAMES[o.optimizer]);
    found.push(variant);
  }
  manualSeed(o.seed);
  return found;
}

/** Options of {@link runExperiment}. */
export interface ExperimentOptions {
  /** The variants to train, in order. */
  variants: readonly Variant[];
  /** Epochs per variant (the total, when resuming). */
  epochs: number;
  /** Images per training and validation batch. */
  batchSize: number;
  /** Learning rate. */
  lr: number;
  /** The optimizer (Adam in the seed). */
  optimizer: "adam" | "adamw" | "sgd" | "rmsprop";
  /** `manualSeed` before each model; also seeds the loaders' shuffles. */
  seed: number;
  /** Validate every this many epochs (and at the last). */
  validationFreq: number;
  /** Folder holding `cifar-10-batches-bin/` (or that folder itself); ignored when `data` is given. */
  dataDir: string;
  /** The dataset already in memory (the benchmark's synthetic CIFAR-shaped set); else `dataDir` is read. */
  data?: Cifar10;
  /** Output folder; each variant writes into `<out>/<variant>/`. */
  outDir: string;
  /** Random flips and 4-pixel crops of the training images. */
  augment?: boolean;
  /** Continue each variant from `<outDir>/<variant>/last.*`; variants without one start afresh. */
  resume?: boolean;
  /**
   * Write last.* and the history at most this often, in seconds; 0 writes them after every
   * epoch. Default: 0 on software adapters, 10 on hardware ones, where an epoch takes
   * milliseconds and writing every epoch would cost more than training.
   */
  checkpointSeconds?: number;
  /** Stops the run between steps; checkpoints and histories stay intact. */
  signal?: AbortSignal;
  /** Progress display: true for stderr (default), false for none, or a custom sink. */
  progress?: boolean | ProgressSink;
  /** Use only the first N training / validation images (tests, quick runs). */
  trainLimit?: number;
  /** Use only the first N test images for validation. */
  valLimit?: number;
  /** Called with each finished variant's history (in finishing order when concurrent). */
  onVariant?: (history: History, row: SummaryRow) => void;
  /**
   * Train the variants side by side on the one device (default: on hardware adapters, where it
   * hides each epoch's readback round trip; off on software adapters, where it gains nothing).
   * A single variant simply trains. See {@link sideBySide}.
   */
  concurrent?: boolean;
  /** Passed to {@link fit}: encode each epoch while the GPU runs the one before (default: on hardware adapters). */
  encodeAhead?: boolean;
}

function slice(set: ImageSet, limit: number | undefined): ImageSet {
  if (limit === undefined || limit >= set.count) return set;
  return {
    images: set.images.subarray(0, limit * 3072),
    labels: set.labels.subarray(0, limit),
    count: limit,
  };
}

/** One summary row from a history. */
export function summaryRow(h: History): SummaryRow {
  const withVal = h.epochs.filter((e) => e.valLoss !== undefined && Number.isFinite(e.valLoss));
  const bestVal = withVal.reduce<typeof withVal[number] | null>(
    (b, e) => (b === null || e.valLoss! < b.valLoss! ? e : b),
    null,
  );
  return {
    variant: h.variant,
    finalTrainLoss: h.epochs.at(-1)?.trainLoss ?? NaN,
    bestValLoss: bestVal?.valLoss ?? NaN,
    bestValEpoch: bestVal?.epoch ?? 0,
    bestValAccuracy: Math.max(...withVal.map((e) => e.valAccuracy ?? 0), 0),
    secondsPerEpoch: h.epochs.reduce((s, e) => s + e.seconds, 0) / Math.max(1, h.epochs.length),
    adapter: h.adapter,
    epochs: h.epochs.length,
  };
}

/** One variant, built and ready to fit; `dispose` frees everything it holds. */
interface PreparedRun {
  run: (
    signal: AbortSignal | undefined,
    progress: ExperimentOptions["progress"],
  ) => Promise<History>;
  dispose: () => void;
}

/**
 * Builds `variant`'s model (from `manualSeed(o.seed)`), optimizer, loss and loaders. Whatever was
 * built is disposed when building fails (e.g. out of GPU memory for a batch size too large).
 */
async function prepare(
  gpu: Gpu,
  o: ExperimentOptions,
  variant: Variant,
  sets: { train: GpuDataset; val: GpuDataset; classes: string[] },
): Promise<PreparedRun> {
  const dir = join(o.outDir, variant);
  await Deno.mkdir(dir, { recursive: true });
  const owned: { dispose(): void }[] = [];
  const own = <T extends { dispose(): void }>(x: T): T => (owned.push(x), x);
  const dispose = () => {
    for (const x of owned.reverse()) x.dispose();
    owned.length = 0;
  };
  try {
    manualSeed(o.seed);
    const model = own(seedModel(variant).to(gpu));
    const optimizer = own(makeOptimizer(o.optimizer, model, o.lr));
    const loss = own(new CrossEntropyLoss());
    const train = own(
      new Loader(gpu, sets.train, {
        batchSize: o.batchSize,
        shuffle: true,
        seed: o.seed,
        augment: o.augment ? { flip: true, crop: 4 } : undefined,
      }),
    );
    const val = own(
      new Loader(gpu, sets.val, { batchSize: o.batchSize, shuffle: true, seed: o.seed + 1 }),
    );
    // Variants an interrupted run never reached have no checkpoint: they start afresh.
    const resume = o.resume === true && await hasCheckpoint(dir);
    const run = (signal: AbortSignal | undefined, progress: ExperimentOptions["progress"]) =>
      fit(model, {
        train,
        val,
        epochs: o.epochs,
        loss,
        optimizer,
        validationFreq: o.validationFreq,
        checkpointDir: dir,
        resume,
        checkpointSeconds: o.checkpointSeconds ?? (gpu.adapter.fallback ? 0 : 10),
        encodeAhead: o.encodeAhead,
        signal,
        variant,
        classes: sets.classes,
        progress,
      });
    return { run, dispose };
  } catch (error) {
    dispose();
    throw error;
  }
}

/**
 * Whether {@link runExperiment} trains `o.variants` side by side on `gpu`: more than one variant,
 * and `o.concurrent`, which defaults to true on hardware adapters.
 */
export function sideBySide(
  gpu: Gpu,
  o: Pick<ExperimentOptions, "variants" | "concurrent">,
): boolean {
  return o.variants.length > 1 && (o.concurrent ?? !gpu.adapter.fallback);
}

/**
 * Loads CIFAR-10 onto the GPU once, trains each variant and writes `<out>/<variant>/` files and
 * `<out>/summary.json`. Returns the summary rows, in the order of `o.variants`. With `resume`,
 * every checkpoint is checked (see {@link checkResume}) before the first variant trains.
 *
 * With `concurrent` (the default on hardware adapters) the variants train side by side on the one
 * device: while one waits for its epoch's readback, the others encode and submit, so a fast GPU
 * is never idle for a round trip. Each variant's numbers are bit-identical either way: the
 * variants share only the read-only dataset.
 */
export async function runExperiment(gpu: Gpu, o: ExperimentOptions): Promise<SummaryRow[]> {
  if (o.resume) await checkResume(o);
  const data = o.data ?? await loadCifar10(o.dataDir);
  await matmulVariant(gpu); // the adapter's matmul kernel family, chosen once before any plan
  const sets = {
    train: GpuDataset.upload(gpu, slice(data.train, o.trainLimit)),
    val: GpuDataset.upload(gpu, slice(data.test, o.valLimit)),
    classes: data.classes,
  };
  const byVariant = new Map<Variant, SummaryRow>();
  const finish = (history: History) => {
    const row = summaryRow(history);
    byVariant.set(history.variant as Variant, row);
    o.onVariant?.(history, row);
    return history;
  };
  try {
    if (sideBySide(gpu, o)) {
      await runConcurrently(gpu, o, sets, finish);
    } else {
      for (const variant of o.variants) {
        const prepared = await prepare(gpu, o, variant, sets);
        try {
          const history = finish(await prepared.run(o.signal, o.progress));
          if (history.stopped === "aborted") break;
        } finally {
          prepared.dispose();
        }
      }
    }
  } finally {
    sets.train.dispose();
    sets.val.dispose();
  }
  const rows = o.variants.flatMap((v) => byVariant.get(v) ?? []);
  await writeTextFileAtomic(join(o.outDir, "summary.json"), JSON.stringify(rows, null, 1) + "\n");
  return rows;
}

/**
 * Fits every variant at once. A failure in one stops the others between steps (their
 * checkpoints stay intact) and is thrown once all have stopped.
 */
async function runConcurrently(
  gpu: Gpu,
  o: ExperimentOptions,
  sets: { train: GpuDataset; val: GpuDataset; classes: string[] },
  finish: (history: History) => History,
): Promise<void> {
  const prepared: PreparedRun[] = [];
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  o.signal?.addEventListener("abort", onAbort);
  if (o.signal?.aborted) stop.abort();
  const board = o.progress === undefined || o.progress === true ? new ProgressBoard() : null;
  try {
    for (const variant of o.variants) prepared.push(await prepare(gpu, o, variant, sets));
    const results = await Promise.allSettled(prepared.map(async (p) => {
      try {
        return finish(await p.run(stop.signal, board?.sink() ?? o.progress));
      } catch (error) {
        stop.abort(); // the others stop between steps, with their checkpoints intact
        throw error;
      }
    }));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    for (const p of prepared) p.dispose();
  }
}
