/**
 * The float64 twins' answers to tests/browser/checks.ts's kernel checks, from the same seeded
 * inputs, with layers_test.ts's and optim_test.ts's tolerances. Host-only code: the twins
 * vouch for both GPUs.
 *
 * @module
 */

import { Sequential } from "../../lib/nn/sequential.ts";
import { BatchNorm1d } from "../../lib/nn/batchnorm.ts";
import { Dropout } from "../../lib/nn/dropout.ts";
import { Flatten, LeakyReLU, Linear, ReLU } from "../../lib/nn/layers.ts";
import { randomArray } from "../fixtures/random.ts";
import {
  batchnormBackward,
  batchnormEval,
  batchnormTrain,
  crossEntropy,
  leakyBackward,
  leakyForward,
  linearBackward,
  linearForward,
} from "../reference/nn.ts";
import { dropoutMask } from "../reference/dropout_mask.ts";
import { adamRef, refState, rmspropRef, sgdRef } from "../reference/optim.ts";
import {
  logSoftmaxBackward,
  logSoftmaxForward,
  pointwiseBackward,
  pointwiseForward,
  softmaxBackward,
  softmaxForward,
} from "../reference/activations.ts";
import { bceWithLogits, l1, mse, nll } from "../reference/losses.ts";
import { gatherRef } from "../reference/data.ts";
import {
  ADAM_CASES,
  ADAM_STEPS,
  adamGrad,
  adamInit,
  CE_CASES,
  CNN_SIZES,
  cnnCheckModel,
  CONV_ALGORITHMS,
  DATA_CASE,
  dataSet,
  MATMUL_CHOICES,
  MATMUL_SHAPE,
  matmulOperands,
  NLL_CASE,
  OPTIMIZER_CASES,
  type Outputs,
  POINTWISE_CHECKS,
  POS_WEIGHT,
  randomState,
  SIZES,
  TRANSPOSES,
} from "./checks.ts";
import * as layers from "../../browser.ts";
import { matmulRef } from "../reference/matmul.ts";
import {
  avgPoolBackward,
  avgPoolForward,
  batchnorm2dBackward,
  batchnorm2dEval,
  batchnorm2dTrain,
  conv2dBackward,
  conv2dForward,
  type ConvGeometry,
  maxPoolBackward,
  maxPoolForward,
  type PoolGeometry,
  type Shape4,
} from "../reference/cnn.ts";

/** One expected output and its tolerance: |got − want| ≤ atol + rtol·|want|. */
export interface Expected {
  want: ArrayLike<number>;
  atol: number;
  rtol: number;
}

/** The same weights the checks load (randomState only reads the model's state layout). */
function weightsOf(model: Sequential, seed: number) {
  const layout = { expectedState: () => model.expectedState(), loadStateDict: () => {} };
  const s = randomState(layout as unknown as Sequential, seed);
  return (k: string) => s[k].data as Float32Array;
}

/** Every output of `kernelChecks`, as its twin computes it. */
export function expectations(): Record<string, Expected> {
  const { B, IN, HID, OUT } = SIZES;
  const e: Record<string, Expected> = {};
  const put = (name: string, want: ArrayLike<number>, atol = 1e-5, rtol = 0) => {
    e[name] = { want, atol, rtol };
  };

  // Linear → LeakyReLU(0.1) → Linear.
  let f = weightsOf(
    new Sequential(new Flatten(), new Linear(IN, HID), new LeakyReLU(0.1), new Linear(HID, OUT)),
    10,
  );
  let x = randomArray(B * IN, 1);
  let dy = randomArray(B * OUT, 2);
  const z1 = linearForward(x, f("1.weight"), f("1.bias"), B, IN, HID);
  const h1 = leakyForward(z1, 0.1);
  put("linear/y", linearForward(h1, f("3.weight"), f("3.bias"), B, HID, OUT));
  const g3 = linearBackward(h1, f("3.weight"), dy, B, HID, OUT);
  const g1 = linearBackward(x, f("1.weight"), leakyBackward(z1, g3.dx, 0.1), B, IN, HID);
  put("linear/3.weight.grad", g3.dw);
  put("linear/3.bias.grad", g3.db);
  put("linear/1.weight.grad", g1.dw);
  put("linear/1.bias.grad", g1.db);

  // Linear → BatchNorm1d → LeakyReLU(0.2) → Linear.
  f = weightsOf(
    new Sequential(
      new Linear(IN, HID),
      new BatchNorm1d(HID),
      new LeakyReLU(0.2),
      new Linear(HID, OUT),
    ),
    20,
  );
  x = randomArray(B * IN, 3);
  dy = randomArray(B * OUT, 4);
  const z = linearForward(x, f("0.weight"), f("0.bias"), B, IN, HID);
  const bn = batchnormTrain(z, f("1.weight"), f("1.bias"), B, HID, 1e-5);
  const h = leakyForward(bn.y, 0.2);
  put("bn/y", linearForward(h, f("3.weight"), f("3.bias"), B, HID, OUT));
  const gOut = linearBackward(h, f("3.weight"), dy, B, HID, OUT);
  const gBn = batchnormBackward(z, f("1.weight"), leakyBackward(bn.y, gOut.dx, 0.2), B, HID, 1e-5);
  const gIn = linearBackward(x, f("0.weight"), gBn.dx, B, IN, HID);
  put("bn/3.weight.grad", gOut.dw);
  put("bn/3.bias.grad", gOut.db);
  put("bn/1.weight.grad", gBn.dgamma, 1e-4);
  put("bn/1.bias.grad", gBn.dbeta, 1e-4);
  put("bn/0.weight.grad", gIn.dw, 1e-4, 1e-4);
  put("bn/0.bias.grad", gIn.db, 1e-4, 1e-4);
  const rm = f("1.running_mean").map((v, i) => 0.9 * v + 0.1 * bn.mean[i]);
  const rv = f("1.running_var").map((v, i) => 0.9 * v + 0.1 * bn.variance[i] * B / (B - 1));
  put("bn/running_mean", rm, 1e-6);
  put("bn/running_var", rv);
  put("bn/num_batches_tracked", [4], 0);
  const zEval = batchnormEval(z, f("1.weight"), f("1.bias"), rm, rv, B, HID, 1e-5);
  put("bn/eval", linearForward(leakyForward(zEval, 0.2), f("3.weight"), f("3.bias"), B, HID, OUT));

  // Linear → ReLU → Dropout(0.3) → Linear, seed 7, two steps, then eval.
  f = weightsOf(
    new Sequential(new Linear(IN, HID), new ReLU(), new Dropout(0.3), new Linear(HID, OUT)),
    30,
  );
  x = randomArray(B * IN, 5);
  dy = randomArray(B * OUT, 6);
  const relu = leakyForward(linearForward(x, f("0.weight"), f("0.bias"), B, IN, HID), 0);
  const scale = Math.fround(1 / (1 - 0.3));
  for (let step = 0; step < 2; step++) {
    const mask = dropoutMask(7, step, 2, B, HID, 0.3);
    const hd = relu.map((v, i) => v * mask[i] * scale);
    put(`dropout/${step}/y`, linearForward(hd, f("3.weight"), f("3.bias"), B, HID, OUT));
    const g = linearBackward(hd, f("3.weight"), dy, B, HID, OUT);
    put(`dropout/${step}/3.weight.grad`, g.dw);
    put(`dropout/${step}/3.bias.grad`, g.db);
    const gh = Float64Array.from(g.dx, (v, i) => v * mask[i] * scale * (relu[i] > 0 ? 1 : 0));
    const g0 = linearBackward(x, f("0.weight"), gh, B, IN, HID);
    put(`dropout/${step}/0.weight.grad`, g0.dw);
    put(`dropout/${step}/0.bias.grad`, g0.db);
  }
  put("dropout/eval", linearForward(relu, f("3.weight"), f("3.bias"), B, HID, OUT));

  // CrossEntropyLoss, one forward per case.
  const [N, C] = [70, 10];
  const logits = randomArray(N * C, 11, -4, 4);
  const labels = Uint32Array.from({ length: N }, (_, i) => (i * 7) % C);
  for (const [k, opts] of CE_CASES.entries()) {
    const want = crossEntropy(logits, labels, N, C, {
      weight: opts.weight,
      smoothing: opts.labelSmoothing ?? 0,
    });
    e[`ce/${k}/summary`] = {
      want: [want.loss, want.loss, want.correct / N],
      atol: 1e-7,
      rtol: 1e-5,
    };
    put(`ce/${k}/grad`, want.grad, 1e-7, 1e-5);
  }

  // Adam, five steps per case.
  for (const [k, o] of ADAM_CASES.entries()) {
    for (const i of [0, 1]) {
      const value = Float64Array.from(adamInit(i));
      const state = refState(value.length, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
      for (let step = 0; step < ADAM_STEPS; step++) {
        adamRef(value, adamGrad(step, i), state, {
          lr: o.lr,
          betas: o.betas ?? [0.9, 0.999],
          eps: o.eps ?? 1e-8,
          weightDecay: o.weightDecay ?? 0,
          amsgrad: o.amsgrad ?? false,
          maximize: false,
          decoupled: false,
        });
      }
      put(`adam/${k}/p${i}`, value, 1e-6, 1e-5);
    }
  }
  return e;
}

/** Every output of `matmulChecks`, from the matmul twin, with matmul_test.ts's tolerance. */
export function matmulExpectations(): Record<string, Expected> {
  const { M, K, N } = MATMUL_SHAPE;
  const { a, b, bias } = matmulOperands();
  const e: Record<string, Expected> = {};
  for (const choice of MATMUL_CHOICES) {
    const name = choice.tiling ? `${choice.variant}:${choice.tiling}` : choice.variant;
    for (const [transA, transB] of TRANSPOSES) {
      const want = matmulRef(a, b, M, N, K, { transA, transB, bias, leakySlope: 0.1 });
      e[`${name}/tA=${transA}/tB=${transB}`] = { want, atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 };
    }
  }
  return e;
}

/** Every output of `cnnChecks`, as the twins compute it (the same for both convolution paths). */
export function cnnExpectations(): Record<string, Expected> {
  const { B, C, H, F } = CNN_SIZES;
  const conv = (stride: number): ConvGeometry => ({
    outChannels: F,
    kernel: [3, 3],
    stride: [stride, stride],
    pad: [1, 1, 1, 1],
    dilation: [1, 1],
    groups: 1,
  });
  const pool: PoolGeometry = { kernel: [2, 2], stride: [2, 2], pad: [0, 0] };
  const global = { adaptive: [1, 1] as const };
  const f = weightsOf(cnnCheckModel(layers, "direct"), 50);
  const x = randomArray(B * C * H * H, 51);
  const dy = randomArray(B * F, 52);
  const s1: Shape4 = [B, F, H, H], s2: Shape4 = [B, F, H / 2, H / 2], s3: Shape4 = [B, F, 3, 3];
  const z1 = conv2dForward(x, [B, C, H, H], f("0.weight"), null, conv(1));
  const bn = batchnorm2dTrain(z1, s1, f("1.weight"), f("1.bias"), 1e-5);
  const relu = bn.y.map((v) => Math.max(v, 0));
  const mp = maxPoolForward(relu, s1, pool);
  const z2 = conv2dForward(mp.y, s2, f("4.weight"), f("4.bias"), conv(2));
  const y = avgPoolForward(z2, s3, global);
  const c2 = conv2dBackward(mp.y, s2, f("4.weight"), avgPoolBackward(dy, s3, global), conv(2));
  const dRelu = maxPoolBackward(mp.argmax, c2.dx, s1, pool);
  const b1 = batchnorm2dBackward(
    z1,
    s1,
    f("1.weight"),
    dRelu.map((g, i) => bn.y[i] > 0 ? g : 0),
    1e-5,
  );
  const c1 = conv2dBackward(x, [B, C, H, H], f("0.weight"), b1.dx, conv(1));
  const m = B * H * H;
  const rm = f("1.running_mean").map((v, i) => 0.9 * v + 0.1 * bn.mean[i]);
  const rv = f("1.running_var").map((v, i) => 0.9 * v + 0.1 * bn.variance[i] * m / (m - 1));
  const zEval = batchnorm2dEval(z1, s1, f("1.weight"), f("1.bias"), rm, rv, 1e-5);
  const pEval = maxPoolForward(zEval.map((v) => Math.max(v, 0)), s1, pool).y;
  const yEval = avgPoolForward(
    conv2dForward(pEval, s2, f("4.weight"), f("4.bias"), conv(2)),
    s3,
    global,
  );
  const e: Record<string, Expected> = {};
  for (const algorithm of CONV_ALGORITHMS) {
    const put = (name: string, want: ArrayLike<number>, atol = 1e-5, rtol = 1e-5) => {
      e[`cnn/${algorithm}/${name}`] = { want, atol, rtol };
    };
    put("y", y);
    put("0.weight.grad", c1.dw, 1e-4, 1e-4);
    put("1.weight.grad", b1.dgamma, 1e-4, 1e-4);
    put("1.bias.grad", b1.dbeta, 1e-4, 1e-4);
    put("4.weight.grad", c2.dw, 1e-4, 1e-4);
    put("4.bias.grad", c2.db, 1e-4, 1e-4);
    put("running_mean", rm, 1e-6);
    put("running_var", rv);
    put("eval", yEval);
  }
  return e;
}

/** Every output of `extraChecks`, as the twins compute it. */
export function extraExpectations(): Record<string, Expected> {
  const { B, HID: D, OUT } = SIZES;
  const e: Record<string, Expected> = {};
  const put = (name: string, want: ArrayLike<number>, atol: number, rtol: number) => {
    e[name] = { want, atol, rtol };
  };
  const eye = new Float64Array(D * D);
  for (let i = 0; i < D; i++) eye[i * D + i] = 1;
  const x = randomArray(B * D, 60, -3, 3);
  const dy = randomArray(B * D, 61);
  for (const name of POINTWISE_CHECKS) {
    const [y, dz] = name === "softmax"
      ? [softmaxForward(x, B, D), softmaxBackward(x, dy, B, D)]
      : name === "log_softmax"
      ? [logSoftmaxForward(x, B, D), logSoftmaxBackward(x, dy, B, D)]
      : [pointwiseForward(name, x), pointwiseBackward(name, x, dy)];
    const g = linearBackward(x, eye, dz, B, D, D);
    put(`act/${name}/y`, y, 1e-6, 1e-5);
    put(`act/${name}/0.weight.grad`, g.dw, 1e-5, 1e-4);
    put(`act/${name}/0.bias.grad`, g.db, 1e-5, 1e-4);
  }

  const z = randomArray(B * OUT, 62, -3, 3);
  const target = randomArray(B * OUT, 63, -1, 1);
  const bits = Float32Array.from(randomArray(B * OUT, 64), (v) => v > 0 ? 1 : 0);
  const losses = {
    mse: mse(z, target),
    l1: l1(z, target, "sum"),
    bce: bceWithLogits(z, bits, OUT, { posWeight: POS_WEIGHT }),
  };
  for (const [name, { loss, grad }] of Object.entries(losses)) {
    put(`loss/${name}/loss`, [loss], 1e-6, 1e-5);
    put(`loss/${name}/grad`, grad, 1e-7, 1e-5);
  }
  const C = NLL_CASE.weight.length;
  const logp = randomArray(B * C, 65, -5, 0);
  const labels = Uint32Array.from({ length: B }, (_, i) => (i * 3) % C);
  const n = nll(logp, labels, B, C, NLL_CASE);
  put("loss/nll/loss", [n.loss], 1e-6, 1e-5);
  put("loss/nll/grad", n.grad, 1e-7, 1e-5);

  for (const [k, c] of OPTIMIZER_CASES.entries()) {
    for (const i of [0, 1]) {
      const value = Float64Array.from(adamInit(i));
      const state = refState(value.length, [
        "momentum_buffer",
        "exp_avg",
        "exp_avg_sq",
        "max_exp_avg_sq",
        "square_avg",
        "grad_avg",
      ]);
      for (let step = 0; step < ADAM_STEPS; step++) {
        const g = adamGrad(step, i);
        if (c.kind === "SGD") {
          const o: {
            lr: number;
            momentum: number;
            dampening?: number;
            nesterov?: boolean;
            weightDecay?: number;
          } = c.options;
          sgdRef(value, g, state, {
            lr: o.lr,
            momentum: o.momentum,
            dampening: o.dampening ?? 0,
            nesterov: o.nesterov ?? false,
            weightDecay: o.weightDecay ?? 0,
            maximize: false,
          });
        } else if (c.kind === "AdamW") {
          adamRef(value, g, state, {
            lr: c.options.lr,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weightDecay: c.options.weightDecay,
            amsgrad: false,
            maximize: false,
            decoupled: true,
          });
        } else {
          rmspropRef(value, g, state, {
            lr: c.options.lr,
            alpha: 0.99,
            eps: 1e-8,
            weightDecay: c.options.weightDecay,
            momentum: c.options.momentum,
            centered: c.options.centered,
            maximize: false,
          });
        }
      }
      put(`optim/${k}/p${i}`, value, 1e-6, 1e-5);
    }
  }
  return e;
}

/**
 * The twins of `dataChecks`: the gather from the host-side order and augmentation words (checked
 * equal on both runtimes first), evaluate's loss, accuracy and confusion from float64 logits, and
 * the Residual block's output and gradients.
 */
export function dataExpectations(draws: Outputs): Record<string, Expected> {
  const set = dataSet();
  const { batchSize, augment, normalize } = DATA_CASE;
  const e: Record<string, Expected> = {};
  for (const epoch of [0, 1]) {
    const order = draws[`data/e${epoch}/order`], aug = draws[`data/e${epoch}/aug`];
    const ref = gatherRef(set.images, set.labels, order, aug, 0, batchSize, {
      normalize,
      flip: augment.flip,
      crop: augment.crop,
    });
    e[`data/e${epoch}/x`] = { want: ref.x, atol: 1e-6, rtol: 1e-6 };
    e[`data/e${epoch}/y`] = { want: ref.y, atol: 0, rtol: 0 };
  }
  // evaluate: a Linear(3072, 10) on the normalised, unaugmented set in order, batches of 16.
  const state = weightsOf(new Sequential(new Linear(3072, 10)), 71);
  const all = gatherRef(
    set.images,
    set.labels,
    [...set.labels.keys()],
    new Uint32Array(set.count),
    0,
    set.count,
    { normalize },
  );
  const logits = linearForward(all.x, state("0.weight"), state("0.bias"), set.count, 3072, 10);
  const confusion = new Float64Array(100);
  let correct = 0, lossSum = 0, batches = 0;
  for (let start = 0; start < set.count; start += batchSize) {
    const rows = Math.min(batchSize, set.count - start);
    const z = logits.subarray(start * 10, (start + rows) * 10);
    lossSum += crossEntropy(z, all.y.subarray(start, start + rows), rows, 10).loss;
    batches++;
  }
  for (let r = 0; r < set.count; r++) {
    const row = logits.subarray(r * 10, r * 10 + 10);
    const predicted = row.indexOf(Math.max(...row));
    confusion[all.y[r] * 10 + predicted]++;
    if (predicted === all.y[r]) correct++;
  }
  e["evaluate/summary"] = {
    want: [lossSum / batches, correct / set.count, set.count, batches],
    atol: 1e-5,
    rtol: 1e-5,
  };
  e["evaluate/confusion"] = { want: confusion, atol: 0, rtol: 0 };
  // Residual: y = h + tanh(h·W1ᵀ + b1), h = x·W0ᵀ + b0.
  const { B, HID: D } = SIZES;
  const f = weightsOf(
    new Sequential(
      new Linear(D, D),
      new layers.Residual(new Sequential(new Linear(D, D), new layers.Tanh())),
    ),
    72,
  );
  const x = randomArray(B * D, 73), dy = randomArray(B * D, 74);
  const h = linearForward(x, f("0.weight"), f("0.bias"), B, D, D);
  const z1 = linearForward(h, f("1.fn.0.weight"), f("1.fn.0.bias"), B, D, D);
  const t = pointwiseForward("tanh", z1);
  e["residual/y"] = { want: h.map((v, i) => v + t[i]), atol: 1e-5, rtol: 1e-5 };
  const g1 = linearBackward(h, f("1.fn.0.weight"), pointwiseBackward("tanh", z1, dy), B, D, D);
  const g0 = linearBackward(x, f("0.weight"), dy.map((v, i) => v + g1.dx[i]), B, D, D);
  const put = (name: string, want: ArrayLike<number>) =>
    e[`residual/${name}.grad`] = { want, atol: 1e-4, rtol: 1e-4 };
  put("1.fn.0.weight", g1.dw);
  put("1.fn.0.bias", g1.db);
  put("0.weight", g0.dw);
  put("0.bias", g0.db);
  return e;
}
