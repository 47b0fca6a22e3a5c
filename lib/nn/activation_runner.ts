/**
 * The shared body of the layers in activations.ts and softmax.ts: input checks, per-batch
 * buffers, the tensor backward reads, and the two dispatches of kernels/pointwise.wgsl or
 * kernels/softmax.wgsl, in {@link ActivationLayer}, which each layer extends (an internal base: the
 * public surface documents the layers themselves).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { Tensor } from "../tensor.ts";
import { KernelCall } from "./kernel_call.ts";
import { type AttachContext, checkInput, disposeAll, Module, PerBatch } from "./module.ts";
import type { Parameter } from "./parameter.ts";
import {
  POINTWISE_BACKWARD,
  POINTWISE_FORWARD,
  POINTWISE_FUNCTIONS,
  POINTWISE_PARAMS,
  POINTWISE_WG,
  type PointwiseFunction,
} from "./pointwise_kernel.ts";
import { SOFTMAX_BACKWARD, SOFTMAX_FORWARD, SOFTMAX_PARAMS, SOFTMAX_WG } from "./softmax_kernel.ts";

/** Output, gradient and uniforms of one batch size. */
class Buffers {
  readonly y: Tensor;
  readonly params: GpuBuffer;
  #dX: Tensor | null = null;
  readonly #gpu: Gpu;

  constructor(gpu: Gpu, shape: readonly number[], params: GpuBuffer) {
    this.#gpu = gpu;
    this.y = Tensor.empty(gpu, shape, "f32", "activation.y");
    this.params = params;
  }

  /** dX is allocated on the first backward: evaluation never pays for it. */
  dX(): Tensor {
    this.#dX ??= Tensor.empty(this.#gpu, this.y.shape, "f32", "activation.dX");
    return this.#dX;
  }

  dispose(): void {
    disposeAll(this.y, this.#dX, this.params);
  }
}

/** What one kind of kernel needs from a layer: its uniforms, grid and two kernel calls. */
export interface Kernels {
  forward: KernelCall<typeof POINTWISE_FORWARD | typeof SOFTMAX_FORWARD>;
  backward: KernelCall<typeof POINTWISE_BACKWARD | typeof SOFTMAX_BACKWARD>;
  params(gpu: Gpu, shape: readonly number[]): GpuBuffer;
  grid(shape: readonly number[]): [number, number, number];
}

/**
 * The shared body of the activation layers: checks, per-batch buffers, the saved tensor, and the
 * two dispatches. Each layer passes its kernels' factory and whether backward reads the output;
 * it adds only its name (`describe`) and, if it has one, its shape rule (`outputShape`).
 *
 * @internal
 */
export abstract class ActivationLayer extends Module {
  readonly #savesOutput: boolean;
  readonly #makeKernels: (gpu: Gpu) => Kernels;
  #kernels: Kernels | null = null;
  #gpu: Gpu | null = null;
  #sampleShape: readonly number[] | null = null;
  #saved: Tensor | null = null;
  #buffers = new PerBatch((batch) => {
    const shape = [batch, ...this.#sampleShape!];
    return new Buffers(this.#gpu!, shape, this.#kernels!.params(this.#gpu!, shape));
  });

  /** `savesOutput`: backward reads y (else x); `kernels` builds the two calls on attach. */
  constructor(savesOutput: boolean, kernels: (gpu: Gpu) => Kernels) {
    super();
    this.#savesOutput = savesOutput;
    this.#makeKernels = kernels;
  }

  /** Per-sample output shape: the input's. */
  outputShape(input: readonly number[]): number[] {
    return [...input];
  }

  /** Receives the GPU (called by Sequential.to) and compiles the two kernels. */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    this.#gpu = context.gpu;
    this.#kernels = this.#makeKernels(context.gpu);
  }

  /** Encodes the forward pass; the returned tensor is owned by this module. */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    if (this.#kernels === null) {
      throw new Error(
        `Cannot run ${this.describe()}: it is not on a GPU yet; call model.to(gpu) first`,
      );
    }
    if (this.#sampleShape === null) {
      checkInput(this, x, x.shape.slice(1)); // f32 and at least [batch, features]
      this.outputShape(x.shape.slice(1));
      this.#sampleShape = x.shape.slice(1);
    }
    const batch = checkInput(this, x, this.#sampleShape);
    const bufs = this.#buffers.get(batch);
    this.#kernels.forward.encode(enc, this.#kernels.grid(x.shape), {
      src: x,
      dst: bufs.y,
      p: bufs.params,
    });
    this.#saved = this.#savesOutput ? bufs.y : x;
    return bufs.y;
  }

  /** Encodes the backward pass of the last forward; returns dX (owned by this module). */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    if (this.#saved === null || this.#kernels === null) {
      throw new Error(`Cannot run ${this.describe()} backward: no forward was encoded`);
    }
    checkInput(this, dY, this.#sampleShape!);
    if (dY.shape[0] !== this.#saved.shape[0]) {
      throw new RangeError(
        `Cannot run ${this.describe()} backward: dY must have the last forward's batch of ${
          this.#saved.shape[0]
        }: current dY "${dY.label}" is [${dY.shape.join(", ")}]`,
      );
    }
    const bufs = this.#buffers.get(dY.shape[0]);
    const dX = bufs.dX();
    this.#kernels.backward.encode(enc, this.#kernels.grid(dY.shape), {
      src: this.#saved,
      dy: dY,
      dst: dX,
      p: bufs.params,
    });
    return dX;
  }

  /** Frees this module's per-batch buffers. */
  override dispose(): void {
    this.#buffers.dispose();
    this.#saved = null;
  }
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** kernels/pointwise.wgsl's calls for one function. */
export function pointwiseKernels(gpu: Gpu, fn: PointwiseFunction): Kernels {
  const constants = { WG: POINTWISE_WG, FN: POINTWISE_FUNCTIONS[fn].fn };
  return {
    forward: new KernelCall(gpu, POINTWISE_FORWARD, constants),
    backward: new KernelCall(gpu, POINTWISE_BACKWARD, constants),
    params: (gpu, shape) => POINTWISE_PARAMS.upload(gpu, { n: numel(shape) }),
    grid: (shape) => grid1d(Math.ceil(numel(shape) / POINTWISE_WG)),
  };
}

/** kernels/softmax.wgsl's calls: one workgroup per row of the last dimension. */
export function softmaxKernels(gpu: Gpu, log: boolean): Kernels {
  const constants = { WG: SOFTMAX_WG, LOG: Number(log) };
  const cols = (shape: readonly number[]) => shape[shape.length - 1];
  return {
    forward: new KernelCall(gpu, SOFTMAX_FORWARD, constants),
    backward: new KernelCall(gpu, SOFTMAX_BACKWARD, constants),
    params: (gpu, shape) =>
      SOFTMAX_PARAMS.upload(gpu, { rows: numel(shape) / cols(shape), cols: cols(shape) }),
    grid: (shape) => grid1d(numel(shape) / cols(shape)),
  };
}
