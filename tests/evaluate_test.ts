/**
 * evaluate and predict (lib/train/evaluate.ts).
 *
 * evaluate: on a Loader after `fit`, its loss, accuracy and confusion matrix equal the last
 * validation's exactly (it is the same pass); on a BatchSource with MSELoss, a forward-only
 * pass encoded by hand, with no accuracy or confusion. predict: uint8 images through `like`
 * (or an explicit `normalize`) give, bit for bit, the logits a forward on that loader's batches
 * gives, and labels that agree with evaluate's confusion matrix; Float32Array rows give a
 * forward on the same batches bit for bit and a float64 twin's values. Both restore the
 * model's mode, count no training step, read the GPU back in one round trip (every readback
 * in flight before the first completes) and leave GPU memory as they found it.
 */

import assert from "node:assert/strict";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader, type Normalize } from "../lib/data/loader.ts";
import { BatchNorm1d } from "../lib/nn/batchnorm.ts";
import { Dropout } from "../lib/nn/dropout.ts";
import { MSELoss } from "../lib/nn/elementwise_loss.ts";
import { Flatten, LeakyReLU, Linear } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { LossStats } from "../lib/nn/loss_contract.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { Tensor } from "../lib/tensor.ts";
import { evaluate } from "../lib/train/evaluate.ts";
import { predict } from "../lib/train/predict.ts";
import { fit } from "../lib/train/fit.ts";
import type { BatchSource } from "../lib/train/schedule.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";
import { randomImages } from "./fixtures/random.ts";

const NORMALIZE: Normalize = { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] };

/** A small image classifier with BatchNorm (eval uses its running statistics) and Dropout. */
function classifier(gpu: Gpu): Sequential {
  manualSeed(3);
  return new Sequential(
    new Flatten(),
    new Linear(3072, 24),
    new LeakyReLU(),
    new BatchNorm1d(24),
    new Dropout(0.25),
    new Linear(24, 10),
  ).to(gpu);
}

/**
 * Runs `f` counting the buffer maps it starts and checking that each starts before any map
 * has completed: all readbacks in flight together, one wait.
 */
async function oneRoundTrip<T>(f: () => Promise<T>): Promise<{ result: T; maps: number }> {
  const original = GPUBuffer.prototype.mapAsync;
  let started = 0, completed = 0, late = 0;
  GPUBuffer.prototype.mapAsync = function (this: GPUBuffer, ...args) {
    started++;
    if (completed > 0) late++;
    return original.apply(this, args).finally(() => completed++);
  };
  try {
    const result = await f();
    assert.equal(late, 0, `${late} of ${started} readbacks started after another completed`);
    return { result, maps: started };
  } finally {
    GPUBuffer.prototype.mapAsync = original;
  }
}

/** Bit patterns of a Float32Array (NaN-safe exact comparison). */
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Every child's train flag, and the model's. */
const modes = (m: Sequential) => [m.training, ...m.modules.map((c) => c.training)];

gpuTest("evaluate on a Loader after fit equals fit's last validation exactly", async (gpu) => {
  const train = GpuDataset.upload(gpu, randomImages(200, 1), { label: "train" });
  const valSet = GpuDataset.upload(gpu, randomImages(100, 2), { label: "val" });
  const trainLoader = new Loader(gpu, train, {
    batchSize: 32,
    shuffle: true,
    normalize: NORMALIZE,
    augment: { flip: true },
  });
  const val = new Loader(gpu, valSet, { batchSize: 32, normalize: NORMALIZE }); // last batch: 4
  const model = classifier(gpu);
  const loss = new CrossEntropyLoss();
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
  try {
    const history = await fit(model, {
      train: trainLoader,
      val,
      epochs: 2,
      loss,
      optimizer,
      progress: false,
    });
    const last = history.epochs[1];
    model.train();
    const steps = await model.trainingSteps();
    const { result, maps } = await oneRoundTrip(() => evaluate(model, val));
    assert.equal(result.loss, last.valLoss, "the loss");
    assert.equal(result.accuracy, last.valAccuracy, "the accuracy");
    assert.deepEqual(result.confusion, history.confusion, "the confusion matrix");
    assert.equal(result.samples, 100);
    assert.equal(result.batches, 4);
    assert.equal(maps, 2, "the stats and the confusion matrix");
    assert.deepEqual(modes(model), modes(model).map(() => true), "train mode restored");
    assert.equal(await model.trainingSteps(), steps, "eval forwards count no training step");

    // The fit's own loss gives the same numbers; eval mode is restored as eval mode.
    model.eval();
    const again = await evaluate(model, val, { loss });
    assert.deepEqual(again, result);
    assert.deepEqual(modes(model), modes(model).map(() => false), "eval mode restored");

    // Allocations are the call's own: freed before it returns.
    const live = gpu.memory.liveBytes;
    await evaluate(model, val);
    assert.equal(gpu.memory.liveBytes, live, "GPU memory flat across evaluate calls");
  } finally {
    for (const d of [optimizer, loss, model, trainLoader, val, train, valSet]) d.dispose();
  }
});

gpuTest("evaluate on a BatchSource with MSELoss: no accuracy, no confusion", async (gpu) => {
  manualSeed(5);
  const model = new Sequential(new Linear(5, 8), new LeakyReLU(), new Linear(8, 3)).to(gpu);
  const sizes = [7, 7, 3];
  const batches = sizes.map((n, i) => ({
    x: Tensor.from(gpu, randomArray(n * 5, 10 + i), [n, 5], "x"),
    y: Tensor.from(gpu, randomArray(n * 3, 20 + i), [n, 3], "y"),
  }));
  let started = -1;
  const source: BatchSource = {
    batchesPerEpoch: batches.length,
    startEpoch: (epoch) => void (started = epoch),
    encodeBatchFor: (_enc, index) => batches[index],
  };
  const loss = new MSELoss();
  const stats = new LossStats(gpu, "by hand");
  try {
    // The pass by hand: eval mode, forward and loss into fresh stats, one submission.
    model.eval();
    const enc = new StepEncoder(gpu, "by hand");
    for (const { x, y } of batches) loss.forward(enc, model.forward(enc, x), y, stats);
    enc.submit();
    const byHand = await stats.read();
    model.train();

    const { result, maps } = await oneRoundTrip(() => evaluate(model, source, { loss, epoch: 4 }));
    assert.equal(started, 4, "the source's epoch is started");
    assert.equal(result.loss, byHand.meanLoss);
    assert.equal(result.samples, byHand.samples);
    assert.equal(result.batches, 3);
    assert.equal(result.accuracy, null, "a regression has no accuracy");
    assert.equal(result.confusion, null, "nor a confusion matrix");
    assert.equal(maps, 1, "only the stats are read");
    assert.equal(model.training, true);

    await assert.rejects(
      () => evaluate(model, source, { epoch: -1 }),
      /Cannot evaluate: epoch must be a non-negative integer: current value is -1/,
    );
    await assert.rejects(
      () => evaluate(model, { ...source, batchesPerEpoch: 0 }),
      /Cannot evaluate: the source must have batches: current batchesPerEpoch is 0/,
    );
  } finally {
    stats.dispose();
    loss.dispose();
    model.dispose();
    for (const b of batches) disposeBatch(b);
  }
});

function disposeBatch(b: { x: Tensor; y: Tensor }): void {
  b.x.dispose();
  b.y.dispose();
}

/** Each batch of `loader` (epoch 0) through `model` in eval mode, read back batch by batch. */
async function loaderLogits(gpu: Gpu, model: Sequential, loader: Loader): Promise<Float32Array> {
  model.eval();
  loader.startEpoch(0);
  const parts: Float32Array[] = [];
  for (let i = 0; i < loader.batchesPerEpoch; i++) {
    const enc = new StepEncoder(gpu, "loader batch");
    const { x } = loader.encodeBatchFor(enc, i, model);
    const logits = model.forward(enc, x);
    enc.submit();
    parts.push(await logits.toFloat32());
  }
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** Each row's first argmax, written plainly. */
function argmaxRef(logits: Float32Array, classes: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < logits.length / classes; r++) {
    const row = Array.from(logits.subarray(r * classes, (r + 1) * classes));
    out.push(row.indexOf(Math.max(...row)));
  }
  return out;
}

gpuTest(
  "predict on uint8 images equals a forward on the loader's batches, bit for bit",
  async (gpu) => {
    const set = randomImages(100, 7);
    const data = GpuDataset.upload(gpu, set, { label: "images" });
    const loader = new Loader(gpu, data, { batchSize: 32, normalize: NORMALIZE });
    const plain = new Loader(gpu, data, { batchSize: 32 });
    const model = classifier(gpu);
    try {
      // Running statistics away from (0, 1), so that eval mode matters.
      const loss = new CrossEntropyLoss();
      const optimizer = new Adam(model.parameters(), { lr: 1e-2 });
      await fit(model, { train: loader, epochs: 1, loss, optimizer, progress: false });
      loss.dispose();
      optimizer.dispose();

      const expected = await loaderLogits(gpu, model, loader);
      model.train();
      const steps = await model.trainingSteps();
      const { result, maps } = await oneRoundTrip(() =>
        predict(model, set.images, { like: loader })
      );
      assert.equal(maps, 1, "one readback: the logits");
      assert.equal(result.classes, 10);
      assert.equal(result.logits.length, 100 * 10);
      assert.deepEqual(bits(result.logits), bits(expected), "the logits the loader's batches give");
      assert.deepEqual(Array.from(result.labels), argmaxRef(result.logits, 10));
      assert.deepEqual(modes(model), modes(model).map(() => true), "train mode restored");
      assert.equal(await model.trainingSteps(), steps, "eval forwards count no training step");

      const explicit = await predict(model, set.images, { normalize: NORMALIZE, batchSize: 32 });
      assert.deepEqual(bits(explicit.logits), bits(expected), "normalize given explicitly");
      const unnormalized = await predict(model, set.images, { batchSize: 32 });
      assert.deepEqual(bits(unnormalized.logits), bits(await loaderLogits(gpu, model, plain)));

      // Another batch size: the same function of each row, up to the matmul's rounding.
      const one = await predict(model, set.images, { like: loader, batchSize: 100 });
      assertClose(one.logits, expected, { atol: 1e-5, rtol: 1e-4, what: "batch 100" });

      // The labels agree with evaluate's confusion matrix and accuracy on the same images.
      const measured = await evaluate(model, loader);
      const confusion = Array.from({ length: 10 }, () => new Array(10).fill(0));
      result.labels.forEach((p, i) => confusion[set.labels[i]][p]++);
      assert.deepEqual(measured.confusion, confusion);
      const correct = result.labels.filter((p, i) => p === set.labels[i]).length;
      assert.equal(measured.accuracy, correct / 100);

      // Batches and output are the call's own: freed before it returns.
      const live = gpu.memory.liveBytes;
      await predict(model, set.images, { like: loader });
      assert.equal(gpu.memory.liveBytes, live, "GPU memory flat across predict calls");
    } finally {
      for (const d of [model, loader, plain, data]) d.dispose();
    }
  },
);

gpuTest(
  "predict on Float32Array rows: a forward on the same batches, and a float64 twin",
  async (gpu) => {
    manualSeed(9);
    const model = new Sequential(new Linear(5, 3)).to(gpu);
    const rows = randomArray(7 * 5, 30);
    try {
      const result = await predict(model, rows, { features: 5, batchSize: 3 }); // 3, 3, 1 rows
      model.eval();
      const expected = new Float32Array(7 * 3);
      for (const [start, n] of [[0, 3], [3, 3], [6, 1]]) {
        using x = Tensor.from(gpu, rows.slice(start * 5, (start + n) * 5), [n, 5], "x");
        const enc = new StepEncoder(gpu, "rows");
        const logits = model.forward(enc, x);
        enc.submit();
        expected.set(await logits.toFloat32(), start * 3);
      }
      assert.deepEqual(bits(result.logits), bits(expected));

      // y = x·Wᵀ + b in float64, W in PyTorch's [out, in] layout.
      const state = await model.stateDict();
      const w = state["0.weight"].data as Float32Array, b = state["0.bias"].data as Float32Array;
      const twin = Float64Array.from({ length: 21 }, (_, k) => {
        const [r, o] = [Math.floor(k / 3), k % 3];
        let sum = b[o];
        for (let i = 0; i < 5; i++) sum += rows[r * 5 + i] * w[o * 5 + i];
        return sum;
      });
      assertClose(result.logits, twin, { atol: 1e-6, rtol: 1e-5, what: "float64 twin" });
      assert.deepEqual(Array.from(result.labels), argmaxRef(result.logits, 3));
    } finally {
      model.dispose();
    }
  },
);

gpuTest("predict refuses what it cannot take, naming the value", async (gpu) => {
  const model = classifier(gpu);
  const data = GpuDataset.upload(gpu, randomImages(4, 1));
  const loader = new Loader(gpu, data, { batchSize: 4, normalize: NORMALIZE });
  try {
    await assert.rejects(
      () => predict(model, [1, 2, 3] as unknown as Float32Array),
      TypeError,
    );
    await assert.rejects(
      () => predict(model, new Uint8Array(3000)),
      /Cannot predict: x must hold whole rows of 3072 values, at least one: current length is 3000 \(samples of shape \[3, 32, 32\], the default\)/,
    );
    await assert.rejects(
      () => predict(model, new Float32Array(3072), { like: loader }),
      /like's dataset holds uint8 samples, so x must be a Uint8Array: current value is a Float32Array/,
    );
    await assert.rejects(
      () => predict(model, new Uint8Array(3072), { like: loader, normalize: NORMALIZE }),
      /give like or normalize, not both/,
    );
    await assert.rejects(
      () => predict(model, new Uint8Array(3072), { batchSize: 0 }),
      /batchSize must be a positive integer: current value is 0/,
    );
    await assert.rejects(
      () => predict(model, new Uint8Array(3072), { features: 5 }),
      /x must hold whole rows of 5 values, at least one: current length is 3072 \(samples of shape \[5\]\)/,
    );
  } finally {
    for (const d of [model, loader, data]) d.dispose();
  }
});
