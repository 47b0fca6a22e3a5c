/**
 * A run folder ({@link fit}'s `checkpointDir`): the files that make a run, its manifest, its
 * lock, and the checks that can be made before the first epoch.
 *
 * | file | what it is |
 * | --- | --- |
 * | `resume.safetensors` | the checkpoint: weights, optimizer state, position and history of one epoch, committed by one rename |
 * | `run.json` | the manifest: run id, toolkit version, adapter and the settings `--resume` must match |
 * | `last.safetensors` | the committed weights again, PyTorch-loadable (rewritten after each commit) |
 * | `best.safetensors` | the weights of the lowest validation loss |
 * | `history.json`, `history.csv` | the committed history, for plots and people |
 * | `run.lock` | exists while a run writes the folder: an OS file lock, naming its pid |
 *
 * @module
 */

import { dirname, join } from "node:path";
import { writeTextFileAtomic } from "../io/atomic.ts";

/** File names inside a run folder. */
export const RUN_FILES = {
  resume: "resume.safetensors",
  manifest: "run.json",
  last: "last.safetensors",
  best: "best.safetensors",
  history: "history.json",
  historyCsv: "history.csv",
  lock: "run.lock",
} as const;

/** The optimizer file of runs written before `resume.safetensors` existed. */
export const LEGACY_OPTIMIZER_FILE = "last.optim.safetensors";

/** Files whose presence means the folder holds a run's work (the lock is not work). */
const WORK_FILES = [
  RUN_FILES.resume,
  RUN_FILES.manifest,
  RUN_FILES.last,
  RUN_FILES.best,
  RUN_FILES.history,
  RUN_FILES.historyCsv,
  LEGACY_OPTIMIZER_FILE,
];

/**
 * What a run was trained with, recorded in its manifest and compared on resume: any change is
 * refused by name. The number of epochs is not a setting (extending a run is allowed).
 */
export type RunSettings = Record<string, string | number | boolean>;

/** `run.json`: written with a run's first checkpoint. */
export interface RunManifest {
  /** Format tag, `"wgnn-run/1"`. */
  format: "wgnn-run/1";
  /** Random id of the run; every checkpoint and history of the run carries it. */
  runId: string;
  /** The toolkit version that started the run. */
  toolkit: string;
  /** When the run started (ISO 8601). */
  created: string;
  /** The adapter the run started on. */
  adapter: string;
  /** The settings `--resume` must match. */
  settings: RunSettings;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function isSettings(value: unknown): value is RunSettings {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.values(value).every((v) => ["string", "number", "boolean"].includes(typeof v));
}

/** Reads `<dir>/run.json`; null when there is none. Throws a RangeError naming a bad file. */
export async function readManifest(dir: string): Promise<RunManifest | null> {
  const path = join(dir, RUN_FILES.manifest);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new RangeError(`Cannot read "${path}": ${(error as Error).message}`);
  }
  let m: Partial<RunManifest>;
  try {
    m = JSON.parse(text);
  } catch (error) {
    throw new RangeError(`Cannot read "${path}": not valid JSON (${(error as Error).message})`);
  }
  if (
    m?.format !== "wgnn-run/1" || typeof m.runId !== "string" || !isSettings(m.settings) ||
    typeof m.toolkit !== "string" || typeof m.created !== "string" || typeof m.adapter !== "string"
  ) {
    throw new RangeError(
      `Cannot read "${path}": not a wgnn run manifest (format, runId, toolkit, created, adapter, settings)`,
    );
  }
  return m as RunManifest;
}

/** Writes `<dir>/run.json` atomically. */
export async function writeManifest(dir: string, manifest: RunManifest): Promise<void> {
  await writeTextFileAtomic(
    join(dir, RUN_FILES.manifest),
    JSON.stringify(manifest, null, 1) + "\n",
  );
}

/**
 * The settings that differ, one phrase each (`lr was 0.001, now 0.01`); empty when none.
 *
 * @example
 * ```ts
 * import { settingsDiff } from "./run_dir.ts";
 * console.assert(settingsDiff({ lr: 0.001 }, { lr: 0.01 })[0] === "lr was 0.001, now 0.01");
 * ```
 */
export function settingsDiff(saved: RunSettings, current: RunSettings): string[] {
  const show = (v: string | number | boolean | undefined) =>
    v === undefined ? "not set" : typeof v === "string" ? JSON.stringify(v) : String(v);
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])];
  return keys.filter((k) => saved[k] !== current[k]).map((k) =>
    `${k} was ${show(saved[k])}, now ${show(current[k])}`
  );
}

/** The run files present in `dir` (none when the folder does not exist). */
export async function runFilesIn(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of WORK_FILES) if (await statOrNull(join(dir, name))) found.push(name);
  return found;
}

/** Removes a run's files from `dir` (for starting afresh over it on purpose). */
export async function clearRun(dir: string): Promise<void> {
  for (const name of await runFilesIn(dir)) await Deno.remove(join(dir, name));
}

/**
 * Checks what can be known before training about writing `files` (default: a run's) into `dir`,
 * without leaving a trace: it is a folder, or its nearest existing parent is; that folder can be
 * listed and written; none of the file names is taken by a folder or denied to this process.
 * Throws a RangeError naming the path.
 */
export async function checkRunFolder(
  dir: string,
  files: readonly string[] = Object.values(RUN_FILES),
): Promise<void> {
  const fail = (path: string, why: string): never => {
    throw new RangeError(`Cannot use "${path}" for training output: ${why}`);
  };
  const message = (error: unknown) => (error as Error).message;
  let existing = dir;
  for (;;) {
    const info = await statOrNull(existing).catch((e) => fail(existing, message(e)));
    if (info && !info.isDirectory) fail(existing, "it is a file, not a folder");
    if (info) break;
    const parent = dirname(existing);
    if (parent === existing) fail(dir, "no part of the path exists");
    existing = parent;
  }
  try {
    for await (const _ of Deno.readDir(existing)) break;
    const probe = await Deno.makeTempFile({ dir: existing, prefix: ".write-check-" });
    await Deno.remove(probe);
  } catch (error) {
    fail(existing, message(error));
  }
  for (const name of files) {
    const path = join(dir, name);
    const file = await statOrNull(path).catch((e) => fail(path, message(e)));
    if (file && !file.isFile) fail(path, "it is a folder, not a file");
    if (Deno.permissions.querySync({ name: "write", path }).state !== "granted") {
      fail(path, "no permission to write it (--allow-write)");
    }
  }
}

/** What a lock file says about the run holding it. */
export interface LockHolder {
  /** The holder's process id. */
  pid: number;
  /** When it took the lock (ISO 8601). */
  started: string;
}

/**
 * The lock of a run folder: an OS advisory lock on `<dir>/run.lock`, which the kernel releases
 * when the holding process dies, so a lock can never be left stuck. The file names the holder's
 * pid for messages and is removed on release; a file that names a pid while its lock is free
 * belonged to a run that died, and {@link RunLock.stale} says so.
 */
export class RunLock {
  /** The locked folder. */
  readonly dir: string;
  /** The previous holder when it died holding the lock (taken over), else null. */
  readonly stale: LockHolder | null;
  #file: Deno.FsFile | null;
  #createdDir: boolean;

  private constructor(
    dir: string,
    file: Deno.FsFile,
    stale: LockHolder | null,
    createdDir: boolean,
  ) {
    this.dir = dir;
    this.#file = file;
    this.stale = stale;
    this.#createdDir = createdDir;
  }

  /**
   * Locks `dir` (created if missing) for this process. Throws a RangeError naming the folder and
   * the holder's pid when another run holds it.
   */
  static async acquire(dir: string): Promise<RunLock> {
    const path = join(dir, RUN_FILES.lock);
    const createdDir = (await statOrNull(dir)) === null;
    await Deno.mkdir(dir, { recursive: true });
    for (;;) {
      const file = await Deno.open(path, { read: true, write: true, create: true });
      try {
        if (!(await file.tryLock(true))) {
          const holder = parseHolder(await readAll(file));
          throw new RangeError(
            `Cannot train in "${dir}": another run ${
              holder ? `(pid ${holder.pid}, started ${holder.started}) ` : ""
            }is writing it (it holds "${path}"); wait for it to end or use another folder`,
          );
        }
        // The holder before us may have removed the file between our open and our lock: then
        // we hold a lock on a file nobody else will open. Start again on the one at `path`.
        const [held, current] = await Promise.all([file.stat(), statOrNull(path)]);
        if (current === null || held.ino !== current.ino) {
          file.close();
          continue;
        }
        const stale = parseHolder(await readAll(file));
        const me: LockHolder = { pid: Deno.pid, started: new Date().toISOString() };
        await file.truncate(0);
        await file.seek(0, Deno.SeekMode.Start);
        await file.write(new TextEncoder().encode(JSON.stringify(me) + "\n"));
        return new RunLock(dir, file, stale, createdDir);
      } catch (error) {
        file.close();
        throw error;
      }
    }
  }

  /** What to tell the user when the lock was taken over from a run that died; null otherwise. */
  staleNotice(label: string): string | null {
    const s = this.stale;
    return s &&
      `${label}: taking over "${this.dir}" from run pid ${s.pid} (started ${s.started}), which ended without releasing it`;
  }

  /**
   * Removes the lock file (while still holding it) and releases the lock; removes the folder too
   * when the lock created it and nothing was written there. Idempotent.
   */
  async release(): Promise<void> {
    const file = this.#file;
    if (!file) return;
    this.#file = null;
    try {
      await Deno.remove(join(this.dir, RUN_FILES.lock)).catch(() => {});
    } finally {
      file.close();
    }
    if (this.#createdDir) await Deno.remove(this.dir).catch(() => {}); // fails when not empty
  }
}

async function readAll(file: Deno.FsFile): Promise<string> {
  await file.seek(0, Deno.SeekMode.Start);
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(256);
  for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) {
    chunks.push(buffer.slice(0, n));
    if (chunks.length > 16) break; // a lock file is one short line
  }
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
}

function parseHolder(text: string): LockHolder | null {
  try {
    const h = JSON.parse(text);
    return Number.isInteger(h?.pid) && typeof h?.started === "string"
      ? { pid: h.pid, started: h.started }
      : null;
  } catch {
    return null;
  }
}
