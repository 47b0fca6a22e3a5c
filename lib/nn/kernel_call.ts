/**
 * One kernel entry point bound to a layer's tensors: the pipeline is looked up once, and a bind
 * group is built once for each combination of buffer ranges the layer passes (a few at most).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import type { Constants, Kernel } from "../gpu/kernels.ts";
import { BindGroupCache, bufferKey, objectId } from "../gpu/bind_cache.ts";
import { Tensor } from "../tensor.ts";

/** A binding: a tensor (bound at its offset) or a whole buffer (uniforms). */
export type Resource = Tensor | GpuBuffer;

/** A cached (pipeline, bind group) pair for one entry point. */
export class KernelCall {
  /** `kernel.entry`, used in dispatch labels and error messages. */
  readonly label: string;
  readonly #gpu: Gpu;
  readonly #pipeline: GPUComputePipeline;
  readonly #groups = new BindGroupCache();

  /** Looks up (or compiles) the pipeline of `kernel`'s `entry` with `constants`. */
  constructor(gpu: Gpu, kernel: Kernel, entry: string, constants: Constants = {}) {
    this.#gpu = gpu;
    this.label = `${kernel.name}.${entry}`;
    this.#pipeline = gpu.pipelines.get(kernel, entry, constants);
  }

  /** Encodes one dispatch with `resources[i]` at binding `bindings[i]`. */
  encode(
    enc: StepEncoder,
    grid: readonly [number, number, number],
    bindings: readonly number[],
    resources: readonly Resource[],
  ): void {
    this.#gpu.lastKernel = this.label;
    const group = this.#groups.get(
      resources,
      () =>
        resources.map((r) =>
          r instanceof Tensor ? bufferKey(r.binding()) : String(objectId(r.buffer))
        ).join(","),
      () =>
        this.#gpu.device.createBindGroup({
          label: this.label,
          layout: this.#pipeline.getBindGroupLayout(0),
          entries: resources.map((r, i) => ({
            binding: bindings[i],
            resource: r instanceof Tensor ? r.binding() : { buffer: r.buffer },
          })),
        }),
    );
    enc.dispatch(this.label, this.#pipeline, group, grid);
  }
}
