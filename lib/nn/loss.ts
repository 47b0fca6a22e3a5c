/**
 * Cross-entropy on logits with PyTorch's 'mean' reduction, optional class weights and label
 * smoothing: a {@link Loss} (lib/nn/loss_contract.ts). Loss and gradient are computed in one pass
 * per row; a one-workgroup reduction adds the batch's loss and correct count to a
 * {@link LossStats} accumulator on the GPU, which is read once per epoch instead of once per
 * step. A label outside [0, classes) is flagged there too, and {@link LossStats.read} throws a
 * {@link LabelRangeError} for it.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import crossEntropySource from "../../kernels/cross_entropy.wgsl" with { type: "text" };
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import { LossStats } from "./loss_contract.ts";
import type { Loss } from "./loss_contract.ts";
import { disposeAll, PerBatch } from "./module.ts";

// The contract and the accumulator moved to loss_contract.ts; importers of this file keep them.
export { LabelRangeError, LossStats } from "./loss_contract.ts";
export type { LossSummary } from "./loss_contract.ts";

/**
 * kernels/cross_entropy.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts).
 */
export const CROSS_ENTROPY = {
  name: "cross_entropy",
  source: crossEntropySource,
  bindings: {
    logits: 0,
    labels: 1,
    weights: 2,
    dlogits: 3,
    row_stats: 4,
    p: 5,
    row_stats_in: 6,
    acc: 7,
  },
} as const satisfies KernelFamily;
/** Loss and gradient per row. */
const ROWS = entryPoint(CROSS_ENTROPY, "rows", [
  "logits",
  "labels",
  "weights",
  "dlogits",
  "row_stats",
  "p",
]);
/** The batch's sums into the accumulator (`row_stats_in` is `row_stats`, bound read-only). */
const REDUCE = entryPoint(CROSS_ENTROPY, "reduce", ["row_stats_in", "labels", "acc", "p"]);
const CE_PARAMS = new ParamsLayout("cross_entropy.Params", {
  B: "u32",
  C: "u32",
  smoothing: "f32",
  _pad: "u32",
});
const WG = 64;
const RWG = 64;

/**
 * Options of {@link CrossEntropyLoss}, as PyTorch's.
 *
 * @example Label smoothing and class weights
 * ```ts
 * import { CrossEntropyLoss, type CrossEntropyOptions } from "@wgnn/wgnn";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const options: CrossEntropyOptions = { labelSmoothing: 0.1, weight: [1, 2] };
 * const loss = new CrossEntropyLoss(options);
 * equal(loss.labelSmoothing, 0.1);
 * deepEqual(loss.weight, new Float32Array([1, 2]));
 * ```
 */
export interface CrossEntropyOptions {
  /** A weight per class. Default: none (all 1). */
  weight?: number[];
  /** Label smoothing ε in [0, 1]. Default: 0. */
  labelSmoothing?: number;
}

class LossBuffers {
  readonly grad: Tensor;
  readonly rowStats: Tensor;
  readonly params: GpuBuffer;

  constructor(gpu: Gpu, batch: number, classes: number, smoothing: number) {
    this.grad = Tensor.empty(gpu, [batch, classes], "f32", "loss.dlogits");
    this.rowStats = Tensor.empty(gpu, [2 * batch], "f32", "loss.rows");
    this.params = CE_PARAMS.upload(gpu, { B: batch, C: classes, smoothing, _pad: 0 });
  }

  dispose(): void {
    disposeAll(this.grad, this.rowStats, this.params);
  }
}

/**
 * `CrossEntropyLoss()` on logits [batch, classes] and u32 labels [batch], with PyTorch's 'mean'
 * reduction. Forward computes the loss and its gradient in one pass; backward returns that
 * gradient. The loss owns its buffers and {@link CrossEntropyLoss.stats}.
 *
 * @example One training step
 * ```ts
 * import { CrossEntropyLoss, type Sequential, type StepEncoder, type Tensor } from "@wgnn/wgnn";
 *
 * const loss = new CrossEntropyLoss();
 * function lossAndGradient(enc: StepEncoder, model: Sequential, x: Tensor, y: Tensor): void {
 *   loss.forward(enc, model.forward(enc, x), y); // adds the batch to loss.stats
 *   model.backward(enc, loss.backward());
 * }
 * ```
 *
 * @example Options are checked when the loss is built
 * ```ts
 * import { CrossEntropyLoss } from "@wgnn/wgnn";
 * import { throws } from "node:assert/strict";
 *
 * throws(() => new CrossEntropyLoss({ labelSmoothing: 2 }), RangeError);
 * throws(() => new CrossEntropyLoss({ weight: [1, -1] }), RangeError);
 * ```
 */
export class CrossEntropyLoss implements Loss {
  /** True: the stats carry accuracy, and `fit` draws the validation confusion matrix. */
  readonly classifies = true;
  /** Label smoothing ε. */
  readonly labelSmoothing: number;
  /** The class weights, or null for all 1. */
  readonly weight: Float32Array | null;
  #gpu: Gpu | null = null;
  #rows: KernelCall<typeof ROWS> | null = null;
  #reduce: KernelCall<typeof REDUCE> | null = null;
  #weights: Tensor | null = null;
  #classes = 0;
  #buffers: PerBatch<LossBuffers> | null = null;
  #last: LossBuffers | null = null;
  #stats: LossStats | null = null;

  /**
   * Declares the loss; buffers are allocated by the first forward. Throws a RangeError for a
   * smoothing outside [0, 1] or a negative or non-finite weight.
   */
  constructor(options: CrossEntropyOptions = {}) {
    const eps = options.labelSmoothing ?? 0;
    if (!(eps >= 0 && eps <= 1)) {
      throw new RangeError(
        `Cannot create CrossEntropyLoss: labelSmoothing must be in [0, 1]: current value is ${eps}`,
      );
    }
    this.labelSmoothing = eps;
    if (options.weight) {
      const bad = options.weight.findIndex((w) => !Number.isFinite(w) || w < 0);
      if (bad >= 0) {
        throw new RangeError(
          `Cannot create CrossEntropyLoss: weight[${bad}] must be finite and >= 0: current value is ${
            options.weight[bad]
          }`,
        );
      }
    }
    this.weight = options.weight ? Float32Array.from(options.weight) : null;
  }

  /** The default accumulator (created with the first forward). */
  get stats(): LossStats {
    if (this.#stats === null) {
      throw new Error("Cannot read CrossEntropyLoss stats: no forward was encoded yet");
    }
    return this.#stats;
  }

  #setup(gpu: Gpu, classes: number): void {
    if (this.#gpu === gpu && this.#classes === classes) return;
    if (this.#gpu !== null) {
      throw new RangeError(
        `Cannot run CrossEntropyLoss: it was set up for ${this.#classes} classes: current logits have ${classes}`,
      );
    }
    if (this.weight && this.weight.length !== classes) {
      throw new RangeError(
        `Cannot run CrossEntropyLoss: ${this.weight.length} class weights for ${classes} classes`,
      );
    }
    this.#gpu = gpu;
    this.#classes = classes;
    const constants = { WG, RWG, WEIGHTED: Number(this.weight !== null) };
    this.#rows = new KernelCall(gpu, ROWS, constants);
    this.#reduce = new KernelCall(gpu, REDUCE, constants);
    this.#weights = Tensor.from(
      gpu,
      this.weight ?? new Float32Array(classes).fill(1),
      [classes],
      "loss.weight",
    );
    this.#buffers = new PerBatch((batch) =>
      new LossBuffers(gpu, batch, classes, this.labelSmoothing)
    );
    this.#stats = new LossStats(gpu, "loss.stats");
  }

  /**
   * Encodes loss and gradient for `logits` and `labels`, adding the batch to `stats`
   * (default: {@link CrossEntropyLoss.stats}). A label >= classes is not read past the logits:
   * its row adds no loss and no gradient, and the next `stats.read()` throws a
   * {@link LabelRangeError} naming the batch.
   */
  forward(enc: StepEncoder, logits: Tensor, labels: Tensor, stats?: LossStats): void {
    if (logits.shape.length !== 2 || logits.dtype !== "f32") {
      throw new RangeError(
        `Cannot run CrossEntropyLoss: logits must be [batch, classes] f32: current shape is [${
          logits.shape.join(", ")
        }] ${logits.dtype}`,
      );
    }
    const [batch, classes] = logits.shape;
    if (labels.dtype !== "u32" || labels.shape.length !== 1 || labels.shape[0] !== batch) {
      throw new RangeError(
        `Cannot run CrossEntropyLoss: labels must be [${batch}] u32: current labels are [${
          labels.shape.join(", ")
        }] ${labels.dtype}`,
      );
    }
    this.#setup(logits.gpu, classes);
    const bufs = this.#buffers!.get(batch);
    this.#rows!.encode(enc, grid1d(Math.ceil(batch / WG)), {
      logits,
      labels,
      weights: this.#weights!,
      dlogits: bufs.grad,
      row_stats: bufs.rowStats,
      p: bufs.params,
    });
    this.#reduce!.encode(enc, [1, 1, 1], {
      row_stats_in: bufs.rowStats,
      labels,
      acc: (stats ?? this.#stats!).acc,
      p: bufs.params,
    });
    this.#last = bufs;
  }

  /** The gradient of the last forward's mean loss with respect to the logits. */
  backward(): Tensor {
    if (this.#last === null) {
      throw new Error("Cannot run CrossEntropyLoss backward: no forward was encoded");
    }
    return this.#last.grad;
  }

  /** Frees every buffer. */
  dispose(): void {
    this.#buffers?.dispose();
    disposeAll(this.#weights, this.#stats);
  }
}
