/**
 * The machinery shared by every optimizer: parameter groups, state allocation, the GPU step
 * counter and the encoding of one update.
 *
 * An update is two dispatches from kernels/optim.wgsl: `tick` (one invocation) advances the step
 * counter `t` kept in a small GPU buffer and derives Adam's bias corrections from it; the rule's
 * entry point then updates every element. With `clipGradNorm`, two reduction stages between them
 * compute clip_grad_norm_'s coefficient on the GPU, which the update multiplies in. Because `t` lives on the GPU, a training loop may encode
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
import type { Gpu } from "../gpu/device.ts";
import type { ParameterGroup, TensorPair } from "./group.ts";
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
  bindings: { grad: 0, param: 1, state: 2, scalars: 3, p: 4, norm: 5 },
} as const satisfies KernelFamily;
/** The update entry points of SGD and Adam. */
const UPDATE = bindings(OPTIM, ["grad", "param", "state", "scalars", "p", "norm"]);
/** RMSprop's: it reads neither t nor the bias corrections, so its auto layout lacks `scalars`. */
const RMSPROP_UPDATE = bindings(OPTIM, ["grad", "param", "state", "p", "norm"]);
/** `tick`: the step counter and its derived scalars. */
const TICK = bindings(OPTIM, ["scalars", "p"]);
/** `norm_partial_*`: one target's partial sums of squares. */
const NORM_PARTIAL = bindings(OPTIM, ["grad", "p", "norm"]);
/** `norm_finish`: the total norm and the clipping coefficient. */
const NORM_FINISH = bindings(OPTIM, ["p", "norm"]);

/** Invocations per workgroup of the update kernels (a multiple of the SIMD width, 8 or 16). */
const WG = 64;
/** Lanes of the norm kernels (NORM_WG in kernels/optim.wgsl). */
const NORM_WG = 64;
/** Most workgroups (partial sums) of the first norm stage per target. */
const NORM_PARTIALS = 64;

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
  grad_scale: "f32",
  max_norm: "f32",
  norm_base: "u32",
  norm_count: "u32",
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
  /**
   * Scale all gradients by min(1, v / (‖g‖ + 1e-6)), ‖g‖ the 2-norm over every parameter of every
   * group, computed on the GPU (PyTorch's `clip_grad_norm_` before `step`). Validated here (> 0).
   * Default: Infinity (no clipping).
   */
  clipGradNorm?: number;
}

/**
 * One parameter group of an optimizer and its rule (what a subclass passes for PyTorch's
 * `[{"params": ..., "weight_decay": 0}, ...]`). The optimizer-wide fields of the base
 * {@link RuleSpec} (name, clipping) apply to every group; `rule.lr` is the group's own rate.
 *
 * @example Two groups, the second without weight decay
 * ```ts
 * import type { ParameterGroup, RuleGroup, RuleSpec } from "@wgnn/wgnn";
 *
 * function groups(decay: ParameterGroup, noDecay: ParameterGroup, spec: (wd: number) => RuleSpec) {
 *   const list: RuleGroup[] = [{ params: decay, rule: spec(0.01) }, { params: noDecay, rule: spec(0) }];
 *   return list;
 * }
 * ```
 */
export interface RuleGroup {
  /** The group's parameters. */
  params: ParameterGroup;
  /** The group's rule: slots, flags and hyperparameters may differ between groups. */
  rule: RuleSpec;
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
  /** The target's group. */
  group: Group;
  /** First partial sum of this target in the norm buffer, and how many (clipGradNorm). */
  normBase: number;
  normPartials: number;
  pipeline: GPUComputePipeline | null;
  bindGroup: GPUBindGroup | null;
  norm: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup } | null;
  grid: [number, number, number];
  /** Prefix of this target's state names: "" for an arena, "3." for the fourth tensor. */
  prefix: string;
}

/** A parameter group: its rule, rate, step counter and tick. */
interface Group {
  rule: RuleSpec;
  /** The group's rate at construction (what setLr scales; see Optimizer.setLr). */
  lr0: number;
  lr: number;
  /** [t, step_size, bc2_sqrt, 0] — t is the step counter, the rest derived by `tick`. */
  scalars: Tensor;
  tick: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup } | null;
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
  readonly #groups: Group[] = [];
  readonly #targets: Target[] = [];
  readonly #dummy: GpuBuffer;
  /** clip_grad_norm_'s [coef, total, partials...], or null without clipGradNorm. */
  readonly #norm: Tensor | null;
  #normFinish: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup } | null = null;
  readonly #clipValue: number;
  readonly #clipNorm: number;
  #gradScale = 1;
  #lr: number;
  #steps = 0;
  #disposed = false;

  /**
   * Validates `params` (one group, or a list of {@link RuleGroup}s each with its own rule),
   * allocates the state and compiles the rules' pipelines. `rule` gives the name, the base rate
   * and the optimizer-wide clipping; a plain group is updated by `rule` itself.
   */
  protected constructor(params: ParameterGroup | readonly RuleGroup[], rule: RuleSpec) {
    const what = `Cannot create ${rule.name}`;
    const listed = isRuleGroups(params);
    const list: readonly RuleGroup[] = listed
      ? params
      : [{ params: params as ParameterGroup, rule }];
    if (list.length === 0) {
      throw new TypeError(`${what}: the list of parameter groups is empty`);
    }
    this.#clipValue = checkClip(what, "clipGradValue", rule.clipGradValue);
    this.#clipNorm = checkClip(what, "clipGradNorm", rule.clipGradNorm);
    const grouped = list.map((g, i) => {
      const name = listed ? `${rule.name} (param group ${i})` : rule.name;
      return { group: g, pairs: checkGroup(name, g.params) };
    });
    const gpu = grouped[0].pairs[0].value.gpu;
    checkDisjoint(what, grouped.map((g) => g.pairs), gpu);
    this.name = rule.name;
    this.#spec = rule;
    this.#lr = rule.lr;
    this.#arena = !listed && params instanceof ParameterArena ? params : null;
    const k = (s: string) => `${rule.name}.${s}`;
    this.#dummy = gpu.createBuffer(16, GPUBufferUsage.STORAGE, k("no state"));
    const align = gpu.limits.minStorageBufferOffsetAlignment / 4;
    let index = 0;
    let partials = 0;
    for (const [gi, { group: g, pairs }] of grouped.entries()) {
      if (listed && rule.lr === 0 && g.rule.lr !== 0) {
        throw new RangeError(
          `${what}: param group ${gi} has lr ${g.rule.lr} but the base lr is 0 (setLr scales every group's rate by its lr / the base lr)`,
        );
      }
      const group: Group = {
        rule: g.rule,
        lr0: g.rule.lr,
        lr: g.rule.lr,
        scalars: Tensor.empty(gpu, [4], "f32", k(`scalars ${gi}`)),
        tick: null,
      };
      this.#groups.push(group);
      for (const pair of pairs) {
        const numel = pair.value.numel;
        // Slots start at the storage-offset alignment so that each can be viewed as a Tensor.
        const stride = Math.ceil(numel / align) * align;
        const slots = g.rule.slots.length;
        const state = slots > 0
          ? Tensor.empty(gpu, [slots * stride], "f32", k(`state ${index}`))
          : null;
        const vec4 = numel % 4 === 0;
        const units = numel / (vec4 ? 4 : 1);
        const normPartials = Math.min(NORM_PARTIALS, Math.ceil(units / NORM_WG));
        const target: Target = {
          ...pair,
          state,
          stride,
          vec4,
          uniform: gpu.createBuffer(
            OPTIM_PARAMS.byteSize,
            GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
            k("params"),
          ),
          group,
          normBase: partials,
          normPartials,
          pipeline: null,
          bindGroup: null,
          norm: null,
          grid: grid1d(Math.ceil(units / WG)),
          prefix: this.#arena ? "" : `${index}.`,
        };
        partials += normPartials;
        this.#targets.push(target);
        index += 1;
      }
    }
    this.#norm = Number.isFinite(this.#clipNorm)
      ? Tensor.empty(gpu, [2 + partials], "f32", k("grad norm"))
      : null;
    this.#writeUniforms();
    this.#compile();
  }

  /** The current learning rate (of the first parameter group; see {@link Optimizer.lrs}). */
  get lr(): number {
    return this.#lr;
  }

  /** The current learning rate of each parameter group, in order. */
  get lrs(): number[] {
    return this.#groups.map((g) => g.lr);
  }

  /** The `clipGradValue` bound (Infinity: no clipping). */
  get clipGradValue(): number {
    return this.#clipValue;
  }

  /** The `clipGradNorm` bound (Infinity: no clipping). */
  get clipGradNorm(): number {
    return this.#clipNorm;
  }

  /** Number of parameter groups (1 unless built from a list of groups). */
  get groupCount(): number {
    return this.#groups.length;
  }

  /**
   * Each parameter group's rule at its construction rate, one line per group ("lr=0.001
   * weight_decay=0 ... | MAXIMIZE=0 ..."): what a run's manifest records so that a resume with
   * other groups is refused.
   */
  describeGroups(): string[] {
    return this.#groups.map((g) => {
      const hyper = Object.entries(g.rule.hyperparameters(g.lr0)).map(([k, v]) => `${k}=${v}`);
      const flags = Object.entries(g.rule.constants).map(([k, v]) => `${k}=${v}`);
      return `${hyper.join(" ")} | ${flags.join(" ")} | ${g.rule.slots.join(",")}`;
    });
  }

  /** The factor every gradient is multiplied by first (1 unless set by setGradScale). */
  get gradScale(): number {
    return this.#gradScale;
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
   * Sets the learning rate for steps submitted from now on. With parameter groups, every group's
   * rate is scaled alike: a group built with rate lr_g gets `lr · lr_g / lr₀` (lr₀ the base rate
   * at construction; exactly lr_g when lr = lr₀), as PyTorch's multiplicative schedulers treat
   * each group. The uniforms are written through the queue, so steps already encoded but not yet
   * submitted also see the new value: submit them first.
   */
  setLr(lr: number): void {
    this.#checkLive("set lr");
    checkMin(`Cannot set ${this.name}.lr`, "lr", lr, 0);
    this.#lr = lr;
    for (const g of this.#groups) {
      g.lr = g.lr0 === this.#spec.lr ? lr : lr * g.lr0 / this.#spec.lr;
    }
    this.#writeUniforms();
  }

  /**
   * Multiplies every gradient by `scale` before clipping and the rule, for steps submitted from
   * now on (gradient accumulation over k batches: `1 / k`, PyTorch's `loss / k`). The gradient
   * buffers are left as they are. Throws a RangeError unless `scale` is finite and > 0. Like
   * setLr, the uniforms are written through the queue.
   */
  setGradScale(scale: number): void {
    this.#checkLive("set the gradient scale");
    if (typeof scale !== "number" || !(scale > 0) || !Number.isFinite(scale)) {
      throw new RangeError(
        `Cannot set ${this.name}'s gradient scale: it must be finite and > 0: current value is ${scale}`,
      );
    }
    const recompile = (scale !== 1) !== (this.#gradScale !== 1);
    this.#gradScale = scale;
    this.#writeUniforms();
    if (recompile) this.#compile();
  }

  /**
   * Encodes one update of every parameter from its gradient: each group's step counter tick,
   * with `clipGradNorm` the two norm stages, then one dispatch for an arena or one per tensor.
   * Waits for nothing and allocates nothing.
   */
  step(enc: StepEncoder): void {
    this.#checkLive("step");
    if (this.#steps >= MAX_STEPS) {
      throw new RangeError(
        `Cannot step ${this.name}: the step counter is exact only up to ${MAX_STEPS} steps`,
      );
    }
    for (const g of this.#groups) {
      enc.dispatch(`${this.name}.tick`, g.tick!.pipeline, g.tick!.bindGroup, [1, 1, 1]);
    }
    if (this.#normFinish) {
      for (const t of this.#targets) {
        const label = `${this.name}.norm ${t.value.label}`;
        enc.dispatch(label, t.norm!.pipeline, t.norm!.bindGroup, [t.normPartials, 1, 1]);
      }
      const f = this.#normFinish;
      enc.dispatch(`${this.name}.norm`, f.pipeline, f.bindGroup, [1, 1, 1]);
    }
    for (const t of this.#targets) {
      enc.dispatch(`${this.name} ${t.value.label}`, t.pipeline!, t.bindGroup!, t.grid);
    }
    this.#steps += 1;
  }

  /**
   * Reads back the total gradient norm of the last submitted step, before clipping (what
   * PyTorch's `clip_grad_norm_` returns; waits for the GPU). Throws unless the optimizer was
   * built with `clipGradNorm`.
   */
  async readGradNorm(): Promise<number> {
    this.#checkLive("read the gradient norm");
    if (!this.#norm) {
      throw new Error(
        `Cannot read ${this.name}'s gradient norm: it was built without clipGradNorm`,
      );
    }
    const values = await this.#norm.toFloat32();
    return values[1];
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
   * (`exp_avg`, ...); for a tensor list or parameter groups, `<index>.<slot>` shaped like the
   * tensor (indices counted over all groups, as PyTorch's state dict); and `step` (one f32, the
   * GPU's step counter, as PyTorch's `state["step"]`; every group keeps the same count).
   */
  stateTensors(): Record<string, Tensor> {
    this.#checkLive("read state");
    const out: Record<string, Tensor> = {};
    for (const t of this.#targets) {
      t.group.rule.slots.forEach((slot, s) => {
        out[`${t.prefix}${slot}`] = Tensor.view(
          t.state!,
          s * t.stride * 4,
          t.value.shape,
          `${this.name}.${t.prefix}${slot}`,
        );
      });
    }
    out.step = Tensor.view(this.#groups[0].scalars, 0, [1], `${this.name}.step`);
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
    for (const g of this.#groups.slice(1)) {
      Tensor.view(g.scalars, 0, [1], `${this.name}.step`).write(state.step);
    }
    this.#steps = step!;
  }

  /** Frees the optimizer's state, counters and uniforms (not the parameters). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.#targets) {
      t.state?.dispose();
      t.uniform.dispose();
    }
    for (const g of this.#groups) g.scalars.dispose();
    this.#norm?.dispose();
    this.#dummy.dispose();
  }

  /** Same as {@link Optimizer.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #checkLive(what: string): void {
    if (this.#disposed) throw new Error(`Cannot ${what} with ${this.name}: it was disposed`);
  }

  /** Writes every target's uniform: its group's hyperparameters at its rate, sizes, clipping. */
  #writeUniforms(): void {
    const count = this.#targets.reduce((n, t) => n + t.normPartials, 0);
    for (const t of this.#targets) {
      const unit = t.vec4 ? 4 : 1;
      const values = {
        ...fill(t.group.rule.hyperparameters(t.group.lr), t.value.numel / unit, t.stride / unit),
        clip_value: Number.isFinite(this.#clipValue) ? this.#clipValue : 0,
        grad_scale: this.#gradScale,
        max_norm: Number.isFinite(this.#clipNorm) ? this.#clipNorm : 0,
        norm_base: t.normBase,
        norm_count: count,
      };
      t.uniform.write(new Uint8Array(OPTIM_PARAMS.pack(values)));
    }
  }

  /** (Re)builds every pipeline and bind group for the current flags (setGradScale may flip one). */
  #compile(): void {
    const gpu = this.#targets[0].value.gpu;
    const k = (s: string) => `${this.name}.${s}`;
    const flags = {
      CLIP_VALUE: Number(Number.isFinite(this.#clipValue)),
      GRAD_SCALE: Number(this.#gradScale !== 1),
      CLIP_NORM: Number(this.#norm !== null),
    };
    // Without clipping the flags stay at the shader's defaults: the same pipelines as before.
    const set = Object.fromEntries(Object.entries(flags).filter(([, v]) => v === 1));
    const norm = this.#norm ?? this.#dummy;
    this.#targets.forEach((t, index) => {
      const rule = t.group.rule;
      const entry = `${rule.rule}_${t.vec4 ? "vec4" : "scalar"}`;
      t.pipeline = gpu.pipelines.get(OPTIM, entry, { ...rule.constants, ...set, WG });
      const resources = {
        grad: t.grad,
        param: t.value,
        state: t.state ?? this.#dummy,
        scalars: t.group.scalars,
        p: t.uniform,
        norm,
      };
      t.bindGroup = gpu.device.createBindGroup({
        label: k(`update ${index}`),
        layout: t.pipeline.getBindGroupLayout(0),
        entries: rule.rule === "rmsprop"
          ? bindGroupEntries(RMSPROP_UPDATE, resources)
          : bindGroupEntries(UPDATE, resources),
      });
      if (this.#norm) {
        const { CLIP_VALUE, GRAD_SCALE } = flags;
        const pipeline = gpu.pipelines.get(
          OPTIM,
          `norm_partial_${t.vec4 ? "vec4" : "scalar"}`,
          { CLIP_VALUE, GRAD_SCALE },
        );
        const bindGroup = gpu.device.createBindGroup({
          label: k(`norm ${index}`),
          layout: pipeline.getBindGroupLayout(0),
          entries: bindGroupEntries(NORM_PARTIAL, { grad: t.grad, p: t.uniform, norm }),
        });
        t.norm = { pipeline, bindGroup };
      }
    });
    for (const [gi, g] of this.#groups.entries()) {
      const first = this.#targets.find((t) => t.group === g)!;
      const pipeline = gpu.pipelines.get(OPTIM, "tick");
      g.tick = {
        pipeline,
        bindGroup: gpu.device.createBindGroup({
          label: k(`tick ${gi}`),
          layout: pipeline.getBindGroupLayout(0),
          entries: bindGroupEntries(TICK, { scalars: g.scalars, p: first.uniform }),
        }),
      };
    }
    if (this.#norm) {
      const pipeline = gpu.pipelines.get(OPTIM, "norm_finish");
      this.#normFinish = {
        pipeline,
        bindGroup: gpu.device.createBindGroup({
          label: k("norm finish"),
          layout: pipeline.getBindGroupLayout(0),
          entries: bindGroupEntries(NORM_FINISH, { p: this.#targets[0].uniform, norm: this.#norm }),
        }),
      };
    }
  }
}

/** True for a list of {@link RuleGroup}s (every entry has `params` and `rule`). */
function isRuleGroups(params: unknown): params is readonly RuleGroup[] {
  return Array.isArray(params) && params.length > 0 &&
    params.every((g) => g !== null && typeof g === "object" && "params" in g && "rule" in g);
}

/** Returns a clipping bound (Infinity when unset) after checking it is > 0. */
function checkClip(what: string, option: string, value: number | undefined): number {
  const v = value ?? Infinity;
  if (typeof v !== "number" || !(v > 0)) {
    throw new RangeError(`${what}: ${option} must be > 0: current value is ${v}`);
  }
  return v;
}

/** Refuses a tensor that is updated twice (in two groups, or twice in one), and mixed GPUs. */
function checkDisjoint(what: string, groups: readonly TensorPair[][], gpu: Gpu): void {
  const seen: { buffer: GPUBuffer; start: number; end: number; where: string }[] = [];
  groups.forEach((pairs, gi) => {
    pairs.forEach((pair, i) => {
      const where = groups.length > 1 ? `param group ${gi}, params[${i}]` : `params[${i}]`;
      if (pair.value.gpu !== gpu) {
        throw new RangeError(`${what}: ${where} lives on another GPU than the first group`);
      }
      const start = pair.value.byteOffset;
      const end = start + pair.value.byteLength;
      const clash = seen.find((s) =>
        s.buffer === pair.value.buffer && s.start < end && start < s.end
      );
      if (clash) {
        throw new RangeError(
          `${what}: ${where} overlaps ${clash.where}: a parameter may appear in one group only`,
        );
      }
      seen.push({ buffer: pair.value.buffer, start, end, where });
    });
  });
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
    grad_scale: 1,
    max_norm: 0,
    norm_base: 0,
    norm_count: 0,
    ...hyper,
  };
}
