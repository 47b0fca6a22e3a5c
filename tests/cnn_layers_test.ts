/**
 * The CNN layers (Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d, and Flatten /
 * Dropout on NCHW) against their float64 twins (tests/reference/cnn.ts), the twins against
 * finite differences. Shapes are small and do not divide the 32×32 GEMM tiles. PyTorch's own
 * answers are checked in tests/cnn_torch_test.ts.
 */

import assert from "node:assert/strict";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { Conv2d, type Conv2dOptions } from "../lib/nn/conv.ts";
import { Module } from "../lib/nn/module.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { conv2dBackward, conv2dForward, type ConvGeometry, type Shape4 } from "./reference/cnn.ts";
import { finiteDiff } from "./reference/nn.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";

/** Holds one layer so that it computes its input gradient (a model's first layer does not). */
export class WithInputGrad extends Module {
  readonly layer: Module;
  constructor(layer: Module) {
    super();
    this.layer = this.register("layer", layer);
  }
  describe(): string {
    return `WithInputGrad(${this.layer.describe()})`;
  }
  outputShape(input: readonly number[]): number[] {
    return this.layer.outputShape(input);
  }
  forward(enc: StepEncoder, x: Tensor): Tensor {
    return this.layer.forward(enc, x);
  }
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    return this.layer.backward(enc, dY);
  }
}

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

/** One forward and backward of `layer` on x [shape]; output, dX and the gradients by name. */
export async function runLayer(
  gpu: Gpu,
  layer: Module,
  x: Float32Array,
  shape: readonly number[],
  dy: Float32Array,
  options: { setState?: (model: Sequential) => void; steps?: number } = {},
) {
  const model = new Sequential(new WithInputGrad(layer)).to(gpu);
  options.setState?.(model);
  const X = Tensor.from(gpu, x, shape, "x");
  let y: Float32Array = new Float32Array();
  let dx: Float32Array = new Float32Array();
  for (let step = 0; step < (options.steps ?? 1); step++) {
    const enc = new StepEncoder(gpu);
    model.parameters().zeroGrad(enc);
    const Y = model.forward(enc, X);
    const DY = Tensor.from(gpu, dy, Y.shape, "dy");
    const DX = model.backward(enc, DY);
    enc.submit();
    y = await Y.toFloat32();
    dx = await DX.toFloat32();
    DY.dispose();
  }
  const grads = await model.gradients();
  const state = await model.stateDict();
  X.dispose();
  return { y, dx, grads, state, model };
}

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
];

for (const c of CONV_CASES) {
  gpuTest(`Conv2d ${c.name}: output, dX, dW and db match the f64 twin`, async (gpu) => {
    manualSeed(5);
    const conv = new Conv2d(c.shape[1], c.out, c.k, c.o);
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
  });
}

gpuTest("Conv2d: gradients accumulate (+=) over backward passes without zeroGrad", async (gpu) => {
  manualSeed(6);
  const shape: Shape4 = [2, 3, 6, 6];
  const conv = new Conv2d(3, 4, 3, { padding: 1 });
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
});

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
  X.dispose();
  model.dispose();
});
