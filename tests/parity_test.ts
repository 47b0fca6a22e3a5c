/**
 * Parity with real PyTorch on the seed's three models: 20 Adam steps on real CIFAR-10 batches
 * from the same initial weights. The reference is PyTorch's float64 run, which agrees across CPUs
 * to ~1e-12; float32 runs do not (their BLAS kernels differ per CPU, and the BatchNorm model
 * amplifies the difference to about 1% of the loss). Ours must stay within K times PyTorch's
 * own float32-vs-float64 drift of it, measured in the same run: losses step by step, every
 * tensor, BatchNorm statistics, eval-mode logits. The goldens are produced live by
 * tests/torch/make_goldens.py when /usr/bin/python3 has torch (as in CI); otherwise the
 * committed ones in tests/goldens/ are used.
 */

import { decodeRecords } from "./browser/checks.ts";
import { FLOOR, K, lossBounds, WELL_CONDITIONED } from "./browser/parity_bounds.ts";
import assert from "node:assert/strict";
import { PYTHON, torchMissing } from "./fixtures/torch.ts";
import { join } from "node:path";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import type { Gpu } from "../lib/gpu/device.ts";
import { Tensor } from "../lib/tensor.ts";
import { CrossEntropyLoss } from "../lib/nn/loss.ts";
import { manualSeed } from "../lib/nn/random.ts";
import type { Sequential } from "../lib/nn/sequential.ts";
import { Adam } from "../lib/optim/adam.ts";
import { lectureModel, type Variant } from "../lib/train/experiment.ts";
import { loadModel } from "../lib/train/checkpoint.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../lib/io/safetensors_file.ts";
import { assertClose, assertWithin, hasGpu } from "./helpers.ts";
import { encodeTrainingStep, type Trainer } from "../lib/train/step.ts";

// WGNN_PARITY_DATA: another folder holding cifar-10-batches-bin/ (the GPU machine gets only the
// records these tests read, packed by bench/gpu/pack.sh).
const DATA = join(Deno.env.get("WGNN_PARITY_DATA") ?? "../shared/data", "cifar-10-batches-bin");
const hasData = await Deno.stat(join(DATA, "data_batch_1.bin")).then(() => true, () => false);

/** Live goldens from PyTorch when possible, else the committed ones. */
const goldens: Promise<{ dir: string; live: boolean }> = (async () => {
  if (!hasData || (await torchMissing()) !== null) {
    console.log("parity: using committed goldens (PyTorch or the data is not available here)");
    return { dir: "tests/goldens", live: false };
  }
  const dir = await Deno.makeTempDir({ prefix: "wgnn-goldens-" });
  const out = await new Deno.Command(PYTHON, {
    args: ["tests/torch/make_goldens.py", "--out", dir, "--data", DATA],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(`make_goldens.py failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { dir, live: true };
})();

/** Records [from, to) of a binary batch file as f32 pixels/255 and u32 labels. */
async function records(
  file: string,
  from: number,
  to: number,
): Promise<{ x: Float32Array; y: Uint32Array }> {
  return decodeRecords(await Deno.readFile(join(DATA, file)), from, to);
}

async function evalLogits(gpu: Gpu, model: Sequential, count = 256): Promise<Float32Array> {
  const { x } = await records("test_batch.bin", 0, count);
  const X = Tensor.from(gpu, x, [count, 3, 32, 32], "test images");
  model.eval();
  const enc = new StepEncoder(gpu);
  const logits = model.forward(enc, X);
  enc.submit();
  const out = await logits.toFloat32();
  X.dispose();
  return out;
}

/** One Adam step on the batch (X, Y), encoded and submitted as one command buffer. */
function trainStep(
  gpu: Gpu,
  trainer: Trainer,
  X: Tensor,
  Y: Tensor,
): void {
  const enc = new StepEncoder(gpu);
  encodeTrainingStep(enc, trainer, X, Y);
  enc.submit();
}

/** What make_goldens.py writes to <variant>.json (the fields these tests read). */
interface Golden {
  batchSize: number;
  steps: number;
  lr: number;
  /** PyTorch's float32 run. */
  losses: number[];
  evalLogits: number[];
  /** PyTorch's float64 run from the same initial weights: the reference. */
  losses64: number[];
  evalLogits64: number[];
  /** |float32 − float64| of PyTorch's own runs: per step, largest per tensor, largest logit. */
  spread32: { losses: number[]; weights: Record<string, number>; evalLogits: number };
}

for (const variant of ["plain", "bn", "dropout"] as Variant[]) {
  Deno.test({
    name: `parity with PyTorch: ${variant} model, 20 Adam steps on real CIFAR-10`,
    ignore: !hasData || !hasGpu,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const { dir, live } = await goldens;
      const { testGpu } = await import("./helpers.ts");
      const gpu = await testGpu();
      if (typeof gpu === "string") throw new Error(gpu);
      const golden: Golden = JSON.parse(await Deno.readTextFile(join(dir, `${variant}.json`)));
      manualSeed(0); // Dropout masks are keyed by seed 0, as the golden script assumes
      const model = lectureModel(variant).to(gpu);
      await loadModel(join(dir, `${variant}_init.safetensors`), model);
      const optimizer = new Adam(model.parameters(), { lr: golden.lr });
      const loss = new CrossEntropyLoss();
      const B = golden.batchSize;
      const X = Tensor.empty(gpu, [B, 3072], "f32", "x");
      const Y = Tensor.empty(gpu, [B], "u32", "y");
      const losses: number[] = [];
      model.train();
      for (let step = 0; step < golden.steps; step++) {
        const { x, y } = await records("data_batch_1.bin", step * B, (step + 1) * B);
        X.write(x);
        Y.write(y);
        trainStep(gpu, { model, loss, optimizer }, X, Y);
        losses.push((await loss.stats.read()).lastLoss);
      }
      const ours = await model.stateDict();
      const logits = await evalLogits(gpu, model);
      const source = live ? "live PyTorch" : "committed goldens";
      const spread = golden.spread32;

      // Against the float64 run: losses step by step, every tensor, the eval logits.
      const bounds = lossBounds(spread.losses);
      const room = {
        losses: assertWithin(losses, golden.losses64, bounds, `${variant} losses vs ${source} f64`),
        weights: 0,
        logits: assertWithin(
          logits,
          golden.evalLogits64,
          Math.max(K * spread.evalLogits, FLOOR.logits),
          `${variant} eval logits vs ${source} f64`,
        ),
      };
      const final64 = await readSafetensorsFile(join(dir, `${variant}_final64.safetensors`));
      for (const [name, t] of final64.tensors) {
        room.weights = Math.max(
          room.weights,
          assertWithin(
            ours[name].data as Float32Array,
            t.data as Float32Array,
            Math.max(K * spread.weights[name], FLOOR.weight),
            `${variant} ${name} vs ${source} f64`,
          ),
        );
      }
      // The float64 file holds no counters; the float32 one has the same names as ours.
      const final = await readSafetensorsFile(join(dir, `${variant}_final.safetensors`));
      assert.deepEqual(Object.keys(ours).sort(), [...final.tensors.keys()].sort());
      for (const [name, t] of final.tensors) {
        if (t.dtype !== "I64") continue;
        assert.equal((ours[name].data as BigInt64Array)[0], (t.data as BigInt64Array)[0], name);
      }

      // Against the float32 run, where it is itself within a few ulps of float64: the same bounds.
      const steps32 = WELL_CONDITIONED.includes(variant) ? golden.steps : 1;
      assertWithin(
        losses.slice(0, steps32),
        golden.losses.slice(0, steps32),
        bounds.slice(0, steps32),
        `${variant} losses, steps 1-${steps32} vs ${source} f32`,
      );
      console.log(
        `${variant} vs ${source} f64, largest diff/bound: losses ${room.losses.toFixed(2)}, ` +
          `weights ${room.weights.toFixed(2)}, eval logits ${room.logits.toFixed(2)} (K = ${K})`,
      );
      for (const t of [X, Y, loss, optimizer, model]) t.dispose();
    },
  });
}

Deno.test({
  name:
    "safetensors round trip through PyTorch: saved here, loaded there; saved there, loaded here",
  ignore: !hasData || !hasGpu || (await torchMissing()) !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { testGpu } = await import("./helpers.ts");
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    const tmp = await Deno.makeTempDir({ prefix: "wgnn-roundtrip-" });
    const run = async (args: string[]) => {
      const out = await new Deno.Command(PYTHON, {
        args: ["tests/torch/roundtrip.py", ...args, "--data", DATA],
        stdout: "piped",
        stderr: "piped",
      })
        .output();
      if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
      return JSON.parse(new TextDecoder().decode(out.stdout));
    };
    // Here → PyTorch: a BatchNorm model after a few steps (running stats not at defaults).
    manualSeed(3);
    const model = lectureModel("bn").to(gpu);
    const optimizer = new Adam(model.parameters());
    const loss = new CrossEntropyLoss();
    const { x, y } = await records("data_batch_2.bin", 0, 128);
    const X = Tensor.from(gpu, x, [128, 3072]);
    const Y = Tensor.from(gpu, y, [128]);
    for (let i = 0; i < 3; i++) {
      trainStep(gpu, { model, loss, optimizer }, X, Y);
    }
    const state = await model.stateDict();
    const file = join(tmp, "ours.safetensors");
    await writeSafetensorsFile(file, state, { format: "pt" });
    const theirs = await run(["eval", "--variant", "bn", "--weights", file]);
    assertClose(await evalLogits(gpu, model), theirs.logits, {
      atol: 1e-4,
      rtol: 1e-4,
      what: "PyTorch eval of our weights",
    });

    // PyTorch → here.
    const torchFile = join(tmp, "torch.safetensors");
    await run(["save", "--variant", "dropout", "--out", torchFile, "--steps", "2"]);
    const expected = await run(["eval", "--variant", "dropout", "--weights", torchFile]);
    manualSeed(0);
    const other = lectureModel("dropout").to(gpu);
    await loadModel(torchFile, other);
    assertClose(await evalLogits(gpu, other), expected.logits, {
      atol: 1e-4,
      rtol: 1e-4,
      what: "our eval of PyTorch's weights",
    });
    for (const t of [X, Y, loss, optimizer, model, other]) t.dispose();
    await Deno.remove(tmp, { recursive: true });
  },
});
