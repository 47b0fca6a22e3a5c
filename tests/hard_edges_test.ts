/**
 * Hard edges: what happens when the GPU runs out of memory, the device is lost mid-run, the loss
 * turns NaN, or a write is interrupted. Each case checks that the error names the problem, that
 * scripts exit with the documented code, and that no partial file is left behind.
 *
 * The malformed-file edges have their fuzz loops elsewhere: safetensors in
 * `safetensors_test.ts`, the CIFAR parser in `cifar10_test.ts`, hostile tar archives in
 * `download_test.ts`.
 *
 * @module
 */

import * as assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { DeviceLostError, Gpu, GpuMemoryError, requestGpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import type { ImageSet } from "../lib/data/cifar10.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { writeFileAtomic } from "../lib/io/atomic.ts";
import { CrossEntropyLoss, LossStats } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { readSafetensorsFile } from "../lib/io/safetensors_file.ts";
import type { StateDict } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { Tensor } from "../lib/tensor.ts";
import { lectureModel, type Variant } from "../lib/train/experiment.ts";
import { fit, type FitOptions, NonFiniteLossError } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import { lcgBytes } from "./fixtures/cifar_fixture.ts";
import { listFiles, REPO, runTask, SHARED_DATA, tinyProject } from "./fixtures/tiny_cifar.ts";
import { hasGpu } from "./helpers.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";

const gpuOptions = { ignore: !hasGpu, sanitizeResources: false, sanitizeOps: false };
const adapter = hasGpu ? await navigator.gpu.requestAdapter() : null;

/** `count` random images with labels i mod 10 (an LCG, independent of the code under test). */
function syntheticSet(count: number, seed: number): ImageSet {
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  return { images: lcgBytes(seed, count * 3072), labels, count };
}

/**
 * A model, its optimizer and loss, and a loader of `images` images in batches of 32; `fit` trains
 * them quietly with the given options.
 */
function setup(gpu: Gpu, variant: Variant, lr: number, images = 96) {
  manualSeed(0);
  const model = lectureModel(variant).to(gpu);
  const optimizer = new Adam(model.parameters(), { lr });
  const loss = new CrossEntropyLoss();
  const data = GpuDataset.upload(gpu, syntheticSet(images, 7));
  const train = new Loader(gpu, data, { batchSize: 32, shuffle: true, seed: 1 });
  const run = (options: Omit<FitOptions, "train" | "loss" | "optimizer" | "progress">) =>
    fit(model, { train, loss, optimizer, progress: false, ...options });
  const dispose = () => {
    for (const x of [train, data, loss, optimizer, model]) x.dispose();
  };
  return { model, optimizer, loss, train, fit: run, dispose };
}

/** The error `fn` throws (fails when it returns). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error, but none was thrown");
}

// ---------------------------------------------------------------------------------------------
// Out of GPU memory

Deno.test({
  name: "oom: a buffer beyond the adapter's limits is refused at once with bytes, limit, advice",
  ...gpuOptions,
  fn: async () => {
    const gpu = await requestGpu();
    const live = gpu.memory.liveBytes;
    // 10^8 images of 3072 floats: more than any adapter's maxBufferSize.
    const bytes = 1e8 * 3072 * 4;
    const error = thrown(() => Tensor.empty(gpu, [1e8, 3072], "f32", "batch x"));
    assert.ok(error instanceof GpuMemoryError && error instanceof RangeError, `got ${error}`);
    assert.match(error.message, new RegExp(`"batch x": ${bytes} bytes exceed`));
    assert.match(error.message, new RegExp(`maxBufferSize of ${gpu.limits.maxBufferSize} bytes`));
    assert.match(error.message, /lower the batch size/);
    assert.equal(error.bytes, bytes);
    assert.equal(error.limit, gpu.limits.maxBufferSize);
    // A storage buffer one row larger than a kernel can bind is refused too (never usable).
    const binding = gpu.limits.maxStorageBufferBindingSize;
    const rows = Math.floor(binding / (3072 * 4)) + 1;
    if (rows * 3072 * 4 <= gpu.limits.maxBufferSize) {
      assert.throws(
        () => Tensor.empty(gpu, [rows, 3072], "f32", "activations"),
        new RegExp(
          `${rows * 3072 * 4} bytes exceed the adapter's maxStorageBufferBindingSize ` +
            `of ${binding} bytes; lower the batch size`,
        ),
      );
    }
    assert.equal(gpu.memory.liveBytes, live, "nothing was allocated or counted");
    await gpu.sync(); // and the device is fine
  },
});

Deno.test({
  name: "oom: an out-of-memory reported by WebGPU's error scope is thrown at the next sync",
  ...gpuOptions,
  fn: async () => {
    // A private device whose error scope answers out-of-memory, as a driver does when the
    // memory is full: lavapipe allocates host memory lazily, so the real thing cannot be
    // provoked here without exhausting the machine's memory.
    const device = await adapter!.requestDevice();
    const gpu = new Gpu(device, {
      description: "test",
      vendor: "",
      architecture: "",
      fallback: true,
      features: [],
    });
    try {
      const ok = gpu.createBuffer(1024, GPUBufferUsage.STORAGE, "fits");
      await gpu.sync();
      ok.dispose();
      device.popErrorScope = () =>
        Promise.resolve(new GPUOutOfMemoryError("simulated: no memory left on the device"));
      gpu.createBuffer(4096, GPUBufferUsage.STORAGE, "batch x 4096");
      const error = await gpu.sync().then(() => null, (e) => e);
      assert.ok(error instanceof GpuMemoryError, `got ${error}`);
      assert.match(error.message, /"batch x 4096": 4096 bytes could not be allocated/);
      assert.match(error.message, /simulated: no memory left on the device/);
      assert.match(error.message, /maxBufferSize is \d+; lower the batch size/);
      assert.equal(error.limit, null);
      // Reported once; the next allocation's scope says nothing more.
      delete (device as { popErrorScope?: unknown }).popErrorScope;
      await gpu.checkAllocations();
    } finally {
      device.destroy();
    }
  },
});

const needed = 50_000 * 3072 * 4; // the whole training set as one f32 batch
const bindable = adapter === null ? Infinity : Math.min(
  adapter.limits.maxStorageBufferBindingSize,
  adapter.limits.maxBufferSize,
);

Deno.test({
  name: "oom: train --batch-size 10000000 on CIFAR-10 exits 2 naming bytes and limit",
  // The batch is capped at the 50,000 training images; it must exceed what a kernel can bind.
  ...gpuOptions,
  ignore: !hasGpu || SHARED_DATA === null || needed <= bindable,
  fn: async () => {
    const project = await tinyProject(1, 1);
    try {
      const result = await runTask(project, "train", [
        "--data",
        "../shared/data",
        "--model",
        "bn",
        "--epochs",
        "1",
        "--batch-size",
        "10000000",
      ]);
      const output = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
      assert.equal(result.code, 2, output);
      const limitName = adapter!.limits.maxStorageBufferBindingSize <= adapter!.limits.maxBufferSize
        ? "maxStorageBufferBindingSize"
        : "maxBufferSize";
      assert.match(
        result.stderr,
        new RegExp(
          `^train: Cannot allocate buffer "[^"]+": ${needed} bytes exceed the ` +
            `adapter's ${limitName} of ${bindable} bytes; lower the batch size$`,
          "m",
        ),
        output,
      );
      assert.doesNotMatch(result.stderr, /\n\s+at /, "one line, no stack trace");
      assert.deepEqual(await listFiles(join(project.dir, "out")), [], "no file is written");
    } finally {
      await Deno.remove(project.root, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// NaN and Inf

Deno.test({
  name: "nan: a diverging run stops with NonFiniteLossError naming epoch and batch; no files",
  ...gpuOptions,
  fn: async () => {
    const gpu = await requestGpu();
    const dir = await Deno.makeTempDir({ prefix: "wgnn-nan-" });
    const run = setup(gpu, "plain", 1e30);
    try {
      // Adam's first step moves every weight by about lr = 1e30, so the second batch's hidden
      // activations reach ~1e30 · 1e30 and overflow f32: batch 2 (index 1) is the first NaN/Inf.
      const error = await run.fit({ epochs: 3, checkpointDir: dir }).then(() => null, (e) => e);
      assert.ok(error instanceof NonFiniteLossError, `got ${error}`);
      assert.equal(error.epoch, 1);
      assert.equal(error.batch, 1);
      assert.equal(error.step, 2);
      assert.match(error.message, /NaN or infinite at epoch 1, batch 2 \(step 2\)/);
      assert.deepEqual(await listFiles(dir), [], "no checkpoint or history of a NaN epoch");
    } finally {
      run.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "nan: a NaN input is flagged at the batch where it appears",
  ...gpuOptions,
  fn: async () => {
    const gpu = await requestGpu();
    manualSeed(0);
    const model = lectureModel("plain").to(gpu);
    const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
    const loss = new CrossEntropyLoss();
    const stats = new LossStats(gpu, "nan stats");
    const images = [0, 1, 2].map((b) => {
      const x = Float32Array.from(lcgBytes(b + 1, 16 * 3072), (v) => v / 255);
      if (b === 1) x[5 * 3072 + 100] = NaN; // one pixel of one image of the second batch
      return Tensor.from(gpu, x, [16, 3072], `x ${b}`);
    });
    const y = Tensor.from(gpu, Uint32Array.from({ length: 16 }, (_, i) => i % 10), [16]);
    try {
      const enc = new StepEncoder(gpu);
      stats.reset(enc);
      for (const x of images) {
        encodeTrainingStep(enc, { model, loss, optimizer }, x, y, stats);
      }
      enc.submit();
      const summary = await stats.read();
      assert.equal(summary.batches, 3);
      assert.equal(summary.firstNonFiniteBatch, 1);
    } finally {
      for (const t of [...images, y]) t.dispose();
      for (const x of [stats, loss, optimizer, model]) x.dispose();
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Interrupted writes

/** Bytes whose `subarray` hands out half of them, then fails: a disk error mid-write. */
class FailingBytes extends Uint8Array {
  #calls = 0;
  override subarray(begin?: number, end?: number): Uint8Array<ArrayBuffer> {
    if (this.#calls++ > 0) throw new Error("simulated I/O error after half the bytes");
    return new Uint8Array(this.buffer, begin ?? 0, Math.floor((end ?? this.length) / 2));
  }
}

Deno.test("atomic writes: a failure mid-write keeps the old file and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgnn-atomic-" });
  try {
    const target = join(dir, "history.json");
    await Deno.writeTextFile(target, "old contents\n");
    const error = await writeFileAtomic(target, new FailingBytes(1 << 16)).then(
      () => null,
      (e) => e,
    );
    assert.match(String(error), /simulated I\/O error after half the bytes/);
    assert.equal(await Deno.readTextFile(target), "old contents\n");
    assert.deepEqual(await listFiles(dir), ["history.json"]);

    // The rename fails (the target is a folder): the folder is untouched, no temp file.
    await Deno.mkdir(join(dir, "plot.svg"));
    await assert.rejects(() => writeFileAtomic(join(dir, "plot.svg"), new Uint8Array(10)));
    assert.ok((await Deno.stat(join(dir, "plot.svg"))).isDirectory);
    assert.deepEqual(await listFiles(dir), ["history.json"]);

    // A missing folder: nothing is created anywhere.
    await assert.rejects(
      () => writeFileAtomic(join(dir, "missing", "last.safetensors"), new Uint8Array(10)),
      Deno.errors.NotFound,
    );
    assert.deepEqual(await listFiles(dir), ["history.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "atomic writes: a process killed while rewriting a file never leaves it truncated",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "wgnn-kill-" });
    const size = 4 << 20;
    try {
      // The writer rewrites one 4 MiB file in a loop, each generation filled with one value.
      const writer = join(dir, "writer.ts");
      const atomic = pathToFileURL(join(REPO, "lib", "io", "atomic.ts")).href;
      await Deno.writeTextFile(
        writer,
        `import { writeFileAtomic } from "${atomic}";\n` +
          `for (let gen = 0; ; gen++) {\n` +
          `  await writeFileAtomic(Deno.args[0], new Uint8Array(${size}).fill(1 + (gen % 250)));\n` +
          `  if (gen === 0) console.log("ready");\n` +
          `}\n`,
      );
      const target = join(dir, "out", "last.safetensors");
      await Deno.mkdir(join(dir, "out"));
      for (let round = 0; round < 3; round++) {
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--no-config",
            `--allow-read=${dir}`,
            `--allow-write=${dir}`,
            writer,
            target,
          ],
          stdout: "piped",
          stderr: "null",
        }).spawn();
        const reader = child.stdout.getReader();
        const { value } = await reader.read(); // "ready": one generation is complete
        assert.match(new TextDecoder().decode(value), /ready/);
        await new Promise((resolve) => setTimeout(resolve, 5 + 20 * round));
        child.kill("SIGKILL");
        await child.status;
        reader.releaseLock();
        await child.stdout.cancel();

        const bytes = await Deno.readFile(target);
        assert.equal(bytes.length, size, `round ${round}: the file is whole`);
        assert.ok(bytes[0] >= 1 && bytes.every((b) => b === bytes[0]), "one generation only");
      }
      // A killed process cannot clean up: its temp file may remain, beside and never over it.
      for (const name of await listFiles(join(dir, "out"))) {
        assert.match(name, /^(last\.safetensors|\.last\.safetensors\.[0-9a-f]{8}\.tmp)$/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Device lost (last: it destroys the shared device; requestGpu() then makes a new one)

Deno.test({
  name: "device lost: the error says how to resume; the last checkpoint is intact and resumes",
  ...gpuOptions,
  fn: async () => {
    const gpu = await requestGpu();
    const dir = await Deno.makeTempDir({ prefix: "wgnn-lost-" });
    const run = setup(gpu, "bn", 1e-3);
    let atEpoch1: StateDict | null = null;
    let history1: History | null = null;
    try {
      const error = await run.fit({
        epochs: 3,
        checkpointDir: dir,
        onEpoch: async (record, history) => {
          if (record.epoch !== 1) return;
          atEpoch1 = await run.model.stateDict();
          history1 = structuredClone(history);
          gpu.device.destroy(); // as a driver reset would, between two epochs
        },
      }).then(() => null, (e) => e);
      assert.ok(error instanceof DeviceLostError, `got ${error}`);
      assert.match(error.message, /device was lost \(destroyed/);
      assert.match(error.message, /checkpoints, history\) are intact/);
      assert.match(error.message, /--resume/);
    } catch (error) {
      await Deno.remove(dir, { recursive: true });
      throw error;
    } finally {
      run.dispose(); // disposing on a lost device must not throw
    }

    try {
      // The checkpoint holds exactly the weights of epoch 1; nothing half-written is left.
      const files = await listFiles(dir);
      assert.deepEqual(files, [
        "history.csv",
        "history.json",
        "last.safetensors",
        "resume.safetensors",
        "run.json",
      ]);
      const saved = await readSafetensorsFile(join(dir, "last.safetensors"));
      assert.equal(saved.metadata.epoch, "1");
      const expected = atEpoch1! as StateDict;
      assert.deepEqual([...saved.tensors.keys()].sort(), Object.keys(expected).sort());
      for (const [name, tensor] of saved.tensors) {
        assert.deepEqual(tensor.data, expected[name].data, `${name} equals the epoch-1 weights`);
      }

      // requestGpu() gives a new device, and the run resumes from the checkpoint.
      const fresh = await requestGpu();
      assert.notEqual(fresh, gpu);
      assert.ok(gpu.isLost && !fresh.isLost);
      const again = setup(fresh, "bn", 1e-3);
      try {
        const history = await again.fit({ epochs: 2, checkpointDir: dir, resume: true });
        assert.deepEqual(history.epochs.map((e) => e.epoch), [1, 2]);
        assert.deepEqual(history.epochs[0], (history1! as History).epochs[0]);
        assert.ok(Number.isFinite(history.epochs[1].trainLoss));
      } finally {
        again.dispose();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
