/**
 * The bounds of tests/parity_test.ts, for the same 20-step parity run in the browser: ours may
 * be K times PyTorch's own float32-vs-float64 drift away from PyTorch's float64 run, and never
 * need be closer than float32 rounding (FLOOR). The numbers and their reasons are parity_test's;
 * they are repeated here because a test file cannot be imported without registering its tests.
 *
 * @module
 */

import type { Variant } from "./checks.ts";

/** What tests/torch/make_goldens.py writes to <variant>.json (the fields read here). */
export interface Golden {
  batchSize: number;
  steps: number;
  lr: number;
  /** PyTorch's float32 run. */
  losses: number[];
  /** PyTorch's float64 run from the same initial weights: the reference. */
  losses64: number[];
  evalLogits64: number[];
  /** |float32 − float64| of PyTorch's own runs: per step, largest per tensor, largest logit. */
  spread32: { losses: number[]; weights: Record<string, number>; evalLogits: number };
}

/** Multiple of PyTorch's own drift allowed (parity_test.ts: at most 4.9× measured on lavapipe). */
export const K = 10;

/** Below these a difference is float32 rounding (parity_test.ts). */
export const FLOOR = { loss: 1e-6, logits: 1e-5, weight: 1e-6 };

/** Where PyTorch's float32 run stays within a few ulps of its float64 run on every step. */
export const WELL_CONDITIONED: readonly Variant[] = ["plain", "dropout"];

/** Per-step loss bounds: K × PyTorch's largest drift so far, at least FLOOR.loss. */
export function lossBounds(spread: number[]): number[] {
  let drift = 0;
  return spread.map((d) => {
    drift = Math.max(drift, d);
    return Math.max(K * drift, FLOOR.loss);
  });
}

/** The bounds for one golden: losses per step, eval logits, and each tensor by name. */
export function parityBounds(golden: Golden): {
  losses: number[];
  logits: number;
  weight: (name: string) => number;
} {
  const spread = golden.spread32;
  return {
    losses: lossBounds(spread.losses),
    logits: Math.max(K * spread.evalLogits, FLOOR.logits),
    weight: (name) => Math.max(K * spread.weights[name], FLOOR.weight),
  };
}
