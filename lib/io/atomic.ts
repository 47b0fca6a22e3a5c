/**
 * Atomic file writes: data goes to a temporary file beside the target, is flushed, then renamed
 * over it, so a crash or Ctrl-C never leaves a truncated history, plot or checkpoint. A process
 * killed mid-write leaves its temporary file behind; {@link removeStaleTemps} clears those.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/*
 * The temporary files of this module, defined once here for the writer and the cleaner:
 * `.<target's name>.<tag>.tmp` in the target's folder, where the tag is the first 8 hex digits
 * of a random UUID (lower case), so two writers of one target never collide.
 */

/** Hex digits in a temporary name's tag. */
const TAG_DIGITS = 8;

/** Exactly the names {@link tempName} makes (for any non-empty target name). */
const TEMP_NAME = new RegExp(`^\\..+\\.[0-9a-f]{${TAG_DIGITS}}\\.tmp$`);

/** A fresh temporary name for the file named `target`. */
function tempName(target: string): string {
  return `.${target}.${crypto.randomUUID().slice(0, TAG_DIGITS)}.tmp`;
}

/** Writes `data` to `path` atomically (temp file in the same folder, fsync, rename). */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), tempName(basename(path)));
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let written = 0;
      while (written < data.length) written += await file.write(data.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw aboutTarget(error, tmp, path);
  }
}

/**
 * `error` with every mention of the temporary file replaced by the target's path, of the same
 * class (the original as `cause`): a message should name the file the user asked for, not an
 * internal one that no longer exists.
 */
function aboutTarget(error: unknown, tmp: string, path: string): unknown {
  if (!(error instanceof Error) || !error.message.includes(tmp)) return error;
  const Class = error.constructor as new (message: string, options?: ErrorOptions) => Error;
  return new Class(error.message.replaceAll(tmp, path), { cause: error });
}

/** Writes `text` as UTF-8 to `path` atomically. */
export function writeTextFileAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}

/**
 * Removes the temporary files that {@link writeFileAtomic} leaves in `dir` when its process is
 * killed between creating and renaming one (`.<name>.<8 hex digits>.tmp`), and returns their
 * names, sorted. Only regular files of exactly that pattern, directly in `dir`, are touched:
 * `.notes.tmp` or a sub-folder's files stay. Call it only while no other process writes to
 * `dir` (the training code holds the folder's lock), or it could remove a write in progress.
 *
 * @example Clear a run folder's leftovers before writing to it
 * ```ts
 * import { removeStaleTemps } from "./atomic.ts";
 *
 * async function clean(dir: string): Promise<void> {
 *   const removed = await removeStaleTemps(dir);
 *   if (removed.length > 0) console.error(`removed ${removed.join(", ")} from ${dir}`);
 * }
 * ```
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !TEMP_NAME.test(entry.name)) continue;
    try {
      await Deno.remove(join(dir, entry.name));
      removed.push(entry.name);
    } catch (error) {
      // Gone already: another cleaner, or the writer itself, got there first.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return removed.sort();
}
