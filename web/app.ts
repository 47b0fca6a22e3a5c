/// <reference lib="dom" />
/**
 * The training page (web/index.html): trains the lecture's three MLPs on CIFAR-10 in the
 * browser's WebGPU, drawing the loss curves as they train, then reports each variant's test
 * accuracy and offers its weights as a safetensors file with PyTorch's names.
 *
 * The controls start from the URL's parameters, for a short run or a link to one:
 * `?epochs=3&batch=64&train=512&test=256&variants=plain,bn&chunk=4&lr=0.001&seed=0&autostart=1`
 * (`train` and `test` cap the images taken from each split). `document.body.dataset.state` says
 * where the page is: loading, ready, training, done or error.
 *
 * @module
 */

import type { Gpu, Variant } from "../browser.ts";
import { nn } from "./nn.ts";
import { type FileSource, loadSets, pickedSource, serverHasData, serverSource } from "./cifar.ts";
import { accuracyFigure, lossFigure } from "./plot.ts";
import { type LossPoint, type RunResult, type RunSettings, trainVariant } from "./train.ts";

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`Cannot start the page: it has no #${id}`);
  return el as T;
};
const params = new URL(location.href).searchParams;

function setState(state: "loading" | "ready" | "training" | "done" | "error"): void {
  document.body.dataset.state = state;
  $<HTMLButtonElement>("start").disabled = state === "loading" || state === "training" ||
    state === "error";
  $<HTMLButtonElement>("stop").disabled = state !== "training";
}

function say(line: string, error = false): void {
  const status = $("status");
  status.textContent = line;
  status.classList.toggle("error", error);
}

/** An integer >= `min` from the URL parameter `name`, or `fallback`; anything else is refused. */
function intParam(name: string, fallback: number, min = 1): number {
  const text = params.get(name);
  if (text === null) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
    throw new RangeError(
      `Cannot read ?${name}=: it must be an integer >= ${min}: current value is ${text}`,
    );
  }
  return n;
}

/** Sets the controls from the URL's parameters. */
function applyParams(): void {
  $<HTMLInputElement>("epochs").value = String(intParam("epochs", 20));
  $<HTMLInputElement>("batch").value = String(intParam("batch", 1024));
  const chosen = params.get("variants")?.split(",");
  for (const box of variantBoxes()) box.checked = chosen?.includes(box.value) ?? true;
  const unknown = chosen?.filter((v) => !(nn.VARIANTS as readonly string[]).includes(v)) ?? [];
  if (unknown.length > 0) {
    throw new RangeError(
      `Cannot read ?variants=: it must name ${nn.VARIANTS.join(", ")}: current value is ${
        params.get("variants")
      }`,
    );
  }
}

function variantBoxes(): HTMLInputElement[] {
  return [...document.querySelectorAll<HTMLInputElement>("input[name=variant]")];
}

/** The run's settings from the controls: the lecture's Adam at lr 1e-3, seed 0. */
function settings(): RunSettings & { variants: Variant[] } {
  const number = (id: string) => {
    const value = Number($<HTMLInputElement>(id).value);
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(
        `Cannot start: ${id} must be a positive integer: current value is ${value}`,
      );
    }
    return value;
  };
  const variants = variantBoxes().filter((b) => b.checked).map((b) => b.value as Variant);
  if (variants.length === 0) throw new RangeError("Cannot start: no variant is ticked");
  const lr = Number(params.get("lr") ?? "0.001");
  if (!(lr > 0)) throw new RangeError(`Cannot start: ?lr= must be > 0: current value is ${lr}`);
  return {
    variants,
    epochs: number("epochs"),
    batchSize: number("batch"),
    lr,
    seed: intParam("seed", 0, 0),
    // 4 steps per command buffer: Stop is seen within two chunks (seconds on a software adapter).
    stepsPerChunk: intParam("chunk", 4),
  };
}

/** Redraws the loss curves at most once per frame. */
function curves(variants: readonly Variant[]): { add(p: LossPoint): void; draw(): void } {
  const points: LossPoint[] = [];
  let pending = false;
  const draw = () => {
    pending = false;
    $("loss-plot").replaceChildren(lossFigure(points, variants));
  };
  return {
    add(p) {
      points.push(p);
      if (!pending) (pending = true, requestAnimationFrame(draw));
    },
    draw,
  };
}

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

/** Adds a variant's row to the report, with its checkpoint as a download. */
function report(r: RunResult): void {
  const blob = new Blob([r.checkpoint as Uint8Array<ArrayBuffer>], {
    type: "application/octet-stream",
  });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${r.variant}.safetensors`;
  link.textContent = `${r.variant}.safetensors (${(r.checkpoint.length / 1024).toFixed(0)} KiB)`;
  link.className = "checkpoint";
  const row = document.createElement("tr");
  row.dataset.variant = r.variant;
  const last = r.rows.at(-1);
  const cells = [
    r.variant,
    `${r.rows.length}${r.stopped ? " (stopped)" : ""}`,
    String(r.steps),
    last ? last.trainLoss.toFixed(4) : "-",
    r.test.loss.toFixed(4),
    percent(r.test.accuracy),
    Math.round(r.samplesPerSecond).toLocaleString("en"),
  ];
  for (const text of cells) row.insertCell().textContent = text;
  row.insertCell().append(link);
  $<HTMLTableElement>("results").tBodies[0].append(row);
  for (const e of r.rows) {
    const line = $<HTMLTableElement>("epochs-table").tBodies[0].insertRow();
    line.dataset.variant = r.variant;
    const values = [r.variant, e.epoch, e.trainLoss.toFixed(4), percent(e.trainAccuracy)];
    values.push(e.valLoss.toFixed(4), percent(e.valAccuracy), Math.round(e.samplesPerSecond));
    for (const v of values) line.insertCell().textContent = String(v);
  }
  $("report").hidden = false;
}

let stopRequested = false;

/** Loads the data, puts it on the GPU and trains each chosen variant in turn. */
async function run(gpu: Gpu): Promise<void> {
  const s = settings();
  stopRequested = false;
  setState("training");
  const picked = $<HTMLInputElement>("files").files;
  const source: FileSource = picked && picked.length > 0 ? pickedSource(picked) : serverSource;
  const limits = { train: intParam("train", 50_000), test: intParam("test", 10_000) };
  const sets = await loadSets(source, limits, say);
  $("data").textContent = `${sets.train.count.toLocaleString("en")} training and ${
    sets.test.count.toLocaleString("en")
  } test images from ${sets.source}`;
  $<HTMLTableElement>("results").tBodies[0].replaceChildren();
  $<HTMLTableElement>("epochs-table").tBodies[0].replaceChildren();
  $("accuracy-plot").replaceChildren();
  const train = nn.GpuDataset.upload(gpu, sets.train);
  const val = nn.GpuDataset.upload(gpu, sets.test);
  const plot = curves(s.variants);
  const results: RunResult[] = [];
  try {
    for (const variant of s.variants) {
      if (stopRequested) break;
      say(`${variant}: compiling and training (epoch 1/${s.epochs})`);
      const r = await trainVariant(gpu, variant, { train, val }, s, {
        stopped: () => stopRequested,
        point: (p) => plot.add(p),
        say,
      });
      results.push(r);
      report(r);
    }
  } finally {
    train.dispose();
    val.dispose();
  }
  plot.draw();
  if (results.length > 0) $("accuracy-plot").replaceChildren(accuracyFigure(results));
  const accuracies = results.map((r) => `${r.variant} ${percent(r.test.accuracy)}`);
  say(
    results.length === 0
      ? "stopped before the first variant"
      : `test accuracy: ${accuracies.join(", ")}${stopRequested ? " (stopped)" : ""}`,
  );
  setState("done");
}

function fail(error: unknown): void {
  console.error(error);
  say(error instanceof Error ? error.message : String(error), true);
  setState("error");
}

async function main(): Promise<void> {
  setState("loading");
  applyParams();
  const gpu = await nn.requestGpu();
  const a = gpu.adapter;
  $("adapter").textContent =
    `${a.description || "(no description)"} · vendor ${a.vendor || "-"} · ${
      a.architecture || "-"
    } · ${a.fallback ? "software (fallback) adapter" : "hardware"}` +
    ` · features: ${[...a.features].join(", ") || "none"}`;
  const onServer = await serverHasData();
  $("data").textContent = onServer
    ? "CIFAR-10 from the server (or pick the files below)"
    : "the server holds no CIFAR-10: pick the files below (cifar-10-batches-bin/*.bin)";
  $("start").addEventListener("click", () => run(gpu).catch(fail));
  $("stop").addEventListener("click", () => {
    stopRequested = true;
    say("stopping after the current chunk of steps");
  });
  setState("ready");
  say("ready");
  if (params.get("autostart") === "1") await run(gpu);
}

main().catch(fail);
