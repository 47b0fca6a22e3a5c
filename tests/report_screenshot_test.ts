/**
 * The `plot` and `screenshot` scripts end to end, each run as `deno run` with the narrow
 * permissions of its task, on synthetic runs in a temporary folder; and the blank-screenshot
 * check on PNGs whose pixels we set by hand.
 *
 * Needs: --allow-read=.,/tmp --allow-write=/tmp --allow-run --allow-env. The Chromium test skips,
 * saying why, when Debian's `chromium` is not installed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
// deno-lint-ignore no-import-prefix -- the same pinned decoder as scripts/screenshot.ts
import { encode } from "npm:fast-png@8.0.0";
import { CLASS_NAMES } from "../lib/data/cifar10.ts";
import { variantColor } from "../lib/plot/figures.ts";
import { blankReason, DEFAULT_CHROMIUM, inspectPng } from "../scripts/screenshot.ts";

const PLOT = fileURLToPath(new URL("../scripts/plot.ts", import.meta.url));
const SCREENSHOT = fileURLToPath(new URL("../scripts/screenshot_report.ts", import.meta.url));
const CLASSES: string[] = [...CLASS_NAMES];

/** Writes `<out>/<variant>/history.json` for the seed's three variants and `summary.json`. */
async function writeRun(out: string): Promise<void> {
  for (const [i, variant] of ["plain", "bn", "dropout"].entries()) {
    const epochs = Array.from({ length: 8 }, (_, j) => ({
      epoch: j + 1,
      trainLoss: 0.3 + 1.6 * Math.exp(-(i + 1) * (j + 1) / 5),
      ...(j % 2 === 1 ? { valLoss: 1.8 - 0.05 * j * (i + 1), valAccuracy: 0.3 + 0.02 * j } : {}),
      seconds: 1.5,
    }));
    const confusion = CLASSES.map((_, t) => CLASSES.map((_, p) => (t === p ? 700 : 33)));
    await Deno.mkdir(join(out, variant), { recursive: true });
    const history = { variant, adapter: "test adapter", epochs, classes: CLASSES, confusion };
    await Deno.writeTextFile(join(out, variant, "history.json"), JSON.stringify(history));
  }
  const row = (variant: string, bestValAccuracy: number) => ({
    variant,
    finalTrainLoss: 0.5,
    bestValLoss: 1.25,
    bestValEpoch: 8,
    bestValAccuracy,
    secondsPerEpoch: 1.5,
    adapter: "test adapter",
    epochs: 8,
  });
  const summary = [row("plain", 0.4321), row("bn", 0.4567), row("dropout", 0.4012)];
  await Deno.writeTextFile(join(out, "summary.json"), JSON.stringify(summary));
}

/** Runs a script as its deno.json task would: read and write only inside `dir`. */
async function runScript(script: string, dir: string, args: string[], extra: string[] = []) {
  const output = await new Deno.Command("deno", {
    args: ["run", `--allow-read=${dir}`, `--allow-write=${dir}`, ...extra, script, ...args],
    stdin: "null",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("inspectPng counts painted pixels and blankReason flags white pages", () => {
  const width = 50, height = 40;
  const white = new Uint8Array(width * height * 4).fill(255);
  const stats = inspectPng(encode({ width, height, data: white, channels: 4, depth: 8 }), [
    "#4e79a7",
  ]);
  assert.deepEqual([stats.width, stats.height, stats.nonWhiteFraction, stats.distinctColors], [
    50,
    40,
    0,
    1,
  ]);
  assert.match(blankReason(stats) ?? "", /0\.00% of pixels are not white/);
  // Paint 5 rows (250 px, 12.5 %) in #4e79a7 and 20 pixels in 20 distinct greys.
  const data = white.slice();
  for (let i = 0; i < 5 * width; i++) data.set([0x4e, 0x79, 0xa7, 255], 4 * (10 * width + i));
  for (let i = 0; i < 20; i++) data.set([10 * i, 10 * i, 10 * i, 255], 4 * (30 * width + i));
  const painted = inspectPng(encode({ width, height, data, channels: 4, depth: 8 }), [
    "#4e79a7",
    "#e15759",
  ]);
  assert.equal(painted.colorPixels["#4e79a7"], 250);
  assert.equal(painted.colorPixels["#e15759"], 0);
  assert.equal(painted.nonWhiteFraction, 270 / 2000);
  assert.equal(painted.distinctColors, 22); // white, the blue, 20 greys
  assert.equal(blankReason(painted), undefined);
  assert.match(blankReason(painted, 0.02, 50) ?? "", /only 22 distinct colours/);
});

Deno.test("plot script writes every figure and the report from a run folder", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "wgnn_plot_" });
  try {
    await writeRun(join(dir, "out"));
    const { code, stdout, stderr } = await runScript(PLOT, dir, ["--out", join(dir, "out")]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /3 variants \(summary\.json\); wrote 10 files/);
    const files = [
      "compare_val_loss.svg",
      "compare_train_loss.svg",
      "val_accuracy.svg",
      "report.html",
    ];
    for (const v of ["plain", "bn", "dropout"]) files.push(`${v}/loss.svg`, `${v}/confusion.svg`);
    for (const f of files.filter((f) => f.endsWith(".svg"))) {
      assert.match(
        await Deno.readTextFile(join(dir, "out", f)),
        /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>$/,
        f,
      );
    }
    const html = await Deno.readTextFile(join(dir, "out", "report.html"));
    assert.equal(html.match(/<svg[\s>]/g)?.length, 9);
    assert.ok(
      html.includes('<td class="num">43.21%</td>'),
      "summary.json's accuracy is in the table",
    );
    const tmpLeft = [];
    for await (const e of Deno.readDir(join(dir, "out"))) {
      if (e.name.startsWith(".")) tmpLeft.push(e.name);
    }
    assert.deepEqual(tmpLeft, [], "no temporary files left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plot script rejects bad input with one line and exit 2, overwriting nothing", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "wgnn_plot_bad_" });
  try {
    const missing = join(dir, "nope");
    let r = await runScript(PLOT, dir, ["--out", missing]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `plot: Cannot read "${missing}": folder does not exist`);

    const out = join(dir, "out");
    await writeRun(out);
    await Deno.writeTextFile(join(out, "bn", "history.json"), '{"variant": "bn", "epochs": [');
    await Deno.writeTextFile(join(out, "report.html"), "previous report");
    r = await runScript(PLOT, dir, ["--out", out]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.split("\n").length, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^plot: Cannot read "${out}/bn/history\\.json": not valid JSON`),
    );
    assert.equal(await Deno.readTextFile(join(out, "report.html")), "previous report");
    assert.equal(await exists(join(out, "plain", "loss.svg")), false);
    assert.equal(await exists(join(out, "compare_val_loss.svg")), false);

    await Deno.writeTextFile(
      join(out, "bn", "history.json"),
      '{"variant": "bn", "epochs": [{"epoch": 0}]}',
    );
    r = await runScript(PLOT, dir, ["--out", out]);
    assert.match(
      r.stderr,
      /bn\/history\.json": epochs\[0\]\.epoch must be an integer >= 1: current value is 0$/,
    );

    r = await runScript(PLOT, dir, ["--outdir", out]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--outdir/);
    r = await runScript(PLOT, dir, ["--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: deno task plot/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function chromiumMissing(): Promise<string | undefined> {
  try {
    await new Deno.Command(DEFAULT_CHROMIUM, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return `${DEFAULT_CHROMIUM} not installed (Debian: apt-get install -y chromium)`;
    }
    throw error;
  }
}

const skip = await chromiumMissing();
if (skip) console.log(`skipping the Chromium screenshot test: ${skip}`);

Deno.test({
  name: "the report renders in headless Chromium: not blank, each variant's line colour visible",
  ignore: skip !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "wgnn_shot_" });
    try {
      const out = join(dir, "out");
      await writeRun(out);
      assert.equal((await runScript(PLOT, dir, ["--out", out])).code, 0);
      const chromium = [`--allow-run=${DEFAULT_CHROMIUM}`];
      const png = join(out, "report.png");
      let r = await runScript(
        SCREENSHOT,
        dir,
        ["--report", join(out, "report.html"), "--png", png],
        chromium,
      );
      assert.equal(r.code, 0, r.stderr);
      const stats = JSON.parse(r.stdout.split("\n").at(-1)!);
      assert.deepEqual([stats.width, stats.height], [1280, 2000]);
      assert.ok(stats.nonWhiteFraction >= 0.02 && stats.distinctColors >= 16, r.stdout);
      for (const v of ["plain", "bn", "dropout"]) {
        assert.ok(stats.colorPixels[variantColor(v, [])] >= 100, `${v}'s line colour: ${r.stdout}`);
      }
      // The check can fail: an empty page is reported blank with exit code 1.
      await Deno.writeTextFile(join(out, "empty.html"), "<!doctype html><title>empty</title>");
      r = await runScript(SCREENSHOT, dir, [
        "--report",
        join(out, "empty.html"),
        "--png",
        join(out, "e.png"),
      ], chromium);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /looks blank: only 0\.00% of pixels are not white/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
