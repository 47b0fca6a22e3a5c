/**
 * Float64 twins of the CNN kernels (kernels/conv2d.wgsl, pool2d.wgsl, batchnorm2d.wgsl): the
 * plainest nested loops over NCHW arrays, written from the definitions, not from the WGSL.
 * Backward passes scatter from each output (the GPU gathers at each input), so the two agree
 * only when both are right. Finite differences vouch for them in tests/cnn_layers_test.ts.
 */

/** [N, C, H, W]. */
export type Shape4 = readonly [number, number, number, number];

/** A convolution's geometry, as Conv2d holds it. */
export interface ConvGeometry {
  /** Output channels. */
  outChannels: number;
  /** [kh, kw]. */
  kernel: readonly [number, number];
  /** [sh, sw]. */
  stride: readonly [number, number];
  /** [top, bottom, left, right] zeros. */
  pad: readonly [number, number, number, number];
  /** [dh, dw]. */
  dilation: readonly [number, number];
  /** Channel groups. */
  groups: number;
}

/** Output height and width of `g` on an H×W input. */
export function convOutSize(g: ConvGeometry, H: number, W: number): [number, number] {
  const eh = g.dilation[0] * (g.kernel[0] - 1) + 1;
  const ew = g.dilation[1] * (g.kernel[1] - 1) + 1;
  return [
    Math.floor((H + g.pad[0] + g.pad[1] - eh) / g.stride[0]) + 1,
    Math.floor((W + g.pad[2] + g.pad[3] - ew) / g.stride[1]) + 1,
  ];
}

/**
 * Calls `visit(yIndex, xIndex, wIndex)` for every (output, tap) pair whose input lies inside
 * the image: the one loop nest both directions of the convolution share.
 */
function eachTap(
  shape: Shape4,
  g: ConvGeometry,
  visit: (yi: number, xi: number, wi: number) => void,
): void {
  const [N, C, H, W] = shape;
  const [OH, OW] = convOutSize(g, H, W);
  const [KH, KW] = g.kernel;
  const OC = g.outChannels;
  const cg = C / g.groups, ocg = OC / g.groups;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OC; o++) {
      const grp = Math.floor(o / ocg);
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          const yi = ((n * OC + o) * OH + i) * OW + j;
          for (let c = 0; c < cg; c++) {
            for (let u = 0; u < KH; u++) {
              for (let v = 0; v < KW; v++) {
                const h = i * g.stride[0] - g.pad[0] + u * g.dilation[0];
                const w = j * g.stride[1] - g.pad[2] + v * g.dilation[1];
                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                const xi = ((n * C + grp * cg + c) * H + h) * W + w;
                const wi = ((o * cg + c) * KH + u) * KW + v;
                visit(yi, xi, wi);
              }
            }
          }
        }
      }
    }
  }
}

/** y = conv(x, w) + b; `b` null for no bias. */
export function conv2dForward(
  x: ArrayLike<number>,
  shape: Shape4,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  g: ConvGeometry,
): Float64Array {
  const [N] = shape;
  const [OH, OW] = convOutSize(g, shape[2], shape[3]);
  const y = new Float64Array(N * g.outChannels * OH * OW);
  eachTap(shape, g, (yi, xi, wi) => (y[yi] += x[xi] * w[wi]));
  if (b) {
    for (let yi = 0; yi < y.length; yi++) y[yi] += b[Math.floor(yi / (OH * OW)) % g.outChannels];
  }
  return y;
}

/** dx, dw and db of the convolution for the output gradient `dy`. */
export function conv2dBackward(
  x: ArrayLike<number>,
  shape: Shape4,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  g: ConvGeometry,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const [OH, OW] = convOutSize(g, shape[2], shape[3]);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(g.outChannels);
  eachTap(shape, g, (yi, xi, wi) => {
    dx[xi] += dy[yi] * w[wi];
    dw[wi] += dy[yi] * x[xi];
  });
  for (let yi = 0; yi < dy.length; yi++) db[Math.floor(yi / (OH * OW)) % g.outChannels] += dy[yi];
  return { dx, dw, db };
}

/** A pooling window's geometry: kernel, stride and padding per dimension. */
export interface PoolGeometry {
  /** [kh, kw]. */
  kernel: readonly [number, number];
  /** [sh, sw]. */
  stride: readonly [number, number];
  /** [ph, pw] on each side. */
  pad: readonly [number, number];
}

/** Output height and width of a pooling window on H×W (floor mode). */
export function poolOutSize(g: PoolGeometry, H: number, W: number): [number, number] {
  return [
    Math.floor((H + 2 * g.pad[0] - g.kernel[0]) / g.stride[0]) + 1,
    Math.floor((W + 2 * g.pad[1] - g.kernel[1]) / g.stride[1]) + 1,
  ];
}

/** Max pooling: y, and the flat index h·W + w of each window's first maximum. */
export function maxPoolForward(
  x: ArrayLike<number>,
  shape: Shape4,
  g: PoolGeometry,
): { y: Float64Array; argmax: Int32Array } {
  const [N, C, H, W] = shape;
  const [OH, OW] = poolOutSize(g, H, W);
  const y = new Float64Array(N * C * OH * OW);
  const argmax = new Int32Array(y.length);
  for (let q = 0; q < N * C; q++) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0; j < OW; j++) {
        let best = -Infinity, at = -1;
        for (let u = 0; u < g.kernel[0]; u++) {
          for (let v = 0; v < g.kernel[1]; v++) {
            const h = i * g.stride[0] - g.pad[0] + u, w = j * g.stride[1] - g.pad[1] + v;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const value = x[(q * H + h) * W + w];
            if (at < 0 || value > best) [best, at] = [value, h * W + w];
          }
        }
        y[(q * OH + i) * OW + j] = best;
        argmax[(q * OH + i) * OW + j] = at;
      }
    }
  }
  return { y, argmax };
}

/** dx of max pooling: each dy goes to its window's first maximum. */
export function maxPoolBackward(
  argmax: Int32Array,
  dy: ArrayLike<number>,
  shape: Shape4,
  g: PoolGeometry,
): Float64Array {
  const [N, C, H, W] = shape;
  const [OH, OW] = poolOutSize(g, H, W);
  const dx = new Float64Array(N * C * H * W);
  for (let q = 0; q < N * C; q++) {
    for (let k = 0; k < OH * OW; k++) {
      dx[q * H * W + argmax[q * OH * OW + k]] += dy[q * OH * OW + k];
    }
  }
  return dx;
}

/**
 * The windows of average pooling: for output (i, j) the input rows [h0, h1) and columns
 * [w0, w1) (clipped to the image) and the divisor. `adaptive` gives AdaptiveAvgPool2d's
 * windows for an OH×OW output; otherwise count_include_pad: the divisor is kh·kw.
 */
function avgWindows(
  H: number,
  W: number,
  out: { adaptive: readonly [number, number] } | PoolGeometry,
): { OH: number; OW: number; window: (i: number, j: number) => number[] } {
  if ("adaptive" in out) {
    const [OH, OW] = out.adaptive;
    return {
      OH,
      OW,
      window: (i, j) => {
        const h0 = Math.floor(i * H / OH), h1 = Math.ceil((i + 1) * H / OH);
        const w0 = Math.floor(j * W / OW), w1 = Math.ceil((j + 1) * W / OW);
        return [h0, h1, w0, w1, (h1 - h0) * (w1 - w0)];
      },
    };
  }
  const [OH, OW] = poolOutSize(out, H, W);
  return {
    OH,
    OW,
    window: (i, j) => {
      const h0 = i * out.stride[0] - out.pad[0], w0 = j * out.stride[1] - out.pad[1];
      return [
        Math.max(h0, 0),
        Math.min(h0 + out.kernel[0], H),
        Math.max(w0, 0),
        Math.min(w0 + out.kernel[1], W),
        out.kernel[0] * out.kernel[1],
      ];
    },
  };
}

/** Average pooling (count_include_pad) or adaptive average pooling. */
export function avgPoolForward(
  x: ArrayLike<number>,
  shape: Shape4,
  geometry: { adaptive: readonly [number, number] } | PoolGeometry,
): Float64Array {
  const [N, C, H, W] = shape;
  const { OH, OW, window } = avgWindows(H, W, geometry);
  const y = new Float64Array(N * C * OH * OW);
  for (let q = 0; q < N * C; q++) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0; j < OW; j++) {
        const [h0, h1, w0, w1, count] = window(i, j);
        let s = 0;
        for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) s += x[(q * H + h) * W + w];
        y[(q * OH + i) * OW + j] = s / count;
      }
    }
  }
  return y;
}

/** dx of average pooling: each dy spread evenly over its window. */
export function avgPoolBackward(
  dy: ArrayLike<number>,
  shape: Shape4,
  geometry: { adaptive: readonly [number, number] } | PoolGeometry,
): Float64Array {
  const [N, C, H, W] = shape;
  const { OH, OW, window } = avgWindows(H, W, geometry);
  const dx = new Float64Array(N * C * H * W);
  for (let q = 0; q < N * C; q++) {
    for (let i = 0; i < OH; i++) {
      for (let j = 0; j < OW; j++) {
        const [h0, h1, w0, w1, count] = window(i, j);
        const g = dy[(q * OH + i) * OW + j] / count;
        for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) dx[(q * H + h) * W + w] += g;
      }
    }
  }
  return dx;
}

/** The values of channel c of an NCHW array, in (n, h, w) order. */
function channel(x: ArrayLike<number>, shape: Shape4, c: number): number[] {
  const [N, C, H, W] = shape;
  const out: number[] = [];
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < H * W; k++) out.push(x[(n * C + c) * H * W + k]);
  }
  return out;
}

/** BatchNorm2d in train mode: batch statistics per channel over (N, H, W), biased variance. */
export function batchnorm2dTrain(
  x: ArrayLike<number>,
  shape: Shape4,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  eps: number,
): { y: Float64Array; mean: Float64Array; variance: Float64Array } {
  const [N, C, H, W] = shape;
  const y = new Float64Array(N * C * H * W);
  const mean = new Float64Array(C), variance = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const v = channel(x, shape, c);
    mean[c] = v.reduce((a, b) => a + b, 0) / v.length;
    variance[c] = v.reduce((a, b) => a + (b - mean[c]) ** 2, 0) / v.length;
  }
  for (let i = 0; i < y.length; i++) {
    const c = Math.floor(i / (H * W)) % C;
    y[i] = (x[i] - mean[c]) / Math.sqrt(variance[c] + eps) * gamma[c] + beta[c];
  }
  return { y, mean, variance };
}

/** BatchNorm2d in eval mode: the running estimates. */
export function batchnorm2dEval(
  x: ArrayLike<number>,
  shape: Shape4,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  runningMean: ArrayLike<number>,
  runningVar: ArrayLike<number>,
  eps: number,
): Float64Array {
  const [, C, H, W] = shape;
  return Float64Array.from(x, (v, i) => {
    const c = Math.floor(i / (H * W)) % C;
    return (v - runningMean[c]) / Math.sqrt(runningVar[c] + eps) * gamma[c] + beta[c];
  });
}

/** dx, dγ and dβ of train-mode BatchNorm2d. */
export function batchnorm2dBackward(
  x: ArrayLike<number>,
  shape: Shape4,
  gamma: ArrayLike<number>,
  dy: ArrayLike<number>,
  eps: number,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const [N, C, H, W] = shape;
  const { mean, variance } = batchnorm2dTrain(x, shape, gamma, new Float64Array(C), eps);
  const m = N * H * W;
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(C), dbeta = new Float64Array(C);
  const chan = (i: number) => Math.floor(i / (H * W)) % C;
  const xhat = (i: number) => (x[i] - mean[chan(i)]) / Math.sqrt(variance[chan(i)] + eps);
  for (let i = 0; i < x.length; i++) {
    dbeta[chan(i)] += dy[i];
    dgamma[chan(i)] += dy[i] * xhat(i);
  }
  for (let i = 0; i < x.length; i++) {
    const c = chan(i);
    const r = 1 / Math.sqrt(variance[c] + eps);
    dx[i] = gamma[c] * r * (dy[i] - dbeta[c] / m - xhat(i) * dgamma[c] / m);
  }
  return { dx, dgamma, dbeta };
}
