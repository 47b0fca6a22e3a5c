/**
 * The experiment's `cnn` recipe (lib/nn/cnn.ts, `deno task train --model cnn`): its optimizer
 * puts weight decay on the weights of rank > 1 only, with Nesterov momentum; `runExperiment`
 * trains it with its own loss, schedule and augmentation, records the recipe in the run's
 * manifest, resumes bit for bit and refuses a resume with more epochs (its one-cycle schedule
 * spans the run). tests/fit_parity_test.ts checks its first 20 steps against PyTorch.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CLASS_NAMES } from "../lib/data/cifar10.ts";
import { CNN_RECIPE, cnnModel } from "../lib/nn/cnn.ts";
import { manualSeed } from "../lib/nn/random.ts";
import {
  cnnOptimizer,
  type ExperimentOptions,
  MODELS,
  planExperiment,
  runExperiment,
  VARIANTS,
} from "../lib/train/experiment.ts";
import type { History } from "../lib/train/history.ts";
import { assertSameCheckpoints, curves } from "./fixtures/history.ts";
import { randomImages as images } from "./fixtures/random.ts";
import { gpuTest } from "./helpers.ts";

const data = { train: images(96, 3), test: images(32, 4), classes: [...CLASS_NAMES] };

function options(outDir: string, extra: Partial<ExperimentOptions> = {}): ExperimentOptions {
  return {
    variants: ["cnn"],
    epochs: 3,
    batchSize: 32,
    lr: CNN_RECIPE.lr,
    optimizer: "sgd",
    seed: 5,
    validationFreq: 1,
    dataDir: "",
    data,
    outDir,
    progress: false,
    ...extra,
  };
}

const history = async (dir: string): Promise<History> =>
  JSON.parse(await Deno.readTextFile(join(dir, "cnn", "history.json")));

Deno.test("MODELS: the lecture's variants (what --model all means) and cnn", () => {
  assert.deepEqual(MODELS, [...VARIANTS, "cnn"]);
});

gpuTest("cnnOptimizer: weight decay on conv and Linear weights only, Nesterov", (gpu) => {
  manualSeed(0);
  const model = cnnModel().to(gpu);
  const sgd = cnnOptimizer("sgd", model, 0.1);
  assert.equal(sgd.groupCount, 2);
  const [weights, others] = sgd.describeGroups();
  assert.match(weights, /weight_decay=0.0005 momentum=0.9 .*NESTEROV=1/);
  assert.match(others, /weight_decay=0 momentum=0.9 .*NESTEROV=1/);
  const params = [...model.parameters()];
  const ranks = params.map((p) => p.value.shape.length);
  // 6 convolutions and the Linear's weight; 6 BatchNorms' γ and β and the Linear's bias.
  assert.equal(ranks.filter((r) => r > 1).length, 7);
  assert.equal(ranks.filter((r) => r <= 1).length, 13);
  const adam = cnnOptimizer("adam", model, 1e-3);
  assert.equal(adam.groupCount, 1, "Adam as makeOptimizer builds it");
  for (const d of [adam, sgd, model]) d.dispose();
  return Promise.resolve();
});

gpuTest(
  "runExperiment cnn: recipe in the manifest, resumed bit for bit, more epochs refused",
  async (gpu) => {
    const whole = await Deno.makeTempDir({ prefix: "wgnn-cnn-whole-" });
    const parts = await Deno.makeTempDir({ prefix: "wgnn-cnn-parts-" });
    try {
      const [row] = await runExperiment(gpu, options(whole));
      assert.equal(row.status, "completed");
      const h = await history(whole);
      assert.equal(h.epochs.length, 3);
      assert(h.epochs.every((e) => Number.isFinite(e.trainLoss) && e.valLoss !== null));
      const manifest = JSON.parse(await Deno.readTextFile(join(whole, "cnn", "run.json")));
      const text = JSON.stringify(manifest);
      for (const piece of ["OneCycleLR", "nesterov", "label smoothing", `"epochs":3`]) {
        assert(text.includes(piece), `run.json names ${piece}: ${text}`);
      }

      // Stopped after epoch 1 and resumed: the uninterrupted run, bit for bit.
      const stop = new AbortController();
      await runExperiment(
        gpu,
        options(parts, {
          signal: stop.signal,
          checkpointSeconds: 0,
          progress: { update() {}, epochDone: () => stop.abort(), close() {} },
        }),
      );
      const partial = await history(parts);
      assert(partial.epochs.length < 3, `stopped early: ${partial.epochs.length} epochs`);
      await runExperiment(gpu, options(parts, { resume: true }));
      assert.deepEqual(curves(await history(parts)), curves(h), "history");
      await assertSameCheckpoints(join(parts, "cnn"), join(whole, "cnn"), "cnn");

      await assert.rejects(
        planExperiment(options(whole, { resume: true, epochs: 4 })),
        /with other settings: epochs was 3, now 4/,
        "a resume with more epochs would change the one-cycle schedule",
      );
    } finally {
      await Deno.remove(whole, { recursive: true });
      await Deno.remove(parts, { recursive: true });
    }
  },
);
