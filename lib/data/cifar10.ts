/**
 * CIFAR-10 on disk: finding, reading and verifying a folder of the official binary batches. The
 * format itself (constants, class names, parsing bytes in memory) is in `cifar10_format.ts`,
 * which has no file access so that the browser build can use it; it is re-exported here.
 *
 * @module
 */

import { join } from "node:path";
import {
  BATCHES_DIR,
  type Cifar10,
  CLASS_NAMES,
  META_FILE,
  OFFICIAL_SHA256,
  parseBatches,
  parseMeta,
  sha256Hex,
  TEST_FILE,
  TRAIN_FILES,
} from "./cifar10_format.ts";

export {
  BATCHES_DIR,
  CLASS_NAMES,
  classCounts,
  DATASET_FILES,
  IMAGE_BYTES,
  META_FILE,
  NUM_CLASSES,
  OFFICIAL_SHA256,
  parseBatch,
  parseBatches,
  parseMeta,
  RECORD_BYTES,
  sha256Hex,
  TEST_FILE,
  TRAIN_FILES,
} from "./cifar10_format.ts";
export type { Cifar10, ImageSet } from "./cifar10_format.ts";

/** The official archive on the dataset's home page, with its published size and digests. */
export const OFFICIAL_ARCHIVE = {
  url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
  bytes: 170_052_171,
  md5: "c32a1d4ab5d03f1284b67883e8d87530",
  sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
} as const;

/**
 * Whether `error` is a refused read: by Deno's permissions (`Deno.errors.NotCapable`, the
 * script lacks `--allow-read` for the path) or by the file system (`Deno.errors.PermissionDenied`,
 * EACCES). {@link findBatchesDir} and {@link loadCifar10} throw these as they are, never as "not
 * found", so a script can tell "there is no dataset here" from "the dataset cannot be read".
 *
 * @example Tell a missing dataset from an unreadable one
 * ```ts
 * import { findBatchesDir, isPermissionError } from "./cifar10.ts";
 *
 * async function where(dir: string): Promise<string> {
 *   try {
 *     return await findBatchesDir(dir);
 *   } catch (error) {
 *     if (isPermissionError(error)) throw error; // 'Cannot read "…": permission denied …'
 *     throw new Error(`${dir} holds no CIFAR-10: ${(error as Error).message}`);
 *   }
 * }
 * ```
 */
export function isPermissionError(
  error: unknown,
): error is Deno.errors.NotCapable | Deno.errors.PermissionDenied {
  return error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied;
}

/**
 * A refused read of `path` (under the data folder `dir`) rethrown with a message that names the
 * path and says what to do; of the same class, with the original error as `cause`. Any other
 * error comes back as it is (Deno's own messages name the path).
 */
function readError(path: string, dir: string, error: unknown): unknown {
  if (error instanceof Deno.errors.NotCapable) {
    return new Deno.errors.NotCapable(
      `Cannot read "${path}": permission denied (run with --allow-read=${dir})`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new Deno.errors.PermissionDenied(
      `Cannot read "${path}": permission denied by the file system (check the owner and mode of the file and its folders)`,
      { cause: error },
    );
  }
  return error;
}

/**
 * The folder holding the batch files: `dir` itself when it has `data_batch_1.bin`, else
 * `dir/cifar-10-batches-bin`. When neither has it, throws `Deno.errors.NotFound` naming both;
 * when one of them could not be read, throws that refusal instead (see
 * {@link isPermissionError}), naming the path: 'Cannot read "data/cifar-10-batches-bin/
 * data_batch_1.bin": permission denied (run with --allow-read=data)'.
 */
export async function findBatchesDir(dir: string): Promise<string> {
  let refused: unknown = null;
  for (const candidate of [dir, join(dir, BATCHES_DIR)]) {
    const path = join(candidate, TRAIN_FILES[0]);
    try {
      if ((await Deno.stat(path)).isFile) return candidate;
    } catch (error) {
      // A file given as the folder ("--data README.md") holds no dataset, like a missing one.
      const absent = error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.NotADirectory;
      // A refusal is kept, not thrown yet: the other candidate may still be readable.
      if (!absent) refused ??= readError(path, dir, error);
    }
  }
  if (refused !== null) throw refused;
  throw new Deno.errors.NotFound(
    `Cannot find CIFAR-10 in "${dir}": neither it nor "${join(dir, BATCHES_DIR)}" holds ${
      TRAIN_FILES[0]
    }; run \`deno task download\``,
  );
}

/**
 * Loads the whole dataset from `dir` (a data folder holding `cifar-10-batches-bin/`, or that
 * folder itself). Files are parsed, not checksummed ({@link downloadCifar10} checks each one's SHA-256). A file
 * that cannot be read for want of permission fails naming it.
 *
 * @example Load the dataset (needs read permission on the folder)
 * ```ts
 * import { loadCifar10 } from "@wgnn/wgnn/data";
 *
 * async function load(): Promise<void> {
 *   const data = await loadCifar10("data");
 *   console.log(data.train.count, data.test.count); // 50000 10000
 *   console.log(data.classes[data.train.labels[0]]); // "frog"
 * }
 * ```
 */
export async function loadCifar10(dir: string): Promise<Cifar10> {
  const root = await findBatchesDir(dir);
  // Read in parallel, but report the first failure in file order, not whichever came first,
  // so that the same folder always gives the same message.
  const names = [...TRAIN_FILES, TEST_FILE, META_FILE];
  const reads = await Promise.allSettled(names.map((name) => Deno.readFile(join(root, name))));
  const files = reads.map((result, i) => {
    if (result.status === "rejected") throw readError(join(root, names[i]), dir, result.reason);
    return { name: names[i], bytes: result.value };
  });
  const train = parseBatches(files.slice(0, TRAIN_FILES.length));
  const test = parseBatches([files[TRAIN_FILES.length]]);
  const meta = new TextDecoder().decode(files[TRAIN_FILES.length + 1].bytes);
  const classes = parseMeta(META_FILE, meta);
  return { train, test, classes };
}

/** The outcome of {@link verifyDataset}: an empty `problems` list means verified. */
export interface Verification {
  /** True when every file is present and correct. */
  ok: boolean;
  /** One line per problem, naming the file. */
  problems: string[];
}

/**
 * Checks a batches folder: each `.bin` file's SHA-256 against `expected` (default: the
 * official digests), and `batches.meta.txt` against the ten official class names.
 */
export async function verifyDataset(
  dir: string,
  expected: Readonly<Record<string, string>> = OFFICIAL_SHA256,
): Promise<Verification> {
  const problems: string[] = [];
  for (const file of [...TRAIN_FILES, TEST_FILE]) {
    try {
      const digest = await sha256Hex(await Deno.readFile(join(dir, file)));
      if (digest !== expected[file]) {
        problems.push(`${file}: SHA-256 is ${digest}, expected ${expected[file]}`);
      }
    } catch (error) {
      problems.push(
        `${file}: ${error instanceof Deno.errors.NotFound ? "missing" : String(error)}`,
      );
    }
  }
  try {
    const classes = parseMeta(META_FILE, await Deno.readTextFile(join(dir, META_FILE)));
    if (classes.join(",") !== CLASS_NAMES.join(",")) {
      problems.push(
        `${META_FILE}: class names are ${classes.join(", ")}, expected ${CLASS_NAMES.join(", ")}`,
      );
    }
  } catch (error) {
    problems.push(
      `${META_FILE}: ${
        error instanceof Deno.errors.NotFound ? "missing" : (error as Error).message
      }`,
    );
  }
  return { ok: problems.length === 0, problems };
}
