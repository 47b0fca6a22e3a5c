/**
 * A confusion matrix accumulated on the GPU: counts[true][predicted].
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import type { StepEncoder } from "../gpu/encoder.ts";
import { grid1d } from "../gpu/kernels.ts";
import { ParamsLayout } from "../gpu/params.ts";
import { Tensor } from "../tensor.ts";
import { entryPoint, KernelCall, type KernelFamily } from "../nn/kernel_call.ts";
import { disposeAll, PerBatch } from "../nn/module.ts";
import confusionSource from "../../kernels/confusion.wgsl" with { type: "text" };

/** kernels/confusion.wgsl and its bindings (as its `@binding` lines; tests/bindings_test.ts). */
export const CONFUSION = {
  name: "confusion",
  source: confusionSource,
  bindings: { logits: 0, labels: 1, counts: 2, p: 3 },
} as const satisfies KernelFamily;
const ADD = entryPoint(CONFUSION, "main", ["logits", "labels", "counts", "p"]);
const PARAMS = new ParamsLayout("confusion.Params", { B: "u32", C: "u32" });

/** Counts of (true label, predicted label) pairs over the batches added since the last reset. */
export class ConfusionMatrix {
  /** Number of classes. */
  readonly classes: number;
  readonly #counts: Tensor;
  readonly #call: KernelCall<typeof ADD>;
  readonly #params: PerBatch<{ dispose(): void; buffer: ReturnType<typeof PARAMS.upload> }>;

  constructor(gpu: Gpu, classes: number) {
    this.classes = classes;
    this.#counts = Tensor.empty(gpu, [classes * classes], "u32", "confusion");
    this.#call = new KernelCall(gpu, ADD, { WG: 64 });
    this.#params = new PerBatch((batch) => {
      const buffer = PARAMS.upload(gpu, { B: batch, C: classes });
      return { buffer, dispose: () => buffer.dispose() };
    });
  }

  /** Encodes a reset to zero. */
  reset(enc: StepEncoder): void {
    enc.commands().clearBuffer(this.#counts.buffer);
  }

  /** Encodes adding `logits` [B, C] against `labels` [B]. */
  add(enc: StepEncoder, logits: Tensor, labels: Tensor): void {
    const batch = logits.shape[0];
    const params = this.#params.get(batch).buffer;
    this.#call.encode(enc, grid1d(Math.ceil(batch / 64)), {
      logits,
      labels,
      counts: this.#counts,
      p: params,
    });
  }

  /** Reads the matrix: rows are true labels, columns predictions. */
  async read(): Promise<number[][]> {
    const flat = (await this.#counts.read()) as Uint32Array;
    return Array.from(
      { length: this.classes },
      (_, r) => Array.from(flat.subarray(r * this.classes, (r + 1) * this.classes)),
    );
  }

  dispose(): void {
    disposeAll(this.#counts, this.#params);
  }
}
