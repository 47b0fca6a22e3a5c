/**
 * A progress display on stderr: a redrawn line on a terminal, occasional plain lines otherwise
 * (CI logs, pipes), so it never floods a log file with carriage returns.
 *
 * @module
 */

import { writeStderr } from "../io/stderr.ts";

/** What the training loop reports. */
export interface ProgressState {
  /** The run's name (the variant). */
  label: string;
  /** The epoch under way, 1-based. */
  epoch: number;
  /** Epochs in the whole run. */
  epochs: number;
  /** Batches of this epoch done so far. */
  batch: number;
  /** Batches per epoch. */
  batches: number;
  /** The last epoch's mean training loss, once there is one. */
  trainLoss?: number;
  /** The last validation loss, once there is one. */
  valLoss?: number;
  /** The last validation accuracy in [0, 1], once there is one. */
  valAccuracy?: number;
  /** Seconds since the run started. */
  elapsed: number;
  /** Epochs completed in this process (for the ETA). */
  done: number;
}

/** Receives progress updates; {@link StderrProgress} is the default. */
export interface ProgressSink {
  /** Called as the GPU finishes chunks of an epoch's steps (may be shown or dropped). */
  update(state: ProgressState): void;
  /** Called after each epoch (always printed, as a line). */
  epochDone(state: ProgressState): void;
  /** Called once when the run ends (normally, aborted or failed). */
  close(): void;
}

const fmt = (
  v: number | undefined,
  digits = 4,
) => (v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(digits));

/** Seconds left, from the pace of the epochs done so far (Infinity before the first). */
function remaining(state: ProgressState): number {
  if (state.done === 0) return Infinity;
  const perEpoch = state.elapsed / state.done;
  return Math.max(
    0,
    perEpoch * (state.epochs - state.epoch) +
      perEpoch * (1 - state.batch / Math.max(1, state.batches)),
  );
}

function eta(state: ProgressState): string {
  const left = remaining(state);
  if (!Number.isFinite(left)) return "?";
  return left >= 60 ? `${Math.floor(left / 60)}m${Math.round(left % 60)}s` : `${left.toFixed(0)}s`;
}

function line(state: ProgressState): string {
  const width = 20;
  const filled = Math.round(
    (width * (state.epoch - 1 + state.batch / Math.max(1, state.batches))) / state.epochs,
  );
  const bar = "#".repeat(Math.min(width, filled)).padEnd(width, ".");
  return `${state.label} [${bar}] epoch ${state.epoch}/${state.epochs} batch ${state.batch}/${state.batches}` +
    ` loss ${fmt(state.trainLoss)} val ${fmt(state.valLoss)} acc ${
      fmt(state.valAccuracy === undefined ? undefined : 100 * state.valAccuracy, 1)
    }%` +
    ` eta ${eta(state)}`;
}

/** Progress on stderr, TTY-aware. */
export class StderrProgress implements ProgressSink {
  readonly #tty: boolean;
  #lastPlain = 0;
  #dirty = false;

  constructor() {
    this.#tty = Deno.stderr.isTerminal();
  }

  update(state: ProgressState): void {
    if (this.#tty) {
      writeStderr(`\r\x1b[2K${line(state)}`);
      this.#dirty = true;
    } else if (performance.now() - this.#lastPlain > 10_000) {
      this.#lastPlain = performance.now();
      writeStderr(`${line(state)}\n`);
    }
  }

  epochDone(state: ProgressState): void {
    if (this.#tty) writeStderr(`\r\x1b[2K`);
    this.#dirty = false;
    writeStderr(`${line(state)}\n`);
  }

  close(): void {
    if (this.#tty && this.#dirty) writeStderr("\n");
  }
}

/** A sink that shows nothing (tests, libraries). */
export const silentProgress: ProgressSink = { update() {}, epochDone() {}, close() {} };

/**
 * One stderr display for runs trained side by side (the experiment's concurrent variants): on a
 * terminal a single redrawn line with every run's position, on a pipe a plain line now and then;
 * each finished epoch is printed as its own line, as {@link StderrProgress} prints it. Hand each
 * run its own {@link ProgressBoard.sink}; the display closes when the last sink does.
 */
export class ProgressBoard {
  readonly #tty: boolean;
  readonly #runs = new Map<ProgressSink, ProgressState>();
  #open = 0;
  #lastDraw = 0;
  #dirty = false;

  constructor() {
    this.#tty = Deno.stderr.isTerminal();
  }

  #summary(): string {
    const runs = [...this.#runs.values()];
    const parts = runs.map((s) =>
      `${s.label} ${s.epoch}/${s.epochs} ${
        Math.floor((100 * s.batch) / Math.max(1, s.batches))
      }% loss ${fmt(s.trainLoss, 3)}`
    );
    const etas = runs.filter((s) => s.done > 0);
    const slowest = etas.reduce<ProgressState | null>(
      (a, s) => (a === null || remaining(s) > remaining(a) ? s : a),
      null,
    );
    return `${parts.join(" | ")} eta ${slowest === null ? "?" : eta(slowest)}`;
  }

  #draw(force: boolean): void {
    const now = performance.now();
    if (this.#tty) {
      if (!force && now - this.#lastDraw < 100) return;
      writeStderr(`\r\x1b[2K${this.#summary()}`);
      this.#dirty = true;
    } else {
      if (now - this.#lastDraw < 10_000) return;
      writeStderr(`${this.#summary()}\n`);
    }
    this.#lastDraw = now;
  }

  /** A sink for one run; its `close()` ends that run's part of the display. */
  sink(): ProgressSink {
    this.#open++;
    let closed = false;
    const sink: ProgressSink = {
      update: (state) => {
        this.#runs.set(sink, state);
        this.#draw(false);
      },
      epochDone: (state) => {
        this.#runs.set(sink, state);
        if (this.#tty && this.#dirty) writeStderr(`\r\x1b[2K`);
        this.#dirty = false;
        writeStderr(`${line(state)}\n`);
        if (this.#tty) this.#draw(true);
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.#runs.delete(sink);
        if (--this.#open === 0 && this.#tty && this.#dirty) {
          writeStderr("\n");
          this.#dirty = false;
        }
      },
    };
    return sink;
  }
}
