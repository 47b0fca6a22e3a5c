/**
 * The one place that decides what depends on the kind of adapter. A software adapter (Mesa's
 * llvmpipe and lavapipe, SwiftShader) runs kernels on the CPU: it is compute-bound, and waiting
 * for it costs nothing next to the work. A hardware GPU runs an epoch of the lecture's MLP in
 * milliseconds, so the CPU's encoding and Deno's readback round trip (at least 11 ms) set the
 * pace there, and the training loop hides them. Each default below says which way it goes.
 *
 * @module
 */

import type { Gpu } from "./device.ts";

/** Software adapters run kernels on the CPU; hardware adapters are GPUs. */
export type AdapterKind = "software" | "hardware";

/** The defaults for one kind of adapter. */
export interface AdapterDefaults {
  /** Which kind of adapter these are for. */
  kind: AdapterKind;
  /** `fit`'s `encodeAhead`: encode each epoch while the GPU runs the one before (hardware). */
  encodeAhead: boolean;
  /** The experiment's `concurrent`: train the variants side by side (hardware). */
  concurrent: boolean;
  /** Seconds between commits of the checkpoint: 0 (every epoch) on software, 10 on hardware. */
  checkpointSeconds: number;
}

const DEFAULTS: Readonly<Record<AdapterKind, AdapterDefaults>> = {
  software: { kind: "software", encodeAhead: false, concurrent: false, checkpointSeconds: 0 },
  hardware: { kind: "hardware", encodeAhead: true, concurrent: true, checkpointSeconds: 10 },
};

/** The kind of `gpu`'s adapter. */
export function adapterKind(gpu: Gpu): AdapterKind {
  return gpu.adapter.fallback ? "software" : "hardware";
}

/**
 * The defaults for `gpu`'s adapter.
 *
 * @example What a software adapter gets
 * ```ts
 * import { adapterDefaults } from "./defaults.ts";
 * import type { Gpu } from "./device.ts";
 *
 * const lavapipe = { adapter: { fallback: true } } as Gpu;
 * console.assert(adapterDefaults(lavapipe).checkpointSeconds === 0);
 * ```
 */
export function adapterDefaults(gpu: Gpu): AdapterDefaults {
  return DEFAULTS[adapterKind(gpu)];
}
