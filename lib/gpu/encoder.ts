/**
 * One command encoder per step: {@link StepEncoder} keeps a single compute pass open across
 * dispatches and closes it only when a copy command needs the encoder, so a whole training
 * step (many dispatches, a few copies) becomes one command buffer and one submission.
 *
 * @module
 */

import type { Gpu } from "./device.ts";

/**
 * Records dispatches and copies into one command buffer: create one per training step, let every
 * layer, the loss and the optimizer encode into it, then {@link StepEncoder.submit} once. An
 * encoder is used once; make a new one for the next step.
 *
 * @example One step: encode everything, submit once
 * ```ts
 * import { type Adam, type CrossEntropyLoss, type Sequential, StepEncoder } from "@wgnn/wgnn";
 * import type { Tensor } from "@wgnn/wgnn";
 *
 * function trainStep(
 *   model: Sequential,
 *   loss: CrossEntropyLoss,
 *   optimizer: Adam,
 *   x: Tensor,
 *   y: Tensor,
 * ): void {
 *   const enc = new StepEncoder(x.gpu, "train step");
 *   optimizer.zeroGrad(enc);
 *   loss.forward(enc, model.forward(enc, x), y);
 *   model.backward(enc, loss.backward());
 *   optimizer.step(enc);
 *   enc.submit(); // one command buffer for the whole step; nothing waits here
 * }
 * ```
 */
export class StepEncoder {
  /** The GPU the commands are for. */
  readonly gpu: Gpu;
  readonly #encoder: GPUCommandEncoder;
  #pass: GPUComputePassEncoder | null = null;
  #finished = false;
  /** Dispatches recorded so far (for the benchmark's dispatches-per-step figure). */
  dispatches = 0;

  /**
   * Opens a command encoder on `gpu` (throws if the device was lost). `label` names the command
   * buffer in validation errors.
   */
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

  /**
   * Finishes the command buffer without submitting it, for a caller that submits later (a
   * training loop encoding the next epoch while the GPU still runs this one).
   */
  finish(): GPUCommandBuffer {
    const encoder = this.commands();
    this.#finished = true;
    return encoder.finish();
  }

  /** Finishes the command buffer and submits it. Does not wait. */
  submit(): void {
    this.gpu.device.queue.submit([this.finish()]);
  }
}
