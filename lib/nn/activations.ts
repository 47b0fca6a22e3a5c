/**
 * Tanh, Sigmoid, GELU and SiLU, element-wise (kernels/pointwise.wgsl), with the formulas of
 * PyTorch 1.13's CPU kernels in float32; Softmax and LogSoftmax are in softmax.ts.
 *
 * Forward saves what backward reads: Tanh and Sigmoid their output (PyTorch's backward formulas
 * use y), GELU and SiLU their input. Outputs, gradients and uniforms are allocated once per batch
 * size; the first forward fixes the per-sample shape. None of them has parameters, and train and
 * eval mode compute the same thing.
 *
 * @module
 */

import { ActivationLayer, pointwiseKernels } from "./activation_runner.ts";
import { POINTWISE_FUNCTIONS } from "./pointwise_kernel.ts";

/**
 * `y = tanh(x)`, as PyTorch's `Tanh()`; backward `dX = dY·(1 − y²)` from the saved output.
 *
 * @example A tanh hidden layer
 * ```ts
 * import { Linear, Sequential, Tanh } from "@wgnn/wgnn";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const model = new Sequential(new Linear(4, 8), new Tanh(), new Linear(8, 2));
 * equal(model.modules[1].describe(), "Tanh()");
 * deepEqual(new Tanh().outputShape([3, 5]), [3, 5]);
 * ```
 */
export class Tanh extends ActivationLayer {
  /** Declares the layer (no parameters). */
  constructor() {
    super(POINTWISE_FUNCTIONS.tanh.backwardReadsOutput, (gpu) => pointwiseKernels(gpu, "tanh"));
  }

  /** `Tanh()`. */
  describe(): string {
    return "Tanh()";
  }
}

/**
 * `y = 1/(1 + e^−x)`, as PyTorch's `Sigmoid()`; backward `dX = dY·(1 − y)·y` from the saved
 * output.
 *
 * @example A gate between two layers
 * ```ts
 * import { Linear, Sequential, Sigmoid } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * const model = new Sequential(new Linear(4, 8), new Sigmoid(), new Linear(8, 2));
 * equal(model.describe(), "Sequential(Linear(4, 8), Sigmoid(), Linear(8, 2))");
 * ```
 */
export class Sigmoid extends ActivationLayer {
  /** Declares the layer (no parameters). */
  constructor() {
    super(
      POINTWISE_FUNCTIONS.sigmoid.backwardReadsOutput,
      (gpu) => pointwiseKernels(gpu, "sigmoid"),
    );
  }

  /** `Sigmoid()`. */
  describe(): string {
    return "Sigmoid()";
  }
}

/**
 * Options of {@link GELU}, as PyTorch's.
 *
 * @example The tanh approximation (GPT-2's)
 * ```ts
 * import { GELU, type GELUOptions } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * const options: GELUOptions = { approximate: "tanh" };
 * equal(new GELU(options).describe(), "GELU(approximate='tanh')");
 * ```
 */
export interface GELUOptions {
  /**
   * "none": `y = x·Φ(x) = x·0.5·(1 + erf(x/√2))`; "tanh":
   * `y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. Default: "none".
   */
  approximate?: "none" | "tanh";
}

/**
 * The Gaussian error linear unit, as PyTorch's `GELU(approximate=…)`: `x·Φ(x)` with an erf
 * accurate to 2 ulp (WGSL has none), or its tanh approximation. Backward reads the saved input.
 *
 * @example Both forms, and a bad option
 * ```ts
 * import { GELU, Linear, Sequential } from "@wgnn/wgnn";
 * import { equal, throws } from "node:assert/strict";
 *
 * const model = new Sequential(new Linear(16, 64), new GELU(), new Linear(64, 10));
 * equal(model.modules[1].describe(), "GELU(approximate='none')");
 * equal(new GELU({ approximate: "tanh" }).approximate, "tanh");
 * throws(() => new GELU({ approximate: "fast" as "tanh" }), RangeError);
 * ```
 */
export class GELU extends ActivationLayer {
  /** "none" (erf) or "tanh". */
  readonly approximate: "none" | "tanh";

  /** Declares the layer; throws a RangeError for an `approximate` other than "none" or "tanh". */
  constructor(options: GELUOptions = {}) {
    const approximate = options.approximate ?? "none";
    super(
      POINTWISE_FUNCTIONS.gelu.backwardReadsOutput,
      (gpu) => pointwiseKernels(gpu, approximate === "tanh" ? "gelu_tanh" : "gelu"),
    );
    if (approximate !== "none" && approximate !== "tanh") {
      throw new RangeError(
        `Cannot create GELU: approximate must be "none" or "tanh": current value is ${
          JSON.stringify(approximate)
        }`,
      );
    }
    this.approximate = approximate;
  }

  /** `GELU(approximate='none')` or `GELU(approximate='tanh')`, as PyTorch prints it. */
  describe(): string {
    return `GELU(approximate='${this.approximate}')`;
  }
}

/**
 * `y = x·sigmoid(x) = x/(1 + e^−x)`, as PyTorch's `SiLU()` (also called swish); backward reads the
 * saved input.
 *
 * @example A SiLU MLP
 * ```ts
 * import { Linear, Sequential, SiLU } from "@wgnn/wgnn";
 * import { equal } from "node:assert/strict";
 *
 * const model = new Sequential(new Linear(4, 8), new SiLU(), new Linear(8, 2));
 * equal(model.modules.length, 3);
 * ```
 */
export class SiLU extends ActivationLayer {
  /** Declares the layer (no parameters). */
  constructor() {
    super(POINTWISE_FUNCTIONS.silu.backwardReadsOutput, (gpu) => pointwiseKernels(gpu, "silu"));
  }

  /** `SiLU()`. */
  describe(): string {
    return "SiLU()";
  }
}
