import assert from "node:assert/strict";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { Linear, ReLU } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { fit } from "../lib/train/fit.ts";
import { lectureModel } from "../lib/train/experiment.ts";
import { gpuTest, randomArray } from "./helpers.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";

gpuTest("a tiny MLP overfits one batch to near-zero loss", async (gpu) => {
  manualSeed(1);
  const model = new Sequential(new Linear(20, 32), new ReLU(), new Linear(32, 5)).to(gpu);
  const optimizer = new Adam(model.parameters(), { lr: 1e-2 });
  const loss = new CrossEntropyLoss();
  const x = Tensor.from(gpu, randomArray(16 * 20, 3), [16, 20], "x");
  const y = Tensor.from(gpu, Uint32Array.from({ length: 16 }, (_, i) => (i * 3) % 5), [16], "y");
  let first = NaN;
  for (let chunk = 0; chunk < 7; chunk++) {
    const enc = new StepEncoder(gpu); // 1 step, then 50 per submission, no waiting in between
    for (let i = 0; i < (chunk === 0 ? 1 : 50); i++) {
      encodeTrainingStep(enc, { model, loss, optimizer }, x, y);
    }
    enc.submit();
    if (chunk === 0) first = (await loss.stats.read()).lastLoss;
  }
  const last = (await loss.stats.read()).lastLoss;
  assert.ok(Math.abs(first - Math.log(5)) < 0.5, `the first step is near chance (ln 5): ${first}`);
  assert.ok(last < 0.01, `after 300 steps the batch is memorised: loss ${last}`);
  for (const t of [x, y, loss, optimizer, model]) t.dispose();
});

gpuTest("live GPU memory is the same after epoch 1 and epoch 5 of fit", async (gpu) => {
  const count = 200;
  const images = Uint8Array.from({ length: count * 3072 }, (_, i) => (i * 2654435761) >>> 24);
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  const data = GpuDataset.upload(gpu, { images, labels, count });
  manualSeed(0);
  const model = lectureModel("bn").to(gpu);
  const optimizer = new Adam(model.parameters());
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, data, { batchSize: 64, shuffle: true, seed: 1 }); // last batch 8
  const val = new Loader(gpu, data, { batchSize: 96 });
  const live: number[] = [];
  await fit(model, {
    train,
    val,
    epochs: 5,
    loss,
    optimizer,
    progress: false,
    onEpoch: () => {
      live.push(gpu.memory.liveBytes);
    },
  });
  assert.equal(live.length, 5);
  assert.equal(live[4], live[0], `live bytes per epoch: ${live.join(", ")}`);
  for (const t of [train, val, loss, optimizer, model, data]) t.dispose();
});
