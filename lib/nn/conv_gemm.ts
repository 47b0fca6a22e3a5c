/**
 * Conv2d as implicit GEMMs (kernels/conv_gemm.wgsl): the forward pass, the input gradient (a
 * transposed convolution in gather form) and the weight gradient (split-K over the batch's
 * pixels, summed in a fixed order) read their operands from read-only storage textures, as the
 * matmul engine's texture kernel does, with im2col addresses computed in the loads. No im2col
 * matrix is built: x, dy and the weight are staged into textures of their own size (padded with
 * zeros, channels packed 4 to a texel) once per step.
 *
 * A {@link ConvGemm} is planned once per layer and input shape, and owns its textures, its
 * Params and its partial sums.
 *
 * @module
 */

import { BindGroupCache, bufferKey, objectId } from "../gpu/bind_cache.ts";
import type { Gpu, GpuTexture } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { ceilDiv, checkGrid, grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { adapterVectorWidth } from "../gpu/vector_width.ts";
import { adapterKind } from "../gpu/defaults.ts";
import { Tensor } from "../tensor.ts";
import convGemmSource from "../../kernels/conv_gemm.wgsl" with { type: "text" };
import { disposeAll } from "./module.ts";
import type { KernelFamily } from "./kernel_call.ts";

/** kernels/conv_gemm.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const CONV_GEMM = {
  name: "conv_gemm",
  source: convGemmSource,
  bindings: {
    x: 0,
    w: 1,
    b: 2,
    dy: 3,
    tx: 4,
    tw: 5,
    twt: 6,
    tdy: 7,
    tx_stage: 8,
    tw_out: 9,
    twt_out: 10,
    tdy_stage: 11,
    y: 12,
    dx: 13,
    partial: 14,
    partial_in: 15,
    dw: 16,
    p: 17,
    y_v4: 18,
    dx_v4: 19,
    x_v4: 20,
    dy_v4: 21,
    db: 22,
  },
} as const satisfies KernelFamily;

/** The entry points of conv_gemm.wgsl (tests/bindings_test.ts checks they exist). */
export const CONV_GEMM_ENTRIES = [
  "pack_x",
  "pack_x4",
  "pack_dy",
  "pack_dy4",
  "pack_w",
  "pack_wt",
  "forward",
  "backward_input",
  "backward_weight",
  "reduce_weight",
] as const;
type Entry = typeof CONV_GEMM_ENTRIES[number];

const FIELDS = {
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
  CG4: "u32",
  OG4: "u32",
  XR: "u32",
  XWP: "u32",
  XHP: "u32",
  DR: "u32",
  DWP: "u32",
  DHP: "u32",
  DPT: "u32",
  DPL: "u32",
  OCP: "u32",
  CGP: "u32",
  HA: "u32",
  WB: "u32",
  SPLIT: "u32",
  CHUNK: "u32",
  TXW: "u32",
  TDW: "u32",
} as const;
const PARAMS = new ParamsLayout("conv_gemm.Params", FIELDS);

/** A convolution's shape: input [N, C, H, W], output [N, OC, OH, OW] and its geometry. */
export type ConvShape = Record<
  | "N"
  | "C"
  | "H"
  | "W"
  | "OC"
  | "OH"
  | "OW"
  | "G"
  | "KH"
  | "KW"
  | "SH"
  | "SW"
  | "PT"
  | "PL"
  | "DH"
  | "DW",
  number
>;

/**
 * Invocations the weight gradient aims for (blocks × chunks): a few thousand fill a GPU; a
 * software adapter's 2 × 8 SIMD lanes are busy with far fewer, and each extra chunk costs a
 * slice of partial sums to write and add. The partial sums are kept under MAX_PARTIAL floats.
 */
const WEIGHT_GRAD_BLOCKS = { software: 512, hardware: 4096 } as const;
const MAX_SPLIT = 256;
/** Bytes of tx and tdy rows one weight-gradient chunk reads (measured best of 256 KiB–4 MiB). */
const CHUNK_BYTES = 1 << 20;
const MAX_PARTIAL = 1 << 22;

/**
 * The smallest extent ≥ `d` that is not a power of two. llvmpipe compiles a variant of a shader
 * for each combination of its textures' power-of-two extents (its static texture state), and
 * this kernel's variants take seconds each to build: with no extent a power of two, every
 * shape shares one. The extra texels are zeros that no load reads.
 */
function notPowerOfTwo(d: number): number {
  let e = d;
  while ((e & (e - 1)) === 0) e++;
  return e;
}

/**
 * The staged textures' width: a multiple of 16 texels (copyBufferToTexture takes rows of a
 * multiple of 256 bytes) that is not a power of two.
 */
function stagedWidth(d: number): number {
  let e = 16 * ceilDiv(d, 16);
  while ((e & (e - 1)) === 0) e += 16;
  return e;
}

/** Where and how large each texture is, for a shape; null fields where it cannot fit. */
interface Layout {
  values: Record<keyof typeof FIELDS, number>;
  /** [width, height] in texels of tx, tw, twt and tdy. */
  tx: [number, number];
  tw: [number, number];
  twt: [number, number];
  tdy: [number, number];
}

/** The textures' placement for `s` (see the header of conv_gemm.wgsl for the layouts). */
function layout(s: ConvShape, maxDim: number, target: number): Layout {
  const cg = s.C / s.G, ocg = s.OC / s.G, taps = s.KH * s.KW;
  const CG4 = ceilDiv(cg, 4), OG4 = ceilDiv(ocg, 4);
  const CT = s.G * CG4, OT = s.G * OG4;
  // x, padded: every im2col read (up to (OH−1)·SH + (KH−1)·DH) lands inside the image's box.
  const XHP = Math.max(s.PT + s.H, (s.OH - 1) * s.SH + (s.KH - 1) * s.DH + 1);
  // backward_weight reads rows in quads of pixels, up to OW rounded up to 4.
  const OW4 = 4 * ceilDiv(s.OW, 4);
  const XWP = Math.max(s.PL + s.W, (OW4 - 1) * s.SW + (s.KW - 1) * s.DW + 1);
  // dy, padded for dx's gather: pixel h = rh + SH·a (a < HA) reads row a + (rh + PT − u·DH)/SH.
  const HA = ceilDiv(s.H, s.SH), WB = ceilDiv(s.W, s.SW);
  const lowH = Math.floor((s.PT - (s.KH - 1) * s.DH) / s.SH);
  const lowW = Math.floor((s.PL - (s.KW - 1) * s.DW) / s.SW);
  const highH = HA - 1 + Math.floor((s.SH - 1 + s.PT) / s.SH);
  const highW = WB - 1 + Math.floor((s.SW - 1 + s.PL) / s.SW);
  const DPT = Math.max(0, -lowH), DPL = Math.max(0, -lowW);
  const DHP = DPT + Math.max(s.OH, highH + 1);
  // Zero columns after each row up to OW4 (what a quad past OW reads: it adds 0).
  const DWP = DPL + Math.max(OW4, highW + 1);
  // Images side by side, up to 32 texels under the limit so that rounding keeps within it.
  const XR = Math.max(1, Math.min(s.N, Math.floor((maxDim - 32) / (XWP * CT))));
  const DR = Math.max(1, Math.min(s.N, Math.floor((maxDim - 32) / (DWP * OT))));
  const TXW = stagedWidth(XR * XWP * CT), TDW = stagedWidth(DR * DWP * OT);
  const OCP = 16 * ceilDiv(ocg, 16), CGP = 16 * ceilDiv(cg, 16);
  const rows = s.N * s.OH;
  const numel = s.OC * cg * taps;
  const blocks = ceilDiv(taps * CG4, 4) * (OCP / 16) * s.G;
  // Enough chunks to occupy the adapter, and small enough that one chunk's rows of tx and tdy
  // stay in cache while its blocks (numbered chunk-slowest) run one after another: with one
  // chunk for the whole batch, every block streams all of x and dy from memory.
  const rowBytes = 16 * (XWP * CT * s.SH + DWP * OT);
  const cached = Math.ceil(rows / Math.max(1, Math.floor(CHUNK_BYTES / rowBytes)));
  const wanted = Math.max(
    1,
    Math.min(
      MAX_SPLIT,
      rows,
      Math.floor(MAX_PARTIAL / numel),
      Math.max(cached, Math.ceil(target / blocks)),
    ),
  );
  const CHUNK = ceilDiv(rows, wanted);
  return {
    values: {
      ...s,
      CG4,
      OG4,
      XR,
      XWP,
      XHP,
      DR,
      DWP,
      DHP,
      DPT,
      DPL,
      OCP,
      CGP,
      HA,
      WB,
      SPLIT: ceilDiv(rows, CHUNK),
      CHUNK,
      TXW,
      TDW,
    },
    tx: [TXW, notPowerOfTwo(ceilDiv(s.N, XR) * XHP)],
    tw: [notPowerOfTwo(taps * CG4), notPowerOfTwo(s.G * OCP)],
    twt: [notPowerOfTwo(taps * OG4), notPowerOfTwo(s.G * CGP)],
    tdy: [TDW, notPowerOfTwo(ceilDiv(s.N, DR) * DHP)],
  };
}

/**
 * Why the GEMM path cannot run shape `s` on `gpu` (a texture over the size limit), or null when
 * it can.
 */
export function gemmUnfit(gpu: Gpu, s: ConvShape): string | null {
  const max = gpu.limits.maxTextureDimension2D;
  const l = layout(s, max, 1);
  for (const name of ["tx", "tw", "twt", "tdy"] as const) {
    const [w, h] = l[name];
    if (w > max || h > max) return `texture ${name} would be ${w}x${h} texels (limit ${max})`;
  }
  return null;
}

/** A binding of one dispatch: a tensor (at its range), a whole buffer or a texture. */
type Bound = Tensor | GpuBuffer | GpuTexture;

function resource(r: Bound): GPUBindingResource {
  if (r instanceof Tensor) return r.binding();
  if ("buffer" in r) return { buffer: r.buffer };
  return r.texture.createView();
}

/** One entry point of conv_gemm.wgsl with a bind group per combination of tensors bound. */
class Call {
  readonly #gpu: Gpu;
  readonly #pipeline: GPUComputePipeline;
  readonly #label: string;
  readonly #groups = new BindGroupCache();

  constructor(gpu: Gpu, entry: Entry, constants: Record<string, number>) {
    this.#gpu = gpu;
    this.#label = `conv_gemm.${entry}`;
    this.#pipeline = gpu.pipelines.get(CONV_GEMM, entry, constants);
  }

  encode(
    enc: StepEncoder,
    count: number,
    wg: number,
    bound: Partial<Record<keyof typeof CONV_GEMM.bindings, Bound>>,
    grid: [number, number, number] = grid1d(ceilDiv(count, wg)),
  ): void {
    const names = Object.keys(bound) as (keyof typeof CONV_GEMM.bindings)[];
    const list = names.map((n) => bound[n]!);
    this.#gpu.lastKernel = this.#label;
    const group = this.#groups.get(
      list,
      () =>
        list.map((r) => (r instanceof Tensor ? bufferKey(r.binding()) : String(objectId(r)))).join(
          ",",
        ),
      () =>
        this.#gpu.device.createBindGroup({
          label: this.#label,
          layout: this.#pipeline.getBindGroupLayout(0),
          entries: names.map((n, i) => ({
            binding: CONV_GEMM.bindings[n],
            resource: resource(list[i]),
          })),
        }),
    );
    enc.dispatch(this.#label, this.#pipeline, group, checkGrid(this.#label, grid));
  }
}

/** Copies a staging buffer whole into its texture (rows of `dims[0]` texels, 256-byte multiples). */
function copyToTexture(
  enc: StepEncoder,
  stage: GpuBuffer,
  texture: GpuTexture,
  dims: [number, number],
): void {
  enc.commands().copyBufferToTexture(
    { buffer: stage.buffer, bytesPerRow: dims[0] * 16, rowsPerImage: dims[1] },
    { texture: texture.texture },
    [dims[0], dims[1], 1],
  );
}

/**
 * One convolution's implicit GEMMs for a fixed input shape: stages x, dy and the weight into
 * textures and encodes forward, dX and dW. Build once per shape, dispose when done.
 */
export class ConvGemm {
  /** The shape planned. */
  readonly shape: ConvShape;
  readonly #gpu: Gpu;
  readonly #l: Layout;
  readonly #wg: number;
  readonly #params: GpuBuffer;
  readonly #tx: GpuTexture;
  /** The buffers x and dy are packed into, then copied into tx and tdy. */
  readonly #stageX: GpuBuffer;
  #stageDy: GpuBuffer | null = null;
  readonly #tw: GpuTexture;
  readonly #calls = new Map<string, Call>();
  readonly #bias: boolean;
  readonly #vecY: boolean;
  readonly #vecDx: boolean;
  readonly #dummy: GpuBuffer;
  #twt: GpuTexture | null = null;
  #tdy: GpuTexture | null = null;
  #partial: Tensor | null = null;

  /** Plans shape `s`; throws a RangeError when a texture would exceed the adapter's limit. */
  constructor(gpu: Gpu, s: ConvShape, options: { bias: boolean }) {
    const unfit = gemmUnfit(gpu, s);
    if (unfit !== null) {
      throw new RangeError(`Cannot plan the convolution as a GEMM: current layout has ${unfit}`);
    }
    this.#gpu = gpu;
    this.shape = s;
    this.#bias = options.bias;
    this.#l = layout(
      s,
      gpu.limits.maxTextureDimension2D,
      WEIGHT_GRAD_BLOCKS[adapterKind(gpu)],
    );
    // vec4 paths where runs of 4 pixels are contiguous and aligned (see the kernel's header).
    this.#vecY = (s.OH * s.OW) % 4 === 0;
    this.#vecDx = s.SH === 1 && s.SW === 1 && (s.H * s.W) % 4 === 0;
    this.#dummy = gpu.createBuffer(16, GPUBufferUsage.STORAGE, "conv_gemm.unused");
    // One invocation per SIMD lane on llvmpipe: 8 lanes of f32 at 256 bits, 16 at 512.
    this.#wg = (adapterVectorWidth(gpu.adapter.description) ?? 256) >= 512 ? 16 : 8;
    this.#params = PARAMS.upload(gpu, this.#l.values);
    this.#tx = this.#texture("tx");
    this.#stageX = this.#staging("tx");
    this.#tw = this.#texture("tw");
  }

  #texture(name: "tx" | "tw" | "twt" | "tdy"): GpuTexture {
    const [w, h] = this.#l[name];
    const usage = name === "tx" || name === "tdy"
      ? GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST
      : GPUTextureUsage.STORAGE_BINDING;
    return this.#gpu.createTexture(w, h, "rgba32float", usage, `conv_gemm.${name}`);
  }

  /** A zeroed buffer of texture `name`'s texels: the pack writes all but the padding. */
  #staging(name: "tx" | "tdy"): GpuBuffer {
    const [w, h] = this.#l[name];
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
    return this.#gpu.createBuffer(w * h * 16, usage, `conv_gemm.${name}.stage`);
  }

  #call(entry: Entry): Call {
    let call = this.#calls.get(entry);
    if (!call) {
      const constants: Record<string, number> = { WG_X: this.#wg };
      if (entry === "forward") {
        constants.BIAS = Number(this.#bias);
        constants.VEC_OUT = Number(this.#vecY);
      }
      if (entry === "backward_input") constants.VEC_OUT = Number(this.#vecDx);
      if (entry === "backward_weight" || entry === "reduce_weight") {
        constants.BIAS = Number(this.#bias);
      }
      call = new Call(this.#gpu, entry, constants);
      this.#calls.set(entry, call);
    }
    return call;
  }

  /** Floating-point operations of one forward product (as of dX and of dW): 2·N·OH·OW·OC·Cg·KH·KW. */
  get flops(): number {
    const s = this.shape;
    return 2 * s.N * s.OH * s.OW * s.OC * (s.C / s.G) * s.KH * s.KW;
  }

  /** Encodes y = conv(x, w) (+ b): stages x and w, then the GEMM. `b` is a dummy without bias. */
  forward(enc: StepEncoder, x: Tensor, w: Tensor, b: Tensor, y: Tensor): void {
    const s = this.shape, v = this.#l.values, p = this.#params, wg = this.#wg;
    const texels = s.N * s.G * v.CG4 * s.H * s.W;
    if (s.W % 4 === 0) {
      this.#call("pack_x4").encode(enc, texels / 4, wg, { x_v4: x, tx_stage: this.#stageX, p }, [
        ceilDiv(s.H * s.W / 4, wg),
        s.N * s.G * v.CG4,
        1,
      ]);
    } else {
      this.#call("pack_x").encode(enc, texels, wg, { x, tx_stage: this.#stageX, p });
    }
    copyToTexture(enc, this.#stageX, this.#tx, this.#l.tx);
    this.#call("pack_w").encode(enc, this.#l.tw[0] * this.#l.tw[1], wg, {
      w,
      tw_out: this.#tw,
      p,
    });
    const blocks = ceilDiv(s.N * s.OH * s.OW, 16) * (v.OCP / 16) * s.G;
    const [out, out4] = this.#vecY ? [this.#dummy, y] : [y, this.#dummy];
    this.#call("forward").encode(enc, blocks, wg, {
      tx: this.#tx,
      tw: this.#tw,
      b,
      y: out,
      y_v4: out4,
      p,
    });
  }

  /**
   * Encodes the gradients of the last forward (whose x is still staged in the texture): adds
   * dW into `dw` and, with a bias, db into `db` (null without); writes dX into `dx` unless it is
   * null.
   */
  backward(
    enc: StepEncoder,
    dy: Tensor,
    w: Tensor,
    grads: { dw: Tensor; db: Tensor | null; dx: Tensor | null },
  ): void {
    const { dw, db, dx } = grads;
    const s = this.shape, v = this.#l.values, p = this.#params, wg = this.#wg;
    this.#tdy ??= this.#texture("tdy");
    this.#stageDy ??= this.#staging("tdy");
    const tdy = this.#tdy, stage = this.#stageDy;
    const texels = s.N * s.G * v.OG4 * s.OH * s.OW;
    if (s.OW % 4 === 0) {
      this.#call("pack_dy4").encode(enc, texels / 4, wg, { dy_v4: dy, tdy_stage: stage, p }, [
        ceilDiv(s.OH * s.OW / 4, wg),
        s.N * s.G * v.OG4,
        1,
      ]);
    } else {
      this.#call("pack_dy").encode(enc, texels, wg, { dy, tdy_stage: stage, p });
    }
    copyToTexture(enc, stage, tdy, this.#l.tdy);
    const numel = s.OC * (s.C / s.G) * s.KH * s.KW;
    // The weight's SPLIT slices, then the bias's (see the kernel's Layout).
    const slices = v.SPLIT * (numel + s.OC);
    this.#partial ??= Tensor.empty(this.#gpu, [slices], "f32", "conv_gemm.partial");
    const partial = this.#partial;
    const kBlocks = ceilDiv(s.KH * s.KW * v.CG4, 4);
    this.#call("backward_weight").encode(enc, kBlocks * (v.OCP / 16) * s.G * v.SPLIT, wg, {
      tx: this.#tx,
      tdy,
      partial,
      p,
    });
    this.#call("reduce_weight").encode(enc, numel + (db ? s.OC : 0), wg, {
      partial_in: partial,
      dw,
      db: db ?? this.#dummy,
      p,
    });
    if (dx === null) return;
    this.#twt ??= this.#texture("twt");
    const twt = this.#twt;
    this.#call("pack_wt").encode(enc, this.#l.twt[0] * this.#l.twt[1], wg, {
      w,
      twt_out: twt,
      p,
    });
    const blocks = ceilDiv(s.N * v.HA * v.WB, 16) * (v.CGP / 16) * s.G * s.SH * s.SW;
    const [out, out4] = this.#vecDx ? [this.#dummy, dx] : [dx, this.#dummy];
    this.#call("backward_input").encode(enc, blocks, wg, { tdy, twt, dx: out, dx_v4: out4, p });
  }

  /** Frees the textures, Params and partial sums. */
  dispose(): void {
    disposeAll(this.#params, this.#dummy, this.#tx, this.#tw, this.#twt, this.#tdy, this.#partial);
    disposeAll(this.#stageX, this.#stageDy);
  }
}
