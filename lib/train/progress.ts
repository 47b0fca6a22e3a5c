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
  /** Batches of this epoch done so far (0 once as the epoch is submitted, before any finish). */
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
  /** Seconds since this epoch started, when known (for samples/s). */
  epochElapsed?: number;
  /** Samples per batch, when known (for samples/s). */
  batchSize?: number;
  /**
   * Reads the epoch's running mean training loss (NaN before its first batch) and the batches it
   * covers. It is a GPU readback: a sink calls it only when it shows the value, at most about
   * once a second, and never waits on it in `update`.
   */
  readRunningLoss?: () => Promise<{ meanLoss: number; batches: number }>;
}

/** Receives progress updates; `StderrProgress` is the default. */
export interface ProgressSink {
  /**
   * Called once with batch 0 as an epoch is submitted, then as the GPU finishes chunks of its
   * steps (may be shown or dropped).
   */
  update(state: ProgressState): void;
  /** Called after each epoch (always printed, as a line). */
  epochDone(state: ProgressState): void;
  /** Called once when the run ends (normally, aborted or failed). */
  close(): void;
}

/** How a display is wired: all optional, for tests and embedders. */
export interface ProgressOptions {
  /** Redraw one line in place. Default: whether stderr is a terminal. */
  tty?: boolean;
  /** Milliseconds on a monotonic clock. Default: `performance.now`. */
  now?: () => number;
  /** Where the text goes. Default: stderr. */
  write?: (text: string) => void;
  /** Read and show the running loss. Default: on a terminal only. */
  runningLoss?: boolean;
}

/** Readbacks of the running loss are at least this far apart (a GPU round trip each). */
export const RUNNING_LOSS_INTERVAL_MS = 1000;

/** Shown instead of an ETA until the first chunk of steps finishes. */
export const COMPILING = "compiling kernels (first run only)";

const fmt = (
  v: number | undefined,
  digits = 4,
) => (v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(digits));

function duration(seconds: number): string {
  return seconds >= 60
    ? `${Math.floor(seconds / 60)}m${Math.round(seconds % 60)}s`
    : `${seconds.toFixed(0)}s`;
}

/** Seconds left, and whether the estimate is provisional (no steady-state epochs yet). */
interface Estimate {
  seconds: number;
  provisional: boolean;
}

/**
 * The pace of one run, from the states it reports. The first epoch in a process compiles every
 * kernel (minutes on a software adapter, seconds once warm), so it is left out as soon as a
 * second epoch has finished: the steady pace is the time between the first and the last
 * finished epoch over the epochs between them. Before that the estimate is provisional: within
 * the first epoch, from the chunks after the first (which carried the compilation); once it has
 * finished, from the second epoch's pace so far, else from those chunks (no faster than the first
 * epoch took either way).
 */
export class RunPace {
  #doneAt: number[] = [];
  #firstChunk: { elapsed: number; batch: number } | null = null;
  // Seconds a batch, over the first epoch's chunks after its first.
  #firstEpochPerBatch: number | null = null;

  /** Notes an update. */
  update(state: ProgressState): void {
    if (this.#doneAt.length > 0 || state.batch === 0) return;
    const first = this.#firstChunk;
    if (first === null) this.#firstChunk = { elapsed: state.elapsed, batch: state.batch };
    else if (state.batch > first.batch) {
      this.#firstEpochPerBatch = (state.elapsed - first.elapsed) / (state.batch - first.batch);
    }
  }

  /** Notes a finished epoch. */
  epochDone(state: ProgressState): void {
    this.#doneAt.push(state.elapsed);
  }

  /** True while nothing of the run has finished on the GPU yet. */
  compiling(state: ProgressState): boolean {
    return this.#doneAt.length === 0 && state.done === 0 && state.batch === 0;
  }

  /** Seconds left, or null when there is nothing to go by. */
  remaining(state: ProgressState): Estimate | null {
    const batches = Math.max(1, state.batches);
    const left = (perEpoch: number, provisional: boolean): Estimate => ({
      seconds: Math.max(0, perEpoch * (state.epochs - state.epoch + 1 - state.batch / batches)),
      provisional,
    });
    const n = this.#doneAt.length;
    if (n >= 2) return left((this.#doneAt[n - 1] - this.#doneAt[0]) / (n - 1), false);
    const perBatch = this.#firstEpochPerBatch;
    if (n === 1) {
      const e = state.epochElapsed;
      let perEpoch = this.#doneAt[0];
      if (state.batch > 0 && state.batch < batches && e !== undefined) {
        perEpoch = Math.min(perEpoch, (e * batches) / state.batch);
      } else if (perBatch !== null) perEpoch = Math.min(perEpoch, perBatch * batches);
      return left(perEpoch, true);
    }
    return perBatch === null ? null : left(perBatch * batches, true);
  }

  /** The ETA field: the compiling note, "?", "~4m10s (provisional)" or "4m10s". */
  eta(state: ProgressState): string {
    if (this.compiling(state)) return COMPILING;
    const r = this.remaining(state);
    if (r === null || !Number.isFinite(r.seconds)) return "eta ?";
    return r.provisional
      ? `eta ~${duration(r.seconds)} (provisional)`
      : `eta ${duration(r.seconds)}`;
  }
}

/** Samples a second over the epoch so far (or the whole epoch), when the state says enough. */
export function samplesPerSecond(state: ProgressState): number | undefined {
  const { batchSize, epochElapsed } = state;
  if (batchSize === undefined || epochElapsed === undefined || epochElapsed <= 0) return undefined;
  if (state.batch <= 0) return undefined;
  return (state.batch * batchSize) / epochElapsed;
}

function line(state: ProgressState, pace: RunPace, running?: number): string {
  const width = 20;
  const filled = Math.round(
    (width * (state.epoch - 1 + state.batch / Math.max(1, state.batches))) / state.epochs,
  );
  const bar = "#".repeat(Math.min(width, filled)).padEnd(width, ".");
  const rate = samplesPerSecond(state);
  return `${state.label} [${bar}] epoch ${state.epoch}/${state.epochs} batch ${state.batch}/${state.batches}` +
    ` loss ${fmt(state.trainLoss)} val ${fmt(state.valLoss)} acc ${
      fmt(state.valAccuracy === undefined ? undefined : 100 * state.valAccuracy, 1)
    }%` +
    ` ${pace.eta(state)}` +
    (running === undefined ? "" : ` running ${fmt(running)}`) +
    (rate === undefined ? "" : ` ${rate.toFixed(0)} samples/s`);
}

/**
 * Asks for the running loss at most once per {@link RUNNING_LOSS_INTERVAL_MS}, one read at a
 * time, and keeps the value for the epoch it was asked in (a value that lands after that epoch
 * ended is dropped). `onValue` redraws; a failed read shows nothing (the epoch's own read
 * reports the error).
 */
class RunningLossReader {
  readonly #now: () => number;
  readonly #onValue: () => void;
  #asked = -Infinity;
  #inFlight = false;
  #epoch = 0;
  #value: number | undefined;

  constructor(now: () => number, onValue: () => void) {
    this.#now = now;
    this.#onValue = onValue;
  }

  /** The value for `epoch`, if one arrived. */
  value(epoch: number): number | undefined {
    return epoch === this.#epoch ? this.#value : undefined;
  }

  update(state: ProgressState): void {
    if (state.epoch !== this.#epoch) {
      this.#epoch = state.epoch;
      this.#value = undefined;
    }
    const read = state.readRunningLoss;
    if (read === undefined || state.batch === 0 || this.#inFlight) return;
    if (this.#now() - this.#asked < RUNNING_LOSS_INTERVAL_MS) return;
    this.#asked = this.#now();
    this.#inFlight = true;
    const epoch = state.epoch;
    read().then((r) => {
      this.#inFlight = false;
      if (epoch !== this.#epoch || !Number.isFinite(r.meanLoss)) return;
      this.#value = r.meanLoss;
      this.#onValue();
    }, () => {
      this.#inFlight = false;
    });
  }

  /** The epoch ended: its value is no longer current. */
  epochDone(): void {
    this.#epoch = -1;
    this.#value = undefined;
  }
}

/** Progress on stderr, TTY-aware. */
export class StderrProgress implements ProgressSink {
  readonly #tty: boolean;
  readonly #now: () => number;
  readonly #write: (text: string) => void;
  readonly #pace = new RunPace();
  readonly #running: RunningLossReader | null;
  #last: ProgressState | null = null;
  #lastPlain = 0;
  #dirty = false;
  #closed = false;

  /** A display on stderr; `options` swap the terminal check, clock and writer (tests). */
  constructor(options: ProgressOptions = {}) {
    this.#tty = options.tty ?? Deno.stderr.isTerminal();
    this.#now = options.now ?? (() => performance.now());
    this.#write = options.write ?? writeStderr;
    this.#running = (options.runningLoss ?? this.#tty)
      ? new RunningLossReader(this.#now, () => this.#redraw())
      : null;
  }

  #redraw(): void {
    if (this.#closed || !this.#tty || this.#last === null) return;
    this.#write(`\r\x1b[2K${line(this.#last, this.#pace, this.#running?.value(this.#last.epoch))}`);
    this.#dirty = true;
  }

  update(state: ProgressState): void {
    this.#pace.update(state);
    this.#running?.update(state);
    this.#last = state;
    if (this.#tty) this.#redraw();
    else if (state.batch > 0 && this.#now() - this.#lastPlain > 10_000) {
      this.#lastPlain = this.#now();
      this.#write(`${line(state, this.#pace, this.#running?.value(state.epoch))}\n`);
    }
  }

  epochDone(state: ProgressState): void {
    this.#pace.epochDone(state);
    this.#running?.epochDone();
    this.#last = null;
    if (this.#tty) this.#write(`\r\x1b[2K`);
    this.#dirty = false;
    this.#write(`${line(state, this.#pace)}\n`);
  }

  close(): void {
    this.#closed = true;
    if (this.#tty && this.#dirty) this.#write("\n");
    this.#dirty = false;
  }
}

/** A sink that shows nothing (tests, libraries). */
export const silentProgress: ProgressSink = { update() {}, epochDone() {}, close() {} };

/**
 * One stderr display for runs trained side by side (the experiment's concurrent variants): on a
 * terminal a single redrawn line with every run's position, on a pipe a plain line now and then;
 * each finished epoch is printed as its own line, as `StderrProgress` prints it. Hand each
 * run its own {@link ProgressBoard.sink}; the display closes when the last sink does.
 */
export class ProgressBoard {
  readonly #tty: boolean;
  readonly #now: () => number;
  readonly #write: (text: string) => void;
  readonly #readsRunningLoss: boolean;
  readonly #runs = new Map<ProgressSink, BoardRun>();
  #open = 0;
  #lastDraw = 0;
  #dirty = false;

  /** One display for every sink it hands out; `options` as for `StderrProgress`. */
  constructor(options: ProgressOptions = {}) {
    this.#tty = options.tty ?? Deno.stderr.isTerminal();
    this.#now = options.now ?? (() => performance.now());
    this.#write = options.write ?? writeStderr;
    this.#readsRunningLoss = options.runningLoss ?? this.#tty;
  }

  #summary(): string {
    const runs = [...this.#runs.values()].filter((r) => r.state !== null);
    const parts = runs.map(({ state: s, pace, running }) => {
      const head = `${s!.label} ${s!.epoch}/${s!.epochs}`;
      if (pace.compiling(s!)) return `${head} compiling`;
      const now = running?.value(s!.epoch);
      const rate = samplesPerSecond(s!);
      return `${head} ${Math.floor((100 * s!.batch) / Math.max(1, s!.batches))}% loss ${
        fmt(now ?? s!.trainLoss, 3)
      }${now === undefined ? "" : "~"}${rate === undefined ? "" : ` ${rate.toFixed(0)}/s`}`;
    });
    let eta = "eta ?";
    if (runs.some((r) => r.pace.compiling(r.state!))) eta = COMPILING;
    else {
      let slowest: Estimate | null = null;
      for (const r of runs) {
        const e = r.pace.remaining(r.state!);
        if (e !== null && (slowest === null || e.seconds > slowest.seconds)) slowest = e;
      }
      if (slowest !== null && Number.isFinite(slowest.seconds)) {
        const provisional = runs.some((r) => r.pace.remaining(r.state!)?.provisional !== false);
        eta = provisional
          ? `eta ~${duration(slowest.seconds)} (provisional)`
          : `eta ${duration(slowest.seconds)}`;
      }
    }
    return `${parts.join(" | ")} ${eta}`;
  }

  #draw(force: boolean): void {
    const now = this.#now();
    if (this.#tty) {
      if (!force && now - this.#lastDraw < 100) return;
      this.#write(`\r\x1b[2K${this.#summary()}`);
      this.#dirty = true;
    } else {
      if (now - this.#lastDraw < 10_000) return;
      this.#write(`${this.#summary()}\n`);
    }
    this.#lastDraw = now;
  }

  /** A sink for one run; its `close()` ends that run's part of the display. */
  sink(): ProgressSink {
    this.#open++;
    let closed = false;
    const run: BoardRun = { state: null, pace: new RunPace(), running: null };
    if (this.#readsRunningLoss) {
      run.running = new RunningLossReader(this.#now, () => {
        if (!closed && this.#tty) this.#draw(true);
      });
    }
    const sink: ProgressSink = {
      update: (state) => {
        run.state = state;
        run.pace.update(state);
        run.running?.update(state);
        this.#runs.set(sink, run);
        this.#draw(false);
      },
      epochDone: (state) => {
        run.state = state;
        run.pace.epochDone(state);
        run.running?.epochDone();
        this.#runs.set(sink, run);
        if (this.#tty && this.#dirty) this.#write(`\r\x1b[2K`);
        this.#dirty = false;
        this.#write(`${line(state, run.pace)}\n`);
        if (this.#tty) this.#draw(true);
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.#runs.delete(sink);
        if (--this.#open === 0 && this.#tty && this.#dirty) {
          this.#write("\n");
          this.#dirty = false;
        }
      },
    };
    return sink;
  }
}

/** One run on a board: its last state, pace and running-loss reader. */
interface BoardRun {
  state: ProgressState | null;
  pace: RunPace;
  running: RunningLossReader | null;
}
