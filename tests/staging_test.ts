import assert from "node:assert/strict";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Adam } from "../lib/optim/adam.ts";
import { seedModel } from "../lib/train/experiment.ts";
import { gpuTest } from "./helpers.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";

// A batch gathered straight into the first Linear's staging texture must train exactly like one
// gathered into a buffer and copied: same losses and same weights, bit for bit.
gpuTest(
  "gathering into the first layer's staging texture equals the buffer path bit for bit",
  async (gpu) => {
    const count = 300; // batches of 128, 128 and a partial 44
    const images = Uint8Array.from({ length: count * 3072 }, (_, i) => (i * 2654435761) >>> 24);
    const labels = Uint8Array.from({ length: count }, (_, i) => (i * 7) % 10);
    const data = GpuDataset.upload(gpu, { images, labels, count });
    const run = async (staged: boolean) => {
      manualSeed(0);
      const model = seedModel("bn").to(gpu);
      const optimizer = new Adam(model.parameters());
      const loss = new CrossEntropyLoss();
      const loader = new Loader(gpu, data, { batchSize: 128, shuffle: true, seed: 5 });
      const losses: number[] = [];
      for (let epoch = 0; epoch < 2; epoch++) {
        loader.startEpoch(epoch);
        for (let i = 0; i < loader.batchesPerEpoch; i++) {
          const enc = new StepEncoder(gpu);
          const { x, y } = staged
            ? loader.encodeBatchFor(enc, i, model)
            : loader.encodeBatch(enc, i);
          assert.equal(x.stagedIn !== null, staged && gpu.adapter.fallback);
          encodeTrainingStep(enc, { model, loss, optimizer }, x, y);
          enc.submit();
          losses.push((await loss.stats.read()).lastLoss);
        }
      }
      const state = await model.stateDict();
      for (const t of [loader, loss, optimizer, model]) t.dispose();
      return { losses, state };
    };
    const plain = await run(false);
    const staged = await run(true);
    assert.deepEqual(staged.losses, plain.losses);
    for (const [name, t] of Object.entries(plain.state)) {
      assert.deepEqual([...staged.state[name].data], [...t.data], name);
    }
    data.dispose();
  },
);
