/**
 * The lecture's experiment: the three MLPs of "Mejorando el Aprendizaje" ({@link lectureModel}:
 * plain, with BatchNorm1d, with Dropout) trained on CIFAR-10 with the lecture's settings, each
 * into its own run folder, with a summary row per variant. {@link planExperiment} checks
 * everything that can be checked before the first epoch (data, folders, resumes);
 * {@link runExperiment} trains, side by side on hardware GPUs. `deno task train` is a thin
 * command line over these. Beyond the lecture, `"cnn"` ({@link cnnModel}, {@link CNN_RECIPE}) is
 * a compact convolutional network trained with its own recipe (SGD with Nesterov momentum, a
 * one-cycle schedule, label smoothing, flips and crops).
 *
 * It re-exports the core entry (`@wgnn/wgnn`), whose layers, optimizers, loader and `fit` it is
 * built from, so one import serves a script of the lecture. Beyond the core it pulls in only
 * the reading of CIFAR-10 from disk (`node:path`; no archive library: download the data first,
 * with `@wgnn/wgnn/data` or `deno task download`), and no plotting: draw the histories with
 * `@wgnn/wgnn/plot`.
 *
 * @example The BatchNorm variant, two epochs
 * ```ts
 * import { type Gpu, runExperiment } from "@wgnn/wgnn/experiment";
 *
 * async function quickBn(gpu: Gpu): Promise<void> {
 *   const rows = await runExperiment(gpu, {
 *     variants: ["bn"],
 *     epochs: 2,
 *     batchSize: 1024,
 *     lr: 1e-3,
 *     optimizer: "adam",
 *     seed: 0,
 *     validationFreq: 1,
 *     dataDir: "data",
 *     outDir: "out",
 *   });
 *   console.log(rows[0].bestValAccuracy);
 * }
 * ```
 *
 * @module
 */

export * from "./mod.ts";
export {
  buildModel,
  cnnOptimizer,
  lectureModel,
  MODELS,
  OPTIMIZERS,
  planExperiment,
  runExperiment,
  seedModel,
  VARIANTS,
} from "./lib/train/experiment.ts";
export type {
  ExperimentOptions,
  ExperimentPlan,
  ModelName,
  OptimizerChoice,
  PlannedRun,
  Variant,
} from "./lib/train/experiment.ts";
export { CNN_RECIPE, CNN_WIDTHS, cnnModel } from "./lib/nn/cnn.ts";
export type { Cifar10 } from "./lib/data/cifar10.ts";
export type { SummaryRow } from "./lib/train/summary.ts";
