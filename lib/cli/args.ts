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

/**
 * Plain decimal notation, the only one number flags accept: an optional sign, digits with an
 * optional fraction (or a fraction alone, `.5`), an optional exponent (`1e-3`). `Number()`
 * alone would also take `0x10`, `0b11`, `0o17`, `Infinity`, surrounding spaces and `""` (as 0).
 */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * What integer flags accept: decimal digits and nothing else. No sign, no fraction and no
 * exponent (`1e3` is refused: a count is written as its digits); leading zeros are harmless.
 */
const DIGITS = /^\d+$/;

/** The flag as the user typed it: `seed` and `--seed` both give `--seed`. */
function flagName(name: string): string {
  return name.startsWith("-") ? name : `--${name}`;
}

/** The UsageError "--<name> must be <what>: current value is <value, quoted>". */
function mustBe(name: string, what: string, value: string): UsageError {
  return new UsageError(
    `${flagName(name)} must be ${what}: current value is ${JSON.stringify(value)}`,
  );
}

/** `value` as a safe integer when it is digits only, else null. */
function parseDigits(value: string): number | null {
  if (!DIGITS.test(value)) return null;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : null;
}

/** `value` as a finite number when it is plain decimal notation, else null; -0 becomes 0. */
function parseDecimal(value: string): number | null {
  if (!DECIMAL.test(value)) return null;
  const n = Number(value);
  return Number.isFinite(n) ? n + 0 : null;
}

/**
 * Parses `--name value` as a positive integer written in decimal digits (see
 * {@link nonNegativeInt} for what is accepted), or throws a UsageError naming flag and value.
 *
 * @example
 * ```ts
 * import { positiveInt } from "./args.ts";
 * import { equal, throws } from "node:assert/strict";
 *
 * equal(positiveInt("epochs", "20"), 20);
 * throws(() => positiveInt("epochs", "0"), {
 *   message: '--epochs must be a positive integer: current value is "0"',
 * });
 * ```
 */
export function positiveInt(name: string, value: string): number {
  const n = parseDigits(value);
  if (n === null || n <= 0) throw mustBe(name, "a positive integer", value);
  return n;
}

/** Options of {@link nonNegativeInt}. */
export interface IntRange {
  /** The largest accepted value (a safe integer >= 0). Default `Number.MAX_SAFE_INTEGER`. */
  max?: number;
}

/**
 * Parses `--name value` as an integer >= 0 (and <= `max` when given), for flags where 0 means
 * something, such as `--seed`. Only decimal digits are accepted: no sign, fraction, exponent
 * (`1e3`), separator (`1_000`), hex or surrounding space. Throws a UsageError naming the flag
 * and the value: "--seed must be an integer >= 0: current value is "-1"", or with `max`,
 * "--seed must be an integer in [0, 4294967295]: current value is "4294967296"".
 *
 * @example A 32-bit seed
 * ```ts
 * import { nonNegativeInt } from "./args.ts";
 * import { equal, throws } from "node:assert/strict";
 *
 * equal(nonNegativeInt("seed", "0", { max: 0xffffffff }), 0);
 * throws(() => nonNegativeInt("seed", "4294967296", { max: 0xffffffff }), {
 *   message: '--seed must be an integer in [0, 4294967295]: current value is "4294967296"',
 * });
 * ```
 */
export function nonNegativeInt(name: string, value: string, range: IntRange = {}): number {
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new RangeError(
      `Cannot parse ${flagName(name)}: max must be a safe integer >= 0: current value is ${max}`,
    );
  }
  const n = parseDigits(value);
  if (n === null || n > max) {
    throw mustBe(
      name,
      range.max === undefined ? "an integer >= 0" : `an integer in [0, ${max}]`,
      value,
    );
  }
  return n;
}

/**
 * Parses `--name value` as a positive finite number in plain decimal notation: an optional
 * sign, digits, an optional fraction and exponent (`0.001`, `1e-3`, `.5`). Hex, binary, octal,
 * `Infinity`, `1_000`, empty or space-padded text are refused with a UsageError.
 *
 * @example
 * ```ts
 * import { positiveNumber } from "./args.ts";
 * import { equal, throws } from "node:assert/strict";
 *
 * equal(positiveNumber("lr", "1e-3"), 0.001);
 * throws(() => positiveNumber("lr", "0x10"), {
 *   message: '--lr must be a positive decimal number (like 0.001 or 1e-3): current value is "0x10"',
 * });
 * ```
 */
export function positiveNumber(name: string, value: string): number {
  const n = parseDecimal(value);
  if (n === null || n <= 0) {
    throw mustBe(name, "a positive decimal number (like 0.001 or 1e-3)", value);
  }
  return n;
}

/**
 * Parses `--name value` as a finite number >= 0 in plain decimal notation (as
 * {@link positiveNumber} accepts), for flags where 0 means something, such as
 * `--checkpoint-seconds 0`. `-0` comes back as 0.
 *
 * @example
 * ```ts
 * import { nonNegativeNumber } from "./args.ts";
 * import { equal, throws } from "node:assert/strict";
 *
 * equal(nonNegativeNumber("checkpoint-seconds", "0"), 0);
 * equal(nonNegativeNumber("checkpoint-seconds", "2.5"), 2.5);
 * throws(() => nonNegativeNumber("checkpoint-seconds", "-5"), {
 *   message:
 *     '--checkpoint-seconds must be a decimal number >= 0 (like 0 or 2.5): current value is "-5"',
 * });
 * ```
 */
export function nonNegativeNumber(name: string, value: string): number {
  const n = parseDecimal(value);
  if (n === null || n < 0) throw mustBe(name, "a decimal number >= 0 (like 0 or 2.5)", value);
  return n;
}

/**
 * `count` followed by the noun in agreement with it, for messages: one of a thing is singular,
 * any other count (0 included) plural. `nouns` is the plural when adding "s" is wrong.
 *
 * @example
 * ```ts
 * import { plural } from "./args.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(plural(1, "variant"), "1 variant");
 * equal(plural(3, "variant"), "3 variants");
 * equal(plural(0, "file"), "0 files");
 * equal(plural(2, "batch", "batches"), "2 batches");
 * ```
 */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
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
  const info = await Deno.stat(dir).catch(() => null);
  if (info && !info.isDirectory) {
    throw new UsageError(`--${flag} ${dir} is a file, not a folder`);
  }
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
