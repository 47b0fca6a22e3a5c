/**
 * The record of a training run, as written to `history.json` and read by the plots.
 *
 * @module
 */

import type { RunSettings } from "./run_dir.ts";

/** One epoch of a run. Validation fields are present only on validation epochs. */
export interface EpochRecord {
  /** 1-based epoch number. */
  epoch: number;
  /** Mean of the epoch's training batch losses (train mode). */
  trainLoss: number;
  /** Mean validation batch loss (eval mode), when validated this epoch. */
  valLoss?: number;
  /** Validation accuracy in [0, 1], when validated this epoch. */
  valAccuracy?: number;
  /** Wall-clock seconds the epoch took (training and validation). */
  seconds: number;
}

/** A whole run of one model variant. */
export interface History {
  /** Variant name: "plain", "bn" or "dropout" for the lecture's models. */
  variant: string;
  /** The adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  adapter: string;
  /** One record per epoch, in order. */
  epochs: EpochRecord[];
  /** Class names, index = label. */
  classes: string[];
  /**
   * The loss the run was trained with, by its class name: "CrossEntropyLoss", "MSELoss", ...
   * Absent in histories written before it was recorded.
   */
  loss?: string;
  /** Final validation confusion matrix: confusion[true][predicted] = count. */
  confusion?: number[][];
  /** Why the run ended before its last epoch, if it did. */
  stopped?: "early-stopping" | "aborted";
  /** The run's id, as in its manifest (`run.json`) and checkpoints. */
  runId?: string;
  /** The settings the run was trained with, as in its manifest. */
  settings?: RunSettings;
}

/** The history as CSV: one row per epoch, empty cells where a value was not measured. */
export function historyCsv(history: History): string {
  const rows = ["epoch,train_loss,val_loss,val_accuracy,seconds"];
  for (const e of history.epochs) {
    const cell = (
      v: number | undefined,
    ) => (v === undefined || !Number.isFinite(v) ? "" : String(v));
    rows.push(
      [e.epoch, cell(e.trainLoss), cell(e.valLoss), cell(e.valAccuracy), cell(e.seconds)].join(","),
    );
  }
  return rows.join("\n") + "\n";
}
