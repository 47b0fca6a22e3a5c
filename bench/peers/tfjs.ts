/**
 * Peer benchmark: the seed's three MLPs in TensorFlow.js 4.22 on its WebGPU backend, on the same
 * adapter Deno gives the toolkit (lavapipe here).
 *
 * The model is built with `@tensorflow/tfjs-layers` (Flatten, Dense(3072→128), LeakyReLU(0.01),
 * [BatchNormalization | Dropout(0.5)], Dense(128→128), LeakyReLU, [BN | Dropout], Dense(128→10))
 * and trained with `optimizer.minimize` on softmax cross-entropy from logits (mean), Adam
 * lr 1e-3. Keras's BN momentum is the weight of the old running value, so 0.9 here is PyTorch's
 * 0.1; Adam's epsilon is set to PyTorch's 1e-8 (TF.js defaults to 1e-7).
 *
 * Fairness: the synthetic images (uint8/255) and one-hot labels live on the GPU as tensors before
 * timing starts, and the only read-back inside a timed region is the last loss (train) or the
 * last logits (eval), so TF.js pays for no waits its API does not force. Whatever its own ops do
 * on the CPU (e.g. Dropout's mask comes from `tf.randomUniform`, generated on the CPU and
 * uploaded) is part of its cost.
 *
 * Run: `deno run --allow-env --allow-read bench/peers/tfjs.ts --variant plain --steps 5`.
 *
 * @module
 */

// deno-lint-ignore no-import-prefix -- pinned bench-only peer, runs without our import map
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
// deno-lint-ignore no-import-prefix -- pinned bench-only peer, runs without our import map
import * as tfl from "npm:@tensorflow/tfjs-layers@4.22.0";
// deno-lint-ignore no-import-prefix -- pinned bench-only peer, runs without our import map
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";
import { parseArgs } from "node:util";

/** The seed's model variants. */
export type Variant = "plain" | "bn" | "dropout";

/** The variants in the order the bench reports them. */
export const VARIANTS: readonly Variant[] = ["plain", "bn", "dropout"];

/** A tfjs-layers Sequential model, as built by {@link buildTfjsModel}. */
export type TfjsModel = tfl.Sequential;

/** Options for {@link benchTfjs}. */
export interface TfjsBenchOptions {
  /** Which of the seed's models. */
  variant: Variant;
  /** Samples per step (the seed uses 1024). */
  batchSize: number;
  /** Untimed steps before the first round (at least two: every resident batch is uploaded). */
  warmupSteps: number;
  /** Timed steps per round. */
  steps: number;
  /** Rounds; the result is the median. */
  rounds: number;
}

/** Throughputs measured by {@link benchTfjs}. */
export interface TfjsBenchResult {
  /** Training samples/s (forward, backward, Adam), median of rounds. */
  train: number;
  /** Inference-mode forward samples/s, median of rounds. */
  eval: number;
  /** The TF.js backend that ran ("webgpu"). */
  backend: string;
  /** The WebGPU adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  adapter?: string;
}

/** How many distinct batches stay resident on the GPU; steps cycle through them. */
const RESIDENT_BATCHES = 2;

let backendReady: Promise<string | undefined> | null = null;

/**
 * Switches TF.js to its WebGPU backend once per process and returns the adapter's description.
 * Throws when Deno exposes no WebGPU adapter.
 *
 * @example Show the adapter TF.js uses
 * ```ts
 * console.log(await initTfjsWebGpu()); // "llvmpipe (LLVM 15.0.6, 256 bits)"
 * ```
 */
export function initTfjsWebGpu(): Promise<string | undefined> {
  backendReady ??= (async () => {
    if (typeof navigator === "undefined" || !navigator.gpu) {
      throw new Error("Cannot run TensorFlow.js WebGPU: navigator.gpu is missing in this runtime");
    }
    if (!(await tf.setBackend("webgpu"))) {
      throw new Error("Cannot run TensorFlow.js WebGPU: tf.setBackend('webgpu') failed");
    }
    await tf.ready();
    const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
    return device?.adapterInfo?.description || undefined;
  })();
  return backendReady;
}

function checkOptions(opts: TfjsBenchOptions): void {
  if (!VARIANTS.includes(opts.variant)) {
    throw new RangeError(
      `Cannot run the TF.js bench: variant must be one of ${
        VARIANTS.join(", ")
      }: current value is "${opts.variant}"`,
    );
  }
  const counts: [string, number, number][] = [
    ["batchSize", opts.batchSize, 1],
    ["warmupSteps", opts.warmupSteps, 0],
    ["steps", opts.steps, 1],
    ["rounds", opts.rounds, 1],
  ];
  for (const [name, value, min] of counts) {
    if (!Number.isInteger(value) || value < min) {
      throw new RangeError(
        `Cannot run the TF.js bench: ${name} must be an integer >= ${min}: current value is ${value}`,
      );
    }
  }
}

/**
 * The seed's MLP for one variant, as a tfjs-layers Sequential model on the current backend.
 * The caller disposes it.
 *
 * @example Count the plain model's parameters
 * ```ts
 * const model = buildTfjsModel("plain");
 * console.log(model.countParams()); // 411146
 * model.dispose();
 * ```
 */
export function buildTfjsModel(variant: Variant): TfjsModel {
  const model = tfl.sequential();
  model.add(tfl.layers.flatten({ inputShape: [3, 32, 32] }));
  for (let hidden = 0; hidden < 2; hidden++) {
    model.add(tfl.layers.dense({ units: 128 }));
    model.add(tfl.layers.leakyReLU({ alpha: 0.01 }));
    if (variant === "bn") {
      model.add(tfl.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }));
    }
    if (variant === "dropout") model.add(tfl.layers.dropout({ rate: 0.5 }));
  }
  model.add(tfl.layers.dense({ units: 10 }));
  return model;
}

/** Random uint8/255 images [n, ...image] and one-hot labels [n, 10], uploaded once. */
function syntheticBatch(
  n: number,
  image: [number, number, number] = [3, 32, 32],
): { x: tf.Tensor; y: tf.Tensor } {
  const pixels = new Float32Array(n * 3072);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(Math.random() * 256) / 255;
  const labels = Int32Array.from({ length: n }, () => Math.floor(Math.random() * 10));
  const x = tf.tensor4d(pixels, [n, ...image]);
  const y = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, "int32"), 10), "float32"));
  return { x, y };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function assertNoLeak(baseline: number, where: string): void {
  const live = tf.memory().numTensors;
  if (live !== baseline) {
    throw new Error(
      `TensorFlow.js bench leaked tensors: ${live} live ${where}, ${baseline} before`,
    );
  }
}

/**
 * Measures train and eval throughput of one seed MLP variant in TensorFlow.js's WebGPU backend.
 * Each round times `steps` optimizer steps, then `steps` inference-mode forwards, each region
 * ending with one read-back. Throws if the live tensor count changes across rounds.
 *
 * @example Measure the plain model briefly
 * ```ts
 * const r = await benchTfjs({ variant: "plain", batchSize: 1024, warmupSteps: 2, steps: 5, rounds: 3 });
 * console.log(`${r.train.toFixed(0)} train samples/s on ${r.adapter}`);
 * ```
 */
export async function benchTfjs(opts: TfjsBenchOptions): Promise<TfjsBenchResult> {
  checkOptions(opts);
  return await timeModel(
    opts,
    () => buildTfjsModel(opts.variant),
    () => tf.train.adam(1e-3, 0.9, 0.999, 1e-8),
    [3, 32, 32],
    0,
  );
}

/**
 * The cnn recipe's network (lib/nn/cnn.ts) in tfjs-layers, NHWC ([32, 32, 3] in, TF.js's
 * layout): three stages of (Conv2D 3×3 "same" without bias, BatchNormalization, ReLU) × 2 and a
 * 2×2 max pool, widths 32/64/128, global average pool, Dense(10): 288,746 trainable parameters.
 */
export function buildTfjsCnn(): TfjsModel {
  const model = tfl.sequential();
  let first = true;
  for (const filters of [32, 64, 128]) {
    for (let i = 0; i < 2; i++) {
      model.add(tfl.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: "same",
        useBias: false,
        ...(first ? { inputShape: [32, 32, 3] } : {}),
      }));
      first = false;
      model.add(tfl.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-5 }));
      model.add(tfl.layers.reLU());
    }
    model.add(tfl.layers.maxPooling2d({ poolSize: 2 }));
  }
  model.add(tfl.layers.globalAveragePooling2d({}));
  model.add(tfl.layers.dense({ units: 10 }));
  return model;
}

/**
 * Train and eval throughput of {@link buildTfjsCnn} in TensorFlow.js's WebGPU backend, timed as
 * {@link benchTfjs} times the MLPs: SGD with Nesterov momentum 0.9 (TF.js's has no weight decay),
 * softmax cross-entropy with label smoothing 0.1, NHWC uint8/255 images resident on the GPU.
 */
export async function benchTfjsCnn(
  opts: Omit<TfjsBenchOptions, "variant">,
): Promise<TfjsBenchResult> {
  checkOptions({ ...opts, variant: "plain" });
  return await timeModel(
    opts,
    buildTfjsCnn,
    () => tf.train.momentum(0.01, 0.9, true),
    [32, 32, 3],
    0.1,
  );
}

async function timeModel(
  opts: Omit<TfjsBenchOptions, "variant">,
  build: () => TfjsModel,
  makeOptimizer: () => tf.Optimizer,
  image: [number, number, number],
  labelSmoothing: number,
): Promise<TfjsBenchResult> {
  const adapter = await initTfjsWebGpu();
  const startTensors = tf.memory().numTensors;
  const optimizer = makeOptimizer();
  // TF.js's momentum optimizer keeps a scalar of its own that dispose() leaves alive.
  const optimizerScalars = tf.memory().numTensors - startTensors;
  const batches = Array.from(
    { length: RESIDENT_BATCHES },
    () => syntheticBatch(opts.batchSize, image),
  );
  const model = build();
  let step = 0;

  const trainStep = (): tf.Scalar => {
    const { x, y } = batches[step++ % batches.length];
    const loss = () => {
      const logits = model.apply(x, { training: true }) as tf.Tensor;
      return tf.losses.softmaxCrossEntropy(y, logits, undefined, labelSmoothing) as tf.Scalar;
    };
    return tf.tidy(() => optimizer.minimize(loss, true) as tf.Scalar);
  };
  const evalStep = (): tf.Tensor => {
    const { x } = batches[step++ % batches.length];
    return tf.tidy(() => model.apply(x, { training: false }) as tf.Tensor);
  };
  // Runs n steps, keeping only the last result alive, then reads it once.
  const run = async (n: number, one: () => tf.Tensor): Promise<number> => {
    const t0 = performance.now();
    let last: tf.Tensor | null = null;
    for (let i = 0; i < n; i++) {
      const next = one();
      last?.dispose();
      last = next;
    }
    await last!.data();
    last!.dispose();
    return (performance.now() - t0) / 1000;
  };

  const trainRates: number[] = [];
  const evalRates: number[] = [];
  try {
    // Warm-up touches every resident batch (TF.js uploads a tensor's data on first use) and
    // compiles the shaders; Adam creates its moments on the first step, so the baseline follows.
    const warmup = Math.max(RESIDENT_BATCHES, opts.warmupSteps);
    await run(warmup, trainStep);
    await run(warmup, evalStep);
    const baseline = tf.memory().numTensors;
    for (let round = 1; round <= opts.rounds; round++) {
      trainRates.push((opts.steps * opts.batchSize) / await run(opts.steps, trainStep));
      evalRates.push((opts.steps * opts.batchSize) / await run(opts.steps, evalStep));
      assertNoLeak(baseline, `after round ${round}`);
    }
  } finally {
    model.dispose();
    optimizer.dispose();
    for (const { x, y } of batches) tf.dispose([x, y]);
  }
  const kept = tf.memory().numTensors - startTensors;
  if (kept < 0 || kept > optimizerScalars) {
    assertNoLeak(startTensors, "after disposing the model, optimizer and data");
  }
  return { train: median(trainRates), eval: median(evalRates), backend: tf.getBackend(), adapter };
}

const HELP = `Usage: deno run --allow-env --allow-read bench/peers/tfjs.ts [options]

Trains the seed's MLPs in TensorFlow.js (WebGPU backend) on synthetic data and prints JSON:
{ "backend", "adapter", "results": { "<variant>": { "train": samples/s, "eval": samples/s } } }

Options:
  --model M     mlp (the seed's MLPs, default) or cnn (the cnn recipe's network, NHWC; prints
                { "backend", "adapter", "train", "eval" })
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
      variant: { type: "string", default: "all" },
      model: { type: "string", default: "mlp" },
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
  if (values.model === "cnn") {
    const r = await benchTfjsCnn({
      batchSize: Number(values.batch),
      warmupSteps: Number(values.warmup),
      steps: Number(values.steps),
      rounds: Number(values.rounds),
    });
    console.log(JSON.stringify({ tfjs: tf.version_core, ...r }));
    return;
  }
  const variants = values.variant === "all" ? VARIANTS : [values.variant as Variant];
  const results: Record<string, { train: number; eval: number }> = {};
  let backend = "";
  let adapter: string | undefined;
  for (const variant of variants) {
    const r = await benchTfjs({
      variant,
      batchSize: Number(values.batch),
      warmupSteps: Number(values.warmup),
      steps: Number(values.steps),
      rounds: Number(values.rounds),
    });
    results[variant] = { train: Math.round(r.train), eval: Math.round(r.eval) };
    backend = r.backend;
    adapter = r.adapter;
  }
  console.log(JSON.stringify({ tfjs: tf.version_core, backend, adapter, results }));
}

if (import.meta.main) await main(Deno.args);
