/// <reference lib="dom" />
/**
 * CIFAR-10 for the page: the official binary batch files, fetched from the server
 * (`/data/<file>`, what `deno task serve` found on disk) or picked from disk by the user, parsed
 * by the library's `parseBatches`. A limit on the images per split makes a short run (the page's
 * `?train=` and `?test=` parameters) read only the files it needs.
 *
 * @module
 */

import type { ImageSet } from "../browser.ts";
import { nn } from "./nn.ts";

/** Where the batch files come from. */
export interface FileSource {
  /** Said on the page ("the server", "3 picked files"). */
  name: string;
  /** The bytes of `file` ("data_batch_1.bin"), or null when this source does not hold it. */
  read(file: string): Promise<Uint8Array | null>;
}

/** The two splits, parsed, and the class names. */
export interface Sets {
  train: ImageSet;
  test: ImageSet;
  classes: string[];
  /** The source's name. */
  source: string;
}

/** The most images taken from each split (the first ones, in file order). */
export interface Limits {
  train: number;
  test: number;
}

/** The files the server holds under /data/ (404: it found no dataset). */
export const serverSource: FileSource = {
  name: "the server",
  async read(file) {
    const response = await fetch(`/data/${file}`);
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`Cannot fetch /data/${file}: status ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  },
};

/** Whether the server holds the dataset (it answers for the first training file). */
export async function serverHasData(): Promise<boolean> {
  const response = await fetch(`/data/${nn.TRAIN_FILES[0]}`, { method: "HEAD" });
  return response.ok;
}

/** The files the user picked with an `<input type=file multiple>`, by file name. */
export function pickedSource(files: Iterable<File>): FileSource {
  const byName = new Map([...files].map((f) => [f.name, f]));
  return {
    name: `${byName.size} picked file${byName.size === 1 ? "" : "s"}`,
    async read(file) {
      const picked = byName.get(file);
      return picked ? new Uint8Array(await picked.arrayBuffer()) : null;
    },
  };
}

/**
 * The first `limit` records of `files` (in order) from `source`, parsed into one set. Files the
 * source lacks are skipped once one has been read; the first one is required.
 */
async function readSplit(
  source: FileSource,
  files: readonly string[],
  limit: number,
  say: (line: string) => void,
): Promise<ImageSet> {
  const parts: { name: string; bytes: Uint8Array }[] = [];
  let have = 0;
  for (const file of files) {
    if (have >= limit) break;
    say(`reading ${file} from ${source.name}`);
    const bytes = await source.read(file);
    if (bytes === null) {
      if (parts.length === 0) {
        throw new Error(`Cannot load CIFAR-10 from ${source.name}: ${file} is missing`);
      }
      continue;
    }
    const inFile = bytes.length / nn.RECORD_BYTES; // fractional for a truncated file
    if (limit - have >= inFile) {
      parts.push({ name: file, bytes }); // whole, so that the parser refuses a truncated file
      have += Math.floor(inFile);
    } else {
      parts.push({ name: file, bytes: bytes.subarray(0, (limit - have) * nn.RECORD_BYTES) });
      have = limit;
    }
  }
  return nn.parseBatches(parts);
}

/** Reads and parses both splits from `source`, at most `limits` images each. */
export async function loadSets(
  source: FileSource,
  limits: Limits,
  say: (line: string) => void,
): Promise<Sets> {
  for (const [split, n] of Object.entries(limits)) {
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(
        `Cannot load CIFAR-10: the ${split} limit must be a positive integer: current value is ${n}`,
      );
    }
  }
  const train = await readSplit(source, nn.TRAIN_FILES, limits.train, say);
  const test = await readSplit(source, [nn.TEST_FILE], limits.test, say);
  const meta = await source.read(nn.META_FILE);
  const classes = meta === null
    ? [...nn.CLASS_NAMES]
    : nn.parseMeta(nn.META_FILE, new TextDecoder().decode(meta));
  return { train, test, classes, source: source.name };
}
