/**
 * The test page's script: it imports the browser build (`/wgnn.js`, the bundle of browser.ts)
 * and exposes `globalThis.wgnnTest` for tests/browser_test.ts to call through puppeteer-core.
 * Large inputs are fetched from the test's server and outputs POSTed back to it,  * in tests/browser/wire.ts's format (the library under test comes only from `/wgnn.js`).
 *
 * @module
 */

import { pack, unpack } from "./wire.ts";
import {
  cnnChecks,
  dataChecks,
  extraChecks,
  kernelChecks,
  matmulChecks,
  type Nn,
  type Outputs,
  parityRun,
  type Variant,
} from "./checks.ts";

// A computed URL keeps the bundler from resolving the library into this script.
const nn: Nn = await import(new URL("/wgnn.js", location.href).href);
const gpu = await nn.requestGpu();

async function fetchBytes(path: string): Promise<Uint8Array> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`Cannot fetch ${path}: status ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** POSTs `outputs` to `path`; returns their names. */
async function send(path: string, outputs: Outputs): Promise<string[]> {
  const response = await fetch(path, { method: "POST", body: pack(outputs) });
  if (!response.ok) throw new Error(`Cannot POST ${path}: status ${response.status}`);
  return Object.keys(outputs);
}

/** What the test calls in the page. */
const api = {
  /** The adapter, as the library describes it. */
  adapter: () => ({ ...gpu.adapter, features: [...gpu.adapter.features] }),
  /** Runs the kernel checks and POSTs their outputs to /out/kernels. */
  kernels: async () => send("/out/kernels", await kernelChecks(nn, gpu)),
  /** Runs the loader's augmented gather, evaluate and a Residual; POSTs them to /out/data. */
  data: async () => send("/out/data", await dataChecks(nn, gpu)),
  /** Runs the other layers', losses' and optimizers' checks and POSTs them to /out/extra. */
  extra: async () => send("/out/extra", await extraChecks(nn, gpu)),
  /** Runs the CNN layers' checks on each convolution path and POSTs them to /out/cnn. */
  cnn: async () => send("/out/cnn", await cnnChecks(nn, gpu)),
  /** Runs every matmul kernel, forced, and POSTs the products to /out/matmul. */
  matmul: async () => send("/out/matmul", await matmulChecks(nn, gpu)),
  /** Runs the PyTorch parity of `variant` on the inputs under /in/ and POSTs to /out/<variant>. */
  parity: async (
    variant: Variant,
    settings: { batchSize: number; steps: number; lr: number; evalCount: number },
  ) => {
    const init = unpack(await fetchBytes(`/in/${variant}_init`));
    const train = await fetchBytes("/in/train");
    const test = await fetchBytes("/in/test");
    const started = performance.now();
    const out = await parityRun(nn, gpu, { variant, init, train, test, ...settings });
    const ms = performance.now() - started;
    await send(`/out/${variant}`, out);
    return ms;
  },
};

(globalThis as unknown as { wgnnTest: typeof api }).wgnnTest = api;
