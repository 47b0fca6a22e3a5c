/**
 * One kernel entry point bound to a layer's tensors: the pipeline is looked up once, and a bind
 * group is built once for each combination of buffer ranges the layer passes (a few at most).
 *
 * Binding numbers are written once per kernel family, beside the module that imports its WGSL
 * ({@link KernelFamily}: names to `@binding` numbers, as the shader declares them; a test reads
 * each `.wgsl` file and checks the table against it). Each entry point picks the names it uses
 * ({@link entryPoint}), and call sites pass resources by name: a missing or misspelled name is a
 * type error at the call, not a validation error at the dispatch.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import type { Constants, Kernel } from "../gpu/kernels.ts";
import { BindGroupCache, bufferKey, objectId } from "../gpu/bind_cache.ts";
import { Tensor } from "../tensor.ts";

/** A binding: a tensor (bound at its offset) or a whole buffer (uniforms). */
export type Resource = Tensor | GpuBuffer;

/** Names to `@group(0) @binding(N)` numbers, each name the `var`'s name in the WGSL. */
export type BindingTable = { readonly [name: string]: number };

/**
 * A WGSL source and its binding table, declared once beside the module that imports it.
 *
 * @example A kernel family and one of its entry points
 * ```ts
 * import { entryPoint, type KernelFamily } from "@wgnn/wgnn/advanced";
 * import { deepEqual } from "node:assert/strict";
 *
 * const SCALE = {
 *   name: "scale",
 *   source: `
 *     struct Params { n: u32, k: f32 }
 *     @group(0) @binding(0) var<storage, read> src: array<f32>;
 *     @group(0) @binding(1) var<storage, read_write> dst: array<f32>;
 *     @group(0) @binding(2) var<uniform> p: Params;
 *     @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) i: vec3u) {
 *       if (i.x < p.n) { dst[i.x] = p.k * src[i.x]; }
 *     }`,
 *   bindings: { src: 0, dst: 1, p: 2 },
 * } as const satisfies KernelFamily;
 * const MAIN = entryPoint(SCALE, "main", ["src", "dst", "p"]);
 * deepEqual(MAIN.bindings, { src: 0, dst: 1, p: 2 });
 * // new KernelCall(gpu, MAIN).encode(enc, grid1d(groups), { src, dst, p }) dispatches it.
 * ```
 */
export interface KernelFamily<T extends BindingTable = BindingTable> extends Kernel {
  /** Every binding of the file, by the name of its `var`. */
  readonly bindings: T;
}

/** The bindings one entry point uses (a WebGPU auto layout holds only those): names to numbers. */
export type EntryBindings<N extends string> = { readonly [K in N]: number };

/** The resources of one dispatch, by binding name. */
export type Resources<N extends string> = { readonly [K in N]: Resource };

/** One entry point of a kernel family and the bindings it uses. */
export interface EntryPoint<N extends string> {
  /** The family's source. */
  readonly kernel: Kernel;
  /** The entry point's function name. */
  readonly entry: string;
  /** The bindings it uses, in the order they are listed. */
  readonly bindings: EntryBindings<N>;
}

/** The bindings `names` of `family`: what one entry point binds (names must be in its table). */
export function bindings<T extends BindingTable, N extends keyof T & string>(
  family: KernelFamily<T>,
  names: readonly N[],
): EntryBindings<N> {
  const out: Record<string, number> = {};
  for (const name of names) out[name] = family.bindings[name];
  return out as EntryBindings<N>;
}

/** Entry point `entry` of `family`, binding `names`. */
export function entryPoint<T extends BindingTable, N extends keyof T & string>(
  family: KernelFamily<T>,
  entry: string,
  names: readonly N[],
): EntryPoint<N> {
  return { kernel: family, entry, bindings: bindings(family, names) };
}

/** The bind group entries for `resources`, each at its name's number in `table`. */
export function bindGroupEntries<N extends string>(
  table: EntryBindings<N>,
  resources: Resources<N>,
): GPUBindGroupEntry[] {
  return (Object.keys(table) as N[]).map((name) => ({
    binding: table[name],
    resource: entry(resources[name]),
  }));
}

function entry(r: Resource): GPUBindingResource {
  return r instanceof Tensor ? r.binding() : { buffer: r.buffer };
}

/**
 * A cached (pipeline, bind group) pair for one entry point, taking its resources by name: a
 * missing or misspelled name fails to type-check, and the binding numbers come from the kernel's
 * one table ({@link KernelFamily}).
 */
export class KernelCall<E extends EntryPoint<string> = EntryPoint<never>> {
  /** `kernel.entry`, used in dispatch labels and error messages. */
  readonly label: string;
  readonly #gpu: Gpu;
  readonly #pipeline: GPUComputePipeline;
  readonly #groups = new BindGroupCache();
  /** The entry point's binding names and numbers, in one order. */
  readonly #names: readonly string[];
  readonly #numbers: readonly number[];

  /** Looks up (or compiles) the pipeline of `entry` with `constants`. */
  constructor(gpu: Gpu, entry: E, constants: Constants = {}) {
    this.#gpu = gpu;
    this.#names = Object.keys(entry.bindings);
    this.#numbers = Object.values(entry.bindings);
    this.label = `${entry.kernel.name}.${entry.entry}`;
    this.#pipeline = gpu.pipelines.get(entry.kernel, entry.entry, constants);
  }

  /** Encodes one dispatch with each of the entry point's bindings taken from `resources`. */
  encode(
    enc: StepEncoder,
    grid: readonly [number, number, number],
    resources: Resources<Extract<keyof E["bindings"], string>>,
  ): void {
    const byName = resources as Readonly<Record<string, Resource>>;
    const missing = this.#names.filter((n) => byName[n] === undefined);
    if (missing.length > 0) {
      throw new TypeError(`Cannot encode ${this.label}: no resource for ${missing.join(", ")}`);
    }
    const numbers = this.#numbers;
    const list = this.#names.map((n) => byName[n]);
    this.#gpu.lastKernel = this.label;
    const group = this.#groups.get(
      list,
      () =>
        list.map((r) => r instanceof Tensor ? bufferKey(r.binding()) : String(objectId(r.buffer)))
          .join(","),
      () =>
        this.#gpu.device.createBindGroup({
          label: this.label,
          layout: this.#pipeline.getBindGroupLayout(0),
          entries: list.map((r, i) => ({ binding: numbers[i], resource: entry(r) })),
        }),
    );
    enc.dispatch(this.label, this.#pipeline, group, grid);
  }
}
