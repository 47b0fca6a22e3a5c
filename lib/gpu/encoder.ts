/**
 * One command encoder per step: {@link StepEncoder} keeps a single compute pass open across
 * dispatches and closes it only when a copy command needs the encoder, so a whole training
 * step (many dispatches, a few copies) becomes one command buffer and one submission.
 *
 * @module
 */

import type { Gpu } from "./device.ts";

/** Records dispatches and copies into one command buffer. */
export class StepEncoder {
  /** The GPU the commands are for. */
  readonly gpu: Gpu;
  readonly #encoder: GPUCommandEncoder;
  #pass: GPUComputePassEncoder | null = null;
  #finished = false;
  /** Dispatches recorded so far (for the benchmark's dispatches-per-step figure). */
  dispatches = 0;

  constructor(gpu: Gpu, label = "step") {
    gpu.check();
    this.gpu = gpu;
    this.#encoder = gpu.device.createCommandEncoder({ label });
  }

  /** The open compute pass, begun on first use. */
  pass(): GPUComputePassEncoder {
    if (this.#finished) throw new Error("Cannot encode: this StepEncoder was already submitted");
    this.#pass ??= this.#encoder.beginComputePass();
    return this.#pass;
  }

  /** The command encoder for copies; ends the open compute pass first. */
  commands(): GPUCommandEncoder {
    if (this.#finished) throw new Error("Cannot encode: this StepEncoder was already submitted");
    this.#pass?.end();
    this.#pass = null;
    return this.#encoder;
  }

  /** Records one dispatch of `pipeline` with `bindGroup` at group 0. */
  dispatch(
    label: string,
    pipeline: GPUComputePipeline,
    bindGroup: GPUBindGroup,
    grid: readonly [number, number, number],
  ): void {
    const pass = this.pass();
    this.gpu.lastKernel = label;
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    this.dispatches += 1;
  }

  /** Finishes the command buffer and submits it. Does not wait. */
  submit(): void {
    const encoder = this.commands();
    this.#finished = true;
    this.gpu.device.queue.submit([encoder.finish()]);
  }
}
