/**
 * Sequential: modules run in order, parameters in one arena, PyTorch state-dict names.
 *
 * `to(gpu)` offers each module to the one before it ({@link Module.fuseInto}: a LeakyReLU/ReLU
 * with slope ≥ 0 runs in a preceding Linear's matmul epilogue), creates the parameter arena (so
 * an optimizer updates the whole model in one dispatch) and, when a module reads it
 * ({@link Module.readsStepCounter}: Dropout), the GPU's training-forward counter that keys its
 * masks; other models count training forwards on the host and run no counter kernel. The state
 * dict converts each parameter to PyTorch's layout as its spec declares
 * ({@link ParameterSpec.layout}); the container never asks what kind a module is.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { describeData, Tensor } from "../tensor.ts";
import { COUNTER_ADVANCE } from "./dropout.ts";
import { KernelCall } from "./kernel_call.ts";
import type { StagedOperand } from "../ops/matmul.ts";
import { type HostTensor, Module } from "./module.ts";
import {
  fromStateLayout,
  type Parameter,
  ParameterArena,
  type ParameterSpec,
  stateShape,
  toStateLayout,
} from "./parameter.ts";

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

/** num_batches_tracked is kept as a u32 on the GPU. */
const MAX_BATCHES_TRACKED = 0xffffffff;

/**
 * What is wrong with state-dict entry `name` against its expected dtype and shape, or null.
 * Checks everything a write could trip on (dtype, shape, the typed array, its length) and the
 * values a model cannot use: NaN/Inf, a negative running_var, a num_batches_tracked outside u32.
 */
function entryProblem(
  name: string,
  t: HostTensor | undefined,
  e: { dtype: "F32" | "I64"; shape: number[] },
): string | null {
  if (!t) return `missing "${name}"`;
  if (t.dtype !== e.dtype) return `"${name}" has dtype ${t.dtype}, expected ${e.dtype}`;
  if (
    !Array.isArray(t.shape) || t.shape.length !== e.shape.length ||
    t.shape.some((d, k) => d !== e.shape[k])
  ) {
    const shape = Array.isArray(t.shape) ? t.shape.join(", ") : String(t.shape);
    return `"${name}" has shape [${shape}], expected [${e.shape.join(", ")}]`;
  }
  const kind = t.dtype === "F32" ? Float32Array : BigInt64Array;
  if (!(t.data instanceof kind)) {
    return `"${name}" data must be a ${kind.name} for dtype ${t.dtype}: current value is ${
      describeData(t.data)
    }`;
  }
  const numel = e.shape.reduce((a, b) => a * b, 1); // shape [] is a scalar: one element
  if (t.data.length !== numel) return `"${name}" has ${t.data.length} values, expected ${numel}`;
  if (t.data instanceof Float32Array) {
    const data = t.data;
    if (!data.every(Number.isFinite)) return `"${name}" holds NaN or Inf`;
    const leaf = name.slice(name.lastIndexOf(".") + 1);
    const negative = leaf === "running_var" ? data.findIndex((v) => v < 0) : -1;
    if (negative >= 0) {
      return `"${name}" must be >= 0: current value at index ${negative} is ${data[negative]}`;
    }
  } else if (name.endsWith(".num_batches_tracked")) {
    const count = t.data[0];
    if (count < 0n || count > BigInt(MAX_BATCHES_TRACKED)) {
      return `"${name}" must be in [0, ${MAX_BATCHES_TRACKED}]: current value is ${count}`;
    }
  }
  return null;
}

/**
 * A chain of modules, as PyTorch's `nn.Sequential`. Building it allocates nothing;
 * {@link Sequential.to} puts it on a GPU. The model owns its modules, their activations and the
 * parameter arena: {@link Sequential.dispose} frees them all.
 *
 * @example The seed's BatchNorm model, checked on the CPU
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
  /** The child modules, in order (their index is their state-dict prefix). */
  readonly modules: readonly Module[];
  #arena: ParameterArena | null = null;
  #owned: Parameter[][] = [];
  /** Each module's parameter specs (for their state-dict layouts), as attached. */
  #specs: ParameterSpec[][] = [];
  /** The GPU's training-forward counter (u32 [current, next]); null when no module reads it. */
  #counter: Tensor | null = null;
  #advance: KernelCall<typeof COUNTER_ADVANCE> | null = null;
  /** Training forwards encoded, kept instead of the GPU counter when no module reads it. */
  #hostSteps = 0;
  #firstParam = 0;

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
  }

  /** `Sequential(…)` with every child's description. */
  describe(): string {
    return `Sequential(${this.modules.map((m) => m.describe()).join(", ")})`;
  }

  /** Moves the model to `gpu`: fuses, allocates the parameter arena and uploads the weights. */
  to(gpu: Gpu): this {
    if (this.gpu !== null) {
      throw new Error(`Cannot move ${this.describe()} to a GPU: it is already on one`);
    }
    // Fusion first: attach compiles kernels by it (a fused LeakyReLU compiles none).
    this.modules.forEach((m, i) => {
      if (i > 0) m.fuseInto(this.modules[i - 1]);
    });
    this.#specs = this.modules.map((m) => m.parameterSpecs());
    const specs = this.#specs.flatMap((list, i) =>
      list.map((s) => ({ ...s, name: `${i}.${s.name}` }))
    );
    this.#arena = new ParameterArena(gpu, specs, "params");
    if (this.modules.some((m) => m.readsStepCounter)) {
      this.#counter = Tensor.from(gpu, new Uint32Array(2), [2], "train step counter");
      this.#advance = new KernelCall(gpu, COUNTER_ADVANCE);
    }
    let offset = 0;
    const firstWithParams = this.#specs.findIndex((list) => list.length > 0);
    this.#firstParam = firstWithParams;
    this.#owned = this.modules.map((m, i) => {
      const count = this.#specs[i].length;
      const params = this.#arena!.params.slice(offset, offset + count);
      offset += count;
      m.attach(
        { gpu, index: i, stepCounter: this.#counter, needsInputGrad: i > firstWithParams },
        params,
      );
      return params;
    });
    this.gpu = gpu;
    return this;
  }

  /** The parameter arena (pass it to an optimizer). */
  parameters(): ParameterArena {
    if (this.#arena === null) {
      throw new Error(`Cannot list parameters of ${this.describe()}: call to(gpu) first`);
    }
    return this.#arena;
  }

  /** Switches the model and every child to train mode (`mode = true`) or eval mode. */
  override train(mode = true): this {
    this.training = mode;
    for (const m of this.modules) m.train(mode);
    return this;
  }

  /** The per-sample output shape for a per-sample input shape; throws on a mismatch. */
  outputShape(input: readonly number[]): number[] {
    return this.modules.reduce((shape, m) => m.outputShape(shape), [...input]);
  }

  /**
   * Encodes the forward pass of every module; in train mode, counts the step first (on the GPU
   * when a module reads the counter).
   */
  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    if (this.training && this.#counter !== null) {
      this.#advance!.encode(enc, [1, 1, 1], { counter_rw: this.#counter });
    } else if (this.training) {
      this.#hostSteps += 1;
    }
    return this.modules.reduce((h, m) => m.forward(enc, h), x);
  }

  /** Encodes the backward pass in reverse order; returns the last dX. */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    // Modules before the first one with parameters need no backward (nothing to learn there).
    let g = dY;
    for (let i = this.modules.length - 1; i >= Math.max(0, this.#firstParam); i--) {
      g = this.modules[i].backward(enc, g);
    }
    return g;
  }

  /**
   * Where a loader may write a batch of `batch` rows directly: the input staging of the first
   * module that does more than reshape (a Linear whose matmul reads textures); else null.
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
    this.requireGpu();
    if (this.#counter === null) return this.#hostSteps; // read before any await: as of the call
    return (await this.#counter.read())[1];
  }

  /** Sets the training-forward count (when resuming a run). */
  setTrainingSteps(steps: number): void {
    this.requireGpu();
    if (this.#counter === null) this.#hostSteps = steps;
    else this.#counter.write(new Uint32Array([Math.max(0, steps - 1), steps]));
  }

  /** Reads the model's state dict with PyTorch's names, shapes and layouts. */
  async stateDict(): Promise<StateDict> {
    const [out, buffers] = await Promise.all([
      this.#readParameters("value"),
      Promise.all(this.modules.map((m) => m.readBuffers())),
    ]);
    buffers.forEach((b, i) => {
      for (const [name, t] of Object.entries(b)) out[`${i}.${name}`] = t;
    });
    return out;
  }

  /** Reads every parameter's gradient, with PyTorch's names, shapes and layouts. */
  gradients(): Promise<StateDict> {
    return this.#readParameters("grad");
  }

  async #readParameters(which: "value" | "grad"): Promise<StateDict> {
    this.requireGpu();
    // Every parameter's readback in flight at once: one wait for the GPU, not one per tensor.
    const read = new Map<Parameter, Promise<Float32Array>>();
    for (const params of this.#owned) for (const p of params) read.set(p, p[which].toFloat32());
    const out: StateDict = {};
    for (let i = 0; i < this.modules.length; i++) {
      for (const [k, p] of (this.#owned[i] ?? []).entries()) {
        const spec = this.#specs[i][k];
        const data = toStateLayout(spec, await read.get(p)!);
        out[p.name] = { dtype: "F32", shape: stateShape(spec), data };
      }
    }
    return out;
  }

  /** The names, dtypes and PyTorch shapes a state dict for this model must have. */
  expectedState(): Record<string, { dtype: "F32" | "I64"; shape: number[] }> {
    const out: Record<string, { dtype: "F32" | "I64"; shape: number[] }> = {};
    this.modules.forEach((m, i) => {
      for (const s of m.parameterSpecs()) {
        out[`${i}.${s.name}`] = { dtype: "F32", shape: stateShape(s) };
      }
      for (const [name, s] of Object.entries(m.bufferShapes())) out[`${i}.${name}`] = s;
    });
    return out;
  }

  /**
   * Loads a state dict (PyTorch names and layouts). Every missing, unexpected, mis-shaped or
   * mis-typed entry (dtype, typed array, length), NaN/Inf, negative running_var or
   * num_batches_tracked outside [0, 2³²) is reported in one RangeError; every entry is checked
   * before any is written, so a failed load leaves the model as it was.
   */
  loadStateDict(state: StateDict): void {
    this.requireGpu();
    const expected = this.expectedState();
    const problems: string[] = [];
    for (const [name, e] of Object.entries(expected)) {
      const problem = entryProblem(name, state[name], e);
      if (problem !== null) problems.push(problem);
    }
    for (const name of Object.keys(state)) {
      if (!(name in expected)) problems.push(`unexpected "${name}"`);
    }
    if (problems.length > 0) {
      throw new RangeError(
        `Cannot load state dict into ${this.describe()}: ${problems.join("; ")}`,
      );
    }
    this.modules.forEach((m, i) => {
      for (const [k, p] of (this.#owned[i] ?? []).entries()) {
        p.value.write(fromStateLayout(this.#specs[i][k], state[p.name].data as Float32Array));
      }
      const buffers = Object.fromEntries(
        Object.keys(m.bufferShapes()).map((n) => [n, state[`${i}.${n}`]]),
      );
      m.writeBuffers(buffers);
    });
  }

  /** Frees every module's buffers, the parameter arena and the step counter (if any). */
  override dispose(): void {
    for (const m of this.modules) m.dispose();
    this.#arena?.dispose();
    this.#counter?.dispose();
  }
}
