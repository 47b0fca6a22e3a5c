/**
 * The CNN layers against live PyTorch 1.13 (tests/torch/cnn.py), from the same weights and
 * inputs: forward outputs and every gradient, in float64 PyTorch with a float32 tolerance, for
 * Conv2d (stride 2, padding 1, dilation 2, groups 2, "same", no bias), the pools and
 * BatchNorm2d in train and eval mode; then a small CNN trained a few SGD steps, per-step loss
 * and final state against PyTorch's float64 run within a multiple of its own float32 drift,
 * and its state dict round trip under PyTorch's names. Every check runs on both Conv2d paths
 * (implicit GEMMs and direct loops). Ignored, with a message, where /usr/bin/python3 cannot
 * import torch.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { Conv2d } from "../lib/nn/conv.ts";
import { chooseConv, type ConvAlgorithm } from "../lib/nn/conv_choice.ts";
import { AdaptiveAvgPool2d, AvgPool2d, MaxPool2d } from "../lib/nn/pool.ts";
import { BatchNorm2d } from "../lib/nn/batchnorm2d.ts";
import { Flatten, Linear, ReLU } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import type { Module } from "../lib/nn/module.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Sequential, type StateDict } from "../lib/nn/sequential.ts";
import { SGD } from "../lib/optim/sgd.ts";
import { PYTHON, torchMissing } from "./fixtures/torch.ts";
import { assertClose, assertWithin, gpuTest, randomArray } from "./helpers.ts";
import { runLayer } from "./fixtures/cnn.ts";

const SCRIPT = fileURLToPath(new URL("./torch/cnn.py", import.meta.url));
const MISSING = await torchMissing();
if (MISSING !== null) console.log(`cnn_torch: the PyTorch checks are ignored (${MISSING})`);

/**
 * Each check runs once per Conv2d path, forced for the GPU with chooseConv (WGNN_CONV, when set,
 * narrows it to that path): the implicit GEMMs and the direct loops must both match PyTorch.
 */
const PATHS: readonly ConvAlgorithm[] = Deno.env.get("WGNN_CONV") === "gemm"
  ? ["gemm"]
  : Deno.env.get("WGNN_CONV") === "direct"
  ? ["direct"]
  : ["gemm", "direct"];

const torchTest = (name: string, fn: (gpu: Gpu) => Promise<void>) => {
  for (const path of PATHS) {
    const named = `${name} (conv path: ${path})`;
    if (MISSING !== null) {
      Deno.test({ name: named, ignore: true, fn: () => {} });
      continue;
    }
    gpuTest(named, async (gpu) => {
      chooseConv(gpu, path);
      try {
        await fn(gpu);
      } finally {
        chooseConv(gpu, "auto");
      }
    });
  }
};

interface LayerAnswer {
  y: number[];
  dx: number[];
  grads: Record<string, number[]>;
  state: Record<string, number[]>;
  eval?: number[];
}
interface TrainAnswer {
  losses: number[];
  state: Record<string, number[]>;
}

async function runTorch(
  spec: object,
): Promise<{ layers: LayerAnswer[]; cnn?: { float32: TrainAnswer; float64: TrainAnswer } }> {
  const child = new Deno.Command(PYTHON, {
    args: [SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(spec)));
  await writer.close();
  const out = await child.output();
  if (!out.success) throw new Error(`cnn.py failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** A state dict (names relative to the layer) as JSON lists. */
function asLists(state: StateDict, prefix: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(state)) {
    out[name.slice(prefix.length)] = Array.from(t.data as ArrayLike<number | bigint>, Number);
  }
  return out;
}

/** Random weights for every entry of `model` (running_var positive, counts 2). */
function randomState(model: Sequential, seed: number): StateDict {
  const state: StateDict = {};
  let k = seed;
  for (const [name, e] of Object.entries(model.expectedState())) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (e.dtype === "I64") {
      state[name] = { dtype: "I64", shape: e.shape, data: BigInt64Array.of(2n) };
    } else {
      const [lo, hi] = name.endsWith("running_var") ? [0.5, 2] : [-0.5, 0.5];
      state[name] = { dtype: "F32", shape: e.shape, data: randomArray(n, k++, lo, hi) };
    }
  }
  model.loadStateDict(state);
  return state;
}

interface Case {
  name: string;
  make: () => Module;
  kind: string;
  args: Record<string, unknown>;
  shape: [number, number, number, number];
  eval?: boolean;
}

const CASES: Case[] = [
  {
    name: "Conv2d stride 2, padding 1",
    make: () => new Conv2d(3, 10, 3, { stride: 2, padding: 1 }),
    kind: "conv2d",
    args: { in_channels: 3, out_channels: 10, kernel_size: 3, stride: 2, padding: 1 },
    shape: [2, 3, 9, 8],
  },
  {
    name: "Conv2d dilation 2, groups 2, no bias",
    make: () => new Conv2d(4, 6, [3, 2], { dilation: 2, groups: 2, padding: [2, 1], bias: false }),
    kind: "conv2d",
    args: {
      in_channels: 4,
      out_channels: 6,
      kernel_size: [3, 2],
      dilation: 2,
      groups: 2,
      padding: [2, 1],
      bias: false,
    },
    shape: [2, 4, 7, 7],
  },
  {
    name: "Conv2d padding same (even kernel, dilation)",
    make: () => new Conv2d(3, 9, [4, 3], { padding: "same", dilation: [1, 2] }),
    kind: "conv2d",
    args: {
      in_channels: 3,
      out_channels: 9,
      kernel_size: [4, 3],
      padding: "same",
      dilation: [1, 2],
    },
    shape: [2, 3, 6, 7],
  },
  {
    name: "MaxPool2d(3, 2, 1)",
    make: () => new MaxPool2d(3, 2, 1),
    kind: "maxpool2d",
    args: { kernel_size: 3, stride: 2, padding: 1 },
    shape: [2, 3, 9, 8],
  },
  {
    name: "AvgPool2d(3, 2, 1)",
    make: () => new AvgPool2d(3, 2, 1),
    kind: "avgpool2d",
    args: { kernel_size: 3, stride: 2, padding: 1 },
    shape: [2, 3, 9, 8],
  },
  {
    name: "AdaptiveAvgPool2d([3, 2])",
    make: () => new AdaptiveAvgPool2d([3, 2]),
    kind: "adaptiveavgpool2d",
    args: { output_size: [3, 2] },
    shape: [2, 3, 7, 5],
  },
  {
    name: "AdaptiveAvgPool2d(1)",
    make: () => new AdaptiveAvgPool2d(1),
    kind: "adaptiveavgpool2d",
    args: { output_size: 1 },
    shape: [3, 4, 5, 6],
  },
  {
    name: "BatchNorm2d train and eval",
    make: () => new BatchNorm2d(5, { momentum: 0.3 }),
    kind: "batchnorm2d",
    args: { num_features: 5, momentum: 0.3 },
    shape: [3, 5, 4, 6],
    eval: true,
  },
];

torchTest(
  "Conv2d, pools and BatchNorm2d: outputs and every gradient match PyTorch float64",
  async (gpu) => {
    manualSeed(3);
    const runs = [];
    for (const [k, c] of CASES.entries()) {
      const layer = c.make();
      // Values on a 1/8 grid give the max pool ties, where the first maximum must win.
      const x = randomArray(c.shape.reduce((a, v) => a * v), 100 + k, -2, 2).map((v) =>
        c.kind === "maxpool2d" ? Math.round(v * 8) / 8 : v
      );
      const yShape = [c.shape[0], ...layer.outputShape(c.shape.slice(1))];
      const dy = randomArray(yShape.reduce((a, v) => a * v), 200 + k);
      let state: StateDict = {};
      const got = await runLayer(gpu, layer, x, c.shape, dy, {
        setState: (model) => (state = randomState(model, 300 + 10 * k)),
      });
      let evalY: Float32Array | null = null;
      if (c.eval) {
        got.model.eval();
        const X = Tensor.from(gpu, x, c.shape);
        const enc = new StepEncoder(gpu);
        const Y = got.model.forward(enc, X);
        enc.submit();
        evalY = await Y.toFloat32();
        X.dispose();
      }
      runs.push({ c, x, dy, state, got, evalY });
    }
    const answer = await runTorch({
      layers: runs.map(({ c, x, dy, state }) => ({
        kind: c.kind,
        args: c.args,
        x: Array.from(x),
        shape: c.shape,
        dy: Array.from(dy),
        state: asLists(state, "0.layer."),
        eval: c.eval ?? false,
      })),
    });
    // float32 against float64: a few ulps of each value's size, plus the size of a sum's terms.
    const tol = { atol: 2e-5, rtol: 2e-5 };
    for (const [k, { c, got, evalY }] of runs.entries()) {
      const want = answer.layers[k];
      assertClose(got.y, want.y, { ...tol, what: `${c.name}: y` });
      assertClose(got.dx, want.dx, { ...tol, what: `${c.name}: dX` });
      for (const [name, values] of Object.entries(want.grads)) {
        assertClose(got.grads[`0.layer.${name}`].data as Float32Array, values, {
          atol: 1e-4,
          rtol: 1e-4,
          what: `${c.name}: ${name}.grad`,
        });
      }
      for (const [name, values] of Object.entries(want.state)) {
        const mine = got.state[`0.layer.${name}`].data;
        assertClose(Array.from(mine as ArrayLike<number | bigint>, Number), values, {
          ...tol,
          what: `${c.name}: ${name} after the step`,
        });
      }
      if (evalY) assertClose(evalY, want.eval!, { ...tol, what: `${c.name}: eval y` });
      got.model.dispose();
    }
  },
);

/** PyTorch's CNN of tests/torch/cnn.py. */
function cnn(): Sequential {
  return new Sequential(
    new Conv2d(3, 8, 3, { padding: 1 }),
    new BatchNorm2d(8),
    new ReLU(),
    new MaxPool2d(2),
    new Conv2d(8, 12, 3, { stride: 2, padding: 1 }),
    new ReLU(),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(12, 5),
  );
}

// As tests/composite_test.ts: ours may be K times PyTorch's own float32-vs-float64 drift from
// its float64 run, and below FLOOR a difference is float32 rounding however small that drift.
const K = 10;
const FLOOR = { loss: 1e-6, weight: 1e-6 };
const spread = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

torchTest(
  "A small CNN trained 4 SGD steps matches PyTorch float64 per step; state round trip",
  async (gpu) => {
    manualSeed(11);
    const [N, steps, lr, momentum] = [6, 4, 0.1, 0.9];
    const shape = [N, 3, 10, 10];
    const model = cnn().to(gpu);
    assert.deepEqual(Object.keys(model.expectedState()), [
      "0.weight",
      "0.bias",
      "1.weight",
      "1.bias",
      "1.running_mean",
      "1.running_var",
      "1.num_batches_tracked",
      "4.weight",
      "4.bias",
      "8.weight",
      "8.bias",
    ]);
    assert.deepEqual(model.expectedState()["4.weight"].shape, [12, 8, 3, 3]);
    const initial = await model.stateDict();
    const x = randomArray(N * 300, 401, -1, 1);
    const labels = Uint32Array.from({ length: N }, (_, i) => (i * 3) % 5);
    const X = Tensor.from(gpu, x, shape);
    const Y = Tensor.from(gpu, labels, [N], { classes: 5 });
    const loss = new CrossEntropyLoss();
    const optimizer = new SGD(model.parameters(), { lr, momentum });
    const losses: number[] = [];
    for (let step = 0; step < steps; step++) {
      const enc = new StepEncoder(gpu);
      optimizer.zeroGrad(enc);
      loss.forward(enc, model.forward(enc, X), Y);
      model.backward(enc, loss.backward());
      optimizer.step(enc);
      enc.submit();
      losses.push((await loss.stats.read()).meanLoss);
      const reset = new StepEncoder(gpu);
      loss.stats.reset(reset);
      reset.submit();
    }
    const final = await model.stateDict();
    const answer = await runTorch({
      layers: [],
      cnn: {
        state: asLists(initial, ""),
        x: Array.from(x),
        shape,
        labels: Array.from(labels),
        lr,
        momentum,
        steps,
      },
    });
    const { float32, float64 } = answer.cnn!;
    const lossBound = Math.max(K * spread(float32.losses, float64.losses), FLOOR.loss);
    const room = assertWithin(losses, float64.losses, lossBound, "per-step loss");
    console.log(
      `losses ${losses.map((v) => v.toFixed(6)).join(" ")}, room used ${room.toFixed(2)}`,
    );
    for (const [name, want] of Object.entries(float64.state)) {
      const mine = Array.from(final[name].data as ArrayLike<number | bigint>, Number);
      const bound = Math.max(K * spread(float32.state[name], want), FLOOR.weight);
      assertWithin(mine, want, bound, `${name} after ${steps} steps`);
    }
    // Round trip: the state dict loads into a fresh model and reads back bit for bit.
    const again = cnn().to(gpu);
    again.loadStateDict(final);
    const back = await again.stateDict();
    for (const [name, t] of Object.entries(final)) {
      assert.deepEqual(back[name].shape, t.shape, name);
      assert.deepEqual(back[name].data, t.data, name);
    }
    X.dispose();
    Y.dispose();
    loss.dispose();
    optimizer.dispose();
    model.dispose();
    again.dispose();
  },
);
