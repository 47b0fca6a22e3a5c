/**
 * The package's entry points: every top-level `.ts` file is an entry listed in deno.json's
 * `exports`, and each entry's module graph (as `deno info --json` resolves it) imports exactly the
 * npm packages its `@module` doc names. In particular the core (`mod.ts`) imports none, so a user
 * who wants one layer does not download Observable Plot, linkedom or tar-stream.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO } from "./fixtures/tiny_cifar.ts";

/** The entries, by their `exports` key: the file, and the npm packages its graph imports. */
const ENTRIES: Readonly<Record<string, { file: string; npm: readonly string[] }>> = {
  ".": { file: "./mod.ts", npm: [] },
  "./data": { file: "./data.ts", npm: ["tar-stream"] },
  "./plot": { file: "./plot.ts", npm: ["@observablehq/plot", "linkedom"] },
  "./experiment": { file: "./experiment.ts", npm: [] },
  "./advanced": { file: "./advanced.ts", npm: [] },
  "./browser": { file: "./browser.ts", npm: [] },
};

/** Packages the core must never pull in (the plotting and archive libraries). */
const NOT_IN_CORE = ["@observablehq/plot", "linkedom", "tar-stream"];

interface InfoModule {
  specifier: string;
  kind?: string;
  npmPackage?: string;
}

/** The modules of `file`'s graph, as `deno info --json` lists them (run in the repository). */
async function moduleGraph(file: string): Promise<InfoModule[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", file],
    cwd: REPO,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(code, 0, `deno info ${file}:\n${new TextDecoder().decode(stderr)}`);
  return JSON.parse(new TextDecoder().decode(stdout)).modules;
}

/** "@observablehq/plot@0.6.17" -> "@observablehq/plot". */
const packageName = (id: string) => id.slice(0, id.lastIndexOf("@"));

Deno.test("deno.json exports every top-level .ts file, and only those", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(REPO, "deno.json")));
  assert.deepEqual(
    config.exports,
    Object.fromEntries(Object.entries(ENTRIES).map(([key, { file }]) => [key, file])),
  );
  const topLevel: string[] = [];
  for await (const entry of Deno.readDir(REPO)) {
    if (entry.isFile && entry.name.endsWith(".ts")) topLevel.push(`./${entry.name}`);
  }
  assert.deepEqual(
    topLevel.sort(),
    Object.values(ENTRIES).map((e) => e.file).sort(),
    "each top-level .ts file is an entry: list it in deno.json exports and in ENTRIES here",
  );
});

for (const [key, { file, npm }] of Object.entries(ENTRIES)) {
  Deno.test(`entry "${key}" (${file}) imports exactly the npm packages ${JSON.stringify(npm)}`, async () => {
    const modules = await moduleGraph(file);
    const found = [
      ...new Set(
        modules.filter((m) => m.kind === "npm").map((m) => packageName(m.npmPackage ?? "")),
      ),
    ].sort();
    assert.deepEqual(found, [...npm].sort(), `npm packages in the graph of ${file}`);
    if (key === ".") {
      for (const name of NOT_IN_CORE) {
        assert.ok(
          !modules.some((m) => m.specifier.startsWith(`npm:/${name}@`)),
          `${name} in the core`,
        );
      }
    }
    // Everything else is the repository's own files or Node's built-ins: no jsr:, no https:.
    const other = modules.filter((m) =>
      m.kind !== "npm" && !m.specifier.startsWith("file://") && !m.specifier.startsWith("node:")
    );
    assert.deepEqual(other.map((m) => m.specifier), [], `non-local modules of ${file}`);
    // The entry's doc says what it pulls in.
    const text = await Deno.readTextFile(join(REPO, file));
    assert.match(text, /@module/, `${file} has a @module doc`);
    for (const name of npm) assert.ok(text.includes(name), `${file}'s doc names ${name}`);
  });
}

/** Plumbing for kernels and layers of one's own: in the advanced entry, not in the core. */
const PLUMBING = [
  "BufferPool",
  "PipelineCache",
  "Kernel",
  "Constants",
  "Matmul",
  "matmul",
  "MatmulOptions",
  "chooseMatmul",
  "MatmulChoice",
  "MatmulVariant",
  "matmulVariant",
  "slowAdapterHint",
  "useLavapipeVectorWidth",
  "adapterVectorWidth",
  "VectorWidth",
];

/** The names an entry file exports by name (`export { a, type B as C } from "…"`). */
async function namedExports(file: string): Promise<Set<string>> {
  const text = await Deno.readTextFile(join(REPO, file));
  const names = new Set<string>();
  for (const [, list] of text.matchAll(/^export\s+(?:type\s+)?\{([^}]*)\}/gm)) {
    for (const item of list.split(",")) {
      const name = item.trim().replace(/^type\s+/, "").split(/\s+as\s+/).pop();
      if (name) names.add(name);
    }
  }
  return names;
}

Deno.test("the core leaves the plumbing to the advanced entry, which re-exports the core", async () => {
  const core = await namedExports("mod.ts");
  const advanced = await namedExports("advanced.ts");
  assert.deepEqual(PLUMBING.filter((n) => core.has(n)), [], "plumbing exported by mod.ts");
  assert.deepEqual(PLUMBING.filter((n) => !advanced.has(n)), [], "missing from advanced.ts");
  for (const file of ["advanced.ts", "experiment.ts"]) {
    assert.match(await Deno.readTextFile(join(REPO, file)), /^export \* from "\.\/mod\.ts";$/m);
  }
});
