/**
 * The training page (web/) end to end: `scripts/serve.ts` under the `serve` task's permissions
 * serves the page, its bundles (built here into a temporary dist/) and CIFAR-10; headless
 * Chromium (Dawn on SwiftShader) opens a short run of the three variants, and the test checks
 * the live loss plot, the numbers, the report and the downloaded checkpoints, and saves a
 * screenshot. The server's refusals (path traversal, other files, other methods) are checked over
 * raw HTTP, as a browser would not send such paths.
 *
 * The run uses the real CIFAR-10 when the server finds it (data/ or ../shared/data), else a tiny
 * generated one. The page's test is skipped, saying why, when Debian's `chromium` is not
 * installed; the server's test needs no browser.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeSafetensors } from "../browser.ts";
import { bundle, chromiumMissing, Session } from "./browser/chromium.ts";
import { writeFixture } from "./fixtures/cifar_fixture.ts";
import { REPO } from "./fixtures/tiny_cifar.ts";
import { variantColor } from "../lib/plot/colors.ts";

const chromium = await chromiumMissing();
if (chromium) console.log(`web page test skipped: ${chromium}`);
const options = { sanitizeResources: false, sanitizeOps: false, ignore: chromium !== null };

/** The real dataset where the server's default finds it, else null. */
async function realData(): Promise<string | null> {
  for (const dir of ["data/cifar-10-batches-bin", "../shared/data/cifar-10-batches-bin"]) {
    const found = await Deno.stat(join(REPO, dir, "data_batch_1.bin")).then(
      () => true,
      () => false,
    );
    if (found) return dir;
  }
  return null;
}

/** A running `scripts/serve.ts` and where it listens. */
interface Server {
  child: Deno.ChildProcess;
  base: string;
  log: string[];
}

/**
 * Starts scripts/serve.ts as the `serve` task runs it, with `extraRead` added to its read
 * permission and `args` after the script; resolves once it prints its URL.
 */
async function startServer(extraRead: string[], args: string[]): Promise<Server> {
  const tasks = JSON.parse(await Deno.readTextFile(join(REPO, "deno.json"))).tasks;
  const run = /deno run (.*) scripts\/serve\.ts$/.exec(tasks.serve)?.[1];
  assert.ok(run, `the serve task runs scripts/serve.ts: ${tasks.serve}`);
  const flags = run.split(" ").map((f) =>
    f.startsWith("--allow-read=") ? [f, ...extraRead].join(",") : f
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, "scripts/serve.ts", "--port", "0", ...args],
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const log: string[] = [];
  child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (t) => void log.push(t) }),
  );
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve exited before listening:\n${text}\n${log.join("")}`);
    text += value;
    const m = /(http:\/\/127\.0\.0\.1:\d+)\//.exec(text);
    if (m) {
      log.push(text);
      (async () => {
        for (;;) {
          const r = await reader.read();
          if (r.done) break;
          log.push(r.value);
        }
      })();
      return { child, base: m[1], log };
    }
  }
}

/** Sends `request` over a raw socket (no URL normalisation) and returns the status and body. */
async function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const port = Number(new URL(base).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    ),
  );
  const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
  const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

/** PyTorch's state-dict names and shapes of each lecture variant. */
const NAMES: Record<string, Record<string, number[]>> = {
  plain: {
    "1.weight": [128, 3072],
    "1.bias": [128],
    "3.weight": [128, 128],
    "3.bias": [128],
    "5.weight": [10, 128],
    "5.bias": [10],
  },
  bn: {
    "1.weight": [128, 3072],
    "1.bias": [128],
    "3.weight": [128],
    "3.bias": [128],
    "3.running_mean": [128],
    "3.running_var": [128],
    "3.num_batches_tracked": [],
    "4.weight": [128, 128],
    "4.bias": [128],
    "6.weight": [128],
    "6.bias": [128],
    "6.running_mean": [128],
    "6.running_var": [128],
    "6.num_batches_tracked": [],
    "7.weight": [10, 128],
    "7.bias": [10],
  },
};

/** A served site: the bundles built into a temporary dist/, the data, the running server. */
interface Served {
  server: Server;
  /** Where the test leaves its screenshot and downloads (kept). */
  artefacts: string;
  /** Stops the server and removes what is not an artefact. */
  close(): Promise<void>;
}

/** Builds the bundles into a temporary folder and starts the server over them. */
async function serveSite(): Promise<Served> {
  const tmp = await Deno.makeTempDir({ dir: "/tmp", prefix: "wgnn-web-page-" });
  const dist = join(tmp, "dist");
  const artefacts = join(tmp, "artefacts");
  await Deno.mkdir(dist);
  await Deno.mkdir(artefacts);
  const real = await realData();
  const fixture = real === null ? await writeFixture(600, 300) : null;
  console.log(`data: ${real ?? "a generated CIFAR-10 of 3,000 + 300 images (no real one found)"}`);
  const [wgnn, web] = await Promise.all([bundle("browser.ts"), bundle("web/app.ts")]);
  await Deno.writeTextFile(join(dist, "wgnn.js"), wgnn);
  await Deno.writeTextFile(join(dist, "web.js"), web);
  const server = await startServer(
    [dist, ...(fixture ? [fixture.root] : [])],
    ["--dist", dist, ...(fixture ? ["--data", fixture.dataDir] : [])],
  );
  return {
    server,
    artefacts,
    async close() {
      server.child.kill("SIGINT");
      await server.child.status;
      await Deno.remove(dist, { recursive: true });
      if (fixture) await Deno.remove(fixture.root, { recursive: true });
      // Nothing kept (the server's test): no empty folder left behind.
      if ((await Array.fromAsync(Deno.readDir(artefacts))).length === 0) {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  };
}

Deno.test({
  name: "serve answers the page, its bundles and the data, and refuses paths that leave them",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const { server, close } = await serveSite();
    try {
      await t.step(
        "the server answers the page, its bundles and the data, with their types",
        async () => {
          const expect = async (path: string, status: number, type: string | null) => {
            const r = await fetch(`${server.base}${path}`, { method: "HEAD" });
            assert.equal(r.status, status, path);
            if (type) assert.equal(r.headers.get("content-type"), type, path);
          };
          await expect("/", 200, "text/html; charset=utf-8");
          await expect("/dist/web.js", 200, "text/javascript; charset=utf-8");
          await expect("/dist/wgnn.js", 200, "text/javascript; charset=utf-8");
          await expect("/data/data_batch_1.bin", 200, "application/octet-stream");
          await expect("/data/batches.meta.txt", 200, "text/plain; charset=utf-8");
          await expect("/data/README.md", 404, null);
          await expect("/nothing.js", 404, null);
          const post = await fetch(`${server.base}/`, { method: "POST", body: "x" });
          assert.equal(post.status, 405);
          await post.body?.cancel();
        },
      );

      await t.step("the server refuses paths that leave their folder", async () => {
        const config = await Deno.readTextFile(join(REPO, "deno.json"));
        for (
          const path of [
            "/../deno.json",
            "/dist/../deno.json",
            "/dist/..%2fdeno.json",
            "/%2e%2e/deno.json",
            "/dist/%2E%2E%2F%2E%2E%2Fdeno.json",
            "/data/..%2f..%2fREADME.md",
            "/web/..%5cdeno.json",
            "/.%2e/deno.json",
            "/dist/%00wgnn.js",
          ]
        ) {
          const r = await rawGet(server.base, path);
          assert.ok(r.status === 400 || r.status === 404, `${path}: status ${r.status}`);
          assert.ok(!r.body.includes('"tasks"') && !r.body.includes(config.slice(0, 40)), path);
        }
      });
    } catch (error) {
      console.log(`server log:\n${server.log.join("")}`);
      throw error;
    } finally {
      await close();
    }
  },
});

Deno.test({
  name: "the training page trains the three variants in Chromium, plots, reports and downloads",
  ...options,
  fn: async (t) => {
    const { server, artefacts, close } = await serveSite();
    let session: Session | null = null;
    try {
      await t.step("a short run trains plain, bn and dropout with live curves", async () => {
        const query = "?epochs=3&batch=64&train=1024&test=256&chunk=2&autostart=1";
        session = await Session.openUrl(`${server.base}/${query}`);
        const page = session.page;
        const started = performance.now();
        await page.waitForFunction(
          "['done', 'error'].includes(document.body.dataset.state)",
          { timeout: 110_000, polling: 500 },
        ).catch((e) => {
          throw new Error(`the run did not end: ${e}\n${session!.console.join("\n")}`);
        });
        const shot = join(artefacts, "web_page.png");
        await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
        console.log(`screenshot: ${shot}`);
        const status = await page.$eval("#status", (e) => e.textContent);
        const state = await page.evaluate("document.body.dataset.state");
        assert.equal(state, "done", `${status}\n${session.console.join("\n")}`);
        console.log(`run: ${((performance.now() - started) / 1000).toFixed(1)} s; ${status}`);
        const trouble = session.console.filter((l) => /^(error|pageerror)|Warning/.test(l));
        assert.deepEqual(trouble, [], "the page logged no error and Plot no warning");
        const adapter = await page.$eval("#adapter", (e) => e.textContent ?? "");
        console.log(`adapter: ${adapter}`);
        assert.match(adapter, /swiftshader/i);

        // The plot: one training line per variant, in its colour, through every readback.
        const lines = await page.$$eval(
          "#loss-plot svg path",
          (paths) =>
            paths.map((p) => ({
              stroke: p.closest("[stroke]")?.getAttribute("stroke") ?? p.getAttribute("stroke"),
              d: p.getAttribute("d") ?? "",
            })),
        );
        for (const variant of ["plain", "bn", "dropout"]) {
          const color = variantColor(variant, []);
          const drawn = lines.filter((l) => l.stroke === color);
          const points = Math.max(0, ...drawn.map((l) => (l.d.match(/[ML]/g) ?? []).length));
          assert.ok(
            points >= 6,
            `${variant}'s curve has ${points} points: ${JSON.stringify(lines)}`,
          );
        }

        // The numbers: every epoch finite, the training loss falling.
        const rows = await page.$$eval(
          "#epochs-table tbody tr",
          (trs) =>
            trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")),
        );
        for (const variant of ["plain", "bn", "dropout"]) {
          const mine = rows.filter((r) => r[0] === variant);
          assert.equal(mine.length, 3, `${variant}: ${JSON.stringify(rows)}`);
          const train = mine.map((r) => Number(r[2]));
          const val = mine.map((r) => Number(r[4]));
          assert.ok([...train, ...val].every(Number.isFinite), JSON.stringify(mine));
          assert.ok(train[0] < 2.6 && train[2] < train[0], `${variant}'s loss: ${train}`);
          assert.ok(
            mine.every((r) => Number(r[6]) > 0),
            `${variant}'s speed: ${JSON.stringify(mine)}`,
          );
        }
        const results = await page.$$eval(
          "#results tbody tr",
          (trs) =>
            trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")),
        );
        assert.deepEqual(results.map((r) => r[0]), ["plain", "bn", "dropout"]);
        for (const r of results) {
          const accuracy = Number(r[5].replace("%", ""));
          assert.ok(accuracy >= 0 && accuracy <= 100, JSON.stringify(r));
          assert.equal(r[2], "48", `16 steps per epoch for 3 epochs: ${JSON.stringify(r)}`);
        }
        const bars = await page.$$eval("#accuracy-plot svg rect", (rects) => rects.length);
        assert.ok(bars >= 3, `accuracy bars: ${bars}`);
      });

      await t.step("the checkpoints download as safetensors with PyTorch's names", async () => {
        assert.ok(session, "the page is open");
        const page = session.page;
        const cdp = await page.createCDPSession();
        await cdp.send("Browser.setDownloadBehavior", {
          behavior: "allow",
          downloadPath: artefacts,
        });
        for (const variant of ["plain", "bn"]) {
          await page.click(`#results tr[data-variant=${variant}] a.checkpoint`);
          const path = join(artefacts, `${variant}.safetensors`);
          const deadline = performance.now() + 20_000;
          while (!(await Deno.stat(path).then(() => true, () => false))) {
            assert.ok(performance.now() < deadline, `no ${path} after 20 s`);
            await new Promise((r) => setTimeout(r, 100));
          }
          const file = decodeSafetensors(await Deno.readFile(path));
          const shapes = Object.fromEntries([...file.tensors].map(([k, v]) => [k, v.shape]));
          assert.deepEqual(shapes, NAMES[variant], `${variant}'s tensors`);
          assert.equal(file.metadata.variant, variant);
          assert.equal(file.metadata.epochs, "3");
          for (const [name, tensor] of file.tensors) {
            if (tensor.dtype === "I64") {
              assert.equal((tensor.data as BigInt64Array)[0], 48n, `${name}: one per step`);
              continue;
            }
            assert.equal(tensor.dtype, "F32", name);
            assert.ok((tensor.data as Float32Array).every(Number.isFinite), `${name} is finite`);
          }
          if (variant === "bn") {
            const mean = file.tensors.get("3.running_mean")!.data as Float32Array;
            assert.ok(mean.some((v) => v !== 0), "BatchNorm's running mean has moved");
          }
        }
        console.log(`checkpoints: ${join(artefacts, "plain.safetensors")}, bn.safetensors`);
      });
      await t.step(
        "files picked from disk train too, and Stop ends the run with its report",
        async () => {
          assert.ok(session, "the page is open");
          const page = session.page;
          const picked = await writeFixture(100, 50);
          try {
            await page.goto(`${server.base}/?epochs=500&batch=32&variants=plain&train=400&test=50`);
            await page.waitForFunction("document.body.dataset.state === 'ready'", {
              timeout: 30_000,
            });
            const input = await page.$("#files");
            const names = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin"];
            await input!.uploadFile(
              ...[...names, "test_batch.bin"].map((n) => join(picked.batchesDir, n)),
            );
            await page.click("#start");
            await page.waitForFunction(
              "/epoch 2\\/500/.test(document.getElementById('status').textContent)",
              { timeout: 60_000, polling: 100 },
            );
            await page.click("#stop");
            await page.waitForFunction("document.body.dataset.state === 'done'", {
              timeout: 30_000,
            });
            const data = await page.$eval("#data", (e) => e.textContent ?? "");
            assert.equal(data, "300 training and 50 test images from 4 picked files");
            const row = await page.$$eval(
              "#results tbody tr",
              (trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)),
            );
            assert.equal(row.length, 1, JSON.stringify(row));
            assert.match(row[0][1] ?? "", /^\d+ \(stopped\)$/, JSON.stringify(row));
            const epochs = Number(row[0][1]!.split(" ")[0]);
            assert.ok(epochs >= 2 && epochs < 500, JSON.stringify(row));
            assert.ok(Number(row[0][2]) < 500 * 10, `steps: ${JSON.stringify(row)}`);
            console.log(`stopped: ${JSON.stringify(row[0])}`);
          } finally {
            await Deno.remove(picked.root, { recursive: true });
          }
        },
      );
    } catch (error) {
      const s = session as Session | null;
      if (s?.console.length) console.log(`browser console:\n${s.console.join("\n")}`);
      console.log(`server log:\n${server.log.join("")}`);
      throw error;
    } finally {
      await (session as Session | null)?.close();
      await close();
      console.log(`artefacts: ${artefacts}`);
    }
  },
});
