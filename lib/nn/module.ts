/**
 * The module contract: explicit `forward(enc, x)` / `backward(enc, dY)` pairs.
 *
 * A module declares its parameters ({@link Module.parameterSpecs}) and may hold named children
 * ({@link Module.children}: a Sequential's are "0", "1", …; a module of your own names its own
 * with `register`), as PyTorch's `nn.Module` does. The model's {@link Sequential.to} puts every
 * parameter of the whole tree in one arena on the GPU and hands each module its views
 * ({@link Module.attach}); state-dict names are the path from the model, joined by "." as
 * PyTorch's ("2.0.weight", "3.fc.bias"). Forward saves what backward needs in named fields;
 * backward adds into the parameters' gradients and returns dX. Activations are allocated once
 * per batch size and reused, so the step loop never allocates. Tensors a module returns stay
 * owned by the module.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import type { StagedOperand } from "../ops/matmul.ts";
import type { Tensor } from "../tensor.ts";
import type { StateTensor } from "../io/safetensors.ts";
import type { Parameter, ParameterSpec } from "./parameter.ts";

/**
 * A tensor of a state dict on the host, in PyTorch's layout (a Linear weight is [out, in]): the
 * safetensors `StateTensor` (F32 or I64), so what `stateDictOf(readSafetensorsFile(p))` gives is
 * what `loadStateDict` takes.
 *
 * @example BatchNorm's step count, as PyTorch stores it
 * ```ts
 * import type { HostTensor } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * const count: HostTensor = { dtype: "I64", shape: [], data: BigInt64Array.of(20n) };
 * equal(count.data.length, 1); // shape [] is a scalar: one element
 * ```
 */
export type HostTensor = StateTensor;

/**
 * What a module learns about its place in the model when the model's {@link Sequential.to}
 * attaches it.
 *
 * @example A layer that keeps its state-dict prefix
 * ```ts
 * import { type AttachContext, Module, type Parameter } from "@wgnn/wgnn";
 * import type { StepEncoder, Tensor } from "@wgnn/wgnn";
 *
 * class Tap extends Module {
 *   prefix = "";
 *   describe(): string {
 *     return "Tap()";
 *   }
 *   override attach(context: AttachContext, params: Parameter[]): void {
 *     super.attach(context, params);
 *     this.prefix = context.path; // "1" in a Sequential, "2.0" in a nested one
 *   }
 *   outputShape(input: readonly number[]): number[] {
 *     return [...input];
 *   }
 *   forward(_enc: StepEncoder, x: Tensor): Tensor {
 *     return x;
 *   }
 *   backward(_enc: StepEncoder, dY: Tensor): Tensor {
 *     return dY;
 *   }
 * }
 * ```
 */
export interface AttachContext {
  /** The GPU. */
  gpu: Gpu;
  /**
   * Position among its parent's children (in a Sequential, its index); -1 for the model itself.
   */
  index: number;
  /**
   * The state-dict prefix: the names from the model down to this module, joined by "." ("3" for
   * a child of the model, "2.0" inside a nested Sequential, "3.fc" for a child named "fc"); ""
   * for the model itself.
   */
  path: string;
  /**
   * Position in the whole model, counting every module below the model depth-first from 0 (a
   * parent before its children): its index for a child of a flat Sequential, and distinct for
   * every module of a nested one (Dropout keys its masks on it); -1 for the model itself.
   */
  position: number;
  /**
   * The model's training-forward counter (u32 [current, next]) for a module that declares
   * {@link Module.readsStepCounter} (Dropout); null when no module of the model does.
   */
  stepCounter: Tensor | null;
  /**
   * False where the module's input gradient is never needed (the first module with parameters,
   * and what runs before it); its parent decides ({@link Module.childNeedsInputGrad}).
   */
  needsInputGrad: boolean;
}

/**
 * Base class of every layer: an explicit {@link Module.forward} / {@link Module.backward} pair
 * that encodes into a {@link StepEncoder}, parameters declared by
 * {@link Module.parameterSpecs}, and PyTorch's train/eval switch.
 *
 * @example A pass-through layer, and the shape check every module offers
 * ```ts
 * import { Module, type StepEncoder, type Tensor } from "@wgnn/wgnn";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * class Identity extends Module {
 *   describe(): string {
 *     return "Identity()";
 *   }
 *   outputShape(input: readonly number[]): number[] {
 *     return [...input];
 *   }
 *   forward(_enc: StepEncoder, x: Tensor): Tensor {
 *     return x; // a real layer dispatches a kernel and saves what backward needs
 *   }
 *   backward(_enc: StepEncoder, dY: Tensor): Tensor {
 *     return dY; // and returns dX, adding into its parameters' gradients
 *   }
 * }
 *
 * const layer = new Identity().eval();
 * equal(layer.training, false);
 * deepEqual(layer.outputShape([3, 32, 32]), [3, 32, 32]);
 * deepEqual(layer.parameterSpecs(), []);
 * ```
 *
 * @example A module of your own with named children, and its PyTorch names
 * ```ts
 * import { BatchNorm1d, LeakyReLU, Linear, Module, Sequential } from "@wgnn/wgnn";
 * import type { StepEncoder, Tensor } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * // PyTorch: self.fc = nn.Linear(n, n); self.act = nn.LeakyReLU(); self.bn = nn.BatchNorm1d(n)
 * class Block extends Module {
 *   readonly fc: Linear;
 *   readonly act: LeakyReLU;
 *   readonly bn: BatchNorm1d;
 *   constructor(readonly features: number) {
 *     super();
 *     this.fc = this.register("fc", new Linear(features, features));
 *     this.act = this.register("act", new LeakyReLU());
 *     this.bn = this.register("bn", new BatchNorm1d(features));
 *   }
 *   describe(): string {
 *     return `Block(${this.features})`;
 *   }
 *   outputShape(input: readonly number[]): number[] {
 *     return this.bn.outputShape(this.fc.outputShape(input));
 *   }
 *   forward(enc: StepEncoder, x: Tensor): Tensor {
 *     return this.bn.forward(enc, this.act.forward(enc, this.fc.forward(enc, x)));
 *   }
 *   backward(enc: StepEncoder, dY: Tensor): Tensor {
 *     return this.fc.backward(enc, this.act.backward(enc, this.bn.backward(enc, dY)));
 *   }
 * }
 *
 * const model = new Sequential(new Linear(4, 8), new Block(8), new Linear(8, 2));
 * deepEqual(Object.keys(model.expectedState()).slice(2, 6), [
 *   "1.fc.weight", // [8, 8] in PyTorch's [out, in], wherever the Linear is
 *   "1.fc.bias",
 *   "1.bn.weight",
 *   "1.bn.bias",
 * ]);
 * ```
 */
export abstract class Module {
  /** Train mode (true) or eval mode (false), as PyTorch's `module.training`. */
  training = true;
  /** Set by {@link Module.attach}; null before. */
  protected gpu: Gpu | null = null;
  /** Position among the parent's children (see {@link AttachContext.index}), for messages. */
  protected index: number = -1;
  /** The state-dict prefix (see {@link AttachContext.path}); "" until attached. */
  protected path = "";
  /** Whether backward must produce dX. */
  protected needsInputGrad = true;
  readonly #children: [string, Module][] = [];

  /**
   * Short name used in messages, `toString` and as the architecture a checkpoint records, e.g.
   * "Linear(3072, 128)". A module with children should name them (a resume compares it).
   */
  abstract describe(): string;

  /**
   * Adds `child` under `name` (PyTorch's `add_module`): its parameters join the model's arena,
   * its state-dict names are prefixed with `name.`, and train/eval, the step counter and dispose
   * reach it. Call it when building (a field initializer is the usual place); returns `child`.
   * Throws a TypeError for a name that is empty, holds a ".", or is taken, and for a child that
   * is not a Module, is this module, or is added after the model moved to a GPU.
   */
  protected register<T extends Module>(name: string, child: T): T {
    const what = `Cannot register child ${JSON.stringify(name)}`;
    if (typeof name !== "string" || name === "" || name.includes(".")) {
      throw new TypeError(`${what}: a name must be a non-empty string without "."`);
    }
    if (this.#children.some(([n]) => n === name)) {
      throw new TypeError(`${what}: the name is taken`);
    }
    if (!(child instanceof Module) || (child as Module) === this) {
      throw new TypeError(`${what}: the child must be another Module: current value is ${child}`);
    }
    if (this.gpu !== null) throw new TypeError(`${what}: the model is already on a GPU`);
    this.#children.push([name, child]);
    return child;
  }

  /**
   * The named children, in the order they were registered (a Sequential's are "0", "1", …).
   * Their parameters, buffers and state-dict names come after this module's own.
   */
  children(): readonly (readonly [string, Module])[] {
    return this.#children;
  }

  /**
   * Whether child `index` of {@link Module.children} must produce its input gradient, asked once
   * this module is attached. The default is true for every child: a module of your own may call
   * its children in any order. Sequential answers false up to its first child with parameters
   * (unless its own input gradient is needed); Residual answers as for itself.
   */
  childNeedsInputGrad(_index: number): boolean {
    return true;
  }

  /** True once the model's `to(gpu)` attached this module. */
  get attached(): boolean {
    return this.gpu !== null;
  }

  /** Switches this module and every module below it to train mode (`mode = true`) or eval mode. */
  train(mode = true): this {
    this.training = mode;
    for (const [, child] of this.children()) child.train(mode);
    return this;
  }

  /** Switches to eval mode. */
  eval(): this {
    return this.train(false);
  }

  /**
   * True when the module reads {@link AttachContext.stepCounter} (Dropout keys its masks on it):
   * the model then keeps that counter on the GPU and advances it at each training forward.
   */
  readonly readsStepCounter: boolean = false;

  /**
   * True when forward only reshapes its input (Flatten): a loader that writes the next module's
   * input staging ({@link Module.inputStaging}) may look past it.
   */
  readonly reshapesOnly: boolean = false;

  /** Parameters this module owns, with PyTorch names relative to the module ("weight"). */
  parameterSpecs(): ParameterSpec[] {
    return [];
  }

  /**
   * Offers this module to run inside `previous`'s forward (called by {@link Sequential.to}
   * before attaching; LeakyReLU asks {@link Module.absorbActivation}). By default it runs alone.
   */
  fuseInto(_previous: Module): void {}

  /**
   * Asked by a following LeakyReLU with `slope` ≥ 0: whether this module takes
   * `y = y > 0 ? y : slope·y` into its own forward (Linear, in its matmul's epilogue;
   * BatchNorm2d, in its normalisation) and the mask into its backward. The
   * default declines.
   */
  absorbActivation(_slope: number): boolean {
    return false;
  }

  /**
   * Where a loader may write this module's input of `batch` rows directly (a staging texture its
   * forward would otherwise fill), or null (the default: the input is read where it is).
   */
  inputStaging(_batch: number): StagedOperand | null {
    return null;
  }

  /**
   * Receives the GPU, its place in the model and views of its own parameters (in spec order).
   * The model attaches a parent before its children, each once.
   */
  attach(context: AttachContext, _params: Parameter[]): void {
    this.gpu = context.gpu;
    this.index = context.index;
    this.path = context.path;
    this.needsInputGrad = context.needsInputGrad;
  }

  /** The GPU, or an error naming the module when it was never attached. */
  protected requireGpu(): Gpu {
    if (this.gpu === null) {
      throw new Error(
        `Cannot run ${this.describe()}: it is not on a GPU yet; call model.to(gpu) first`,
      );
    }
    return this.gpu;
  }

  /** Per-sample output shape for a per-sample input shape; throws on a mismatch. */
  abstract outputShape(input: readonly number[]): number[];

  /** Encodes the forward pass; the returned tensor is owned by the module. */
  abstract forward(enc: StepEncoder, x: Tensor): Tensor;

  /** Encodes the backward pass for the last forward; returns dX (owned by the module). */
  abstract backward(enc: StepEncoder, dY: Tensor): Tensor;

  /** Non-parameter state for the state dict (BatchNorm's running statistics), read back. */
  readBuffers(): Promise<Record<string, HostTensor>> {
    return Promise.resolve({});
  }

  /** Restores non-parameter state written by {@link Module.readBuffers}. */
  writeBuffers(_buffers: Record<string, HostTensor>): void {}

  /** Names (relative) and shapes of the non-parameter state, for checks on load. */
  bufferShapes(): Record<string, { dtype: "F32" | "I64"; shape: number[] }> {
    return {};
  }

  /**
   * Frees what this module allocated itself (per-batch activations, its own state); not its
   * children, which the model disposes one by one, nor its parameters (the model's arena).
   */
  dispose(): void {}
}

/**
 * Per-batch-size resources, created on first use and disposed together.
 *
 * @example A layer's output, allocated once per batch size
 * ```ts
 * import { PerBatch } from "@wgnn/wgnn/advanced";
 * import { equal } from "node:assert/strict";
 *
 * let made = 0;
 * const outputs = new PerBatch((batch) => ({ rows: batch, id: ++made, dispose() {} }));
 * equal(outputs.get(64).id, 1);
 * equal(outputs.get(64).id, 1); // the same buffers every step of that batch size
 * equal(outputs.get(17).id, 2); // the last, smaller batch gets its own
 * outputs.dispose();
 * ```
 */
export class PerBatch<T extends { dispose(): void }> {
  readonly #map = new Map<number, T>();
  readonly #make: (batch: number) => T;

  /** `make(batch)` creates the resources for one batch size. */
  constructor(make: (batch: number) => T) {
    this.#make = make;
  }

  /** The resources for `batch` rows, created once. */
  get(batch: number): T {
    let value = this.#map.get(batch);
    if (!value) {
      value = this.#make(batch);
      this.#map.set(batch, value);
    }
    return value;
  }

  /** Disposes every batch size's resources. */
  dispose(): void {
    for (const v of this.#map.values()) v.dispose();
    this.#map.clear();
  }
}

/** Disposes several things at once (a PerBatch entry is often a few tensors and plans). */
export function disposeAll(...things: ({ dispose(): void } | null | undefined)[]): void {
  for (const t of things) t?.dispose();
}

/**
 * Checks that `x` is [batch, ...shape] f32, naming the module; returns the batch size.
 *
 * @example The first line of a layer's forward
 * ```ts
 * import { checkInput, type Module, type Tensor } from "@wgnn/wgnn/advanced";
 *
 * function rows(layer: Module, x: Tensor, features: number): number {
 *   return checkInput(layer, x, [features]); // RangeError naming the layer and x's shape
 * }
 * ```
 */
export function checkInput(module: Module, x: Tensor, shape: readonly number[]): number {
  const ok = x.dtype === "f32" && x.shape.length === shape.length + 1 &&
    shape.every((d, i) => d === x.shape[i + 1]);
  if (!ok) {
    throw new RangeError(
      `Cannot run ${module.describe()}: expected input [batch, ${
        shape.join(", ")
      }] f32: current input "${x.label}" is [${x.shape.join(", ")}] ${x.dtype}`,
    );
  }
  return x.shape[0];
}

/** Throws a RangeError unless `value` is a positive integer, naming the layer and argument. */
export function positiveInt(what: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`Cannot create ${what}: ${name} must be > 0: current value is ${value}`);
  }
}
