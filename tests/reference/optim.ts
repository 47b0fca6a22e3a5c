/**
 * Float64 CPU twins of kernels/optim.wgsl: PyTorch 1.13's single-tensor update rules written as
 * the plainest loops (torch/optim/{sgd,adam,adamw,rmsprop}.py, `_single_tensor_*`).
 *
 * Each twin updates `x` and the named state buffers in place for one step; `state.step` counts
 * steps as PyTorch's `state["step"]` does (incremented before use, so the first step has t = 1).
 *
 * @module
 */

/** A twin's optimizer state: the step counter and buffers named as in PyTorch. */
export interface RefState {
  step: number;
  buffers: Record<string, Float64Array>;
}

/** Fresh state for `n` elements with zeroed `slots`. */
export function refState(n: number, slots: readonly string[]): RefState {
  const buffers: Record<string, Float64Array> = {};
  for (const s of slots) buffers[s] = new Float64Array(n);
  return { step: 0, buffers };
}

/** Options of {@link sgdRef} (all given; PyTorch's meaning). */
export interface SgdRefOptions {
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
  maximize: boolean;
}

/** One SGD step. The momentum buffer is a clone of d on the first step. */
export function sgdRef(
  x: Float64Array,
  g: ArrayLike<number>,
  state: RefState,
  o: SgdRefOptions,
): void {
  state.step += 1;
  const buf = state.buffers.momentum_buffer;
  for (let i = 0; i < x.length; i++) {
    let d = o.maximize ? -g[i] : g[i];
    if (o.weightDecay !== 0) d = d + o.weightDecay * x[i];
    if (o.momentum !== 0) {
      if (state.step === 1) buf[i] = d;
      else buf[i] = buf[i] * o.momentum + (1 - o.dampening) * d;
      d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
    }
    x[i] = x[i] - o.lr * d;
  }
}

/** Options of {@link adamRef}; `decoupled` selects AdamW. */
export interface AdamRefOptions {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
  decoupled: boolean;
}

/** One Adam (or AdamW) step with bias correction; eps is added outside the square root. */
export function adamRef(
  x: Float64Array,
  g: ArrayLike<number>,
  state: RefState,
  o: AdamRefOptions,
): void {
  state.step += 1;
  const t = state.step;
  const [beta1, beta2] = o.betas;
  const m = state.buffers.exp_avg;
  const v = state.buffers.exp_avg_sq;
  const vmax = state.buffers.max_exp_avg_sq;
  const stepSize = o.lr / (1 - beta1 ** t);
  const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
  for (let i = 0; i < x.length; i++) {
    let d = o.maximize ? -g[i] : g[i];
    if (o.decoupled) x[i] = x[i] * (1 - o.lr * o.weightDecay);
    else if (o.weightDecay !== 0) d = d + o.weightDecay * x[i];
    m[i] = m[i] * beta1 + (1 - beta1) * d;
    v[i] = v[i] * beta2 + (1 - beta2) * d * d;
    let vhat = v[i];
    if (o.amsgrad) {
      vmax[i] = Math.max(vmax[i], v[i]);
      vhat = vmax[i];
    }
    const denom = Math.sqrt(vhat) / bc2Sqrt + o.eps;
    x[i] = x[i] - stepSize * (m[i] / denom);
  }
}

/** Options of {@link rmspropRef}. */
export interface RmspropRefOptions {
  lr: number;
  alpha: number;
  eps: number;
  weightDecay: number;
  momentum: number;
  centered: boolean;
  maximize: boolean;
}

/** One RMSprop step (centered: variance estimate; momentum: buffer of d/avg). */
export function rmspropRef(
  x: Float64Array,
  g: ArrayLike<number>,
  state: RefState,
  o: RmspropRefOptions,
): void {
  state.step += 1;
  const v = state.buffers.square_avg;
  const buf = state.buffers.momentum_buffer;
  const gavg = state.buffers.grad_avg;
  for (let i = 0; i < x.length; i++) {
    let d = o.maximize ? -g[i] : g[i];
    if (o.weightDecay !== 0) d = d + o.weightDecay * x[i];
    v[i] = v[i] * o.alpha + (1 - o.alpha) * d * d;
    let avg: number;
    if (o.centered) {
      gavg[i] = gavg[i] * o.alpha + (1 - o.alpha) * d;
      avg = Math.sqrt(v[i] - gavg[i] * gavg[i]);
    } else {
      avg = Math.sqrt(v[i]);
    }
    avg = avg + o.eps;
    if (o.momentum > 0) {
      buf[i] = buf[i] * o.momentum + d / avg;
      x[i] = x[i] - o.lr * buf[i];
    } else {
      x[i] = x[i] - o.lr * (d / avg);
    }
  }
}
