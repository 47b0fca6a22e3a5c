/**
 * `NLLLoss` as PyTorch 1.13 defines it: the negative log-likelihood of u32 labels under
 * log-probabilities [batch, classes] (the output of a log-softmax), with class weights, an ignored
 * label and the "mean" (default) or "sum" reduction. kernels/nll_loss.wgsl computes the
 * denominator, then loss and gradient in one pass per row, and reduces the batch (loss, correct
 * count, bad labels) into a {@link LossStats} on the GPU, as cross-entropy does.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import source from "../../kernels/nll_loss.wgsl" with { type: "text" };
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import { checkReduction, type Loss, LossStats, type Reduction } from "./loss_contract.ts";
import { disposeAll, PerBatch } from "./module.ts";

/**
 * kernels/nll_loss.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts).
 *
 * @example The entry points bind by these names
 * ```ts
 * import { NLL_LOSS } from "./nll_loss.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(NLL_LOSS.bindings.labels, 1);
 * ```
 */
export const NLL_LOSS = {
  name: "nll_loss",
  source,
  bindings: {
    logp: 0,
    labels: 1,
    weights: 2,
    dlogp: 3,
    row_stats: 4,
    p: 5,
    row_stats_in: 6,
    acc: 7,
    denom: 8,
  },
} as const satisfies KernelFamily;
/** D, the mean's denominator (1 for the sum). */
const DENOMINATOR = entryPoint(NLL_LOSS, "denominator", ["labels", "weights", "denom", "p"]);
/** Loss and gradient per row. */
const ROWS = entryPoint(NLL_LOSS, "rows", [
  "logp",
  "labels",
  "weights",
  "dlogp",
  "row_stats",
  "denom",
  "p",
]);
/** The batch's sums into the accumulator (`row_stats_in` is `row_stats`, bound read-only). */
const REDUCE = entryPoint(NLL_LOSS, "reduce", ["row_stats_in", "labels", "acc", "denom", "p"]);
const PARAMS = new ParamsLayout("nll_loss.Params", {
  B: "u32",
  C: "u32",
  ignore: "u32",
  _pad: "u32",
});
const WG = 64;
const RWG = 64;

/**
 * Options of {@link NLLLoss}, as PyTorch's.
 *
 * @example Class weights, and padding rows marked by a label to ignore
 * ```ts
 * import { NLLLoss, type NLLOptions } from "./nll_loss.ts";
 * import { equal } from "node:assert/strict";
 *
 * const options: NLLOptions = { weight: [1, 2, 1], ignoreIndex: 0xffffffff };
 * equal(new NLLLoss(options).ignoreIndex, 0xffffffff);
 * ```
 */
export interface NLLOptions {
  /** A weight per class, finite and >= 0. Default: none (all 1). */
  weight?: number[];
  /**
   * A label whose rows add no loss, no gradient and no weight, as PyTorch's `ignore_index`; any
   * u32, a class included. Default: none (PyTorch's default of -100 matches no u32 label).
   */
  ignoreIndex?: number;
  /** "mean" (divided by the counted rows' weights) or "sum". Default: "mean". */
  reduction?: Reduction;
}

class Buffers {
  readonly grad: Tensor;
  readonly rowStats: Tensor;
  readonly denom: Tensor;
  readonly params: GpuBuffer;

  constructor(gpu: Gpu, batch: number, classes: number, ignore: number) {
    this.grad = Tensor.empty(gpu, [batch, classes], "f32", "nll.dlogp");
    this.rowStats = Tensor.empty(gpu, [2 * batch], "f32", "nll.rows");
    this.denom = Tensor.empty(gpu, [1], "f32", "nll.denom");
    this.params = PARAMS.upload(gpu, { B: batch, C: classes, ignore, _pad: 0 });
  }

  dispose(): void {
    disposeAll(this.grad, this.rowStats, this.denom, this.params);
  }
}

/**
 * `NLLLoss()` on log-probabilities [batch, classes] and u32 labels [batch]. Forward computes the
 * loss and its gradient (one pass per row, after the denominator); backward returns that
 * gradient. A label >= classes that is not the ignored one is flagged on the GPU, and the next
 * `stats.read()` throws a {@link LabelRangeError} naming NLL. The loss owns its buffers and
 * {@link NLLLoss.stats}, whose accuracy is that of the argmax over the counted rows.
 *
 * @example After a log-softmax of one's own
 * ```ts
 * import type { Sequential, StepEncoder, Tensor } from "@wgnn/wgnn";
 * import { NLLLoss } from "./nll_loss.ts";
 *
 * const loss = new NLLLoss({ weight: [1, 1, 4] });
 * function step(enc: StepEncoder, model: Sequential, x: Tensor, labels: Tensor): void {
 *   loss.forward(enc, model.forward(enc, x), labels); // the model ends in a log-softmax
 *   model.backward(enc, loss.backward());
 * }
 * ```
 *
 * @example Options are checked when the loss is built
 * ```ts
 * import { NLLLoss } from "./nll_loss.ts";
 * import { throws } from "node:assert/strict";
 *
 * throws(() => new NLLLoss({ ignoreIndex: -100 }), /ignoreIndex must be a u32/);
 * throws(() => new NLLLoss({ weight: [1, NaN] }), RangeError);
 * ```
 */
export class NLLLoss implements Loss {
  /**
   * True without an ignoreIndex: `fit` then draws the validation confusion matrix, which has no
   * row for an ignored label.
   */
  readonly classifies: boolean;
  /** The class weights, or null for all 1. */
  readonly weight: Float32Array | null;
  /** The ignored label, or null. */
  readonly ignoreIndex: number | null;
  /** The reduction in force. */
  readonly reduction: Reduction;
  #gpu: Gpu | null = null;
  #denominator: KernelCall<typeof DENOMINATOR> | null = null;
  #rows: KernelCall<typeof ROWS> | null = null;
  #reduce: KernelCall<typeof REDUCE> | null = null;
  #weights: Tensor | null = null;
  #classes = 0;
  #buffers: PerBatch<Buffers> | null = null;
  #last: Buffers | null = null;
  #stats: LossStats | null = null;

  /**
   * Declares the loss; buffers are allocated by the first forward. Throws a RangeError for a
   * negative or non-finite weight, an ignoreIndex that is not a u32, or a reduction other than
   * "mean" and "sum".
   */
  constructor(options: NLLOptions = {}) {
    this.reduction = checkReduction("NLLLoss", options.reduction);
    if (options.weight) {
      const bad = options.weight.findIndex((w) => !Number.isFinite(w) || w < 0);
      if (bad >= 0) {
        throw new RangeError(
          `Cannot create NLLLoss: weight[${bad}] must be finite and >= 0: current value is ${
            options.weight[bad]
          }`,
        );
      }
    }
    this.weight = options.weight ? Float32Array.from(options.weight) : null;
    const ignore = options.ignoreIndex;
    if (
      ignore !== undefined && !(Number.isInteger(ignore) && ignore >= 0 && ignore <= 0xffffffff)
    ) {
      throw new RangeError(
        `Cannot create NLLLoss: ignoreIndex must be a u32 (labels are u32; leave it out for PyTorch's -100): current value is ${ignore}`,
      );
    }
    this.ignoreIndex = ignore ?? null;
    this.classifies = this.ignoreIndex === null;
  }

  /** The default accumulator (created with the first forward). */
  get stats(): LossStats {
    if (this.#stats === null) {
      throw new Error("Cannot read NLLLoss stats: no forward was encoded yet");
    }
    return this.#stats;
  }

  #setup(gpu: Gpu, classes: number): void {
    if (this.#gpu === gpu && this.#classes === classes) return;
    if (this.#gpu !== null) {
      throw new RangeError(
        `Cannot run NLLLoss: it was set up for ${this.#classes} classes: current input has ${classes}`,
      );
    }
    if (this.weight && this.weight.length !== classes) {
      throw new RangeError(
        `Cannot run NLLLoss: ${this.weight.length} class weights for ${classes} classes`,
      );
    }
    this.#gpu = gpu;
    this.#classes = classes;
    const constants = {
      WG,
      RWG,
      WEIGHTED: Number(this.weight !== null),
      IGNORE: Number(this.ignoreIndex !== null),
      MEAN: Number(this.reduction === "mean"),
    };
    this.#denominator = new KernelCall(gpu, DENOMINATOR, constants);
    this.#rows = new KernelCall(gpu, ROWS, constants);
    this.#reduce = new KernelCall(gpu, REDUCE, constants);
    // Bound even when unweighted (the entry points declare it); one value is enough then.
    this.#weights = Tensor.from(
      gpu,
      this.weight ?? Float32Array.of(1),
      [this.weight?.length ?? 1],
      "nll.weight",
    );
    const ignore = this.ignoreIndex ?? 0;
    this.#buffers = new PerBatch((batch) => new Buffers(gpu, batch, classes, ignore));
    this.#stats = new LossStats(gpu, "nll.stats");
  }

  /**
   * Encodes loss and gradient for `logp` (log-probabilities [batch, classes] f32) and `labels`
   * ([batch] u32), adding the batch to `stats` (default: {@link NLLLoss.stats}).
   */
  forward(enc: StepEncoder, logp: Tensor, labels: Tensor, stats?: LossStats): void {
    if (logp.shape.length !== 2 || logp.dtype !== "f32") {
      throw new RangeError(
        `Cannot run NLLLoss: the input must be [batch, classes] f32 log-probabilities: current shape is [${
          logp.shape.join(", ")
        }] ${logp.dtype}`,
      );
    }
    const [batch, classes] = logp.shape;
    if (labels.dtype !== "u32" || labels.shape.length !== 1 || labels.shape[0] !== batch) {
      throw new RangeError(
        `Cannot run NLLLoss: labels must be [${batch}] u32: current labels are [${
          labels.shape.join(", ")
        }] ${labels.dtype}`,
      );
    }
    this.#setup(logp.gpu, classes);
    const bufs = this.#buffers!.get(batch);
    const weights = this.#weights!;
    this.#denominator!.encode(enc, [1, 1, 1], {
      labels,
      weights,
      denom: bufs.denom,
      p: bufs.params,
    });
    this.#rows!.encode(enc, grid1d(Math.ceil(batch / WG)), {
      logp,
      labels,
      weights,
      dlogp: bufs.grad,
      row_stats: bufs.rowStats,
      denom: bufs.denom,
      p: bufs.params,
    });
    this.#reduce!.encode(enc, [1, 1, 1], {
      row_stats_in: bufs.rowStats,
      labels,
      acc: (stats ?? this.#stats!).acc,
      denom: bufs.denom,
      p: bufs.params,
    });
    this.#last = bufs;
  }

  /** The gradient of the last forward's reduced loss with respect to the log-probabilities. */
  backward(): Tensor {
    if (this.#last === null) {
      throw new Error("Cannot run NLLLoss backward: no forward was encoded");
    }
    return this.#last.grad;
  }

  /** Frees every buffer. */
  dispose(): void {
    this.#buffers?.dispose();
    disposeAll(this.#weights, this.#stats);
  }
}
