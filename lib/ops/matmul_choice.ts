/**
 * Which matmul kernel a GPU's plans use, as a value: the kernel families, the `tiled` family's
 * tilings, the text form `WGNN_MATMUL` and the trial's stored answer spell, the default per kind
 * of adapter, and the one place that holds each GPU's choice.
 *
 * The choice is made once per GPU, before its first plan: explicitly with {@link chooseMatmul}
 * (what `matmulVariant` in matmul_trial.ts does after its probe or trial), or by the first plan
 * built without a `variant` option, which takes {@link defaultMatmulChoice} for the adapter.
 * Either way every later plan of that GPU gets the same kernel, and an attempt to choose another
 * one afterwards throws instead of leaving earlier plans on a different kernel.
 *
 * @module
 */

import { type AdapterKind, adapterKind } from "../gpu/defaults.ts";
import type { Gpu } from "../gpu/device.ts";

/** Which matmul kernel family to use. */
export type MatmulVariant = "texture" | "tiled" | "blocked";

/**
 * A tiling of the `tiled` variant: a WG_X × WG_Y workgroup computes a (WG_Y·RM) × (WG_X·RN)
 * tile of C. Tiles at most 128 on a side, RM and RN at most 8 (the kernel's shared arrays).
 */
export interface Tiling {
  /** Workgroup width (invocations along N). */
  WG_X: number;
  /** Workgroup height (invocations along M). */
  WG_Y: number;
  /** Rows of C each invocation computes. */
  RM: number;
  /** Columns of C each invocation computes. */
  RN: number;
}

/**
 * The tilings the start-up trial chooses from on hardware adapters: big tiles reuse more data
 * per load; small ones give the lecture's skinny products (C is 1024×128 or 3072×128) enough
 * workgroups to fill a large GPU (64×64 tiles make 32 workgroups of a 1024×128 product).
 */
export const TILINGS: Readonly<Record<string, Tiling>> = {
  "64x64": { WG_X: 16, WG_Y: 16, RM: 4, RN: 4 },
  "32x32": { WG_X: 16, WG_Y: 16, RM: 2, RN: 2 },
  "32x32-64": { WG_X: 8, WG_Y: 8, RM: 4, RN: 4 },
};

/** The tiling of a `tiled` choice that names none. */
export const DEFAULT_TILING = "64x64";

/** A choice of kernel: a family, and for `tiled` one of the tilings in `TILINGS`. */
export interface MatmulChoice {
  /** The kernel family. */
  readonly variant: MatmulVariant;
  /**
   * The `tiled` family's tiling, a key of `TILINGS` ("64x64", "32x32", "32x32-64"). Default: "64x64"
   * (`DEFAULT_TILING`).
   */
  readonly tiling?: string;
}

/**
 * Reads a choice written as `texture`, `blocked`, `tiled` (the default tiling) or
 * `tiled:<tiling>` with a key of {@link TILINGS}; null for anything else.
 *
 * @example
 * ```ts
 * import { parseMatmulChoice } from "./matmul_choice.ts";
 * console.assert(parseMatmulChoice("tiled:32x32")?.tiling === "32x32");
 * console.assert(parseMatmulChoice("tiled:9x9") === null);
 * ```
 */
export function parseMatmulChoice(text: string): MatmulChoice | null {
  if (text === "texture" || text === "blocked") return { variant: text };
  if (text === "tiled") return { variant: "tiled", tiling: DEFAULT_TILING };
  const tiling = text.startsWith("tiled:") ? text.slice("tiled:".length) : "";
  return Object.hasOwn(TILINGS, tiling) ? { variant: "tiled", tiling } : null;
}

/**
 * The text form {@link parseMatmulChoice} reads: `texture`, `blocked` or `tiled:<tiling>`.
 *
 * @example
 * ```ts
 * import { formatMatmulChoice } from "./matmul_choice.ts";
 * console.assert(formatMatmulChoice({ variant: "tiled" }) === "tiled:64x64");
 * ```
 */
export function formatMatmulChoice(choice: MatmulChoice): string {
  return choice.variant === "tiled" ? `tiled:${choice.tiling ?? DEFAULT_TILING}` : choice.variant;
}

/**
 * The choice an adapter kind gets without a trial: software adapters are known to favour the
 * texture kernel (5–10× faster than storage buffers on Mesa); real GPUs start with the tiled one.
 */
export function defaultMatmulChoice(kind: AdapterKind): MatmulChoice {
  return kind === "software"
    ? { variant: "texture" }
    : { variant: "tiled", tiling: DEFAULT_TILING };
}

/**
 * The storage-buffer family for an adapter kind, used where textures cannot be (an operand
 * over the texture size limit, a backend without storage-texture reads): the register-blocked
 * kernel on software adapters (no shared memory, which llvmpipe runs slowly), the shared-memory
 * tiles on real GPUs.
 */
export function bufferVariant(kind: AdapterKind): MatmulVariant {
  return kind === "software" ? "blocked" : "tiled";
}

/** Each GPU's choice, made once; see the module doc. */
const choices = new WeakMap<Gpu, MatmulChoice>();

/** Whether two choices name the same kernel (a `tiled` choice without tiling is the default). */
function sameChoice(a: MatmulChoice, b: MatmulChoice): boolean {
  return formatMatmulChoice(a) === formatMatmulChoice(b);
}

/**
 * Makes `choice` the matmul kernel of every plan of `gpu` that does not name its own `variant`,
 * and returns it. Choosing again the same kernel is allowed; a different one throws a
 * RangeError, because plans already built (or the earlier choice) use the first.
 *
 * @example Fix the tiled kernel's 32×32 tiling before building the model
 * ```ts ignore
 * chooseMatmul(gpu, { variant: "tiled", tiling: "32x32" }); // before the model's first forward
 * ```
 */
export function chooseMatmul(gpu: Gpu, choice: MatmulChoice): MatmulChoice {
  const tiling = choice.tiling;
  if (choice.variant === "tiled" && tiling !== undefined && !Object.hasOwn(TILINGS, tiling)) {
    throw new RangeError(
      `Cannot choose the matmul kernel: unknown tiling "${tiling}" (expected one of ${
        Object.keys(TILINGS).join(", ")
      })`,
    );
  }
  const made = choices.get(gpu);
  if (made !== undefined && !sameChoice(made, choice)) {
    throw new RangeError(
      `Cannot choose the matmul kernel ${formatMatmulChoice(choice)}: this GPU's plans already ` +
        `use ${formatMatmulChoice(made)}; choose before building any plan`,
    );
  }
  const fixed = made ?? Object.freeze({ ...choice });
  choices.set(gpu, fixed);
  return fixed;
}

/** The choice made for `gpu` so far, or null; makes none. */
export function madeMatmulChoice(gpu: Gpu): MatmulChoice | null {
  return choices.get(gpu) ?? null;
}

/**
 * The matmul kernel of `gpu`'s plans: the choice made, else the default for its kind of adapter
 * ({@link defaultMatmulChoice}), which this call makes the choice.
 */
export function matmulChoice(gpu: Gpu): MatmulChoice {
  return choices.get(gpu) ?? chooseMatmul(gpu, defaultMatmulChoice(adapterKind(gpu)));
}
