/**
 * Kernels and pipelines: WGSL sources imported as text, a pipeline cache keyed by
 * (kernel, entry point, override constants), and grid helpers.
 *
 * Sources are imported with `with { type: "text" }`, so a module imported by URL needs no
 * file permission to find them (Deno 2.8+).
 *
 * @module
 */

import matmulBlocked from "../../kernels/matmul_blocked.wgsl" with { type: "text" };
import matmulTexture from "../../kernels/matmul_texture.wgsl" with { type: "text" };
import matmulTiled from "../../kernels/matmul_tiled.wgsl" with { type: "text" };
import matmulYardstick from "../../kernels/matmul_yardstick.wgsl" with { type: "text" };
import packTexture from "../../kernels/pack_texture.wgsl" with { type: "text" };

/**
 * A WGSL source file under `kernels/`: its name and its text. Import the text with
 * `import source from "../kernels/scale.wgsl" with { type: "text" };` so that a module imported
 * by URL finds it without a file permission.
 *
 * @example A kernel declared inline
 * ```ts
 * import type { Kernel } from "@wgnn/wgnn/advanced";
 * import { equal } from "node:assert/strict";
 *
 * const scale: Kernel = {
 *   name: "scale",
 *   source: `
 *     override WG: u32 = 64;
 *     @group(0) @binding(0) var<storage, read_write> x: array<f32>;
 *     @compute @workgroup_size(WG) fn main(@builtin(global_invocation_id) id: vec3u) {
 *       if (id.x < arrayLength(&x)) { x[id.x] = 2.0 * x[id.x]; }
 *     }`,
 * };
 * equal(scale.name, "scale");
 * ```
 */
export interface Kernel {
  /** File name without extension, used in cache keys and error messages. */
  name: string;
  /** The WGSL source. */
  source: string;
}

/** Every kernel the toolkit ships, by file name. */
export const KERNELS = {
  matmul_blocked: { name: "matmul_blocked", source: matmulBlocked },
  matmul_texture: { name: "matmul_texture", source: matmulTexture },
  matmul_tiled: { name: "matmul_tiled", source: matmulTiled },
  matmul_yardstick: { name: "matmul_yardstick", source: matmulYardstick },
  pack_texture: { name: "pack_texture", source: packTexture },
} satisfies Record<string, Kernel>;

/**
 * Override constants passed to `createComputePipeline`: tuning knobs such as the workgroup size,
 * by the name of the WGSL `override`. Shapes do not go here (they ride in uniforms), so one
 * pipeline serves every batch size.
 *
 * @example Two workgroup sizes of one kernel
 * ```ts
 * import type { Constants, Gpu, Kernel } from "@wgnn/wgnn/advanced";
 *
 * function variants(gpu: Gpu, kernel: Kernel): GPUComputePipeline[] {
 *   const sizes: Constants[] = [{ WG: 64 }, { WG: 256 }];
 *   return sizes.map((constants) => gpu.pipelines.get(kernel, "main", constants));
 * }
 * ```
 */
export type Constants = Record<string, number>;

/**
 * What a {@link PipelineCache} uses of the {@link Gpu} that owns it: the device it compiles on,
 * the label of the kernel being built (for error messages) and the deferred error list. A `Gpu`
 * is one, and passes itself. Declared here, so that this file needs nothing from device.ts,
 * which builds its cache from this one.
 *
 * @example A cache on a device of your own, reporting errors to the console
 * ```ts
 * import { PipelineCache, type PipelineOwner } from "@wgnn/wgnn/advanced";
 *
 * function consoleCache(device: GPUDevice): PipelineCache {
 *   const owner: PipelineOwner = { device, lastKernel: "", recordError: console.error };
 *   return new PipelineCache(owner);
 * }
 * ```
 */
export interface PipelineOwner {
  /** The device pipelines are compiled on. */
  readonly device: GPUDevice;
  /** Set to the kernel being compiled, so that an error names it. */
  lastKernel: string;
  /** Records a compilation or validation error, to be thrown at the next check. */
  recordError(message: string): void;
}

/**
 * Compiled pipelines, created once per (kernel, entry point, constants) and reused. Each
 * {@link Gpu} has one, as `gpu.pipelines`; build pipelines when a layer is built, not per step.
 *
 * @example A pipeline is compiled once
 * ```ts
 * import type { Gpu, Kernel } from "@wgnn/wgnn/advanced";
 *
 * function build(gpu: Gpu, kernel: Kernel): GPUComputePipeline {
 *   const first = gpu.pipelines.get(kernel, "main", { WG: 64 });
 *   const again = gpu.pipelines.get(kernel, "main", { WG: 64 }); // the same object, from the cache
 *   console.log(first === again, gpu.pipelines.size);
 *   return first;
 * }
 * ```
 */
export class PipelineCache {
  readonly #gpu: PipelineOwner;
  readonly #modules = new Map<string, GPUShaderModule>();
  readonly #pipelines = new Map<string, GPUComputePipeline>();

  /** An empty cache for `gpu` (each {@link Gpu} makes its own: use `gpu.pipelines`). */
  constructor(gpu: PipelineOwner) {
    this.#gpu = gpu;
  }

  /** Number of pipelines compiled so far. */
  get size(): number {
    return this.#pipelines.size;
  }

  /**
   * Returns the pipeline for `kernel`'s `entry` specialised with `constants` (default: none, the
   * kernel's own `override` values). Compilation and validation errors are recorded with the
   * kernel's name and thrown at the next sync.
   */
  get(kernel: Kernel, entry: string, constants: Constants = {}): GPUComputePipeline {
    const keys = Object.keys(constants).sort();
    for (const k of keys) {
      if (!Number.isFinite(constants[k])) {
        throw new RangeError(
          `Cannot build kernel ${kernel.name}.${entry}: override ${k} must be finite: current value is ${
            constants[k]
          }`,
        );
      }
    }
    const key = `${kernel.name}:${entry}:${keys.map((k) => `${k}=${constants[k]}`).join(",")}`;
    const cached = this.#pipelines.get(key);
    if (cached) return cached;
    const device = this.#gpu.device;
    const label = `${kernel.name}.${entry}`;
    this.#gpu.lastKernel = label;
    device.pushErrorScope("validation");
    let module = this.#modules.get(kernel.name);
    if (!module) {
      module = device.createShaderModule({ code: kernel.source, label: kernel.name });
      this.#modules.set(kernel.name, module);
      module.getCompilationInfo().then((info) => {
        for (const m of info.messages) {
          if (m.type === "error") {
            this.#gpu.recordError(
              `kernel ${kernel.name} failed to compile at ${m.lineNum}:${m.linePos}: ${m.message}`,
            );
          }
        }
      });
    }
    const pipeline = device.createComputePipeline({
      label,
      layout: "auto",
      compute: { module, entryPoint: entry, constants },
    });
    device.popErrorScope().then((error) => {
      if (error) {
        this.#gpu.recordError(`kernel ${label} (${JSON.stringify(constants)}): ${error.message}`);
      }
    });
    this.#pipelines.set(key, pipeline);
    return pipeline;
  }
}

/** Largest number of workgroups WebGPU guarantees per grid dimension. */
export const MAX_GRID = 65535;

/** ⌈a / b⌉, for workgroup counts. */
export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * Splits a 1-D count of workgroups into an (x, y) grid with x ≤ 65,535. Kernels using it
 * compute their linear workgroup index as `wid.x + wid.y * num_workgroups.x` and bounds-check.
 *
 * @example One invocation per element of a million-element tensor
 * ```ts
 * import { grid1d } from "@wgnn/wgnn/advanced";
 * import { deepEqual } from "node:assert/strict";
 *
 * const WG = 64;
 * deepEqual(grid1d(Math.ceil(1000 / WG)), [16, 1, 1]);
 * deepEqual(grid1d(Math.ceil(1_000_000 / WG)), [15625, 1, 1]);
 * deepEqual(grid1d(100_000), [50000, 2, 1]); // past 65,535 groups: a second row of the grid
 * ```
 */
export function grid1d(workgroups: number): [number, number, number] {
  if (!Number.isInteger(workgroups) || workgroups < 0) {
    throw new RangeError(
      `Cannot dispatch: workgroup count must be a non-negative integer: current value is ${workgroups}`,
    );
  }
  if (workgroups <= MAX_GRID) return [workgroups, 1, 1];
  const y = Math.ceil(workgroups / MAX_GRID);
  if (y > MAX_GRID) {
    throw new RangeError(`Cannot dispatch ${workgroups} workgroups: more than 65535² in one grid`);
  }
  return [Math.ceil(workgroups / y), y, 1];
}

/** Checks a 2-D/3-D grid against the per-dimension limit, naming the kernel. */
export function checkGrid(label: string, grid: [number, number, number]): [number, number, number] {
  for (const g of grid) {
    if (!Number.isInteger(g) || g < 0 || g > MAX_GRID) {
      throw new RangeError(
        `Cannot dispatch ${label}: grid ${grid.join("x")} exceeds 65535 workgroups per dimension`,
      );
    }
  }
  return grid;
}
