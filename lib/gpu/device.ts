/**
 * Device acquisition: one shared {@link Gpu} per process.
 *
 * The adapter's own limits are requested where they exceed WebGPU's defaults (storage binding
 * size, buffer size, workgroup storage, storage textures per stage, texture size), because the
 * lecture's first layer binds a 12 MiB activation and the matmul engine reads operands through
 * storage textures. Validation errors and device loss are recorded with the name of the kernel
 * that was being built or encoded and thrown at the next synchronisation point
 * ({@link Gpu.sync}, a readback), so a bad dispatch never turns into silent zeros.
 *
 * Two hard edges have their own errors. {@link GpuMemoryError} (a RangeError, so scripts exit
 * with code 2) names the bytes asked and the adapter's limit and suggests a smaller batch: it is
 * thrown at once for requests beyond a limit, and at the next synchronisation point for a real
 * out-of-memory, which WebGPU reports through an error scope around each allocation.
 * {@link DeviceLostError} says that files written before the loss are intact and how to resume.
 *
 * @module
 */

import { BufferPool, GpuBuffer, GpuTexture, type MemoryStats } from "./buffer.ts";
import { PipelineCache } from "./kernels.ts";
import { DeviceLostError, GpuMemoryError } from "./errors.ts";

export { DeviceLostError, GpuMemoryError } from "./errors.ts";
export type { GpuMemoryErrorInfo } from "./errors.ts";

export { GpuTexture };

/**
 * What we know about the adapter behind a {@link Gpu}.
 *
 * @example Say which adapter a run used
 * ```ts
 * import type { AdapterDescription } from "@wgnn/wgnn";
 *
 * function adapterLine(a: AdapterDescription): string {
 *   return `${a.description}${a.fallback ? " (software: expect CPU speed)" : ""}`;
 * }
 * ```
 */
export interface AdapterDescription {
  /** Human-readable adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** Vendor string or PCI id as reported by the adapter. */
  vendor: string;
  /** Architecture string (often empty). */
  architecture: string;
  /** True for software/fallback adapters such as Mesa's llvmpipe and lavapipe. */
  fallback: boolean;
  /** Optional features that were enabled on the device. */
  features: string[];
}

/**
 * Options for {@link requestGpu}.
 *
 * @example Prefer the discrete GPU of a laptop
 * ```ts
 * import type { RequestGpuOptions } from "@wgnn/wgnn";
 *
 * const options: RequestGpuOptions = { powerPreference: "high-performance" };
 * ```
 */
export interface RequestGpuOptions {
  /** Passed to `navigator.gpu.requestAdapter`. Default: none (the implementation's choice). */
  powerPreference?: GPUPowerPreference;
}

/** Limits raised to the adapter's maximum when it exceeds the default. */
const RAISED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxStorageBuffersPerShaderStage",
  "maxStorageTexturesPerShaderStage",
  "maxTextureDimension2D",
] as const;

/** Optional features enabled when the adapter offers them. */
const WANTED_FEATURES = ["shader-f16", "timestamp-query"] as const;

/**
 * A WebGPU device with the toolkit's bookkeeping: memory counters, a pipeline cache, a
 * readback pool and deferred error reporting. Obtain it with {@link requestGpu}.
 *
 * Ownership: whoever allocates with {@link Gpu.createBuffer} or {@link Gpu.createTexture}
 * disposes the result; {@link Gpu.memory} counts what is live, so a leak shows as a number.
 *
 * @example Check that a step loop allocates nothing
 * ```ts
 * import type { Gpu } from "@wgnn/wgnn";
 *
 * async function assertFlatMemory(gpu: Gpu, step: () => void, steps = 10): Promise<void> {
 *   step(); // the first step may build pipelines and bind groups
 *   await gpu.sync();
 *   const before = gpu.memory.liveBytes;
 *   for (let i = 0; i < steps; i++) step();
 *   await gpu.sync(); // also throws any recorded GPU error
 *   if (gpu.memory.liveBytes !== before) throw new Error("the step loop allocates");
 * }
 * ```
 */
export class Gpu {
  /** The underlying WebGPU device. */
  readonly device: GPUDevice;
  /** The adapter's description and features. */
  readonly adapter: AdapterDescription;
  /** The limits the device was created with. */
  readonly limits: GPUSupportedLimits;
  /** Live and peak bytes of buffers and textures allocated through this Gpu. */
  readonly memory: MemoryStats = { liveBytes: 0, peakBytes: 0, liveObjects: 0 };
  /**
   * Compiled compute pipelines keyed by (kernel, entry point, override constants). Plumbing for
   * layers and kernels of your own: its type, `PipelineCache`, is in `@wgnn/wgnn/advanced`.
   *
   * @internal
   */
  readonly pipelines: PipelineCache;
  /**
   * Staging buffers for readbacks, keyed by size (used by {@link GpuBuffer.read}).
   *
   * @internal
   */
  readonly readbacks: BufferPool;
  #errors: string[] = [];
  #lost: GPUDeviceLostInfo | null = null;
  /** The first out-of-memory reported by an allocation's error scope, not yet thrown. */
  #outOfMemory: GpuMemoryError | null = null;
  /** Error scopes of allocations whose answer has not arrived yet. */
  readonly #pending = new Set<Promise<void>>();
  /** Label of the kernel most recently created or encoded, for error messages. */
  lastKernel = "(none)";

  /** Wraps `device` (use {@link requestGpu}; tests may wrap a private device). */
  constructor(device: GPUDevice, adapter: AdapterDescription) {
    this.device = device;
    this.adapter = adapter;
    this.limits = device.limits;
    // The cache and the pool keep this Gpu as their PipelineOwner and BufferOwner: interfaces
    // declared beside them, so that kernels.ts and buffer.ts need nothing from this file.
    this.pipelines = new PipelineCache(this);
    this.readbacks = new BufferPool(this, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    device.addEventListener("uncapturederror", (event) => {
      const error = (event as GPUUncapturedErrorEvent).error;
      this.recordError(
        `${error.constructor.name} near kernel ${this.lastKernel}: ${error.message}`,
      );
    });
    device.lost.then((info) => {
      this.#lost = info;
    });
  }

  /** Records an error to be thrown at the next {@link Gpu.check} or {@link Gpu.sync}. */
  recordError(message: string): void {
    this.#errors.push(message);
  }

  /** True once the device has been lost. */
  get isLost(): boolean {
    return this.#lost !== null;
  }

  /**
   * Throws, in this order: a {@link DeviceLostError} once the device is lost; a
   * {@link GpuMemoryError} for an allocation the GPU could not satisfy (validation errors
   * recorded with it are its consequences and are dropped); the first recorded validation error.
   */
  check(): void {
    if (this.#lost !== null) {
      throw new DeviceLostError(this.#lost.reason, this.#lost.message, this.lastKernel);
    }
    if (this.#outOfMemory !== null) {
      const error = this.#outOfMemory;
      this.#outOfMemory = null;
      this.#errors = [];
      throw error;
    }
    if (this.#errors.length > 0) {
      const [first, ...rest] = this.#errors;
      this.#errors = [];
      const more = rest.length > 0 ? ` (and ${rest.length} more)` : "";
      throw new Error(`GPU error: ${first}${more}`);
    }
  }

  /** Waits until all submitted work has finished, then reports any recorded error. */
  async sync(): Promise<void> {
    this.check();
    await Promise.all(this.#pending);
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  /** Waits for the error scopes of all allocations so far and throws a {@link GpuMemoryError}. */
  async checkAllocations(): Promise<void> {
    await Promise.all(this.#pending);
    this.check();
  }

  /**
   * The error to report for a WebGPU operation that rejected (e.g. `mapAsync`): a
   * {@link DeviceLostError} when the device was lost (`device.lost` settles a task after the
   * operations that fail because of it, so this waits one task), else the error of
   * {@link Gpu.check}, else `error` itself.
   */
  async explain(error: unknown): Promise<unknown> {
    if (this.#lost === null) await new Promise((resolve) => setTimeout(resolve, 0));
    try {
      this.check();
    } catch (recorded) {
      return recorded;
    }
    return error;
  }

  /**
   * Runs `allocate` inside an out-of-memory error scope. The answer arrives asynchronously; a
   * failure is kept and thrown by the next {@link Gpu.check}, {@link Gpu.sync} or readback.
   */
  #scoped<T>(kind: "buffer" | "texture", label: string, bytes: number, allocate: () => T): T {
    this.device.pushErrorScope("out-of-memory");
    try {
      return allocate();
    } finally {
      // Popped even when `allocate` throws, so no scope is left to swallow later errors.
      const answer: Promise<void> = this.device.popErrorScope().then(
        (error) => {
          if (error === null || this.#outOfMemory !== null) return;
          this.#outOfMemory = new GpuMemoryError({
            kind,
            label,
            bytes,
            limit: null,
            detail: `could not be allocated: the GPU ran out of memory (${error.message}); ` +
              `${this.memory.liveBytes} bytes were live through wgnn, maxBufferSize is ` +
              `${this.limits.maxBufferSize}`,
          });
        },
        () => {/* a lost device rejects pending scopes; check() reports the loss */},
      ).finally(() => this.#pending.delete(answer));
      this.#pending.add(answer);
    }
  }

  /** Throws a {@link GpuMemoryError} when `bytes` exceed the adapter's limit `name`. */
  #checkLimit(
    label: string,
    bytes: number,
    name: "maxBufferSize" | "maxStorageBufferBindingSize",
  ): void {
    const limit = this.limits[name];
    if (bytes > limit) {
      throw new GpuMemoryError({
        kind: "buffer",
        label,
        bytes,
        limit,
        detail: `exceed the adapter's ${name} of ${limit} bytes`,
      });
    }
  }

  /**
   * Allocates a buffer and counts its bytes. Throws a {@link GpuMemoryError} naming the size
   * and the adapter's limit when the request can never succeed; a real out-of-memory is thrown
   * at the next {@link Gpu.check}, {@link Gpu.sync} or readback.
   *
   * A storage buffer may not exceed `maxStorageBufferBindingSize`: this toolkit's kernels bind
   * tensors and parameter arenas whole, so a larger one could be allocated but never used (a
   * dataset larger than the limit is split into shards instead).
   */
  createBuffer(size: number, usage: GPUBufferUsageFlags, label: string): GpuBuffer {
    this.check();
    if (!Number.isInteger(size) || size <= 0) {
      throw new RangeError(
        `Cannot allocate buffer "${label}": size must be a positive integer: current value is ${size}`,
      );
    }
    this.#checkLimit(label, size, "maxBufferSize");
    if ((usage & GPUBufferUsage.STORAGE) !== 0) {
      this.#checkLimit(label, size, "maxStorageBufferBindingSize");
    }
    // WebGPU requires mapped and copied sizes to be multiples of 4.
    const padded = Math.ceil(size / 4) * 4;
    const buffer = this.#scoped(
      "buffer",
      label,
      padded,
      () => this.device.createBuffer({ size: padded, usage, label }),
    );
    return new GpuBuffer(this, buffer, size, label);
  }

  /** Allocates a 2D texture, counted in {@link Gpu.memory}. */
  createTexture(
    width: number,
    height: number,
    format: GPUTextureFormat,
    usage: GPUTextureUsageFlags,
    label: string,
  ): GpuTexture {
    this.check();
    const max = this.limits.maxTextureDimension2D;
    if (width < 1 || height < 1 || width > max || height > max) {
      throw new RangeError(
        `Cannot allocate texture "${label}": ${width}x${height} is outside 1..${max} per dimension`,
      );
    }
    const bytes = width * height * (format === "rgba32float" ? 16 : 4);
    const texture = this.#scoped(
      "texture",
      label,
      bytes,
      () => this.device.createTexture({ size: [width, height], format, usage, label }),
    );
    return new GpuTexture(this, texture, bytes, label);
  }
}

let shared: Promise<Gpu> | null = null;

/**
 * Returns the process-wide {@link Gpu}, creating it on first use, and again after the device
 * was lost (so a run can resume from its checkpoint in the same process).
 * Throws a clear error when no WebGPU adapter exists.
 *
 * @example Report the adapter, or why there is none
 * ```ts
 * import { requestGpu } from "@wgnn/wgnn";
 *
 * async function describeGpu(): Promise<string> {
 *   try {
 *     const gpu = await requestGpu();
 *     return `${gpu.adapter.description}, buffers up to ${gpu.limits.maxBufferSize} bytes`;
 *   } catch (error) {
 *     return `no GPU: ${(error as Error).message}`;
 *   }
 * }
 * ```
 */
export function requestGpu(options: RequestGpuOptions = {}): Promise<Gpu> {
  if (shared === null) {
    const attempt = createGpu(options);
    shared = attempt;
    // Neither a failed attempt (e.g. before drivers were installed) nor a lost device may
    // poison later calls.
    const forget = () => {
      if (shared === attempt) shared = null;
    };
    attempt.then((gpu) => gpu.device.lost.then(forget), forget);
  }
  return shared;
}

async function createGpu(options: RequestGpuOptions): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new Error(
      "Cannot start: this runtime has no WebGPU (navigator.gpu is undefined); use Deno 2.8 or newer",
    );
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (adapter === null) {
    throw new Error("no WebGPU adapter found; on Linux without a GPU install mesa-vulkan-drivers");
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const value = adapter.limits[name];
    if (typeof value === "number") requiredLimits[name] = value;
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: "wgnn" });
  const info = adapter.info;
  const description = info.description ||
    `${info.vendor} ${info.architecture} ${info.device}`.trim();
  // `isFallbackAdapter` moved from GPUAdapter to GPUAdapterInfo; Mesa's software rasterisers
  // report it, and their name says so even where the flag is missing.
  const flag = (info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false;
  const fallback = flag || /llvmpipe|lavapipe|swiftshader|software/i.test(description);
  return new Gpu(device, {
    description,
    vendor: info.vendor,
    architecture: info.architecture,
    fallback,
    features: [...requiredFeatures],
  });
}
