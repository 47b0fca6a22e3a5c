/**
 * Validation of optimizer arguments, with errors that name the optimizer, the option and the
 * value ("Cannot create Adam: lr must be >= 0: current value is -1").
 *
 * @module
 */

import { ParameterArena } from "../nn/parameter.ts";
import { Tensor } from "../tensor.ts";
import type { ParameterGroup, TensorPair } from "./group.ts";

/** Checks a parameter group and returns it as (value, grad) pairs; an arena is one pair. */
export function checkGroup(name: string, params: ParameterGroup): TensorPair[] {
  const what = `Cannot create ${name}`;
  if (params instanceof ParameterArena) return [{ value: params.values, grad: params.grads }];
  if (!Array.isArray(params) || params.length === 0) {
    throw new TypeError(
      `${what}: params must be a ParameterArena or a non-empty array of { value, grad }: current value is ${
        describe(params)
      }`,
    );
  }
  const pairs = params as readonly TensorPair[];
  pairs.forEach((pair, i) => {
    if (!(pair?.value instanceof Tensor) || !(pair?.grad instanceof Tensor)) {
      throw new TypeError(`${what}: params[${i}] must have Tensor fields value and grad`);
    }
    for (const [field, t] of [["value", pair.value], ["grad", pair.grad]] as const) {
      if (t.dtype !== "f32") {
        throw new TypeError(
          `${what}: params[${i}].${field} must be f32: current dtype is ${t.dtype}`,
        );
      }
    }
    if (pair.value.numel !== pair.grad.numel) {
      throw new RangeError(
        `${what}: params[${i}].grad has shape [${
          pair.grad.shape.join(", ")
        }] but its value has shape [${pair.value.shape.join(", ")}]`,
      );
    }
    if (pair.value.gpu !== pairs[0].value.gpu || pair.grad.gpu !== pairs[0].value.gpu) {
      throw new RangeError(`${what}: params[${i}] lives on another GPU than params[0]`);
    }
  });
  return [...pairs];
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "[]";
  return value === null || typeof value !== "object"
    ? String(value)
    : value.constructor?.name ?? "object";
}

/** Throws `${what}: ${option} must be >= min: current value is v` for v < min or NaN; also ±Infinity. */
export function checkMin(what: string, option: string, value: number, min: number): void {
  if (typeof value !== "number" || !(value >= min)) {
    throw new RangeError(`${what}: ${option} must be >= ${min}: current value is ${value}`);
  }
  if (value === Infinity) {
    throw new RangeError(`${what}: ${option} must be finite: current value is ${value}`);
  }
}

/** Throws unless `value` is a finite number in [0, 1). */
export function checkUnit(what: string, option: string, value: number): void {
  if (typeof value !== "number" || !(value >= 0 && value < 1)) {
    throw new RangeError(`${what}: ${option} must be in [0, 1): current value is ${value}`);
  }
}
