/**
 * Reading what training wrote: `history.json` per variant and `summary.json`, checked field by
 * field so that a bad file fails with its name and the offending value (a
 * {@link HistoryFileError}), before anything is drawn from it or written over it.
 *
 * JSON has no NaN: `JSON.stringify(NaN)` writes `null`. A `null` loss or accuracy is therefore
 * read back as "not measured" (the field is dropped), and the plots skip it.
 *
 * @module
 */

import { join } from "node:path";
import type { EpochRecord, History } from "./history.ts";
import { RUN_FILES } from "./run_dir.ts";
import { type SummaryRow, summaryRow } from "./summary.ts";

/** A malformed `history.json` or `summary.json`; the message names the file and the field. */
export class HistoryFileError extends TypeError {
  /** The error's name, as printed. */
  override name = "HistoryFileError";
}

function describe(value: unknown): string {
  return value === undefined ? "missing" : JSON.stringify(value) ?? String(value);
}

function fail(file: string, problem: string): never {
  throw new HistoryFileError(`Cannot read "${file}": ${problem}`);
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    fail(file, `not valid JSON (${(error as Error).message})`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A number, or `null`/absent meaning "not measured" (→ undefined). */
function optionalNumber(value: unknown, file: string, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number") {
    fail(file, `${field} must be a number: current value is ${describe(value)}`);
  }
  return value;
}

function requiredString(value: unknown, file: string, field: string): string {
  if (typeof value !== "string") {
    fail(file, `${field} must be a string: current value is ${describe(value)}`);
  }
  return value;
}

/**
 * Parses and checks a `history.json` text. `file` names it in errors.
 *
 * @example A history, and a malformed one
 * ```ts
 * import { parseHistory } from "./history_file.ts";
 * import { equal, throws } from "node:assert/strict";
 *
 * const text = JSON.stringify({
 *   variant: "bn",
 *   adapter: "example",
 *   classes: ["cat", "dog"],
 *   epochs: [{ epoch: 1, trainLoss: 1.8, valLoss: null, seconds: 10 }], // null: not measured
 * });
 * const history = parseHistory(text, "out/bn/history.json");
 * equal(history.epochs[0].valLoss, undefined);
 * throws(() => parseHistory("{}", "out/bn/history.json"), /Cannot read "out\/bn\/history.json"/);
 * ```
 */
export function parseHistory(text: string, file: string): History {
  const raw = parseJson(text, file);
  if (!isRecord(raw)) fail(file, `expected an object: current value is ${describe(raw)}`);
  const variant = requiredString(raw.variant, file, "variant");
  if (variant === "") fail(file, `variant must not be empty`);
  const adapter = requiredString(raw.adapter ?? "", file, "adapter");
  if (!Array.isArray(raw.epochs)) {
    fail(file, `epochs must be an array: current value is ${describe(raw.epochs)}`);
  }
  const epochs: EpochRecord[] = raw.epochs.map((entry, i) =>
    parseEpoch(entry, file, `epochs[${i}]`)
  );
  if (!Array.isArray(raw.classes) || raw.classes.some((c) => typeof c !== "string")) {
    fail(file, `classes must be an array of strings: current value is ${describe(raw.classes)}`);
  }
  const classes = raw.classes as string[];
  const history: History = { variant, adapter, epochs, classes };
  if (raw.confusion !== undefined && raw.confusion !== null) {
    history.confusion = parseConfusion(raw.confusion, classes.length, file);
  }
  if (raw.stopped === "early-stopping" || raw.stopped === "aborted") history.stopped = raw.stopped;
  if (raw.loss !== undefined) history.loss = requiredString(raw.loss, file, "loss");
  if (typeof raw.runId === "string") history.runId = raw.runId;
  if (raw.settings !== undefined) history.settings = parseSettings(raw.settings, file, "settings");
  return history;
}

function parseEpoch(entry: unknown, file: string, at: string): EpochRecord {
  if (!isRecord(entry)) fail(file, `${at} must be an object: current value is ${describe(entry)}`);
  const epoch = entry.epoch;
  if (typeof epoch !== "number" || !Number.isInteger(epoch) || epoch < 1) {
    fail(file, `${at}.epoch must be an integer >= 1: current value is ${describe(epoch)}`);
  }
  const record: EpochRecord = {
    epoch,
    trainLoss: optionalNumber(entry.trainLoss, file, `${at}.trainLoss`) ?? NaN,
    seconds: optionalNumber(entry.seconds, file, `${at}.seconds`) ?? NaN,
  };
  const valLoss = optionalNumber(entry.valLoss, file, `${at}.valLoss`);
  if (valLoss !== undefined) record.valLoss = valLoss;
  const valAccuracy = optionalNumber(entry.valAccuracy, file, `${at}.valAccuracy`);
  if (valAccuracy !== undefined) {
    if (valAccuracy < 0 || valAccuracy > 1) {
      fail(file, `${at}.valAccuracy must be in [0, 1]: current value is ${valAccuracy}`);
    }
    record.valAccuracy = valAccuracy;
  }
  return record;
}

function parseConfusion(value: unknown, n: number, file: string): number[][] {
  const ok = Array.isArray(value) && value.length === n &&
    value.every((row) =>
      Array.isArray(row) && row.length === n &&
      row.every((c) => typeof c === "number" && Number.isInteger(c) && c >= 0)
    );
  if (!ok) {
    fail(
      file,
      `confusion must be a ${n}×${n} array of counts >= 0: current value is ${
        describe(value).slice(0, 80)
      }`,
    );
  }
  return value as number[][];
}

/** Parses and checks a `summary.json` text (an array of {@link SummaryRow}). */
export function parseSummary(text: string, file: string): SummaryRow[] {
  const raw = parseJson(text, file);
  if (!Array.isArray(raw)) {
    fail(file, `expected an array of rows: current value is ${describe(raw).slice(0, 80)}`);
  }
  return raw.map((row, i) => {
    if (!isRecord(row)) fail(file, `[${i}] must be an object: current value is ${describe(row)}`);
    const number = (key: string) => optionalNumber(row[key], file, `[${i}].${key}`) ?? NaN;
    return {
      variant: requiredString(row.variant, file, `[${i}].variant`),
      finalTrainLoss: number("finalTrainLoss"),
      bestValLoss: number("bestValLoss"),
      bestValEpoch: number("bestValEpoch"),
      bestValAccuracy: number("bestValAccuracy"),
      secondsPerEpoch: number("secondsPerEpoch"),
      adapter: requiredString(row.adapter ?? "", file, `[${i}].adapter`),
      epochs: number("epochs"),
      ...optionalRunFields(row, file, `[${i}]`),
    };
  });
}

const STATUSES = ["completed", "early-stopping", "aborted", "failed"] as const;

/** A summary row's optional status, error and settings, checked. */
function optionalRunFields(
  row: Record<string, unknown>,
  file: string,
  at: string,
): Pick<SummaryRow, "status" | "error" | "settings"> {
  const out: Pick<SummaryRow, "status" | "error" | "settings"> = {};
  if (row.status !== undefined) {
    if (!STATUSES.includes(row.status as typeof STATUSES[number])) {
      fail(
        file,
        `${at}.status must be one of ${STATUSES.join(", ")}: current value is ${
          describe(row.status)
        }`,
      );
    }
    out.status = row.status as typeof STATUSES[number];
  }
  if (row.error !== undefined) out.error = requiredString(row.error, file, `${at}.error`);
  if (row.settings !== undefined) {
    out.settings = parseSettings(row.settings, file, `${at}.settings`);
  }
  return out;
}

function parseSettings(
  value: unknown,
  file: string,
  field: string,
): Record<string, string | number | boolean> {
  if (
    !isRecord(value) ||
    !Object.values(value).every((v) => ["string", "number", "boolean"].includes(typeof v))
  ) {
    fail(file, `${field} must be an object of strings, numbers and booleans`);
  }
  return value as Record<string, string | number | boolean>;
}

const SEED_ORDER = ["plain", "bn", "dropout"];

/**
 * The summary of every run in `outDir`: one row per `<outDir>/<dir>/history.json` (the lecture's
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
