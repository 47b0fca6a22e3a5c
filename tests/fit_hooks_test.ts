/**
 * `fit`'s step hooks and its `monitor`: `beforeUpdate` runs between backward and the optimizer
 * update (clearing the gradients there leaves plain SGD's weights untouched, while the same run
 * without the hook moves them), `afterUpdate` after it (a copy of the weights taken there equals
 * the final weights), each once per step with its epoch and batch; and `monitor: "valAccuracy"`
 * writes `best.safetensors` at the epoch of highest validation accuracy, stops early on it, is
 * recorded in the manifest and refused, before anything trains, for a loss without accuracy.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { MSELoss } from "../lib/nn/elementwise_loss.ts";
import { Adam } from "../lib/optim/adam.ts";
import { SGD } from "../lib/optim/sgd.ts";
import { fit, type FitOptions } from "../lib/train/fit.ts";
import { lectureModel } from "../lib/train/experiment.ts";
import type { StepInfo } from "../lib/train/step.ts";
import { readSafetensorsFile } from "../lib/io/safetensors_file.ts";
import { Tensor } from "../lib/tensor.ts";
import type { BatchSource } from "../lib/train/schedule.ts";
import { gpuTest } from "./helpers.ts";
import { randomImages as images } from "./fixtures/random.ts";

type Gpu = Parameters<Parameters<typeof gpuTest>[1]>[0];

/** The plain model trained 2 epochs of 4 batches with SGD, with the given hooks. */
async function trainPlain(
  gpu: Gpu,
  hooks: FitOptions["hooks"],
  probe?: (model: ReturnType<typeof lectureModel>) => void,
): Promise<{ before: Float32Array; after: Float32Array }> {
  const set = GpuDataset.upload(gpu, images(128, 1));
  manualSeed(7);
  const model = lectureModel("plain").to(gpu);
  const optimizer = new SGD(model.parameters(), { lr: 0.1 });
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, set, { batchSize: 32, shuffle: true, seed: 1 });
  try {
    probe?.(model);
    const before = await model.parameters().values.toFloat32();
    await fit(model, { train, epochs: 2, loss, optimizer, progress: false, hooks });
    const after = await model.parameters().values.toFloat32();
    return { before, after };
  } finally {
    for (const x of [train, loss, optimizer, model, set]) x.dispose();
  }
}

gpuTest("fit: beforeUpdate runs between backward and the update, once per step", async (gpu) => {
  const calls: StepInfo[] = [];
  let grads: Tensor | null = null;
  const cleared = await trainPlain(gpu, {
    beforeUpdate: (enc, info) => {
      calls.push(info);
      enc.commands().clearBuffer(grads!.buffer, grads!.byteOffset, grads!.byteLength);
    },
  }, (model) => grads = model.parameters().grads);
  assert.deepEqual(
    calls,
    [1, 2].flatMap((epoch) => [0, 1, 2, 3].map((batch) => ({ epoch, batch }))),
  );
  // With zero gradients at the update, SGD (no momentum, no decay) changes nothing.
  assert.deepEqual(cleared.after, cleared.before);
  // The control: the same run without the hook trains.
  const control = await trainPlain(gpu, undefined);
  assert.deepEqual(control.before, cleared.before);
  assert.notDeepEqual(control.after, control.before);
});

gpuTest("fit: afterUpdate sees the updated weights", async (gpu) => {
  let values: Tensor | null = null;
  let copy: Tensor | null = null;
  let count = 0;
  const run = await trainPlain(gpu, {
    afterUpdate: (enc) => {
      count++;
      enc.commands().copyBufferToBuffer(
        values!.buffer,
        values!.byteOffset,
        copy!.buffer,
        0,
        values!.byteLength,
      );
    },
  }, (model) => {
    values = model.parameters().values;
    copy = Tensor.empty(gpu, [values.numel], "f32", "weights after update");
  });
  try {
    assert.equal(count, 8);
    assert.deepEqual(await copy!.toFloat32(), run.after);
    assert.notDeepEqual(run.after, run.before);
  } finally {
    copy!.dispose();
  }
});

/** A BatchSource of fixed GPU batches. */
function fixed(batches: { x: Tensor; y: Tensor }[]): BatchSource {
  return {
    batchesPerEpoch: batches.length,
    startEpoch() {},
    encodeBatchFor: (_enc, index) => batches[index],
  };
}

gpuTest("fit: monitor valAccuracy picks best.safetensors and stops on accuracy", async (gpu) => {
  const trainSet = GpuDataset.upload(gpu, images(128, 1));
  const valSet = GpuDataset.upload(gpu, images(64, 2));
  manualSeed(5);
  const model = lectureModel("plain").to(gpu);
  // A high rate makes the validation accuracy move up and down on random labels.
  const optimizer = new Adam(model.parameters(), { lr: 3e-3 });
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, trainSet, { batchSize: 32, shuffle: true, seed: 3 });
  const val = new Loader(gpu, valSet, { batchSize: 32 });
  const dir = await Deno.makeTempDir({ prefix: "wgnn-monitor-" });
  try {
    const bestAt: number[] = [];
    const history = await fit(model, {
      train,
      val,
      epochs: 12,
      loss,
      optimizer,
      progress: false,
      checkpointDir: dir,
      monitor: "valAccuracy",
      earlyStopping: { patience: 2 },
      onEpoch: async (record) => {
        const best = await readSafetensorsFile(join(dir, "best.safetensors"));
        bestAt.push(Number(best.metadata?.epoch ?? NaN));
        assert.ok(record.valAccuracy !== undefined);
      },
    });
    // The twin of the rule: the best epoch so far is the first one of highest accuracy.
    const acc = history.epochs.map((e) => e.valAccuracy!);
    let best = -Infinity, bestEpoch = 0, since = 0;
    acc.forEach((a, i) => {
      if (a > best) [best, bestEpoch, since] = [a, i + 1, 0];
      else since++;
      assert.equal(bestAt[i], bestEpoch, `best.safetensors after epoch ${i + 1}`);
    });
    assert.equal(history.stopped === "early-stopping", since >= 2);
    if (history.epochs.length < 12) assert.equal(history.stopped, "early-stopping");
    const manifest = JSON.parse(await Deno.readTextFile(join(dir, "run.json")));
    assert.equal(manifest.settings.monitor, "valAccuracy");
  } finally {
    for (const x of [train, val, loss, optimizer, model, trainSet, valSet]) x.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

gpuTest("fit: monitor valAccuracy is refused for a loss without accuracy", async (gpu) => {
  manualSeed(1);
  const model = lectureModel("plain").to(gpu);
  const x = Tensor.from(gpu, new Float32Array(8 * 3072).fill(0.5), [8, 3072], "x");
  const y = Tensor.from(gpu, new Float32Array(8 * 10), [8, 10], "y");
  const loss = new MSELoss();
  const optimizer = new SGD(model.parameters(), { lr: 0.01 });
  try {
    const before = await model.parameters().values.toFloat32();
    await assert.rejects(
      () =>
        fit(model, {
          train: fixed([{ x, y }]),
          val: fixed([{ x, y }]),
          epochs: 2,
          loss,
          optimizer,
          progress: false,
          monitor: "valAccuracy",
        }),
      /Cannot fit: monitor "valAccuracy" needs a loss that classifies: MSELoss records no accuracy/,
    );
    // Refused before anything trained.
    assert.deepEqual(await model.parameters().values.toFloat32(), before);
    await assert.rejects(
      () =>
        fit(model, {
          train: fixed([{ x, y }]),
          epochs: 1,
          loss,
          optimizer,
          monitor: "acc" as unknown as "valLoss",
        }),
      /monitor must be "valLoss" or "valAccuracy": current value is acc/,
    );
  } finally {
    for (const t of [x, y, loss, optimizer, model]) t.dispose();
  }
});
