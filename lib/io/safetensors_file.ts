/**
 * Safetensors files on disk: {@link readSafetensorsFile} and {@link writeSafetensorsFile} over the
 * in-memory codec of `safetensors.ts`, which stays free of Deno's file API so that the browser
 * build can encode and decode (a checkpoint download) without it.
 *
 * @module
 */

import { writeFileAtomic } from "./atomic.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type HostTensor,
  type Safetensors,
} from "./safetensors.ts";

/**
 * Writes tensors to `path` as safetensors, atomically (temp file, fsync, rename): an
 * interrupted write leaves the previous file or none, never a truncated one.
 *
 * @param metadata The `__metadata__` strings. Default: none (the header has no `__metadata__`).
 *
 * @example Save a model's state dict for PyTorch
 * ```ts
 * import { type Sequential, writeSafetensorsFile } from "@wgnn/wgnn";
 *
 * async function save(model: Sequential): Promise<void> {
 *   await writeSafetensorsFile("out/model.safetensors", await model.stateDict(), {
 *     format: "pt",
 *   });
 *   // python: torch_model.load_state_dict(safetensors.torch.load_file("out/model.safetensors"))
 * }
 * ```
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/**
 * Reads and decodes a safetensors file (see {@link decodeSafetensors}); errors name the file.
 *
 * @example List the tensors of a checkpoint
 * ```ts
 * import { readSafetensorsFile } from "@wgnn/wgnn";
 *
 * async function list(path: string): Promise<string[]> {
 *   const { tensors, metadata } = await readSafetensorsFile(path);
 *   console.log(metadata); // e.g. { format: "pt" }
 *   return [...tensors].map(([name, t]) => `${name} ${t.dtype} [${t.shape.join(", ")}]`);
 * }
 * ```
 */
export async function readSafetensorsFile(path: string): Promise<Safetensors> {
  return decodeSafetensors(await Deno.readFile(path), path);
}
