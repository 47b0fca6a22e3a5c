/**
 * When `fit` commits its checkpoint: after every epoch, or, with `checkpointSeconds`, at most
 * that often. A deferred epoch is committed when the run ends, stops early or is aborted (the
 * model still holds its weights until the next epoch trains); `best.safetensors` is written
 * whenever the validation loss improves, deferred or not. The manifest goes with the first
 * commit.
 *
 * @module
 */

import type { Sequential } from "../nn/sequential.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { type RunPosition, saveCheckpoint } from "./checkpoint.ts";
import type { History } from "./history.ts";
import { type RunManifest, writeManifest } from "./run_dir.ts";

/** What {@link CheckpointCadence} saves, and how often. */
export interface CadenceParts {
  dir: string;
  model: Sequential;
  optimizer: Optimizer;
  /** The history committed with each checkpoint (the run's, as it grows). */
  history: History;
  /** The run's manifest, and whether it is on disk already. */
  manifest: RunManifest;
  manifestWritten: boolean;
  /** Commit at most this often (seconds); 0 commits after every epoch. */
  seconds: number;
}

/** The commits of one `fit` into its run folder. */
export class CheckpointCadence {
  readonly #p: CadenceParts;
  #lastSaved = -Infinity;
  #deferred: RunPosition | null = null;

  /** Nothing is written until the first epoch ends. */
  constructor(parts: CadenceParts) {
    this.#p = { ...parts };
  }

  /** Whether a completed epoch waits for its commit. */
  get deferred(): boolean {
    return this.#deferred !== null;
  }

  /** Whether anything was ever committed into the folder (by this run or the one it resumes). */
  get committed(): boolean {
    return this.#p.manifestWritten;
  }

  async #save(position: RunPosition, o: { last: boolean; best: boolean }): Promise<void> {
    const p = this.#p;
    if (o.last && !p.manifestWritten) {
      await writeManifest(p.dir, p.manifest);
      p.manifestWritten = true;
    }
    await saveCheckpoint(p.dir, p.model, p.optimizer, position, {
      history: p.history,
      runId: p.manifest.runId,
      ...o,
    });
    if (o.last) {
      this.#lastSaved = performance.now();
      this.#deferred = null;
    }
  }

  /**
   * After an epoch: commits it (with `best.safetensors` when `improved`) if a commit is due
   * (every epoch, the `last` epoch, or `seconds` since the last commit); otherwise writes only
   * `best.safetensors` when improved and defers the commit.
   */
  async epochEnded(position: RunPosition, o: { improved: boolean; last: boolean }): Promise<void> {
    const due = this.#p.seconds === 0 || o.last ||
      performance.now() - this.#lastSaved >= this.#p.seconds * 1000;
    if (due) return await this.#save(position, { last: true, best: o.improved });
    if (o.improved) await this.#save(position, { last: false, best: true });
    this.#deferred = position;
  }

  /** Commits a deferred epoch, if any (the run is stopping). */
  async flush(): Promise<void> {
    if (this.#deferred) await this.#save(this.#deferred, { last: true, best: false });
  }
}
