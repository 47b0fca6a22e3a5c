/**
 * Import by URL, for real: the repository is served over HTTP on 127.0.0.1 (as a static host
 * such as raw.githubusercontent.com serves it: every file as text/plain), and a fresh `deno`
 * process — empty DENO_DIR, no deno.json, a working directory outside the repository — runs a
 * ten-line program that imports `mod.ts` (the core) and `experiment.ts` (for `lectureModel`) by
 * URL, builds the lecture's BatchNorm model and trains it for three Adam steps on synthetic data.
 *
 * The program gets only the flag the README documents, `--allow-import=<host>` (Deno 2 allows
 * imports from a few well-known hosts without it; 127.0.0.1 is not one). In particular no
 * `--allow-read`: the WGSL kernels are text imports, fetched over HTTP with the modules. Neither
 * entry imports an npm package, so the program leaves no npm cache in the empty DENO_DIR: a user
 * who trains a model downloads no plotting or archive library.
 *
 * Then the train script itself runs by URL on a tiny dataset, with the `train` task's permission
 * flags plus `--allow-import`, as the README's "train a variant" one-liner does.
 *
 * @module
 */

import * as assert from "node:assert/strict";
import { join, normalize } from "node:path";
import { writeFixture } from "./fixtures/cifar_fixture.ts";
import { readTasks, REPO } from "./fixtures/tiny_cifar.ts";
import { hasGpu } from "./helpers.ts";

/** The program a user would write; `ROOT` is replaced by the URL of the repository. */
const PROGRAM = `import * as nn from "ROOT/mod.ts";
import { lectureModel } from "ROOT/experiment.ts";

const gpu = await nn.requestGpu();
nn.manualSeed(0);
const model = lectureModel("bn").to(gpu);
const optimizer = new nn.Adam(model.parameters(), { lr: 1e-3 });
const loss = new nn.CrossEntropyLoss();
const pixels = Float32Array.from({ length: 64 * 3072 }, (_, i) => ((i * 7919) % 256) / 255);
const x = nn.Tensor.from(gpu, pixels, [64, 3072]);
const y = nn.Tensor.from(gpu, Uint32Array.from({ length: 64 }, (_, i) => i % 10), [64]);
for (let step = 1; step <= 3; step++) {
  const enc = new nn.StepEncoder(gpu);
  optimizer.zeroGrad(enc);
  loss.forward(enc, model.forward(enc, x), y);
  model.backward(enc, loss.backward());
  optimizer.step(enc);
  enc.submit();
  console.log(\`step \${step} loss \${(await loss.stats.read()).lastLoss}\`);
}
`;

/** Runs `deno <args>` in `cwd` with `DENO_DIR` and no terminal; returns its exit code and output. */
async function denoRun(args: string[], cwd: string, denoDir: string) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    env: { DENO_DIR: denoDir, NO_COLOR: "1" },
    // npm packages come from the registry into the empty DENO_DIR: allow for a slow network.
    signal: AbortSignal.timeout(120_000),
  }).output();
  const out = new TextDecoder().decode(stdout);
  const err = new TextDecoder().decode(stderr);
  return { code, out, err, output: `--- stdout\n${out}\n--- stderr\n${err}` };
}

/** Serves the repository's files read-only, as text/plain; records the paths asked for. */
function serveRepository(requested: string[]): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    requested.push(path);
    const file = normalize(join(REPO, path));
    if (!file.startsWith(REPO + "/") || path.split("/").includes("..")) {
      return new Response("forbidden", { status: 403 });
    }
    try {
      const body = await Deno.readFile(file);
      return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

Deno.test({
  name: "by URL in a fresh deno: mod.ts trains the BatchNorm model, scripts/train.ts runs",
  ignore: !hasGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const requested: string[] = [];
    const server = serveRepository(requested);
    const host = `127.0.0.1:${server.addr.port}`;
    const work = await Deno.makeTempDir({ prefix: "wgnn-url-" });
    try {
      const cwd = join(work, "cwd");
      const denoDir = join(work, "deno_dir");
      await Deno.mkdir(cwd);
      await Deno.mkdir(denoDir);
      await Deno.writeTextFile(
        join(cwd, "train_bn.ts"),
        PROGRAM.replaceAll("ROOT", `http://${host}`),
      );
      // The README's one-liner: deno run --allow-import=<host> train_bn.ts
      const flags = [`--allow-import=${host}`];
      const { code, out, err, output } = await denoRun(
        ["run", "--no-config", ...flags, "train_bn.ts"],
        cwd,
        denoDir,
      );
      assert.doesNotMatch(err, /Requires \S+ access|NotCapable|run again with/, output);
      assert.equal(code, 0, output);

      const losses = [...out.matchAll(/^step (\d) loss (\S+)$/gm)].map((m) => Number(m[2]));
      assert.equal(losses.length, 3, output);
      assert.ok(losses.every(Number.isFinite), `finite losses: ${losses}`);
      // Ten balanced classes: the untrained model's loss is near ln 10 = 2.30.
      assert.ok(losses[0] > 1.5 && losses[0] < 4, `first loss ${losses[0]} is near ln 10`);
      assert.ok(losses[2] < losses[0], `three Adam steps on one batch lower the loss: ${losses}`);

      // The kernels came over HTTP as text imports, and the modules from this server only.
      assert.ok(requested.includes("/mod.ts"));
      assert.ok(requested.some((p) => /^\/kernels\/\w+\.wgsl$/.test(p)), requested.join(" "));
      assert.ok(!requested.some((p) => p.includes("deno.json")), "no config was fetched");
      // No npm package came with the core and the experiment (no plot, DOM or tar library):
      // Deno makes DENO_DIR/npm, but nothing is fetched into it.
      const npmFiles = await Array.fromAsync(Deno.readDir(join(denoDir, "npm"))).catch(() => []);
      assert.deepEqual(npmFiles.map((e) => e.name), [], "npm packages fetched into DENO_DIR");

      // The train script by URL, with the train task's permissions, on a tiny dataset in data/.
      const fixture = await writeFixture(16, 16);
      await Deno.rename(fixture.dataDir, join(cwd, "data"));
      await Deno.remove(fixture.root, { recursive: true });
      const task = (await readTasks()).train.split(/\s+/);
      const taskFlags = task.filter((a) => a.startsWith("--allow-"));
      const script = await denoRun(
        [
          "run",
          "--no-config",
          ...flags,
          ...taskFlags,
          `http://${host}/scripts/train.ts`,
          ...["--model", "bn", "--epochs", "1", "--batch-size", "32"],
        ],
        cwd,
        denoDir,
      );
      assert.doesNotMatch(
        script.err,
        /Requires \S+ access|NotCapable|run again with/,
        script.output,
      );
      assert.equal(script.code, 0, script.output);
      assert.ok((await Deno.stat(join(cwd, "out", "bn", "last.safetensors"))).isFile);
    } finally {
      await server.shutdown();
      await Deno.remove(work, { recursive: true });
    }
  },
});
