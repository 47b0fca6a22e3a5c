/**
 * kernels/confusion.wgsl (through lib/train/confusion.ts) against its integer twin in
 * tests/reference/confusion.ts, on batch sizes that do not divide the workgroup of 64 and on
 * logits drawn from a few values, so that many rows tie for the maximum (the first index wins).
 */

import assert from "node:assert/strict";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { ConfusionMatrix } from "../lib/train/confusion.ts";
import { confusionRef, firstArgmax } from "./reference/confusion.ts";
import { gpuTest, rng } from "./helpers.ts";

/** A batch of logits [B×C] taking only `levels` distinct values (ties), and labels in [0, C). */
function tiedBatch(B: number, C: number, levels: number, seed: number) {
  const r = rng(seed);
  const logits = Float32Array.from({ length: B * C }, () => Math.floor(r() * levels) - 1.5);
  const labels = Uint32Array.from({ length: B }, () => Math.floor(r() * C));
  return { logits, labels };
}

/** Rows whose maximum appears more than once: the cases where "first" decides. */
function tiedRows(logits: Float32Array, B: number, C: number): number {
  let n = 0;
  for (let r = 0; r < B; r++) {
    const row = logits.subarray(r * C, (r + 1) * C);
    const max = row[firstArgmax(logits, r, C)];
    if (row.filter((z) => z === max).length > 1) n++;
  }
  return n;
}

/**
 * Encodes a reset of `matrix` and the adding of each batch in one submission, then reads the
 * matrix back, flat.
 */
async function resetAndAdd(
  gpu: Gpu,
  matrix: ConfusionMatrix,
  batches: { logits: Float32Array; labels: Uint32Array }[],
): Promise<Uint32Array> {
  const C = matrix.classes;
  const tensors: Tensor[] = [];
  try {
    const enc = new StepEncoder(gpu, "confusion test");
    matrix.reset(enc);
    for (const { logits, labels } of batches) {
      const B = labels.length;
      const x = Tensor.from(gpu, logits, [B, C], "logits");
      const y = Tensor.from(gpu, labels, [B], "labels");
      tensors.push(x, y);
      matrix.add(enc, x, y);
    }
    enc.submit();
    return Uint32Array.from((await matrix.read()).flat());
  } finally {
    for (const t of tensors) t.dispose();
  }
}

/** A fresh matrix of `C` classes holding `batches`. */
async function gpuConfusion(
  gpu: Gpu,
  C: number,
  batches: { logits: Float32Array; labels: Uint32Array }[],
): Promise<Uint32Array> {
  const matrix = new ConfusionMatrix(gpu, C);
  try {
    return await resetAndAdd(gpu, matrix, batches);
  } finally {
    matrix.dispose();
  }
}

/** Asserts equal counts; the message lists the first five differing cells as [true][pred]. */
function assertCounts(actual: Uint32Array, expected: Uint32Array, C: number, what: string) {
  const bad: string[] = [];
  for (let i = 0; i < expected.length && bad.length < 5; i++) {
    if (actual[i] !== expected[i]) {
      bad.push(`[${Math.floor(i / C)}][${i % C}] got ${actual[i]}, expected ${expected[i]}`);
    }
  }
  assert.deepEqual(bad, [], `${what}:\n  ${bad.join("\n  ")}`);
}

gpuTest(
  "confusion matrix equals its twin on sizes that do not divide the workgroup, ties included",
  async (gpu) => {
    for (
      const [B, C, levels, seed] of [[1000, 10, 3, 1], [37, 53, 4, 2], [65, 3, 2, 3], [1, 1, 1, 4]]
    ) {
      const batch = tiedBatch(B, C, levels, seed);
      if (C > 1) assert.ok(tiedRows(batch.logits, B, C) > B / 10, `few ties at B=${B}, C=${C}`);
      const expected = confusionRef(batch.logits, batch.labels, B, C);
      assertCounts(await gpuConfusion(gpu, C, [batch]), expected, C, `B=${B}, C=${C}`);
      assert.equal(expected.reduce((s, n) => s + n, 0), B);
    }
  },
);

gpuTest(
  "confusion matrix: the first maximum wins ties, -0 ties +0, infinities order as numbers",
  async (gpu) => {
    const C = 4;
    const I = Infinity;
    // One row per case; the comment names the prediction of PyTorch's argmax.
    const rows = [
      [1, 1, 1, 1], // 0: all equal
      [0, 2, 1, 2], // 1: tie between 1 and 3
      [-1, -3, -1, -2], // 0: tie between 0 and 2, all negative
      [-0, 0, -1, -2], // 0: -0 == +0
      [0, -0, -1, -2], // 0
      [-I, -I, -I, -I], // 0
      [-I, 5, I, I], // 2: first +Infinity
      [3, 2, 1, 4], // 3: a unique maximum last
    ];
    const expectedPred = [0, 1, 0, 0, 0, 0, 2, 3];
    const B = rows.length;
    const logits = Float32Array.from(rows.flat());
    // Label = row index mod C, so every row lands in its own cell of the matrix.
    const labels = Uint32Array.from({ length: B }, (_, r) => r % C);
    assert.deepEqual(
      rows.map((_, r) => firstArgmax(logits, r, C)),
      expectedPred,
      "the twin's rule",
    );
    assertCounts(
      await gpuConfusion(gpu, C, [{ logits, labels }]),
      confusionRef(logits, labels, B, C),
      C,
      "edge rows",
    );
  },
);

gpuTest("confusion matrix accumulates batches of different sizes until reset", async (gpu) => {
  const C = 10;
  const batches = [tiedBatch(200, C, 3, 5), tiedBatch(77, C, 5, 6), tiedBatch(130, C, 2, 7)];
  const expected = new Uint32Array(C * C);
  for (const { logits, labels } of batches) {
    confusionRef(logits, labels, labels.length, C, expected);
  }
  const matrix = new ConfusionMatrix(gpu, C);
  try {
    assertCounts(await resetAndAdd(gpu, matrix, batches), expected, C, "three batches");
    const [last] = batches.slice(-1);
    const again = confusionRef(last.logits, last.labels, last.labels.length, C);
    assertCounts(await resetAndAdd(gpu, matrix, [last]), again, C, "after a reset");
  } finally {
    matrix.dispose();
  }
});
