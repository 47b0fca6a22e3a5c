/**
 * Smoke tests for the peer benchmarks (TensorFlow.js WebGPU, PyTorch CPU, jax-js wasm): tiny step
 * counts, no timing assertions. Each peer is skipped with a printed reason where it is unavailable.
 *
 * The models are checked against a fact independent of both peers: the seed's MLP has
 * 3072·128+128 + 128·128+128 + 128·10+10 = 411,146 trainable parameters, and each BatchNorm1d(128)
 * adds 256 (γ and β).
 */

import assert from "node:assert/strict";
import { benchTfjs, buildTfjsModel, initTfjsWebGpu, VARIANTS } from "../bench/peers/tfjs.ts";
import { benchTorch, type TorchBenchReport } from "../bench/peers/torch.ts";
import { benchJaxjs, releaseJaxjs } from "../bench/peers/jaxjs.ts";

const SEED_PARAMS = 3072 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10;
const EXPECTED_PARAMS = { plain: SEED_PARAMS, bn: SEED_PARAMS + 2 * 256, dropout: SEED_PARAMS };
const TINY = { batchSize: 37, warmupSteps: 1, steps: 2, rounds: 1 };

const noGpuReason = typeof navigator === "undefined" || !navigator.gpu
  ? "navigator.gpu is missing"
  : (await navigator.gpu.requestAdapter()) === null
  ? "no WebGPU adapter"
  : null;

Deno.test({
  name: "TF.js peer: seed models have the seed's parameter counts and run on WebGPU",
  // TF.js keeps its device and timers alive across tests.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    if (noGpuReason !== null) {
      console.log(`skipped: TF.js WebGPU peer unavailable (${noGpuReason})`);
      return;
    }
    const adapter = await initTfjsWebGpu();
    console.log(`TF.js WebGPU adapter: ${adapter}`);
    for (const variant of VARIANTS) {
      await t.step(variant, async () => {
        const model = buildTfjsModel(variant);
        // countParams includes BN's moving statistics; trainableWeights does not.
        let trainable = 0;
        for (const weight of model.trainableWeights) {
          trainable += weight.shape.reduce((a: number, b) => a * (b ?? 0), 1);
        }
        model.dispose();
        assert.equal(trainable, EXPECTED_PARAMS[variant]);

        // benchTfjs throws if the live tensor count moves across rounds or after disposal.
        const r = await benchTfjs({ variant, ...TINY });
        assert.equal(r.backend, "webgpu");
        assert(Number.isFinite(r.train) && r.train > 0, `train samples/s: ${r.train}`);
        assert(Number.isFinite(r.eval) && r.eval > 0, `eval samples/s: ${r.eval}`);
      });
    }
  },
});

Deno.test("TF.js peer: bad options are rejected with the value", async () => {
  await assert.rejects(
    () => benchTfjs({ variant: "plain", batchSize: 0, warmupSteps: 1, steps: 1, rounds: 1 }),
    { name: "RangeError", message: /batchSize must be an integer >= 1: current value is 0/ },
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => benchTfjs({ variant: "wide" as any, batchSize: 8, warmupSteps: 1, steps: 1, rounds: 1 }),
    { name: "RangeError", message: /current value is "wide"/ },
  );
});

Deno.test("PyTorch peer: runs the seed models and reports its BLAS", async () => {
  let reason = "";
  const r: TorchBenchReport | null = await benchTorch({ ...TINY, onSkip: (why) => reason = why });
  if (r === null) {
    console.log(`skipped: PyTorch peer unavailable (${reason})`);
    return;
  }
  console.log(`PyTorch ${r.torch}, BLAS ${r.blas.kind} at ${r.blas.sgemm_gflops} GFLOP/s`);
  assert(r.blas.sgemm_gflops > 0);
  assert.equal(r.threads, 2);
  for (const variant of VARIANTS) {
    const one: TorchBenchReport["results"]["plain"] = r.results[variant];
    if (one === undefined) throw new Error(`PyTorch peer: no result for ${variant}`);
    assert.equal(one.params, EXPECTED_PARAMS[variant]);
    assert(one.train > 0 && one.eval > 0, `${variant}: ${JSON.stringify(one)}`);
  }
  assert.equal(r.warning !== undefined, r.blas.slow);
});

Deno.test("PyTorch peer: a missing interpreter gives null and a reason", async () => {
  const python = "/nonexistent/python3";
  if ((await Deno.permissions.query({ name: "run", command: python })).state !== "granted") {
    console.log("skipped: needs --allow-run for a nonexistent path");
    return;
  }
  let reason = "";
  const r = await benchTorch({ python, onSkip: (why) => reason = why });
  assert.equal(r, null);
  assert.equal(reason, `${python} does not exist`);
});

Deno.test({
  name: "jax-js peer: trains the seed models on wasm, losses from about ln 10 and falling",
  // jax-js keeps its worker threads and their messages alive until releaseJaxjs.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    try {
      for (const variant of VARIANTS) {
        await t.step(variant, async () => {
          // 6 steps alternating two batches of 128: step 5 sees step 1's batch again.
          const r = await benchJaxjs({
            backend: "wasm",
            variant,
            batchSize: 128,
            warmupSteps: 4,
            steps: 2,
            rounds: 1,
          });
          console.log(`jax-js wasm ${variant}, ${r.workers} workers: losses ${r.losses}`);
          assert.equal(r.backend, "wasm");
          assert.equal(r.params, EXPECTED_PARAMS[variant]);
          assert(Number.isFinite(r.train) && r.train > 0, `train samples/s: ${r.train}`);
          assert(Number.isFinite(r.eval) && r.eval > 0, `eval samples/s: ${r.eval}`);
          assert.equal(r.losses.length, 6);
          // PyTorch's init gives about ln 10 = 2.30 (BatchNorm's unit-variance features more).
          assert(r.losses[0] > 2 && r.losses[0] < 2.8, `first loss ${r.losses[0]}`);
          // Dropout(0.5) makes a few steps' losses noisy: only the others must fall.
          if (variant !== "dropout") {
            assert(r.losses[4] < r.losses[0], `loss ${r.losses[0]} -> ${r.losses[4]}`);
          }
        });
      }
    } finally {
      releaseJaxjs();
    }
  },
});

Deno.test("jax-js peer: bad options are rejected with the value", async () => {
  await assert.rejects(
    () =>
      benchJaxjs({
        backend: "wasm",
        variant: "plain",
        batchSize: 1,
        warmupSteps: 1,
        steps: 1,
        rounds: 1,
      }),
    { name: "RangeError", message: /batchSize must be an integer >= 2: current value is 1/ },
  );
  await assert.rejects(
    () =>
      benchJaxjs({
        // deno-lint-ignore no-explicit-any
        backend: "webgl" as any,
        variant: "plain",
        batchSize: 8,
        warmupSteps: 1,
        steps: 1,
        rounds: 1,
      }),
    {
      name: "RangeError",
      message: /backend must be one of wasm, webgpu: current value is "webgl"/,
    },
  );
});
