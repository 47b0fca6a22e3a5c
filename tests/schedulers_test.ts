/**
 * Learning-rate schedulers: values against a live PyTorch 1.13 run of each (tests/torch/
 * schedulers.py), rtol 1e-12; option errors; and `fit` following a schedule per epoch and per
 * step, resumed bit for bit.
 */

import assert from "node:assert/strict";
import {
  CosineAnnealingLR,
  ExponentialLR,
  LinearLR,
  type LrScheduler,
  MultiStepLR,
  OneCycleLR,
  SequentialLR,
  StepLR,
} from "../lib/optim/scheduler.ts";
import { join } from "node:path";
import type { Gpu } from "../lib/gpu/device.ts";
import type { ImageSet } from "../lib/data/cifar10.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import type { Sequential } from "../lib/nn/sequential.ts";
import { lectureModel, makeOptimizer } from "../lib/train/experiment.ts";
import { fit } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import { lcgBytes } from "./fixtures/cifar_fixture.ts";
import { comparable, withoutTimes } from "./fixtures/history.ts";
import { PYTHON, torchMissing } from "./fixtures/torch.ts";
import { gpuTest } from "./helpers.ts";

interface TorchCase {
  kind: string;
  args: Record<string, unknown>;
  children?: { kind: string; args: Record<string, unknown> }[];
}

/** Each case: our scheduler, PyTorch's kind and keyword arguments, and the steps compared. */
function cases(): { ours: LrScheduler; lr: number; steps: number; torch: TorchCase }[] {
  const lr = 0.1;
  return [
    {
      ours: new StepLR(lr, { stepSize: 3 }),
      lr,
      steps: 20,
      torch: { kind: "StepLR", args: { step_size: 3 } },
    },
    {
      ours: new StepLR(lr, { stepSize: 1, gamma: 0.7 }),
      lr,
      steps: 30,
      torch: { kind: "StepLR", args: { step_size: 1, gamma: 0.7 } },
    },
    {
      ours: new MultiStepLR(lr, { milestones: [2, 5, 5, 9], gamma: 0.3 }),
      lr,
      steps: 15,
      torch: { kind: "MultiStepLR", args: { milestones: [2, 5, 5, 9], gamma: 0.3 } },
    },
    {
      ours: new ExponentialLR(lr, { gamma: 0.93 }),
      lr,
      steps: 200,
      torch: { kind: "ExponentialLR", args: { gamma: 0.93 } },
    },
    {
      ours: new CosineAnnealingLR(lr, { tMax: 10 }),
      lr,
      steps: 25, // through 0 at tMax (exactly 0 in both) and back up
      torch: { kind: "CosineAnnealingLR", args: { T_max: 10 } },
    },
    {
      ours: new CosineAnnealingLR(lr, { tMax: 7, etaMin: 0.001 }),
      lr,
      steps: 40, // past tMax: back up and down again
      torch: { kind: "CosineAnnealingLR", args: { T_max: 7, eta_min: 0.001 } },
    },
    { ours: new LinearLR(lr), lr, steps: 10, torch: { kind: "LinearLR", args: {} } },
    {
      ours: new LinearLR(lr, { startFactor: 0.25, endFactor: 0.5, totalIters: 8 }),
      lr,
      steps: 12,
      torch: { kind: "LinearLR", args: { start_factor: 0.25, end_factor: 0.5, total_iters: 8 } },
    },
    {
      ours: new OneCycleLR(0.5, { totalSteps: 100 }),
      lr,
      steps: 100,
      torch: { kind: "OneCycleLR", args: { max_lr: 0.5, total_steps: 100, cycle_momentum: false } },
    },
    {
      ours: new OneCycleLR(0.5, {
        totalSteps: 37,
        pctStart: 0.25,
        threePhase: true,
        annealStrategy: "linear",
      }),
      lr,
      steps: 37,
      torch: {
        kind: "OneCycleLR",
        args: {
          max_lr: 0.5,
          total_steps: 37,
          pct_start: 0.25,
          three_phase: true,
          anneal_strategy: "linear",
          cycle_momentum: false,
        },
      },
    },
    {
      ours: new SequentialLR([
        new LinearLR(lr, { startFactor: 0.1, totalIters: 4 }),
        new CosineAnnealingLR(lr, { tMax: 12, etaMin: 0.002 }),
        new StepLR(lr, { stepSize: 2, gamma: 0.5 }),
      ], { milestones: [4, 10] }),
      lr,
      steps: 20,
      torch: {
        kind: "SequentialLR",
        args: { milestones: [4, 10] },
        children: [
          { kind: "LinearLR", args: { start_factor: 0.1, total_iters: 4 } },
          { kind: "CosineAnnealingLR", args: { T_max: 12, eta_min: 0.002 } },
          { kind: "StepLR", args: { step_size: 2, gamma: 0.5 } },
        ],
      },
    },
  ];
}

/** PyTorch's lr after construction and after each step, per case. */
async function torchLrs(
  spec: { lr: number; steps: number; torch: TorchCase }[],
): Promise<{ torch: string; results: number[][] }> {
  const child = new Deno.Command(PYTHON, {
    args: ["tests/torch/schedulers.py"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  const cases = spec.map((c) => ({ lr: c.lr, steps: c.steps, ...c.torch }));
  await w.write(new TextEncoder().encode(JSON.stringify({ cases })));
  await w.close();
  const out = await child.output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const missing = await torchMissing();
if (missing) console.log(`schedulers vs PyTorch ignored: ${missing}`);

Deno.test({
  name: "schedulers: every value matches a live PyTorch 1.13 run within rtol 1e-12",
  ignore: missing !== null,
  fn: async () => {
    const all = cases();
    const { torch, results } = await torchLrs(all);
    for (const [k, c] of all.entries()) {
      const want = results[k];
      assert.equal(want.length, c.steps + 1);
      for (const [t, w] of want.entries()) {
        const got = c.ours.lrAt(t);
        assert.ok(
          Math.abs(got - w) <= 1e-12 * Math.abs(w),
          `${c.ours.name} (${JSON.stringify(c.torch.args)}) step ${t}: ${got}, torch ${torch} ${w}`,
        );
      }
    }
  },
});

Deno.test("schedulers: lrAt is a pure function of the step (any order, repeated)", () => {
  const a = new CosineAnnealingLR(0.1, { tMax: 7, etaMin: 0.001 });
  const b = new CosineAnnealingLR(0.1, { tMax: 7, etaMin: 0.001 });
  const late = a.lrAt(30);
  for (let t = 0; t <= 30; t++) b.lrAt(t);
  assert.equal(b.lrAt(30), late);
  assert.equal(a.lrAt(3), b.lrAt(3));
});

Deno.test("schedulers: bad options are refused naming the option and its value", () => {
  const cases: [() => unknown, RegExp][] = [
    [
      () => new StepLR(0.1, { stepSize: 0 }),
      /Cannot create StepLR: stepSize must be a positive integer: current value is 0/,
    ],
    [
      () => new StepLR(-1, { stepSize: 2 }),
      /Cannot create StepLR: lr must be a finite number >= 0: current value is -1/,
    ],
    [
      () => new MultiStepLR(0.1, { milestones: [5, 3] }),
      /Cannot create MultiStepLR: milestones must be ascending positive integers: current value is \[5,3\]/,
    ],
    [
      () => new ExponentialLR(0.1, { gamma: NaN }),
      /Cannot create ExponentialLR: gamma .*current value is NaN/,
    ],
    [
      () => new CosineAnnealingLR(0.1, { tMax: 2.5 }),
      /Cannot create CosineAnnealingLR: tMax must be a positive integer: current value is 2.5/,
    ],
    [
      () => new LinearLR(0.1, { startFactor: 0 }),
      /Cannot create LinearLR: startFactor must be in \(0, 1\]: current value is 0/,
    ],
    [
      () => new LinearLR(0.1, { endFactor: 1.5 }),
      /Cannot create LinearLR: endFactor must be in \[0, 1\]: current value is 1.5/,
    ],
    [
      () => new OneCycleLR(0.1, { totalSteps: 0 }),
      /Cannot create OneCycleLR: totalSteps must be a positive integer: current value is 0/,
    ],
    [
      () => new OneCycleLR(0.1, { totalSteps: 10, pctStart: 1.2 }),
      /Cannot create OneCycleLR: pctStart must be in \[0, 1\]: current value is 1.2/,
    ],
    [
      () => new SequentialLR([new LinearLR(0.1)], { milestones: [3] }),
      /Cannot create SequentialLR: milestones must number one fewer than the 1 schedulers: current value is \[3\]/,
    ],
    [
      () => new StepLR(0.1, { stepSize: 2 }).lrAt(-1),
      /Cannot compute StepLR.lrAt: step must be an integer >= 0: current value is -1/,
    ],
    [
      () => new OneCycleLR(0.1, { totalSteps: 10 }).lrAt(11),
      /Cannot compute OneCycleLR.lrAt: step must be <= totalSteps \(10\): current value is 11/,
    ],
  ];
  for (const [f, re] of cases) assert.throws(f, re);
});

// ---- fit with a scheduler. ----

/** `count` random images with random labels (an LCG, independent of the code under test). */
function syntheticSet(count: number, seed: number): ImageSet {
  const labels = lcgBytes(seed + 1000, count).map((b) => b % 10);
  return { images: lcgBytes(seed, count * 3072), labels, count };
}

interface ScheduledRun {
  epochs: number;
  scheduler: () => LrScheduler;
  interval?: "epoch" | "step";
  encodeAhead?: boolean;
  dir?: string;
  resume?: boolean;
  /** Abort (through the signal, from onEpoch) once this epoch is done. */
  abortAfter?: number;
}

interface ScheduledResult {
  history: History;
  /** optimizer.lr as onEpoch sees it, per epoch. */
  lrs: number[];
  /** The state dict's bytes after epoch 1 and at the end. */
  afterFirst: Record<string, Uint8Array>;
  end: Record<string, Uint8Array>;
}

const bytesOf = (a: ArrayBufferView) =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();

async function stateBytes(model: Sequential): Promise<Record<string, Uint8Array>> {
  const s = await model.stateDict();
  return Object.fromEntries(Object.entries(s).map(([k, t]) => [k, bytesOf(t.data)]));
}

/** The plain lecture model with Adam, 128 images in batches of 32 (4 steps an epoch). */
async function scheduledFit(
  gpu: Gpu,
  sets: { train: GpuDataset; val: GpuDataset },
  o: ScheduledRun,
): Promise<ScheduledResult> {
  manualSeed(0);
  const model = lectureModel("plain").to(gpu);
  const optimizer = makeOptimizer("adam", model, 1e-3);
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, sets.train, { batchSize: 32, shuffle: true, seed: 0 });
  const val = new Loader(gpu, sets.val, { batchSize: 32, shuffle: false });
  const controller = new AbortController();
  const lrs: number[] = [];
  let afterFirst: Record<string, Uint8Array> = {};
  try {
    const history = await fit(model, {
      train,
      val,
      epochs: o.epochs,
      loss,
      optimizer,
      checkpointDir: o.dir,
      resume: o.resume,
      signal: controller.signal,
      progress: false,
      stepsPerSubmit: 2,
      encodeAhead: o.encodeAhead,
      scheduler: { scheduler: o.scheduler(), interval: o.interval },
      onEpoch: async (record) => {
        lrs.push(optimizer.lr);
        if (record.epoch === 1) afterFirst = await stateBytes(model);
        if (record.epoch === o.abortAfter) controller.abort();
      },
    });
    return { history, lrs, afterFirst, end: await stateBytes(model) };
  } finally {
    for (const x of [train, val, loss, optimizer, model]) x.dispose();
  }
}

function withSets(
  name: string,
  fn: (gpu: Gpu, sets: { train: GpuDataset; val: GpuDataset }) => Promise<void>,
): void {
  gpuTest(name, async (gpu) => {
    const sets = {
      train: GpuDataset.upload(gpu, syntheticSet(128, 1)),
      val: GpuDataset.upload(gpu, syntheticSet(64, 2)),
    };
    try {
      await fn(gpu, sets);
    } finally {
      sets.train.dispose();
      sets.val.dispose();
    }
  });
}

withSets(
  "fit: a per-epoch StepLR sets each epoch's rate, eager and encoded ahead",
  async (gpu, sets) => {
    const make = () => new StepLR(1e-3, { stepSize: 2, gamma: 0.5 });
    const want = [0, 1, 2, 3].map((e) => make().lrAt(e));
    const runs = [];
    for (const encodeAhead of [false, true]) {
      const r = await scheduledFit(gpu, sets, { epochs: 4, scheduler: make, encodeAhead });
      assert.deepEqual(r.lrs, want, `encodeAhead ${encodeAhead}: optimizer.lr per epoch`);
      runs.push(r);
    }
    assert.deepEqual(withoutTimes(runs[1].history), withoutTimes(runs[0].history), "same history");
    assert.deepEqual(runs[1].end, runs[0].end, "same weights");
  },
);

withSets(
  "fit: the epoch rate reaches the GPU (lr 0 from epoch 2 freezes Adam's weights)",
  async (gpu, sets) => {
    for (const encodeAhead of [false, true]) {
      const r = await scheduledFit(gpu, sets, {
        epochs: 3,
        scheduler: () => new StepLR(1e-3, { stepSize: 1, gamma: 0 }),
        encodeAhead,
      });
      assert.deepEqual(r.lrs, [1e-3, 0, 0]);
      assert.deepEqual(r.end, r.afterFirst, `encodeAhead ${encodeAhead}: weights after epoch 1`);
    }
  },
);

for (const interval of ["epoch", "step"] as const) {
  withSets(
    `fit: a per-${interval} schedule stopped after epoch 2 and resumed equals one run`,
    async (gpu, sets) => {
      const root = await Deno.makeTempDir({ prefix: `wgnn-sched-${interval}-` });
      const scheduler = () =>
        new SequentialLR([
          new LinearLR(1e-3, { startFactor: 0.2, totalIters: 3 }),
          new CosineAnnealingLR(1e-3, { tMax: 10 }),
        ], { milestones: [interval === "step" ? 6 : 1] });
      try {
        const base = { epochs: 4, scheduler, interval };
        const whole = await scheduledFit(gpu, sets, { ...base, dir: join(root, "whole") });
        const dir = join(root, "parts");
        const first = await scheduledFit(gpu, sets, { ...base, dir, abortAfter: 2 });
        assert.equal(first.history.stopped, "aborted");
        const resumed = await scheduledFit(gpu, sets, { ...base, dir, resume: true });
        assert.deepEqual(withoutTimes(resumed.history).epochs, withoutTimes(whole.history).epochs);
        assert.deepEqual(resumed.end, whole.end, "state dict");
        assert.deepEqual(resumed.lrs, whole.lrs.slice(2), "rates of epochs 3 and 4");
        for (
          const n of ["resume.safetensors", "last.safetensors", "best.safetensors", "history.json"]
        ) {
          const read = async (d: string) => {
            const bytes = await Deno.readFile(join(d, n));
            return n.endsWith(".json")
              ? withoutTimes(JSON.parse(new TextDecoder().decode(bytes)))
              : comparable(n, bytes);
          };
          assert.deepEqual(await read(dir), await read(join(root, "whole")), n);
        }
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  );
}

withSets(
  "fit: a per-step OneCycleLR trains with finite losses and ends at PyTorch's rate",
  async (gpu, sets) => {
    const epochs = 3, steps = 4 * epochs;
    const r = await scheduledFit(gpu, sets, {
      epochs,
      scheduler: () => new OneCycleLR(3e-3, { totalSteps: steps }),
      interval: "step",
    });
    for (const e of r.history.epochs) assert.ok(Number.isFinite(e.trainLoss), `epoch ${e.epoch}`);
    // After the last epoch, the rate is the last step's: lrAt(steps - 1).
    let want = new OneCycleLR(3e-3, { totalSteps: steps }).lrAt(steps - 1);
    if (missing === null) {
      const { results } = await torchLrs([{
        lr: 3e-3,
        steps,
        torch: {
          kind: "OneCycleLR",
          args: { max_lr: 3e-3, total_steps: steps, cycle_momentum: false },
        },
      }]);
      want = results[0][steps - 1];
    }
    const got = r.lrs.at(-1)!;
    assert.ok(Math.abs(got - want) <= 1e-12 * want, `last rate ${got}, want ${want}`);
    assert.equal(r.lrs.length, epochs);
  },
);

Deno.test("fit: a scheduler interval other than epoch or step is refused", async () => {
  const options = {
    scheduler: { scheduler: new StepLR(0.1, { stepSize: 1 }), interval: "hour" },
    epochs: 1,
  } as unknown as Parameters<typeof fit>[1];
  await assert.rejects(
    fit(null as unknown as Sequential, options),
    /Cannot fit: scheduler.interval must be "epoch" or "step": current value is hour/,
  );
});
