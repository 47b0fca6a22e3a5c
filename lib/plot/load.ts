/**
 * Reading what the training script wrote: `history.json` per variant and `summary.json`, checked
 * field by field so that a bad file fails with its name and the offending value, before any
 * figure is drawn or any file is overwritten.
 *
 * JSON has no NaN: `JSON.stringify(NaN)` writes `null`. A `null` loss or accuracy is therefore
 * read back as "not measured" (the field is dropped), and the plots skip it.
 *
 * @module
 */

import type { EpochRecord, History } from "../train/history.ts";

/**
 * One row of `out/summary.json`: a variant's run in figures. `NaN` where not measured.
 *
 * @example The best validation accuracy of a run
 * ```ts
 * import type { SummaryRow } from "@wgnn/wgnn";
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
  /** Highest validation accuracy seen, in [0, 1]. */
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
 * import { settingsConflicts, type SummaryRow } from "./load.ts";
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

/** Bad input to the plots: a missing folder or a malformed file. Scripts exit with code 2. */
export class PlotInputError extends TypeError {
  /** The error's name, as printed. */
  override name = "PlotInputError";
}

function describe(value: unknown): string {
  return value === undefined ? "missing" : JSON.stringify(value) ?? String(value);
}

function fail(file: string, problem: string): never {
  throw new PlotInputError(`Cannot read "${file}": ${problem}`);
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
 * import { parseHistory } from "./load.ts";
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

/** Computes the summary rows from histories, for when `summary.json` is absent. */
export function summarize(histories: History[]): SummaryRow[] {
  return histories.map((h) => {
    let bestValLoss = NaN, bestValEpoch = NaN, bestValAccuracy = NaN, seconds = 0, timed = 0;
    for (const e of h.epochs) {
      if (Number.isFinite(e.valLoss) && !(e.valLoss! >= bestValLoss)) {
        bestValLoss = e.valLoss!;
        bestValEpoch = e.epoch;
      }
      if (Number.isFinite(e.valAccuracy) && !(e.valAccuracy! <= bestValAccuracy)) {
        bestValAccuracy = e.valAccuracy!;
      }
      if (Number.isFinite(e.seconds)) {
        seconds += e.seconds;
        timed++;
      }
    }
    return {
      variant: h.variant,
      finalTrainLoss: h.epochs.at(-1)?.trainLoss ?? NaN,
      bestValLoss,
      bestValEpoch,
      bestValAccuracy,
      secondsPerEpoch: timed > 0 ? seconds / timed : NaN,
      adapter: h.adapter,
      epochs: h.epochs.length,
    };
  });
}
