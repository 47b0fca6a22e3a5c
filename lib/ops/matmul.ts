/**
 * The matmul engine: `C = op(A)·op(B)` with transpose flags and a fused epilogue (bias,
 * LeakyReLU, accumulate), planned once per shape and encoded into a step's command buffer.
 *
 * Three kernel variants serve different adapters:
 * - `texture` (kernels/matmul_texture.wgsl): operands are packed into read-only rgba32float
 *   storage textures; each invocation keeps a 16×16 block of C in registers. On Mesa's
 *   software adapters this is about 9× faster than the 4×4 storage-buffer yardstick
 *   (BENCHMARKS.md): Mesa turns every storage-buffer load into a per-lane loop, while texture
 *   reads compile to 128-bit loads.
 * - `tiled` (kernels/matmul_tiled.wgsl): storage buffers with shared-memory tiles, the usual
 *   winner on real GPUs, and the fallback when an operand exceeds the texture size limit.
 * - `blocked` (kernels/matmul_blocked.wgsl): storage buffers, an 8×8 register block and no
 *   shared memory, for software adapters that cannot read storage textures (Mesa's GL).
 *
 * A plan takes its kernel from its `variant` option, else from its GPU's choice
 * ({@link matmulChoice} in matmul_choice.ts: the adapter kind's default unless `matmulVariant`
 * in matmul_trial.ts, or `chooseMatmul`, chose before the first plan).
 *
 * @module
 */

import { BindGroupCache, bufferKey } from "../gpu/bind_cache.ts";
import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import { ceilDiv, checkGrid, grid1d, type Kernel, KERNELS } from "../gpu/kernels.ts";
import { StepEncoder } from "../gpu/encoder.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import { adapterKind } from "../gpu/defaults.ts";
import { adapterVectorWidth } from "../gpu/vector_width.ts";
import { RowsPort, type StagedOperand, TextureOperand } from "./staging.ts";
import { dummyRows, rowConstants, rowEntries, type RowSource } from "./rows.ts";
import {
  bufferVariant,
  DEFAULT_TILING,
  type MatmulChoice,
  matmulChoice,
  type MatmulVariant,
  TILINGS,
} from "./matmul_choice.ts";

export type { StagedOperand } from "./staging.ts";
export type { RowSource } from "./rows.ts";

/** Options of a {@link Matmul} plan. */
export interface MatmulOptions {
  /** A is stored [K][M] and used transposed. Default: false. */
  transA?: boolean;
  /** B is stored [N][K] and used transposed. Default: false. */
  transB?: boolean;
  /** Add a bias vector of length N to every row. Default: false. */
  bias?: boolean;
  /** Activation applied after the bias. Default: "none". */
  activation?: "none" | "leaky_relu";
  /** LeakyReLU negative slope. Default: 0.01, as PyTorch. */
  slope?: number;
  /** Add the product into C instead of overwriting it (gradient accumulation). Default: false. */
  accumulate?: boolean;
  /**
   * Kernel family. A plan that names one reads nothing else, so the start-up probe and trial can
   * build plans before the choice is made. Default: the GPU's choice (see {@link matmulVariant}).
   */
  variant?: MatmulVariant;
  /**
   * The `tiled` variant's tiling, a key of `TILINGS` ("64x64", "32x32", "32x32-64"). Default: the one of
   * the choice in force (`variant`, else the GPU's), else "64x64" (`DEFAULT_TILING`).
   */
  tiling?: string;
  /**
   * Read operand A (or B) from a texture another plan stages earlier in the same step, instead
   * of staging it again: e.g. a Linear's weight gradient Xᵀ·dZ reads the X its forward staged.
   * The other plan must stage the same stored matrix (same rows and columns). For A, the other
   * plan's {@link Matmul.operandA} of a storage-buffer plan (no texture) also works: this plan
   * then reads the dataset rows recorded there ({@link StagedOperand.fillRows}), else A itself.
   * Default: none (this plan stages A itself, where its variant stages operands).
   */
  reuseA?: StagedOperand;
  /** Like `reuseA`, for operand B. Default: none. */
  reuseB?: StagedOperand;
  /**
   * Texture extents to allocate at least, so a later plan can reuse this one's staging. Default:
   * none (just what A needs).
   */
  reserveA?: [number, number];
  /** Like `reserveA`, for operand B. Default: none (just what B needs). */
  reserveB?: [number, number];
}

const MATMUL_PARAMS = new ParamsLayout("matmul.Params", {
  M: "u32",
  N: "u32",
  K: "u32",
  slope: "f32",
});
/** The texture variant's block of C per invocation (fixed in the kernel) and workgroup width. */
const TEXTURE_BLOCK = 16;
const TEXTURE_WG = 8;
function maxDims(need: [number, number], reserve?: [number, number]): [number, number] {
  return reserve ? [Math.max(need[0], reserve[0]), Math.max(need[1], reserve[1])] : need;
}

function checkReuse(
  which: string,
  staged: StagedOperand,
  rows: number,
  cols: number,
  need: [number, number],
): StagedOperand {
  if (
    staged.rows !== rows || staged.cols !== cols || staged.width < need[0] ||
    staged.height < need[1]
  ) {
    throw new RangeError(
      `Cannot reuse a staged operand ${which}: it holds ${staged.rows}x${staged.cols} in ${staged.width}x${staged.height} texels; ` +
        `this plan needs ${rows}x${cols} in at least ${need[0]}x${need[1]}`,
    );
  }
  return staged;
}

function checkDim(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(
      `Cannot plan matmul: ${name} must be a positive integer: current value is ${value}`,
    );
  }
}

/**
 * A planned matmul for fixed M, N, K and options. Build once, {@link Matmul.encode} every step,
 * {@link Matmul.dispose} when done: the plan owns its uniforms and staging textures.
 */
export class Matmul {
  /** Rows of C. */
  readonly M: number;
  /** Columns of C. */
  readonly N: number;
  /** The reduced dimension. */
  readonly K: number;
  /** The kernel family this plan uses. */
  readonly variant: MatmulVariant;
  /** The `tiled` variant's tiling (a key of `TILINGS`); null for the other variants. */
  readonly tiling: string | null = null;
  /** The options in force, defaults filled in. */
  readonly options: Readonly<
    Required<
      Omit<MatmulOptions, "variant" | "tiling" | "reuseA" | "reuseB" | "reserveA" | "reserveB">
    >
  >;
  readonly #gpu: Gpu;
  readonly #params: GpuBuffer;
  readonly #dummyBias: GpuBuffer;
  readonly #constants: Record<string, number>;
  readonly #grid: [number, number, number];
  /** Staging this plan owns (and encodes), or null when it reuses another plan's. */
  readonly #stageA: TextureOperand | null = null;
  readonly #stageB: TextureOperand | null = null;
  /** The textures the kernel reads (own staging or reused). */
  readonly #texA: StagedOperand | null = null;
  readonly #texB: StagedOperand | null = null;
  /**
   * Where a producer may record A's values as dataset rows: the texture operand (own or
   * reused), or for storage-buffer plans a {@link RowsPort} (own, or reused from another plan).
   */
  readonly #portA: StagedOperand | null = null;
  readonly #groups = new BindGroupCache();
  /** Bind groups of row-reading dispatches, one per row source (a batch of a loader). */
  #rowGroups = new WeakMap<RowSource, { key: string; group: GPUBindGroup }>();
  readonly #kernel: Kernel;
  /** The compiled kernels, looked up on first use: A where it is, and A from rows by constants. */
  #pipeline: GPUComputePipeline | null = null;
  readonly #rowPipelines = new Map<string, GPUComputePipeline>();
  readonly #label: string;

  /** Plans `C[M×N] = op(A)·op(B)`; allocates uniforms and staging textures once. Throws a RangeError for non-positive sizes or a non-finite slope. */
  constructor(gpu: Gpu, M: number, N: number, K: number, options: MatmulOptions = {}) {
    checkDim("M", M);
    checkDim("N", N);
    checkDim("K", K);
    const slope = options.slope ?? 0.01;
    if (!Number.isFinite(slope)) {
      throw new RangeError(`Cannot plan matmul: slope must be finite: current value is ${slope}`);
    }
    this.#gpu = gpu;
    this.M = M;
    this.N = N;
    this.K = K;
    this.options = {
      transA: options.transA ?? false,
      transB: options.transB ?? false,
      bias: options.bias ?? false,
      activation: options.activation ?? "none",
      slope,
      accumulate: options.accumulate ?? false,
    };
    const o = this.options;
    const common = {
      TRANS_A: Number(o.transA),
      TRANS_B: Number(o.transB),
      BIAS: Number(o.bias),
      LEAKY: Number(o.activation === "leaky_relu"),
      ACCUMULATE: Number(o.accumulate),
    };

    // The plan's choice: its own, else its GPU's (made once, before or by the first plan).
    const choice: MatmulChoice = options.variant !== undefined
      ? { variant: options.variant }
      : matmulChoice(gpu);
    let variant = choice.variant;
    const mBlocks = ceilDiv(M, TEXTURE_BLOCK);
    const nBlocks = ceilDiv(N, TEXTURE_BLOCK);
    const K4 = ceilDiv(K, 4);
    // Texture extents: every load of the kernel must land inside the zero-padded texture.
    const needA: [number, number] = o.transA ? [mBlocks * 4, K4 * 4] : [K4, mBlocks * 16];
    const needB: [number, number] = o.transB ? [K4, nBlocks * 16] : [nBlocks * 4, K4 * 4];
    const dimsA = maxDims(needA, options.reserveA);
    const dimsB = maxDims(needB, options.reserveB);
    const max = gpu.limits.maxTextureDimension2D;
    // A reused operand without a texture is another storage-buffer plan's A: read it likewise.
    const portOnly = options.reuseA !== undefined && options.reuseA.texture === null;
    const reusing = (options.reuseA !== undefined && !portOnly) || options.reuseB !== undefined;
    if (
      variant === "texture" &&
      (portOnly || (!reusing && [...dimsA, ...dimsB].some((d) => d > max)))
    ) {
      variant = bufferVariant(adapterKind(gpu));
    }
    if (reusing && variant !== "texture") {
      throw new RangeError(
        `Cannot plan matmul ${M}x${K}x${N}: reuseA/reuseB need the texture variant: current variant is ${variant}`,
      );
    }
    if (portOnly && options.reuseB !== undefined) {
      throw new RangeError(
        `Cannot plan matmul ${M}x${K}x${N}: reuseB needs the texture variant, but reuseA is a storage-buffer operand`,
      );
    }
    this.variant = variant;
    // Register-blocked variants run one invocation per SIMD lane on llvmpipe: 8 lanes of f32
    // at 256 bits, 16 at 512.
    const wg = (adapterVectorWidth(gpu.adapter.description) ?? 256) >= 512 ? 16 : TEXTURE_WG;

    if (variant === "texture") {
      const [rowsA, colsA] = o.transA ? [K, M] : [M, K];
      const [rowsB, colsB] = o.transB ? [N, K] : [K, N];
      this.#texA = options.reuseA
        ? checkReuse("A", options.reuseA, rowsA, colsA, needA)
        : (this.#stageA = new TextureOperand(gpu, "matmul A", rowsA, colsA, dimsA[0], dimsA[1]));
      this.#texB = options.reuseB
        ? checkReuse("B", options.reuseB, rowsB, colsB, needB)
        : (this.#stageB = new TextureOperand(gpu, "matmul B", rowsB, colsB, dimsB[0], dimsB[1]));
      this.#portA = this.#texA;
      this.#constants = { ...common, WG_X: wg };
      this.#grid = grid1d(ceilDiv(mBlocks * nBlocks, wg));
    } else if (variant === "blocked") {
      this.#constants = { ...common, WG_X: wg };
      this.#grid = grid1d(ceilDiv(ceilDiv(M, 8) * ceilDiv(N, 8), wg));
    } else {
      const name = options.tiling ?? choice.tiling ?? DEFAULT_TILING;
      const tiling = Object.hasOwn(TILINGS, name) ? TILINGS[name] : undefined;
      if (!tiling) {
        throw new RangeError(
          `Cannot plan a matmul: unknown tiling "${name}" (expected one of ${
            Object.keys(TILINGS).join(", ")
          })`,
        );
      }
      this.tiling = name;
      this.#constants = { ...common, ...tiling };
      const BM = tiling.WG_Y * tiling.RM;
      const BN = tiling.WG_X * tiling.RN;
      this.#grid = checkGrid("matmul_tiled", [ceilDiv(N, BN), ceilDiv(M, BM), 1]);
    }
    if (variant !== "texture") {
      const [rowsA, colsA] = o.transA ? [K, M] : [M, K];
      this.#portA = options.reuseA ?? new RowsPort(gpu.limits, rowsA, colsA);
    }
    const kernel = variant === "texture"
      ? KERNELS.matmul_texture
      : variant === "blocked"
      ? KERNELS.matmul_blocked
      : KERNELS.matmul_tiled;
    this.#kernel = kernel;
    this.#label = `${kernel.name} ${M}x${K}x${N}`;
    this.#params = MATMUL_PARAMS.upload(gpu, { M, N, K, slope }, "matmul params");
    this.#dummyBias = gpu.createBuffer(16, GPUBufferUsage.STORAGE, "matmul no-bias");
    dummyRows(gpu); // made now, so that encoding allocates nothing
  }

  /**
   * The texture this plan stages operand A or B into, for another plan's `reuseA`/`reuseB`;
   * null for the tiled variant or a reused operand.
   */
  staged(which: "A" | "B"): StagedOperand | null {
    return which === "A" ? this.#stageA : this.#stageB;
  }

  /**
   * Where a producer may write or describe operand A in place of its buffer: the texture this
   * plan stages A into, or for a storage-buffer plan a {@link RowsPort} taking dataset rows
   * ({@link StagedOperand.fillRows}); null when A is another plan's texture. A later plan's
   * `reuseA` may name it, to read what is recorded there too.
   */
  operandA(): StagedOperand | null {
    return this.#stageA ?? (this.variant === "texture" ? null : this.#portA);
  }

  /** The pipeline reading A where it is, or (`rows`) from a dataset's rows. */
  #pipelineFor(rows: RowSource | null): GPUComputePipeline {
    const constants = { ...this.#constants, ...rowConstants(rows) };
    if (rows === null) {
      return this.#pipeline ??= this.#gpu.pipelines.get(this.#kernel, "main", constants);
    }
    const key = `${constants.A_NORM},${constants.A_SHARDS}`;
    let pipeline = this.#rowPipelines.get(key);
    if (pipeline === undefined) {
      pipeline = this.#gpu.pipelines.get(this.#kernel, "main", constants);
      this.#rowPipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /** Floating-point operations of one product (2·M·N·K). */
  get flops(): number {
    return 2 * this.M * this.N * this.K;
  }

  /** Checks the operands' shapes against the plan, naming the offending tensor. */
  #check(a: Tensor, b: Tensor, c: Tensor, bias?: Tensor): void {
    const { M, N, K } = this;
    const o = this.options;
    const what = `Cannot run matmul ${M}x${K}x${N}`;
    a.expectShape(`${what}: operand A`, o.transA ? [K, M] : [M, K]);
    b.expectShape(`${what}: operand B`, o.transB ? [N, K] : [K, N]);
    c.expectShape(`${what}: output C`, [M, N]);
    for (const t of [a, b, c]) {
      if (t.dtype !== "f32") {
        throw new TypeError(`${what}: "${t.label}" must be f32: current dtype is ${t.dtype}`);
      }
    }
    if (o.bias) {
      if (!bias) throw new TypeError(`${what}: the plan adds a bias but none was given`);
      bias.expectShape(`${what}: bias`, [N]);
    } else if (bias) {
      throw new TypeError(`${what}: a bias was given but the plan was built without bias: true`);
    }
  }

  /**
   * Encodes the product: C = op(A)·op(B) with the plan's epilogue. `bias` (length N) is required
   * exactly when the plan was built with `bias: true`. Default: none.
   */
  encode(enc: StepEncoder, a: Tensor, b: Tensor, c: Tensor, bias?: Tensor): void {
    this.#check(a, b, c, bias);
    // A's values may be dataset rows a producer recorded (here or in the plan this one reuses
    // A from): the kernel then reads them itself and nothing is staged.
    const rows = this.#portA?.rowsOf(a) ?? null;
    // A reused operand was staged by its owner earlier in this step; an operand whose values
    // a producer wrote straight into this plan's staging texture needs no staging either.
    if (rows === null && this.#stageA && !this.#stageA.holds(a)) this.#stageA.encode(enc, a);
    if (this.#stageB && !this.#stageB.holds(b)) this.#stageB.encode(enc, b);
    const pipeline = this.#pipelineFor(rows);
    // What is bound: the staging textures (fixed) or A and B themselves, then bias and C.
    const bound = this.variant === "texture" ? [bias, c] : [a, b, bias, c];
    const key = () => bound.map((t) => (t ? bufferKey(t.binding()) : "-")).join(",");
    const make = () => this.#bindGroup(pipeline, a, b, c, bias, rows);
    let group: GPUBindGroup;
    if (rows === null) {
      group = this.#groups.get(bound, key, make);
    } else {
      const k = key();
      let entry = this.#rowGroups.get(rows);
      if (entry === undefined || entry.key !== k) {
        entry = { key: k, group: make() };
        this.#rowGroups.set(rows, entry);
      }
      group = entry.group;
    }
    enc.dispatch(this.#label, pipeline, group, this.#grid);
  }

  #bindGroup(
    pipeline: GPUComputePipeline,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    bias: Tensor | undefined,
    rows: RowSource | null,
  ): GPUBindGroup {
    const gpu = this.#gpu;
    const operands: GPUBindingResource[] = this.variant === "texture"
      ? [this.#texA!.texture!.texture.createView(), this.#texB!.texture!.texture.createView()]
      : [a.binding(), b.binding()];
    return gpu.device.createBindGroup({
      label: this.#label,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: operands[0] },
        { binding: 1, resource: operands[1] },
        { binding: 2, resource: bias ? bias.binding() : { buffer: this.#dummyBias.buffer } },
        { binding: 3, resource: c.binding() },
        { binding: 4, resource: { buffer: this.#params.buffer } },
        ...rowEntries(gpu, rows),
      ],
    });
  }

  /** Frees the plan's uniforms and staging textures. */
  dispose(): void {
    this.#rowGroups = new WeakMap();
    this.#params.dispose();
    this.#dummyBias.dispose();
    this.#stageA?.dispose();
    this.#stageB?.dispose();
  }

  /** Same as {@link Matmul.dispose}. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Computes `op(A)·op(B)` into a new tensor and submits it: the convenient form for tests and
 * one-off use. Training code builds a {@link Matmul} once and encodes it every step.
 * `options.biasTensor`, when given, is a bias vector of length N added to every row (it sets
 * `bias`). Default: none (no bias).
 */
export function matmul(
  a: Tensor,
  b: Tensor,
  options: MatmulOptions & { biasTensor?: Tensor } = {},
): Tensor {
  const gpu = a.gpu;
  if (a.shape.length !== 2 || b.shape.length !== 2) {
    throw new RangeError(
      `Cannot run matmul: operands must be 2-D: current shapes are [${a.shape}] and [${b.shape}]`,
    );
  }
  const [M, K] = options.transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [Kb, N] = options.transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (K !== Kb) {
    throw new RangeError(
      `Cannot run matmul: inner dimensions differ: op(A) is ${M}x${K}, op(B) is ${Kb}x${N}`,
    );
  }
  const { biasTensor, ...rest } = options;
  const plan = new Matmul(gpu, M, N, K, {
    ...rest,
    bias: biasTensor !== undefined,
    accumulate: false,
  });
  const c = Tensor.empty(gpu, [M, N], "f32", "matmul C");
  const enc = new StepEncoder(gpu, "matmul");
  plan.encode(enc, a, b, c, biasTensor);
  enc.submit();
  // The plan's resources may be freed once the submission is queued: WebGPU keeps them alive.
  plan.dispose();
  return c;
}
