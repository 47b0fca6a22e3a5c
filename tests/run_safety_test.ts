/**
 * Runs that never lose work and never mix: a folder that holds a run is not overwritten by
 * accident; a resume refuses changed settings by name, a checkpoint from another run, corrupt
 * tensors and non-finite optimizer state; a second run in the same folder is stopped by its lock;
 * every file problem is found before the first epoch; the summary and report say which settings
 * each variant really used; a bad label stops training with the batch named.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CLASS_NAMES } from "../lib/data/cifar10.ts";
import { GpuDataset } from "../lib/data/dataset.ts";
import { Loader } from "../lib/data/loader.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { decodeSafetensors, encodeSafetensors } from "../lib/io/safetensors.ts";
import { buildReport } from "../lib/plot/report.ts";
import { loadModel } from "../lib/train/checkpoint.ts";
import {
  type ExperimentOptions,
  lectureModel,
  makeOptimizer,
  planExperiment,
  runExperiment,
} from "../lib/train/experiment.ts";
import { fit } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import { RunLock } from "../lib/train/run_dir.ts";
import { folderSummary } from "../lib/train/history_file.ts";
import { formatSummary } from "../lib/train/summary.ts";
import { VERSION } from "../lib/version.ts";
import { randomImages } from "./fixtures/random.ts";
import { gpuTest } from "./helpers.ts";

const data = { train: randomImages(192, 1), test: randomImages(64, 2), classes: [...CLASS_NAMES] };

function options(outDir: string, extra: Partial<ExperimentOptions> = {}): ExperimentOptions {
  return {
    variants: ["plain"],
    epochs: 2,
    batchSize: 64,
    lr: 1e-3,
    optimizer: "adam",
    seed: 3,
    validationFreq: 1,
    dataDir: "",
    data,
    outDir,
    progress: false,
    ...extra,
  };
}

/** Every file under `dir` with its bytes, for "nothing was touched" checks. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) {
        out.set(p, "dir");
        await walk(p);
      } else out.set(p, (await Deno.readFile(p)).join(","));
    }
  };
  await walk(dir);
  return out;
}

async function withTemp(prefix: string, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Rewrites a safetensors file through `edit`, recomputing nothing: digests stay as they were. */
async function editFile(
  path: string,
  edit: (
    tensors: Map<string, { dtype: string; shape: number[]; data: Float32Array | BigInt64Array }>,
    meta: Record<string, string>,
  ) => void | Promise<void>,
): Promise<void> {
  const file = decodeSafetensors(await Deno.readFile(path));
  const tensors = file.tensors as unknown as Map<
    string,
    { dtype: string; shape: number[]; data: Float32Array | BigInt64Array }
  >;
  await edit(tensors, file.metadata);
  await Deno.writeFile(
    path,
    encodeSafetensors(
      Object.fromEntries(tensors) as Parameters<typeof encodeSafetensors>[0],
      file.metadata,
    ),
  );
}

async function sha256(data: Float32Array | BigInt64Array): Promise<string> {
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- found before the first epoch (no GPU) ----

Deno.test("the toolkit version recorded in manifests is deno.json's", async () => {
  const config = JSON.parse(await Deno.readTextFile("deno.json"));
  assert.equal(VERSION, config.version);
});

Deno.test("a run file name taken by a folder, in a later variant, is refused before any work", async () => {
  await withTemp("wgnn-preflight-", async (out) => {
    await Deno.mkdir(join(out, "dropout", "history.json"), { recursive: true });
    const before = await snapshot(out);
    await assert.rejects(
      planExperiment(options(out, { variants: ["plain", "bn", "dropout"] })),
      (e: Error) =>
        e.message.includes(join(out, "dropout", "history.json")) &&
        /it is a folder, not a file/.test(e.message),
    );
    assert.deepEqual(await snapshot(out), before, "nothing was created for plain or bn");
    // The output folder's summary.json, written after training, is checked before it too.
    await Deno.remove(join(out, "dropout"), { recursive: true });
    await Deno.mkdir(join(out, "summary.json"));
    await assert.rejects(
      planExperiment(options(out, { variants: ["plain"] })),
      /summary\.json" for training output: it is a folder, not a file/,
    );
    await Deno.remove(join(out, "summary.json"));
    // A variant folder that is a file is named too.
    await Deno.writeTextFile(join(out, "bn"), "not a folder");
    await assert.rejects(
      planExperiment(options(out, { variants: ["bn"] })),
      /bn" for training output: it is a file, not a folder/,
    );
  });
});

Deno.test("a folder that holds a run is refused without resume or overwrite", async () => {
  await withTemp("wgnn-holds-", async (out) => {
    await Deno.mkdir(join(out, "plain"));
    await Deno.writeTextFile(join(out, "plain", "history.json"), "{}");
    await assert.rejects(planExperiment(options(out)), {
      name: "RunExistsError",
      message: new RegExp(
        `Cannot train in "${join(out, "plain")}": it holds a run \\(history\\.json\\)`,
      ),
    });
    // With overwrite the plan accepts it (the files go when training starts).
    const plan = await planExperiment(options(out, { overwrite: true }));
    assert.deepEqual(plan.runs.map((r) => [r.variant, r.resume]), [["plain", false]]);
  });
});

Deno.test("a run lock stops a second holder and names its pid; a dead holder's lock is taken over", async () => {
  await withTemp("wgnn-lock-", async (dir) => {
    const lock = await RunLock.acquire(dir);
    await assert.rejects(
      RunLock.acquire(dir),
      new RegExp(`another run \\(pid ${Deno.pid}, started [^)]+\\) is writing it`),
    );
    await lock.release();
    const again = await RunLock.acquire(dir);
    assert.equal(again.stale, null, "a released lock is not stale");
    await again.release();
    await assert.rejects(Deno.stat(join(dir, "run.lock")), Deno.errors.NotFound);

    // A holder killed with SIGKILL leaves its pid in the file; its OS lock is gone with it.
    const script = `import { RunLock } from "${new URL(
      "../lib/train/run_dir.ts",
      import.meta.url,
    )}";
      await RunLock.acquire(${JSON.stringify(dir)}); console.log("locked");
      await new Promise(() => setInterval(() => {}, 1000));`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /locked/);
    await assert.rejects(RunLock.acquire(dir), new RegExp(`pid ${child.pid}`));
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    const taken = await RunLock.acquire(dir);
    assert.equal(taken.stale?.pid, child.pid, "the dead holder is named");
    assert.match(
      taken.staleNotice("plain") ?? "",
      new RegExp(
        `^plain: taking over ".+" from run pid ${child.pid} \\(started .+\\), which ended`,
      ),
    );
    await taken.release();
  });
});

// ---- with training (GPU) ----

gpuTest(
  "a finished run is not overwritten without overwrite; with it, a new run replaces it",
  async (gpu) => {
    await withTemp("wgnn-overwrite-", async (out) => {
      await runExperiment(gpu, options(out));
      const before = await snapshot(out);
      await assert.rejects(runExperiment(gpu, options(out)), { name: "RunExistsError" });
      assert.deepEqual(await snapshot(out), before, "the refused run touched nothing");
      const first = JSON.parse(await Deno.readTextFile(join(out, "plain", "run.json")));
      // A temp file a killed writer left behind is cleared once the run holds the folder.
      const stale = join(out, "plain", ".history.json.deadbeef.tmp");
      await Deno.writeTextFile(stale, "half a history");
      await runExperiment(gpu, options(out, { overwrite: true, epochs: 1 }));
      await assert.rejects(Deno.stat(stale), Deno.errors.NotFound);
      const second = JSON.parse(await Deno.readTextFile(join(out, "plain", "run.json")));
      assert.notEqual(second.runId, first.runId);
      const history = JSON.parse(await Deno.readTextFile(join(out, "plain", "history.json")));
      assert.equal(history.epochs.length, 1);
      assert.equal(history.runId, second.runId);
    });
  },
);

gpuTest("resume refuses each changed setting by name; more epochs are fine", async (gpu) => {
  await withTemp("wgnn-settings-", async (out) => {
    await runExperiment(gpu, options(out));
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "plain", "run.json")));
    assert.equal(manifest.toolkit, VERSION);
    assert.equal(manifest.adapter, gpu.adapter.description);
    assert.equal(manifest.settings.lr, 1e-3);
    assert.match(manifest.settings.data, /^sha256:[0-9a-f]{16}$/);
    const changes: [Partial<ExperimentOptions>, RegExp][] = [
      [{ lr: 2e-3 }, /lr was 0\.001, now 0\.002/],
      [{ batchSize: 32 }, /batch-size was 64, now 32/],
      [{ seed: 4 }, /seed was 3, now 4/],
      [{ augment: true }, /augment was false, now true/],
      [{ optimizer: "adamw" }, /holds Adam state, not AdamW/],
      [{ trainLimit: 100 }, /data was "sha256:[0-9a-f]+", now "sha256:[0-9a-f]+"/],
    ];
    for (const [change, message] of changes) {
      await assert.rejects(planExperiment(options(out, { resume: true, ...change })), message);
    }
    const rows = await runExperiment(gpu, options(out, { resume: true, epochs: 3 }));
    assert.equal(rows[0].epochs, 3);
  });
});

gpuTest(
  "resume refuses a checkpoint from another run, corrupt tensors and NaN state",
  async (gpu) => {
    await withTemp("wgnn-corrupt-", async (root) => {
      const a = join(root, "a"), b = join(root, "b");
      await runExperiment(gpu, options(a));
      await runExperiment(gpu, options(b));
      const resume = (dir: string) => planExperiment(options(dir, { resume: true }));
      await resume(a); // as written, it resumes

      // b's checkpoint in a's folder: a's manifest names another run.
      await Deno.copyFile(
        join(b, "plain", "resume.safetensors"),
        join(a, "plain", "resume.safetensors"),
      );
      await assert.rejects(
        resume(a),
        /run\.json" is run [0-9a-f-]+ but resume\.safetensors belongs to run/,
      );

      // One flipped bit in a weight: the digest says so, naming the tensor.
      const path = join(b, "plain", "resume.safetensors");
      const good = await Deno.readFile(path);
      const flipped = good.slice();
      flipped[flipped.length - 1000] ^= 0x10;
      await Deno.writeFile(path, flipped);
      await assert.rejects(resume(b), /tensor "[^"]+" does not match its SHA-256 digest/);
      await Deno.writeFile(path, good);

      // A NaN in the optimizer state, with digests that match it: the finite check says so.
      await editFile(path, async (tensors, meta) => {
        const m = tensors.get("optim/exp_avg")!.data as Float32Array;
        m[5] = NaN;
        const digests = JSON.parse(meta.digests);
        digests["optim/exp_avg"] = await sha256(m);
        meta.digests = JSON.stringify(digests);
      });
      await assert.rejects(resume(b), /optimizer state "exp_avg" holds NaN at index 5/);

      // best.safetensors with a flipped bit is refused by loadModel.
      const best = join(b, "plain", "best.safetensors");
      const bytes = await Deno.readFile(best);
      bytes[bytes.length - 8] ^= 1;
      await Deno.writeFile(best, bytes);
      manualSeed(0);
      const model = lectureModel("plain").to(gpu);
      try {
        await assert.rejects(loadModel(best, model), /does not match its SHA-256 digest/);
      } finally {
        model.dispose();
      }
    });
  },
);

gpuTest(
  "the summary and report show each run's own settings and warn when they differ",
  async (gpu) => {
    await withTemp("wgnn-mixed-", async (out) => {
      await runExperiment(gpu, options(out, { variants: ["plain"] }));
      const rows = await runExperiment(
        gpu,
        options(out, { variants: ["bn"], optimizer: "sgd", lr: 0.01 }),
      );
      // The run's own rows, and every run of the folder in summary.json.
      assert.deepEqual(rows.map((r) => r.variant), ["bn"]);
      const summary = await folderSummary(out);
      assert.deepEqual(summary.map((r) => [r.variant, r.settings?.optimizer, r.settings?.lr]), [
        ["plain", "adam", 0.001],
        ["bn", "sgd", 0.01],
      ]);
      const onDisk = JSON.parse(await Deno.readTextFile(join(out, "summary.json")));
      assert.deepEqual(onDisk.map((r: { variant: string }) => r.variant), ["plain", "bn"]);
      const text = formatSummary(summary);
      assert.match(
        text,
        /warning: these runs used different settings: .*lr: 0\.001 \(plain\), 0\.01 \(bn\)/,
      );
      assert.match(text, /optimizer: adam \(plain\), sgd \(bn\)/);
      const histories = await Promise.all(
        ["plain", "bn"].map(async (v) =>
          JSON.parse(await Deno.readTextFile(join(out, v, "history.json"))) as History
        ),
      );
      const html = buildReport(histories, summary);
      assert.match(
        html,
        /class="warning"><strong>Warning:<\/strong> these runs used different settings/,
      );
      assert.match(html, /trained with Adam and SGD on CIFAR-10/);
      assert.match(html, /<td>SGD, lr 0\.01, batch 64<\/td>/);
      // One optimizer: the footer names it, and nothing is said about Adam.
      const sgdOnly = buildReport([histories[1]], [summary[1]]);
      assert.match(sgdOnly, /trained with SGD on CIFAR-10/);
      assert.doesNotMatch(sgdOnly, /Adam|class="warning"/);
    });
  },
);

gpuTest(
  "a label at or above the class count stops training, naming epoch and batch",
  async (gpu) => {
    await withTemp("wgnn-label-", async (dir) => {
      const images = randomImages(128, 5);
      images.labels[70] = 12; // batch 1 of 64-image batches (file order)
      const set = GpuDataset.upload(gpu, images, { classes: 16 }); // the data allow 16 classes
      manualSeed(0);
      const model = lectureModel("plain").to(gpu); // ... the model has 10
      const optimizer = makeOptimizer("adam", model, 1e-3);
      const loss = new CrossEntropyLoss();
      const train = new Loader(gpu, set, { batchSize: 64 });
      try {
        await assert.rejects(
          fit(model, { train, epochs: 2, loss, optimizer, checkpointDir: dir, progress: false }),
          /Training stopped at epoch 1 \(training\): Cannot compute cross-entropy: batch 1 has label 12, but the logits have 10 classes/,
        );
        await assert.rejects(Deno.stat(join(dir, "resume.safetensors")), Deno.errors.NotFound);
      } finally {
        for (const x of [train, loss, optimizer, model, set]) x.dispose();
      }
    });
  },
);
