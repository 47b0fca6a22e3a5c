/**
 * Gradient accumulation in `fit` (`accumulate: k`): with a mean loss, k batches of B rows
 * accumulated give the gradient of one batch of k·B rows, so a run with `accumulate: 2` on
 * batches of 16 must end where a run without it on the same rows in batches of 32 ends (to
 * float32 rounding: the sums are formed in another order); the optimizer steps once per window,
 * the last short window included; the setting is recorded, a resume with another is refused,
 * and bad values are refused by name. The optimizer's clipping and parameter groups are
 * recorded in the run's settings too, so a resume with other ones is refused. (PyTorch's own accumulation loop is compared in
 * tests/fit_parity_test.ts.)
 */

import assert from "node:assert/strict";
import type { Gpu } from "../lib/gpu/device.ts";
import { Tanh } from "../lib/nn/activations.ts";
import { MSELoss } from "../lib/nn/elementwise_loss.ts";
import { Linear } from "../lib/nn/layers.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { SGD, type SGDOptions } from "../lib/optim/sgd.ts";
import { fit, type FitOptions } from "../lib/train/fit.ts";
import type { BatchSource } from "../lib/train/schedule.ts";
import { Tensor } from "../lib/tensor.ts";
import { assertWithin, gpuTest, randomArray } from "./helpers.ts";

const FEATURES = 6;
const OUTPUTS = 3;

/** Batches of `rows` rows over fixed samples, the same every epoch. */
class Rows implements BatchSource {
  readonly batchesPerEpoch: number;
  readonly #batches: { x: Tensor; y: Tensor }[] = [];

  constructor(gpu: Gpu, x: Float32Array, y: Float32Array, rows: number) {
    const samples = x.length / FEATURES;
    for (let r = 0; r < samples; r += rows) {
      const n = Math.min(rows, samples - r);
      this.#batches.push({
        x: Tensor.from(gpu, x.slice(r * FEATURES, (r + n) * FEATURES), [n, FEATURES], "x"),
        y: Tensor.from(gpu, y.slice(r * OUTPUTS, (r + n) * OUTPUTS), [n, OUTPUTS], "y"),
      });
    }
    this.batchesPerEpoch = this.#batches.length;
  }

  startEpoch(): void {}

  encodeBatchFor(_enc: unknown, index: number): { x: Tensor; y: Tensor } {
    return this.#batches[index];
  }

  [Symbol.dispose](): void {
    for (const { x, y } of this.#batches) [x, y].forEach((t) => t.dispose());
  }
}

/** Trains a small regression MLP from seed 3's weights; returns its final state and steps. */
async function train(
  gpu: Gpu,
  samples: number,
  rows: number,
  options: Partial<FitOptions> = {},
  momentum = 0.9,
  optimizerOptions: Partial<SGDOptions> & { groups?: boolean } = {},
): Promise<{ state: Float32Array[]; steps: number; scale: number }> {
  manualSeed(3);
  const model = new Sequential(new Linear(FEATURES, 8), new Tanh(), new Linear(8, OUTPUTS)).to(gpu);
  const x = randomArray(samples * FEATURES, 1, -1, 1);
  const y = randomArray(samples * OUTPUTS, 2, -1, 1);
  using data = new Rows(gpu, x, y, rows);
  const { groups, ...extra } = optimizerOptions;
  const params = [...model.parameters()];
  using optimizer = groups
    ? new SGD([{ params: params.slice(0, 2) }, { params: params.slice(2), lr: 0.1 }], {
      lr: 0.2,
      momentum,
      ...extra,
    })
    : new SGD(model.parameters(), { lr: 0.2, momentum, ...extra });
  try {
    await fit(model, {
      train: data,
      epochs: 3,
      loss: new MSELoss(),
      optimizer,
      progress: false,
      ...options,
    });
    const state = await model.stateDict();
    return {
      state: Object.values(state).map((t) => t.data as Float32Array),
      steps: optimizer.stepCount,
      scale: optimizer.gradScale,
    };
  } finally {
    model.dispose();
  }
}

gpuTest("accumulate: 2 batches of 16 step like one batch of 32", async (gpu) => {
  const big = await train(gpu, 128, 32);
  const accumulated = await train(gpu, 128, 16, { accumulate: 2 });
  const small = await train(gpu, 128, 16);
  assert.equal(big.steps, 3 * 4);
  assert.equal(accumulated.steps, 3 * 4, "one optimizer step per window of 2 batches");
  assert.equal(small.steps, 3 * 8);
  accumulated.state.forEach((t, i) => assertWithin(t, big.state[i], 2e-6, `tensor ${i}`));
  // Without accumulation the same batches of 16 take twice the steps and end elsewhere.
  const moved = small.state.some((t, i) => t.some((v, j) => Math.abs(v - big.state[i][j]) > 1e-3));
  assert.ok(moved, "accumulation made no difference");
  assert.equal(accumulated.scale, 1, "fit restores the optimizer's gradient scale");
});

gpuTest("accumulate: a short last window steps too, divided by k", async (gpu) => {
  // 80 rows in batches of 16 with k = 3: windows [0, 1, 2] and [3, 4] in each epoch. The first
  // window's gradient is the mean over its 48 rows; the last one's is (g3 + g4) / 3, 2/3 of the
  // mean over its 32 rows (PyTorch's loop divides every window by k). Plain SGD steps lr·g, so
  // the reference is a run on batches of 48 and 32 rows whose rate is lr·2/3 at every second
  // step. Chunks of 2 batches split the windows across submissions.
  const run = await train(gpu, 80, 16, { accumulate: 3, stepsPerSubmit: 2 }, 0);
  assert.equal(run.steps, 3 * 2);
  const rate = { name: "window", lrAt: (step: number) => step % 2 === 0 ? 0.2 : 0.2 * 2 / 3 };
  const reference = await train(
    gpu,
    80,
    48,
    { scheduler: { scheduler: rate, interval: "step" } },
    0,
  );
  run.state.forEach((t, i) => assertWithin(t, reference.state[i], 2e-6, `tensor ${i}`));
  // The 2/3 matters: the windows' mean gradients at the full rate end elsewhere.
  const unscaled = await train(gpu, 80, 48, {}, 0);
  const moved = unscaled.state.some((t, i) =>
    t.some((v, j) => Math.abs(v - reference.state[i][j]) > 1e-3)
  );
  assert.ok(moved, "the reference's 2/3 made no difference");
});

gpuTest("accumulate: a per-step scheduler counts optimizer steps", async (gpu) => {
  // 4 windows of 2 batches per epoch: step s of the run trains at rate(s), as on the 32-row run.
  const rate = { name: "decay", lrAt: (step: number) => 0.2 * 0.9 ** step };
  const scheduler = { scheduler: rate, interval: "step" as const };
  const accumulated = await train(gpu, 128, 16, { accumulate: 2, scheduler });
  const big = await train(gpu, 128, 32, { scheduler });
  accumulated.state.forEach((t, i) => assertWithin(t, big.state[i], 2e-6, `tensor ${i}`));
});

gpuTest(
  "accumulate: recorded in the run's settings; a resume with another is refused",
  async (gpu) => {
    const dir = await Deno.makeTempDir({ prefix: "wgnn-accumulate-" });
    try {
      await train(gpu, 64, 16, { accumulate: 2, checkpointDir: dir });
      const manifest = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
      assert.equal(manifest.settings.accumulate, 2);
      await assert.rejects(
        () => train(gpu, 64, 16, { accumulate: 4, checkpointDir: dir, resume: true, epochs: 4 }),
        /accumulate was 2, now 4/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

gpuTest("accumulate: a value that is not a positive integer is refused by name", async (gpu) => {
  for (const bad of [0, -1, 1.5, NaN]) {
    await assert.rejects(
      () => train(gpu, 32, 16, { accumulate: bad }),
      new RegExp(`Cannot fit: accumulate must be a positive integer: current value is ${bad}`),
    );
  }
});

gpuTest(
  "fit records the optimizer's clipping and groups; a resume with others is refused",
  async (gpu) => {
    const dir = await Deno.makeTempDir({ prefix: "wgnn-optimizer-settings-" });
    try {
      const first = { clipGradNorm: 0.5, clipGradValue: 2, groups: true };
      await train(gpu, 64, 16, { checkpointDir: dir }, 0.9, first);
      const { settings } = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
      assert.equal(settings.clipGradNorm, 0.5);
      assert.equal(settings.clipGradValue, 2);
      assert.match(settings.paramGroups, /^lr=0\.2 .* \|\| lr=0\.1 /);
      const resume = { checkpointDir: dir, resume: true, epochs: 4 };
      await assert.rejects(
        () => train(gpu, 64, 16, resume, 0.9, { ...first, clipGradNorm: 1 }),
        /clipGradNorm was 0.5, now 1/,
      );
      await assert.rejects(
        () => train(gpu, 64, 16, resume, 0.9, { ...first, groups: false }),
        /paramGroups was/,
      );
      // The same optimizer resumes.
      const resumed = await train(gpu, 64, 16, resume, 0.9, first);
      assert.equal(resumed.steps, 4 * 4);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
