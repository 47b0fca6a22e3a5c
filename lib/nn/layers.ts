/**
 * Flatten, Unflatten, LeakyReLU and ReLU (Linear lives in linear.ts and is re-exported here).
 *
 * A LeakyReLU (slope ≥ 0) right after a Linear is fused into the Linear's matmul epilogue by
 * Sequential: forward is then one dispatch, and the activation module passes tensors through.
 *
 * @module
 */

import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { Tensor } from "../tensor.ts";
import { ACT_BACKWARD, ACT_FORWARD, ACT_PARAMS, ACT_WG as WG } from "./activation_kernel.ts";
import { KernelCall } from "./kernel_call.ts";
import { type AttachContext, disposeAll, Module, PerBatch } from "./module.ts";
import type { Parameter } from "./parameter.ts";

export { Linear, type LinearOptions } from "./linear.ts";

/**
 * Flattens every dimension after the first (PyTorch's `Flatten()`, start_dim 1).
 *
 * @example Flatten images
 * ```ts ignore
 * const model = new Sequential(new Flatten(), new Linear(3072, 10));
 * ```
 */
export class Flatten extends Module {
  /** Forward is a reshape: input staging belongs to the module after it. */
  override readonly reshapesOnly = true;
  #inputShape: readonly number[] = [];

  /** A short description, e.g. for error messages. */
  describe(): string {
    return "Flatten()";
  }

  /** Per-sample output shape for a per-sample input shape; throws on a mismatch. */
  outputShape(input: readonly number[]): number[] {
    return [input.reduce((a, b) => a * b, 1)];
  }

  /** Encodes the forward pass; the returned tensor is owned by this module. */
  forward(_enc: StepEncoder, x: Tensor): Tensor {
    this.#inputShape = x.shape;
    return x.reshape([x.shape[0], x.numel / x.shape[0]]);
  }

  /** Encodes the backward pass of the last forward; returns dX (owned by this module). */
  backward(_enc: StepEncoder, dY: Tensor): Tensor {
    return dY.reshape(this.#inputShape);
  }
}

/**
 * Unflattens dimension 1 into `shape` (PyTorch's `Unflatten(1, shape)`): a view, no copy. It lets
 * a model whose first layer is a `Conv2d` take the `Loader`'s `[N, 3072]` rows as
 * `[N, 3, 32, 32]` images.
 *
 * @example CIFAR-10 rows into a convolution
 * ```ts
 * import { Conv2d, Sequential, Unflatten } from "@wgnn/wgnn";
 *
 * const model = new Sequential(new Unflatten(1, [3, 32, 32]), new Conv2d(3, 16, 3));
 * console.assert(model.describe().startsWith("Sequential(Unflatten(1, [3, 32, 32])"));
 * ```
 */
export class Unflatten extends Module {
  /** Forward is a reshape: input staging belongs to the module after it. */
  override readonly reshapesOnly = true;
  /** The per-sample shape dimension 1 becomes. */
  readonly shape: readonly number[];
  #inputShape: readonly number[] = [];

  /**
   * Unflattens dimension `dim` (only 1, the first after the batch, is supported) into `shape`
   * (positive integers). Throws a RangeError naming a bad argument.
   */
  constructor(dim: number, shape: readonly number[]) {
    super();
    if (dim !== 1) {
      throw new RangeError(
        `Cannot create Unflatten: only dim 1 (the first after the batch) is supported: current value is ${dim}`,
      );
    }
    if (
      !Array.isArray(shape) || shape.length === 0 ||
      !shape.every((d) => Number.isInteger(d) && d > 0)
    ) {
      throw new RangeError(
        `Cannot create Unflatten: shape must be a non-empty list of positive integers: current value is ${
          JSON.stringify(shape)
        }`,
      );
    }
    this.shape = Object.freeze([...shape]);
  }

  /** A short description, e.g. for error messages. */
  describe(): string {
    return `Unflatten(1, [${this.shape.join(", ")}])`;
  }

  /** Per-sample output shape for a per-sample input shape; throws on a mismatch. */
  outputShape(input: readonly number[]): number[] {
    this.#check(input);
    return [...this.shape, ...input.slice(1)];
  }

  /** Encodes the forward pass; the returned tensor is owned by this module. */
  forward(_enc: StepEncoder, x: Tensor): Tensor {
    this.#check(x.shape.slice(1));
    this.#inputShape = x.shape;
    return x.reshape([x.shape[0], ...this.shape, ...x.shape.slice(2)]);
  }

  /** Encodes the backward pass of the last forward; returns dX (owned by this module). */
  backward(_enc: StepEncoder, dY: Tensor): Tensor {
    return dY.reshape(this.#inputShape);
  }

  #check(input: readonly number[]): void {
    const size = this.shape.reduce((a, b) => a * b, 1);
    if (input.length === 0 || input[0] !== size) {
      throw new RangeError(
        `${this.describe()}: dimension 1 must have ${size} values: current input shape is [${
          input.join(", ")
        }] per sample`,
      );
    }
  }
}

/**
 * `y = x > 0 ? x : slope·x`, as PyTorch's `LeakyReLU(negative_slope = 0.01)`.
 *
 * @example The lecture's hidden activation
 * ```ts ignore
 * new LeakyReLU(); // slope 0.01
 * ```
 */
export class LeakyReLU extends Module {
  /** The negative slope. */
  readonly slope: number;
  /** Set by Sequential when this activation runs inside the preceding Linear's epilogue. */
  fused = false;
  #x: Tensor | null = null;
  #forward: KernelCall<typeof ACT_FORWARD> | null = null;
  #backward: KernelCall<typeof ACT_BACKWARD> | null = null;
  #buffers = new PerBatch((batch) =>
    new ActivationBuffers(this.requireGpu(), batch, this.#features)
  );
  #features = 0;

  /** Creates the module; throws a RangeError naming a bad argument. */
  constructor(slope = 0.01) {
    super();
    if (!Number.isFinite(slope)) {
      throw new RangeError(
        `Cannot create LeakyReLU: slope must be finite: current value is ${slope}`,
      );
    }
    this.slope = slope;
  }

  /** A short description, e.g. for error messages. */
  describe(): string {
    return `LeakyReLU(${this.slope})`;
  }

  /** Per-sample output shape for a per-sample input shape; throws on a mismatch. */
  outputShape(input: readonly number[]): number[] {
    return [...input];
  }

  /** Runs inside `previous`'s forward when the slope is ≥ 0 and `previous` takes it. */
  override fuseInto(previous: Module): void {
    if (this.slope >= 0 && previous.absorbActivation(this.slope)) this.fused = true;
  }

  /** Receives the GPU and its parameter views (called by Sequential.to). */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    if (this.fused) return;
    this.#forward = new KernelCall(context.gpu, ACT_FORWARD, { WG });
    this.#backward = new KernelCall(context.gpu, ACT_BACKWARD, { WG });
  }

  /** Encodes the forward pass; the returned tensor is owned by this module. */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    if (this.fused) return x;
    this.requireGpu();
    this.#features = x.numel / x.shape[0];
    const bufs = this.#buffers.get(x.shape[0]);
    this.#x = x;
    this.#forward!.encode(enc, grid1d(Math.ceil(bufs.n / WG)), {
      src: x,
      dst: bufs.y,
      p: bufs.params(this.slope),
    });
    return bufs.y.reshape(x.shape);
  }

  /** Encodes the backward pass of the last forward; returns dX (owned by this module). */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    if (this.fused) return dY;
    if (this.#x === null) {
      throw new Error(`Cannot run ${this.describe()} backward: no forward was encoded`);
    }
    const bufs = this.#buffers.get(dY.shape[0]);
    const dX = bufs.dX();
    this.#backward!.encode(enc, grid1d(Math.ceil(bufs.n / WG)), {
      src: this.#x,
      dy: dY,
      dst: dX,
      p: bufs.params(this.slope),
    });
    return dX.reshape(dY.shape);
  }

  /** Frees this module's per-batch buffers. */
  override dispose(): void {
    this.#buffers.dispose();
  }
}

/** Output, gradient and uniforms of an element-wise activation for one batch size. */
class ActivationBuffers {
  readonly n: number;
  readonly y: Tensor;
  #dX: Tensor | null = null;
  #params: GpuBuffer | null = null;
  readonly #gpu;

  /** Creates the module; throws a RangeError naming a bad argument. */
  constructor(gpu: NonNullable<Module["gpu"]>, batch: number, features: number) {
    this.#gpu = gpu;
    this.n = batch * features;
    this.y = Tensor.empty(gpu, [this.n], "f32", "activation.y");
  }

  /** dX is allocated on the first backward: evaluation never pays for it. */
  dX(): Tensor {
    this.#dX ??= Tensor.empty(this.#gpu, [this.n], "f32", "activation.dX");
    return this.#dX;
  }

  params(slope: number): GpuBuffer {
    this.#params ??= ACT_PARAMS.upload(this.#gpu, { n: this.n, slope });
    return this.#params;
  }

  /** Frees this module's per-batch buffers. */
  dispose(): void {
    disposeAll(this.y, this.#dX, this.#params);
  }
}

/**
 * `ReLU()`: LeakyReLU with slope 0 (gradient 0 at x = 0, as PyTorch).
 *
 * @example
 * ```ts ignore
 * new Sequential(new Linear(4, 8), new ReLU(), new Linear(8, 2));
 * ```
 */
export class ReLU extends LeakyReLU {
  /** Creates the module; throws a RangeError naming a bad argument. */
  constructor() {
    super(0);
  }

  /** A short description, e.g. for error messages. */
  override describe(): string {
    return "ReLU()";
  }
}
