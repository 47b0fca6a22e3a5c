/**
 * Interruption and resume: a run stopped after epoch k and resumed to N epochs must end with the
 * same bytes (weights, BatchNorm running stats, optimizer state, Dropout step counter) as a run
 * that was never interrupted, on the same adapter. The reference is the uninterrupted run; the
 * comparison is bitwise, on the checkpoint files and on the state read back from the GPU.
 *
 * Two ways in: `fit` with an AbortSignal (in process), and `scripts/train.ts` killed with SIGINT
 * and rerun with `--resume` (as a subprocess, with the `train` task's permission flags).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Gpu } from "../lib/gpu/device.ts";
import type { ImageSet } from "../lib/data/cifar10.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import type { StateDict } from "../lib/nn/sequential.ts";
import { lectureModel, makeOptimizer, type Variant } from "../lib/train/experiment.ts";
import { fit } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import { lcgBytes, writeFixture } from "./fixtures/cifar_fixture.ts";
import { trainCommand } from "./fixtures/train_script.ts";
import { assertSameCheckpoints, curves } from "./fixtures/history.ts";
import { gpuTest, hasGpu } from "./helpers.ts";

/** `count` random images with random labels (an LCG, independent of the code under test). */
function syntheticSet(count: number, seed: number): ImageSet {
  const labels = lcgBytes(seed + 1000, count).map((b) => b % 10);
  return { images: lcgBytes(seed, count * 3072), labels, count };
}

interface RunResult {
  state: StateDict;
  optim: Record<string, Float32Array>;
  trainingSteps: number;
  history: History;
}

interface RunOptions {
  epochs: number;
  dir: string;
  /** Abort (through the signal, from onEpoch) once this epoch is done. */
  abortAfter?: number;
  resume?: boolean;
}

/** One `fit` of the seed's `variant`, built as runExperiment builds it. */
async function runFit(
  gpu: Gpu,
  variant: Variant,
  sets: { train: GpuDataset; val: GpuDataset },
  o: RunOptions,
): Promise<RunResult> {
  manualSeed(0);
  const model = lectureModel(variant).to(gpu);
  const optimizer = makeOptimizer("adam", model, 1e-3);
  const loss = new CrossEntropyLoss();
  // 300 images in batches of 64: the last batch (44) is smaller; augmentation draws per epoch.
  const train = new Loader(gpu, sets.train, {
    batchSize: 64,
    shuffle: true,
    seed: 0,
    augment: { flip: true, crop: 4 },
  });
  const val = new Loader(gpu, sets.val, { batchSize: 64, shuffle: true, seed: 1 });
  const controller = new AbortController();
  try {
    const history = await fit(model, {
      train,
      val,
      epochs: o.epochs,
      loss,
      optimizer,
      checkpointDir: o.dir,
      resume: o.resume,
      signal: controller.signal,
      variant,
      progress: false,
      stepsPerSubmit: 2,
      onEpoch: (record) => {
        if (record.epoch === o.abortAfter) controller.abort();
      },
    });
    return {
      state: await model.stateDict(),
      optim: await optimizer.readState(),
      trainingSteps: await model.trainingSteps(),
      history,
    };
  } finally {
    for (const x of [train, val, loss, optimizer, model]) x.dispose();
  }
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Asserts two named sets of arrays are equal bit for bit; names the first differing entry. */
function assertSameBits(
  actual: Record<string, ArrayBufferView>,
  expected: Record<string, ArrayBufferView>,
  what: string,
): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${what}: names`);
  for (const name of Object.keys(expected)) {
    const a = bytesOf(actual[name]), e = bytesOf(expected[name]);
    assert.equal(a.length, e.length, `${what} "${name}": byte length`);
    const i = a.findIndex((b, k) => b !== e[k]);
    assert.equal(i, -1, `${what} "${name}": first differing byte at ${i}`);
  }
}

const stateData = (s: StateDict) =>
  Object.fromEntries(Object.entries(s).map(([k, t]) => [k, t.data]));

for (const variant of ["dropout", "bn"] as const) {
  gpuTest(
    `${variant}: fit aborted after epoch 2 and resumed to 4 equals 4 epochs in one go`,
    async (gpu) => {
      const root = await Deno.makeTempDir({ prefix: `wgnn-resume-${variant}-` });
      const sets = {
        train: GpuDataset.upload(gpu, syntheticSet(300, 1)),
        val: GpuDataset.upload(gpu, syntheticSet(100, 2)),
      };
      try {
        const whole = await runFit(gpu, variant, sets, { epochs: 4, dir: join(root, "whole") });
        const dir = join(root, "parts");
        const first = await runFit(gpu, variant, sets, { epochs: 4, dir, abortAfter: 2 });
        assert.equal(first.history.stopped, "aborted");
        assert.deepEqual(first.history.epochs.map((e) => e.epoch), [1, 2]);
        const saved = JSON.parse(await Deno.readTextFile(join(dir, "history.json"))) as History;
        assert.deepEqual(saved.epochs.map((e) => e.epoch), [1, 2], "history.json after the abort");
        // The checkpoint after epoch 2 is not the end state: resuming has work to do.
        assert.notDeepEqual(
          bytesOf(first.state["1.weight"].data),
          bytesOf(whole.state["1.weight"].data),
        );

        const resumed = await runFit(gpu, variant, sets, { epochs: 4, dir, resume: true });
        assert.equal(resumed.history.stopped, undefined);
        assert.deepEqual(curves(resumed.history), curves(whole.history), "history");
        assertSameBits(stateData(resumed.state), stateData(whole.state), "state dict");
        assertSameBits(resumed.optim, whole.optim, "optimizer state");
        assert.equal(resumed.trainingSteps, whole.trainingSteps, "training-forward counter");
        assert.equal(whole.trainingSteps, 4 * 5, "4 epochs of 5 batches");
        await assertSameCheckpoints(dir, join(root, "whole"), "checkpoint files");
        if (variant === "bn") {
          const tracked = resumed.state["3.num_batches_tracked"].data as BigInt64Array;
          assert.equal(tracked[0], 20n, "num_batches_tracked counts every training batch");
        }
      } finally {
        sets.train.dispose();
        sets.val.dispose();
        await Deno.remove(root, { recursive: true });
      }
    },
  );
}

gpuTest("resuming a finished run keeps its confusion matrix and history", async (gpu) => {
  const root = await Deno.makeTempDir({ prefix: "wgnn-resume-done-" });
  const sets = {
    train: GpuDataset.upload(gpu, syntheticSet(300, 1)),
    val: GpuDataset.upload(gpu, syntheticSet(100, 2)),
  };
  try {
    const done = await runFit(gpu, "plain", sets, { epochs: 2, dir: root });
    const before = await Deno.readTextFile(join(root, "history.json"));
    const again = await runFit(gpu, "plain", sets, { epochs: 2, dir: root, resume: true });
    assert.deepEqual(curves(again.history), curves(done.history));
    const confusion = again.history.confusion;
    assert(confusion !== undefined, "the resumed history lost its confusion matrix");
    assert.equal(confusion.flat().reduce((a, b) => a + b, 0), 100, "one count per val image");
    assert.equal(await Deno.readTextFile(join(root, "history.json")), before, "history.json");
  } finally {
    sets.train.dispose();
    sets.val.dispose();
    await Deno.remove(root, { recursive: true });
  }
});

gpuTest(
  "resume reads the commit, not its exports: a history.json and last.safetensors left behind are rewritten",
  async (gpu) => {
    const root = await Deno.makeTempDir({ prefix: "wgnn-resume-gap-" });
    const sets = {
      train: GpuDataset.upload(gpu, syntheticSet(300, 1)),
      val: GpuDataset.upload(gpu, syntheticSet(100, 2)),
    };
    try {
      const whole = await runFit(gpu, "plain", sets, { epochs: 3, dir: join(root, "whole") });
      const dir = join(root, "parts");
      await runFit(gpu, "plain", sets, { epochs: 2, dir });
      // As if the run had died after committing epoch 2 but before exporting it.
      const path = join(dir, "history.json");
      const h = JSON.parse(await Deno.readTextFile(path)) as History;
      h.epochs = h.epochs.slice(0, 1);
      await Deno.writeTextFile(path, JSON.stringify(h));
      await Deno.writeFile(join(dir, "last.safetensors"), new Uint8Array(10)); // torn export
      const resumed = await runFit(gpu, "plain", sets, { epochs: 3, dir, resume: true });
      assert.deepEqual(curves(resumed.history), curves(whole.history));
      await assertSameCheckpoints(dir, join(root, "whole"), "after the resume");
    } finally {
      sets.train.dispose();
      sets.val.dispose();
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test("fit refuses resume or restoreBest without a checkpoint folder", async () => {
  // The options are checked before the model is touched, so none is needed here.
  const model = null as unknown as Parameters<typeof fit>[0];
  const base = { epochs: 1 } as Parameters<typeof fit>[1];
  await assert.rejects(() => fit(model, { ...base, resume: true }), /resume needs checkpointDir/);
  await assert.rejects(
    () => fit(model, { ...base, earlyStopping: { patience: 2, restoreBest: true } }),
    /restoreBest needs checkpointDir/,
  );
});

// ---- the script, killed with SIGINT and resumed ----

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test({
  name: "train.ts killed with SIGINT after epoch 1 and rerun with --resume ends bitwise equal",
  ignore: !hasGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // 5 × 96 training images, 64 test images; the task's flags allow only data/ and out/.
    const fixture = await writeFixture(96, 64);
    const root = fixture.root;
    const common = ["--model", "all", "--epochs", "3", "--batch-size", "32", "--seed", "0"];
    try {
      const whole = await (await trainCommand(root, [...common, "--out", "out/whole"])).output();
      const td = new TextDecoder();
      assert.equal(whole.code, 0, td.decode(whole.stderr));

      const child = (await trainCommand(root, [...common, "--out", "out/parts"])).spawn();
      const output = child.output();
      const marker = join(root, "out/parts/plain/last.safetensors");
      while (!(await exists(marker))) await new Promise((r) => setTimeout(r, 5));
      child.kill("SIGINT");
      const stopped = await output;
      const log = td.decode(stopped.stderr);
      assert.equal(stopped.code, 130, log);
      assert.match(log, /interrupted; resume with/);
      assert(
        !(await exists(join(root, "out/parts/dropout/last.safetensors"))),
        "the run was not interrupted: dropout finished before SIGINT",
      );

      const resumed =
        await (await trainCommand(root, [...common, "--out", "out/parts", "--resume"]))
          .output();
      assert.equal(resumed.code, 0, td.decode(resumed.stderr));
      for (const variant of ["plain", "bn", "dropout"]) {
        const a = join(root, "out/parts", variant), b = join(root, "out/whole", variant);
        await assertSameCheckpoints(a, b, variant);
        const ha = JSON.parse(await Deno.readTextFile(join(a, "history.json"))) as History;
        const hb = JSON.parse(await Deno.readTextFile(join(b, "history.json"))) as History;
        assert.deepEqual(curves(ha), curves(hb), `${variant} history`);
        assert.deepEqual(ha.confusion, hb.confusion, `${variant} confusion`);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
