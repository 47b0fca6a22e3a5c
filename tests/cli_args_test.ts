/**
 * The number flags of lib/cli/args.ts: plain decimal notation only, and which ranges each
 * helper accepts, with the one-line message a script prints.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  nonNegativeInt,
  nonNegativeNumber,
  plural,
  positiveInt,
  positiveNumber,
  UsageError,
} from "../lib/cli/args.ts";
import { join } from "node:path";
import { CLASS_NAMES } from "../lib/data/cifar10.ts";

/** Asserts that `fn` throws a UsageError whose message is exactly `message`. */
function assertUsage(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: Error) => {
    assert(error instanceof UsageError, `a UsageError, got ${error}`);
    assert.equal(error.message, message);
    return true;
  });
}

/** Texts that Number() reads as a number but that are not plain decimal notation. */
const NOT_DECIMAL = [
  "0x10",
  "0X10",
  "0b11",
  "0o17",
  "Infinity",
  "-Infinity",
  "NaN",
  "",
  " ",
  "\t\n",
  " 5",
  "5 ",
  "1_000",
  "1,5",
  "1e",
  "e3",
  ".",
  "+",
  "--1",
  "1e3.5",
];

Deno.test("number flags accept plain decimal notation only", () => {
  const accepted: [string, number][] = [
    ["16", 16],
    ["0.001", 0.001],
    ["1e-3", 1e-3],
    ["1E-3", 1e-3],
    ["2.5e+2", 250],
    [".5", 0.5],
    ["5.", 5],
    ["+3", 3],
    ["007", 7],
  ];
  for (const [text, value] of accepted) {
    assert.equal(positiveNumber("lr", text), value, text);
    assert.equal(nonNegativeNumber("lr", text), value, text);
  }
  for (const text of NOT_DECIMAL) {
    const shown = JSON.stringify(text);
    assertUsage(
      () => positiveNumber("lr", text),
      `--lr must be a positive decimal number (like 0.001 or 1e-3): current value is ${shown}`,
    );
    assertUsage(
      () => nonNegativeNumber("checkpoint-seconds", text),
      `--checkpoint-seconds must be a decimal number >= 0 (like 0 or 2.5): current value is ${shown}`,
    );
  }
  // Finite only: an exponent that overflows is refused, not turned into Infinity.
  assert.throws(() => positiveNumber("lr", "1e400"), UsageError);
  assert.throws(() => nonNegativeNumber("lr", "1e400"), UsageError);
});

Deno.test("integer flags accept decimal digits only (no sign, fraction or exponent)", () => {
  assert.equal(positiveInt("epochs", "20"), 20);
  assert.equal(positiveInt("epochs", "020"), 20);
  assert.equal(nonNegativeInt("seed", "9007199254740991"), Number.MAX_SAFE_INTEGER);
  for (const text of [...NOT_DECIMAL, "1e3", "2.5", "2.0", "+3", "-3", "9007199254740992"]) {
    const shown = JSON.stringify(text);
    assertUsage(
      () => positiveInt("epochs", text),
      `--epochs must be a positive integer: current value is ${shown}`,
    );
    assertUsage(
      () => nonNegativeInt("seed", text),
      `--seed must be an integer >= 0: current value is ${shown}`,
    );
  }
});

Deno.test("0 is refused by the positive helpers and accepted by the non-negative ones", () => {
  for (const zero of ["0", "000"]) {
    assert.equal(nonNegativeInt("seed", zero), 0);
    assertUsage(
      () => positiveInt("epochs", zero),
      `--epochs must be a positive integer: current value is "${zero}"`,
    );
  }
  for (const zero of ["0", "0.0", ".0", "0e5", "-0", "1e-400"]) {
    // -0 comes back as 0, so that it prints as "0" and compares equal with Object.is.
    assert(Object.is(nonNegativeNumber("checkpoint-seconds", zero), 0), zero);
    assert.throws(() => positiveNumber("lr", zero), UsageError, zero);
  }
  assertUsage(
    () => nonNegativeNumber("checkpoint-seconds", "-5"),
    '--checkpoint-seconds must be a decimal number >= 0 (like 0 or 2.5): current value is "-5"',
  );
  assertUsage(
    () => positiveNumber("lr", "-1e-3"),
    '--lr must be a positive decimal number (like 0.001 or 1e-3): current value is "-1e-3"',
  );
});

Deno.test("nonNegativeInt with a max: the seed's range [0, 2^32 - 1]", () => {
  const max = 0xffffffff;
  assert.equal(nonNegativeInt("seed", "0", { max }), 0);
  assert.equal(nonNegativeInt("seed", "4294967295", { max }), max);
  for (const text of ["4294967296", "-1", "0x10", "1e3", ""]) {
    assertUsage(
      () => nonNegativeInt("seed", text, { max }),
      `--seed must be an integer in [0, 4294967295]: current value is ${JSON.stringify(text)}`,
    );
  }
  assert.throws(() => nonNegativeInt("seed", "1", { max: -1 }), RangeError);
  assert.throws(() => nonNegativeInt("seed", "1", { max: 1.5 }), RangeError);
});

Deno.test("a flag given with its dashes is not named with four", () => {
  assertUsage(
    () => positiveInt("--epochs", "x"),
    '--epochs must be a positive integer: current value is "x"',
  );
});

Deno.test("plot and download answer -h with their usage, exit 0", async () => {
  for (const script of ["plot.ts", "download_cifar10.ts"]) {
    const path = fileURLToPath(new URL(`../scripts/${script}`, import.meta.url));
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", path, "-h"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `${script} -h: ${stderr}`);
    assert.match(stdout, /^Usage: deno task /, script);
    assert.equal(stderr, "", script);
  }
});

Deno.test("plural agrees the noun with the count", () => {
  assert.equal(plural(1, "variant"), "1 variant");
  assert.equal(plural(0, "variant"), "0 variants");
  assert.equal(plural(3, "file"), "3 files");
  assert.equal(plural(2, "batch", "batches"), "2 batches");
  assert.equal(plural(1, "batch", "batches"), "1 batch");
});

Deno.test("plot of a run folder with one variant says '1 variant'", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgnn-plot-one-" });
  try {
    const epochs = [1, 2, 3].map((epoch) => ({
      epoch,
      trainLoss: 2 / epoch,
      valLoss: 2.1 / epoch,
      valAccuracy: 0.1 * epoch,
      seconds: 1,
    }));
    await Deno.mkdir(join(dir, "plain"));
    const classes = [...CLASS_NAMES];
    const history = { variant: "plain", adapter: "test adapter", epochs, classes };
    await Deno.writeTextFile(join(dir, "plain", "history.json"), JSON.stringify(history));
    const script = fileURLToPath(new URL("../scripts/plot.ts", import.meta.url));
    const permissions = [`--allow-read=${dir}`, `--allow-write=${dir}`];
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...permissions, script, "--out", dir],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, stderr);
    const first = new TextDecoder().decode(run.stdout).split("\n")[0];
    assert.match(
      first,
      /^plot: 1 variant \(summary computed from the histories\); wrote \d+ files:$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
