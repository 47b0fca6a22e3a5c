/**
 * The experiment's concurrent mode: the three variants trained side by side on one device give
 * the same numbers and the same checkpoint files, byte for byte, as one after another; and a
 * failure in one variant stops the others between steps, with their checkpoints intact.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CLASS_NAMES } from "../lib/data/cifar10.ts";
import { type ExperimentOptions, runExperiment, VARIANTS } from "../lib/train/experiment.ts";
import type { History } from "../lib/train/history.ts";
import type { ProgressSink } from "../lib/train/progress.ts";
import { gpuTest } from "./helpers.ts";
import { withoutTimes } from "./fixtures/history.ts";
import { readSafetensorsFile } from "../lib/nn/safetensors.ts";
import { randomImages as images } from "./fixtures/random.ts";

const data = { train: images(320, 1), test: images(96, 2), classes: [...CLASS_NAMES] };

function options(outDir: string, extra: Partial<ExperimentOptions>): ExperimentOptions {
  return {
    variants: VARIANTS,
    epochs: 3,
    batchSize: 64,
    lr: 1e-3,
    optimizer: "adam",
    seed: 7,
    validationFreq: 1,
    dataDir: "",
    data,
    outDir,
    progress: false,
    ...extra,
  };
}

async function history(dir: string, variant: string): Promise<History> {
  return JSON.parse(await Deno.readTextFile(join(dir, variant, "history.json")));
}

gpuTest(
  "concurrent variants give the sequential run's histories and files, bit for bit",
  async (gpu) => {
    const seqDir = await Deno.makeTempDir({ prefix: "wgnn-seq-" });
    const conDir = await Deno.makeTempDir({ prefix: "wgnn-con-" });
    try {
      const order: string[] = [];
      const seq = await runExperiment(gpu, options(seqDir, { concurrent: false }));
      const con = await runExperiment(
        gpu,
        // Concurrent, and each epoch encoded while the GPU runs the previous one: the
        // schedule a hardware adapter gets by default.
        options(conDir, {
          concurrent: true,
          encodeAhead: true,
          onVariant: (h) => order.push(h.variant),
        }),
      );
      assert.deepEqual(order.toSorted(), [...VARIANTS].toSorted());
      // Rows come back in the variants' order whatever order they finished in.
      assert.deepEqual(con.map((r) => r.variant), [...VARIANTS]);
      for (const variant of VARIANTS) {
        const a = await history(seqDir, variant), b = await history(conDir, variant);
        assert.equal(a.epochs.length, 3);
        assert(a.epochs.every((e) => Number.isFinite(e.trainLoss) && Number.isFinite(e.valLoss)));
        assert.deepEqual(withoutTimes(b), withoutTimes(a), `${variant}: history`);
        for (const file of ["last.safetensors", "last.optim.safetensors", "best.safetensors"]) {
          const x = await Deno.readFile(join(seqDir, variant, file));
          const y = await Deno.readFile(join(conDir, variant, file));
          assert(x.length > 100_000 || file !== "last.safetensors", `${variant}/${file}: size`);
          assert.deepEqual(y, x, `${variant}/${file} differs between the two runs`);
        }
      }
      const seqRows = seq.map((r) => ({ ...r, secondsPerEpoch: 0 }));
      assert.deepEqual(con.map((r) => ({ ...r, secondsPerEpoch: 0 })), seqRows);
      // The variants really differ from each other (so the comparison above means something).
      assert.notEqual(seq[0].finalTrainLoss, seq[1].finalTrainLoss);
    } finally {
      await Deno.remove(seqDir, { recursive: true });
      await Deno.remove(conDir, { recursive: true });
    }
  },
);

gpuTest(
  "a failing variant stops the concurrent others, whose checkpoints stay intact",
  async (gpu) => {
    const dir = await Deno.makeTempDir({ prefix: "wgnn-fail-" });
    try {
      const failing: ProgressSink = {
        update() {},
        epochDone(state) {
          if (state.label === "bn") throw new Error("display broke during bn");
        },
        close() {},
      };
      await assert.rejects(
        runExperiment(gpu, options(dir, { concurrent: true, epochs: 20, progress: failing })),
        { message: "display broke during bn" },
      );
      for (const variant of ["plain", "dropout"]) {
        const h = await history(dir, variant);
        assert.equal(h.stopped, "aborted", `${variant} was not stopped`);
        assert(
          h.epochs.length >= 1 && h.epochs.length < 20,
          `${variant}: ${h.epochs.length} epochs`,
        );
        // The stopped run can be resumed: its checkpoint is at its last recorded epoch.
        const { metadata } = await readSafetensorsFile(join(dir, variant, "last.safetensors"));
        assert.equal(Number(metadata.epoch), h.epochs.at(-1)!.epoch);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
