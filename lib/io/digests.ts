/**
 * Per-tensor SHA-256 digests of a safetensors file, kept in its metadata as `digests` (JSON:
 * tensor name → lower-case hex), so a reader can tell a corrupt tensor before it loads anything.
 * Checkpoints (lib/train/checkpoint.ts) and `save`/`load` (lib/nn/save.ts) write and check them.
 *
 * @module
 */

import type { HostTensor, Safetensors } from "./safetensors.ts";

function bytesOf(data: HostTensor["data"]): Uint8Array<ArrayBuffer> {
  return new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
}

/** The SHA-256 of a tensor's bytes, as lower-case hex. */
async function sha256(data: HostTensor["data"]): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytesOf(data)));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Each tensor's SHA-256, as JSON for the metadata (names sorted).
 *
 * @example The metadata of a file with digests
 * ```ts
 * import { digests } from "./digests.ts";
 * import { encodeSafetensors } from "./safetensors.ts";
 *
 * const tensors = { w: { dtype: "F32" as const, shape: [2], data: Float32Array.of(1, 2) } };
 * const bytes = encodeSafetensors(tensors, { digests: await digests(tensors) });
 * console.log(bytes.length);
 * ```
 */
export async function digests(tensors: Record<string, HostTensor>): Promise<string> {
  const names = Object.keys(tensors).sort();
  const hashes = await Promise.all(names.map((n) => sha256(tensors[n].data)));
  return JSON.stringify(Object.fromEntries(names.map((n, i) => [n, hashes[i]])));
}

/**
 * Checks every tensor of `file` against the digests in its metadata; throws a RangeError naming
 * `path` for a tensor that does not match, is not listed or is missing. A file without digests
 * passes unless `required`; then the error says `Cannot <action> "<path>": it has no tensor
 * digests` (action default "resume from", as a checkpoint's).
 *
 * @example Refuse a corrupt file before loading it
 * ```ts
 * import { checkDigests } from "./digests.ts";
 * import { readSafetensorsFile } from "./safetensors_file.ts";
 *
 * async function readChecked(path: string) {
 *   const file = await readSafetensorsFile(path);
 *   await checkDigests(path, file, true, "load");
 *   return file;
 * }
 * ```
 */
export async function checkDigests(
  path: string,
  file: Safetensors,
  required: boolean,
  action = "resume from",
): Promise<void> {
  if (file.metadata.digests === undefined) {
    if (required) throw new RangeError(`Cannot ${action} "${path}": it has no tensor digests`);
    return;
  }
  let expected: Record<string, string>;
  try {
    expected = JSON.parse(file.metadata.digests);
  } catch {
    throw new RangeError(`Cannot load "${path}": its digests are not valid JSON`);
  }
  for (const [name, t] of file.tensors) {
    if (expected[name] === undefined || expected[name] !== await sha256(t.data)) {
      throw new RangeError(
        `Cannot load "${path}": tensor "${name}" does not match its SHA-256 digest (the file is corrupt)`,
      );
    }
  }
  const missing = Object.keys(expected).filter((n) => !file.tensors.has(n));
  if (missing.length > 0) {
    throw new RangeError(`Cannot load "${path}": tensor "${missing[0]}" is missing`);
  }
}
