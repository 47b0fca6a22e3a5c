/**
 * The y axis of the loss charts: which loss it names, and whether it keeps the lecture's frame or
 * is fitted to the values drawn.
 *
 * The rule, per figure: a loss axis keeps the lecture's fixed frame (y ∈ [0.2, 2]; on the log
 * training-loss comparison, from below the lowest loss to 2) when everything the figure draws is
 * the lecture's experiment ({@link isLectureRun}), or when every finite value lies within
 * [0.2, 2]. Otherwise it is fitted to the values, so that an MSE regression's 0.02 is not clipped
 * to nothing.
 *
 * @module
 */

import type { History } from "../train/history.ts";

/** The lecture's y range for loss charts. */
export const LOSS_DOMAIN: readonly [number, number] = [0.2, 2];

/** The lecture's variants, in its order. */
export const LECTURE_VARIANTS: readonly string[] = ["plain", "bn", "dropout"];

/** How an axis names each loss class. NLL on log-probabilities is the cross-entropy too. */
const LOSS_LABELS: Record<string, string> = {
  CrossEntropyLoss: "cross-entropy loss",
  NLLLoss: "cross-entropy loss",
  MSELoss: "mean squared error",
  L1Loss: "mean absolute error",
  BCEWithLogitsLoss: "binary cross-entropy",
};

/**
 * The loss a history was trained with. A history written before `loss` was recorded names none;
 * for the lecture's variants that was the lecture's cross-entropy, for others it is unknown.
 */
export function historyLoss(history: History): string | undefined {
  if (history.loss !== undefined) return history.loss;
  return LECTURE_VARIANTS.includes(history.variant) ? "CrossEntropyLoss" : undefined;
}

/**
 * True when `histories` are the lecture's experiment: at least one, each a plain/bn/dropout
 * variant trained with cross-entropy (or written before histories named their loss).
 */
export function isLectureRun(histories: readonly History[]): boolean {
  return histories.length > 0 &&
    histories.every((h) =>
      LECTURE_VARIANTS.includes(h.variant) && historyLoss(h) === "CrossEntropyLoss"
    );
}

/**
 * What a loss axis calls the histories' loss: "cross-entropy loss", "mean squared error", ...;
 * "loss" when it is unknown, not one we name, or differs between the histories.
 */
export function lossLabel(histories: readonly History[]): string {
  const labels = new Set(histories.map((h) => LOSS_LABELS[historyLoss(h) ?? ""] ?? "loss"));
  return labels.size === 1 ? [...labels][0] : "loss";
}

/** A loss axis: its domain, and whether that is the lecture's frame. */
export interface LossAxis {
  /** The y domain (also the band values are clamped around before clipping). */
  domain: [number, number];
  /** True when this is the lecture's frame rather than one fitted to the values. */
  fixed: boolean;
}

/**
 * The linear loss axis for `values` drawn from `histories`: the lecture's [0.2, 2] under the
 * module's rule, otherwise the values' range padded by 5% (not below 0 when no value is).
 */
export function linearLossAxis(
  histories: readonly History[],
  values: readonly (number | undefined)[],
): LossAxis {
  const finite = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (keepsLectureFrame(histories, finite)) return { domain: [...LOSS_DOMAIN], fixed: true };
  const lo = Math.min(...finite), hi = Math.max(...finite);
  // A flat series still needs a span: a tenth of its value, or 0.001 around zero.
  const pad = hi > lo ? 0.05 * (hi - lo) : Math.max(0.1 * Math.abs(hi), 1e-3);
  const bottom = lo >= 0 ? Math.max(0, lo - pad) : lo - pad;
  return { domain: [bottom, hi + pad], fixed: false };
}

/**
 * The log loss axis for `values` drawn from `histories`. The lecture's frame runs from below the
 * lowest loss (at most 0.2, at least 0.001) to 2, since BatchNorm's training loss falls far below
 * 0.2; a fitted one runs from the 1-2-5 step at or below the lowest positive value to the one at
 * or above the highest.
 */
export function logLossAxis(
  histories: readonly History[],
  values: readonly (number | undefined)[],
): LossAxis {
  const finite = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  const positive = finite.filter((v) => v > 0);
  // With no positive value a log axis has nothing to fit (and nothing it could draw).
  if (keepsLectureFrame(histories, finite) || positive.length === 0) {
    const min = Math.min(LOSS_DOMAIN[0], ...positive);
    return { domain: [Math.max(1e-3, niceFloor(min)), LOSS_DOMAIN[1]], fixed: true };
  }
  const lo = niceFloor(Math.min(...positive));
  const hi = niceCeil(Math.max(...positive));
  return { domain: [lo, hi > lo ? hi : niceCeil(lo * 1.01)], fixed: false };
}

/** The module's rule. A figure with no finite value keeps the frame too: there is nothing to fit. */
function keepsLectureFrame(histories: readonly History[], finite: number[]): boolean {
  return isLectureRun(histories) || finite.every((v) => v >= LOSS_DOMAIN[0] && v <= LOSS_DOMAIN[1]);
}

/** The largest 1, 2 or 5 × 10^k that is ≤ v (v > 0). */
function niceFloor(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  return [5, 2, 1].map((m) => m * p).find((c) => c <= v * (1 + 1e-12)) ?? p;
}

/** The smallest 1, 2 or 5 × 10^k that is ≥ v (v > 0). */
function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((c) => c >= v * (1 - 1e-12)) ?? 10 * p;
}
