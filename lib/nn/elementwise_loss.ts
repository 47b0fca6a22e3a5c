/**
 * Losses between an output and an f32 target of the same shape, as PyTorch 1.13 defines them:
 * {@link MSELoss}, {@link L1Loss} and {@link BCEWithLogitsLoss}, each with the "mean" (default)
 * or "sum" reduction. One kernel family (kernels/elementwise_loss.wgsl) computes loss and
 * gradient in one pass per element and reduces the batch on the GPU into a {@link LossStats},
 * as cross-entropy does; their batches carry no accuracy, so the stats report NaN for it.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import source from "../../kernels/elementwise_loss.wgsl" with { type: "text" };
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import { checkReduction, type Loss, LossStats, type Reduction } from "./loss_contract.ts";
import { disposeAll, PerBatch } from "./module.ts";

/**
 * kernels/elementwise_loss.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts).
 *
 * @example The entry points bind by these names
 * ```ts
 * import { ELEMENTWISE_LOSS } from "./elementwise_loss.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(ELEMENTWISE_LOSS.bindings.targets, 1);
 * ```
 */
export const ELEMENTWISE_LOSS = {
  name: "elementwise_loss",
  source,
  bindings: {
    outputs: 0,
    targets: 1,
    pos_weight: 2,
    doutputs: 3,
    partial: 4,
    p: 5,
    partial_in: 6,
    acc: 7,
  },
} as const satisfies KernelFamily;
/** Loss and gradient per element, a partial sum per workgroup. */
const ELEMENTS = entryPoint(ELEMENTWISE_LOSS, "elements", [
  "outputs",
  "targets",
  "pos_weight",
  "doutputs",
  "partial",
  "p",
]);
/** The partial sums into the accumulator (`partial_in` is `partial`, bound read-only). */
const REDUCE = entryPoint(ELEMENTWISE_LOSS, "reduce", ["partial_in", "acc", "p"]);
const PARAMS = new ParamsLayout("elementwise_loss.Params", {
  N: "u32",
  O: "u32",
  G: "u32",
  rows: "u32",
  scale: "f32",
  denom: "f32",
  _pad0: "u32",
  _pad1: "u32",
});
const WG = 64;
const RWG = 64;

/** The kernel's KIND override per loss. */
const KINDS = { MSELoss: 0, L1Loss: 1, BCEWithLogitsLoss: 2 } as const;
type Kind = keyof typeof KINDS;

/** The gradient's factor on d = x − t (MSE) or sign(d) (L1), rounded to f32 as PyTorch's. */
function gradScale(kind: Kind, reduction: Reduction, n: number): number {
  const k = kind === "MSELoss" ? 2 : 1;
  return reduction === "mean" ? k / n : k;
}

class Buffers {
  readonly grad: Tensor;
  readonly partial: Tensor;
  readonly params: GpuBuffer;
  readonly groups: number;

  constructor(gpu: Gpu, shape: readonly number[], kind: Kind, reduction: Reduction) {
    const n = shape.reduce((a, b) => a * b, 1);
    this.groups = Math.ceil(n / WG);
    this.grad = Tensor.empty(gpu, shape, "f32", `${kind}.doutput`);
    this.partial = Tensor.empty(gpu, [this.groups], "f32", `${kind}.partial`);
    this.params = PARAMS.upload(gpu, {
      N: n,
      O: shape.length > 1 ? shape.at(-1)! : 1,
      G: this.groups,
      rows: shape[0],
      scale: kind === "BCEWithLogitsLoss" ? 0 : gradScale(kind, reduction, n),
      denom: n,
      _pad0: 0,
      _pad1: 0,
    });
  }

  dispose(): void {
    disposeAll(this.grad, this.partial, this.params);
  }
}

/**
 * What the three losses share: the contract, the kernels, the per-batch buffers, the stats. Each
 * loss passes its kind, reduction and positive weights, and adds only its options.
 *
 * @internal
 */
export abstract class ElementwiseLoss implements Loss {
  /** False: a regression or multi-label loss (no accuracy, no confusion matrix). */
  readonly classifies = false;
  /** The reduction in force. */
  readonly reduction: Reduction;
  readonly #kind: Kind;
  readonly #reduction: Reduction;
  readonly #posWeight: Float32Array | null;
  #gpu: Gpu | null = null;
  #rowShape: readonly number[] = [];
  #elements: KernelCall<typeof ELEMENTS> | null = null;
  #reduce: KernelCall<typeof REDUCE> | null = null;
  #posWeights: Tensor | null = null;
  #buffers: PerBatch<Buffers> | null = null;
  #last: Buffers | null = null;
  #stats: LossStats | null = null;

  /** Declares the loss; buffers are allocated by the first forward. */
  constructor(kind: Kind, reduction: Reduction | undefined, posWeight: Float32Array | null) {
    this.#kind = kind;
    this.reduction = this.#reduction = checkReduction(kind, reduction);
    this.#posWeight = posWeight;
  }

  /** The default accumulator (created with the first forward). */
  get stats(): LossStats {
    if (this.#stats === null) {
      throw new Error(`Cannot read ${this.#kind} stats: no forward was encoded yet`);
    }
    return this.#stats;
  }

  #setup(gpu: Gpu, rowShape: readonly number[]): void {
    const same = rowShape.length === this.#rowShape.length &&
      rowShape.every((d, i) => d === this.#rowShape[i]);
    if (this.#gpu === gpu && same) return;
    if (this.#gpu !== null) {
      throw new RangeError(
        `Cannot run ${this.#kind}: it was set up for rows of [${
          this.#rowShape.join(", ")
        }]: current rows are [${rowShape.join(", ")}]`,
      );
    }
    const columns = rowShape.at(-1) ?? 1;
    if (this.#posWeight && this.#posWeight.length !== columns) {
      throw new RangeError(
        `Cannot run ${this.#kind}: ${this.#posWeight.length} posWeight values for ${columns} outputs per row`,
      );
    }
    this.#gpu = gpu;
    this.#rowShape = [...rowShape];
    const constants = {
      WG,
      RWG,
      KIND: KINDS[this.#kind],
      MEAN: Number(this.#reduction === "mean"),
      POS_WEIGHTED: Number(this.#posWeight !== null),
    };
    this.#elements = new KernelCall(gpu, ELEMENTS, constants);
    this.#reduce = new KernelCall(gpu, REDUCE, constants);
    // Bound even when unread (the entry point declares it); one value is enough then.
    this.#posWeights = Tensor.from(
      gpu,
      this.#posWeight ?? new Float32Array(1).fill(1),
      [this.#posWeight?.length ?? 1],
      `${this.#kind}.pos_weight`,
    );
    const kind = this.#kind, reduction = this.#reduction;
    this.#buffers = new PerBatch((rows) => new Buffers(gpu, [rows, ...rowShape], kind, reduction));
    this.#stats = new LossStats(gpu, `${kind}.stats`);
  }

  /** Encodes loss and gradient of `output` against `target`, adding the batch to `stats`. */
  forward(enc: StepEncoder, output: Tensor, target: Tensor, stats?: LossStats): void {
    if (output.dtype !== "f32") {
      throw new RangeError(
        `Cannot run ${this.#kind}: the output must be f32: current dtype is ${output.dtype}`,
      );
    }
    const same = target.shape.length === output.shape.length &&
      target.shape.every((d, i) => d === output.shape[i]);
    if (target.dtype !== "f32" || !same) {
      throw new RangeError(
        `Cannot run ${this.#kind}: the target must be f32 [${
          output.shape.join(", ")
        }] (the output's shape): current target is [${target.shape.join(", ")}] ${target.dtype}`,
      );
    }
    this.#setup(output.gpu, output.shape.slice(1));
    const bufs = this.#buffers!.get(output.shape[0]);
    this.#elements!.encode(enc, grid1d(bufs.groups), {
      outputs: output,
      targets: target,
      pos_weight: this.#posWeights!,
      doutputs: bufs.grad,
      partial: bufs.partial,
      p: bufs.params,
    });
    this.#reduce!.encode(enc, [1, 1, 1], {
      partial_in: bufs.partial,
      acc: (stats ?? this.#stats!).acc,
      p: bufs.params,
    });
    this.#last = bufs;
  }

  /** The gradient of the last forward's reduced loss with respect to the output. */
  backward(): Tensor {
    if (this.#last === null) {
      throw new Error(`Cannot run ${this.#kind} backward: no forward was encoded`);
    }
    return this.#last.grad;
  }

  /** Frees every buffer. */
  dispose(): void {
    this.#buffers?.dispose();
    disposeAll(this.#posWeights, this.#stats);
  }
}

/**
 * Options of {@link MSELoss} and {@link L1Loss}, as PyTorch's.
 *
 * @example Summed squared error
 * ```ts
 * import { MSELoss, type ReductionOptions } from "./elementwise_loss.ts";
 * import { equal } from "node:assert/strict";
 *
 * const options: ReductionOptions = { reduction: "sum" };
 * equal(new MSELoss(options).reduction, "sum");
 * ```
 */
export interface ReductionOptions {
  /** "mean" or "sum"; see {@link Reduction} for why not "none". Default: "mean". */
  reduction?: Reduction;
}

/**
 * `MSELoss()`: the squared error (x − t)² between an f32 output and a target of its shape,
 * averaged over every element ("mean", default) or summed ("sum"). Forward computes the loss and
 * its gradient in one pass; backward returns that gradient. The loss owns its buffers and
 * {@link MSELoss.stats} (whose accuracy is NaN: a regression has none).
 *
 * @example One regression step
 * ```ts
 * import type { Sequential, StepEncoder, Tensor } from "@wgnn/wgnn";
 * import { MSELoss } from "./elementwise_loss.ts";
 *
 * const loss = new MSELoss();
 * function step(enc: StepEncoder, model: Sequential, x: Tensor, target: Tensor): void {
 *   loss.forward(enc, model.forward(enc, x), target); // target: f32, the output's shape
 *   model.backward(enc, loss.backward());
 * }
 * ```
 */
export class MSELoss extends ElementwiseLoss {
  /** Declares the loss; buffers are allocated by the first forward. */
  constructor(options: ReductionOptions = {}) {
    super("MSELoss", options.reduction, null);
  }
}

/**
 * `L1Loss()`: the absolute error |x − t| between an f32 output and a target of its shape, "mean"
 * (default) or "sum". Its gradient is sign(x − t) (0 where x = t, as PyTorch's). Owns its
 * buffers and {@link L1Loss.stats} (accuracy NaN).
 *
 * @example Mean absolute error, read once
 * ```ts
 * import { StepEncoder, type Tensor } from "@wgnn/wgnn";
 * import { L1Loss } from "./elementwise_loss.ts";
 *
 * async function meanAbsoluteError(output: Tensor, target: Tensor): Promise<number> {
 *   const loss = new L1Loss();
 *   const enc = new StepEncoder(output.gpu);
 *   loss.forward(enc, output, target);
 *   enc.submit();
 *   const { lastLoss } = await loss.stats.read();
 *   loss.dispose();
 *   return lastLoss;
 * }
 * ```
 */
export class L1Loss extends ElementwiseLoss {
  /** Declares the loss; buffers are allocated by the first forward. */
  constructor(options: ReductionOptions = {}) {
    super("L1Loss", options.reduction, null);
  }
}

/**
 * Options of {@link BCEWithLogitsLoss}, as PyTorch's (its per-element `weight` is not offered).
 *
 * @example Positives of the second output weigh three times
 * ```ts
 * import { BCEWithLogitsLoss, type BCEWithLogitsOptions } from "./elementwise_loss.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const options: BCEWithLogitsOptions = { posWeight: [1, 3] };
 * deepEqual(new BCEWithLogitsLoss(options).posWeight, new Float32Array([1, 3]));
 * ```
 */
export interface BCEWithLogitsOptions extends ReductionOptions {
  /**
   * PyTorch's `pos_weight`: a weight on the positive term per output of a row (the last
   * dimension; one value for a 1-D output), finite and >= 0. Default: none (all 1).
   */
  posWeight?: number[];
}

/**
 * `BCEWithLogitsLoss()`: binary cross-entropy on logits x against targets t in [0, 1] of the
 * same shape, −[pw·t·log σ(x) + (1 − t)·log(1 − σ(x))] computed without overflow as PyTorch
 * does, "mean" (default) or "sum". Owns its buffers and {@link BCEWithLogitsLoss.stats}
 * (accuracy NaN: several labels per row are not one argmax).
 *
 * @example Multi-label targets
 * ```ts
 * import type { Sequential, StepEncoder, Tensor } from "@wgnn/wgnn";
 * import { BCEWithLogitsLoss } from "./elementwise_loss.ts";
 *
 * const loss = new BCEWithLogitsLoss({ posWeight: [2, 2, 2] });
 * function step(enc: StepEncoder, model: Sequential, x: Tensor, labels: Tensor): void {
 *   loss.forward(enc, model.forward(enc, x), labels); // labels: f32 [batch, 3] of 0s and 1s
 *   model.backward(enc, loss.backward());
 * }
 * ```
 *
 * @example Options are checked when the loss is built
 * ```ts
 * import { BCEWithLogitsLoss } from "./elementwise_loss.ts";
 * import { throws } from "node:assert/strict";
 *
 * throws(() => new BCEWithLogitsLoss({ posWeight: [-1] }), RangeError);
 * throws(() => new BCEWithLogitsLoss({ reduction: "none" as "sum" }), /does not accumulate/);
 * ```
 */
export class BCEWithLogitsLoss extends ElementwiseLoss {
  /** The positive weights, or null for all 1. */
  readonly posWeight: Float32Array | null;

  /**
   * Declares the loss; buffers are allocated by the first forward. Throws a RangeError for a
   * negative or non-finite positive weight, or a reduction other than "mean" and "sum".
   */
  constructor(options: BCEWithLogitsOptions = {}) {
    const pw = options.posWeight;
    if (pw) {
      const bad = pw.findIndex((w) => !Number.isFinite(w) || w < 0);
      if (bad >= 0) {
        throw new RangeError(
          `Cannot create BCEWithLogitsLoss: posWeight[${bad}] must be finite and >= 0: current value is ${
            pw[bad]
          }`,
        );
      }
    }
    const posWeight = pw ? Float32Array.from(pw) : null;
    super("BCEWithLogitsLoss", options.reduction, posWeight);
    this.posWeight = posWeight;
  }
}
