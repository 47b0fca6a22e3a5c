/**
 * The training progress displays, seen from outside: a child process drives them and the test
 * reads its stderr. On a pipe (CI logs) there are no carriage returns, every finished epoch is one
 * line, and a board shared by concurrent runs prints each run's epochs under its own name.
 */

import assert from "node:assert/strict";

const DRIVER = `
import { ProgressBoard, StderrProgress } from "${
  new URL("../lib/train/progress.ts", import.meta.url).href
}";
const labels = ["plain", "bn", "dropout"];
const board = new ProgressBoard();
const sinks = Deno.args[0] === "board" ? labels.map(() => board.sink()) : [new StderrProgress()];
for (let epoch = 1; epoch <= 2; epoch++) {
  sinks.forEach((sink, i) => {
    const state = { label: labels[i], epoch, epochs: 2, batch: 3, batches: 7, elapsed: epoch, done: epoch - 1 };
    sink.update(state);
    sink.epochDone({ ...state, batch: 7, done: epoch, trainLoss: 2 - i / 8, valLoss: 2.25, valAccuracy: 0.375 });
  });
}
sinks.forEach((sink) => sink.close());
`;

async function stderrOf(mode: "board" | "single"): Promise<string> {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, DRIVER);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-config", "--allow-read", file, mode],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stderr);
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("a board for concurrent runs prints every run's epochs, one line each, on a pipe", async () => {
  const text = await stderrOf("board");
  assert(!text.includes("\r"), "no carriage returns on a pipe");
  const lines = text.trimEnd().split("\n");
  // Summaries reach a pipe at most every 10 s, counted from the process start: none here.
  assert(!lines.some((l) => l.includes(" | ")), text);
  const epochs = lines.filter((l) => / epoch \d\/2 /.test(l));
  assert.equal(epochs.length, 6, text);
  assert.equal(lines.length, 6, text);
  for (const label of ["plain", "bn", "dropout"]) {
    const own = epochs.filter((l) => l.startsWith(`${label} [`));
    assert.equal(own.length, 2, `${label}: ${own.length} epoch lines`);
    assert.match(own[1], /epoch 2\/2 batch 7\/7 loss \d\.\d{4} val 2\.2500 acc 37\.5%/);
  }
  assert.match(epochs[1], /^bn .* loss 1\.8750 /);
});

Deno.test("a single run's display on a pipe prints one line per epoch", async () => {
  const lines = (await stderrOf("single")).trimEnd().split("\n");
  assert.deepEqual(lines.map((l) => l.replace(/ eta .*/, "")), [
    "plain [##########..........] epoch 1/2 batch 7/7 loss 2.0000 val 2.2500 acc 37.5%",
    "plain [####################] epoch 2/2 batch 7/7 loss 2.0000 val 2.2500 acc 37.5%",
  ]);
});
