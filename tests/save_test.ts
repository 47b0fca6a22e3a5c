/**
 * save/load (lib/nn/save.ts), stateDictOf (lib/io/safetensors.ts) and the parameter arena as an
 * iterable (lib/nn/parameter.ts).
 *
 * save writes a plain state dict (PyTorch's names, `format: "pt"`, digests that verify) and, with
 * an optimizer, its state beside it; load into a fresh model and optimizer gives the same
 * weights, and a training step taken after it matches one taken after the save, bit for bit.
 * Every refusal (a corrupt tensor, a shape, a missing or foreign optimizer file, another
 * optimizer class) comes before anything is written. readSafetensorsFile's result goes into
 * loadStateDict through stateDictOf with no cast, and the two HostTensor types are one.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { checkDigests } from "../lib/io/digests.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  stateDictOf,
  type StateTensor,
} from "../lib/io/safetensors.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../lib/io/safetensors_file.ts";
import { BatchNorm1d } from "../lib/nn/batchnorm.ts";
import { Dropout } from "../lib/nn/dropout.ts";
import { LeakyReLU, Linear } from "../lib/nn/layers.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import type { HostTensor } from "../lib/nn/module.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { load, optimizerPath, save } from "../lib/nn/save.ts";
import { Sequential, type StateDict } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { SGD } from "../lib/optim/sgd.ts";
import { Tensor } from "../lib/tensor.ts";
import { encodeTrainingStep } from "../lib/train/step.ts";
import { gpuTest, randomArray } from "./helpers.ts";

/** True when A and B are assignable both ways (the same type, structurally). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// Checked by `deno check`: the state-dict tensor of lib/io and lib/nn's HostTensor are one type.
const sameHostTensor: Same<HostTensor, StateTensor> = true;
const sameStateDict: Same<StateDict, ReturnType<typeof stateDictOf>> = true;

/** A model with a Linear (transposed layout), BatchNorm buffers and Dropout (a step counter). */
function model(gpu: Gpu, seed: number, hidden = 6): Sequential {
  manualSeed(seed);
  return new Sequential(
    new Linear(5, hidden),
    new LeakyReLU(),
    new BatchNorm1d(hidden),
    new Dropout(0.3),
    new Linear(hidden, 3),
  ).to(gpu);
}

/** One batch of 9 rows of 5 features with labels in 0..2. */
function batch(gpu: Gpu, seed = 4) {
  return {
    x: Tensor.from(gpu, randomArray(9 * 5, seed), [9, 5], "x"),
    y: Tensor.from(gpu, Uint32Array.from({ length: 9 }, (_, i) => (i + seed) % 3), [9], "y"),
  };
}

/** `steps` training steps of `m` with `optimizer` on the batch, submitted at once. */
function train(
  gpu: Gpu,
  m: Sequential,
  optimizer: Adam | SGD,
  data: { x: Tensor; y: Tensor },
  steps: number,
) {
  const loss = new CrossEntropyLoss();
  m.train();
  const enc = new StepEncoder(gpu, "train");
  for (let i = 0; i < steps; i++) {
    encodeTrainingStep(enc, { model: m, loss, optimizer }, data.x, data.y);
  }
  enc.submit();
  return loss;
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function assertSameState(a: StateDict, b: StateDict, what: string): void {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort(), `${what}: names`);
  for (const k of Object.keys(a)) {
    assert.deepEqual(a[k].shape, b[k].shape, `${what} "${k}" shape`);
    assert.deepEqual(bytesOf(a[k].data), bytesOf(b[k].data), `${what} "${k}"`);
  }
}

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgnn-save-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

gpuTest(
  "save writes a PyTorch state dict with digests; load restores model and optimizer",
  async (gpu) => {
    assert.ok(sameHostTensor && sameStateDict);
    await withDir(async (dir) => {
      const data = batch(gpu), other = batch(gpu, 5);
      // The same seed, so the same Dropout masks (their seed is no part of a state dict, as in
      // PyTorch); b then trains elsewhere, so that the load has everything to overwrite. Load
      // keeps the optimizer's hyperparameters, so both get the same.
      const a = model(gpu, 1), b = model(gpu, 1);
      const optA = new Adam(a.parameters(), { lr: 1e-2 });
      const optB = new Adam(b.parameters(), { lr: 1e-2 });
      const losses = [train(gpu, a, optA, data, 3), train(gpu, b, optB, other, 1)];
      try {
        const path = join(dir, "model.safetensors");
        await save(path, a, { optimizer: optA });
        assert.deepEqual(
          (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(),
          ["model.optim.safetensors", "model.safetensors"],
          "two files, no temporary left",
        );

        // The model file: exactly the state dict, PyTorch's names and layouts, digests that verify.
        const file = await readSafetensorsFile(path);
        await checkDigests(path, file, true, "load");
        assert.equal(file.metadata.format, "pt");
        assert.equal(file.metadata.architecture, a.describe());
        const saved = await a.stateDict();
        assertSameState(stateDictOf(file), saved, "file");
        assert.deepEqual(file.tensors.get("0.weight")?.shape, [6, 5]);
        const optimFile = await readSafetensorsFile(optimizerPath(path));
        assert.equal(optimFile.metadata.saveId, file.metadata.saveId);
        assert.equal(optimFile.metadata.trainingSteps, "3");

        const elsewhere = await b.stateDict();
        assert.notDeepEqual(bytesOf(elsewhere["0.weight"].data), bytesOf(saved["0.weight"].data));
        const metadata = await load(path, b, { optimizer: optB });
        assert.equal(metadata.saveId, file.metadata.saveId);
        assertSameState(await b.stateDict(), saved, "loaded");
        assert.equal(await b.trainingSteps(), 3, "Dropout's step count");
        assert.equal(optB.stepCount, 3);

        // The same steps after the save and after the load: same weights and moments, bit for bit.
        losses.push(train(gpu, a, optA, data, 2), train(gpu, b, optB, data, 2));
        assertSameState(await b.stateDict(), await a.stateDict(), "trained on");
        const [sa, sb] = await Promise.all([optA.readState(), optB.readState()]);
        for (const k of Object.keys(sa)) assert.deepEqual(bytesOf(sb[k]), bytesOf(sa[k]), k);

        // Without an optimizer: the weights only.
        const c = model(gpu, 3);
        await load(path, c);
        assertSameState(await c.stateDict(), saved, "weights only");
        c.dispose();
      } finally {
        for (const d of [...losses, optA, optB, a, b, data.x, data.y, other.x, other.y]) {
          d.dispose();
        }
      }
    });
  },
);

gpuTest(
  "load refuses a corrupt, mis-shaped or mismatched file before writing anything",
  async (gpu) => {
    await withDir(async (dir) => {
      const data = batch(gpu);
      const a = model(gpu, 1), b = model(gpu, 2);
      const optA = new Adam(a.parameters()), optB = new Adam(b.parameters());
      const loss = train(gpu, a, optA, data, 1);
      try {
        const path = join(dir, "model.safetensors");
        await save(path, a, { optimizer: optA });
        const before = await b.stateDict();
        const optBefore = await optB.readState();
        const unchanged = async (what: string) => {
          assertSameState(await b.stateDict(), before, what);
          const now = await optB.readState();
          for (const k of Object.keys(now)) assert.deepEqual(now[k], optBefore[k], `${what}: ${k}`);
          assert.equal(optB.stepCount, 0, what);
        };

        // A flipped byte in the last tensor's data.
        const bytes = await Deno.readFile(path);
        const corrupt = join(dir, "corrupt.safetensors");
        bytes[bytes.length - 1] ^= 1;
        await Deno.writeFile(corrupt, bytes);
        await assert.rejects(() => load(corrupt, b), /does not match its SHA-256 digest/);
        await unchanged("corrupt");

        // Another architecture: every problem named, nothing written.
        const wide = model(gpu, 4, 7);
        await assert.rejects(
          () => load(path, wide),
          /"0\.weight" has shape \[6, 5\], expected \[7, 5\]/,
        );
        wide.dispose();

        // The optimizer file: missing, another class, another save.
        const lone = join(dir, "lone.safetensors");
        await save(lone, a);
        await assert.rejects(
          () => load(lone, b, { optimizer: optB }),
          /Cannot load ".*lone\.optim\.safetensors": the file does not exist/,
        );
        await unchanged("no optimizer file");
        const sgd = new SGD(b.parameters(), { lr: 0.1 });
        await assert.rejects(() => load(path, b, { optimizer: sgd }), /holds Adam state, not SGD/);
        sgd.dispose();
        await unchanged("another optimizer class");
        await save(path, a); // a new model file beside the old optimizer file
        await assert.rejects(
          () => load(path, b, { optimizer: optB }),
          /it was not saved with ".*model\.safetensors" \(their saveId differs\)/,
        );
        await unchanged("another save");
        // The model file alone still loads.
        await load(path, b);
        assertSameState(await b.stateDict(), await a.stateDict(), "after the refusals");
      } finally {
        for (const d of [loss, optA, optB, a, b, data.x, data.y]) d.dispose();
      }
    });
  },
);

gpuTest("stateDictOf: a file's tensors into loadStateDict with no cast", async (gpu) => {
  await withDir(async (dir) => {
    const a = model(gpu, 1), b = model(gpu, 2);
    try {
      // As PyTorch writes it: no digests; load and loadStateDict both take it.
      const path = join(dir, "torch.safetensors");
      const state = await a.stateDict();
      await writeSafetensorsFile(path, state, { format: "pt" });
      b.loadStateDict(stateDictOf(await readSafetensorsFile(path)));
      assertSameState(await b.stateDict(), state, "loadStateDict");
      const c = model(gpu, 3);
      await load(path, c);
      assertSameState(await c.stateDict(), state, "load");
      c.dispose();

      // A prefix picks and strips names (a checkpoint's "model/").
      const prefixed = Object.fromEntries(
        Object.entries(state).map(([k, t]) => [`model/${k}`, t]),
      );
      const mixed = encodeSafetensors({
        ...prefixed,
        "optim/step": { dtype: "F32", shape: [1], data: Float32Array.of(1) },
      });
      assertSameState(stateDictOf(decodeSafetensors(mixed), { prefix: "model/" }), state, "prefix");

      // A dtype a state dict does not hold is refused by name, not converted.
      const half = decodeSafetensors(encodeSafetensors({
        "0.bias": { dtype: "F16", shape: [1], data: Uint16Array.of(0x3c00) },
      }));
      assert.throws(
        () => stateDictOf(half),
        /Cannot make a state dict: tensor "0\.bias" has dtype F16; expected F32 \(or I64 for counters\)/,
      );
      // A tensor named "__proto__" is a name like any other.
      const odd = stateDictOf(decodeSafetensors(encodeSafetensors({
        ["__proto__"]: { dtype: "F32", shape: [1], data: Float32Array.of(2) },
      })));
      assert.deepEqual(Object.keys(odd), ["__proto__"]);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

gpuTest("model.parameters() is iterable: each parameter with its name", (gpu) => {
  const m = model(gpu, 1);
  try {
    const names: string[] = [];
    for (const p of m.parameters()) {
      names.push(p.name);
      assert.ok(p.value instanceof Tensor && p.grad instanceof Tensor);
    }
    assert.deepEqual(names, ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]);
    assert.deepEqual([...m.parameters()], m.parameters().params, "the same as .params");
    const expected = Object.keys(m.expectedState()).filter((k) => names.includes(k));
    assert.deepEqual(names, expected, "the state dict's parameter names, in its order");
    const optimizer = new Adam(m.parameters()); // an arena is still what an optimizer takes
    optimizer.dispose();
  } finally {
    m.dispose();
  }
  return Promise.resolve();
});
