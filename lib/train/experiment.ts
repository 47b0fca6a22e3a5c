/**
 * The lecture's experiment: three MLPs (plain, BatchNorm, Dropout) trained on CIFAR-10
 * with Adam, each from `manualSeed(seed)`, with per-variant outputs and a summary.
 *
 * @module
 */

import { join } from "node:path";
import { adapterDefaults } from "../gpu/defaults.ts";
import { DeviceLostError, type Gpu, GpuMemoryError } from "../gpu/device.ts";
import { type Cifar10, type ImageSet, loadCifar10 } from "../data/cifar10.ts";
import { GpuDataset } from "../data/dataset.ts";
import { Loader } from "../data/loader.ts";
import { matmulVariant } from "../ops/matmul_trial.ts";
import { lectureModel, type Variant, VARIANTS } from "../nn/lecture.ts";
import { CNN_RECIPE, cnnModel } from "../nn/cnn.ts";
import { CrossEntropyLoss } from "../nn/loss.ts";
import { manualSeed } from "../nn/random.ts";
import type { Sequential } from "../nn/sequential.ts";
import { Adam, AdamW } from "../optim/adam.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { RMSprop } from "../optim/rmsprop.ts";
import { OneCycleLR } from "../optim/scheduler.ts";
import { SGD } from "../optim/sgd.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { readCheckpoint } from "./checkpoint.ts";
import { fit } from "./fit.ts";
import type { History } from "./history.ts";
import { ProgressBoard, type ProgressSink } from "./progress.ts";
import { checkRunFolder, runFilesIn, RunLock, type RunSettings } from "./run_dir.ts";
import { checkManifest, RunExistsError } from "./run_start.ts";
import { folderSummary } from "./history_file.ts";
import { type SummaryRow, summaryRow } from "./summary.ts";

/** The summary of every run in the output folder, written after training. */
const SUMMARY_FILE = "summary.json";

export { lectureModel, type Variant, VARIANTS } from "../nn/lecture.ts";
export { CNN_RECIPE, cnnModel } from "../nn/cnn.ts";

/**
 * Every model the experiment can train: the lecture's three MLPs ({@link VARIANTS}, what
 * `--model all` means) and `cnn`, the convolutional recipe of `lib/nn/cnn.ts`.
 */
export const MODELS = [...VARIANTS, "cnn"] as const;
/** One of {@link MODELS}. */
export type ModelName = typeof MODELS[number];

/** Builds model `name` (call `manualSeed` first). */
export function buildModel(name: ModelName): Sequential {
  return name === "cnn" ? cnnModel() : lectureModel(name);
}
/** Optimizers the scripts can choose. */
export const OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop"] as const;
/** One of {@link OPTIMIZERS}. */
export type OptimizerChoice = typeof OPTIMIZERS[number];

/** @deprecated Use {@link lectureModel}. */
export const seedModel: (variant: Variant) => Sequential = lectureModel;

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

/** Options of {@link runExperiment}. */
export interface ExperimentOptions {
  /** The models to train, in order (the lecture's variants and/or `cnn`). */
  variants: readonly ModelName[];
  /** Epochs per variant (the total, when resuming). */
  epochs: number;
  /** Images per training and validation batch. */
  batchSize: number;
  /** Learning rate. */
  lr: number;
  /** The optimizer (Adam in the lecture). */
  optimizer: "adam" | "adamw" | "sgd" | "rmsprop";
  /** `manualSeed` before each model; also seeds the loaders' shuffles. */
  seed: number;
  /** Validate every this many epochs (and at the last). */
  validationFreq: number;
  /** Folder holding `cifar-10-batches-bin/` (or that folder itself); ignored when `data` is given. */
  dataDir: string;
  /**
   * The dataset already in memory (the benchmark's synthetic CIFAR-shaped set). Default: none
   * (`dataDir` is read).
   */
  data?: Cifar10;
  /** Output folder; each variant writes into `<out>/<variant>/`. */
  outDir: string;
  /**
   * Random flips and 4-pixel crops of the training images. Default: false (the `cnn` recipe
   * always augments).
   */
  augment?: boolean;
  /**
   * Continue each variant from `<outDir>/<variant>/resume.safetensors`; variants without one
   * start afresh. The run's settings must be the same (more epochs are fine). Default: false.
   */
  resume?: boolean;
  /**
   * Start afresh over variants whose folders hold a run (without it, such a folder is refused).
   * Default: false.
   */
  overwrite?: boolean;
  /**
   * Stop every variant at the first one that fails. Default: false (a failed variant is recorded
   * in the summary with its reason, and the others train on).
   */
  failFast?: boolean;
  /**
   * Write last.* and the history at most this often, in seconds; 0 writes them after every
   * epoch. Default: 0 on software adapters, 10 on hardware ones, where an epoch takes
   * milliseconds and writing every epoch would cost more than training.
   */
  checkpointSeconds?: number;
  /** Stops the run between steps; checkpoints and histories stay intact. Default: none. */
  signal?: AbortSignal;
  /** Progress display: true for stderr, false for none, or a custom sink. Default: true. */
  progress?: boolean | ProgressSink;
  /** Use only the first N training images (tests, quick runs). Default: none (every image). */
  trainLimit?: number;
  /** Use only the first N test images for validation. Default: none (every image). */
  valLimit?: number;
  /**
   * Called with each finished variant's history (in finishing order when concurrent). Default:
   * none.
   */
  onVariant?: (history: History, row: SummaryRow) => void;
  /** Called when a variant fails, with its error (it is also in the summary). Default: none. */
  onFailure?: (variant: ModelName, error: Error) => void;
  /**
   * Train the variants side by side on the one device: on hardware adapters it hides each
   * epoch's readback round trip; on software adapters it gains nothing. A single variant simply
   * trains. Default: true on hardware adapters, false on software ones.
   */
  concurrent?: boolean;
  /**
   * Passed to {@link fit}: encode each epoch while the GPU runs the one before. Default: on for
   * hardware adapters, off for software ones.
   */
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

/** The settings of `variant`'s run that the experiment sets (flag names), for its manifest. */
export function experimentSettings(
  o: ExperimentOptions,
  variant: ModelName,
  data: string,
): RunSettings {
  return {
    model: variant,
    optimizer: o.optimizer,
    lr: o.lr,
    "batch-size": o.batchSize,
    seed: o.seed,
    augment: variant === "cnn" || o.augment === true,
    "val-freq": o.validationFreq,
    data,
    // The recipe's one-cycle schedule spans the run: more epochs would change every rate.
    ...(variant === "cnn" ? { epochs: o.epochs, recipe: CNN_RECIPE_TEXT } : {}),
  };
}

/** What the `cnn` run's manifest says of its recipe (besides the flags). */
const CNN_RECIPE_TEXT =
  `SGD nesterov momentum ${CNN_RECIPE.momentum}, weight decay ${CNN_RECIPE.weightDecay} ` +
  `on weights of rank > 1, OneCycleLR per step (pctStart ${CNN_RECIPE.pctStart}), label ` +
  `smoothing ${CNN_RECIPE.labelSmoothing}, flips and ${CNN_RECIPE.augment.crop}-pixel crops`;

/**
 * The `cnn` recipe's optimizer over `model`: weight decay on the weights of rank > 1 only (the
 * convolutions' and the Linear's), none on biases or BatchNorm's γ, β; SGD with Nesterov momentum,
 * or the optimizer named (AdamW with the same split; Adam and RMSprop as {@link makeOptimizer}).
 */
export function cnnOptimizer(name: OptimizerChoice, model: Sequential, lr: number): Optimizer {
  const params = model.parameters().params;
  const weights = params.filter((p) => p.value.shape.length > 1);
  const others = params.filter((p) => p.value.shape.length <= 1);
  const groups = [{ params: weights }, { params: others, weightDecay: 0 }];
  switch (name) {
    case "sgd":
      return new SGD(groups, {
        lr,
        momentum: CNN_RECIPE.momentum,
        nesterov: true,
        weightDecay: CNN_RECIPE.weightDecay,
      });
    case "adamw":
      return new AdamW(groups, { lr, weightDecay: CNN_RECIPE.weightDecay * 100 });
    default:
      return makeOptimizer(name, model, lr);
  }
}

/** A short SHA-256 of the images and labels that a run trains and validates on. */
async function fingerprint(sets: ImageSet[]): Promise<string> {
  const parts = sets.flatMap((s) => [s.images, new Uint8Array(s.labels.buffer as ArrayBuffer)]);
  const hashes = await Promise.all(
    parts.map((p) => crypto.subtle.digest("SHA-256", p as Uint8Array<ArrayBuffer>)),
  );
  const all = await crypto.subtle.digest(
    "SHA-256",
    new Uint8Array(hashes.flatMap((h) => [...new Uint8Array(h)])),
  );
  return "sha256:" +
    Array.from(new Uint8Array(all), (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

/** One variant's run as planned by {@link planExperiment}. */
export interface PlannedRun {
  /** The variant. */
  variant: ModelName;
  /** Its folder, `<outDir>/<variant>`. */
  dir: string;
  /** The settings its manifest records (see `experimentSettings` in lib/train/experiment.ts). */
  settings: RunSettings;
  /** Whether it continues from its checkpoint. */
  resume: boolean;
}

/**
 * An experiment checked before any GPU work: the data loaded and fingerprinted, every variant's
 * folder and every resume checked. {@link runExperiment} makes one when not given.
 */
export interface ExperimentPlan {
  /** The data, sliced to the limits. */
  data: Cifar10;
  /** The planned runs, in the order of the variants. */
  runs: readonly PlannedRun[];
}

/**
 * Checks, before anything is trained or written, everything that can be known about `o`: the
 * data loads; each variant's folder is (or can be made) a writable folder whose file names are
 * free; with `resume`, each checkpoint that exists fits its model and optimizer, passes its
 * digests and belongs to a manifest with the same settings, and a folder without one holds no
 * other run files; without it, a folder that holds a run is refused unless `overwrite`. Throws a
 * RangeError naming the path. Leaves the global seed at `o.seed`.
 */
export async function planExperiment(o: ExperimentOptions): Promise<ExperimentPlan> {
  const source = o.data ?? await loadCifar10(o.dataDir);
  const data = {
    train: slice(source.train, o.trainLimit),
    test: slice(source.test, o.valLimit),
    classes: source.classes,
  };
  const print = await fingerprint([data.train, data.test]);
  await checkRunFolder(o.outDir, [SUMMARY_FILE]); // read and written after training
  const runs: PlannedRun[] = [];
  for (const variant of o.variants) {
    const dir = join(o.outDir, variant);
    await checkRunFolder(dir);
    const settings = experimentSettings(o, variant, print);
    const files = await runFilesIn(dir);
    let resume = false;
    if (o.resume && files.length > 0) {
      // A folder with run files but no checkpoint (an earlier version's run) is named too.
      manualSeed(o.seed);
      const model = buildModel(variant); // on the CPU: only its description and shapes are needed
      const checkpoint = await readCheckpoint(dir, model, OPTIMIZER_NAMES[o.optimizer]);
      await checkManifest(dir, settings, checkpoint.runId, { all: false });
      resume = true;
    } else if (!o.resume && files.length > 0 && !o.overwrite) {
      throw new RunExistsError(dir, files);
    }
    runs.push({ variant, dir, settings, resume });
  }
  manualSeed(o.seed);
  return { data, runs };
}

/**
 * Locks every run's folder, or none: throws (naming the folder and the holder) when another
 * run holds one. Says when a lock is taken over from a run that died.
 */
async function lockAll(o: ExperimentOptions, plan: ExperimentPlan): Promise<RunLock[]> {
  const locks: RunLock[] = [];
  try {
    for (const run of plan.runs) {
      const lock = await RunLock.acquire(run.dir);
      locks.push(lock);
      const notice = lock.staleNotice(run.variant);
      if (notice && o.progress !== false) console.error(notice);
    }
  } catch (error) {
    for (const lock of locks) await lock.release();
    throw error;
  }
  return locks;
}

/** A planned run whose folder this process has locked. */
type LockedRun = PlannedRun & { lock: RunLock };

/** The datasets on the GPU, shared by every variant (read-only). */
type Sets = { train: GpuDataset; val: GpuDataset; classes: string[] };

/** One variant, built and ready to fit; `dispose` frees everything it holds. */
interface PreparedRun {
  variant: ModelName;
  run: (
    signal: AbortSignal | undefined,
    progress: ExperimentOptions["progress"],
  ) => Promise<History>;
  dispose: () => void;
}

/**
 * Builds `planned`'s model (from `manualSeed(o.seed)`), optimizer, loss and loaders. Whatever was
 * built is disposed when building fails (e.g. out of GPU memory for a batch size too large).
 */
function prepare(
  gpu: Gpu,
  o: ExperimentOptions,
  planned: LockedRun,
  sets: Sets,
): PreparedRun {
  const { variant, dir } = planned;
  const owned: { dispose(): void }[] = [];
  const own = <T extends { dispose(): void }>(x: T): T => (owned.push(x), x);
  const dispose = () => {
    for (const x of owned.reverse()) x.dispose();
    owned.length = 0;
  };
  try {
    manualSeed(o.seed);
    const cnn = variant === "cnn";
    const model = own(buildModel(variant).to(gpu));
    const optimizer = own(
      cnn ? cnnOptimizer(o.optimizer, model, o.lr) : makeOptimizer(o.optimizer, model, o.lr),
    );
    const loss = own(
      new CrossEntropyLoss(cnn ? { labelSmoothing: CNN_RECIPE.labelSmoothing } : {}),
    );
    const train = own(
      new Loader(gpu, sets.train, {
        batchSize: o.batchSize,
        shuffle: true,
        seed: o.seed,
        augment: cnn ? CNN_RECIPE.augment : o.augment ? { flip: true, crop: 4 } : undefined,
      }),
    );
    // The recipe's rate: one cycle over the whole run, peaking at o.lr, stepped per batch.
    const scheduler = cnn
      ? {
        scheduler: new OneCycleLR(o.lr, {
          totalSteps: o.epochs * train.batchesPerEpoch,
          pctStart: CNN_RECIPE.pctStart,
        }),
        interval: "step" as const,
      }
      : undefined;
    const val = own(
      new Loader(gpu, sets.val, { batchSize: o.batchSize, shuffle: true, seed: o.seed + 1 }),
    );
    const run = (signal: AbortSignal | undefined, progress: ExperimentOptions["progress"]) =>
      fit(model, {
        train,
        val,
        epochs: o.epochs,
        loss,
        optimizer,
        scheduler,
        validationFreq: o.validationFreq,
        checkpointDir: dir,
        resume: planned.resume,
        overwrite: !planned.resume && o.overwrite === true,
        settings: planned.settings,
        lock: planned.lock,
        checkpointSeconds: o.checkpointSeconds ?? adapterDefaults(gpu).checkpointSeconds,
        encodeAhead: o.encodeAhead,
        signal,
        variant,
        classes: sets.classes,
        progress,
      });
    return { variant, run, dispose };
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
  return o.variants.length > 1 && (o.concurrent ?? adapterDefaults(gpu).concurrent);
}

/** Where the variants' runs report: the history of one that ended, the error of one that failed. */
interface Outcomes {
  finish: (history: History) => History;
  fail: (variant: ModelName, error: unknown) => void;
}

/**
 * Loads CIFAR-10 onto the GPU once, trains each variant and writes `<out>/<variant>/` files and
 * `<out>/summary.json`. Everything that can be checked first is checked first
 * ({@link planExperiment}, unless `plan` is given). A variant that fails (a NaN, a full disk) is
 * recorded in the summary as failed, with its reason, and the others train on (`failFast` stops
 * them instead, and the error is thrown). Returns the summary rows of `o.variants`, in order;
 * `summary.json` has a row for every run in the folder.
 *
 * With `concurrent` (the default on hardware adapters) the variants train side by side on the one
 * device: while one waits for its epoch's readback, the others encode and submit, so a fast GPU
 * is never idle for a round trip. Each variant's numbers are bit-identical either way: the
 * variants share only the read-only dataset.
 *
 * @param plan What {@link planExperiment} returned for `o`. Default: none (it is planned here).
 */
export async function runExperiment(
  gpu: Gpu,
  o: ExperimentOptions,
  plan?: ExperimentPlan,
): Promise<SummaryRow[]> {
  plan ??= await planExperiment(o);
  const locks = await lockAll(o, plan);
  const runs = plan.runs.map((run, i) => ({ ...run, lock: locks[i] }));
  const failures = new Map<string, Error>();
  const outcomes: Outcomes = {
    finish: (history) => {
      o.onVariant?.(history, summaryRow(history));
      return history;
    },
    fail: (variant, error) => {
      // The device is shared: when it is lost or out of memory, no other variant does better.
      if (error instanceof DeviceLostError || error instanceof GpuMemoryError) throw error;
      const e = error instanceof Error ? error : new Error(String(error));
      failures.set(variant, e);
      o.onFailure?.(variant, e);
    },
  };
  try {
    await matmulVariant(gpu); // the adapter's matmul kernel family, chosen once before any plan
    const sets = {
      train: GpuDataset.upload(gpu, plan.data.train),
      val: GpuDataset.upload(gpu, plan.data.test),
      classes: plan.data.classes,
    };
    try {
      if (sideBySide(gpu, o)) await runConcurrently(gpu, o, runs, sets, outcomes);
      else await runSequentially(gpu, o, runs, sets, outcomes);
    } finally {
      sets.train.dispose();
      sets.val.dispose();
    }
  } finally {
    for (const lock of locks) await lock.release();
  }
  const rows = await folderSummary(o.outDir, failures);
  await writeTextFileAtomic(join(o.outDir, SUMMARY_FILE), JSON.stringify(rows, null, 1) + "\n");
  if (o.failFast && failures.size > 0) throw failures.values().next().value;
  return o.variants.flatMap((v) => rows.find((r) => r.variant === v) ?? []);
}

/** Fits the variants one after another; stops at an abort (or, with `failFast`, a failure). */
async function runSequentially(
  gpu: Gpu,
  o: ExperimentOptions,
  runs: LockedRun[],
  sets: Sets,
  { finish, fail }: Outcomes,
): Promise<void> {
  for (const planned of runs) {
    if (o.signal?.aborted) break;
    let prepared: PreparedRun | null = null;
    try {
      prepared = prepare(gpu, o, planned, sets);
      finish(await prepared.run(o.signal, o.progress));
    } catch (error) {
      fail(planned.variant, error);
      if (o.failFast) break;
    } finally {
      prepared?.dispose();
    }
  }
}

/**
 * Fits every variant at once. A failure in one is recorded and the others train on; with
 * `failFast` it stops the others between steps (their checkpoints stay intact).
 */
async function runConcurrently(
  gpu: Gpu,
  o: ExperimentOptions,
  runs: LockedRun[],
  sets: Sets,
  { finish, fail }: Outcomes,
): Promise<void> {
  const prepared: PreparedRun[] = [];
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  o.signal?.addEventListener("abort", onAbort);
  if (o.signal?.aborted) stop.abort();
  const board = o.progress === undefined || o.progress === true ? new ProgressBoard() : null;
  try {
    for (const planned of runs) {
      try {
        prepared.push(prepare(gpu, o, planned, sets));
      } catch (error) {
        fail(planned.variant, error);
        if (o.failFast) return;
      }
    }
    const results = await Promise.allSettled(prepared.map(async (p) => {
      try {
        finish(await p.run(stop.signal, board?.sink() ?? o.progress));
      } catch (error) {
        try {
          fail(p.variant, error);
          if (o.failFast) stop.abort(); // the others stop between steps, checkpoints intact
        } catch (fatal) {
          stop.abort();
          throw fatal;
        }
      }
    }));
    const fatal = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (fatal) throw fatal.reason;
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    for (const p of prepared) p.dispose();
  }
}
