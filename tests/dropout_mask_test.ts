/**
 * The TypeScript dropout-mask twin against the numpy implementation that PyTorch trained the
 * goldens with (`tests/torch/make_goldens.py`): hash values, keys and mask bits must agree
 * exactly. Needs: --allow-read=.
 */

import assert from "node:assert/strict";
import { dropoutKeep, dropoutKey, dropoutMask, lowbias32 } from "./reference/dropout_mask.ts";

interface MaskCheck {
  hashInputs: number[];
  hashOutputs: number[];
  cases: { seed: number; step: number; layer: number; p: number; keep: number[]; key: number }[];
}

const golden = JSON.parse(await Deno.readTextFile("tests/goldens/dropout.json")) as {
  maskCheck: MaskCheck;
};
const check = golden.maskCheck;

Deno.test("dropout mask: lowbias32 matches numpy's uint32 arithmetic", () => {
  assert.deepEqual(check.hashInputs.map(lowbias32), check.hashOutputs);
  // lowbias32 fixes 0 and is a bijection: no collisions among a run of consecutive inputs.
  assert.equal(lowbias32(0), 0);
  const seen = new Set(Array.from({ length: 1 << 16 }, (_, i) => lowbias32(i + 0xfff0_0000)));
  assert.equal(seen.size, 1 << 16);
});

Deno.test("dropout mask: keys and the first 64 mask bits match numpy", () => {
  for (const c of check.cases) {
    const where = `seed ${c.seed}, step ${c.step}, layer ${c.layer}`;
    assert.equal(dropoutKey(c.seed, c.step, c.layer), c.key, where);
    const keep = Array.from({ length: 64 }, (_, i) => dropoutKeep(c.seed, c.step, c.layer, i, c.p));
    assert.deepEqual(keep.map(Number), c.keep, where);
    assert.deepEqual([...dropoutMask(c.seed, c.step, c.layer, 8, 8, c.p)], c.keep, where);
  }
});

Deno.test("dropout mask: keeps about 1 − p, and differs by step and layer", () => {
  for (const p of [0.1, 0.5, 0.9]) {
    const mask = dropoutMask(0, 3, 3, 256, 128, p);
    const kept = mask.reduce((a, b) => a + b, 0) / mask.length;
    assert(Math.abs(kept - (1 - p)) < 0.01, `p ${p}: kept ${kept}`);
  }
  const a = dropoutMask(0, 0, 3, 16, 16, 0.5).join("");
  assert.notEqual(a, dropoutMask(0, 1, 3, 16, 16, 0.5).join(""));
  assert.notEqual(a, dropoutMask(0, 0, 6, 16, 16, 0.5).join(""));
  assert.notEqual(a, dropoutMask(1, 0, 3, 16, 16, 0.5).join(""));
  assert.equal(dropoutMask(0, 0, 3, 4, 4, 0).every((v) => v === 1), true, "p = 0 keeps all");
});
