/**
 * A training smoke test of the activations in Sequential: MLPs with GELU, Tanh, SiLU, Sigmoid,
 * Softmax and LogSoftmax between Linear layers, trained a few full-batch SGD steps with the
 * existing CrossEntropyLoss from the same weights on the GPU, in a float64 twin of the whole
 * model (this file), and, where /usr/bin/python3 has torch, in PyTorch (float32 and float64).
 *
 * Tolerance: PyTorch's float64 run equals the twin to float64 rounding, so the twin is the exact
 * answer; PyTorch's float32 run then shows how far float32 rounding moves this very computation,
 * and the GPU, whose kernels round no worse per operation (tests/activations_test.ts), must stay
 * within 4× that distance (plus 4U of the largest value). Without PyTorch, within 1e-5 relative.
 */

import assert from "node:assert/strict";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import { Tensor } from "../lib/tensor.ts";
import { Linear } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import type { Module } from "../lib/nn/module.ts";
import { Sequential, type StateDict } from "../lib/nn/sequential.ts";
import { SGD } from "../lib/optim/sgd.ts";
import {
  logSoftmaxBackward,
  logSoftmaxForward,
  pointwiseBackward,
  pointwiseForward,
  softmaxBackward,
  softmaxForward,
} from "./reference/activations.ts";
import { U } from "./reference/activation_bounds.ts";
import { crossEntropy, linearBackward, linearForward } from "./reference/nn.ts";
import { gpuTest, randomArray } from "./helpers.ts";
import { MISSING, runTorch } from "./torch/activations.ts";
import { type Activation, activationLayer } from "./fixtures/activations.ts";

type Act = Activation;
type LayerSpec = { kind: "linear"; in: number; out: number } | Act;

const lin = (i: number, o: number): LayerSpec => ({ kind: "linear", in: i, out: o });
const [B, IN, C] = [37, 20, 5];
const STEPS = 3;
const LR = 0.5;

const MODELS: { name: string; layers: LayerSpec[] }[] = [
  {
    name: "Linear→GELU→Linear→Tanh→Linear",
    layers: [lin(IN, 32), "gelu", lin(32, 24), "tanh", lin(24, C)],
  },
  {
    name: "SiLU, GELU(tanh), Softmax, Sigmoid, LogSoftmax",
    layers: [
      lin(IN, 32),
      "silu",
      lin(32, 16),
      "gelu_tanh",
      lin(16, 16),
      "softmax",
      lin(16, 16),
      "sigmoid",
      lin(16, C),
      "log_softmax",
    ],
  },
];

function module(spec: LayerSpec): Module {
  return typeof spec === "object" ? new Linear(spec.in, spec.out) : activationLayer(spec);
}

/** Weights drawn as PyTorch's default init, U(−1/√in, 1/√in), by state-dict name. */
function initialState(layers: LayerSpec[], seed: number): Record<string, Float64Array> {
  const state: Record<string, Float64Array> = {};
  layers.forEach((l, i) => {
    if (typeof l !== "object") return;
    const bound = 1 / Math.sqrt(l.in);
    state[`${i}.weight`] = Float64Array.from(
      randomArray(l.out * l.in, seed + 2 * i, -bound, bound),
    );
    state[`${i}.bias`] = Float64Array.from(randomArray(l.out, seed + 2 * i + 1, -bound, bound));
  });
  return state;
}

/** One full-batch SGD step of the float64 twin of the model; returns the loss and gradients. */
function twinStep(
  layers: LayerSpec[],
  state: Record<string, Float64Array>,
  x: Float64Array,
  labels: Uint32Array,
): { loss: number; grads: Record<string, Float64Array> } {
  const inputs: Float64Array[] = [];
  let h = x;
  let width = IN;
  for (const [i, l] of layers.entries()) {
    inputs.push(h);
    if (typeof l === "object") {
      h = linearForward(h, state[`${i}.weight`], state[`${i}.bias`], B, l.in, l.out);
      width = l.out;
    } else if (l === "softmax") h = softmaxForward(h, B, width);
    else if (l === "log_softmax") h = logSoftmaxForward(h, B, width);
    else h = pointwiseForward(l, h);
  }
  const { loss, grad } = crossEntropy(h, labels, B, C);
  let g: Float64Array = grad;
  const updates: [string, Float64Array][] = [];
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i];
    const hIn = inputs[i];
    if (typeof l === "object") {
      const d = linearBackward(hIn, state[`${i}.weight`], g, B, l.in, l.out);
      updates.push([`${i}.weight`, d.dw], [`${i}.bias`, d.db]);
      g = d.dx;
    } else {
      const cols = g.length / B;
      if (l === "softmax") g = softmaxBackward(hIn, g, B, cols);
      else if (l === "log_softmax") g = logSoftmaxBackward(hIn, g, B, cols);
      else g = pointwiseBackward(l, hIn, g);
    }
  }
  for (const [name, d] of updates) state[name] = state[name].map((w, k) => w - LR * d[k]);
  return { loss, grads: Object.fromEntries(updates) };
}

/** STEPS steps on the GPU; the losses, the final state and live bytes after each step. */
async function gpuRun(
  gpu: Gpu,
  layers: LayerSpec[],
  state0: Record<string, Float64Array>,
  x: Float32Array,
  labels: Uint32Array,
) {
  const model = new Sequential(...layers.map(module)).to(gpu);
  const load: StateDict = {};
  const shapes = model.expectedState();
  for (const [k, v] of Object.entries(state0)) {
    load[k] = { dtype: "F32", shape: shapes[k].shape, data: Float32Array.from(v) };
  }
  model.loadStateDict(load);
  const opt = new SGD(model.parameters(), { lr: LR });
  const loss = new CrossEntropyLoss();
  const X = Tensor.from(gpu, x, [B, IN], "x");
  const Y = Tensor.from(gpu, labels, [B], "labels");
  const losses: number[] = [];
  const live: number[] = [];
  let grads: StateDict = {};
  for (let step = 0; step < STEPS; step++) {
    const enc = new StepEncoder(gpu);
    opt.zeroGrad(enc);
    loss.forward(enc, model.forward(enc, X), Y);
    model.backward(enc, loss.backward());
    opt.step(enc);
    enc.submit();
    losses.push((await loss.stats.read()).lastLoss);
    if (step === 0) grads = await model.gradients();
    live.push(gpu.memory.liveBytes);
  }
  const state = await model.stateDict();
  for (const t of [model, opt, loss, X, Y]) t.dispose();
  const data = (d: StateDict) =>
    Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.data as Float32Array]));
  return { losses, live, grads: data(grads), state: data(state) };
}

type Quantity = [string, ArrayLike<number>, ArrayLike<number>];

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const maxAbs = (a: ArrayLike<number>) => maxDiff(a, new Float64Array(a.length));

for (const [m, { name, layers }] of MODELS.entries()) {
  gpuTest(
    `training ${name}: ${STEPS} SGD steps match the float64 twin and PyTorch`,
    async (gpu) => {
      const x = randomArray(B * IN, 100 + m, -2, 2);
      const labels = Uint32Array.from({ length: B }, (_, i) => (i * 3 + m) % C);
      const state0 = initialState(layers, 200 + 10 * m);
      const twinState = Object.fromEntries(
        Object.entries(state0).map(([k, v]) => [k, Float64Array.from(v)]),
      );
      const twinSteps = Array.from(
        { length: STEPS },
        () => twinStep(layers, twinState, Float64Array.from(x), labels),
      );
      const twinLosses = twinSteps.map((t) => t.loss);
      const got = await gpuRun(gpu, layers, state0, x, labels);

      assert.ok(
        twinLosses.every((l, i) => i === 0 || l < twinLosses[i - 1]),
        `twin loss falls: ${twinLosses}`,
      );
      assert.ok(
        got.losses.every((l, i) => i === 0 || l < got.losses[i - 1]),
        `GPU loss falls: ${got.losses}`,
      );
      assert.ok(
        got.live.every((v) => v === got.live[0]),
        `live GPU bytes flat across steps: ${got.live}`,
      );

      // The losses of every step, the first step's gradients (before float32 weights' own
      // rounding hides them) and the final state, each with its twin value.
      const names = Object.keys(twinState);
      const quantities: [string, ArrayLike<number>, ArrayLike<number>][] = [
        ["losses", got.losses, twinLosses],
        ...names.map((k): Quantity => [`${k}.grad`, got.grads[k], twinSteps[0].grads[k]]),
        ...names.map((k): Quantity => [k, got.state[k], twinState[k]]),
      ];
      if (MISSING !== null) {
        for (const [what, g, t] of quantities) {
          assert.ok(
            maxDiff(g, t) <= 1e-5 * maxAbs(t),
            `${what}: GPU ${maxDiff(g, t)} from the twin`,
          );
        }
        return;
      }
      type Run = {
        losses: number[];
        grads: Record<string, number[]>;
        state: Record<string, number[]>;
      };
      const torch = await runTorch<Run>({
        command: "train",
        layers: layers.map((l) => (typeof l === "object" ? { in: l.in, out: l.out } : l)),
        state: Object.fromEntries(
          Object.entries(state0).map(([k, v]) => [k, [...Float32Array.from(v)]]),
        ),
        x: [...x],
        shape: [B, IN],
        labels: [...labels],
        lr: LR,
        steps: STEPS,
      });
      const of = (run: Run, what: string) =>
        what === "losses"
          ? run.losses
          : what.endsWith(".grad")
          ? run.grads[what.slice(0, -5)]
          : run.state[what];
      const lines: string[] = [];
      for (const [what, g, t] of quantities) {
        const t64 = of(torch.float64, what);
        assert.ok(
          maxDiff(t64, t) <= 1e-10 * maxAbs(t),
          `${what}: PyTorch float64 ${maxDiff(t64, t)} from the twin`,
        );
        const noise = maxDiff(of(torch.float32, what), t);
        const dev = maxDiff(g, t);
        const allowed = 4 * noise + 4 * U * maxAbs(t);
        lines.push(
          `${what}: GPU ${dev.toExponential(2)}, PyTorch f32 ${noise.toExponential(2)} from exact`,
        );
        assert.ok(
          dev <= allowed,
          `${what}: the GPU is ${dev} from the twin, more than 4×${noise} + 4U·max`,
        );
      }
      console.log(`${name}\n  ${lines.join("\n  ")}`);
    },
  );
}
