/**
 * The summary table printed after training.
 *
 * @module
 */

import type { SummaryRow } from "../plot/load.ts";

const num = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "-");

/** Formats summary rows as an aligned text table. */
export function formatSummary(rows: readonly SummaryRow[]): string {
  const head = [
    "variant",
    "epochs",
    "final train loss",
    "best val loss",
    "at epoch",
    "best val acc",
    "s/epoch",
  ];
  const body = rows.map((r) => [
    r.variant,
    String(r.epochs),
    num(r.finalTrainLoss, 4),
    num(r.bestValLoss, 4),
    String(r.bestValEpoch),
    `${num(100 * r.bestValAccuracy, 2)}%`,
    num(r.secondsPerEpoch, 2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  const adapter = rows[0]?.adapter ? `\nadapter: ${rows[0].adapter}` : "";
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n") +
    adapter;
}
