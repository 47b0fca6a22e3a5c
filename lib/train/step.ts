/**
 * One training step, encoded: the sequence `fit` runs for every batch and the benchmark times.
 *
 * @module
 */

import type { StepEncoder } from "../gpu/encoder.ts";
import type { Loss, LossStats } from "../nn/loss_contract.ts";
import type { Sequential } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import type { Tensor } from "../tensor.ts";

/** What a training step needs besides its batch. */
export interface Trainer {
  /** The model on the GPU: forward, then backward into its parameter arena's gradients. */
  model: Sequential;
  /** Any {@link Loss}: its gradient seeds backward. */
  loss: Loss;
  /** Zeroes the gradients at the window's first batch and updates at its last. */
  optimizer: Optimizer;
}

/** Where a step is, for {@link StepHooks}: `epoch` 1-based, `batch` 0-based within it. */
export interface StepInfo {
  /** The epoch, from 1. */
  epoch: number;
  /** The batch within the epoch, from 0. */
  batch: number;
}

/**
 * GPU work of the caller's own, encoded into each training step: `beforeUpdate` between backward
 * and the optimizer update (the gradients are complete; e.g. a custom clipping or a gradient
 * probe), `afterUpdate` after it. Each is called while the step is encoded, with the step's
 * encoder: what it encodes runs on the GPU timeline in order with the step. It must not wait on
 * the GPU (no readback) and should not allocate. With encode-ahead, a step is encoded while the
 * epoch before it still runs.
 */
export interface StepHooks {
  /** Encodes work after backward, before the optimizer update. Default: none. */
  beforeUpdate?: (enc: StepEncoder, info: StepInfo) => void;
  /** Encodes work after the optimizer update. Default: none. */
  afterUpdate?: (enc: StepEncoder, info: StepInfo) => void;
}

/**
 * Where a batch sits in a window of gradient accumulation: the first batch zeroes the
 * gradients, the last one steps the optimizer. A step without accumulation is both.
 */
export interface AccumulationWindow {
  /** Zero the gradients before this batch's backward. */
  first: boolean;
  /** Step the optimizer (and call the hooks) after this batch's backward. */
  last: boolean;
}

/**
 * Encodes one step on the batch (x, y): zero the gradients, forward, the fused loss and its
 * gradient (accumulated into `stats`, or the loss's own), backward, `hooks.beforeUpdate`, the
 * optimizer update, `hooks.afterUpdate`. With gradient accumulation, `window` says whether this
 * batch opens a window (zeroes the gradients) and closes it (updates, with the hooks); backward
 * adds to the gradients in between. Waits for nothing.
 */
export function encodeTrainingStep(
  enc: StepEncoder,
  { model, loss, optimizer }: Trainer,
  x: Tensor,
  y: Tensor,
  stats?: LossStats,
  hooks?: StepHooks,
  info: StepInfo = { epoch: 0, batch: 0 },
  window: AccumulationWindow = { first: true, last: true },
): void {
  if (window.first) optimizer.zeroGrad(enc);
  loss.forward(enc, model.forward(enc, x), y, stats);
  model.backward(enc, loss.backward());
  if (!window.last) return;
  hooks?.beforeUpdate?.(enc, info);
  optimizer.step(enc);
  hooks?.afterUpdate?.(enc, info);
}
