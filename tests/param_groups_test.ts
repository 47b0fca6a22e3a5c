/**
 * Parameter groups: one optimizer over groups with their own options equals, bit for bit, one
 * optimizer per group with those options (PyTorch's param groups are independent apart from
 * the shared step count); setLr scales every group's rate alike; the state keys count tensors
 * over all groups and resume exactly; clipGradNorm takes the norm over every group; bad groups
 * are refused by name.
 */

import assert from "node:assert/strict";
import { Adam, AdamW } from "../lib/optim/adam.ts";
import type { TensorPair } from "../lib/optim/group.ts";
import type { Optimizer } from "../lib/optim/optimizer.ts";
import { RMSprop } from "../lib/optim/rmsprop.ts";
import { SGD } from "../lib/optim/sgd.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { assertWithin, gpuTest, randomArray } from "./helpers.ts";

type Gpu = Parameters<Parameters<typeof gpuTest>[1]>[0];

/** Tensors of the first group and of the second (vec4 and scalar lengths in each). */
const SIZES = [[64, 37], [12, 5]];

function makePairs(gpu: Gpu): TensorPair[][] {
  return SIZES.map((sizes, g) =>
    sizes.map((n, i) => ({
      value: Tensor.from(gpu, randomArray(n, 10 * g + i + 1), [n], `w${g}.${i}`),
      grad: Tensor.empty(gpu, [n], "f32", `g${g}.${i}`),
    }))
  );
}

function disposePairs(groups: TensorPair[][]): void {
  for (const p of groups.flat()) [p.value, p.grad].forEach((t) => t.dispose());
}

/**
 * Steps `count` times with gradients drawn per (step, tensor); `lrAt(s)`, when given, is set
 * before step s on every optimizer. Returns the final values, group by group.
 */
async function run(
  gpu: Gpu,
  make: (groups: TensorPair[][]) => Optimizer[],
  count: number,
  lrAt?: (s: number) => number,
): Promise<Float32Array[]> {
  const groups = makePairs(gpu);
  const optimizers = make(groups);
  try {
    for (let s = 0; s < count; s++) {
      groups.flat().forEach((p, i) => p.grad.write(randomArray(p.value.numel, 100 * s + i, -1, 1)));
      if (lrAt) { for (const o of optimizers) o.setLr(lrAt(s)); }
      const enc = new StepEncoder(gpu, `step ${s}`);
      for (const o of optimizers) o.step(enc);
      enc.submit();
    }
    return await Promise.all(groups.flat().map((p) => p.value.toFloat32()));
  } finally {
    for (const o of optimizers) o.dispose();
    disposePairs(groups);
  }
}

/**
 * Grouped optimizers, the same groups as separate optimizers with the same options, and one
 * optimizer with group 0's options over every tensor (to show the groups' own options matter).
 */
interface Case {
  grouped: (g: TensorPair[][]) => Optimizer;
  separate: (g: TensorPair[][]) => Optimizer[];
  whole: (all: TensorPair[]) => Optimizer;
}

const CASES: Record<string, Case> = {
  "AdamW: no weight decay in group 1": {
    grouped: (g) =>
      new AdamW([{ params: g[0] }, { params: g[1], weightDecay: 0 }], {
        lr: 0.01,
        weightDecay: 0.1,
      }),
    separate: (g) => [
      new AdamW(g[0], { lr: 0.01, weightDecay: 0.1 }),
      new AdamW(g[1], { lr: 0.01, weightDecay: 0 }),
    ],
    whole: (all) => new AdamW(all, { lr: 0.01, weightDecay: 0.1 }),
  },
  "Adam: own lr and amsgrad in group 1": {
    grouped: (g) =>
      new Adam([{ params: g[0] }, { params: g[1], lr: 0.003, amsgrad: true }], { lr: 0.01 }),
    separate: (g) => [new Adam(g[0], { lr: 0.01 }), new Adam(g[1], { lr: 0.003, amsgrad: true })],
    whole: (all) => new Adam(all, { lr: 0.01 }),
  },
  "SGD: momentum in group 0 only": {
    grouped: (g) =>
      new SGD([{ params: g[0], momentum: 0.9, nesterov: true }, { params: g[1] }], { lr: 0.1 }),
    separate: (g) => [
      new SGD(g[0], { lr: 0.1, momentum: 0.9, nesterov: true }),
      new SGD(g[1], { lr: 0.1 }),
    ],
    whole: (all) => new SGD(all, { lr: 0.1, momentum: 0.9, nesterov: true }),
  },
  "RMSprop: centered group 1 with its own lr": {
    grouped: (g) =>
      new RMSprop([{ params: g[0] }, { params: g[1], centered: true, lr: 0.02 }], { lr: 0.01 }),
    separate: (g) => [
      new RMSprop(g[0], { lr: 0.01 }),
      new RMSprop(g[1], { lr: 0.02, centered: true }),
    ],
    whole: (all) => new RMSprop(all, { lr: 0.01 }),
  },
};

gpuTest(
  "param groups: equal one optimizer per group with the group's options, bit for bit",
  async (gpu) => {
    for (const [name, c] of Object.entries(CASES)) {
      const grouped = await run(gpu, (g) => [c.grouped(g)], 3);
      const separate = await run(gpu, c.separate, 3);
      assert.deepEqual(grouped, separate, name);
      // The groups' options matter: all of them under group 0's options gives another result.
      const uniform = await run(gpu, (g) => [c.whole(g.flat())], 3);
      assert.notDeepEqual(grouped, uniform, `${name}: the group's own options changed nothing`);
    }
  },
);

gpuTest("param groups: setLr scales each group's rate by its lr / the base lr", async (gpu) => {
  const base = 0.01;
  const own = 0.003;
  const lrAt = (s: number) => base * 0.5 ** s;
  const grouped = await run(
    gpu,
    (g) => [new Adam([{ params: g[0] }, { params: g[1], lr: own }], { lr: base })],
    3,
    lrAt,
  );
  // The same schedule applied to each group's own rate (PyTorch's StepLR over two groups).
  const groups = makePairs(gpu);
  const separate: Optimizer[] = [
    new Adam(groups[0], { lr: base }),
    new Adam(groups[1], { lr: own }),
  ];
  try {
    for (let s = 0; s < 3; s++) {
      groups.flat().forEach((p, i) => p.grad.write(randomArray(p.value.numel, 100 * s + i, -1, 1)));
      separate[0].setLr(lrAt(s));
      separate[1].setLr(own * 0.5 ** s);
      const enc = new StepEncoder(gpu, `step ${s}`);
      for (const o of separate) o.step(enc);
      enc.submit();
    }
    const values = await Promise.all(groups.flat().map((p) => p.value.toFloat32()));
    // own · 0.5^s and (base · 0.5^s) · own / base agree to an f64 ulp, so the f32 rates match.
    assert.deepEqual(grouped, values);
  } finally {
    for (const o of separate) o.dispose();
    disposePairs(groups);
  }
  const probe = makePairs(gpu);
  const adam = new Adam([{ params: probe[0] }, { params: probe[1], lr: own }], { lr: base });
  try {
    assert.deepEqual(adam.lrs, [base, own]);
    adam.setLr(base);
    assert.deepEqual(adam.lrs, [base, own], "setLr(base) restores every group's own rate exactly");
    adam.setLr(base / 10);
    assertWithin(adam.lrs, [base / 10, own / 10], 1e-18, "lrs");
    assert.equal(adam.lr, base / 10);
  } finally {
    adam.dispose();
    disposePairs(probe);
  }
});

gpuTest(
  "param groups: state keys count tensors over all groups, and resume exactly",
  async (gpu) => {
    const make = (g: TensorPair[][]) =>
      new SGD([{ params: g[0], momentum: 0.9 }, { params: g[1], momentum: 0.5 }], { lr: 0.1 });
    const straight = await run(gpu, (g) => [make(g)], 3);
    const groups = makePairs(gpu);
    const first = make(groups);
    let saved: Record<string, Float32Array>;
    try {
      assert.deepEqual(Object.keys(first.stateTensors()).sort(), [
        "0.momentum_buffer",
        "1.momentum_buffer",
        "2.momentum_buffer",
        "3.momentum_buffer",
        "step",
      ]);
      for (let s = 0; s < 2; s++) {
        groups.flat().forEach((p, i) =>
          p.grad.write(randomArray(p.value.numel, 100 * s + i, -1, 1))
        );
        const enc = new StepEncoder(gpu, `step ${s}`);
        first.step(enc);
        enc.submit();
      }
      saved = await first.readState();
      assert.deepEqual(saved.step, new Float32Array([2]));
    } finally {
      first.dispose();
    }
    // A fresh optimizer over the same tensors, loaded, takes the third step.
    const second = make(groups);
    try {
      second.loadState(saved);
      groups.flat().forEach((p, i) => p.grad.write(randomArray(p.value.numel, 200 + i, -1, 1)));
      const enc = new StepEncoder(gpu, "step 2");
      second.step(enc);
      enc.submit();
      const values = await Promise.all(groups.flat().map((p) => p.value.toFloat32()));
      assert.deepEqual(values, straight);
      // Both groups' counters were restored (group 1's momentum would restart at step 1 otherwise).
      assert.deepEqual((await second.readState()).step, new Float32Array([3]));
    } finally {
      second.dispose();
      disposePairs(groups);
    }
  },
);

gpuTest("param groups: clipGradNorm takes the norm over every group", async (gpu) => {
  const groups = makePairs(gpu);
  const opt = new SGD([{ params: groups[0] }, { params: groups[1], lr: 0.05 }], {
    lr: 0.1,
    clipGradNorm: 1,
  });
  try {
    const grads = groups.flat().map((p, i) => randomArray(p.value.numel, 300 + i, -1, 1));
    groups.flat().forEach((p, i) => p.grad.write(grads[i]));
    const enc = new StepEncoder(gpu, "step");
    opt.step(enc);
    enc.submit();
    const norm = Math.sqrt(grads.reduce((s, g) => g.reduce((a, x) => a + x * x, s), 0));
    assertWithin([await opt.readGradNorm()], [norm], norm * 1e-6, "total norm");
  } finally {
    opt.dispose();
    disposePairs(groups);
  }
});

gpuTest("param groups: bad groups are refused by name", (gpu) => {
  const g = makePairs(gpu);
  try {
    const cases: [() => unknown, RegExp][] = [
      [
        () => new Adam([{ params: g[0] }, { params: [g[0][1], ...g[1]] }]),
        /param group 1, params\[0\] overlaps param group 0, params\[1\]: a parameter may appear in one group only/,
      ],
      [
        () => new Adam([{ params: g[0], weight_decay: 0 } as never]),
        /param group 0 has an unknown option "weight_decay" \(options: lr, betas, eps, weightDecay, amsgrad, maximize\)/,
      ],
      [
        () => new Adam([{ params: g[0], clipGradNorm: 1 } as never]),
        /param group 0 sets clipGradNorm, which applies to the whole optimizer/,
      ],
      [
        () => new SGD([{ params: g[0] }, ...g[1]] as never, { lr: 0.1 }),
        /params mixes parameter groups/,
      ],
      [
        () => new SGD([{ params: g[0] }, { params: g[1], lr: 0.1 }], { lr: 0 }),
        /param group 1 has lr 0.1 but the base lr is 0/,
      ],
      [
        () => new AdamW([{ params: g[0] }, { params: g[1], betas: [0.9, 1] }]),
        /Cannot create AdamW: param group 1: betas\[1\] must be in \[0, 1\): current value is 1/,
      ],
      [
        () => new SGD([{ params: [] }], { lr: 0.1 }),
        /Cannot create SGD \(param group 0\): params must be a ParameterArena or a non-empty array/,
      ],
    ];
    for (const [make, message] of cases) assert.throws(make, message);
  } finally {
    disposePairs(g);
  }
  return Promise.resolve();
});
