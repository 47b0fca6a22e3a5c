import assert from "node:assert/strict";
import { adapterKind } from "../lib/gpu/defaults.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Adam } from "../lib/optim/adam.ts";
import { lectureModel } from "../lib/train/experiment.ts";
import { gpuTest } from "./helpers.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";

/** 300 synthetic images: batches of 128, 128 and a partial 44. */
function syntheticData(gpu: Gpu): GpuDataset {
  const count = 300;
  const images = Uint8Array.from({ length: count * 3072 }, (_, i) => (i * 2654435761) >>> 24);
  const labels = Uint8Array.from({ length: count }, (_, i) => (i * 7) % 10);
  return GpuDataset.upload(gpu, { images, labels, count });
}

/**
 * Trains the seed's bn model for two epochs, one step per submission; step `s` gathers its batch
 * into the first layer's staging texture when `stagedAt(s)`, else into the batch buffer.
 * Returns the losses and the final weights.
 */
async function train(gpu: Gpu, data: GpuDataset, stagedAt: (step: number) => boolean) {
  manualSeed(0);
  const model = lectureModel("bn").to(gpu);
  const optimizer = new Adam(model.parameters());
  const loss = new CrossEntropyLoss();
  // The gather into the texture is what this compares (tests/fused_input_test.ts: no gather).
  const loader = new Loader(gpu, data, {
    batchSize: 128,
    shuffle: true,
    seed: 5,
    fuseInput: false,
  });
  const losses: number[] = [];
  for (let epoch = 0; epoch < 2; epoch++) {
    loader.startEpoch(epoch);
    for (let i = 0; i < loader.batchesPerEpoch; i++) {
      const enc = new StepEncoder(gpu);
      const staged = stagedAt(losses.length);
      const { x, y } = staged ? loader.encodeBatchFor(enc, i, model) : loader.encodeBatch(enc, i);
      // The first layer's staging texture holds x exactly when x was gathered into it.
      const holdsX = model.inputStaging(x.shape[0])?.holds(x) ?? false;
      assert.equal(holdsX, staged && adapterKind(gpu) === "software");
      encodeTrainingStep(enc, { model, loss, optimizer }, x, y);
      enc.submit();
      losses.push((await loss.stats.read()).lastLoss);
    }
  }
  const state = await model.stateDict();
  for (const t of [loader, loss, optimizer, model]) t.dispose();
  return { losses, state };
}

function assertSameTraining(
  got: Awaited<ReturnType<typeof train>>,
  want: Awaited<ReturnType<typeof train>>,
): void {
  assert.deepEqual(got.losses, want.losses);
  for (const [name, t] of Object.entries(want.state)) {
    assert.deepEqual([...got.state[name].data], [...t.data], name);
  }
}

// A batch gathered straight into the first Linear's staging texture must train exactly like one
// gathered into a buffer and copied: same losses and same weights, bit for bit.
gpuTest(
  "gathering into the first layer's staging texture equals the buffer path bit for bit",
  async (gpu) => {
    const data = syntheticData(gpu);
    const plain = await train(gpu, data, () => false);
    const staged = await train(gpu, data, () => true);
    assertSameTraining(staged, plain);
    data.dispose();
  },
);

// The same batch tensor alternates between the two paths: after a gather into the buffer, the
// texture filled the step before no longer stands for the batch, and the forward stages it.
gpuTest(
  "alternating the texture and buffer gathers step by step equals the buffer path",
  async (gpu) => {
    const data = syntheticData(gpu);
    const plain = await train(gpu, data, () => false);
    const mixed = await train(gpu, data, (step) => step % 2 === 0);
    assertSameTraining(mixed, plain);
    data.dispose();
  },
);
