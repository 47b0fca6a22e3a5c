/**
 * The `plot` task's work: read a training output folder, draw everything in memory, then write
 * the files. Every input is read and checked before the first file is written, so bad input
 * leaves the folder as it was.
 *
 * @module
 */

import { join } from "node:path";
import { writeTextFileAtomic } from "../io/atomic.ts";
import type { History } from "../train/history.ts";
import { HistoryFileError, parseHistory, parseSummary } from "../train/history_file.ts";
import type { SummaryRow } from "../train/summary.ts";
import { PlotInputError, summarize } from "./load.ts";
import { buildReport, renderFigures } from "./report.ts";

/** A training output folder, read and checked. */
export interface RunFolder {
  /** The folder that was read. */
  outDir: string;
  /**
   * One entry per `<outDir>/<dir>/history.json`, seed variants first (plain, bn, dropout);
   * `dir` is the variant's folder name, where its figures are written.
   */
  runs: { dir: string; history: History }[];
  /** From `<outDir>/summary.json`, or computed from the histories when that file is absent. */
  summary: SummaryRow[];
  /** Whether `summary` came from `summary.json`. */
  summaryFromFile: boolean;
}

const SEED_ORDER = ["plain", "bn", "dropout"];

function rank(name: string): number {
  const i = SEED_ORDER.indexOf(name);
  return i < 0 ? SEED_ORDER.length : i;
}

/** `parse()`, with a malformed file reported as the plot task's bad input (same message). */
function checked<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof HistoryFileError) {
      throw new PlotInputError(error.message, { cause: error });
    }
    throw error;
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new PlotInputError(`Cannot read "${path}": ${(error as Error).message}`);
  }
}

/**
 * Reads `<outDir>/*\/history.json` and `<outDir>/summary.json`. Throws a {@link PlotInputError} naming the
 * file and the problem when the folder is missing, holds no history, or a file is malformed.
 *
 * @example Read a run
 * ```ts ignore
 * const run = await readRunFolder("out");
 * console.log(run.runs.map((r) => r.history.variant));
 * ```
 */
export async function readRunFolder(outDir: string): Promise<RunFolder> {
  const dirs: string[] = [];
  try {
    for await (const entry of Deno.readDir(outDir)) if (entry.isDirectory) dirs.push(entry.name);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "folder does not exist"
      : (error as Error).message;
    throw new PlotInputError(`Cannot read "${outDir}": ${why}`);
  }
  const runs: { dir: string; history: History }[] = [];
  for (const dir of dirs.sort()) {
    const file = join(outDir, dir, "history.json");
    const text = await readText(file);
    if (text !== undefined) runs.push({ dir, history: checked(() => parseHistory(text, file)) });
  }
  if (runs.length === 0) {
    throw new PlotInputError(
      `Cannot read "${outDir}": no */history.json in it (run the train task first)`,
    );
  }
  const seen = new Map<string, string>();
  for (const { dir, history } of runs) {
    const other = seen.get(history.variant);
    if (other !== undefined) {
      throw new PlotInputError(
        `Cannot read "${
          join(outDir, dir, "history.json")
        }": variant "${history.variant}" is also ` +
          `in "${join(outDir, other, "history.json")}"`,
      );
    }
    seen.set(history.variant, dir);
  }
  runs.sort((a, b) =>
    rank(a.history.variant) - rank(b.history.variant) || (a.dir < b.dir ? -1 : 1)
  );
  const summaryFile = join(outDir, "summary.json");
  const summaryText = await readText(summaryFile);
  const histories = runs.map((r) => r.history);
  return {
    outDir,
    runs,
    summary: summaryText === undefined
      ? summarize(histories)
      : checked(() => parseSummary(summaryText, summaryFile)),
    summaryFromFile: summaryText !== undefined,
  };
}

/**
 * Draws every figure and the report of `run`, then writes them atomically under `run.outDir`:
 * `<dir>/loss.svg`, `<dir>/confusion.svg` (when the history has a confusion matrix),
 * `compare_val_loss.svg`, `compare_train_loss.svg`, `val_accuracy.svg` and `report.html`.
 * Returns the paths written, in order.
 */
export async function writePlots(run: RunFolder, options: { date?: Date } = {}): Promise<string[]> {
  const histories = run.runs.map((r) => r.history);
  const figures = renderFigures(histories);
  const files: [string, string][] = [
    ["compare_val_loss.svg", figures.compareValLoss],
    ["compare_train_loss.svg", figures.compareTrainLoss],
    ["val_accuracy.svg", figures.valAccuracy],
  ];
  figures.variants.forEach((v, i) => {
    files.push([join(run.runs[i].dir, "loss.svg"), v.loss]);
    if (v.confusion !== undefined) {
      files.push([join(run.runs[i].dir, "confusion.svg"), v.confusion]);
    }
  });
  files.push(["report.html", buildReport(histories, run.summary, { date: options.date, figures })]);
  const written: string[] = [];
  for (const [name, text] of files) {
    const path = join(run.outDir, name);
    try {
      await writeTextFileAtomic(path, text);
    } catch (error) {
      throw new PlotInputError(`Cannot write "${path}": ${(error as Error).message}`);
    }
    written.push(path);
  }
  return written;
}
