/**
 * Extraction of the CIFAR-10 `.tar.gz` archive: gunzip through the web platform's
 * `DecompressionStream`, tar parsing by the `tar-stream` library, and a strict allow-list.
 *
 * Only the seven expected regular files under `cifar-10-batches-bin/` are written, each into
 * the given folder by its base name. Absolute names, `..` segments, links and special files are
 * refused (the whole archive fails); other regular files and folders (the official archive's
 * `readme.html`) are skipped. Member sizes are capped, so a hostile header cannot fill the disk.
 *
 * @module
 */

// deno-lint-ignore no-import-prefix -- library code must work imported by URL, without our import map
import tarStream from "npm:tar-stream@3.1.7";
import { join } from "node:path";
import { BATCHES_DIR, DATASET_FILES, META_FILE } from "./cifar10.ts";

/** Options of {@link extractArchive}. */
export interface ExtractOptions {
  /** Name of the archive, for error messages. */
  name?: string;
  /** Largest accepted `.bin` member in bytes. Default 64 MiB (the official files are 30.7 MB). */
  maxMemberBytes?: number;
  /** Largest accepted `batches.meta.txt` in bytes. Default 64 KiB. */
  maxMetaBytes?: number;
  /** Called with the number of compressed bytes consumed, for progress. */
  onBytes?: (bytes: number) => void;
}

/** At most this many headers are read, so an archive of endless tiny members ends. */
const MAX_ENTRIES = 1000;

/** Types of tar members that are refused outright. */
const REFUSED_TYPES = new Set(["symlink", "link", "character-device", "block-device", "fifo"]);

/** Throws unless `name` is a relative path without `..` segments. */
export function checkMemberName(archive: string, name: string): void {
  if (name.startsWith("/") || name.startsWith("\\") || /^[A-Za-z]:/.test(name)) {
    throw new Error(`Cannot extract "${archive}": member "${name}" has an absolute path`);
  }
  if (name.split(/[\\/]/).includes("..")) {
    throw new Error(
      `Cannot extract "${archive}": member "${name}" leaves the archive's folder ("..")`,
    );
  }
}

/** The dataset file a member name stands for, or null when the member is not wanted. */
function wantedFile(name: string): string | null {
  const plain = name.replace(/^(\.\/)+/, "");
  for (const file of DATASET_FILES) {
    if (plain === `${BATCHES_DIR}/${file}`) return file;
  }
  return null;
}

/**
 * Resolves when the tar parser wants more input ("drain") or is gone ("close"). Both listeners
 * are removed once either fires: a "close" listener left behind after each drain would pile up
 * on the parser, one per back-pressure wait, and Node warns (MaxListenersExceededWarning) past
 * ten.
 */
function drained(extract: ReturnType<typeof tarStream.extract>): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      extract.off("drain", done);
      extract.off("close", done);
      resolve();
    };
    extract.on("drain", done);
    extract.on("close", done);
  });
}

/** Pumps `source` into the tar parser, honouring its back-pressure. */
async function feed(
  source: ReadableStream<Uint8Array>,
  extract: ReturnType<typeof tarStream.extract>,
  onBytes?: (bytes: number) => void,
): Promise<void> {
  const counted = source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        onBytes?.(chunk.byteLength);
        controller.enqueue(chunk);
      },
    }),
  );
  const reader = counted.pipeThrough<Uint8Array>(
    new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>,
  ).getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (extract.destroyed) {
        await reader.cancel();
        return;
      }
      if (!extract.write(value)) await drained(extract);
    }
    extract.end();
  } catch (error) {
    extract.destroy(error as Error);
  } finally {
    reader.releaseLock();
  }
}

/** Writes one member's bytes to `path`, stopping past `limit` bytes. */
async function writeMember(
  entry: AsyncIterable<Uint8Array>,
  path: string,
  limit: number,
  what: string,
): Promise<number> {
  const file = await Deno.open(path, { write: true, createNew: true });
  let size = 0;
  try {
    for await (const chunk of entry) {
      size += chunk.byteLength;
      if (size > limit) throw new Error(`${what} holds more than ${limit} bytes`);
      let written = 0;
      while (written < chunk.byteLength) written += await file.write(chunk.subarray(written));
    }
  } finally {
    file.close();
  }
  return size;
}

/**
 * Extracts the dataset files from a gzip-compressed tar stream into `outDir` (which must exist
 * and should be a fresh temporary folder: on error the caller removes it). Resolves to the
 * names of skipped members. Throws naming the archive and the member on any refusal, on a
 * missing or duplicated member, and on a truncated or corrupt stream.
 *
 * @example Extract the official archive into a staging folder
 * ```ts
 * import { extractArchive } from "./archive.ts";
 *
 * async function extract(archive: string, staging: string): Promise<string[]> {
 *   const file = await Deno.open(archive); // its stream closes it
 *   return await extractArchive(file.readable, staging, { name: archive });
 *   // resolves to the skipped members: ["cifar-10-batches-bin/readme.html"]
 * }
 * ```
 */
export async function extractArchive(
  source: ReadableStream<Uint8Array>,
  outDir: string,
  options: ExtractOptions = {},
): Promise<string[]> {
  const archive = options.name ?? "archive";
  const maxMember = options.maxMemberBytes ?? 64 * 1024 * 1024;
  const maxMeta = options.maxMetaBytes ?? 64 * 1024;
  const extract = tarStream.extract();
  const pump = feed(source, extract, options.onBytes);
  const found = new Set<string>();
  const skipped: string[] = [];
  let entries = 0;
  try {
    for await (const entry of extract) {
      const { name, type, size } = entry.header;
      if (++entries > MAX_ENTRIES) {
        throw new Error(`Cannot extract "${archive}": more than ${MAX_ENTRIES} members`);
      }
      checkMemberName(archive, name);
      if (REFUSED_TYPES.has(type ?? "")) {
        throw new Error(
          `Cannot extract "${archive}": member "${name}" is a ${type}, not a regular file`,
        );
      }
      const file = wantedFile(name);
      const regular = type === "file" || type === "contiguous-file";
      if (file === null || !regular) {
        if (type !== "directory") skipped.push(name);
        entry.resume();
        continue;
      }
      if (found.has(file)) {
        throw new Error(`Cannot extract "${archive}": member "${name}" appears twice`);
      }
      const limit = file === META_FILE ? maxMeta : maxMember;
      if ((size ?? 0) > limit) {
        throw new Error(
          `Cannot extract "${archive}": member "${name}" is ${size} bytes, over the limit of ${limit}`,
        );
      }
      const what = `Cannot extract "${archive}": member "${name}"`;
      const written = await writeMember(entry, join(outDir, file), limit, what);
      if (written !== size) throw new Error(`${what} is truncated: ${written} of ${size} bytes`);
      found.add(file);
    }
  } catch (error) {
    extract.destroy();
    await pump;
    const message = (error as Error).message ?? String(error);
    throw new Error(
      message.startsWith("Cannot extract") ? message : `Cannot extract "${archive}": ${message}`,
      {
        cause: error,
      },
    );
  }
  await pump;
  const missing = DATASET_FILES.filter((f) => !found.has(f));
  if (missing.length > 0) {
    throw new Error(
      `Cannot extract "${archive}": it lacks ${
        missing.map((f) => `${BATCHES_DIR}/${f}`).join(", ")
      }`,
    );
  }
  return skipped;
}
