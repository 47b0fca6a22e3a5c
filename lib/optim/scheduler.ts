/**
 * Learning-rate schedulers with PyTorch 1.13's values. Each is a pure function of the scheduler's
 * step count (`lrAt(0)` is the rate before the first `scheduler.step()` in PyTorch, `lrAt(n)` the
 * rate after n of them), so a scheduler has no state to save: a resumed run recomputes its rate
 * from the epoch or step count it resumes at.
 *
 * PyTorch's `step()` uses a chainable form (each rate from the one before); where that differs
 * from the closed form by rounding only, we follow the chain, so values agree with a live PyTorch
 * run to rounding (tests/schedulers_test.ts checks rtol 1e-12). A chain is computed once, step by
 * step, and kept, so `lrAt` stays O(1) per call in a training loop.
 *
 * @module
 */

/** A learning rate as a function of the scheduler's step count (an epoch or an optimizer step). */
export interface LrScheduler {
  /** The scheduler's class name, for messages and run settings. */
  readonly name: string;
  /** The learning rate after `step` scheduler steps (0: the first epoch's or step's rate). */
  lrAt(step: number): number;
}

function fail(cls: string, what: string, value: unknown): never {
  throw new RangeError(`Cannot create ${cls}: ${what}: current value is ${value}`);
}

function checkPositiveInt(cls: string, name: string, v: number): void {
  if (!(Number.isInteger(v) && v > 0)) fail(cls, `${name} must be a positive integer`, v);
}

function checkLr(cls: string, name: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0)) fail(cls, `${name} must be a finite number >= 0`, v);
}

function checkStep(cls: string, step: number): void {
  if (!(Number.isInteger(step) && step >= 0)) {
    throw new RangeError(
      `Cannot compute ${cls}.lrAt: step must be an integer >= 0: current value is ${step}`,
    );
  }
}

/**
 * A chainable schedule: `next(lr, t)` is PyTorch's `get_lr()` at `last_epoch = t` given the
 * previous rate. The values are kept as they are computed, so a training loop's `lrAt` is O(1).
 */
class Chain {
  readonly #values: number[];
  readonly #next: (lr: number, t: number) => number;

  constructor(first: number, next: (lr: number, t: number) => number) {
    this.#values = [first];
    this.#next = next;
  }

  at(cls: string, step: number): number {
    checkStep(cls, step);
    const v = this.#values;
    while (v.length <= step) v.push(this.#next(v[v.length - 1], v.length));
    return v[step];
  }
}

/** Options of {@link StepLR}. */
export interface StepLROptions {
  /** Steps between decays. */
  stepSize: number;
  /** Multiplicative decay. Default: 0.1. */
  gamma?: number;
}

/**
 * PyTorch's `StepLR`: the rate times `gamma` every `stepSize` steps.
 *
 * @example Decay tenfold every 30 epochs
 * ```ts
 * import { StepLR } from "./scheduler.ts";
 * const s = new StepLR(0.1, { stepSize: 30 });
 * console.assert(s.lrAt(29) === 0.1 && Math.abs(s.lrAt(30) - 0.01) < 1e-15);
 * ```
 */
export class StepLR implements LrScheduler {
  /** "StepLR". */
  readonly name = "StepLR";
  readonly #chain: Chain;
  readonly #o: Required<StepLROptions>;

  /** A schedule starting at `lr`. */
  constructor(lr: number, options: StepLROptions) {
    checkLr("StepLR", "lr", lr);
    checkPositiveInt("StepLR", "stepSize", options.stepSize);
    const gamma = options.gamma ?? 0.1;
    checkLr("StepLR", "gamma", gamma);
    this.#chain = new Chain(lr, (lr, t) => this.#next(lr, t));
    this.#o = { stepSize: options.stepSize, gamma };
  }

  /** The learning rate after `step` scheduler steps (0: the first epoch's or step's rate). */
  lrAt(step: number): number {
    return this.#chain.at(this.name, step);
  }

  #next(lr: number, t: number): number {
    return t % this.#o.stepSize === 0 ? lr * this.#o.gamma : lr;
  }
}

/** Options of {@link MultiStepLR}. */
export interface MultiStepLROptions {
  /** Steps at which the rate decays, ascending (a repeated milestone decays that many times). */
  milestones: number[];
  /** Multiplicative decay. Default: 0.1. */
  gamma?: number;
}

/**
 * PyTorch's `MultiStepLR`: the rate times `gamma` at each milestone.
 *
 * @example Decay at epochs 30 and 80
 * ```ts
 * import { MultiStepLR } from "./scheduler.ts";
 * const s = new MultiStepLR(0.1, { milestones: [30, 80] });
 * console.assert(s.lrAt(10) === 0.1 && s.lrAt(80) < s.lrAt(79));
 * ```
 */
export class MultiStepLR implements LrScheduler {
  /** "MultiStepLR". */
  readonly name = "MultiStepLR";
  readonly #chain: Chain;
  readonly #counts = new Map<number, number>();
  readonly #gamma: number;

  /** A schedule starting at `lr`. */
  constructor(lr: number, options: MultiStepLROptions) {
    checkLr("MultiStepLR", "lr", lr);
    const m = options.milestones;
    for (const [i, s] of m.entries()) {
      if (!(Number.isInteger(s) && s > 0) || (i > 0 && s < m[i - 1])) {
        fail("MultiStepLR", "milestones must be ascending positive integers", `[${m}]`);
      }
    }
    const gamma = options.gamma ?? 0.1;
    checkLr("MultiStepLR", "gamma", gamma);
    this.#chain = new Chain(lr, (lr, t) => this.#next(lr, t));
    this.#gamma = gamma;
    for (const s of m) this.#counts.set(s, (this.#counts.get(s) ?? 0) + 1);
  }

  /** The learning rate after `step` scheduler steps (0: the first epoch's or step's rate). */
  lrAt(step: number): number {
    return this.#chain.at(this.name, step);
  }

  #next(lr: number, t: number): number {
    const n = this.#counts.get(t);
    return n === undefined ? lr : lr * this.#gamma ** n;
  }
}

/**
 * PyTorch's `ExponentialLR`: the rate times `gamma` every step.
 *
 * @example Decay by 5% a step
 * ```ts
 * import { ExponentialLR } from "./scheduler.ts";
 * const s = new ExponentialLR(0.1, { gamma: 0.95 });
 * console.assert(Math.abs(s.lrAt(2) - 0.1 * 0.95 * 0.95) < 1e-17);
 * ```
 */
export class ExponentialLR implements LrScheduler {
  /** "ExponentialLR". */
  readonly name = "ExponentialLR";
  readonly #chain: Chain;
  readonly #gamma: number;

  /** A schedule starting at `lr`. */
  constructor(lr: number, options: { gamma: number }) {
    checkLr("ExponentialLR", "lr", lr);
    checkLr("ExponentialLR", "gamma", options.gamma);
    this.#chain = new Chain(lr, (lr, t) => this.#next(lr, t));
    this.#gamma = options.gamma;
  }

  /** The learning rate after `step` scheduler steps (0: the first epoch's or step's rate). */
  lrAt(step: number): number {
    return this.#chain.at(this.name, step);
  }

  #next(lr: number, _t: number): number {
    return lr * this.#gamma;
  }
}

/** Options of {@link CosineAnnealingLR}. */
export interface CosineAnnealingLROptions {
  /** Steps from the base rate down to `etaMin` (then back up, as PyTorch's does). */
  tMax: number;
  /** The lowest rate. Default: 0. */
  etaMin?: number;
}

/**
 * PyTorch's `CosineAnnealingLR` (its chainable form): the rate follows half a cosine from the
 * base rate to `etaMin` over `tMax` steps.
 *
 * @example Anneal over 100 epochs
 * ```ts
 * import { CosineAnnealingLR } from "./scheduler.ts";
 * const s = new CosineAnnealingLR(0.1, { tMax: 100 });
 * console.assert(Math.abs(s.lrAt(50) - 0.05) < 1e-12);
 * ```
 */
export class CosineAnnealingLR implements LrScheduler {
  /** "CosineAnnealingLR". */
  readonly name = "CosineAnnealingLR";
  readonly #chain: Chain;
  readonly #base: number;
  readonly #tMax: number;
  readonly #etaMin: number;

  /** A schedule starting at `lr`. */
  constructor(lr: number, options: CosineAnnealingLROptions) {
    checkLr("CosineAnnealingLR", "lr", lr);
    checkPositiveInt("CosineAnnealingLR", "tMax", options.tMax);
    const etaMin = options.etaMin ?? 0;
    checkLr("CosineAnnealingLR", "etaMin", etaMin);
    this.#chain = new Chain(lr, (lr, t) => this.#next(lr, t));
    this.#base = lr;
    this.#tMax = options.tMax;
    this.#etaMin = etaMin;
  }

  /** The learning rate after `step` scheduler steps (0: the first epoch's or step's rate). */
  lrAt(step: number): number {
    return this.#chain.at(this.name, step);
  }

  #next(lr: number, t: number): number {
    const T = this.#tMax, eta = this.#etaMin;
    // Python's % is never negative: (t - 1 - T) mod 2T.
    if ((((t - 1 - T) % (2 * T)) + 2 * T) % (2 * T) === 0) {
      return lr + (this.#base - eta) * (1 - Math.cos(Math.PI / T)) / 2;
    }
    return (1 + Math.cos(Math.PI * t / T)) / (1 + Math.cos(Math.PI * (t - 1) / T)) * (lr - eta) +
      eta;
  }
}

/** Options of {@link LinearLR}. */
export interface LinearLROptions {
  /** Factor of the base rate at step 0, in (0, 1]. Default: 1/3. */
  startFactor?: number;
  /** Factor of the base rate from `totalIters` on, in [0, 1]. Default: 1. */
  endFactor?: number;
  /** Steps of the ramp. Default: 5. */
  totalIters?: number;
}

/**
 * PyTorch's `LinearLR`, a warm-up: the rate goes linearly from `startFactor`·lr to
 * `endFactor`·lr over `totalIters` steps, then stays.
 *
 * @example Warm up over 5 epochs from a third of the rate
 * ```ts
 * import { LinearLR } from "./scheduler.ts";
 * const s = new LinearLR(0.3, { startFactor: 1 / 3, totalIters: 5 });
 * console.assert(Math.abs(s.lrAt(0) - 0.1) < 1e-15 && Math.abs(s.lrAt(9) - 0.3) < 1e-15);
 * ```
 */
export class LinearLR implements LrScheduler {
  /** "LinearLR". */
  readonly name = "LinearLR";
  readonly #chain: Chain;
  readonly #o: Required<LinearLROptions>;

  /** A schedule ramping to `lr`. */
  constructor(lr: number, options: LinearLROptions = {}) {
    checkLr("LinearLR", "lr", lr);
    const o = { startFactor: 1 / 3, endFactor: 1, totalIters: 5, ...options };
    if (!(o.startFactor > 0 && o.startFactor <= 1)) {
      fail("LinearLR", "startFactor must be in (0, 1]", o.startFactor);
    }
    if (!(o.endFactor >= 0 && o.endFactor <= 1)) {
      fail("LinearLR", "endFactor must be in [0, 1]", o.endFactor);
    }
    checkPositiveInt("LinearLR", "totalIters", o.totalIters);
    this.#chain = new Chain(lr * o.startFactor, (lr, t) => this.#next(lr, t));
    this.#o = o;
  }

  /** The learning rate after `step` scheduler steps (0: the first epoch's or step's rate). */
  lrAt(step: number): number {
    return this.#chain.at(this.name, step);
  }

  #next(lr: number, t: number): number {
    const { startFactor: s, endFactor: e, totalIters: n } = this.#o;
    if (t > n) return lr;
    return lr * (1 + (e - s) / (n * s + (t - 1) * (e - s)));
  }
}

/** Options of {@link OneCycleLR}: PyTorch 1.13's defaults, momentum not cycled. */
export interface OneCycleLROptions {
  /** Steps of the whole cycle (PyTorch's `total_steps`, or epochs × steps per epoch). */
  totalSteps: number;
  /** Fraction of the cycle spent rising. Default: 0.3. */
  pctStart?: number;
  /** Initial rate = maxLr / divFactor. Default: 25. */
  divFactor?: number;
  /** Final rate = initial rate / finalDivFactor. Default: 1e4. */
  finalDivFactor?: number;
  /** Fall back to the initial rate, then to the final one (three phases). Default: false. */
  threePhase?: boolean;
  /** "cos" or "linear" annealing. Default: "cos". */
  annealStrategy?: "cos" | "linear";
}

/**
 * PyTorch's `OneCycleLR` (closed form, as PyTorch computes it): from maxLr/divFactor up to
 * `maxLr` over `pctStart` of the cycle, then down to the final rate. Momentum is not cycled
 * (PyTorch's `cycle_momentum=False`). `lrAt` accepts steps up to `totalSteps`, as PyTorch does.
 *
 * @example One cycle over 10 epochs of 100 steps
 * ```ts
 * import { OneCycleLR } from "./scheduler.ts";
 * const s = new OneCycleLR(0.1, { totalSteps: 1000 });
 * console.assert(Math.abs(s.lrAt(0) - 0.004) < 1e-15 && Math.abs(s.lrAt(299) - 0.1) < 1e-15);
 * ```
 */
export class OneCycleLR implements LrScheduler {
  /** "OneCycleLR". */
  readonly name = "OneCycleLR";
  readonly #phases: { end: number; from: number; to: number }[];
  readonly #total: number;
  readonly #cos: boolean;

  /** A cycle peaking at `maxLr`. */
  constructor(maxLr: number, options: OneCycleLROptions) {
    checkLr("OneCycleLR", "maxLr", maxLr);
    checkPositiveInt("OneCycleLR", "totalSteps", options.totalSteps);
    const o = { pctStart: 0.3, divFactor: 25, finalDivFactor: 1e4, threePhase: false, ...options };
    if (!(o.pctStart >= 0 && o.pctStart <= 1)) {
      fail("OneCycleLR", "pctStart must be in [0, 1]", o.pctStart);
    }
    if (!(o.divFactor > 0)) fail("OneCycleLR", "divFactor must be > 0", o.divFactor);
    if (!(o.finalDivFactor > 0)) fail("OneCycleLR", "finalDivFactor must be > 0", o.finalDivFactor);
    const strategy = o.annealStrategy ?? "cos";
    if (strategy !== "cos" && strategy !== "linear") {
      fail("OneCycleLR", 'annealStrategy must be "cos" or "linear"', strategy);
    }
    const initial = maxLr / o.divFactor, min = initial / o.finalDivFactor, n = o.totalSteps;
    this.#phases = o.threePhase
      ? [
        { end: o.pctStart * n - 1, from: initial, to: maxLr },
        { end: 2 * o.pctStart * n - 2, from: maxLr, to: initial },
        { end: n - 1, from: initial, to: min },
      ]
      : [{ end: o.pctStart * n - 1, from: initial, to: maxLr }, {
        end: n - 1,
        from: maxLr,
        to: min,
      }];
    this.#total = n;
    this.#cos = strategy === "cos";
  }

  /** The learning rate after `step` scheduler steps (0: the first epoch's or step's rate). */
  lrAt(step: number): number {
    checkStep(this.name, step);
    if (step > this.#total) {
      throw new RangeError(
        `Cannot compute OneCycleLR.lrAt: step must be <= totalSteps (${this.#total}): current value is ${step}`,
      );
    }
    let start = 0;
    for (const [i, p] of this.#phases.entries()) {
      if (step <= p.end || i === this.#phases.length - 1) {
        const pct = (step - start) / (p.end - start);
        return this.#cos
          ? p.to + (p.from - p.to) / 2 * (Math.cos(Math.PI * pct) + 1)
          : (p.to - p.from) * pct + p.from;
      }
      start = p.end;
    }
    throw new Error("unreachable: the last phase always answers");
  }
}

/**
 * PyTorch's `SequentialLR`: `schedulers[i]` from `milestones[i - 1]` on, restarted at its own
 * step 0 there. (PyTorch's children all start from the optimizer's rate; here each carries the
 * rate it was made with, so give them the same one to match.)
 *
 * @example Five epochs of warm-up, then cosine annealing
 * ```ts
 * import { CosineAnnealingLR, LinearLR, SequentialLR } from "./scheduler.ts";
 * const s = new SequentialLR([
 *   new LinearLR(0.1, { startFactor: 0.1, totalIters: 5 }),
 *   new CosineAnnealingLR(0.1, { tMax: 95 }),
 * ], { milestones: [5] });
 * console.assert(s.lrAt(5) === 0.1);
 * ```
 */
export class SequentialLR implements LrScheduler {
  /** "SequentialLR". */
  readonly name = "SequentialLR";
  readonly #schedulers: LrScheduler[];
  readonly #milestones: number[];

  /** The schedulers in order, switching at `milestones` (one fewer than schedulers). */
  constructor(schedulers: LrScheduler[], options: { milestones: number[] }) {
    const m = options.milestones;
    if (schedulers.length === 0) fail("SequentialLR", "schedulers must not be empty", "[]");
    if (m.length !== schedulers.length - 1) {
      fail(
        "SequentialLR",
        `milestones must number one fewer than the ${schedulers.length} schedulers`,
        `[${m}]`,
      );
    }
    for (const [i, s] of m.entries()) {
      if (!(Number.isInteger(s) && s > 0) || (i > 0 && s <= m[i - 1])) {
        fail("SequentialLR", "milestones must be increasing positive integers", `[${m}]`);
      }
    }
    this.#schedulers = [...schedulers];
    this.#milestones = [...m];
  }

  /** The learning rate after `step` scheduler steps (0: the first epoch's or step's rate). */
  lrAt(step: number): number {
    checkStep(this.name, step);
    // bisect_right: the number of milestones <= step.
    const i = this.#milestones.filter((s) => s <= step).length;
    return this.#schedulers[i].lrAt(i === 0 ? step : step - this.#milestones[i - 1]);
  }
}
