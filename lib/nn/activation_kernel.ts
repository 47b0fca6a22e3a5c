/**
 * The LeakyReLU kernel family as layers use it: the element-wise activation (also the gradient
 * of an activation fused into a Linear's matmul), its bindings, entry points and Params layout.
 *
 * @module
 */

import { ParamsLayout } from "../gpu/params.ts";
import activationSource from "../../kernels/activation.wgsl" with { type: "text" };
import { entryPoint, type KernelFamily } from "./kernel_call.ts";

/** kernels/activation.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const ACTIVATION = {
  name: "activation",
  source: activationSource,
  bindings: { src: 0, dy: 1, dst: 2, p: 3 },
} as const satisfies KernelFamily;
/** `y = act(src)`. */
export const ACT_FORWARD = entryPoint(ACTIVATION, "forward", ["src", "dst", "p"]);
/** `dX = dY·act'(src)`, src being the input x or, when fused, the output y. */
export const ACT_BACKWARD = entryPoint(ACTIVATION, "backward", ["src", "dy", "dst", "p"]);
/** Its Params: element count and negative slope. */
export const ACT_PARAMS = new ParamsLayout("activation.Params", { n: "u32", slope: "f32" });
/** Its workgroup size. */
export const ACT_WG = 64;
