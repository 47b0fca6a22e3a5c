/**
 * One kernel entry point bound to a layer's tensors: the pipeline is looked up once, the bind
 * group is built on first use and rebuilt only when a different tensor is passed.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { GpuBuffer } from "../gpu/buffer.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import type { Constants, Kernel } from "../gpu/kernels.ts";
import { Tensor } from "../tensor.ts";

/** A binding: a tensor (bound at its offset) or a whole buffer (uniforms). */
export type Resource = Tensor | GpuBuffer;

/** A cached (pipeline, bind group) pair for one entry point. */
export class KernelCall {
  /** `kernel.entry`, used in dispatch labels and error messages. */
  readonly label: string;
  readonly #gpu: Gpu;
  readonly #pipeline: GPUComputePipeline;
  #key: Resource[] = [];
  #group: GPUBindGroup | null = null;

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
    if (this.#group === null || resources.some((r, i) => r !== this.#key[i])) {
      this.#group = this.#gpu.device.createBindGroup({
        label: this.label,
        layout: this.#pipeline.getBindGroupLayout(0),
        entries: resources.map((r, i) => ({
          binding: bindings[i],
          resource: r instanceof Tensor ? r.binding() : { buffer: r.buffer },
        })),
      });
      this.#key = [...resources];
    }
    enc.dispatch(this.label, this.#pipeline, this.#group, grid);
  }
}
