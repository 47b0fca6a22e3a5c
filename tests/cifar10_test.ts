import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CLASS_NAMES,
  classCounts,
  findBatchesDir,
  IMAGE_BYTES,
  isPermissionError,
  loadCifar10,
  parseBatch,
  parseMeta,
  RECORD_BYTES,
  verifyDataset,
} from "../lib/data/cifar10.ts";
import { Rng } from "../lib/data/rng.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { benchLoad } from "../bench/data.ts";
import { Loader } from "../lib/data/loader.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { requestGpu } from "../lib/gpu/device.ts";
import { FIXTURE_META, writeFixture } from "./fixtures/cifar_fixture.ts";
import { hasGpu } from "./helpers.ts";

// The real CIFAR-10 beside the checkout (CI puts a copy of shared/ next to the clone).
const REAL = "../shared/data";
const hasReal =
  !!(await Deno.stat(`${REAL}/cifar-10-batches-bin/data_batch_1.bin`).catch(() => null));

Deno.test("parseBatch returns what the fixture wrote; loadCifar10 finds the folder from its parent", async () => {
  const fx = await writeFixture(7, 5);
  try {
    for (const dir of [fx.dataDir, fx.batchesDir]) {
      const data = await loadCifar10(dir);
      assert.equal(data.train.count, 35);
      assert.equal(data.test.count, 5);
      assert.deepEqual(data.classes, [...CLASS_NAMES]);
      fx.train.forEach((img, i) => {
        assert.equal(data.train.labels[i], img.label, `label ${i}`);
        assert.deepEqual(
          data.train.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES),
          img.pixels,
          `image ${i}`,
        );
      });
      assert.deepEqual(data.test.images.subarray(4 * IMAGE_BYTES), fx.test[4].pixels);
    }
    // The fixture's digests verify; the official ones do not.
    assert.ok((await verifyDataset(fx.batchesDir, fx.checksums)).ok);
    const official = await verifyDataset(fx.batchesDir);
    assert.equal(official.problems.length, 6);
    await assert.rejects(() => loadCifar10(fx.root), /Cannot find CIFAR-10 in/);
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
});

/** What a child `deno run` with only `flags` got from findBatchesDir and loadCifar10 on `dir`. */
async function underPermissions(root: string, flags: string[], dir: string) {
  const child = join(root, "child.ts");
  const lib = new URL("../lib/data/cifar10.ts", import.meta.url).href;
  await Deno.writeTextFile(
    child,
    `import { findBatchesDir, isPermissionError, loadCifar10 } from ${JSON.stringify(lib)};
const outcome = async (f: () => Promise<unknown>) => {
  try { return { ok: await f() }; } catch (e) {
    return { name: e.name, message: e.message, permission: isPermissionError(e) };
  }
};
const dir = Deno.args[0];
console.log(JSON.stringify({
  find: await outcome(() => findBatchesDir(dir)),
  load: await outcome(async () => (await loadCifar10(dir)).train.count),
}));`,
  );
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-config", ...flags, child, dir],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(run.stdout));
}

Deno.test("without --allow-read the data folder is reported as unreadable, naming the path, not as missing", async () => {
  const fx = await writeFixture(2, 2);
  try {
    const flat = join(fx.dataDir, "data_batch_1.bin");
    const none = await underPermissions(fx.root, [], fx.dataDir);
    const refusal = {
      name: "NotCapable",
      message: `Cannot read "${flat}": permission denied (run with --allow-read=${fx.dataDir})`,
      permission: true,
    };
    assert.deepEqual(none, { find: refusal, load: refusal });
    // Allowed only the first batch: the folder is found (the refused first candidate does not
    // hide the readable second one), and loading names the first file it may not read.
    const first = join(fx.batchesDir, "data_batch_1.bin");
    const some = await underPermissions(fx.root, [`--allow-read=${first}`], fx.dataDir);
    assert.deepEqual(some.find, { ok: fx.batchesDir });
    assert.deepEqual(some.load, {
      name: "NotCapable",
      message: `Cannot read "${
        join(fx.batchesDir, "data_batch_2.bin")
      }": permission denied (run with --allow-read=${fx.dataDir})`,
      permission: true,
    });
    // With permission, an empty folder is still "not found", and not a permission error.
    const empty = join(fx.root, "empty");
    await Deno.mkdir(empty);
    const missing = await underPermissions(fx.root, [`--allow-read=${fx.root}`], empty);
    assert.equal(missing.find.name, "NotFound");
    assert.equal(missing.find.permission, false);
    assert.match(missing.find.message, /^Cannot find CIFAR-10 in /);
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
});

/** Runs `fn` with Deno.stat and Deno.readFile refusing every path under `dir` (EACCES). */
async function withEacces(dir: string, fn: () => Promise<void>): Promise<void> {
  const { stat, readFile } = Deno;
  const deny = (path: string | URL) => {
    if (!String(path).startsWith(dir)) return null;
    return new Deno.errors.PermissionDenied(`Permission denied (os error 13): '${path}'`);
  };
  const mutable = Deno as { stat: typeof Deno.stat; readFile: typeof Deno.readFile };
  mutable.stat = (path) => {
    const error = deny(path);
    return error ? Promise.reject(error) : stat(path);
  };
  mutable.readFile = (path, options) => {
    const error = deny(path);
    return error ? Promise.reject(error) : readFile(path, options);
  };
  try {
    await fn();
  } finally {
    mutable.stat = stat;
    mutable.readFile = readFile;
  }
}

Deno.test("a folder the file system refuses (EACCES) is reported as permission denied, naming the path", async () => {
  const fx = await writeFixture(2, 2);
  try {
    const path = join(fx.batchesDir, "data_batch_1.bin");
    const message = `Cannot read "${path}": permission denied by the file system ` +
      "(check the owner and mode of the file and its folders)";
    await withEacces(fx.batchesDir, async () => {
      for (const f of [findBatchesDir, loadCifar10]) {
        await assert.rejects(() => f(fx.dataDir), (error: Error) => {
          assert(error instanceof Deno.errors.PermissionDenied, String(error));
          assert(isPermissionError(error));
          assert.equal(error.message, message);
          assert.match(String(error.cause), /os error 13/);
          return true;
        });
      }
    });
    // Only the batch files refused, not the folder: loading names the first one it reads.
    await withEacces(join(fx.batchesDir, "data_batch_3"), async () => {
      await assert.rejects(
        () => loadCifar10(fx.dataDir),
        new RegExp(`^PermissionDenied: Cannot read "${join(fx.batchesDir, "data_batch_3.bin")}"`),
      );
    });
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
});

Deno.test("a folder of mode 000 is reported as permission denied (unchecked as root)", async () => {
  const fx = await writeFixture(2, 2);
  try {
    await Deno.chmod(fx.batchesDir, 0o000);
    // Root reads a mode-000 folder anyway; then the stubbed test above is the only check.
    const privileged = await Deno.stat(join(fx.batchesDir, "data_batch_1.bin")).then(
      () => true,
      () => false,
    );
    if (privileged) return console.log("unchecked: this user reads mode-000 folders");
    await assert.rejects(
      () => findBatchesDir(fx.dataDir),
      (error: Error) =>
        error instanceof Deno.errors.PermissionDenied &&
        error.message.startsWith(`Cannot read "${join(fx.batchesDir, "data_batch_1.bin")}"`),
    );
  } finally {
    await Deno.chmod(fx.batchesDir, 0o755);
    await Deno.remove(fx.root, { recursive: true });
  }
});

Deno.test("parseBatch rejects a size that is not whole records, and a bad label, naming file and record", async () => {
  const bytes = new Uint8Array(3 * RECORD_BYTES);
  assert.throws(() => parseBatch("data_batch_1.bin", bytes.subarray(0, 3 * RECORD_BYTES - 1)), {
    message:
      'Cannot parse "data_batch_1.bin": its size of 9218 bytes is not a positive multiple of 3073 (one record)',
  });
  assert.throws(() => parseBatch("empty.bin", new Uint8Array(0)), /size of 0 bytes/);
  bytes[2 * RECORD_BYTES] = 12;
  assert.throws(() => parseBatch("data_batch_1.bin", bytes), {
    message: 'Cannot parse "data_batch_1.bin": record 2 has label 12 (expected 0-9)',
  });
  // Through loadCifar10: a truncated file on disk names the file.
  const fx = await writeFixture(3, 2);
  try {
    const path = join(fx.batchesDir, "data_batch_4.bin");
    await Deno.writeFile(path, (await Deno.readFile(path)).subarray(0, 100));
    await assert.rejects(
      () => loadCifar10(fx.dataDir),
      /Cannot parse "data_batch_4.bin": its size of 100 bytes/,
    );
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
});

Deno.test("parseMeta skips empty lines and wants ten names", () => {
  assert.deepEqual(parseMeta("m", FIXTURE_META), [...CLASS_NAMES]);
  assert.deepEqual(parseMeta("m", FIXTURE_META.replaceAll("\n", "\r\n") + "\n\n"), [
    ...CLASS_NAMES,
  ]);
  assert.throws(
    () => parseMeta("batches.meta.txt", "a\nb\n"),
    /"batches.meta.txt": expected 10 class names: found 2/,
  );
});

Deno.test("fuzz: 10,000 random and mutated inputs give valid data or a clean error", () => {
  const rng = new Rng(2024);
  const valid = new Uint8Array(4 * RECORD_BYTES);
  for (let i = 0; i < valid.length; i++) {
    valid[i] = i % RECORD_BYTES === 0 ? rng.below(10) : rng.below(256);
  }
  // Bounded in time, but never fewer than 10,000 inputs: the deadline only guards a hang.
  const deadline = performance.now() + 60_000;
  let accepted = 0;
  let rejected = 0;
  let runs = 0;
  for (; runs < 10_000 && performance.now() < deadline; runs++) {
    let input: Uint8Array;
    const kind = rng.below(3);
    if (kind === 0) {
      input = new Uint8Array(rng.below(3 * RECORD_BYTES + 2));
      for (let i = 0; i < input.length; i++) input[i] = rng.below(256);
    } else {
      // Mutate: flip bytes (labels included), then maybe cut or extend.
      input = valid.slice();
      for (let k = rng.below(8); k > 0; k--) input[rng.below(input.length)] = rng.below(256);
      if (kind === 2) input = input.slice(0, rng.below(input.length + 1));
    }
    let result;
    try {
      result = parseBatch("fuzz.bin", input);
    } catch (error) {
      assert.ok(error instanceof RangeError, `runs ${runs}: ${error}`);
      assert.match(error.message, /^Cannot parse "fuzz\.bin": /);
      rejected++;
      continue;
    }
    accepted++;
    assert.equal(input.length % RECORD_BYTES, 0);
    assert.equal(result.count, input.length / RECORD_BYTES);
    assert.equal(result.images.length, result.count * IMAGE_BYTES);
    for (let i = 0; i < result.count; i++) {
      assert.ok(result.labels[i] < 10);
      assert.equal(result.labels[i], input[i * RECORD_BYTES]);
      assert.equal(result.images[i * IMAGE_BYTES + 77], input[i * RECORD_BYTES + 78]);
    }
  }
  console.log(`fuzz: ${runs} inputs, ${accepted} accepted, ${rejected} rejected`);
  assert.equal(runs, 10_000, `only ${runs} fuzz inputs ran before the 60 s deadline`);
  assert.ok(accepted > 100 && rejected > 100);
});

Deno.test({
  name:
    "real data: counts, classes, first labels, and a GPU batch equal to the CPU images to the bit",
  ignore: !hasReal || !hasGpu,
  async fn() {
    const data = await loadCifar10(REAL);
    assert.equal(data.train.count, 50_000);
    assert.equal(data.test.count, 10_000);
    assert.deepEqual(classCounts(data.train.labels), new Array(10).fill(5000));
    assert.deepEqual(classCounts(data.test.labels), new Array(10).fill(1000));
    assert.deepEqual([data.train.labels[0], data.train.labels[1]], [6, 9]);
    assert.deepEqual([data.classes[6], data.classes[9]], ["frog", "truck"]);

    const gpu = await requestGpu();
    const train = GpuDataset.upload(gpu, data.train, { label: "train" });
    const loader = new Loader(gpu, train, { batchSize: 1024, shuffle: true, seed: 0 });
    try {
      assert.equal(loader.batchesPerEpoch, 49);
      loader.startEpoch(0);
      const enc = new StepEncoder(gpu, "real batch");
      const last = loader.batchesPerEpoch - 1;
      const { x, y, size } = loader.encodeBatch(enc, last); // 50,000 − 48·1024 = 848 images
      enc.submit();
      assert.equal(size, 848);
      const xs = await x.toFloat32();
      const ys = await y.read();
      const order = loader.order(0).subarray(last * 1024);
      let mismatches = 0;
      for (let b = 0; b < size; b++) {
        const s = order[b];
        if (ys[b] !== data.train.labels[s]) mismatches++;
        for (let k = 0; k < IMAGE_BYTES; k++) {
          if (
            xs[b * IMAGE_BYTES + k] !== Math.fround(data.train.images[s * IMAGE_BYTES + k] / 255)
          ) mismatches++;
        }
      }
      assert.equal(mismatches, 0);
    } finally {
      loader.dispose();
      train.dispose();
    }
    const t = await benchLoad(gpu, REAL);
    console.log(
      `load 60,000 images onto the GPU: ${t.totalMs.toFixed(0)} ms (parse ${
        t.parseMs.toFixed(0)
      }, upload ${t.uploadMs.toFixed(0)})`,
    );
  },
});
