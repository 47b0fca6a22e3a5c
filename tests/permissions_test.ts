/**
 * Least privilege: every script runs under exactly the permissions of its `deno.json` task
 * (`deno task <name>` in a throwaway project folder, no terminal, prompts off), so a new file or
 * network access shows up here as a failure instead of as a prompt in front of a user.
 *
 * @module
 */

import * as assert from "node:assert/strict";
import { join } from "node:path";
import { hasGpu } from "./helpers.ts";
import {
  listFiles,
  PERMISSION_TROUBLE,
  readTasks,
  runTask,
  SHARED_DATA,
  type TaskResult,
  tinyProject,
} from "./fixtures/tiny_cifar.ts";
import { fixtureMembers, writeArchive, writeFixture } from "./fixtures/cifar_fixture.ts";

/** Tasks a user runs (the others are for developers: test, ok, bench). */
const USER_TASKS = ["download", "train", "plot", "screenshot", "demo"];

const options = { sanitizeResources: false, sanitizeOps: false };

/** The screenshot task's browser (Debian package "chromium"), when installed. */
const CHROMIUM = await Deno.stat("/usr/bin/chromium").then((s) => s.isFile, () => false);

function assertClean(what: string, result: TaskResult, code = 0): void {
  const output = `--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
  assert.doesNotMatch(result.stderr, PERMISSION_TROUBLE, `${what} lacks a permission:\n${output}`);
  assert.equal(
    result.code,
    code,
    `${what} exited with ${result.code}, expected ${code}:\n${output}`,
  );
}

Deno.test("no task uses -A or --allow-all, and every user task runs a script", async () => {
  const tasks = await readTasks();
  for (const [name, command] of Object.entries(tasks)) {
    assert.doesNotMatch(command, /(^|\s)(-A|--allow-all)(\s|=|$)/, `task ${name}: ${command}`);
  }
  for (const name of USER_TASKS) {
    assert.match(tasks[name] ?? "", /^deno run .* scripts\/\w+\.ts$/, `task ${name}`);
    assert.doesNotMatch(tasks[name], /--allow-(read|write|net|run)(\s|$)/, `${name}: unscoped`);
  }
  // serve builds the bundles first, then serves them; tests/web_page_test.ts runs serve.ts under
  // the permissions this line grants.
  const serve = tasks.serve?.match(/^deno task build && (deno run .* scripts\/serve\.ts)$/);
  assert.ok(serve, `task serve: ${tasks.serve}`);
  assert.doesNotMatch(serve[1], /--allow-(read|write|net|run)(\s|$)/, "serve: unscoped");
  assert.doesNotMatch(serve[1], /--allow-write/, "serve writes nothing");
  assert.match(serve[1], /--allow-net=127\.0\.0\.1(\s|$)/, "serve listens on 127.0.0.1 only");
});

Deno.test({
  name: "every user task answers --help under its own permissions",
  ...options,
  fn: async () => {
    const project = await tinyProject(1, 1);
    try {
      for (const name of USER_TASKS) {
        const result = await runTask(project, name, ["--help"]);
        assertClean(`deno task ${name} --help`, result);
        assert.match(result.stdout, /Usage: deno task/, `${name} --help prints its usage`);
      }
    } finally {
      await Deno.remove(project.root, { recursive: true });
    }
  },
});

Deno.test({
  name: "download: a local archive is extracted and checked under the task's permissions",
  ...options,
  fn: async () => {
    const project = await tinyProject(1, 1);
    const fixture = await writeFixture(3, 2);
    try {
      // The task may read data/ and ../shared/data only, so the archive goes into data/.
      await writeArchive(join(project.dir, "data", "mine.tar.gz"), fixtureMembers(fixture));
      const result = await runTask(project, "download", [
        "--from",
        "data/mine.tar.gz",
        "--no-official",
        "--no-mirror",
      ]);
      // The synthetic images cannot match the official digests: exit 1 after verification,
      // which means extraction (reads, writes, chmod, rename) had every permission it needed.
      assertClean("deno task download --from data/mine.tar.gz", result, 1);
      assert.match(result.stderr, /verification failed: data_batch_1\.bin: SHA-256 is/);
      const left = (await listFiles(join(project.dir, "data"))).filter((f) => f.startsWith("."));
      assert.deepEqual(left, [], "no staging folder is left behind");
    } finally {
      await Deno.remove(project.root, { recursive: true });
      await Deno.remove(fixture.root, { recursive: true });
    }
  },
});

Deno.test({
  name: "download: --from ../shared/data installs and verifies the real dataset",
  ignore: SHARED_DATA === null,
  ...options,
  fn: async () => {
    const project = await tinyProject(1, 1);
    try {
      await Deno.remove(join(project.dir, "data", "cifar-10-batches-bin"), { recursive: true });
      const first = await runTask(project, "download", ["--from", "../shared/data"]);
      assertClean("deno task download --from ../shared/data", first);
      assert.match(first.stderr, /ready \(source: from\)/);
      const second = await runTask(project, "download", []);
      assertClean("deno task download (second run)", second);
      assert.match(second.stderr, /present and verified; nothing to do/);
    } finally {
      await Deno.remove(project.root, { recursive: true });
    }
  },
});

Deno.test({
  name: "train, resume, plot and screenshot run under their tasks' permissions",
  ignore: !hasGpu,
  ...options,
  fn: async () => {
    const project = await tinyProject(64, 32);
    try {
      const args = ["--model", "bn", "--batch-size", "64", "--val-freq", "1"];
      const train = await runTask(project, "train", [...args, "--epochs", "2"]);
      assertClean("deno task train", train);
      // Under the task's permissions Deno cannot read /proc/cpuinfo (it needs --allow-all), so
      // the vector width stays at the driver's 256 bits and the line says why and what to do.
      assert.match(
        train.stderr,
        /vector width 256 bits \(the CPU's flags are unknown: .*--vector-width 512/,
      );
      const resumed = await runTask(project, "train", [...args, "--epochs", "3", "--resume"]);
      assertClean("deno task train --resume", resumed);
      const history = JSON.parse(
        await Deno.readTextFile(join(project.dir, "out", "bn", "history.json")),
      );
      assert.deepEqual(history.epochs.map((e: { epoch: number }) => e.epoch), [1, 2, 3]);

      const plot = await runTask(project, "plot", []);
      assertClean("deno task plot", plot);
      const files = await listFiles(join(project.dir, "out"));
      for (const f of ["bn/loss.svg", "report.html", "summary.json", "bn/last.safetensors"]) {
        assert.ok(files.includes(f), `out/${f} is written: have ${files.join(", ")}`);
      }
      assert.deepEqual(files.filter((f) => f.endsWith(".tmp")), [], "no temporary files left");

      if (CHROMIUM) {
        const shot = await runTask(project, "screenshot", []);
        assertClean("deno task screenshot", shot);
        assert.ok((await Deno.stat(join(project.dir, "out", "report.png"))).size > 0);
        const left = (await listFiles(join(project.dir, "out"))).filter((f) => f.startsWith("."));
        assert.deepEqual(left, [], "the browser profile is removed");
      }
    } finally {
      await Deno.remove(project.root, { recursive: true });
    }
  },
});
