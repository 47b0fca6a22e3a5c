/**
 * Computations run the same way on two WebGPU implementations: in Deno (naga + Mesa lavapipe)
 * and in a page of headless Chromium (Tint + Dawn on SwiftShader). Each takes the library as a
 * namespace argument, so in the page it is the real build (`dist/wgnn.js` from browser.ts) and
 * in Deno the modules themselves; this file imports the library for its types only.
 *
 * The functions return raw GPU outputs by name. Judging them is tests/browser_test.ts's job,
 * against the float64 twins (tests/reference/) and PyTorch's goldens, and each runtime's outputs
 * against the other's.
 *
 * @module
 */

import type * as Wgnn from "../../browser.ts";
import { randomArray } from "../fixtures/random.ts";

/** The library's namespace: `dist/wgnn.js` in the page, browser.ts in Deno. */
export type Nn = typeof Wgnn;

/** Named outputs: F32 arrays from the GPU, F64 for host-side numbers such as loss summaries. */
export type Outputs = Record<string, Float32Array | Float64Array>;

/** Batch, input, hidden and output sizes that divide no workgroup (as in layers_test.ts). */
export const SIZES = { B: 37, IN: 53, HID: 29, OUT: 7 } as const;

/** Cross-entropy cases: plain, class-weighted, label-smoothed, both. */
export const CE_CASES: readonly { weight?: number[]; labelSmoothing?: number }[] = (() => {
  const weight = Array.from({ length: 10 }, (_, c) => 0.5 + c / 10);
  return [{}, { weight }, { labelSmoothing: 0.2 }, { weight, labelSmoothing: 0.1 }];
})();

/** Adam's cases: PyTorch's defaults (with lr 0.01), and every option off its default. */
export const ADAM_CASES: readonly {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
}[] = [
  { lr: 0.01 },
  { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1, amsgrad: true },
];

/** Adam's parameter shapes and steps (as in optim_test.ts). */
export const ADAM_SHAPES: readonly number[][] = [[1000], [37, 53]];
/** Adam steps per case. */
export const ADAM_STEPS = 5;

/** Random weights for `model`, seeded (running_var positive); loaded and returned. */
export function randomState(model: Wgnn.Sequential, seed: number): Wgnn.StateDict {
  const state: Wgnn.StateDict = {};
  let k = seed;
  for (const [name, e] of Object.entries(model.expectedState())) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (e.dtype === "I64") {
      state[name] = { dtype: "I64", shape: e.shape, data: BigInt64Array.of(3n) };
    } else {
      const [lo, hi] = name.endsWith("running_var") ? [0.5, 2] : [-0.5, 0.5];
      state[name] = { dtype: "F32", shape: e.shape, data: randomArray(n, k++, lo, hi) };
    }
  }
  model.loadStateDict(state);
  return state;
}

/** The MLP checks' shapes of x and dy: [B, IN] and [B, OUT]. */
const MLP_SHAPES = { x: [SIZES.B, SIZES.IN], dy: [SIZES.B, SIZES.OUT] } as const;

/**
 * One forward and backward of `model` on (x, dy); the output and every gradient, named
 * `prefix` + "y" and `prefix` + name + ".grad". Shapes: Default: {@link MLP_SHAPES}.
 */
async function forwardBackward(
  nn: Nn,
  gpu: Wgnn.Gpu,
  model: Wgnn.Sequential,
  x: Float32Array,
  dy: Float32Array,
  prefix: string,
  out: Outputs,
  shapes: { x: readonly number[]; dy: readonly number[] } = MLP_SHAPES,
): Promise<void> {
  const X = nn.Tensor.from(gpu, x, shapes.x, "x");
  const DY = nn.Tensor.from(gpu, dy, shapes.dy, "dy");
  const enc = new nn.StepEncoder(gpu);
  model.parameters().zeroGrad(enc);
  const y = model.forward(enc, X);
  model.backward(enc, DY);
  enc.submit();
  out[`${prefix}y`] = await y.toFloat32();
  for (const [name, g] of Object.entries(await model.gradients())) {
    out[`${prefix}${name}.grad`] = g.data as Float32Array;
  }
  X.dispose();
  DY.dispose();
}

/** An eval-mode forward of `model` on x. Shape: Default: [B, IN]. */
async function evalForward(
  nn: Nn,
  gpu: Wgnn.Gpu,
  model: Wgnn.Sequential,
  x: Float32Array,
  shape: readonly number[] = MLP_SHAPES.x,
): Promise<Float32Array> {
  model.eval();
  const X = nn.Tensor.from(gpu, x, shape, "x");
  const enc = new nn.StepEncoder(gpu);
  const y = model.forward(enc, X);
  enc.submit();
  const out = await y.toFloat32();
  X.dispose();
  return out;
}

/**
 * The kernel checks: Linear → LeakyReLU (fused) → Linear forward and backward; Linear →
 * BatchNorm1d → LeakyReLU → Linear (train forward/backward, running statistics, eval); Linear →
 * ReLU → Dropout(0.3) → Linear for two steps and eval; CrossEntropyLoss in four forms; Adam in
 * two, five steps each. Inputs are seeded, so a twin can rebuild them.
 */
export async function kernelChecks(nn: Nn, gpu: Wgnn.Gpu): Promise<Outputs> {
  const { B, IN, HID, OUT } = SIZES;
  const out: Outputs = {};

  const linear = new nn.Sequential(
    new nn.Flatten(),
    new nn.Linear(IN, HID),
    new nn.LeakyReLU(0.1),
    new nn.Linear(HID, OUT),
  ).to(gpu);
  randomState(linear, 10);
  await forwardBackward(
    nn,
    gpu,
    linear,
    randomArray(B * IN, 1),
    randomArray(B * OUT, 2),
    "linear/",
    out,
  );
  linear.dispose();

  const bn = new nn.Sequential(
    new nn.Linear(IN, HID),
    new nn.BatchNorm1d(HID),
    new nn.LeakyReLU(0.2),
    new nn.Linear(HID, OUT),
  ).to(gpu);
  randomState(bn, 20);
  const xBn = randomArray(B * IN, 3);
  await forwardBackward(nn, gpu, bn, xBn, randomArray(B * OUT, 4), "bn/", out);
  const after = await bn.stateDict();
  out["bn/running_mean"] = after["1.running_mean"].data as Float32Array;
  out["bn/running_var"] = after["1.running_var"].data as Float32Array;
  out["bn/num_batches_tracked"] = Float64Array.of(
    Number((after["1.num_batches_tracked"].data as BigInt64Array)[0]),
  );
  out["bn/eval"] = await evalForward(nn, gpu, bn, xBn);
  bn.dispose();

  nn.manualSeed(7);
  const dropout = new nn.Sequential(
    new nn.Linear(IN, HID),
    new nn.ReLU(),
    new nn.Dropout(0.3),
    new nn.Linear(HID, OUT),
  ).to(gpu);
  randomState(dropout, 30);
  const xDrop = randomArray(B * IN, 5);
  for (let step = 0; step < 2; step++) {
    await forwardBackward(
      nn,
      gpu,
      dropout,
      xDrop,
      randomArray(B * OUT, 6),
      `dropout/${step}/`,
      out,
    );
  }
  out["dropout/eval"] = await evalForward(nn, gpu, dropout, xDrop);
  dropout.dispose();

  const [N, C] = [70, 10];
  const z = randomArray(N * C, 11, -4, 4);
  const labels = Uint32Array.from({ length: N }, (_, i) => (i * 7) % C);
  for (const [k, opts] of CE_CASES.entries()) {
    const loss = new nn.CrossEntropyLoss(opts);
    const Z = nn.Tensor.from(gpu, z, [N, C]);
    const Y = nn.Tensor.from(gpu, labels, [N]);
    const enc = new nn.StepEncoder(gpu);
    loss.forward(enc, Z, Y);
    enc.submit();
    const got = await loss.stats.read();
    out[`ce/${k}/summary`] = Float64Array.of(got.meanLoss, got.lastLoss, got.accuracy);
    out[`ce/${k}/grad`] = await loss.backward().toFloat32();
    for (const t of [loss, Z, Y]) t.dispose();
  }

  for (const [k, options] of ADAM_CASES.entries()) {
    const arena = new nn.ParameterArena(
      gpu,
      ADAM_SHAPES.map((shape, i) => ({ name: `p${i}`, shape, init: adamInit(i) })),
      "adam check",
    );
    const optimizer = new nn.Adam(arena, options);
    for (let step = 0; step < ADAM_STEPS; step++) {
      arena.params.forEach((p, i) => p.grad.write(adamGrad(step, i)));
      const enc = new nn.StepEncoder(gpu, "adam check");
      optimizer.step(enc);
      enc.submit();
    }
    for (const [i, p] of arena.params.entries()) out[`adam/${k}/p${i}`] = await p.value.toFloat32();
    optimizer.dispose();
    arena.dispose();
  }
  return out;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Adam's initial values of parameter `i`. */
export function adamInit(i: number): Float32Array {
  return randomArray(numel(ADAM_SHAPES[i]), 40 + i);
}

/** Adam's gradient of parameter `i` at `step`. */
export function adamGrad(step: number, i: number): Float32Array {
  return randomArray(numel(ADAM_SHAPES[i]), 140 + 100 * step + i, -2, 2);
}

/** The lecture's variants. */
export type Variant = "plain" | "bn" | "dropout";

/** CIFAR-10 binary records (1 label byte + 3072 pixel bytes) as f32 pixels/255 and u32 labels. */
export function decodeRecords(bytes: Uint8Array, from: number, to: number) {
  const n = to - from;
  const x = new Float32Array(n * 3072);
  const y = new Uint32Array(n);
  for (let r = 0; r < n; r++) {
    const base = (from + r) * 3073;
    y[r] = bytes[base];
    for (let i = 0; i < 3072; i++) x[r * 3072 + i] = bytes[base + 1 + i] / 255;
  }
  return { x, y };
}

/** What {@link parityRun} needs: the goldens' settings, initial weights and records. */
export interface ParityInput {
  variant: Variant;
  /** The initial state dict's data by name: F32 arrays, and F64 for the I64 counters. */
  init: Outputs;
  /** `steps × batchSize` training records, in order. */
  train: Uint8Array;
  /** The eval records. */
  test: Uint8Array;
  evalCount: number;
  batchSize: number;
  steps: number;
  lr: number;
}

/**
 * tests/parity_test.ts's run: from the goldens' initial weights, `steps` Adam steps (one
 * command buffer each: zero grads, forward, fused loss, backward, update) on consecutive
 * batches, then eval-mode logits. Returns the per-step losses (F64), every tensor of the final
 * state dict (counters as F64) and the logits.
 */
export async function parityRun(nn: Nn, gpu: Wgnn.Gpu, p: ParityInput): Promise<Outputs> {
  nn.manualSeed(0); // Dropout masks are keyed by seed 0, as the golden script assumes
  const model = nn.lectureModel(p.variant).to(gpu);
  const init: Wgnn.StateDict = {};
  for (const [name, { shape }] of Object.entries(model.expectedState())) {
    const data = p.init[name];
    init[name] = data instanceof Float64Array
      ? { dtype: "I64", shape, data: BigInt64Array.from(data, BigInt) }
      : { dtype: "F32", shape, data };
  }
  model.loadStateDict(init);
  const optimizer = new nn.Adam(model.parameters(), { lr: p.lr });
  const loss = new nn.CrossEntropyLoss();
  const X = nn.Tensor.empty(gpu, [p.batchSize, 3072], "f32", "x");
  const Y = nn.Tensor.empty(gpu, [p.batchSize], "u32", "y");
  const losses = new Float64Array(p.steps);
  model.train();
  for (let step = 0; step < p.steps; step++) {
    const { x, y } = decodeRecords(p.train, step * p.batchSize, (step + 1) * p.batchSize);
    X.write(x);
    Y.write(y);
    const enc = new nn.StepEncoder(gpu);
    optimizer.zeroGrad(enc);
    loss.forward(enc, model.forward(enc, X), Y);
    model.backward(enc, loss.backward());
    optimizer.step(enc);
    enc.submit();
    losses[step] = (await loss.stats.read()).lastLoss;
  }
  const out: Outputs = { losses };
  for (const [name, t] of Object.entries(await model.stateDict())) {
    out[`state/${name}`] = t.data instanceof BigInt64Array
      ? Float64Array.from(t.data, Number)
      : t.data;
  }
  const { x } = decodeRecords(p.test, 0, p.evalCount);
  const XE = nn.Tensor.from(gpu, x, [p.evalCount, 3, 32, 32], "test images");
  model.eval();
  const enc = new nn.StepEncoder(gpu);
  const logits = model.forward(enc, XE);
  enc.submit();
  out.logits = await logits.toFloat32();
  for (const t of [X, Y, XE, loss, optimizer, model]) t.dispose();
  return out;
}

/** Every matmul kernel the engine can be forced to: the three families, tiled in each tiling. */
export const MATMUL_CHOICES: readonly { variant: Wgnn.MatmulVariant; tiling?: string }[] = [
  { variant: "texture" },
  { variant: "tiled", tiling: "64x64" },
  { variant: "tiled", tiling: "32x32" },
  { variant: "tiled", tiling: "32x32-64" },
  { variant: "blocked" },
];

/**
 * The transposes checked on both runtimes: X·Wᵀ, the Linear forward. SwiftShader compiles each
 * pipeline slowly (15 pipelines, all three pairs a Linear uses, took 46 s in the page on this
 * project's 2-core machines), so dY·W and dYᵀ·X of each kernel run on Dawn inside the layer and
 * parity checks (with the texture kernel) and on lavapipe in tests/matmul_test.ts.
 */
export const TRANSPOSES: readonly [transA: boolean, transB: boolean][] = [[false, true]];

/** M, K, N of the matmul checks: partial tiles on every side of every tiling. */
export const MATMUL_SHAPE = { M: 71, K: 45, N: 133 } as const;

/** The matmul checks' operands (seeded; A and B as written, whatever the transposes). */
export function matmulOperands() {
  const { M, K, N } = MATMUL_SHAPE;
  return { a: randomArray(M * K, 11), b: randomArray(K * N, 12), bias: randomArray(N, 13) };
}

/**
 * Each kernel of {@link MATMUL_CHOICES}, named by the plan's own `variant` and `tiling` options,
 * for each of {@link TRANSPOSES}, with the fused bias + LeakyReLU(0.1) epilogue: C = leaky(op(A)·op(B)
 * + bias).
 */
export async function matmulChecks(nn: Nn, gpu: Wgnn.Gpu): Promise<Outputs> {
  const { M, K, N } = MATMUL_SHAPE;
  const { a, b, bias } = matmulOperands();
  const out: Outputs = {};
  for (const choice of MATMUL_CHOICES) {
    const name = choice.tiling ? `${choice.variant}:${choice.tiling}` : choice.variant;
    for (const [transA, transB] of TRANSPOSES) {
      const A = nn.Tensor.from(gpu, a, transA ? [K, M] : [M, K]);
      const B = nn.Tensor.from(gpu, b, transB ? [N, K] : [K, N]);
      const Bias = nn.Tensor.from(gpu, bias, [N]);
      const C = nn.Tensor.empty(gpu, [M, N]);
      const plan = new nn.Matmul(gpu, M, N, K, {
        ...choice,
        transA,
        transB,
        bias: true,
        activation: "leaky_relu",
        slope: 0.1,
      });
      const enc = new nn.StepEncoder(gpu);
      plan.encode(enc, A, B, C, Bias);
      enc.submit();
      out[`${name}/tA=${transA}/tB=${transB}`] = await C.toFloat32();
      for (const t of [plan, A, B, Bias, C]) t.dispose();
    }
  }
  return out;
}

/** The CNN check's batch, input channels, side (H·W a multiple of 4) and feature channels. */
export const CNN_SIZES = { B: 3, C: 3, H: 10, F: 6 } as const;

/** The convolution paths the CNN check forces in turn. */
export const CONV_ALGORITHMS = ["gemm", "direct"] as const;

/**
 * The CNN check's model: Conv2d (3×3, padding 1, no bias) → BatchNorm2d → ReLU (run inside the
 * BatchNorm2d) → MaxPool2d(2) → Conv2d (3×3, stride 2, padding 1, bias) → AdaptiveAvgPool2d(1)
 * → Flatten, both convolutions on `algorithm`.
 */
export function cnnCheckModel(nn: Nn, algorithm: "gemm" | "direct"): Wgnn.Sequential {
  const { C, F } = CNN_SIZES;
  return new nn.Sequential(
    new nn.Conv2d(C, F, 3, { padding: 1, bias: false, algorithm }),
    new nn.BatchNorm2d(F),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Conv2d(F, F, 3, { stride: 2, padding: 1, algorithm }),
    new nn.AdaptiveAvgPool2d(1),
    new nn.Flatten(),
  );
}

/**
 * The CNN kernels: {@link cnnCheckModel} on each convolution path, one training forward and
 * backward (output and every gradient), the running statistics, then an eval-mode forward.
 */
export async function cnnChecks(nn: Nn, gpu: Wgnn.Gpu): Promise<Outputs> {
  const { B, C, H, F } = CNN_SIZES;
  const out: Outputs = {};
  for (const algorithm of CONV_ALGORITHMS) {
    const model = cnnCheckModel(nn, algorithm).to(gpu);
    randomState(model, 50);
    const x = randomArray(B * C * H * H, 51);
    const shapes = { x: [B, C, H, H], dy: [B, F] };
    const prefix = `cnn/${algorithm}/`;
    await forwardBackward(nn, gpu, model, x, randomArray(B * F, 52), prefix, out, shapes);
    const state = await model.stateDict();
    out[`${prefix}running_mean`] = state["1.running_mean"].data as Float32Array;
    out[`${prefix}running_var`] = state["1.running_var"].data as Float32Array;
    out[`${prefix}eval`] = await evalForward(nn, gpu, model, x, shapes.x);
    model.dispose();
  }
  return out;
}

/** The element-wise and softmax layers the extra checks run, by their twins' names. */
export const POINTWISE_CHECKS = [
  "tanh",
  "sigmoid",
  "gelu",
  "gelu_tanh",
  "silu",
  "softmax",
  "log_softmax",
] as const;

/** One of {@link POINTWISE_CHECKS} as a layer. */
function pointwiseLayer(nn: Nn, name: typeof POINTWISE_CHECKS[number]): Wgnn.Module {
  switch (name) {
    case "tanh":
      return new nn.Tanh();
    case "sigmoid":
      return new nn.Sigmoid();
    case "gelu":
      return new nn.GELU();
    case "gelu_tanh":
      return new nn.GELU({ approximate: "tanh" });
    case "silu":
      return new nn.SiLU();
    case "softmax":
      return new nn.Softmax();
    case "log_softmax":
      return new nn.LogSoftmax();
  }
}

/** The optimizers the extra checks step (besides Adam, in the kernel checks). */
export const OPTIMIZER_CASES = [
  { kind: "SGD", options: { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 } },
  { kind: "SGD", options: { lr: 0.05, momentum: 0.5, dampening: 0.2 } },
  { kind: "AdamW", options: { lr: 0.01, weightDecay: 0.1 } },
  { kind: "RMSprop", options: { lr: 0.01, momentum: 0.5, centered: true, weightDecay: 0.01 } },
] as const;

/** The class weights of the NLL check, and its ignored label. */
export const NLL_CASE = {
  weight: Array.from({ length: 10 }, (_, c) => 0.5 + c / 10),
  ignoreIndex: 3,
};

/** BCEWithLogits's positive weights, one per column of the [B, OUT] output. */
export const POS_WEIGHT = Array.from({ length: SIZES.OUT }, (_, c) => 0.5 + c / 4);

/**
 * The other layers, losses and optimizers: each element-wise and softmax layer after an identity
 * Linear (so that its input gradient is computed: the Linear's gradients are xᵀ·dz and Σ dz),
 * forward and backward; MSELoss, L1Loss, BCEWithLogitsLoss (posWeight) and NLLLoss (class
 * weights, an ignored label) on one batch, loss and gradient; SGD (Nesterov with weight decay,
 * and dampening), AdamW and RMSprop (centered, momentum) for the Adam check's steps.
 */
export async function extraChecks(nn: Nn, gpu: Wgnn.Gpu): Promise<Outputs> {
  const { B, HID: D, OUT } = SIZES;
  const out: Outputs = {};
  const eye = new Float32Array(D * D);
  for (let i = 0; i < D; i++) eye[i * D + i] = 1;
  const x = randomArray(B * D, 60, -3, 3);
  const dy = randomArray(B * D, 61);
  for (const name of POINTWISE_CHECKS) {
    const model = new nn.Sequential(new nn.Linear(D, D), pointwiseLayer(nn, name)).to(gpu);
    model.loadStateDict({
      "0.weight": { dtype: "F32", shape: [D, D], data: eye },
      "0.bias": { dtype: "F32", shape: [D], data: new Float32Array(D) },
    });
    await forwardBackward(nn, gpu, model, x, dy, `act/${name}/`, out, { x: [B, D], dy: [B, D] });
    model.dispose();
  }

  const z = randomArray(B * OUT, 62, -3, 3);
  const target = randomArray(B * OUT, 63, -1, 1);
  const bits = Float32Array.from(randomArray(B * OUT, 64), (v) => v > 0 ? 1 : 0);
  type StatLoss = Wgnn.Loss & { stats: Wgnn.LossStats; dispose(): void };
  const losses: [string, StatLoss, Float32Array][] = [
    ["mse", new nn.MSELoss(), target],
    ["l1", new nn.L1Loss({ reduction: "sum" }), target],
    ["bce", new nn.BCEWithLogitsLoss({ posWeight: POS_WEIGHT }), bits],
  ];
  for (const [name, loss, t] of losses) {
    const Z = nn.Tensor.from(gpu, z, [B, OUT]);
    const T = nn.Tensor.from(gpu, t, [B, OUT]);
    const enc = new nn.StepEncoder(gpu);
    loss.forward(enc, Z, T);
    enc.submit();
    out[`loss/${name}/loss`] = Float64Array.of((await loss.stats.read()).lastLoss);
    out[`loss/${name}/grad`] = await loss.backward().toFloat32();
    for (const d of [loss, Z, T]) d.dispose();
  }
  const C = NLL_CASE.weight.length;
  const logp = randomArray(B * C, 65, -5, 0);
  const labels = Uint32Array.from({ length: B }, (_, i) => (i * 3) % C);
  const nll = new nn.NLLLoss(NLL_CASE);
  const L = nn.Tensor.from(gpu, logp, [B, C]);
  const Y = nn.Tensor.from(gpu, labels, [B]);
  const enc = new nn.StepEncoder(gpu);
  nll.forward(enc, L, Y);
  enc.submit();
  out["loss/nll/loss"] = Float64Array.of((await nll.stats.read()).lastLoss);
  out["loss/nll/grad"] = await nll.backward().toFloat32();
  for (const d of [nll, L, Y]) d.dispose();

  for (const [k, c] of OPTIMIZER_CASES.entries()) {
    const arena = new nn.ParameterArena(
      gpu,
      ADAM_SHAPES.map((shape, i) => ({ name: `p${i}`, shape, init: adamInit(i) })),
      "optimizer check",
    );
    const optimizer = c.kind === "SGD"
      ? new nn.SGD(arena, c.options)
      : c.kind === "AdamW"
      ? new nn.AdamW(arena, c.options)
      : new nn.RMSprop(arena, c.options);
    for (let step = 0; step < ADAM_STEPS; step++) {
      arena.params.forEach((p, i) => p.grad.write(adamGrad(step, i)));
      const enc = new nn.StepEncoder(gpu, "optimizer check");
      optimizer.step(enc);
      enc.submit();
    }
    for (const [i, p] of arena.params.entries()) {
      out[`optim/${k}/p${i}`] = await p.value.toFloat32();
    }
    optimizer.dispose();
    arena.dispose();
  }
  return out;
}

/** The data check's images (seeded bytes), labels, batch and augmentation. */
export const DATA_CASE = {
  count: 40,
  batchSize: 16,
  seed: 5,
  augment: { flip: true, crop: 4 },
  normalize: { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] },
} as const;

/** The data check's images and labels: seeded bytes, labels i·3 mod 10. */
export function dataSet(): { images: Uint8Array; labels: Uint8Array; count: number } {
  const { count } = DATA_CASE;
  const images = Uint8Array.from(randomArray(count * 3072, 70, 0, 256), (v) => Math.floor(v));
  const labels = Uint8Array.from({ length: count }, (_, i) => (i * 3) % 10);
  return { images, labels, count };
}

/**
 * The loader's gather with random flips, 4-pixel crops and normalisation (batch 0 of epochs 0
 * and 1, with each epoch's order and augmentation words, which are host-side draws); `evaluate`
 * of a Linear classifier over the unaugmented set (loss, accuracy, confusion); and a Residual
 * block, Linear → Residual(Linear → Tanh), forward and backward.
 */
export async function dataChecks(nn: Nn, gpu: Wgnn.Gpu): Promise<Outputs> {
  const out: Outputs = {};
  const set = dataSet();
  const data = nn.GpuDataset.upload(gpu, set);
  const { batchSize, seed, augment, normalize } = DATA_CASE;
  const loader = new nn.Loader(gpu, data, { batchSize, shuffle: true, seed, augment, normalize });
  for (const epoch of [0, 1]) {
    loader.startEpoch(epoch);
    const enc = new nn.StepEncoder(gpu);
    const { x, y } = loader.encodeBatch(enc, 0);
    enc.submit();
    out[`data/e${epoch}/x`] = await x.toFloat32();
    out[`data/e${epoch}/y`] = Float64Array.from(await y.read());
    out[`data/e${epoch}/order`] = Float64Array.from(loader.order(epoch));
    out[`data/e${epoch}/aug`] = Float64Array.from(loader.augmentation(epoch));
  }
  loader.dispose();

  const classifier = new nn.Sequential(new nn.Linear(3072, 10)).to(gpu);
  randomState(classifier, 71);
  const plain = new nn.Loader(gpu, data, { batchSize, normalize });
  const e = await nn.evaluate(classifier, plain);
  out["evaluate/summary"] = Float64Array.of(e.loss, e.accuracy ?? NaN, e.samples, e.batches);
  out["evaluate/confusion"] = Float64Array.from(e.confusion!.flat());
  plain.dispose();
  classifier.dispose();
  data.dispose();

  const { B, HID: D } = SIZES;
  const residual = new nn.Sequential(
    new nn.Linear(D, D),
    new nn.Residual(new nn.Sequential(new nn.Linear(D, D), new nn.Tanh())),
  ).to(gpu);
  randomState(residual, 72);
  await forwardBackward(
    nn,
    gpu,
    residual,
    randomArray(B * D, 73),
    randomArray(B * D, 74),
    "residual/",
    out,
    { x: [B, D], dy: [B, D] },
  );
  residual.dispose();
  return out;
}
