/**
 * Optimizers: every rule against its float64 twin (tests/reference/optim.ts) and against real
 * PyTorch 1.13, in the arena form (one dispatch) and the tensor-list form (vec4 and scalar
 * kernels); gradient accumulation and zeroGrad; many steps in one submission; state save/restore;
 * flat GPU memory; bad options.
 */

import assert from "node:assert/strict";
import { PYTHON, torchMissing } from "./fixtures/torch.ts";
import { Adam, AdamW } from "../lib/optim/adam.ts";
import { RMSprop } from "../lib/optim/rmsprop.ts";
import { SGD } from "../lib/optim/sgd.ts";
import type { ParameterGroup, TensorPair } from "../lib/optim/group.ts";
import type { Optimizer } from "../lib/optim/optimizer.ts";
import { ParameterArena } from "../lib/nn/parameter.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import type { Kernel } from "../lib/gpu/kernels.ts";
import { Tensor } from "../lib/tensor.ts";
import { adamRef, type RefState, refState, rmspropRef, sgdRef } from "./reference/optim.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";

type Kind = "SGD" | "Adam" | "AdamW" | "RMSprop";
// deno-lint-ignore no-explicit-any
type Options = Record<string, any>;
interface Case {
  kind: Kind;
  options: Options;
}

const TOL = { atol: 1e-6, rtol: 1e-5 };
const SHAPES: number[][] = [[1000], [37, 53]];
const STEPS = 5;

// Cases the state, submission and memory tests reuse: every kind of state slot and the
// first-step special case of SGD's momentum.
const SGD_NESTEROV: Case = {
  kind: "SGD",
  options: { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.001, maximize: true },
};
const SGD_DAMPENED: Case = {
  kind: "SGD",
  options: { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 },
};
const ADAM_AMSGRAD: Case = {
  kind: "Adam",
  options: { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1, amsgrad: true },
};
const ADAMW_AMSGRAD: Case = {
  kind: "AdamW",
  options: { lr: 0.01, weightDecay: 0.1, amsgrad: true },
};
const RMSPROP_FULL: Case = {
  kind: "RMSprop",
  options: { lr: 0.01, alpha: 0.9, momentum: 0.9, centered: true, weightDecay: 0.01 },
};

/** Option combinations covering every flag of every rule. */
const CASES: Case[] = [
  { kind: "SGD", options: { lr: 0.1 } },
  SGD_DAMPENED,
  SGD_NESTEROV,
  { kind: "Adam", options: {} },
  ADAM_AMSGRAD,
  { kind: "Adam", options: { lr: 0.02, maximize: true, betas: [0, 0.9] } },
  // A large eps, so that eps inside instead of outside the square root would show.
  { kind: "Adam", options: { lr: 0.1, eps: 0.05 } },
  { kind: "AdamW", options: {} },
  ADAMW_AMSGRAD,
  { kind: "RMSprop", options: {} },
  RMSPROP_FULL,
  { kind: "RMSprop", options: { lr: 0.001, centered: true, maximize: true } },
  { kind: "RMSprop", options: { lr: 0.001, momentum: 0.5, eps: 1e-4 } },
];

const label = (c: Case) => `${c.kind} ${JSON.stringify(c.options)}`;

function makeOptimizer(c: Case, params: ParameterGroup): Optimizer {
  switch (c.kind) {
    case "SGD":
      return new SGD(params, c.options as { lr: number });
    case "Adam":
      return new Adam(params, c.options);
    case "AdamW":
      return new AdamW(params, c.options);
    case "RMSprop":
      return new RMSprop(params, c.options);
  }
}

/** The state slots PyTorch keeps for a case, in our kernel's order. */
function slotsOf(c: Case): string[] {
  const o = c.options;
  if (c.kind === "SGD") return (o.momentum ?? 0) !== 0 ? ["momentum_buffer"] : [];
  if (c.kind === "RMSprop") {
    return [
      "square_avg",
      ...((o.momentum ?? 0) > 0 ? ["momentum_buffer"] : []),
      ...(o.centered ? ["grad_avg"] : []),
    ];
  }
  return ["exp_avg", "exp_avg_sq", ...(o.amsgrad ? ["max_exp_avg_sq"] : [])];
}

/** One twin step with PyTorch's defaults filled in. */
function twinStep(c: Case, x: Float64Array, g: ArrayLike<number>, s: RefState, lr?: number): void {
  const o = c.options;
  if (c.kind === "SGD") {
    sgdRef(x, g, s, {
      lr: lr ?? o.lr,
      momentum: o.momentum ?? 0,
      dampening: o.dampening ?? 0,
      nesterov: o.nesterov ?? false,
      weightDecay: o.weightDecay ?? 0,
      maximize: o.maximize ?? false,
    });
  } else if (c.kind === "RMSprop") {
    rmspropRef(x, g, s, {
      lr: lr ?? o.lr ?? 1e-2,
      alpha: o.alpha ?? 0.99,
      eps: o.eps ?? 1e-8,
      weightDecay: o.weightDecay ?? 0,
      momentum: o.momentum ?? 0,
      centered: o.centered ?? false,
      maximize: o.maximize ?? false,
    });
  } else {
    adamRef(x, g, s, {
      lr: lr ?? o.lr ?? 1e-3,
      betas: o.betas ?? [0.9, 0.999],
      eps: o.eps ?? 1e-8,
      weightDecay: o.weightDecay ?? (c.kind === "AdamW" ? 1e-2 : 0),
      amsgrad: o.amsgrad ?? false,
      maximize: o.maximize ?? false,
      decoupled: c.kind === "AdamW",
    });
  }
}

/** Inputs of a run: initial values per tensor and gradients per step per tensor. */
interface Problem {
  shapes: number[][];
  inits: Float32Array[];
  grads: Float32Array[][];
}

function problem(shapes: number[][], steps: number, seed: number): Problem {
  const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return {
    shapes,
    inits: shapes.map((s, i) => randomArray(numel(s), seed + i)),
    grads: Array.from(
      { length: steps },
      (_, k) => shapes.map((s, i) => randomArray(numel(s), seed + 100 * (k + 1) + i, -2, 2)),
    ),
  };
}

/** Final values and state per tensor, from either the GPU or the twin. */
interface Outcome {
  values: ArrayLike<number>[];
  state: Record<string, ArrayLike<number>[]>;
  step: number;
}

function runTwin(c: Case, p: Problem, lrAt?: (step: number) => number): Outcome {
  const xs = p.inits.map((v) => Float64Array.from(v));
  const states = p.inits.map((v) => refState(v.length, slotsOf(c)));
  p.grads.forEach((gs, k) => xs.forEach((x, i) => twinStep(c, x, gs[i], states[i], lrAt?.(k))));
  const state: Record<string, Float64Array[]> = {};
  for (const slot of slotsOf(c)) state[slot] = states.map((s) => s.buffers[slot]);
  return { values: xs, state, step: p.grads.length };
}

/** The parameters of a problem on the GPU, as an arena or as separate tensors. */
class GpuParams {
  readonly arena: ParameterArena | null;
  readonly pairs: TensorPair[];

  constructor(gpu: Gpu, p: Problem, form: "arena" | "tensors") {
    if (form === "arena") {
      this.arena = new ParameterArena(
        gpu,
        p.shapes.map((shape, i) => ({ name: `p${i}`, shape, init: p.inits[i] })),
        "test",
      );
      this.pairs = this.arena.params;
    } else {
      this.arena = null;
      this.pairs = p.shapes.map((shape, i) => ({
        value: Tensor.from(gpu, p.inits[i], shape, `p${i}`),
        grad: Tensor.empty(gpu, shape, "f32", `p${i}.grad`),
      }));
    }
  }

  get group(): ParameterGroup {
    return this.arena ?? this.pairs;
  }

  writeGrads(grads: Float32Array[]): void {
    this.pairs.forEach((pair, i) => pair.grad.write(grads[i]));
  }

  /** Values and state per tensor (arena state is sliced at each parameter's offset). */
  async read(opt: Optimizer, slots: string[]): Promise<Outcome> {
    const values: Float32Array[] = [];
    for (const pair of this.pairs) values.push(await pair.value.toFloat32());
    const raw = await opt.readState();
    const state: Record<string, Float32Array[]> = {};
    for (const slot of slots) {
      state[slot] = this.pairs.map((pair, i) => {
        if (!this.arena) return raw[`${i}.${slot}`];
        const start = pair.value.byteOffset / 4;
        return raw[slot].subarray(start, start + pair.value.numel);
      });
    }
    return { values, state, step: raw.step[0] };
  }

  dispose(): void {
    if (this.arena) this.arena.dispose();
    else for (const pair of this.pairs) [pair.value, pair.grad].forEach((t) => t.dispose());
  }
}

/** Runs every step of `p` on the GPU, one submission per step. */
async function runGpu(gpu: Gpu, c: Case, p: Problem, form: "arena" | "tensors"): Promise<Outcome> {
  const params = new GpuParams(gpu, p, form);
  const opt = makeOptimizer(c, params.group);
  try {
    for (const grads of p.grads) {
      params.writeGrads(grads);
      const enc = new StepEncoder(gpu, "optim test");
      opt.step(enc);
      enc.submit();
    }
    assert.equal(opt.stepCount, p.grads.length);
    if (params.arena) await assertPaddingZero(params.arena);
    return await params.read(opt, slotsOf(c));
  } finally {
    opt.dispose();
    params.dispose();
  }
}

/** Element-wise rules must keep the arena's padding zero (its gradients are zero). */
async function assertPaddingZero(arena: ParameterArena): Promise<void> {
  const all = await arena.values.toFloat32();
  const used = new Uint8Array(all.length);
  for (const p of arena.params) {
    used.fill(1, p.value.byteOffset / 4, p.value.byteOffset / 4 + p.value.numel);
  }
  const bad = all.findIndex((v, i) => used[i] === 0 && v !== 0);
  assert.equal(bad, -1, `arena padding at ${bad} became ${all[bad]}`);
}

function assertOutcome(got: Outcome, want: Outcome, what: string, tol = TOL): void {
  assert.equal(got.step, want.step, `${what}: step`);
  want.values.forEach((v, i) =>
    assertClose(got.values[i], v, { ...tol, what: `${what}: values of tensor ${i}` })
  );
  for (const [slot, list] of Object.entries(want.state)) {
    assert.ok(got.state[slot], `${what}: state "${slot}" missing`);
    list.forEach((v, i) =>
      assertClose(got.state[slot][i], v, { ...tol, what: `${what}: ${slot} of tensor ${i}` })
    );
  }
}

// (1) Every rule and flag against its float64 twin, in both forms, at sizes that do not divide
// the workgroup (1000 takes the vec4 kernel in the tensor form, 37×53 the scalar one).
for (const form of ["arena", "tensors"] as const) {
  gpuTest(`optim ${form}: every rule matches its f64 twin over ${STEPS} steps`, async (gpu) => {
    for (const [k, c] of CASES.entries()) {
      const p = problem(SHAPES, STEPS, 10 + k);
      assertOutcome(await runGpu(gpu, c, p, form), runTwin(c, p), `${form} ${label(c)}`);
    }
  });
}

// (2) Against real PyTorch: the same parameters and gradients through torch.optim.
const TORCH_SCRIPT = `
import json, sys
import torch
torch.set_num_threads(1)
spec = json.load(sys.stdin)
classes = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "RMSprop": torch.optim.RMSprop}
names = {"weightDecay": "weight_decay"}
out = []
for case in spec["cases"]:
    params = [torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)) for v in spec["inits"]]
    kwargs = {names.get(k, k): v for k, v in case["options"].items()}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    opt = classes[case["kind"]](params, **kwargs)
    for grads in spec["grads"]:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    state = {}
    for p in params:
        for key, value in opt.state[p].items():
            if torch.is_tensor(value) and key != "step":
                state.setdefault(key, []).append(value.flatten().tolist())
    step = opt.state[params[0]].get("step", len(spec["grads"]))
    out.append({"values": [p.detach().flatten().tolist() for p in params], "state": state, "step": float(step)})
json.dump(out, sys.stdout)
`;

async function runTorch(cases: Case[], p: Problem): Promise<Outcome[]> {
  const input = JSON.stringify({
    cases,
    inits: p.inits.map((v) => [...v]),
    grads: p.grads.map((gs) => gs.map((g) => [...g])),
  });
  const child = new Deno.Command(PYTHON, {
    args: ["-c", TORCH_SCRIPT],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const result = await child.output();
  if (!result.success) {
    throw new Error(`PyTorch script failed: ${new TextDecoder().decode(result.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(result.stdout));
}

gpuTest(
  "optim: every rule matches real PyTorch 1.13 after 5 steps (arena and tensor forms)",
  async (gpu) => {
    const reason = await torchMissing();
    if (reason !== null) {
      console.log(`skipped: ${reason}`);
      return;
    }
    const p = problem([[37, 53], [10]], 5, 7);
    const torch = await runTorch(CASES, p);
    for (const [k, c] of CASES.entries()) {
      for (const form of ["arena", "tensors"] as const) {
        assertOutcome(await runGpu(gpu, c, p, form), torch[k], `PyTorch vs ${form} ${label(c)}`);
      }
    }
  },
);

// (3) Gradients accumulate until zeroed: a test-only kernel adds into the gradients, as
// backward kernels do.
const ACCUMULATE: Kernel = {
  name: "test_accumulate",
  source: `
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x < arrayLength(&dst)) {
    dst[gid.x] += src[gid.x];
  }
}`,
};

function accumulate(enc: StepEncoder, src: Tensor, dst: Tensor): void {
  const pipeline = enc.gpu.pipelines.get(ACCUMULATE, "main");
  const bindGroup = enc.gpu.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: src.binding() }, { binding: 1, resource: dst.binding() }],
  });
  enc.dispatch("test accumulate", pipeline, bindGroup, [Math.ceil(dst.numel / 64), 1, 1]);
}

gpuTest("optim: gradients accumulate until zeroGrad, in both forms", async (gpu) => {
  const c: Case = { kind: "SGD", options: { lr: 0.1, momentum: 0.9 } };
  for (const form of ["arena", "tensors"] as const) {
    const p = problem([[37, 53]], 4, 3);
    const params = new GpuParams(gpu, p, form);
    const opt = makeOptimizer(c, params.group);
    const grad = params.pairs[0].grad;
    const g = p.grads.map((gs) => Tensor.from(gpu, gs[0], [gs[0].length], "g"));
    // Step 1: zero, then two backward passes; step 2: a third pass without zeroing;
    // step 3: zero, then one pass.
    const plan: [boolean, number[]][] = [[true, [0, 1]], [false, [2]], [true, [3]]];
    const x = Float64Array.from(p.inits[0]);
    const state = refState(x.length, slotsOf(c));
    let sum = new Float32Array(x.length);
    for (const [zero, adds] of plan) {
      const enc = new StepEncoder(gpu);
      if (zero) opt.zeroGrad(enc);
      for (const a of adds) accumulate(enc, g[a], grad);
      opt.step(enc);
      enc.submit();
      if (zero) sum = new Float32Array(x.length);
      for (const a of adds) sum = sum.map((v, i) => v + p.grads[a][0][i]);
      twinStep(c, x, sum, state);
      assertClose(await grad.toFloat32(), sum, {
        ...TOL,
        what: `${form}: gradient after step ${state.step}`,
      });
      assertClose(await params.pairs[0].value.toFloat32(), x, {
        ...TOL,
        what: `${form}: values after step ${state.step}`,
      });
    }
    g.forEach((t) => t.dispose());
    opt.dispose();
    params.dispose();
  }
});

gpuTest("optim: zeroGrad of a tensor list clears exactly those gradients", async (gpu) => {
  const arena = new ParameterArena(gpu, [
    { name: "a", shape: [37, 53], init: randomArray(37 * 53, 1) },
    { name: "b", shape: [10], init: randomArray(10, 2) },
  ]);
  const [a, b] = arena.params;
  a.grad.write(randomArray(a.grad.numel, 3));
  const gb = randomArray(b.grad.numel, 4);
  b.grad.write(gb);
  const opt = new SGD([a], { lr: 0.1 });
  const enc = new StepEncoder(gpu);
  opt.zeroGrad(enc);
  enc.submit();
  assert.deepEqual(await a.grad.toFloat32(), new Float32Array(a.grad.numel));
  assert.deepEqual(await b.grad.toFloat32(), gb);
  opt.dispose();
  arena.dispose();
});

// (4) The step counter lives on the GPU: many steps in one submission equal one step per
// submission (bit for bit) and the twin.
gpuTest(
  "optim: many steps encoded into one submission equal one step per submission",
  async (gpu) => {
    const cases: Case[] = [SGD_DAMPENED, ADAM_AMSGRAD, ADAMW_AMSGRAD, RMSPROP_FULL];
    for (const c of cases) {
      const p = problem([[37, 53], [1000]], STEPS, 21);
      const perSubmit = await runGpu(gpu, c, p, "arena");
      const params = new GpuParams(gpu, p, "arena");
      const opt = makeOptimizer(c, params.group);
      // Each step copies its gradients from a sequence uploaded once, inside the same encoder.
      const seq = p.grads.map((gs) =>
        Tensor.from(gpu, concatArena(params.arena!, gs), [params.arena!.grads.numel], "seq")
      );
      const enc = new StepEncoder(gpu, "many steps");
      for (const s of seq) {
        enc.commands().copyBufferToBuffer(s.buffer, 0, params.arena!.grads.buffer, 0, s.byteLength);
        opt.step(enc);
      }
      enc.submit();
      const oneSubmit = await params.read(opt, slotsOf(c));
      oneSubmit.values.forEach((v, i) =>
        assert.deepEqual(v, perSubmit.values[i], `${label(c)}: tensor ${i}`)
      );
      assertOutcome(oneSubmit, runTwin(c, p), `one submission ${label(c)}`);
      seq.forEach((t) => t.dispose());
      opt.dispose();
      params.dispose();
    }
  },
);

/** Gradients of each parameter laid out at its arena offset (padding zero). */
function concatArena(arena: ParameterArena, grads: Float32Array[]): Float32Array {
  const flat = new Float32Array(arena.grads.numel);
  arena.params.forEach((p, i) => flat.set(grads[i], p.value.byteOffset / 4));
  return flat;
}

gpuTest("optim: setLr between submissions changes the rate of later steps only", async (gpu) => {
  const c: Case = { kind: "AdamW", options: { lr: 0.01, weightDecay: 0.1 } };
  const p = problem([[37, 53]], 4, 5);
  const params = new GpuParams(gpu, p, "tensors");
  const opt = makeOptimizer(c, params.group);
  const lrAt = (k: number) => (k < 2 ? 0.01 : 0.003);
  p.grads.forEach((gs, k) => {
    if (opt.lr !== lrAt(k)) opt.setLr(lrAt(k));
    params.writeGrads(gs);
    const enc = new StepEncoder(gpu);
    opt.step(enc);
    enc.submit();
  });
  assertOutcome(await params.read(opt, slotsOf(c)), runTwin(c, p, lrAt), "setLr");
  assert.throws(() => opt.setLr(-1), {
    name: "RangeError",
    message: "Cannot set AdamW.lr: lr must be >= 0: current value is -1",
  });
  opt.dispose();
  params.dispose();
});

// (5) Saving the state mid-way and restoring it into a fresh optimizer continues exactly.
gpuTest(
  "optim: stateTensors/loadState mid-way then continuing equals the uninterrupted run",
  async (gpu) => {
    const cases: Case[] = [SGD_NESTEROV, ADAM_AMSGRAD, RMSPROP_FULL];
    for (const form of ["arena", "tensors"] as const) {
      for (const c of cases) {
        const p = problem([[37, 53], [1000]], STEPS, 31);
        const whole = await runGpu(gpu, c, p, form);
        const first = new GpuParams(gpu, p, form);
        const opt1 = makeOptimizer(c, first.group);
        const stepOn = (params: GpuParams, opt: Optimizer, grads: Float32Array[]) => {
          params.writeGrads(grads);
          const enc = new StepEncoder(gpu);
          opt.step(enc);
          enc.submit();
        };
        p.grads.slice(0, 2).forEach((gs) => stepOn(first, opt1, gs));
        const saved = await opt1.readState();
        const values = await Promise.all(first.pairs.map((pair) => pair.value.toFloat32()));
        opt1.dispose();
        first.dispose();

        const second = new GpuParams(gpu, p, form);
        second.pairs.forEach((pair, i) => pair.value.write(values[i]));
        const opt2 = makeOptimizer(c, second.group);
        opt2.loadState(saved);
        assert.equal(opt2.stepCount, 2);
        p.grads.slice(2).forEach((gs) => stepOn(second, opt2, gs));
        const resumed = await second.read(opt2, slotsOf(c));
        resumed.values.forEach((v, i) =>
          assert.deepEqual(v, whole.values[i], `${form} ${label(c)}: tensor ${i}`)
        );
        assertOutcome(resumed, whole, `resumed ${form} ${label(c)}`, { atol: 0, rtol: 0 });
        opt2.dispose();
        second.dispose();
      }
    }
  },
);

gpuTest("optim: loadState names every missing, extra and mis-sized entry", (gpu) => {
  const p = problem([[10]], 1, 1);
  const params = new GpuParams(gpu, p, "tensors");
  const opt = new Adam(params.group, { amsgrad: true });
  const bad = {
    "0.exp_avg": new Float32Array(9),
    "0.exp_avg_sq": new Float32Array(10),
    bogus: new Float32Array(1),
    step: new Float32Array([1.5]),
  };
  assert.throws(() => opt.loadState(bad), {
    name: "RangeError",
    message:
      'Cannot load Adam state: "0.exp_avg" has 9 values (expected 10 f32); "0.max_exp_avg_sq" is missing; ' +
      '"bogus" is not part of Adam\'s state; "step" must be an integer in [0, 16777216]: current value is 1.5',
  });
  assert.equal(opt.stepCount, 0);
  opt.dispose();
  params.dispose();
  return Promise.resolve();
});

// (6) Steps allocate nothing.
gpuTest("optim: live GPU memory is unchanged by 10 steps", async (gpu) => {
  for (const c of [SGD_NESTEROV, ADAM_AMSGRAD, RMSPROP_FULL]) {
    for (const form of ["arena", "tensors"] as const) {
      const p = problem([[37, 53], [1000]], 1, 41);
      const params = new GpuParams(gpu, p, form);
      params.writeGrads(p.grads[0]);
      const opt = makeOptimizer(c, params.group);
      await params.pairs[0].value.read(); // warms the readback pool
      const before = gpu.memory.liveBytes;
      for (let i = 0; i < 10; i++) {
        const enc = new StepEncoder(gpu);
        opt.zeroGrad(enc);
        opt.step(enc);
        enc.submit();
      }
      await params.pairs[0].value.read();
      assert.equal(gpu.memory.liveBytes, before, `${form} ${label(c)}`);
      const live = gpu.memory.liveBytes;
      opt.dispose();
      assert.ok(gpu.memory.liveBytes < live, "dispose frees the optimizer's state");
      params.dispose();
    }
  }
});

gpuTest(
  "optim: bad options are RangeErrors naming the optimizer, the option and the value",
  (gpu) => {
    const params = new GpuParams(gpu, problem([[4]], 1, 1), "tensors");
    const g = params.group;
    const bad: [() => unknown, string][] = [
      [() => new Adam(g, { lr: -1 }), "Cannot create Adam: lr must be >= 0: current value is -1"],
      [() => new Adam(g, { lr: NaN }), "Cannot create Adam: lr must be >= 0: current value is NaN"],
      [
        () => new Adam(g, { betas: [1, 0.999] }),
        "Cannot create Adam: betas[0] must be in [0, 1): current value is 1",
      ],
      [
        () => new AdamW(g, { betas: [0.9, -0.1] }),
        "Cannot create AdamW: betas[1] must be in [0, 1): current value is -0.1",
      ],
      [
        () => new AdamW(g, { eps: -1e-8 }),
        "Cannot create AdamW: eps must be >= 0: current value is -1e-8",
      ],
      [
        () => new AdamW(g, { weightDecay: NaN }),
        "Cannot create AdamW: weightDecay must be >= 0: current value is NaN",
      ],
      [
        () => new SGD(g, { lr: 0.1, nesterov: true }),
        "Cannot create SGD: nesterov needs momentum > 0: current value is 0",
      ],
      [
        () => new SGD(g, { lr: 0.1, nesterov: true, momentum: 0.9, dampening: 0.1 }),
        "Cannot create SGD: nesterov needs dampening 0: current value is 0.1",
      ],
      [
        () => new SGD(g, { lr: 0.1, momentum: -0.5 }),
        "Cannot create SGD: momentum must be >= 0: current value is -0.5",
      ],
      [
        () => new SGD(g, { lr: Infinity }),
        "Cannot create SGD: lr must be finite: current value is Infinity",
      ],
      [
        () => new RMSprop(g, { alpha: NaN }),
        "Cannot create RMSprop: alpha must be >= 0: current value is NaN",
      ],
      [
        () => new RMSprop(g, { eps: -1 }),
        "Cannot create RMSprop: eps must be >= 0: current value is -1",
      ],
    ];
    for (const [make, message] of bad) assert.throws(make, { name: "RangeError", message });
    assert.throws(() => new Adam([]), {
      name: "TypeError",
      message:
        "Cannot create Adam: params must be a ParameterArena or a non-empty array of { value, grad }: current value is []",
    });
    const mismatched = [{
      value: params.pairs[0].value,
      grad: Tensor.empty(gpu, [5], "f32", "g5"),
    }];
    assert.throws(() => new SGD(mismatched, { lr: 1 }), {
      name: "RangeError",
      message: "Cannot create SGD: params[0].grad has shape [5] but its value has shape [4]",
    });
    mismatched[0].grad.dispose();
    const opt = new SGD(g, { lr: 1 });
    opt.dispose();
    assert.throws(() => opt.step(new StepEncoder(gpu)), {
      message: "Cannot step with SGD: it was disposed",
    });
    params.dispose();
    return Promise.resolve();
  },
);
