/**
 * CIFAR-10's binary format, with no file access: the layout's constants, the class names, the
 * official digests, and parsing of batch files already in memory. The browser build takes its
 * CIFAR-10 from here (a page fetches the files or the user picks them); `cifar10.ts` adds the
 * reading and verification of a folder on disk and re-exports all of this.
 *
 * Each `.bin` file is a run of 3,073-byte records: one label byte (0–9), then a 32×32 red
 * plane, a green plane and a blue plane, each row-major (CHW). Images stay uint8 here; the
 * GPU loader turns them into f32 in [0, 1].
 *
 * @module
 */

/** Bytes of one image (3 channels × 32 × 32). */
export const IMAGE_BYTES = 3072;
/** Bytes of one record: the label byte, then the image. */
export const RECORD_BYTES = 3073;
/** Number of classes. */
export const NUM_CLASSES = 10;
/** The folder the official archive extracts to. */
export const BATCHES_DIR = "cifar-10-batches-bin";
/** Training batch files, in order. */
export const TRAIN_FILES = [
  "data_batch_1.bin",
  "data_batch_2.bin",
  "data_batch_3.bin",
  "data_batch_4.bin",
  "data_batch_5.bin",
] as const;
/** The test batch file. */
export const TEST_FILE = "test_batch.bin";
/** The class-names file. */
export const META_FILE = "batches.meta.txt";
/** Every file a complete dataset folder holds. */
export const DATASET_FILES = [...TRAIN_FILES, TEST_FILE, META_FILE] as const;
/**
 * The official class names, label 0 first (as in `batches.meta.txt`).
 *
 * @example Name a label
 * ```ts
 * import { CLASS_NAMES } from "@wgnn/wgnn/data";
 * import { equal } from "node:assert/strict";
 *
 * equal(CLASS_NAMES.length, 10);
 * equal(CLASS_NAMES[6], "frog");
 * equal(CLASS_NAMES.indexOf("truck"), 9);
 * ```
 */
export const CLASS_NAMES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
] as const;

/** SHA-256 of the official `.bin` files (they equal the files in the official archive). */
export const OFFICIAL_SHA256: Readonly<Record<string, string>> = {
  "data_batch_1.bin": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
  "data_batch_2.bin": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
  "data_batch_3.bin": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
  "data_batch_4.bin": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
  "data_batch_5.bin": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
  "test_batch.bin": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
};

/**
 * Images and labels of one split, images CHW uint8, `count × 3072` bytes, on the host.
 *
 * @example The red, green and blue values of one pixel
 * ```ts
 * import type { ImageSet } from "@wgnn/wgnn/data";
 * import { deepEqual } from "node:assert/strict";
 *
 * function pixel(set: ImageSet, image: number, row: number, col: number): number[] {
 *   const at = image * 3072 + row * 32 + col; // planes of 1024 bytes: red, green, blue
 *   return [set.images[at], set.images[at + 1024], set.images[at + 2048]];
 * }
 * const set: ImageSet = {
 *   images: new Uint8Array(3072).fill(7),
 *   labels: Uint8Array.of(3),
 *   count: 1,
 * };
 * deepEqual(pixel(set, 0, 31, 31), [7, 7, 7]);
 * ```
 */
export interface ImageSet {
  /** `count × 3072` bytes: image i starts at byte `i × 3072`, red plane first. */
  images: Uint8Array;
  /** One label (0–9) per image. */
  labels: Uint8Array;
  /** Number of images. */
  count: number;
}

/**
 * The whole dataset, as `loadCifar10` returns it.
 *
 * @example Class balance of the training set
 * ```ts
 * import type { Cifar10 } from "@wgnn/wgnn/data";
 *
 * function balance(data: Cifar10): Record<string, number> {
 *   const counts: Record<string, number> = {};
 *   for (const label of data.train.labels) {
 *     counts[data.classes[label]] = (counts[data.classes[label]] ?? 0) + 1;
 *   }
 *   return counts; // 5,000 of each class for CIFAR-10
 * }
 * ```
 */
export interface Cifar10 {
  /** 50,000 training images (data_batch_1 … 5, in order). */
  train: ImageSet;
  /** 10,000 test images. */
  test: ImageSet;
  /** Class names, label 0 first. */
  classes: string[];
}

/**
 * Parses one binary batch file into labels and CHW images.
 * Throws naming `name` and the record when the size is not a whole number of records or a
 * label is outside 0–9.
 *
 * @example Two records, and a bad label
 * ```ts
 * import { parseBatch } from "@wgnn/wgnn/data";
 * import { deepEqual, equal, throws } from "node:assert/strict";
 *
 * const bytes = new Uint8Array(2 * 3073); // two records: a label byte, then 3,072 image bytes
 * bytes[3073] = 6; // the second image is a frog
 * bytes[3073 + 1] = 255; // its top-left red value
 * const set = parseBatch("two.bin", bytes);
 * equal(set.count, 2);
 * deepEqual(set.labels, Uint8Array.of(0, 6));
 * equal(set.images[3072], 255);
 *
 * bytes[0] = 12;
 * throws(() => parseBatch("two.bin", bytes), {
 *   message: 'Cannot parse "two.bin": record 0 has label 12 (expected 0-9)',
 * });
 * ```
 */
export function parseBatch(name: string, bytes: Uint8Array): ImageSet {
  const count = recordCount(name, bytes);
  const set = { images: new Uint8Array(count * IMAGE_BYTES), labels: new Uint8Array(count), count };
  parseInto(name, bytes, set, 0);
  return set;
}

/** Checks a batch file's size and returns its number of records. */
function recordCount(name: string, bytes: Uint8Array): number {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot parse "${name}": expected a Uint8Array: current value is ${typeof bytes}`,
    );
  }
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0) {
    throw new RangeError(
      `Cannot parse "${name}": its size of ${bytes.length} bytes is not a positive multiple of ${RECORD_BYTES} (one record)`,
    );
  }
  return bytes.length / RECORD_BYTES;
}

/** Parses the records of `bytes` into `set` from image `first` on (no intermediate copy). */
function parseInto(name: string, bytes: Uint8Array, set: ImageSet, first: number): void {
  const count = recordCount(name, bytes);
  for (let i = 0; i < count; i++) {
    const at = i * RECORD_BYTES;
    const label = bytes[at];
    if (label >= NUM_CLASSES) {
      throw new RangeError(`Cannot parse "${name}": record ${i} has label ${label} (expected 0-9)`);
    }
    set.labels[first + i] = label;
    set.images.set(bytes.subarray(at + 1, at + RECORD_BYTES), (first + i) * IMAGE_BYTES);
  }
}

/**
 * Parses several batch files into one set, in order (the five training files give the 50,000
 * training images). Throws as {@link parseBatch}, naming the file.
 *
 * @example Two files, one set
 * ```ts
 * import { parseBatches } from "./cifar10_format.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const one = new Uint8Array(3073).fill(1); // label 1, every value 1
 * const two = new Uint8Array(2 * 3073); // two records of label 0
 * const set = parseBatches([{ name: "one.bin", bytes: one }, { name: "two.bin", bytes: two }]);
 * deepEqual(set.labels, Uint8Array.of(1, 0, 0));
 * ```
 */
export function parseBatches(files: readonly { name: string; bytes: Uint8Array }[]): ImageSet {
  const count = files.reduce((n, f) => n + recordCount(f.name, f.bytes), 0);
  const set = { images: new Uint8Array(count * IMAGE_BYTES), labels: new Uint8Array(count), count };
  let first = 0;
  for (const f of files) {
    parseInto(f.name, f.bytes, set, first);
    first += f.bytes.length / RECORD_BYTES;
  }
  return set;
}

/**
 * Parses `batches.meta.txt`: one class name per line, label 0 first; empty lines (the file
 * ends with one) are skipped. Throws unless exactly ten names remain.
 */
export function parseMeta(name: string, text: string): string[] {
  const classes = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  if (classes.length !== NUM_CLASSES) {
    throw new RangeError(
      `Cannot parse "${name}": expected ${NUM_CLASSES} class names: found ${classes.length}`,
    );
  }
  return classes;
}

/** Lower-case hex SHA-256 of `bytes` (WebCrypto). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Counts images per class (index = label). */
export function classCounts(labels: Uint8Array): number[] {
  const counts = new Array<number>(NUM_CLASSES).fill(0);
  for (const l of labels) counts[l] += 1;
  return counts;
}
