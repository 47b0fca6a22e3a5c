/**
 * The summary table printed after training.
 *
 * @module
 */

import { join } from "node:path";
import { parseHistory, settingsConflicts, type SummaryRow } from "../plot/load.ts";
import type { History } from "./history.ts";
import { RUN_FILES } from "./run_dir.ts";

const num = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "-");

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
    bestValAccuracy: Math.max(...withVal.map((e) => e.valAccuracy ?? 0), 0),
    secondsPerEpoch: h.epochs.reduce((s, e) => s + e.seconds, 0) / Math.max(1, h.epochs.length),
    adapter: h.adapter,
    epochs: h.epochs.length,
    status: h.stopped ?? "completed",
    settings: h.settings,
  };
}

const SEED_ORDER = ["plain", "bn", "dropout"];

/**
 * The summary of every run in `outDir`: one row per `<outDir>/<dir>/history.json` (the seed's
 * variants first), from that run's own history and settings, and one per variant in `failures`
 * (status "failed", with the reason; its epochs are those committed before it failed). A history
 * that cannot be read is left out.
 */
export async function folderSummary(
  outDir: string,
  failures: ReadonlyMap<string, Error> = new Map(),
): Promise<SummaryRow[]> {
  const rows = new Map<string, SummaryRow>();
  const dirs: string[] = [];
  for await (const entry of Deno.readDir(outDir)) if (entry.isDirectory) dirs.push(entry.name);
  for (const dir of dirs.sort()) {
    const file = join(outDir, dir, RUN_FILES.history);
    let history: History;
    try {
      history = parseHistory(await Deno.readTextFile(file), file);
    } catch {
      continue; // not a run folder, or a broken history: the plot task names it
    }
    rows.set(history.variant, summaryRow(history));
  }
  for (const [variant, error] of failures) {
    const row = rows.get(variant) ?? summaryRow({ variant, adapter: "", epochs: [], classes: [] });
    rows.set(variant, { ...row, status: "failed", error: error.message });
  }
  const rank = (v: string) => (SEED_ORDER.includes(v) ? SEED_ORDER.indexOf(v) : SEED_ORDER.length);
  return [...rows.values()].sort((a, b) =>
    rank(a.variant) - rank(b.variant) || (a.variant < b.variant ? -1 : 1)
  );
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
    `${num(100 * r.bestValAccuracy, 2)}%`,
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
