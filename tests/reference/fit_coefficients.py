#!/usr/bin/python3
"""Fits the polynomial coefficients of exp_f32, tanh_f32 and erf_f32 (kernels/pointwise.wgsl;
exp_f32 is copied into kernels/softmax.wgsl) and prints them as they appear there.

Each fit is near-minimax in the weighted maximum norm (Lawson's iteratively reweighted least
squares on Chebyshev nodes), against mpmath at 40 digits, with the weight that turns the
polynomial's error into the relative error of the function (for erf's outer piece, erf's own
relative error). The coefficients are then rounded to float32. The kernels' accuracy is measured
on the GPU, not here: tests/activations_test.ts.

Needs numpy and mpmath (Debian: python3-numpy, python3-mpmath). Run: python3 fit_coefficients.py
"""

import mpmath as mp
import numpy as np

mp.mp.dps = 40


def chebyshev(lo, hi, n=300):
    k = np.arange(n)
    return [mp.mpf(lo + (hi - lo) * (1 - np.cos(np.pi * (i + 0.5) / n)) / 2) for i in k]


def fit(xs, target, variable, degree, weight, iterations=200):
    """Coefficients c of sum c_k·variable(x)^k ≈ target(x), minimising max |weight·error|."""
    a = np.array([[float(variable(x) ** k) for k in range(degree + 1)] for x in xs])
    t = np.array([float(target(x)) for x in xs])
    w = np.array([float(weight(x)) for x in xs])
    lawson = np.ones(len(xs)) / len(xs)
    for _ in range(iterations):
        s = np.sqrt(lawson)
        c, *_ = np.linalg.lstsq(a * (s * w)[:, None], t * s * w, rcond=None)
        e = np.abs((a @ c - t) * w)
        lawson = lawson * e / (lawson * e).sum()
    return [np.float32(v) for v in c], e.max()


def show(name, coefficients, error):
    print(f"{name} (weighted error {error:.2e}):")
    print("  " + ", ".join("%.9g" % v for v in coefficients))


def main():
    ln2 = mp.log(2)
    hi = mp.nint(ln2 * 2**15) / 2**15  # 15 bits: n·LN2_HI is exact for |n| < 512
    print("LN2_HI %.9g  LN2_LO %.9g" % (np.float32(float(hi)), np.float32(float(ln2 - hi))))

    # exp: e^r = 1 + r + r²·Q(r) on |r| ≤ ln2/2; weight r²/e^r gives e^r's relative error.
    r0 = float(ln2) / 2 + 1e-4
    q = lambda r: (mp.exp(r) - 1 - r) / r**2 if r != 0 else mp.mpf(1) / 2
    show("exp Q", *fit(chebyshev(-r0, r0), q, lambda r: r, 4, lambda r: r**2 / mp.exp(r)))

    # tanh: x + x·s·P(s), s = x², on |x| < 0.9.
    xs = [mp.sqrt(s) for s in chebyshev(0, 0.81)]
    p = lambda x: (mp.tanh(x) / x - 1) / x**2 if x != 0 else mp.mpf(-1) / 3
    w = lambda x: x**3 / mp.tanh(x) if x != 0 else mp.mpf(1)
    show("tanh P", *fit(xs, p, lambda x: x * x, 7, w))

    # erf inner: z + z·E(z²) on |z| < 0.92.
    zs = [mp.sqrt(s) for s in chebyshev(0, 0.92**2)]
    e = lambda z: mp.erf(z) / z - 1 if z != 0 else 2 / mp.sqrt(mp.pi) - 1
    w = lambda z: z / mp.erf(z) if z != 0 else mp.sqrt(mp.pi) / 2
    show("erf E", *fit(zs, e, lambda z: z * z, 5, w))

    # erf outer: 1 − e^R(a), R ≈ log(erfc(a)) on [0.92, 3.92]; weight erfc/erf gives erf's error.
    ts = chebyshev(0.92, 3.9192059)
    w = lambda t: mp.erfc(t) / mp.erf(t)
    show("erf R", *fit(ts, lambda t: mp.log(mp.erfc(t)), lambda t: t, 8, w))


if __name__ == "__main__":
    main()
