/**
 * Figures and the report: the loss curves, the comparison of the variants, the validation
 * accuracy and the confusion matrices as SVG text ({@link renderFigures}), and one
 * self-contained `report.html` with every figure inline and the summary table
 * ({@link buildReport}). Both are pure functions of the histories that `fit` returns and
 * `history.json` holds: no GPU, no permission; the caller writes the files.
 *
 * Pulls in `npm:@observablehq/plot` (which brings d3) and `npm:linkedom`, the server-side DOM
 * that Plot draws into. Nothing here touches the GPU.
 *
 * @example Figures and a report from one history
 * ```ts
 * import { buildReport, type History, renderFigures } from "@wgnn/wgnn/plot";
 *
 * function report(bn: History): string {
 *   const figures = renderFigures([bn]); // also the .svg files, if you write them
 *   return buildReport([bn], [], { figures });
 * }
 * ```
 *
 * @module
 */

export { buildReport, renderFigures } from "./lib/plot/report.ts";
export type { FigureSet, ReportOptions } from "./lib/plot/report.ts";
export type { EpochRecord, History } from "./lib/train/history.ts";
export type { SummaryRow } from "./lib/train/summary.ts";
export type { RunSettings } from "./lib/train/run_dir.ts";
