/**
 * Which kernels a Conv2d runs, per adapter and shape: the implicit GEMMs of
 * kernels/conv_gemm.wgsl (textures, the matmul engine's design) or the direct loops of
 * kernels/conv2d.wgsl (storage buffers). The GEMMs need what the matmul engine's texture kernel
 * needs, so they run where the GPU's matmul choice (made per adapter, as for Linear) is the
 * texture kernel; the direct loops stay where they are better: depthwise convolutions and
 * groups of 1 or 2 channels in and out.
 *
 * `chooseConv(gpu, "direct" | "gemm")` forces one path for the layers planned afterwards (tests
 * run every check on each; `WGNN_CONV` does the same from the environment through
 * `convChoiceFromEnv` in conv_env.ts), and a layer's own `algorithm` option overrides both.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { matmulChoice } from "../ops/matmul_choice.ts";
import { type ConvShape, gemmUnfit } from "./conv_gemm.ts";

/** A convolution path: the implicit GEMMs or the direct loops. */
export type ConvAlgorithm = "gemm" | "direct";

/** A path, or "auto": per adapter and shape (see the module doc). */
export type ConvChoice = "auto" | ConvAlgorithm;

/** The choices `chooseConv` and `WGNN_CONV` accept. */
export const CONV_CHOICES: readonly ConvChoice[] = ["auto", "gemm", "direct"];

const chosen = new WeakMap<Gpu, ConvChoice>();

/**
 * Makes `choice` the path of every Conv2d of `gpu` planned from now on (layers that name their
 * own `algorithm` keep it); "auto" restores the per-shape choice. Throws a RangeError for another
 * value.
 *
 * @example Force the direct loops, e.g. in a test
 * ```ts ignore
 * chooseConv(gpu, "direct"); // before the model's first forward
 * ```
 */
export function chooseConv(gpu: Gpu, choice: ConvChoice): ConvChoice {
  if (!CONV_CHOICES.includes(choice)) {
    throw new RangeError(
      `Cannot choose the convolution path: expected one of ${
        CONV_CHOICES.join(", ")
      }: current value is ${JSON.stringify(choice)}`,
    );
  }
  chosen.set(gpu, choice);
  return choice;
}

/** The path `gpu`'s layers get unless they name one: "auto" until `chooseConv` says otherwise. */
export function convChoice(gpu: Gpu): ConvChoice {
  return chosen.get(gpu) ?? "auto";
}

/**
 * The path for shape `s` on `gpu` given the layer's option (`asked`, "auto" to defer to the GPU's
 * choice). A forced "gemm" the adapter cannot run throws a RangeError naming the reason.
 */
export function convAlgorithm(gpu: Gpu, s: ConvShape, asked: ConvChoice): ConvAlgorithm {
  const choice = asked === "auto" ? convChoice(gpu) : asked;
  const unfit = gemmUnfit(gpu, s);
  if (choice === "gemm") {
    if (unfit !== null) {
      throw new RangeError(`Cannot run the convolution on the gemm path: ${unfit}`);
    }
    return "gemm";
  }
  if (choice === "direct") return "direct";
  if (unfit !== null || matmulChoice(gpu).variant !== "texture") return "direct";
  // Channels are packed 4 to a texel per group and output channels 16 to a block: with 1 or 2
  // of each per group (depthwise), most of the GEMM's work is padding. Measured on lavapipe
  // (batch 64, 32×32, forward + dW): depthwise 32 channels, GEMM 0.94 s against direct 0.80 s;
  // 8 groups of 4 channels, 0.17 s against 0.55 s; 32→4, 0.17 s against 0.53 s.
  const cg = s.C / s.G, ocg = s.OC / s.G;
  return cg * ocg <= 4 ? "direct" : "gemm";
}
