/**
 * The experiment's convolutional recipe for CIFAR-10 (`deno task train --model cnn`): a compact
 * VGG-style network with BatchNorm2d, as a module of its own so that every entry point (the
 * browser build too) can build it. `lib/train/experiment.ts` trains it with the settings of
 * {@link CNN_RECIPE}.
 *
 * @module
 */

import { BatchNorm2d } from "./batchnorm2d.ts";
import { Conv2d } from "./conv.ts";
import { Flatten, ReLU, Unflatten } from "./layers.ts";
import { Linear } from "./linear.ts";
import { AdaptiveAvgPool2d, MaxPool2d } from "./pool.ts";
import { Sequential } from "./sequential.ts";

/** Output channels of the recipe's three stages (two 3×3 convolutions each, then a 2×2 max pool). */
export const CNN_WIDTHS: readonly [number, number, number] = [32, 64, 128];

/**
 * The recipe's training settings, chosen for a CIFAR-10 run that fits a 2-core CPU: SGD with
 * Nesterov momentum and weight decay on the convolution and Linear weights only (not on biases
 * or BatchNorm's γ, β), a one-cycle schedule stepped per batch, label smoothing, random flips and
 * 4-pixel translations.
 */
export const CNN_RECIPE = {
  /** Epochs. */
  epochs: 12,
  /** Images per batch. */
  batchSize: 256,
  /** The one-cycle schedule's peak learning rate (`OneCycleLR`'s `maxLr`). */
  lr: 0.1,
  /** SGD's momentum (Nesterov). */
  momentum: 0.9,
  /** Weight decay of the weights of rank > 1. */
  weightDecay: 5e-4,
  /** `CrossEntropyLoss`'s label smoothing. */
  labelSmoothing: 0.1,
  /** `OneCycleLR`'s share of the steps spent warming up. */
  pctStart: 0.25,
  /** Random horizontal flips and crops of the image padded by this many pixels. */
  augment: { flip: true, crop: 4 },
} as const;

/**
 * Builds the recipe's network: it takes the `Loader`'s [N, 3072] rows, unflattens them to
 * [N, 3, 32, 32] and runs three stages of (Conv2d 3×3 pad 1 without bias, BatchNorm2d, ReLU) ×
 * 2 and a 2×2 max pool, with {@link CNN_WIDTHS} channels (32×32 → 16 → 8 → 4), then a global
 * average pool and a Linear to the 10 classes: 288,746 parameters, 39 million multiply-adds an
 * image forward. Call `manualSeed` first.
 *
 * @example Its shape
 * ```ts
 * import { cnnModel } from "./cnn.ts";
 *
 * const model = cnnModel();
 * console.assert(model.describe().includes("Conv2d(3, 32"));
 * ```
 *
 * @param classes Outputs of the last Linear. Default: 10 (CIFAR-10).
 */
export function cnnModel(classes = 10): Sequential {
  const layers = [];
  let inChannels = 3;
  for (const width of CNN_WIDTHS) {
    for (let i = 0; i < 2; i++) {
      layers.push(
        new Conv2d(inChannels, width, 3, { padding: 1, bias: false }),
        new BatchNorm2d(width),
        new ReLU(),
      );
      inChannels = width;
    }
    layers.push(new MaxPool2d(2));
  }
  return new Sequential(
    new Unflatten(1, [3, 32, 32]),
    ...layers,
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(inChannels, classes),
  );
}
