/**
 * Bind groups are made once per combination of bound buffers: a training step in steady state
 * creates none (each `createBindGroup` costs 7-12 µs of the CPU time that bounds a fast GPU's
 * step rate), and the cache never hands back a group for a buffer that was replaced.
 */

import assert from "node:assert/strict";
import { BindGroupCache, bufferKey, objectId } from "../lib/gpu/bind_cache.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { LeakyReLU } from "../lib/nn/layers.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { Tensor } from "../lib/tensor.ts";
import { lectureModel, VARIANTS } from "../lib/train/experiment.ts";
import { gpuTest } from "./helpers.ts";
import { randomImages } from "./fixtures/random.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";

Deno.test("BindGroupCache keeps the newest groups, makes each key once, reuses the last at once", () => {
  const cache = new BindGroupCache(2);
  const made: string[] = [];
  const get = (key: string, objects: unknown[] = [{}]) =>
    cache.get(objects, () => key, () => {
      made.push(key);
      return { label: key } as GPUBindGroup;
    });
  assert.equal(get("a").label, "a");
  get("b");
  get("a");
  assert.deepEqual(made, ["a", "b"]);
  get("c"); // evicts "a", the oldest
  get("b");
  get("a");
  assert.deepEqual(made, ["a", "b", "c", "a"]);
  // The very objects of the last call get the last group back, without a key being asked for.
  const same = [{}, {}];
  get("d", same);
  assert.equal(
    cache.get(same, () => assert.fail("key built"), () => assert.fail("made")).label,
    "d",
  );
  const one = {}, two = {};
  assert.equal(objectId(one), objectId(one));
  assert.notEqual(objectId(one), objectId(two));
  const buffer = {} as GPUBuffer;
  assert.notEqual(
    bufferKey({ buffer, offset: 0, size: 16 }),
    bufferKey({ buffer, offset: 16, size: 16 }),
  );
});

gpuTest("training steps in steady state create no bind groups", async (gpu) => {
  const data = GpuDataset.upload(gpu, randomImages(256, 3));
  const original = GPUDevice.prototype.createBindGroup;
  try {
    for (const variant of VARIANTS) {
      manualSeed(0);
      const model = lectureModel(variant).to(gpu);
      const optimizer = new Adam(model.parameters());
      const loss = new CrossEntropyLoss();
      const loader = new Loader(gpu, data, { batchSize: 64, shuffle: true, seed: 1 });
      const epoch = (e: number) => {
        model.train();
        loader.startEpoch(e);
        const enc = new StepEncoder(gpu, "bind test");
        for (let i = 0; i < loader.batchesPerEpoch; i++) {
          const { x, y } = loader.encodeBatchFor(enc, i, model);
          encodeTrainingStep(enc, { model, loss, optimizer }, x, y);
        }
        model.eval();
        const { x, y } = loader.encodeBatchFor(enc, 0, model);
        loss.forward(enc, model.forward(enc, x), y);
        enc.submit();
      };
      // Warm-up: every combination is made here. Two epochs, because the loader's order
      // buffers alternate by epoch parity and the first layer's matmuls, reading the batch's
      // rows through them, make one group per batch and parity on first use.
      epoch(0);
      epoch(1);
      let made = 0;
      GPUDevice.prototype.createBindGroup = function (descriptor) {
        made++;
        return original.call(this, descriptor);
      };
      epoch(2);
      epoch(3);
      GPUDevice.prototype.createBindGroup = original;
      await gpu.sync();
      assert.equal(made, 0, `${variant}: ${made} bind groups made in steady state`);
      for (const x of [loader, loss, optimizer, model]) x.dispose();
    }
  } finally {
    GPUDevice.prototype.createBindGroup = original;
    data.dispose();
  }
});

gpuTest(
  "a kernel call given a new buffer binds the new buffer, not a cached group",
  async (gpu) => {
    const layer = new Sequential(new LeakyReLU(0.5)).to(gpu);
    const run = async (values: number[]) => {
      const x = Tensor.from(gpu, Float32Array.from(values), [1, values.length], "x");
      const enc = new StepEncoder(gpu, "leaky");
      const y = layer.forward(enc, x);
      enc.submit();
      const out = Array.from(await y.toFloat32());
      x.dispose(); // the next tensor may land on a fresh buffer with the same size and offset
      return out;
    };
    assert.deepEqual(await run([1, -2, 3, -4]), [1, -1, 3, -2]);
    assert.deepEqual(await run([-8, 6, -2, 0]), [-4, 6, -1, 0]);
    assert.deepEqual(await run([1, -2, 3, -4]), [1, -1, 3, -2]);
    layer.dispose();
  },
);
