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
import { StepEncoder } from "../gpu/encoder.ts";
import type { Loader } from "../data/loader.ts";
import type { CrossEntropyLoss, LossSummary } from "../nn/loss.ts";
import { LossStats } from "../nn/loss.ts";
import type { Sequential } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { ConfusionMatrix } from "./confusion.ts";
import { loadLast, loadModel, type RunPosition, saveCheckpoint } from "./checkpoint.ts";
import { type EpochRecord, type History, historyCsv } from "./history.ts";
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
  /** Stops the run between steps; the last checkpoint and history stay intact. */
  signal?: AbortSignal;
  /** Folder for history.json/csv, last.* and best.* checkpoints (written atomically). */
  checkpointDir?: string;
  /**
   * Write `last.*` and the history at most this often (seconds); 0 (default) writes them after
   * every epoch. A deferred epoch is still written when the run ends, stops early or is aborted
   * between epochs; `best.safetensors` is always written when the validation loss improves. Use
   * it where epochs take milliseconds (a fast GPU) and the writes would dominate.
   */
  checkpointSeconds?: number;
  /** Continue from `checkpointDir`'s last checkpoint. */
  resume?: boolean;
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
   * An abort is then honoured between epochs rather than between chunks. Results are identical
   * either way. Default: on for hardware adapters, off for software ones.
   */
  encodeAhead?: boolean;
}

/** One epoch's command buffers, encoded and not yet submitted. */
interface EncodedEpoch {
  /** Training steps in chunks; `end` is the batch count after the chunk (for progress). */
  chunks: { buffer: GPUCommandBuffer; end: number }[];
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
  const ahead = options.encodeAhead ?? !gpu.adapter.fallback;
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
  const trainStats = new LossStats(gpu, "train stats");
  const valStats = new LossStats(gpu, "val stats");
  let confusion = null as ConfusionMatrix | null; // sized by the first validation batch's logits
  const dir = options.checkpointDir;
  let start = 1;
  let best = Infinity;
  let sinceBest = 0;
  if (options.resume && dir) {
    const position = await loadLast(dir, model, optimizer);
    const saved = await readSavedHistory(dir, position.epoch);
    history.epochs = saved.epochs.filter((e) => e.epoch <= position.epoch);
    // The matrix belongs to the saved history's last validation; keep it unless that epoch is
    // about to be trained again (history.json is written before the checkpoint, so it may be ahead).
    if (saved.epochs.every((e) => e.epoch <= position.epoch)) history.confusion = saved.confusion;
    start = position.epoch + 1;
    for (const e of history.epochs) {
      // JSON writes a NaN loss as null: it counts as a validation without improvement.
      if (typeof e.valLoss === "number" && e.valLoss < best) {
        best = e.valLoss;
        sinceBest = 0;
      } else if (e.valLoss !== undefined) sinceBest++;
    }
  }
  if (dir && !options.resume) await Deno.mkdir(dir, { recursive: true });
  const began = performance.now();
  let done = 0;
  const every = Math.max(0, options.checkpointSeconds ?? 0) * 1000;
  let lastSaved = -Infinity;
  // A completed epoch whose last.* checkpoint was deferred; the model still holds its weights
  // until the next epoch starts training.
  let unsaved: RunPosition | null = null;
  const saveLast = async (position: RunPosition, best: boolean) => {
    // History first: a crash before the checkpoint leaves a history that is ahead, which a
    // resume trims; a history behind the checkpoint would lose epochs.
    await writeHistory(dir!, history);
    await saveCheckpoint(dir!, model, optimizer, position, { last: true, best });
    lastSaved = performance.now();
    unsaved = null;
  };
  // Encoding, in pieces both schedules share. Nothing here submits.
  const encodeChunk = (epoch: number, b: number): { buffer: GPUCommandBuffer; end: number } => {
    const enc = new StepEncoder(gpu, `epoch ${epoch}`);
    if (b === 0) trainStats.reset(enc);
    const end = Math.min(train.batchesPerEpoch, b + chunk);
    for (let i = b; i < end; i++) {
      const { x, y } = train.encodeBatchFor(enc, i, model);
      encodeTrainingStep(enc, { model, loss, optimizer }, x, y, trainStats);
    }
    return { buffer: enc.finish(), end };
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
  try {
    for (let epoch = start; epoch <= options.epochs; epoch++) {
      if (signal?.aborted) {
        drop();
        history.stopped = "aborted";
        if (unsaved) await saveLast(unsaved, false);
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
      const submit = (buffer: GPUCommandBuffer, end?: number) => {
        gpu.check();
        gpu.device.queue.submit([buffer]);
        if (end !== undefined) {
          gpu.device.queue.onSubmittedWorkDone().then(() => show(end), () => {});
        }
      };

      let validate: boolean;
      if (ahead) {
        // The whole epoch at once: an abort is honoured between epochs.
        const current = pending ?? encodeEpoch(epoch);
        pending = null;
        for (const c of current.chunks) submit(c.buffer, c.end);
        if (current.validation) submit(current.validation);
        validate = current.validation !== null;
      } else {
        // Chunks of steps, each submitted as soon as it is encoded, without waiting; an abort
        // is honoured between chunks.
        model.train();
        train.startEpoch(epoch - 1);
        for (let b = 0; b < train.batchesPerEpoch; b += chunk) {
          if (signal?.aborted) break;
          const c = encodeChunk(epoch, b);
          submit(c.buffer, c.end);
        }
        if (signal?.aborted) {
          await gpu.sync();
          history.stopped = "aborted";
          break;
        }
        validate = validates(epoch);
        if (validate) submit(encodeValidation(epoch));
      }

      // The one wait of the epoch: every readback in flight together (the Dropout step count
      // too, for the checkpoint's position; a second round trip would cost another ~11 ms).
      const reads: Promise<[LossSummary, LossSummary | null, number[][] | null, number]> = Promise
        .all([
          trainStats.read(),
          validate ? valStats.read() : null,
          validate ? confusion!.read() : null,
          dir ? model.trainingSteps() : 0,
        ]);
      // The readbacks' copies are queued; the next epoch's commands, encoded now, wait unsubmitted.
      if (ahead && epoch < options.epochs && !signal?.aborted) pending = encodeEpoch(epoch + 1);
      const [tr, v, matrix, trainingSteps] = await reads;
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
        if (due) {
          await saveLast(position, improved);
        } else {
          if (improved) {
            await saveCheckpoint(dir, model, optimizer, position, { last: false, best: true });
          }
          unsaved = position;
        }
      }
      await options.onEpoch?.(record, history);
      if (options.earlyStopping && sinceBest >= options.earlyStopping.patience) {
        history.stopped = "early-stopping";
        if (unsaved) await saveLast(unsaved, false);
        if (options.earlyStopping.restoreBest && dir) {
          await loadModel(join(dir, "best.safetensors"), model);
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
  if (dir) await writeHistory(dir, history);
  return history;
}

/** Reads `<dir>/history.json` for a resume at `epoch`; it must hold every epoch up to there. */
async function readSavedHistory(dir: string, epoch: number): Promise<History> {
  const path = join(dir, "history.json");
  let saved: History;
  try {
    saved = JSON.parse(await Deno.readTextFile(path)) as History;
  } catch (error) {
    throw new RangeError(
      `Cannot resume from "${dir}": cannot read "${path}": ${(error as Error).message}`,
    );
  }
  const epochs = Array.isArray(saved?.epochs) ? saved.epochs.map((e) => e?.epoch) : [];
  const covered = epochs.filter((e) => Number.isInteger(e) && e <= epoch);
  if (covered.length !== epoch || covered.some((e, i) => e !== i + 1)) {
    throw new RangeError(
      `Cannot resume from "${dir}": history.json holds epochs up to epoch ${
        covered.at(-1) ?? 0
      } (${covered.length} records) but last.safetensors is at epoch ${epoch}`,
    );
  }
  return saved;
}

/** Writes history.json and history.csv atomically. */
export async function writeHistory(dir: string, history: History): Promise<void> {
  await writeTextFileAtomic(join(dir, "history.json"), JSON.stringify(history, null, 1) + "\n");
  await writeTextFileAtomic(join(dir, "history.csv"), historyCsv(history));
}
