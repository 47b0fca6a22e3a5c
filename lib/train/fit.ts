/**
 * The training loop: the seed's `learning_loop_for_classification` without its per-step
 * synchronisation. Each epoch's steps are encoded a chunk at a time (gather, forward, loss,
 * backward, optimizer update per step) and submitted without waiting; losses and correct counts
 * accumulate on the GPU and are read once per epoch. Progress within an epoch follows the GPU
 * through `onSubmittedWorkDone` callbacks, never by blocking the CPU.
 *
 * @module
 */

import { join } from "node:path";
import { adapterDefaults } from "../gpu/defaults.ts";
import { StepEncoder } from "../gpu/encoder.ts";
import type { Loader } from "../data/loader.ts";
import type { CrossEntropyLoss, LossSummary } from "../nn/loss.ts";
import { LabelRangeError, LossStats } from "../nn/loss.ts";
import type { Sequential } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { removeStaleTemps } from "../io/atomic.ts";
import { ConfusionMatrix } from "./confusion.ts";
import {
  exportCheckpoint,
  loadCheckpoint,
  loadModel,
  type RunPosition,
  saveCheckpoint,
  writeHistory,
} from "./checkpoint.ts";
import type { EpochRecord, History } from "./history.ts";
import { RUN_FILES, RunLock, type RunSettings, writeManifest } from "./run_dir.ts";
import { derivedSettings, type RunStart, startRun } from "./run_start.ts";
import { type ProgressSink, silentProgress, StderrProgress } from "./progress.ts";
import { encodeTrainingStep } from "./step.ts";

/** Options of {@link fit}. */
export interface FitOptions {
  /** Training batches (shuffled per epoch by the loader). */
  train: Loader;
  /** Validation batches; omit to skip validation. */
  val?: Loader;
  /** Epochs to train (the total, including epochs done before a resume). */
  epochs: number;
  /** The loss (its gradient seeds backward). */
  loss: CrossEntropyLoss;
  /** The optimizer over `model.parameters()`. */
  optimizer: Optimizer;
  /** Validate every this many epochs (default 1, as the seed). */
  validationFreq?: number;
  /** Called after each epoch with its record and the history so far. */
  onEpoch?: (record: EpochRecord, history: History) => void | Promise<void>;
  /**
   * Stops the run between chunks of steps; the epoch in progress is abandoned and the last
   * commit stays. (When a commit was deferred by `checkpointSeconds`, the epoch in progress is
   * finished and committed instead, so no trained epoch is lost.)
   */
  signal?: AbortSignal;
  /**
   * The run folder: `resume.safetensors` (the checkpoint, committed whole), `run.json` (the
   * manifest), `last.safetensors` and `best.safetensors` (PyTorch-loadable), `history.json`/`.csv`,
   * and `run.lock` while training (see `lib/train/run_dir.ts`). A folder that holds a run is
   * refused unless `resume` or `overwrite` says what to do with it.
   */
  checkpointDir?: string;
  /**
   * Commit the checkpoint and the history at most this often (seconds); 0 (default) commits
   * after every epoch. A deferred epoch is still committed when the run ends, stops early or is
   * aborted; `best.safetensors` is always written when the validation loss improves. Use it
   * where epochs take milliseconds (a fast GPU) and the writes would dominate.
   */
  checkpointSeconds?: number;
  /**
   * Continue from `checkpointDir`'s checkpoint. Every tensor's digest, the values, the
   * architecture, the optimizer and the manifest's settings are checked first; a changed setting
   * is refused by name (more `epochs` is fine).
   */
  resume?: boolean;
  /** Start afresh in a `checkpointDir` that holds a run, removing its files first. */
  overwrite?: boolean;
  /**
   * Settings to record in the manifest besides those fit derives (architecture, optimizer and
   * learning rate, batch sizes, sample counts, shuffling, augmentation); a resume refuses any
   * change to either.
   */
  settings?: RunSettings;
  /** `checkpointDir`'s lock, when the caller holds it already; otherwise fit takes it. */
  lock?: RunLock;
  /** Stop after `patience` validations without a lower validation loss. */
  earlyStopping?: { patience: number; restoreBest?: boolean };
  /** Name shown in progress and stored in the history (e.g. "bn"). */
  variant?: string;
  /** Class names for the history (index = label). */
  classes?: string[];
  /** Progress display: true for stderr (default), false for none, or a custom sink. */
  progress?: boolean | ProgressSink;
  /** Steps per submission (default 8): smaller gives finer progress, larger fewer submits. */
  stepsPerSubmit?: number;
  /**
   * Encode each epoch while the GPU still runs the one before, and submit it once that epoch's
   * results are in. It hides the CPU's encoding (about 0.1-0.2 ms a step) and the readback round
   * trip (at least 11 ms in Deno) from each other: worth it where an epoch takes milliseconds.
   * Results are identical either way. Default: on for hardware adapters, off for software ones.
   */
  encodeAhead?: boolean;
}

/** Re-exported: {@link fit} writes the history with it. */
export { writeHistory };

/** A chunk of training steps, encoded: `end` is the batch count after it (for progress). */
interface EncodedChunk {
  buffer: GPUCommandBuffer;
  end: number;
  steps: number;
}

/** Chunks of steps queued on the GPU at most, where epochs are long enough to pace. */
const MAX_QUEUED = 2;
/** Epochs at least this long (seconds) are paced; shorter ones are queued whole. */
const PACE_SECONDS = 0.25;

/** A bad label seen by the loss, rethrown with the epoch and the pass. */
function labelError(epoch: number, pass: string): (error: unknown) => never {
  return (error) => {
    if (error instanceof LabelRangeError) {
      throw new RangeError(`Training stopped at epoch ${epoch} (${pass}): ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  };
}

/** One epoch's command buffers, encoded and not yet submitted. */
interface EncodedEpoch {
  /** Training steps in chunks. */
  chunks: EncodedChunk[];
  /** The validation pass, or null when this epoch does not validate. */
  validation: GPUCommandBuffer | null;
  /** Optimizer steps encoded (taken back if the epoch is dropped). */
  steps: number;
}

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
 * @example The seed's loop
 * ```ts ignore
 * const history = await fit(model, { train, val, epochs: 200, loss: new CrossEntropyLoss(), optimizer: new Adam(model.parameters()) });
 * ```
 */
export async function fit(model: Sequential, options: FitOptions): Promise<History> {
  checkOptions(options);
  const { train, val, loss, optimizer, signal } = options;
  const gpu = model.parameters().values.gpu;
  const freq = options.validationFreq ?? 1;
  const chunk = Math.max(1, options.stepsPerSubmit ?? 8);
  const ahead = options.encodeAhead ?? adapterDefaults(gpu).encodeAhead;
  const progress: ProgressSink = options.progress === false
    ? silentProgress
    : options.progress === true || options.progress === undefined
    ? new StderrProgress()
    : options.progress;
  const label = options.variant ?? "model";
  const history: History = {
    variant: label,
    adapter: gpu.adapter.description,
    epochs: [],
    classes: options.classes ?? [],
  };
  const dir = options.checkpointDir;
  const lock = dir && !options.lock ? await RunLock.acquire(dir) : null;
  let start = 1;
  let best = Infinity;
  let sinceBest = 0;
  let run: RunStart | null = null;
  try {
    if (dir) {
      const notice = lock?.staleNotice(label);
      if (notice && options.progress !== false) console.error(notice);
      await removeStaleTemps(dir);
      const settings = {
        ...derivedSettings(model, optimizer, train, val, freq),
        ...options.settings,
      };
      run = await startRun(dir, model, optimizer, settings, {
        resume: options.resume,
        overwrite: options.overwrite,
        adapter: gpu.adapter.description,
      });
      history.runId = run.manifest.runId;
      history.settings = run.manifest.settings;
      if (run.checkpoint) {
        const saved = run.checkpoint;
        loadCheckpoint(dir, saved, model, optimizer);
        history.epochs = saved.history.epochs;
        history.confusion = saved.history.confusion;
        start = saved.position.epoch + 1;
        for (const e of history.epochs) {
          // JSON writes a NaN loss as null: it counts as a validation without improvement.
          if (typeof e.valLoss === "number" && e.valLoss < best) {
            best = e.valLoss;
            sinceBest = 0;
          } else if (e.valLoss !== undefined) sinceBest++;
        }
        // A crash between a commit and its exports leaves them an epoch behind.
        await exportCheckpoint(dir, { ...saved, history });
      }
    }
    return await runEpochs(start, best, sinceBest);
  } finally {
    await lock?.release();
  }

  async function runEpochs(start: number, best: number, sinceBest: number): Promise<History> {
    const trainStats = new LossStats(gpu, "train stats");
    const valStats = new LossStats(gpu, "val stats");
    let confusion = null as ConfusionMatrix | null; // sized by the first validation batch's logits
    const began = performance.now();
    let done = 0;
    const every = Math.max(0, options.checkpointSeconds ?? 0) * 1000;
    let lastSaved = -Infinity;
    // A completed epoch whose commit was deferred; the model still holds its weights until the
    // next epoch starts training.
    let unsaved: RunPosition | null = null;
    const save = async (position: RunPosition, o: { last: boolean; best: boolean }) => {
      if (o.last && !run!.manifestWritten) {
        await writeManifest(dir!, run!.manifest); // with the first checkpoint
        run!.manifestWritten = true;
      }
      await saveCheckpoint(dir!, model, optimizer, position, {
        history,
        runId: run!.manifest.runId,
        ...o,
      });
      if (o.last) {
        lastSaved = performance.now();
        unsaved = null;
      }
    };
    // Encoding, in pieces both schedules share. Nothing here submits.
    const encodeChunk = (epoch: number, b: number): EncodedChunk => {
      const enc = new StepEncoder(gpu, `epoch ${epoch}`);
      if (b === 0) trainStats.reset(enc);
      const end = Math.min(train.batchesPerEpoch, b + chunk);
      for (let i = b; i < end; i++) {
        const { x, y } = train.encodeBatchFor(enc, i, model);
        encodeTrainingStep(enc, { model, loss, optimizer }, x, y, trainStats);
      }
      return { buffer: enc.finish(), end, steps: end - b };
    };
    // Validation: eval mode, forward only, every `freq` epochs and at the last epoch.
    const validates = (epoch: number) =>
      val !== undefined && (epoch % freq === 0 || epoch === options.epochs);
    const encodeValidation = (epoch: number): GPUCommandBuffer => {
      model.eval();
      val!.startEpoch(epoch - 1);
      const enc = new StepEncoder(gpu, `validation ${epoch}`);
      valStats.reset(enc);
      for (let i = 0; i < val!.batchesPerEpoch; i++) {
        const { x, y } = val!.encodeBatchFor(enc, i, model);
        const logits = model.forward(enc, x);
        loss.forward(enc, logits, y, valStats);
        if (i === 0) {
          confusion ??= new ConfusionMatrix(gpu, logits.shape[1]);
          confusion.reset(enc);
        }
        confusion!.add(enc, logits, y);
      }
      return enc.finish();
    };
    const encodeEpoch = (epoch: number): EncodedEpoch => {
      model.train();
      train.startEpoch(epoch - 1);
      const chunks = [];
      for (let b = 0; b < train.batchesPerEpoch; b += chunk) chunks.push(encodeChunk(epoch, b));
      return {
        chunks,
        validation: validates(epoch) ? encodeValidation(epoch) : null,
        steps: train.batchesPerEpoch,
      };
    };
    // With encodeAhead: the next epoch, encoded while the GPU runs this one and submitted only
    // once this epoch's results are in (so checkpoints and decisions still see this epoch's
    // weights). Dropped unsubmitted when the run stops; its steps are then taken back.
    let pending: EncodedEpoch | null = null;
    const drop = () => {
      if (pending) optimizer.forgetSteps(pending.steps);
      pending = null;
    };
    // Pacing: at most MAX_QUEUED chunks wait on the GPU, so that an abort is seen (and the
    // signal delivered) within a chunk of steps rather than after the whole queued epoch. With
    // encodeAhead (a fast GPU), epochs shorter than PACE_SECONDS are queued whole: each wait
    // costs >= 11 ms there, and the whole epoch takes less.
    let lastEpochSeconds = Infinity;
    const queued: Promise<unknown>[] = [];
    try {
      for (let epoch = start; epoch <= options.epochs; epoch++) {
        if (signal?.aborted) {
          drop();
          history.stopped = "aborted";
          if (unsaved) await save(unsaved, { last: true, best: false });
          break;
        }
        const t0 = performance.now();
        const state = {
          label,
          epoch,
          epochs: options.epochs,
          batch: 0,
          batches: train.batchesPerEpoch,
          elapsed: 0,
          done,
        };
        const last = history.epochs.at(-1);
        const show = (batch: number) =>
          progress.update({
            ...state,
            batch,
            trainLoss: last?.trainLoss,
            valLoss: last?.valLoss,
            valAccuracy: last?.valAccuracy,
            elapsed: (performance.now() - began) / 1000,
          });
        const paced = !ahead || lastEpochSeconds >= PACE_SECONDS;
        const submit = async (buffer: GPUCommandBuffer, end?: number) => {
          gpu.check();
          gpu.device.queue.submit([buffer]);
          const done = gpu.device.queue.onSubmittedWorkDone();
          if (end !== undefined) done.then(() => show(end), () => {});
          queued.push(done);
          if (paced && queued.length > MAX_QUEUED) await queued.shift();
        };
        // An abort stops the epoch between chunks, unless a deferred commit needs this epoch's
        // end (the weights of the deferred epoch are gone once this one trains): then the epoch
        // finishes and is saved.
        const stopHere = () => signal?.aborted === true && unsaved === null;

        let validate: boolean;
        let cut = false;
        if (ahead) {
          const current = pending ?? encodeEpoch(epoch);
          pending = null;
          for (const [i, c] of current.chunks.entries()) {
            if (stopHere()) {
              optimizer.forgetSteps(current.chunks.slice(i).reduce((n, c) => n + c.steps, 0));
              cut = true;
              break;
            }
            await submit(c.buffer, c.end);
          }
          if (!cut && current.validation) await submit(current.validation);
          validate = current.validation !== null;
        } else {
          // Chunks of steps, each submitted as soon as it is encoded.
          model.train();
          train.startEpoch(epoch - 1);
          for (let b = 0; b < train.batchesPerEpoch; b += chunk) {
            if (stopHere()) {
              cut = true;
              break;
            }
            const c = encodeChunk(epoch, b);
            await submit(c.buffer, c.end);
          }
          validate = validates(epoch);
          if (!cut && validate) await submit(encodeValidation(epoch));
        }
        if (cut) {
          // The epoch is abandoned: the last commit stays what a resume continues from.
          await gpu.sync();
          history.stopped = "aborted";
          break;
        }

        // The one wait of the epoch: every readback in flight together (the Dropout step count
        // too, for the checkpoint's position; a second round trip would cost another ~11 ms).
        const reads: Promise<[LossSummary, LossSummary | null, number[][] | null, number]> = Promise
          .all([
            trainStats.read().catch(labelError(epoch, "training")),
            validate ? valStats.read().catch(labelError(epoch, "validation")) : null,
            validate ? confusion!.read() : null,
            dir ? model.trainingSteps() : 0,
          ]);
        // The readbacks' copies are queued; the next epoch's commands, encoded now, wait
        // unsubmitted.
        if (ahead && epoch < options.epochs && !signal?.aborted) pending = encodeEpoch(epoch + 1);
        const [tr, v, matrix, trainingSteps] = await reads;
        queued.length = 0;
        if (tr.firstNonFiniteBatch !== null) {
          throw new NonFiniteLossError(
            epoch,
            tr.firstNonFiniteBatch,
            // Steps submitted so far: an epoch encoded ahead is not among them.
            optimizer.stepCount - (pending?.steps ?? 0) - tr.batches + tr.firstNonFiniteBatch + 1,
          );
        }
        const record: EpochRecord = { epoch, trainLoss: tr.meanLoss, seconds: 0 };
        if (v !== null && matrix !== null) {
          record.valLoss = v.meanLoss;
          record.valAccuracy = v.accuracy;
          history.confusion = matrix;
        }
        record.seconds = (performance.now() - t0) / 1000;
        lastEpochSeconds = record.seconds;
        history.epochs.push(record);
        done++;
        progress.epochDone({
          ...state,
          batch: train.batchesPerEpoch,
          trainLoss: record.trainLoss,
          valLoss: record.valLoss,
          valAccuracy: record.valAccuracy,
          elapsed: (performance.now() - began) / 1000,
          done,
        });

        let improved = false;
        if (record.valLoss !== undefined) {
          improved = record.valLoss < best;
          if (improved) {
            best = record.valLoss;
            sinceBest = 0;
          } else sinceBest++;
        }
        if (dir) {
          const position: RunPosition = { epoch, trainingSteps, architecture: model.describe() };
          const due = every === 0 || epoch === options.epochs ||
            performance.now() - lastSaved >= every;
          if (due) await save(position, { last: true, best: improved });
          else {
            if (improved) await save(position, { last: false, best: true });
            unsaved = position;
          }
        }
        await options.onEpoch?.(record, history);
        if (options.earlyStopping && sinceBest >= options.earlyStopping.patience) {
          history.stopped = "early-stopping";
          if (unsaved) await save(unsaved, { last: true, best: false });
          if (options.earlyStopping.restoreBest && dir) {
            await loadModel(join(dir, RUN_FILES.best), model);
          }
          break;
        }
      }
    } finally {
      drop();
      progress.close();
      trainStats.dispose();
      valStats.dispose();
      confusion?.dispose();
    }
    // How the run ended, in the exported history; a run that committed nothing leaves no files.
    if (dir && run!.manifestWritten) await writeHistory(dir, history);
    return history;
  }
}
