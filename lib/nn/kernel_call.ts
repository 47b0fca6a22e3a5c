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

/** A WGSL source and its binding table, declared once beside the module that imports it. */
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
 * A cached (pipeline, bind group) pair for one entry point. Built from an {@link EntryPoint}, it
 * takes its resources by name; built from a kernel and an entry name (the positional form), it
 * takes binding numbers and resources as two parallel lists at each dispatch.
 */
export class KernelCall<E extends EntryPoint<string> = EntryPoint<never>> {
  /** `kernel.entry`, used in dispatch labels and error messages. */
  readonly label: string;
  readonly #gpu: Gpu;
  readonly #pipeline: GPUComputePipeline;
  readonly #groups = new BindGroupCache();
  /** The entry point's binding names and numbers; null for the positional form. */
  readonly #names: readonly string[] | null;
  readonly #numbers: readonly number[];

  /** Looks up (or compiles) the pipeline of `entry` with `constants`. */
  constructor(gpu: Gpu, entry: E, constants?: Constants);
  /**
   * The positional form, for callers that pass binding numbers at each dispatch: lib/nn/linear.ts
   * (its column sum and fused-activation gradient) until it moves to an {@link EntryPoint}.
   */
  constructor(gpu: Gpu, kernel: Kernel, entry: string, constants?: Constants);
  constructor(gpu: Gpu, what: E | Kernel, entryOrConstants?: string | Constants, more?: Constants) {
    this.#gpu = gpu;
    let kernel: Kernel, entry: string, constants: Constants;
    if (typeof entryOrConstants === "string") {
      [kernel, entry, constants] = [what as Kernel, entryOrConstants, more ?? {}];
      this.#names = null;
      this.#numbers = [];
    } else {
      const point = what as E;
      [kernel, entry, constants] = [point.kernel, point.entry, entryOrConstants ?? {}];
      this.#names = Object.keys(point.bindings);
      this.#numbers = Object.values(point.bindings);
    }
    this.label = `${kernel.name}.${entry}`;
    this.#pipeline = gpu.pipelines.get(kernel, entry, constants);
  }

  /** Encodes one dispatch with each of the entry point's bindings taken from `resources`. */
  encode(
    enc: StepEncoder,
    grid: readonly [number, number, number],
    resources: Resources<Extract<keyof E["bindings"], string>>,
  ): void;
  /** Positional form: encodes one dispatch with `resources[i]` at binding `bindings[i]`. */
  encode(
    enc: StepEncoder,
    grid: readonly [number, number, number],
    bindings: readonly number[],
    resources: readonly Resource[],
  ): void;
  encode(
    enc: StepEncoder,
    grid: readonly [number, number, number],
    named: readonly number[] | Readonly<Record<string, Resource>>,
    positional?: readonly Resource[],
  ): void {
    let numbers: readonly number[], resources: readonly Resource[];
    if (Array.isArray(named)) {
      [numbers, resources] = [named, positional!];
    } else {
      if (this.#names === null) {
        throw new TypeError(
          `Cannot encode ${this.label} by name: it was built without an EntryPoint`,
        );
      }
      const byName = named as Readonly<Record<string, Resource>>;
      const missing = this.#names.filter((n) => byName[n] === undefined);
      if (missing.length > 0) {
        throw new TypeError(`Cannot encode ${this.label}: no resource for ${missing.join(", ")}`);
      }
      [numbers, resources] = [this.#numbers, this.#names.map((n) => byName[n])];
    }
    this.#gpu.lastKernel = this.label;
    const group = this.#groups.get(
      resources,
      () =>
        resources.map((r) =>
          r instanceof Tensor ? bufferKey(r.binding()) : String(objectId(r.buffer))
        ).join(","),
      () =>
        this.#gpu.device.createBindGroup({
          label: this.label,
          layout: this.#pipeline.getBindGroupLayout(0),
          entries: resources.map((r, i) => ({ binding: numbers[i], resource: entry(r) })),
        }),
    );
    enc.dispatch(this.label, this.#pipeline, group, grid);
  }
}
