/**
 * How `fit` gives an epoch to the GPU: the steps encoded a chunk at a time (gather, forward,
 * loss, backward, optimizer update per step), then the validation pass, submitted without
 * waiting, and one readback of the epoch's statistics.
 *
 * Two schedules give bit-identical results:
 * - eager (software adapters): each chunk is encoded and submitted in turn;
 * - encode-ahead (hardware adapters): the next epoch is encoded while the GPU runs this one and
 *   submitted once this epoch's results are in, so checkpoints and decisions still see this
 *   epoch's weights. An epoch encoded ahead and never submitted is dropped, and its optimizer
 *   steps are taken back.
 *
 * Pacing: at most {@link MAX_QUEUED} chunks wait on the GPU, so an abort is seen (and a signal
 * delivered) within a chunk of steps rather than after a whole queued epoch. With encode-ahead,
 * epochs shorter than {@link PACE_SECONDS} are queued whole: each wait costs >= 11 ms in Deno, and
 * the whole epoch takes less.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { StepEncoder } from "../gpu/encoder.ts";
import type { Loss, LossSummary } from "../nn/loss_contract.ts";
import { LabelRangeError, LossStats } from "../nn/loss_contract.ts";
import type { Sequential } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import type { Tensor } from "../tensor.ts";
import { ConfusionMatrix } from "./confusion.ts";
import { encodeTrainingStep, type StepHooks } from "./step.ts";

/** Chunks of steps queued on the GPU at most, where epochs are long enough to pace. */
export const MAX_QUEUED = 2;
/** With encode-ahead, epochs at least this long (seconds) are paced; shorter ones queue whole. */
export const PACE_SECONDS = 0.25;

/** A chunk of training steps, encoded: `end` is the batch count after it (for progress). */
interface EncodedChunk {
  buffer: GPUCommandBuffer;
  end: number;
  steps: number;
}

/** One epoch's command buffers, encoded and not yet submitted. */
interface EncodedEpoch {
  chunks: EncodedChunk[];
  /** The validation pass, or null when this epoch does not validate. */
  validation: GPUCommandBuffer | null;
  /** Optimizer steps encoded (taken back if the epoch is dropped). */
  steps: number;
}

/**
 * The batches `fit` trains or validates on: a `Loader` (CIFAR-10 images and u32 labels), or any
 * source of GPU batches whose `y` is the target its loss takes (u32 labels for a classification
 * loss, an f32 tensor of the output's shape for a regression loss).
 *
 * @example A fixed list of batches, already on the GPU
 * ```ts
 * import type { Tensor } from "@wgnn/wgnn";
 * import type { BatchSource } from "./schedule.ts";
 *
 * function fixedBatches(batches: { x: Tensor; y: Tensor }[]): BatchSource {
 *   return {
 *     batchesPerEpoch: batches.length,
 *     startEpoch() {}, // same order every epoch
 *     encodeBatchFor: (_enc, index) => batches[index],
 *   };
 * }
 * ```
 */
export interface BatchSource {
  /** Batches per epoch. */
  readonly batchesPerEpoch: number;
  /** Makes epoch `epoch` (0-based) current: its order and draws, uploaded without waiting. */
  startEpoch(epoch: number): void;
  /**
   * Encodes batch `index` of the current epoch where `model` reads it (a Loader may fill the
   * first layer's staging texture) and returns its inputs `x` and targets `y`.
   */
  encodeBatchFor(enc: StepEncoder, index: number, model: Sequential): { x: Tensor; y: Tensor };
}

/** What {@link EpochSchedule} trains. */
export interface ScheduleParts {
  model: Sequential;
  loss: Loss;
  optimizer: Optimizer;
  train: BatchSource;
  val?: BatchSource;
  /** The run's last epoch (always validated). */
  epochs: number;
  /** Validate every this many epochs. */
  validationFreq: number;
  /** Batches per chunk (per submission). */
  stepsPerChunk: number;
  /**
   * Batches per optimizer step (gradient accumulation): the gradients of each window of this
   * many batches are summed, and the optimizer steps at the window's last batch and at the
   * epoch's last. Default: 1.
   */
  accumulate?: number;
  /** Encode each epoch ahead (see the module doc). */
  encodeAhead: boolean;
  /**
   * Called before each chunk of the eager schedule is encoded and submitted, with the epoch
   * (1-based) and the chunk's first batch: a per-step learning-rate scheduler sets the rate here
   * (with one step per chunk). Not called with encode-ahead. Default: none.
   */
  beforeChunk?: (epoch: number, batch: number) => void;
  /** The caller's GPU work in each step (`fit`'s `hooks`). Default: none. */
  hooks?: StepHooks;
}

/** An epoch's results, read back in one round trip. */
export interface EpochReadout {
  train: LossSummary;
  /**
   * Validation statistics and, for a loss that classifies, the confusion matrix, when the epoch
   * validated.
   */
  val: ValidationReadout | null;
  /** The model's training-step count after the epoch (keys Dropout masks). */
  trainingSteps: number;
}

/**
 * What a validation pass measured: the loss statistics and, for a loss that classifies, the
 * confusion matrix (rows true labels, columns predictions).
 */
export interface ValidationReadout {
  /** The loss statistics (mean loss, accuracy, samples, ...). */
  summary: LossSummary;
  /** counts[true label][predicted label], or null for a loss that does not classify. */
  confusion: number[][] | null;
}

/**
 * The forward-only pass of a validation, shared by `fit` and `evaluate`: each batch of a
 * source's current epoch through the model and the loss, into GPU-side stats and, for a loss
 * that classifies, a confusion matrix sized by the first batch's logits. The caller sets eval
 * mode and starts the source's epoch; the pass's buffers are made once and reused.
 */
export class ValidationPass {
  /** The loss statistics, reset at the start of each encoded pass. */
  readonly stats: LossStats;
  readonly #gpu: Gpu;
  // Made at the first pass of a loss that classifies; a loss that does not classify has none.
  #confusion: ConfusionMatrix | null = null;

  /** Allocates the statistics accumulator on `gpu`. */
  constructor(gpu: Gpu, label = "validation stats") {
    this.#gpu = gpu;
    this.stats = new LossStats(gpu, label);
  }

  /** Encodes the pass over every batch of `source`'s current epoch. Waits for nothing. */
  encode(enc: StepEncoder, model: Sequential, loss: Loss, source: BatchSource): void {
    this.stats.reset(enc);
    for (let i = 0; i < source.batchesPerEpoch; i++) {
      const { x, y } = source.encodeBatchFor(enc, i, model);
      const logits = model.forward(enc, x);
      loss.forward(enc, logits, y, this.stats);
      if (!loss.classifies) continue;
      if (i === 0) {
        this.#confusion ??= new ConfusionMatrix(this.#gpu, logits.shape[1]);
        this.#confusion.reset(enc);
      }
      this.#confusion!.add(enc, logits, y);
    }
  }

  /**
   * Reads the last pass (one round trip: both readbacks in flight together). The confusion
   * matrix is null when the loss does not classify. A bad label throws a `LabelRangeError`.
   */
  async read(): Promise<ValidationReadout> {
    const [summary, confusion] = await Promise.all([
      this.stats.read(),
      this.#confusion?.read() ?? null,
    ]);
    return { summary, confusion };
  }

  /** Frees the statistics and the confusion matrix. */
  dispose(): void {
    this.stats.dispose();
    this.#confusion?.dispose();
  }
}

/** The eager or encode-ahead schedule of one `fit`, with its GPU-side statistics. */
export class EpochSchedule {
  readonly #p: ScheduleParts;
  readonly #gpu: Gpu;
  readonly #trainStats: LossStats;
  readonly #validation: ValidationPass;
  #pending: EncodedEpoch | null = null;
  #queued: Promise<unknown>[] = [];
  #lastEpochSeconds = Infinity;
  // An error a running-loss read met (the GPU's check hands each error out once): thrown next.
  #runningError: unknown = null;
  #disposed = false;

  /** Allocates the statistics accumulators on `gpu`. */
  constructor(gpu: Gpu, parts: ScheduleParts) {
    this.#gpu = gpu;
    this.#p = parts;
    this.#trainStats = new LossStats(gpu, "train stats");
    this.#validation = new ValidationPass(gpu, "val stats");
  }

  /** Optimizer steps encoded ahead and not yet submitted. */
  get pendingSteps(): number {
    return this.#pending?.steps ?? 0;
  }

  #validates(epoch: number): boolean {
    return this.#p.val !== undefined &&
      (epoch % this.#p.validationFreq === 0 || epoch === this.#p.epochs);
  }

  /** Optimizer steps per epoch: one per window of `accumulate` batches (the last may be short). */
  get stepsPerEpoch(): number {
    return Math.ceil(this.#p.train.batchesPerEpoch / (this.#p.accumulate ?? 1));
  }

  #encodeChunk(epoch: number, b: number): EncodedChunk {
    const { model, loss, optimizer, train } = this.#p;
    const k = this.#p.accumulate ?? 1;
    const batches = train.batchesPerEpoch;
    const enc = new StepEncoder(this.#gpu, `epoch ${epoch}`);
    if (b === 0) this.#trainStats.reset(enc);
    const end = Math.min(batches, b + this.#p.stepsPerChunk);
    let steps = 0;
    for (let i = b; i < end; i++) {
      const { x, y } = train.encodeBatchFor(enc, i, model);
      const window = { first: i % k === 0, last: (i + 1) % k === 0 || i === batches - 1 };
      encodeTrainingStep(enc, { model, loss, optimizer }, x, y, this.#trainStats, this.#p.hooks, {
        epoch,
        batch: i,
      }, window);
      if (window.last) steps++;
    }
    return { buffer: enc.finish(), end, steps };
  }

  /** Validation: eval mode, forward only. */
  #encodeValidation(epoch: number): GPUCommandBuffer {
    const { model, loss } = this.#p;
    const val = this.#p.val!;
    model.eval();
    val.startEpoch(epoch - 1);
    const enc = new StepEncoder(this.#gpu, `validation ${epoch}`);
    this.#validation.encode(enc, model, loss, val);
    return enc.finish();
  }

  #encodeEpoch(epoch: number): EncodedEpoch {
    const { model, train } = this.#p;
    model.train();
    train.startEpoch(epoch - 1);
    const chunks = [];
    for (let b = 0; b < train.batchesPerEpoch; b += this.#p.stepsPerChunk) {
      chunks.push(this.#encodeChunk(epoch, b));
    }
    return {
      chunks,
      validation: this.#validates(epoch) ? this.#encodeValidation(epoch) : null,
      steps: chunks.reduce((n, c) => n + c.steps, 0),
    };
  }

  #throwRunningError(): void {
    const error = this.#runningError;
    this.#runningError = null;
    if (error !== null) throw error;
  }

  /**
   * Reads the training statistics of the epoch under way so far, for a progress display (one
   * readback; the step loop never waits on it). A GPU error it meets is thrown again by the
   * next submit or {@link EpochSchedule.read}; a bad label is left to the epoch's own read.
   */
  async readRunningLoss(): Promise<{ meanLoss: number; batches: number }> {
    if (this.#disposed) throw new Error("Cannot read the running loss: the schedule is disposed");
    try {
      const s = await this.#trainStats.read();
      return { meanLoss: s.meanLoss, batches: s.batches };
    } catch (error) {
      if (!(error instanceof LabelRangeError)) this.#runningError ??= error;
      throw error;
    }
  }

  async #submit(buffer: GPUCommandBuffer, onDone?: () => void): Promise<void> {
    const gpu = this.#gpu;
    this.#throwRunningError();
    gpu.check();
    gpu.device.queue.submit([buffer]);
    const done = gpu.device.queue.onSubmittedWorkDone();
    if (onDone) done.then(onDone, () => {});
    this.#queued.push(done);
    const paced = !this.#p.encodeAhead || this.#lastEpochSeconds >= PACE_SECONDS;
    if (paced && this.#queued.length > MAX_QUEUED) await this.#queued.shift();
  }

  /**
   * Submits epoch `epoch`'s steps and, when it validates, its validation pass. `stop` is asked
   * before each chunk: when it says so, the rest of the epoch is not submitted (its encoded steps
   * are taken back) and the call returns false after the GPU has finished what was submitted.
   * `progress(batch)` is called as each chunk completes on the GPU.
   */
  async submitEpoch(
    epoch: number,
    stop: () => boolean,
    progress: (batch: number) => void,
  ): Promise<boolean> {
    const { train, optimizer } = this.#p;
    let cut = false;
    if (this.#p.encodeAhead) {
      const current = this.#pending ?? this.#encodeEpoch(epoch);
      this.#pending = null;
      for (const [i, c] of current.chunks.entries()) {
        if (stop()) {
          optimizer.forgetSteps(current.chunks.slice(i).reduce((n, c) => n + c.steps, 0));
          cut = true;
          break;
        }
        await this.#submit(c.buffer, () => progress(c.end));
      }
      if (!cut && current.validation) await this.#submit(current.validation);
    } else {
      this.#p.model.train();
      train.startEpoch(epoch - 1);
      for (let b = 0; b < train.batchesPerEpoch; b += this.#p.stepsPerChunk) {
        if (stop()) {
          cut = true;
          break;
        }
        this.#p.beforeChunk?.(epoch, b);
        const c = this.#encodeChunk(epoch, b);
        await this.#submit(c.buffer, () => progress(c.end));
      }
      if (!cut && this.#validates(epoch)) await this.#submit(this.#encodeValidation(epoch));
    }
    if (cut) await this.#gpu.sync();
    return !cut;
  }

  /**
   * Reads epoch `epoch`'s results (the one wait of the epoch: every readback in flight together,
   * the Dropout step count too when `withSteps`). With encode-ahead, the next epoch is encoded
   * while the readbacks are in flight, unless `last`. A bad label seen by the loss is rethrown
   * naming the epoch and the pass.
   */
  async read(epoch: number, o: { withSteps: boolean; encodeNext: boolean }): Promise<EpochReadout> {
    this.#throwRunningError();
    const validated = this.#validates(epoch);
    const reads = Promise.all([
      this.#trainStats.read().catch(labelError(epoch, "training")),
      validated ? this.#validation.read().catch(labelError(epoch, "validation")) : null,
      o.withSteps ? this.#p.model.trainingSteps() : 0,
    ]);
    // The readbacks' copies are queued; the next epoch's commands, encoded now, wait unsubmitted.
    if (this.#p.encodeAhead && o.encodeNext) this.#pending = this.#encodeEpoch(epoch + 1);
    const [train, val, trainingSteps] = await reads;
    this.#queued = [];
    return { train, val, trainingSteps };
  }

  /** Records how long the epoch took (long epochs are paced). */
  epochTook(seconds: number): void {
    this.#lastEpochSeconds = seconds;
  }

  /** Drops an epoch encoded ahead, taking its steps back. */
  drop(): void {
    if (this.#pending) this.#p.optimizer.forgetSteps(this.#pending.steps);
    this.#pending = null;
  }

  /** Drops what is pending and frees the statistics. */
  dispose(): void {
    this.drop();
    this.#disposed = true;
    this.#trainStats.dispose();
    this.#validation.dispose();
  }
}

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
