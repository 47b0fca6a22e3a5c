/**
 * `out/report.html`: one self-contained page with every figure inline as SVG and the summary
 * table. No scripts, no stylesheets, fonts or images from anywhere else: it opens offline and can
 * be mailed as one file.
 *
 * @module
 */

import type { History } from "../train/history.ts";
import { confusionFigure } from "./confusion.ts";
import { escapeHtml } from "./dom.ts";
import {
  compareTrainLossFigure,
  compareValLossFigure,
  lossFigure,
  valAccuracyFigure,
} from "./figures.ts";
import { isLectureRun } from "./loss_axis.ts";
import { settingsConflicts, type SummaryRow } from "../train/summary.ts";

/** The report's heading for the lecture's experiment (see {@link reportTitle}). */
export const REPORT_TITLE = "Improving learning: BatchNorm and Dropout on CIFAR-10";

/**
 * The report's heading: the lecture's {@link REPORT_TITLE} for its experiment (plain, bn and
 * dropout trained with cross-entropy), otherwise "Training report: " and the variants.
 *
 * @example Another experiment's heading
 * ```ts
 * import { reportTitle } from "./report.ts";
 * import { equal } from "node:assert/strict";
 *
 * const fit = { adapter: "example", classes: [], epochs: [], loss: "MSELoss" };
 * equal(reportTitle([{ ...fit, variant: "wide" }, { ...fit, variant: "deep" }]), "Training report: wide, deep");
 * ```
 */
export function reportTitle(histories: History[]): string {
  if (isLectureRun(histories)) return REPORT_TITLE;
  return `Training report: ${histories.map((h) => h.variant).join(", ")}`;
}

/**
 * Every figure of a run as SVG text, keyed by its path relative to the output folder.
 *
 * @example Where each figure goes
 * ```ts
 * import type { FigureSet } from "@wgnn/wgnn/plot";
 *
 * function files(figures: FigureSet): Record<string, string> {
 *   const out: Record<string, string> = {
 *     "compare_val_loss.svg": figures.compareValLoss,
 *     "compare_train_loss.svg": figures.compareTrainLoss,
 *     "val_accuracy.svg": figures.valAccuracy,
 *   };
 *   for (const v of figures.variants) {
 *     out[`${v.variant}/loss.svg`] = v.loss;
 *     if (v.confusion !== undefined) out[`${v.variant}/confusion.svg`] = v.confusion;
 *   }
 *   return out;
 * }
 * ```
 */
export interface FigureSet {
  /** `compare_val_loss.svg`: figure 2. */
  compareValLoss: string;
  /** `compare_train_loss.svg`: figure 3. */
  compareTrainLoss: string;
  /** `val_accuracy.svg`: figure 4. */
  valAccuracy: string;
  /** Per variant, in the histories' order: `<variant>/loss.svg` and `<variant>/confusion.svg`. */
  variants: { variant: string; loss: string; confusion?: string }[];
}

/**
 * Renders every figure for `histories` (one per variant) as SVG text, with Observable Plot on a
 * server-side DOM: no browser, no GPU, no permission.
 *
 * @example Figures of a two-epoch run
 * ```ts
 * import { type History, renderFigures } from "@wgnn/wgnn/plot";
 * import { equal, ok } from "node:assert/strict";
 *
 * const bn: History = {
 *   variant: "bn",
 *   adapter: "example",
 *   classes: ["cat", "dog"],
 *   epochs: [
 *     { epoch: 1, trainLoss: 1.9, valLoss: 1.7, valAccuracy: 0.38, seconds: 12 },
 *     { epoch: 2, trainLoss: 1.6, valLoss: 1.5, valAccuracy: 0.46, seconds: 12 },
 *   ],
 * };
 * const figures = renderFigures([bn]);
 * equal(figures.variants.length, 1);
 * ok(figures.compareValLoss.startsWith("<svg"));
 * equal(figures.variants[0].confusion, undefined); // the history has no confusion matrix
 * ```
 */
export function renderFigures(histories: History[]): FigureSet {
  return {
    compareValLoss: compareValLossFigure(histories),
    compareTrainLoss: compareTrainLossFigure(histories),
    valAccuracy: valAccuracyFigure(histories),
    variants: histories.map((h) => ({
      variant: h.variant,
      loss: lossFigure(h),
      confusion: h.confusion === undefined ? undefined : confusionFigure(h),
    })),
  };
}

/**
 * Options for {@link buildReport}.
 *
 * @example A reproducible page, figures drawn once
 * ```ts
 * import { buildReport, type History, renderFigures, type ReportOptions } from "@wgnn/wgnn/plot";
 *
 * function page(histories: History[]): string {
 *   const options: ReportOptions = {
 *     date: new Date("2025-01-01T00:00:00Z"),
 *     figures: renderFigures(histories), // reuse them for the .svg files too
 *   };
 *   return buildReport(histories, [], options);
 * }
 * ```
 */
export interface ReportOptions {
  /** The date printed on the page. Default: now (`new Date()`). */
  date?: Date;
  /**
   * Figures already rendered from the same histories (saves drawing them twice). Default: none
   * (they are rendered here).
   */
  figures?: FigureSet;
}

const STYLE = `
  body { font: 15px/1.45 system-ui, sans-serif; color: #1a1a1a; background: #fff; margin: 0;
    padding: 24px 32px 40px; }
  h1 { font-size: 26px; margin: 0 0 4px; }
  h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
  h3 { font-size: 16px; margin: 18px 0 6px; }
  .meta { color: #555; margin: 0; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { padding: 5px 12px; border-bottom: 1px solid #e3e3e3; }
  th { text-align: left; background: #f4f5f7; font-weight: 600; }
  td.num, th.num { text-align: right; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 18px;
    align-items: start; }
  figure { margin: 0; padding: 8px; border: 1px solid #e6e6e6; border-radius: 6px; }
  figure svg { width: 100%; height: auto; display: block; }
  footer { margin-top: 28px; color: #666; font-size: 13px; }
  .warning { background: #fff4e5; border-left: 4px solid #e08e0b; padding: 8px 12px; }
`;

function fixed(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : "—";
}

function summaryTable(summary: SummaryRow[]): string {
  const head = [
    ["variant", ""],
    ["epochs", "num"],
    ["final train loss", "num"],
    ["lowest val loss", "num"],
    ["at epoch", "num"],
    ["best val accuracy", "num"],
    ["s / epoch", "num"],
    ["trained with", ""],
    ["adapter", ""],
  ].map(([label, cls]) => `<th${cls ? ` class="${cls}"` : ""}>${label}</th>`).join("");
  const rows = summary.map((r) => {
    const cells = [
      `<td>${escapeHtml(r.variant)}</td>`,
      `<td class="num">${fixed(r.epochs, 0)}</td>`,
      `<td class="num">${fixed(r.finalTrainLoss, 4)}</td>`,
      `<td class="num">${fixed(r.bestValLoss, 4)}</td>`,
      `<td class="num">${fixed(r.bestValEpoch, 0)}</td>`,
      `<td class="num">${
        Number.isFinite(r.bestValAccuracy) ? `${(100 * r.bestValAccuracy).toFixed(2)}%` : "—"
      }</td>`,
      `<td class="num">${fixed(r.secondsPerEpoch, 2)}</td>`,
      `<td>${escapeHtml(trainedWith(r.settings))}${
        r.status === "failed" ? ` <strong>failed: ${escapeHtml(r.error ?? "")}</strong>` : ""
      }</td>`,
      `<td>${escapeHtml(r.adapter)}</td>`,
    ];
    return `<tr>${cells.join("")}</tr>`;
  });
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${
    rows.join("\n")
  }\n</tbody>\n</table>`;
}

/** "Adam, lr 0.001, batch 1024" from a run's settings; "—" when they are not known. */
function trainedWith(settings: SummaryRow["settings"]): string {
  if (!settings) return "—";
  const optimizer = settings.optimizer ?? settings.optimizerClass;
  const lr = settings.lr ?? settings.optimizerLr;
  const batch = settings["batch-size"] ?? settings.batchSize;
  return [
    optimizer === undefined ? "" : OPTIMIZER_TITLES[String(optimizer)] ?? String(optimizer),
    lr === undefined ? "" : `lr ${lr}`,
    batch === undefined ? "" : `batch ${batch}`,
    settings.augment === true ? "augmented" : "",
  ].filter(Boolean).join(", ") || "—";
}

const OPTIMIZER_TITLES: Record<string, string> = {
  adam: "Adam",
  adamw: "AdamW",
  sgd: "SGD",
  rmsprop: "RMSprop",
};

/** The footer's account of how the runs were trained: only what their settings say. */
function trainedBy(summary: SummaryRow[]): string {
  const optimizers = [
    ...new Set(summary.map((r) => trainedWith(r.settings).split(",")[0]).filter((o) => o !== "—")),
  ];
  return optimizers.length === 0 ? "trained" : `trained with ${optimizers.join(" and ")}`;
}

/**
 * The footer's HTML: how the runs were trained and how the loss charts are scaled, in the
 * lecture's words for its runs.
 */
function footer(histories: History[], summary: SummaryRow[]): string {
  if (isLectureRun(histories)) {
    return `The lecture's MLPs (plain; with BatchNorm1d; with Dropout 0.5) ${
      escapeHtml(trainedBy(summary))
    } on CIFAR-10, as in the lecture. Loss charts show y from 0.2 to 2 as the lecture does; ` +
      `values outside are clipped at the frame. The training-loss comparison uses a log scale.`;
  }
  const variants = escapeHtml(histories.map((h) => h.variant).join(", "));
  return `The variants (${variants}) were ${
    escapeHtml(trainedBy(summary))
  }. A loss chart shows y from 0.2 ` +
    `to 2 when its values lie within that range, and is fitted to its values otherwise. The ` +
    `training-loss comparison uses a log scale.`;
}

function figure(svg: string): string {
  return `<figure>${svg}</figure>`;
}

/** A warning above the table when the runs in the folder used different settings. */
function conflictWarning(summary: SummaryRow[]): string {
  const conflicts = settingsConflicts(summary);
  if (conflicts.length === 0) return "";
  return `<p class="warning"><strong>Warning:</strong> these runs used different settings, so ` +
    `they are not a like-for-like comparison: ${escapeHtml(conflicts.join("; "))}.</p>\n`;
}

/**
 * Builds `report.html`: title, date and adapter, the summary table, the three comparison figures
 * and each variant's loss chart and confusion matrix, all inline. Pure: the caller writes it.
 *
 * @example A one-variant report
 * ```ts
 * import { buildReport, type History, type SummaryRow } from "@wgnn/wgnn/plot";
 * import { ok } from "node:assert/strict";
 *
 * const plain: History = {
 *   variant: "plain",
 *   adapter: "example",
 *   classes: ["cat", "dog"],
 *   epochs: [{ epoch: 1, trainLoss: 1.8, valLoss: 1.7, valAccuracy: 0.4, seconds: 10 }],
 *   confusion: [[40, 10], [20, 30]],
 * };
 * const row: SummaryRow = {
 *   variant: "plain",
 *   finalTrainLoss: 1.8,
 *   bestValLoss: 1.7,
 *   bestValEpoch: 1,
 *   bestValAccuracy: 0.4,
 *   secondsPerEpoch: 10,
 *   adapter: "example",
 *   epochs: 1,
 * };
 * const html = buildReport([plain], [row], { date: new Date("2025-01-01T00:00:00Z") });
 * ok(html.startsWith("<!doctype html>"));
 * ok(html.includes("Generated 2025-01-01 00:00 UTC"));
 * ok(!html.includes("<script")); // self-contained: no scripts
 * // await writeTextFileAtomic("out/report.html", html) in a script with write permission
 * ```
 */
export function buildReport(
  histories: History[],
  summary: SummaryRow[],
  options: ReportOptions = {},
): string {
  const figures = options.figures ?? renderFigures(histories);
  const title = reportTitle(histories);
  const date = (options.date ?? new Date()).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  const adapters = [...new Set([...summary, ...histories].map((r) => r.adapter).filter(Boolean))];
  const epochs = [...new Set(histories.map((h) => h.epochs.length))];
  const perVariant = figures.variants.map((v) =>
    `<h3>${escapeHtml(v.variant)}</h3>\n<div class="grid">\n${figure(v.loss)}\n${
      v.confusion === undefined ? "" : figure(v.confusion)
    }\n</div>`
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<p class="meta">Generated ${date} · adapter: ${escapeHtml(adapters.join("; ") || "unknown")} · ` +
    `epochs: ${epochs.join(", ") || "0"} · variants: ${
      escapeHtml(histories.map((h) => h.variant).join(", "))
    }</p>
</header>
<section>
<h2>Summary</h2>
${conflictWarning(summary)}${summaryTable(summary)}
</section>
<section>
<h2>The variants compared</h2>
<div class="grid">
${figure(figures.compareValLoss)}
${figure(figures.compareTrainLoss)}
${figure(figures.valAccuracy)}
</div>
</section>
<section>
<h2>Each variant</h2>
${perVariant.join("\n")}
</section>
<footer>${footer(histories, summary)}</footer>
</body>
</html>
`;
}
