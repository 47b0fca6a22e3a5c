/**
 * Counted GPU buffers and textures with explicit ownership, uploads and pooled readbacks.
 *
 * Ownership rule: whoever creates a {@link GpuBuffer} disposes it. Buffers are never recycled
 * by the garbage collector; {@link MemoryStats.liveBytes} lets tests assert that the step loop
 * allocates nothing.
 *
 * @module
 */

/**
 * What a buffer, a texture and a pool use of the {@link Gpu} that owns them: its device, its
 * memory counters, its readback pool, its deferred errors and its allocator. A `Gpu` is one, and
 * passes itself. Declared here, so that this file needs nothing from device.ts, which builds its
 * readback pool from this one.
 *
 * @example An owner's live bytes, whatever the owner is
 * ```ts
 * import type { BufferOwner } from "@wgnn/wgnn/advanced";
 *
 * const liveMiB = (owner: BufferOwner) => owner.memory.liveBytes / 2 ** 20;
 * ```
 */
export interface BufferOwner {
  /** The WebGPU device the buffers live on. */
  readonly device: GPUDevice;
  /** Counted here as buffers and textures are made and freed. */
  readonly memory: MemoryStats;
  /** Staging buffers for {@link GpuBuffer.read}. */
  readonly readbacks: BufferPool;
  /** Throws the first error recorded since the last check (as {@link Gpu.check}). */
  check(): void;
  /** The error to report for a rejected WebGPU operation (as {@link Gpu.explain}). */
  explain(error: unknown): Promise<unknown>;
  /** Allocates a counted buffer (as {@link Gpu.createBuffer}). */
  createBuffer(size: number, usage: GPUBufferUsageFlags, label: string): GpuBuffer;
}

/**
 * Live and peak bytes of GPU memory allocated through one {@link Gpu}.
 *
 * @example A one-line memory report
 * ```ts
 * import type { MemoryStats } from "@wgnn/wgnn";
 *
 * const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
 * function memoryLine(m: MemoryStats): string {
 *   return `${mib(m.liveBytes)} in ${m.liveObjects} objects (peak ${mib(m.peakBytes)})`;
 * }
 * ```
 */
export interface MemoryStats {
  /** Bytes currently allocated (buffers and textures). */
  liveBytes: number;
  /** Highest value `liveBytes` has reached. */
  peakBytes: number;
  /** Number of live buffers and textures. */
  liveObjects: number;
}

/**
 * A GPU buffer counted in {@link Gpu.memory}, freed by {@link GpuBuffer.dispose}. Made by
 * {@link Gpu.createBuffer}; the caller owns it.
 *
 * @example Write four words, read them back, free the buffer with `using`
 * ```ts
 * import type { Gpu } from "@wgnn/wgnn";
 *
 * async function roundTrip(gpu: Gpu): Promise<Uint32Array> {
 *   const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
 *   using buffer = gpu.createBuffer(16, usage, "four words");
 *   buffer.write(new Uint32Array([1, 2, 3, 4]));
 *   return new Uint32Array(await buffer.read()); // waits for the GPU: [1, 2, 3, 4]
 * }
 * ```
 */
export class GpuBuffer {
  readonly #gpu: BufferOwner;
  #buffer: GPUBuffer | null;
  /** Requested size in bytes (the real buffer is rounded up to a multiple of 4). */
  readonly size: number;
  /** Debug label, used in error messages. */
  readonly label: string;

  /**
   * Counts `buffer` (already created on `gpu.device`); use {@link Gpu.createBuffer}.
   *
   * @internal
   */
  constructor(gpu: BufferOwner, buffer: GPUBuffer, size: number, label: string) {
    this.#gpu = gpu;
    this.#buffer = buffer;
    this.size = size;
    this.label = label;
    gpu.memory.liveBytes += buffer.size;
    gpu.memory.liveObjects += 1;
    gpu.memory.peakBytes = Math.max(gpu.memory.peakBytes, gpu.memory.liveBytes);
  }

  /** The WebGPU buffer; throws once disposed. */
  get buffer(): GPUBuffer {
    if (this.#buffer === null) {
      throw new Error(`Cannot use buffer "${this.label}": it was disposed`);
    }
    return this.#buffer;
  }

  /** True after {@link GpuBuffer.dispose}. */
  get disposed(): boolean {
    return this.#buffer === null;
  }

  /** Copies `data` into the buffer at `byteOffset` (queued; no wait). */
  write(data: ArrayBufferView, byteOffset = 0): void {
    if (byteOffset + data.byteLength > this.buffer.size) {
      throw new RangeError(
        `Cannot write ${data.byteLength} bytes at offset ${byteOffset} into buffer "${this.label}" of ${this.size} bytes`,
      );
    }
    // writeBuffer needs a multiple of 4 bytes; pad a copy when the view is not.
    let view = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    if (view.byteLength % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(view.byteLength / 4) * 4);
      padded.set(view);
      view = padded;
    }
    this.#gpu.device.queue.writeBuffer(this.buffer, byteOffset, view);
  }

  /**
   * Reads `size` bytes (default: the rest of the buffer) from `byteOffset` (default: 0), waiting
   * for all submitted work. Throws the errors of {@link Gpu.check}: a validation error, a
   * GpuMemoryError, or a DeviceLostError when the device was lost before or during the read.
   */
  async read(byteOffset = 0, size = this.size - byteOffset): Promise<ArrayBuffer> {
    const gpu = this.#gpu;
    const padded = Math.ceil(size / 4) * 4;
    if (byteOffset % 4 !== 0 || byteOffset + padded > this.buffer.size) {
      throw new RangeError(
        `Cannot read ${size} bytes at offset ${byteOffset} from buffer "${this.label}" of ${this.size} bytes`,
      );
    }
    const staging = gpu.readbacks.take(padded);
    try {
      const encoder = gpu.device.createCommandEncoder({ label: `read ${this.label}` });
      encoder.copyBufferToBuffer(this.buffer, byteOffset, staging.buffer, 0, padded);
      gpu.device.queue.submit([encoder.finish()]);
      gpu.check();
      try {
        await staging.buffer.mapAsync(GPUMapMode.READ, 0, padded);
      } catch (error) {
        // A lost device fails the map before `device.lost` settles; explain() waits for it.
        throw await gpu.explain(error);
      }
      const copy = staging.buffer.getMappedRange(0, padded).slice(0, size);
      staging.buffer.unmap();
      gpu.check();
      return copy;
    } finally {
      gpu.readbacks.give(staging);
    }
  }

  /** Frees the buffer; idempotent. */
  dispose(): void {
    if (this.#buffer === null) return;
    this.#gpu.memory.liveBytes -= this.#buffer.size;
    this.#gpu.memory.liveObjects -= 1;
    this.#buffer.destroy();
    this.#buffer = null;
  }

  /** Same as {@link GpuBuffer.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Buffers of one usage kept for reuse, keyed by size: readbacks of the same size (a loss, a
 * history row) reuse one staging buffer instead of allocating per call. The pool owns what it
 * holds; {@link BufferPool.clear} frees it.
 *
 * @example Staging buffers for uploads, reused by size
 * ```ts
 * import { BufferPool, type Gpu } from "@wgnn/wgnn/advanced";
 *
 * function uploadPool(gpu: Gpu): BufferPool {
 *   return new BufferPool(gpu, GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC);
 * }
 * // const staging = pool.take(4096); ... pool.give(staging); ... pool.clear();
 * ```
 */
export class BufferPool {
  readonly #gpu: BufferOwner;
  readonly #usage: GPUBufferUsageFlags;
  readonly #free = new Map<number, GpuBuffer[]>();

  /** An empty pool of buffers with `usage` on `gpu` (a {@link Gpu}, or any {@link BufferOwner}). */
  constructor(gpu: BufferOwner, usage: GPUBufferUsageFlags) {
    this.#gpu = gpu;
    this.#usage = usage;
  }

  /** A buffer of exactly `size` bytes, reused when one is free. */
  take(size: number): GpuBuffer {
    const list = this.#free.get(size);
    const reused = list?.pop();
    return reused ?? this.#gpu.createBuffer(size, this.#usage, `pool ${size}B`);
  }

  /** Returns a buffer taken with {@link BufferPool.take}. */
  give(buffer: GpuBuffer): void {
    if (buffer.disposed) return;
    const list = this.#free.get(buffer.size) ?? [];
    list.push(buffer);
    this.#free.set(buffer.size, list);
  }

  /** Frees every pooled buffer. */
  clear(): void {
    for (const list of this.#free.values()) for (const b of list) b.dispose();
    this.#free.clear();
  }
}

/**
 * A texture counted in {@link Gpu.memory}, freed by {@link GpuTexture.dispose}. Made by
 * {@link Gpu.createTexture}; the caller owns it.
 *
 * @example A matmul operand texture
 * ```ts
 * import type { Gpu, GpuTexture } from "@wgnn/wgnn";
 *
 * function operandTexture(gpu: Gpu, rows: number, cols: number): GpuTexture {
 *   const usage = GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST;
 *   return gpu.createTexture(Math.ceil(cols / 4), rows, "rgba32float", usage, "operand");
 * }
 * ```
 */
export class GpuTexture {
  readonly #gpu: BufferOwner;
  #texture: GPUTexture | null;
  /** Bytes counted against {@link Gpu.memory}. */
  readonly bytes: number;
  /** Debug label. */
  readonly label: string;

  /**
   * Counts `texture` (already created on `gpu.device`); use {@link Gpu.createTexture}.
   *
   * @internal
   */
  constructor(gpu: BufferOwner, texture: GPUTexture, bytes: number, label: string) {
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

  /** Same as {@link GpuTexture.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
