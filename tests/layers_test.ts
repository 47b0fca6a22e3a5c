import assert from "node:assert/strict";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import { Tensor } from "../lib/tensor.ts";
import { BatchNorm1d } from "../lib/nn/batchnorm.ts";
import { Dropout } from "../lib/nn/dropout.ts";
import { Flatten, LeakyReLU, Linear, ReLU } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { Sequential, type StateDict } from "../lib/nn/sequential.ts";
import { manualSeed } from "../lib/nn/random.ts";
import {
  batchnormBackward,
  batchnormEval,
  batchnormTrain,
  crossEntropy,
  finiteDiff,
  leakyBackward,
  leakyForward,
  linearBackward,
  linearForward,
} from "./reference/nn.ts";
import { dropoutMask } from "./reference/dropout_mask.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";

// ---- The twins themselves, vouched for by finite differences (CPU only). ----

Deno.test("twin: linear backward matches finite differences", () => {
  const [B, inF, outF] = [3, 4, 5];
  const x = Float64Array.from(randomArray(B * inF, 1));
  const w = Float64Array.from(randomArray(outF * inF, 2));
  const b = Float64Array.from(randomArray(outF, 3));
  const dy = Float64Array.from(randomArray(B * outF, 4));
  const dot = (y: Float64Array) => y.reduce((s, v, i) => s + v * dy[i], 0);
  const { dx, dw, db } = linearBackward(x, w, dy, B, inF, outF);
  const idx = [0, 3, 7, 11];
  assertClose(
    finiteDiff((xx) => dot(linearForward(xx, w, b, B, inF, outF)), x, idx),
    idx.map((i) => dx[i]),
    { atol: 1e-7 },
  );
  assertClose(
    finiteDiff((ww) => dot(linearForward(x, ww, b, B, inF, outF)), w, idx),
    idx.map((i) => dw[i]),
    { atol: 1e-7 },
  );
  assertClose(finiteDiff((bb) => dot(linearForward(x, w, bb, B, inF, outF)), b, [0, 4]), [
    db[0],
    db[4],
  ], { atol: 1e-7 });
});

Deno.test("twin: batchnorm backward matches finite differences", () => {
  const [B, F] = [6, 3];
  const x = Float64Array.from(randomArray(B * F, 5, -2, 2));
  const gamma = Float64Array.from(randomArray(F, 6, 0.5, 1.5));
  const beta = Float64Array.from(randomArray(F, 7));
  const dy = Float64Array.from(randomArray(B * F, 8));
  const dot = (y: Float64Array) => y.reduce((s, v, i) => s + v * dy[i], 0);
  const { dx, dgamma, dbeta } = batchnormBackward(x, gamma, dy, B, F, 1e-5);
  const idx = [0, 5, 10, 17];
  assertClose(
    finiteDiff((xx) => dot(batchnormTrain(xx, gamma, beta, B, F, 1e-5).y), x, idx),
    idx.map((i) => dx[i]),
    { atol: 1e-6 },
  );
  assertClose(finiteDiff((g) => dot(batchnormTrain(x, g, beta, B, F, 1e-5).y), gamma, [0, 2]), [
    dgamma[0],
    dgamma[2],
  ], { atol: 1e-6 });
  assertClose(finiteDiff((bb) => dot(batchnormTrain(x, gamma, bb, B, F, 1e-5).y), beta, [1]), [
    dbeta[1],
  ], { atol: 1e-6 });
});

Deno.test("twin: cross-entropy gradient (weights, label smoothing) matches finite differences", () => {
  const [B, C] = [4, 5];
  const z = Float64Array.from(randomArray(B * C, 9, -3, 3));
  const labels = [1, 0, 4, 4];
  const opts = { weight: [0.5, 1, 2, 1, 0.25], smoothing: 0.1 };
  const { grad } = crossEntropy(z, labels, B, C, opts);
  const idx = [0, 6, 13, 19];
  assertClose(
    finiteDiff((zz) => crossEntropy(zz, labels, B, C, opts).loss, z, idx),
    idx.map((i) => grad[i]),
    { atol: 1e-7 },
  );
});

Deno.test("twin: leaky relu backward matches finite differences away from 0", () => {
  const x = Float64Array.from([-2, -0.5, 0.3, 1.7]);
  const dy = Float64Array.from([1, 2, 3, 4]);
  const g = leakyBackward(x, dy, 0.1);
  const fd = finiteDiff((xx) => leakyForward(xx, 0.1).reduce((s, v, i) => s + v * dy[i], 0), x, [
    0,
    1,
    2,
    3,
  ]);
  assertClose(fd, g, { atol: 1e-7 });
});

// ---- GPU modules against the twins. ----

const B = 37;
const IN = 53;
const HID = 29;
const OUT = 7;

/** Loads random weights (PyTorch layout) into `model`; returns them. */
function randomState(model: Sequential, seed: number): StateDict {
  const state: StateDict = {};
  let k = seed;
  for (const [name, e] of Object.entries(model.expectedState())) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (e.dtype === "I64") {
      state[name] = { dtype: "I64", shape: e.shape, data: BigInt64Array.of(3n) };
    } else if (name.endsWith("running_var")) {
      state[name] = { dtype: "F32", shape: e.shape, data: randomArray(n, k++, 0.5, 2) };
    } else state[name] = { dtype: "F32", shape: e.shape, data: randomArray(n, k++, -0.5, 0.5) };
  }
  model.loadStateDict(state);
  return state;
}

async function runStep(
  gpu: Gpu,
  model: Sequential,
  x: Float32Array,
  dy: Float32Array,
  inShape: number[],
) {
  const X = Tensor.from(gpu, x, [B, ...inShape], "x");
  const DY = Tensor.from(gpu, dy, [B, OUT], "dy");
  const enc = new StepEncoder(gpu);
  model.parameters().zeroGrad(enc);
  const y = model.forward(enc, X);
  model.backward(enc, DY);
  enc.submit();
  const out = await y.toFloat32();
  X.dispose();
  DY.dispose();
  return { y: out, grads: await model.gradients() };
}

gpuTest(
  "Linear → LeakyReLU (fused) → Linear: outputs and every gradient match the f64 twin",
  async (gpu) => {
    const model = new Sequential(
      new Flatten(),
      new Linear(IN, HID),
      new LeakyReLU(0.1),
      new Linear(HID, OUT),
    ).to(gpu);
    const s = randomState(model, 10);
    const x = randomArray(B * IN, 1);
    const dy = randomArray(B * OUT, 2);
    const { y, grads } = await runStep(gpu, model, x, dy, [IN]);

    const z1 = linearForward(
      x,
      s["1.weight"].data as Float32Array,
      s["1.bias"].data as Float32Array,
      B,
      IN,
      HID,
    );
    const h1 = leakyForward(z1, 0.1);
    const y2 = linearForward(
      h1,
      s["3.weight"].data as Float32Array,
      s["3.bias"].data as Float32Array,
      B,
      HID,
      OUT,
    );
    assertClose(y, y2, { atol: 1e-5, what: "output" });
    const g2 = linearBackward(h1, s["3.weight"].data as Float32Array, dy, B, HID, OUT);
    const dz1 = leakyBackward(z1, g2.dx, 0.1);
    const g1 = linearBackward(x, s["1.weight"].data as Float32Array, dz1, B, IN, HID);
    assertClose(grads["3.weight"].data as Float32Array, g2.dw, {
      atol: 1e-5,
      what: "3.weight.grad",
    });
    assertClose(grads["3.bias"].data as Float32Array, g2.db, { atol: 1e-5, what: "3.bias.grad" });
    assertClose(grads["1.weight"].data as Float32Array, g1.dw, {
      atol: 1e-5,
      what: "1.weight.grad",
    });
    assertClose(grads["1.bias"].data as Float32Array, g1.db, { atol: 1e-5, what: "1.bias.grad" });
    model.dispose();
  },
);

gpuTest(
  "BatchNorm1d and a standalone LeakyReLU: train forward, backward and running stats match the twin",
  async (gpu) => {
    const model = new Sequential(
      new Linear(IN, HID),
      new BatchNorm1d(HID),
      new LeakyReLU(0.2),
      new Linear(HID, OUT),
    ).to(gpu);
    const s = randomState(model, 20);
    const x = randomArray(B * IN, 3);
    const dy = randomArray(B * OUT, 4);
    const { y, grads } = await runStep(gpu, model, x, dy, [IN]);
    const f = (k: string) => s[k].data as Float32Array;

    const z1 = linearForward(x, f("0.weight"), f("0.bias"), B, IN, HID);
    const bn = batchnormTrain(z1, f("1.weight"), f("1.bias"), B, HID, 1e-5);
    const h = leakyForward(bn.y, 0.2);
    assertClose(y, linearForward(h, f("3.weight"), f("3.bias"), B, HID, OUT), {
      atol: 1e-5,
      what: "output",
    });
    const g3 = linearBackward(h, f("3.weight"), dy, B, HID, OUT);
    const dbn = leakyBackward(bn.y, g3.dx, 0.2);
    const gb = batchnormBackward(z1, f("1.weight"), dbn, B, HID, 1e-5);
    const g0 = linearBackward(x, f("0.weight"), gb.dx, B, IN, HID);
    assertClose(grads["1.weight"].data as Float32Array, gb.dgamma, {
      atol: 1e-4,
      what: "bn weight grad",
    });
    assertClose(grads["1.bias"].data as Float32Array, gb.dbeta, {
      atol: 1e-4,
      what: "bn bias grad",
    });
    assertClose(grads["0.weight"].data as Float32Array, g0.dw, {
      atol: 1e-4,
      rtol: 1e-4,
      what: "0.weight.grad",
    });

    const after = await model.stateDict();
    const rm = f("1.running_mean").map((v, i) => 0.9 * v + 0.1 * bn.mean[i]);
    const rv = f("1.running_var").map((v, i) => 0.9 * v + 0.1 * bn.variance[i] * B / (B - 1));
    assertClose(after["1.running_mean"].data as Float32Array, rm, {
      atol: 1e-6,
      what: "running_mean",
    });
    assertClose(after["1.running_var"].data as Float32Array, rv, {
      atol: 1e-5,
      what: "running_var (unbiased)",
    });
    assert.equal((after["1.num_batches_tracked"].data as BigInt64Array)[0], 4n);

    // Eval mode uses the running estimates.
    model.eval();
    const X = Tensor.from(gpu, x, [B, IN]);
    const enc = new StepEncoder(gpu);
    const ye = model.forward(enc, X);
    enc.submit();
    const zEval = batchnormEval(z1, f("1.weight"), f("1.bias"), rm, rv, B, HID, 1e-5);
    const want = linearForward(leakyForward(zEval, 0.2), f("3.weight"), f("3.bias"), B, HID, OUT);
    assertClose(await ye.toFloat32(), want, { atol: 1e-5, what: "eval output" });
    X.dispose();
    model.dispose();
  },
);

gpuTest(
  "Dropout: masks equal the CPU twin bit for bit, scaled by 1/(1-p); eval is the identity",
  async (gpu) => {
    manualSeed(7);
    const p = 0.3;
    const model = new Sequential(
      new Linear(IN, HID),
      new ReLU(),
      new Dropout(p),
      new Linear(HID, OUT),
    ).to(gpu);
    const s = randomState(model, 30);
    const f = (k: string) => s[k].data as Float32Array;
    const x = randomArray(B * IN, 5);
    const dy = randomArray(B * OUT, 6);
    for (let step = 0; step < 2; step++) {
      const { y, grads } = await runStep(gpu, model, x, dy, [IN]);
      const mask = dropoutMask(7, step, 2, B, HID, p);
      const scale = Math.fround(1 / (1 - p));
      const h = leakyForward(linearForward(x, f("0.weight"), f("0.bias"), B, IN, HID), 0).map((
        v,
        i,
      ) => v * mask[i] * scale);
      assertClose(y, linearForward(h, f("3.weight"), f("3.bias"), B, HID, OUT), {
        atol: 1e-5,
        what: `step ${step} output`,
      });
      const g3 = linearBackward(h, f("3.weight"), dy, B, HID, OUT);
      assertClose(grads["3.weight"].data as Float32Array, g3.dw, {
        atol: 1e-5,
        what: `step ${step} 3.weight.grad`,
      });
    }
    assert.equal(await model.trainingSteps(), 2);
    model.eval();
    const X = Tensor.from(gpu, x, [B, IN]);
    const enc = new StepEncoder(gpu);
    const ye = model.forward(enc, X);
    enc.submit();
    const h = leakyForward(linearForward(x, f("0.weight"), f("0.bias"), B, IN, HID), 0);
    assertClose(await ye.toFloat32(), linearForward(h, f("3.weight"), f("3.bias"), B, HID, OUT), {
      atol: 1e-5,
      what: "eval",
    });
    assert.equal(await model.trainingSteps(), 2, "eval forwards do not advance the dropout step");
    X.dispose();
    model.dispose();
  },
);

gpuTest(
  "CrossEntropyLoss: loss, gradient and accuracy match the twin (plain, weighted, smoothed)",
  async (gpu) => {
    const [N, C] = [70, 10];
    const z = randomArray(N * C, 11, -4, 4);
    const labels = Uint32Array.from({ length: N }, (_, i) => (i * 7) % C);
    const weight = Array.from({ length: C }, (_, c) => 0.5 + c / 10);
    for (const opts of [{}, { weight }, { labelSmoothing: 0.2 }, { weight, labelSmoothing: 0.1 }]) {
      const loss = new CrossEntropyLoss(opts);
      const Z = Tensor.from(gpu, z, [N, C]);
      const Y = Tensor.from(gpu, labels, [N]);
      const enc = new StepEncoder(gpu);
      loss.forward(enc, Z, Y);
      loss.forward(enc, Z, Y);
      enc.submit();
      const want = crossEntropy(z, labels, N, C, {
        weight: opts.weight,
        smoothing: opts.labelSmoothing ?? 0,
      });
      const got = await loss.stats.read();
      const what = JSON.stringify(opts).slice(0, 40);
      assertClose([got.meanLoss, got.lastLoss], [want.loss, want.loss], {
        rtol: 1e-5,
        what: `${what} loss`,
      });
      assert.equal(got.batches, 2);
      assert.equal(got.samples, 2 * N);
      assertClose([got.accuracy], [want.correct / N], { atol: 1e-7, what: "accuracy" });
      assert.equal(got.firstNonFiniteBatch, null);
      assertClose(await loss.backward().toFloat32(), want.grad, {
        atol: 1e-7,
        rtol: 1e-5,
        what: `${what} grad`,
      });
      for (const t of [loss, Z, Y]) t.dispose();
    }
  },
);

gpuTest(
  "CrossEntropyLoss: a NaN in the logits is reported with the batch where it appeared",
  async (gpu) => {
    const loss = new CrossEntropyLoss();
    const good = Tensor.from(gpu, randomArray(40, 1), [4, 10]);
    const badData = randomArray(40, 2);
    badData[13] = NaN;
    const bad = Tensor.from(gpu, badData, [4, 10]);
    const y = Tensor.from(gpu, new Uint32Array([1, 2, 3, 4]), [4]);
    const enc = new StepEncoder(gpu);
    loss.forward(enc, good, y);
    loss.forward(enc, good, y);
    loss.forward(enc, bad, y);
    loss.forward(enc, good, y);
    enc.submit();
    assert.equal((await loss.stats.read()).firstNonFiniteBatch, 2);
    const enc2 = new StepEncoder(gpu);
    loss.stats.reset(enc2);
    loss.forward(enc2, good, y);
    enc2.submit();
    assert.equal((await loss.stats.read()).firstNonFiniteBatch, null, "reset clears it");
    for (const t of [loss, good, bad, y]) t.dispose();
  },
);

gpuTest(
  "bad input: each error names the module, the expected and the actual value",
  async (gpu) => {
    assert.throws(
      () => new Linear(0, 3),
      /Cannot create Linear: inFeatures must be > 0: current value is 0/,
    );
    assert.throws(() => new Dropout(1), /Dropout: p must be in \[0, 1\): current value is 1/);
    assert.throws(() => new Dropout(-0.1), /current value is -0.1/);
    assert.throws(() => new BatchNorm1d(4, { eps: 0 }), /eps must be > 0/);
    assert.throws(
      () => new CrossEntropyLoss({ labelSmoothing: 2 }),
      /labelSmoothing must be in \[0, 1\]: current value is 2/,
    );
    const model = new Sequential(new Linear(8, 4), new BatchNorm1d(4)).to(gpu);
    const enc = new StepEncoder(gpu);
    const wrong = Tensor.empty(gpu, [5, 9]);
    assert.throws(
      () => model.forward(enc, wrong),
      /Linear\(8, 4\): expected input \[batch, 8\] f32: current input "tensor" is \[5, 9\]/,
    );
    const one = Tensor.empty(gpu, [1, 8]);
    assert.throws(
      () => model.forward(enc, one),
      /BatchNorm1d\(4\) at index 1 in train mode: expected more than 1 value per channel: current batch size is 1/,
    );
    enc.submit();
    const state = await model.stateDict();
    const bad: StateDict = {
      ...state,
      "0.weight": { dtype: "F32", shape: [8, 4], data: new Float32Array(32) },
      extra: state["0.bias"],
    };
    delete bad["1.running_var"];
    assert.throws(
      () => model.loadStateDict(bad),
      /"0.weight" has shape \[8, 4\], expected \[4, 8\].*missing "1.running_var".*unexpected "extra"/,
    );
    for (const t of [model, wrong, one]) t.dispose();
  },
);

gpuTest("state dict round trip keeps PyTorch names and layouts", async (gpu) => {
  manualSeed(0);
  const model = new Sequential(
    new Flatten(),
    new Linear(12, 5),
    new LeakyReLU(),
    new BatchNorm1d(5),
    new Linear(5, 3),
  ).to(gpu);
  const names = Object.keys(await model.stateDict()).sort();
  assert.deepEqual(names, [
    "1.bias",
    "1.weight",
    "3.bias",
    "3.num_batches_tracked",
    "3.running_mean",
    "3.running_var",
    "3.weight",
    "4.bias",
    "4.weight",
  ]);
  const s = randomState(model, 40);
  const back = await model.stateDict();
  for (const [k, v] of Object.entries(s)) assert.deepEqual([...back[k].data], [...v.data], k);
  // Default initialisation: U(-1/sqrt(in), 1/sqrt(in)).
  manualSeed(0);
  const fresh = new Sequential(new Linear(400, 30)).to(gpu);
  const w = (await fresh.stateDict())["0.weight"].data as Float32Array;
  const bound = 1 / Math.sqrt(400);
  assert.ok(w.every((v) => Math.abs(v) <= bound), "within the bound");
  assert.ok(Math.max(...w) > 0.9 * bound && Math.min(...w) < -0.9 * bound, "fills the range");
  model.dispose();
  fresh.dispose();
});

gpuTest(
  "BatchNorm1d without affine and without running stats: batch statistics in both modes",
  async (gpu) => {
    const F = 6;
    const model = new Sequential(
      new Linear(IN, F),
      new BatchNorm1d(F, { affine: false, trackRunningStats: false }),
      new Linear(F, OUT),
    ).to(gpu);
    assert.deepEqual(Object.keys(model.expectedState()).sort(), [
      "0.bias",
      "0.weight",
      "2.bias",
      "2.weight",
    ]);
    const s = randomState(model, 50);
    const f = (k: string) => s[k].data as Float32Array;
    const x = randomArray(B * IN, 7);
    const dy = randomArray(B * OUT, 8);
    const { y, grads } = await runStep(gpu, model, x, dy, [IN]);
    const z = linearForward(x, f("0.weight"), f("0.bias"), B, IN, F);
    const ones = new Float64Array(F).fill(1);
    const bn = batchnormTrain(z, ones, new Float64Array(F), B, F, 1e-5);
    const want = linearForward(bn.y, f("2.weight"), f("2.bias"), B, F, OUT);
    assertClose(y, want, { atol: 1e-5, what: "train output" });
    const g2 = linearBackward(bn.y, f("2.weight"), dy, B, F, OUT);
    const gb = batchnormBackward(z, ones, g2.dx, B, F, 1e-5);
    const g0 = linearBackward(x, f("0.weight"), gb.dx, B, IN, F);
    assertClose(grads["0.weight"].data as Float32Array, g0.dw, {
      atol: 1e-4,
      rtol: 1e-4,
      what: "0.weight.grad",
    });
    // Eval mode without running statistics still normalises with the batch's own statistics.
    model.eval();
    const X = Tensor.from(gpu, x, [B, IN]);
    const enc = new StepEncoder(gpu);
    const ye = model.forward(enc, X);
    enc.submit();
    assertClose(await ye.toFloat32(), want, { atol: 1e-5, what: "eval output" });
    X.dispose();
    model.dispose();
  },
);

gpuTest(
  "Linear without bias: no bias parameter, forward and weight gradient match the twin",
  async (gpu) => {
    const model = new Sequential(new Linear(IN, OUT, { bias: false })).to(gpu);
    assert.deepEqual(Object.keys(model.expectedState()), ["0.weight"]);
    const s = randomState(model, 60);
    const x = randomArray(B * IN, 9);
    const dy = randomArray(B * OUT, 10);
    const { y, grads } = await runStep(gpu, model, x, dy, [IN]);
    const w = s["0.weight"].data as Float32Array;
    assertClose(y, linearForward(x, w, null, B, IN, OUT), { atol: 1e-5, what: "output" });
    assertClose(grads["0.weight"].data as Float32Array, linearBackward(x, w, dy, B, IN, OUT).dw, {
      atol: 1e-5,
      what: "weight grad",
    });
    model.dispose();
  },
);
