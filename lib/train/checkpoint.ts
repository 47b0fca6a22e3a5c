/**
 * Checkpoints: the model as a PyTorch-loadable safetensors state dict (`<name>.safetensors`) and,
 * for resuming, the optimizer state and run position (`<name>.optim.safetensors`). Both carry the
 * epoch in their metadata; a pair whose epochs disagree (a crash between the two renames) is
 * rejected rather than resumed from.
 *
 * @module
 */

import { join } from "node:path";
import { readSafetensorsFile, writeSafetensorsFile } from "../nn/safetensors.ts";
import type { HostTensor as FileTensor, Safetensors } from "../nn/safetensors.ts";
import type { Sequential, StateDict } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";

/** Where a run stands, saved with each checkpoint. */
export interface RunPosition {
  /** Last completed epoch (1-based). */
  epoch: number;
  /** The model's training-forward count (keys Dropout masks). */
  trainingSteps: number;
  /** Free-form description of the architecture, checked on resume. */
  architecture: string;
}

function toFile(state: StateDict): Record<string, FileTensor> {
  return Object.fromEntries(
    Object.entries(state).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: t.data }]),
  );
}

/**
 * Writes the epoch's checkpoint: with `last`, `last.safetensors` (model) and
 * `last.optim.safetensors` (optimizer state); with `best`, `best.safetensors`. Everything is read
 * back from the GPU before the first file is written, so a device lost on the way cannot leave
 * the pair at different epochs; each file is written atomically.
 */
export async function saveCheckpoint(
  dir: string,
  model: Sequential,
  optimizer: Optimizer,
  position: RunPosition,
  { last = true, best = false }: { last?: boolean; best?: boolean } = {},
): Promise<void> {
  // Both readbacks in flight together: one round trip to the GPU, not two.
  const [dict, state] = await Promise.all([
    model.stateDict(),
    last ? optimizer.readState() : Promise.resolve<Record<string, Float32Array>>({}),
  ]);
  const weights = toFile(dict);
  const tensors: Record<string, FileTensor> = {};
  for (const [k, v] of Object.entries(state)) {
    tensors[k] = { dtype: "F32", shape: [v.length], data: v };
  }
  const meta = {
    epoch: String(position.epoch),
    trainingSteps: String(position.trainingSteps),
  };
  const modelMeta = { format: "pt", ...meta, architecture: position.architecture };
  if (last) {
    await writeSafetensorsFile(join(dir, "last.safetensors"), weights, modelMeta);
    await writeSafetensorsFile(join(dir, "last.optim.safetensors"), tensors, {
      ...meta,
      optimizer: optimizer.name,
      lr: String(optimizer.lr),
    });
  }
  if (best) await writeSafetensorsFile(join(dir, "best.safetensors"), weights, modelMeta);
}

/** Checks a decoded model file's tensors and returns them as a state dict. */
function toState(path: string, file: Safetensors): StateDict {
  const state: StateDict = {};
  for (const [k, t] of file.tensors) {
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

/** Reads a model checkpoint into `model` (names, shapes and dtypes are checked); returns its metadata. */
export async function loadModel(path: string, model: Sequential): Promise<Record<string, string>> {
  const file = await readSafetensorsFile(path);
  const state = toState(path, file);
  try {
    model.loadStateDict(state);
  } catch (e) {
    throw new RangeError(`Cannot load "${path}": ${(e as Error).message}`);
  }
  return file.metadata;
}

/** Whether `<dir>/last.safetensors` exists (a run to resume). */
export async function hasCheckpoint(dir: string): Promise<boolean> {
  try {
    return (await Deno.stat(join(dir, "last.safetensors"))).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** The checked contents of `<dir>/last.*`, as {@link checkLast} reads them. */
interface LastCheckpoint {
  position: RunPosition;
  state: StateDict;
  optimizer: Record<string, Float32Array>;
}

async function readChecked(path: string): Promise<Safetensors> {
  try {
    return await readSafetensorsFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new RangeError(`Cannot resume from "${path}": the file does not exist`);
    }
    throw error;
  }
}

async function readLast(
  dir: string,
  model: Sequential,
  optimizerName: string,
): Promise<LastCheckpoint> {
  const modelPath = join(dir, "last.safetensors");
  const optimPath = join(dir, "last.optim.safetensors");
  const file = await readChecked(modelPath);
  const meta = file.metadata;
  if (meta.architecture !== undefined && meta.architecture !== model.describe()) {
    throw new RangeError(
      `Cannot resume from "${modelPath}": it holds ${meta.architecture}, not ${model.describe()}`,
    );
  }
  const state = toState(modelPath, file);
  // Names, dtypes and shapes, as loadStateDict checks them, but before anything is loaded.
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
      `Cannot resume from "${modelPath}": it does not fit ${model.describe()}: ${
        problems.slice(0, 3).join("; ")
      }${problems.length > 3 ? `; and ${problems.length - 3} more` : ""}`,
    );
  }
  const optim = await readChecked(optimPath);
  if (optim.metadata.epoch !== meta.epoch) {
    throw new RangeError(
      `Cannot resume from "${dir}": last.safetensors is at epoch ${meta.epoch} but last.optim.safetensors at epoch ${optim.metadata.epoch}`,
    );
  }
  if (optim.metadata.optimizer !== optimizerName) {
    throw new RangeError(
      `Cannot resume from "${optimPath}": it holds ${optim.metadata.optimizer} state, not ${optimizerName}`,
    );
  }
  const position = {
    epoch: Number(meta.epoch),
    trainingSteps: Number(meta.trainingSteps),
    architecture: model.describe(),
  };
  if (
    !Number.isInteger(position.epoch) || position.epoch < 0 ||
    !Number.isInteger(position.trainingSteps) || position.trainingSteps < 0
  ) {
    throw new RangeError(
      `Cannot resume from "${modelPath}": bad metadata epoch=${meta.epoch} trainingSteps=${meta.trainingSteps}`,
    );
  }
  const optimizer: Record<string, Float32Array> = {};
  for (const [k, t] of optim.tensors) {
    if (t.dtype !== "F32") {
      throw new RangeError(
        `Cannot resume from "${optimPath}": tensor "${k}" has dtype ${t.dtype}, expected F32`,
      );
    }
    optimizer[k] = t.data as Float32Array;
  }
  return { position, state, optimizer };
}

/**
 * Checks, without loading anything, that `<dir>/last.*` can resume `model` trained by the
 * optimizer named `optimizerName` (e.g. "Adam"); returns where that run stands. Throws a
 * RangeError naming the file when one is missing, the two disagree, or they belong to another
 * architecture or optimizer.
 */
export async function checkLast(
  dir: string,
  model: Sequential,
  optimizerName: string,
): Promise<RunPosition> {
  return (await readLast(dir, model, optimizerName)).position;
}

/**
 * Restores model, optimizer and position from `<dir>/last.*` for `--resume`. Throws (before
 * loading anything) when the files are missing, disagree with each other, or belong to another
 * architecture or optimizer.
 */
export async function loadLast(
  dir: string,
  model: Sequential,
  optimizer: Optimizer,
): Promise<RunPosition> {
  const last = await readLast(dir, model, optimizer.name);
  try {
    model.loadStateDict(last.state);
  } catch (e) {
    throw new RangeError(`Cannot load "${join(dir, "last.safetensors")}": ${(e as Error).message}`);
  }
  optimizer.loadState(last.optimizer);
  model.setTrainingSteps(last.position.trainingSteps);
  return last.position;
}
