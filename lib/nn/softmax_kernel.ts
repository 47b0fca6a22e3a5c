/**
 * The row-wise Softmax / LogSoftmax family as layers use it (kernels/softmax.wgsl): its bindings,
 * entry points and Params layout.
 *
 * @module
 */

import { ParamsLayout } from "../gpu/params.ts";
import softmaxSource from "../../kernels/softmax.wgsl" with { type: "text" };
import { type EntryPoint, entryPoint, type KernelFamily } from "./kernel_call.ts";

/** kernels/softmax.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const SOFTMAX = {
  name: "softmax",
  source: softmaxSource,
  bindings: { src: 0, dy: 1, dst: 2, p: 3 },
} as const satisfies KernelFamily;
/** `y = softmax(x)` or `log_softmax(x)` per row. */
export const SOFTMAX_FORWARD: EntryPoint<"src" | "dst" | "p"> = entryPoint(SOFTMAX, "forward", [
  "src",
  "dst",
  "p",
]);
/** dX from the saved output y and dY, per row. */
export const SOFTMAX_BACKWARD: EntryPoint<"src" | "dy" | "dst" | "p"> = entryPoint(
  SOFTMAX,
  "backward",
  ["src", "dy", "dst", "p"],
);
/** Its Params: the number of rows and the row length. */
export const SOFTMAX_PARAMS = new ParamsLayout("softmax.Params", { rows: "u32", cols: "u32" });
/** Its workgroup size: one workgroup per row; a power of two (the reduction halves it). */
export const SOFTMAX_WG = 64;
