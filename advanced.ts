/**
 * Plumbing under the core entry, for layers and kernels of your own and for tuning: the
 * pipeline cache and the WGSL kernel type (`gpu.pipelines`), pooled buffers and counted
 * textures, the matmul engine with its staged texture operands, the choice of matmul kernel
 * per GPU, the choice of Conv2d's kernels (implicit GEMMs or direct loops: `chooseConv`, and
 * `WGNN_CONV` through `convChoiceFromEnv`), and Mesa's software-adapter vector width. The everyday API (layers, loss,
 * optimizers, loader, `fit`) does not need any of it.
 *
 * It re-exports the core entry (`@wgnn/wgnn`), whose `Gpu`, `Tensor` and `StepEncoder` these
 * take, and pulls in nothing beyond it: the GPU runtime and the matmul kernels, no npm package.
 *
 * @example A kernel of your own, dispatched into a step
 * ```ts
 * import type { Kernel, StepEncoder, Tensor } from "@wgnn/wgnn/advanced";
 *
 * const double: Kernel = {
 *   name: "double",
 *   source: `
 *     override WG: u32 = 64;
 *     @group(0) @binding(0) var<storage, read_write> x: array<f32>;
 *     @compute @workgroup_size(WG) fn main(@builtin(global_invocation_id) id: vec3u) {
 *       if (id.x < arrayLength(&x)) { x[id.x] = 2.0 * x[id.x]; }
 *     }`,
 * };
 *
 * function encodeDouble(enc: StepEncoder, x: Tensor): void {
 *   const pipeline = x.gpu.pipelines.get(double, "main", { WG: 64 }); // compiled once, cached
 *   const group = x.gpu.device.createBindGroup({
 *     layout: pipeline.getBindGroupLayout(0),
 *     entries: [{ binding: 0, resource: x.binding() }],
 *   });
 *   enc.dispatch("double", pipeline, group, [Math.ceil(x.numel / 64), 1, 1]);
 * }
 * ```
 *
 * @example A layer's kernel, called by binding name
 * ```ts
 * import { entryPoint, grid1d, KernelCall, type KernelFamily } from "@wgnn/wgnn/advanced";
 * import { ParamsLayout } from "@wgnn/wgnn/advanced";
 * import type { Gpu, GpuBuffer, StepEncoder, Tensor } from "@wgnn/wgnn/advanced";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const SCALE = {
 *   name: "scale",
 *   source: `
 *     struct Params { n: u32, k: f32 }
 *     override WG: u32 = 64;
 *     @group(0) @binding(0) var<storage, read> src: array<f32>;
 *     @group(0) @binding(1) var<storage, read_write> dst: array<f32>;
 *     @group(0) @binding(2) var<uniform> p: Params;
 *     @compute @workgroup_size(WG) fn forward(@builtin(global_invocation_id) id: vec3u) {
 *       if (id.x < p.n) { dst[id.x] = p.k * src[id.x]; }
 *     }`,
 *   bindings: { src: 0, dst: 1, p: 2 }, // as the `@binding` lines declare them
 * } as const satisfies KernelFamily;
 * const FORWARD = entryPoint(SCALE, "forward", ["src", "dst", "p"]);
 * const PARAMS = new ParamsLayout("scale.Params", { n: "u32", k: "f32" });
 * equal(PARAMS.byteSize, 16); // uniforms are padded to 16 bytes
 * deepEqual(grid1d(100_000), [50_000, 2, 1]); // at most 65,535 workgroups per dimension
 *
 * // In a layer's attach: compile once; in forward: dispatch (tests/custom_layer_test.ts: a layer).
 * type ScaleCall = KernelCall<typeof FORWARD>;
 * function scaleCall(gpu: Gpu): ScaleCall {
 *   return new KernelCall(gpu, FORWARD, { WG: 64 });
 * }
 * function encodeScale(enc: StepEncoder, call: ScaleCall, x: Tensor, y: Tensor, p: GpuBuffer) {
 *   call.encode(enc, grid1d(Math.ceil(x.numel / 64)), { src: x, dst: y, p }); // by name
 * }
 * ```
 *
 * @module
 */

export * from "./mod.ts";

// Kernels, pipelines, buffers and textures
export { PipelineCache } from "./lib/gpu/kernels.ts";
export type { Constants, Kernel, PipelineOwner } from "./lib/gpu/kernels.ts";
export { BufferPool, GpuTexture } from "./lib/gpu/buffer.ts";
export type { BufferOwner } from "./lib/gpu/buffer.ts";

// A layer of your own: its kernels by binding name, its uniforms, per-batch buffers, input checks
// (Module, AttachContext and ParameterSpec come from the core entry, re-exported above)
export { entryPoint, KernelCall } from "./lib/nn/kernel_call.ts";
export type {
  BindingTable,
  EntryBindings,
  EntryPoint,
  KernelFamily,
  Resource,
  Resources,
} from "./lib/nn/kernel_call.ts";
export { ParamsLayout } from "./lib/gpu/params.ts";
export type { ScalarType } from "./lib/gpu/params.ts";
export { checkInput, PerBatch } from "./lib/nn/module.ts";
export { grid1d } from "./lib/gpu/kernels.ts";

// The matmul engine and the choice of its kernel
export { Matmul, matmul } from "./lib/ops/matmul.ts";
export type { MatmulOptions } from "./lib/ops/matmul.ts";
export { chooseMatmul } from "./lib/ops/matmul_choice.ts";
export type { MatmulChoice, MatmulVariant } from "./lib/ops/matmul_choice.ts";
export { matmulVariant, slowAdapterHint } from "./lib/ops/matmul_trial.ts";
export { chooseConv, convAlgorithm, convChoice } from "./lib/nn/conv_choice.ts";
export { convChoiceFromEnv } from "./lib/nn/conv_env.ts";
export type { ConvShape } from "./lib/nn/conv_gemm.ts";

// Mesa's software adapters
export { adapterVectorWidth, useLavapipeVectorWidth } from "./lib/gpu/lavapipe.ts";
export type { VectorWidth } from "./lib/gpu/lavapipe.ts";
