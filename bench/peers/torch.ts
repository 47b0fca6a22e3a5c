/**
 * Peer benchmark: runs `torch_mlp.py` (the seed's MLPs in PyTorch on the CPU) with the system's
 * `/usr/bin/python3` and parses its one JSON line.
 *
 * Needs `--allow-run=/usr/bin/python3` (and `--allow-read` for the script's path when imported).
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The seed's model variants. */
export type TorchVariant = "plain" | "bn" | "dropout";

/** Options for {@link benchTorch}. */
export interface TorchBenchOptions {
  /** Which variants to run; all three when omitted. */
  variants?: TorchVariant[];
  /** Samples per step (default 1024). */
  batchSize?: number;
  /** Untimed steps before timing (at least one is run; default 3). */
  warmupSteps?: number;
  /** Timed steps per round (default 10). */
  steps?: number;
  /** Rounds; medians are reported (default 3). */
  rounds?: number;
  /** torch.set_num_threads (default 2, the cores this machine has). */
  threads?: number;
  /** The interpreter (default `/usr/bin/python3`). */
  python?: string;
  /** Kill the run after this many milliseconds (default 300,000). */
  timeoutMs?: number;
  /** Told why the peer was skipped when {@link benchTorch} returns null (default console.warn). */
  onSkip?: (reason: string) => void;
}

/** What the script found about the BLAS behind torch. */
export interface TorchBlasInfo {
  /** "openblas", "mkl", "reference", "other" or "unknown". */
  kind: string;
  /** BLAS_INFO from torch's build configuration (Debian: "generic"). */
  build: string;
  /** Resolved paths of the BLAS/LAPACK libraries mapped into the process. */
  libraries: string[];
  /** Measured rate of a 1024×3072·3072×128 sgemm. */
  sgemm_gflops: number;
  /** True when that rate is low enough to be the reference BLAS. */
  slow: boolean;
}

/** Parsed output of `torch_mlp.py`. */
export interface TorchBenchReport {
  /** torch.__version__. */
  torch: string;
  /** The BLAS in use. */
  blas: TorchBlasInfo;
  /** torch.get_num_threads() during the run. */
  threads: number;
  /** samples/s per variant, and the model's trainable parameter count. */
  results: Partial<Record<TorchVariant, { params: number; train: number; eval: number }>>;
  /** Present when the comparison is unfair to PyTorch (slow BLAS). */
  warning?: string;
}

const SCRIPT = fileURLToPath(new URL("./torch_mlp.py", import.meta.url));

function count(name: string, value: number | undefined, fallback: number, min: number): string {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw new RangeError(
      `Cannot run the PyTorch bench: ${name} must be an integer >= ${min}: current value is ${v}`,
    );
  }
  return String(v);
}

function parseReport(stdout: string): TorchBenchReport {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  let report: TorchBenchReport;
  try {
    report = JSON.parse(line);
  } catch {
    throw new Error(
      `Cannot parse torch_mlp.py output: last line is not JSON: ${line.slice(0, 200)}`,
    );
  }
  if (typeof report.torch !== "string" || typeof report.results !== "object" || !report.blas) {
    throw new Error(
      `Cannot parse torch_mlp.py output: missing torch/blas/results in ${line.slice(0, 200)}`,
    );
  }
  return report;
}

/**
 * Runs the PyTorch CPU peer for the seed's MLPs. Returns null, after telling `onSkip` why, when
 * the interpreter is missing or cannot import torch; throws when the script fails otherwise.
 * Adds a `warning` when torch runs on a slow (reference) BLAS.
 *
 * @example Run the plain model briefly
 * ```ts
 * const r = await benchTorch({ variants: ["plain"], steps: 5 });
 * if (r) console.log(`${r.results.plain!.train} train samples/s with ${r.blas.kind}`);
 * ```
 */
export async function benchTorch(opts: TorchBenchOptions = {}): Promise<TorchBenchReport | null> {
  const python = opts.python ?? "/usr/bin/python3";
  const onSkip = opts.onSkip ??
    ((reason: string) => console.warn(`PyTorch peer skipped: ${reason}`));
  const variants = opts.variants ?? ["plain", "bn", "dropout"];
  const args = [
    SCRIPT,
    "--json",
    "--batch",
    count("batchSize", opts.batchSize, 1024, 1),
    "--warmup",
    count("warmupSteps", opts.warmupSteps, 3, 0),
    "--steps",
    count("steps", opts.steps, 10, 1),
    "--rounds",
    count("rounds", opts.rounds, 3, 1),
    "--threads",
    count("threads", opts.threads, 2, 1),
  ];

  const report: TorchBenchReport = {
    torch: "",
    blas: {} as TorchBlasInfo,
    threads: 0,
    results: {},
  };
  // One process per variant keeps each run's memory and thread pools independent.
  for (const variant of variants) {
    const stdout = await runPythonPeer(python, [...args, "--variant", variant], opts, onSkip);
    if (stdout === null) return null;
    const one = parseReport(stdout);
    report.torch = one.torch;
    report.blas = one.blas;
    report.threads = one.threads;
    Object.assign(report.results, one.results);
  }
  const warning = slowBlasWarning(report.blas);
  if (warning) report.warning = warning;
  return report;
}

/** The warning a report carries when torch runs on a slow (reference) BLAS. */
function slowBlasWarning(blas: TorchBlasInfo): string | undefined {
  return blas.slow
    ? `PyTorch runs on a slow BLAS (${blas.sgemm_gflops} GFLOP/s sgemm, ` +
      `${blas.kind}): install libopenblas0-pthread for a fair comparison`
    : undefined;
}

/**
 * Runs `python args` and returns its stdout; null, after telling `onSkip` why, when the
 * interpreter is missing or cannot import torch; throws when the script fails otherwise.
 */
async function runPythonPeer(
  python: string,
  args: string[],
  opts: { timeoutMs?: number },
  onSkip: (reason: string) => void,
): Promise<string | null> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(python, {
      args,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(opts.timeoutMs ?? 300_000),
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      onSkip(`${python} does not exist`);
      return null;
    }
    throw e;
  }
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) {
    if (/No module named '?torch'?/.test(stderr)) {
      onSkip(`${python} cannot import torch`);
      return null;
    }
    const script = args[0].split("/").at(-1);
    throw new Error(`${script} failed (exit ${output.code}): ${stderr.trim().slice(-800)}`);
  }
  return new TextDecoder().decode(output.stdout);
}

const CNN_SCRIPT = fileURLToPath(new URL("./torch_cnn.py", import.meta.url));

/** Parsed output of `torch_cnn.py --speed`: the cnn recipe's network in PyTorch on the CPU. */
export interface TorchCnnReport {
  /** torch.__version__. */
  torch: string;
  /** The BLAS in use. */
  blas: TorchBlasInfo;
  /** torch.get_num_threads() during the run. */
  threads: number;
  /** The network's trainable parameter count (288,746). */
  params: number;
  /** Training samples/s (SGD Nesterov, label-smoothed cross-entropy), median of rounds. */
  train: number;
  /** Eval-mode forward samples/s under no_grad, median of rounds. */
  eval: number;
  /** Present when the comparison is unfair to PyTorch (slow BLAS). */
  warning?: string;
}

/**
 * Runs the PyTorch CPU peer for the cnn recipe's network (`torch_cnn.py --speed`), with the
 * same skip rules as {@link benchTorch}.
 *
 * @example Time it briefly
 * ```ts
 * const r = await benchTorchCnn({ batchSize: 256, steps: 3 });
 * if (r) console.log(`${r.train} train samples/s`);
 * ```
 */
export async function benchTorchCnn(
  opts: Omit<TorchBenchOptions, "variants"> = {},
): Promise<TorchCnnReport | null> {
  const python = opts.python ?? "/usr/bin/python3";
  const onSkip = opts.onSkip ??
    ((reason: string) => console.warn(`PyTorch peer skipped: ${reason}`));
  const stdout = await runPythonPeer(
    python,
    [
      CNN_SCRIPT,
      "--speed",
      "--batch",
      count("batchSize", opts.batchSize, 256, 1),
      "--warmup",
      count("warmupSteps", opts.warmupSteps, 1, 0),
      "--steps",
      count("steps", opts.steps, 5, 1),
      "--rounds",
      count("rounds", opts.rounds, 1, 1),
      "--threads",
      count("threads", opts.threads, 2, 1),
    ],
    opts,
    onSkip,
  );
  if (stdout === null) return null;
  const line = stdout.trim().split("\n").at(-1) ?? "";
  let report: TorchCnnReport;
  try {
    report = JSON.parse(line);
  } catch {
    throw new Error(
      `Cannot parse torch_cnn.py output: last line is not JSON: ${line.slice(0, 200)}`,
    );
  }
  if (typeof report.train !== "number" || typeof report.eval !== "number" || !report.blas) {
    throw new Error(
      `Cannot parse torch_cnn.py output: missing train/eval/blas in ${line.slice(0, 200)}`,
    );
  }
  const warning = slowBlasWarning(report.blas);
  if (warning) report.warning = warning;
  return report;
}
