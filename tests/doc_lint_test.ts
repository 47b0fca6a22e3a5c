/**
 * `deno doc --lint` on every entry point: each public symbol documented, and no public API
 * naming a type the entry point does not export (a `{@link}` to nothing, a private type in a
 * signature). The README promises this; the check runs here so that CI catches a regression.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const ENTRY_POINTS = ["mod.ts", "data.ts", "plot.ts", "experiment.ts", "advanced.ts", "browser.ts"];

for (const entry of ENTRY_POINTS) {
  Deno.test(`deno doc --lint ${entry} is clean`, async () => {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["doc", "--lint", entry],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(stderr);
    const problems = text.split("\n").filter((l) => /^error\[/.test(l));
    assert.deepEqual(problems, [], `deno doc --lint ${entry}:\n${text}`);
    assert.equal(code, 0, text);
  });
}
