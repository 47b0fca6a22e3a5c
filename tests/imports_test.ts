/**
 * The shape of lib/'s import graph, read from the source: every `import … from "…"`,
 * `import "…"` and `export … from "…"` that starts a line of a `.ts` file under lib/ is an arrow
 * (type-only imports too: a type loop is still a loop for whoever reads the code). Lines inside
 * JSDoc start with ` * ` and are not read, so doc examples that import `@wgnn/wgnn` do not count.
 * Dynamic `import()` is not an arrow (lib/data/mirror_worker.ts loads the mirror's data files so).
 *
 * The rule, lowest layer first:
 *
 *   0 lib/gpu/          device, buffers, pipelines
 *   1 lib/tensor.ts
 *   2 lib/ops/
 *   3 lib/nn/, lib/data/  side by side: neither imports the other
 *   4 lib/optim/
 *   5 lib/train/
 *   6 lib/plot/
 *
 * - A file may import files of its own layer and of lower layers, never of a higher one.
 * - Utilities — lib/io/ (file formats, atomic writes, terminal output), lib/cli/ and
 *   lib/version.ts — may be imported from any layer; they import only other utilities and
 *   packages (`node:`, `npm:`, `jsr:`), nothing from layers 0–6.
 * - Inside lib/, only lib/ and `kernels/*.wgsl` (as text) are imported: never bench/, scripts/,
 *   tests/ or mod.ts.
 * - A file under lib/ that is in no layer fails the test: place it in LAYERS below.
 * - No cycle among lib/'s files, except those listed in ALLOWED_CYCLES.
 */

import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), ".."));

/** Layers by path prefix (relative to the repository root); "util" may be imported by anyone. */
const LAYERS: readonly [prefix: string, layer: number | "util"][] = [
  ["lib/gpu/", 0],
  ["lib/tensor.ts", 1],
  ["lib/ops/", 2],
  ["lib/nn/", 3],
  ["lib/data/", 3],
  ["lib/optim/", 4],
  ["lib/train/", 5],
  ["lib/plot/", 6],
  ["lib/io/", "util"],
  ["lib/cli/", "util"],
  ["lib/version.ts", "util"],
];

/** Folders of one layer that must not import each other. */
const SIBLINGS: readonly [string, string][] = [["lib/nn/", "lib/data/"]];

/**
 * Cycles that are known and tolerated, each as its files sorted. Any other cycle, or one of these
 * grown by a file, fails the test.
 */
const ALLOWED_CYCLES: readonly string[][] = [
  // None. A cycle may be listed here only with a TODO saying how it will be broken.
];

/** An import statement at the start of a line (the module text may span lines). */
const IMPORT =
  /^(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']|^import\s*["']([^"']+)["']/gm;

/** The static import specifiers of one module's text. */
export function specifiers(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2]);
}

function layerOf(path: string): number | "util" | undefined {
  return LAYERS.find(([prefix]) => path === prefix || path.startsWith(prefix))?.[1];
}

async function libFiles(dir = "lib"): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, dir))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await libFiles(path));
    else if (entry.isFile && path.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** lib/'s files and, for each, the repository paths of what it imports (packages as written). */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await libFiles()) {
    const text = await Deno.readTextFile(join(ROOT, file));
    graph.set(
      file,
      specifiers(text).map((s) =>
        s.startsWith(".") ? relative(ROOT, join(ROOT, dirname(file), s)) : s
      ),
    );
  }
  return graph;
}

/** Arrows that break the layer rule, as "from -> to (why)". */
export function layerViolations(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    const fromLayer = layerOf(from);
    if (fromLayer === undefined) {
      bad.push(`${from} is in no layer (add it to LAYERS in tests/imports_test.ts)`);
      continue;
    }
    for (const to of targets) {
      if (/^(node|npm|jsr):/.test(to)) continue;
      if (to.startsWith("kernels/") && to.endsWith(".wgsl")) {
        if (fromLayer === "util") bad.push(`${from} -> ${to} (a utility imports a kernel)`);
        continue;
      }
      const toLayer = to.startsWith("lib/") ? layerOf(to) : undefined;
      if (toLayer === undefined) {
        bad.push(`${from} -> ${to} (lib/ imports only lib/ and kernels/*.wgsl)`);
      } else if (fromLayer === "util" && toLayer !== "util") {
        bad.push(`${from} -> ${to} (a utility imports layer ${toLayer})`);
      } else if (toLayer !== "util" && fromLayer !== "util" && toLayer > fromLayer) {
        bad.push(`${from} -> ${to} (layer ${fromLayer} imports layer ${toLayer})`);
      } else if (
        SIBLINGS.some(([a, b]) =>
          (from.startsWith(a) && to.startsWith(b)) || (from.startsWith(b) && to.startsWith(a))
        )
      ) {
        bad.push(`${from} -> ${to} (lib/nn and lib/data are side by side)`);
      }
    }
  }
  return bad;
}

/** The cycles of `graph`: its strongly connected components of more than one file (or a file
 * importing itself), each sorted (Tarjan's algorithm). */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)!.includes(v)) out.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

Deno.test("the import reader sees statements, not doc examples or strings", () => {
  const text = [
    `import { a } from "./a.ts";`,
    `import type {`,
    `  B,`,
    `} from "../b.ts";`,
    `export { c } from "./c.ts";`,
    `export type { D } from "./d.ts";`,
    `import "./side_effect.ts";`,
    `import e from "../../kernels/e.wgsl" with { type: "text" };`,
    ` * import { f } from "@wgnn/wgnn";`,
    `const g = "import x from './g.ts'";`,
    `const h = await import("./h.ts");`,
  ].join("\n");
  assert.deepEqual(specifiers(text), [
    "./a.ts",
    "../b.ts",
    "./c.ts",
    "./d.ts",
    "./side_effect.ts",
    "../../kernels/e.wgsl",
  ]);
});

Deno.test("the checks catch an upward arrow, a utility importing a layer, and a cycle", () => {
  const graph = new Map([
    ["lib/gpu/x.ts", ["lib/train/y.ts"]],
    ["lib/train/y.ts", ["lib/gpu/x.ts", "lib/io/z.ts"]],
    ["lib/io/z.ts", ["lib/tensor.ts", "node:path"]],
    ["lib/nn/w.ts", ["lib/data/v.ts", "bench/u.ts"]],
    ["lib/misc.ts", []],
  ]);
  assert.deepEqual(layerViolations(graph), [
    "lib/gpu/x.ts -> lib/train/y.ts (layer 0 imports layer 5)",
    "lib/io/z.ts -> lib/tensor.ts (a utility imports layer 1)",
    "lib/nn/w.ts -> lib/data/v.ts (lib/nn and lib/data are side by side)",
    "lib/nn/w.ts -> bench/u.ts (lib/ imports only lib/ and kernels/*.wgsl)",
    "lib/misc.ts is in no layer (add it to LAYERS in tests/imports_test.ts)",
  ]);
  assert.deepEqual(cycles(graph), [["lib/gpu/x.ts", "lib/train/y.ts"]]);
});

Deno.test("lib/ imports only downward, utilities import no layer", async () => {
  const bad = layerViolations(await importGraph());
  assert.deepEqual(bad, [], `arrows against the layer rule:\n  ${bad.join("\n  ")}`);
});

Deno.test("lib/ has no import cycle besides the allowed ones", async () => {
  const allowed = new Set(ALLOWED_CYCLES.map((c) => c.join(" ")));
  const found = cycles(await importGraph());
  const bad = found.filter((c) => !allowed.has(c.join(" ")));
  assert.deepEqual(bad.map((c) => c.join(" <-> ")), [], "import cycles");
  const present = new Set(found.map((c) => c.join(" ")));
  for (const cycle of ALLOWED_CYCLES) {
    if (!present.has(cycle.join(" "))) {
      console.log(
        `note: the allowed cycle ${cycle.join(" <-> ")} is gone; remove it from ALLOWED_CYCLES`,
      );
    }
  }
});
