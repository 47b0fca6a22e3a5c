/**
 * BatchNorm2d over [batch, C, H, W], exactly as PyTorch: statistics per channel over N·H·W,
 * biased batch variance to normalise, unbiased variance into `running_var`, momentum updates,
 * `num_batches_tracked`, running estimates in eval mode (kernels/batchnorm2d.wgsl). Forward is
 * one dispatch (statistics, normalisation and the running update, one workgroup per channel);
 * backward is one dispatch. Where H·W is a multiple of 4 both read and write vec4s. A ReLU or
 * LeakyReLU right after it in a Sequential runs inside both (`fusedSlope`). Options, state layout
 * and state-dict entries are BatchNorm1d's.
 *
 * @module
 */

import type { StepEncoder } from "../gpu/encoder.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import batchnorm2dSource from "../../kernels/batchnorm2d.wgsl" with { type: "text" };
import {
  type BatchNormOptions,
  readRunningStats,
  runningStatsData,
  runningStatsShapes,
} from "./batchnorm.ts";
import { type EntryPoint, entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import type { Constants } from "../gpu/kernels.ts";
import { type AttachContext, disposeAll, type HostTensor, Module, positiveInt } from "./module.ts";
import type { Parameter, ParameterSpec } from "./parameter.ts";

/** kernels/batchnorm2d.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const BATCHNORM2D = {
  name: "batchnorm2d",
  source: batchnorm2dSource,
  bindings: {
    x: 0,
    gamma: 1,
    beta: 2,
    y: 3,
    saved: 4,
    state: 5,
    p: 6,
    dy: 7,
    saved_in: 8,
    dx: 9,
    dgamma: 10,
    dbeta: 11,
    x_v4: 12,
    y_v4: 13,
    dy_v4: 14,
    dx_v4: 15,
  },
} as const satisfies KernelFamily;
const FORWARD_TRAIN = entryPoint(BATCHNORM2D, "forward_train", [
  "x",
  "gamma",
  "beta",
  "y",
  "saved",
  "state",
  "p",
]);
const FORWARD_EVAL = entryPoint(BATCHNORM2D, "forward_eval", [
  "x",
  "gamma",
  "beta",
  "y",
  "state",
  "p",
]);
const BACKWARD = entryPoint(BATCHNORM2D, "backward", [
  "x",
  "gamma",
  "beta",
  "dy",
  "saved_in",
  "dx",
  "dgamma",
  "dbeta",
  "p",
]);
// The same math on vec4 views, where H·W is a multiple of 4 (4 values of a plane per load).
const FORWARD_TRAIN4 = entryPoint(BATCHNORM2D, "forward_train4", [
  "x_v4",
  "gamma",
  "beta",
  "y_v4",
  "saved",
  "state",
  "p",
]);
const FORWARD_EVAL4 = entryPoint(BATCHNORM2D, "forward_eval4", [
  "x_v4",
  "gamma",
  "beta",
  "y_v4",
  "state",
  "p",
]);
const BACKWARD4 = entryPoint(BATCHNORM2D, "backward4", [
  "x_v4",
  "gamma",
  "beta",
  "dy_v4",
  "saved_in",
  "dx_v4",
  "dgamma",
  "dbeta",
  "p",
]);
const BN2D_PARAMS = new ParamsLayout("batchnorm2d.Params", {
  N: "u32",
  C: "u32",
  HW: "u32",
  eps: "f32",
  momentum: "f32",
});

class BatchNorm2dBuffers {
  readonly y: Tensor;
  readonly params: GpuBuffer;
  #dx: Tensor | null = null;
  readonly #gpu;

  constructor(
    gpu: NonNullable<Module["gpu"]>,
    shape: readonly number[],
    eps: number,
    momentum: number,
  ) {
    this.#gpu = gpu;
    const [N, C, H, W] = shape;
    this.y = Tensor.empty(gpu, shape, "f32", "batchnorm2d.y");
    this.params = BN2D_PARAMS.upload(gpu, { N, C, HW: H * W, eps, momentum });
  }

  dx(): Tensor {
    this.#dx ??= Tensor.empty(this.#gpu, this.y.shape, "f32", "batchnorm2d.dX");
    return this.#dx;
  }

  dispose(): void {
    disposeAll(this.y, this.params, this.#dx);
  }
}

/**
 * Batch normalisation per channel (PyTorch's `BatchNorm2d(num_features)`) for input
 * [batch, C, H, W]: batch statistics over (N, H, W) in train mode, running estimates in eval
 * mode. State-dict entries: `weight`, `bias`, `running_mean`, `running_var`,
 * `num_batches_tracked`. Throws a RangeError for `numFeatures` ≤ 0, `eps` ≤ 0 or `momentum`
 * outside [0, 1].
 *
 * @example After a convolution
 * ```ts
 * import { BatchNorm2d, Conv2d, ReLU, Sequential } from "@wgnn/wgnn";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * const block = new Sequential(new Conv2d(3, 16, 3, { padding: 1, bias: false }), new BatchNorm2d(16), new ReLU());
 * deepEqual(block.outputShape([3, 32, 32]), [16, 32, 32]);
 * deepEqual(Object.keys(block.expectedState()), [
 *   "0.weight",
 *   "1.weight",
 *   "1.bias",
 *   "1.running_mean",
 *   "1.running_var",
 *   "1.num_batches_tracked",
 * ]);
 * throws(() => new BatchNorm2d(16).outputShape([8, 4, 4]), RangeError); // 8 channels, not 16
 * ```
 */
export class BatchNorm2d extends Module {
  /** Number of channels. */
  readonly numFeatures: number;
  /** Added to the variance before the square root. */
  readonly eps: number;
  /** Weight of the new batch in the running estimates. */
  readonly momentum: number;
  /** Whether γ (weight) and β (bias) are learned. */
  readonly affine: boolean;
  /** Whether running estimates are kept (and used in eval mode). */
  readonly trackRunningStats: boolean;
  /**
   * The slope of a following ReLU/LeakyReLU that runs inside this layer's kernels (set by
   * Sequential before `to(gpu)`), or null: the activation then runs on its own.
   */
  fusedSlope: number | null = null;
  #gamma: Parameter | null = null;
  #beta: Parameter | null = null;
  /** [running_mean (C), running_var (C), num_batches_tracked (1, u32 bits)]. */
  #state: Tensor | null = null;
  /** [mean (C), rstd (C)] of the last training batch, for backward. */
  #saved: Tensor | null = null;
  #x: Tensor | null = null;
  #wasTraining = true;
  readonly #byShape = new Map<string, BatchNorm2dBuffers>();
  #train: KernelCall<typeof FORWARD_TRAIN> | null = null;
  #eval: KernelCall<typeof FORWARD_EVAL> | null = null;
  #backward: KernelCall<typeof BACKWARD> | null = null;
  #train4: KernelCall<typeof FORWARD_TRAIN4> | null = null;
  #eval4: KernelCall<typeof FORWARD_EVAL4> | null = null;
  #backward4: KernelCall<typeof BACKWARD4> | null = null;
  /** The kernels' override constants (AFFINE, TRACK, the fused activation), set by attach. */
  #constants: Constants | null = null;
  /** Stand-ins bound where γ/β and their gradients do not exist (affine: false). */
  #dummy: Tensor | null = null;
  #dummyGrads: [Tensor, Tensor] | null = null;

  /** Declares the layer; nothing is allocated until `to(gpu)`. */
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super();
    positiveInt("BatchNorm2d", "numFeatures", numFeatures);
    this.numFeatures = numFeatures;
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    this.affine = options.affine ?? true;
    this.trackRunningStats = options.trackRunningStats ?? true;
    if (!(this.eps > 0) || !Number.isFinite(this.eps)) {
      throw new RangeError(
        `Cannot create BatchNorm2d: eps must be > 0: current value is ${this.eps}`,
      );
    }
    if (!(this.momentum >= 0 && this.momentum <= 1)) {
      throw new RangeError(
        `Cannot create BatchNorm2d: momentum must be in [0, 1]: current value is ${this.momentum}`,
      );
    }
  }

  /** `BatchNorm2d(C)`. */
  describe(): string {
    return `BatchNorm2d(${this.numFeatures})`;
  }

  /** `weight` (γ, ones) and `bias` (β, zeros) of shape [C]; none when not affine. */
  override parameterSpecs(): ParameterSpec[] {
    if (!this.affine) return [];
    const C = this.numFeatures;
    return [
      { name: "weight", shape: [C], init: new Float32Array(C).fill(1) },
      { name: "bias", shape: [C], init: new Float32Array(C) },
    ];
  }

  /** Takes a following ReLU or LeakyReLU (slope ≥ 0) into its forward and backward kernels. */
  override absorbActivation(slope: number): boolean {
    this.fusedSlope = slope;
    return true;
  }

  /** Takes γ and β, allocates the running statistics and compiles the kernels. */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    const gpu = context.gpu;
    [this.#gamma = null, this.#beta = null] = params;
    const C = this.numFeatures;
    const state = new Float32Array(2 * C + 1);
    state.fill(1, C, 2 * C); // running_var starts at 1, running_mean at 0, count at 0
    this.#state = Tensor.from(gpu, state, [2 * C + 1], `${context.path}.running_stats`);
    this.#saved = Tensor.empty(gpu, [2 * C], "f32", `${context.path}.saved_stats`);
    this.#dummy = Tensor.empty(gpu, [C], "f32", "batchnorm2d.unused");
    // A buffer may not be bound read-only and writable in one dispatch: separate stand-ins.
    this.#dummyGrads = [
      Tensor.empty(gpu, [C], "f32", "batchnorm2d.unused.dgamma"),
      Tensor.empty(gpu, [C], "f32", "batchnorm2d.unused.dbeta"),
    ];
    this.#constants = {
      AFFINE: Number(this.affine),
      TRACK: Number(this.trackRunningStats),
      ACT: Number(this.fusedSlope !== null),
      SLOPE: this.fusedSlope ?? 0,
    };
  }

  /**
   * The call of `entry`, compiled on first use: which path (scalar or vec4) a layer takes depends
   * on its input's H·W, known at the first forward, and most layers only ever take one.
   */
  #call<E extends EntryPoint<string>>(entry: E): KernelCall<E> {
    return new KernelCall(this.requireGpu(), entry, this.#constants!);
  }

  /** The input shape, which must be [C, H, W]; throws a RangeError otherwise. */
  outputShape(input: readonly number[]): number[] {
    if (input.length !== 3 || input[0] !== this.numFeatures) {
      throw new RangeError(
        `Cannot run ${this.describe()}: expected input [${this.numFeatures}, H, W]: current input is [${
          input.join(", ")
        }]`,
      );
    }
    return [...input];
  }

  #buffersFor(shape: readonly number[]): BatchNorm2dBuffers {
    const key = shape.join(",");
    let bufs = this.#byShape.get(key);
    if (!bufs) {
      bufs = new BatchNorm2dBuffers(this.requireGpu(), shape, this.eps, this.momentum);
      this.#byShape.set(key, bufs);
    }
    return bufs;
  }

  /**
   * Encodes the normalisation of `x` [batch, C, H, W]. In train mode it uses the batch
   * statistics (more than one value per channel) and updates the running estimates; in eval
   * mode it uses the running estimates. The result is owned by the layer.
   */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    if (x.dtype !== "f32" || x.shape.length !== 4) {
      throw new RangeError(
        `Cannot run ${this.describe()}: expected input [batch, ${this.numFeatures}, H, W] f32: current input "${x.label}" is [${
          x.shape.join(", ")
        }] ${x.dtype}`,
      );
    }
    this.outputShape(x.shape.slice(1));
    const [N, , H, W] = x.shape;
    const useBatchStats = this.training || !this.trackRunningStats;
    if (useBatchStats && N * H * W < 2) {
      throw new RangeError(
        `Cannot run ${this.describe()} at ${this.path} in train mode: expected more than 1 value per channel: current input is [${
          x.shape.join(", ")
        }]`,
      );
    }
    const bufs = this.#buffersFor(x.shape);
    const gamma = this.#gamma?.value ?? this.#dummy!;
    const beta = this.#beta?.value ?? this.#dummy!;
    const grid: [number, number, number] = [this.numFeatures, 1, 1];
    const y = bufs.y, state = this.#state!, p = bufs.params, saved = this.#saved!;
    if ((H * W) % 4 === 0) {
      const v = { x_v4: x, gamma, beta, y_v4: y, state, p };
      if (this.training) {
        (this.#train4 ??= this.#call(FORWARD_TRAIN4)).encode(enc, grid, { ...v, saved });
      } else (this.#eval4 ??= this.#call(FORWARD_EVAL4)).encode(enc, grid, v);
    } else if (this.training) {
      (this.#train ??= this.#call(FORWARD_TRAIN)).encode(enc, grid, {
        x,
        gamma,
        beta,
        y,
        saved,
        state,
        p,
      });
    } else {
      (this.#eval ??= this.#call(FORWARD_EVAL)).encode(enc, grid, { x, gamma, beta, y, state, p });
    }
    this.#x = x;
    this.#wasTraining = this.training;
    return y;
  }

  /**
   * Encodes the backward pass of the last (train-mode) forward: adds into dγ and dβ and returns
   * dX, owned by the layer.
   */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    if (this.#x === null) {
      throw new Error(`Cannot run ${this.describe()} backward: no forward was encoded`);
    }
    if (!this.#wasTraining) {
      throw new Error(
        `Cannot run ${this.describe()} backward after an eval-mode forward: switch to train() first`,
      );
    }
    dY.expectShape(`Cannot run ${this.describe()} backward`, this.#x.shape);
    const bufs = this.#buffersFor(this.#x.shape);
    const dx = bufs.dx();
    const common = {
      gamma: this.#gamma?.value ?? this.#dummy!,
      beta: this.#beta?.value ?? this.#dummy!,
      saved_in: this.#saved!,
      dgamma: this.#gamma?.grad ?? this.#dummyGrads![0],
      dbeta: this.#beta?.grad ?? this.#dummyGrads![1],
      p: bufs.params,
    };
    const grid: [number, number, number] = [this.numFeatures, 1, 1];
    const [, , H, W] = this.#x.shape;
    if ((H * W) % 4 === 0) {
      const v = { x_v4: this.#x, dy_v4: dY, dx_v4: dx };
      (this.#backward4 ??= this.#call(BACKWARD4)).encode(enc, grid, { ...common, ...v });
    } else {
      (this.#backward ??= this.#call(BACKWARD)).encode(enc, grid, {
        ...common,
        x: this.#x,
        dy: dY,
        dx,
      });
    }
    return dx;
  }

  /** `running_mean` and `running_var` (F32 [C]) and `num_batches_tracked` (I64 []). */
  override bufferShapes(): Record<string, { dtype: "F32" | "I64"; shape: number[] }> {
    return this.trackRunningStats ? runningStatsShapes(this.numFeatures) : {};
  }

  /** Reads the running statistics back (waits for the GPU). */
  override readBuffers(): Promise<Record<string, HostTensor>> {
    if (!this.trackRunningStats || this.#state === null) return Promise.resolve({});
    return readRunningStats(this.#state, this.numFeatures);
  }

  /** Uploads running statistics (shapes as {@link BatchNorm2d.bufferShapes}). */
  override writeBuffers(buffers: Record<string, HostTensor>): void {
    if (!this.trackRunningStats || this.#state === null) return;
    this.#state.write(runningStatsData(buffers, this.numFeatures));
  }

  /** Frees the activations and running statistics (γ and β belong to the model's arena). */
  override dispose(): void {
    for (const bufs of this.#byShape.values()) bufs.dispose();
    this.#byShape.clear();
    disposeAll(this.#state, this.#saved, this.#dummy, ...(this.#dummyGrads ?? []));
  }
}
