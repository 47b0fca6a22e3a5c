import assert from "node:assert/strict";
import { join } from "node:path";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { readSafetensorsFile } from "../lib/io/safetensors_file.ts";
import { Adam } from "../lib/optim/adam.ts";
import { fit, type FitOptions } from "../lib/train/fit.ts";
import { lectureModel } from "../lib/train/experiment.ts";
import { gpuTest } from "./helpers.ts";

async function savedEpoch(dir: string): Promise<number> {
  return Number((await readSafetensorsFile(join(dir, "last.safetensors"))).metadata.epoch);
}

async function run(
  gpu: Parameters<Parameters<typeof gpuTest>[1]>[0],
  options: Partial<FitOptions>,
) {
  const count = 96;
  const images = Uint8Array.from({ length: count * 3072 }, (_, i) => (i * 2654435761) >>> 24);
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  const data = GpuDataset.upload(gpu, { images, labels, count });
  manualSeed(0);
  const model = lectureModel("dropout").to(gpu);
  const optimizer = new Adam(model.parameters());
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, data, { batchSize: 32, shuffle: true, seed: 3 });
  const dir = await Deno.makeTempDir({ prefix: "wgnn-cadence-" });
  const seen: number[] = [];
  const history = await fit(model, {
    train,
    epochs: 4,
    loss,
    optimizer,
    progress: false,
    checkpointDir: dir,
    ...options,
    onEpoch: async (record, h) => {
      seen.push(await savedEpoch(dir));
      await options.onEpoch?.(record, h);
    },
  });
  for (const t of [train, loss, optimizer, model, data]) t.dispose();
  return { dir, seen, history };
}

gpuTest(
  "checkpointSeconds defers last.* between epochs and always writes the final epoch",
  async (gpu) => {
    const { dir, seen } = await run(gpu, { checkpointSeconds: 3600 });
    // Epoch 1 is written (nothing saved yet), 2 and 3 are deferred, the last epoch is written.
    assert.deepEqual(seen, [1, 1, 1, 4]);
    const history = JSON.parse(await Deno.readTextFile(join(dir, "history.json")));
    assert.equal(history.epochs.length, 4);
    await Deno.remove(dir, { recursive: true });
  },
);

gpuTest(
  "an abort between epochs writes the deferred epoch, so a resume loses nothing",
  async (gpu) => {
    const controller = new AbortController();
    const { dir, seen, history } = await run(gpu, {
      checkpointSeconds: 3600,
      signal: controller.signal,
      onEpoch: (record) => {
        if (record.epoch === 2) controller.abort();
      },
    });
    assert.deepEqual(seen, [1, 1]);
    assert.equal(history.stopped, "aborted");
    assert.equal(await savedEpoch(dir), 2, "the deferred epoch 2 was written on the way out");
    await Deno.remove(dir, { recursive: true });
  },
);

gpuTest("checkpointSeconds 0 (the default) writes last.* after every epoch", async (gpu) => {
  const { dir, seen } = await run(gpu, {});
  assert.deepEqual(seen, [1, 2, 3, 4]);
  await Deno.remove(dir, { recursive: true });
  await assert.rejects(
    () => fit(null as never, { epochs: 1, checkpointSeconds: -1 } as never),
    /checkpointSeconds must be a finite number >= 0: current value is -1/,
  );
});
