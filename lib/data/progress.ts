/**
 * Byte progress on stderr: a redrawn bar (bytes, rate, ETA) on a terminal, occasional plain
 * lines otherwise (CI logs, pipes), so logs stay short and readable.
 *
 * @module
 */

import { writeStderr } from "../io/stderr.ts";

/**
 * Options of the byte progress display of a download (`Progress`; `data.ts` exports this type
 * for {@link DownloadOptions.progress}).
 *
 * @example Progress lines into a log instead of stderr
 * ```ts
 * import { downloadCifar10, type ProgressOptions } from "@wgnn/wgnn/data";
 *
 * async function fetchLogged(log: string[]): Promise<void> {
 *   const progress: ProgressOptions = { tty: false, write: (text) => log.push(text) };
 *   await downloadCifar10("data", { progress, log: (line) => log.push(line) });
 * }
 * ```
 */
export interface ProgressOptions {
  /**
   * Expected total bytes, when known (enables the bar, percentage and ETA). Default: none
   * (bytes and rate only).
   */
  total?: number;
  /** Where text goes. Default: stderr. */
  write?: (text: string) => void;
  /** Redraw in place (a terminal). Default: `Deno.stderr.isTerminal()`. */
  tty?: boolean;
  /** Clock in milliseconds. Default: `performance.now`. */
  now?: () => number;
}

const MiB = 1024 * 1024;

function isTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** Formats seconds as m:ss. */
function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?:??";
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * Reports bytes as they arrive.
 *
 * @example Plain lines (not a terminal), every tenth of the total
 * ```ts
 * import { Progress } from "./progress.ts";
 * import { equal, ok } from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const MiB = 1024 * 1024;
 * const bar = new Progress("download", {
 *   total: 100 * MiB,
 *   tty: false,
 *   write: (text) => lines.push(text),
 * });
 * bar.update(50 * MiB);
 * bar.done();
 * equal(lines.length, 2);
 * ok(lines[0].startsWith("download:  50% 50.0/100.0 MiB"), lines[0]);
 * ok(lines[1].endsWith("(done)\n"), lines[1]);
 * ```
 */
export class Progress {
  readonly #label: string;
  readonly #total: number | undefined;
  readonly #write: (text: string) => void;
  readonly #tty: boolean;
  readonly #now: () => number;
  readonly #start: number;
  #bytes = 0;
  #lastDraw = -Infinity;
  #lastStep = 0;

  /** Starts the clock; `label` prefixes every line. */
  constructor(label: string, options: ProgressOptions = {}) {
    this.#label = label;
    this.#total = options.total && options.total > 0 ? options.total : undefined;
    this.#write = options.write ?? writeStderr;
    this.#tty = options.tty ?? isTerminal();
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  /** Bytes counted so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The status text: bytes, rate and (with a total) percentage and ETA. */
  line(): string {
    const seconds = Math.max((this.#now() - this.#start) / 1000, 1e-3);
    const rate = this.#bytes / seconds;
    const got = `${(this.#bytes / MiB).toFixed(1)}`;
    if (this.#total === undefined) {
      return `${this.#label}: ${got} MiB, ${(rate / MiB).toFixed(1)} MiB/s`;
    }
    const share = Math.min(this.#bytes / this.#total, 1);
    const width = 24;
    const filled = Math.round(share * width);
    const bar = this.#tty ? `[${"#".repeat(filled)}${".".repeat(width - filled)}] ` : "";
    const eta = rate > 0 ? (this.#total - this.#bytes) / rate : Infinity;
    return `${this.#label}: ${bar}${(share * 100).toFixed(0).padStart(3)}% ${got}/${
      (this.#total / MiB).toFixed(1)
    } MiB, ${(rate / MiB).toFixed(1)} MiB/s, ETA ${clock(eta)}`;
  }

  /** Adds `bytes`; redraws at most 10 times a second on a terminal, else every 10%. */
  update(bytes: number): void {
    this.#bytes += bytes;
    const t = this.#now();
    if (this.#tty) {
      if (t - this.#lastDraw < 100) return;
      this.#lastDraw = t;
      this.#write(`\r${this.line()}\x1b[K`);
      return;
    }
    // Plain output: one line per tenth of the total, or per 32 MiB when the total is unknown.
    const step = this.#total === undefined
      ? Math.floor(this.#bytes / (32 * MiB))
      : Math.floor((this.#bytes / this.#total) * 10);
    if (step > this.#lastStep) {
      this.#lastStep = step;
      this.#write(`${this.line()}\n`);
    }
  }

  /** Writes the final line. */
  done(): void {
    this.#write(this.#tty ? `\r${this.line()}\x1b[K\n` : `${this.line()} (done)\n`);
  }
}
