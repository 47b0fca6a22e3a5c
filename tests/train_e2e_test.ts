/**
 * The experiment end to end, on a slice of the real CIFAR-10 in `../shared/data` (2,048 training
 * and 1,024 test images; a synthetic dataset in the same layout when the real one is absent):
 * the three variants train 3 epochs through `runExperiment`, then `writePlots` draws the figures
 * and the report. Checked from the outside: files are parsed by the test (safetensors headers,
 * CSV; XML by `fixtures/svg.ts`), label counts come from the dataset bytes, and the drawn lines
 * are mapped back to numbers through their axis tick labels and compared with the histories.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { requestGpu } from "../lib/gpu/device.ts";
import { readRunFolder, writePlots } from "../lib/plot/run.ts";
import type { SummaryRow } from "../lib/train/summary.ts";
import { runExperiment, VARIANTS } from "../lib/train/experiment.ts";
import type { History } from "../lib/train/history.ts";
import { writeFixture } from "./fixtures/cifar_fixture.ts";
import { legend, lines, svgRoot } from "./fixtures/svg.ts";
import { hasGpu } from "./helpers.ts";

const REAL = new URL("../../shared/data", import.meta.url).pathname;
const TRAIN = 2048, VAL = 1024, EPOCHS = 3;

async function isFile(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isFile, () => false);
}

/** Each drawn line's y values, keyed by its legend name. */
function yValues(drawn: Map<string, [number, number][]>): Map<string, number[]> {
  return new Map([...drawn].map(([name, points]) => [name, points.map(([, y]) => y)]));
}

function assertCurve(actual: number[] | undefined, expected: number[], what: string): void {
  assert(actual, `${what}: no line drawn`);
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} points`);
  actual.forEach((y, i) => {
    const e = expected[i];
    assert(
      Math.abs(y - e) <= 0.005 + 0.005 * Math.abs(e),
      `${what}[${i}]: drawn ${y}, expected ${e}`,
    );
  });
}

// ---- reading the training outputs independently ----

/** One entry of a safetensors header (`__metadata__` holds strings instead). */
interface HeaderEntry {
  dtype: string;
  shape: number[];
  epoch: string;
}

/** A safetensors header: 8-byte little-endian length, then JSON. */
async function safetensorsHeader(path: string): Promise<Record<string, HeaderEntry>> {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
}

/** The first `count` labels of a CIFAR-10 batch file: byte 0 of each 3,073-byte record. */
async function labelsOf(path: string, count: number): Promise<number[]> {
  const bytes = await Deno.readFile(path);
  return Array.from({ length: count }, (_, i) => bytes[i * 3073]);
}

Deno.test({
  name: "three variants train 3 epochs; files, summary, plots and report agree",
  ignore: !hasGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const real = await isFile(join(REAL, "cifar-10-batches-bin", "data_batch_1.bin"));
    const fixture = real ? null : await writeFixture(TRAIN / 4, VAL);
    const dataDir = real ? REAL : fixture!.dataDir;
    console.log(
      real ? `data: real CIFAR-10 slice in ${REAL}` : "data: synthetic fixture (no real CIFAR-10)",
    );
    const out = await Deno.makeTempDir({ prefix: "wgnn-e2e-" });
    try {
      const gpu = await requestGpu();
      const rows = await runExperiment(gpu, {
        variants: VARIANTS,
        epochs: EPOCHS,
        batchSize: 256,
        lr: 1e-3,
        optimizer: "adam",
        seed: 0,
        validationFreq: 1,
        dataDir,
        outDir: out,
        trainLimit: TRAIN,
        valLimit: VAL,
        progress: false,
      });
      assert.deepEqual(rows.map((r) => r.variant), [...VARIANTS]);
      const valLabels = await labelsOf(
        join(dataDir, "cifar-10-batches-bin", "test_batch.bin"),
        VAL,
      );
      const perClass = Array.from(
        { length: 10 },
        (_, c) => valLabels.filter((l) => l === c).length,
      );
      const summary = JSON.parse(
        await Deno.readTextFile(join(out, "summary.json")),
      ) as SummaryRow[];
      assert.deepEqual(summary, rows, "summary.json holds the returned rows");

      for (const [k, variant] of VARIANTS.entries()) {
        const dir = join(out, variant);
        for (const f of ["history.json", "history.csv", "best.safetensors", "last.safetensors"]) {
          assert(await isFile(join(dir, f)), `${variant}/${f} exists`);
        }
        const h = JSON.parse(await Deno.readTextFile(join(dir, "history.json"))) as History;
        assert.equal(h.variant, variant);
        assert.deepEqual(h.epochs.map((e) => e.epoch), [1, 2, 3], `${variant} epochs`);
        for (const e of h.epochs) {
          assert(
            Number.isFinite(e.trainLoss) && e.trainLoss > 0,
            `${variant} train loss ${e.trainLoss}`,
          );
          assert(Number.isFinite(e.valLoss!) && e.valLoss! > 0, `${variant} val loss ${e.valLoss}`);
          // An accuracy over 1,024 images is a whole number of 1/1024ths.
          const hits = e.valAccuracy! * VAL;
          assert(Math.abs(hits - Math.round(hits)) < 1e-3, `${variant} accuracy ${e.valAccuracy}`);
          assert(e.seconds > 0, `${variant} seconds ${e.seconds}`);
        }
        // Ten balanced-ish classes from a random init start near ln 10 ≈ 2.303.
        assert(Math.abs(h.epochs[0].trainLoss - Math.log(10)) < 0.35, `${variant} first loss`);
        assert(h.epochs[2].trainLoss < h.epochs[0].trainLoss, `${variant} learns`);

        // The confusion matrix: one count per validation image, rows = true classes.
        const m = h.confusion!;
        assert.equal(m.length, 10);
        assert.equal(m.flat().reduce((a, b) => a + b, 0), VAL, `${variant} confusion total`);
        assert.deepEqual(m.map((r) => r.reduce((a, b) => a + b, 0)), perClass, `${variant} rows`);
        const diagonal = m.reduce((s, r, i) => s + r[i], 0);
        assert.equal(diagonal / VAL, h.epochs[2].valAccuracy, `${variant} diagonal = accuracy`);

        // history.csv says the same as history.json.
        const csv = (await Deno.readTextFile(join(dir, "history.csv"))).trim().split("\n");
        assert.equal(csv[0], "epoch,train_loss,val_loss,val_accuracy,seconds");
        assert.deepEqual(
          csv.slice(1).map((l) => l.split(",").map(Number)),
          h.epochs.map((e) => [e.epoch, e.trainLoss, e.valLoss, e.valAccuracy, e.seconds]),
        );

        // summary.json against the history.
        const vals = h.epochs.map((e) => e.valLoss!);
        const best = vals.indexOf(Math.min(...vals));
        const row = summary[k];
        assert.equal(row.epochs, EPOCHS);
        assert.equal(row.finalTrainLoss, h.epochs[2].trainLoss);
        assert.equal(row.bestValLoss, vals[best]);
        assert.equal(row.bestValEpoch, best + 1);
        assert.equal(row.bestValAccuracy, Math.max(...h.epochs.map((e) => e.valAccuracy!)));
        const mean = h.epochs.reduce((s, e) => s + e.seconds, 0) / EPOCHS;
        assert(Math.abs(row.secondsPerEpoch - mean) < 1e-9, `${variant} s/epoch`);
        assert.equal(row.adapter, gpu.adapter.description);

        // Checkpoints: PyTorch state-dict names and shapes; last at epoch 3, best at its epoch.
        const last = await safetensorsHeader(join(dir, "last.safetensors"));
        const bestFile = await safetensorsHeader(join(dir, "best.safetensors"));
        assert.equal(last.__metadata__.epoch, "3");
        assert.equal(bestFile.__metadata__.epoch, String(best + 1));
        const hidden = variant === "plain" ? [1, 3, 5] : [1, 4, 7];
        assert.deepEqual(last[`${hidden[0]}.weight`].shape, [128, 3072]);
        assert.deepEqual(last[`${hidden[1]}.weight`].shape, [128, 128]);
        assert.deepEqual(last[`${hidden[2]}.weight`].shape, [10, 128]);
        if (variant === "bn") {
          assert.deepEqual(last["3.running_var"].shape, [128]);
          assert.equal(last["3.num_batches_tracked"].dtype, "I64");
        }
      }

      // ---- plots and report ----
      const written = await writePlots(await readRunFolder(out));
      const histories = await Promise.all(
        VARIANTS.map(async (v) =>
          JSON.parse(await Deno.readTextFile(join(out, v, "history.json"))) as History
        ),
      );
      for (const path of written.filter((p) => p.endsWith(".svg"))) {
        svgRoot(await Deno.readTextFile(path), path);
      }
      for (const h of histories) {
        const file = join(out, h.variant, "loss.svg");
        const root = svgRoot(await Deno.readTextFile(file), file);
        assert.deepEqual(legend(root).map(([name]) => name), ["train", "validation"], file);
        const drawn = yValues(lines(root));
        assertCurve(drawn.get("train"), h.epochs.map((e) => e.trainLoss), `${h.variant} train`);
        assertCurve(drawn.get("validation"), h.epochs.map((e) => e.valLoss!), `${h.variant} val`);
        const confusion = await Deno.readTextFile(join(out, h.variant, "confusion.svg"));
        svgRoot(confusion, `${h.variant}/confusion.svg`);
        for (const name of h.classes) {
          assert(confusion.includes(`>${name}<`), `class ${name} labelled`);
        }
      }
      const figures: [string, (h: History) => number[], boolean][] = [
        ["compare_val_loss.svg", (h) => h.epochs.map((e) => e.valLoss!), false],
        ["compare_train_loss.svg", (h) => h.epochs.map((e) => e.trainLoss), true],
        ["val_accuracy.svg", (h) => h.epochs.map((e) => e.valAccuracy!), false],
      ];
      for (const [name, values, log] of figures) {
        const root = svgRoot(await Deno.readTextFile(join(out, name)), name);
        assert.deepEqual(legend(root).map(([n]) => n), [...VARIANTS], `${name} legend`);
        const drawn = yValues(lines(root, log));
        assert.equal(drawn.size, 3, `${name}: three lines`);
        for (const h of histories) {
          assertCurve(drawn.get(h.variant), values(h), `${name} ${h.variant}`);
        }
      }

      const html = await Deno.readTextFile(join(out, "report.html"));
      assert(written.includes(join(out, "report.html")));
      assert.equal((html.match(/<svg[\s>]/g) ?? []).length, 9, "every figure inline");
      for (
        const m of html.matchAll(/\b(?:src|href|xlink:href|action|poster)\s*=\s*["']?([^"'\s>]*)/gi)
      ) {
        assert.match(m[1], /^(#|data:)/, `report links ${m[0]}`);
      }
      assert.doesNotMatch(html, /url\(\s*(?!["']?(?:#|data:))/i, "no external url() in CSS");
      assert.doesNotMatch(
        html,
        /@import|<link\b|<iframe\b|<object\b|<embed\b/i,
        "nothing embedded from outside",
      );
      for (const r of rows) assert(html.includes(r.bestValLoss.toFixed(4)), `summary ${r.variant}`);
    } finally {
      await Deno.remove(out, { recursive: true });
      if (fixture) await Deno.remove(fixture.root, { recursive: true });
    }
  },
});
