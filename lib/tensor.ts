/**
 * A GPU tensor: a counted buffer plus a shape and a dtype.
 *
 * Dtypes: `f32`, `u32`, and `u8` (bytes packed four to a `u32` word, as CIFAR-10 images are
 * kept on the GPU). A tensor made by {@link Tensor.empty} or {@link Tensor.from} owns its
 * buffer; a {@link Tensor.reshape} view shares it and must not outlive it.
 *
 * @module
 */

import type { Gpu } from "./gpu/device.ts";
import type { GpuBuffer } from "./gpu/buffer.ts";

/**
 * Element types a {@link Tensor} can hold: `f32` (activations, weights), `u32` (labels,
 * counters) and `u8` (images, packed four bytes to a `u32` word on the GPU).
 *
 * @example Labels as u32
 * ```ts
 * import { type DType, type Gpu, Tensor } from "@wgnn/wgnn";
 *
 * function labelsTensor(gpu: Gpu, batch: number): Tensor {
 *   const dtype: DType = "u32";
 *   return Tensor.empty(gpu, [batch], dtype, "labels");
 * }
 * ```
 */
export type DType = "f32" | "u32" | "u8";

const USAGE = GPUBufferUsageFlagsAll();

function GPUBufferUsageFlagsAll(): number {
  // STORAGE for kernels, COPY_SRC for readbacks and texture packing, COPY_DST for uploads.
  return typeof GPUBufferUsage === "undefined"
    ? 0
    : GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
}

/** Bytes needed for `numel` elements of `dtype` (u8 is rounded up to whole u32 words). */
export function byteSize(dtype: DType, numel: number): number {
  return dtype === "u8" ? Math.ceil(numel / 4) * 4 : numel * 4;
}

/** Checks a shape and returns its element count, naming `what` in errors. */
export function checkShape(what: string, shape: readonly number[]): number {
  if (!Array.isArray(shape) || shape.length === 0) {
    throw new TypeError(
      `Cannot create ${what}: shape must be a non-empty array: current value is ${
        JSON.stringify(shape)
      }`,
    );
  }
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d <= 0) {
      throw new RangeError(
        `Cannot create ${what}: dimensions must be positive integers: current shape is [${
          shape.join(", ")
        }]`,
      );
    }
    n *= d;
  }
  return n;
}

/**
 * Options of {@link Tensor.from}.
 *
 * @example Labels for a 10-class problem
 * ```ts
 * import type { TensorFromOptions } from "@wgnn/wgnn";
 *
 * const options: TensorFromOptions = { label: "labels", dtype: "u32", classes: 10 };
 * ```
 */
export interface TensorFromOptions {
  /** Debug label. Default: "tensor". */
  label?: string;
  /** The dtype the data must have. Default: the typed array's (f32 for a plain array). */
  dtype?: DType;
  /**
   * The data are labels of this many classes: every value must be below it. Implies (and
   * requires) dtype u32. Default: none (the data are not checked as labels).
   */
  classes?: number;
}

/** The typed array each dtype is uploaded from. */
const TYPED_ARRAY = { f32: Float32Array, u32: Uint32Array, u8: Uint8Array } as const;

/** The largest value a plain array may hold for each dtype (f32: any finite number). */
const MAX_INTEGER = { f32: Infinity, u32: 0xffffffff, u8: 0xff } as const;

/** "a Float64Array of length 3", "a string", "null": what a value is, for error messages. */
export function describeData(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name;
    const length = "length" in value ? (value as { length: number }).length : value.byteLength;
    return `${/^[AEIO]/.test(name) ? "an" : "a"} ${name} of length ${length}`;
  }
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "no class"})`;
  return `${/^[aeiou]/.test(typeof value) ? "an" : "a"} ${typeof value}`;
}

/** The dtype `data` is uploaded as: `wanted` if given (the data must match it), else inferred. */
function fromDType(what: string, data: unknown, wanted: DType | undefined): DType {
  if (wanted !== undefined && !Object.hasOwn(TYPED_ARRAY, wanted)) {
    throw new TypeError(`Cannot ${what}: dtype must be f32, u32 or u8: current value is ${wanted}`);
  }
  if (Array.isArray(data)) return wanted ?? "f32";
  if (wanted !== undefined) {
    if (data instanceof TYPED_ARRAY[wanted]) return wanted;
    throw new TypeError(
      `Cannot ${what}: data must be a ${
        TYPED_ARRAY[wanted].name
      } for dtype ${wanted}: current value is ${describeData(data)}`,
    );
  }
  if (data instanceof Float32Array) return "f32";
  if (data instanceof Uint32Array) return "u32";
  if (data instanceof Uint8Array) return "u8";
  throw new TypeError(
    `Cannot ${what}: data must be a Float32Array (f32), a Uint32Array (u32), a Uint8Array (u8) or an array of finite numbers: current value is ${
      describeData(data)
    }`,
  );
}

/** A plain array as the typed array of `dtype`, after checking every value fits it. */
function fromNumbers(
  what: string,
  data: unknown[],
  dtype: DType,
): Float32Array | Uint32Array | Uint8Array {
  const max = MAX_INTEGER[dtype];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TypeError(
        `Cannot ${what}: data must be an array of finite numbers: current value at index ${i} is ${
          typeof v === "number" ? v : describeData(v)
        }`,
      );
    }
    if (max !== Infinity && !(Number.isInteger(v) && v >= 0 && v <= max)) {
      throw new RangeError(
        `Cannot ${what}: data for dtype ${dtype} must be integers in [0, ${max}]: current value at index ${i} is ${v}`,
      );
    }
  }
  const numbers = data as number[];
  if (dtype === "f32") return new Float32Array(numbers);
  return dtype === "u32" ? new Uint32Array(numbers) : new Uint8Array(numbers);
}

/**
 * Checks that every label is below `classes` (a positive integer), as PyTorch's "Target 7 is
 * out of bounds". Throws a RangeError naming `what` (e.g. `upload dataset "train"`), the first
 * bad index and its value.
 */
export function checkLabels(what: string, labels: ArrayLike<number>, classes: number): void {
  if (!Number.isInteger(classes) || classes <= 0) {
    throw new RangeError(
      `Cannot ${what}: classes must be a positive integer: current value is ${classes}`,
    );
  }
  for (let i = 0; i < labels.length; i++) {
    if (!(labels[i] < classes)) {
      throw new RangeError(
        `Cannot ${what}: every label must be below the class count (${classes} classes): current value at index ${i} is ${
          labels[i]
        }`,
      );
    }
  }
}

/**
 * A tensor living in a GPU buffer: a shape, a {@link DType} and a range of a buffer.
 *
 * Ownership: {@link Tensor.empty} and {@link Tensor.from} return a tensor the caller owns and
 * must {@link Tensor.dispose} (or declare with `using`); {@link Tensor.reshape} and
 * {@link Tensor.view} return views that share the buffer and must not outlive it. Tensors that
 * layers and losses return stay owned by them.
 *
 * @example Upload, reshape, read back
 * ```ts
 * import { type Gpu, Tensor } from "@wgnn/wgnn";
 *
 * async function roundTrip(gpu: Gpu): Promise<Float32Array> {
 *   using x = Tensor.from(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], "x");
 *   const flat = x.reshape([6]); // a view: no copy, freed with x
 *   return await flat.toFloat32(); // waits for the GPU: Float32Array [1, 2, 3, 4, 5, 6]
 * }
 * ```
 */
export class Tensor {
  /** The GPU this tensor lives on. */
  readonly gpu: Gpu;
  /** The buffer holding the elements (row-major). */
  readonly storage: GpuBuffer;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Debug label. */
  readonly label: string;
  /** Whether this tensor owns (and disposes) its buffer. */
  readonly owner: boolean;
  /** Where the elements start in the buffer (a multiple of the storage offset alignment). */
  readonly byteOffset: number;

  private constructor(
    gpu: Gpu,
    storage: GpuBuffer,
    shape: readonly number[],
    dtype: DType,
    label: string,
    owner: boolean,
    byteOffset = 0,
  ) {
    this.gpu = gpu;
    this.storage = storage;
    this.byteOffset = byteOffset;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.label = label;
    this.owner = owner;
  }

  /** Allocates an uninitialised (zeroed) tensor. The caller owns it. */
  static empty(gpu: Gpu, shape: readonly number[], dtype: DType = "f32", label = "tensor"): Tensor {
    const numel = checkShape(`tensor "${label}"`, shape);
    const storage = gpu.createBuffer(byteSize(dtype, numel), USAGE, label);
    return new Tensor(gpu, storage, shape, dtype, label, true);
  }

  /**
   * Uploads `data` into a new tensor of `shape`. The caller owns it. The dtype follows the
   * typed array (Float32Array → f32, Uint32Array → u32, Uint8Array → u8; a plain array of
   * finite numbers → f32), or is `options.dtype`, which the data must then match. With
   * `options.classes` the data are labels: u32, each below `classes`. The fourth argument may
   * also be the label alone. Throws a TypeError for data of another kind and a RangeError for a
   * wrong length or a label out of range.
   *
   * @example Labels checked against the class count
   * ```ts
   * import { type Gpu, Tensor } from "@wgnn/wgnn";
   * import { throws } from "node:assert/strict";
   *
   * function labels(gpu: Gpu): Tensor {
   *   throws(() => Tensor.from(gpu, Uint32Array.of(3, 10), [2], { classes: 10 }), RangeError);
   *   throws(() => Tensor.from(gpu, new Float64Array(2) as never, [2]), TypeError);
   *   return Tensor.from(gpu, Uint32Array.of(3, 9), [2], { label: "y", classes: 10 });
   * }
   * ```
   */
  static from(
    gpu: Gpu,
    data: Float32Array | Uint32Array | Uint8Array | number[],
    shape: readonly number[],
    options: string | TensorFromOptions = {},
  ): Tensor {
    const { label = "tensor", dtype: wanted, classes } = typeof options === "string"
      ? { label: options }
      : options ?? {};
    const what = `create tensor "${label}"`;
    const dtype = fromDType(what, data, classes === undefined ? wanted : wanted ?? "u32");
    const array = Array.isArray(data) ? fromNumbers(what, data, dtype) : data;
    const numel = checkShape(`tensor "${label}"`, shape);
    if (array.length !== numel) {
      throw new RangeError(
        `Cannot ${what}: ${array.length} values do not fill shape [${
          shape.join(", ")
        }] (${numel} elements)`,
      );
    }
    if (classes !== undefined) {
      if (dtype !== "u32") {
        throw new TypeError(
          `Cannot ${what}: labels checked against classes must be a Uint32Array (dtype u32): current value is ${
            describeData(data)
          }`,
        );
      }
      checkLabels(what, array, classes);
    }
    const t = Tensor.empty(gpu, shape, dtype, label);
    t.write(array);
    return t;
  }

  /** Number of elements. */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The WebGPU buffer, for binding. Throws once disposed. */
  get buffer(): GPUBuffer {
    return this.storage.buffer;
  }

  /**
   * A view of `shape` at `byteOffset` inside `parent`'s buffer (e.g. one parameter inside a
   * model's flat parameter arena). The view does not own the buffer.
   */
  static view(parent: Tensor, byteOffset: number, shape: readonly number[], label: string): Tensor {
    const numel = checkShape(`view "${label}"`, shape);
    const align = parent.gpu.limits.minStorageBufferOffsetAlignment;
    const absolute = parent.byteOffset + byteOffset;
    if (absolute % align !== 0) {
      throw new RangeError(
        `Cannot create view "${label}": offset ${absolute} is not a multiple of ${align}`,
      );
    }
    if (
      byteOffset < 0 ||
      byteOffset + byteSize(parent.dtype, numel) > byteSize(parent.dtype, parent.numel)
    ) {
      throw new RangeError(
        `Cannot create view "${label}": [${
          shape.join(", ")
        }] at byte ${byteOffset} overruns "${parent.label}" [${parent.shape.join(", ")}]`,
      );
    }
    return new Tensor(parent.gpu, parent.storage, shape, parent.dtype, label, false, absolute);
  }

  /** Size in bytes of the elements (u8 rounded up to whole words). */
  get byteLength(): number {
    return byteSize(this.dtype, this.numel);
  }

  /** The buffer range to bind for this tensor. */
  binding(): GPUBufferBinding {
    return { buffer: this.storage.buffer, offset: this.byteOffset, size: this.byteLength };
  }

  /** A view with another shape of the same element count, sharing the buffer. */
  reshape(shape: readonly number[]): Tensor {
    const numel = checkShape(`view of "${this.label}"`, shape);
    if (numel !== this.numel) {
      throw new RangeError(
        `Cannot reshape "${this.label}" from [${this.shape.join(", ")}] to [${
          shape.join(", ")
        }]: element counts differ`,
      );
    }
    return new Tensor(
      this.gpu,
      this.storage,
      shape,
      this.dtype,
      this.label,
      false,
      this.byteOffset,
    );
  }

  /** Uploads `data` (same element count) into this tensor's range (queued; no wait). */
  write(data: Float32Array | Uint32Array | Uint8Array): void {
    // A foreign typed array would be taken as raw bytes, and a non-array can panic the
    // runtime inside queue.writeBuffer: refuse both here.
    if (!(data instanceof TYPED_ARRAY[this.dtype])) {
      throw new TypeError(
        `Cannot write into "${this.label}": data must be a ${
          TYPED_ARRAY[this.dtype].name
        } for dtype ${this.dtype}: current value is ${describeData(data)}`,
      );
    }
    const bytes = data.byteLength;
    if (
      bytes !== byteSize(this.dtype, this.numel) &&
      !(this.dtype === "u8" && data.length === this.numel)
    ) {
      throw new RangeError(
        `Cannot write ${data.length} values into "${this.label}" [${this.shape.join(", ")}]`,
      );
    }
    this.storage.write(data, this.byteOffset);
  }

  /** Throws a RangeError unless the shape equals `expected` (-1 matches any size). */
  expectShape(what: string, expected: readonly number[]): void {
    const ok = expected.length === this.shape.length &&
      expected.every((d, i) => d === -1 || d === this.shape[i]);
    if (!ok) {
      const want = expected.map((d) => (d === -1 ? "*" : String(d))).join(", ");
      throw new RangeError(
        `${what}: expected shape [${want}]: current shape of "${this.label}" is [${
          this.shape.join(", ")
        }]`,
      );
    }
  }

  /** Reads the tensor back (waits for the GPU). f32 → Float32Array, u32 → Uint32Array, u8 → Uint8Array. */
  async read(): Promise<Float32Array | Uint32Array | Uint8Array> {
    const bytes = await this.storage.read(this.byteOffset, this.byteLength);
    if (this.dtype === "f32") return new Float32Array(bytes);
    if (this.dtype === "u32") return new Uint32Array(bytes);
    return new Uint8Array(bytes, 0, this.numel);
  }

  /** Reads an f32 tensor back as a Float32Array. */
  async toFloat32(): Promise<Float32Array> {
    if (this.dtype !== "f32") {
      throw new TypeError(`Cannot read "${this.label}" as f32: its dtype is ${this.dtype}`);
    }
    return (await this.read()) as Float32Array;
  }

  /** Frees the buffer if this tensor owns it; views do nothing. */
  dispose(): void {
    if (this.owner) this.storage.dispose();
  }

  /** Same as {@link Tensor.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
