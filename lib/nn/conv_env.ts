/**
 * `WGNN_CONV`: the environment's say in which kernels Conv2d runs, as `WGNN_MATMUL` is for the
 * matmul engine. Kept apart from conv_choice.ts because it reads the environment, which a web
 * page cannot (browser.ts's graph stays free of Deno APIs).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { chooseConv, CONV_CHOICES, type ConvChoice, convChoice } from "./conv_choice.ts";

/** Reads an environment variable only when permission is already granted (never prompts). */
function readEnv(name: string): string | undefined {
  try {
    const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
    return state === "granted" ? Deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Applies `WGNN_CONV=auto|gemm|direct` to `gpu` (see `chooseConv`) when the variable is set and
 * may be read, and returns the path in force. Throws a RangeError naming any other value.
 *
 * @example Let the environment force a path, before building the model
 * ```ts ignore
 * const gpu = await requestGpu();
 * convChoiceFromEnv(gpu); // WGNN_CONV=direct deno run ... runs every Conv2d on the direct loops
 * ```
 */
export function convChoiceFromEnv(gpu: Gpu): ConvChoice {
  const text = readEnv("WGNN_CONV");
  if (text === undefined) return convChoice(gpu);
  const choice = CONV_CHOICES.find((c) => c === text);
  if (choice === undefined) {
    throw new RangeError(
      `Cannot choose the convolution path: WGNN_CONV must be one of ${
        CONV_CHOICES.join(", ")
      }: current value is "${text}"`,
    );
  }
  return chooseConv(gpu, choice);
}
