/**
 * A run in figures: the row type of `summary.json`, computed from a history, and the summary
 * table printed after training.
 *
 * @module
 */

import type { History } from "./history.ts";

/**
 * One row of `out/summary.json`: a variant's run in figures. `NaN` where not measured.
 *
 * @example The best validation accuracy of a run
 * ```ts
 * import type { SummaryRow } from "@wgnn/wgnn/plot";
 * import { equal } from "node:assert/strict";
 *
 * const best = (rows: SummaryRow[]) =>
 *   rows.reduce((a, b) => (b.bestValAccuracy > a.bestValAccuracy ? b : a)).variant;
 * const row = (variant: string, bestValAccuracy: number): SummaryRow => ({
 *   variant,
 *   finalTrainLoss: 1,
 *   bestValLoss: 1,
 *   bestValEpoch: 1,
 *   bestValAccuracy,
 *   secondsPerEpoch: 10,
 *   adapter: "example",
 *   epochs: 1,
 * });
 * equal(best([row("plain", 0.49), row("bn", 0.53), row("dropout", 0.51)]), "bn");
 * ```
 */
export interface SummaryRow {
  /** Variant name, as in its history. */
  variant: string;
  /** Training loss of the last epoch. */
  finalTrainLoss: number;
  /** Lowest validation loss seen. */
  bestValLoss: number;
  /** 1-based epoch of the lowest validation loss. */
  bestValEpoch: number;
  /** Highest validation accuracy seen, in [0, 1]; NaN when none was measured. */
  bestValAccuracy: number;
  /** Mean wall-clock seconds per epoch. */
  secondsPerEpoch: number;
  /** The adapter's description. */
  adapter: string;
  /** Number of epochs run. */
  epochs: number;
  /**
   * How the run ended: "completed", "early-stopping", "aborted", or "failed" (see `error`).
   * Absent in summaries written before it existed.
   */
  status?: "completed" | "early-stopping" | "aborted" | "failed";
  /** Why the run failed, when it did. */
  error?: string;
  /** The settings the run was trained with (from its manifest), when known. */
  settings?: Record<string, string | number | boolean>;
}

/** Settings that naturally differ between the variants of one experiment. */
const PER_VARIANT = new Set(["model", "architecture"]);

/**
 * The settings on which `rows` disagree (besides the model itself), each with its values and
 * the variants that used them, as in `lr: 0.001 (plain, bn), 0.01 (dropout)`. Empty when the
 * runs agree (or record no settings).
 *
 * @example
 * ```ts
 * import { settingsConflicts, type SummaryRow } from "./summary.ts";
 * const row = (variant: string, lr: number) =>
 *   ({ variant, settings: { model: variant, lr } }) as unknown as SummaryRow;
 * console.assert(
 *   settingsConflicts([row("plain", 0.001), row("bn", 0.01)])[0] === "lr: 0.001 (plain), 0.01 (bn)",
 * );
 * ```
 */
export function settingsConflicts(rows: readonly SummaryRow[]): string[] {
  const withSettings = rows.filter((r) => r.settings !== undefined);
  const keys = new Set(withSettings.flatMap((r) => Object.keys(r.settings!)));
  const out: string[] = [];
  for (const key of [...keys].filter((k) => !PER_VARIANT.has(k)).sort()) {
    const byValue = new Map<string, string[]>();
    for (const r of withSettings) {
      const v = r.settings![key];
      const shown = v === undefined ? "not set" : String(v);
      byValue.set(shown, [...(byValue.get(shown) ?? []), r.variant]);
    }
    if (byValue.size > 1) {
      out.push(
        `${key}: ${
          [...byValue].map(([v, variants]) => `${v} (${variants.join(", ")})`).join(", ")
        }`,
      );
    }
  }
  return out;
}

const num = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "-");

/**
 * The highest accuracy of `validated` (the epochs with a finite validation loss), or NaN when
 * none was measured (a regression's run, or no validation).
 */
function bestAccuracy(validated: History["epochs"]): number {
  const measured = validated.flatMap((e) =>
    e.valAccuracy !== undefined && Number.isFinite(e.valAccuracy) ? [e.valAccuracy] : []
  );
  return measured.length > 0 ? Math.max(...measured) : NaN;
}

/** One summary row from a history (its settings and how it ended included). */
export function summaryRow(h: History): SummaryRow {
  const withVal = h.epochs.filter((e) => e.valLoss !== undefined && Number.isFinite(e.valLoss));
  const bestVal = withVal.reduce<typeof withVal[number] | null>(
    (b, e) => (b === null || e.valLoss! < b.valLoss! ? e : b),
    null,
  );
  return {
    variant: h.variant,
    finalTrainLoss: h.epochs.at(-1)?.trainLoss ?? NaN,
    bestValLoss: bestVal?.valLoss ?? NaN,
    bestValEpoch: bestVal?.epoch ?? 0,
    bestValAccuracy: bestAccuracy(withVal),
    secondsPerEpoch: h.epochs.reduce((s, e) => s + e.seconds, 0) / Math.max(1, h.epochs.length),
    adapter: h.adapter,
    epochs: h.epochs.length,
    status: h.stopped ?? "completed",
    settings: h.settings,
  };
}

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
    r.status === "failed" ? `${r.variant} (failed)` : r.variant,
    String(r.epochs),
    num(r.finalTrainLoss, 4),
    num(r.bestValLoss, 4),
    String(r.bestValEpoch),
    Number.isFinite(r.bestValAccuracy) ? `${num(100 * r.bestValAccuracy, 2)}%` : "-",
    num(r.secondsPerEpoch, 2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  const notes = rows.flatMap((r) =>
    r.status === "failed" ? [`${r.variant} failed: ${r.error ?? "unknown error"}`] : []
  );
  const conflicts = settingsConflicts(rows);
  if (conflicts.length > 0) {
    notes.push(`warning: these runs used different settings: ${conflicts.join("; ")}`);
  }
  const adapter = rows.find((r) => r.adapter)?.adapter;
  if (adapter) notes.push(`adapter: ${adapter}`);
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line), ...notes]
    .join("\n");
}
