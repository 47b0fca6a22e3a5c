/**
 * A model's weights (and optionally its optimizer's state) to and from disk in one call.
 *
 * `save(path, model)` writes the state dict PyTorch loads (`model.load_state_dict(
 * safetensors.torch.load_file(path))`), with each tensor's SHA-256 in the metadata as a
 * checkpoint has them (lib/io/digests.ts). With `optimizer`, its state goes to a second file
 * beside it, {@link optimizerPath} (`model.safetensors` → `model.optim.safetensors`), so the
 * first stays a plain state dict that PyTorch loads strictly. Each file is written atomically;
 * the optimizer's first, then the model's, and both carry one `saveId`, so a crash between the
 * two leaves a pair that `load` refuses instead of mixing two saves.
 *
 * `load` reads and checks everything (digests, names, dtypes, shapes, values, the optimizer's
 * kind and sizes, the pair's `saveId`) before it writes anything to the GPU.
 *
 * @module
 */

import { writeFileAtomic } from "../io/atomic.ts";
import { checkDigests, digests } from "../io/digests.ts";
import {
  encodeSafetensors,
  type HostTensor as FileTensor,
  type Safetensors,
  stateDictOf,
} from "../io/safetensors.ts";
import { readSafetensorsFile } from "../io/safetensors_file.ts";
import type { Tensor } from "../tensor.ts";
import type { Sequential } from "./sequential.ts";

/** The `format` of an optimizer file written by {@link save}. */
const OPTIM_FORMAT = "wgnn-optim/1";
/** The optimizer's exact step limit (lib/optim/optimizer.ts refuses to step or load past it). */
const MAX_STEPS = 2 ** 24;

/**
 * What {@link save} and {@link load} use of an optimizer: every `Optimizer` (SGD, Adam, AdamW,
 * RMSprop) has it. (Declared here because lib/nn does not import lib/optim.)
 *
 * @example Any optimizer fits
 * ```ts
 * import { Adam, type Sequential } from "@wgnn/wgnn";
 * import type { SavedOptimizer } from "./save.ts";
 *
 * function optimizerOf(model: Sequential): SavedOptimizer {
 *   return new Adam(model.parameters(), { lr: 1e-3 });
 * }
 * ```
 */
export interface SavedOptimizer {
  /** The class name ("Adam"), checked on load. */
  readonly name: string;
  /** The learning rate, recorded in the metadata (load keeps the optimizer's own). */
  readonly lr: number;
  /** The state's views, for the sizes a load must match. */
  stateTensors(): Record<string, Tensor>;
  /** Reads the state back. */
  readState(): Promise<Record<string, Float32Array>>;
  /** Writes the state (after checking it). */
  loadState(state: Record<string, Float32Array>): void;
}

/** Options of {@link save} and {@link load}. */
export interface SaveLoadOptions {
  /**
   * Also save (or load) this optimizer's state and the model's training-step count (which keys
   * Dropout masks), in {@link optimizerPath}(path). Default: none (the model only).
   */
  optimizer?: SavedOptimizer;
}

/**
 * Where {@link save} puts the optimizer's state for a model file at `path`: `.safetensors`
 * replaced by `.optim.safetensors` (appended when `path` has another ending).
 *
 * @example Beside the model file
 * ```ts
 * import { optimizerPath } from "./save.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(optimizerPath("out/model.safetensors"), "out/model.optim.safetensors");
 * equal(optimizerPath("out/model"), "out/model.optim.safetensors");
 * ```
 */
export function optimizerPath(path: string): string {
  return `${path.replace(/\.safetensors$/, "")}.optim.safetensors`;
}

/**
 * Writes `model`'s state dict to `path` (PyTorch's names and layouts, `format: "pt"`, each
 * tensor's SHA-256 in the metadata `digests`, the architecture in `architecture`) atomically;
 * with `optimizer`, its state to {@link optimizerPath}(path) first. Everything is read from the
 * GPU in one round trip before the first byte is written. An error names the file.
 *
 * @example Save after training, load into a fresh model
 * ```ts
 * import type { Optimizer, Sequential } from "@wgnn/wgnn";
 * import { load, save } from "./save.ts";
 *
 * async function roundTrip(trained: Sequential, optimizer: Optimizer, fresh: Sequential) {
 *   await save("out/model.safetensors", trained, { optimizer }); // + out/model.optim.safetensors
 *   await load("out/model.safetensors", fresh); // the weights only
 * }
 * ```
 */
export async function save(
  path: string,
  model: Sequential,
  options: SaveLoadOptions = {},
): Promise<void> {
  const { optimizer } = options;
  const [state, optimizerState, trainingSteps] = await Promise.all([
    model.stateDict(),
    optimizer?.readState(),
    optimizer ? model.trainingSteps() : 0,
  ]);
  const saveId = crypto.randomUUID();
  const architecture = model.describe();
  if (optimizer && optimizerState) {
    const tensors: Record<string, FileTensor> = {};
    for (const [name, v] of Object.entries(optimizerState)) {
      tensors[name] = { dtype: "F32", shape: [v.length], data: v };
    }
    await write(optimizerPath(path), tensors, {
      format: OPTIM_FORMAT,
      optimizer: optimizer.name,
      lr: String(optimizer.lr),
      trainingSteps: String(trainingSteps),
      architecture,
      saveId,
    });
  }
  await write(path, state, { format: "pt", architecture, saveId });
}

/** Adds the digests to `metadata` and writes the file atomically; an error names `path`. */
async function write(
  path: string,
  tensors: Record<string, FileTensor>,
  metadata: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, { ...metadata, digests: await digests(tensors) });
  try {
    await writeFileAtomic(path, bytes);
  } catch (error) {
    throw new Error(`Cannot write "${path}": ${(error as Error).message}`, { cause: error });
  }
}

/** Reads a file, naming it in errors, and checks its digests (required for ours). */
async function readChecked(path: string, required: boolean): Promise<Safetensors> {
  let file: Safetensors;
  try {
    file = await readSafetensorsFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot load "${path}": the file does not exist`);
    }
    throw error; // the decoder's errors name the file already
  }
  await checkDigests(path, file, required, "load");
  return file;
}

/**
 * Reads the model file at `path` into `model` and returns its metadata; with `optimizer`, also
 * {@link optimizerPath}(path) into the optimizer, and the model's training-step count. Every
 * check comes before the first write, so a failed load leaves model and optimizer as they were:
 * each tensor's digest (when the file has digests: a file PyTorch wrote has none; the optimizer
 * file must have them), names, dtypes, shapes and values (as `loadStateDict`), and for the
 * optimizer its class, its state's names and sizes, finite values, and the `saveId` it shares
 * with the model file. Throws a RangeError (TypeError for a dtype other than F32/I64) naming the
 * file.
 *
 * @example Continue training where a save left off
 * ```ts
 * import { Adam, type Sequential } from "@wgnn/wgnn";
 * import { load } from "./save.ts";
 *
 * async function restore(model: Sequential): Promise<Adam> {
 *   const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
 *   await load("out/model.safetensors", model, { optimizer });
 *   return optimizer; // its moments and step count as saved
 * }
 * ```
 */
export async function load(
  path: string,
  model: Sequential,
  options: SaveLoadOptions = {},
): Promise<Record<string, string>> {
  const { optimizer } = options;
  const file = await readChecked(path, false);
  const state = named(path, () => stateDictOf(file));
  const restored = optimizer ? await readOptimizer(path, file, optimizer) : null;
  named(path, () => model.loadStateDict(state)); // checks everything before it writes
  if (restored) {
    optimizer!.loadState(restored.state); // checked by readOptimizer: it cannot fail now
    model.setTrainingSteps(restored.trainingSteps);
  }
  return file.metadata;
}

/** Runs `f`, prefixing an error's message with the file (same class). */
function named<T>(path: string, f: () => T): T {
  try {
    return f();
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    const Class = error instanceof TypeError ? TypeError : RangeError;
    throw new Class(`Cannot load "${path}": ${error.message}`, { cause: error });
  }
}

/**
 * Reads and checks the optimizer file that belongs to the model file `modelFile` at `path`:
 * everything `Optimizer.loadState` checks, and more, so that its load cannot fail after the
 * model's was written.
 */
async function readOptimizer(
  path: string,
  modelFile: Safetensors,
  optimizer: SavedOptimizer,
): Promise<{ state: Record<string, Float32Array>; trainingSteps: number }> {
  const at = optimizerPath(path);
  const file = await readChecked(at, true);
  const meta = file.metadata;
  const fail = (problem: string): never => {
    throw new RangeError(`Cannot load "${at}": ${problem}`);
  };
  if (meta.format !== OPTIM_FORMAT) {
    fail(`format is ${JSON.stringify(meta.format)}, expected "${OPTIM_FORMAT}"`);
  }
  if (meta.saveId === undefined || meta.saveId !== modelFile.metadata.saveId) {
    fail(`it was not saved with "${path}" (their saveId differs); save both again`);
  }
  if (meta.optimizer !== optimizer.name) {
    fail(`it holds ${meta.optimizer} state, not ${optimizer.name}`);
  }
  const trainingSteps = Number(meta.trainingSteps);
  if (!Number.isSafeInteger(trainingSteps) || trainingSteps < 0) {
    fail(`trainingSteps must be an integer >= 0: current value is ${meta.trainingSteps}`);
  }
  const views = optimizer.stateTensors();
  const state: Record<string, Float32Array> = {};
  for (const [name, t] of file.tensors) {
    const view = views[name];
    if (view === undefined) fail(`tensor "${name}" is not part of ${optimizer.name}'s state`);
    if (!(t.data instanceof Float32Array) || t.data.length !== view.numel) {
      fail(`tensor "${name}" is ${t.dtype}[${t.shape}], expected F32[${view.numel}]`);
    }
    const data = t.data as Float32Array;
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) fail(`tensor "${name}" holds ${data[bad]} at index ${bad}`);
    state[name] = data;
  }
  const missing = Object.keys(views).find((name) => !(name in state));
  if (missing !== undefined) fail(`tensor "${missing}" of ${optimizer.name}'s state is missing`);
  const step = state.step?.[0];
  if (!(Number.isInteger(step) && step >= 0 && step <= MAX_STEPS)) {
    fail(`"step" must be an integer in [0, ${MAX_STEPS}]: current value is ${step}`);
  }
  return { state, trainingSteps };
}
