/**
 * lib/io/atomic.ts: the temporary files a killed writer leaves behind, and removeStaleTemps,
 * which removes those and nothing else.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { removeStaleTemps, writeFileAtomic } from "../lib/io/atomic.ts";

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

Deno.test("removeStaleTemps removes the writer's temporary files only, not recursively", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgnn-atomic-" });
  try {
    // Left by killed writers of "history.json" and "last.safetensors" (made by hand).
    const stale = [".history.json.0a1b2c3d.tmp", ".last.safetensors.deadbeef.tmp"];
    // Names that merely look like them, and the files the writers were writing.
    const kept = [
      ".notes.tmp",
      ".history.json.tmp",
      ".history.json.DEADBEEF.tmp",
      ".history.json.0a1b2c3.tmp",
      ".history.json.0a1b2c3d4.tmp",
      ".history.json.0a1b2c3g.tmp",
      "..0a1b2c3d.tmp",
      "history.json.0a1b2c3d.tmp",
      ".history.json.0a1b2c3d.tmp~",
      ".history.json.0a1b2c3d.tmp.bak",
      "history.json",
      "last.safetensors",
    ];
    for (const name of [...stale, ...kept]) await Deno.writeTextFile(join(dir, name), name);
    // A folder of the pattern, and a stale file inside a sub-folder: neither is touched.
    await Deno.mkdir(join(dir, ".plot.svg.12345678.tmp"));
    await Deno.mkdir(join(dir, "run"));
    await Deno.writeTextFile(join(dir, "run", ".loss.svg.12345678.tmp"), "");

    assert.deepEqual(await removeStaleTemps(dir), stale);
    assert.deepEqual(
      await listDir(dir),
      [...kept, ".plot.svg.12345678.tmp", "run"].sort(),
    );
    assert.deepEqual(await listDir(join(dir, "run")), [".loss.svg.12345678.tmp"]);
    assert.deepEqual(await removeStaleTemps(dir), [], "a second call finds nothing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("removeStaleTemps recognises the temporary file writeFileAtomic really makes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgnn-atomic-" });
  // A writer killed before its rename: the rename never happens, nor does the cleanup.
  const { rename, remove } = Deno;
  const mutable = Deno as { rename: typeof Deno.rename; remove: typeof Deno.remove };
  let temp = "";
  mutable.rename = (from) => {
    temp = basename(String(from));
    return Promise.reject(new Error("killed"));
  };
  mutable.remove = () => Promise.resolve();
  try {
    await assert.rejects(() => writeFileAtomic(join(dir, "best.safetensors"), Uint8Array.of(1)));
  } finally {
    mutable.rename = rename;
    mutable.remove = remove;
  }
  try {
    assert.match(temp, /^\.best\.safetensors\.[0-9a-f]{8}\.tmp$/);
    assert.deepEqual(await listDir(dir), [temp]);
    assert.deepEqual(await removeStaleTemps(dir), [temp]);
    assert.deepEqual(await listDir(dir), []);
    // The writer still works after the cleaner, and leaves nothing to clean.
    await writeFileAtomic(join(dir, "best.safetensors"), Uint8Array.of(2));
    assert.deepEqual(await removeStaleTemps(dir), []);
    assert.deepEqual(await listDir(dir), ["best.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("removeStaleTemps on a missing folder throws NotFound", async () => {
  await assert.rejects(
    () => removeStaleTemps("/tmp/wgnn-atomic-surely-missing/x"),
    Deno.errors.NotFound,
  );
});

Deno.test("atomic writes: an error names the target file, not its temporary twin", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgnn-atomic-name-" });
  try {
    const target = join(dir, "missing", "history.json");
    await assert.rejects(writeFileAtomic(target, new Uint8Array(4)), (e: Error) => {
      assert(e instanceof Deno.errors.NotFound, `${e.name}: a NotFound stays a NotFound`);
      assert(e.message.includes(target), e.message);
      assert(!/\.tmp/.test(e.message), `the temp file is not named: ${e.message}`);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
