/**
 * Checkpoints. A run's resumable state is one file, `resume.safetensors`: the weights
 * (`model/<name>`), the optimizer state (`optim/<name>`), the run position and the history of
 * one epoch, committed by one atomic rename, so an epoch is saved whole or not at all. A crash,
 * a kill or a full disk at any point leaves the previous commit in place. Each tensor's SHA-256
 * is in the metadata and is checked, with the values' finiteness, before a resume loads anything.
 *
 * After each commit the same weights are exported as `last.safetensors` (PyTorch-loadable) and
 * the history as `history.json`/`.csv`; a resume reads none of those. `best.safetensors` is
 * written before the commit of the epoch that improved, so a commit never names a best epoch
 * whose weights are not on disk.
 *
 * The position is all the randomness needs: the loaders' shuffles and augmentation are keyed by
 * the epoch and the seed, Dropout masks by the training-step count.
 *
 * @module
 */

import { join } from "node:path";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { checkDigests, digests } from "../io/digests.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../io/safetensors_file.ts";
import type { HostTensor as FileTensor, Safetensors } from "../io/safetensors.ts";
import type { Sequential, StateDict } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { type History, historyCsv } from "./history.ts";
import { LEGACY_OPTIMIZER_FILE, RUN_FILES } from "./run_dir.ts";

/** Where a run stands, saved with each checkpoint. */
export interface RunPosition {
  /** Last completed epoch (1-based). */
  epoch: number;
  /** The model's training-forward count (keys Dropout masks). */
  trainingSteps: number;
  /** Free-form description of the architecture, checked on resume. */
  architecture: string;
}

/** A committed checkpoint, read and checked by {@link readCheckpoint}. */
export interface Checkpoint {
  /** Where the run stood. */
  position: RunPosition;
  /** The run's id (as in its manifest). */
  runId: string;
  /** The weights, as a state dict. */
  state: StateDict;
  /** The optimizer's state, keyed as {@link Optimizer.readState}. */
  optimizerState: Record<string, Float32Array>;
  /** The history up to `position.epoch`. */
  history: History;
}

const RESUME_FORMAT = "wgnn-resume/1";
const MODEL = "model/";
const OPTIM = "optim/";

// Commits in progress, so that a forced exit can wait for them (see checkpointsIdle).
let committing = 0;
let idle: (() => void)[] = [];

/**
 * Resolves once no checkpoint is being written: a second Ctrl-C waits for this before it exits,
 * so it never cuts a commit in half.
 */
export function checkpointsIdle(): Promise<void> {
  return committing === 0 ? Promise.resolve() : new Promise((resolve) => idle.push(resolve));
}

/** Runs `write` counted as a commit in progress (see {@link checkpointsIdle}). */
async function counted<T>(write: () => Promise<T>): Promise<T> {
  committing++;
  try {
    return await write();
  } finally {
    if (--committing === 0) {
      for (const resolve of idle) resolve();
      idle = [];
    }
  }
}

/** Writes a file atomically; an error names the file, not its temporary twin. */
async function write(path: string, write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (error) {
    throw new Error(`Cannot write "${path}": ${(error as Error).message}`, { cause: error });
  }
}

function toFile(state: StateDict): Record<string, FileTensor> {
  return Object.fromEntries(
    Object.entries(state).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: t.data }]),
  );
}

/** Writes history.json and history.csv atomically. */
export function writeHistory(dir: string, history: History): Promise<void> {
  const json = join(dir, RUN_FILES.history);
  const csv = join(dir, RUN_FILES.historyCsv);
  return counted(async () => {
    await write(json, () => writeTextFileAtomic(json, JSON.stringify(history, null, 1) + "\n"));
    await write(csv, () => writeTextFileAtomic(csv, historyCsv(history)));
  });
}

/** What {@link saveCheckpoint} writes besides the weights. */
export interface SaveOptions {
  /** The history up to the position's epoch (committed with it). */
  history: History;
  /** The run's id. */
  runId: string;
  /** Commit `resume.safetensors` and export `last.safetensors` and the history (default true). */
  last?: boolean;
  /** Write `best.safetensors` (before the commit). */
  best?: boolean;
}

/**
 * Saves the epoch: with `best`, `best.safetensors`; with `last`, the commit
 * (`resume.safetensors`) and then its exports (`last.safetensors`, `history.json`/`.csv`).
 * Everything is read back from the GPU in one round trip before the first file is written. An
 * error names the file that could not be written; whatever was committed before stays resumable.
 */
export function saveCheckpoint(
  dir: string,
  model: Sequential,
  optimizer: Optimizer,
  position: RunPosition,
  { history, runId, last = true, best = false }: SaveOptions,
): Promise<void> {
  return counted(async () => {
    const [dict, state] = await Promise.all([
      model.stateDict(),
      last ? optimizer.readState() : Promise.resolve<Record<string, Float32Array>>({}),
    ]);
    const weights = toFile(dict);
    const meta = {
      epoch: String(position.epoch),
      trainingSteps: String(position.trainingSteps),
      architecture: position.architecture,
      runId,
    };
    const modelMeta = { format: "pt", ...meta, digests: await digests(weights) };
    const bestPath = join(dir, RUN_FILES.best);
    if (best) await write(bestPath, () => writeSafetensorsFile(bestPath, weights, modelMeta));
    if (!last) return;
    const unit: Record<string, FileTensor> = {};
    for (const [k, t] of Object.entries(weights)) unit[MODEL + k] = t;
    for (const [k, v] of Object.entries(state)) {
      unit[OPTIM + k] = { dtype: "F32", shape: [v.length], data: v };
    }
    const resumePath = join(dir, RUN_FILES.resume);
    await write(resumePath, async () =>
      writeSafetensorsFile(resumePath, unit, {
        format: RESUME_FORMAT,
        ...meta,
        optimizer: optimizer.name,
        lr: String(optimizer.lr),
        history: JSON.stringify(history),
        digests: await digests(unit),
      }));
    const lastPath = join(dir, RUN_FILES.last);
    await write(lastPath, () => writeSafetensorsFile(lastPath, weights, modelMeta));
    await writeHistory(dir, history);
  });
}

/**
 * Re-exports a checkpoint read by {@link readCheckpoint} as `last.safetensors` and the history,
 * for a resume after a crash between a commit and its exports.
 */
export async function exportCheckpoint(dir: string, checkpoint: Checkpoint): Promise<void> {
  const weights = toFile(checkpoint.state);
  const lastPath = join(dir, RUN_FILES.last);
  const meta = {
    format: "pt",
    epoch: String(checkpoint.position.epoch),
    trainingSteps: String(checkpoint.position.trainingSteps),
    architecture: checkpoint.position.architecture,
    runId: checkpoint.runId,
    digests: await digests(weights),
  };
  await write(lastPath, () => writeSafetensorsFile(lastPath, weights, meta));
  await writeHistory(dir, checkpoint.history);
}

/** Checks a decoded model file's tensors and returns them as a state dict. */
function toState(path: string, tensors: Iterable<[string, FileTensor]>): StateDict {
  const state: StateDict = {};
  for (const [k, t] of tensors) {
    if (t.dtype !== "F32" && t.dtype !== "I64") {
      throw new TypeError(
        `Cannot load "${path}": tensor "${k}" has dtype ${t.dtype}; expected F32 (or I64 for counters)`,
      );
    }
    state[k] = {
      dtype: t.dtype,
      shape: [...t.shape],
      data: t.data as Float32Array | BigInt64Array,
    };
  }
  return state;
}

/**
 * Reads a model file into `model` (names, shapes, dtypes and, when the file has them, tensor
 * digests are checked before anything is loaded); returns its metadata.
 */
export async function loadModel(path: string, model: Sequential): Promise<Record<string, string>> {
  const file = await readSafetensorsFile(path);
  await checkDigests(path, file, false);
  const state = toState(path, file.tensors);
  try {
    model.loadStateDict(state);
  } catch (e) {
    throw new RangeError(`Cannot load "${path}": ${(e as Error).message}`);
  }
  return file.metadata;
}

async function readResumeFile(dir: string): Promise<Safetensors> {
  const path = join(dir, RUN_FILES.resume);
  try {
    return await readSafetensorsFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new RangeError(`Cannot resume from "${path}": ${(error as Error).message}`);
    }
    const legacy = await Deno.stat(join(dir, LEGACY_OPTIMIZER_FILE)).then(() => true, () => false);
    throw new RangeError(
      legacy
        ? `Cannot resume from "${dir}": it was written by an earlier version (${LEGACY_OPTIMIZER_FILE}, no ${RUN_FILES.resume}); start it afresh`
        : `Cannot resume from "${path}": the file does not exist`,
    );
  }
}

function checkFits(path: string, model: Sequential, state: StateDict): void {
  const expected = model.expectedState();
  const problems: string[] = [];
  for (const [name, e] of Object.entries(expected)) {
    const t = state[name];
    if (!t) problems.push(`missing "${name}"`);
    else if (t.dtype !== e.dtype || t.shape.join(",") !== e.shape.join(",")) {
      problems.push(`"${name}" is ${t.dtype}[${t.shape}], expected ${e.dtype}[${e.shape}]`);
    }
  }
  for (const name of Object.keys(state)) if (!(name in expected)) problems.push(`extra "${name}"`);
  if (problems.length > 0) {
    throw new RangeError(
      `Cannot resume from "${path}": it does not fit ${model.describe()}: ${
        problems.slice(0, 3).join("; ")
      }${problems.length > 3 ? `; and ${problems.length - 3} more` : ""}`,
    );
  }
}

function checkFinite(path: string, what: string, name: string, data: Float32Array): void {
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new RangeError(
      `Cannot resume from "${path}": ${what} "${name}" holds ${data[bad]} at index ${bad}`,
    );
  }
}

function parseHistory(path: string, text: string | undefined, epoch: number): History {
  let history: History;
  try {
    history = JSON.parse(text ?? "");
  } catch {
    throw new RangeError(`Cannot resume from "${path}": its history is missing or not JSON`);
  }
  const epochs = Array.isArray(history?.epochs) ? history.epochs.map((e) => e?.epoch) : [];
  if (epochs.length !== epoch || epochs.some((e, i) => e !== i + 1)) {
    throw new RangeError(
      `Cannot resume from "${path}": its history holds epochs [${epochs.slice(0, 5).join(", ")}${
        epochs.length > 5 ? ", ..." : ""
      }], not 1 to ${epoch}`,
    );
  }
  return history;
}

/**
 * Reads and checks `<dir>/resume.safetensors` for `model` trained by the optimizer named
 * `optimizerName` (e.g. "Adam"), without loading anything: the format, every tensor's digest,
 * the architecture, the optimizer, names, dtypes and shapes, finite values, the position and
 * the history. Throws a RangeError naming the file and the problem.
 */
export async function readCheckpoint(
  dir: string,
  model: Sequential,
  optimizerName: string,
): Promise<Checkpoint> {
  const path = join(dir, RUN_FILES.resume);
  const file = await readResumeFile(dir);
  const meta = file.metadata;
  if (meta.format !== RESUME_FORMAT) {
    throw new RangeError(
      `Cannot resume from "${path}": format is ${
        JSON.stringify(meta.format)
      }, expected "${RESUME_FORMAT}"`,
    );
  }
  await checkDigests(path, file, true);
  if (meta.architecture !== model.describe()) {
    throw new RangeError(
      `Cannot resume from "${path}": it holds ${meta.architecture}, not ${model.describe()}`,
    );
  }
  if (meta.optimizer !== optimizerName) {
    throw new RangeError(
      `Cannot resume from "${path}": it holds ${meta.optimizer} state, not ${optimizerName}`,
    );
  }
  const weights: [string, FileTensor][] = [];
  const optimizerState: Record<string, Float32Array> = {};
  for (const [name, t] of file.tensors) {
    if (name.startsWith(MODEL)) weights.push([name.slice(MODEL.length), t]);
    else if (name.startsWith(OPTIM) && t.dtype === "F32") {
      optimizerState[name.slice(OPTIM.length)] = t.data as Float32Array;
      checkFinite(path, "optimizer state", name.slice(OPTIM.length), t.data as Float32Array);
    } else {
      throw new RangeError(
        `Cannot resume from "${path}": unexpected tensor "${name}" (${t.dtype})`,
      );
    }
  }
  const state = toState(path, weights);
  checkFits(path, model, state);
  for (const [name, t] of Object.entries(state)) {
    if (t.dtype === "F32") checkFinite(path, "weight", name, t.data as Float32Array);
  }
  const epoch = Number(meta.epoch);
  const trainingSteps = Number(meta.trainingSteps);
  if (
    !Number.isInteger(epoch) || epoch < 1 || !Number.isInteger(trainingSteps) || trainingSteps < 0
  ) {
    throw new RangeError(
      `Cannot resume from "${path}": bad metadata epoch=${meta.epoch} trainingSteps=${meta.trainingSteps}`,
    );
  }
  if (typeof meta.runId !== "string" || meta.runId === "") {
    throw new RangeError(`Cannot resume from "${path}": it names no run id`);
  }
  return {
    position: { epoch, trainingSteps, architecture: model.describe() },
    runId: meta.runId,
    state,
    optimizerState,
    history: parseHistory(path, meta.history, epoch),
  };
}

/**
 * Loads a checkpoint read by {@link readCheckpoint} into `model` and `optimizer` (and the
 * Dropout step count), so training continues exactly where it was committed.
 */
export function loadCheckpoint(
  dir: string,
  checkpoint: Checkpoint,
  model: Sequential,
  optimizer: Optimizer,
): void {
  const path = join(dir, RUN_FILES.resume);
  try {
    model.loadStateDict(checkpoint.state);
    optimizer.loadState(checkpoint.optimizerState);
  } catch (e) {
    throw new RangeError(`Cannot resume from "${path}": ${(e as Error).message}`);
  }
  model.setTrainingSteps(checkpoint.position.trainingSteps);
}
