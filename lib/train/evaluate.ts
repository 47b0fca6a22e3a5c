/**
 * A trained model measured outside `fit`: {@link evaluate} runs the validation pass `fit` runs
 * (the same {@link ValidationPass}) over any batch source, in eval mode, and restores the mode
 * the model was in. It submits once and waits once. (`predict.ts` runs a model on host arrays.)
 *
 * @module
 */

import { StepEncoder } from "../gpu/encoder.ts";
import { CrossEntropyLoss } from "../nn/loss.ts";
import type { Loss } from "../nn/loss_contract.ts";
import type { Sequential } from "../nn/sequential.ts";
import { type BatchSource, ValidationPass } from "./schedule.ts";

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** The loss to measure. Default: a fresh {@link CrossEntropyLoss}, freed afterwards. */
  loss?: Loss;
  /**
   * The source's epoch whose batches are measured (a Loader without shuffle or augmentation
   * gives the same batches in every epoch). Default: 0.
   */
  epoch?: number;
}

/** What {@link evaluate} measured. */
export interface Evaluation {
  /** Mean of the batch losses, as `fit`'s `valLoss` (NaN when a batch diverged). */
  loss: number;
  /**
   * Fraction of rows whose first argmax is their label; null for a loss that does not classify
   * (`loss.classifies` false), NaN when it counted no row.
   */
  accuracy: number | null;
  /** counts[true label][predicted label]; null for a loss that does not classify. */
  confusion: number[][] | null;
  /** Rows measured (NLLLoss leaves out rows whose label is its ignoreIndex). */
  samples: number;
  /** Batches measured. */
  batches: number;
}

/**
 * Measures `model` on every batch of `source` (a `Loader` or any {@link BatchSource}) as `fit`
 * validates: eval mode, forward only, the loss's statistics and, for a loss that classifies, the
 * confusion matrix, all on the GPU and read back in one round trip. The model's train/eval mode
 * is restored afterwards. A label outside the logits' classes throws a `LabelRangeError`.
 *
 * @example Test accuracy of a trained model
 * ```ts
 * import type { Loader, Sequential } from "@wgnn/wgnn";
 * import { evaluate } from "./evaluate.ts";
 *
 * async function report(model: Sequential, test: Loader): Promise<string> {
 *   const { loss, accuracy, confusion } = await evaluate(model, test);
 *   const cats = confusion![3]; // row 3: the images labelled "cat", by predicted class
 *   return `loss ${loss.toFixed(3)}, accuracy ${(100 * accuracy!).toFixed(1)}%, cats ${cats}`;
 * }
 * ```
 */
export async function evaluate(
  model: Sequential,
  source: BatchSource,
  options: EvaluateOptions = {},
): Promise<Evaluation> {
  const epoch = options.epoch ?? 0;
  if (!Number.isInteger(epoch) || epoch < 0) {
    throw new RangeError(
      `Cannot evaluate: epoch must be a non-negative integer: current value is ${epoch}`,
    );
  }
  if (!(source.batchesPerEpoch > 0)) {
    throw new RangeError(
      `Cannot evaluate: the source must have batches: current batchesPerEpoch is ${source.batchesPerEpoch}`,
    );
  }
  const gpu = model.parameters().values.gpu;
  const own = options.loss === undefined ? new CrossEntropyLoss() : null;
  const loss = options.loss ?? own!;
  const pass = new ValidationPass(gpu, "evaluate stats");
  const wasTraining = model.training;
  try {
    model.eval();
    source.startEpoch(epoch);
    const enc = new StepEncoder(gpu, "evaluate");
    pass.encode(enc, model, loss, source);
    enc.submit();
    model.train(wasTraining); // the mode matters only while encoding
    const { summary, confusion } = await pass.read();
    return {
      loss: summary.meanLoss,
      accuracy: loss.classifies ? summary.accuracy : null,
      confusion,
      samples: summary.samples,
      batches: summary.batches,
    };
  } finally {
    model.train(wasTraining);
    pass.dispose();
    own?.dispose();
  }
}
