/**
 * Datasets of any shape (issue 12): GpuDataset.upload and Loader with MNIST-shaped images
 * [1, 28, 28], other image shapes, uint8 rows of an odd size and float32 tabular rows, each
 * checked against a host twin of the gather (the plainest loop over samples, channels, rows and
 * columns, below), bit for bit: uint8 → v / 255 and the normalisation `(u − mean) / std`
 * computed in float32 as the kernel does (each float64 operation rounded to float32, which is
 * exactly float32's correctly rounded operation). Then the refusals, predict and evaluate on an
 * MNIST-shaped set, and the run's settings recording the shape so that a resume on samples of
 * another shape is refused.
 */

import assert from "node:assert/strict";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset, type SampleSet } from "../lib/data/dataset.ts";
import { Loader, type LoaderOptions } from "../lib/data/loader.ts";
import { Flatten, LeakyReLU, Linear } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { MSELoss } from "../lib/nn/elementwise_loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { evaluate } from "../lib/train/evaluate.ts";
import { fit } from "../lib/train/fit.ts";
import { predict } from "../lib/train/predict.ts";
import { derivedSettings } from "../lib/train/run_start.ts";
import { rng } from "./fixtures/random.ts";
import { gpuTest } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// The host twin.

interface TwinOptions {
  shape: readonly number[];
  normalize?: { mean: readonly number[]; std: readonly number[] };
  flip?: boolean;
  crop?: number;
}

/**
 * Batch rows `start … start + count − 1` of an epoch, `order[k]` the sample at position k and
 * `aug[k]` its augmentation word (bit 0 flip, bits 8–15 dx, bits 16–23 dy). `y` holds `width`
 * values per sample. Returns x (count × prod(shape), float32 values) and y.
 */
function gatherTwin(
  data: Uint8Array | Float32Array,
  y: ArrayLike<number>,
  width: number,
  order: ArrayLike<number>,
  aug: ArrayLike<number>,
  start: number,
  count: number,
  o: TwinOptions,
): { x: Float32Array; y: number[] } {
  const f = Math.fround;
  const row = o.shape.reduce((a, b) => a * b, 1);
  const image = o.shape.length === 3;
  const [C, H, W] = image ? o.shape : [1, 1, row];
  const crop = o.crop ?? 0;
  const x = new Float32Array(count * row);
  const ys: number[] = [];
  for (let b = 0; b < count; b++) {
    const s = order[start + b];
    const a = aug[start + b];
    const flip = (o.flip ?? false) && (a & 1) === 1;
    const dx = ((a >> 8) & 255) - crop;
    const dy = ((a >> 16) & 255) - crop;
    for (let t = 0; t < width; t++) ys.push(y[s * width + t]);
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) {
          const si = i + dy;
          const sj = (flip ? W - 1 - j : j) + dx;
          let u = 0;
          if (si >= 0 && si < H && sj >= 0 && sj < W) {
            const v = data[s * row + c * H * W + si * W + sj];
            u = data instanceof Uint8Array ? f(v / 255) : v;
          }
          const e = c * H * W + i * W + j;
          if (o.normalize) {
            const k = image ? c : e;
            u = f(f(u - f(o.normalize.mean[k])) / f(o.normalize.std[k]));
          }
          x[b * row + e] = u;
        }
      }
    }
  }
  return { x, y: ys };
}

/** The first 5 indices where `got` and `want` differ in bits, or null. */
function bitDiff(got: Float32Array, want: Float32Array): string | null {
  if (got.length !== want.length) return `length ${got.length} != ${want.length}`;
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const bad: string[] = [];
  let n = 0;
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) {
      if (bad.length < 5) bad.push(`[${i}] gpu ${got[i]} twin ${want[i]}`);
      n++;
    }
  }
  return n === 0 ? null : `${n} mismatches, first: ${bad.join("; ")}`;
}

/** Every batch of `epoch`, gathered in one submission and copied out. */
async function gatherEpoch(gpu: Gpu, loader: Loader, epoch: number) {
  loader.startEpoch(epoch);
  const enc = new StepEncoder(gpu, "test epoch");
  const copies: { x: GPUBuffer; y: GPUBuffer; float: boolean }[] = [];
  const usage = GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ;
  for (let i = 0; i < loader.batchesPerEpoch; i++) {
    const { x, y } = loader.encodeBatch(enc, i);
    const cx = gpu.device.createBuffer({ size: x.byteLength, usage });
    const cy = gpu.device.createBuffer({ size: y.byteLength, usage });
    enc.commands().copyBufferToBuffer(x.buffer, 0, cx, 0, x.byteLength);
    enc.commands().copyBufferToBuffer(y.buffer, 0, cy, 0, y.byteLength);
    copies.push({ x: cx, y: cy, float: y.dtype === "f32" });
  }
  enc.submit();
  const out = { x: [] as Float32Array[], y: [] as number[][] };
  for (const c of copies) {
    await Promise.all([c.x.mapAsync(GPUMapMode.READ), c.y.mapAsync(GPUMapMode.READ)]);
    out.x.push(new Float32Array(c.x.getMappedRange().slice(0)));
    const ys = c.y.getMappedRange().slice(0);
    out.y.push([...(c.float ? new Float32Array(ys) : new Uint32Array(ys))]);
    c.x.destroy();
    c.y.destroy();
  }
  return out;
}

/**
 * Uploads `set` (sharded into shards of `shardSamples`), gathers epochs 0–2 with `options` and
 * compares every batch with the twin, bit for bit. Returns how many x values the augmentation
 * or normalisation changed against the plain /255 values (so a test can tell it did something).
 */
async function checkTwin(
  gpu: Gpu,
  set: SampleSet & { shape: readonly number[] },
  options: LoaderOptions,
  shardSamples?: number,
): Promise<number> {
  const row = set.shape.reduce((a, b) => a * b, 1);
  const bytes = set.images ? row : 4 * row;
  const dataset = GpuDataset.upload(gpu, set, {
    maxShardBytes: shardSamples === undefined ? undefined : shardSamples * bytes,
  });
  if (shardSamples !== undefined) assert.ok(dataset.shards.length > 1, "sharded");
  const loader = new Loader(gpu, dataset, options);
  const data = set.images ?? set.features!;
  const width = Math.max(1, dataset.targetWidth);
  let changed = 0;
  try {
    for (const epoch of [0, 1, 2]) {
      const got = await gatherEpoch(gpu, loader, epoch);
      const order = loader.order(epoch);
      const aug = loader.augmentation(epoch);
      for (let i = 0; i < loader.batchesPerEpoch; i++) {
        const start = i * options.batchSize;
        const count = got.x[i].length / row;
        const twin = { shape: set.shape, normalize: options.normalize, ...options.augment };
        const want = gatherTwin(
          data,
          set.labels ?? set.targets!,
          width,
          order,
          aug,
          start,
          count,
          twin,
        );
        assert.deepEqual(got.y[i], want.y, `y, epoch ${epoch} batch ${i}`);
        const problem = bitDiff(got.x[i], want.x);
        assert.equal(problem, null, `x, epoch ${epoch} batch ${i}: ${problem}`);
        const plain = gatherTwin(
          data,
          set.labels ?? set.targets!,
          width,
          order,
          aug,
          start,
          count,
          {
            shape: set.shape,
          },
        );
        changed += want.x.filter((v, k) => v !== plain.x[k]).length;
      }
    }
  } finally {
    loader.dispose();
    dataset.dispose();
  }
  return changed;
}

/** `count` seeded uint8 samples of `shape` with labels below `classes`. */
function bytesSet(shape: number[], count: number, seed: number, classes = 10) {
  const next = rng(seed);
  const row = shape.reduce((a, b) => a * b, 1);
  return {
    images: Uint8Array.from({ length: count * row }, () => Math.floor(next() * 256)),
    labels: Uint8Array.from({ length: count }, () => Math.floor(next() * classes)),
    shape,
  };
}

/** `count` seeded float32 rows of `features` values in [−3, 3). */
function floatRows(features: number, count: number, seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: count * features }, () => 6 * next() - 3);
}

const MNIST = [1, 28, 28];
const MNIST_NORM = { mean: [0.1307], std: [0.3081] };

// ---------------------------------------------------------------------------------------------
// Gathers against the twin.

gpuTest(
  "MNIST-shaped [1, 28, 28] uint8: plain, normalised, flipped and cropped as the twin",
  async (gpu) => {
    const set = bytesSet(MNIST, 37, 1);
    // 784 bytes = 49 vec4s: the vector path; four shards of 10 images, a partial last batch.
    assert.equal(await checkTwin(gpu, set, { batchSize: 16, shuffle: true, seed: 3 }, 10), 0);
    const normalize = MNIST_NORM;
    assert.ok(await checkTwin(gpu, set, { batchSize: 16, shuffle: true, normalize }, 10) > 0);
    // Augmentation (the one-value path) on 28×28, with and without normalisation.
    const augment = { flip: true, crop: 4 };
    assert.ok(
      await checkTwin(gpu, set, { batchSize: 16, shuffle: true, seed: 5, augment }, 10) > 0,
    );
    assert.ok(await checkTwin(gpu, set, { batchSize: 12, augment, normalize, seed: 6 }) > 0);
  },
);

gpuTest(
  "other images: [2, 5, 7] uint8 and [3, 6, 4] float32, augmented per channel",
  async (gpu) => {
    const odd = bytesSet([2, 5, 7], 23, 2); // 70 bytes a row: the one-value path
    const normalize = { mean: [0.25, 0.75], std: [0.5, 0.125] };
    assert.ok(
      await checkTwin(gpu, odd, { batchSize: 8, normalize, augment: { flip: true, crop: 2 } }, 7) >
        0,
    );
    assert.ok(await checkTwin(gpu, odd, { batchSize: 5, shuffle: true, normalize }) > 0);
    const floats = { features: floatRows(72, 19, 3), labels: bytesSet([1], 19, 4).labels };
    const shape = [3, 6, 4];
    const norm3 = { mean: [0.5, -1, 2], std: [2, 0.3, 1.5] };
    assert.ok(
      await checkTwin(gpu, { ...floats, shape }, {
        batchSize: 6,
        normalize: norm3,
        augment: { flip: true, crop: 1 },
        seed: 2,
      }) > 0,
    );
    assert.ok(
      await checkTwin(gpu, { ...floats, shape }, { batchSize: 7, normalize: norm3 }, 5) > 0,
    );
  },
);

gpuTest(
  "tabular float32: 13 features with 2 targets each, 8 features, per-feature normalisation",
  async (gpu) => {
    const targets = floatRows(2, 41, 5);
    const features = floatRows(13, 41, 6); // 52 bytes a row: the one-value path
    const mean = Array.from({ length: 13 }, (_, i) => 0.1 * i - 0.5);
    const std = Array.from({ length: 13 }, (_, i) => 0.5 + 0.25 * i);
    const shape = [13];
    assert.equal(
      await checkTwin(gpu, { features, targets, shape }, { batchSize: 16, shuffle: true }, 12),
      0,
    );
    assert.ok(
      await checkTwin(gpu, { features, targets, shape }, {
        batchSize: 16,
        shuffle: true,
        normalize: { mean, std },
      }, 12) > 0,
    );
    // 8 floats = 32 bytes: the vector path for floats, with class labels.
    const eight = {
      features: floatRows(8, 30, 7),
      labels: bytesSet([1], 30, 8).labels,
      shape: [8],
    };
    const norm8 = { mean: Array(8).fill(0.25), std: [1, 2, 3, 4, 0.5, 0.25, 3, 7] };
    assert.equal(await checkTwin(gpu, eight, { batchSize: 7 }, 9), 0);
    assert.ok(await checkTwin(gpu, eight, { batchSize: 7, normalize: norm8, shuffle: true }) > 0);
    const five = {
      features: floatRows(5, 11, 9),
      labels: bytesSet([1], 11, 10).labels,
      shape: [5],
    };
    assert.equal(await checkTwin(gpu, five, { batchSize: 4, shuffle: true }), 0);
  },
);

gpuTest("uint8 rows of an odd size: [13] and [784], unnormalised and per value", async (gpu) => {
  const set = bytesSet([13], 45, 11, 3);
  assert.equal(await checkTwin(gpu, set, { batchSize: 10, shuffle: true, seed: 1 }, 16), 0);
  const normalize = {
    mean: Array.from({ length: 13 }, (_, i) => i / 13),
    std: Array.from({ length: 13 }, (_, i) => 0.1 + i / 20),
  };
  assert.ok(await checkTwin(gpu, set, { batchSize: 10, normalize }, 16) > 0);
  const flat = bytesSet([784], 9, 12);
  const per = {
    mean: Array(784).fill(0.5),
    std: Array.from({ length: 784 }, (_, i) => 1 + i / 784),
  };
  assert.ok(await checkTwin(gpu, flat, { batchSize: 4, normalize: per }) > 0);
});

// ---------------------------------------------------------------------------------------------
// Refusals.

gpuTest("bad datasets and loaders are refused, naming the problem and the value", (gpu) => {
  const mnist = bytesSet(MNIST, 100, 13);
  // The old misleading "current count is 100": a 784-byte set with no shape names the mismatch.
  assert.throws(
    () => GpuDataset.upload(gpu, { images: mnist.images, labels: mnist.labels, count: 100 }),
    (e: unknown) =>
      e instanceof RangeError &&
      /100 samples of the default shape \[3, 32, 32\].*pass shape.*need 100 × 3072 = 307200 values, 784 per sample: current length is 78400/
        .test(e.message),
  );
  assert.throws(
    () => GpuDataset.upload(gpu, { ...mnist, shape: [1, 28, 27] }),
    /100 samples of shape \[1, 28, 27\] need 100 × 756 = 75600 values, 784 per sample: current length is 78400/,
  );
  assert.throws(
    () => GpuDataset.upload(gpu, { ...mnist, shape: [1, 28.5, 28] }),
    /shape must be a non-empty array of positive integers: current value is \[1, 28.5, 28\]/,
  );
  assert.throws(
    () => GpuDataset.upload(gpu, { ...mnist, shape: [] }),
    /shape must be a non-empty array of positive integers: current value is \[\]/,
  );
  const labels = Uint8Array.from(mnist.labels);
  labels[42] = 10;
  assert.throws(
    () => GpuDataset.upload(gpu, { ...mnist, labels }, { label: "digits" }),
    /Cannot upload dataset "digits": .*10 classes.*index 42 is 10/,
  );
  assert.throws(
    () => GpuDataset.upload(gpu, { images: new Uint8Array(2 * 13), labels: [1, -1], shape: [13] }),
    /every label must be a non-negative integer: current value at index 1 is -1/,
  );
  assert.throws(
    () => GpuDataset.upload(gpu, { images: new Uint8Array(26), labels: [1], shape: [13] }),
    /need 1 × 13 = 13 values, 26 per sample: current length is 26/,
  );
  const features = floatRows(5, 4, 1);
  features[13] = NaN;
  assert.throws(
    () => GpuDataset.upload(gpu, { features, labels: [0, 1, 2, 3], shape: [5] }),
    /features must be finite: current value at index 13 \(sample 2, value 3\) is NaN/,
  );
  const targets = new Float32Array(4).fill(Infinity);
  assert.throws(
    () => GpuDataset.upload(gpu, { features: floatRows(5, 4, 1), targets, shape: [5] }),
    /targets must be finite: current value at index 0 \(sample 0, value 0\) is Infinity/,
  );
  assert.throws(
    () =>
      GpuDataset.upload(gpu, {
        features: floatRows(5, 4, 1),
        targets: new Float32Array(6),
        shape: [5],
      }),
    /targets must hold the same whole number .* of the 4 samples: current length is 6/,
  );
  assert.throws(
    () =>
      GpuDataset.upload(gpu, {
        images: new Uint8Array(5),
        features: new Float32Array(5),
        labels: [0],
        shape: [5],
      }),
    /give images \(uint8\) or features \(float32\), one of them: current set has both/,
  );
  assert.throws(
    () => GpuDataset.upload(gpu, { features: new Float32Array(5), shape: [5] }),
    /give labels \(classes\) or targets \(float values\), one of them: current set has neither/,
  );
  assert.throws(
    () =>
      GpuDataset.upload(gpu, { features: new Float64Array(5) as never, labels: [0], shape: [5] }),
    /features must be a Float32Array: current value is a Float64Array of length 5/,
  );

  using digits = GpuDataset.upload(gpu, mnist);
  assert.equal(digits.describe(), "uint8 [1, 28, 28], 10 classes");
  assert.throws(
    () =>
      new Loader(gpu, digits, {
        batchSize: 8,
        normalize: { mean: [0.5, 0.5, 0.5], std: [1, 1, 1] },
      }),
    /normalize.mean must hold one value per channel of the \[1, 28, 28\] images \(1\): current length is 3/,
  );
  assert.throws(
    () => new Loader(gpu, digits, { batchSize: 8, normalize: { mean: [0.5], std: [0] } }),
    /normalize.std must be finite and > 0: current value at index 0 is 0/,
  );
  assert.throws(
    () => new Loader(gpu, digits, { batchSize: 8, normalize: { mean: [NaN], std: [1] } }),
    /normalize.mean must be finite: current value at index 0 is NaN/,
  );
  using flat = GpuDataset.upload(gpu, { ...mnist, shape: [784] });
  assert.throws(
    () => new Loader(gpu, flat, { batchSize: 8, augment: { flip: true } }),
    /augment \(flip, crop\) needs image samples \[C, H, W\]: current sample shape is \[784\]/,
  );
  assert.throws(
    () => new Loader(gpu, flat, { batchSize: 8, normalize: { mean: [0.5], std: [1] } }),
    /normalize.mean must hold one value per element of the \[784\] samples \(784\): current length is 1/,
  );
  using table = GpuDataset.upload(gpu, {
    features: floatRows(13, 3, 2),
    targets: new Float32Array(3),
    shape: [13],
  });
  assert.equal(table.describe(), "float32 [13], targets [1]");
  assert.throws(
    () => new Loader(gpu, table, { batchSize: 2, augment: { crop: 2 } }),
    /augment \(flip, crop\) needs image samples \[C, H, W\]: current sample shape is \[13\]/,
  );
  // Unaugmented, a flat set loads; only the CIFAR-10 path gathers into a texture.
  using loader = new Loader(gpu, flat, { batchSize: 8, augment: { flip: false, crop: 0 } });
  loader.startEpoch(0);
  const texture = gpu.device.createTexture({
    size: [196, 8],
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING,
  });
  assert.throws(
    () => loader.encodeBatchToTexture(new StepEncoder(gpu), 0, texture),
    /only CIFAR-10's uint8 \[3, 32, 32\] samples with labels can: current samples are uint8 \[784\], 10 classes/,
  );
  texture.destroy();
  return Promise.resolve();
});

// ---------------------------------------------------------------------------------------------
// predict, evaluate and the run's settings.

/** An MLP over MNIST-shaped images. */
function digitModel(gpu: Gpu): Sequential {
  manualSeed(4);
  return new Sequential(new Flatten(), new Linear(784, 16), new LeakyReLU(), new Linear(16, 10))
    .to(gpu);
}

/** The logits a forward on each of `loader`'s epoch-0 batches gives, in eval mode. */
async function loaderLogits(gpu: Gpu, model: Sequential, loader: Loader): Promise<Float32Array> {
  model.eval();
  loader.startEpoch(0);
  const parts: Float32Array[] = [];
  for (let i = 0; i < loader.batchesPerEpoch; i++) {
    const enc = new StepEncoder(gpu, "logits");
    const z = model.forward(enc, loader.encodeBatchFor(enc, i, model).x);
    enc.submit();
    parts.push(await z.toFloat32());
  }
  model.train();
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

const bits = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

gpuTest("predict and evaluate on an MNIST-shaped set, and on float32 rows", async (gpu) => {
  const set = bytesSet(MNIST, 70, 14);
  using data = GpuDataset.upload(gpu, set);
  using loader = new Loader(gpu, data, { batchSize: 32, normalize: MNIST_NORM });
  const model = digitModel(gpu);
  try {
    const expected = await loaderLogits(gpu, model, loader);
    const like = await predict(model, set.images, { like: loader });
    assert.deepEqual(bits(like.logits), bits(expected), "predict like the loader, bit for bit");
    const given = await predict(model, set.images, {
      shape: MNIST,
      normalize: MNIST_NORM,
      batchSize: 32,
    });
    assert.deepEqual(bits(given.logits), bits(expected), "shape and normalize given");
    const measured = await evaluate(model, loader);
    const confusion = Array.from({ length: 10 }, () => new Array(10).fill(0));
    like.labels.forEach((p, i) => confusion[set.labels[i]][p]++);
    assert.deepEqual(measured.confusion, confusion, "evaluate's confusion = predict's labels");
    assert.equal(measured.samples, 70);
    await assert.rejects(
      () => predict(model, set.images.subarray(0, 3000), { like: loader }),
      /x must hold whole rows of 784 values, at least one: current length is 3000 \(samples of shape \[1, 28, 28\]\)/,
    );
    await assert.rejects(
      () => predict(model, set.images, { like: loader, shape: [784] }),
      /like's samples have shape \[1, 28, 28\]: current shape is \[784\]/,
    );
    await assert.rejects(
      () => predict(model, new Float32Array(784), { like: loader }),
      /like's dataset holds uint8 samples, so x must be a Uint8Array: current value is a Float32Array/,
    );
    await assert.rejects(
      () => predict(model, set.images, { shape: MNIST, features: 700 }),
      /features must be the product of shape \[1, 28, 28\] \(784\): current value is 700/,
    );
  } finally {
    model.dispose();
  }

  // Float32 rows through a loader with per-feature normalisation: predict applies it too.
  manualSeed(5);
  const rows = floatRows(13, 21, 15);
  const mean = Array.from({ length: 13 }, (_, i) => i / 10);
  const std = Array.from({ length: 13 }, (_, i) => 1 + i / 7);
  using table = GpuDataset.upload(gpu, {
    features: rows,
    targets: floatRows(2, 21, 16),
    shape: [13],
  });
  using tableLoader = new Loader(gpu, table, { batchSize: 8, normalize: { mean, std } });
  const regressor = new Sequential(new Linear(13, 6), new LeakyReLU(), new Linear(6, 2)).to(gpu);
  try {
    const expected = await loaderLogits(gpu, regressor, tableLoader);
    const got = await predict(regressor, rows, { like: tableLoader });
    assert.deepEqual(bits(got.logits), bits(expected), "float32 rows normalised like the loader");
    const raw = await predict(regressor, rows, { features: 13, batchSize: 8 });
    assert.notDeepEqual(bits(raw.logits), bits(expected), "the normalisation mattered");
    const loss = new MSELoss();
    const measured = await evaluate(regressor, tableLoader, { loss });
    loss.dispose();
    assert.equal(measured.accuracy, null);
    assert.ok(Number.isFinite(measured.loss) && measured.samples > 0);
  } finally {
    regressor.dispose();
  }
});

gpuTest(
  "the run's settings record the samples; a resume on another shape is refused",
  async (gpu) => {
    const set = bytesSet(MNIST, 64, 17);
    using digits = GpuDataset.upload(gpu, set);
    using flat = GpuDataset.upload(gpu, { ...set, shape: [784] });
    using cifar = GpuDataset.upload(gpu, { ...bytesSet([3, 32, 32], 8, 18), shape: undefined });
    const model = digitModel(gpu);
    const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
    const loss = new CrossEntropyLoss();
    const dir = await Deno.makeTempDir({ prefix: "wgnn-shapes-" });
    try {
      using a = new Loader(gpu, digits, { batchSize: 32 });
      using b = new Loader(gpu, flat, { batchSize: 32 });
      using c = new Loader(gpu, cifar, { batchSize: 8 });
      assert.equal(
        derivedSettings(model, optimizer, a, b, 1).trainData,
        "uint8 [1, 28, 28], 10 classes",
      );
      assert.equal(derivedSettings(model, optimizer, a, b, 1).valData, "uint8 [784], 10 classes");
      const plain = derivedSettings(model, optimizer, c, c, 1);
      assert.ok(!("trainData" in plain) && !("valData" in plain), "CIFAR-10 records no new key");

      await fit(model, {
        train: a,
        epochs: 1,
        loss,
        optimizer,
        checkpointDir: dir,
        progress: false,
      });
      // The model takes either shape (Flatten), so only the recorded shape can refuse it.
      await assert.rejects(
        () =>
          fit(model, {
            train: b,
            epochs: 2,
            loss,
            optimizer,
            checkpointDir: dir,
            resume: true,
            progress: false,
          }),
        /trainData was "uint8 \[1, 28, 28\], 10 classes", now "uint8 \[784\], 10 classes"/,
      );
    } finally {
      for (const d of [model, optimizer, loss]) d.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
