/**
 * Linear: `y = x·Wᵀ + b` with PyTorch's initialisation. The weight is kept as [in][out] on the
 * GPU (the forward X·W reads it row by row, which measured faster than X·Wᵀ); the state dict
 * transposes to PyTorch's [out][in]. Sequential fuses a following LeakyReLU (slope ≥ 0) into the
 * forward matmul's epilogue; the backward plans reuse the textures the forward staged.
 *
 * @module
 */

import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { Matmul, type StagedOperand } from "../ops/matmul.ts";
import { Tensor } from "../tensor.ts";
import columnSumSource from "../../kernels/column_sum.wgsl" with { type: "text" };
import { ACT_BACKWARD, ACT_PARAMS, ACT_WG as WG } from "./activation_kernel.ts";
import { entryPoint, KernelCall, type KernelFamily } from "./kernel_call.ts";
import {
  type AttachContext,
  checkInput,
  disposeAll,
  Module,
  PerBatch,
  positiveInt,
} from "./module.ts";
import type { Parameter, ParameterSpec } from "./parameter.ts";
import { uniform } from "./random.ts";

/** `out[j] += Σ_i x[i][j]`: the bias gradient (kernels/column_sum.wgsl) and its bindings. */
export const COLUMN_SUM = {
  name: "column_sum",
  source: columnSumSource,
  bindings: { x: 0, out: 1, p: 2 },
} as const satisfies KernelFamily;
const COLUMN_SUM_MAIN = entryPoint(COLUMN_SUM, "main", ["x", "out", "p"]);
const SUM_PARAMS = new ParamsLayout("column_sum.Params", { M: "u32", N: "u32" });

/** Linear's per-batch plans and tensors. */
class LinearBuffers {
  readonly forward: Matmul;
  readonly y: Tensor;
  readonly #gpu;
  readonly #inF: number;
  readonly #outF: number;
  readonly #batch: number;
  #back: {
    dW: Matmul;
    dX: Matmul | null;
    dZ: Tensor;
    dXt: Tensor | null;
    sumParams: GpuBuffer;
    actParams: GpuBuffer;
  } | null = null;

  /** Creates the module; throws a RangeError naming a bad argument. */
  constructor(
    gpu: NonNullable<Module["gpu"]>,
    batch: number,
    inF: number,
    outF: number,
    bias: boolean,
    slope: number | null,
  ) {
    this.#gpu = gpu;
    this.#inF = inF;
    this.#outF = outF;
    this.#batch = batch;
    // The backward plans read the textures this forward stages (X for dW = Xᵀ·dZ, W for
    // dX = dZ·Wᵀ) instead of staging them again: reserve room for their padding.
    const up = (n: number, m: number) => Math.ceil(n / m) * m;
    this.forward = new Matmul(gpu, batch, outF, inF, {
      bias,
      activation: slope === null ? "none" : "leaky_relu",
      slope: slope ?? 0.01,
      reserveA: [up(inF, 16) / 4, up(batch, 4)],
      reserveB: [up(outF, 4) / 4, up(inF, 16)],
    });
    this.y = Tensor.empty(gpu, [batch, outF], "f32", "linear.y");
  }

  /** Backward plans, created on the first backward. */
  back(needsInputGrad: boolean, slope: number | null) {
    if (this.#back === null) {
      const gpu = this.#gpu;
      const [B, inF, outF] = [this.#batch, this.#inF, this.#outF];
      // X: the forward's staged texture, or its storage-buffer port, where a loader may have
      // recorded X as dataset rows (the weight gradient then reads them too).
      const x = this.forward.operandA();
      const w = this.forward.staged("B");
      this.#back = {
        // dW[in][out] += Xᵀ·dZ
        dW: new Matmul(gpu, inF, outF, B, {
          transA: true,
          accumulate: true,
          ...(x ? { reuseA: x } : {}),
        }),
        // dX = dZ·Wᵀ (W stored [in][out] = [N][K] of this product)
        dX: needsInputGrad
          ? new Matmul(gpu, B, inF, outF, { transB: true, ...(w ? { reuseB: w } : {}) })
          : null,
        dZ: Tensor.empty(gpu, [B, outF], "f32", "linear.dZ"),
        dXt: needsInputGrad ? Tensor.empty(gpu, [B, inF], "f32", "linear.dX") : null,
        sumParams: SUM_PARAMS.upload(gpu, { M: B, N: outF }),
        actParams: ACT_PARAMS.upload(gpu, { n: B * outF, slope: slope ?? 0 }),
      };
    }
    return this.#back;
  }

  /** Frees this module's per-batch buffers. */
  dispose(): void {
    disposeAll(this.forward, this.y);
    if (this.#back) {
      const b = this.#back;
      disposeAll(b.dW, b.dX, b.dZ, b.dXt, b.sumParams, b.actParams);
    }
  }
}

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Learn an additive bias. Default: true. */
  bias?: boolean;
}

/**
 * `y = x·Wᵀ + b` with PyTorch's default initialisation, U(−1/√in, 1/√in) for weight and bias.
 *
 * @example The lecture's first layer
 * ```ts ignore
 * const fc = new Linear(3072, 128);
 * ```
 */
export class Linear extends Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** Whether a bias is learned. */
  readonly hasBias: boolean;
  /** LeakyReLU slope when Sequential fused an activation into this layer; null otherwise. */
  fusedSlope: number | null = null;
  #weightInit: Float32Array;
  #biasInit: Float32Array | null;
  #weight: Parameter | null = null;
  #bias: Parameter | null = null;
  #x: Tensor | null = null;
  #y: Tensor | null = null;
  #buffers = new PerBatch((batch) =>
    new LinearBuffers(
      this.requireGpu(),
      batch,
      this.inFeatures,
      this.outFeatures,
      this.hasBias,
      this.fusedSlope,
    )
  );
  #colSum: KernelCall<typeof COLUMN_SUM_MAIN> | null = null;
  #actBackward: KernelCall<typeof ACT_BACKWARD> | null = null;

  /** Creates the module; throws a RangeError naming a bad argument. */
  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    positiveInt("Linear", "inFeatures", inFeatures);
    positiveInt("Linear", "outFeatures", outFeatures);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.hasBias = options.bias ?? true;
    // PyTorch: kaiming_uniform_(a=√5) gives bound 1/√in for the weight; the bias uses 1/√in too.
    const bound = 1 / Math.sqrt(inFeatures);
    const torchLayout = uniform(inFeatures * outFeatures, -bound, bound); // [out][in], drawn in PyTorch's order
    this.#weightInit = transpose(torchLayout, outFeatures, inFeatures);
    this.#biasInit = this.hasBias ? uniform(outFeatures, -bound, bound) : null;
  }

  /** A short description, e.g. for error messages. */
  describe(): string {
    return `Linear(${this.inFeatures}, ${this.outFeatures}${this.hasBias ? "" : ", bias=false"})`;
  }

  /** Declares the parameters (weight [in, out] on the GPU, bias [out]) with their initial values. */
  override parameterSpecs(): ParameterSpec[] {
    const specs: ParameterSpec[] = [{
      name: "weight",
      shape: [this.inFeatures, this.outFeatures],
      init: this.#weightInit,
      layout: "transposed", // PyTorch's [out, in]
    }];
    if (this.#biasInit) {
      specs.push({ name: "bias", shape: [this.outFeatures], init: this.#biasInit });
    }
    return specs;
  }

  /** Takes a following LeakyReLU into the forward matmul's epilogue (Sequential.to asks). */
  override absorbActivation(slope: number): boolean {
    this.fusedSlope = slope;
    return true;
  }

  /** Receives the GPU and its parameter views (called by Sequential.to). */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    [this.#weight, this.#bias = null] = params;
    this.#colSum = new KernelCall(context.gpu, COLUMN_SUM_MAIN, { WG: 32 });
    this.#actBackward = new KernelCall(context.gpu, ACT_BACKWARD, { WG });
  }

  /** Per-sample output shape for a per-sample input shape; throws on a mismatch. */
  outputShape(input: readonly number[]): number[] {
    if (input.length !== 1 || input[0] !== this.inFeatures) {
      throw new RangeError(
        `Cannot run ${this.describe()}: expected ${this.inFeatures} input features: current input is [${
          input.join(", ")
        }]`,
      );
    }
    return [this.outFeatures];
  }

  /** Encodes the forward pass; the returned tensor is owned by this module. */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    const batch = checkInput(this, x, [this.inFeatures]);
    const bufs = this.#buffers.get(batch);
    bufs.forward.encode(enc, x, this.#weight!.value, bufs.y, this.#bias?.value);
    this.#x = x;
    this.#y = bufs.y;
    return bufs.y;
  }

  /** Encodes the backward pass of the last forward; returns dX (owned by this module). */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    if (this.#x === null || this.#y === null) {
      throw new Error(`Cannot run ${this.describe()} backward: no forward was encoded`);
    }
    const batch = this.#x.shape[0];
    dY.expectShape(`Cannot run ${this.describe()} backward`, [batch, this.outFeatures]);
    const bufs = this.#buffers.get(batch);
    const back = bufs.back(this.needsInputGrad, this.fusedSlope);
    let dZ = dY;
    if (this.fusedSlope !== null) {
      // The fused activation's gradient: dZ = dY·(y > 0 ? 1 : slope).
      this.#actBackward!.encode(enc, grid1d(Math.ceil((batch * this.outFeatures) / WG)), {
        src: this.#y!,
        dy: dY,
        dst: back.dZ,
        p: back.actParams,
      });
      dZ = back.dZ;
    }
    back.dW.encode(enc, this.#x, dZ, this.#weight!.grad);
    if (this.#bias) {
      this.#colSum!.encode(enc, [Math.ceil(this.outFeatures / 32), 1, 1], {
        x: dZ,
        out: this.#bias.grad,
        p: back.sumParams,
      });
    }
    if (back.dX && back.dXt) {
      back.dX.encode(enc, dZ, this.#weight!.value, back.dXt);
      return back.dXt;
    }
    // The first layer's input gradient is never used; return dZ's shape-compatible stand-in.
    return dZ;
  }

  /**
   * Where a loader may put this layer's input of `batch` rows in place of its buffer: the
   * texture the forward stages it into (gather straight into it, then
   * {@link StagedOperand.fill}), or on any matmul variant the rows of a uint8 dataset that the
   * forward and weight-gradient products read themselves ({@link StagedOperand.fillRows}; the
   * operand of a storage-buffer plan has no texture).
   */
  override inputStaging(batch: number): StagedOperand | null {
    this.requireGpu();
    return this.#buffers.get(batch).forward.operandA();
  }

  /** Frees this module's per-batch buffers. */
  override dispose(): void {
    this.#buffers.dispose();
  }
}

/** Transposes a row-major [rows][cols] matrix. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  }
  return out;
}
