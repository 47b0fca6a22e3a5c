/**
 * What every loss gives `fit`: the {@link Loss} contract, and the GPU-side accumulator its
 * forward adds each batch to ({@link LossStats}, read once per epoch as a {@link LossSummary}).
 *
 * A loss computes its value and its gradient in one pass and reduces the batch on the GPU into a
 * {@link LossStats}; `backward()` returns the gradient that seeds `model.backward`. Accuracy is a
 * classification measure: losses on u32 labels (cross-entropy, NLL) add their correct counts,
 * the others mark their batches as having none, and the summary's accuracy is then NaN.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { Tensor } from "../tensor.ts";

/**
 * A loss as `fit` (and `encodeTrainingStep`) uses it. {@link CrossEntropyLoss},
 * {@link NLLLoss}, {@link MSELoss}, {@link L1Loss} and {@link BCEWithLogitsLoss} implement it.
 *
 * @example A training step for any loss
 * ```ts
 * import type { Sequential, StepEncoder, Tensor } from "@wgnn/wgnn";
 * import type { Loss } from "./loss_contract.ts";
 *
 * function lossAndGradient(
 *   enc: StepEncoder,
 *   model: Sequential,
 *   loss: Loss,
 *   x: Tensor,
 *   target: Tensor,
 * ): void {
 *   loss.forward(enc, model.forward(enc, x), target); // adds the batch to the loss's stats
 *   model.backward(enc, loss.backward());
 * }
 * ```
 */
export interface Loss {
  /**
   * True when the output holds one score per class and the target u32 labels in [0, classes):
   * the stats then carry accuracy, and `fit` adds the validation confusion matrix to the history.
   */
  readonly classifies: boolean;
  /**
   * Encodes the loss of `output` against `target` and its gradient, adding the batch to `stats`
   * (default: the loss's own accumulator). Waits for nothing.
   */
  forward(enc: StepEncoder, output: Tensor, target: Tensor, stats?: LossStats): void;
  /** The gradient of the last forward's reduced loss with respect to its output. */
  backward(): Tensor;
}

/**
 * PyTorch's `reduction` of a loss: "mean" (the default) or "sum". PyTorch's "none" (a loss per
 * element) is not offered: the batch's value is reduced on the GPU into a {@link LossStats}, and
 * a tensor of losses would have neither a place there nor a scalar to seed backward with.
 *
 * @example Summed rather than averaged
 * ```ts
 * import { MSELoss } from "./elementwise_loss.ts";
 * import type { Reduction } from "./loss_contract.ts";
 * import { equal } from "node:assert/strict";
 *
 * const reduction: Reduction = "sum";
 * equal(new MSELoss({ reduction }).reduction, "sum");
 * ```
 */
export type Reduction = "mean" | "sum";

/**
 * Checks a `reduction` option (undefined means "mean"), naming the loss being created in the
 * RangeError it throws otherwise.
 *
 * @example "none" is refused, and says why
 * ```ts
 * import { checkReduction } from "./loss_contract.ts";
 * import { equal, throws } from "node:assert/strict";
 *
 * equal(checkReduction("MSELoss", undefined), "mean");
 * throws(() => checkReduction("MSELoss", "none"), /does not accumulate/);
 * ```
 */
export function checkReduction(loss: string, reduction: unknown): Reduction {
  if (reduction === undefined) return "mean";
  if (reduction === "mean" || reduction === "sum") return reduction;
  const why = reduction === "none"
    ? ` ("none" gives a loss per element, which the GPU-side LossStats does not accumulate)`
    : "";
  throw new RangeError(
    `Cannot create ${loss}: reduction must be "mean" or "sum"${why}: current value is ${
      JSON.stringify(reduction) ?? String(reduction)
    }`,
  );
}

/**
 * Floats in a {@link LossStats} accumulator: [Σ loss, batches, Σ correct, samples, last loss,
 * first non-finite batch + 1, batch counter, batches without accuracy, first bad-label batch + 1,
 * its label >> 16, its label & 0xffff, its class count, the loss that saw it (0 cross-entropy,
 * 1 NLL), 3 pad]. Each kernel's header says which it writes.
 */
const ACC_FLOATS = 16;

/**
 * A loss that checks its labels: "cross-entropy" ({@link CrossEntropyLoss}) or "nll"
 * ({@link NLLLoss}), as a {@link LabelRangeError} names it.
 *
 * @example Say which loss saw the label
 * ```ts
 * import { LabelRangeError } from "./loss_contract.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(new LabelRangeError(0, 12, 10, "nll").loss, "nll");
 * ```
 */
export type LabelLoss = "cross-entropy" | "nll";

/** The losses that check labels, by the code their kernels write at `acc[12]`. */
const LABEL_LOSSES: readonly LabelLoss[] = ["cross-entropy", "nll"];

/**
 * What a {@link LossStats} holds, read back with {@link LossStats.read}. A batch with a label at
 * or above the class count has no summary: `read` throws a {@link LabelRangeError} instead.
 *
 * @example An epoch's line of log
 * ```ts
 * import type { LossSummary } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * function logLine(s: LossSummary): string {
 *   if (s.firstNonFiniteBatch !== null) return `loss diverged at batch ${s.firstNonFiniteBatch}`;
 *   const acc = Number.isNaN(s.accuracy) ? "" : ` acc ${(100 * s.accuracy).toFixed(1)}%`;
 *   return `loss ${s.meanLoss.toFixed(3)}${acc}`;
 * }
 * const s: LossSummary = {
 *   meanLoss: 1.5,
 *   batches: 2,
 *   accuracy: 0.25,
 *   samples: 128,
 *   lastLoss: 1.4,
 *   firstNonFiniteBatch: null,
 * };
 * equal(logLine(s), "loss 1.500 acc 25.0%");
 * equal(logLine({ ...s, accuracy: NaN }), "loss 1.500"); // a regression loss
 * ```
 */
export interface LossSummary {
  /** Mean of the batch losses since the last reset (NaN when no batch). */
  meanLoss: number;
  /** Batches since the last reset. */
  batches: number;
  /**
   * Fraction of rows whose argmax equals the label; NaN when no row was counted or a batch came
   * from a loss without accuracy (MSE, L1, BCE with logits).
   */
  accuracy: number;
  /** Rows since the last reset (NLLLoss leaves out rows whose label is its ignoreIndex). */
  samples: number;
  /** Loss of the most recent batch. */
  lastLoss: number;
  /** 0-based index (since the reset) of the first batch with a NaN/Inf loss, or null. */
  firstNonFiniteBatch: number | null;
}

/**
 * Thrown by {@link LossStats.read} when a batch held a label at or above the number of classes
 * (PyTorch raises "Target 12 is out of bounds" at once; here the GPU flags it and the read that
 * follows reports the first such batch since the reset). Such a row added no loss and no gradient.
 *
 * @example Tell a bad label from other failures
 * ```ts
 * import { LabelRangeError, type LossStats, type LossSummary } from "@wgnn/wgnn";
 *
 * async function readOrExplain(stats: LossStats): Promise<LossSummary | string> {
 *   try {
 *     return await stats.read();
 *   } catch (e) {
 *     if (e instanceof LabelRangeError) return `label ${e.label} in batch ${e.batch}`;
 *     throw e;
 *   }
 * }
 * ```
 */
export class LabelRangeError extends RangeError {
  /** 0-based index (since the reset) of the first batch with an out-of-range label. */
  readonly batch: number;
  /** The first out-of-range label of that batch. */
  readonly label: number;
  /** The number of classes of that batch's input. */
  readonly classes: number;
  /** The loss that saw the label. */
  readonly loss: LabelLoss;

  /** An error naming the batch, the label, the class count and the loss. */
  constructor(batch: number, label: number, classes: number, loss: LabelLoss = "cross-entropy") {
    const [what, input] = loss === "nll"
      ? ["NLL loss", "log-probabilities"]
      : ["cross-entropy", "logits"];
    super(
      `Cannot compute ${what}: batch ${batch} has label ${label}, but the ${input} have ${classes} classes`,
    );
    this.name = "LabelRangeError";
    this.batch = batch;
    this.label = label;
    this.classes = classes;
    this.loss = loss;
  }
}

/**
 * A GPU-side accumulator of batch losses and correct predictions: every loss's forward adds its
 * batch on the GPU, and the total is read once per epoch instead of once per step. The owner
 * disposes it (a loss's own `stats` belongs to the loss).
 *
 * @example A separate accumulator for validation
 * ```ts
 * import { LossStats, type LossSummary, type Sequential } from "@wgnn/wgnn";
 * import { StepEncoder, type Tensor } from "@wgnn/wgnn";
 * import type { Loss } from "./loss_contract.ts";
 *
 * async function validate(
 *   model: Sequential,
 *   loss: Loss,
 *   batches: [Tensor, Tensor][],
 * ): Promise<LossSummary> {
 *   const gpu = batches[0][0].gpu;
 *   const stats = new LossStats(gpu, "validation"); // starts at zero
 *   try {
 *     model.eval();
 *     const enc = new StepEncoder(gpu);
 *     for (const [x, y] of batches) loss.forward(enc, model.forward(enc, x), y, stats);
 *     enc.submit();
 *     return await stats.read(); // the only wait
 *   } finally {
 *     model.train();
 *     stats.dispose();
 *   }
 * }
 * ```
 */
export class LossStats {
  /** The accumulator's floats (the layout is in the kernels' headers, e.g. cross_entropy.wgsl). */
  readonly acc: Tensor;

  /** Allocates a zeroed accumulator on `gpu`. */
  constructor(gpu: Gpu, label = "loss stats") {
    this.acc = Tensor.empty(gpu, [ACC_FLOATS], "f32", label);
  }

  /** Encodes a reset (a clearBuffer, ordered with the steps around it). */
  reset(enc: StepEncoder): void {
    enc.commands().clearBuffer(this.acc.buffer, this.acc.byteOffset, this.acc.byteLength);
  }

  /**
   * Reads the accumulator (waits for the GPU: call once per epoch or per display refresh).
   * Throws a {@link LabelRangeError} when a batch since the reset held a label >= its classes.
   */
  async read(): Promise<LossSummary> {
    const a = await this.acc.toFloat32();
    if (a[8] > 0) {
      throw new LabelRangeError(a[8] - 1, a[9] * 65536 + a[10], a[11], LABEL_LOSSES[a[12]]);
    }
    return {
      meanLoss: a[1] > 0 ? a[0] / a[1] : NaN,
      batches: a[1],
      accuracy: a[3] > 0 && a[7] === 0 ? a[2] / a[3] : NaN,
      samples: a[3],
      lastLoss: a[4],
      firstNonFiniteBatch: a[5] > 0 ? a[5] - 1 : null,
    };
  }

  /** Frees the accumulator. */
  dispose(): void {
    this.acc.dispose();
  }
}
