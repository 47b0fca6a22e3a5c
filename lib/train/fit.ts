/**
 * The training loop: the lecture's `learning_loop_for_classification` without its per-step
 * synchronisation. Each epoch's steps go to the GPU a chunk at a time without waiting
 * (`schedule.ts`); losses and correct counts accumulate on the GPU and are read once per epoch;
 * the run folder is opened or resumed first (`run_start.ts`) and committed to after epochs
 * (`cadence.ts`). Progress within an epoch follows the GPU through `onSubmittedWorkDone`
 * callbacks, never by blocking the CPU.
 *
 * @module
 */

import { join } from "node:path";
import { adapterDefaults } from "../gpu/defaults.ts";
import type { Gpu } from "../gpu/device.ts";
import { Loader } from "../data/loader.ts";
import type { Loss } from "../nn/loss_contract.ts";
import type { Sequential } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { removeStaleTemps } from "../io/atomic.ts";
import { CheckpointCadence } from "./cadence.ts";
import { exportCheckpoint, loadCheckpoint, loadModel, writeHistory } from "./checkpoint.ts";
import type { EpochRecord, History } from "./history.ts";
import { RUN_FILES, RunLock, type RunSettings } from "./run_dir.ts";
import { derivedSettings, startRun } from "./run_start.ts";
import { type ProgressSink, silentProgress, StderrProgress } from "./progress.ts";
import { type BatchSource, EpochSchedule } from "./schedule.ts";
import type { StepHooks } from "./step.ts";

/**
 * The validation metric that decides `best.safetensors` and early stopping: the loss (lower is
 * better) or the accuracy (higher is better; needs a loss that classifies).
 */
export type Monitor = "valLoss" | "valAccuracy";

/** Options of {@link fit}. */
export interface FitOptions {
  /**
   * Training batches: a `Loader` (shuffled per epoch by it), or another {@link BatchSource}
   * whose targets are what `loss` takes.
   */
  train: BatchSource;
  /** Validation batches. Default: none (no validation). */
  val?: BatchSource;
  /** Epochs to train (the total, including epochs done before a resume). */
  epochs: number;
  /**
   * The loss (its gradient seeds backward): {@link CrossEntropyLoss} or any other {@link Loss}.
   * Validation accuracy and the confusion matrix are recorded for a loss that classifies.
   */
  loss: Loss;
  /** The optimizer over `model.parameters()`. */
  optimizer: Optimizer;
  /** Validate every this many epochs, as in the lecture. Default: 1. */
  validationFreq?: number;
  /** Called after each epoch with its record and the history so far. Default: none. */
  onEpoch?: (record: EpochRecord, history: History) => void | Promise<void>;
  /**
   * Stops the run between chunks of steps; the epoch in progress is abandoned and the last
   * commit stays. (When a commit was deferred by `checkpointSeconds`, the epoch in progress is
   * finished and committed instead, so no trained epoch is lost.) Default: none (never
   * stopped).
   */
  signal?: AbortSignal;
  /**
   * The run folder: `resume.safetensors` (the checkpoint, committed whole), `run.json` (the
   * manifest), `last.safetensors` and `best.safetensors` (PyTorch-loadable), `history.json`/`.csv`,
   * and `run.lock` while training (see `lib/train/run_dir.ts`). A folder that holds a run is
   * refused unless `resume` or `overwrite` says what to do with it. Default: none (nothing is
   * written to disk).
   */
  checkpointDir?: string;
  /**
   * Commit the checkpoint and the history at most this often (seconds); 0 commits after every
   * epoch. A deferred epoch is still committed when the run ends, stops early or is
   * aborted; `best.safetensors` is always written when the `monitor`ed metric improves. Use it
   * where epochs take milliseconds (a fast GPU) and the writes would dominate. Default: 0.
   */
  checkpointSeconds?: number;
  /**
   * Continue from `checkpointDir`'s checkpoint. Every tensor's digest, the values, the
   * architecture, the optimizer and the manifest's settings are checked first; a changed setting
   * is refused by name (more `epochs` is fine). Default: false.
   */
  resume?: boolean;
  /** Start afresh in a `checkpointDir` that holds a run, removing its files first. Default: false. */
  overwrite?: boolean;
  /**
   * Settings to record in the manifest besides those fit derives (architecture, optimizer and
   * learning rate, batch sizes, sample counts, shuffling, augmentation); a resume refuses any
   * change to either. Default: none (only the derived settings).
   */
  settings?: RunSettings;
  /** `checkpointDir`'s lock, when the caller holds it already. Default: none (fit takes it). */
  lock?: RunLock;
  /**
   * Stop after `patience` validations without a better `monitor` value (the validation loss by
   * default); with `restoreBest` (needs
   * `checkpointDir`; default false) the model is then reloaded from `best.safetensors`.
   * Default: none (no early stopping).
   */
  earlyStopping?: { patience: number; restoreBest?: boolean };
  /**
   * The metric `best.safetensors` and `earlyStopping` follow: "valLoss" (lowest is best) or
   * "valAccuracy" (highest is best; refused before training for a loss without accuracy). Recorded in the run's settings when not the default, so a resume refuses a
   * change. Default: "valLoss".
   */
  monitor?: Monitor;
  /**
   * GPU work of your own in every training step, encoded with the step (no readback):
   * `beforeUpdate(enc, { epoch, batch })` between backward and the optimizer update,
   * `afterUpdate` after it (see `StepHooks`). Default: none.
   */
  hooks?: StepHooks;
  /**
   * Gradient accumulation: sum the gradients of this many batches and step the optimizer once,
   * with their sum divided by `accumulate` (PyTorch's `(loss / k).backward()` with
   * `optimizer.step()` every k batches and after the epoch's last). A shorter last window is
   * also divided by `accumulate`, as in that loop. The division is the optimizer's gradient
   * scale (`Optimizer.setGradScale`), set for the run and restored after it: the optimizer's
   * clipping sees the divided gradients, as PyTorch's does after `(loss / k).backward()`, while
   * the gradient buffers (and `hooks`, called once per window) hold the sum. A per-step
   * scheduler counts optimizer steps. Recorded in the run's settings when not 1. Default: 1.
   */
  accumulate?: number;
  /** Name shown in progress and stored in the history (e.g. "bn"). Default: "model". */
  variant?: string;
  /** Class names for the history (index = label). Default: `[]`. */
  classes?: string[];
  /** Progress display: true for stderr, false for none, or a custom sink. Default: true. */
  progress?: boolean | ProgressSink;
  /** Steps per submission: smaller gives finer progress, larger fewer submits. Default: 8. */
  stepsPerSubmit?: number;
  /**
   * Encode each epoch while the GPU still runs the one before, and submit it once that epoch's
   * results are in. It hides the CPU's encoding (about 0.1-0.2 ms a step) and the readback round
   * trip (at least 11 ms in Deno) from each other: worth it where an epoch takes milliseconds.
   * Results are identical either way. Default: on for hardware adapters, off for software ones.
   */
  encodeAhead?: boolean;
  /**
   * A learning-rate schedule, applied through `optimizer.setLr`. With `interval: "epoch"` (the
   * default), epoch e trains at `scheduler.lrAt(e - 1)`; with `"step"`, the k-th optimizer step
   * of the run (0-based, counted over epochs) at `scheduler.lrAt(k)`, which takes one step per
   * submission (`stepsPerSubmit` is taken as 1 and `encodeAhead` as false: the rate is written
   * through the queue between submissions). The rate is recomputed from the epoch or step
   * count, so a resume needs nothing saved; the scheduler's name and interval are recorded in
   * the run's settings, and a resume refuses a change to them. With parameter groups, every
   * group's rate is scaled alike (see `Optimizer.setLr`): PyTorch's schedulers given each
   * group's own base or peak rate in the same proportions. Default: none (the optimizer's rate
   * throughout).
   *
   * `scheduler` is any `LrScheduler` of `lib/optim/scheduler.ts` (`StepLR`, `OneCycleLR`, ...),
   * spelled out here as its shape.
   */
  scheduler?: {
    scheduler: { readonly name: string; lrAt(step: number): number };
    interval?: "epoch" | "step";
  };
}

/** Re-exported: {@link fit} writes the history with it. */
export { writeHistory };

/** Thrown when the loss becomes NaN or infinite; says where. */
export class NonFiniteLossError extends Error {
  /** `epoch` 1-based, `batch` 0-based within it, `step` the 1-based optimizer step. */
  constructor(readonly epoch: number, readonly batch: number, readonly step: number) {
    super(
      `Training stopped: the loss became NaN or infinite at epoch ${epoch}, batch ${
        batch + 1
      } (step ${step})`,
    );
    this.name = "NonFiniteLossError";
  }
}

function checkOptions(o: FitOptions): void {
  if (!Number.isInteger(o.epochs) || o.epochs <= 0) {
    throw new RangeError(
      `Cannot fit: epochs must be a positive integer: current value is ${o.epochs}`,
    );
  }
  const freq = o.validationFreq ?? 1;
  if (!Number.isInteger(freq) || freq <= 0) {
    throw new RangeError(
      `Cannot fit: validationFreq must be a positive integer: current value is ${freq}`,
    );
  }
  const seconds = o.checkpointSeconds ?? 0;
  if (!(Number.isFinite(seconds) && seconds >= 0)) {
    throw new RangeError(
      `Cannot fit: checkpointSeconds must be a finite number >= 0: current value is ${seconds}`,
    );
  }
  const k = o.accumulate ?? 1;
  if (!Number.isInteger(k) || k <= 0) {
    throw new RangeError(
      `Cannot fit: accumulate must be a positive integer: current value is ${k}`,
    );
  }
  const interval = o.scheduler?.interval ?? "epoch";
  if (interval !== "epoch" && interval !== "step") {
    throw new RangeError(
      `Cannot fit: scheduler.interval must be "epoch" or "step": current value is ${interval}`,
    );
  }
  const monitor = o.monitor ?? "valLoss";
  if (monitor !== "valLoss" && monitor !== "valAccuracy") {
    throw new RangeError(
      `Cannot fit: monitor must be "valLoss" or "valAccuracy": current value is ${monitor}`,
    );
  }
  if (monitor === "valAccuracy" && !o.loss.classifies) {
    // Refused before anything trains: the loss's validations would never record an accuracy.
    throw new RangeError(
      `Cannot fit: monitor "valAccuracy" needs a loss that classifies: ${o.loss.constructor.name} records no accuracy; use "valLoss"`,
    );
  }
  if (o.resume && !o.checkpointDir) throw new RangeError("Cannot fit: resume needs checkpointDir");
  if (o.resume && o.overwrite) {
    throw new RangeError("Cannot fit: resume and overwrite exclude each other");
  }
  if (o.earlyStopping?.restoreBest && !o.checkpointDir) {
    // The best weights come back from best.safetensors; without a folder they would silently not.
    throw new RangeError("Cannot fit: earlyStopping.restoreBest needs checkpointDir");
  }
  if (
    o.earlyStopping && !(Number.isInteger(o.earlyStopping.patience) && o.earlyStopping.patience > 0)
  ) {
    throw new RangeError(
      `Cannot fit: earlyStopping.patience must be a positive integer: current value is ${o.earlyStopping.patience}`,
    );
  }
}

/**
 * Trains `model` for `options.epochs` epochs and returns the history.
 *
 * @example The lecture's loop
 * ```ts ignore
 * const history = await fit(model, { train, val, epochs: 200, loss: new CrossEntropyLoss(), optimizer: new Adam(model.parameters()) });
 * ```
 */
export async function fit(model: Sequential, options: FitOptions): Promise<History> {
  checkOptions(options);
  const { train, val, optimizer } = options;
  const gpu = model.parameters().values.gpu;
  const freq = options.validationFreq ?? 1;
  const label = options.variant ?? "model";
  const history: History = {
    variant: label,
    adapter: gpu.adapter.description,
    epochs: [],
    classes: options.classes ?? [],
    loss: options.loss.constructor.name,
  };
  const dir = options.checkpointDir;
  const lock = dir && !options.lock ? await RunLock.acquire(dir) : null;
  try {
    let cadence: CheckpointCadence | null = null;
    if (dir) {
      const notice = lock?.staleNotice(label);
      if (notice && options.progress !== false) console.error(notice);
      await removeStaleTemps(dir);
      const settings = {
        ...sourceSettings(model, optimizer, train, val, freq),
        ...schedulerSettings(options),
        ...optimizerSettings(optimizer),
        ...(options.monitor && options.monitor !== "valLoss" ? { monitor: options.monitor } : {}),
        ...((options.accumulate ?? 1) !== 1 ? { accumulate: options.accumulate! } : {}),
        ...options.settings,
      };
      const run = await startRun(dir, model, optimizer, settings, {
        resume: options.resume,
        overwrite: options.overwrite,
        adapter: gpu.adapter.description,
      });
      history.runId = run.manifest.runId;
      history.settings = run.manifest.settings;
      if (run.checkpoint) {
        loadCheckpoint(dir, run.checkpoint, model, optimizer);
        history.epochs = run.checkpoint.history.epochs;
        history.confusion = run.checkpoint.history.confusion;
        // A crash between a commit and its exports leaves them an epoch behind.
        await exportCheckpoint(dir, { ...run.checkpoint, history });
      }
      cadence = new CheckpointCadence({
        dir,
        model,
        optimizer,
        history,
        manifest: run.manifest,
        manifestWritten: run.manifestWritten,
        seconds: options.checkpointSeconds ?? 0,
      });
    }
    const scale = optimizer.gradScale;
    const k = options.accumulate ?? 1;
    if (k !== 1) optimizer.setGradScale(scale / k);
    try {
      await trainEpochs(model, options, history, cadence, gpu);
    } finally {
      if (k !== 1) optimizer.setGradScale(scale);
    }
    // How the run ended, in the exported history; a run that committed nothing leaves no files.
    if (dir && cadence?.committed) await writeHistory(dir, history);
    return history;
  } finally {
    await lock?.release();
  }
}

/**
 * The settings fit derives: a Loader's own (see `derivedSettings`), else the model's, the
 * optimizer's and the batch counts (the caller's `settings` describe such data).
 */
function sourceSettings(
  model: Sequential,
  optimizer: Optimizer,
  train: BatchSource,
  val: BatchSource | undefined,
  freq: number,
): RunSettings {
  if (train instanceof Loader && (val === undefined || val instanceof Loader)) {
    return derivedSettings(model, optimizer, train, val, freq);
  }
  const settings: RunSettings = {
    architecture: model.describe(),
    optimizerClass: optimizer.name,
    optimizerLr: optimizer.lr,
    trainBatches: train.batchesPerEpoch,
    validationFreq: freq,
  };
  if (val) settings.valBatches = val.batchesPerEpoch;
  return settings;
}

/**
 * The optimizer's clipping and parameter groups, for the manifest (only what differs from one
 * group without clipping, so runs made before these existed resume unchanged).
 */
function optimizerSettings(optimizer: Optimizer): RunSettings {
  const out: RunSettings = {};
  if (Number.isFinite(optimizer.clipGradValue)) out.clipGradValue = optimizer.clipGradValue;
  if (Number.isFinite(optimizer.clipGradNorm)) out.clipGradNorm = optimizer.clipGradNorm;
  if (optimizer.groupCount > 1) out.paramGroups = optimizer.describeGroups().join(" || ");
  return out;
}

/** The scheduler's name and interval, for the manifest (none without a scheduler). */
function schedulerSettings(o: FitOptions): RunSettings {
  if (!o.scheduler) return {};
  return {
    scheduler: o.scheduler.scheduler.name,
    schedulerInterval: o.scheduler.interval ?? "epoch",
  };
}

/** Follows the monitored metric: the best value so far and validations since it. */
class BestTracker {
  best: number;
  sinceBest = 0;
  constructor(readonly monitor: Monitor) {
    this.best = monitor === "valLoss" ? Infinity : -Infinity;
  }

  /** Takes an epoch's record; says whether it improved (false for an epoch that did not validate). */
  see(e: EpochRecord): boolean {
    if (e.valLoss === undefined) return false;
    // fit refuses "valAccuracy" for a loss without accuracy, so a validation records the value;
    // JSON writes a NaN as null: it counts as a validation without improvement.
    const value = this.monitor === "valLoss" ? e.valLoss : e.valAccuracy;
    const improved = typeof value === "number" &&
      (this.monitor === "valLoss" ? value < this.best : value > this.best);
    if (improved) {
      this.best = value;
      this.sinceBest = 0;
    } else this.sinceBest++;
    return improved;
  }
}

/** The epoch loop: from the epoch after `history`'s last to `options.epochs`, or a stop. */
async function trainEpochs(
  model: Sequential,
  options: FitOptions,
  history: History,
  cadence: CheckpointCadence | null,
  gpu: Gpu,
): Promise<void> {
  const { signal, optimizer, train } = options;
  const lrs = options.scheduler?.scheduler;
  const perStep = lrs !== undefined && options.scheduler?.interval === "step";
  const k = options.accumulate ?? 1;
  const stepsPerEpoch = Math.ceil(train.batchesPerEpoch / k);
  const schedule = new EpochSchedule(gpu, {
    model,
    loss: options.loss,
    optimizer,
    train,
    val: options.val,
    epochs: options.epochs,
    validationFreq: options.validationFreq ?? 1,
    // A per-step rate is written between submissions: one optimizer step (one window of
    // `accumulate` batches) each, none encoded ahead.
    stepsPerChunk: perStep ? k : Math.max(1, options.stepsPerSubmit ?? 8),
    accumulate: k,
    encodeAhead: perStep ? false : options.encodeAhead ?? adapterDefaults(gpu).encodeAhead,
    beforeChunk: perStep
      ? (epoch, b) => optimizer.setLr(lrs.lrAt((epoch - 1) * stepsPerEpoch + b / k))
      : undefined,
    hooks: options.hooks,
  });
  const progress: ProgressSink = options.progress === false
    ? silentProgress
    : options.progress === true || options.progress === undefined
    ? new StderrProgress()
    : options.progress;
  const tracker = new BestTracker(options.monitor ?? "valLoss");
  for (const e of history.epochs) tracker.see(e);
  // A Loader's batch size, for samples/s (another BatchSource may not say).
  const batchSize = (train as { options?: { batchSize?: number } }).options?.batchSize;
  const readRunningLoss = () => schedule.readRunningLoss();
  const began = performance.now();
  let done = 0;
  try {
    for (let epoch = history.epochs.length + 1; epoch <= options.epochs; epoch++) {
      if (signal?.aborted) {
        schedule.drop();
        history.stopped = "aborted";
        await cadence?.flush();
        break;
      }
      const t0 = performance.now();
      const last = history.epochs.at(-1);
      const state = (batch: number, record?: EpochRecord) => ({
        label: history.variant,
        epoch,
        epochs: options.epochs,
        batch,
        batches: train.batchesPerEpoch,
        trainLoss: (record ?? last)?.trainLoss,
        valLoss: (record ?? last)?.valLoss,
        valAccuracy: (record ?? last)?.valAccuracy,
        elapsed: (performance.now() - began) / 1000,
        done,
        epochElapsed: (performance.now() - t0) / 1000,
        batchSize,
        readRunningLoss,
      });
      // An abort stops the epoch between chunks, unless a deferred commit needs this epoch's
      // end (the deferred epoch's weights are gone once this one trains): then it finishes.
      const stop = () => signal?.aborted === true && !cadence?.deferred;
      // Epoch e's rate, written through the queue: after epoch e - 1's submissions (all made
      // by now), before epoch e's (an epoch encoded ahead reads the uniform when it runs).
      if (lrs && !perStep) optimizer.setLr(lrs.lrAt(epoch - 1));
      progress.update(state(0));
      const whole = await schedule.submitEpoch(epoch, stop, (b) => progress.update(state(b)));
      if (!whole) {
        // The epoch is abandoned: the last commit stays what a resume continues from.
        history.stopped = "aborted";
        break;
      }
      const out = await schedule.read(epoch, {
        withSteps: cadence !== null,
        encodeNext: epoch < options.epochs && !signal?.aborted,
      });
      if (out.train.firstNonFiniteBatch !== null) {
        throw new NonFiniteLossError(
          epoch,
          out.train.firstNonFiniteBatch,
          // Steps submitted so far: an epoch encoded ahead is not among them.
          optimizer.stepCount - schedule.pendingSteps - stepsPerEpoch +
            Math.floor(out.train.firstNonFiniteBatch / k) + 1,
        );
      }
      const record: EpochRecord = { epoch, trainLoss: out.train.meanLoss, seconds: 0 };
      if (out.val) {
        record.valLoss = out.val.summary.meanLoss;
        // NaN for a loss without accuracy (a regression): the record has none.
        if (!Number.isNaN(out.val.summary.accuracy)) {
          record.valAccuracy = out.val.summary.accuracy;
        }
        if (out.val.confusion) history.confusion = out.val.confusion;
      }
      record.seconds = (performance.now() - t0) / 1000;
      schedule.epochTook(record.seconds);
      history.epochs.push(record);
      done++;
      progress.epochDone(state(train.batchesPerEpoch, record));

      const improved = tracker.see(record);
      await cadence?.epochEnded(
        { epoch, trainingSteps: out.trainingSteps, architecture: model.describe() },
        { improved, last: epoch === options.epochs },
      );
      await options.onEpoch?.(record, history);
      if (options.earlyStopping && tracker.sinceBest >= options.earlyStopping.patience) {
        history.stopped = "early-stopping";
        await cadence?.flush();
        if (options.earlyStopping.restoreBest && options.checkpointDir) {
          await loadModel(join(options.checkpointDir, RUN_FILES.best), model);
        }
        break;
      }
    }
  } finally {
    schedule.dispose();
    progress.close();
  }
}
