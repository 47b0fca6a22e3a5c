/**
 * The machinery shared by every optimizer: parameter groups, state allocation, the GPU step
 * counter and the encoding of one update.
 *
 * An update is two dispatches from kernels/optim.wgsl: `tick` (one invocation) advances the step
 * counter `t` kept in a small GPU buffer and derives Adam's bias corrections from it; the rule's
 * entry point then updates every element. Because `t` lives on the GPU, a training loop may encode
 * many steps into one submission. Hyperparameters live in a uniform written only when they change
 * ({@link Optimizer.setLr}). State is allocated by the constructor and freed by
 * {@link Optimizer.dispose}; {@link Optimizer.step} allocates nothing.
 *
 * @module
 */

import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import type { ParameterGroup } from "./group.ts";
import { checkGroup, checkMin } from "./validate.ts";
import { bindGroupEntries, bindings, type KernelFamily } from "../nn/kernel_call.ts";
import { ParameterArena } from "../nn/parameter.ts";
import { Tensor } from "../tensor.ts";
import optimSource from "../../kernels/optim.wgsl" with { type: "text" };

/**
 * kernels/optim.wgsl and its bindings (as its `@binding` lines, where `*_vec4` and `*_scalar`
 * view grad, param and state as `grad4` or `grad1`...; tests/bindings_test.ts).
 */
export const OPTIM = {
  name: "optim",
  source: optimSource,
  bindings: { grad: 0, param: 1, state: 2, scalars: 3, p: 4 },
} as const satisfies KernelFamily;
/** The update entry points of SGD and Adam. */
const UPDATE = bindings(OPTIM, ["grad", "param", "state", "scalars", "p"]);
/** RMSprop's: it reads neither t nor the bias corrections, so its auto layout lacks `scalars`. */
const RMSPROP_UPDATE = bindings(OPTIM, ["grad", "param", "state", "p"]);
/** `tick`: the step counter and its derived scalars. */
const TICK = bindings(OPTIM, ["scalars", "p"]);

/** Invocations per workgroup of the update kernels (a multiple of the SIMD width, 8 or 16). */
const WG = 64;

/** The uniform shared by every entry point of kernels/optim.wgsl (declaration order). */
const FIELDS = {
  n: "u32",
  stride: "u32",
  lr: "f32",
  weight_decay: "f32",
  momentum: "f32",
  one_minus_dampening: "f32",
  beta1: "f32",
  beta2: "f32",
  one_minus_beta1: "f32",
  one_minus_beta2: "f32",
  log_beta1: "f32",
  log_beta2: "f32",
  eps: "f32",
  alpha: "f32",
  one_minus_alpha: "f32",
  decay: "f32",
  clip_value: "f32",
} as const;
const OPTIM_PARAMS = new ParamsLayout("optim.Params", FIELDS);
type Field = keyof typeof FIELDS;

/**
 * Hyperparameter fields of the kernel's uniform (names as in kernels/optim.wgsl); a rule leaves
 * the ones it does not read at 0. Needed only to write a new optimizer (see {@link RuleSpec}).
 *
 * @example SGD with momentum 0.9, as the uniform sees it
 * ```ts
 * import type { Hyperparameters } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * const heavyBall = (lr: number): Hyperparameters => ({
 *   lr,
 *   momentum: 0.9,
 *   one_minus_dampening: 1, // dampening 0
 * });
 * equal(heavyBall(0.1).lr, 0.1);
 * ```
 */
export type Hyperparameters = Partial<
  Record<
    | "lr"
    | "weight_decay"
    | "momentum"
    | "one_minus_dampening"
    | "beta1"
    | "beta2"
    | "one_minus_beta1"
    | "one_minus_beta2"
    | "log_beta1"
    | "log_beta2"
    | "eps"
    | "alpha"
    | "one_minus_alpha"
    | "decay"
    | "clip_value",
    number
  >
>;

/**
 * How a subclass describes its rule to {@link Optimizer}: which update entry point of
 * kernels/optim.wgsl, which state slots, which flags and which uniform values.
 *
 * @example A fixed-momentum SGD as a subclass
 * ```ts
 * import { Optimizer, type ParameterGroup, type RuleSpec } from "@wgnn/wgnn";
 *
 * class HeavyBall extends Optimizer {
 *   constructor(params: ParameterGroup, lr: number) {
 *     const spec: RuleSpec = {
 *       name: "HeavyBall",
 *       rule: "sgd",
 *       slots: ["momentum_buffer"],
 *       constants: { MAXIMIZE: 0, HAS_MOMENTUM: 1, NESTEROV: 0 },
 *       hyperparameters: (lr) => ({ lr, momentum: 0.9, one_minus_dampening: 1 }),
 *       lr,
 *     };
 *     super(params, spec);
 *   }
 * }
 * ```
 */
export interface RuleSpec {
  /** Class name for messages, e.g. "Adam". */
  name: string;
  /** Entry-point prefix in kernels/optim.wgsl: "sgd", "adam" or "rmsprop". */
  rule: "sgd" | "adam" | "rmsprop";
  /** State slots in kernel order, named as in PyTorch's optimizer state. */
  slots: readonly string[];
  /** Override constants (flags, 0 or 1) of the rule's pipelines. */
  constants: Record<string, number>;
  /** The uniform's hyperparameters for a learning rate (called again by setLr). */
  hyperparameters: (lr: number) => Hyperparameters;
  /** Initial learning rate (already validated). */
  lr: number;
  /**
   * Clamp every gradient element to [−v, v] before the rule, fused into the update (PyTorch's
   * `clip_grad_value_` before `step`). Validated here (> 0). Default: Infinity (no clipping).
   */
  clipGradValue?: number;
}

/** One dispatch's worth of work: a tensor (or the whole arena) and its state. */
interface Target {
  value: Tensor;
  grad: Tensor;
  /** Slots of `stride` floats, or null when the rule keeps no state. */
  state: Tensor | null;
  stride: number;
  vec4: boolean;
  uniform: GpuBuffer;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
  /** Prefix of this target's state names: "" for an arena, "3." for the fourth tensor. */
  prefix: string;
}

/** Largest step count an f32 counter holds exactly (PyTorch also keeps `step` as f32). */
const MAX_STEPS = 2 ** 24;

/**
 * Base class of {@link SGD}, {@link Adam}, {@link AdamW} and {@link RMSprop}. Construct one of
 * those; this class holds the shared behaviour. An optimizer owns its state (moments, step
 * counter, uniforms) and frees it in {@link Optimizer.dispose}; the parameters stay the model's.
 *
 * @example A learning-rate schedule that works with any optimizer
 * ```ts
 * import type { Optimizer } from "@wgnn/wgnn";
 *
 * function stepDecay(optimizer: Optimizer, epoch: number, every = 10, factor = 0.5): void {
 *   if (epoch > 0 && epoch % every === 0) optimizer.setLr(optimizer.lr * factor);
 * }
 * ```
 *
 * @example Save and restore the state for resuming
 * ```ts
 * import type { Optimizer } from "@wgnn/wgnn";
 *
 * async function roundTrip(from: Optimizer, to: Optimizer): Promise<void> {
 *   const state = await from.readState(); // "exp_avg", "exp_avg_sq", "step" for Adam
 *   to.loadState(state); // the next step continues exactly where `from` stopped
 * }
 * ```
 */
export abstract class Optimizer {
  /** The optimizer's class name, used in messages. */
  readonly name: string;
  readonly #spec: RuleSpec;
  readonly #arena: ParameterArena | null;
  readonly #targets: Target[] = [];
  /** [t, step_size, bc2_sqrt, 0] — t is the step counter, the rest derived by `tick`. */
  readonly #scalars: Tensor;
  readonly #dummy: GpuBuffer;
  readonly #tick: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup };
  #lr: number;
  #steps = 0;
  #disposed = false;

  /** Validates `params`, allocates the state and compiles the rule's pipelines. */
  protected constructor(params: ParameterGroup, rule: RuleSpec) {
    const pairs = checkGroup(rule.name, params);
    const clip = rule.clipGradValue ?? Infinity;
    if (!(clip > 0)) {
      throw new RangeError(
        `Cannot create ${rule.name}: clipGradValue must be > 0: current value is ${clip}`,
      );
    }
    const clipping = Number.isFinite(clip);
    const spec: RuleSpec = clipping
      ? {
        ...rule,
        constants: { ...rule.constants, CLIP_VALUE: 1 },
        hyperparameters: (lr) => ({ ...rule.hyperparameters(lr), clip_value: clip }),
      }
      : rule;
    const gpu = pairs[0].value.gpu;
    this.name = spec.name;
    this.#spec = spec;
    this.#lr = spec.lr;
    this.#arena = params instanceof ParameterArena ? params : null;
    const k = (s: string) => `${spec.name}.${s}`;
    this.#scalars = Tensor.empty(gpu, [4], "f32", k("scalars"));
    this.#dummy = gpu.createBuffer(16, GPUBufferUsage.STORAGE, k("no state"));
    const align = gpu.limits.minStorageBufferOffsetAlignment / 4;
    const hyper = spec.hyperparameters(spec.lr);
    pairs.forEach((pair, index) => {
      const numel = pair.value.numel;
      // Slots start at the storage-offset alignment so that each can be viewed as a Tensor.
      const stride = Math.ceil(numel / align) * align;
      const slots = spec.slots.length;
      const state = slots > 0
        ? Tensor.empty(gpu, [slots * stride], "f32", k(`state ${index}`))
        : null;
      const vec4 = numel % 4 === 0;
      const unit = vec4 ? 4 : 1;
      const uniform = OPTIM_PARAMS.upload(
        gpu,
        fill(hyper, numel / unit, stride / unit),
        k("params"),
      );
      const entry = `${spec.rule}_${vec4 ? "vec4" : "scalar"}`;
      const pipeline = gpu.pipelines.get(OPTIM, entry, { ...spec.constants, WG });
      const resources = {
        grad: pair.grad,
        param: pair.value,
        state: state ?? this.#dummy,
        scalars: this.#scalars,
        p: uniform,
      };
      const bindGroup = gpu.device.createBindGroup({
        label: k(`update ${index}`),
        layout: pipeline.getBindGroupLayout(0),
        entries: spec.rule === "rmsprop"
          ? bindGroupEntries(RMSPROP_UPDATE, resources)
          : bindGroupEntries(UPDATE, resources),
      });
      const grid = grid1d(Math.ceil(numel / unit / WG));
      const prefix = this.#arena ? "" : `${index}.`;
      this.#targets.push({
        ...pair,
        state,
        stride,
        vec4,
        uniform,
        pipeline,
        bindGroup,
        grid,
        prefix,
      });
    });
    const tick = gpu.pipelines.get(OPTIM, "tick");
    this.#tick = {
      pipeline: tick,
      bindGroup: gpu.device.createBindGroup({
        label: k("tick"),
        layout: tick.getBindGroupLayout(0),
        entries: bindGroupEntries(TICK, { scalars: this.#scalars, p: this.#targets[0].uniform }),
      }),
    };
  }

  /** The current learning rate. */
  get lr(): number {
    return this.#lr;
  }

  /** Number of {@link Optimizer.step} calls encoded so far (or restored by loadState). */
  get stepCount(): number {
    return this.#steps;
  }

  /**
   * Takes back the last `count` encoded steps from {@link Optimizer.stepCount}, for a caller that
   * dropped their command buffers without submitting them (the GPU's own step counter never
   * saw them). Throws a RangeError for a count that is not an integer in [0, stepCount].
   */
  forgetSteps(count: number): void {
    if (!(Number.isInteger(count) && count >= 0 && count <= this.#steps)) {
      throw new RangeError(
        `Cannot forget ${count} steps of ${this.name}: expected an integer in [0, ${this.#steps}]`,
      );
    }
    this.#steps -= count;
  }

  /**
   * Sets the learning rate for steps submitted from now on. The uniform is written through the
   * queue, so steps already encoded but not yet submitted also see the new value: submit them
   * first.
   */
  setLr(lr: number): void {
    this.#checkLive("set lr");
    checkMin(`Cannot set ${this.name}.lr`, "lr", lr, 0);
    this.#lr = lr;
    const hyper = this.#spec.hyperparameters(lr);
    for (const t of this.#targets) {
      const unit = t.vec4 ? 4 : 1;
      const packed = OPTIM_PARAMS.pack(fill(hyper, t.value.numel / unit, t.stride / unit));
      t.uniform.write(new Uint8Array(packed));
    }
  }

  /**
   * Encodes one update of every parameter from its gradient: the step counter's tick, then one
   * dispatch for an arena or one per tensor. Waits for nothing and allocates nothing.
   */
  step(enc: StepEncoder): void {
    this.#checkLive("step");
    if (this.#steps >= MAX_STEPS) {
      throw new RangeError(
        `Cannot step ${this.name}: the step counter is exact only up to ${MAX_STEPS} steps`,
      );
    }
    enc.dispatch(`${this.name}.tick`, this.#tick.pipeline, this.#tick.bindGroup, [1, 1, 1]);
    for (const t of this.#targets) {
      enc.dispatch(`${this.name} ${t.value.label}`, t.pipeline, t.bindGroup, t.grid);
    }
    this.#steps += 1;
  }

  /**
   * Encodes `grad = 0` for every parameter (clearBuffer; no kernel). Gradients accumulate until
   * this is called, as in PyTorch.
   */
  zeroGrad(enc: StepEncoder): void {
    this.#checkLive("zero gradients");
    if (this.#arena) {
      this.#arena.zeroGrad(enc);
      return;
    }
    const commands = enc.commands();
    for (const t of this.#targets) {
      commands.clearBuffer(t.grad.buffer, t.grad.byteOffset, t.grad.byteLength);
    }
  }

  /**
   * The optimizer's state as views (do not dispose them): for an arena, one flat tensor per slot
   * (`exp_avg`, ...); for a tensor list, `<index>.<slot>` shaped like the tensor; and `step`
   * (one f32, the GPU's step counter, as PyTorch's `state["step"]`).
   */
  stateTensors(): Record<string, Tensor> {
    this.#checkLive("read state");
    const out: Record<string, Tensor> = {};
    for (const t of this.#targets) {
      this.#spec.slots.forEach((slot, s) => {
        out[`${t.prefix}${slot}`] = Tensor.view(
          t.state!,
          s * t.stride * 4,
          t.value.shape,
          `${this.name}.${t.prefix}${slot}`,
        );
      });
    }
    out.step = Tensor.view(this.#scalars, 0, [1], `${this.name}.step`);
    return out;
  }

  /** Reads every state tensor back (waits for the GPU). Keys as {@link Optimizer.stateTensors}. */
  async readState(): Promise<Record<string, Float32Array>> {
    // All readbacks in flight at once: one wait for the GPU instead of one per tensor.
    const entries = Object.entries(this.stateTensors());
    const values = await Promise.all(entries.map(([, tensor]) => tensor.toFloat32()));
    return Object.fromEntries(entries.map(([name], i) => [name, values[i]]));
  }

  /**
   * Restores state saved from {@link Optimizer.readState} (or {@link Optimizer.stateTensors}) of
   * an optimizer built the same way, including the step counter, so that training resumes exactly.
   * Throws a RangeError listing every missing, unexpected or mis-sized entry.
   */
  loadState(state: Record<string, Float32Array>): void {
    const views = this.stateTensors();
    const problems: string[] = [];
    for (const [name, view] of Object.entries(views)) {
      const data = state[name];
      if (data === undefined) problems.push(`"${name}" is missing`);
      else if (!(data instanceof Float32Array) || data.length !== view.numel) {
        problems.push(`"${name}" has ${data?.length} values (expected ${view.numel} f32)`);
      }
    }
    for (const name of Object.keys(state)) {
      if (!(name in views)) problems.push(`"${name}" is not part of ${this.name}'s state`);
    }
    const step = state.step?.[0];
    if (step !== undefined && !(Number.isInteger(step) && step >= 0 && step <= MAX_STEPS)) {
      problems.push(`"step" must be an integer in [0, ${MAX_STEPS}]: current value is ${step}`);
    }
    if (problems.length > 0) {
      throw new RangeError(`Cannot load ${this.name} state: ${problems.join("; ")}`);
    }
    for (const [name, view] of Object.entries(views)) view.write(state[name]);
    this.#steps = step!;
  }

  /** Frees the optimizer's state, counter and uniforms (not the parameters). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.#targets) {
      t.state?.dispose();
      t.uniform.dispose();
    }
    this.#scalars.dispose();
    this.#dummy.dispose();
  }

  /** Same as {@link Optimizer.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #checkLive(what: string): void {
    if (this.#disposed) throw new Error(`Cannot ${what} with ${this.name}: it was disposed`);
  }
}

/** The full uniform: the rule's hyperparameters, zeros elsewhere, and the target's sizes. */
function fill(hyper: Hyperparameters, n: number, stride: number): Record<Field, number> {
  return {
    n,
    stride,
    lr: 0,
    weight_decay: 0,
    momentum: 0,
    one_minus_dampening: 0,
    beta1: 0,
    beta2: 0,
    one_minus_beta1: 0,
    one_minus_beta2: 0,
    log_beta1: 0,
    log_beta2: 0,
    eps: 0,
    alpha: 0,
    one_minus_alpha: 0,
    decay: 0,
    clip_value: 0,
    ...hyper,
  };
}
