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
import type { HostTensor as FileTensor } from "../nn/safetensors.ts";
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

/** Writes `<dir>/<name>.safetensors` (model) atomically, with the position as metadata. */
export async function saveModel(
  dir: string,
  name: string,
  model: Sequential,
  position: RunPosition,
): Promise<void> {
  await writeSafetensorsFile(join(dir, `${name}.safetensors`), toFile(await model.stateDict()), {
    format: "pt",
    epoch: String(position.epoch),
    trainingSteps: String(position.trainingSteps),
    architecture: position.architecture,
  });
}

/** Writes `<dir>/<name>.optim.safetensors` (optimizer state) atomically. */
export async function saveOptimizer(
  dir: string,
  name: string,
  optimizer: Optimizer,
  position: RunPosition,
): Promise<void> {
  const state = await optimizer.readState();
  const tensors: Record<string, FileTensor> = {};
  for (const [k, v] of Object.entries(state)) {
    tensors[k] = { dtype: "F32", shape: [v.length], data: v };
  }
  await writeSafetensorsFile(join(dir, `${name}.optim.safetensors`), tensors, {
    epoch: String(position.epoch),
    trainingSteps: String(position.trainingSteps),
    optimizer: optimizer.name,
    lr: String(optimizer.lr),
  });
}

/** Reads a model checkpoint into `model` (names, shapes and dtypes are checked); returns its metadata. */
export async function loadModel(path: string, model: Sequential): Promise<Record<string, string>> {
  const file = await readSafetensorsFile(path);
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
  try {
    model.loadStateDict(state);
  } catch (e) {
    throw new RangeError(`Cannot load "${path}": ${(e as Error).message}`);
  }
  return file.metadata;
}

/**
 * Restores model, optimizer and position from `<dir>/last.*` for `--resume`. Throws when the files
 * are missing, disagree with each other, or belong to another architecture.
 */
export async function loadLast(
  dir: string,
  model: Sequential,
  optimizer: Optimizer,
): Promise<RunPosition> {
  const modelPath = join(dir, "last.safetensors");
  const optimPath = join(dir, "last.optim.safetensors");
  const meta = await loadModel(modelPath, model);
  if (meta.architecture !== undefined && meta.architecture !== model.describe()) {
    throw new RangeError(
      `Cannot resume from "${modelPath}": it holds ${meta.architecture}, not ${model.describe()}`,
    );
  }
  const optim = await readSafetensorsFile(optimPath);
  if (optim.metadata.epoch !== meta.epoch) {
    throw new RangeError(
      `Cannot resume from "${dir}": last.safetensors is at epoch ${meta.epoch} but last.optim.safetensors at epoch ${optim.metadata.epoch}`,
    );
  }
  if (optim.metadata.optimizer !== optimizer.name) {
    throw new RangeError(
      `Cannot resume from "${optimPath}": it holds ${optim.metadata.optimizer} state, not ${optimizer.name}`,
    );
  }
  const state: Record<string, Float32Array> = {};
  for (const [k, t] of optim.tensors) state[k] = t.data as Float32Array;
  optimizer.loadState(state);
  const position = {
    epoch: Number(meta.epoch),
    trainingSteps: Number(meta.trainingSteps),
    architecture: model.describe(),
  };
  if (
    !Number.isInteger(position.epoch) || position.epoch < 0 ||
    !Number.isInteger(position.trainingSteps)
  ) {
    throw new RangeError(
      `Cannot resume from "${modelPath}": bad metadata epoch=${meta.epoch} trainingSteps=${meta.trainingSteps}`,
    );
  }
  model.setTrainingSteps(position.trainingSteps);
  return position;
}
