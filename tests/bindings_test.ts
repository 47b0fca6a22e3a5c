/**
 * Each kernel family's binding table (names to numbers, declared once in TypeScript beside the
 * module that imports the kernel) against its WGSL: every `@group(0) @binding(N) var … name` of
 * the file must be in the table under its name and number, every table entry must be declared
 * so, and the header's "Bindings:" paragraph must list it as "N name". Entry points declared in
 * TypeScript must exist in the file. No GPU needed.
 */

import assert from "node:assert/strict";
import { ACT_BACKWARD, ACT_FORWARD, ACTIVATION } from "../lib/nn/activation_kernel.ts";
import { BATCHNORM } from "../lib/nn/batchnorm.ts";
import { BATCHNORM2D } from "../lib/nn/batchnorm2d.ts";
import { CONV2D } from "../lib/nn/conv.ts";
import { CONV_GEMM, CONV_GEMM_ENTRIES } from "../lib/nn/conv_gemm.ts";
import { POOL2D } from "../lib/nn/pool.ts";
import { COUNTER_ADVANCE, DROPOUT_KERNEL } from "../lib/nn/dropout.ts";
import { ELEMENTWISE_LOSS } from "../lib/nn/elementwise_loss.ts";
import type { EntryPoint, KernelFamily } from "../lib/nn/kernel_call.ts";
import { COLUMN_SUM } from "../lib/nn/linear.ts";
import { CROSS_ENTROPY } from "../lib/nn/loss.ts";
import { NLL_LOSS } from "../lib/nn/nll_loss.ts";
import { OPTIM } from "../lib/optim/optimizer.ts";
import { ADD } from "../lib/nn/residual.ts";
import { POINTWISE, POINTWISE_BACKWARD, POINTWISE_FORWARD } from "../lib/nn/pointwise_kernel.ts";
import { SOFTMAX, SOFTMAX_BACKWARD, SOFTMAX_FORWARD } from "../lib/nn/softmax_kernel.ts";
import { CONFUSION } from "../lib/train/confusion.ts";

const FAMILIES: readonly KernelFamily[] = [
  ACTIVATION,
  ADD,
  BATCHNORM,
  BATCHNORM2D,
  CONV2D,
  CONV_GEMM,
  POOL2D,
  CROSS_ENTROPY,
  DROPOUT_KERNEL,
  CONFUSION,
  OPTIM,
  COLUMN_SUM,
  ELEMENTWISE_LOSS,
  NLL_LOSS,
  POINTWISE,
  SOFTMAX,
];

/** A `@binding` declaration of the WGSL: group, number and the `var`'s name. */
interface Declaration {
  group: number;
  binding: number;
  name: string;
}

/** The WGSL without `//` comments (a header may mention `@binding` in prose). */
function code(source: string): string {
  return source.split("\n").map((line) => line.replace(/\/\/.*$/, "")).join("\n");
}

/** Every `@group(G) @binding(N) var<…> name` (or `var name:` for textures) of `source`. */
function declarations(source: string): Declaration[] {
  const pattern = /@group\((\d+)\)\s*@binding\((\d+)\)\s*var(?:<[^>]*>)?\s+(\w+)\s*:/g;
  return [...code(source).matchAll(pattern)].map((m) => ({
    group: Number(m[1]),
    binding: Number(m[2]),
    name: m[3],
  }));
}

/** The header's "Bindings:" paragraph: from that label to the next `// Label:` line. */
function bindingsParagraph(source: string): string {
  const lines = source.split("\n");
  const start = lines.findIndex((l) => l.startsWith("// Bindings:"));
  if (start < 0) return "";
  const out = [lines[start]];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith("//") || /^\/\/ [A-Z][\w ()*]*:/.test(line)) break;
    out.push(line);
  }
  return out.join("\n");
}

/**
 * The `var` names a table entry may match: its own name, or the name with the width suffix of
 * the f32 and vec4 views that kernels/optim.wgsl declares for one binding (`grad1`, `grad4`).
 */
const viewsOf = (name: string) => [name, `${name}1`, `${name}4`];

/** Every disagreement between `family.bindings` and its WGSL, as sentences. */
function problems(family: KernelFamily): string[] {
  const file = `kernels/${family.name}.wgsl`;
  const out: string[] = [];
  const decls = declarations(family.source);
  const table = Object.entries(family.bindings);
  for (const d of decls) {
    if (d.group !== 0) {
      out.push(`${file}: "${d.name}" is in group ${d.group}; kernels bind group 0 only`);
      continue;
    }
    const entry = table.find(([name]) => viewsOf(name).includes(d.name));
    if (entry === undefined) {
      out.push(`${file}: @binding(${d.binding}) "${d.name}" is not in the TypeScript table`);
    } else if (entry[1] !== d.binding) {
      out.push(
        `${file}: "${d.name}" is @binding(${d.binding}) in the WGSL, ${entry[1]} in the table`,
      );
    }
  }
  const header = bindingsParagraph(family.source);
  const numbers = new Map<number, string>();
  for (const [name, binding] of table) {
    if (!decls.some((d) => d.binding === binding && viewsOf(name).includes(d.name))) {
      out.push(`${file}: the table's "${name}" (${binding}) has no @binding(${binding}) var`);
    }
    const other = numbers.get(binding);
    if (other !== undefined) out.push(`${file}: "${other}" and "${name}" share ${binding}`);
    numbers.set(binding, name);
    if (!new RegExp(`(^|[^\\w])${binding} ${name}\\b`).test(header)) {
      out.push(`${file}: the header's Bindings paragraph does not list "${binding} ${name}"`);
    }
  }
  return out;
}

for (const family of FAMILIES) {
  Deno.test(`bindings: kernels/${family.name}.wgsl matches its TypeScript table`, () => {
    assert(declarations(family.source).length > 0, "no @binding declarations found");
    assert.deepEqual(problems(family), []);
  });
}

Deno.test("bindings: declared entry points exist in their WGSL", () => {
  const points: EntryPoint<string>[] = [
    ACT_FORWARD,
    ACT_BACKWARD,
    COUNTER_ADVANCE,
    POINTWISE_FORWARD,
    POINTWISE_BACKWARD,
    SOFTMAX_FORWARD,
    SOFTMAX_BACKWARD,
  ];
  for (const entry of CONV_GEMM_ENTRIES) points.push({ kernel: CONV_GEMM, entry, bindings: {} });
  for (const point of points) {
    const fn = new RegExp(`@compute[^{]*\\bfn ${point.entry}\\s*\\(`);
    assert(fn.test(code(point.kernel.source)), `${point.kernel.name}.${point.entry}`);
  }
});

Deno.test("bindings: the check names a renumbered, renamed, missing or unlisted binding", () => {
  const source = [
    "// scale.wgsl — y = 2·x.",
    "// Bindings: @group(0) 0 x (storage, read), 1 y (storage, read_write), 2 p (uniform).",
    "// Dispatch: one invocation per element.",
    "@group(0) @binding(0) var<storage, read> x: array<f32>;",
    "@group(0) @binding(1) var<storage, read_write> y: array<f32>;",
    "@group(0) @binding(2) var<uniform> p: Params;",
    "@group(0) @binding(3) var t: texture_storage_2d<rgba32float, write>;",
  ].join("\n");
  const family = (bindings: Record<string, number>) => ({ name: "scale", source, bindings });
  assert.deepEqual(problems(family({ x: 0, y: 1, p: 2, t: 3 })), [
    'kernels/scale.wgsl: the header\'s Bindings paragraph does not list "3 t"',
  ]);
  assert.deepEqual(problems(family({ x: 0, y: 2, p: 1 })), [
    'kernels/scale.wgsl: "y" is @binding(1) in the WGSL, 2 in the table',
    'kernels/scale.wgsl: "p" is @binding(2) in the WGSL, 1 in the table',
    'kernels/scale.wgsl: @binding(3) "t" is not in the TypeScript table',
    'kernels/scale.wgsl: the table\'s "y" (2) has no @binding(2) var',
    'kernels/scale.wgsl: the header\'s Bindings paragraph does not list "2 y"',
    'kernels/scale.wgsl: the table\'s "p" (1) has no @binding(1) var',
    'kernels/scale.wgsl: the header\'s Bindings paragraph does not list "1 p"',
  ]);
  assert.deepEqual(problems(family({ x: 0, dst: 1, p: 2, t: 3, extra: 3 })), [
    'kernels/scale.wgsl: @binding(1) "y" is not in the TypeScript table',
    'kernels/scale.wgsl: the table\'s "dst" (1) has no @binding(1) var',
    'kernels/scale.wgsl: the header\'s Bindings paragraph does not list "1 dst"',
    'kernels/scale.wgsl: the header\'s Bindings paragraph does not list "3 t"',
    'kernels/scale.wgsl: the table\'s "extra" (3) has no @binding(3) var',
    'kernels/scale.wgsl: "t" and "extra" share 3',
    'kernels/scale.wgsl: the header\'s Bindings paragraph does not list "3 extra"',
  ]);
});
