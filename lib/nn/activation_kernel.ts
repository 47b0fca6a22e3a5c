/**
 * The LeakyReLU kernel family as layers use it: the element-wise activation (also the gradient
 * of an activation fused into a Linear's matmul) and its Params layout.
 *
 * @module
 */

import { ParamsLayout } from "../gpu/params.ts";
import activationSource from "../../kernels/activation.wgsl" with { type: "text" };

/** kernels/activation.wgsl. */
export const ACTIVATION = { name: "activation", source: activationSource };
/** Its Params: element count and negative slope. */
export const ACT_PARAMS = new ParamsLayout("activation.Params", { n: "u32", slope: "f32" });
/** Its workgroup size. */
export const ACT_WG = 64;
