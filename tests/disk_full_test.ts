/**
 * A full disk mid-run: the run folder lives on a small tmpfs, sized from a reference run's file
 * sizes so that epoch 1's commit fits and epoch 2's does not. The write that fails must name its
 * file and say the disk is full; the commit of epoch 1 must stay whole (digests checked, no
 * temporary file left); and once the tmpfs grows, a resume must end exactly where a run that
 * never failed ends.
 *
 * Mounting needs root (or CAP_SYS_ADMIN); where `mount` is refused the tests are ignored, with a
 * message saying so.
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
import { Sequential } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { readCheckpoint } from "../lib/train/checkpoint.ts";
import { fit } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import { lcgBytes, listDir, writeFixture } from "./fixtures/cifar_fixture.ts";
import { assertSameRun, withoutTimes } from "./fixtures/history.ts";
import { trainCommand } from "./fixtures/train_script.ts";
import { hasGpu, testGpu } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// tmpfs

/** Runs `mount args...`; returns its stderr when it fails, null when it succeeds. */
async function mount(...args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command("mount", { args, stdout: "null", stderr: "piped" })
      .output();
    return out.success ? null : new TextDecoder().decode(out.stderr).trim() || `exit ${out.code}`;
  } catch (error) {
    return (error as Error).message; // no mount binary, or no permission to run it
  }
}

async function umount(dir: string): Promise<void> {
  const out = await new Deno.Command("umount", { args: [dir], stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`Cannot unmount "${dir}": ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Mounts a tmpfs of `kib` KiB on `dir`; throws with mount's message when refused. */
async function mountTmpfs(dir: string, kib: number): Promise<void> {
  const error = await mount("-t", "tmpfs", "-o", `size=${kib}k`, "tmpfs", dir);
  if (error !== null) throw new Error(`Cannot mount a tmpfs on "${dir}": ${error}`);
}

/** Resizes the tmpfs on `dir` to `kib` KiB. */
async function resizeTmpfs(dir: string, kib: number): Promise<void> {
  const error = await mount("-o", `remount,size=${kib}k`, dir);
  if (error !== null) throw new Error(`Cannot resize the tmpfs on "${dir}": ${error}`);
}

/** Whether this process may mount a tmpfs: tried once, on a throwaway folder. */
async function canMount(): Promise<boolean> {
  const dir = await Deno.makeTempDir({ prefix: "wgnn-mount-probe-" });
  try {
    const error = await mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", dir);
    if (error !== null) {
      console.log(`disk_full_test: skipped, a tmpfs cannot be mounted here (${error})`);
      return false;
    }
    await umount(dir);
    return true;
  } finally {
    await Deno.remove(dir);
  }
}

const mountable = await canMount();
const options = { ignore: !hasGpu || !mountable, sanitizeResources: false, sanitizeOps: false };

/** Pages (tmpfs allocates whole pages) that the files of `dir` take. */
async function pagesIn(dir: string, pageSize: number): Promise<Record<string, number>> {
  const pages: Record<string, number> = {};
  for (const name of await listDir(dir)) {
    pages[name] = Math.ceil((await Deno.stat(join(dir, name))).size / pageSize);
  }
  return pages;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
const TEMP = /^\..+\.tmp$/;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A tmpfs's page size: the block size of a file on one (4096 on x86-64). */
async function tmpfsPageSize(dir: string): Promise<number> {
  await mountTmpfs(dir, 64);
  try {
    await Deno.writeTextFile(join(dir, "probe"), "x");
    const { blksize } = await Deno.stat(join(dir, "probe"));
    assert(blksize !== null && blksize > 0, "stat gave no block size");
    return blksize;
  } finally {
    await umount(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// fit on a full disk

/** `count` random images with random labels (an LCG, independent of the code under test). */
function syntheticSet(count: number, seed: number): ImageSet {
  const labels = lcgBytes(seed + 1000, count).map((b) => b % 10);
  return { images: lcgBytes(seed, count * 3072), labels, count };
}

const EPOCHS = 3;

/**
 * One quiet `fit` of a small MLP (3072 → 32 → 10, Adam) into `dir`: 128 training images in
 * batches of 32, 64 validation images. `onEpoch` sees each epoch after its files are written.
 */
async function runFit(
  gpu: Gpu,
  sets: { train: GpuDataset; val: GpuDataset },
  dir: string,
  o: { resume?: boolean; onEpoch?: (epoch: number) => Promise<void> } = {},
): Promise<History> {
  manualSeed(0);
  const model = new Sequential(
    new Flatten(),
    new Linear(3072, 32),
    new LeakyReLU(),
    new Linear(32, 10),
  )
    .to(gpu);
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
  const loss = new CrossEntropyLoss();
  const train = new Loader(gpu, sets.train, { batchSize: 32, shuffle: true, seed: 0 });
  const val = new Loader(gpu, sets.val, { batchSize: 32, shuffle: true, seed: 1 });
  try {
    return await fit(model, {
      train,
      val,
      epochs: EPOCHS,
      loss,
      optimizer,
      checkpointDir: dir,
      resume: o.resume,
      progress: false,
      onEpoch: (record) => o.onEpoch?.(record.epoch),
    });
  } finally {
    for (const x of [train, val, loss, optimizer, model]) x.dispose();
  }
}

/** The CPU twin of runFit's model, for reading its checkpoint (no GPU needed). */
function cpuModel(): Sequential {
  manualSeed(0);
  return new Sequential(new Flatten(), new Linear(3072, 32), new LeakyReLU(), new Linear(32, 10));
}

Deno.test({
  name:
    "disk full: fit's failed commit names the file and ENOSPC, epoch 1 stays whole, and a resume after growing the disk equals an uninterrupted run",
  ...options,
  fn: async () => {
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    const root = await Deno.makeTempDir({ prefix: "wgnn-disk-full-" });
    const mnt = join(root, "mnt");
    await Deno.mkdir(mnt);
    const sets = {
      train: GpuDataset.upload(gpu, syntheticSet(128, 1)),
      val: GpuDataset.upload(gpu, syntheticSet(64, 2)),
    };
    let mounted = false;
    try {
      const page = await tmpfsPageSize(mnt);
      // The reference run, on an ordinary disk: its folder's pages after epoch 1 is what the
      // first commit needs.
      const ref = join(root, "ref");
      let afterEpoch1: Record<string, number> = {};
      const whole = await runFit(gpu, sets, ref, {
        onEpoch: async (epoch) => {
          if (epoch === 1) afterEpoch1 = await pagesIn(ref, page);
        },
      });
      assert.equal(whole.epochs.length, EPOCHS);
      const resumePages = afterEpoch1["resume.safetensors"];
      assert(resumePages > 4, `resume.safetensors is ${resumePages} pages: too small to size by`);
      // Epoch 1 fits exactly; epoch 2 has room for a new best.safetensors beside the old one
      // (a third of resume.safetensors: weights without Adam's two moments) but not for the new
      // resume.safetensors beside the old: the commit is the write that fails.
      const pages = sum(afterEpoch1) + Math.floor(resumePages / 2);
      const kib = pages * page / 1024;
      console.log(
        `disk_full_test: epoch 1 takes ${sum(afterEpoch1)} pages of ${page} bytes ` +
          `(${JSON.stringify(afterEpoch1)}); tmpfs size=${kib}k`,
      );
      await mountTmpfs(mnt, kib);
      mounted = true;

      const dir = join(mnt, "run");
      const committed: number[] = [];
      const error = await runFit(gpu, sets, dir, {
        onEpoch: (epoch) => Promise.resolve(void committed.push(epoch)),
      }).then(() => null, (e: Error) => e);
      assert(error !== null, "fit finished on a disk too small for epoch 2");
      assert.deepEqual(committed, [1], "epoch 1 is committed, epoch 2 is not");
      assert.match(
        error.message,
        new RegExp(`^Cannot write "${escape(join(dir, "resume.safetensors"))}": `),
        "the error names the file in the run folder",
      );
      assert.match(error.message, /No space left on device|ENOSPC/);

      const files = await listDir(dir);
      assert.deepEqual(files.filter((n) => TEMP.test(n)), [], "no temporary file is left");
      assert(!files.includes("run.lock"), `the lock was not released: ${files}`);
      const checkpoint = await readCheckpoint(dir, cpuModel(), "Adam"); // digests, finite values
      assert.equal(checkpoint.position.epoch, 1, "resume.safetensors holds epoch 1");
      assert.deepEqual(checkpoint.history.epochs.map((e) => e.epoch), [1]);

      await resizeTmpfs(mnt, 4 * kib);
      const resumed = await runFit(gpu, sets, dir, { resume: true });
      assert.deepEqual(withoutTimes(resumed), withoutTimes(whole), "the resumed history");
      await assertSameRun(dir, ref);
    } finally {
      sets.train.dispose();
      sets.val.dispose();
      if (mounted) await umount(mnt);
      await Deno.remove(root, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// scripts/train.ts on a full disk

Deno.test({
  name:
    "disk full: train.ts exits 1 naming the file and ENOSPC; after the disk grows, --resume finishes with 0",
  ...options,
  fn: async () => {
    // 5 × 32 training images, 32 test images, batches of 32; --out is on the ordinary disk and
    // only the variant's folder on the tmpfs, so summary.json can still be written.
    const fixture = await writeFixture(32, 32);
    const root = fixture.root;
    const args = (out: string, ...more: string[]) => [
      "--model",
      "plain",
      "--epochs",
      "3",
      "--batch-size",
      "32",
      "--out",
      out,
      ...more,
    ];
    const td = new TextDecoder();
    const mnt = join(root, "out/full/plain");
    let mounted = false;
    try {
      await Deno.mkdir(mnt, { recursive: true });
      const page = await tmpfsPageSize(mnt);
      // The reference: the folder after 1 epoch (a second run, extended, is not needed).
      const ref = await (await trainCommand(root, args("out/ref").with(3, "1"))).output();
      assert.equal(ref.code, 0, td.decode(ref.stderr));
      const afterEpoch1 = await pagesIn(join(root, "out/ref/plain"), page);
      // The lock is not there once the run ends, but it takes a page while it trains.
      const pages = sum(afterEpoch1) + 1 + Math.floor(afterEpoch1["resume.safetensors"] / 2);
      const kib = pages * page / 1024;
      console.log(`disk_full_test: train.ts, tmpfs size=${kib}k (${JSON.stringify(afterEpoch1)})`);
      await mountTmpfs(mnt, kib);
      mounted = true;

      const full = await (await trainCommand(root, args("out/full"))).output();
      const log = td.decode(full.stderr);
      assert.equal(full.code, 1, log);
      const path = join("out/full/plain", "resume.safetensors");
      assert.match(log, new RegExp(`Cannot write "${escape(path)}": No space left on device`));
      assert.deepEqual((await listDir(mnt)).filter((n) => TEMP.test(n)), [], "temporary files");
      const saved = await readSafetensorsFile(join(mnt, "resume.safetensors"));
      assert.equal(saved.metadata.epoch, "1", "resume.safetensors holds epoch 1");

      await resizeTmpfs(mnt, 4 * kib);
      const resumed = await (await trainCommand(root, args("out/full", "--resume"))).output();
      assert.equal(resumed.code, 0, td.decode(resumed.stderr));
      const history = JSON.parse(await Deno.readTextFile(join(mnt, "history.json"))) as History;
      assert.deepEqual(history.epochs.map((e) => e.epoch), [1, 2, 3]);
    } finally {
      if (mounted) await umount(mnt);
      await Deno.remove(root, { recursive: true });
    }
  },
});
