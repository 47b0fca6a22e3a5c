/**
 * Interrupts inside an epoch: `fit` aborted between chunks of steps (not after the whole queued
 * epoch), `scripts/train.ts` stopped by one Ctrl-C (SIGINT) and forced out by two, and
 * `checkpointsIdle`, which the forced exit waits on so that it never cuts a commit in half.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Gpu } from "../lib/gpu/device.ts";
import type { ImageSet } from "../lib/data/cifar10.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { Flatten, LeakyReLU, Linear } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { readSafetensorsFile } from "../lib/io/safetensors_file.ts";
import { Sequential, type StateDict } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import type { Optimizer } from "../lib/optim/optimizer.ts";
import { checkpointsIdle, readCheckpoint, saveCheckpoint } from "../lib/train/checkpoint.ts";
import { fit } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import type { ProgressSink, ProgressState } from "../lib/train/progress.ts";
import { runFilesIn } from "../lib/train/run_dir.ts";
import { lcgBytes, writeFixture } from "./fixtures/cifar_fixture.ts";
import { assertSameRun, withoutTimes } from "./fixtures/history.ts";
import { trainCommand } from "./fixtures/train_script.ts";
import { gpuTest, hasGpu, testGpu } from "./helpers.ts";

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

// ---------------------------------------------------------------------------------------------
// fit, aborted from inside an epoch

/** `count` random images with random labels (an LCG, independent of the code under test). */
function syntheticSet(count: number, seed: number): ImageSet {
  const labels = lcgBytes(seed + 1000, count).map((b) => b % 10);
  return { images: lcgBytes(seed, count * 3072), labels, count };
}

/** 192 training images in batches of 16: 12 steps, one per submission. */
const BATCHES = 12;
const EPOCHS = 3;
/** The abort comes when the GPU has finished this many steps of epoch 2. */
const ABORT_AT = 3;
/** fit's MAX_QUEUED: chunks waiting on the GPU at most (lib/train/fit.ts). */
const QUEUED = 2;

const smallModel = () =>
  new Sequential(new Flatten(), new Linear(3072, 32), new LeakyReLU(), new Linear(32, 10));

interface FitResult {
  history: History;
  stepCount: number;
}

/**
 * One `fit` of a small MLP into `dir`, one step per submission, encoded as it goes (no encode
 * ahead, on any adapter). With `abortAt`, the progress sink aborts once the GPU has finished that
 * many steps of epoch `abortAt.epoch`.
 */
async function runFit(
  gpu: Gpu,
  sets: { train: GpuDataset; val: GpuDataset },
  dir: string,
  o: { resume?: boolean; abortAt?: { epoch: number; batch: number } } = {},
): Promise<FitResult> {
  manualSeed(0);
  const model = smallModel().to(gpu);
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, sets.train, { batchSize: 16, shuffle: true, seed: 0 });
  const val = new Loader(gpu, sets.val, { batchSize: 32, shuffle: true, seed: 1 });
  assert.equal(train.batchesPerEpoch, BATCHES);
  const controller = new AbortController();
  const sink: ProgressSink = {
    update(state: ProgressState) {
      const at = o.abortAt;
      if (at && state.epoch === at.epoch && state.batch >= at.batch) controller.abort();
    },
    epochDone() {},
    close() {},
  };
  try {
    const history = await fit(model, {
      train,
      val,
      epochs: EPOCHS,
      loss,
      optimizer,
      checkpointDir: dir,
      resume: o.resume,
      signal: controller.signal,
      progress: sink,
      stepsPerSubmit: 1,
      encodeAhead: false,
    });
    return { history, stepCount: optimizer.stepCount };
  } finally {
    for (const x of [train, val, loss, optimizer, model]) x.dispose();
  }
}

gpuTest(
  "interrupt: fit aborted 3 steps into epoch 2 stops within a chunk, keeps epoch 1's commit, and resumes to equal an uninterrupted run",
  async (gpu) => {
    const root = await Deno.makeTempDir({ prefix: "wgnn-interrupt-" });
    const sets = {
      train: GpuDataset.upload(gpu, syntheticSet(BATCHES * 16, 1)),
      val: GpuDataset.upload(gpu, syntheticSet(64, 2)),
    };
    try {
      const whole = await runFit(gpu, sets, join(root, "whole"));
      assert.equal(whole.stepCount, EPOCHS * BATCHES);

      const dir = join(root, "parts");
      const cut = await runFit(gpu, sets, dir, { abortAt: { epoch: 2, batch: ABORT_AT } });
      // Epoch 1's steps, the ABORT_AT steps the GPU had done, and at most the chunks queued
      // behind them (plus one in flight). Submitting the epoch whole would reach 2 × BATCHES.
      const limit = BATCHES + ABORT_AT + QUEUED + 1;
      assert(
        cut.stepCount >= BATCHES + ABORT_AT && cut.stepCount <= limit,
        `the abort stopped after ${cut.stepCount} steps: expected ${
          BATCHES + ABORT_AT
        } to ${limit}`,
      );
      assert.equal(cut.history.stopped, "aborted");
      assert.deepEqual(cut.history.epochs.map((e) => e.epoch), [1], "epoch 2 is dropped");
      manualSeed(0);
      const saved = await readCheckpoint(dir, smallModel(), "Adam");
      assert.equal(saved.position.epoch, 1, "resume.safetensors is at epoch 1");
      assert.equal(saved.position.trainingSteps, BATCHES, "its position counts epoch 1's steps");
      const h = JSON.parse(await Deno.readTextFile(join(dir, "history.json"))) as History;
      assert.deepEqual(h.epochs.map((e) => e.epoch), [1], "history.json after the abort");

      const resumed = await runFit(gpu, sets, dir, { resume: true });
      assert.equal(resumed.history.stopped, undefined);
      assert.equal(resumed.stepCount, EPOCHS * BATCHES, "the optimizer's steps after the resume");
      assert.deepEqual(withoutTimes(resumed.history), withoutTimes(whole.history), "history");
      await assertSameRun(dir, join(root, "whole"));
    } finally {
      sets.train.dispose();
      sets.val.dispose();
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test({
  name:
    "interrupt: fit aborted in epoch 1, before any commit, leaves no run files, so the folder starts afresh",
  // Before, fit wrote history.json/.csv (with no epochs) for a run that committed none, and the
  // folder could then be neither resumed (no resume.safetensors) nor trained afresh (it "held a
  // run") without overwrite.
  ignore: !hasGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    const dir = await Deno.makeTempDir({ prefix: "wgnn-interrupt-early-" });
    const sets = {
      train: GpuDataset.upload(gpu, syntheticSet(BATCHES * 16, 1)),
      val: GpuDataset.upload(gpu, syntheticSet(64, 2)),
    };
    try {
      const cut = await runFit(gpu, sets, dir, { abortAt: { epoch: 1, batch: ABORT_AT } });
      assert.equal(cut.history.stopped, "aborted");
      assert.deepEqual(cut.history.epochs, []);
      assert.deepEqual(await runFilesIn(dir), [], "run files without a commit");
      const fresh = await runFit(gpu, sets, dir);
      assert.equal(fresh.history.epochs.length, EPOCHS);
    } finally {
      sets.train.dispose();
      sets.val.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// checkpointsIdle

/** A latch: `open()` resolves `wait`. */
function latch(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/**
 * A model and an optimizer as far as saveCheckpoint uses them (no GPU): the weights' readback
 * waits on `gate`, so the test decides how long the save stays in flight.
 */
function gatedRun(gate: Promise<void>): { model: Sequential; optimizer: Optimizer } {
  const state: StateDict = {
    "0.weight": { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
  };
  const model = { stateDict: () => gate.then(() => state) };
  const optimizer = {
    name: "Adam",
    lr: 0.001,
    readState: () => Promise.resolve({ step: new Float32Array([1]) }),
  };
  return {
    model: model as unknown as Sequential,
    optimizer: optimizer as unknown as Optimizer,
  };
}

/** Starts a gated save of epoch 1 into `dir`; `open` lets it finish. */
function gatedSave(dir: string): { done: Promise<void>; open: () => void } {
  const gate = latch();
  const { model, optimizer } = gatedRun(gate.wait);
  const epochs = [{ epoch: 1, trainLoss: 2, seconds: 0 }];
  const history: History = { variant: "t", adapter: "none", epochs, classes: [] };
  const done = saveCheckpoint(dir, model, optimizer, {
    epoch: 1,
    trainingSteps: 1,
    architecture: "fake",
  }, { history, runId: "r" });
  return { done, open: gate.open };
}

/** Whether `p` has settled after the event loop turns `turns` times. */
async function settled(p: Promise<unknown>, turns = 5): Promise<boolean> {
  let yes = false;
  p.then(() => (yes = true), () => (yes = true));
  for (let i = 0; i < turns; i++) await delay(1);
  return yes;
}

Deno.test("checkpointsIdle waits for every save in flight, and resolves right after", async () => {
  const root = await Deno.makeTempDir({ prefix: "wgnn-idle-" });
  try {
    assert(await settled(checkpointsIdle(), 1), "nothing in flight: it resolves at once");

    // One save, held at its readback: checkpointsIdle waits; once the save has written its last
    // file (history.csv), it resolves.
    const one = gatedSave(root);
    let csvAtIdle: boolean | null = null;
    const idle = checkpointsIdle().then(() => {
      csvAtIdle = Deno.statSync(join(root, "history.csv")).isFile;
    });
    assert(!(await settled(idle, 20)), "it resolved while the save was in flight");
    one.open();
    await one.done;
    assert(await settled(idle, 1), "it did not resolve once the save ended");
    assert.equal(csvAtIdle, true, "it resolved before the save had written history.csv");
    const file = await readSafetensorsFile(join(root, "resume.safetensors"));
    assert.equal(file.metadata.epoch, "1");

    // Two saves: the first to end does not release it; the second does.
    await Promise.all([Deno.mkdir(join(root, "a")), Deno.mkdir(join(root, "b"))]);
    const a = gatedSave(join(root, "a"));
    const b = gatedSave(join(root, "b"));
    const both = checkpointsIdle();
    a.open();
    await a.done;
    assert(!(await settled(both)), "it resolved while the second save was in flight");
    b.open();
    await b.done;
    assert(await settled(both, 1), "it did not resolve once both saves ended");

    // A save that fails (its folder does not exist) still counts as ended.
    const failing = gatedSave(join(root, "missing"));
    const afterFailure = checkpointsIdle();
    failing.open();
    await assert.rejects(failing.done, /Cannot write ".*missing.*"/);
    assert(await settled(afterFailure, 1), "a failed save kept checkpointsIdle waiting");
    assert(await settled(checkpointsIdle(), 1), "after a failed save it still resolves at once");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// scripts/train.ts and Ctrl-C

const td = new TextDecoder();

/**
 * The timings below are a software adapter's; on a hardware one the run ends (and commits on
 * its own cadence) long before a signal lands, so these tests are not run there.
 */
const shared = hasGpu ? await testGpu() : "no GPU";
const software = typeof shared !== "string" && shared.adapter.fallback;
const scriptOptions = { ignore: !software, sanitizeResources: false, sanitizeOps: false };

/**
 * train.ts on 5 × `perBatch` training images in batches of 64 (for 512, 40 steps an epoch: 5
 * chunks of 8), validated on 64, in a fixture folder. On lavapipe 40 steps take about 0.3 s, so
 * a signal 100 ms into an epoch lands with chunks still to come.
 */
async function scriptRun(epochs: number, perBatch = 512) {
  const fixture = await writeFixture(perBatch, 64);
  const args = ["--model", "plain", "--epochs", String(epochs), "--batch-size", "64"];
  const command = (...more: string[]) => trainCommand(fixture.root, [...args, ...more]);
  return { root: fixture.root, dir: join(fixture.root, "out/plain"), command };
}

/** A running train.ts: its stderr so far, whether it has ended, and its exit. */
interface Watched {
  child: Deno.ChildProcess;
  stderr: () => string;
  ended: () => boolean;
  done: Promise<{ code: number; stderr: string }>;
}

/** Spawns `command`, collecting stderr as it comes (and draining stdout). */
function watch(command: Deno.Command): Watched {
  const child = command.spawn();
  let text = "";
  let ended = false;
  const stderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
  })();
  const stdout = child.stdout.pipeTo(new WritableStream());
  const done = Promise.all([child.status, stderr, stdout]).then(([status]) => {
    ended = true;
    return { code: status.code, stderr: text };
  });
  return { child, stderr: () => text, ended: () => ended, done };
}

/** Waits until `ready()` holds; fails, showing stderr, if the script ends first. */
async function until(run: Watched, ready: () => boolean | Promise<boolean>, what: string) {
  while (!(await ready())) {
    if (run.ended()) throw new Error(`train.ts ended before ${what}:\n${run.stderr()}`);
    await delay(5);
  }
}

/** The epochs of the committed checkpoint and of history.json. */
async function committedEpochs(dir: string): Promise<{ resume: number; history: number[] }> {
  const file = await readSafetensorsFile(join(dir, "resume.safetensors"));
  const h = JSON.parse(await Deno.readTextFile(join(dir, "history.json"))) as History;
  return { resume: Number(file.metadata.epoch), history: h.epochs.map((e) => e.epoch) };
}

const STOPPING = "stopping within the current chunk of steps";

Deno.test({
  name:
    "interrupt: train.ts, one SIGINT during epoch 2, drops that epoch, exits 130 saying how to resume; --resume finishes with 0",
  ...scriptOptions,
  fn: async () => {
    const run = await scriptRun(3);
    try {
      const child = watch(await run.command());
      // last.safetensors is epoch 1's export, right after its commit.
      await until(child, () => exists(join(run.dir, "last.safetensors")), "committing epoch 1");
      await delay(100); // into epoch 2
      child.child.kill("SIGINT");
      const stopped = await child.done;
      assert.equal(stopped.code, 130, stopped.stderr);
      assert.match(stopped.stderr, new RegExp(STOPPING));
      assert.match(stopped.stderr, /interrupted; resume with: deno task train --resume --out out/);
      assert.doesNotMatch(stopped.stderr, /forced exit/);
      // Epoch 2 had chunks to come when the signal landed: it is dropped, not finished.
      assert.deepEqual(await committedEpochs(run.dir), { resume: 1, history: [1] });

      const resumed = await (await run.command("--resume")).output();
      assert.equal(resumed.code, 0, td.decode(resumed.stderr));
      assert.deepEqual(await committedEpochs(run.dir), { resume: 3, history: [1, 2, 3] });
    } finally {
      await Deno.remove(run.root, { recursive: true });
    }
  },
});

/** Sends SIGINT, then a second one `gap` ms after the first was seen; the exit and its delay. */
async function interruptTwice(run: Watched, gap: number) {
  run.child.kill("SIGINT");
  await until(run, () => run.stderr().includes(STOPPING), "seeing the first SIGINT");
  await delay(gap);
  assert(!run.ended(), `train.ts stopped within ${gap} ms of the first SIGINT: nothing to force`);
  run.child.kill("SIGINT");
  const t0 = performance.now();
  const stopped = await run.done;
  return { ...stopped, seconds: (performance.now() - t0) / 1000 };
}

Deno.test({
  name:
    "interrupt: train.ts, a second SIGINT while the first stops epoch 2, exits 130 at once ('forced exit') leaving epoch 1 resumable",
  ...scriptOptions,
  fn: async () => {
    const run = await scriptRun(3);
    try {
      const child = watch(await run.command());
      await until(child, () => exists(join(run.dir, "last.safetensors")), "committing epoch 1");
      await delay(100);
      // The stop takes one or two chunks (~0.1 s here): the second SIGINT comes at once.
      const stopped = await interruptTwice(child, 0);
      assert.equal(stopped.code, 130, stopped.stderr);
      assert.match(stopped.stderr, /forced exit/);
      assert.doesNotMatch(stopped.stderr, /interrupted; resume with/, "it was not forced");
      assert(stopped.seconds < 3, `it exited ${stopped.seconds.toFixed(1)} s after the 2nd SIGINT`);
      // Epoch 1's commit is whole (a resume checks every digest), wherever the exit cut.
      assert.equal((await committedEpochs(run.dir)).resume, 1);
      const resumed = await (await run.command("--resume")).output();
      assert.equal(resumed.code, 0, td.decode(resumed.stderr));
      assert.deepEqual(await committedEpochs(run.dir), { resume: 3, history: [1, 2, 3] });
    } finally {
      await Deno.remove(run.root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "interrupt: train.ts with a deferred commit, two SIGINTs 150 ms apart during epoch 3, exits 130 ('forced exit') with a whole commit",
  ...scriptOptions,
  fn: async () => {
    // With --checkpoint-seconds 3600, epoch 2's commit is deferred: the first SIGINT in epoch 3
    // lets that epoch (80 steps, ~0.6 s) finish and be committed, so a second SIGINT 150 ms
    // later forces the exit mid-epoch, or waits for the commit if it has begun.
    const run = await scriptRun(4, 1024);
    try {
      const child = watch(await run.command("--checkpoint-seconds", "3600"));
      await until(child, () => child.stderr().includes("epoch 2/4 batch 80/80"), "epoch 2");
      await delay(100); // past epoch 2's end (a new best.safetensors, maybe) into epoch 3
      const stopped = await interruptTwice(child, 150);
      assert.equal(stopped.code, 130, stopped.stderr);
      assert.match(stopped.stderr, /forced exit/);
      assert.doesNotMatch(stopped.stderr, /interrupted; resume with/, "it was not forced");
      assert(stopped.seconds < 3, `it exited ${stopped.seconds.toFixed(1)} s after the 2nd SIGINT`);
      const saved = await committedEpochs(run.dir);
      assert([1, 3].includes(saved.resume), `resume.safetensors is at epoch ${saved.resume}`);
      const resumed = await (await run.command("--resume", "--checkpoint-seconds", "3600"))
        .output();
      assert.equal(resumed.code, 0, td.decode(resumed.stderr));
      assert.deepEqual(await committedEpochs(run.dir), { resume: 4, history: [1, 2, 3, 4] });
    } finally {
      await Deno.remove(run.root, { recursive: true });
    }
  },
});
