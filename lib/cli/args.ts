/**
 * Small helpers for the scripts: flag parsing, one-line usage errors with exit code 2, and
 * number flags.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** What `parseArgs` returns for `config`: each option's value, typed by its declaration. */
export type FlagValues<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>["values"];

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

/**
 * `parseArgs` from `node:util`, with its mistakes (an unknown flag, a missing value, a
 * positional argument) thrown as UsageErrors carrying parseArgs's message, for `runMain`.
 *
 * @example Flags of a script run through runMain
 * ```ts
 * import { parseFlags, UsageError } from "./args.ts";
 * import { equal, throws } from "node:assert/strict";
 *
 * const options = { epochs: { type: "string", default: "20" } } as const;
 * equal(parseFlags({ args: ["--epochs", "3"], options }).epochs, "3");
 * equal(parseFlags({ args: [], options }).epochs, "20");
 * throws(() => parseFlags({ args: ["--epoch", "3"], options }), UsageError);
 * ```
 */
export function parseFlags<T extends ParseArgsConfig>(config: T): FlagValues<T> {
  try {
    return parseArgs(config).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * For a script's `main` that returns its exit code: parses the flags with {@link parseFlags},
 * and returns either their values, or the code to exit with when there is nothing more to do:
 * 2 after printing `<name>: <mistake> (see --help)` on stderr, 0 after printing `help` on stdout
 * for `--help`.
 *
 * @example A script's main
 * ```ts
 * import { parseScriptFlags } from "./args.ts";
 * import { equal } from "node:assert/strict";
 *
 * function main(args: string[]): number {
 *   const values = parseScriptFlags("greet", "Usage: greet [--name NAME]", {
 *     args,
 *     options: { name: { type: "string", default: "you" }, help: { type: "boolean" } },
 *   });
 *   if (typeof values === "number") return values;
 *   console.log(`hello, ${values.name}`);
 *   return 0;
 * }
 * equal(main(["--name", "Ada"]), 0);
 * equal(main(["--help"]), 0); // prints the usage
 * equal(main(["--nme", "Ada"]), 2); // prints "greet: Unknown option '--nme' (see --help)"
 * ```
 */
export function parseScriptFlags<
  T extends ParseArgsConfig & { options: { help: { type: "boolean" } } },
>(name: string, help: string, config: T): FlagValues<T> | number {
  let values;
  try {
    values = parseFlags(config);
  } catch (error) {
    console.error(`${name}: ${(error as Error).message} (see --help)`);
    return 2;
  }
  if ((values as { help?: boolean }).help) {
    console.log(help);
    return 0;
  }
  return values;
}
