/**
 * Figures and report, checked from the outside: each SVG is parsed by a small strict XML reader
 * (`fixtures/svg.ts`, not linkedom), and the drawn lines are mapped back to data through the axis
 * tick labels, then compared with the values the synthetic histories were built from.
 */

import assert from "node:assert/strict";
import { CLASS_NAMES } from "../lib/data/cifar10.ts";
import { confusionFigure } from "../lib/plot/confusion.ts";
import {
  compareTrainLossFigure,
  compareValLossFigure,
  lossFigure,
  valAccuracyFigure,
} from "../lib/plot/figures.ts";
import { summarize } from "../lib/plot/load.ts";
import { parseHistory, parseSummary } from "../lib/train/history_file.ts";
import { buildReport, REPORT_TITLE, reportTitle } from "../lib/plot/report.ts";
import type { History } from "../lib/train/history.ts";
import {
  all,
  axis,
  byLabel,
  legend,
  lines,
  parseXml,
  position,
  type SvgNode,
  svgRoot,
} from "./fixtures/svg.ts";

// ---- synthetic histories ----

const CLASSES: string[] = [...CLASS_NAMES];

function trainLossAt(k: number, e: number): number {
  return 0.25 + 1.6 * Math.exp(-k * e / 4);
}

/** `epochs` records; validation every `valFreq` epochs; `nanAt` gives a NaN valLoss there. */
function history(variant: string, k: number, epochs = 6, valFreq = 1, nanAt = -1): History {
  const records = [];
  for (let e = 1; e <= epochs; e++) {
    const validated = e % valFreq === 0;
    records.push({
      epoch: e,
      trainLoss: trainLossAt(k, e),
      seconds: 2 + k,
      ...(validated
        ? { valLoss: e === nanAt ? NaN : 1.9 - 0.1 * e * k, valAccuracy: 0.3 + 0.02 * e * k }
        : {}),
    });
  }
  // confusion[t][p]: a distinct count per cell, so a misplaced label is caught.
  const confusion = CLASSES.map((_, t) => CLASSES.map((_, p) => (t === p ? 900 + t : 10 * t + p)));
  return {
    variant,
    adapter: "test adapter <lavapipe>",
    epochs: records,
    classes: CLASSES,
    confusion,
  };
}

const RATES: Record<string, number> = { plain: 1, bn: 2, dropout: 0.5 };
const HISTORIES = [history("plain", 1), history("bn", 2, 6, 2), history("dropout", 0.5)];

function assertPoints(
  actual: [number, number][] | undefined,
  expected: [number, number][],
  what: string,
) {
  assert(actual, `${what}: no line drawn`);
  assert.deepEqual(actual.length, expected.length, `${what}: ${JSON.stringify(actual)}`);
  actual.forEach(([x, y], i) => {
    const [ex, ey] = expected[i];
    assert(
      Math.abs(x - ex) < 0.02 && Math.abs(y - ey) <= 0.01 + 0.01 * Math.abs(ey),
      `${what}[${i}]: (${x}, ${y}) vs (${ex}, ${ey})`,
    );
  });
}

function checkFrame(svg: string, title: string, xLabel: string, yLabel: string): SvgNode {
  const root = svgRoot(svg, title);
  assert.deepEqual(all(root, (n) => n.attrs.class === "figure-title")[0]?.text, title);
  assert.deepEqual(byLabel(root, "x-axis label")[0].children[0].text, xLabel);
  assert.deepEqual(byLabel(root, "y-axis label")[0].children[0].text, yLabel);
  for (const grid of ["x-grid", "y-grid"]) {
    assert(byLabel(root, grid)[0]?.children.length > 1, grid);
  }
  return root;
}

/** Asserts that `fn` throws an instance of `type` whose message matches `message`. */
function throwsWith(fn: () => unknown, type: ErrorConstructor, message: RegExp) {
  assert.throws(fn, (error: unknown) => {
    assert(error instanceof type, `expected ${type.name}, got ${error}`);
    assert.match(error.message, message);
    return true;
  });
}

// ---- tests ----

Deno.test("lossFigure draws train every epoch and validation only where measured", () => {
  const h = history("plain", 1, 7, 2, 4); // validated at 2, 4 (NaN), 6
  const root = checkFrame(lossFigure(h), "Loss per epoch: plain", "epoch", "cross-entropy loss");
  assert.deepEqual(legend(root).map(([name]) => name), ["train", "validation"]);
  const drawn = lines(root);
  assert.deepEqual(drawn.size, 2);
  assertPoints(drawn.get("train"), h.epochs.map((e) => [e.epoch, e.trainLoss]), "train");
  assertPoints(drawn.get("validation"), [[2, 1.7], [6, 1.3]], "validation (NaN at 4 skipped)");
});

Deno.test("lossFigure clips values outside [0.2, 2] instead of stretching the axis", () => {
  const h = history("bn", 1, 5);
  const wild = [50, 1e30, 0.01, -3, 1.0];
  h.epochs.forEach((e, i) => {
    e.trainLoss = wild[i];
    e.valLoss = Infinity;
  });
  const root = checkFrame(lossFigure(h), "Loss per epoch: bn", "epoch", "cross-entropy loss");
  const toY = axis(root, "y");
  assert(
    Math.abs(toY(position(byLabel(root, "y-axis tick label")[0].children[0])[1]) - 0.2) < 1e-9,
  );
  const ticks = byLabel(root, "y-axis tick label")[0].children.map((t) => Number(t.text));
  assert.deepEqual([Math.min(...ticks), Math.max(...ticks)], [0.2, 2]);
  const drawn = lines(root);
  assert.deepEqual(drawn.size, 1, "an all-Infinity validation series draws no line");
  // Clamped to a band of ten domain-widths (1.8 each) around [0.2, 2], then clipped at the frame.
  assertPoints(drawn.get("train"), [[1, 20], [2, 20], [3, 0.01], [4, -3], [5, 1]], "train");
  const group = byLabel(root, "line")[0];
  const clipId = /^url\(#(.+)\)$/.exec(group.attrs["clip-path"])?.[1];
  assert(all(root, (n) => n.tag === "clipPath" && n.attrs.id === clipId).length === 1, "clip path");
});

Deno.test("comparison figures overlay one line per variant with a legend", () => {
  const names = HISTORIES.map((h) => h.variant);
  const val = checkFrame(
    compareValLossFigure(HISTORIES),
    "Validation loss: all variants",
    "epoch",
    "validation loss",
  );
  assert.deepEqual(legend(val).map(([n]) => n), names);
  assert.deepEqual(new Set(legend(val).map(([, c]) => c)).size, 3, "distinct colours");
  const valLines = lines(val);
  assert.deepEqual(valLines.size, 3);
  for (const h of HISTORIES) {
    const expected = h.epochs.filter((e) => e.valLoss !== undefined).map((e) =>
      [e.epoch, e.valLoss!] as [number, number]
    );
    assertPoints(valLines.get(h.variant), expected, `val ${h.variant}`);
  }
  const train = checkFrame(
    compareTrainLossFigure(HISTORIES),
    "Training loss: all variants",
    "epoch",
    "training loss (log scale)",
  );
  const trainLines = lines(train, true);
  assert.deepEqual(trainLines.size, 3);
  for (const h of HISTORIES) {
    assertPoints(
      trainLines.get(h.variant),
      h.epochs.map((e) => [e.epoch, trainLossAt(RATES[h.variant], e.epoch)]),
      `train ${h.variant}`,
    );
  }
  const acc = checkFrame(
    valAccuracyFigure(HISTORIES),
    "Validation accuracy: all variants",
    "epoch",
    "validation accuracy",
  );
  const accLines = lines(acc);
  assert.deepEqual([...accLines.keys()], names);
  assertPoints(accLines.get("bn"), [[2, 0.38], [4, 0.46], [6, 0.54]], "accuracy bn");
});

Deno.test("confusionFigure labels both axes with class names and puts each count in its cell", () => {
  const h = HISTORIES[0];
  // Diagonal 900..909 sums to 9045; off-diagonal 10t+p sums to 4950 - 495 = 4455: 13500 in all.
  const title = "Confusion matrix: plain — accuracy 67.0% of 13500";
  const root = checkFrame(confusionFigure(h), title, "predicted class", "true class");
  const xs = byLabel(root, "x-axis tick label")[0].children.map((t) =>
    [t.text, position(t)[0]] as const
  );
  const ys = byLabel(root, "y-axis tick label")[0].children.map((t) =>
    [t.text, position(t)[1]] as const
  );
  assert.deepEqual(xs.map(([n]) => n), CLASSES);
  assert.deepEqual(ys.map(([n]) => n), CLASSES);
  const texts = byLabel(root, "text").flatMap((g) => g.children);
  assert.deepEqual(texts.length, 100);
  for (const t of texts) {
    const [x, y] = position(t);
    const p = xs.findIndex(([, px]) => Math.abs(px - x) < 1);
    const r = ys.findIndex(([, py]) => Math.abs(py - y) < 1);
    assert(p >= 0 && r >= 0, `cell "${t.text}" at (${x}, ${y}) is off the grid`);
    assert.deepEqual(
      Number(t.text),
      r === p ? 900 + r : 10 * r + p,
      `cell true=${CLASSES[r]} predicted=${CLASSES[p]}`,
    );
  }
  assert.deepEqual(legend(root).length, 5);
  throwsWith(() => confusionFigure({ ...h, confusion: undefined }), TypeError, /has none/);
});

Deno.test("names with markup characters are escaped in SVG and HTML", () => {
  const odd = history(`a<b & "c"`, 1);
  odd.classes = odd.classes.map((c, i) => (i === 0 ? "<cat & dog>" : c));
  for (const svg of [lossFigure(odd), compareValLossFigure([odd]), confusionFigure(odd)]) {
    parseXml(svg);
  }
  const html = buildReport([odd], summarize([odd]));
  assert(!html.includes(`a<b`) && html.includes("a&lt;b &amp; &quot;c&quot;"));
});

Deno.test("buildReport is one self-contained page with every figure and the summary", () => {
  const html = buildReport(HISTORIES, summarize(HISTORIES), {
    date: new Date("2024-05-06T07:08:00Z"),
  });
  assert.match(html, /^<!doctype html>/);
  assert(html.includes(`<h1>${REPORT_TITLE}</h1>`));
  assert(html.includes("2024-05-06 07:08 UTC") && html.includes("test adapter &lt;lavapipe&gt;"));
  assert.deepEqual(html.match(/<svg[\s>]/g)?.length, 3 + 2 * HISTORIES.length);
  const ids = [...html.matchAll(/\sid="([^"]*)"/g)].map((m) => m[1]);
  assert.equal(new Set(ids).size, ids.length, `ids are unique across figures: ${ids}`);
  for (const svg of html.matchAll(/<svg[\s\S]*?<\/svg>/g)) {
    const root = parseXml(svg[0]);
    const own = new Set(all(root, (n) => n.attrs.id !== undefined).map((n) => n.attrs.id));
    for (const ref of svg[0].matchAll(/url\(#([^)]*)\)/g)) {
      assert(own.has(ref[1]), `#${ref[1]} in its own SVG`);
    }
  }
  assert(
    !/<script|<link|<iframe|<img|<object|<embed|@import/i.test(html),
    "no scripts or linked resources",
  );
  assert(
    !/\s(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:)?\/\//i.test(html),
    "no external src/href",
  );
  assert(!/url\(\s*["']?(?:https?:)?\/\//i.test(html), "no external CSS url()");
  // plain: last train loss 0.25 + 1.6·e^(-1.5) = 0.607006...; lowest val 1.9 - 0.6 = 1.3 at epoch 6.
  const plainRow = /<tr><td>plain<\/td>(.*?)<\/tr>/.exec(html)![1];
  const cells = [...plainRow.matchAll(/<td class="num">([^<]*)<\/td>/g)].map((m) => m[1]);
  assert.deepEqual(cells, ["6", "0.6070", "1.3000", "6", "42.00%", "3.00"]);
});

Deno.test("parseHistory reads JSON nulls as not measured and names the file and field on errors", () => {
  const h = history("plain", 1, 3, 1, 2);
  const read = parseHistory(JSON.stringify(h), "x.json"); // NaN was written as null
  assert.deepEqual(read.epochs[1].valLoss, undefined);
  assert(Math.abs(read.epochs[0].valLoss! - 1.8) < 1e-12);
  throwsWith(
    () => parseHistory("{ oops", "out/bn/history.json"),
    TypeError,
    /Cannot read "out\/bn\/history.json": not valid JSON/,
  );
  const bad = JSON.stringify({ ...h, epochs: [{ epoch: 1, trainLoss: "high", seconds: 1 }] });
  throwsWith(
    () => parseHistory(bad, "h.json"),
    TypeError,
    /"h.json": epochs\[0\]\.trainLoss must be a number: current value is "high"/,
  );
  const acc = JSON.stringify({
    ...h,
    epochs: [{ epoch: 1, trainLoss: 1, seconds: 1, valAccuracy: 42 }],
  });
  throwsWith(
    () => parseHistory(acc, "h.json"),
    TypeError,
    /valAccuracy must be in \[0, 1\]: current value is 42/,
  );
  throwsWith(
    () => parseHistory(JSON.stringify({ ...h, confusion: [[1]] }), "h.json"),
    TypeError,
    /confusion must be a 10×10/,
  );
  throwsWith(() => parseSummary("{}", "s.json"), TypeError, /"s.json": expected an array/);
  assert.deepEqual(
    parseSummary(JSON.stringify([{ ...summarize([h])[0], bestValLoss: null }]), "s.json")[0]
      .bestValLoss,
    NaN,
  );
});

// ---- other experiments: an MSE regression ----

/** A regression's history: MSE falling from 0.08 to about 0.01, far below the lecture's 0.2. */
function mseHistory(variant: string, scale = 1): History {
  const epochs = [];
  for (let e = 1; e <= 6; e++) {
    const trainLoss = scale * (0.01 + 0.07 * Math.exp(-e / 2));
    epochs.push({ epoch: e, trainLoss, valLoss: 1.2 * trainLoss, seconds: 1 });
  }
  return { variant, adapter: "test adapter", epochs, classes: [], loss: "MSELoss" };
}

/** The y values at the frame's bottom and top edges, read back through the tick labels. */
function yDomain(root: SvgNode, log = false): [number, number] {
  const rect = byLabel(root, "frame")[0];
  const toY = axis(root, "y", log);
  const top = Number(rect.attrs.y), bottom = top + Number(rect.attrs.height);
  return [toY(bottom), toY(top)];
}

function assertCovers(domain: [number, number], values: number[], what: string) {
  const [lo, hi] = domain;
  assert(
    values.every((v) => v >= lo && v <= hi),
    `${what}: [${lo}, ${hi}] clips ${values.filter((v) => v < lo || v > hi)}`,
  );
  // Fitted, not merely wide: the values fill most of the axis.
  assert((Math.max(...values) - Math.min(...values)) / (hi - lo) > 0.5, `${what}: [${lo}, ${hi}]`);
}

Deno.test("an MSE history's loss figure fits its y axis to the values and names the loss", () => {
  const h = mseHistory("wide");
  const root = checkFrame(lossFigure(h), "Loss per epoch: wide", "epoch", "mean squared error");
  const values = h.epochs.flatMap((e) => [e.trainLoss, e.valLoss!]);
  assertCovers(yDomain(root), values, "loss figure");
  const drawn = lines(root);
  assertPoints(drawn.get("train"), h.epochs.map((e) => [e.epoch, e.trainLoss]), "train");
  assertPoints(drawn.get("validation"), h.epochs.map((e) => [e.epoch, e.valLoss!]), "validation");
  // A lecture variant's name does not make a regression the lecture's: the loss decides.
  const bn = { ...h, variant: "bn" };
  assertCovers(yDomain(svgRoot(lossFigure(bn), "bn")), values, "bn trained with MSE");
});

Deno.test("the comparison figures of an MSE run fit their axes and name the loss", () => {
  const hs = [mseHistory("wide"), mseHistory("deep", 0.5)];
  const val = checkFrame(
    compareValLossFigure(hs),
    "Validation loss: all variants",
    "epoch",
    "validation mean squared error",
  );
  const valValues = hs.flatMap((h) => h.epochs.map((e) => e.valLoss!));
  assertCovers(yDomain(val), valValues, "validation comparison");
  assertPoints(
    lines(val).get("deep"),
    hs[1].epochs.map((e) => [e.epoch, e.valLoss!]),
    "validation deep",
  );
  const train = checkFrame(
    compareTrainLossFigure(hs),
    "Training loss: all variants",
    "epoch",
    "training mean squared error (log scale)",
  );
  const [lo, hi] = yDomain(train, true);
  const trainValues = hs.flatMap((h) => h.epochs.map((e) => e.trainLoss));
  assert(lo <= Math.min(...trainValues) && hi >= Math.max(...trainValues), `[${lo}, ${hi}]`);
  assert(hi < 0.2, `fitted to the values, not the lecture's 2: [${lo}, ${hi}]`);
  assertPoints(
    lines(train, true).get("wide"),
    hs[0].epochs.map((e) => [e.epoch, e.trainLoss]),
    "train wide",
  );
});

Deno.test("a loss we do not name, or none on a variant of our own, is labelled 'loss'", () => {
  const odd = { ...mseHistory("wide"), loss: "HuberLoss" };
  checkFrame(lossFigure(odd), "Loss per epoch: wide", "epoch", "loss");
  const { loss: _, ...unnamed } = mseHistory("wide");
  checkFrame(lossFigure(unnamed), "Loss per epoch: wide", "epoch", "loss");
  // Mixed losses: the comparison names none.
  const mixed = [mseHistory("wide"), { ...mseHistory("deep"), loss: "L1Loss" }];
  checkFrame(
    compareValLossFigure(mixed),
    "Validation loss: all variants",
    "epoch",
    "validation loss",
  );
});

Deno.test("cross-entropy values within [0.2, 2] keep the lecture's frame on any variant", () => {
  const h = { ...history("wide", 1), loss: "CrossEntropyLoss" };
  const root = checkFrame(lossFigure(h), "Loss per epoch: wide", "epoch", "cross-entropy loss");
  const ticks = byLabel(root, "y-axis tick label")[0].children.map((t) => Number(t.text));
  assert.deepEqual([Math.min(...ticks), Math.max(...ticks)], [0.2, 2]);
  // The lecture's own histories, with the loss recorded, are drawn exactly as without it.
  // (Plot numbers its clip paths per call, so those are left out of the comparison.)
  const same = (svg: string) => svg.replace(/clip-\d+/g, "clip");
  const recorded = HISTORIES.map((h) => ({ ...h, loss: "CrossEntropyLoss" }));
  assert.equal(same(compareTrainLossFigure(recorded)), same(compareTrainLossFigure(HISTORIES)));
  assert.equal(same(lossFigure(recorded[1])), same(lossFigure(HISTORIES[1])));
});

Deno.test("the report of another experiment has a neutral title and no lecture footer", () => {
  const hs = [mseHistory("wide"), mseHistory("deep", 0.5)];
  const html = buildReport(hs, summarize(hs), { date: new Date("2024-05-06T07:08:00Z") });
  assert.equal(reportTitle(hs), "Training report: wide, deep");
  assert(html.includes("<h1>Training report: wide, deep</h1>"));
  assert(html.includes("<title>Training report: wide, deep</title>"));
  assert(!html.includes(REPORT_TITLE) && !/lecture's MLPs|CIFAR-10/.test(html), "no lecture");
  const footer = /<footer>([\s\S]*?)<\/footer>/.exec(html)![1];
  assert.match(footer, /^The variants \(wide, deep\) were trained\./);
  assert.match(footer, /fitted to its values/);
  // The lecture's runs keep the lecture's title and footer.
  const lecture = buildReport(HISTORIES, summarize(HISTORIES));
  assert(lecture.includes(`<h1>${REPORT_TITLE}</h1>`) && lecture.includes("The lecture's MLPs"));
  // A lecture variant trained with another loss is not the lecture's experiment.
  assert.equal(reportTitle([mseHistory("plain")]), "Training report: plain");
});

Deno.test("parseHistory keeps the recorded loss and checks that it is a string", () => {
  const h = mseHistory("wide");
  assert.equal(parseHistory(JSON.stringify(h), "h.json").loss, "MSELoss");
  assert.equal(parseHistory(JSON.stringify(history("plain", 1)), "h.json").loss, undefined);
  throwsWith(
    () => parseHistory(JSON.stringify({ ...h, loss: 3 }), "h.json"),
    TypeError,
    /"h.json": loss must be a string: current value is 3/,
  );
});
