/**
 * Inverted dropout, `y = x·mask/(1−p)` in train mode and the identity in eval mode, with masks
 * drawn on the GPU from a counter-based hash of (seed, step, layer, index): reproducible run to
 * run, recomputed in backward instead of stored, and reproducible bit for bit on the CPU
 * (tests/reference/dropout_mask.ts). `seed` is the {@link manualSeed} value when the layer was
 * built, `layer` its position in the model ({@link AttachContext.position}: its index in a flat
 * Sequential, and distinct for each module of a nested one, so two Dropouts never share masks),
 * `step` the model's training-forward count.
 *
 * @module
 */

import type { StepEncoder } from "../gpu/encoder.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import dropoutSource from "../../kernels/dropout.wgsl" with { type: "text" };
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import { type AttachContext, disposeAll, Module, PerBatch } from "./module.ts";
import type { Parameter } from "./parameter.ts";
import { currentSeed } from "./random.ts";

/**
 * kernels/dropout.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts): the
 * masks, and the step counter they key on.
 */
export const DROPOUT_KERNEL = {
  name: "dropout",
  source: dropoutSource,
  bindings: { src: 0, counter: 1, dst: 2, p: 3, counter_rw: 4 },
} as const satisfies KernelFamily;
/** `dst = keep ? src·scale : 0`: forward (x → y) and backward (dY → dX) alike. */
const DROPOUT_MAIN = entryPoint(DROPOUT_KERNEL, "main", ["src", "counter", "dst", "p"]);
/** Advances the step counter at the start of a training forward (run by Sequential). */
export const COUNTER_ADVANCE = entryPoint(DROPOUT_KERNEL, "advance", ["counter_rw"]);
const DROPOUT_PARAMS = new ParamsLayout("dropout.Params", {
  n: "u32",
  seed: "u32",
  layer: "u32",
  threshold: "u32",
  scale: "f32",
});
const WG = 64;

class DropoutBuffers {
  readonly y: Tensor;
  readonly params: GpuBuffer;
  readonly n: number;
  #dx: Tensor | null = null;
  readonly #gpu;

  constructor(
    gpu: NonNullable<Module["gpu"]>,
    shape: readonly number[],
    values: Record<"seed" | "layer" | "threshold" | "scale", number>,
  ) {
    this.#gpu = gpu;
    this.n = shape.reduce((a, b) => a * b, 1);
    this.y = Tensor.empty(gpu, shape, "f32", "dropout.y");
    this.params = DROPOUT_PARAMS.upload(gpu, { n: this.n, ...values });
  }

  dx(): Tensor {
    this.#dx ??= Tensor.empty(this.#gpu, this.y.shape, "f32", "dropout.dX");
    return this.#dx;
  }

  dispose(): void {
    disposeAll(this.y, this.params, this.#dx);
  }
}

/**
 * Zeroes each element with probability `p` in train mode and scales the rest by 1/(1−p)
 * (PyTorch's `Dropout(p)`); the identity in eval mode. Masks are keyed by the
 * {@link manualSeed} value at construction, the layer's index and the training step.
 *
 * @example The lecture's Dropout layer
 * ```ts
 * import { Dropout, manualSeed } from "@wgnn/wgnn";
 * import { equal, throws } from "node:assert/strict";
 *
 * manualSeed(7);
 * const dropout = new Dropout(0.5);
 * equal(dropout.describe(), "Dropout(p=0.5)");
 * equal(dropout.seed, 7);
 * throws(() => new Dropout(1), RangeError); // p must be in [0, 1)
 * ```
 */
export class Dropout extends Module {
  /** Probability of zeroing an element. */
  readonly p: number;
  /** The seed keying the masks (the manualSeed value at construction). */
  readonly seed: number;
  /** Masks are keyed by the model's training step. */
  override readonly readsStepCounter = true;
  #counter: Tensor | null = null;
  #call: KernelCall<typeof DROPOUT_MAIN> | null = null;
  #shape: readonly number[] = [];
  #buffers = new PerBatch((batch) =>
    new DropoutBuffers(this.requireGpu(), [batch, ...this.#shape.slice(1)], {
      seed: this.seed,
      layer: this.#position,
      // u ≥ p for u = k·2⁻²⁴ exactly when k ≥ ceil(p·2²⁴): an exact integer test on the GPU.
      threshold: Math.ceil(this.p * 2 ** 24),
      scale: Math.fround(1 / (1 - this.p)),
    })
  );
  #lastTraining = false;
  /** {@link AttachContext.position}: the `layer` its masks are keyed by. */
  #position = -1;

  /** Declares the layer. Throws a RangeError unless 0 ≤ p < 1. */
  constructor(p = 0.5) {
    super();
    if (!(p >= 0 && p < 1)) {
      throw new RangeError(`Cannot create Dropout: p must be in [0, 1): current value is ${p}`);
    }
    this.p = p;
    this.seed = currentSeed();
  }

  /** `Dropout(p=…)`. */
  describe(): string {
    return `Dropout(p=${this.p})`;
  }

  /** Takes the model's step counter and compiles the kernel. */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    if (context.stepCounter === null) {
      throw new Error(`Cannot attach ${this.describe()}: its model gave it no step counter`);
    }
    this.#counter = context.stepCounter;
    this.#position = context.position;
    this.#call = new KernelCall(context.gpu, DROPOUT_MAIN, { WG });
  }

  /** The input shape, unchanged. */
  outputShape(input: readonly number[]): number[] {
    return [...input];
  }

  /**
   * Encodes `y = x·mask/(1−p)` in train mode (the result is owned by the layer); returns `x`
   * itself in eval mode or when p = 0.
   */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    this.#lastTraining = this.training;
    if (!this.training || this.p === 0) return x;
    this.#shape = x.shape;
    const bufs = this.#buffers.get(x.shape[0]);
    this.#call!.encode(enc, grid1d(Math.ceil(bufs.n / WG)), {
      src: x,
      counter: this.#counter!,
      dst: bufs.y,
      p: bufs.params,
    });
    return bufs.y;
  }

  /** Encodes `dX = dY·mask/(1−p)` with the last forward's mask, recomputed (not stored). */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    if (!this.#lastTraining || this.p === 0) return dY;
    const bufs = this.#buffers.get(dY.shape[0]);
    const dx = bufs.dx();
    this.#call!.encode(enc, grid1d(Math.ceil(bufs.n / WG)), {
      src: dY,
      counter: this.#counter!,
      dst: dx,
      p: bufs.params,
    });
    return dx;
  }

  /** Frees the per-batch outputs. */
  override dispose(): void {
    this.#buffers.dispose();
  }
}
