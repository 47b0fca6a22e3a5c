/**
 * The choice between Conv2d's two paths (lib/nn/conv_choice.ts, WGNN_CONV) and the GEMM path's
 * determinism: the weight gradient's split-K sums come out with the same bits on every run, and
 * both paths agree with each other on a CIFAR-sized layer. The twin checks of each path are in
 * tests/cnn_layers_test.ts and tests/cnn_torch_test.ts.
 */

import assert from "node:assert/strict";
import { Conv2d } from "../lib/nn/conv.ts";
import { chooseConv, convAlgorithm, convChoice } from "../lib/nn/conv_choice.ts";
import { convChoiceFromEnv } from "../lib/nn/conv_env.ts";
import type { ConvShape } from "../lib/nn/conv_gemm.ts";
import { matmulChoice } from "../lib/ops/matmul_choice.ts";
import { manualSeed } from "../lib/nn/random.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";
import { runLayer } from "./fixtures/cnn.ts";

/** A 3×3 convolution with padding 1 of `C` to `OC` channels in `G` groups on 32×32. */
function shape(C: number, OC: number, G = 1): ConvShape {
  return {
    N: 8,
    C,
    H: 32,
    W: 32,
    OC,
    OH: 32,
    OW: 32,
    G,
    KH: 3,
    KW: 3,
    SH: 1,
    SW: 1,
    PT: 1,
    PL: 1,
    DH: 1,
    DW: 1,
  };
}

gpuTest("conv choice: auto per shape and adapter, forced by chooseConv or the option", (gpu) => {
  const texture = matmulChoice(gpu).variant === "texture";
  chooseConv(gpu, "auto");
  // CIFAR's layers and groups of 4 channels go to the GEMMs where the matmul engine reads
  // textures; depthwise and 2-channel groups stay on the direct loops everywhere.
  assert.equal(convAlgorithm(gpu, shape(32, 32), "auto"), texture ? "gemm" : "direct");
  assert.equal(convAlgorithm(gpu, shape(3, 32), "auto"), texture ? "gemm" : "direct");
  assert.equal(convAlgorithm(gpu, shape(32, 32, 8), "auto"), texture ? "gemm" : "direct");
  assert.equal(convAlgorithm(gpu, shape(32, 32, 32), "auto"), "direct");
  assert.equal(convAlgorithm(gpu, shape(32, 32, 16), "auto"), "direct");
  // A layer's option wins over the GPU's choice, which wins over auto.
  assert.equal(convAlgorithm(gpu, shape(32, 32, 32), "gemm"), "gemm");
  chooseConv(gpu, "direct");
  assert.equal(convChoice(gpu), "direct");
  assert.equal(convAlgorithm(gpu, shape(32, 32), "auto"), "direct");
  assert.equal(convAlgorithm(gpu, shape(32, 32), "gemm"), "gemm");
  chooseConv(gpu, "auto");
  // A shape whose textures cannot fit is refused on a forced gemm path, by reason.
  const huge = { ...shape(4096, 8), H: 4096, W: 4096, OH: 4096, OW: 4096, N: 64 };
  assert.throws(
    () => convAlgorithm(gpu, huge, "gemm"),
    /Cannot run the convolution on the gemm path: texture tx/,
  );
  assert.equal(convAlgorithm(gpu, huge, "auto"), "direct");
  assert.throws(
    () => chooseConv(gpu, "fast" as "auto"),
    /Cannot choose the convolution path: expected one of auto, gemm, direct: current value is "fast"/,
  );
  return Promise.resolve();
});

gpuTest("WGNN_CONV forces a path, and names a bad value", (gpu) => {
  const before = Deno.env.get("WGNN_CONV");
  try {
    Deno.env.set("WGNN_CONV", "direct");
    assert.equal(convChoiceFromEnv(gpu), "direct");
    assert.equal(convChoice(gpu), "direct");
    Deno.env.set("WGNN_CONV", "gemm");
    assert.equal(convChoiceFromEnv(gpu), "gemm");
    Deno.env.set("WGNN_CONV", "im2col");
    assert.throws(
      () => convChoiceFromEnv(gpu),
      /WGNN_CONV must be one of auto, gemm, direct: current value is "im2col"/,
    );
    Deno.env.delete("WGNN_CONV");
    assert.equal(convChoiceFromEnv(gpu), "gemm"); // unset: the choice made stays
  } finally {
    if (before === undefined) Deno.env.delete("WGNN_CONV");
    else Deno.env.set("WGNN_CONV", before);
    chooseConv(gpu, "auto");
  }
  return Promise.resolve();
});

gpuTest(
  "Conv2d gemm: the same bits on every run; gemm and direct agree (32->32 on 16x16)",
  async (gpu) => {
    const xShape = [4, 32, 16, 16];
    const x = randomArray(4 * 32 * 256, 31);
    const dy = randomArray(4 * 32 * 256, 32);
    const run = async (algorithm: "gemm" | "direct") => {
      manualSeed(9);
      const got = await runLayer(
        gpu,
        new Conv2d(32, 32, 3, { padding: 1, algorithm }),
        x,
        xShape,
        dy,
      );
      got.model.dispose();
      return got;
    };
    const a = await run("gemm");
    const b = await run("gemm");
    assert.deepEqual(a.y, b.y, "y");
    assert.deepEqual(a.dx, b.dx, "dX");
    assert.deepEqual(a.grads["0.layer.weight"].data, b.grads["0.layer.weight"].data, "dW");
    assert.deepEqual(a.grads["0.layer.bias"].data, b.grads["0.layer.bias"].data, "db");
    const d = await run("direct");
    assertClose(a.y, d.y, { atol: 1e-5, rtol: 1e-5, what: "y gemm vs direct" });
    assertClose(a.dx, d.dx, { atol: 1e-5, rtol: 1e-5, what: "dX gemm vs direct" });
    assertClose(
      a.grads["0.layer.weight"].data as Float32Array,
      d.grads["0.layer.weight"].data as Float32Array,
      { atol: 1e-3, rtol: 1e-5, what: "dW gemm vs direct" },
    );
  },
);
