/**
 * Pooling over NCHW tensors, as PyTorch's `MaxPool2d`, `AvgPool2d` (count_include_pad) and
 * `AdaptiveAvgPool2d`, in floor mode (kernels/pool2d.wgsl). Max pooling saves the argmax of each
 * window in forward (the first maximum, as PyTorch) and routes the gradient to it; every
 * backward gathers at each input, so it needs no atomics and gives the same bits every run.
 *
 * @module
 */

import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { MAX_GRID } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import pool2dSource from "../../kernels/pool2d.wgsl" with { type: "text" };
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import { type AttachContext, disposeAll, Module } from "./module.ts";
import type { Parameter } from "./parameter.ts";
import type { Pair } from "./conv.ts";

/** kernels/pool2d.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const POOL2D = {
  name: "pool2d",
  source: pool2dSource,
  bindings: { x: 0, dy: 1, idx_in: 2, y: 3, idx: 4, dx: 5, p: 6 },
} as const satisfies KernelFamily;
const MAX_FORWARD = entryPoint(POOL2D, "max_forward", ["x", "y", "idx", "p"]);
const MAX_BACKWARD = entryPoint(POOL2D, "max_backward", ["dy", "idx_in", "dx", "p"]);
const AVG_FORWARD = entryPoint(POOL2D, "avg_forward", ["x", "y", "p"]);
const AVG_BACKWARD = entryPoint(POOL2D, "avg_backward", ["dy", "dx", "p"]);
const POOL_PARAMS = new ParamsLayout("pool2d.Params", {
  planes: "u32",
  H: "u32",
  W: "u32",
  OH: "u32",
  OW: "u32",
  KH: "u32",
  KW: "u32",
  SH: "u32",
  SW: "u32",
  PH: "u32",
  PW: "u32",
});
/**
 * pool2d.wgsl's grid over [N, C, H, W] positions: 8×8 of a plane per workgroup, each invocation
 * looping over up to 4 planes (more where N·C/4 passes the 65,535 limit).
 */
function planeGrid(shape: readonly number[]): [number, number, number] {
  const [N, C, H, W] = shape;
  return [Math.ceil(W / 8), Math.ceil(H / 8), Math.min(Math.ceil((N * C) / 4), MAX_GRID)];
}

function pair(what: string, name: string, value: Pair, min: number): [number, number] {
  const p: [number, number] = typeof value === "number" ? [value, value] : [value?.[0], value?.[1]];
  if (p.some((v) => !Number.isInteger(v) || v < min)) {
    throw new RangeError(
      `Cannot create ${what}: ${name} must be ${
        min === 0 ? "≥ 0" : "> 0"
      } integers (a number or a pair): current value is ${JSON.stringify(value)}`,
    );
  }
  return p;
}

class PoolBuffers {
  readonly y: Tensor;
  readonly idx: Tensor | null;
  readonly params: GpuBuffer;
  #dx: Tensor | null = null;
  readonly #gpu;
  readonly #xShape: readonly number[];

  constructor(
    gpu: NonNullable<Module["gpu"]>,
    xShape: readonly number[],
    yShape: readonly number[],
    window: Record<"KH" | "KW" | "SH" | "SW" | "PH" | "PW", number>,
    withIndex: boolean,
  ) {
    this.#gpu = gpu;
    this.#xShape = xShape;
    this.y = Tensor.empty(gpu, yShape, "f32", "pool2d.y");
    this.idx = withIndex ? Tensor.empty(gpu, yShape, "u32", "pool2d.argmax") : null;
    const [N, C, H, W] = xShape;
    this.params = POOL_PARAMS.upload(gpu, {
      planes: N * C,
      H,
      W,
      OH: yShape[2],
      OW: yShape[3],
      ...window,
    });
  }

  dx(): Tensor {
    this.#dx ??= Tensor.empty(this.#gpu, this.#xShape, "f32", "pool2d.dX");
    return this.#dx;
  }

  dispose(): void {
    disposeAll(this.y, this.idx, this.params, this.#dx);
  }
}

/**
 * What the three pools share: shape checks, per-shape buffers and the dispatches of
 * kernels/pool2d.wgsl. Not built directly: use {@link MaxPool2d}, {@link AvgPool2d} or
 * {@link AdaptiveAvgPool2d}.
 *
 * @example Every pool is a Pool2d
 * ```ts
 * import { MaxPool2d, Pool2d } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * equal(new MaxPool2d(2) instanceof Pool2d, true);
 * ```
 */
export abstract class Pool2d extends Module {
  readonly #byShape = new Map<string, PoolBuffers>();
  #x: Tensor | null = null;
  #forward: KernelCall<typeof MAX_FORWARD> | KernelCall<typeof AVG_FORWARD> | null = null;
  #maxBackward: KernelCall<typeof MAX_BACKWARD> | null = null;
  #avgBackward: KernelCall<typeof AVG_BACKWARD> | null = null;

  /** `kind` picks the kernel entry points. */
  protected constructor(readonly kind: "max" | "avg" | "adaptive") {
    super();
  }

  /** Kernel, stride and padding as the kernel's Params take them (adaptive: unused). */
  protected abstract window(): Record<"KH" | "KW" | "SH" | "SW" | "PH" | "PW", number>;

  /** [OH, OW] for an H×W input; throws a RangeError when the window does not fit. */
  protected abstract outputSize(H: number, W: number): [number, number];

  /** [C, OH, OW] for a per-sample input [C, H, W]; throws a RangeError for another rank. */
  outputShape(input: readonly number[]): number[] {
    if (input.length !== 3 || input.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new RangeError(
        `Cannot run ${this.describe()}: expected input [C, H, W]: current input is [${
          input.join(", ")
        }]`,
      );
    }
    return [input[0], ...this.outputSize(input[1], input[2])];
  }

  /** Compiles the kernels. */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    const constants = { ADAPTIVE: Number(this.kind === "adaptive") };
    if (this.kind === "max") {
      this.#forward = new KernelCall(context.gpu, MAX_FORWARD, constants);
      this.#maxBackward = new KernelCall(context.gpu, MAX_BACKWARD, constants);
    } else {
      this.#forward = new KernelCall(context.gpu, AVG_FORWARD, constants);
      this.#avgBackward = new KernelCall(context.gpu, AVG_BACKWARD, constants);
    }
  }

  #buffersFor(xShape: readonly number[]): PoolBuffers {
    const key = xShape.join(",");
    let bufs = this.#byShape.get(key);
    if (!bufs) {
      const yShape = [xShape[0], ...this.outputShape(xShape.slice(1))];
      bufs = new PoolBuffers(this.requireGpu(), xShape, yShape, this.window(), this.kind === "max");
      this.#byShape.set(key, bufs);
    }
    return bufs;
  }

  /** Encodes the pooling of `x` [batch, C, H, W]; the result is owned by the layer. */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    if (x.dtype !== "f32" || x.shape.length !== 4) {
      throw new RangeError(
        `Cannot run ${this.describe()}: expected input [batch, C, H, W] f32: current input "${x.label}" is [${
          x.shape.join(", ")
        }] ${x.dtype}`,
      );
    }
    const bufs = this.#buffersFor(x.shape);
    const grid = planeGrid(bufs.y.shape);
    if (bufs.idx) {
      const call = this.#forward as KernelCall<typeof MAX_FORWARD>;
      call.encode(enc, grid, { x, y: bufs.y, idx: bufs.idx, p: bufs.params });
    } else {
      const call = this.#forward as KernelCall<typeof AVG_FORWARD>;
      call.encode(enc, grid, { x, y: bufs.y, p: bufs.params });
    }
    this.#x = x;
    return bufs.y;
  }

  /** Encodes the backward pass of the last forward; returns dX (owned by the layer). */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    if (this.#x === null) {
      throw new Error(`Cannot run ${this.describe()} backward: no forward was encoded`);
    }
    const bufs = this.#buffersFor(this.#x.shape);
    dY.expectShape(`Cannot run ${this.describe()} backward`, bufs.y.shape);
    const dx = bufs.dx();
    const grid = planeGrid(dx.shape);
    if (bufs.idx) {
      this.#maxBackward!.encode(enc, grid, { dy: dY, idx_in: bufs.idx, dx, p: bufs.params });
    } else {
      this.#avgBackward!.encode(enc, grid, { dy: dY, dx, p: bufs.params });
    }
    return dx;
  }

  /** Frees the per-shape activations. */
  override dispose(): void {
    for (const bufs of this.#byShape.values()) bufs.dispose();
    this.#byShape.clear();
  }
}

/**
 * Kernel, stride and padding of a windowed pool, checked as PyTorch checks them (what
 * {@link MaxPool2d.geometry} and {@link AvgPool2d.geometry} hold).
 *
 * @example
 * ```ts
 * import { MaxPool2d } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(new MaxPool2d(3, 2).geometry.stride, [2, 2]);
 * ```
 */
export class PoolWindow {
  /** [kh, kw]. */
  readonly kernel: [number, number];
  /** [sh, sw]. */
  readonly stride: [number, number];
  /** [ph, pw], on each side. */
  readonly padding: [number, number];

  /** Checks the arguments of `what` (named in errors); `stride` Default: the kernel. */
  constructor(what: string, kernel: Pair, stride: Pair | undefined, padding: Pair) {
    this.kernel = pair(what, "kernelSize", kernel, 1);
    this.stride = pair(what, "stride", stride ?? kernel, 1);
    this.padding = pair(what, "padding", padding, 0);
    if (this.padding[0] > this.kernel[0] / 2 || this.padding[1] > this.kernel[1] / 2) {
      throw new RangeError(
        `Cannot create ${what}: padding must be at most half the kernel size (${
          this.kernel.join("×")
        }): current value is [${this.padding.join(", ")}]`,
      );
    }
  }

  /** The kernel's Params fields. */
  params(): Record<"KH" | "KW" | "SH" | "SW" | "PH" | "PW", number> {
    const [KH, KW] = this.kernel, [SH, SW] = this.stride, [PH, PW] = this.padding;
    return { KH, KW, SH, SW, PH, PW };
  }

  /** [OH, OW] on H×W in floor mode; throws a RangeError naming `layer` when it does not fit. */
  outputSize(layer: string, H: number, W: number): [number, number] {
    const OH = Math.floor((H + 2 * this.padding[0] - this.kernel[0]) / this.stride[0]) + 1;
    const OW = Math.floor((W + 2 * this.padding[1] - this.kernel[1]) / this.stride[1]) + 1;
    if (OH < 1 || OW < 1) {
      throw new RangeError(
        `Cannot run ${layer}: the kernel (${
          this.kernel.join("×")
        }) is larger than the padded input (${H + 2 * this.padding[0]}×${
          W + 2 * this.padding[1]
        }): current input is ${H}×${W}`,
      );
    }
    return [OH, OW];
  }

  /** As PyTorch prints it: `kernel_size=(…), stride=(…), padding=(…)`. */
  text(): string {
    return `kernel_size=(${this.kernel.join(", ")}), stride=(${this.stride.join(", ")}), padding=(${
      this.padding.join(", ")
    })`;
  }
}

/**
 * Max over each window (PyTorch's `MaxPool2d(kernel_size, stride, padding)`, floor mode, no
 * dilation); backward routes each gradient to its window's first maximum. Throws a RangeError
 * for a kernel, stride or padding that is not a positive (padding: non-negative) integer, or a
 * padding over half the kernel (as PyTorch).
 *
 * @example Halve the image
 * ```ts
 * import { MaxPool2d } from "@wgnn/wgnn";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * const pool = new MaxPool2d(2); // stride defaults to the kernel size
 * deepEqual(pool.outputShape([32, 16, 16]), [32, 8, 8]);
 * deepEqual(new MaxPool2d(3, 2, 1).outputShape([8, 7, 7]), [8, 4, 4]);
 * throws(() => new MaxPool2d(2, 2, 2), RangeError); // padding over half the kernel
 * ```
 */
export class MaxPool2d extends Pool2d {
  /** Kernel, stride and padding per dimension. */
  readonly geometry: PoolWindow;

  /**
   * `kernelSize` (a number or [kh, kw]); `stride` Default: the kernel size; `padding`
   * (implicit −∞ on each side) Default: 0.
   */
  constructor(kernelSize: Pair, stride?: Pair, padding: Pair = 0) {
    super("max");
    this.geometry = new PoolWindow("MaxPool2d", kernelSize, stride, padding);
  }

  /** As PyTorch prints it, e.g. `MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))`. */
  describe(): string {
    return `MaxPool2d(${this.geometry.text()})`;
  }

  /** Kernel, stride and padding as the kernel's Params take them. */
  protected window(): Record<"KH" | "KW" | "SH" | "SW" | "PH" | "PW", number> {
    return this.geometry.params();
  }

  /** [OH, OW] in floor mode; throws a RangeError when the kernel exceeds the padded input. */
  protected outputSize(H: number, W: number): [number, number] {
    return this.geometry.outputSize(this.describe(), H, W);
  }
}

/**
 * Mean over each window (PyTorch's `AvgPool2d(kernel_size, stride, padding)` with its defaults:
 * count_include_pad, floor mode): the divisor is always kh·kw. Throws a RangeError as
 * {@link MaxPool2d}.
 *
 * @example
 * ```ts
 * import { AvgPool2d } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(new AvgPool2d(3, 1, 1).outputShape([4, 5, 5]), [4, 5, 5]);
 * ```
 */
export class AvgPool2d extends Pool2d {
  /** Kernel, stride and padding per dimension. */
  readonly geometry: PoolWindow;

  /**
   * `kernelSize` (a number or [kh, kw]); `stride` Default: the kernel size; `padding` (zeros,
   * counted in the mean) Default: 0.
   */
  constructor(kernelSize: Pair, stride?: Pair, padding: Pair = 0) {
    super("avg");
    this.geometry = new PoolWindow("AvgPool2d", kernelSize, stride, padding);
  }

  /** As PyTorch prints it, e.g. `AvgPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))`. */
  describe(): string {
    return `AvgPool2d(${this.geometry.text()})`;
  }

  /** Kernel, stride and padding as the kernel's Params take them. */
  protected window(): Record<"KH" | "KW" | "SH" | "SW" | "PH" | "PW", number> {
    return this.geometry.params();
  }

  /** [OH, OW] in floor mode; throws a RangeError when the kernel exceeds the padded input. */
  protected outputSize(H: number, W: number): [number, number] {
    return this.geometry.outputSize(this.describe(), H, W);
  }
}

/**
 * Mean over an adaptive grid of windows giving an OH×OW output whatever the input size
 * (PyTorch's `AdaptiveAvgPool2d(output_size)`): output (i, j) averages rows
 * [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉) and the same columns. `AdaptiveAvgPool2d(1)` is global average
 * pooling. Throws a RangeError for a size that is not a positive integer (or pair).
 *
 * @example Global average pooling before the classifier
 * ```ts
 * import { AdaptiveAvgPool2d } from "@wgnn/wgnn";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * deepEqual(new AdaptiveAvgPool2d(1).outputShape([64, 8, 8]), [64, 1, 1]);
 * deepEqual(new AdaptiveAvgPool2d([2, 3]).outputShape([4, 5, 7]), [4, 2, 3]);
 * throws(() => new AdaptiveAvgPool2d(0), RangeError);
 * ```
 */
export class AdaptiveAvgPool2d extends Pool2d {
  /** [OH, OW]. */
  readonly outputSizes: readonly [number, number];

  /** `outputSize`: a number for a square output, or [OH, OW]. */
  constructor(outputSize: Pair) {
    super("adaptive");
    this.outputSizes = pair("AdaptiveAvgPool2d", "outputSize", outputSize, 1);
  }

  /** As PyTorch prints it, e.g. `AdaptiveAvgPool2d(output_size=(1, 1))`. */
  describe(): string {
    return `AdaptiveAvgPool2d(output_size=(${this.outputSizes.join(", ")}))`;
  }

  /** Unused by adaptive windows: zeros. */
  protected window(): Record<"KH" | "KW" | "SH" | "SW" | "PH" | "PW", number> {
    return { KH: 0, KW: 0, SH: 0, SW: 0, PH: 0, PW: 0 };
  }

  /** The fixed output size, whatever the input's. */
  protected outputSize(_H: number, _W: number): [number, number] {
    return [this.outputSizes[0], this.outputSizes[1]];
  }
}
