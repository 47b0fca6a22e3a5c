/**
 * Bad input is refused loudly where it enters: labels outside [0, classes) at upload, at
 * `Tensor.from` and on the GPU inside the loss; state dicts that would be half-loaded; data of
 * the wrong kind or length for a tensor.
 */

import assert from "node:assert/strict";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { BatchNorm1d } from "../lib/nn/batchnorm.ts";
import { Flatten, LeakyReLU, Linear } from "../lib/nn/layers.ts";
import { CrossEntropyLoss, LabelRangeError, LossStats } from "../lib/nn/loss.ts";
import { Sequential, type StateDict } from "../lib/nn/sequential.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { crossEntropy } from "./reference/nn.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";

// ---- Labels at or above the class count. ----

Deno.test("twin: an out-of-range label adds no loss, no gradient and no correct count", () => {
  const [B, C] = [4, 3];
  const z = randomArray(B * C, 1, -2, 2);
  const good = crossEntropy(z, [0, 1, 2, 1], B, C);
  const bad = crossEntropy(z, [0, 1, 3, 1], B, C);
  assert.equal(good.badLabel, null);
  assert.deepEqual([bad.badRow, bad.badLabel], [2, 3]);
  assert.deepEqual([...bad.grad.subarray(2 * C, 3 * C)], [0, 0, 0]);
  const kept = crossEntropy(z.subarray(0, 2 * C), [0, 1], 2, C).loss * 2 +
    crossEntropy(z.subarray(3 * C), [1], 1, C).loss;
  assertClose([bad.loss * B], [kept], { atol: 1e-12, what: "loss of the good rows" });
});

gpuTest("upload: a label at or above the class count names its index and value", (gpu) => {
  const count = 6;
  const images = new Uint8Array(count * 3072);
  const labels = Uint8Array.of(0, 1, 9, 10, 3, 12);
  assert.throws(
    () => GpuDataset.upload(gpu, { images, labels, count }, { label: "bad" }),
    (e: unknown) =>
      e instanceof RangeError &&
      /Cannot upload dataset "bad": .*10 classes.*index 3 is 10/.test(e.message),
  );
  assert.throws(
    () =>
      GpuDataset.upload(gpu, { images, labels: Uint8Array.of(0, 1, 2, 3, 4, 5), count }, {
        classes: 5,
      }),
    /5 classes.*index 5 is 5/,
  );
  using ok = GpuDataset.upload(gpu, { images, labels: Uint8Array.of(0, 1, 2, 3, 4, 4), count }, {
    classes: 5,
  });
  assert.equal(ok.classes, 5);
  assert.throws(
    () => GpuDataset.upload(gpu, { images, labels, count }, { classes: 0 }),
    /classes must be a positive integer: current value is 0/,
  );
  return Promise.resolve();
});

gpuTest("Tensor.from: labels are checked against a class count when given one", async (gpu) => {
  assert.throws(
    () => Tensor.from(gpu, Uint32Array.of(1, 2, 7), [3], { label: "y", classes: 5 }),
    (e: unknown) =>
      e instanceof RangeError &&
      /Cannot create tensor "y": .*5 classes.*index 2 is 7/.test(e.message),
  );
  assert.throws(
    () => Tensor.from(gpu, new Float32Array(3), [3], { label: "y", classes: 5 }),
    (e: unknown) => e instanceof TypeError && /Uint32Array/.test(e.message),
  );
  using y = Tensor.from(gpu, Uint32Array.of(1, 2, 4), [3], { label: "y", classes: 5 });
  assert.equal(y.label, "y");
  assert.deepEqual([...await y.read()], [1, 2, 4]);
  using plain = Tensor.from(gpu, [4, 0], [2], { dtype: "u32", classes: 5 });
  assert.equal(plain.dtype, "u32");
  assert.deepEqual([...await plain.read()], [4, 0]);
});

gpuTest(
  "CrossEntropyLoss: a label of 10 with 10 classes in batch 1 of 3 is reported on read",
  async (gpu) => {
    const [N, C] = [37, 10];
    const z = [0, 1, 2].map((b) => randomArray(N * C, 20 + b, -3, 3));
    const labels = [0, 1, 2].map((b) => Uint32Array.from({ length: N }, (_, i) => (i * 3 + b) % C));
    labels[1][17] = 10;
    for (const opts of [{}, { weight: Array.from({ length: C }, (_, c) => 0.5 + c / 10) }]) {
      const loss = new CrossEntropyLoss(opts);
      const Z = z.map((zb) => Tensor.from(gpu, zb, [N, C]));
      const Y = labels.map((yb) => Tensor.from(gpu, yb, [N]));
      const enc = new StepEncoder(gpu);
      for (let b = 0; b < 3; b++) loss.forward(enc, Z[b], Y[b]);
      enc.submit();
      const err = await loss.stats.read().then(() => null, (e: unknown) => e);
      assert.ok(err instanceof LabelRangeError, `expected a LabelRangeError: got ${err}`);
      assert.ok(err instanceof RangeError);
      assert.deepEqual([err.batch, err.label, err.classes], [1, 10, 10]);
      assert.match(
        err.message,
        /Cannot compute cross-entropy: batch 1 has label 10, but the logits have 10 classes/,
      );
      // The good batches' losses and correct counts are those of the twin; the bad label's row
      // adds nothing (and is not read out of bounds).
      const want = [0, 1, 2].map((b) => crossEntropy(z[b], labels[b], N, C, opts));
      const acc = await loss.stats.acc.toFloat32();
      assertClose([acc[0], acc[4]], [want[0].loss + want[1].loss + want[2].loss, want[2].loss], {
        rtol: 1e-5,
        what: `${JSON.stringify(opts).slice(0, 20)} loss`,
      });
      assert.deepEqual([acc[1], acc[2], acc[3]], [
        3,
        want[0].correct + want[1].correct + want[2].correct,
        3 * N,
      ]);
      // The bad batch's gradient: zero on the bad row, the twin's elsewhere.
      const enc2 = new StepEncoder(gpu);
      loss.stats.reset(enc2);
      loss.forward(enc2, Z[1], Y[1]);
      enc2.submit();
      const grad = await loss.backward().toFloat32();
      assert.deepEqual([...grad.subarray(17 * C, 18 * C)], new Array(C).fill(0));
      assertClose(grad, want[1].grad, { atol: 1e-7, rtol: 1e-5, what: "grad" });
      await assert.rejects(() => loss.stats.read(), /batch 0 has label 10/);
      // A reset clears the flag.
      const enc3 = new StepEncoder(gpu);
      loss.stats.reset(enc3);
      loss.forward(enc3, Z[0], Y[0]);
      enc3.submit();
      assert.equal((await loss.stats.read()).batches, 1);
      for (const t of [loss, ...Z, ...Y]) t.dispose();
    }
  },
);

gpuTest(
  "CrossEntropyLoss: a huge label is reported exactly, in a separate LossStats",
  async (gpu) => {
    const loss = new CrossEntropyLoss();
    const stats = new LossStats(gpu, "huge");
    const Z = Tensor.from(gpu, randomArray(12, 3), [4, 3]);
    const Y = Tensor.from(gpu, Uint32Array.of(0, 0xffffffff, 3, 2), [4]);
    const enc = new StepEncoder(gpu);
    stats.reset(enc);
    loss.forward(enc, Z, Y, stats);
    enc.submit();
    await assert.rejects(
      () => stats.read(),
      (e: unknown) =>
        e instanceof LabelRangeError && e.batch === 0 && e.label === 0xffffffff && e.classes === 3,
    );
    for (const t of [loss, stats, Z, Y]) t.dispose();
  },
);

// ---- loadStateDict writes nothing unless every entry is good. ----

function bnModel() {
  return new Sequential(
    new Flatten(),
    new Linear(6, 5),
    new LeakyReLU(),
    new BatchNorm1d(5),
    new Linear(5, 3),
  );
}

gpuTest(
  "loadStateDict: one bad entry late in the dict leaves every weight as it was",
  async (gpu) => {
    manualSeed(0);
    const model = bnModel().to(gpu);
    const before = await model.stateDict();
    const fresh = (name: string) => {
      const t = before[name];
      const data = t.dtype === "F32"
        ? Float32Array.from(t.data as Float32Array, (v) => v + 1)
        : BigInt64Array.of(4n);
      return { dtype: t.dtype, shape: [...t.shape], data };
    };
    const good: StateDict = Object.fromEntries(Object.keys(before).map((n) => [n, fresh(n)]));
    const cases: [string, StateDict, RegExp][] = [
      ["a short last bias", {
        ...good,
        "4.bias": { dtype: "F32", shape: [3], data: new Float32Array(2) },
      }, /"4.bias" has 2 values, expected 3/],
      ["a Float64Array weight", {
        ...good,
        "4.weight": { dtype: "F32", shape: [3, 5], data: new Float64Array(15) as never },
      }, /"4.weight" data must be a Float32Array for dtype F32: current value is a Float64Array/],
      ["a negative running_var", {
        ...good,
        "3.running_var": { dtype: "F32", shape: [5], data: Float32Array.of(1, 1, -1, 1, 1) },
      }, /"3.running_var" must be >= 0: current value at index 2 is -1/],
      ["a negative num_batches_tracked", {
        ...good,
        "3.num_batches_tracked": { dtype: "I64", shape: [], data: BigInt64Array.of(-2n) },
      }, /"3.num_batches_tracked" must be in \[0, 4294967295\]: current value is -2/],
      ["a Float32Array count", {
        ...good,
        "3.num_batches_tracked": { dtype: "I64", shape: [], data: Float32Array.of(2) },
      }, /"3.num_batches_tracked" data must be a BigInt64Array for dtype I64/],
    ];
    for (const [what, state, message] of cases) {
      assert.throws(() => model.loadStateDict(state), message, what);
      const after = await model.stateDict();
      for (const [name, t] of Object.entries(before)) {
        assert.deepEqual([...after[name].data], [...t.data], `${what}: ${name} was overwritten`);
      }
    }
    model.loadStateDict(good);
    const loaded = await model.stateDict();
    assert.deepEqual([...loaded["4.bias"].data], [...good["4.bias"].data]);
    model.dispose();
  },
);

// ---- Tensor.from and Tensor.write take the typed array of their dtype. ----

gpuTest("Tensor.from: a string, a Float64Array or a wrong length is refused", async (gpu) => {
  assert.throws(
    () => Tensor.from(gpu, "abc" as never, [3], "x"),
    (e: unknown) =>
      e instanceof TypeError &&
      /Cannot create tensor "x": data must be .*: current value is a string/.test(e.message),
  );
  assert.throws(
    () => Tensor.from(gpu, new Float64Array(3) as never, [3], "x"),
    (e: unknown) =>
      e instanceof TypeError &&
      /Cannot create tensor "x": data must be .*current value is a Float64Array of length 3/
        .test(e.message),
  );
  assert.throws(
    () => Tensor.from(gpu, new Float64Array(3) as never, [3], { label: "x", dtype: "f32" }),
    {
      name: "TypeError",
      message:
        'Cannot create tensor "x": data must be a Float32Array for dtype f32: current value is a Float64Array of length 3',
    },
  );
  assert.throws(
    () => Tensor.from(gpu, new Uint8Array(3), [3], { label: "x", dtype: "f32" }),
    /data must be a Float32Array for dtype f32: current value is a Uint8Array of length 3/,
  );
  assert.throws(
    () => Tensor.from(gpu, new Int32Array(3) as never, [3], "x"),
    (e: unknown) => e instanceof TypeError && /Int32Array of length 3/.test(e.message),
  );
  assert.throws(
    () => Tensor.from(gpu, [1, NaN, 3], [3], "x"),
    (e: unknown) => e instanceof TypeError && /finite numbers.*index 1 is NaN/.test(e.message),
  );
  assert.throws(
    () => Tensor.from(gpu, [1, 2.5], [2], { dtype: "u32" }),
    /index 1 is 2.5/,
  );
  assert.throws(
    () => Tensor.from(gpu, new Float32Array(5), [2, 2], "x"),
    /Cannot create tensor "x": 5 values do not fill shape \[2, 2\] \(4 elements\)/,
  );
  using t = Tensor.from(gpu, [1, 2, 3], [3], "x");
  assert.equal(t.dtype, "f32");
  assert.deepEqual([...await t.toFloat32()], [1, 2, 3]);
  assert.throws(
    () => t.write(new Float64Array(3) as never),
    (e: unknown) =>
      e instanceof TypeError &&
      /Cannot write into "x": data must be a Float32Array for dtype f32: current value is a Float64Array of length 3/
        .test(e.message),
  );
  assert.throws(() => t.write(new Uint32Array(3)), /Float32Array for dtype f32.*Uint32Array/);
  assert.throws(() => t.write(new Float32Array(2)), /Cannot write 2 values into "x" \[3\]/);
  assert.deepEqual([...await t.toFloat32()], [1, 2, 3]);
});
