/**
 * The seed's whole experiment, timed: the three variants for `epochs` epochs each, validation
 * every epoch, through `runExperiment` exactly as `deno task train` runs it (checkpoints and
 * histories written, `--checkpoint-seconds 10`), on synthetic data of CIFAR-10's shape (50,000
 * training and 10,000 validation images), so it runs where the real dataset cannot travel (the
 * GPU machine has no network). Wall time does not depend on the pixel values.
 *
 * On a fast GPU the CPU is the limit: encoding a step costs about 0.2 ms of JavaScript and wgpu,
 * and each epoch waits once for its statistics (at least 11 ms in Deno). Concurrent variants hide
 * that wait behind the other variants' encoding; the sequential figure shows what that is worth.
 */

import type { Gpu } from "../lib/gpu/device.ts";
import { CLASS_NAMES } from "../lib/data/cifar10.ts";
import { runExperiment, VARIANTS } from "../lib/train/experiment.ts";
import { type BenchResult, syntheticSet } from "./util.ts";

/** Options of {@link benchExperiment}. */
export interface ExperimentBenchOptions {
  /** Epochs per variant (the seed: 200). */
  epochs: number;
  /** Which scheduling to time: side by side, one after another, or both. */
  modes: ("concurrent" | "sequential")[];
}

/** Wall seconds of the full experiment in each mode, with the figure scaled to 200 epochs. */
export async function benchExperiment(
  gpu: Gpu,
  o: ExperimentBenchOptions,
): Promise<BenchResult[]> {
  const data = {
    train: syntheticSet(50_000, 3),
    test: syntheticSet(10_000, 4),
    classes: [...CLASS_NAMES],
  };
  const results: BenchResult[] = [];
  for (const mode of o.modes) {
    // Inside the project folder: the bench may write there (and its children nowhere else).
    const outDir = await Deno.makeTempDir({ dir: ".", prefix: ".bench-experiment-" });
    try {
      const start = performance.now();
      const rows = await runExperiment(gpu, {
        variants: VARIANTS,
        epochs: o.epochs,
        batchSize: 1024,
        lr: 1e-3,
        optimizer: "adam",
        seed: 0,
        validationFreq: 1,
        dataDir: "",
        data,
        outDir,
        checkpointSeconds: 10,
        concurrent: mode === "concurrent",
        progress: false,
      });
      const seconds = (performance.now() - start) / 1000;
      const epochs = rows.reduce((n, r) => n + r.epochs, 0);
      if (epochs !== VARIANTS.length * o.epochs) {
        throw new Error(`experiment: ${epochs} epochs ran, expected ${VARIANTS.length * o.epochs}`);
      }
      results.push({
        name: `experiment/${mode}`,
        unit: "s",
        value: seconds,
        epochsPerVariant: o.epochs,
        secondsPerEpoch: seconds / epochs,
        // The seed's 200 epochs, scaled linearly when fewer were run (labelled as such).
        projected200: (seconds / o.epochs) * 200,
      });
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  }
  return results;
}
