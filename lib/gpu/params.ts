/**
 * Packs a kernel's `Params` uniform struct.
 *
 * Every field is a 4-byte scalar (`u32`, `i32` or `f32`), so WGSL's layout is the declaration
 * order with no gaps; the struct's size is rounded up to 16 bytes because uniform buffer
 * bindings are sized in multiples of 16. Shapes live here, not in the WGSL source, so one
 * pipeline serves every batch size.
 *
 * @module
 */

import type { Gpu } from "./device.ts";
import type { GpuBuffer } from "./buffer.ts";

/** The scalar types a `Params` field may have. */
export type ScalarType = "u32" | "i32" | "f32";

/**
 * A `Params` layout: field names in WGSL declaration order, with their types.
 *
 * @example A kernel's uniforms, packed as WGSL lays them out
 * ```ts
 * import { ParamsLayout } from "@wgnn/wgnn/advanced";
 * import { equal, throws } from "node:assert/strict";
 *
 * // struct Params { n: u32, beta: f32 }
 * const PARAMS = new ParamsLayout("swish.Params", { n: "u32", beta: "f32" });
 * equal(PARAMS.byteSize, 16); // uniforms are sized in multiples of 16 bytes
 * equal(new DataView(PARAMS.pack({ n: 1000, beta: 1.5 })).getFloat32(4, true), 1.5);
 * throws(() => PARAMS.pack({ n: -1, beta: 1 }), /must be a u32/);
 * // In a layer: PARAMS.upload(gpu, { n, beta }) gives the GpuBuffer to bind.
 * ```
 */
export class ParamsLayout<F extends string> {
  readonly #fields: [F, ScalarType][];
  /** Size of the packed struct in bytes, a multiple of 16. */
  readonly byteSize: number;
  /** Name used in error messages. */
  readonly name: string;

  /** Declares the struct `name` with `fields` in WGSL declaration order (4 bytes each). */
  constructor(name: string, fields: Record<F, ScalarType>) {
    this.name = name;
    this.#fields = Object.entries(fields) as [F, ScalarType][];
    this.byteSize = Math.max(16, Math.ceil((this.#fields.length * 4) / 16) * 16);
  }

  /** Packs `values` into a new ArrayBuffer, checking each value against its type. */
  pack(values: Record<F, number>): ArrayBuffer {
    const out = new ArrayBuffer(this.byteSize);
    const view = new DataView(out);
    this.#fields.forEach(([name, type], i) => {
      const v = values[name];
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new RangeError(
          `Cannot pack ${this.name}.${name}: value must be a finite number: current value is ${v}`,
        );
      }
      if (type === "u32") {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
          throw new RangeError(
            `Cannot pack ${this.name}.${name}: value must be a u32: current value is ${v}`,
          );
        }
        view.setUint32(i * 4, v, true);
      } else if (type === "i32") {
        if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
          throw new RangeError(
            `Cannot pack ${this.name}.${name}: value must be an i32: current value is ${v}`,
          );
        }
        view.setInt32(i * 4, v, true);
      } else {
        view.setFloat32(i * 4, v, true);
      }
    });
    return out;
  }

  /**
   * Allocates a buffer holding `values`, bindable as a uniform or as a read-only storage struct
   * (see batchnorm.wgsl for why a kernel may want the latter). The caller owns (disposes) it.
   */
  upload(gpu: Gpu, values: Record<F, number>, label = this.name): GpuBuffer {
    const buffer = gpu.createBuffer(
      this.byteSize,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      label,
    );
    buffer.write(new Uint8Array(this.pack(values)));
    return buffer;
  }
}
