/**
 * The CNN layers (Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d, and Flatten /
 * Dropout on NCHW) against their float64 twins (tests/reference/cnn.ts), the twins against
 * finite differences. Shapes are small and do not divide the 32×32 GEMM tiles. PyTorch's own
 * answers are checked in tests/cnn_torch_test.ts.
 */

import assert from "node:assert/strict";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { Conv2d, type Conv2dOptions } from "../lib/nn/conv.ts";
import type { Module } from "../lib/nn/module.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { AdaptiveAvgPool2d, AvgPool2d, MaxPool2d } from "../lib/nn/pool.ts";
import { BatchNorm2d } from "../lib/nn/batchnorm2d.ts";
import { Dropout } from "../lib/nn/dropout.ts";
import { Flatten, LeakyReLU, ReLU } from "../lib/nn/layers.ts";
import {
  avgPoolBackward,
  avgPoolForward,
  batchnorm2dBackward,
  batchnorm2dEval,
  batchnorm2dTrain,
  conv2dBackward,
  conv2dForward,
  type ConvGeometry,
  maxPoolBackward,
  maxPoolForward,
  type PoolGeometry,
  type Shape4,
} from "./reference/cnn.ts";
import { dropoutMask } from "./reference/dropout_mask.ts";
import { finiteDiff } from "./reference/nn.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";
import { runLayer } from "./fixtures/cnn.ts";

const dotWith = (dy: ArrayLike<number>) => (y: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * dy[i];
  return s;
};

function geometry(conv: Conv2d): ConvGeometry {
  return {
    outChannels: conv.outChannels,
    kernel: conv.kernelSize,
    stride: conv.stride,
    pad: conv.pad,
    dilation: conv.dilation,
    groups: conv.groups,
  };
}

// ---- The twins, vouched for by finite differences (CPU only). ----

Deno.test("twin: conv2d backward (stride, padding, dilation, groups) matches finite differences", () => {
  const shape: Shape4 = [2, 4, 6, 5];
  const g: ConvGeometry = {
    outChannels: 6,
    kernel: [3, 2],
    stride: [2, 1],
    pad: [1, 2, 0, 1],
    dilation: [1, 2],
    groups: 2,
  };
  const x = Float64Array.from(randomArray(2 * 4 * 6 * 5, 1));
  const w = Float64Array.from(randomArray(6 * 2 * 3 * 2, 2));
  const b = Float64Array.from(randomArray(6, 3));
  const yLen = conv2dForward(x, shape, w, b, g).length;
  const dy = Float64Array.from(randomArray(yLen, 4));
  const dot = dotWith(dy);
  const { dx, dw, db } = conv2dBackward(x, shape, w, dy, g);
  const ix = [0, 7, 33, 118, 239];
  assertClose(
    finiteDiff((v) => dot(conv2dForward(v, shape, w, b, g)), x, ix),
    ix.map((i) => dx[i]),
    {
      atol: 1e-7,
      what: "dx",
    },
  );
  const iw = [0, 5, 17, 40, 71];
  assertClose(
    finiteDiff((v) => dot(conv2dForward(x, shape, v, b, g)), w, iw),
    iw.map((i) => dw[i]),
    {
      atol: 1e-7,
      what: "dw",
    },
  );
  assertClose(finiteDiff((v) => dot(conv2dForward(x, shape, w, v, g)), b, [0, 5]), [db[0], db[5]], {
    atol: 1e-7,
    what: "db",
  });
});

// ---- Conv2d on the GPU against the twin. ----

const CONV_CASES: {
  name: string;
  shape: Shape4;
  out: number;
  k: number | [number, number];
  o: Conv2dOptions;
}[] = [
  { name: "plain 3x3", shape: [3, 5, 9, 7], out: 37, k: 3, o: {} },
  {
    name: "stride 2, padding 1",
    shape: [2, 3, 11, 10],
    out: 7,
    k: 3,
    o: { stride: 2, padding: 1 },
  },
  {
    name: "dilation 2, padding [2, 1]",
    shape: [2, 3, 9, 8],
    out: 5,
    k: 3,
    o: { dilation: 2, padding: [2, 1] },
  },
  {
    name: "groups 2, no bias",
    shape: [2, 6, 7, 7],
    out: 34,
    k: [3, 2],
    o: { groups: 2, bias: false },
  },
  { name: "same, even kernel", shape: [2, 2, 6, 5], out: 3, k: [4, 2], o: { padding: "same" } },
  {
    name: "many channels (K over several tiles)",
    shape: [2, 40, 5, 4],
    out: 33,
    k: 3,
    o: { padding: 1 },
  },
  { name: "1x1", shape: [3, 16, 5, 7], out: 20, k: 1, o: {} },
  { name: "1x1 stride 2", shape: [2, 12, 9, 8], out: 24, k: 1, o: { stride: 2 } },
  {
    name: "stride 2, padding 1, 20 channels",
    shape: [3, 20, 9, 10],
    out: 18,
    k: 3,
    o: { stride: 2, padding: 1 },
  },
  {
    name: "stride [2, 3], dilation [2, 1], padding [1, 2]",
    shape: [2, 8, 11, 13],
    out: 9,
    k: 3,
    o: { stride: [2, 3], dilation: [2, 1], padding: [1, 2] },
  },
  {
    name: "groups 4 of 4 channels, padding 1",
    shape: [2, 16, 6, 7],
    out: 40,
    k: 3,
    o: { groups: 4, padding: 1 },
  },
  { name: "depthwise", shape: [2, 6, 7, 6], out: 12, k: 3, o: { groups: 6, padding: 1 } },
  // Widths that are multiples of 4: the GEMM path's vec4 packs and vec4 stores of y and dX.
  { name: "CIFAR-like 8x8, padding 1", shape: [3, 8, 8, 8], out: 12, k: 3, o: { padding: 1 } },
  {
    name: "CIFAR-like stride 2 (y in vec4, dX per class)",
    shape: [2, 8, 8, 12],
    out: 20,
    k: 3,
    o: { stride: 2, padding: 1 },
  },
  { name: "1x1 on 4x4", shape: [2, 4, 4, 4], out: 16, k: 1, o: { bias: false } },
  // Wide enough that the GEMM path's textures hold several images per row and several rows
  // of images (x: 256 channels × 32 padded columns; dy: 256 channels × 200 columns).
  { name: "x in two texture rows", shape: [10, 256, 2, 30], out: 4, k: 3, o: { padding: 1 } },
  { name: "dy in ten texture rows", shape: [10, 8, 1, 200], out: 256, k: 1, o: {} },
];

/** Each case runs on both paths: the implicit GEMMs and the direct loops. */
const ALGORITHMS = ["gemm", "direct"] as const;

for (const c of CONV_CASES) {
  for (const algorithm of ALGORITHMS) {
    gpuTest(
      `Conv2d ${c.name} (${algorithm}): output, dX, dW and db match the f64 twin`,
      async (gpu) => {
        manualSeed(5);
        const conv = new Conv2d(c.shape[1], c.out, c.k, { ...c.o, algorithm });
        const [w, b] = conv.parameterSpecs().map((s) => s.init);
        const x = randomArray(c.shape.reduce((a, v) => a * v), 11);
        const g = geometry(conv);
        const want = conv2dForward(x, c.shape, w, b ?? null, g);
        const dy = randomArray(want.length, 12);
        const got = await runLayer(gpu, conv, x, c.shape, dy, { steps: 2 });
        assertClose(got.y, want, { atol: 1e-5, rtol: 1e-5, what: "y" });
        const back = conv2dBackward(x, c.shape, w, dy, g);
        assertClose(got.dx, back.dx, { atol: 1e-5, rtol: 1e-5, what: "dX" });
        // Two steps with zeroGrad before each: the gradient is the last step's, added once.
        assertClose(got.grads["0.layer.weight"].data as Float32Array, back.dw, {
          atol: 1e-4,
          rtol: 1e-5,
          what: "dW",
        });
        if (b) {
          assertClose(got.grads["0.layer.bias"].data as Float32Array, back.db, {
            atol: 1e-4,
            rtol: 1e-5,
            what: "db",
          });
        }
        got.model.dispose();
      },
    );
  }
}

for (const algorithm of ALGORITHMS) {
  gpuTest(
    `Conv2d (${algorithm}): gradients accumulate (+=) over backward passes without zeroGrad`,
    async (gpu) => {
      manualSeed(6);
      const shape: Shape4 = [2, 3, 6, 6];
      const conv = new Conv2d(3, 4, 3, { padding: 1, algorithm });
      const [w] = conv.parameterSpecs().map((s) => s.init);
      const model = new Sequential(conv).to(gpu);
      const x = randomArray(2 * 3 * 36, 21);
      const dy = randomArray(2 * 4 * 36, 22);
      const X = Tensor.from(gpu, x, shape);
      const DY = Tensor.from(gpu, dy, [2, 4, 6, 6]);
      const enc = new StepEncoder(gpu);
      model.parameters().zeroGrad(enc);
      for (let i = 0; i < 3; i++) {
        model.forward(enc, X);
        model.backward(enc, DY);
      }
      enc.submit();
      const grads = await model.gradients();
      const back = conv2dBackward(x, shape, w, dy, geometry(conv));
      assertClose(grads["0.weight"].data as Float32Array, back.dw.map((v) => 3 * v), {
        atol: 1e-4,
        rtol: 1e-5,
        what: "3 × dW",
      });
      assertClose(grads["0.bias"].data as Float32Array, back.db.map((v) => 3 * v), {
        atol: 1e-4,
        what: "3 × db",
      });
      X.dispose();
      DY.dispose();
      model.dispose();
    },
  );
}

Deno.test("Conv2d: init is U(±1/sqrt(fan_in)), weight [out, in/g, kh, kw]; bad arguments are refused", () => {
  manualSeed(0);
  const conv = new Conv2d(6, 9, [3, 2], { groups: 3 });
  const [w, b] = conv.parameterSpecs();
  assert.deepEqual(w.shape, [9, 2, 3, 2]);
  assert.deepEqual(b.shape, [9]);
  const bound = 1 / Math.sqrt(2 * 3 * 2);
  for (const v of [...w.init, ...b.init]) assert.ok(Math.abs(v) <= bound, `${v} beyond ${bound}`);
  assert.ok(Math.max(...w.init.map(Math.abs)) > 0.9 * bound, "the whole range is drawn");
  assert.throws(() => new Conv2d(3, 8, 3, { groups: 2 }), /groups must divide inChannels \(3\)/);
  assert.throws(() => new Conv2d(3, 8, 0), /kernelSize must be > 0.*current value is 0/);
  assert.throws(() => new Conv2d(3, 8, 3, { padding: -1 }), /padding must be ≥ 0/);
  assert.throws(() => new Conv2d(3, 8, 3, { padding: "same", stride: 2 }), /"same" needs stride 1/);
  assert.throws(
    () => conv.outputShape([5, 8, 8]),
    /expected input \[6, H, W\]: current input is \[5, 8, 8\]/,
  );
  assert.throws(() => conv.outputShape([6, 8]), /current input is \[6, 8\]/);
  assert.throws(
    () => new Conv2d(6, 8, 5, { dilation: 2 }).outputShape([6, 8, 8]),
    /larger than the padded input/,
  );
  assert.deepEqual(new Conv2d(6, 8, 5, { dilation: 2, padding: 1 }).outputShape([6, 8, 8]), [
    8,
    2,
    2,
  ]);
});

gpuTest("Conv2d: an input of the wrong rank is refused with its shape", async (gpu) => {
  const model = new Sequential(new Conv2d(3, 4, 3)).to(gpu);
  const X = Tensor.from(gpu, new Float32Array(2 * 3 * 25), [2, 75]);
  assert.throws(
    () => model.forward(new StepEncoder(gpu), X),
    /expected input \[batch, 3, H, W\] f32.*\[2, 75\]/,
  );
  await gpu.sync();
  X.dispose();
  model.dispose();
});

// ---- Pools. ----

Deno.test("twin: pool backward passes match finite differences (max away from ties)", () => {
  const shape: Shape4 = [2, 3, 7, 6];
  const n = 2 * 3 * 7 * 6;
  // Distinct values, so no finite step changes which element is the maximum.
  const x = Float64Array.from({ length: n }, (_, i) => ((i * 37) % n) / n + 0.001 * i);
  const g: PoolGeometry = { kernel: [3, 2], stride: [2, 1], pad: [1, 1] };
  for (
    const [what, geometry] of [
      ["avg", g],
      ["adaptive", { adaptive: [3, 4] as const }],
    ] as const
  ) {
    const len = avgPoolForward(x, shape, geometry).length;
    const dy = Float64Array.from(randomArray(len, 31));
    const dot = dotWith(dy);
    const dx = avgPoolBackward(dy, shape, geometry);
    const ix = [0, 11, 40, 77, 251];
    assertClose(
      finiteDiff((v) => dot(avgPoolForward(v, shape, geometry)), x, ix),
      ix.map((i) => dx[i]),
      {
        atol: 1e-7,
        what,
      },
    );
  }
  const { y, argmax } = maxPoolForward(x, shape, g);
  const dy = Float64Array.from(randomArray(y.length, 32));
  const dx = maxPoolBackward(argmax, dy, shape, g);
  const ix = Array.from({ length: 40 }, (_, k) => k * 6);
  assertClose(
    finiteDiff((v) => dotWith(dy)(maxPoolForward(v, shape, g).y), x, ix, 1e-7),
    ix.map((i) => dx[i]),
    { atol: 1e-6, what: "max" },
  );
});

const POOL_CASES: {
  name: string;
  make: () => Module;
  shape: Shape4;
  twin: PoolGeometry | { adaptive: [number, number] };
}[] = [
  {
    name: "MaxPool2d(2)",
    make: () => new MaxPool2d(2),
    shape: [3, 4, 9, 8],
    twin: { kernel: [2, 2], stride: [2, 2], pad: [0, 0] },
  },
  {
    name: "MaxPool2d(3, 2, 1) (overlapping)",
    make: () => new MaxPool2d(3, 2, 1),
    shape: [2, 3, 9, 7],
    twin: { kernel: [3, 3], stride: [2, 2], pad: [1, 1] },
  },
  {
    name: "MaxPool2d([3, 2], 1)",
    make: () => new MaxPool2d([3, 2], 1),
    shape: [2, 2, 6, 5],
    twin: { kernel: [3, 2], stride: [1, 1], pad: [0, 0] },
  },
  {
    name: "AvgPool2d(2)",
    make: () => new AvgPool2d(2),
    shape: [3, 4, 9, 8],
    twin: { kernel: [2, 2], stride: [2, 2], pad: [0, 0] },
  },
  {
    name: "AvgPool2d(3, 2, 1) (count_include_pad)",
    make: () => new AvgPool2d(3, 2, 1),
    shape: [2, 3, 9, 7],
    twin: { kernel: [3, 3], stride: [2, 2], pad: [1, 1] },
  },
  {
    name: "AdaptiveAvgPool2d(1)",
    make: () => new AdaptiveAvgPool2d(1),
    shape: [3, 5, 7, 6],
    twin: { adaptive: [1, 1] },
  },
  {
    name: "AdaptiveAvgPool2d([3, 4]) (overlapping windows)",
    make: () => new AdaptiveAvgPool2d([3, 4]),
    shape: [2, 3, 7, 6],
    twin: { adaptive: [3, 4] },
  },
];

for (const c of POOL_CASES) {
  gpuTest(`${c.name}: output and dX match the f64 twin`, async (gpu) => {
    // Rounded to a coarse grid, so windows hold ties: the first maximum must win.
    const x = randomArray(c.shape.reduce((a, v) => a * v), 41).map((v) => Math.round(v * 4) / 4);
    const want = "adaptive" in c.twin
      ? { y: avgPoolForward(x, c.shape, c.twin), argmax: null }
      : c.name.startsWith("Max")
      ? maxPoolForward(x, c.shape, c.twin)
      : { y: avgPoolForward(x, c.shape, c.twin), argmax: null };
    const dy = randomArray(want.y.length, 42);
    const got = await runLayer(gpu, c.make(), x, c.shape, dy);
    assertClose(got.y, want.y, { atol: 1e-6, what: "y" });
    const dx = want.argmax
      ? maxPoolBackward(want.argmax, dy, c.shape, c.twin as PoolGeometry)
      : avgPoolBackward(dy, c.shape, c.twin);
    assertClose(got.dx, dx, { atol: 1e-6, what: "dX" });
    got.model.dispose();
  });
}

Deno.test("Pools: shapes, PyTorch's names, bad arguments refused", () => {
  assert.deepEqual(new MaxPool2d(2).outputShape([8, 5, 5]), [8, 2, 2]);
  assert.equal(
    new MaxPool2d(3, 2, 1).describe(),
    "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))",
  );
  assert.equal(new AdaptiveAvgPool2d(1).describe(), "AdaptiveAvgPool2d(output_size=(1, 1))");
  assert.throws(
    () => new MaxPool2d(2, 2, 2),
    /padding must be at most half the kernel size \(2×2\): current value is \[2, 2\]/,
  );
  assert.throws(() => new AvgPool2d(0), /kernelSize must be > 0/);
  assert.throws(() => new MaxPool2d(2, 0), /stride must be > 0/);
  assert.throws(() => new AdaptiveAvgPool2d([2, 0]), /outputSize must be > 0/);
  assert.throws(
    () => new MaxPool2d(4).outputShape([3, 3, 8]),
    /larger than the padded input \(3×8\)/,
  );
  assert.throws(
    () => new AvgPool2d(2).outputShape([3, 8]),
    /expected input \[C, H, W\]: current input is \[3, 8\]/,
  );
});

// ---- BatchNorm2d. ----

Deno.test("twin: batchnorm2d backward matches finite differences", () => {
  const shape: Shape4 = [3, 2, 3, 2];
  const x = Float64Array.from(randomArray(36, 51, -2, 2));
  const gamma = Float64Array.from([0.7, 1.3]);
  const beta = Float64Array.from([0.1, -0.4]);
  const dy = Float64Array.from(randomArray(36, 52));
  const dot = dotWith(dy);
  const { dx, dgamma, dbeta } = batchnorm2dBackward(x, shape, gamma, dy, 1e-5);
  const ix = [0, 5, 6, 17, 35];
  assertClose(
    finiteDiff((v) => dot(batchnorm2dTrain(v, shape, gamma, beta, 1e-5).y), x, ix),
    ix.map((i) => dx[i]),
    {
      atol: 1e-6,
      what: "dx",
    },
  );
  assertClose(finiteDiff((v) => dot(batchnorm2dTrain(x, shape, v, beta, 1e-5).y), gamma, [0, 1]), [
    ...dgamma,
  ], {
    atol: 1e-6,
    what: "dgamma",
  });
  assertClose(finiteDiff((v) => dot(batchnorm2dTrain(x, shape, gamma, v, 1e-5).y), beta, [0, 1]), [
    ...dbeta,
  ], {
    atol: 1e-6,
    what: "dbeta",
  });
});

// H·W = 42: the scalar kernels; 24 and 320: the vec4 ones, with a plane shorter than a
// workgroup's stride (6 vec4s against 64) and longer (80).
for (const shape of [[3, 5, 7, 6], [3, 5, 4, 6], [2, 5, 16, 20]] as Shape4[]) {
  gpuTest(
    `BatchNorm2d ${
      shape.join("x")
    }: train forward, backward, running stats and eval match the twin`,
    async (gpu) => {
      const [N, C, H, W] = shape;
      const m = N * H * W;
      const x = randomArray(N * C * H * W, 61, -1, 3);
      const dy = randomArray(x.length, 62);
      const gamma = randomArray(C, 63, 0.5, 1.5), beta = randomArray(C, 64);
      const runningMean = randomArray(C, 65), runningVar = randomArray(C, 66, 0.5, 2);
      const bn = new BatchNorm2d(C, { momentum: 0.2 });
      const got = await runLayer(gpu, bn, x, shape, dy, {
        steps: 2,
        setState: (model) =>
          model.loadStateDict({
            "0.layer.weight": { dtype: "F32", shape: [C], data: gamma },
            "0.layer.bias": { dtype: "F32", shape: [C], data: beta },
            "0.layer.running_mean": { dtype: "F32", shape: [C], data: runningMean },
            "0.layer.running_var": { dtype: "F32", shape: [C], data: runningVar },
            "0.layer.num_batches_tracked": { dtype: "I64", shape: [], data: BigInt64Array.of(3n) },
          }),
      });
      const train = batchnorm2dTrain(x, shape, gamma, beta, 1e-5);
      assertClose(got.y, train.y, { atol: 2e-5, what: "y" });
      const back = batchnorm2dBackward(x, shape, gamma, dy, 1e-5);
      assertClose(got.dx, back.dx, { atol: 2e-5, what: "dX" });
      assertClose(got.grads["0.layer.weight"].data as Float32Array, back.dgamma, {
        atol: 1e-4,
        what: "dγ",
      });
      assertClose(got.grads["0.layer.bias"].data as Float32Array, back.dbeta, {
        atol: 1e-4,
        what: "dβ",
      });
      // Two training forwards: the running estimates moved twice, with the unbiased variance.
      let rm = Array.from(runningMean), rv = Array.from(runningVar);
      for (let step = 0; step < 2; step++) {
        rm = rm.map((v, c) => 0.8 * v + 0.2 * train.mean[c]);
        rv = rv.map((v, c) => 0.8 * v + 0.2 * train.variance[c] * m / (m - 1));
      }
      assertClose(got.state["0.layer.running_mean"].data as Float32Array, rm, {
        atol: 1e-6,
        what: "running_mean",
      });
      assertClose(got.state["0.layer.running_var"].data as Float32Array, rv, {
        atol: 1e-5,
        what: "running_var",
      });
      assert.equal((got.state["0.layer.num_batches_tracked"].data as BigInt64Array)[0], 5n);
      // Eval mode: the running estimates.
      got.model.eval();
      const X = Tensor.from(gpu, x, shape);
      const enc = new StepEncoder(gpu);
      const Y = got.model.forward(enc, X);
      enc.submit();
      assertClose(await Y.toFloat32(), batchnorm2dEval(x, shape, gamma, beta, rm, rv, 1e-5), {
        atol: 2e-5,
        what: "eval y",
      });
      X.dispose();
      got.model.dispose();
    },
  );
}

// A ReLU or LeakyReLU right after BatchNorm2d runs inside its kernels: the same bits as the two
// run apart (a container boundary keeps them apart), and the twin's act(bn(x)) and gradients.
for (const shape of [[3, 5, 7, 6], [2, 5, 16, 20]] as Shape4[]) {
  for (const slope of [0, 0.1]) {
    gpuTest(
      `BatchNorm2d ${
        shape.join("x")
      } + LeakyReLU(${slope}) fused: bits of the unfused pair, the twin`,
      async (gpu) => {
        const [N, C, H, W] = shape;
        const x = randomArray(N * C * H * W, 91, -1, 3);
        const dy = randomArray(x.length, 92);
        const gamma = randomArray(C, 93, 0.5, 1.5), beta = randomArray(C, 94, -0.3, 0.3);
        const act = () => slope === 0 ? new ReLU() : new LeakyReLU(slope);
        const setState = (model: Sequential) =>
          model.loadStateDict({
            "0.layer.0.weight": { dtype: "F32", shape: [C], data: gamma },
            "0.layer.0.bias": { dtype: "F32", shape: [C], data: beta },
            "0.layer.0.running_mean": { dtype: "F32", shape: [C], data: new Float32Array(C) },
            "0.layer.0.running_var": {
              dtype: "F32",
              shape: [C],
              data: new Float32Array(C).fill(1),
            },
            "0.layer.0.num_batches_tracked": {
              dtype: "I64",
              shape: [],
              data: BigInt64Array.of(0n),
            },
          });
        const bn = new BatchNorm2d(C);
        const fused = await runLayer(gpu, new Sequential(bn, act()), x, shape, dy, {
          setState,
          steps: 2,
        });
        assert.equal(bn.fusedSlope, slope);
        const apart = new BatchNorm2d(C);
        const unfused = await runLayer(
          gpu,
          new Sequential(apart, new Sequential(act())),
          x,
          shape,
          dy,
          {
            setState,
            steps: 2,
          },
        );
        assert.equal(apart.fusedSlope, null);
        // The fused ReLU writes +0 where the activation kernel may write −0 (0·x for x < 0),
        // in y and in the masked gradient: equal as numbers, bit for bit otherwise.
        const zero = (a: Float32Array) => Array.from(a, (v) => v + 0);
        assert.deepEqual(zero(fused.y), zero(unfused.y));
        assert.deepEqual(zero(fused.dx), zero(unfused.dx));
        assert.ok(fused.dx.every((v) => v !== 0), "every channel has values on both sides of 0");
        for (const name of ["0.layer.0.weight", "0.layer.0.bias"]) {
          assert.deepEqual(fused.grads[name].data, unfused.grads[name].data, name);
        }
        const train = batchnorm2dTrain(x, shape, gamma, beta, 1e-5);
        assertClose(fused.y, train.y.map((v) => v > 0 ? v : slope * v), { atol: 2e-5, what: "y" });
        const masked = dy.map((g, i) => train.y[i] > 0 ? g : slope * g);
        const back = batchnorm2dBackward(x, shape, gamma, masked, 1e-5);
        // Elements within float32 rounding of 0 may take the other side of the mask on the GPU.
        const near = train.y.filter((v) => Math.abs(v) < 1e-5).length;
        assert.equal(near, 0, "the inputs put no pre-activation within 1e-5 of 0");
        assertClose(fused.dx, back.dx, { atol: 2e-5, what: "dX" });
        assertClose(fused.grads["0.layer.0.weight"].data as Float32Array, back.dgamma, {
          atol: 1e-4,
          what: "dγ",
        });
        fused.model.dispose();
        unfused.model.dispose();
      },
    );
  }
}

gpuTest("BatchNorm2d: affine false and bad inputs", async (gpu) => {
  const shape: Shape4 = [2, 3, 4, 5];
  const x = randomArray(120, 71);
  const dy = randomArray(120, 72);
  const bn = new BatchNorm2d(3, { affine: false });
  assert.deepEqual(bn.parameterSpecs(), []);
  const got = await runLayer(gpu, bn, x, shape, dy);
  const ones = [1, 1, 1], zeros = [0, 0, 0];
  assertClose(got.y, batchnorm2dTrain(x, shape, ones, zeros, 1e-5).y, { atol: 2e-5, what: "y" });
  assertClose(got.dx, batchnorm2dBackward(x, shape, ones, dy, 1e-5).dx, { atol: 2e-5, what: "dX" });
  assert.throws(
    () => bn.outputShape([4, 4, 5]),
    /expected input \[3, H, W\]: current input is \[4, 4, 5\]/,
  );
  const X = Tensor.from(gpu, new Float32Array(3), [1, 3, 1, 1]);
  assert.throws(() => got.model.forward(new StepEncoder(gpu), X), /more than 1 value per channel/);
  assert.throws(
    () => new BatchNorm2d(3, { momentum: 2 }),
    /momentum must be in \[0, 1\]: current value is 2/,
  );
  await gpu.sync();
  X.dispose();
  got.model.dispose();
});

// ---- Flatten and Dropout on NCHW. ----

gpuTest(
  "Flatten of [N, C, H, W] is a view; Dropout on NCHW masks every element as on rows",
  async (gpu) => {
    manualSeed(9);
    const shape: Shape4 = [3, 4, 5, 2];
    const x = randomArray(120, 81);
    const model = new Sequential(new Dropout(0.25), new Flatten()).to(gpu);
    assert.deepEqual(model.outputShape([4, 5, 2]), [40]);
    const X = Tensor.from(gpu, x, shape);
    const enc = new StepEncoder(gpu);
    const Y = model.forward(enc, X);
    const DY = Tensor.from(gpu, randomArray(120, 82), [3, 40]);
    const DX = model.backward(enc, DY);
    enc.submit();
    assert.deepEqual(Y.shape, [3, 40]);
    assert.deepEqual(DX.shape, [3, 4, 5, 2]);
    // Dropout's mask is the same hash over the flat index whatever the shape.
    const mask = dropoutMask(9, 0, 0, 3, 40, 0.25);
    const scale = Math.fround(1 / 0.75);
    assertClose(await Y.toFloat32(), x.map((v, i) => v * mask[i] * scale), {
      atol: 1e-6,
      what: "y",
    });
    const dyv = await DY.toFloat32();
    assertClose(await DX.toFloat32(), dyv.map((v, i) => v * mask[i] * scale), {
      atol: 1e-6,
      what: "dX",
    });
    // Flatten returns a view of its input's buffer, not a copy.
    const flat = new Flatten();
    const view = flat.forward(enc, X);
    assert.equal(view.buffer, X.buffer);
    assert.deepEqual(view.shape, [3, 40]);
    assert.deepEqual(flat.backward(enc, view).shape, [3, 4, 5, 2]);
    X.dispose();
    DY.dispose();
    model.dispose();
  },
);
