/**
 * The experiment's concurrent mode: the three variants trained side by side on one device give
 * the same numbers and the same checkpoint files, byte for byte, as one after another; and a
 * failure in one variant is recorded and the others train on (or, with failFast, stop between
 * steps with their checkpoints intact).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CLASS_NAMES } from "../lib/data/cifar10.ts";
import { type ExperimentOptions, runExperiment, VARIANTS } from "../lib/train/experiment.ts";
import type { History } from "../lib/train/history.ts";
import type { ProgressSink } from "../lib/train/progress.ts";
import { gpuTest } from "./helpers.ts";
import { comparable, withoutTimes } from "./fixtures/history.ts";
import { formatSummary, type SummaryRow } from "../lib/train/summary.ts";
import { readSafetensorsFile } from "../lib/io/safetensors_file.ts";
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
        for (const file of ["last.safetensors", "resume.safetensors", "best.safetensors"]) {
          const x = await Deno.readFile(join(seqDir, variant, file));
          const y = await Deno.readFile(join(conDir, variant, file));
          assert(x.length > 100_000 || file !== "last.safetensors", `${variant}/${file}: size`);
          assert.deepEqual(
            comparable(file, y),
            comparable(file, x),
            `${variant}/${file} differs between the two runs`,
          );
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

/** A progress display that breaks at bn's first epoch: a failure inside one variant's run. */
const failing: ProgressSink = {
  update() {},
  epochDone(state) {
    if (state.label === "bn") throw new Error("display broke during bn");
  },
  close() {},
};

gpuTest(
  "with failFast, a failing variant stops the concurrent others, whose checkpoints stay intact",
  async (gpu) => {
    const dir = await Deno.makeTempDir({ prefix: "wgnn-fail-" });
    try {
      await assert.rejects(
        runExperiment(
          gpu,
          options(dir, { concurrent: true, epochs: 20, progress: failing, failFast: true }),
        ),
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
        const { metadata } = await readSafetensorsFile(join(dir, variant, "resume.safetensors"));
        assert.equal(Number(metadata.epoch), h.epochs.at(-1)!.epoch);
      }
      const summary = JSON.parse(await Deno.readTextFile(join(dir, "summary.json")));
      assert.equal(summary.find((r: SummaryRow) => r.variant === "bn").status, "failed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

for (const concurrent of [false, true]) {
  gpuTest(
    `a failing variant is recorded as failed and the others train to the end (${
      concurrent ? "side by side" : "one after another"
    })`,
    async (gpu) => {
      const dir = await Deno.makeTempDir({ prefix: "wgnn-isolate-" });
      try {
        const failures: string[] = [];
        const rows = await runExperiment(
          gpu,
          options(dir, {
            concurrent,
            progress: failing,
            onFailure: (variant, error) => failures.push(`${variant}: ${error.message}`),
          }),
        );
        assert.deepEqual(failures, ["bn: display broke during bn"]);
        assert.deepEqual(rows.map((r) => [r.variant, r.status, r.epochs]), [
          ["plain", "completed", 3],
          ["bn", "failed", 0],
          ["dropout", "completed", 3],
        ]);
        assert.equal(rows[1].error, "display broke during bn");
        // The summary on disk says the same, reason included.
        const summary = JSON.parse(await Deno.readTextFile(join(dir, "summary.json")));
        assert.deepEqual(summary.map((r: SummaryRow) => r.status), [
          "completed",
          "failed",
          "completed",
        ]);
        assert.match(formatSummary(rows), /bn failed: display broke during bn/);
        for (const variant of ["plain", "dropout"]) {
          assert.equal((await history(dir, variant)).epochs.length, 3, variant);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
