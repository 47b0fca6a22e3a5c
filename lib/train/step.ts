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
  model: Sequential;
  /** Any {@link Loss}: its gradient seeds backward. */
  loss: Loss;
  optimizer: Optimizer;
}

/**
 * Encodes one step on the batch (x, y): zero the gradients, forward, the fused loss and its
 * gradient (accumulated into `stats`, or the loss's own), backward, the optimizer update. Waits
 * for nothing.
 */
export function encodeTrainingStep(
  enc: StepEncoder,
  { model, loss, optimizer }: Trainer,
  x: Tensor,
  y: Tensor,
  stats?: LossStats,
): void {
  optimizer.zeroGrad(enc);
  loss.forward(enc, model.forward(enc, x), y, stats);
  model.backward(enc, loss.backward());
  optimizer.step(enc);
}
