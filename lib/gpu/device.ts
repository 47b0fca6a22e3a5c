/**
 * Device acquisition: one shared {@link Gpu} per process.
 *
 * The adapter's own limits are requested where they exceed WebGPU's defaults (storage binding
 * size, buffer size, workgroup storage, storage textures per stage, texture size), because the
 * seed's first layer binds a 12 MiB activation and the matmul engine reads operands through
 * storage textures. Validation errors and device loss are recorded with the name of the kernel
 * that was being built or encoded and thrown at the next synchronisation point
 * ({@link Gpu.sync}, a readback), so a bad dispatch never turns into silent zeros.
 *
 * @module
 */

import { BufferPool, GpuBuffer, type MemoryStats } from "./buffer.ts";
import { PipelineCache } from "./kernels.ts";

/** What we know about the adapter behind a {@link Gpu}. */
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

/** Options for {@link requestGpu}. */
export interface RequestGpuOptions {
  /** Passed to `navigator.gpu.requestAdapter`. */
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
  /** Compiled compute pipelines keyed by (kernel, entry point, override constants). */
  readonly pipelines: PipelineCache;
  /** Staging buffers for readbacks, keyed by size. */
  readonly readbacks: BufferPool;
  #errors: string[] = [];
  #lost: string | null = null;
  /** Label of the kernel most recently created or encoded, for error messages. */
  lastKernel = "(none)";

  constructor(device: GPUDevice, adapter: AdapterDescription) {
    this.device = device;
    this.adapter = adapter;
    this.limits = device.limits;
    this.pipelines = new PipelineCache(this);
    this.readbacks = new BufferPool(this, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    device.addEventListener("uncapturederror", (event) => {
      const error = (event as GPUUncapturedErrorEvent).error;
      this.recordError(
        `${error.constructor.name} near kernel ${this.lastKernel}: ${error.message}`,
      );
    });
    device.lost.then((info) => {
      this.#lost = `WebGPU device lost (${info.reason}): ${info.message}`;
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

  /** Throws the first recorded validation error or the device-loss reason, if any. */
  check(): void {
    if (this.#lost !== null) throw new Error(this.#lost);
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
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  /**
   * Allocates a buffer and counts its bytes. Throws a RangeError naming the size and the
   * adapter's limit when the request can never succeed.
   */
  createBuffer(size: number, usage: GPUBufferUsageFlags, label: string): GpuBuffer {
    this.check();
    if (!Number.isInteger(size) || size <= 0) {
      throw new RangeError(
        `Cannot allocate buffer "${label}": size must be a positive integer: current value is ${size}`,
      );
    }
    if (size > this.limits.maxBufferSize) {
      throw new RangeError(
        `Cannot allocate buffer "${label}": ${size} bytes exceed the adapter's maxBufferSize of ${this.limits.maxBufferSize} bytes; lower the batch size`,
      );
    }
    // WebGPU requires mapped and copied sizes to be multiples of 4.
    const padded = Math.ceil(size / 4) * 4;
    const buffer = this.device.createBuffer({ size: padded, usage, label });
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
    const texture = this.device.createTexture({ size: [width, height], format, usage, label });
    const bytesPerTexel = format === "rgba32float" ? 16 : 4;
    return new GpuTexture(this, texture, width * height * bytesPerTexel, label);
  }
}

/** A counted texture with explicit {@link GpuTexture.dispose}. */
export class GpuTexture {
  readonly #gpu: Gpu;
  #texture: GPUTexture | null;
  /** Bytes counted against {@link Gpu.memory}. */
  readonly bytes: number;
  /** Debug label. */
  readonly label: string;

  constructor(gpu: Gpu, texture: GPUTexture, bytes: number, label: string) {
    this.#gpu = gpu;
    this.#texture = texture;
    this.bytes = bytes;
    this.label = label;
    gpu.memory.liveBytes += bytes;
    gpu.memory.liveObjects += 1;
    gpu.memory.peakBytes = Math.max(gpu.memory.peakBytes, gpu.memory.liveBytes);
  }

  /** The WebGPU texture; throws once disposed. */
  get texture(): GPUTexture {
    if (this.#texture === null) {
      throw new Error(`Cannot use texture "${this.label}": it was disposed`);
    }
    return this.#texture;
  }

  /** Frees the texture; idempotent. */
  dispose(): void {
    if (this.#texture === null) return;
    this.#texture.destroy();
    this.#texture = null;
    this.#gpu.memory.liveBytes -= this.bytes;
    this.#gpu.memory.liveObjects -= 1;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

let shared: Promise<Gpu> | null = null;

/**
 * Returns the process-wide {@link Gpu}, creating it on first use.
 * Throws a clear error when no WebGPU adapter exists.
 */
export function requestGpu(options: RequestGpuOptions = {}): Promise<Gpu> {
  if (shared === null) {
    shared = createGpu(options);
    // A failed attempt must not poison later ones (e.g. after installing drivers in-process).
    shared.catch(() => (shared = null));
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
