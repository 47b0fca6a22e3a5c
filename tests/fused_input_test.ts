/**
 * The first Linear reading its batch straight from the uint8 dataset (lib/ops/rows.ts, the
 * matmuls' A_ROWS loads) trains exactly like the gathered batch: same losses and weights, bit
 * for bit, on every matmul variant, each forced by `WGNN_MATMUL` in a process of its own
 * (tests/fixtures/fused_input.ts): with and without normalisation, for CIFAR-10's shape, an
 * MNIST shape, non-image rows, a two-shard dataset and a partial last batch. Where fusion does
 * not apply (flips, three shards, 20-byte rows on the texture kernel) the loader gathers, and
 * the fixture checks which path every step took.
 */

import assert from "node:assert/strict";
import { hasGpu } from "./helpers.ts";

const FIXTURE = new URL("./fixtures/fused_input.ts", import.meta.url).pathname;
const CASES = 8;

for (const choice of ["texture", "tiled:32x32", "blocked"]) {
  Deno.test({
    name: `the first layer reading dataset rows trains bit for bit as the gather (${choice})`,
    ignore: !hasGpu,
    async fn() {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-env", "--allow-read", FIXTURE],
        env: { WGNN_MATMUL: choice },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      const errors = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `${text}\n${errors}`);
      assert.match(text, new RegExp(`^variant ${choice.split(":")[0]}$`, "m"));
      assert.equal(text.match(/^ok /gm)?.length, CASES, text);
    },
  });
}
