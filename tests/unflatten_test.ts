/**
 * Unflatten: a model that starts with `Unflatten(1, [C, H, W])` takes `[N, C·H·W]` rows (what the
 * Loader gives) and computes, bit for bit, what the same convolution computes on the
 * `[N, C, H, W]` tensor, forward and weight gradients; its input gradient comes back as rows; a
 * row of the wrong size and bad arguments are refused by name.
 */

import assert from "node:assert/strict";
import { Conv2d } from "../lib/nn/conv.ts";
import { Unflatten } from "../lib/nn/layers.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { runLayer } from "./fixtures/cnn.ts";
import { gpuTest, randomArray } from "./helpers.ts";

const [N, C, H, W] = [3, 2, 5, 6];

gpuTest("Unflatten: rows into a Conv2d equal the Conv2d on NCHW, bit for bit", async (gpu) => {
  const x = randomArray(N * C * H * W, 1, -1, 1);
  const dy = randomArray(N * 4 * 3 * 4, 2, -1, 1);
  manualSeed(5);
  const direct = await runLayer(gpu, new Conv2d(C, 4, 3), x, [N, C, H, W], dy);
  manualSeed(5);
  const rows = await runLayer(
    gpu,
    new Sequential(new Unflatten(1, [C, H, W]), new Conv2d(C, 4, 3)),
    x,
    [N, C * H * W],
    dy,
  );
  try {
    assert.deepEqual(rows.y, direct.y);
    assert.deepEqual(rows.dx, direct.dx);
    assert.deepEqual(Object.values(rows.grads), Object.values(direct.grads));
    assert.deepEqual(Object.keys(rows.state), ["0.layer.1.weight", "0.layer.1.bias"]);
    assert.ok(rows.dx.some((v) => v !== 0), "the input gradient is not empty");
  } finally {
    direct.model.dispose();
    rows.model.dispose();
  }
});

gpuTest("Unflatten: the wrong row size and bad arguments are refused by name", () => {
  const model = new Sequential(new Unflatten(1, [3, 4, 4]), new Conv2d(3, 2, 3));
  assert.throws(
    () => model.outputShape([40]),
    /Unflatten\(1, \[3, 4, 4\]\): dimension 1 must have 48 values: current input shape is \[40\]/,
  );
  assert.deepEqual(new Unflatten(1, [3, 4, 4]).outputShape([48]), [3, 4, 4]);
  assert.throws(() => new Unflatten(2, [3]), /only dim 1 .*: current value is 2/);
  for (const bad of [[], [3, 0], [2.5], "3"]) {
    assert.throws(
      () => new Unflatten(1, bad as number[]),
      /shape must be a non-empty list of positive integers/,
    );
  }
  return Promise.resolve();
});
