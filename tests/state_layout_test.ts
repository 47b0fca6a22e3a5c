/**
 * The hooks that let Sequential treat its children alike: a parameter's state-dict layout is
 * what its spec declares (identity unless `layout: "transposed"`), and fusion is a module's own
 * answer (LeakyReLU offers itself, the module before it takes it or not).
 */

import assert from "node:assert/strict";
import type { StepEncoder } from "../lib/gpu/encoder.ts";
import { Flatten, LeakyReLU, Linear } from "../lib/nn/layers.ts";
import { Module } from "../lib/nn/module.ts";
import {
  fromStateLayout,
  type ParameterSpec,
  stateShape,
  toStateLayout,
} from "../lib/nn/parameter.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import type { Tensor } from "../lib/tensor.ts";
import { gpuTest } from "./helpers.ts";

/** A pass-through layer holding one [2, 3] parameter, stored as [3, 2] by "PyTorch". */
class Holder extends Module {
  readonly spec: ParameterSpec = {
    name: "table",
    shape: [2, 3],
    init: new Float32Array([1, 2, 3, 4, 5, 6]),
    layout: "transposed",
  };
  describe(): string {
    return "Holder()";
  }
  override parameterSpecs(): ParameterSpec[] {
    return [this.spec];
  }
  outputShape(input: readonly number[]): number[] {
    return [...input];
  }
  forward(_enc: StepEncoder, x: Tensor): Tensor {
    return x;
  }
  backward(_enc: StepEncoder, dY: Tensor): Tensor {
    return dY;
  }
}

Deno.test("state layout: identity by default, a transpose when declared", () => {
  const data = new Float32Array([1, 2, 3, 4, 5, 6]); // [2][3]
  const same: ParameterSpec = { name: "w", shape: [2, 3], init: data };
  assert.deepEqual(stateShape(same), [2, 3]);
  assert.equal(toStateLayout(same, data), data);
  assert.equal(fromStateLayout(same, data), data);
  const transposed: ParameterSpec = { ...same, layout: "transposed" };
  assert.deepEqual(stateShape(transposed), [3, 2]);
  const torch = toStateLayout(transposed, data);
  assert.deepEqual([...torch], [1, 4, 2, 5, 3, 6]); // [3][2]
  assert.deepEqual([...fromStateLayout(transposed, torch)], [...data]);
});

Deno.test("state layout: expectedState reads the declared layout of any module", () => {
  const model = new Sequential(new Flatten(), new Holder(), new Linear(6, 4));
  assert.deepEqual(model.expectedState(), {
    "1.table": { dtype: "F32", shape: [3, 2] },
    "2.weight": { dtype: "F32", shape: [4, 6] },
    "2.bias": { dtype: "F32", shape: [4] },
  });
});

Deno.test("fusion: a LeakyReLU with slope >= 0 is taken by a Linear, not by other modules", () => {
  const linear = new Linear(4, 4);
  const relu = new LeakyReLU(0.2);
  relu.fuseInto(linear);
  assert.equal(relu.fused, true);
  assert.equal(linear.fusedSlope, 0.2);
  const alone = new LeakyReLU(0.2);
  alone.fuseInto(new Holder());
  assert.equal(alone.fused, false, "Holder declines");
  const negative = new LeakyReLU(-0.5);
  const other = new Linear(4, 4);
  negative.fuseInto(other);
  assert.equal(negative.fused, false, "a negative slope is not offered");
  assert.equal(other.fusedSlope, null);
});

gpuTest(
  "state layout: a module's transposed parameter leaves and returns in PyTorch's layout",
  async (gpu) => {
    const holder = new Holder();
    const model = new Sequential(holder, new Linear(3, 2)).to(gpu);
    try {
      const state = await model.stateDict();
      assert.deepEqual(state["0.table"].shape, [3, 2]);
      assert.deepEqual([...state["0.table"].data], [1, 4, 2, 5, 3, 6]);
      const torch = new Float32Array([10, 40, 20, 50, 30, 60]);
      model.loadStateDict({ ...state, "0.table": { dtype: "F32", shape: [3, 2], data: torch } });
      const gpuLayout = await model.parameters().params[0].value.toFloat32();
      assert.deepEqual([...gpuLayout], [10, 20, 30, 40, 50, 60]);
      assert.deepEqual([...(await model.stateDict())["0.table"].data], [...torch]);
    } finally {
      model.dispose();
    }
  },
);
