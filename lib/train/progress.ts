/**
 * A progress display on stderr: a redrawn line on a terminal, occasional plain lines otherwise
 * (CI logs, pipes), so it never floods a log file with carriage returns.
 *
 * @module
 */

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

function eta(state: ProgressState): string {
  if (state.done === 0) return "?";
  const perEpoch = state.elapsed / state.done;
  const left = Math.max(
    0,
    perEpoch * (state.epochs - state.epoch) +
      perEpoch * (1 - state.batch / Math.max(1, state.batches)),
  );
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
  readonly #encoder = new TextEncoder();
  #lastPlain = 0;
  #dirty = false;

  constructor() {
    this.#tty = Deno.stderr.isTerminal();
  }

  #write(text: string): void {
    Deno.stderr.writeSync(this.#encoder.encode(text));
  }

  update(state: ProgressState): void {
    if (this.#tty) {
      this.#write(`\r\x1b[2K${line(state)}`);
      this.#dirty = true;
    } else if (performance.now() - this.#lastPlain > 10_000) {
      this.#lastPlain = performance.now();
      this.#write(`${line(state)}\n`);
    }
  }

  epochDone(state: ProgressState): void {
    if (this.#tty) this.#write(`\r\x1b[2K`);
    this.#dirty = false;
    this.#write(`${line(state)}\n`);
  }

  close(): void {
    if (this.#tty && this.#dirty) this.#write("\n");
  }
}

/** A sink that shows nothing (tests, libraries). */
export const silentProgress: ProgressSink = { update() {}, epochDone() {}, close() {} };
