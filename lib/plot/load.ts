/**
 * The plots' own reading helpers: the error they throw for bad input, and summary rows computed
 * from the histories when `summary.json` is absent. The files themselves are read and checked by
 * lib/train/history_file.ts.
 *
 * @module
 */

import type { History } from "../train/history.ts";
import type { SummaryRow } from "../train/summary.ts";

/** Bad input to the plots: a missing folder or a malformed file. Scripts exit with code 2. */
export class PlotInputError extends TypeError {
  /** The error's name, as printed. */
  override name = "PlotInputError";
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
