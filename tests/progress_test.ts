/**
 * The training progress displays, seen from outside: a child process drives them and the test
 * reads its stderr. On a pipe (CI logs) there are no carriage returns, every finished epoch is one
 * line, and a board shared by concurrent runs prints each run's epochs under its own name.
 * In-process, with a fake clock and writer: the ETA leaves out the first epoch (kernel
 * compilation), samples/s, the compiling note, and the running loss read at most once a second.
 */

import assert from "node:assert/strict";
import {
  COMPILING,
  ProgressBoard,
  type ProgressState,
  RUNNING_LOSS_INTERVAL_MS,
  RunPace,
  samplesPerSecond,
  StderrProgress,
} from "../lib/train/progress.ts";

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

// In-process displays: a fake clock (ms) and a writer that keeps the text, fed synthetic states.

/** A display wired to a fake clock; `text` collects what it wrote. */
function fake(o: { tty: boolean; runningLoss?: boolean }) {
  const clock = { ms: 0 };
  const out = { text: "" };
  const sink = new StderrProgress({
    tty: o.tty,
    runningLoss: o.runningLoss,
    now: () => clock.ms,
    write: (t) => (out.text += t),
  });
  return { clock, out, sink };
}

/** The last redrawn line of a TTY display. */
const lastLine = (text: string) =>
  text.replaceAll("\r\x1b[2K", "\n").split("\n").filter((l) => l !== "").at(-1)!;

const base = { label: "plain", epochs: 10, batches: 100, batchSize: 64 };

Deno.test("the ETA leaves out a slow first epoch once a second one has finished", () => {
  const pace = new RunPace();
  // Epoch 1 takes 150 s (compiling), epochs 2 and 3 take 10 s each.
  const s = (epoch: number, batch: number, elapsed: number, done: number): ProgressState => ({
    ...base,
    epoch,
    batch,
    elapsed,
    done,
  });
  pace.epochDone(s(1, 100, 150, 1));
  // One epoch done: provisional, from the first epoch (an upper bound): 9 epochs × 150 s.
  assert.deepEqual(pace.remaining(s(1, 100, 150, 1)), { seconds: 9 * 150, provisional: true });
  // Halfway through epoch 2 after 5 s: its own pace (10 s an epoch) is faster, still provisional.
  const mid = pace.remaining({ ...s(2, 50, 155, 1), epochElapsed: 5 })!;
  assert.equal(mid.provisional, true);
  assert.ok(Math.abs(mid.seconds - 8.5 * 10) < 1e-9, String(mid.seconds));
  pace.epochDone(s(2, 100, 160, 2));
  // Two epochs done: the steady pace is 10 s an epoch, the first epoch is ignored.
  assert.deepEqual(pace.remaining(s(2, 100, 160, 2)), { seconds: 80, provisional: false });
  pace.epochDone(s(3, 100, 170, 3));
  assert.deepEqual(pace.remaining(s(4, 25, 172.5, 3)), { seconds: 67.5, provisional: false });
  assert.equal(pace.eta(s(4, 25, 172.5, 3)), "eta 1m8s");

  // The display's epoch lines say the same: provisional after epoch 1, steady after epoch 2.
  const { out, sink } = fake({ tty: false });
  sink.epochDone(s(1, 100, 150, 1));
  sink.epochDone(s(2, 100, 160, 2));
  const lines = out.text.trimEnd().split("\n");
  assert.match(lines[0], / eta ~22m30s \(provisional\)$/);
  assert.match(lines[1], / eta 1m20s$/);
});

Deno.test("within the first epoch the ETA is provisional, from the chunks after the first", () => {
  const pace = new RunPace();
  const s = (batch: number, elapsed: number): ProgressState => ({
    ...base,
    epochs: 2,
    epoch: 1,
    batch,
    elapsed,
    done: 0,
  });
  pace.update(s(0, 0));
  assert.equal(pace.eta(s(0, 0)), COMPILING);
  pace.update(s(10, 120)); // the first chunk carried two minutes of compilation
  assert.equal(pace.eta(s(10, 120)), "eta ?");
  pace.update(s(20, 121)); // then 0.1 s a batch: 80 + 100 batches left
  assert.deepEqual(pace.remaining(s(20, 121)), { seconds: 18, provisional: true });
  pace.update(s(100, 129));
  // The first epoch took 130 s; the line after it goes by its chunks' pace (10 s an epoch).
  pace.epochDone({ ...s(100, 130), done: 1 });
  assert.deepEqual(pace.remaining({ ...s(100, 130), done: 1 }), { seconds: 10, provisional: true });
  assert.equal(pace.eta({ ...s(100, 130), done: 1 }), "eta ~10s (provisional)");
});

Deno.test("samples/s: completed batches × batch size over the epoch's wall time", () => {
  const s = { ...base, epoch: 2, elapsed: 30, done: 1 };
  assert.equal(samplesPerSecond({ ...s, batch: 50, epochElapsed: 4 }), 800);
  assert.equal(samplesPerSecond({ ...s, batch: 0, epochElapsed: 4 }), undefined);
  assert.equal(
    samplesPerSecond({ ...s, batch: 50, batchSize: undefined, epochElapsed: 4 }),
    undefined,
  );
  assert.equal(samplesPerSecond({ ...s, batch: 50 }), undefined);
  // On a pipe the epoch line ends with the epoch's rate (the running fields need a terminal).
  const { out, sink } = fake({ tty: false });
  sink.epochDone({ ...s, batch: 100, done: 2, epochElapsed: 8 });
  assert.match(out.text, / 800 samples\/s\n$/);
  // On a terminal the redrawn line shows the rate so far.
  const t = fake({ tty: true });
  t.sink.update({ ...s, batch: 25, epochElapsed: 2 });
  assert.match(lastLine(t.out.text), / 800 samples\/s$/);
});

Deno.test("the compiling line shows until the first chunk finishes, and not after", () => {
  const { out, sink } = fake({ tty: true });
  const s = { ...base, epoch: 1, elapsed: 0, done: 0 };
  sink.update({ ...s, batch: 0, epochElapsed: 0 });
  assert.ok(lastLine(out.text).endsWith(COMPILING), out.text);
  sink.update({ ...s, batch: 8, elapsed: 90, epochElapsed: 90 });
  assert.ok(!lastLine(out.text).includes(COMPILING), lastLine(out.text));
  assert.match(lastLine(out.text), / eta \? /);
  sink.epochDone({ ...s, batch: 100, elapsed: 100, epochElapsed: 100, done: 1 });
  // The next epoch's first update (batch 0) is no longer compiling.
  sink.update({ ...s, epoch: 2, batch: 0, elapsed: 100, epochElapsed: 0, done: 1 });
  assert.ok(!lastLine(out.text).includes(COMPILING), lastLine(out.text));
  assert.match(lastLine(out.text), / eta ~15m0s \(provisional\)$/);
  sink.close();
  // On a pipe the batch-0 update prints nothing, even past the 10 s between plain lines.
  const pipe = fake({ tty: false });
  pipe.clock.ms = 60_000;
  pipe.sink.update({ ...s, batch: 0 });
  assert.equal(pipe.out.text, "");
  // A board shows it too, per run and in place of the ETA.
  let text = "";
  const board = new ProgressBoard({ tty: true, now: () => 1000, write: (t) => (text += t) });
  const a = board.sink();
  a.update({ ...s, batch: 0 });
  assert.ok(lastLine(text).endsWith(`plain 1/10 compiling ${COMPILING}`), text);
  a.update({ ...s, batch: 8, elapsed: 90 });
  a.epochDone({ ...s, batch: 100, elapsed: 100, done: 1 });
  assert.ok(!lastLine(text).includes("compiling"), lastLine(text));
  a.close();
});

Deno.test("a terminal shows the running loss, read at most once a second", async () => {
  const { clock, out, sink } = fake({ tty: true });
  let reads = 0;
  let resolveRead: (v: { meanLoss: number; batches: number }) => void = () => {};
  const readRunningLoss = () => {
    reads++;
    return new Promise<{ meanLoss: number; batches: number }>((r) => (resolveRead = r));
  };
  const s = { ...base, epoch: 2, elapsed: 10, done: 1, epochElapsed: 1, readRunningLoss };
  sink.update({ ...s, batch: 0 });
  assert.equal(reads, 0, "nothing to read before a chunk finishes");
  // Chunks finish every 100 ms for 3.5 s: 35 updates.
  for (let i = 1; i <= 35; i++) {
    clock.ms = 100 * i;
    sink.update({ ...s, batch: i });
    if (i === 2) {
      // The first read is in flight: the update did not wait for it, and no second one starts.
      assert.ok(!lastLine(out.text).includes("running"), lastLine(out.text));
      resolveRead({ meanLoss: 1.875, batches: 2 });
      await Promise.resolve();
      await Promise.resolve();
      assert.match(lastLine(out.text), / running 1\.8750 /);
    } else if (i > 2) resolveRead({ meanLoss: 1.5, batches: i });
    await Promise.resolve();
  }
  // Reads at 100 ms, 1100, 2100 and 3100: 4 in 3.5 s.
  assert.ok(reads <= Math.ceil(3500 / RUNNING_LOSS_INTERVAL_MS), `${reads} reads`);
  assert.equal(reads, 4);
  // A value that lands after its epoch ended is not shown on the next epoch's line.
  clock.ms = 10_000;
  sink.update({ ...s, batch: 36 });
  sink.epochDone({ ...s, batch: 100, done: 2 });
  assert.ok(!lastLine(out.text).includes("running"), "the epoch line has no running loss");
  sink.update({ ...s, epoch: 3, batch: 0, done: 2 });
  resolveRead({ meanLoss: 9, batches: 36 });
  await Promise.resolve();
  await Promise.resolve();
  assert.ok(!out.text.includes("running 9.0000"), out.text);
  sink.close();

  // A pipe never reads it, unless asked to.
  for (const runningLoss of [undefined, true]) {
    const pipe = fake({ tty: false, runningLoss });
    let n = 0;
    pipe.sink.update({
      ...s,
      batch: 1,
      readRunningLoss: () => (n++, Promise.resolve({ meanLoss: 1, batches: 1 })),
    });
    assert.equal(n, runningLoss ? 1 : 0);
  }
});

Deno.test("a board on a terminal shows each run's running loss (marked ~) and samples/s", async () => {
  let text = "";
  let ms = 0;
  const board = new ProgressBoard({ tty: true, now: () => ms, write: (t) => (text += t) });
  const [a, b] = [board.sink(), board.sink()];
  let reads = 0;
  const readRunningLoss = () => (reads++, Promise.resolve({ meanLoss: 1.875, batches: 50 }));
  const s = { ...base, epoch: 2, batch: 50, elapsed: 10, done: 1, epochElapsed: 4 };
  ms = 1000;
  a.update({ ...s, readRunningLoss });
  b.update({ ...s, label: "bn", trainLoss: 2.5 });
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(reads, 1);
  assert.match(
    lastLine(text),
    /^plain 2\/10 50% loss 1\.875~ 800\/s \| bn 2\/10 50% loss 2\.500 800\/s /,
  );
  a.close();
  b.close();
});
