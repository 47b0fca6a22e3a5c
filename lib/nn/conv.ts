/**
 * Conv2d over NCHW tensors, as PyTorch's `nn.Conv2d`: stride, zero padding (a number, a pair,
 * "same" or "valid"), dilation, groups and bias; the weight is [out, in/groups, kh, kw] on the
 * GPU and in the state dict. Forward, the input gradient and the weight gradient run on one of
 * two paths, chosen per adapter and shape (conv_choice.ts): implicit GEMMs on the matmul
 * engine's texture design (conv_gemm.ts, kernels/conv_gemm.wgsl), or direct, register-blocked
 * loops over storage buffers (kernels/conv2d.wgsl). Neither builds an im2col buffer; on both the
 * weight gradient is split along the batch·pixels axis into chunks summed in a fixed order, so
 * small weights still keep every core busy and the bits are the same on every run (the GEMM
 * path sums the bias gradient in the same pass, the direct path in a kernel of its own).
 *
 * @module
 */

import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import conv2dSource from "../../kernels/conv2d.wgsl" with { type: "text" };
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import { type ConvAlgorithm, convAlgorithm, type ConvChoice } from "./conv_choice.ts";
import { ConvGemm, type ConvShape } from "./conv_gemm.ts";
import { type AttachContext, disposeAll, Module, positiveInt } from "./module.ts";
import type { Parameter, ParameterSpec } from "./parameter.ts";
import { uniform } from "./random.ts";

/** kernels/conv2d.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const CONV2D = {
  name: "conv2d",
  source: conv2dSource,
  bindings: {
    x: 0,
    w: 1,
    b: 2,
    dy: 3,
    y: 4,
    dx: 5,
    partial: 6,
    partial_in: 7,
    dw: 8,
    db: 9,
    p: 10,
  },
} as const satisfies KernelFamily;
const FORWARD = entryPoint(CONV2D, "forward", ["x", "w", "b", "y", "p"]);
const BACKWARD_INPUT = entryPoint(CONV2D, "backward_input", ["w", "dy", "dx", "p"]);
const BACKWARD_WEIGHT = entryPoint(CONV2D, "backward_weight", ["x", "dy", "partial", "p"]);
const REDUCE_WEIGHT = entryPoint(CONV2D, "reduce_weight", ["partial_in", "dw", "p"]);
const BACKWARD_BIAS = entryPoint(CONV2D, "backward_bias", ["dy", "db", "p"]);
const CONV_PARAMS = new ParamsLayout("conv2d.Params", {
  N: "u32",
  C: "u32",
  H: "u32",
  W: "u32",
  OC: "u32",
  OH: "u32",
  OW: "u32",
  G: "u32",
  KH: "u32",
  KW: "u32",
  SH: "u32",
  SW: "u32",
  PT: "u32",
  PL: "u32",
  DH: "u32",
  DW: "u32",
  SPLIT: "u32",
  CHUNK: "u32",
});
const WG = 64;
/**
 * Invocations the weight gradient aims for (blocks × chunks): a few thousand keep every SIMD
 * lane of a software adapter's cores busy, and a GPU's too; at most MAX_SPLIT chunks, so the
 * partial sums stay a small multiple of the weight.
 */
const WEIGHT_GRAD_BLOCKS = 4096;
const MAX_SPLIT = 64;

/** A size per spatial dimension: one number for both, or [height, width]. */
export type Pair = number | readonly [number, number];

/**
 * Options of {@link Conv2d}, with PyTorch's defaults.
 *
 * @example A strided, padded convolution without bias
 * ```ts
 * import { Conv2d, type Conv2dOptions } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * const options: Conv2dOptions = { stride: 2, padding: 1, bias: false };
 * deepEqual(new Conv2d(3, 16, 3, options).outputShape([3, 32, 32]), [16, 16, 16]);
 * ```
 */
export interface Conv2dOptions {
  /** Step between windows. Default: 1. */
  stride?: Pair;
  /**
   * Zeros added on each side; "same" keeps the size (stride 1 only; an odd total puts the extra
   * row or column at the bottom or right, as PyTorch), "valid" is 0. Default: 0.
   */
  padding?: Pair | "same" | "valid";
  /** Spacing between kernel taps. Default: 1. */
  dilation?: Pair;
  /** Channel groups: in and out channels are split in `groups` independent convolutions. Default: 1. */
  groups?: number;
  /** Learn an additive bias per output channel. Default: true. */
  bias?: boolean;
  /**
   * The kernels: "gemm" (implicit GEMMs on textures), "direct" (loops over storage buffers) or
   * "auto" (the GPU's `chooseConv`, else per adapter and shape). Default: "auto".
   */
  algorithm?: ConvChoice;
}

function pair(name: string, value: Pair, min: number): [number, number] {
  const p: [number, number] = typeof value === "number" ? [value, value] : [value[0], value[1]];
  if (
    !Array.isArray(value) && typeof value !== "number" ||
    p.some((v) => !Number.isInteger(v) || v < min)
  ) {
    throw new RangeError(
      `Cannot create Conv2d: ${name} must be ${
        min === 0 ? "≥ 0" : "> 0"
      } integers (a number or a pair): current value is ${JSON.stringify(value)}`,
    );
  }
  return p;
}

class ConvBuffers {
  readonly y: Tensor;
  readonly params: GpuBuffer;
  /** The path this shape runs on, and its GEMM plan on the gemm path. */
  readonly algorithm: ConvAlgorithm;
  readonly gemm: ConvGemm | null;
  readonly split: number;
  /** Invocations of forward, backward_input and backward_weight (one per register block). */
  readonly forwardBlocks: number;
  readonly inputBlocks: number;
  readonly weightBlocks: number;
  #dx: Tensor | null = null;
  #partial: Tensor | null = null;
  readonly #gpu;
  readonly #xShape: readonly number[];
  readonly #weightNumel: number;

  constructor(
    gpu: NonNullable<Module["gpu"]>,
    xShape: readonly number[],
    yShape: readonly number[],
    values: Record<"G" | "KH" | "KW" | "SH" | "SW" | "PT" | "PL" | "DH" | "DW", number>,
    weightNumel: number,
    options: { algorithm: ConvChoice; bias: boolean },
  ) {
    this.#gpu = gpu;
    this.#xShape = xShape;
    this.#weightNumel = weightNumel;
    const [N, C, H, W] = xShape;
    const [, OC, OH, OW] = yShape;
    this.y = Tensor.empty(gpu, yShape, "f32", "conv2d.y");
    const shape: ConvShape = { N, C, H, W, OC, OH, OW, ...values };
    this.algorithm = convAlgorithm(gpu, shape, options.algorithm);
    this.gemm = this.algorithm === "gemm" ? new ConvGemm(gpu, shape, options) : null;
    // The weight gradient's sum over the N·OH rows of dy is split in chunks so that blocks ×
    // chunks reach the target; the chunks' partial sums are added in a fixed order.
    const rows = N * OH;
    const taps = values.KH * values.KW;
    const ocg = OC / values.G, cg = C / values.G;
    const blocks = values.G * Math.ceil(ocg / 8) * Math.ceil(cg / 4) * taps;
    const wanted = Math.min(MAX_SPLIT, rows, Math.max(1, Math.ceil(WEIGHT_GRAD_BLOCKS / blocks)));
    const chunk = Math.ceil(rows / wanted);
    this.split = Math.ceil(rows / chunk);
    this.weightBlocks = blocks * this.split;
    this.forwardBlocks = N * values.G * Math.ceil(ocg / 8) * OH * Math.ceil(OW / 4);
    this.inputBlocks = N * values.G * Math.ceil(cg / 8) * H * values.SW *
      Math.ceil(Math.ceil(W / values.SW) / 4);
    this.params = CONV_PARAMS.upload(gpu, {
      N,
      C,
      H,
      W,
      OC,
      OH,
      OW,
      ...values,
      SPLIT: this.split,
      CHUNK: chunk,
    });
  }

  dx(): Tensor {
    this.#dx ??= Tensor.empty(this.#gpu, this.#xShape, "f32", "conv2d.dX");
    return this.#dx;
  }

  partial(): Tensor {
    this.#partial ??= Tensor.empty(
      this.#gpu,
      [this.split * this.#weightNumel],
      "f32",
      "conv2d.partial",
    );
    return this.#partial;
  }

  dispose(): void {
    disposeAll(this.y, this.params, this.#dx, this.#partial, this.gemm);
  }
}

/**
 * 2-D convolution over [batch, C, H, W] (PyTorch's `nn.Conv2d`), with PyTorch's default
 * initialisation: U(−1/√fan_in, 1/√fan_in) for weight and bias, fan_in = in/groups·kh·kw (what
 * `kaiming_uniform_(a=√5)` gives). State-dict entries: `weight` [out, in/groups, kh, kw] and
 * `bias` [out]. Throws a RangeError naming a bad argument.
 *
 * @example A 3×3 convolution that keeps the image size
 * ```ts
 * import { Conv2d } from "@wgnn/wgnn";
 * import { deepEqual, equal, throws } from "node:assert/strict";
 *
 * const conv = new Conv2d(3, 32, 3, { padding: "same" });
 * deepEqual(conv.outputShape([3, 32, 32]), [32, 32, 32]);
 * deepEqual(conv.parameterSpecs()[0].shape, [32, 3, 3, 3]);
 * equal(conv.describe(), "Conv2d(3, 32, kernel_size=(3, 3), padding=same)");
 * throws(() => new Conv2d(3, 32, 3, { groups: 2 }), RangeError); // 3 channels in 2 groups
 * throws(() => conv.outputShape([4, 32, 32]), RangeError); // 4 channels, not 3
 * ```
 */
export class Conv2d extends Module {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** [kh, kw]. */
  readonly kernelSize: readonly [number, number];
  /** [sh, sw]. */
  readonly stride: readonly [number, number];
  /** Zeros added [top, bottom, left, right] (unequal only for "same" with an even extent). */
  readonly pad: readonly [number, number, number, number];
  /** [dh, dw]. */
  readonly dilation: readonly [number, number];
  /** Channel groups. */
  readonly groups: number;
  /** Whether a bias is learned. */
  readonly hasBias: boolean;
  /** The `algorithm` option ("auto" unless given). */
  readonly algorithm: ConvChoice;
  readonly #paddingText: string;
  #weightInit: Float32Array;
  #biasInit: Float32Array | null;
  #weight: Parameter | null = null;
  #bias: Parameter | null = null;
  #x: Tensor | null = null;
  #dummy: Tensor | null = null;
  readonly #byShape = new Map<string, ConvBuffers>();
  #forward: KernelCall<typeof FORWARD> | null = null;
  #backInput: KernelCall<typeof BACKWARD_INPUT> | null = null;
  #backWeight: KernelCall<typeof BACKWARD_WEIGHT> | null = null;
  #reduce: KernelCall<typeof REDUCE_WEIGHT> | null = null;
  #backBias: KernelCall<typeof BACKWARD_BIAS> | null = null;

  /** Declares the layer and draws its initial weights; nothing is allocated until `to(gpu)`. */
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: Pair,
    options: Conv2dOptions = {},
  ) {
    super();
    positiveInt("Conv2d", "inChannels", inChannels);
    positiveInt("Conv2d", "outChannels", outChannels);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair("kernelSize", kernelSize, 1);
    this.stride = pair("stride", options.stride ?? 1, 1);
    this.dilation = pair("dilation", options.dilation ?? 1, 1);
    this.groups = options.groups ?? 1;
    positiveInt("Conv2d", "groups", this.groups);
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(
        `Cannot create Conv2d: groups must divide inChannels (${inChannels}) and outChannels (${outChannels}): current value is ${this.groups}`,
      );
    }
    this.hasBias = options.bias ?? true;
    this.algorithm = options.algorithm ?? "auto";
    const padding = options.padding ?? 0;
    const [kh, kw] = this.kernelSize;
    const [dh, dw] = this.dilation;
    if (padding === "same") {
      if (this.stride[0] !== 1 || this.stride[1] !== 1) {
        throw new RangeError(
          `Cannot create Conv2d: padding "same" needs stride 1: current value is [${this.stride}]`,
        );
      }
      // PyTorch: total = d·(k − 1), the smaller half before, the rest after.
      const th = dh * (kh - 1), tw = dw * (kw - 1);
      this.pad = [th >> 1, th - (th >> 1), tw >> 1, tw - (tw >> 1)];
      this.#paddingText = "same";
    } else if (padding === "valid") {
      this.pad = [0, 0, 0, 0];
      this.#paddingText = "valid";
    } else {
      const [ph, pw] = pair("padding", padding as Pair, 0);
      this.pad = [ph, ph, pw, pw];
      this.#paddingText = `(${ph}, ${pw})`;
    }
    const fanIn = (inChannels / this.groups) * kh * kw;
    const bound = 1 / Math.sqrt(fanIn);
    this.#weightInit = uniform(outChannels * fanIn, -bound, bound); // [out][in/g][kh][kw]
    this.#biasInit = this.hasBias ? uniform(outChannels, -bound, bound) : null;
  }

  /** As PyTorch prints it, e.g. `Conv2d(3, 32, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))`. */
  describe(): string {
    const parts = [`${this.inChannels}`, `${this.outChannels}`];
    parts.push(`kernel_size=(${this.kernelSize.join(", ")})`);
    if (this.stride.some((s) => s !== 1)) parts.push(`stride=(${this.stride.join(", ")})`);
    if (this.#paddingText !== "(0, 0)") parts.push(`padding=${this.#paddingText}`);
    if (this.dilation.some((d) => d !== 1)) parts.push(`dilation=(${this.dilation.join(", ")})`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (!this.hasBias) parts.push("bias=False");
    return `Conv2d(${parts.join(", ")})`;
  }

  /** `weight` [out, in/groups, kh, kw] and, with a bias, `bias` [out]. */
  override parameterSpecs(): ParameterSpec[] {
    const specs: ParameterSpec[] = [{
      name: "weight",
      shape: [this.outChannels, this.inChannels / this.groups, ...this.kernelSize],
      init: this.#weightInit,
    }];
    if (this.#biasInit) {
      specs.push({ name: "bias", shape: [this.outChannels], init: this.#biasInit });
    }
    return specs;
  }

  /** Receives the GPU and its parameter views, and compiles the kernels. */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    [this.#weight, this.#bias = null] = params;
    const gpu = context.gpu;
    this.#dummy = Tensor.empty(gpu, [1], "f32", "conv2d.no_bias");
    this.#forward = new KernelCall(gpu, FORWARD, { WG, BIAS: Number(this.hasBias) });
    this.#backInput = new KernelCall(gpu, BACKWARD_INPUT, { WG });
    this.#backWeight = new KernelCall(gpu, BACKWARD_WEIGHT, { WG });
    this.#reduce = new KernelCall(gpu, REDUCE_WEIGHT, { WG });
    this.#backBias = new KernelCall(gpu, BACKWARD_BIAS);
  }

  /**
   * [out, OH, OW] for a per-sample input [in, H, W], OH = ⌊(H + pads − d·(k − 1) − 1)/s⌋ + 1;
   * throws a RangeError for another rank or channel count, or a kernel larger than the padded
   * input.
   */
  outputShape(input: readonly number[]): number[] {
    if (input.length !== 3 || input[0] !== this.inChannels) {
      throw new RangeError(
        `Cannot run ${this.describe()}: expected input [${this.inChannels}, H, W]: current input is [${
          input.join(", ")
        }]`,
      );
    }
    const [, H, W] = input;
    const [pt, pb, pl, pr] = this.pad;
    const extentH = this.dilation[0] * (this.kernelSize[0] - 1) + 1;
    const extentW = this.dilation[1] * (this.kernelSize[1] - 1) + 1;
    if (H + pt + pb < extentH || W + pl + pr < extentW) {
      throw new RangeError(
        `Cannot run ${this.describe()}: the kernel (${extentH}×${extentW} with dilation) is larger than the padded input (${
          H + pt + pb
        }×${W + pl + pr}): current input is [${input.join(", ")}]`,
      );
    }
    const OH = Math.floor((H + pt + pb - extentH) / this.stride[0]) + 1;
    const OW = Math.floor((W + pl + pr - extentW) / this.stride[1]) + 1;
    return [this.outChannels, OH, OW];
  }

  /** The activations for input shape `xShape`, created on first use (one set per batch size). */
  #buffersFor(xShape: readonly number[]): ConvBuffers {
    const key = xShape.join(",");
    let bufs = this.#byShape.get(key);
    if (!bufs) {
      const yShape = [xShape[0], ...this.outputShape(xShape.slice(1))];
      bufs = new ConvBuffers(
        this.requireGpu(),
        xShape,
        yShape,
        {
          G: this.groups,
          KH: this.kernelSize[0],
          KW: this.kernelSize[1],
          SH: this.stride[0],
          SW: this.stride[1],
          PT: this.pad[0],
          PL: this.pad[2],
          DH: this.dilation[0],
          DW: this.dilation[1],
        },
        this.#weightInit.length,
        { algorithm: this.algorithm, bias: this.hasBias },
      );
      this.#byShape.set(key, bufs);
    }
    return bufs;
  }

  /** Encodes the convolution of `x` [batch, in, H, W]; the result is owned by the layer. */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    if (x.dtype !== "f32" || x.shape.length !== 4) {
      throw new RangeError(
        `Cannot run ${this.describe()}: expected input [batch, ${this.inChannels}, H, W] f32: current input "${x.label}" is [${
          x.shape.join(", ")
        }] ${x.dtype}`,
      );
    }
    const bufs = this.#buffersFor(x.shape);
    this.#x = x;
    if (bufs.gemm) {
      const b = this.#bias?.value ?? this.#dummy!;
      bufs.gemm.forward(enc, x, this.#weight!.value, b, bufs.y);
      return bufs.y;
    }
    this.#forward!.encode(enc, grid1d(Math.ceil(bufs.forwardBlocks / WG)), {
      x,
      w: this.#weight!.value,
      b: this.#bias?.value ?? this.#dummy!,
      y: bufs.y,
      p: bufs.params,
    });
    return bufs.y;
  }

  /**
   * Encodes the backward pass of the last forward: adds into the weight's and bias's gradients
   * and returns dX (owned by the layer); where the model never needs dX (the first layer with
   * parameters) it is not computed and `dY` is returned in its place, as Linear does.
   */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    if (this.#x === null) {
      throw new Error(`Cannot run ${this.describe()} backward: no forward was encoded`);
    }
    const x = this.#x;
    const bufs = this.#buffersFor(x.shape);
    dY.expectShape(`Cannot run ${this.describe()} backward`, bufs.y.shape);
    const OC = this.outChannels;
    const p = bufs.params;
    if (bufs.gemm) {
      // The GEMM path sums db inside its weight-gradient pass.
      const dx = this.needsInputGrad ? bufs.dx() : null;
      const db = this.#bias?.grad ?? null;
      bufs.gemm.backward(enc, dY, this.#weight!.value, { dw: this.#weight!.grad, db, dx });
      return dx ?? dY;
    }
    if (this.#bias) this.#backBias!.encode(enc, [OC, 1, 1], { dy: dY, db: this.#bias.grad, p });
    const partial = bufs.partial();
    this.#backWeight!.encode(enc, grid1d(Math.ceil(bufs.weightBlocks / WG)), {
      x,
      dy: dY,
      partial,
      p,
    });
    this.#reduce!.encode(enc, grid1d(Math.ceil(this.#weightInit.length / WG)), {
      partial_in: partial,
      dw: this.#weight!.grad,
      p,
    });
    if (!this.needsInputGrad) return dY;
    const dx = bufs.dx();
    this.#backInput!.encode(enc, grid1d(Math.ceil(bufs.inputBlocks / WG)), {
      w: this.#weight!.value,
      dy: dY,
      dx,
      p,
    });
    return dx;
  }

  /** Frees the per-shape activations (weight and bias belong to the model's arena). */
  override dispose(): void {
    for (const bufs of this.#byShape.values()) bufs.dispose();
    this.#byShape.clear();
    disposeAll(this.#dummy);
  }
}
