/**
 * The training-forward counter runs only where a module reads it: a model with Dropout advances
 * the GPU counter at each training forward (one dispatch), a model without one dispatches nothing
 * for it and counts on the host. trainingSteps/setTrainingSteps behave the same for both.
 */

import assert from "node:assert/strict";
import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Dropout } from "../lib/nn/dropout.ts";
import { Linear, ReLU } from "../lib/nn/layers.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import { Tensor } from "../lib/tensor.ts";
import { gpuTest, randomArray } from "./helpers.ts";

Deno.test("step counter: Dropout declares it reads the counter, other layers do not", () => {
  assert.equal(new Dropout(0.5).readsStepCounter, true);
  assert.equal(new Linear(2, 2).readsStepCounter, false);
  assert.equal(new ReLU().readsStepCounter, false);
});

/** Dispatches one forward of `model` encodes, in train or eval mode (submitted). */
function forwardDispatches(gpu: Gpu, model: Sequential, x: Tensor, training: boolean): number {
  model.train(training);
  const enc = new StepEncoder(gpu);
  model.forward(enc, x);
  const count = enc.dispatches;
  enc.submit();
  return count;
}

for (const withDropout of [false, true]) {
  gpuTest(
    `step counter: a model ${withDropout ? "with" : "without"} Dropout counts training forwards${
      withDropout ? " on the GPU" : " and dispatches nothing for it"
    }`,
    async (gpu) => {
      manualSeed(3);
      const model = new Sequential(
        new Linear(4, 8),
        new ReLU(),
        ...(withDropout ? [new Dropout(0.5)] : []),
        new Linear(8, 2),
      ).to(gpu);
      const x = Tensor.from(gpu, randomArray(5 * 4, 1), [5, 4]);
      try {
        const evalCount = forwardDispatches(gpu, model, x, false);
        const trainCount = forwardDispatches(gpu, model, x, true);
        // With Dropout: the counter's advance and the mask; without: the same dispatches.
        assert.equal(trainCount - evalCount, withDropout ? 2 : 0);
        assert.equal(await model.trainingSteps(), 1);
        forwardDispatches(gpu, model, x, false);
        assert.equal(await model.trainingSteps(), 1, "an eval forward is not a step");
        model.setTrainingSteps(41);
        assert.equal(await model.trainingSteps(), 41);
        forwardDispatches(gpu, model, x, true);
        assert.equal(await model.trainingSteps(), 42);
      } finally {
        x.dispose();
        model.dispose();
      }
    },
  );
}
