/**
 * `scripts/train.ts` on bad input, run as the `train` task runs it (its `--allow-*` flags read
 * from deno.json, in a folder holding `data/` and `out/`): each mistake is one line on stderr
 * naming the flag and the value, exit code 2, and every file under the folder keeps its bytes
 * and modification time.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFixture } from "./fixtures/cifar_fixture.ts";
import { REPO } from "./fixtures/tiny_cifar.ts";
import { trainCommand } from "./fixtures/train_script.ts";
import { hasGpu } from "./helpers.ts";

interface Run {
  code: number;
  stdout: string;
  /** stderr without the lines the Vulkan loader prints when a GPU is requested. */
  stderr: string;
}

async function train(cwd: string, args: string[]): Promise<Run> {
  const { code, stdout, stderr } = await (await trainCommand(cwd, args)).output();
  const td = new TextDecoder();
  const err = td.decode(stderr).split("\n").filter((l) => !/XDG_RUNTIME_DIR/.test(l)).join("\n");
  return { code, stdout: td.decode(stdout), stderr: err };
}

/** Every file under `root` (recursively) → size, mtime and bytes; folders → "dir". */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) {
        out.set(path, "dir");
        await walk(path);
      } else {
        const stat = await Deno.stat(path);
        const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
        const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"));
        out.set(path, `${stat.size} ${stat.mtime?.getTime()} ${hex.join("")}`);
      }
    }
  };
  await walk(root);
  return out;
}

/** Runs a bad command line: exit 2, one stderr line naming `flag` and `value`, no file changed. */
async function assertRejected(
  root: string,
  args: string[],
  flag: string,
  value: string,
): Promise<string> {
  const before = await snapshot(root);
  const run = await train(root, args);
  const lines = run.stderr.trim().split("\n");
  const what = `train ${args.join(" ")}`;
  assert.equal(run.code, 2, `${what}: exit code (stderr: ${run.stderr})`);
  assert.equal(lines.length, 1, `${what}: one line, got:\n${run.stderr}`);
  assert(lines[0].startsWith("train: "), `${what}: ${lines[0]}`);
  assert(lines[0].includes(flag), `${what}: names ${flag}: ${lines[0]}`);
  assert(lines[0].includes(value), `${what}: names ${value}: ${lines[0]}`);
  assert.equal(run.stdout, "", `${what}: stdout`);
  assert.deepEqual(await snapshot(root), before, `${what}: files changed`);
  return lines[0];
}

Deno.test("train.ts --help prints the usage and every flag, exit 0", async () => {
  const run = await train(REPO, ["--help"]);
  assert.equal(run.code, 0, run.stderr);
  const dashed = await train(REPO, ["--", "--help"]);
  assert.equal(dashed.code, 0, dashed.stderr);
  assert.equal(dashed.stdout, run.stdout, "-- --help");
  assert.match(run.stdout, /^Usage: deno task train/);
  for (const flag of ["--model", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed"]) {
    assert(run.stdout.includes(flag), flag);
  }
  for (
    const flag of [
      "--val-freq",
      "--data",
      "--out",
      "--augment",
      "--resume",
      "--checkpoint-seconds",
      "--sequential",
      "--vector-width",
    ]
  ) {
    assert(run.stdout.includes(flag), flag);
  }
});

Deno.test("train.ts rejects bad flags before touching anything", async () => {
  const fixture = await writeFixture(8, 8);
  const root = fixture.root;
  try {
    await Deno.mkdir(join(root, "out/run"), { recursive: true });
    await Deno.writeTextFile(join(root, "out/run/keep.txt"), "precious");
    await Deno.writeTextFile(join(root, "out/file.txt"), "not a folder");
    await Deno.mkdir(join(root, "data/empty"));
    await Deno.mkdir(join(root, "data/partial/cifar-10-batches-bin"), { recursive: true });
    await Deno.copyFile(
      join(fixture.batchesDir, "data_batch_1.bin"),
      join(root, "data/partial/cifar-10-batches-bin/data_batch_1.bin"),
    );
    const base = ["--out", "out/run", "--epochs", "1"];
    await assertRejected(root, [...base, "--model", "resnet"], "--model", '"resnet"');
    await assertRejected(root, [...base, "--model", ""], "--model", '""');
    await assertRejected(root, ["--out", "out/run", "--epochs", "0"], "--epochs", '"0"');
    await assertRejected(root, ["--out", "out/run", "--epochs", "-3"], "--epochs", '"-3"');
    await assertRejected(root, ["--out", "out/run", "--epochs=-3"], "--epochs", '"-3"');
    await assertRejected(root, ["--out", "out/run", "--epochs", "2.5"], "--epochs", '"2.5"');
    await assertRejected(root, [...base, "--batch-size", "0"], "--batch-size", '"0"');
    await assertRejected(root, [...base, "--batch-size", "-64"], "--batch-size", '"-64"');
    await assertRejected(root, [...base, "--optimizer", "lbfgs"], "--optimizer", '"lbfgs"');
    await assertRejected(root, [...base, "--lr", "-1e-3"], "--lr", '"-1e-3"');
    await assertRejected(root, [...base, "--data", "data/empty"], "--data", "data/empty");
    await assertRejected(root, [...base, "--data", "data/partial"], "--data", "data/partial");
    await assertRejected(root, [...base, "--data", "data/missing"], "--data", "data/missing");
    await assertRejected(root, ["--out", "out/file.txt/run"], "--out", "out/file.txt/run");
    const line = await assertRejected(root, ["--out", "out/file.txt"], "--out", "out/file.txt");
    assert.match(line, /is a file, not a folder/);
    await assertRejected(root, [...base, "--resume"], "--resume", "out/run");
    await assertRejected(root, [...base, "--seed", "4294967296"], "--seed", '"4294967296"');
    await assertRejected(root, [...base, "--seed", "-1"], "--seed", '"-1"');
    await assertRejected(root, [...base, "--val-freq", "0"], "--val-freq", '"0"');
    await assertRejected(root, [...base, "--bogus"], "--bogus", "--bogus");
    await assertRejected(
      root,
      [...base, "--checkpoint-seconds", "-5"],
      "--checkpoint-seconds",
      '"-5"',
    );
    await assertRejected(root, [...base, "--vector-width", "384"], "--vector-width", '"384"');
    await assertRejected(
      root,
      [...base, "--checkpoint-seconds", "soon"],
      "--checkpoint-seconds",
      '"soon"',
    );
    // `deno task train -- ...` passes the "--" on: it must not turn the flags into positionals.
    await assertRejected(root, ["--", ...base, "--epochs", "0"], "--epochs", '"0"');
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "train.ts --resume with another architecture's checkpoint: exit 2, nothing overwritten",
  ignore: !hasGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const fixture = await writeFixture(16, 16);
    const root = fixture.root;
    try {
      const made = await train(root, [
        "--model",
        "bn",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--out",
        "out/run",
      ]);
      assert.equal(made.code, 0, made.stderr);
      // out/plain now holds the bn run's files, as if someone had trained bn into it.
      await Deno.mkdir(join(root, "out/run/plain"));
      for await (const e of Deno.readDir(join(root, "out/run/bn"))) {
        await Deno.copyFile(join(root, "out/run/bn", e.name), join(root, "out/run/plain", e.name));
      }
      const file = "out/run/plain/resume.safetensors";
      const resume = ["--epochs", "2", "--batch-size", "32", "--out", "out/run", "--resume"];
      const line = await assertRejected(root, ["--model", "plain", ...resume], "--resume", file);
      assert.match(line, /BatchNorm1d/, "says what the checkpoint holds");
      // With --model all, plain's mismatch is found before bn (whose checkpoint fits) trains.
      await assertRejected(root, ["--model", "all", ...resume], "--resume", file);
      // And another optimizer's state is refused too.
      await assertRejected(
        root,
        ["--model", "bn", ...resume, "--optimizer", "sgd"],
        "--resume",
        "out/run/bn/resume.safetensors",
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "train.ts refuses to overwrite a run, a resume with changed settings, and --resume --overwrite",
  ignore: !hasGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const fixture = await writeFixture(16, 16);
    const root = fixture.root;
    const base = ["--model", "bn", "--epochs", "1", "--batch-size", "32", "--out", "out/run"];
    try {
      const made = await train(root, base);
      assert.equal(made.code, 0, made.stderr);
      const line = await assertRejected(root, base, "out/run/bn", "--overwrite");
      assert.match(line, /it holds a run \(.*resume\.safetensors.*\)/);
      await assertRejected(
        root,
        [...base, "--resume", "--lr", "0.01"],
        "--resume",
        "lr was 0.001, now 0.01",
      );
      await assertRejected(
        root,
        [...base, "--resume", "--seed", "5"],
        "--resume",
        "seed was 0, now 5",
      );
      await assertRejected(root, [...base, "--resume", "--overwrite"], "--resume", "--overwrite");
      const help = await train(root, ["-h"]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /--overwrite/);
      // More epochs with the same settings: allowed.
      const more = await train(root, [
        ...base.slice(0, 2),
        "--epochs",
        "2",
        ...base.slice(4),
        "--resume",
      ]);
      assert.equal(more.code, 0, more.stderr);
      const replaced = await train(root, [...base, "--overwrite"]);
      assert.equal(replaced.code, 0, replaced.stderr);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
