/**
 * Errors a {@link Gpu} raises that callers may want to catch by type: running out of GPU memory
 * (a RangeError, so scripts exit with code 2 and suggest a smaller batch) and losing the device
 * (with the hint to resume from the last checkpoint).
 *
 * @module
 */

/**
 * What a {@link GpuMemoryError} reports.
 *
 * @example The fields of a refused batch
 * ```ts
 * import type { GpuMemoryErrorInfo } from "@wgnn/wgnn";
 *
 * const info: GpuMemoryErrorInfo = {
 *   kind: "buffer",
 *   label: "batch x 50000",
 *   bytes: 614_400_000,
 *   limit: 134_217_728,
 *   detail: "exceed the adapter's maxStorageBufferBindingSize of 134217728 bytes",
 * };
 * ```
 */
export interface GpuMemoryErrorInfo {
  /** "buffer" or "texture". */
  kind: "buffer" | "texture";
  /** The allocation's label. */
  label: string;
  /** Bytes asked for. */
  bytes: number;
  /** The adapter limit that was exceeded, or null for a real out-of-memory. */
  limit: number | null;
  /** What went wrong, e.g. "exceed the adapter's maxBufferSize of 2147483647 bytes". */
  detail: string;
}

/**
 * Thrown when the GPU cannot hold an allocation; names the bytes asked and the limit, and
 * suggests a smaller batch (activations and batches are what grow with it). A RangeError, so the
 * scripts exit with code 2. Requests beyond an adapter limit throw at once; a real out-of-memory
 * is reported by WebGPU asynchronously and thrown at the next {@link Gpu.sync} or readback.
 *
 * @example Halve the batch until the model fits
 * ```ts
 * import { type Gpu, GpuMemoryError, Tensor } from "@wgnn/wgnn";
 *
 * async function largestBatch(gpu: Gpu, batch: number): Promise<number> {
 *   for (; batch >= 1; batch = Math.floor(batch / 2)) {
 *     try {
 *       using _probe = Tensor.empty(gpu, [batch, 3072], "f32", "batch x");
 *       await gpu.checkAllocations();
 *       return batch;
 *     } catch (error) {
 *       if (!(error instanceof GpuMemoryError)) throw error;
 *     }
 *   }
 *   return 0;
 * }
 * ```
 */
export class GpuMemoryError extends RangeError {
  /** The allocation's label. */
  readonly label: string;
  /** Bytes asked for. */
  readonly bytes: number;
  /** The adapter limit that was exceeded, or null for a real out-of-memory. */
  readonly limit: number | null;

  /** Builds the message "Cannot allocate <kind> "<label>": <bytes> bytes <detail>; lower …". */
  constructor(info: GpuMemoryErrorInfo) {
    super(
      `Cannot allocate ${info.kind} "${info.label}": ${info.bytes} bytes ${info.detail}; ` +
        "lower the batch size",
    );
    this.name = "GpuMemoryError";
    this.label = info.label;
    this.bytes = info.bytes;
    this.limit = info.limit;
  }
}

/**
 * Thrown by every use of a {@link Gpu} once its device is lost (driver reset, GPU removed,
 * `device.destroy()`). What was on the GPU is gone; files already written are intact, so the
 * message says how to resume. {@link requestGpu} then returns a new device.
 *
 * @example Resume in the same process after a driver reset
 * ```ts
 * import { DeviceLostError, fit, type FitOptions, requestGpu, type Sequential } from "@wgnn/wgnn";
 *
 * async function fitSurvivingReset(
 *   build: (gpu: Awaited<ReturnType<typeof requestGpu>>) => [Sequential, FitOptions],
 * ) {
 *   try {
 *     const [model, options] = build(await requestGpu());
 *     return await fit(model, options);
 *   } catch (error) {
 *     if (!(error instanceof DeviceLostError)) throw error;
 *     const [model, options] = build(await requestGpu()); // a new device
 *     return await fit(model, { ...options, resume: true }); // from the last checkpoint
 *   }
 * }
 * ```
 */
export class DeviceLostError extends Error {
  /** `GPUDeviceLostInfo.reason`: "destroyed" or "unknown". */
  readonly reason: string;
  /** `GPUDeviceLostInfo.message`. */
  readonly detail: string;
  /** The kernel most recently built or encoded. */
  readonly kernel: string;

  /** Builds the message from the loss's reason and detail and the last kernel's label. */
  constructor(reason: string, detail: string, kernel: string) {
    super(
      `The WebGPU device was lost (${reason}: ${detail}) near kernel ${kernel}; what was on the ` +
        "GPU is gone, but files written before (checkpoints, history) are intact: resume from " +
        "the last checkpoint with --resume (deno task train --resume, or fit with resume: true " +
        "on a new requestGpu())",
    );
    this.name = "DeviceLostError";
    this.reason = reason;
    this.detail = detail;
    this.kernel = kernel;
  }
}
