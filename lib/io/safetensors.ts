/**
 * Reading and writing the safetensors format, so state dicts travel between this toolkit and
 * PyTorch.
 *
 * Layout: an 8-byte little-endian u64 `N`, `N` bytes of UTF-8 JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`), then
 * the data buffer; offsets are relative to the buffer's start and must tile it exactly.
 *
 * The writer lays files out as the reference implementation does: tensors sorted by descending
 * dtype alignment, then by name (so every tensor starts aligned to its element size), compact
 * JSON with `__metadata__` first (its keys sorted), and the header padded with spaces to a
 * multiple of 8 bytes. The reader validates the whole header before it allocates anything, so a
 * malformed or hostile file costs at most its own size in memory and throws a clear `Error`.
 *
 * @module
 */

import { cut, type Json, parseJson, show } from "./strict_json.ts";

/**
 * Element types of safetensors files (F16 and BF16 are kept as raw 16-bit patterns). F8 types
 * are not supported.
 *
 * @example A BF16 tensor as bit patterns
 * ```ts
 * import { decodeSafetensors, encodeSafetensors, type SafetensorsDType } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * const dtype: SafetensorsDType = "BF16";
 * const one = 0x3f80; // 1.0 in bfloat16: the top 16 bits of the f32 0x3f800000
 * const bytes = encodeSafetensors({ x: { dtype, shape: [2], data: Uint16Array.of(one, one) } });
 * deepEqual(decodeSafetensors(bytes).tensors.get("x")?.data, Uint16Array.of(one, one));
 * ```
 */
export type SafetensorsDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

/**
 * The typed arrays that hold tensor data on the host; {@link HostTensor.dtype} fixes which.
 *
 * @example The array for each dtype
 * ```ts
 * import type { HostTensorData } from "@wgnn/wgnn";
 *
 * const f32: HostTensorData = new Float32Array(4); // F32
 * const i64: HostTensorData = new BigInt64Array(1); // I64
 * const bool: HostTensorData = Uint8Array.of(0, 1); // BOOL, U8
 * console.log(f32.length, i64.length, bool.length);
 * ```
 */
export type HostTensorData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

/**
 * A tensor in host memory, as read from or written to a safetensors file: row-major data of
 * `dtype` with `shape`. (`mod.ts` exports it as `SafetensorsTensor`.)
 *
 * @example A 2×2 F32 weight
 * ```ts
 * import type { SafetensorsTensor } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * const weight: SafetensorsTensor = {
 *   dtype: "F32",
 *   shape: [2, 2],
 *   data: new Float32Array([1, 2, 3, 4]),
 * };
 * equal(weight.data.length, weight.shape[0] * weight.shape[1]);
 * ```
 */
export interface HostTensor {
  /**
   * Element type; it fixes the typed array: F32 → Float32Array, I64 → BigInt64Array, BOOL →
   * Uint8Array (0/1), F16/BF16 → Uint16Array (bit patterns), and so on.
   */
  dtype: SafetensorsDType;
  /** Dimensions; `[]` is a scalar (one element). */
  shape: readonly number[];
  /** `product(shape)` elements, row-major. */
  data: HostTensorData;
}

/**
 * A tensor of a model's state dict: F32 values, or an I64 counter (BatchNorm's
 * `num_batches_tracked`), in PyTorch's layout. It is a {@link HostTensor} narrowed to what
 * `Sequential.loadStateDict` takes, and has the same members as lib/nn/module.ts's
 * `HostTensor` (exported as `HostTensor` by `mod.ts`), so either is assignable to the other
 * without a cast; {@link stateDictOf} turns a file's tensors into such a dict.
 *
 * @example A weight and a counter
 * ```ts
 * import type { StateTensor } from "./safetensors.ts";
 *
 * const state: Record<string, StateTensor> = {
 *   "1.running_mean": { dtype: "F32", shape: [2], data: Float32Array.of(0, 0) },
 *   "1.num_batches_tracked": { dtype: "I64", shape: [], data: BigInt64Array.of(3n) },
 * };
 * console.log(Object.keys(state));
 * ```
 */
export interface StateTensor extends HostTensor {
  /** F32 for parameters and running statistics, I64 for counters. */
  dtype: "F32" | "I64";
  /** PyTorch's shape; `[]` is a scalar. */
  shape: number[];
  /** Float32Array for F32, BigInt64Array for I64. */
  data: Float32Array | BigInt64Array;
}

/**
 * What {@link decodeSafetensors} (and `readSafetensorsFile`) return.
 *
 * @example Tensors and metadata of a file
 * ```ts
 * import { decodeSafetensors, encodeSafetensors, type Safetensors } from "@wgnn/wgnn";
 * import { deepEqual } from "node:assert/strict";
 *
 * const bytes = encodeSafetensors(
 *   { bias: { dtype: "F32", shape: [2], data: new Float32Array([0.5, -0.5]) } },
 *   { epoch: "3" },
 * );
 * const file: Safetensors = decodeSafetensors(bytes);
 * deepEqual([...file.tensors.keys()], ["bias"]);
 * deepEqual(file.metadata, { epoch: "3" });
 * ```
 */
export interface Safetensors {
  /** The tensors in file order; each owns an aligned copy of its data. */
  tensors: Map<string, HostTensor>;
  /** The `__metadata__` strings (empty when the file has none). */
  metadata: Record<string, string>;
}

type ArrayCtor = { new (length: number): HostTensorData; readonly name: string };

// In the reference implementation's order of increasing alignment; files list tensors in
// descending order. F8 types are not supported.
const DTYPES: Record<SafetensorsDType, { size: number; array: ArrayCtor; rank: number }> = {
  BOOL: { size: 1, array: Uint8Array, rank: 0 },
  U8: { size: 1, array: Uint8Array, rank: 1 },
  I8: { size: 1, array: Int8Array, rank: 2 },
  I16: { size: 2, array: Int16Array, rank: 5 },
  U16: { size: 2, array: Uint16Array, rank: 6 },
  F16: { size: 2, array: Uint16Array, rank: 7 },
  BF16: { size: 2, array: Uint16Array, rank: 8 },
  I32: { size: 4, array: Int32Array, rank: 9 },
  U32: { size: 4, array: Uint32Array, rank: 10 },
  F32: { size: 4, array: Float32Array, rank: 11 },
  F64: { size: 8, array: Float64Array, rank: 12 },
  I64: { size: 8, array: BigInt64Array, rank: 13 },
  U64: { size: 8, array: BigUint64Array, rank: 14 },
};

function isDType(name: unknown): name is SafetensorsDType {
  return typeof name === "string" && Object.hasOwn(DTYPES, name);
}

function checkLittleEndian(): void {
  // Data is copied byte for byte; every WebGPU host is little-endian, but say so if not.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error("Cannot use safetensors: this host is big-endian");
  }
}

function shapeText(shape: readonly number[]): string {
  return cut(`[${shape.join(", ")}]`);
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * Encodes tensors (and optional string metadata) as the bytes of a safetensors file, laid out
 * as the reference implementation does. Throws a TypeError or RangeError naming the tensor when
 * a dtype, array type or shape is wrong.
 *
 * @param metadata The `__metadata__` strings. Default: none (the header has no `__metadata__`).
 *
 * @example Save a weight and a counter
 * ```ts
 * import { encodeSafetensors } from "@wgnn/wgnn";
 * import { equal, throws } from "node:assert/strict";
 *
 * const bytes = encodeSafetensors({
 *   "1.weight": { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
 *   "3.num_batches_tracked": { dtype: "I64", shape: [], data: new BigInt64Array([20n]) },
 * }, { format: "pt" });
 * const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
 * equal(headerLength % 8, 0); // the JSON header is padded to 8 bytes
 * equal(bytes.length, 8 + headerLength + 4 * 4 + 8); // then the data: 4 f32 and 1 i64
 * throws(() => encodeSafetensors({ x: { dtype: "F32", shape: [3], data: new Float32Array(2) } }));
 * ```
 */
export function encodeSafetensors(
  tensors: Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  checkLittleEndian();
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) checkTensor(name, t);
  entries.sort(([a, ta], [b, tb]) =>
    DTYPES[tb.dtype].rank - DTYPES[ta.dtype].rank || (a < b ? -1 : a > b ? 1 : 0)
  );
  // Built by hand: JSON.stringify would move integer-like keys ("3") ahead of the others.
  const parts: string[] = metadata === undefined
    ? []
    : [`"__metadata__":${metadataJson(metadata)}`];
  let offset = 0;
  for (const [name, t] of entries) {
    const end = offset + t.data.byteLength;
    const shape = `[${t.shape.join(",")}]`;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":${shape},` +
        `"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength); // space padding, as the reference writer
  let at = 8 + headerLength;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

function metadataJson(metadata: Record<string, string>): string {
  const keys = Object.keys(metadata).sort();
  for (const key of keys) {
    const value: unknown = metadata[key];
    if (typeof value !== "string" || !key.isWellFormed() || !value.isWellFormed()) {
      throw new TypeError(
        `Cannot write safetensors: metadata ${show(key)} must be a well-formed string: ` +
          `current value is ${cut(String(value))}`,
      );
    }
  }
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(",")}}`;
}

function checkTensor(name: string, t: HostTensor): void {
  const what = `Cannot write safetensors: tensor ${show(name)}`;
  if (name === "__metadata__" || !name.isWellFormed()) {
    throw new TypeError(`${what} has a reserved or malformed name`);
  }
  if (!isDType(t.dtype)) {
    throw new TypeError(`${what} has unknown dtype ${show(t.dtype)}`);
  }
  const { array } = DTYPES[t.dtype];
  if (!(t.data instanceof array)) {
    throw new TypeError(
      `${what} has dtype ${t.dtype}, which needs a ${array.name}: current value is a ${
        (t.data as object)?.constructor?.name
      }`,
    );
  }
  let numel = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`${what} has an invalid shape: current value is ${shapeText(t.shape)}`);
    }
    numel *= d;
  }
  if (numel !== t.data.length) {
    throw new RangeError(
      `${what} has shape ${shapeText(t.shape)} (${numel} elements) but ${t.data.length} values`,
    );
  }
  const bad = t.dtype === "BOOL" ? (t.data as Uint8Array).findIndex((v) => v > 1) : -1;
  if (bad >= 0) throw new RangeError(`${what} ${boolProblem(bad, t.data[bad])}`);
}

function boolProblem(index: number, value: unknown): string {
  return `has dtype BOOL but element ${index} is ${value} (expected 0 or 1)`;
}

// ---------------------------------------------------------------------------------------------
// Reading

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

/**
 * Decodes the bytes of a safetensors file. Every tensor's data is copied into a fresh, aligned
 * typed array. Throws an `Error` naming the problem and the values for a truncated or malformed
 * file (bad header length or JSON, unknown dtype, bad shape, offsets that disagree with the
 * shape, overlap, leave gaps or run past the end, duplicate names).
 *
 * @param source A name for the bytes (a file path) that errors quote. Default: none.
 *
 * @example Round trip, and a truncated file
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "@wgnn/wgnn";
 * import { deepEqual, throws } from "node:assert/strict";
 *
 * const bytes = encodeSafetensors({
 *   b: { dtype: "F32", shape: [1, 2], data: new Float32Array([1, 2]) },
 * });
 * const { tensors } = decodeSafetensors(bytes);
 * deepEqual(tensors.get("b")?.shape, [1, 2]);
 * deepEqual(tensors.get("b")?.data, new Float32Array([1, 2]));
 * throws(
 *   () => decodeSafetensors(bytes.subarray(0, bytes.length - 1), "model.safetensors"),
 *   /Cannot read safetensors "model.safetensors"/,
 * );
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array, source?: string): Safetensors {
  checkLittleEndian();
  const fail = (problem: string): never => {
    throw new Error(
      `Cannot read safetensors${source ? ` ${JSON.stringify(source)}` : ""}: ${problem}`,
    );
  };
  if (bytes.length < 8) fail(`file has ${bytes.length} bytes, fewer than the 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) {
    fail(`header length ${n} exceeds the ${bytes.length - 8} bytes after the length field`);
  }
  const headerEnd = 8 + Number(n);
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, headerEnd),
    );
  } catch {
    fail(`header (${n} bytes) is not valid UTF-8`);
  }
  const header = parseJson(text, fail);
  if (!(header instanceof Map)) {
    fail(`header is not a JSON object: it starts with ${JSON.stringify(text.slice(0, 20))}`);
  }
  const bufferLength = bytes.length - headerEnd;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of header as Map<string, Json>) {
    if (name === "__metadata__") {
      if (!(value instanceof Map)) fail(`"__metadata__" is not an object`);
      for (const [k, v] of value as Map<string, Json>) {
        if (typeof v !== "string") {
          fail(`"__metadata__" entry ${show(k)} is not a string`);
        }
        metadata[k] = v as string;
      }
    } else {
      entries.push(readEntry(name, value, bufferLength, fail));
    }
  }
  checkCoverage(entries, bufferLength, fail);
  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    const { array, size } = DTYPES[e.dtype];
    const data = new array(e.numel);
    const start = headerEnd + e.begin;
    new Uint8Array(data.buffer).set(bytes.subarray(start, start + e.numel * size));
    const bad = e.dtype === "BOOL" ? (data as Uint8Array).findIndex((v) => v > 1) : -1;
    if (bad >= 0) fail(`tensor ${show(e.name)} ${boolProblem(bad, data[bad])}`);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

function readEntry(
  name: string,
  value: Json,
  bufferLength: number,
  fail: (problem: string) => never,
): Entry {
  const what = `tensor ${show(name)}`;
  if (!(value instanceof Map)) fail(`${what} is not an object`);
  const info = value as Map<string, Json>;
  for (const key of info.keys()) {
    if (key !== "dtype" && key !== "shape" && key !== "data_offsets") {
      fail(`${what} has unknown field ${show(key)}`);
    }
  }
  const dtype = info.get("dtype");
  if (!isDType(dtype)) {
    fail(
      `${what} has unknown dtype ${show(dtype)} (supported: ${Object.keys(DTYPES).join(", ")})`,
    );
  }
  const shape = info.get("shape");
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    fail(
      `${what} has an invalid shape ${show(shape)} (expected non-negative integers)`,
    );
  }
  const dims = shape as number[];
  // Any zero dimension makes the tensor empty; otherwise the product must stay exact.
  let numel = dims.includes(0) ? 0 : 1;
  for (const d of dims) {
    if (numel > Number.MAX_SAFE_INTEGER / Math.max(d, 1)) {
      fail(`${what} has shape ${shapeText(dims)}, too many elements`);
    }
    numel *= d;
  }
  const size = DTYPES[dtype as SafetensorsDType].size;
  const offsets = info.get("data_offsets");
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
  ) {
    fail(
      `${what} has invalid data_offsets ${show(offsets)} (expected [begin, end])`,
    );
  }
  const [begin, end] = offsets as number[];
  if (end < begin || end - begin !== numel * size) {
    fail(
      `${what} has data_offsets [${begin}, ${end}] but dtype ${dtype} and shape ${
        shapeText(dims)
      } need ${numel * size} bytes`,
    );
  }
  if (end > bufferLength) {
    fail(
      `${what} has data_offsets [${begin}, ${end}] past the end of the ` +
        `${bufferLength}-byte data buffer`,
    );
  }
  return { name, dtype: dtype as SafetensorsDType, shape: dims, numel, begin, end };
}

/** The tensors must tile the data buffer exactly: no overlap, no gap, nothing after the last. */
function checkCoverage(
  entries: Entry[],
  bufferLength: number,
  fail: (problem: string) => never,
): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  let previous = "";
  for (const e of entries) {
    if (e.begin < position) {
      fail(
        `tensor ${show(e.name)} at [${e.begin}, ${e.end}] overlaps tensor ${
          show(previous)
        }, which ends at ${position}`,
      );
    }
    if (e.begin > position) {
      fail(`bytes [${position}, ${e.begin}) of the data buffer belong to no tensor`);
    }
    position = e.end;
    previous = e.name;
  }
  if (position !== bufferLength) {
    fail(`bytes [${position}, ${bufferLength}) of the data buffer belong to no tensor`);
  }
}

/** Options of {@link stateDictOf}. */
export interface StateDictOfOptions {
  /**
   * Take only the tensors whose names begin with this, without it (e.g. "model/" of a
   * checkpoint's `resume.safetensors`). Default: every tensor, names as they are.
   */
  prefix?: string;
}

/**
 * The tensors of a decoded file as a state dict that `Sequential.loadStateDict` takes with no
 * cast: each F32 or I64 tensor's data as it is (no copy), its shape as a fresh array. Throws a
 * TypeError naming the tensor for any other dtype (a state dict holds f32 values and i64
 * counters; an F16 or F64 file is not converted silently).
 *
 * @example Load PyTorch's weights into a model
 * ```ts
 * import type { Sequential } from "@wgnn/wgnn";
 * import { stateDictOf } from "./safetensors.ts";
 * import { readSafetensorsFile } from "./safetensors_file.ts";
 *
 * async function loadFromTorch(model: Sequential, path: string): Promise<void> {
 *   model.loadStateDict(stateDictOf(await readSafetensorsFile(path)));
 * }
 * ```
 */
export function stateDictOf(
  file: Safetensors,
  options: StateDictOfOptions = {},
): Record<string, StateTensor> {
  const prefix = options.prefix ?? "";
  const entries: [string, StateTensor][] = [];
  for (const [name, t] of file.tensors) {
    if (!name.startsWith(prefix)) continue;
    // The decoder pairs each dtype with its array; a hand-made Safetensors may not.
    const f32 = t.dtype === "F32" && t.data instanceof Float32Array;
    const i64 = t.dtype === "I64" && t.data instanceof BigInt64Array;
    if (!f32 && !i64) {
      throw new TypeError(
        `Cannot make a state dict: tensor ${
          show(name)
        } has dtype ${t.dtype}; expected F32 (or I64 for counters)`,
      );
    }
    const tensor = { dtype: t.dtype, shape: [...t.shape], data: t.data } as StateTensor;
    entries.push([name.slice(prefix.length), tensor]);
  }
  // fromEntries defines each name as an own property: a tensor named "__proto__" stays a tensor.
  return Object.fromEntries(entries);
}
