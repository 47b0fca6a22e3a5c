/**
 * BatchNorm1d over [batch, features], exactly as PyTorch: biased batch variance to normalise,
 * unbiased variance into `running_var`, momentum updates, `num_batches_tracked`, running
 * estimates in eval mode. Forward is one dispatch (statistics, normalisation and the running
 * update per feature); backward is one dispatch.
 *
 * @module
 */

import type { StepEncoder } from "../gpu/encoder.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import batchnormSource from "../../kernels/batchnorm.wgsl" with { type: "text" };
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import {
  type AttachContext,
  checkInput,
  disposeAll,
  type HostTensor,
  Module,
  PerBatch,
  positiveInt,
} from "./module.ts";
import type { Parameter, ParameterSpec } from "./parameter.ts";

/** kernels/batchnorm.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const BATCHNORM = {
  name: "batchnorm",
  source: batchnormSource,
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
  },
} as const satisfies KernelFamily;
const FORWARD_TRAIN = entryPoint(BATCHNORM, "forward_train", [
  "x",
  "gamma",
  "beta",
  "y",
  "saved",
  "state",
  "p",
]);
// Eval never touches the saved batch statistics.
const FORWARD_EVAL = entryPoint(BATCHNORM, "forward_eval", [
  "x",
  "gamma",
  "beta",
  "y",
  "state",
  "p",
]);
// `saved_in` is `saved` again, bound read-only.
const BACKWARD = entryPoint(BATCHNORM, "backward", [
  "x",
  "gamma",
  "dy",
  "saved_in",
  "dx",
  "dgamma",
  "dbeta",
  "p",
]);
const BN_PARAMS = new ParamsLayout("batchnorm.Params", {
  B: "u32",
  F: "u32",
  eps: "f32",
  momentum: "f32",
});
const WG = 32;

/**
 * Options of {@link BatchNorm1d}, with PyTorch's defaults.
 *
 * @example Normalisation without learned scale and shift
 * ```ts
 * import { BatchNorm1d, type BatchNormOptions } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * const options: BatchNormOptions = { momentum: 0.01, affine: false };
 * const bn = new BatchNorm1d(64, options);
 * deepEqual(bn.parameterSpecs(), []); // no γ, no β
 * ```
 */
export interface BatchNormOptions {
  /** Added to the variance. Default: 1e-5. */
  eps?: number;
  /** Weight of the new batch in the running estimates. Default: 0.1. */
  momentum?: number;
  /** Learn γ (weight) and β (bias). Default: true. */
  affine?: boolean;
  /** Keep running estimates and use them in eval mode. Default: true. */
  trackRunningStats?: boolean;
}

class BatchNormBuffers {
  readonly y: Tensor;
  readonly params: GpuBuffer;
  #dx: Tensor | null = null;
  readonly #gpu;

  constructor(
    gpu: NonNullable<Module["gpu"]>,
    batch: number,
    features: number,
    eps: number,
    momentum: number,
  ) {
    this.#gpu = gpu;
    this.y = Tensor.empty(gpu, [batch, features], "f32", "batchnorm.y");
    this.params = BN_PARAMS.upload(gpu, { B: batch, F: features, eps, momentum });
  }

  dx(): Tensor {
    this.#dx ??= Tensor.empty(this.#gpu, this.y.shape, "f32", "batchnorm.dX");
    return this.#dx;
  }

  dispose(): void {
    disposeAll(this.y, this.params, this.#dx);
  }
}

/**
 * Batch normalisation over features (PyTorch's `BatchNorm1d(num_features)`) for input
 * [batch, features]: batch statistics in train mode (batch > 1), running estimates in eval mode.
 * State-dict entries: `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
 *
 * @example The lecture's BatchNorm layer
 * ```ts
 * import { BatchNorm1d } from "@wgnn/wgnn";
 * import { deepEqual, equal, throws } from "node:assert/strict";
 *
 * const bn = new BatchNorm1d(128); // eps 1e-5, momentum 0.1, affine, tracking running statistics
 * equal(bn.momentum, 0.1);
 * deepEqual(bn.outputShape([128]), [128]);
 * const state = Object.keys(bn.bufferShapes());
 * deepEqual(state, ["running_mean", "running_var", "num_batches_tracked"]);
 * throws(() => bn.outputShape([64]), RangeError); // wrong number of features
 * ```
 */
export class BatchNorm1d extends Module {
  /** Number of features (channels). */
  readonly numFeatures: number;
  /** Added to the variance before the square root. */
  readonly eps: number;
  /** Weight of the new batch in the running estimates. */
  readonly momentum: number;
  /** Whether γ (weight) and β (bias) are learned. */
  readonly affine: boolean;
  /** Whether running estimates are kept (and used in eval mode). */
  readonly trackRunningStats: boolean;
  #gamma: Parameter | null = null;
  #beta: Parameter | null = null;
  /** [running_mean (F), running_var (F), num_batches_tracked (1, u32 bits)]. */
  #state: Tensor | null = null;
  /** [mean (F), rstd (F)] of the last training batch, for backward. */
  #saved: Tensor | null = null;
  #x: Tensor | null = null;
  #wasTraining = true;
  #buffers = new PerBatch((batch) =>
    new BatchNormBuffers(this.requireGpu(), batch, this.numFeatures, this.eps, this.momentum)
  );
  #train: KernelCall<typeof FORWARD_TRAIN> | null = null;
  #eval: KernelCall<typeof FORWARD_EVAL> | null = null;
  #backward: KernelCall<typeof BACKWARD> | null = null;
  /** Stand-ins bound where γ/β and their gradients do not exist (affine: false). */
  #dummy: Tensor | null = null;
  #dummyGrads: [Tensor, Tensor] | null = null;

  /**
   * Declares the layer; nothing is allocated until `to(gpu)`. Throws a RangeError for
   * `numFeatures` ≤ 0, `eps` ≤ 0 or `momentum` outside [0, 1].
   */
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super();
    positiveInt("BatchNorm1d", "numFeatures", numFeatures);
    this.numFeatures = numFeatures;
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    this.affine = options.affine ?? true;
    this.trackRunningStats = options.trackRunningStats ?? true;
    if (!(this.eps > 0) || !Number.isFinite(this.eps)) {
      throw new RangeError(
        `Cannot create BatchNorm1d: eps must be > 0: current value is ${this.eps}`,
      );
    }
    if (!(this.momentum >= 0 && this.momentum <= 1)) {
      throw new RangeError(
        `Cannot create BatchNorm1d: momentum must be in [0, 1]: current value is ${this.momentum}`,
      );
    }
  }

  /** `BatchNorm1d(F)`. */
  describe(): string {
    return `BatchNorm1d(${this.numFeatures})`;
  }

  /** `weight` (γ, ones) and `bias` (β, zeros) of shape [F]; none when not affine. */
  override parameterSpecs(): ParameterSpec[] {
    if (!this.affine) return [];
    const F = this.numFeatures;
    return [
      { name: "weight", shape: [F], init: new Float32Array(F).fill(1) },
      { name: "bias", shape: [F], init: new Float32Array(F) },
    ];
  }

  /** Takes γ and β, allocates the running statistics and compiles the kernels. */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    const gpu = context.gpu;
    [this.#gamma = null, this.#beta = null] = params;
    const F = this.numFeatures;
    const state = new Float32Array(2 * F + 1);
    state.fill(1, F, 2 * F); // running_var starts at 1, running_mean at 0, count at 0
    this.#state = Tensor.from(gpu, state, [2 * F + 1], `${context.index}.running_stats`);
    this.#saved = Tensor.empty(gpu, [2 * F], "f32", `${context.index}.saved_stats`);
    this.#dummy = Tensor.empty(gpu, [F], "f32", "batchnorm.unused");
    // A buffer may not be bound read-only and writable in one dispatch: separate stand-ins.
    this.#dummyGrads = [
      Tensor.empty(gpu, [F], "f32", "batchnorm.unused.dgamma"),
      Tensor.empty(gpu, [F], "f32", "batchnorm.unused.dbeta"),
    ];
    const constants = { WG, AFFINE: Number(this.affine), TRACK: Number(this.trackRunningStats) };
    this.#train = new KernelCall(gpu, FORWARD_TRAIN, constants);
    this.#eval = new KernelCall(gpu, FORWARD_EVAL, constants);
    this.#backward = new KernelCall(gpu, BACKWARD, constants);
  }

  /** The input shape, which must be [F]; throws a RangeError otherwise. */
  outputShape(input: readonly number[]): number[] {
    if (input.length !== 1 || input[0] !== this.numFeatures) {
      throw new RangeError(
        `Cannot run ${this.describe()}: expected ${this.numFeatures} features: current input is [${
          input.join(", ")
        }]`,
      );
    }
    return [this.numFeatures];
  }

  /**
   * Encodes the normalisation of `x` [batch, F]. In train mode it uses the batch statistics
   * (batch > 1) and updates the running estimates; in eval mode it uses the running estimates.
   * The result is owned by the layer.
   */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    const batch = checkInput(this, x, [this.numFeatures]);
    const useBatchStats = this.training || !this.trackRunningStats;
    if (useBatchStats && batch < 2) {
      throw new RangeError(
        `Cannot run ${this.describe()} at index ${this.index} in train mode: expected more than 1 value per channel: current batch size is ${batch}`,
      );
    }
    const bufs = this.#buffers.get(batch);
    const gamma = this.#gamma?.value ?? this.#dummy!;
    const beta = this.#beta?.value ?? this.#dummy!;
    const grid: [number, number, number] = [Math.ceil(this.numFeatures / WG), 1, 1];
    const y = bufs.y, state = this.#state!, p = bufs.params;
    if (this.training) {
      this.#train!.encode(enc, grid, { x, gamma, beta, y, saved: this.#saved!, state, p });
    } else {
      this.#eval!.encode(enc, grid, { x, gamma, beta, y, state, p });
    }
    this.#x = x;
    this.#wasTraining = this.training;
    return bufs.y;
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
    const batch = this.#x.shape[0];
    dY.expectShape(`Cannot run ${this.describe()} backward`, [batch, this.numFeatures]);
    const bufs = this.#buffers.get(batch);
    const dx = bufs.dx();
    this.#backward!.encode(enc, [Math.ceil(this.numFeatures / WG), 1, 1], {
      x: this.#x,
      gamma: this.#gamma?.value ?? this.#dummy!,
      dy: dY,
      saved_in: this.#saved!,
      dx,
      dgamma: this.#gamma?.grad ?? this.#dummyGrads![0],
      dbeta: this.#beta?.grad ?? this.#dummyGrads![1],
      p: bufs.params,
    });
    return dx;
  }

  /** `running_mean` and `running_var` (F32 [F]) and `num_batches_tracked` (I64 []). */
  override bufferShapes(): Record<string, { dtype: "F32" | "I64"; shape: number[] }> {
    return this.trackRunningStats ? runningStatsShapes(this.numFeatures) : {};
  }

  /** Reads the running statistics back (waits for the GPU). */
  override readBuffers(): Promise<Record<string, HostTensor>> {
    if (!this.trackRunningStats || this.#state === null) return Promise.resolve({});
    return readRunningStats(this.#state, this.numFeatures);
  }

  /** Uploads running statistics (shapes as {@link BatchNorm1d.bufferShapes}). */
  override writeBuffers(buffers: Record<string, HostTensor>): void {
    if (!this.trackRunningStats || this.#state === null) return;
    this.#state.write(runningStatsData(buffers, this.numFeatures));
  }

  /** Frees the activations and running statistics (γ and β belong to the model's arena). */
  override dispose(): void {
    this.#buffers.dispose();
    disposeAll(this.#state, this.#saved, this.#dummy, ...(this.#dummyGrads ?? []));
  }
}

/** The state-dict entries of a BatchNorm's running statistics over `C` channels. */
export function runningStatsShapes(
  C: number,
): Record<string, { dtype: "F32" | "I64"; shape: number[] }> {
  return {
    running_mean: { dtype: "F32", shape: [C] },
    running_var: { dtype: "F32", shape: [C] },
    num_batches_tracked: { dtype: "I64", shape: [] },
  };
}

/**
 * Reads a BatchNorm's state tensor [running_mean (C), running_var (C), num_batches_tracked (1,
 * u32 bits)] back as its state-dict entries (waits for the GPU).
 */
export async function readRunningStats(
  state: Tensor,
  C: number,
): Promise<Record<string, HostTensor>> {
  const all = await state.toFloat32();
  const count = new Uint32Array(all.buffer, all.byteOffset + 8 * C, 1)[0];
  return {
    running_mean: { dtype: "F32", shape: [C], data: all.slice(0, C) },
    running_var: { dtype: "F32", shape: [C], data: all.slice(C, 2 * C) },
    num_batches_tracked: { dtype: "I64", shape: [], data: BigInt64Array.of(BigInt(count)) },
  };
}

/** The state tensor's contents for state-dict entries shaped as {@link runningStatsShapes}. */
export function runningStatsData(buffers: Record<string, HostTensor>, C: number): Float32Array {
  const all = new Float32Array(2 * C + 1);
  all.set(buffers.running_mean.data as Float32Array, 0);
  all.set(buffers.running_var.data as Float32Array, C);
  new Uint32Array(all.buffer, 8 * C, 1)[0] = Number(
    (buffers.num_batches_tracked.data as BigInt64Array)[0],
  );
  return all;
}
