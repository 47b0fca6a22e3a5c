/**
 * `fit`'s encode-ahead schedule (the default on hardware adapters: the next epoch is encoded
 * while the GPU runs this one, and submitted once this epoch's results are in) against the
 * eager schedule: identical histories, checkpoint files and optimizer state; early stopping,
 * aborts and a NaN stop at the same epoch with the same files, and the unsubmitted epoch's
 * steps are taken back from the optimizer's count.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Adam } from "../lib/optim/adam.ts";
import { fit, type FitOptions, NonFiniteLossError } from "../lib/train/fit.ts";
import { lectureModel, type Variant } from "../lib/train/experiment.ts";
import type { History } from "../lib/train/history.ts";
import { gpuTest } from "./helpers.ts";
import { comparable, withoutTimes } from "./fixtures/history.ts";
import { randomImages as images } from "./fixtures/random.ts";

type Gpu = Parameters<Parameters<typeof gpuTest>[1]>[0];

interface Outcome {
  history: History | null;
  error: Error | null;
  files: Map<string, Uint8Array>;
  stepCount: number;
  weights: Float32Array[];
}

/** One quiet `fit` of `variant` on 128 training and 64 validation images, batch 32. */
async function run(
  gpu: Gpu,
  variant: Variant,
  encodeAhead: boolean,
  options: Partial<FitOptions> & { lr?: number } = {},
): Promise<Outcome> {
  const trainSet = GpuDataset.upload(gpu, images(128, 1));
  const valSet = GpuDataset.upload(gpu, images(64, 2));
  manualSeed(5);
  const model = lectureModel(variant).to(gpu);
  const optimizer = new Adam(model.parameters(), { lr: options.lr ?? 1e-3 });
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, trainSet, { batchSize: 32, shuffle: true, seed: 3 });
  const val = new Loader(gpu, valSet, { batchSize: 32 });
  const dir = await Deno.makeTempDir({ prefix: "wgnn-ahead-" });
  try {
    let history: History | null = null;
    let error: Error | null = null;
    try {
      history = await fit(model, {
        train,
        val,
        epochs: 5,
        loss,
        optimizer,
        progress: false,
        checkpointDir: dir,
        encodeAhead,
        ...options,
      });
    } catch (e) {
      error = e as Error;
    }
    const files = new Map<string, Uint8Array>();
    for await (const f of Deno.readDir(dir)) {
      if (f.name.endsWith(".safetensors")) {
        files.set(f.name, await Deno.readFile(join(dir, f.name)));
      }
    }
    const state = await model.stateDict();
    const weights = Object.values(state).map((t) => Float32Array.from(t.data, Number));
    return { history, error, files, stepCount: optimizer.stepCount, weights };
  } finally {
    for (const x of [train, val, loss, optimizer, model, trainSet, valSet]) x.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

function assertSame(a: Outcome, b: Outcome, what: string): void {
  assert.deepEqual(
    b.history && withoutTimes(b.history),
    a.history && withoutTimes(a.history),
    `${what}: history`,
  );
  assert.equal(b.error?.message, a.error?.message, `${what}: error`);
  assert.deepEqual([...b.files.keys()].sort(), [...a.files.keys()].sort(), `${what}: files`);
  for (const [name, bytes] of a.files) {
    assert.deepEqual(
      comparable(name, b.files.get(name)!),
      comparable(name, bytes),
      `${what}: ${name} differs`,
    );
  }
  assert.equal(b.stepCount, a.stepCount, `${what}: optimizer.stepCount`);
  assert.deepEqual(b.weights, a.weights, `${what}: the model's final state`);
}

gpuTest("encode-ahead trains exactly as the eager schedule (plain, bn, dropout)", async (gpu) => {
  for (const variant of ["plain", "bn", "dropout"] as const) {
    const eager = await run(gpu, variant, false);
    const ahead = await run(gpu, variant, true);
    assert.equal(eager.history?.epochs.length, 5);
    assert.equal(eager.stepCount, 5 * 4);
    assert(eager.files.has("best.safetensors") && eager.files.has("resume.safetensors"));
    assertSame(eager, ahead, variant);
  }
});

gpuTest(
  "encode-ahead: early stopping keeps the stopping epoch's weights and step count",
  async (gpu) => {
    // lr 0.05 overfits 128 random images at once: the validation loss rises from epoch 2.
    const options = { lr: 0.05, earlyStopping: { patience: 1 } };
    const eager = await run(gpu, "plain", false, options);
    const ahead = await run(gpu, "plain", true, options);
    assert.equal(eager.history?.stopped, "early-stopping");
    const epochs = eager.history!.epochs.length;
    assert(epochs < 5, `stopped after ${epochs} epochs`);
    assert.equal(eager.stepCount, epochs * 4);
    assertSame(eager, ahead, "early stopping");
  },
);

gpuTest("encode-ahead: an abort stops between epochs with the last epoch saved", async (gpu) => {
  const stopAt = (controller: AbortController) => ({
    signal: controller.signal,
    checkpointSeconds: 3600,
    onEpoch: (record: { epoch: number }) => {
      if (record.epoch === 2) controller.abort();
    },
  });
  const eager = await run(gpu, "dropout", false, stopAt(new AbortController()));
  const ahead = await run(gpu, "dropout", true, stopAt(new AbortController()));
  assert.equal(ahead.history?.stopped, "aborted");
  assert.equal(ahead.history?.epochs.length, 2);
  assert.equal(ahead.stepCount, 2 * 4, "the encoded third epoch's steps were taken back");
  assertSame(eager, ahead, "abort");
});

gpuTest("encode-ahead: a NaN stops at the same epoch, batch and step", async (gpu) => {
  const eager = await run(gpu, "plain", false, { lr: 1e30 });
  const ahead = await run(gpu, "plain", true, { lr: 1e30 });
  assert(eager.error instanceof NonFiniteLossError, `got ${eager.error}`);
  assert.equal(eager.stepCount, ahead.stepCount);
  assert.equal(ahead.error?.message, eager.error.message);
  assert.deepEqual([...ahead.files.keys()], []);
});
