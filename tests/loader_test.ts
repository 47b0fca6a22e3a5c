import assert from "node:assert/strict";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset, splitDataset } from "../lib/data/dataset.ts";
import { Loader, type LoaderOptions } from "../lib/data/loader.ts";
import { compare, gatherRef } from "./reference/data.ts";
import { lcgBytes } from "./fixtures/cifar_fixture.ts";
import type { ImageSet } from "../lib/data/cifar10.ts";
import { gpuTest } from "./helpers.ts";

/** 37 synthetic images (does not divide the batch sizes or the workgroup). */
function synthetic(count = 37): ImageSet {
  const images = lcgBytes(7, count * 3072);
  const labels = Uint8Array.from({ length: count }, (_, i) => (i * 3) % 10);
  return { images, labels, count };
}

/** Gathers every batch of `epoch` in one submission, copying each x/y out after its gather. */
async function gatherEpoch(
  gpu: Gpu,
  loader: Loader,
  epoch: number,
): Promise<{ x: Float32Array[]; y: Uint32Array[] }> {
  loader.startEpoch(epoch);
  const enc = new StepEncoder(gpu, "test epoch");
  const copies: { x: GPUBuffer; y: GPUBuffer; bytes: number; size: number }[] = [];
  for (let i = 0; i < loader.batchesPerEpoch; i++) {
    const { x, y, size } = loader.encodeBatch(enc, i);
    const usage = GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ;
    const cx = gpu.device.createBuffer({ size: x.byteLength, usage });
    const cy = gpu.device.createBuffer({ size: y.byteLength, usage });
    enc.commands().copyBufferToBuffer(x.buffer, 0, cx, 0, x.byteLength);
    enc.commands().copyBufferToBuffer(y.buffer, 0, cy, 0, y.byteLength);
    copies.push({ x: cx, y: cy, bytes: x.byteLength, size });
  }
  enc.submit();
  await gpu.sync();
  const out = { x: [] as Float32Array[], y: [] as Uint32Array[] };
  for (const c of copies) {
    await c.x.mapAsync(GPUMapMode.READ);
    await c.y.mapAsync(GPUMapMode.READ);
    out.x.push(new Float32Array(c.x.getMappedRange().slice(0)));
    out.y.push(new Uint32Array(c.y.getMappedRange().slice(0)));
    c.x.destroy();
    c.y.destroy();
  }
  return out;
}

async function checkAgainstTwin(
  gpu: Gpu,
  set: ImageSet,
  options: LoaderOptions,
  exact: boolean,
  shardBytes?: number,
) {
  const dataset = GpuDataset.upload(gpu, set, { maxShardBytes: shardBytes });
  const loader = new Loader(gpu, dataset, options);
  try {
    for (const epoch of [0, 1, 2]) {
      const got = await gatherEpoch(gpu, loader, epoch);
      const order = loader.order(epoch);
      const aug = loader.augmentation(epoch);
      for (let i = 0; i < loader.batchesPerEpoch; i++) {
        const start = i * options.batchSize;
        const count = got.y[i].length;
        const ref = gatherRef(set.images, set.labels, order, aug, start, count, {
          normalize: options.normalize,
          flip: options.augment?.flip,
          crop: options.augment?.crop,
        });
        assert.deepEqual([...got.y[i]], [...ref.y], `labels, epoch ${epoch} batch ${i}`);
        const want = exact ? ref.x.map(Math.fround) : ref.x;
        const problem = compare(got.x[i], want, exact ? 0 : 1e-6, exact ? 0 : 1e-6);
        assert.equal(problem, null, `epoch ${epoch} batch ${i}: ${problem}`);
      }
    }
  } finally {
    loader.dispose();
    dataset.dispose();
  }
}

gpuTest(
  "gather equals the twin bit for bit (pixel / 255 in f32), 4 shards, partial last batch",
  async (gpu) => {
    await checkAgainstTwin(
      gpu,
      synthetic(),
      { batchSize: 16, shuffle: true, seed: 3 },
      true,
      3072 * 10,
    );
  },
);

gpuTest("gather with normalisation matches the twin", async (gpu) => {
  const normalize = { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.243, 0.261] } as const;
  await checkAgainstTwin(
    gpu,
    synthetic(),
    { batchSize: 8, shuffle: true, seed: 1, normalize },
    false,
    3072 * 15,
  );
});

gpuTest("gather with flip and crop augmentation matches the twin", async (gpu) => {
  await checkAgainstTwin(
    gpu,
    synthetic(),
    { batchSize: 16, shuffle: true, seed: 5, augment: { flip: true, crop: 4 } },
    true,
    3072 * 20,
  );
  const normalize = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 2] } as const;
  await checkAgainstTwin(
    gpu,
    synthetic(29),
    { batchSize: 29, augment: { crop: 2 }, normalize },
    false,
  );
  await checkAgainstTwin(gpu, synthetic(13), { batchSize: 5, augment: { flip: true } }, true);
});

gpuTest("augmentation draws: flips about half, crop offsets cover 0..2·crop", (gpu) => {
  const dataset = GpuDataset.upload(gpu, synthetic(2000 / 10));
  const loader = new Loader(gpu, dataset, {
    batchSize: 64,
    augment: { flip: true, crop: 4 },
    seed: 9,
  });
  try {
    const words = loader.augmentation(0);
    const flips = words.reduce((n, w) => n + (w & 1), 0);
    assert.ok(flips > 60 && flips < 140, `flips ${flips} of 200`);
    const dx = new Set([...words].map((w) => (w >> 8) & 255));
    assert.deepEqual([...dx].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.notDeepEqual(loader.augmentation(1), words);
  } finally {
    loader.dispose();
    dataset.dispose();
  }
  return Promise.resolve();
});

gpuTest("order: every index once per epoch, reproducible, different across epochs", (gpu) => {
  const dataset = GpuDataset.upload(gpu, synthetic(101));
  const a = new Loader(gpu, dataset, { batchSize: 10, shuffle: true, seed: 42 });
  const b = new Loader(gpu, dataset, { batchSize: 10, shuffle: true, seed: 42 });
  const c = new Loader(gpu, dataset, { batchSize: 10, shuffle: true, seed: 43 });
  const plain = new Loader(gpu, dataset, { batchSize: 10, dropLast: true });
  try {
    for (const epoch of [0, 1, 5]) {
      const order = a.order(epoch);
      assert.deepEqual([...order].sort((x, y) => x - y), Array.from({ length: 101 }, (_, i) => i));
      assert.deepEqual(b.order(epoch), order);
    }
    assert.notDeepEqual(a.order(0), a.order(1));
    assert.notDeepEqual(a.order(0), c.order(0));
    assert.deepEqual([...plain.order(3)], Array.from({ length: 101 }, (_, i) => i));
    assert.equal(a.batchesPerEpoch, 11);
    assert.equal(plain.batchesPerEpoch, 10);
  } finally {
    for (const l of [a, b, c, plain]) l.dispose();
    dataset.dispose();
  }
  return Promise.resolve();
});

gpuTest("two epochs encoded in one submission, and GPU memory flat across epochs", async (gpu) => {
  const set = synthetic();
  const dataset = GpuDataset.upload(gpu, set);
  const loader = new Loader(gpu, dataset, { batchSize: 16, shuffle: true, seed: 11 });
  try {
    const enc = new StepEncoder(gpu, "two epochs");
    const ys: GPUBuffer[] = [];
    for (const epoch of [0, 1]) {
      loader.startEpoch(epoch);
      for (let i = 0; i < loader.batchesPerEpoch; i++) {
        const { y } = loader.encodeBatch(enc, i);
        const copy = gpu.device.createBuffer({
          size: y.byteLength,
          usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
        });
        enc.commands().copyBufferToBuffer(y.buffer, 0, copy, 0, y.byteLength);
        ys.push(copy);
      }
    }
    enc.submit();
    await gpu.sync();
    const got: number[] = [];
    for (const b of ys) {
      await b.mapAsync(GPUMapMode.READ);
      got.push(...new Uint32Array(b.getMappedRange()));
      b.destroy();
    }
    const want = [...loader.order(0), ...loader.order(1)].map((s) => set.labels[s]);
    assert.deepEqual(got, want);

    const live = gpu.memory.liveBytes;
    for (const epoch of [2, 3, 4]) await gatherEpoch(gpu, loader, epoch);
    assert.equal(gpu.memory.liveBytes, live);
  } finally {
    loader.dispose();
    dataset.dispose();
  }
});

gpuTest(
  "splitDataset: a reproducible partition; a loader over a subset visits only it",
  async (gpu) => {
    const set = synthetic(200);
    const dataset = GpuDataset.upload(gpu, set);
    try {
      const [first, second] = splitDataset(dataset, 0.7, 1);
      const again = splitDataset(dataset, 0.7, 1);
      assert.deepEqual(again[0].indices, first.indices);
      assert.equal(first.indices.length + second.indices.length, 200);
      assert.ok(
        first.indices.length > 110 && first.indices.length < 170,
        `${first.indices.length} of 200`,
      );
      const all = [...first.indices, ...second.indices].sort((a, b) => a - b);
      assert.deepEqual(all, Array.from({ length: 200 }, (_, i) => i));
      assert.notDeepEqual(splitDataset(dataset, 0.7, 2)[0].indices, first.indices);
      assert.equal(splitDataset(dataset, 0, 1)[0].indices.length, 0);
      assert.throws(
        () => splitDataset(dataset, 1.5, 0),
        /share must be in \[0, 1\]: current value is 1.5/,
      );

      const loader = new Loader(gpu, second, { batchSize: 7, shuffle: true, seed: 2 });
      try {
        const got = await gatherEpoch(gpu, loader, 0);
        const order = loader.order(0);
        assert.deepEqual([...order].sort((a, b) => a - b), [...second.indices]);
        assert.deepEqual(got.y.flatMap((y) => [...y]), [...order].map((s) => set.labels[s]));
      } finally {
        loader.dispose();
      }
    } finally {
      dataset.dispose();
    }
  },
);

gpuTest("bad options and calls are refused with the value", (gpu) => {
  const dataset = GpuDataset.upload(gpu, synthetic(5));
  try {
    assert.throws(
      () => new Loader(gpu, dataset, { batchSize: 0 }),
      /batchSize must be a positive integer: current value is 0/,
    );
    assert.throws(
      () => new Loader(gpu, dataset, { batchSize: 8, dropLast: true }),
      /5 samples make no batch of 8/,
    );
    assert.throws(
      () => new Loader(gpu, dataset, { batchSize: 2, augment: { crop: 40 } }),
      /crop must be an integer in 0..32: current value is 40/,
    );
    const loader = new Loader(gpu, dataset, { batchSize: 2 });
    const enc = new StepEncoder(gpu);
    assert.throws(() => loader.encodeBatch(enc, 0), /call startEpoch/);
    loader.startEpoch(0);
    assert.throws(() => loader.encodeBatch(enc, 3), /index must be in 0..2: current value is 3/);
    loader.dispose();
    assert.throws(
      () => GpuDataset.upload(gpu, synthetic(5), { maxShardBytes: 3072 }),
      /need more than 4 shards/,
    );
  } finally {
    dataset.dispose();
  }
  return Promise.resolve();
});

gpuTest("gather into a texture (matmul operand layout) equals the buffer batch", async (gpu) => {
  const set = synthetic();
  const dataset = GpuDataset.upload(gpu, set, { maxShardBytes: 3072 * 20 });
  for (const augment of [undefined, { flip: true, crop: 3 }]) {
    const loader = new Loader(gpu, dataset, { batchSize: 16, shuffle: true, seed: 4, augment });
    const texture = gpu.device.createTexture({
      size: [768, 16],
      format: "rgba32float",
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_SRC,
    });
    const readback = gpu.device.createBuffer({
      size: 768 * 16 * 16,
      usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
    });
    try {
      loader.startEpoch(1);
      for (const index of [0, 2]) {
        const enc = new StepEncoder(gpu, "texture gather");
        const { x, size } = loader.encodeBatch(enc, index);
        loader.encodeBatchToTexture(enc, index, texture);
        enc.commands().copyTextureToBuffer(
          { texture },
          { buffer: readback, bytesPerRow: 768 * 16 },
          [768, size, 1],
        );
        enc.submit();
        const want = await x.toFloat32();
        await readback.mapAsync(GPUMapMode.READ);
        const got = new Float32Array(readback.getMappedRange().slice(0, size * 3072 * 4));
        readback.unmap();
        assert.equal(
          compare(got, want, 0, 0),
          null,
          `batch ${index}, augment ${JSON.stringify(augment)}`,
        );
      }
      const small = gpu.device.createTexture({
        size: [768, 4],
        format: "rgba32float",
        usage: GPUTextureUsage.STORAGE_BINDING,
      });
      assert.throws(
        () => loader.encodeBatchToTexture(new StepEncoder(gpu), 0, small),
        /at least 768×16: current is rgba32float 768×4/,
      );
      small.destroy();
    } finally {
      texture.destroy();
      readback.destroy();
      loader.dispose();
    }
  }
  dataset.dispose();
});
