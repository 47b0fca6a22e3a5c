/**
 * Composite modules as PyTorch's: a Sequential inside a Sequential, a Residual around any module
 * and a module of one's own with named children. Their parameters live in the model's one arena,
 * their state-dict names and shapes are PyTorch's `state_dict()` keys for the same architecture,
 * weights travel both ways through safetensors, and 5 Adam steps match PyTorch within K times
 * PyTorch's own float32-vs-float64 drift, measured in the same run (as tests/parity_test.ts
 * does). PyTorch's side is tests/torch/composite.py, run when /usr/bin/python3 has torch; else
 * those tests are ignored with one line saying why. A nested model also trains through `fit`
 * with a checkpoint folder and resumes bit for bit.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { adapterKind } from "../lib/gpu/defaults.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../lib/io/safetensors_file.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { BatchNorm1d } from "../lib/nn/batchnorm.ts";
import { Dropout } from "../lib/nn/dropout.ts";
import { Flatten, LeakyReLU, Linear } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { Module } from "../lib/nn/module.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Residual } from "../lib/nn/residual.ts";
import { Sequential, type StateDict } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { loadModel } from "../lib/train/checkpoint.ts";
import { fit } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import { curves, stateBits } from "./fixtures/history.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";
import { Tensor } from "../lib/tensor.ts";
import { MISSING } from "./torch/activations.ts";
import { PYTHON } from "./fixtures/torch.ts";
import { dropoutMask } from "./reference/dropout_mask.ts";
import { randomImages } from "./fixtures/random.ts";
import { assertWithin, gpuTest, randomArray } from "./helpers.ts";

const SCRIPT = fileURLToPath(new URL("./torch/composite.py", import.meta.url));
if (MISSING !== null) console.log(`composite: the PyTorch checks are ignored (${MISSING})`);

/**
 * PyTorch's `Block`: fc, act, bn as named children (tests/torch/composite.py). fc has no bias,
 * as the Linear right before each BatchNorm here: a bias there has an exactly-zero gradient
 * while its units stay positive over the batch, and Adam turns the rounding noise into lr-sized
 * steps, which would make PyTorch's own float32-vs-float64 drift (the tolerance) meaningless.
 */
class Block extends Module {
  readonly fc: Linear;
  readonly act: LeakyReLU;
  readonly bn: BatchNorm1d;
  constructor(readonly features: number) {
    super();
    this.fc = this.register("fc", new Linear(features, features, { bias: false }));
    this.act = this.register("act", new LeakyReLU());
    this.bn = this.register("bn", new BatchNorm1d(features));
  }
  describe(): string {
    return `Block(${this.features})`;
  }
  outputShape(input: readonly number[]): number[] {
    return this.bn.outputShape(this.fc.outputShape(input));
  }
  forward(enc: StepEncoder, x: Tensor): Tensor {
    return this.bn.forward(enc, this.act.forward(enc, this.fc.forward(enc, x)));
  }
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    return this.fc.backward(enc, this.act.backward(enc, this.bn.backward(enc, dY)));
  }
}

/** The architectures of tests/torch/composite.py, and the per-sample shape each takes. */
const ARCHS = {
  nested: {
    shape: [3, 2, 2],
    build: () =>
      new Sequential(
        new Flatten(),
        new Linear(12, 16),
        new Sequential(
          new Linear(16, 16),
          new LeakyReLU(),
          new Sequential(new Linear(16, 16, { bias: false }), new LeakyReLU()),
        ),
        new BatchNorm1d(16),
        new Linear(16, 5),
      ),
  },
  residual: {
    shape: [12],
    build: () =>
      new Sequential(
        new Linear(12, 8),
        new Residual(new Sequential(new Linear(8, 8), new LeakyReLU(), new Linear(8, 8))),
        new LeakyReLU(),
        new Linear(8, 5),
      ),
  },
  custom: {
    shape: [3, 2, 2],
    build: () =>
      new Sequential(
        new Flatten(),
        new Linear(12, 8),
        new LeakyReLU(),
        new Block(8),
        new Linear(8, 5),
      ),
  },
};
type Arch = keyof typeof ARCHS;

Deno.test("composite: names, shapes and descriptions through the tree (no GPU)", () => {
  const residual = ARCHS.residual.build();
  assert.deepEqual(Object.keys(residual.expectedState()), [
    "0.weight",
    "0.bias",
    "1.fn.0.weight",
    "1.fn.0.bias",
    "1.fn.2.weight",
    "1.fn.2.bias",
    "3.weight",
    "3.bias",
  ]);
  assert.equal(
    residual.describe(),
    "Sequential(Linear(12, 8), Residual(Sequential(Linear(8, 8), LeakyReLU(0.01), Linear(8, 8))), " +
      "LeakyReLU(0.01), Linear(8, 5))",
  );
  const custom = ARCHS.custom.build();
  const state = custom.expectedState();
  assert.deepEqual(state["3.fc.weight"], { dtype: "F32", shape: [8, 8] });
  assert.deepEqual(state["3.bn.num_batches_tracked"], { dtype: "I64", shape: [] });
  assert.deepEqual(custom.outputShape([3, 2, 2]), [5]);
  assert.deepEqual(ARCHS.nested.build().expectedState()["2.2.0.weight"], {
    dtype: "F32",
    shape: [16, 16],
  });
  assert.throws(
    () => new Residual(new Linear(4, 3)).outputShape([4]),
    /Cannot run Residual\(Linear\(4, 3\)\): fn must keep the shape of its input for the sum: current fn maps \[4\] to \[3\]/,
  );
});

Deno.test("composite: register refuses bad names and children; a module has one place", () => {
  class Holder extends Module {
    constructor(entries: [string, unknown][]) {
      super();
      for (const [name, child] of entries) this.register(name, child as Module);
    }
    describe = () => "Holder()";
    outputShape = (input: readonly number[]) => [...input];
    forward = (_enc: StepEncoder, x: Tensor) => x;
    backward = (_enc: StepEncoder, dY: Tensor) => dY;
  }
  const fc = () => new Linear(2, 2);
  assert.throws(() => new Holder([["", fc()]]), /non-empty string without "\."/);
  assert.throws(() => new Holder([["a.b", fc()]]), /non-empty string without "\."/);
  assert.throws(
    () => new Holder([["fc", fc()], ["fc", fc()]]),
    /Cannot register child "fc": the name is taken/,
  );
  assert.throws(() => new Holder([["fc", {}]]), TypeError);
  const shared = new Linear(2, 2);
  assert.throws(
    () => new Sequential(shared, new Sequential(shared)).expectedState(),
    /Linear\(2, 2\) is in it twice, at "0" and at "1\.0"; a module can have one place only/,
  );
});

gpuTest("composite: one arena for the whole tree; fusion only between siblings", async (gpu) => {
  manualSeed(2);
  const inner = new Linear(4, 4);
  const lastOfResidual = new Linear(4, 4);
  const afterResidual = new LeakyReLU(0.2);
  const afterSequential = new LeakyReLU(0.2);
  const fusedInside = new LeakyReLU(0.2);
  const model = new Sequential(
    new Sequential(inner, fusedInside),
    new Sequential(new Linear(4, 4)),
    afterSequential,
    new Residual(lastOfResidual),
    afterResidual,
  ).to(gpu);
  try {
    assert.equal(fusedInside.fused, true, "siblings of one Sequential fuse");
    assert.equal(inner.fusedSlope, 0.2);
    assert.equal(afterSequential.fused, false, "no fusion into a nested Sequential's last child");
    assert.equal(afterResidual.fused, false, "no fusion across a skip connection's sum");
    assert.equal(lastOfResidual.fusedSlope, null);
    const names = model.parameters().params.map((p) => p.name);
    assert.deepEqual(names, [
      "0.0.weight",
      "0.0.bias",
      "1.0.weight",
      "1.0.bias",
      "3.fn.weight",
      "3.fn.bias",
    ]);
    assert.deepEqual(Object.keys(await model.stateDict()), names);
    // A nested Sequential runs its children, but the model answers for the model.
    const nested = model.modules[0] as Sequential;
    assert.throws(() => nested.parameters(), /it is part of a model: ask the model/);
    assert.throws(() => model.to(gpu), /already on one/);
    assert.throws(
      () => new Sequential(nested).to(gpu),
      /its module "0" \(Sequential\(.*\)\) is already on one/,
    );
    model.eval();
    assert.equal(inner.training, false, "eval() reaches every module of the tree");
    assert.equal(lastOfResidual.training, false);
    model.train();
    assert.equal(lastOfResidual.training, true);
  } finally {
    model.dispose();
  }
});

gpuTest(
  "composite: loadStateDict checks every entry of the tree before writing any",
  async (gpu) => {
    const model = ARCHS.custom.build().to(gpu);
    try {
      const before = await model.stateDict();
      const changed = new Float32Array(before["1.weight"].data.length).fill(0.5);
      const state: StateDict = {
        ...before,
        "1.weight": { ...before["1.weight"], data: changed }, // valid, and must not be written
        "3.fc.weight": { dtype: "F32", shape: [8, 7], data: new Float32Array(56) },
        "3.fc.bias": { dtype: "F32", shape: [8], data: new Float32Array(8) }, // fc has no bias
      };
      delete state["3.bn.running_var"];
      assert.throws(
        () => model.loadStateDict(state),
        /"3\.fc\.weight" has shape \[8, 7\], expected \[8, 8\]; missing "3\.bn\.running_var"; unexpected "3\.fc\.bias"/,
      );
      assert.deepEqual(
        stateBits(await model.stateDict()),
        stateBits(before),
        "nothing was written",
      );
    } finally {
      model.dispose();
    }
  },
);

/** Runs `model` forward (and backward of `dY`, when given) once in train mode; reads back. */
async function run(
  gpu: Gpu,
  model: Sequential,
  x: Float32Array,
  shape: number[],
  dY?: Float32Array,
) {
  const X = Tensor.from(gpu, x, shape, "x");
  const enc = new StepEncoder(gpu);
  const y = model.forward(enc, X);
  const dYt = dY ? Tensor.from(gpu, dY, y.shape, "dY") : null;
  const dX = dYt ? model.backward(enc, dYt) : null;
  enc.submit();
  const out = { y: await y.toFloat32(), dX: dX ? await dX.toFloat32() : null };
  X.dispose();
  dYt?.dispose();
  return out;
}

/** Asserts equal f32 bits; the error lists the first five mismatches with their index. */
function assertSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const bad: string[] = [];
  actual.forEach((v, i) => {
    if (!Object.is(v, expected[i]) && bad.length < 5) bad.push(`[${i}] ${v} != ${expected[i]}`);
  });
  assert.deepEqual(bad, [], `${what}: first mismatches`);
}

for (const shape of [[37, 53], [8, 125]]) {
  gpuTest(
    `composite: Residual's sums against their dumb twin, bit for bit (${shape})`,
    async (gpu) => {
      const slope = 0.2;
      const model = new Sequential(new Residual(new LeakyReLU(slope))).to(gpu);
      try {
        const n = shape[0] * shape[1];
        const x = randomArray(n, 11), dY = randomArray(n, 12);
        const { y, dX } = await run(gpu, model, x, shape, dY);
        // The twin: y = x + leaky(x), dX = dY + dY·leaky'(x), each product and sum rounded to f32.
        const s = Math.fround(slope);
        const yWant = x.map((v) => Math.fround(v + (v > 0 ? v : Math.fround(s * v))));
        const dWant = dY.map((g, i) => Math.fround(g + (x[i] > 0 ? g : Math.fround(s * g))));
        assertSameBits(y, yWant, "y");
        assertSameBits(dX!, dWant, "dX");
      } finally {
        model.dispose();
      }
    },
  );
}

gpuTest(
  "composite: two Dropouts at index 0 of two nested Sequentials draw their own masks",
  async (gpu) => {
    manualSeed(5);
    const model = new Sequential(
      new Sequential(new Dropout(0.5)), // position 1: the nested Sequential is position 0
      new Sequential(new Dropout(0.5)), // position 3
    ).to(gpu);
    try {
      const [rows, cols] = [16, 40];
      const { y } = await run(gpu, model, new Float32Array(rows * cols).fill(1), [rows, cols]);
      // The first training forward is step 0.
      const first = dropoutMask(5, 0, 1, rows, cols, 0.5);
      const second = dropoutMask(5, 0, 3, rows, cols, 0.5);
      assert.deepEqual([...y], [...first].map((k, i) => k * second[i] * 4), "y = 1·m1·m2/(1−p)²");
      assert.notDeepEqual([...first], [...second]);
    } finally {
      model.dispose();
    }
  },
);

gpuTest(
  "composite: a loader's input staging is found through a nested first child, never inside a Residual",
  async (gpu) => {
    const linear = new Linear(3072, 8);
    const model = new Sequential(new Sequential(new Flatten(), linear), new Linear(8, 2)).to(gpu);
    const skip = new Sequential(new Flatten(), new Residual(new Linear(3072, 3072))).to(gpu);
    const data = GpuDataset.upload(gpu, randomImages(8, 3));
    const loader = new Loader(gpu, data, { batchSize: 4 });
    try {
      assert.equal(model.inputStaging(4), linear.inputStaging(4));
      assert.equal(skip.inputStaging(4), null, "the skip reads x itself: the loader must write it");
      assert.equal(new Sequential(new Flatten()).reshapesOnly, true);
      // A batch gathered into the nested Linear's staging gives the logits of one read in place.
      model.eval();
      loader.startEpoch(0);
      const logits = async (staged: boolean) => {
        const enc = new StepEncoder(gpu);
        const { x } = staged ? loader.encodeBatchFor(enc, 1, model) : loader.encodeBatch(enc, 1);
        const holds = linear.inputStaging(4)?.holds(x) ?? false;
        assert.equal(holds, staged && adapterKind(gpu) === "software", "gathered into the texture");
        const y = model.forward(enc, x);
        enc.submit();
        return [...await y.toFloat32()];
      };
      assert.deepEqual(await logits(true), await logits(false));
    } finally {
      for (const d of [loader, data, model, skip]) d.dispose();
    }
  },
);

/** What tests/torch/composite.py prints (see its docstring). */
interface TorchAnswer {
  names: [string, number[], string][];
  theirs: { float32: number[]; float64: number[] };
  ours: { float32: number[]; float64: number[] };
  train: Record<
    "float32" | "float64",
    { losses: number[]; state: Record<string, number[]>; logits: number[] }
  >;
}

async function runTorch(spec: object): Promise<TorchAnswer> {
  const child = new Deno.Command(PYTHON, {
    args: [SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(spec)));
  await writer.close();
  const out = await child.output();
  if (!out.success) throw new Error(`composite.py failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

// As tests/parity_test.ts: ours may be K times PyTorch's own float32-vs-float64 drift from its
// float64 run, and below FLOOR a difference is float32 rounding however small that drift was
// (4 ulps of a loss near 1.6; 40 ulps of a logit near 1; 1/1000 of one Adam step of lr 1e-3).
const K = 10;
const FLOOR = { loss: 1e-6, logits: 1e-5, weight: 1e-6 };
const spread = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
const bound = (a: number[], b: number[], floor: number) => Math.max(K * spread(a, b), floor);

async function evalLogits(gpu: Gpu, model: Sequential, x: Float32Array, shape: number[]) {
  model.eval();
  const { y } = await run(gpu, model, x, shape);
  model.train();
  return y;
}

const torchTest = (name: string, fn: (gpu: Gpu) => Promise<void>) =>
  MISSING === null ? gpuTest(name, fn) : Deno.test({ name, ignore: true, fn: () => {} });

for (const arch of Object.keys(ARCHS) as Arch[]) {
  torchTest(`composite ${arch}: PyTorch's names, weights both ways, 5 Adam steps`, async (gpu) => {
    const B = 37, { shape } = ARCHS[arch];
    const xShape = [B, ...shape];
    const x = randomArray(B * 12, 21);
    const labels = Uint32Array.from({ length: B }, (_, i) => (i * 7 + 3) % 5);
    const dir = await Deno.makeTempDir({ prefix: `wgnn-composite-${arch}-` });
    manualSeed(1);
    const model = ARCHS[arch].build().to(gpu);
    const X = Tensor.from(gpu, x, xShape, "x"), Y = Tensor.from(gpu, labels, [B], "labels");
    const loss = new CrossEntropyLoss();
    const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
    try {
      // Two train-mode forwards first: BatchNorm's statistics leave their defaults.
      for (let i = 0; i < 2; i++) await run(gpu, model, x, xShape);
      const weights = join(dir, "ours.safetensors"), torchOut = join(dir, "theirs.safetensors");
      await writeSafetensorsFile(weights, await model.stateDict(), { format: "pt" });
      const ours0 = await evalLogits(gpu, model, x, xShape);
      const torch = await runTorch({
        arch,
        weights,
        torchOut,
        x: [...x],
        shape: xShape,
        labels: [...labels],
        lr: 1e-3,
        steps: 5,
      });
      const room: Record<string, number> = {};

      // Names, order, dtypes and shapes: PyTorch's state_dict() of the same architecture.
      const expected = Object.entries(model.expectedState()).map(([k, e]) => [k, e.shape, e.dtype]);
      assert.deepEqual(expected, torch.names);

      // Our weights, loaded by PyTorch with strict=True, score as here.
      const t = torch.ours;
      room.exported = assertWithin(
        ours0,
        t.float64,
        bound(t.float32, t.float64, FLOOR.logits),
        "ours in PyTorch",
      );

      // PyTorch's weights (and BatchNorm statistics) load here and score as there.
      manualSeed(9);
      const other = ARCHS[arch].build().to(gpu);
      try {
        await loadModel(torchOut, other); // names, shapes and dtypes checked first
        const theirs = await evalLogits(gpu, other, x, xShape);
        const h = torch.theirs;
        room.imported = assertWithin(
          theirs,
          h.float64,
          bound(h.float32, h.float64, FLOOR.logits),
          "theirs here",
        );
      } finally {
        other.dispose();
      }

      // 5 Adam steps from the same weights: losses, every tensor, BatchNorm's counters, logits.
      const losses: number[] = [];
      for (let step = 0; step < 5; step++) {
        const enc = new StepEncoder(gpu);
        encodeTrainingStep(enc, { model, loss, optimizer }, X, Y);
        enc.submit();
        losses.push((await loss.stats.read()).lastLoss);
      }
      const [f32, f64] = [torch.train.float32, torch.train.float64];
      room.losses = assertWithin(
        losses,
        f64.losses,
        bound(f32.losses, f64.losses, FLOOR.loss),
        "losses",
      );
      const state = await model.stateDict();
      assert.deepEqual(Object.keys(state), torch.names.map(([name]) => name));
      room.weights = 0;
      for (const [name, t] of Object.entries(state)) {
        if (t.dtype === "I64") {
          assert.equal(Number((t.data as BigInt64Array)[0]), f64.state[name][0], name);
          assert.equal(f64.state[name][0], 7, `${name}: 2 forwards and 5 steps`);
          continue;
        }
        const b = bound(f32.state[name], f64.state[name], FLOOR.weight);
        const r = assertWithin(t.data as Float32Array, f64.state[name], b, name);
        room.weights = Math.max(room.weights, r);
      }
      const logits = await evalLogits(gpu, model, x, xShape);
      room.logits = assertWithin(
        logits,
        f64.logits,
        bound(f32.logits, f64.logits, FLOOR.logits),
        "logits",
      );
      const show = Object.entries(room).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
      console.log(`${arch} vs PyTorch f64, largest diff/bound: ${show} (K = ${K})`);
    } finally {
      for (const d of [X, Y, loss, optimizer, model]) d.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** The fit model: nested Sequentials, a Residual and a Block, with Dropout at two depths. */
function fitModel(): Sequential {
  return new Sequential(
    new Flatten(),
    new Sequential(new Linear(3072, 32), new LeakyReLU(), new Dropout(0.2)),
    new Residual(new Sequential(new Linear(32, 32), new LeakyReLU(), new Dropout(0.1))),
    new Block(32),
    new Linear(32, 10),
  );
}

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
  const train = new Loader(gpu, sets.train, {
    batchSize: 64,
    shuffle: true,
    seed: 0,
    augment: { flip: true },
  });
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
      stepsPerSubmit: 2,
      onEpoch: (record) => {
        if (record.epoch === o.abortAfter) controller.abort();
      },
    });
    return {
      history,
      state: await model.stateDict(),
      optim: await optimizer.readState(),
      steps: await model.trainingSteps(),
    };
  } finally {
    for (const d of [train, val, loss, optimizer, model]) d.dispose();
  }
}

gpuTest("composite: a nested model trains through fit and resumes bit for bit", async (gpu) => {
  const root = await Deno.makeTempDir({ prefix: "wgnn-composite-fit-" });
  const sets = {
    train: GpuDataset.upload(gpu, randomImages(300, 1)),
    val: GpuDataset.upload(gpu, randomImages(100, 2)),
  };
  try {
    const whole = await fitOnce(gpu, sets, { dir: join(root, "whole") });
    assert.equal(whole.steps, 4 * 5, "4 epochs of 5 batches, counted on the GPU (Dropout)");
    assert(whole.history.epochs[3].trainLoss < whole.history.epochs[0].trainLoss, "it learns");
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
    assert.equal(resumed.steps, whole.steps);
    // The exported weights carry the tree's names, for PyTorch.
    const last = await readSafetensorsFile(join(dir, "last.safetensors"));
    for (const name of ["1.0.weight", "2.fn.0.weight", "3.fc.weight", "3.bn.num_batches_tracked"]) {
      assert(last.tensors.has(name), `last.safetensors holds "${name}"`);
    }
  } finally {
    sets.train.dispose();
    sets.val.dispose();
    await Deno.remove(root, { recursive: true });
  }
});
