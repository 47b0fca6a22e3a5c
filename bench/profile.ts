/**
 * Where a training step's time goes, by ablation: the same number of steps is timed with the
 * step cut after each phase (gather, forward, loss, backward, optimizer), in one submission per
 * round, and each phase's cost is the difference to the previous cut. Cheap and honest on any
 * adapter (no timestamp queries needed), at the price of some noise.
 *
 * By default the loader hands the first Linear the batch as dataset rows (no gather pass: its
 * "gather" phase is the labels alone); `profile-gathered/*` rows time the same steps with the
 * gather forced (`fuseInput: false`), interleaved round by round, so the two compare in one run.
 */

import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Adam } from "../lib/optim/adam.ts";
import { lectureModel, type Variant } from "../lib/train/experiment.ts";
import { type BenchResult, median, syntheticSet } from "./util.ts";

const PHASES = ["gather", "forward", "loss", "backward", "optimizer"] as const;

/**
 * Milliseconds per step spent in each phase of `variant`'s training step (batch `B`), with the
 * first layer reading the dataset's rows (`profile/*`) and with the gather (`profile-gathered/*`).
 */
export async function profileStep(
  gpu: Gpu,
  variant: Variant,
  { batchSize = 1024, steps = 8, rounds = 3 } = {},
): Promise<BenchResult[]> {
  const B = batchSize;
  const data = GpuDataset.upload(gpu, syntheticSet(B * 2));
  manualSeed(0);
  const model = lectureModel(variant).to(gpu);
  const optimizer = new Adam(model.parameters());
  const loss = new CrossEntropyLoss();
  const loaders = [true, false].map((fuseInput) =>
    new Loader(gpu, data, { batchSize: B, shuffle: false, dropLast: true, fuseInput })
  );
  for (const loader of loaders) loader.startEpoch(0);
  model.train();
  const run = async (loader: Loader, upTo: number) => {
    const start = performance.now();
    const enc = new StepEncoder(gpu, "profile");
    for (let i = 0; i < steps; i++) {
      const { x, y } = loader.encodeBatchFor(enc, i % loader.batchesPerEpoch, model);
      if (upTo >= 1) {
        const logits = model.forward(enc, x);
        if (upTo >= 2) loss.forward(enc, logits, y);
        if (upTo >= 3) {
          optimizer.zeroGrad(enc);
          model.backward(enc, loss.backward());
        }
        if (upTo >= 4) optimizer.step(enc);
      }
    }
    enc.submit();
    await gpu.sync();
    return (performance.now() - start) / steps;
  };
  for (const loader of loaders) {
    for (let p = 0; p < PHASES.length; p++) await run(loader, p); // warm-up every path
  }
  const cumulative = loaders.map(() => [] as number[]);
  for (let p = 0; p < PHASES.length; p++) {
    const times = loaders.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      for (const [k, loader] of loaders.entries()) times[k].push(await run(loader, p));
    }
    times.forEach((t, k) => cumulative[k].push(median(t)));
  }
  for (const x of [...loaders, loss, optimizer, model, data]) x.dispose();
  return ["profile", "profile-gathered"].flatMap((prefix, k) =>
    PHASES.map((phase, p) => ({
      name: `${prefix}/${variant}/${phase}`,
      unit: "ms/step",
      value: Math.max(0, cumulative[k][p] - (p > 0 ? cumulative[k][p - 1] : 0)),
    }))
  );
}
