/**
 * Peer benchmark: the seed's three MLPs in jax-js 0.1.25, on its WebAssembly backend (multi-
 * threaded through Web Workers on a shared memory: 2 workers by default, like PyTorch's 2 threads)
 * and on its WebGPU backend (the adapter Deno gives the toolkit, lavapipe here).
 *
 * jax-js has no layers or optimizers in its core package, so the model is written from its
 * primitives, the way a JAX user writes it: Flatten, x·W1 + b1 (3072→128), LeakyReLU(0.01),
 * [BatchNorm | Dropout(0.5)], x·W2 + b2 (128→128), LeakyReLU, [BN | Dropout], x·W3 + b3
 * (128→10); PyTorch's init (U(±1/√fan_in) for weights and biases); mean softmax cross-entropy
 * from logits (`nn.logSoftmax`); Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, with PyTorch's
 * bias correction. BatchNorm (jax-js has none) normalises with the batch's biased variance
 * (eps 1e-5), learns γ and β, and updates running mean and unbiased variance with momentum 0.1,
 * as PyTorch's BatchNorm1d; eval uses the running statistics. Dropout draws its mask with
 * `random.bernoulli` from a key carried in the state and scales kept units by 2.
 *
 * One training step (forward, `valueAndGrad`, Adam, BN statistics, next PRNG key) is one `jit`
 * function, and so is one eval forward: jax-js fuses and caches each.
 *
 * Timing, as in tfjs.ts: the synthetic images (uint8/255, the bench's `syntheticSet`) and
 * one-hot labels are device arrays before timing starts; each round runs `steps` steps back to
 * back and ends with one wait, so jax-js pays for no waits its API does not force. jax-js is
 * lazy (an output disposed unread is never computed), so the train wait is on the last loss and
 * the new state (which depends on every step), and the eval wait is on every forward's logits;
 * the losses are read after the timed region. Medians of rounds after warm-up.
 *
 * Run: `deno run --allow-env --allow-read bench/peers/jaxjs.ts --backend wasm --variant plain`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { syntheticSet } from "../util.ts";

/** The pinned jax-js version (the import specifier below must match). */
export const JAXJS_VERSION = "0.1.25";

type Jax = typeof import("npm:@jax-js/jax@0.1.25");
type JArray = import("npm:@jax-js/jax@0.1.25").Array;

/** The seed's model variants. */
export type Variant = "plain" | "bn" | "dropout";

/** The variants in the order the bench reports them. */
export const VARIANTS: readonly Variant[] = ["plain", "bn", "dropout"];

/** jax-js devices this peer runs on. */
export type JaxjsBackend = "wasm" | "webgpu";

/** The backends in the order the bench reports them. */
export const JAXJS_BACKENDS: readonly JaxjsBackend[] = ["wasm", "webgpu"];

/** Options for {@link benchJaxjs}. */
export interface JaxjsBenchOptions {
  /** Which jax-js device runs the model. */
  backend: JaxjsBackend;
  /** Which of the seed's models. */
  variant: Variant;
  /** Samples per step (the seed uses 1024). */
  batchSize: number;
  /** Untimed steps before the first round (the first compiles the step). */
  warmupSteps: number;
  /** Timed steps per round. */
  steps: number;
  /** Rounds; the result is the median. */
  rounds: number;
}

/** Throughputs measured by {@link benchJaxjs}. */
export interface JaxjsBenchResult {
  /** Training samples/s (forward, backward, Adam), median of rounds. */
  train: number;
  /** Inference-mode forward samples/s, median of rounds. */
  eval: number;
  /** The jax-js device that ran ("wasm" or "webgpu"). */
  backend: JaxjsBackend;
  /** Wasm: the worker threads (0 when jax-js runs single-threaded). WebGPU: undefined. */
  workers?: number;
  /** WebGPU: the adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  adapter?: string;
  /** Mean training loss of every step run (warm-up, then rounds), in order. */
  losses: number[];
  /** Trainable parameters of the model (weights, biases, BatchNorm's γ and β). */
  params: number;
}

/** How many distinct batches stay resident on the device; steps cycle through them. */
const RESIDENT_BATCHES = 2;
/** Wasm worker threads, read by jax-js from `navigator.hardwareConcurrency` when it loads. */
const WASM_WORKERS = 2;

let jaxLoaded: Promise<Jax> | null = null;
const backendsReady = new Map<JaxjsBackend, Promise<string | undefined>>();
/** The wasm backend's worker threads, recorded when they start (see {@link releaseJaxjs}). */
const jaxWorkers: Worker[] = [];
let released = false;

/**
 * Loads jax-js once per process. Its wasm backend sizes its worker pool from
 * `navigator.hardwareConcurrency` when the module is evaluated, so that value is pinned to
 * {@link WASM_WORKERS} during the import (then the runtime's own getter is back).
 */
function loadJax(): Promise<Jax> {
  jaxLoaded ??= (async () => {
    const pinned = typeof navigator !== "undefined";
    if (pinned) {
      Object.defineProperty(navigator, "hardwareConcurrency", {
        value: WASM_WORKERS,
        configurable: true,
      });
    }
    try {
      // deno-lint-ignore no-import-prefix -- pinned bench-only peer, runs without our import map
      return await import("npm:@jax-js/jax@0.1.25") as Jax;
    } finally {
      if (pinned) delete (navigator as unknown as Record<string, unknown>).hardwareConcurrency;
    }
  })();
  return jaxLoaded;
}

/**
 * Runs jax-js's first wasm kernel, which starts its worker pool (when `SharedArrayBuffer` and
 * `Worker` exist; otherwise it runs single-threaded), recording the workers it creates so that
 * {@link releaseJaxjs} can stop them: jax-js has no shutdown, and live workers keep Deno running.
 */
async function startWasmWorkers(jax: Jax): Promise<void> {
  const Original = globalThis.Worker;
  if (typeof Original !== "function") return;
  globalThis.Worker = class extends Original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      if (String(url).startsWith("blob:")) jaxWorkers.push(this);
    }
  };
  try {
    const np = jax.numpy;
    // Large enough to be realised as a kernel (small constants are evaluated inline).
    await np.arange(1 << 16, undefined, undefined, { device: "wasm" }).mul(2).data();
  } finally {
    globalThis.Worker = Original;
  }
}

/**
 * Starts one jax-js backend once per process and returns the WebGPU adapter's description
 * (undefined for wasm). Throws, naming the reason, when the backend is unavailable.
 *
 * @example Show the adapter jax-js's WebGPU backend uses
 * ```ts
 * console.log(await initJaxjs("webgpu")); // "llvmpipe (LLVM 15.0.6, 256 bits)"
 * ```
 */
export function initJaxjs(backend: JaxjsBackend): Promise<string | undefined> {
  if (released) {
    return Promise.reject(new Error("Cannot run jax-js: releaseJaxjs() already stopped it"));
  }
  let ready = backendsReady.get(backend);
  if (ready === undefined) {
    ready = (async () => {
      if (backend === "webgpu" && (typeof navigator === "undefined" || !navigator.gpu)) {
        throw new Error("Cannot run jax-js WebGPU: navigator.gpu is missing in this runtime");
      }
      const jax = await loadJax();
      const available = await jax.init(backend);
      if (!available.includes(backend)) {
        throw new Error(
          `Cannot run jax-js ${backend}: jax.init("${backend}") did not start it (available: ${
            available.join(", ")
          })`,
        );
      }
      if (backend === "wasm") {
        await startWasmWorkers(jax);
        return undefined;
      }
      return jax.getWebGPUDevice().adapterInfo?.description || undefined;
    })();
    // A failed start may be retried (e.g. after the adapter comes back).
    ready.catch(() => backendsReady.delete(backend));
    backendsReady.set(backend, ready);
  }
  return ready;
}

/** The wasm worker threads jax-js started (0 before the wasm backend ran, or single-threaded). */
export function jaxjsWasmWorkers(): number {
  return jaxWorkers.length;
}

/**
 * Stops jax-js's wasm worker threads so that the process can exit; jax-js cannot run in this
 * process afterwards ({@link benchJaxjs} then throws).
 */
export function releaseJaxjs(): void {
  released = true;
  for (const worker of jaxWorkers.splice(0)) worker.terminate();
}

function checkOptions(opts: JaxjsBenchOptions): void {
  if (!JAXJS_BACKENDS.includes(opts.backend)) {
    throw new RangeError(
      `Cannot run the jax-js bench: backend must be one of ${
        JAXJS_BACKENDS.join(", ")
      }: current value is "${opts.backend}"`,
    );
  }
  if (!VARIANTS.includes(opts.variant)) {
    throw new RangeError(
      `Cannot run the jax-js bench: variant must be one of ${
        VARIANTS.join(", ")
      }: current value is "${opts.variant}"`,
    );
  }
  const counts: [string, number, number][] = [
    ["batchSize", opts.batchSize, 2], // BatchNorm's unbiased variance needs two samples
    ["warmupSteps", opts.warmupSteps, 0],
    ["steps", opts.steps, 1],
    ["rounds", opts.rounds, 1],
  ];
  for (const [name, value, min] of counts) {
    if (!Number.isInteger(value) || value < min) {
      throw new RangeError(
        `Cannot run the jax-js bench: ${name} must be an integer >= ${min}: current value is ${value}`,
      );
    }
  }
}

/** Trainable parameters: three Linear layers, and γ, β of two BatchNorms in the bn variant. */
type Params = {
  w1: JArray;
  b1: JArray;
  w2: JArray;
  b2: JArray;
  w3: JArray;
  b3: JArray;
  bn?: { g1: JArray; be1: JArray; g2: JArray; be2: JArray };
};
/** BatchNorm running statistics (bn variant). */
type Stats = { m1: JArray; v1: JArray; m2: JArray; v2: JArray };
/** Everything a training step reads and replaces. */
type State = {
  params: Params;
  /** Adam's first and second moments, shaped like `params`. */
  m: Params;
  v: Params;
  /** Steps taken so far, float32 scalar (Adam's bias correction). */
  t: JArray;
  stats?: Stats;
  /** PRNG key for Dropout's masks (dropout variant). */
  key?: JArray;
};

/** mulberry32: a small seeded generator, so every run starts from the same weights. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function initState(jax: Jax, variant: Variant, device: JaxjsBackend): State {
  const np = jax.numpy;
  const rand = seeded(0);
  const uniform = (shape: number[], fanIn: number): JArray => {
    const bound = 1 / Math.sqrt(fanIn);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = (rand() * 2 - 1) * bound;
    return np.array(data, { shape, device });
  };
  const params: Params = {
    w1: uniform([3072, 128], 3072),
    b1: uniform([128], 3072),
    w2: uniform([128, 128], 128),
    b2: uniform([128], 128),
    w3: uniform([128, 10], 128),
    b3: uniform([10], 128),
  };
  const ones = () => np.ones([128], { device });
  const zeros = () => np.zeros([128], { device });
  if (variant === "bn") params.bn = { g1: ones(), be1: zeros(), g2: ones(), be2: zeros() };
  const zerosLike = (p: Params): Params => jax.tree.map((a: JArray) => np.zerosLike(a.ref), p);
  const state: State = {
    params,
    m: zerosLike(params),
    v: zerosLike(params),
    t: np.zeros([], { device }),
  };
  if (variant === "bn") state.stats = { m1: zeros(), v1: ones(), m2: zeros(), v2: ones() };
  if (variant === "dropout") state.key = jax.random.key(0);
  return state;
}

/**
 * The model's forward pass, consuming its arguments (jax-js's ownership rule). Training mode
 * uses batch statistics (returned for the running update) and Dropout; eval uses `stats`.
 */
function forward(
  jax: Jax,
  variant: Variant,
  p: Params,
  x: JArray,
  mode: { train: true; key?: JArray } | { train: false; stats: Partial<Stats> },
): { logits: JArray; batchStats?: JArray[] } {
  const np = jax.numpy;
  const batchStats: JArray[] = [];
  const keys = mode.train && mode.key ? [...jax.random.split(mode.key, 2)] : [];
  const hidden = (h: JArray, layer: 0 | 1): JArray => {
    h = jax.nn.leakyRelu(h, 0.01);
    if (variant === "bn") {
      const bn = p.bn!;
      const [gamma, beta] = layer === 0 ? [bn.g1, bn.be1] : [bn.g2, bn.be2];
      let mean: JArray, variance: JArray;
      if (mode.train) {
        mean = np.mean(h.ref, 0);
        variance = np.mean(np.square(h.ref.sub(mean.ref)), 0); // biased, as PyTorch normalises
        batchStats.push(jax.lax.stopGradient(mean.ref), jax.lax.stopGradient(variance.ref));
      } else {
        const s = mode.stats as Stats;
        [mean, variance] = layer === 0 ? [s.m1, s.v1] : [s.m2, s.v2];
      }
      const scale = gamma.mul(np.reciprocal(np.sqrt(variance.add(1e-5))));
      h = h.sub(mean).mul(scale).add(beta);
    }
    if (variant === "dropout" && mode.train) {
      const keep = jax.random.bernoulli(keys[layer], 0.5, h.shape);
      h = np.where(keep, h.mul(2), 0);
    }
    return h;
  };
  let h = x.reshape([x.shape[0], 3072]);
  h = hidden(np.matmul(h, p.w1).add(p.b1), 0);
  h = hidden(np.matmul(h, p.w2).add(p.b2), 1);
  const logits = np.matmul(h, p.w3).add(p.b3);
  return { logits, batchStats: mode.train ? batchStats : undefined };
}

/** The jitted training step: (state, x, y one-hot) → [new state, mean loss]. */
function makeTrainStep(jax: Jax, variant: Variant, batchSize: number) {
  const np = jax.numpy;
  const [beta1, beta2, lr, eps, momentum] = [0.9, 0.999, 1e-3, 1e-8, 0.1];
  // jax-js trees may not hold `undefined`: optional inputs travel in an object, present or not.
  const lossFn = (p: Params, x: JArray, y: JArray, rng: { key?: JArray }) => {
    const { logits, batchStats } = forward(jax, variant, p, x, { train: true, key: rng.key });
    const loss = jax.nn.logSoftmax(logits, -1).mul(y).sum().mul(-1 / batchSize);
    return [loss, batchStats!] as [JArray, JArray[]];
  };
  const step = (s: State, x: JArray, y: JArray): [State, JArray] => {
    let key: JArray | undefined, stepKey: JArray | undefined;
    if (s.key) [key, stepKey] = [...jax.random.split(s.key, 2)];
    const [[loss, batchStats], grads] = jax.valueAndGrad(lossFn, { hasAux: true })(
      jax.tree.ref(s.params),
      x,
      y,
      stepKey ? { key: stepKey } : {},
    );
    const t = s.t.add(1);
    // PyTorch's Adam: p -= lr / (1 - β1^t) · m / (√v / √(1 - β2^t) + eps).
    const c1 = np.reciprocal(np.exp(t.ref.mul(Math.log(beta1))).mul(-1).add(1)).mul(-lr);
    const c2 = np.reciprocal(np.sqrt(np.exp(t.ref.mul(Math.log(beta2))).mul(-1).add(1)));
    const m = jax.tree.map(
      (mi: JArray, g: JArray) => mi.mul(beta1).add(g.mul(1 - beta1)),
      s.m,
      jax.tree.ref(grads),
    ) as Params;
    const v = jax.tree.map(
      (vi: JArray, g: JArray) => vi.mul(beta2).add(np.square(g).mul(1 - beta2)),
      s.v,
      grads,
    ) as Params;
    const params = jax.tree.map(
      (p: JArray, mi: JArray, vi: JArray) =>
        p.add(mi.mul(c1.ref).div(np.sqrt(vi).mul(c2.ref).add(eps))),
      s.params,
      jax.tree.ref(m),
      jax.tree.ref(v),
    ) as Params;
    c1.dispose();
    c2.dispose();
    const next: State = { params, m, v, t };
    if (key) next.key = key;
    if (s.stats) {
      // Running variance is the unbiased one, as PyTorch's BatchNorm1d keeps it.
      const unbiased = batchSize / (batchSize - 1);
      const [mean1, var1, mean2, var2] = batchStats;
      const blend = (old: JArray, cur: JArray, k = 1) =>
        old.mul(1 - momentum).add(cur.mul(momentum * k));
      next.stats = {
        m1: blend(s.stats.m1, mean1),
        v1: blend(s.stats.v1, var1, unbiased),
        m2: blend(s.stats.m2, mean2),
        v2: blend(s.stats.v2, var2, unbiased),
      };
    }
    return [next, loss];
  };
  return jax.jit(step);
}

/** The jitted eval forward: (params, stats, x) → logits. */
function makeEvalStep(jax: Jax, variant: Variant) {
  return jax.jit((p: Params, stats: Partial<Stats>, x: JArray) =>
    forward(jax, variant, p, x, { train: false, stats }).logits
  );
}

/** Images uint8/255 [n, 3, 32, 32] and one-hot labels [n, 10] from the bench's synthetic set. */
function syntheticBatches(jax: Jax, n: number, device: JaxjsBackend) {
  const np = jax.numpy;
  const set = syntheticSet(n * RESIDENT_BATCHES, 1);
  return Array.from({ length: RESIDENT_BATCHES }, (_, b) => {
    const pixels = new Float32Array(n * 3072);
    for (let i = 0; i < pixels.length; i++) pixels[i] = set.images[b * n * 3072 + i] / 255;
    const onehot = new Float32Array(n * 10);
    for (let i = 0; i < n; i++) onehot[i * 10 + set.labels[b * n + i]] = 1;
    return {
      x: np.array(pixels, { shape: [n, 3, 32, 32], device }),
      y: np.array(onehot, { shape: [n, 10], device }),
    };
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Measures train and eval throughput of one seed MLP variant on one jax-js backend. Each round
 * times `steps` optimizer steps, then `steps` inference-mode forwards, each region ending with
 * one wait. Throws if a loss is not finite.
 *
 * @example Measure the plain model briefly on wasm
 * ```ts
 * const r = await benchJaxjs({
 *   backend: "wasm", variant: "plain", batchSize: 1024, warmupSteps: 2, steps: 5, rounds: 3,
 * });
 * console.log(`${r.train.toFixed(0)} train samples/s with ${r.workers} workers`);
 * ```
 */
export async function benchJaxjs(opts: JaxjsBenchOptions): Promise<JaxjsBenchResult> {
  checkOptions(opts);
  const adapter = await initJaxjs(opts.backend);
  const jax = await loadJax();
  const batches = syntheticBatches(jax, opts.batchSize, opts.backend);
  let state = initState(jax, opts.variant, opts.backend);
  const params = jax.tree.leaves(state.params).reduce((n, a) => n + a.size, 0);
  const trainStep = makeTrainStep(jax, opts.variant, opts.batchSize);
  const evalStep = makeEvalStep(jax, opts.variant);
  const losses: number[] = [];
  let step = 0;

  // Runs n training steps, keeping every loss (read after the region) and waiting once.
  const train = async (n: number): Promise<number> => {
    const t0 = performance.now();
    const pending: JArray[] = [];
    for (let i = 0; i < n; i++) {
      const { x, y } = batches[step++ % batches.length];
      const [next, loss] = trainStep(state, x.ref, y.ref);
      state = next;
      pending.push(loss);
    }
    await jax.blockUntilReady([pending[pending.length - 1], state]);
    const seconds = (performance.now() - t0) / 1000;
    for (const loss of pending) losses.push((await loss.data())[0]);
    const bad = losses.find((l) => !Number.isFinite(l));
    if (bad !== undefined) {
      throw new Error(
        `jax-js ${opts.backend} ${opts.variant}: training loss is ${bad} at step ${
          losses.indexOf(bad) + 1
        }`,
      );
    }
    return seconds;
  };
  // Runs n eval forwards and waits once for all their logits: jax-js is lazy, and an output
  // disposed before it is realised is never computed, so none is dropped inside the region.
  const evaluate = async (n: number): Promise<number> => {
    const t0 = performance.now();
    const outs: JArray[] = [];
    for (let i = 0; i < n; i++) {
      const { x } = batches[step++ % batches.length];
      outs.push(evalStep(jax.tree.ref(state.params), jax.tree.ref(state.stats ?? {}), x.ref));
    }
    await jax.blockUntilReady(outs);
    const seconds = (performance.now() - t0) / 1000;
    jax.tree.dispose(outs);
    return seconds;
  };

  const trainRates: number[] = [];
  const evalRates: number[] = [];
  try {
    const warmup = Math.max(RESIDENT_BATCHES, opts.warmupSteps);
    await train(warmup);
    await evaluate(warmup);
    for (let round = 1; round <= opts.rounds; round++) {
      trainRates.push((opts.steps * opts.batchSize) / await train(opts.steps));
      evalRates.push((opts.steps * opts.batchSize) / await evaluate(opts.steps));
    }
  } finally {
    trainStep.dispose();
    evalStep.dispose();
    jax.tree.dispose(state);
    for (const b of batches) jax.tree.dispose(b);
  }
  return {
    train: median(trainRates),
    eval: median(evalRates),
    backend: opts.backend,
    workers: opts.backend === "wasm" ? jaxWorkers.length : undefined,
    adapter,
    losses,
    params,
  };
}

const HELP = `Usage: deno run --allow-env --allow-read bench/peers/jaxjs.ts [options]

Trains the seed's MLPs in jax-js ${JAXJS_VERSION} on synthetic data and prints JSON:
{ "jaxjs", "backend", "workers", "adapter", "results": { "<variant>": { "train", "eval",
  "lossFirst", "lossLast" } } }

Options:
  --backend B   wasm or webgpu (default wasm)
  --variant V   plain, bn, dropout or all (default all)
  --batch N     batch size (default 1024)
  --warmup N    untimed steps before timing (default 3)
  --steps N     timed steps per round (default 10)
  --rounds N    rounds; medians are reported (default 3)
  --help        this text`;

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      backend: { type: "string", default: "wasm" },
      variant: { type: "string", default: "all" },
      batch: { type: "string", default: "1024" },
      warmup: { type: "string", default: "3" },
      steps: { type: "string", default: "10" },
      rounds: { type: "string", default: "3" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const variants = values.variant === "all" ? VARIANTS : [values.variant as Variant];
  const results: Record<string, Record<string, number>> = {};
  let last: JaxjsBenchResult | undefined;
  try {
    for (const variant of variants) {
      last = await benchJaxjs({
        backend: values.backend as JaxjsBackend,
        variant,
        batchSize: Number(values.batch),
        warmupSteps: Number(values.warmup),
        steps: Number(values.steps),
        rounds: Number(values.rounds),
      });
      results[variant] = {
        train: Math.round(last.train),
        eval: Math.round(last.eval),
        lossFirst: last.losses[0],
        lossLast: last.losses[last.losses.length - 1],
      };
    }
  } finally {
    releaseJaxjs(); // its wasm workers would keep the process alive
  }
  console.log(JSON.stringify({
    jaxjs: JAXJS_VERSION,
    backend: last?.backend,
    workers: last?.workers,
    adapter: last?.adapter,
    results,
  }));
}

if (import.meta.main) await main(Deno.args);
