/**
 * Starting or resuming a run in its folder, before the first epoch: the lock, the manifest, the
 * refusal to overwrite a run by accident, and the checks a resume must pass.
 *
 * @module
 */

import { CIFAR_SHAPE } from "../data/dataset.ts";
import type { Loader } from "../data/loader.ts";
import type { Sequential } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { VERSION } from "../version.ts";
import { type Checkpoint, readCheckpoint } from "./checkpoint.ts";
import {
  checkRunFolder,
  clearRun,
  readManifest,
  RUN_FILES,
  runFilesIn,
  type RunManifest,
  type RunSettings,
  settingsDiff,
} from "./run_dir.ts";

/**
 * The settings {@link fit} derives from what it trains: the architecture, the optimizer and its
 * starting learning rate, the loaders' batch sizes, sizes, order and augmentation and, for
 * samples other than CIFAR-10's uint8 [3, 32, 32] with class labels, what their datasets hold
 * (`trainData`, `valData`: dtype, shape and labels, e.g. "uint8 [1, 28, 28], 10 classes"), so
 * that a resume on data of another shape is refused. CIFAR-shaped runs record no such key, as
 * before, so their older manifests resume unchanged.
 */
export function derivedSettings(
  model: Sequential,
  optimizer: Optimizer,
  train: Loader,
  val: Loader | undefined,
  validationFreq: number,
): RunSettings {
  const t = train.options;
  const settings: RunSettings = {
    architecture: model.describe(),
    optimizerClass: optimizer.name,
    optimizerLr: optimizer.lr,
    batchSize: t.batchSize,
    trainSamples: train.length,
    trainShuffle: t.shuffle,
    trainSeed: t.seed,
    trainDropLast: t.dropLast,
    trainAugment: JSON.stringify(t.augment),
    trainNormalize: JSON.stringify(t.normalize ?? null),
    validationFreq,
  };
  if (val) {
    settings.valBatchSize = val.options.batchSize;
    settings.valSamples = val.length;
  }
  const trainData = dataSetting(train);
  if (trainData !== null) settings.trainData = trainData;
  const valData = val ? dataSetting(val) : null;
  if (valData !== null) settings.valData = valData;
  return settings;
}

/**
 * What a loader's dataset holds, in words; null for CIFAR-10's uint8 [3, 32, 32] with class
 * labels (whatever their number: runs recorded before shapes existed hold no such key).
 */
function dataSetting(loader: Loader): string | null {
  const { dtype, shape, targetWidth } = loader.dataset;
  const cifar = dtype === "uint8" && targetWidth === 0 && shape.join() === CIFAR_SHAPE.join();
  return cifar ? null : loader.dataset.describe();
}

/**
 * Thrown when a folder holds a run and neither resume nor overwrite was asked for: continue the
 * run with `resume`, or replace it with `overwrite` (the scripts' `--resume`, `--overwrite`).
 */
export class RunExistsError extends RangeError {
  /** The error's name, as printed. */
  override name = "RunExistsError";
  /** `dir` holds `files`. */
  constructor(readonly dir: string, readonly files: string[]) {
    super(`Cannot train in "${dir}": it holds a run (${files.join(", ")})`);
  }
}

/** What a run folder holds for the run about to start. */
export interface RunStart {
  /** The manifest to write with the first checkpoint (for a resume, the one on disk). */
  manifest: RunManifest;
  /** The checkpoint to continue from (checked, not loaded), or null for a fresh start. */
  checkpoint: Checkpoint | null;
  /** Whether the manifest is on disk already. */
  manifestWritten: boolean;
}

/**
 * Checks `dir` for a run of `model` and `optimizer` with `settings` and says how to start it:
 * - `resume`: reads and checks the checkpoint (digests, values, architecture, optimizer) and the
 *   manifest, which must name the same run and the same settings; throws a RangeError naming
 *   every changed setting.
 * - otherwise: a folder that holds a run is refused ({@link RunExistsError}) unless `overwrite`,
 *   which removes the run's files.
 * Nothing is loaded and, without `overwrite`, nothing is written.
 */
export async function startRun(
  dir: string,
  model: Sequential,
  optimizer: Optimizer,
  settings: RunSettings,
  o: { resume?: boolean; overwrite?: boolean; adapter: string },
): Promise<RunStart> {
  await checkRunFolder(dir);
  if (o.resume) {
    const checkpoint = await readCheckpoint(dir, model, optimizer.name);
    const manifest = await checkManifest(dir, settings, checkpoint.runId);
    return { manifest, checkpoint, manifestWritten: true };
  }
  const files = await runFilesIn(dir);
  if (files.length > 0) {
    if (!o.overwrite) throw new RunExistsError(dir, files);
    await clearRun(dir);
  }
  const manifest: RunManifest = {
    format: "wgnn-run/1",
    runId: crypto.randomUUID(),
    toolkit: VERSION,
    created: new Date().toISOString(),
    adapter: o.adapter,
    settings,
  };
  return { manifest, checkpoint: null, manifestWritten: false };
}

/**
 * Checks `<dir>/run.json` against a resume: it exists, belongs to run `runId` (when given) and
 * its settings equal `settings` on every key of `settings`' (all keys when `all`). Returns it.
 */
export async function checkManifest(
  dir: string,
  settings: RunSettings,
  runId?: string,
  { all = true }: { all?: boolean } = {},
): Promise<RunManifest> {
  const path = `${dir}/${RUN_FILES.manifest}`;
  const manifest = await readManifest(dir);
  if (!manifest) throw new RangeError(`Cannot resume from "${dir}": "${path}" does not exist`);
  if (runId !== undefined && manifest.runId !== runId) {
    throw new RangeError(
      `Cannot resume from "${dir}": "${path}" is run ${manifest.runId} but ${RUN_FILES.resume} belongs to run ${runId}`,
    );
  }
  const saved = all ? manifest.settings : Object.fromEntries(
    Object.keys(settings).map((k) => [k, manifest.settings[k]]),
  ) as RunSettings;
  const diff = settingsDiff(saved, settings);
  if (diff.length > 0) {
    throw new RangeError(
      `Cannot resume from "${dir}" with other settings: ${
        diff.join("; ")
      } (from "${path}"); resume with the run's settings, or start afresh`,
    );
  }
  return manifest;
}
