/**
 * How the test and its page pass named arrays over HTTP: a little-endian u32 header length, a
 * JSON header `[name, "F32" | "F64", length][]`, then each array's bytes, each part starting at a
 * multiple of 8. (The library's safetensors codec is not in the browser build: its module also
 * writes files.)
 *
 * @module
 */

/** Named F32 or F64 arrays. */
export type Arrays = Record<string, Float32Array | Float64Array>;

const align8 = (n: number) => Math.ceil(n / 8) * 8;

/** Packs `arrays` into one buffer. */
export function pack(arrays: Arrays): Uint8Array<ArrayBuffer> {
  const entries = Object.entries(arrays);
  const header = new TextEncoder().encode(
    JSON.stringify(
      entries.map(([name, a]) => [name, a instanceof Float64Array ? "F64" : "F32", a.length]),
    ),
  );
  let size = align8(4 + header.length);
  for (const [, a] of entries) size += align8(a.byteLength);
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, header.length, true);
  out.set(header, 4);
  let offset = align8(4 + header.length);
  for (const [, a] of entries) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offset);
    offset += align8(a.byteLength);
  }
  return out;
}

/** Unpacks what {@link pack} made (each array a copy). */
export function unpack(bytes: Uint8Array): Arrays {
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  const header: [string, "F32" | "F64", number][] = JSON.parse(
    new TextDecoder().decode(bytes.subarray(4, 4 + length)),
  );
  const out: Arrays = {};
  let offset = align8(4 + length);
  for (const [name, dtype, n] of header) {
    const size = n * (dtype === "F64" ? 8 : 4);
    const copy = bytes.slice(offset, offset + size).buffer;
    out[name] = dtype === "F64" ? new Float64Array(copy) : new Float32Array(copy);
    offset += align8(size);
  }
  return out;
}
