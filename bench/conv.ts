/**
 * Convolution benchmark (issue 14): GFLOP/s of Conv2d's forward pass, input gradient and weight
 * gradient on the shapes of a CIFAR-10 CNN (3×3 with padding 1 at 32×32, 16×16 and 8×8; a 3×3
 * and a 1×1 with stride 2), on the implicit-GEMM path and on the direct path, in one process.
 *
 * Each figure counts the useful work, 2·N·OH·OW·OC·Cg·KH·KW per pass, and times everything the
 * pass encodes: staging into textures on the GEMM path, the bias gradient with the weight's.
 * dX is timed as (backward with dX) − (backward without it), so its figure carries the noise of
 * both. Figures are the fastest of the timed rounds (not the median: see timeShape).
 */

import type { Gpu } from "../lib/gpu/device.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { Conv2d, type Conv2dOptions } from "../lib/nn/conv.ts";
import type { ConvAlgorithm } from "../lib/nn/conv_choice.ts";
import { Module } from "../lib/nn/module.ts";
import { Sequential } from "../lib/nn/sequential.ts";
import type { BenchResult } from "./util.ts";

/** A convolution of the benchmark: [C, H, W] in, `out` channels, kernel and options. */
interface Shape {
  name: string;
  C: number;
  H: number;
  out: number;
  k: number;
  o: Conv2dOptions;
}

/** The CIFAR-10 CNN's convolutions (a VGG-style net, widths 32, 64, 128, plus downsamplers). */
export const CONV_SHAPES: readonly Shape[] = [
  { name: "3-32@32", C: 3, H: 32, out: 32, k: 3, o: { padding: 1 } },
  { name: "32-32@32", C: 32, H: 32, out: 32, k: 3, o: { padding: 1 } },
  { name: "32-64@16", C: 32, H: 16, out: 64, k: 3, o: { padding: 1 } },
  { name: "64-64@16", C: 64, H: 16, out: 64, k: 3, o: { padding: 1 } },
  { name: "64-128@8", C: 64, H: 8, out: 128, k: 3, o: { padding: 1 } },
  { name: "128-128@8", C: 128, H: 8, out: 128, k: 3, o: { padding: 1 } },
  { name: "64-128@16/s2", C: 64, H: 16, out: 128, k: 3, o: { padding: 1, stride: 2 } },
  { name: "64-128@16/1x1s2", C: 64, H: 16, out: 128, k: 1, o: { stride: 2 } },
];

/** Holds a layer so that it computes its input gradient (a model's first layer does not). */
class WithInputGrad extends Module {
  readonly layer: Module;
  constructor(layer: Module) {
    super();
    this.layer = this.register("layer", layer);
  }
  describe(): string {
    return `WithInputGrad(${this.layer.describe()})`;
  }
  outputShape(input: readonly number[]): number[] {
    return this.layer.outputShape(input);
  }
  forward(enc: StepEncoder, x: Tensor): Tensor {
    return this.layer.forward(enc, x);
  }
  backward(enc: StepEncoder, dY: Tensor): Tensor {
    return this.layer.backward(enc, dY);
  }
}

/** Milliseconds of one submission of `encode`, waited for. */
async function once(gpu: Gpu, encode: (enc: StepEncoder) => void): Promise<number> {
  const start = performance.now();
  const enc = new StepEncoder(gpu, "bench conv");
  encode(enc);
  enc.submit();
  await gpu.sync();
  return performance.now() - start;
}

/** Milliseconds of forward, backward without dX and backward with dX of `shape` at `batch`. */
async function timeShape(
  gpu: Gpu,
  shape: Shape,
  batch: number,
  algorithm: ConvAlgorithm,
  rounds: number,
): Promise<{ flops: number; forward: number; weight: number; both: number }> {
  const first = new Sequential(new Conv2d(shape.C, shape.out, shape.k, { ...shape.o, algorithm }))
    .to(gpu);
  const inner = new Conv2d(shape.C, shape.out, shape.k, { ...shape.o, algorithm });
  const middle = new Sequential(new WithInputGrad(inner)).to(gpu);
  const [OC, OH, OW] = inner.outputShape([shape.C, shape.H, shape.H]);
  const tensors = (n: number) => [
    Tensor.from(gpu, new Float32Array(n * shape.C * shape.H * shape.H).fill(0.5), [
      n,
      shape.C,
      shape.H,
      shape.H,
    ]),
    Tensor.from(gpu, new Float32Array(n * OC * OH * OW).fill(0.25), [n, OC, OH, OW]),
  ];
  // Compile every pipeline on a batch of 2 (shapes ride in Params: the same pipelines serve 256).
  const [x2, dy2] = tensors(2);
  const warmUp = new StepEncoder(gpu, "bench conv warm-up");
  first.forward(warmUp, x2);
  first.backward(warmUp, dy2);
  middle.forward(warmUp, x2);
  middle.backward(warmUp, dy2);
  warmUp.submit();
  await gpu.sync();
  const [x, dy] = tensors(batch);
  // The direct path is slow enough that a full-size warm-up round would double its time.
  const warm = algorithm === "gemm";
  try {
    // The three passes are timed in turn within each round, so that the machine's drift (other
    // processes on its 2 cores) hits them alike; each figure is the fastest round, since such
    // interference only ever slows a round down.
    const fwd = new StepEncoder(gpu);
    middle.forward(fwd, x);
    fwd.submit();
    const best = { forward: Infinity, weight: Infinity, both: Infinity };
    for (let r = warm ? -1 : 0; r < rounds; r++) {
      const forward = await once(gpu, (enc) => first.forward(enc, x));
      const weight = await once(gpu, (enc) => first.backward(enc, dy));
      const both = await once(gpu, (enc) => middle.backward(enc, dy));
      if (r < 0) continue;
      best.forward = Math.min(best.forward, forward);
      best.weight = Math.min(best.weight, weight);
      best.both = Math.min(best.both, both);
    }
    const { forward, weight, both } = best;
    const flops = 2 * batch * OH * OW * OC * (shape.C / (shape.o.groups ?? 1)) * shape.k ** 2;
    return { flops, forward, weight, both };
  } finally {
    for (const t of [first, middle, x, dy, x2, dy2]) t.dispose();
  }
}

/**
 * GFLOP/s of each shape's three passes on each path, at batch 256 (64 with `quick`). The direct
 * path runs at about 1/20 of the GEMM's speed on lavapipe, so it gets at most 2 timed rounds.
 */
export async function benchConv(
  gpu: Gpu,
  { rounds = 5, quick = false } = {},
): Promise<BenchResult[]> {
  const batch = quick ? 64 : 256;
  const shapes = quick ? CONV_SHAPES.slice(1, 2) : CONV_SHAPES;
  const results: BenchResult[] = [];
  for (const shape of shapes) {
    for (const algorithm of ["gemm", "direct"] as const) {
      const r = algorithm === "gemm" ? rounds : Math.min(rounds, 2);
      const t = await timeShape(gpu, shape, batch, algorithm, r);
      const rate = (ms: number) => t.flops / ms / 1e6;
      const base = `conv/${shape.name}/b${batch}/${algorithm}`;
      results.push(
        { name: `${base}/forward`, unit: "GFLOP/s", value: rate(t.forward), ms: t.forward },
        { name: `${base}/dW`, unit: "GFLOP/s", value: rate(t.weight), ms: t.weight },
        {
          name: `${base}/dX`,
          unit: "GFLOP/s",
          value: t.both > t.weight ? rate(t.both - t.weight) : NaN,
          ms: t.both - t.weight,
        },
      );
      console.log(
        `${base}: forward ${rate(t.forward).toFixed(1)}, dW ${rate(t.weight).toFixed(1)}, dX ${
          rate(t.both - t.weight).toFixed(1)
        } GFLOP/s (${t.forward.toFixed(1)} / ${t.weight.toFixed(1)} / ${
          (t.both - t.weight).toFixed(1)
        } ms)`,
      );
    }
  }
  return results;
}
