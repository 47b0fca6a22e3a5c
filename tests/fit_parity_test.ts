/**
 * Models trained through `fit` match PyTorch, and resume bit for bit (issue 12's "done when").
 *
 * Each case of {@link CASES} trains a model with `fit` for a few epochs on small seeded data
 * (batches of 32, a seeded order per epoch that PyTorch is handed too) and is checked twice:
 * - resume: stopped after `stopAfter` epochs and resumed from its `checkpointDir`, it ends with
 *   the uninterrupted run's weights, optimizer state and history, bit for bit;
 * - PyTorch: tests/torch/fit_parity.py trains the same architecture from our initial weights
 *   (exported with `stateDict()`) on the same batches, in float32 and float64. Our per-epoch
 *   train and validation losses and our final state dict must lie within K times PyTorch's own
 *   float32-vs-float64 drift of its float64 run (as tests/parity_test.ts; PyTorch's float32
 *   depends on the CPU's BLAS, its float64 hardly), and below FLOOR however small that drift.
 *   Ignored, with one line saying why, where /usr/bin/python3 cannot import torch.
 *
 * The batches come from `FixedBatches` (tests/fixtures/fit_parity.ts), a `BatchSource` over
 * tensors uploaded once, so those cases depend on no dataset class; an image case (`images`)
 * trains on a `GpuDataset` through `Loader`s instead, PyTorch being handed the loader's order
 * and the raw bytes, which it scales and normalises itself. A new case is one entry of
 * {@link CASES}.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Gpu } from "../lib/gpu/device.ts";
import { writeSafetensorsFile } from "../lib/io/safetensors_file.ts";
import { MSELoss } from "../lib/nn/elementwise_loss.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { CNN_RECIPE, CNN_WIDTHS, cnnModel } from "../lib/nn/cnn.ts";
import { manualSeed } from "../lib/nn/random.ts";
import type { StateDict } from "../lib/nn/sequential.ts";
import { fit } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import {
  BATCH,
  buildModel,
  type Data,
  type DataShape,
  FixedBatches,
  imageLoaders,
  type LayerSpec,
  linear,
  makeData,
  makeOptimizer,
  makeScheduler,
  type OptimizerSpec,
  runTorch,
  type SchedulerSpec,
  seq,
} from "./fixtures/fit_parity.ts";
import { curves, stateBits } from "./fixtures/history.ts";
import { torchMissing } from "./fixtures/torch.ts";
import { assertWithin, gpuTest } from "./helpers.ts";

const MISSING = await torchMissing();
if (MISSING !== null) console.log(`fit_parity: the PyTorch checks are ignored (${MISSING})`);
const torchTest = (name: string, fn: (gpu: Gpu) => Promise<void>) =>
  MISSING === null ? gpuTest(name, fn) : Deno.test({ name, ignore: true, fn: () => {} });

// ---------------------------------------------------------------------------------------------
// The cases.

/** A training run, trained here through `fit` and there by PyTorch. */
interface Case extends DataShape {
  name: string;
  arch: LayerSpec;
  /** The interrupted run stops after this epoch and is resumed. */
  stopAfter: number;
  optimizer: OptimizerSpec;
  scheduler?: SchedulerSpec;
  /** fit's `accumulate` (batches per optimizer step). Default: 1. */
  accumulate?: number;
  /** CrossEntropyLoss's options. Default: none. */
  lossOptions?: { labelSmoothing: number };
  /**
   * PyTorch float32 runs from weights nudged by one ulp, whose drift from its float64 run
   * counts too (see fit_parity.py's `nudged`). Default: 0.
   */
  nudged?: number;
}

/**
 * The `cnn` recipe's network (lib/nn/cnn.ts) as a layer spec; a test checks it builds the same
 * modules as `cnnModel()`.
 */
function cnnSpec(): LayerSpec {
  const layers: LayerSpec[] = [{ kind: "Unflatten", shape: [3, 32, 32] }];
  let inChannels = 3;
  for (const width of CNN_WIDTHS) {
    for (let i = 0; i < 2; i++) {
      layers.push(
        { kind: "Conv2d", in: inChannels, out: width, kernel: 3, padding: 1, bias: false },
        { kind: "BatchNorm2d", features: width },
        { kind: "ReLU" },
      );
      inChannels = width;
    }
    layers.push({ kind: "MaxPool2d", kernel: 2 });
  }
  layers.push({ kind: "AdaptiveAvgPool2d", size: 1 }, { kind: "Flatten" }, linear(inChannels, 10));
  return seq(...layers);
}

const CASES: Case[] = [
  {
    // A Sequential holding a Sequential and a Residual, with BatchNorm1d. The Linear right
    // before the BatchNorm has no bias: its gradient is exactly zero, and Adam would turn the
    // rounding noise into lr-sized steps (see tests/composite_test.ts's Block).
    name: "nested residual classifier, CrossEntropyLoss, Adam",
    arch: seq(
      seq(linear(12, 16, false), { kind: "BatchNorm1d", features: 16 }, { kind: "LeakyReLU" }),
      {
        kind: "Residual",
        fn: seq(linear(16, 16), { kind: "LeakyReLU", slope: 0.1 }, linear(16, 16)),
      },
      linear(16, 5),
    ),
    task: "classify",
    features: 12,
    outputs: 5,
    samples: 160,
    valSamples: 64,
    epochs: 4,
    stopAfter: 2,
    optimizer: { kind: "Adam", lr: 1e-2 },
    shuffle: true,
  },
  {
    name: "MLP regression, MSELoss, AdamW",
    arch: seq(linear(6, 24), { kind: "Tanh" }, linear(24, 24), { kind: "Tanh" }, linear(24, 3)),
    task: "regress",
    features: 6,
    outputs: 3,
    samples: 128,
    valSamples: 64,
    epochs: 4,
    stopAfter: 1,
    optimizer: { kind: "AdamW", lr: 5e-3, weightDecay: 0.01 },
    shuffle: true,
  },
  {
    // OneCycleLR stepped per optimizer step (momentum not cycled, as ours), SGD with momentum,
    // and gradients clamped to [−1/16, 1/16] (PyTorch's clip_grad_value_ before step).
    name: "OneCycleLR per step, SGD momentum, clipGradValue",
    arch: seq(
      linear(10, 32),
      { kind: "LeakyReLU" },
      linear(32, 32),
      { kind: "Tanh" },
      linear(32, 4),
    ),
    task: "classify",
    features: 10,
    outputs: 4,
    samples: 128,
    valSamples: 64,
    epochs: 4,
    stopAfter: 3,
    optimizer: { kind: "SGD", lr: 0.1, momentum: 0.9, clipGradValue: 1 / 16 },
    scheduler: {
      kind: "OneCycleLR",
      maxLr: 0.5,
      options: { totalSteps: 4 * (128 / BATCH) },
      interval: "step",
    },
    shuffle: false,
  },
  {
    // PyTorch's usual "no weight decay on biases and norms": the Linear weights in one group,
    // the biases and BatchNorm's γ, β in another with weight decay 0 and a rate of their own.
    // (No bias before the BatchNorm: its gradient is zero, see the first case.)
    name: "two parameter groups, AdamW, BatchNorm1d",
    arch: seq(
      linear(8, 24, false),
      { kind: "BatchNorm1d", features: 24 },
      { kind: "LeakyReLU" },
      linear(24, 3),
    ),
    task: "classify",
    features: 8,
    outputs: 3,
    samples: 128,
    valSamples: 64,
    epochs: 4,
    stopAfter: 2,
    optimizer: {
      kind: "AdamW",
      lr: 1e-2,
      weightDecay: 0.1,
      groups: [{ select: "matrices" }, { select: "vectors", weightDecay: 0, lr: 3e-3 }],
    },
    shuffle: true,
  },
  {
    // clip_grad_norm_ and gradient accumulation under a per-step OneCycleLR: 5 batches of 32 a
    // epoch in windows of 2 (the last window is one batch, still divided by 2): 3 steps a epoch.
    name: "OneCycleLR per step, SGD momentum, clipGradNorm, accumulate 2",
    arch: seq(linear(10, 32), { kind: "Tanh" }, linear(32, 32), { kind: "Tanh" }, linear(32, 4)),
    task: "classify",
    features: 10,
    outputs: 4,
    samples: 160,
    valSamples: 64,
    epochs: 4,
    stopAfter: 1,
    optimizer: { kind: "SGD", lr: 0.1, momentum: 0.9, clipGradNorm: 0.3 },
    scheduler: {
      kind: "OneCycleLR",
      maxLr: 0.5,
      options: { totalSteps: 4 * Math.ceil(160 / BATCH / 2) },
      interval: "step",
    },
    accumulate: 2,
    shuffle: true,
  },
  {
    // uint8 [1, 28, 28] images through GpuDataset and Loader (the gather's vec4 path, 784 bytes
    // a row), normalised with MNIST's mean and std, shuffled by the loader, whose order PyTorch
    // is handed. No augmentation: PyTorch could not draw the same crops
    // (tests/dataset_shapes_test.ts checks those against a host twin).
    name: "MNIST-shaped uint8 [1, 28, 28] through GpuDataset and Loader, Adam",
    arch: seq(linear(784, 32), { kind: "LeakyReLU" }, linear(32, 10)),
    task: "classify",
    features: 784,
    outputs: 10,
    samples: 256,
    valSamples: 64,
    epochs: 4,
    stopAfter: 2,
    optimizer: { kind: "Adam", lr: 1e-3 },
    shuffle: true,
    images: { shape: [1, 28, 28], normalize: { mean: [0.1307], std: [0.3081] } },
  },
  {
    // The `cnn` recipe's first 20 steps: its network, SGD with Nesterov momentum and weight
    // decay on the weights of rank > 1 only, a per-step OneCycleLR, label smoothing, and the
    // loader's random flips and 4-pixel crops, whose draws PyTorch is handed (cnnOptimizer in
    // lib/train/experiment.ts builds the same groups; tests/cnn_recipe_test.ts checks it).
    name: "the cnn recipe: Conv2d, BatchNorm2d, pools, SGD nesterov, OneCycleLR, flips and crops",
    arch: cnnSpec(),
    task: "classify",
    features: 3072,
    outputs: 10,
    samples: 160,
    valSamples: 32,
    epochs: 4,
    stopAfter: 2,
    optimizer: {
      kind: "SGD",
      lr: CNN_RECIPE.lr,
      momentum: CNN_RECIPE.momentum,
      nesterov: true,
      weightDecay: CNN_RECIPE.weightDecay,
      groups: [{ select: "matrices" }, { select: "vectors", weightDecay: 0 }],
    },
    scheduler: {
      kind: "OneCycleLR",
      maxLr: CNN_RECIPE.lr,
      options: { totalSteps: 4 * (160 / BATCH), pctStart: CNN_RECIPE.pctStart },
      interval: "step",
    },
    lossOptions: { labelSmoothing: CNN_RECIPE.labelSmoothing },
    // ReLUs after BatchNorm2d see values within 1e-7 of 0 (one such value, its sign flipped by
    // rounding, moved a BatchNorm bias gradient by 5e-5 in step 1 while PyTorch's float32 kept
    // the float64 sign), and max pools see ties in the crops' constant bands: one float32 run
    // under-samples the drift.
    nudged: 3,
    shuffle: true,
    images: {
      shape: [3, 32, 32],
      normalize: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
      augment: { ...CNN_RECIPE.augment },
    },
  },
];

// Ours may be K times PyTorch's own float32-vs-float64 drift from its float64 run, element by
// element; below FLOOR a difference is float32 rounding however small that drift was: 8 ulps of
// a loss near 1, 16 ulps of a weight near 1 (1/5000 of an Adam step of lr 1e-2). Observed:
// at most 0.2 of the bound, PyTorch's drift and ours both 1e-7-ish after 16-20 steps, while a
// PyTorch run with lr or max_lr ×1.001, Adam's eps 1e-7, momentum 0.899, BatchNorm momentum
// 0.101, no clamp, the schedule stepped per epoch or the batches rotated is 5-400,000× it.
const K = 8;
// With nudged runs the drift is the largest of four float32 runs, a fairer sample: a tighter K.
// Observed on the cnn recipe: our losses within 0.2-0.6 of the bound; a PyTorch run without
// label smoothing (13x the bound) or Nesterov (21x), with pctStart 0.3 (4x), half the flips
// reversed (4.6x), momentum 0.89 (1.25x) or the crop's offsets swapped fails it. Twenty steps at
// the recipe's rates are chaotic enough that weight decay 5e-4 stays within it (0.1x):
// tests/cnn_recipe_test.ts checks the recipe's groups and options directly.
const K_NUDGED = 4;
const FLOOR = { loss: 1e-6, weight: 2e-6 };
/** The Euclidean distance between two equally long arrays. */
function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return Math.sqrt(sum);
}
/** The largest elementwise difference (a loop: a conv weight has too many elements to spread). */
function spread(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let most = 0;
  for (let i = 0; i < a.length; i++) most = Math.max(most, Math.abs(a[i] - b[i]));
  return most;
}
const bounds = (f32: number[][], f64: number[], floor: number, k = K) =>
  f64.map((v, i) => Math.max(k * Math.max(...f32.map((run) => Math.abs(run[i] - v))), floor));

// ---------------------------------------------------------------------------------------------
// One fit.

interface Outcome {
  initial: StateDict;
  history: History;
  state: StateDict;
  optim: Record<string, Float32Array>;
  /** The epochs this call trained (a resume trains only those after the checkpoint). */
  trained: number[];
}

async function fitCase(
  gpu: Gpu,
  c: Case,
  data: Data,
  o: { dir?: string; stopAfter?: number; resume?: boolean } = {},
): Promise<Outcome> {
  manualSeed(12);
  const model = buildModel(c.arch).to(gpu);
  const optimizer = makeOptimizer(c.optimizer, model.parameters());
  const loss = c.task === "classify" ? new CrossEntropyLoss(c.lossOptions) : new MSELoss();
  const images = c.images ? imageLoaders(gpu, c, data) : null;
  const train = images?.train ??
    FixedBatches.upload(gpu, c, data.x as Float32Array, data.y, data.order);
  const val = images?.val ?? FixedBatches.upload(gpu, c, data.valX as Float32Array, data.valY, [
    Array.from({ length: c.valSamples }, (_, i) => i),
  ]);
  const controller = new AbortController();
  const trained: number[] = [];
  try {
    const initial = await model.stateDict();
    const history = await fit(model, {
      train,
      val,
      epochs: c.epochs,
      loss,
      optimizer,
      scheduler: makeScheduler(c.scheduler),
      accumulate: c.accumulate,
      checkpointDir: o.dir,
      resume: o.resume,
      signal: controller.signal,
      progress: false,
      stepsPerSubmit: 2,
      onEpoch: (record) => {
        trained.push(record.epoch);
        if (record.epoch === o.stopAfter) controller.abort();
      },
    });
    return {
      initial,
      history,
      state: await model.stateDict(),
      optim: await optimizer.readState(),
      trained,
    };
  } finally {
    const sources = images ? [images] : [train, val];
    for (const d of [...sources, loss, optimizer, model]) d.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// The tests.

/** The uninterrupted run of each case, shared by its two tests (one fit, on one shared GPU). */
const wholeRuns = new Map<string, Promise<{ data: Data; run: Outcome }>>();
function wholeRun(gpu: Gpu, c: Case, seed: number) {
  if (!wholeRuns.has(c.name)) {
    const data = makeData(c, seed);
    wholeRuns.set(c.name, fitCase(gpu, c, data).then((run) => ({ data, run })));
  }
  return wholeRuns.get(c.name)!;
}

Deno.test("fit_parity's cnn spec is the recipe's network, module for module", () => {
  manualSeed(0);
  assert.equal(buildModel(cnnSpec()).describe(), cnnModel().describe());
});

for (const [index, c] of CASES.entries()) {
  const seed = 100 + index;
  gpuTest(
    `fit_parity ${c.name}: stopped after epoch ${c.stopAfter} and resumed, bit for bit`,
    async (gpu) => {
      const { data, run: whole } = await wholeRun(gpu, c, seed);
      const losses = whole.history.epochs.map((e) => e.trainLoss);
      assert(losses.at(-1)! < losses[0], `it trains: train losses ${losses}`);
      const dir = await Deno.makeTempDir({ prefix: "wgnn-fit-parity-" });
      try {
        const first = await fitCase(gpu, c, data, { dir, stopAfter: c.stopAfter });
        assert.equal(first.history.stopped, "aborted");
        assert.equal(first.history.epochs.length, c.stopAfter);
        assert.notDeepEqual(stateBits(first.state), stateBits(whole.state), "stopped early");
        const resumed = await fitCase(gpu, c, data, { dir, resume: true });
        const rest = Array.from({ length: c.epochs - c.stopAfter }, (_, i) => c.stopAfter + 1 + i);
        assert.deepEqual(resumed.trained, rest, "the resume trains only the epochs after the stop");
        assert.deepEqual(curves(resumed.history), curves(whole.history), "history");
        assert.deepEqual(
          stateBits(resumed.state),
          stateBits(whole.state),
          "state dict, bit for bit",
        );
        assert.deepEqual(stateBits(resumed.optim), stateBits(whole.optim), "optimizer state");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );

  torchTest(`fit_parity ${c.name}: losses and weights as PyTorch's`, async (gpu) => {
    const { data, run: ours } = await wholeRun(gpu, c, seed);
    const dir = await Deno.makeTempDir({ prefix: "wgnn-fit-parity-torch-" });
    try {
      const weights = join(dir, "initial.safetensors");
      await writeSafetensorsFile(weights, ours.initial, { format: "pt" });
      let order = data.order;
      let augmentation = null;
      if (c.images) {
        const loaders = imageLoaders(gpu, c, data);
        order = loaders.orders(c.epochs);
        if (c.images.augment) augmentation = loaders.augmentations(c.epochs);
        loaders.dispose();
      }
      const torch = await runTorch({
        arch: c.arch,
        weights,
        loss: c.task === "classify" ? "CrossEntropyLoss" : "MSELoss",
        optimizer: c.optimizer,
        scheduler: c.scheduler ?? null,
        accumulate: c.accumulate ?? 1,
        epochs: c.epochs,
        batch: BATCH,
        features: c.features,
        x: [...data.x],
        y: [...data.y],
        order,
        valX: [...data.valX],
        valY: [...data.valY],
        images: c.images ?? null,
        augmentation,
        lossOptions: c.lossOptions ?? {},
        nudged: c.nudged ?? 0,
      });
      const [f64, f32s] = [torch.float64, [torch.float32, ...torch.nudged]];
      const f32 = { train: f32s.map((r) => r.train), val: f32s.map((r) => r.val) };
      const room: Record<string, number> = {};
      const train = ours.history.epochs.map((e) => e.trainLoss);
      const val = ours.history.epochs.map((e) => e.valLoss!);
      const k = c.nudged ? K_NUDGED : K;
      const trainBound = bounds(f32.train, f64.train, FLOOR.loss, k);
      room.train = assertWithin(train, f64.train, trainBound, "train loss per epoch");
      room.val = assertWithin(val, f64.val, bounds(f32.val, f64.val, FLOOR.loss, k), "val loss");
      // The bound is tighter than what training changed: a run that did not follow PyTorch's
      // steps could not pass for one that did.
      const fell = f64.train[0] - f64.train.at(-1)!;
      assert(fell > 10 * Math.max(...trainBound), `loss fell ${fell}, bound ${trainBound}`);

      assert.deepEqual(Object.keys(ours.state), Object.keys(f64.state), "state dict names");
      room.weights = 0;
      let moved = 0, widest = 0, largest = 0;
      for (const [name, t] of Object.entries(ours.state)) {
        if (t.dtype === "I64") {
          const steps = Number((t.data as BigInt64Array)[0]);
          assert.equal(steps, f64.state[name][0], name);
          assert.equal(steps, c.epochs * c.samples / BATCH, `${name}: one per step`);
          continue;
        }
        const got = [...t.data as Float32Array];
        const start = [...ours.initial[name].data as Float32Array];
        largest = Math.max(largest, spread(got, f64.state[name]));
        if (c.nudged) {
          // Element by element, two float32 runs this far from float64 differ like two random
          // draws; per tensor, ours must be as far from it as float32 runs are (observed: 0.6-1.4
          // times the farthest of four) and what training moved well beyond that.
          const drift = Math.max(...f32s.map((r) => distance(r.state[name], f64.state[name])));
          const bound = k * Math.max(drift, FLOOR.weight * Math.sqrt(got.length));
          const ratio = distance(got, f64.state[name]) / bound;
          assert(ratio <= 1, `${name}: ‖ours − f64‖ is ${ratio * k} × PyTorch's float32 drift`);
          room.weights = Math.max(room.weights, ratio);
          moved = Math.max(moved, distance(start, f64.state[name]) / drift);
          continue;
        }
        const b = bounds(f32s.map((r) => r.state[name]), f64.state[name], FLOOR.weight, k);
        room.weights = Math.max(room.weights, assertWithin(got, f64.state[name], b, name));
        moved = Math.max(moved, spread(start, f64.state[name]));
        widest = Math.max(widest, ...b);
      }
      if (c.nudged) {
        assert(moved > 10, `weights moved at most ${moved} × PyTorch's float32 drift`);
      } else assert(moved > 10 * widest, `weights moved ${moved}, widest bound ${widest}`);
      if (c.optimizer.kind === "SGD" && c.optimizer.clipGradValue !== undefined) {
        // The clamp mattered, and not for every element.
        assert(f64.clipped > 0 && f64.clipped < f64.gradients, `clipped ${f64.clipped}`);
      }
      if (c.optimizer.clipGradNorm !== undefined) {
        // The norm was clipped at some steps and not at others.
        assert(
          f64.normClipped > 0 && f64.normClipped < f64.steps,
          `norm clipped at ${f64.normClipped} of ${f64.steps} steps`,
        );
      }
      const show = Object.entries(room).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
      const diffs = `train ${spread(train, f64.train).toExponential(1)}, val ${
        spread(val, f64.val).toExponential(1)
      }, weights ${largest.toExponential(1)}`;
      console.log(
        `${c.name} vs PyTorch f64: largest diff/bound ${show} (K = ${k}); diffs ${diffs}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
