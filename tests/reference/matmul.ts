/**
 * Float64 twin of kernels/matmul_*.wgsl: the plainest triple loop.
 * C[m][n] = Σ_k op(A)[m][k]·op(B)[k][n] (+ bias[n]) (→ LeakyReLU) (+ C_old).
 */
export interface MatmulRef {
  transA?: boolean;
  transB?: boolean;
  bias?: ArrayLike<number>;
  leakySlope?: number;
  accumulate?: ArrayLike<number>;
}

export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  o: MatmulRef = {},
): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const av = o.transA ? a[k * M + m] : a[m * K + k];
        const bv = o.transB ? b[n * K + k] : b[k * N + n];
        s += av * bv;
      }
      if (o.bias) s += o.bias[n];
      if (o.leakySlope !== undefined && s <= 0) s *= o.leakySlope;
      if (o.accumulate) s += o.accumulate[m * N + n];
      c[m * N + n] = s;
    }
  }
  return c;
}
