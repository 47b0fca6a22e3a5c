/**
 * Small helpers for the scripts: one-line usage errors with exit code 2, and number flags.
 *
 * @module
 */

/** A bad command-line value: scripts print its message on one line and exit with code 2. */
export class UsageError extends Error {
  /** An error whose `message` is the whole line the script prints. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parses `--name value` as a positive integer, or throws a UsageError naming flag and value. */
export function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(
      `--${name} must be a positive integer: current value is ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Parses `--name value` as a positive finite number. */
export function positiveNumber(name: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(
      `--${name} must be a positive number: current value is ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Checks that `value` is one of `choices`. */
export function oneOf<T extends string>(name: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(
      `--${name} must be one of ${choices.join(", ")}: current value is ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

/** Runs a script's main, turning UsageErrors (and other errors) into one line on stderr. */
export async function runMain(name: string, main: () => Promise<number | void>): Promise<never> {
  try {
    Deno.exit((await main()) ?? 0);
  } catch (error) {
    const usage = error instanceof UsageError || error instanceof RangeError ||
      error instanceof TypeError;
    console.error(`${name}: ${(error as Error).message}`);
    Deno.exit(usage ? 2 : 1);
  }
}

/** Checks that `dir` can be created and written, without leaving anything behind. */
export async function checkWritableDir(flag: string, dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    const probe = await Deno.makeTempFile({ dir, prefix: ".write-check-" });
    await Deno.remove(probe);
  } catch (error) {
    throw new UsageError(`--${flag} ${dir} cannot be written: ${(error as Error).message}`);
  }
}

/**
 * The script's arguments without a leading "--": `deno task train -- --epochs 2` passes the
 * separator on, and npm habits should still work.
 *
 * @example
 * ```ts
 * import { scriptArgs } from "./args.ts";
 * console.assert(scriptArgs(["--", "--epochs", "2"]).join(" ") === "--epochs 2");
 * ```
 */
export function scriptArgs(args: readonly string[] = Deno.args): string[] {
  return args[0] === "--" ? args.slice(1) : [...args];
}
