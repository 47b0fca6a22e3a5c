/**
 * The bounds of the 20-step PyTorch parity, shared by tests/parity_test.ts (on Deno) and
 * tests/browser_test.ts (the same run in the browser): ours may be K times PyTorch's own
 * float32-vs-float64 drift away from PyTorch's float64 run, and never need be closer than
 * float32 rounding (FLOOR).
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

/**
 * Multiple of PyTorch's own drift allowed. Measured on lavapipe against PyTorch 1.13 with
 * OpenBLAS's SkylakeX, Haswell, Sandybridge and Prescott kernels (OPENBLAS_CORETYPE): at most
 * 3.9× on plain and dropout (a 128×128 weight), 4.9× on bn (the loss at step 4, where its drift
 * grows 30-fold per step). 10 leaves a 2× margin and still fails a 10% error in lr at step 2 on
 * every model.
 */
export const K = 10;

/**
 * Below these a difference is float32 rounding, however small PyTorch's drift happened to be:
 * 4 ulps of a loss near 2.3; 40 ulps of a logit near 3 (a logit sums 3072 products); for
 * weights, 1/1000 of one Adam step (lr 1e-3).
 */
export const FLOOR = { loss: 1e-6, logits: 1e-5, weight: 1e-6 };

/**
 * Where PyTorch's float32 run stays within a few ulps of its float64 run on every step. On bn only
 * the first step does (a forward pass from the shared weights). After that, BatchNorm after
 * LeakyReLU makes training ill-conditioned: a Linear bias whose units stay positive over the
 * whole batch has an exactly-zero gradient in exact arithmetic, and Adam turns its rounding noise
 * into lr-sized steps.
 */
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
