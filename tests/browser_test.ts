/**
 * The library on a second WebGPU implementation: Chromium's Dawn, whose WGSL compiler is Tint,
 * on SwiftShader, driven headless by puppeteer-core. The page imports the browser build (the
 * bundle of browser.ts, as `deno task build` makes it) and runs tests/browser/checks.ts; Deno runs
 * the same functions on lavapipe. Both are judged against independent references, the float64
 * twins and PyTorch's goldens, and against each other: bit for bit where the two agree so, else
 * the largest difference is printed.
 *
 * Skipped, saying why, when Debian's `chromium` is not installed, when Deno has no WebGPU
 * adapter, or (the parity tests) when CIFAR-10 is not in ../shared/data.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import * as nn from "../browser.ts";
import { readSafetensorsFile } from "../lib/io/safetensors_file.ts";
import { pack, unpack } from "./browser/wire.ts";
import { assertClose, assertWithin, hasGpu, testGpu } from "./helpers.ts";
import { bundle, chromiumMissing, Session, type Site } from "./browser/chromium.ts";
import {
  cnnChecks,
  DATA_CASE,
  dataChecks,
  extraChecks,
  kernelChecks,
  matmulChecks,
  type Outputs,
  parityRun,
  type Variant,
} from "./browser/checks.ts";
import {
  cnnExpectations,
  dataExpectations,
  expectations,
  type Expected,
  extraExpectations,
  matmulExpectations,
} from "./browser/twins.ts";
import {
  type Golden,
  lossBounds,
  parityBounds,
  WELL_CONDITIONED,
} from "./browser/parity_bounds.ts";

const DATA = join(Deno.env.get("WGNN_PARITY_DATA") ?? "../shared/data", "cifar-10-batches-bin");
const hasData = await Deno.stat(join(DATA, "data_batch_1.bin")).then(() => true, () => false);
const GOLDENS = "tests/goldens";

const chromium = await chromiumMissing();
const skip = chromium ?? (hasGpu ? null : "Deno has no WebGPU adapter to compare with");
if (skip) console.log(`browser tests skipped: ${skip}`);
if (!skip && !hasData) console.log(`browser parity tests skipped: no CIFAR-10 in ${DATA}`);

const options = { sanitizeResources: false, sanitizeOps: false };

/** The site: the test page, the browser build and the page's script, bundled once. */
let site: Promise<Site> | null = null;
function testSite(): Promise<Site> {
  site ??= (async () => {
    const [wgnn, page] = await Promise.all([bundle("browser.ts"), bundle("tests/browser/page.ts")]);
    const html = await Deno.readTextFile("tests/browser/index.html");
    const js = "text/javascript";
    return {
      files: new Map([
        ["/", { body: html, type: "text/html" }],
        ["/wgnn.js", { body: wgnn, type: js }],
        ["/page.js", { body: page, type: js }],
      ]),
      outputs: new Map(),
    };
  })();
  return site;
}

/** Opens the page, waits for its script to have a GPU, runs `fn`, closes the browser. */
async function inPage<T>(fn: (session: Session, site: Site) => Promise<T>): Promise<T> {
  const s = await testSite();
  const session = await Session.open(s);
  try {
    await session.page.waitForFunction("globalThis.wgnnTest !== undefined", { timeout: 30_000 })
      .catch((e) => {
        throw new Error(`the page did not start: ${e}\n${session.console.join("\n")}`);
      });
    return await fn(session, s);
  } catch (error) {
    if (session.console.length) console.log(`browser console:\n${session.console.join("\n")}`);
    throw error;
  } finally {
    await session.close();
  }
}

/** The outputs the page POSTed to `path`. */
function received(site: Site, path: string): Outputs {
  const bytes = site.outputs.get(path);
  assert.ok(bytes, `the page sent nothing to ${path}`);
  return unpack(bytes);
}

/** How two runs of the same outputs differ: elements whose bits differ, largest |a − b|. */
function compare(
  a: Outputs,
  b: Outputs,
): { name: string; differ: number; of: number; max: number }[] {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  return Object.keys(a).sort().map((name) => {
    let differ = 0;
    let max = 0;
    for (let i = 0; i < a[name].length; i++) {
      if (!Object.is(a[name][i], b[name][i])) differ++;
      max = Math.max(max, Math.abs(a[name][i] - b[name][i]));
    }
    return { name, differ, of: a[name].length, max };
  });
}

/**
 * Both runtimes' outputs against the twins' and against each other, with each output's
 * tolerance; every expected output must be there, and nothing else.
 */
function judge(dawn: Outputs, lavapipe: Outputs, want: Record<string, Expected>): void {
  assert.deepEqual(Object.keys(dawn).sort(), Object.keys(want).sort(), "outputs checked");
  for (const [name, { want: w, atol, rtol }] of Object.entries(want)) {
    assertClose(dawn[name], w, { atol, rtol, what: `Dawn ${name}` });
    assertClose(lavapipe[name], w, { atol, rtol, what: `lavapipe ${name}` });
    assertClose(dawn[name], lavapipe[name], { atol, rtol, what: `Dawn vs lavapipe ${name}` });
  }
}

/** The outputs named `prefix…`, renamed without the prefix. */
function pick(out: Outputs, prefix: string): Outputs {
  return Object.fromEntries(
    Object.entries(out).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [
      k.slice(prefix.length),
      v,
    ]),
  );
}

function report(what: string, diffs: ReturnType<typeof compare>): void {
  const same = diffs.filter((d) => d.differ === 0).map((d) => d.name);
  const lines = diffs.filter((d) => d.differ > 0).map((d) =>
    `  ${d.name}: ${d.differ} of ${d.of} differ, largest ${d.max.toExponential(2)}`
  );
  console.log(
    `${what}: ${same.length} of ${diffs.length} outputs bit-identical on Dawn and lavapipe` +
      (lines.length ? `; the others:\n${lines.join("\n")}` : ""),
  );
}

Deno.test({
  name: "browser: the kernel checks match the float64 twins on Dawn/SwiftShader and Deno/lavapipe",
  ignore: skip !== null,
  ...options,
  fn: async () => {
    const { dawn, adapter } = await inPage(async (session, s) => {
      const adapter = await session.page.evaluate("globalThis.wgnnTest.adapter()");
      await session.page.evaluate("globalThis.wgnnTest.kernels()");
      return { dawn: received(s, "/out/kernels"), adapter };
    });
    console.log(`page adapter: ${JSON.stringify(adapter)}`);
    assert.match(JSON.stringify(adapter), /swiftshader/i, "the page runs on SwiftShader");
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    const lavapipe = await kernelChecks(nn, gpu);
    const want = expectations();
    judge(dawn, lavapipe, want);
    report("kernel checks", compare(dawn, lavapipe));
  },
});

Deno.test({
  name: "browser: every matmul kernel, forced, matches the float64 twin on Dawn and on lavapipe",
  ignore: skip !== null,
  ...options,
  fn: async () => {
    let started = performance.now();
    const dawn = await inPage(async (session, s) => {
      await session.page.evaluate("globalThis.wgnnTest.matmul()");
      return received(s, "/out/matmul");
    });
    const msDawn = performance.now() - started;
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    started = performance.now();
    const lavapipe = await matmulChecks(nn, gpu);
    console.log(
      `matmul checks: page ${(msDawn / 1000).toFixed(1)} s, Deno ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s`,
    );
    const want = matmulExpectations();
    judge(dawn, lavapipe, want);
    report("matmul kernels", compare(dawn, lavapipe));
  },
});

Deno.test({
  name:
    "browser: Conv2d (GEMM and direct), BatchNorm2d + ReLU, pools match the float64 twins on Dawn and on lavapipe",
  ignore: skip !== null,
  ...options,
  fn: async () => {
    const dawn = await inPage(async (session, s) => {
      await session.page.evaluate("globalThis.wgnnTest.cnn()");
      return received(s, "/out/cnn");
    });
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    const lavapipe = await cnnChecks(nn, gpu);
    const want = cnnExpectations();
    judge(dawn, lavapipe, want);
    // Each path ran as forced: the GEMM's sums differ from the direct loops' in some bits.
    for (const out of [dawn, lavapipe]) {
      assert.ok(
        compare(pick(out, "cnn/gemm/"), pick(out, "cnn/direct/")).some((d) => d.differ > 0),
        "the GEMM and direct paths gave different bits",
      );
    }
    report("cnn layers", compare(dawn, lavapipe));
  },
});

Deno.test({
  name:
    "browser: Tanh, Sigmoid, GELU, SiLU, Softmax, LogSoftmax, four losses, SGD, AdamW, RMSprop match the twins on Dawn and on lavapipe",
  ignore: skip !== null,
  ...options,
  fn: async () => {
    const dawn = await inPage(async (session, s) => {
      await session.page.evaluate("globalThis.wgnnTest.extra()");
      return received(s, "/out/extra");
    });
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    const lavapipe = await extraChecks(nn, gpu);
    const want = extraExpectations();
    judge(dawn, lavapipe, want);
    report("other layers, losses, optimizers", compare(dawn, lavapipe));
  },
});

Deno.test({
  name:
    "browser: the loader's augmented gather, evaluate's confusion and a Residual block match the twins on Dawn and on lavapipe",
  ignore: skip !== null,
  ...options,
  fn: async () => {
    const dawn = await inPage(async (session, s) => {
      await session.page.evaluate("globalThis.wgnnTest.data()");
      return received(s, "/out/data");
    });
    const gpu = await testGpu();
    if (typeof gpu === "string") throw new Error(gpu);
    const lavapipe = await dataChecks(nn, gpu);
    // The epochs' order and augmentation words are host-side draws: the same on both runtimes,
    // and the twins gather with them.
    const draws: Outputs = {};
    for (const epoch of [0, 1]) {
      for (const k of ["order", "aug"]) {
        const name = `data/e${epoch}/${k}`;
        assert.deepEqual(dawn[name], lavapipe[name], `${name}: the same draws`);
        draws[name] = lavapipe[name];
        delete dawn[name];
        delete lavapipe[name];
      }
      // The batch's rows were augmented: flips and shifts both drawn.
      const words = Array.from(draws[`data/e${epoch}/aug`].slice(0, DATA_CASE.batchSize));
      assert.ok(words.some((a) => (a & 1) === 1) && words.some((a) => (a & 1) === 0), "flips");
      assert.ok(words.some((a) => ((a >> 8) & 255) !== DATA_CASE.augment.crop), "shifts");
    }
    const want = dataExpectations(draws);
    judge(dawn, lavapipe, want);
    report("data, evaluate, residual", compare(dawn, lavapipe));
  },
});

/** The parity inputs, served to the page under /in/. */
async function parityFiles(site: Site, variant: Variant, golden: Golden): Promise<void> {
  const records = golden.steps * golden.batchSize;
  const train = (await Deno.readFile(join(DATA, "data_batch_1.bin"))).slice(0, records * 3073);
  const test = (await Deno.readFile(join(DATA, "test_batch.bin"))).slice(0, EVAL * 3073);
  const init = pack(await initialState(variant));
  const bin = "application/octet-stream";
  site.files.set("/in/train", { body: train, type: bin });
  site.files.set("/in/test", { body: test, type: bin });
  site.files.set(`/in/${variant}_init`, { body: init, type: bin });
}

/** The goldens' initial weights by name, counters as F64 (tests/browser/wire.ts's arrays). */
async function initialState(variant: Variant): Promise<Outputs> {
  const file = await readSafetensorsFile(join(GOLDENS, `${variant}_init.safetensors`));
  const out: Outputs = {};
  for (const [name, t] of file.tensors) {
    out[name] = t.data instanceof BigInt64Array
      ? Float64Array.from(t.data, Number)
      : t.data as Float32Array;
  }
  return out;
}

/** Eval logits over the first 256 test images, as parity_test.ts. */
const EVAL = 256;

for (const variant of ["plain", "bn", "dropout"] as Variant[]) {
  Deno.test({
    name: `browser: ${variant} model, 20 Adam steps in the page match PyTorch and Deno/lavapipe`,
    ignore: skip !== null || !hasData,
    ...options,
    fn: async () => {
      const golden: Golden = JSON.parse(await Deno.readTextFile(join(GOLDENS, `${variant}.json`)));
      const settings = {
        batchSize: golden.batchSize,
        steps: golden.steps,
        lr: golden.lr,
        evalCount: EVAL,
      };
      const { dawn, ms } = await inPage(async (session, s) => {
        await parityFiles(s, variant, golden);
        const ms = await session.page.evaluate(
          (v, o) => (globalThis as unknown as PageApi).wgnnTest.parity(v, o),
          variant,
          settings,
        );
        return { dawn: received(s, `/out/${variant}`), ms };
      });

      // The same run on Deno/lavapipe, from the same inputs.
      const gpu = await testGpu();
      if (typeof gpu === "string") throw new Error(gpu);
      const init = await readSafetensorsFile(join(GOLDENS, `${variant}_init.safetensors`));
      const state: nn.StateDict = {};
      for (const [name, t] of init.tensors) state[name] = t as nn.StateTensor;
      const started = performance.now();
      const lavapipe = await parityRun(nn, gpu, {
        variant,
        init: await initialState(variant),
        train: (await Deno.readFile(join(DATA, "data_batch_1.bin")))
          .slice(0, golden.steps * golden.batchSize * 3073),
        test: (await Deno.readFile(join(DATA, "test_batch.bin"))).slice(0, EVAL * 3073),
        ...settings,
      });
      const msDeno = performance.now() - started;

      // Both against PyTorch's float64 run, with parity_test.ts's bounds.
      const final64 = await readSafetensorsFile(join(GOLDENS, `${variant}_final64.safetensors`));
      const room: Record<string, Record<string, number>> = {};
      for (const [name, run] of [["Dawn", dawn], ["lavapipe", lavapipe]] as const) {
        const bounds = parityBounds(golden);
        const r = {
          losses: assertWithin(run.losses, golden.losses64, bounds.losses, `${name} losses`),
          logits: assertWithin(run.logits, golden.evalLogits64, bounds.logits, `${name} logits`),
          weights: 0,
        };
        for (const [tensor, t] of final64.tensors) {
          const got = run[`state/${tensor}`];
          assert.ok(got, `${name}: no ${tensor} in the final state`);
          const b = bounds.weight(tensor);
          r.weights = Math.max(
            r.weights,
            assertWithin(got, t.data as Float32Array, b, `${name} ${tensor} vs PyTorch f64`),
          );
        }
        const steps32 = WELL_CONDITIONED.includes(variant) ? golden.steps : 1;
        assertWithin(
          run.losses.slice(0, steps32),
          golden.losses.slice(0, steps32),
          lossBounds(golden.spread32.losses).slice(0, steps32),
          `${name} losses, steps 1-${steps32} vs PyTorch f32`,
        );
        room[name] = r;
      }
      // Dawn against lavapipe, where training is well conditioned: within the same bounds (on bn
      // each is within them of PyTorch, so within twice of each other, and that is all).
      if (WELL_CONDITIONED.includes(variant)) {
        const bounds = parityBounds(golden);
        assertWithin(dawn.losses, lavapipe.losses, bounds.losses, "Dawn vs lavapipe losses");
        assertWithin(dawn.logits, lavapipe.logits, bounds.logits, "Dawn vs lavapipe logits");
        for (const tensor of final64.tensors.keys()) {
          const [a, b] = [dawn[`state/${tensor}`], lavapipe[`state/${tensor}`]];
          assertWithin(a, b, bounds.weight(tensor), `Dawn vs lavapipe ${tensor}`);
        }
      }
      const final = await readSafetensorsFile(join(GOLDENS, `${variant}_final.safetensors`));
      for (const [tensor, t] of final.tensors) {
        if (t.dtype !== "I64") continue;
        const want = Number((t.data as BigInt64Array)[0]);
        assert.equal(dawn[`state/${tensor}`][0], want, `Dawn ${tensor}`);
        assert.equal(lavapipe[`state/${tensor}`][0], want, `lavapipe ${tensor}`);
      }
      const fmt = (r: Record<string, number>) =>
        Object.entries(r).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
      console.log(
        `${variant}: largest diff/bound vs PyTorch f64: Dawn ${fmt(room.Dawn)}; lavapipe ${
          fmt(room.lavapipe)
        } (page ${(ms / 1000).toFixed(1)} s, Deno ${(msDeno / 1000).toFixed(1)} s)`,
      );
      report(`${variant} parity`, compare(dawn, lavapipe));
    },
  });
}

/** The page's API as the test calls it (tests/browser/page.ts). */
interface PageApi {
  wgnnTest: {
    parity(
      variant: Variant,
      settings: { batchSize: number; steps: number; lr: number; evalCount: number },
    ): Promise<number>;
  };
}
