/**
 * `clipGradValue`, fused into every optimizer's update: three steps with clipping equal,
 * bit for bit, the same optimizer without clipping fed gradients clamped on the host (PyTorch's
 * `clip_grad_value_` then `step`), for every rule, with maximize, on vec4 and scalar lengths;
 * the gradients themselves are left as they were; a bad value is refused by name.
 */

import assert from "node:assert/strict";
import { Adam, AdamW } from "../lib/optim/adam.ts";
import type { TensorPair } from "../lib/optim/group.ts";
import type { Optimizer } from "../lib/optim/optimizer.ts";
import { RMSprop } from "../lib/optim/rmsprop.ts";
import { SGD } from "../lib/optim/sgd.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { gpuTest, randomArray } from "./helpers.ts";

type Gpu = Parameters<Parameters<typeof gpuTest>[1]>[0];

const CLIP = 0.3;
/** A vec4 length and a scalar one. */
const SIZES = [64, 37];

const RULES: Record<string, (p: TensorPair[], clip?: number) => Optimizer> = {
  sgd: (p, clip) => new SGD(p, { lr: 0.1, momentum: 0.9, clipGradValue: clip }),
  "sgd maximize": (p, clip) => new SGD(p, { lr: 0.1, maximize: true, clipGradValue: clip }),
  adam: (p, clip) => new Adam(p, { lr: 0.01, weightDecay: 0.1, clipGradValue: clip }),
  adamw: (p, clip) => new AdamW(p, { lr: 0.01, clipGradValue: clip }),
  rmsprop: (p, clip) => new RMSprop(p, { lr: 0.01, centered: true, clipGradValue: clip }),
};

/** Three steps from the same start; gradients from `grads(step, tensor)`; final values. */
async function steps(
  gpu: Gpu,
  make: (p: TensorPair[]) => Optimizer,
  grads: (step: number, tensor: number) => Float32Array,
): Promise<{ values: Float32Array[]; lastGrads: Float32Array[] }> {
  const pairs = SIZES.map((n, i) => ({
    value: Tensor.from(gpu, randomArray(n, 10 + i), [n], `w${i}`),
    grad: Tensor.empty(gpu, [n], "f32", `g${i}`),
  }));
  const optimizer = make(pairs);
  try {
    for (let s = 0; s < 3; s++) {
      pairs.forEach((p, i) => p.grad.write(grads(s, i)));
      const enc = new StepEncoder(gpu, `step ${s}`);
      optimizer.step(enc);
      enc.submit();
    }
    return {
      values: await Promise.all(pairs.map((p) => p.value.toFloat32())),
      lastGrads: await Promise.all(pairs.map((p) => p.grad.toFloat32())),
    };
  } finally {
    optimizer.dispose();
    for (const p of pairs) [p.value, p.grad].forEach((t) => t.dispose());
  }
}

gpuTest(
  "clipGradValue: every rule equals its unclipped self on host-clamped gradients",
  async (gpu) => {
    const raw = (s: number, i: number) => randomArray(SIZES[i], 100 * s + i, -1, 1);
    const clamped = (s: number, i: number) =>
      raw(s, i).map((g) => Math.min(CLIP, Math.max(-CLIP, g)));
    // The draw really has elements beyond the bound on both sides.
    assert.ok(raw(0, 0).some((g) => g > CLIP) && raw(0, 0).some((g) => g < -CLIP));
    for (const [name, make] of Object.entries(RULES)) {
      const fused = await steps(gpu, (p) => make(p, CLIP), raw);
      const host = await steps(gpu, (p) => make(p), clamped);
      const unclipped = await steps(gpu, (p) => make(p), raw);
      assert.deepEqual(fused.values, host.values, name);
      assert.notDeepEqual(fused.values, unclipped.values, `${name}: the clip changed nothing`);
      // The gradients stay unclamped (the clip is applied inside the update).
      assert.deepEqual(fused.lastGrads, SIZES.map((_, i) => raw(2, i)), name);
    }
  },
);

gpuTest("clipGradValue: a value that is not > 0 is refused by name", (gpu) => {
  const pair = {
    value: Tensor.from(gpu, new Float32Array(4), [4], "w"),
    grad: Tensor.empty(gpu, [4], "f32", "g"),
  };
  try {
    for (const bad of [0, -1, NaN]) {
      assert.throws(
        () => new Adam([pair], { clipGradValue: bad }),
        new RegExp(`Cannot create Adam: clipGradValue must be > 0: current value is ${bad}`),
      );
    }
  } finally {
    pair.value.dispose();
    pair.grad.dispose();
  }
  return Promise.resolve();
});
