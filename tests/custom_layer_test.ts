/**
 * A layer of one's own, written only against the public entries (`mod.ts` and `advanced.ts`):
 * Swish with a learnable β, y = x·σ(β·x), and its kernel tests/fixtures/swish.wgsl. The README's
 * "Write your own layer" walks through this file.
 *
 * Checked: the WGSL's bindings against the table; the float64 twin's gradients (dX and dβ)
 * against central finite differences of its forward, and the GPU's y, dX and dβ against the twin;
 * β under its PyTorch name ("2.beta") in the state dict; training through `fit` inside a
 * Sequential (the loss falls, β moves); and a run stopped after epoch 2 and resumed equals one
 * that was never interrupted, bit for bit.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Adam,
  type AttachContext,
  CrossEntropyLoss,
  fit,
  Flatten,
  type Gpu,
  type GpuBuffer,
  GpuDataset,
  type History,
  Linear,
  Loader,
  manualSeed,
  Module,
  type Parameter,
  type ParameterSpec,
  Sequential,
  StepEncoder,
  Tensor,
} from "../mod.ts";
import {
  checkInput,
  entryPoint,
  grid1d,
  KernelCall,
  type KernelFamily,
  ParamsLayout,
  PerBatch,
} from "../advanced.ts";
import swishSource from "./fixtures/swish.wgsl" with { type: "text" };
import { randomImages } from "./fixtures/random.ts";
import { curves, stateBits } from "./fixtures/history.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";

// ---- The layer ----------------------------------------------------------------------------

/** tests/fixtures/swish.wgsl and its bindings, as its `@binding` lines declare them. */
const SWISH = {
  name: "swish",
  source: swishSource,
  bindings: { x: 0, dy: 1, beta: 2, dst: 3, dbeta: 4, p: 5 },
} as const satisfies KernelFamily;
/** Each entry point names the bindings it uses (an auto layout holds only those). */
const FORWARD = entryPoint(SWISH, "forward", ["x", "beta", "dst", "p"]);
const BACKWARD_INPUT = entryPoint(SWISH, "backward_input", ["x", "dy", "beta", "dst", "p"]);
const BACKWARD_BETA = entryPoint(SWISH, "backward_beta", ["x", "dy", "beta", "dbeta", "p"]);
/** The WGSL `struct Params { n: u32 }`: the element count rides in a uniform, not the source. */
const PARAMS = new ParamsLayout("swish.Params", { n: "u32" });
const WG = 64;

/** Output, input gradient and uniforms of one batch size: created once, reused every step. */
class SwishBuffers {
  readonly y: Tensor;
  readonly dX: Tensor;
  readonly params: GpuBuffer;
  constructor(gpu: Gpu, shape: readonly number[]) {
    this.y = Tensor.empty(gpu, shape, "f32", "swish.y");
    this.dX = Tensor.empty(gpu, shape, "f32", "swish.dX");
    this.params = PARAMS.upload(gpu, { n: shape.reduce((a, b) => a * b, 1) });
  }
  dispose(): void {
    this.y.dispose();
    this.dX.dispose();
    this.params.dispose();
  }
}

/** y = x·σ(β·x), with one learnable β (PyTorch: `self.beta = nn.Parameter(torch.tensor([b]))`). */
class Swish extends Module {
  #beta: Parameter | null = null;
  #calls: {
    forward: KernelCall<typeof FORWARD>;
    backwardInput: KernelCall<typeof BACKWARD_INPUT>;
    backwardBeta: KernelCall<typeof BACKWARD_BETA>;
  } | null = null;
  #sample: readonly number[] | null = null;
  /** Saved by forward for backward: the input. */
  #x: Tensor | null = null;
  #buffers = new PerBatch((batch) =>
    new SwishBuffers(this.requireGpu(), [batch, ...this.#sample!])
  );

  constructor(readonly initialBeta = 1) {
    super();
  }

  describe(): string {
    return `Swish(beta=${this.initialBeta})`;
  }

  /** One parameter, "beta", of shape [1]: its state-dict name is the module's path + ".beta". */
  override parameterSpecs(): ParameterSpec[] {
    return [{ name: "beta", shape: [1], init: Float32Array.of(this.initialBeta) }];
  }

  outputShape(input: readonly number[]): number[] {
    return [...input];
  }

  /** Keeps the view of β (values and gradient) and compiles the three pipelines, once. */
  override attach(context: AttachContext, params: Parameter[]): void {
    super.attach(context, params);
    this.#beta = params[0];
    this.#calls = {
      forward: new KernelCall(context.gpu, FORWARD, { WG }),
      backwardInput: new KernelCall(context.gpu, BACKWARD_INPUT, { WG }),
      backwardBeta: new KernelCall(context.gpu, BACKWARD_BETA, { WG }),
    };
  }

  forward(enc: StepEncoder, x: Tensor): Tensor {
    this.requireGpu();
    this.#sample ??= x.shape.slice(1);
    const bufs = this.#buffers.get(checkInput(this, x, this.#sample));
    this.#calls!.forward.encode(enc, grid1d(Math.ceil(x.numel / WG)), {
      x,
      beta: this.#beta!.value,
      dst: bufs.y,
      p: bufs.params,
    });
    this.#x = x;
    return bufs.y;
  }

  /** Adds dβ into β's gradient (one workgroup sums every element) and returns dX. */
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    const x = this.#x;
    if (x === null) throw new Error(`Cannot run ${this.describe()} backward: no forward`);
    dY.expectShape(`Cannot run ${this.describe()} backward`, x.shape);
    const bufs = this.#buffers.get(x.shape[0]);
    const beta = this.#beta!;
    this.#calls!.backwardBeta.encode(enc, [1, 1, 1], {
      x,
      dy: dY,
      beta: beta.value,
      dbeta: beta.grad,
      p: bufs.params,
    });
    this.#calls!.backwardInput.encode(enc, grid1d(Math.ceil(x.numel / WG)), {
      x,
      dy: dY,
      beta: beta.value,
      dst: bufs.dX,
      p: bufs.params,
    });
    return bufs.dX;
  }

  /** Frees the per-batch buffers (β lives in the model's arena, which the model frees). */
  override dispose(): void {
    this.#buffers.dispose();
    this.#x = null;
  }
}

// ---- The float64 twin ---------------------------------------------------------------------

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** The plainest loop: y, and for a given dY, dX and dβ (the sum over every element). */
function swishTwin(x: ArrayLike<number>, beta: number, dY: ArrayLike<number>) {
  const y = new Float64Array(x.length);
  const dX = new Float64Array(x.length);
  let dBeta = 0;
  for (let i = 0; i < x.length; i++) {
    const s = sigmoid(beta * x[i]);
    y[i] = x[i] * s;
    dX[i] = dY[i] * (s + beta * x[i] * s * (1 - s));
    dBeta += dY[i] * x[i] * x[i] * s * (1 - s);
  }
  return { y, dX, dBeta };
}

/** L = Σ dY·y, the scalar whose gradient backward computes. */
function twinLoss(x: ArrayLike<number>, beta: number, dY: ArrayLike<number>): number {
  const { y } = swishTwin(x, beta, dY);
  return y.reduce((sum, v, i) => sum + v * dY[i], 0);
}

// ---- Tests --------------------------------------------------------------------------------

Deno.test("swish.wgsl declares the bindings of the table and the three entry points", () => {
  const declared = [...swishSource.matchAll(/@binding\((\d+)\)\s+var<[^>]+>\s+(\w+)/g)]
    .map(([, n, name]) => [name, Number(n)]);
  assert.deepEqual(Object.fromEntries(declared), SWISH.bindings);
  for (const e of [FORWARD, BACKWARD_INPUT, BACKWARD_BETA]) {
    assert.match(swishSource, new RegExp(`fn ${e.entry}\\(`), e.entry);
  }
});

Deno.test("the float64 twin's dX and dβ match central finite differences", () => {
  const x = randomArray(200, 1, -3, 3), dY = randomArray(200, 2), beta = 0.7, h = 1e-6;
  const { dX, dBeta } = swishTwin(x, beta, dY);
  const fdX = Array.from(x, (_, i) => {
    const plus = Float64Array.from(x), minus = Float64Array.from(x);
    plus[i] += h;
    minus[i] -= h;
    return (twinLoss(plus, beta, dY) - twinLoss(minus, beta, dY)) / (2 * h);
  });
  assertClose(dX, fdX, { atol: 1e-7, rtol: 1e-6, what: "dX" });
  const fdBeta = (twinLoss(x, beta + h, dY) - twinLoss(x, beta - h, dY)) / (2 * h);
  assertClose([dBeta], [fdBeta], { atol: 1e-7, rtol: 1e-6, what: "dβ" });
});

gpuTest("Swish on the GPU: y, dX and dβ match the twin; β is '0.beta'", async (gpu) => {
  manualSeed(0);
  // 37×53 = 1961 elements: not a multiple of the workgroup, and 31 strides of the β reduction.
  const [rows, cols] = [37, 53];
  const model = new Sequential(new Swish(0.7)).to(gpu);
  const xs = randomArray(rows * cols, 3, -3, 3), dYs = randomArray(rows * cols, 4);
  const x = Tensor.from(gpu, xs, [rows, cols], "x");
  const dY = Tensor.from(gpu, dYs, [rows, cols], "dY");
  try {
    const enc = new StepEncoder(gpu);
    const y = model.forward(enc, x);
    const dX = model.backward(enc, dY);
    enc.submit();
    const twin = swishTwin(xs, Math.fround(0.7), dYs);
    assertClose(await y.toFloat32(), twin.y, { atol: 1e-6, rtol: 1e-5, what: "y" });
    assertClose(await dX.toFloat32(), twin.dX, { atol: 1e-6, rtol: 1e-5, what: "dX" });
    const grads = await model.gradients();
    assert.deepEqual(Object.keys(grads), ["0.beta"]);
    assertClose(grads["0.beta"].data as Float32Array, [twin.dBeta], {
      atol: 1e-4,
      rtol: 1e-5,
      what: "dβ",
    });
  } finally {
    for (const d of [x, dY, model]) d.dispose();
  }
});

/** The fit model: Swish between two Linears, so β is "2.beta" in the state dict. */
const fitModel = () =>
  new Sequential(new Flatten(), new Linear(3072, 32), new Swish(1), new Linear(32, 10));

/** One `fit` of {@link fitModel} into `dir`, stopped after epoch `abortAfter` when given. */
async function fitOnce(
  gpu: Gpu,
  sets: { train: GpuDataset; val: GpuDataset },
  o: { dir: string; abortAfter?: number; resume?: boolean },
) {
  manualSeed(0);
  const model = fitModel().to(gpu);
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, sets.train, { batchSize: 64, shuffle: true, seed: 0 });
  const val = new Loader(gpu, sets.val, { batchSize: 64 });
  const controller = new AbortController();
  try {
    const history: History = await fit(model, {
      train,
      val,
      epochs: 4,
      loss,
      optimizer,
      checkpointDir: o.dir,
      resume: o.resume,
      signal: controller.signal,
      progress: false,
      onEpoch: (record) => {
        if (record.epoch === o.abortAfter) controller.abort();
      },
    });
    return { history, state: await model.stateDict(), optim: await optimizer.readState() };
  } finally {
    for (const d of [train, val, loss, optimizer, model]) d.dispose();
  }
}

gpuTest("Swish trains through fit in a Sequential and resumes bit for bit", async (gpu) => {
  const root = await Deno.makeTempDir({ prefix: "wgnn-custom-layer-" });
  const sets = {
    train: GpuDataset.upload(gpu, randomImages(300, 1)),
    val: GpuDataset.upload(gpu, randomImages(100, 2)),
  };
  try {
    const whole = await fitOnce(gpu, sets, { dir: join(root, "whole") });
    const epochs = whole.history.epochs;
    assert(epochs[3].trainLoss < epochs[0].trainLoss, "the training loss falls");
    assert.deepEqual(Object.keys(whole.state), [
      "1.weight",
      "1.bias",
      "2.beta", // PyTorch's name for a parameter "beta" of module 2
      "3.weight",
      "3.bias",
    ]);
    assert.deepEqual(whole.state["2.beta"].shape, [1]);
    assert.notEqual(whole.state["2.beta"].data[0], 1, "β learned (dβ reached the optimizer)");

    const dir = join(root, "parts");
    const first = await fitOnce(gpu, sets, { dir, abortAfter: 2 });
    assert.equal(first.history.stopped, "aborted");
    const resumed = await fitOnce(gpu, sets, { dir, resume: true });
    assert.deepEqual(curves(resumed.history), curves(whole.history), "history");
    assert.deepEqual(stateBits(resumed.state), stateBits(whole.state), "state dict, bit for bit");
    assert.deepEqual(
      stateBits(resumed.optim),
      stateBits(whole.optim),
      "optimizer state, bit for bit",
    );
  } finally {
    sets.train.dispose();
    sets.val.dispose();
    await Deno.remove(root, { recursive: true });
  }
});
