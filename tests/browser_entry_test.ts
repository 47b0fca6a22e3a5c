/**
 * The browser entry stays browser-safe: no module in browser.ts's runtime graph (as
 * `deno info --json` resolves it; type-only imports ship nothing and are not followed) calls a
 * `Deno.` API or imports a `node:` built-in or an npm package, and its bundle has no `Deno.`,
 * no `node:` import and no kernel left as a `.wgsl` import. The checker is also run on mod.ts,
 * which reads files, to show it finds what it looks for.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { REPO } from "./fixtures/tiny_cifar.ts";
import { bundle } from "./browser/chromium.ts";

/**
 * `node:` built-ins a browser can load. None: a browser has no `node:` scheme (the bundler
 * leaves such imports as they are, and the page fails to load them).
 */
const BROWSER_SAFE_NODE: readonly string[] = [];

interface InfoDependency {
  code?: { specifier: string };
}
interface InfoModule {
  specifier: string;
  dependencies?: InfoDependency[];
}

/** The modules `entry` loads at run time: its graph along value imports only. */
async function runtimeGraph(entry: string): Promise<string[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: REPO,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(code, 0, `deno info ${entry}:\n${new TextDecoder().decode(stderr)}`);
  const info: { roots: string[]; modules: InfoModule[] } = JSON.parse(
    new TextDecoder().decode(stdout),
  );
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    for (const dep of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dep.code) stack.push(dep.code.specifier);
    }
  }
  return [...seen].sort();
}

/** Source lines outside comments: JSDoc and `//` lines (doc examples may name Deno). */
function codeLines(text: string): string[] {
  return text.split("\n").filter((line) => !/^\s*(\*|\/\/|\/\*)/.test(line));
}

/** What in `entry`'s runtime graph a browser cannot run, one line per finding. */
export async function browserUnsafe(entry: string): Promise<string[]> {
  const found: string[] = [];
  for (const specifier of await runtimeGraph(entry)) {
    if (specifier.startsWith("node:")) {
      if (!BROWSER_SAFE_NODE.includes(specifier)) found.push(`imports ${specifier}`);
    } else if (specifier.startsWith("npm:")) {
      found.push(`imports ${specifier}`);
    } else if (specifier.startsWith("file:") && /\.(ts|js)$/.test(specifier)) {
      const path = fileURLToPath(specifier);
      const lines = codeLines(await Deno.readTextFile(path));
      const uses = lines.filter((line) => /\bDeno\./.test(line));
      if (uses.length > 0) {
        found.push(`${path.slice(REPO.length + 1)} uses Deno: ${uses[0].trim()}`);
      }
    }
  }
  return found;
}

Deno.test("browser.ts's runtime graph uses no Deno API, node: built-in or npm package", async () => {
  const found = await browserUnsafe("browser.ts");
  assert.deepEqual(
    found,
    [],
    `browser.ts pulls in what a browser cannot run:\n${found.join("\n")}`,
  );
});

Deno.test("the checker finds Deno APIs and node: imports where they are (mod.ts)", async () => {
  const found = await browserUnsafe("mod.ts");
  assert.ok(found.includes("imports node:path"), found.join("\n"));
  assert.ok(found.some((f) => f.startsWith("lib/io/atomic.ts uses Deno")), found.join("\n"));
});

Deno.test("the browser bundle inlines every kernel and has no Deno or node: reference", async () => {
  const js = await bundle("browser.ts");
  // esbuild keeps some JSDoc, whose examples import node:assert; code lines are what runs.
  const code = codeLines(js).join("\n");
  assert.doesNotMatch(code, /\bDeno\./, "the bundle calls a Deno API");
  assert.doesNotMatch(code, /(from|import)\s*\(?\s*["']node:/, "the bundle imports a node: module");
  assert.doesNotMatch(
    code,
    /(from|import)\s*\(?\s*["'][^"']*\.wgsl["']/,
    "a kernel is imported as a file",
  );
  // Each kernel file holds at least one entry point; the matmul's three families among them.
  assert.ok((js.match(/@compute/g) ?? []).length >= 20, "the kernels are inlined as text");
  for (const kernel of ["matmul_texture", "matmul_tiled", "matmul_blocked"]) {
    const text = await Deno.readTextFile(`${REPO}/kernels/${kernel}.wgsl`);
    const line = text.split("\n").find((l) => l.includes("@compute"))!.trim();
    assert.ok(js.includes(line), `${kernel}.wgsl is not in the bundle`);
  }
});

Deno.test("the browser entry holds the GPU dataset and loader, without the CIFAR-10 file reader", async () => {
  const nn = await import("../browser.ts");
  for (const name of ["GpuDataset", "Loader", "parseBatches", "encodeTrainingStep"] as const) {
    assert.equal(typeof nn[name], "function", `browser.ts exports ${name}`);
  }
  const graph = (await runtimeGraph("browser.ts")).map((s) => s.slice(s.lastIndexOf("/lib/") + 1));
  assert.ok(graph.includes("lib/data/loader.ts"), graph.join("\n"));
  assert.ok(graph.includes("lib/data/cifar10_format.ts"), graph.join("\n"));
  assert.ok(!graph.includes("lib/data/cifar10.ts"), "the file reader is in browser.ts's graph");
});
