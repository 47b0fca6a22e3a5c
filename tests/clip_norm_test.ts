/**
 * `clipGradNorm` (PyTorch's `clip_grad_norm_`, computed on the GPU and multiplied into the
 * update) and `setGradScale` (gradient accumulation's 1/k), for every rule: three steps equal the
 * same optimizer without them fed gradients prepared on the host (scaled, clamped, and multiplied
 * by min(1, max / (‖g‖ + 1e-6)) with ‖g‖ in float64 over every tensor), within the rounding of
 * the coefficient; the total norm read back equals the host's; a norm under the bound, and a
 * power-of-two scale, leave the run bit-identical to the host-prepared one.
 */

import assert from "node:assert/strict";
import { Adam, AdamW } from "../lib/optim/adam.ts";
import type { TensorPair } from "../lib/optim/group.ts";
import type { Optimizer } from "../lib/optim/optimizer.ts";
import { RMSprop } from "../lib/optim/rmsprop.ts";
import { SGD } from "../lib/optim/sgd.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { assertWithin, gpuTest, randomArray } from "./helpers.ts";

type Gpu = Parameters<Parameters<typeof gpuTest>[1]>[0];

/**
 * A vec4 length, a scalar one, and one long enough for the first norm stage's 64 workgroups to
 * stride over it (12,290 vec4s).
 */
const SIZES = [64, 37, 49160];

interface Clip {
  clipGradNorm?: number;
  clipGradValue?: number;
}

const RULES: Record<string, (p: TensorPair[], c?: Clip) => Optimizer> = {
  sgd: (p, c) => new SGD(p, { lr: 0.1, momentum: 0.9, ...c }),
  "sgd maximize": (p, c) => new SGD(p, { lr: 0.1, maximize: true, ...c }),
  adam: (p, c) => new Adam(p, { lr: 0.01, weightDecay: 0.1, ...c }),
  adamw: (p, c) => new AdamW(p, { lr: 0.01, ...c }),
  rmsprop: (p, c) => new RMSprop(p, { lr: 0.01, centered: true, ...c }),
};

/** Gradients of step s for tensor i, in [−1, 1]. */
const raw = (s: number, i: number) => randomArray(SIZES[i], 100 * s + i, -1, 1);

/** The gradients of step s as the rule should see them, prepared in float64 then rounded. */
function prepared(s: number, scale: number, clip: Clip): { grads: Float32Array[]; norm: number } {
  const value = clip.clipGradValue ?? Infinity;
  const g = SIZES.map((_, i) =>
    Float64Array.from(raw(s, i), (x) => Math.min(value, Math.max(-value, Math.fround(x * scale))))
  );
  const norm = Math.sqrt(g.reduce((sum, t) => t.reduce((a, x) => a + x * x, sum), 0));
  const coef = Math.min(1, (clip.clipGradNorm ?? Infinity) / (norm + 1e-6));
  return { grads: g.map((t) => Float32Array.from(t, (x) => x * coef)), norm };
}

/** Three steps from the same start; final values, last gradients, and norms read back. */
async function steps(
  gpu: Gpu,
  make: (p: TensorPair[]) => Optimizer,
  grads: (step: number, tensor: number) => Float32Array,
  scale = 1,
  readNorms = false,
): Promise<{ values: Float32Array[]; lastGrads: Float32Array[]; norms: number[] }> {
  const pairs = SIZES.map((n, i) => ({
    value: Tensor.from(gpu, randomArray(n, 10 + i), [n], `w${i}`),
    grad: Tensor.empty(gpu, [n], "f32", `g${i}`),
  }));
  const optimizer = make(pairs);
  const norms: number[] = [];
  try {
    if (scale !== 1) optimizer.setGradScale(scale);
    for (let s = 0; s < 3; s++) {
      pairs.forEach((p, i) => p.grad.write(grads(s, i)));
      const enc = new StepEncoder(gpu, `step ${s}`);
      optimizer.step(enc);
      enc.submit();
      if (readNorms) norms.push(await optimizer.readGradNorm());
    }
    return {
      values: await Promise.all(pairs.map((p) => p.value.toFloat32())),
      lastGrads: await Promise.all(pairs.map((p) => p.grad.toFloat32())),
      norms,
    };
  } finally {
    optimizer.dispose();
    for (const p of pairs) [p.value, p.grad].forEach((t) => t.dispose());
  }
}

/** Runs `clip` and `scale` fused and on the host for every rule, and compares. */
async function compare(gpu: Gpu, clip: Clip, scale: number, exact: boolean): Promise<void> {
  for (const [name, make] of Object.entries(RULES)) {
    const fused = await steps(
      gpu,
      (p) => make(p, clip),
      raw,
      scale,
      clip.clipGradNorm !== undefined,
    );
    const host = await steps(gpu, (p) => make(p), (s, i) => prepared(s, scale, clip).grads[i]);
    const untouched = await steps(gpu, (p) => make(p), raw);
    const what = `${name} ${JSON.stringify(clip)} scale ${scale}`;
    if (exact) assert.deepEqual(fused.values, host.values, what);
    else {
      // The coefficient is f32 on the GPU (its norm summed in f32), f64 on the host, a relative
      // difference of ~1e-7. Where weight decay nearly cancels the gradient, Adam's m / sqrt(v)
      // amplifies it (1.4e-6 seen); 1e-5 leaves room. The norm itself is checked sharply below.
      fused.values.forEach((v, i) => assertWithin(v, host.values[i], 1e-5, `${what} [${i}]`));
    }
    // Adam's rules are nearly scale-invariant, so any difference at all shows the scale was used.
    assert.notDeepEqual(
      fused.values,
      untouched.values,
      `${what}: clipping and scaling changed nothing`,
    );
    // The gradients stay as written (everything is applied inside the optimizer's kernels).
    assert.deepEqual(fused.lastGrads, SIZES.map((_, i) => raw(2, i)), what);
    if (clip.clipGradNorm !== undefined) {
      const expected = [0, 1, 2].map((s) => prepared(s, scale, clip).norm);
      assertWithin(fused.norms, expected, expected[0] * 1e-6, `${what}: norms`);
    }
  }
}

gpuTest("clipGradNorm: every rule equals its unclipped self on host-clipped gradients", (gpu) => {
  // ‖g‖ ≈ sqrt(49261 / 3) ≈ 128, so a bound of 20 clips every step.
  assert.ok(prepared(0, 1, {}).norm > 100);
  return compare(gpu, { clipGradNorm: 20 }, 1, false);
});

gpuTest("clipGradNorm: a norm under the bound leaves the update bit-identical", async (gpu) => {
  // The coefficient is exactly 1, so the fused run is the plain one.
  for (const [name, make] of Object.entries(RULES)) {
    const fused = await steps(gpu, (p) => make(p, { clipGradNorm: 1000 }), raw);
    const plain = await steps(gpu, (p) => make(p), raw);
    assert.deepEqual(fused.values, plain.values, name);
  }
});

gpuTest("setGradScale: a power of two is exact, any scale matches the host", async (gpu) => {
  await compare(gpu, {}, 0.25, true);
  await compare(gpu, {}, 1 / 3, false);
});

gpuTest("clipGradNorm after setGradScale and clipGradValue, in PyTorch's order", (gpu) => {
  // Scaled by 1/3, clamped to ±0.2, then the norm (≈ 0.19·sqrt(49261) ≈ 40) clipped to 5.
  return compare(gpu, { clipGradValue: 0.2, clipGradNorm: 5 }, 1 / 3, false);
});

gpuTest("clipGradNorm and setGradScale: bad values are refused by name", async (gpu) => {
  const pair = {
    value: Tensor.from(gpu, new Float32Array(4), [4], "w"),
    grad: Tensor.empty(gpu, [4], "f32", "g"),
  };
  try {
    for (const bad of [0, -1, NaN]) {
      assert.throws(
        () => new SGD([pair], { lr: 0.1, clipGradNorm: bad }),
        new RegExp(`Cannot create SGD: clipGradNorm must be > 0: current value is ${bad}`),
      );
    }
    const adam = new Adam([pair]);
    try {
      for (const bad of [0, -2, Infinity, NaN]) {
        assert.throws(
          () => adam.setGradScale(bad),
          new RegExp(`gradient scale: it must be finite and > 0: current value is ${bad}`),
        );
      }
      assert.equal(adam.gradScale, 1);
      await assert.rejects(() => adam.readGradNorm(), /built without clipGradNorm/);
    } finally {
      adam.dispose();
    }
  } finally {
    pair.value.dispose();
    pair.grad.dispose();
  }
});
