/**
 * Benchmark hooks for the data layer: loading the dataset onto the GPU, and the per-batch cost
 * of the gather, for bench/bench.ts to compare with a training step.
 *
 * @module
 */

import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { loadCifar10 } from "../lib/data/cifar10.ts";
import { GpuDataset, type LoaderData } from "../lib/data/dataset.ts";
import { type Augment, Loader } from "../lib/data/loader.ts";

/** Timings of {@link benchLoad}, in milliseconds. */
export interface LoadTimings {
  /** Reading and parsing the six batch files. */
  parseMs: number;
  /** Uploading both splits and waiting for the GPU. */
  uploadMs: number;
  /** Total. */
  totalMs: number;
  /** Images loaded. */
  images: number;
}

/** Benchmark hook: loads the 60,000 images from `dir` onto `gpu`, waits, frees them, times it. */
export async function benchLoad(gpu: Gpu, dir: string): Promise<LoadTimings> {
  const t0 = performance.now();
  const data = await loadCifar10(dir);
  const t1 = performance.now();
  const train = GpuDataset.upload(gpu, data.train, { label: "bench train" });
  const test = GpuDataset.upload(gpu, data.test, { label: "bench test" });
  await gpu.sync();
  const t2 = performance.now();
  train.dispose();
  test.dispose();
  return {
    parseMs: t1 - t0,
    uploadMs: t2 - t1,
    totalMs: t2 - t0,
    images: train.count + test.count,
  };
}

/**
 * Benchmark hook: the cost of gathering one batch of `batchSize` images (default 1,024), in
 * milliseconds per batch, from `steps` gathers encoded in one submission (best of 3 runs), into
 * the loader's f32 buffer or, with `toTexture`, into a matmul operand texture.
 */
export async function benchGather(
  gpu: Gpu,
  data: LoaderData,
  options: { batchSize?: number; steps?: number; augment?: Augment; toTexture?: boolean } = {},
): Promise<number> {
  const steps = options.steps ?? 40;
  const loader = new Loader(gpu, data, {
    batchSize: options.batchSize ?? 1024,
    shuffle: true,
    augment: options.augment,
  });
  const texture = options.toTexture
    ? gpu.device.createTexture({
      size: [768, loader.options.batchSize],
      format: "rgba32float",
      usage: GPUTextureUsage.STORAGE_BINDING,
    })
    : null;
  try {
    loader.startEpoch(0);
    let best = Infinity;
    for (let rep = 0; rep < 4; rep++) {
      const t0 = performance.now();
      const enc = new StepEncoder(gpu, "bench gather");
      for (let s = 0; s < steps; s++) {
        // Full batches only, so the figure is per batchSize images.
        const index = s % Math.floor(loader.length / loader.options.batchSize);
        if (texture) loader.encodeBatchToTexture(enc, index, texture);
        else loader.encodeBatch(enc, index);
      }
      enc.submit();
      await gpu.sync();
      // The first run compiles the pipeline and warms caches.
      if (rep > 0) best = Math.min(best, (performance.now() - t0) / steps);
    }
    return best;
  } finally {
    texture?.destroy();
    loader.dispose();
  }
}
