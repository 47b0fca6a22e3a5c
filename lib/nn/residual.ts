/**
 * Residual: a skip connection around any module, `y = x + fn(x)`; backward adds the skip's
 * gradient to fn's, `dX = dY + dfn(dY)` (kernels/add.wgsl, one dispatch each way).
 *
 * PyTorch has no such class; the usual one is
 *
 * ```python
 * class Residual(nn.Module):
 *     def __init__(self, fn):
 *         super().__init__()
 *         self.fn = fn
 *
 *     def forward(self, x):
 *         return x + self.fn(x)
 * ```
 *
 * and this one's state-dict names are that one's: the child is registered as "fn", so a
 * Residual at index 1 of a Sequential holding a Sequential names its first weight
 * "1.fn.0.weight".
 *
 * @module
 */

import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import addSource from "../../kernels/add.wgsl" with { type: "text" };
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import { type AttachContext, disposeAll, Module, PerBatch } from "./module.ts";
import type { Parameter } from "./parameter.ts";

/** kernels/add.wgsl and its bindings (as its `@binding` lines). */
export const ADD = {
  name: "add",
  source: addSource,
  bindings: { a: 0, b: 1, dst: 2, p: 3 },
} as const satisfies KernelFamily;
/** `dst = a + b`, element-wise. */
const ADD_MAIN = entryPoint(ADD, "main", ["a", "b", "dst", "p"]);
const ADD_PARAMS = new ParamsLayout("add.Params", { n: "u32" });
const WG = 64;

/** A Residual's output, input gradient and uniforms for one batch size. */
class ResidualBuffers {
  readonly y: Tensor;
  readonly params: GpuBuffer;
  readonly n: number;
  #dX: Tensor | null = null;
  readonly #gpu;

  constructor(gpu: NonNullable<Module["gpu"]>, shape: readonly number[]) {
    this.#gpu = gpu;
    this.n = shape.reduce((a, b) => a * b, 1);
    this.y = Tensor.empty(gpu, shape, "f32", "residual.y");
    this.params = ADD_PARAMS.upload(gpu, { n: this.n });
  }

  /** dX is allocated on the first backward: evaluation never pays for it. */
  dX(): Tensor {
    this.#dX ??= Tensor.empty(this.#gpu, this.y.shape, "f32", "residual.dX");
    return this.#dX;
  }

  dispose(): void {
    disposeAll(this.y, this.params, this.#dX);
  }
}

/**
 * `y = x + fn(x)` for any module `fn` whose output has its input's shape (a Linear with as many
 * outputs as inputs, a Sequential of them, a module of your own). Its state-dict names are fn's
 * below "fn" ("fn.weight", "fn.0.weight"); fn's modules fuse among themselves as any
 * Sequential's do, and nothing fuses across the sum.
 *
 * @example A residual block between two Linears, and its PyTorch names
 * ```ts
 * import { LeakyReLU, Linear, Residual, Sequential } from "@wgnn/wgnn";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const model = new Sequential(
 *   new Linear(16, 32),
 *   new Residual(new Sequential(new Linear(32, 32), new LeakyReLU(), new Linear(32, 32))),
 *   new Linear(32, 10),
 * );
 * equal(model.modules[1].describe(), "Residual(Sequential(Linear(32, 32), LeakyReLU(0.01), Linear(32, 32)))");
 * deepEqual(model.expectedState()["1.fn.0.weight"], { dtype: "F32", shape: [32, 32] });
 * deepEqual(model.outputShape([16]), [10]);
 * ```
 */
export class Residual extends Module {
  /** The module the skip connection goes around (state-dict prefix "fn"). */
  readonly fn: Module;
  #call: KernelCall<typeof ADD_MAIN> | null = null;
  /** The per-sample shape of the last forward's input. */
  #shape: readonly number[] = [];
  #buffers = new PerBatch((batch) =>
    new ResidualBuffers(this.requireGpu(), [batch, ...this.#shape])
  );

  /** Wraps `fn`; throws a TypeError when it is not a Module. */
  constructor(fn: Module) {
    super();
    if (!(fn instanceof Module)) {
      throw new TypeError(`Cannot create Residual: fn is not a Module: current value is ${fn}`);
    }
    this.fn = this.register("fn", fn);
  }

  /** `Residual(fn's description)`. */
  describe(): string {
    return `Residual(${this.fn.describe()})`;
  }

  /** fn's output shape, which must be the input's; throws a RangeError otherwise. */
  outputShape(input: readonly number[]): number[] {
    const out = this.fn.outputShape(input);
    if (out.length !== input.length || out.some((d, i) => d !== input[i])) {
      throw new RangeError(
        `Cannot run ${this.describe()}: fn must keep the shape of its input for the sum: current fn maps [${
          input.join(", ")
        }] to [${out.join(", ")}]`,
      );
    }
    return out;
  }

  /** fn needs its input gradient exactly when the Residual does (the skip adds nothing else). */
  override childNeedsInputGrad(_index: number): boolean {
    return this.needsInputGrad;
  }

  /** Receives the GPU (called by the model's `to(gpu)`) and compiles the sum. */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    this.#call = new KernelCall(context.gpu, ADD_MAIN, { WG });
  }

  /** Encodes `y = x + fn(x)`; the result is owned by the Residual. */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    const fx = this.fn.forward(enc, x);
    if (fx.numel !== x.numel) {
      throw new RangeError(
        `Cannot run ${this.describe()}: fn must keep the shape of its input for the sum: current fn maps [${
          x.shape.join(", ")
        }] to [${fx.shape.join(", ")}]`,
      );
    }
    this.#shape = x.shape.slice(1);
    const bufs = this.#buffers.get(x.shape[0]);
    this.#call!.encode(enc, grid1d(Math.ceil(bufs.n / WG)), {
      a: x,
      b: fx,
      dst: bufs.y,
      p: bufs.params,
    });
    return bufs.y;
  }

  /**
   * Encodes fn's backward and, where the input gradient is needed, `dX = dY + dfn` (owned by
   * the Residual); otherwise returns fn's result, which nothing reads.
   */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    const dF = this.fn.backward(enc, dY);
    if (!this.needsInputGrad) return dF;
    const bufs = this.#buffers.get(dY.shape[0]);
    dY.expectShape(`Cannot run ${this.describe()} backward`, bufs.y.shape);
    const dX = bufs.dX();
    this.#call!.encode(enc, grid1d(Math.ceil(bufs.n / WG)), {
      a: dY,
      b: dF,
      dst: dX,
      p: bufs.params,
    });
    return dX;
  }

  /** Frees the per-batch outputs (fn is freed by the model, as every module). */
  override dispose(): void {
    this.#buffers.dispose();
  }
}
