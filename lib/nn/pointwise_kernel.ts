/**
 * The element-wise activation family as layers use it (kernels/pointwise.wgsl): Tanh, Sigmoid,
 * GELU in both forms and SiLU, one override per function; its bindings, entry points and Params.
 *
 * @module
 */

import { ParamsLayout } from "../gpu/params.ts";
import pointwiseSource from "../../kernels/pointwise.wgsl" with { type: "text" };
import { type EntryPoint, entryPoint, type KernelFamily } from "./kernel_call.ts";

/** kernels/pointwise.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const POINTWISE = {
  name: "pointwise",
  source: pointwiseSource,
  bindings: { src: 0, dy: 1, dst: 2, p: 3 },
} as const satisfies KernelFamily;
/** `y = f(x)`. */
export const POINTWISE_FORWARD: EntryPoint<"src" | "dst" | "p"> = entryPoint(POINTWISE, "forward", [
  "src",
  "dst",
  "p",
]);
/** `dX = dY·f′`, from `src` = y for Tanh and Sigmoid, x for the others. */
export const POINTWISE_BACKWARD: EntryPoint<"src" | "dy" | "dst" | "p"> = entryPoint(
  POINTWISE,
  "backward",
  ["src", "dy", "dst", "p"],
);
/** Its Params: the element count. */
export const POINTWISE_PARAMS = new ParamsLayout("pointwise.Params", { n: "u32" });
/** Its workgroup size. */
export const POINTWISE_WG = 64;

/** The functions of the family: the `FN` override, and whether backward reads y (else x). */
export const POINTWISE_FUNCTIONS = {
  tanh: { fn: 0, backwardReadsOutput: true },
  sigmoid: { fn: 1, backwardReadsOutput: true },
  gelu: { fn: 2, backwardReadsOutput: false },
  gelu_tanh: { fn: 3, backwardReadsOutput: false },
  silu: { fn: 4, backwardReadsOutput: false },
} as const;

/** A function of the family, by name. */
export type PointwiseFunction = keyof typeof POINTWISE_FUNCTIONS;
