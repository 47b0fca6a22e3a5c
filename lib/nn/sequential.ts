/**
 * Sequential: modules run in order, as PyTorch's `nn.Sequential`; the one moved with `to(gpu)` is
 * the model, which owns the parameter arena of its whole tree.
 *
 * `to(gpu)` walks the tree (a Sequential's children, a Residual's `fn`, the registered children
 * of a module of your own; lib/nn/tree.ts), puts every parameter anywhere in it in one arena (so
 * an optimizer updates the whole model in one dispatch) and attaches each module, a parent
 * before its children. Each Sequential offers each child to the one before it
 * ({@link Module.fuseInto}: a LeakyReLU/ReLU with slope ≥ 0 runs in a preceding Linear's matmul
 * epilogue or a preceding BatchNorm2d's kernels), so only siblings fuse, never across a
 * container's boundary. When a module anywhere
 * reads it ({@link Module.readsStepCounter}: Dropout), the model keeps the GPU's
 * training-forward counter that keys its masks; other models count training forwards on the host
 * and run no counter kernel. The state dict converts each parameter to PyTorch's layout as its
 * spec declares ({@link ParameterSpec.layout}); the container never asks what kind a module is.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { Tensor } from "../tensor.ts";
import { COUNTER_ADVANCE } from "./dropout.ts";
import { KernelCall } from "./kernel_call.ts";
import type { StagedOperand } from "../ops/matmul.ts";
import { type AttachContext, type HostTensor, Module } from "./module.ts";
import { type Parameter, ParameterArena } from "./parameter.ts";
import {
  expectedEntries,
  hasParameters,
  loadState,
  type ModelNode,
  readState,
  statePath,
  walkTree,
} from "./tree.ts";

/**
 * A state dict: PyTorch names to host tensors in PyTorch's layout, as
 * {@link Sequential.stateDict} returns and {@link Sequential.loadStateDict} takes. It can be
 * written with `writeSafetensorsFile` and loaded by PyTorch.
 *
 * @example Save a model's weights for PyTorch
 * ```ts
 * import { type Sequential, type StateDict, writeSafetensorsFile } from "@wgnn/wgnn";
 *
 * async function save(model: Sequential, path: string): Promise<void> {
 *   const state: StateDict = await model.stateDict(); // "1.weight" [out, in], ...
 *   await writeSafetensorsFile(path, state, { format: "pt" });
 * }
 * ```
 */
export type StateDict = Record<string, HostTensor>;

/** What the Sequential moved with `to(gpu)` holds for its whole tree. */
interface ModelPart {
  /** Every module of the tree, depth-first, with its own parameters. */
  nodes: ModelNode[];
  arena: ParameterArena;
  /** The GPU's training-forward counter (u32 [current, next]); null when no module reads it. */
  counter: Tensor | null;
  advance: KernelCall<typeof COUNTER_ADVANCE> | null;
}

/**
 * A chain of modules, as PyTorch's `nn.Sequential`; a child may itself be a Sequential, a
 * Residual or any module with children of its own. Building it allocates nothing;
 * {@link Sequential.to} puts it on a GPU and makes it the model, which owns every module of its
 * tree, their activations and the parameter arena: {@link Sequential.dispose} frees them all. A
 * Sequential inside a model runs its children in order; the model's methods (parameters, state
 * dict, step count) are the model's to answer.
 *
 * @example The lecture's BatchNorm model, checked on the CPU
 * ```ts
 * import { BatchNorm1d, Flatten, LeakyReLU, Linear, Sequential } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * const model = new Sequential(
 *   new Flatten(),
 *   new Linear(3072, 128),
 *   new LeakyReLU(),
 *   new BatchNorm1d(128),
 *   new Linear(128, 128),
 *   new LeakyReLU(),
 *   new BatchNorm1d(128),
 *   new Linear(128, 10),
 * );
 * deepEqual(model.outputShape([3, 32, 32]), [10]);
 * deepEqual(model.expectedState()["1.weight"], { dtype: "F32", shape: [128, 3072] });
 * deepEqual(model.expectedState()["3.num_batches_tracked"], { dtype: "I64", shape: [] });
 * ```
 *
 * @example A Sequential inside a Sequential: PyTorch's nested names
 * ```ts
 * import { BatchNorm1d, Flatten, LeakyReLU, Linear, Sequential } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * const block = new Sequential(new Linear(3072, 64), new LeakyReLU());
 * const model = new Sequential(new Flatten(), block, new BatchNorm1d(64), new Linear(64, 10));
 * deepEqual(Object.keys(model.expectedState()).slice(0, 3), ["1.0.weight", "1.0.bias", "2.weight"]);
 * deepEqual(model.outputShape([3, 32, 32]), [10]);
 * ```
 *
 * @example On the GPU, then back to PyTorch's names
 * ```ts
 * import { type Gpu, Linear, ReLU, Sequential } from "@wgnn/wgnn";
 *
 * async function build(gpu: Gpu): Promise<Sequential> {
 *   const model = new Sequential(new Linear(4, 8), new ReLU(), new Linear(8, 2)).to(gpu);
 *   const state = await model.stateDict();
 *   console.log(Object.keys(state)); // ["0.weight", "0.bias", "2.weight", "2.bias"]
 *   return model; // the caller disposes it
 * }
 * ```
 */
export class Sequential extends Module {
  /** The child modules, in order (their index is their state-dict name: "0", "1", …). */
  readonly modules: readonly Module[];
  /** True when every child only reshapes (a loader's staging may look past this Sequential). */
  override readonly reshapesOnly: boolean;
  /** The model's part, set by {@link Sequential.to}; null for a Sequential inside a model. */
  #model: ModelPart | null = null;
  /** Training forwards encoded, kept instead of the GPU counter when no module reads it. */
  #hostSteps = 0;
  /** Index of the first child with parameters anywhere below it; -1 when none has any. */
  #firstParam = -1;

  /** Chains `modules` (at least one). Throws a TypeError for an argument that is not a Module. */
  constructor(...modules: Module[]) {
    super();
    if (modules.length === 0) {
      throw new RangeError(
        "Cannot create Sequential: it needs at least one module: current count is 0",
      );
    }
    modules.forEach((m, i) => {
      if (!(m instanceof Module)) {
        throw new TypeError(
          `Cannot create Sequential: argument ${i} is not a Module: current value is ${m}`,
        );
      }
    });
    this.modules = modules;
    modules.forEach((m, i) => this.register(String(i), m));
    this.reshapesOnly = modules.every((m) => m.reshapesOnly);
  }

  /** `Sequential(…)` with every child's description. */
  describe(): string {
    return `Sequential(${this.modules.map((m) => m.describe()).join(", ")})`;
  }

  /**
   * Moves the model to `gpu`: allocates one parameter arena for every module of its tree,
   * uploads the weights and attaches each module (which fuses siblings). Throws when a module of
   * the tree is on a GPU already (in another model) or is in the tree twice.
   */
  to(gpu: Gpu): this {
    if (this.gpu !== null) {
      throw new Error(`Cannot move ${this.describe()} to a GPU: it is already on one`);
    }
    const tree = walkTree(this);
    const taken = tree.find((n) => n.module.attached);
    if (taken !== undefined) {
      throw new Error(
        `Cannot move ${this.describe()} to a GPU: its module "${taken.path}" (${taken.module.describe()}) is already on one, in another model`,
      );
    }
    expectedEntries(tree); // two entries of one name are refused before anything is allocated
    const specs = tree.map((n) => n.module.parameterSpecs());
    const arena = new ParameterArena(
      gpu,
      tree.flatMap((n, k) => specs[k].map((s) => ({ ...s, name: statePath(n.path, s.name) }))),
      "params",
    );
    const reads = tree.some((n) => n.module.readsStepCounter);
    const counter = reads ? Tensor.from(gpu, new Uint32Array(2), [2], "train step counter") : null;
    const advance = reads ? new KernelCall(gpu, COUNTER_ADVANCE) : null;
    // Depth-first, so a parent is attached (and has fused its children) before its children.
    let offset = 0;
    const nodes = tree.map((n, k): ModelNode => {
      const params = arena.params.slice(offset, offset + specs[k].length);
      offset += specs[k].length;
      const needsInputGrad = n.parent?.module.childNeedsInputGrad(n.index) ?? false;
      const context: AttachContext = {
        gpu,
        index: n.index,
        path: n.path,
        position: n.position,
        stepCounter: counter,
        needsInputGrad,
      };
      n.module.attach(context, params);
      return { ...n, specs: specs[k], params };
    });
    this.#model = { nodes, arena, counter, advance };
    return this;
  }

  /**
   * Receives its place in the model, then offers each child to the one before it (before the
   * children are attached: they compile their kernels by it; a fused LeakyReLU compiles none).
   */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    this.modules.forEach((m, i) => {
      if (i > 0) m.fuseInto(this.modules[i - 1]);
    });
    this.#firstParam = this.modules.findIndex(hasParameters);
  }

  /**
   * Children up to the first one with parameters need no input gradient (nothing before them
   * learns), unless this Sequential's own input gradient is needed.
   */
  override childNeedsInputGrad(index: number): boolean {
    return this.needsInputGrad || index > this.#firstParam;
  }

  /** The parameter arena of the whole model (pass it to an optimizer). */
  parameters(): ParameterArena {
    return this.#requireModel("list parameters of").arena;
  }

  /** The per-sample output shape for a per-sample input shape; throws on a mismatch. */
  outputShape(input: readonly number[]): number[] {
    return this.modules.reduce((shape, m) => m.outputShape(shape), [...input]);
  }

  /**
   * Encodes the forward pass of every module; in train mode, the model counts the step first
   * (on the GPU when a module reads the counter).
   */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    const model = this.#model;
    if (model !== null && this.training) {
      if (model.counter !== null) {
        model.advance!.encode(enc, [1, 1, 1], { counter_rw: model.counter });
      } else {
        this.#hostSteps += 1;
      }
    }
    return this.modules.reduce((h, m) => m.forward(enc, h), x);
  }

  /** Encodes the backward pass in reverse order; returns the last dX. */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    // Without a need for dX, modules before the first one with parameters need no backward.
    const first = this.needsInputGrad ? 0 : Math.max(0, this.#firstParam);
    let g = dY;
    for (let i = this.modules.length - 1; i >= first; i--) g = this.modules[i].backward(enc, g);
    return g;
  }

  /**
   * Where a loader may write a batch of `batch` rows directly: the input staging of the first
   * module that does more than reshape (a Linear whose matmul reads textures, also inside a
   * nested Sequential); else null.
   */
  override inputStaging(batch: number): StagedOperand | null {
    return this.modules.find((m) => !m.reshapesOnly)?.inputStaging(batch) ?? null;
  }

  /**
   * Training forwards so far (the Dropout step). Read from the GPU counter when a module reads
   * it, so only submitted steps count; otherwise the host's count of training forwards encoded,
   * as of this call (steps encoded and never submitted count too).
   */
  async trainingSteps(): Promise<number> {
    const model = this.#requireModel("count the training steps of");
    if (model.counter === null) return this.#hostSteps; // read before any await: as of the call
    return (await model.counter.read())[1];
  }

  /** Sets the training-forward count (when resuming a run). */
  setTrainingSteps(steps: number): void {
    const model = this.#requireModel("set the training steps of");
    if (model.counter === null) this.#hostSteps = steps;
    else model.counter.write(new Uint32Array([Math.max(0, steps - 1), steps]));
  }

  /** Reads the model's state dict with PyTorch's names, shapes, layouts and order. */
  stateDict(): Promise<StateDict> {
    return readState(this.#requireModel("read the state dict of").nodes, "value", true);
  }

  /** Reads every parameter's gradient, with PyTorch's names, shapes and layouts. */
  gradients(): Promise<StateDict> {
    return readState(this.#requireModel("read the gradients of").nodes, "grad", false);
  }

  /**
   * The names, dtypes and PyTorch shapes a state dict for this model must have, in PyTorch's
   * order (names relative to this Sequential; it need not be on a GPU).
   */
  expectedState(): Record<string, { dtype: "F32" | "I64"; shape: number[] }> {
    return expectedEntries(walkTree(this));
  }

  /**
   * Loads a state dict (PyTorch names and layouts). Every missing, unexpected, mis-shaped or
   * mis-typed entry (dtype, typed array, length), NaN/Inf, negative running_var or
   * num_batches_tracked outside [0, 2³²) is reported in one RangeError; every entry is checked
   * before any is written, so a failed load leaves the model as it was.
   */
  loadStateDict(state: StateDict): void {
    loadState(this.#requireModel("load a state dict into").nodes, state);
  }

  /** The model's part, or an error saying why this Sequential has none. */
  #requireModel(what: string): ModelPart {
    if (this.#model !== null) return this.#model;
    const why = this.gpu === null
      ? "call to(gpu) first"
      : "it is part of a model: ask the model (the Sequential moved with to(gpu))";
    throw new Error(`Cannot ${what} ${this.describe()}: ${why}`);
  }

  /**
   * The model frees every module of its tree (each its own buffers), the parameter arena and
   * the step counter (if any). A Sequential inside a model owns nothing of its own: its model
   * frees it.
   */
  override dispose(): void {
    const model = this.#model;
    if (model === null) return;
    for (const n of model.nodes.slice(1)) n.module.dispose();
    model.arena.dispose();
    model.counter?.dispose();
  }
}
