/**
 * The losses beyond cross-entropy: MSELoss, L1Loss, BCEWithLogitsLoss and NLLLoss.
 *
 * (1) Their float64 twins (tests/reference/losses.ts) against finite differences and a few
 * values worked by hand. (2) The GPU against the twins, on sizes that do not divide the
 * workgroup, within bounds derived from float32 rounding and WGSL's stated accuracies (the
 * bounds are in the twins' file). (3) The stats: accuracy NaN for regression, NLL's accuracy,
 * samples and bad labels. (4) PyTorch 1.13 in float32 on the same inputs, run by
 * tests/torch/losses.py when /usr/bin/python3 has torch (else skipped with a message), within
 * the sum of the GPU's and PyTorch's bounds. (5) `fit` with an MSE regression and a
 * BCE-with-logits classifier on synthetic data: the loss falls, the history files are written
 * with no accuracy, the plots and the summary cope, and a resume is bit-exact.
 */

import assert from "node:assert/strict";
import { PYTHON, torchMissing } from "./fixtures/torch.ts";
import { join } from "node:path";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import { Tensor } from "../lib/tensor.ts";
import { BCEWithLogitsLoss, L1Loss, MSELoss } from "../lib/nn/elementwise_loss.ts";
import { NLLLoss } from "../lib/nn/nll_loss.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { LabelRangeError, type Loss, LossStats } from "../lib/nn/loss_contract.ts";
import { LeakyReLU, Linear } from "../lib/nn/layers.ts";
import { Sequential, type StateDict } from "../lib/nn/sequential.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Adam } from "../lib/optim/adam.ts";
import { fit } from "../lib/train/fit.ts";
import type { History } from "../lib/train/history.ts";
import type { BatchSource } from "../lib/train/schedule.ts";
import { folderSummary } from "../lib/train/history_file.ts";
import { formatSummary } from "../lib/train/summary.ts";
import { readRunFolder, writePlots } from "../lib/plot/run.ts";
import {
  bceBounds,
  bceWithLogits,
  gpuArithmetic,
  l1,
  l1Bounds,
  type LossBounds,
  mse,
  mseBounds,
  nll,
  nllBounds,
  type Reduction,
  TORCH_ARITHMETIC,
} from "./reference/losses.ts";
import { finiteDiff } from "./reference/nn.ts";
import { comparable } from "./fixtures/history.ts";
import { assertClose, assertWithin, gpuTest, hasGpu, randomArray, testGpu } from "./helpers.ts";

// Every loss meets the contract fit takes (a compile-time check).
const _contract: Loss[] = [
  new CrossEntropyLoss(),
  new NLLLoss(),
  new MSELoss(),
  new L1Loss(),
  new BCEWithLogitsLoss(),
];

// ---- (1) The twins, vouched for by finite differences and hand-worked values (CPU only). ----

const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const IDX = [0, 5, 11, 17];

Deno.test("twins: MSE, L1 and BCE-with-logits gradients match finite differences", () => {
  const x = f64(randomArray(24, 1, -3, 3));
  const t = f64(randomArray(24, 2, -3, 3));
  const p = f64(randomArray(24, 3, 0, 1));
  const pw = [0.5, 2, 3];
  for (const reduction of ["mean", "sum"] as const) {
    const cases: [string, (xx: Float64Array) => { loss: number; grad: Float64Array }][] = [
      ["mse", (xx) => mse(xx, t, reduction)],
      ["l1", (xx) => l1(xx, t, reduction)], // x − t is far from 0 at these entries
      ["bce", (xx) => bceWithLogits(xx, p, 3, { reduction })],
      ["bce pos_weight", (xx) => bceWithLogits(xx, p, 3, { posWeight: pw, reduction })],
    ];
    for (const [what, f] of cases) {
      const { grad } = f(x);
      assertClose(finiteDiff((xx) => f(xx).loss, x, IDX), IDX.map((i) => grad[i]), {
        atol: 1e-7,
        what: `${what} ${reduction}`,
      });
    }
  }
});

Deno.test("twins: NLL gradient (weights, ignored label, sum) matches finite differences", () => {
  const [B, C] = [6, 4];
  const z = f64(randomArray(B * C, 4, -3, 0));
  const labels = [1, 0, 3, 3, 2, 1];
  for (
    const o of [
      {},
      { weight: [0.5, 1, 2, 0.25] },
      { ignoreIndex: 3 },
      { weight: [0.5, 1, 2, 0.25], ignoreIndex: 0, reduction: "sum" as const },
    ]
  ) {
    const { grad } = nll(z, labels, B, C, o);
    const idx = [1, 4, 14, 15, 21];
    assertClose(
      finiteDiff((zz) => nll(zz, labels, B, C, o).loss, z, idx),
      idx.map((i) => grad[i]),
      {
        atol: 1e-7,
        what: JSON.stringify(o),
      },
    );
  }
});

Deno.test("twins: values worked by hand", () => {
  assert.equal(mse([1, 2], [0, 0]).loss, 2.5);
  assert.equal(mse([1, 2], [0, 0], "sum").loss, 5);
  assert.equal(l1([1, -2, 0], [0, 0, 0]).loss, 1);
  assert.deepEqual([...l1([1, -2, 0], [0, 0, 0], "sum").grad], [1, -1, 0]);
  assertClose([bceWithLogits([0], [1], 1).loss], [Math.LN2], { atol: 1e-15 });
  // pos_weight 3 on a positive target triples its loss; a zero target ignores it.
  assertClose([bceWithLogits([0.7], [1], 1, { posWeight: [3] }).loss], [
    3 * Math.log1p(Math.exp(-0.7)),
  ], { atol: 1e-15 });
  assertClose(
    [bceWithLogits([0.7], [0], 1, { posWeight: [3] }).loss],
    [Math.log1p(Math.exp(0.7))],
    {
      atol: 1e-15,
    },
  );
  // NLL: −(w·x) summed over counted rows, / Σ w; every row ignored gives NaN.
  const r = nll([-1, -2, -3, -4], [1, 0], 2, 2, { weight: [1, 3] });
  assertClose([r.loss], [(3 * 2 + 1 * 3) / 4], { atol: 1e-15 });
  assert.ok(Number.isNaN(nll([-1, -2], [1], 1, 2, { ignoreIndex: 1 }).loss));
});

// ---- (2) The GPU against the twins. ----

interface ElementCase {
  kind: "MSELoss" | "L1Loss" | "BCEWithLogitsLoss";
  shape: number[];
  reduction: Reduction;
  posWeight?: number[];
}

/** Shapes that do not divide the workgroup of 64; 129×101 has 205 partial sums (> 64). */
const SHAPES = [[37, 53], [1000], [129, 101], [1, 1]];

function elementCases(): ElementCase[] {
  const out: ElementCase[] = [];
  for (const shape of SHAPES) {
    for (const reduction of ["mean", "sum"] as const) {
      out.push({ kind: "MSELoss", shape, reduction }, { kind: "L1Loss", shape, reduction });
      out.push({ kind: "BCEWithLogitsLoss", shape, reduction });
      const columns = shape.length > 1 ? shape.at(-1)! : 1;
      const posWeight = Array.from({ length: columns }, (_, c) => 0.25 + (c % 7) / 2);
      out.push({ kind: "BCEWithLogitsLoss", shape, reduction, posWeight });
    }
  }
  return out;
}

const label = (c: { kind: string; shape: number[] }, o: object) =>
  `${c.kind} [${c.shape.join("×")}] ${JSON.stringify(o)}`;

/** Inputs of a case, as f32 values: outputs in [-4, 4]; targets in [-4, 4], BCE's in [0, 1]. */
function elementInputs(c: ElementCase, seed: number) {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const x = randomArray(n, seed, -4, 4);
  const t = c.kind === "BCEWithLogitsLoss"
    ? randomArray(n, seed + 1, 0, 1).map((v, i) => (i % 3 === 0 ? Math.round(v) : v))
    : randomArray(n, seed + 1, -4, 4);
  return { x, t, n, columns: c.shape.length > 1 ? c.shape.at(-1)! : 1 };
}

function makeElementLoss(c: ElementCase): MSELoss | L1Loss | BCEWithLogitsLoss {
  if (c.kind === "MSELoss") return new MSELoss({ reduction: c.reduction });
  if (c.kind === "L1Loss") return new L1Loss({ reduction: c.reduction });
  return new BCEWithLogitsLoss({ reduction: c.reduction, posWeight: c.posWeight });
}

function elementTwin(c: ElementCase, x: Float32Array, t: Float32Array, columns: number) {
  if (c.kind === "MSELoss") return mse(x, t, c.reduction);
  if (c.kind === "L1Loss") return l1(x, t, c.reduction);
  return bceWithLogits(x, t, columns, c);
}

function elementBounds(
  c: ElementCase,
  x: Float32Array,
  t: Float32Array,
  columns: number,
  a = gpuArithmetic("elements"),
): LossBounds {
  if (c.kind === "MSELoss") return mseBounds(x, t, c.reduction, a);
  if (c.kind === "L1Loss") return l1Bounds(x, t, c.reduction, a);
  return bceBounds(x, t, columns, c, a);
}

/** Runs `loss` twice on (output, target) in one submission; returns stats and gradient. */
async function runLoss(
  gpu: Gpu,
  loss: Loss & { stats: LossStats },
  output: Tensor,
  target: Tensor,
) {
  const enc = new StepEncoder(gpu);
  loss.forward(enc, output, target);
  loss.forward(enc, output, target);
  enc.submit();
  return { summary: await loss.stats.read(), grad: await loss.backward().toFloat32() };
}

/** The largest diff/bound seen per check, printed so that the room left is on record. */
const worst = new Map<string, number>();
const note = (what: string, ratio: number) =>
  worst.set(what, Math.max(worst.get(what) ?? 0, ratio));

gpuTest(
  "MSE, L1, BCE with logits: loss and gradient match the twin within f32 bounds",
  async (gpu) => {
    for (const [k, c] of elementCases().entries()) {
      const { x, t, columns } = elementInputs(c, 10 + k);
      const loss = makeElementLoss(c);
      const X = Tensor.from(gpu, x, c.shape), T = Tensor.from(gpu, t, c.shape);
      const { summary, grad } = await runLoss(gpu, loss, X, T);
      const want = elementTwin(c, x, t, columns);
      const bound = elementBounds(c, x, t, columns);
      const what = label(c, { r: c.reduction, pw: c.posWeight !== undefined });
      note(
        `gpu ${c.kind} loss`,
        assertWithin([summary.lastLoss], [want.loss], bound.loss, `${what} loss`),
      );
      note(`gpu ${c.kind} grad`, assertWithin(grad, want.grad, bound.grad, `${what} grad`));
      assert.equal(summary.meanLoss, summary.lastLoss, `${what}: two equal batches`);
      assert.deepEqual([summary.batches, summary.samples], [2, 2 * c.shape[0]], what);
      assert.ok(Number.isNaN(summary.accuracy), `${what}: a regression loss has no accuracy`);
      assert.equal(summary.firstNonFiniteBatch, null);
      for (const d of [loss, X, T]) d.dispose();
    }
    console.log(`worst diff/bound: ${JSON.stringify(Object.fromEntries(worst))}`);
  },
);

interface NllCase {
  B: number;
  C: number;
  o: { weight?: number[]; ignoreIndex?: number; reduction?: Reduction };
}

function nllCases(): NllCase[] {
  const out: NllCase[] = [];
  for (const [B, C] of [[37, 53], [1000, 10], [1, 1], [130, 3]]) {
    const weight = Array.from({ length: C }, (_, c) => 0.5 + (c % 5) / 4);
    for (const reduction of ["mean", "sum"] as const) {
      out.push({ B, C, o: { reduction } }, { B, C, o: { weight, reduction } });
      out.push({ B, C, o: { ignoreIndex: C - 1, reduction } });
      out.push({ B, C, o: { weight, ignoreIndex: 0xffffffff, reduction } });
    }
  }
  return out;
}

/** Log-probabilities (a log-softmax in f64, rounded to f32) and labels; some labels ignored. */
function nllInputs(c: NllCase, seed: number) {
  const z = randomArray(c.B * c.C, seed, -4, 4);
  const logp = new Float32Array(c.B * c.C);
  for (let r = 0; r < c.B; r++) {
    const row = Array.from(z.subarray(r * c.C, (r + 1) * c.C));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    row.forEach((v, k) => (logp[r * c.C + k] = v - lse));
  }
  const labels = Uint32Array.from({ length: c.B }, (_, r) => (r * 7 + seed) % c.C);
  if (c.o.ignoreIndex === 0xffffffff) { for (let r = 0; r < c.B; r += 5) labels[r] = 0xffffffff; }
  return { logp, labels };
}

gpuTest(
  "NLL: loss, gradient, accuracy and samples match the twin within f32 bounds",
  async (gpu) => {
    for (const [k, c] of nllCases().entries()) {
      const { logp, labels } = nllInputs(c, 40 + k);
      const loss = new NLLLoss(c.o);
      const X = Tensor.from(gpu, logp, [c.B, c.C]), Y = Tensor.from(gpu, labels, [c.B]);
      const { summary, grad } = await runLoss(gpu, loss, X, Y);
      const want = nll(logp, labels, c.B, c.C, c.o);
      const bound = nllBounds(logp, labels, c.B, c.C, c.o, gpuArithmetic("rows"));
      const what = label({ kind: "NLLLoss", shape: [c.B, c.C] }, c.o);
      if (Number.isNaN(want.loss)) { // [1, 1] with label 0 ignored: 0 / 0
        assert.ok(Number.isNaN(summary.lastLoss), `${what}: NaN, got ${summary.lastLoss}`);
      } else {
        note(
          "gpu NLL loss",
          assertWithin([summary.lastLoss], [want.loss], bound.loss, `${what} loss`),
        );
      }
      note("gpu NLL grad", assertWithin(grad, want.grad, bound.grad, `${what} grad`));
      assert.deepEqual([summary.batches, summary.samples], [2, 2 * want.counted], what);
      assert.equal(summary.accuracy, want.correct / want.counted, `${what} accuracy`);
      for (const d of [loss, X, Y]) d.dispose();
    }
    console.log(`worst diff/bound: ${JSON.stringify(Object.fromEntries(worst))}`);
  },
);

// ---- (3) The stats and the checks. ----

gpuTest(
  "NLL: a bad label is reported naming NLL; its row adds nothing; all ignored is NaN",
  async (gpu) => {
    const [B, C] = [37, 10];
    const { logp } = nllInputs({ B, C, o: {} }, 7);
    const labels = Uint32Array.from({ length: B }, (_, r) => r % C);
    labels[17] = 10;
    const loss = new NLLLoss();
    const stats = new LossStats(gpu, "nll bad");
    const X = Tensor.from(gpu, logp, [B, C]), Y = Tensor.from(gpu, labels, [B]);
    const enc = new StepEncoder(gpu);
    stats.reset(enc);
    loss.forward(enc, X, Y); // batch 0 of loss.stats: in its own accumulator
    loss.forward(enc, X, Y, stats);
    enc.submit();
    const err = await stats.read().then(() => null, (e: unknown) => e);
    assert.ok(err instanceof LabelRangeError, `expected a LabelRangeError: got ${err}`);
    assert.deepEqual([err.batch, err.label, err.classes, err.loss], [0, 10, 10, "nll"]);
    assert.match(
      err.message,
      /Cannot compute NLL loss: batch 0 has label 10, but the log-probabilities have 10 classes/,
    );
    const grad = await loss.backward().toFloat32();
    assert.deepEqual([...grad.subarray(17 * C, 18 * C)], new Array(C).fill(0));
    assertClose(grad, nll(logp, labels, B, C).grad, { atol: 1e-7, rtol: 1e-6, what: "grad" });

    // Every row ignored: 0 / 0 = NaN under the mean, as in PyTorch, reported as non-finite.
    const all = new NLLLoss({ ignoreIndex: 3 });
    const Y3 = Tensor.from(gpu, new Uint32Array(B).fill(3), [B]);
    const enc2 = new StepEncoder(gpu);
    all.forward(enc2, X, Y3);
    enc2.submit();
    const s = await all.stats.read();
    assert.ok(Number.isNaN(s.lastLoss));
    assert.deepEqual([s.firstNonFiniteBatch, s.samples], [0, 0]);
    assert.ok(Number.isNaN(s.accuracy));
    assert.deepEqual([...await all.backward().toFloat32()], new Array(B * C).fill(0));
    for (const d of [loss, all, stats, X, Y, Y3]) d.dispose();
  },
);

gpuTest(
  "regression losses: a NaN output is reported with its batch; inputs are checked",
  async (gpu) => {
    const loss = new MSELoss();
    const good = Tensor.from(gpu, randomArray(6, 1), [2, 3]);
    const bad = Tensor.from(gpu, Float32Array.of(0, 1, NaN, 2, 3, 4), [2, 3]);
    const t = Tensor.from(gpu, randomArray(6, 2), [2, 3]);
    const enc = new StepEncoder(gpu);
    loss.forward(enc, good, t);
    loss.forward(enc, bad, t);
    loss.forward(enc, good, t);
    enc.submit();
    assert.equal((await loss.stats.read()).firstNonFiniteBatch, 1);
    const e = new StepEncoder(gpu);
    const flat = Tensor.from(gpu, new Float32Array(3), [3]);
    const wide = Tensor.from(gpu, new Float32Array(8), [2, 4]);
    const labels = Tensor.from(gpu, Uint32Array.of(0, 1), [2]);
    assert.throws(() => loss.forward(e, good, flat), /target must be f32 \[2, 3\]/);
    assert.throws(() => loss.forward(e, wide, wide), /set up for rows of \[3\]: current rows/);
    assert.throws(() => loss.forward(e, good, labels), /target must be f32/);
    const nllLoss = new NLLLoss();
    assert.throws(() => nllLoss.forward(e, good, t), /labels must be \[2\] u32/);
    const bce = new BCEWithLogitsLoss({ posWeight: [1, 2] });
    assert.throws(() => bce.forward(e, good, t), /2 posWeight values for 3 outputs per row/);
    assert.throws(
      () => new L1Loss({ reduction: "none" as "sum" }),
      /reduction must be "mean" or "sum" \("none" gives/,
    );
    assert.throws(() => new MSELoss().stats, /no forward was encoded yet/);
    assert.throws(() => new NLLLoss().backward(), /no forward was encoded/);
    for (const d of [loss, nllLoss, bce, good, bad, t, flat, wide, labels]) d.dispose();
  },
);

// ---- (4) PyTorch 1.13 in float32 on the same inputs. ----

const TORCH_SCRIPT = new URL("./torch/losses.py", import.meta.url).pathname;

const noTorch = await torchMissing();
if (noTorch) console.log(`skipping the PyTorch checks of this file: ${noTorch}`);

interface TorchCase {
  kind: string;
  shape: number[];
  input: number[];
  target: number[];
  options: Record<string, unknown>;
}

/** Runs tests/torch/losses.py on `cases`; NaN comes back as null. */
async function runTorch(
  cases: TorchCase[],
): Promise<{ torch: string; results: { loss: number | null; grad: (number | null)[] }[] }> {
  const child = new Deno.Command(PYTHON, {
    args: [TORCH_SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify({ cases })));
  await writer.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(`${TORCH_SCRIPT} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const orNaN = (v: number | null) => v ?? NaN;
const plus = (a: LossBounds, b: LossBounds): LossBounds => ({
  loss: a.loss + b.loss,
  grad: a.grad.map((v, i) => v + b.grad[i]),
});

/** Asserts `got` within `bound` of `want`, a NaN only where `want` is NaN. */
function within(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  bound: number | Float64Array,
  what: string,
) {
  const keep = Array.from(want, (_, i) => i).filter((i) => !Number.isNaN(want[i]));
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) {
      assert.ok(Number.isNaN(got[i]), `${what} [${i}]: NaN, got ${got[i]}`);
    }
  }
  const b = typeof bound === "number" ? bound : keep.map((i) => bound[i]);
  return assertWithin(keep.map((i) => got[i]), keep.map((i) => want[i]), b, what);
}

Deno.test({
  name: "PyTorch: every loss's value and gradient match torch.nn's in float32",
  ignore: noTorch !== null || !hasGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    const elems = elementCases().filter((c) => c.shape.length === 1 || c.shape[0] > 1);
    const nlls = nllCases();
    const cases: TorchCase[] = [];
    const inputs = elems.map((c, k) => elementInputs(c, 100 + k));
    elems.forEach((c, k) =>
      cases.push({
        kind: c.kind,
        shape: c.shape,
        input: [...inputs[k].x],
        target: [...inputs[k].t],
        options: { reduction: c.reduction, ...(c.posWeight ? { posWeight: c.posWeight } : {}) },
      })
    );
    const nllIn = nlls.map((c, k) => nllInputs(c, 200 + k));
    nlls.forEach((c, k) =>
      cases.push({
        kind: "NLLLoss",
        shape: [c.B, c.C],
        input: [...nllIn[k].logp],
        target: [...nllIn[k].labels],
        options: c.o,
      })
    );
    const torch = await runTorch(cases);
    assert.match(torch.torch, /^1\.13/, "the reference is PyTorch 1.13");
    const ratios = new Map<string, number>();
    const keep = (what: string, r: number) => ratios.set(what, Math.max(ratios.get(what) ?? 0, r));
    for (const [k, c] of elems.entries()) {
      const { x, t, columns } = inputs[k];
      const ref = torch.results[k];
      const tl = orNaN(ref.loss), tg = ref.grad.map(orNaN);
      const exact = elementTwin(c, x, t, columns);
      const tb = elementBounds(c, x, t, columns, TORCH_ARITHMETIC);
      const what = label(c, { r: c.reduction, pw: c.posWeight !== undefined });
      // PyTorch against the exact twin (the definitions agree), then the GPU against PyTorch.
      keep(`torch ${c.kind} loss`, within([tl], [exact.loss], tb.loss, `torch ${what} loss`));
      keep(`torch ${c.kind} grad`, within(tg, exact.grad, tb.grad, `torch ${what} grad`));
      const loss = makeElementLoss(c);
      const X = Tensor.from(gpu, x, c.shape), T = Tensor.from(gpu, t, c.shape);
      const { summary, grad } = await runLoss(gpu, loss, X, T);
      const both = plus(elementBounds(c, x, t, columns), tb);
      keep(`gpu-torch ${c.kind} loss`, within([summary.lastLoss], [tl], both.loss, `${what} loss`));
      keep(`gpu-torch ${c.kind} grad`, within(grad, tg, both.grad, `${what} grad`));
      for (const d of [loss, X, T]) d.dispose();
    }
    for (const [k, c] of nlls.entries()) {
      const { logp, labels } = nllIn[k];
      const ref = torch.results[elems.length + k];
      const tl = orNaN(ref.loss), tg = ref.grad.map(orNaN);
      const exact = nll(logp, labels, c.B, c.C, c.o);
      const tb = nllBounds(logp, labels, c.B, c.C, c.o, TORCH_ARITHMETIC);
      const what = label({ kind: "NLLLoss", shape: [c.B, c.C] }, c.o);
      keep("torch NLL loss", within([tl], [exact.loss], tb.loss, `torch ${what} loss`));
      keep("torch NLL grad", within(tg, exact.grad, tb.grad, `torch ${what} grad`));
      const loss = new NLLLoss(c.o);
      const X = Tensor.from(gpu, logp, [c.B, c.C]), Y = Tensor.from(gpu, labels, [c.B]);
      const { summary, grad } = await runLoss(gpu, loss, X, Y);
      const both = plus(nllBounds(logp, labels, c.B, c.C, c.o, gpuArithmetic("rows")), tb);
      keep("gpu-torch NLL loss", within([summary.lastLoss], [tl], both.loss, `${what} loss`));
      keep("gpu-torch NLL grad", within(grad, tg, both.grad, `${what} grad`));
      for (const d of [loss, X, Y]) d.dispose();
    }
    console.log(
      `PyTorch ${torch.torch}, worst diff/bound: ${JSON.stringify(Object.fromEntries(ratios))}`,
    );
    await gpu.sync();
  },
});

// ---- (5) Through fit: a regression and a multi-label classifier on synthetic data. ----

/**
 * Fixed batches of f32 inputs and targets, uploaded once; epoch e visits them rotated by e, so
 * that the epoch number matters (as a shuffling loader's does) and a resume must get it right.
 */
class TensorBatches implements BatchSource {
  readonly batchesPerEpoch: number;
  readonly #batches: { x: Tensor; y: Tensor }[] = [];
  #epoch = 0;

  constructor(
    gpu: Gpu,
    x: Float32Array,
    y: Float32Array,
    features: number,
    outputs: number,
    size: number,
  ) {
    const n = x.length / features;
    for (let s = 0; s < n; s += size) {
      const rows = Math.min(size, n - s);
      this.#batches.push({
        x: Tensor.from(gpu, x.slice(s * features, (s + rows) * features), [rows, features]),
        y: Tensor.from(gpu, y.slice(s * outputs, (s + rows) * outputs), [rows, outputs]),
      });
    }
    this.batchesPerEpoch = this.#batches.length;
  }

  startEpoch(epoch: number): void {
    this.#epoch = epoch;
  }

  encodeBatchFor(_enc: StepEncoder, index: number): { x: Tensor; y: Tensor } {
    return this.#batches[(index + this.#epoch) % this.batchesPerEpoch];
  }

  dispose(): void {
    for (const b of this.#batches) for (const t of [b.x, b.y]) t.dispose();
  }
}

const FEATURES = 8;

/** y = A·x + b + noise (regression) or [A·x + b > 0] (multi-label), for `count` samples. */
function synthetic(count: number, outputs: number, seed: number, kind: "regression" | "labels") {
  const a = randomArray(outputs * FEATURES, 1, -1, 1);
  const b = randomArray(outputs, 2, -0.5, 0.5);
  const x = randomArray(count * FEATURES, seed, -1, 1);
  const noise = randomArray(count * outputs, seed + 1, -0.05, 0.05);
  const y = new Float32Array(count * outputs);
  for (let r = 0; r < count; r++) {
    for (let o = 0; o < outputs; o++) {
      let s = b[o];
      for (let f = 0; f < FEATURES; f++) s += a[o * FEATURES + f] * x[r * FEATURES + f];
      y[r * outputs + o] = kind === "regression" ? s + noise[r * outputs + o] : Number(s > 0);
    }
  }
  return { x, y };
}

interface Problem {
  variant: "mse" | "bce";
  outputs: number;
  model: () => Sequential;
  loss: () => Loss & { dispose(): void };
}

const PROBLEMS: Problem[] = [
  {
    variant: "mse",
    outputs: 3,
    model: () => new Sequential(new Linear(FEATURES, 16), new Linear(16, 3)),
    loss: () => new MSELoss(),
  },
  {
    variant: "bce",
    outputs: 2,
    model: () => new Sequential(new Linear(FEATURES, 16), new LeakyReLU(), new Linear(16, 2)),
    loss: () => new BCEWithLogitsLoss({ posWeight: [1, 2] }),
  },
];

interface FitResult {
  history: History;
  state: StateDict;
  optim: Record<string, Float32Array>;
}

/** One fit of `p` in `dir` (200 training samples in batches of 32: the last has 8). */
async function fitProblem(
  gpu: Gpu,
  p: Problem,
  dir: string,
  o: { epochs: number; resume?: boolean },
): Promise<FitResult> {
  const kind = p.variant === "mse" ? "regression" : "labels";
  const tr = synthetic(200, p.outputs, 10, kind), va = synthetic(64, p.outputs, 20, kind);
  const train = new TensorBatches(gpu, tr.x, tr.y, FEATURES, p.outputs, 32);
  const val = new TensorBatches(gpu, va.x, va.y, FEATURES, p.outputs, 32);
  manualSeed(0);
  const model = p.model().to(gpu);
  const optimizer = new Adam(model.parameters(), { lr: 1e-2 });
  const loss = p.loss();
  try {
    const history = await fit(model, {
      train,
      val,
      epochs: o.epochs,
      loss,
      optimizer,
      checkpointDir: dir,
      resume: o.resume,
      variant: p.variant,
      progress: false,
      settings: { data: `synthetic ${kind}` },
    });
    return { history, state: await model.stateDict(), optim: await optimizer.readState() };
  } finally {
    for (const d of [train, val, loss, optimizer, model]) d.dispose();
  }
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const curves = (h: History) => h.epochs.map((e) => [e.epoch, e.trainLoss, e.valLoss ?? null]);

function assertSameBits(
  a: Record<string, ArrayBufferView>,
  b: Record<string, ArrayBufferView>,
  what: string,
) {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort(), `${what}: names`);
  for (const k of Object.keys(b)) assert.deepEqual(bytesOf(a[k]), bytesOf(b[k]), `${what} "${k}"`);
}

const stateData = (s: StateDict) =>
  Object.fromEntries(Object.entries(s).map(([k, t]) => [k, t.data]));

gpuTest(
  "fit: MSE regression and BCE-with-logits fall; history without accuracy; plots cope",
  async (gpu) => {
    const root = await Deno.makeTempDir({ prefix: "wgnn-losses-fit-" });
    try {
      for (const p of PROBLEMS) {
        const dir = join(root, p.variant);
        const { history } = await fitProblem(gpu, p, dir, { epochs: 6 });
        const train = history.epochs.map((e) => e.trainLoss);
        const val = history.epochs.map((e) => e.valLoss!);
        assert.ok(
          train.every(Number.isFinite) && val.every(Number.isFinite),
          `${p.variant}: ${train}`,
        );
        assert.ok(train[5] < 0.5 * train[0], `${p.variant}: training loss falls: ${train}`);
        assert.ok(val[5] < val[0], `${p.variant}: validation loss falls: ${val}`);
        assert.ok(history.epochs.every((e) => e.valAccuracy === undefined), "no accuracy recorded");
        assert.equal(
          history.confusion,
          undefined,
          "no confusion matrix for a loss that does not classify",
        );
        const saved = JSON.parse(await Deno.readTextFile(join(dir, "history.json"))) as History;
        assert.deepEqual(curves(saved), curves(history));
        const csv = (await Deno.readTextFile(join(dir, "history.csv"))).trim().split("\n");
        assert.equal(csv.length, 7);
        assert.match(csv[6], /^6,[^,]+,[^,]+,,[^,]+$/, "an empty val_accuracy cell");
        for (
          const f of ["resume.safetensors", "last.safetensors", "best.safetensors", "run.json"]
        ) {
          assert.ok((await Deno.stat(join(dir, f))).isFile, f);
        }
      }
      // The summary and the figures from those folders: accuracy shown as not measured.
      const text = formatSummary(await folderSummary(root));
      console.log(text);
      assert.match(text, /^mse .* - +[\d.]+$/m, text);
      const written = await writePlots(await readRunFolder(root), { date: new Date(0) });
      assert.ok(written.some((f) => f.endsWith("val_accuracy.svg")), written.join(", "));
      assert.ok(!written.some((f) => f.endsWith("confusion.svg")), "no confusion figure");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);

for (const p of PROBLEMS) {
  gpuTest(
    `fit: ${p.variant} resumed after 2 of 4 epochs equals 4 in one go, bit for bit`,
    async (gpu) => {
      const root = await Deno.makeTempDir({ prefix: `wgnn-losses-resume-${p.variant}-` });
      try {
        const whole = await fitProblem(gpu, p, join(root, "whole"), { epochs: 4 });
        const dir = join(root, "parts");
        const first = await fitProblem(gpu, p, dir, { epochs: 2 });
        assert.deepEqual(first.history.epochs.map((e) => e.epoch), [1, 2]);
        const w = (r: FitResult) => bytesOf(r.state["0.weight"].data);
        assert.notDeepEqual(w(first), w(whole), "the resume has epochs left to train");
        const resumed = await fitProblem(gpu, p, dir, { epochs: 4, resume: true });
        assert.deepEqual(curves(resumed.history), curves(whole.history), "history");
        assertSameBits(stateData(resumed.state), stateData(whole.state), "state dict");
        assertSameBits(resumed.optim, whole.optim, "optimizer state");
        for (const f of ["resume.safetensors", "last.safetensors", "best.safetensors"]) {
          assert.deepEqual(
            comparable(f, await Deno.readFile(join(dir, f))),
            comparable(f, await Deno.readFile(join(root, "whole", f))),
            f,
          );
        }
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  );
}
