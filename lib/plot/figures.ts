/**
 * The experiment's figures, drawn with Observable Plot and returned as standalone SVG strings.
 *
 * Plot puts titles and swatch legends in an HTML `<figure>` around the SVG; we want one `<svg>`
 * per figure (a file that opens on its own, inlined as is in the report), so the title and the
 * legend are drawn into the SVG's top margin by {@link frame} instead.
 *
 * Loss charts of the lecture's experiment use y ∈ [0.2, 2] as the lecture does; other runs' are
 * fitted to their values, unless those lie within [0.2, 2] (the rule is in `loss_axis.ts`). Each
 * names the history's loss on its axis. Values outside the frame are clipped at it; they are
 * first clamped to a band ten domain-widths wide, so a diverged 1e30 cannot put absurd
 * coordinates into the path. Missing or non-finite values (a `null` in JSON) are skipped, never
 * drawn as 0.
 *
 * @module
 */

// deno-lint-ignore no-import-prefix -- library code must work imported by URL, without our import map
import * as Plot from "npm:@observablehq/plot@0.6.17";
import type { History } from "../train/history.ts";
import { type DomElement, plotDocument } from "./dom.ts";
import { frame, MARGIN_LEFT, MARGIN_TOP } from "./frame.ts";
import {
  isLectureRun,
  linearLossAxis,
  logLossAxis,
  type LossAxis,
  lossLabel,
} from "./loss_axis.ts";
import { variantColor } from "./colors.ts";

export { LOSS_DOMAIN } from "./loss_axis.ts";
export { variantColor } from "./colors.ts";

const TRAIN_COLOR = "#4e79a7";
const VAL_COLOR = "#e15759";

const WIDTH = 640;
const HEIGHT = 400;

/** A named line of (epoch, value) points. */
interface Series {
  name: string;
  color: string;
  points: { x: number; y: number }[];
}

interface Point {
  x: number;
  y: number;
  series: string;
}

/** Keeps finite values, clamped into a band around `domain` (see the module doc). */
function cleanPoints(
  pairs: [number, number | undefined][],
  domain: readonly [number, number] | undefined,
  log: boolean,
): { x: number; y: number }[] {
  const out: { x: number; y: number }[] = [];
  for (const [x, y] of pairs) {
    if (y === undefined || !Number.isFinite(y) || (log && y <= 0)) continue;
    if (domain === undefined) out.push({ x, y });
    else if (log) {
      const [lo, hi] = domain;
      out.push({ x, y: Math.min(hi * (hi / lo) ** 10, Math.max(lo / (hi / lo) ** 10, y)) });
    } else {
      const span = domain[1] - domain[0];
      out.push({ x, y: Math.min(domain[1] + 10 * span, Math.max(domain[0] - 10 * span, y)) });
    }
  }
  return out;
}

/** Integer epoch ticks: 1, then multiples of a 1-2-5 step, about eight in all. */
function epochTicks(maxEpoch: number): number[] {
  const steps = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];
  const step = steps.find((s) => maxEpoch / s <= 8) ?? Math.ceil(maxEpoch / 8);
  const ticks = [1];
  for (let t = step; t <= maxEpoch; t += step) if (t !== 1) ticks.push(t);
  return ticks;
}

interface LineChartOptions {
  title: string;
  series: Series[];
  yLabel: string;
  y: Plot.ScaleOptions;
  /** Data clamp band for `cleanPoints`; omit for accuracy (already checked to be in [0, 1]). */
  clampDomain?: readonly [number, number];
}

function lineChart(
  options: LineChartOptions,
  rows: { series: string; pairs: [number, number | undefined][] }[],
): string {
  const log = options.y.type === "log";
  const points: Point[] = [];
  let maxEpoch = 1;
  for (const row of rows) {
    for (const p of cleanPoints(row.pairs, options.clampDomain, log)) {
      points.push({ ...p, series: row.series });
    }
    for (const [x] of row.pairs) maxEpoch = Math.max(maxEpoch, x);
  }
  const names = options.series.map((s) => s.name);
  // Dots mark each value on short runs, and make a lone validation point visible.
  const dots = maxEpoch <= 40
    ? [Plot.dot(points, { x: "x", y: "y", fill: "series", r: 2.2, clip: true })]
    : [];
  const svg = Plot.plot({
    document: plotDocument(),
    width: WIDTH,
    height: HEIGHT,
    marginTop: MARGIN_TOP,
    marginLeft: MARGIN_LEFT,
    marginRight: 24,
    marginBottom: 40,
    style: { fontSize: "11px" },
    grid: true,
    x: {
      label: "epoch",
      domain: [1, Math.max(2, maxEpoch)],
      ticks: epochTicks(maxEpoch),
      tickFormat: "d",
      labelAnchor: "center",
      labelArrow: "none",
    },
    y: { label: options.yLabel, labelAnchor: "center", labelArrow: "none", ...options.y },
    color: { domain: names, range: options.series.map((s) => s.color) },
    marks: [
      Plot.frame({ strokeOpacity: 0.25 }),
      Plot.line(points, {
        x: "x",
        y: "y",
        z: "series",
        stroke: "series",
        strokeWidth: 1.8,
        clip: true,
      }),
      ...dots,
    ],
  });
  return frame(svg as unknown as DomElement, options.title, options.series);
}

/** The y scale of a linear loss axis: the lecture's frame exactly, a fitted one with nice ends. */
function linearY(axis: LossAxis): Plot.ScaleOptions {
  return axis.fixed ? { domain: axis.domain } : { domain: axis.domain, nice: true };
}

/**
 * Figure 1, per variant: training and validation loss per epoch, the axis named after the
 * history's loss; y ∈ [0.2, 2] as in the lecture, or fitted to the values (see the module doc).
 *
 * @example Write one variant's loss chart
 * ```ts ignore
 * await Deno.writeTextFile("out/bn/loss.svg", lossFigure(history));
 * ```
 */
export function lossFigure(history: History): string {
  const series: Series[] = [
    { name: "train", color: TRAIN_COLOR, points: [] },
    { name: "validation", color: VAL_COLOR, points: [] },
  ];
  const values = history.epochs.flatMap((e) => [e.trainLoss, e.valLoss]);
  const axis = linearLossAxis([history], values);
  return lineChart({
    title: `Loss per epoch: ${history.variant}`,
    series,
    yLabel: lossLabel([history]),
    y: linearY(axis),
    clampDomain: axis.domain,
  }, [
    { series: "train", pairs: history.epochs.map((e) => [e.epoch, e.trainLoss]) },
    { series: "validation", pairs: history.epochs.map((e) => [e.epoch, e.valLoss]) },
  ]);
}

/** "validation loss" for the lecture's experiment, "validation mean squared error" for MSE. */
function comparisonLabel(histories: History[], what: string): string {
  return isLectureRun(histories) ? `${what} loss` : `${what} ${lossLabel(histories)}`;
}

function variantSeries(histories: History[]): Series[] {
  const names = histories.map((h) => h.variant);
  return names.map((name) => ({ name, color: variantColor(name, names), points: [] }));
}

/** Figure 2: the variants' validation loss overlaid, y ∈ [0.2, 2] or fitted as in figure 1. */
export function compareValLossFigure(histories: History[]): string {
  const axis = linearLossAxis(histories, histories.flatMap((h) => h.epochs.map((e) => e.valLoss)));
  return lineChart(
    {
      title: "Validation loss: all variants",
      series: variantSeries(histories),
      yLabel: comparisonLabel(histories, "validation"),
      y: linearY(axis),
      clampDomain: axis.domain,
    },
    histories.map((h) => ({ series: h.variant, pairs: h.epochs.map((e) => [e.epoch, e.valLoss]) })),
  );
}

/**
 * Figure 3: the variants' training loss overlaid, on a log y axis. The lecture's runs go from
 * below the lowest loss (at most 0.2, at least 0.001) to 2, since BatchNorm's training loss falls
 * far below the lecture's 0.2; other runs' axis spans their positive values (see `loss_axis.ts`).
 */
export function compareTrainLossFigure(histories: History[]): string {
  const { domain } = logLossAxis(
    histories,
    histories.flatMap((h) => h.epochs.map((e) => e.trainLoss)),
  );
  return lineChart(
    {
      title: "Training loss: all variants",
      series: variantSeries(histories),
      yLabel: `${comparisonLabel(histories, "training")} (log scale)`,
      y: { type: "log", domain, tickFormat: (v: number) => String(+v.toPrecision(2)) },
      clampDomain: domain,
    },
    histories.map((h) => ({
      series: h.variant,
      pairs: h.epochs.map((e) => [e.epoch, e.trainLoss]),
    })),
  );
}

/** Figure 4: the variants' validation accuracy, y in percent. */
export function valAccuracyFigure(histories: History[]): string {
  return lineChart(
    {
      title: "Validation accuracy: all variants",
      series: variantSeries(histories),
      yLabel: "validation accuracy",
      y: { percent: true, nice: true, zero: false, tickFormat: (v: number) => `${+v.toFixed(1)}%` },
    },
    histories.map((h) => ({
      series: h.variant,
      pairs: h.epochs.map((e) => [e.epoch, e.valAccuracy]),
    })),
  );
}
