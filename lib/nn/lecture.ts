/**
 * The lecture's three MLPs, as a module of their own so that every entry point (the browser
 * build too) can build them: `lib/train/experiment.ts` trains them.
 *
 * @module
 */

import { BatchNorm1d } from "./batchnorm.ts";
import { Dropout } from "./dropout.ts";
import { Flatten, LeakyReLU, Linear } from "./layers.ts";
import { Sequential } from "./sequential.ts";

/** The lecture's model variants. */
export const VARIANTS = ["plain", "bn", "dropout"] as const;
/** One of {@link VARIANTS}. */
export type Variant = typeof VARIANTS[number];

/**
 * Builds one of the lecture's MLPs (3072 → 128 → 128 → 10 with LeakyReLU), optionally with
 * BatchNorm1d or Dropout(0.5) after each hidden activation. Call `manualSeed` first.
 *
 * @example The BatchNorm variant's layers
 * ```ts
 * import { lectureModel } from "./lecture.ts";
 *
 * const model = lectureModel("bn");
 * console.assert(model.describe().includes("BatchNorm1d(128)"));
 * ```
 */
export function lectureModel(variant: Variant): Sequential {
  const extra =
    () => (variant === "bn"
      ? [new BatchNorm1d(128)]
      : variant === "dropout"
      ? [new Dropout(0.5)]
      : []);
  return new Sequential(
    new Flatten(),
    new Linear(3072, 128),
    new LeakyReLU(),
    ...extra(),
    new Linear(128, 128),
    new LeakyReLU(),
    ...extra(),
    new Linear(128, 10),
  );
}
