r"""Diagonal mass-matrix adaptation: Welford's running variance with Stan's regularisation.

Welford (1962) updates a running mean and sum of squared deviations one draw at a time:

    n += 1;  d = x - mean;  mean += d / n;  m2 += d * (x - mean).

At the end of a window, Stan (``var_adaptation.hpp``) turns the sample variance
``s^2 = m2 / (n - 1)`` into the new inverse mass matrix, shrunk towards a small multiple of the
identity so that short windows cannot produce a degenerate metric:

    M^{-1} = n / (n + 5) * s^2 + 1e-3 * 5 / (n + 5).

With a single draw in the window (Stan's stretch rule can produce one, e.g. for 151 warmup
iterations) ``s^2`` is undefined and Stan's estimator leaves the current ``M^{-1}`` in its place
before shrinking it; so does ``regularized_variance``.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from nutslite._numba import jit

WelfordVariance = namedtuple("WelfordVariance", ["n", "mean", "m2"])
WelfordVariance.__doc__ = """Running count, mean and sum of squared deviations (arrays of dim)."""


def welford_init(dim: int) -> WelfordVariance:
    return WelfordVariance(0.0, np.zeros(dim), np.zeros(dim))


@jit
def welford_update(state, x):
    """Add one draw ``x``; the arrays are updated in place, the count is returned anew."""
    n = state.n + 1.0
    for i in range(x.shape[0]):
        d = x[i] - state.mean[i]
        state.mean[i] += d / n
        state.m2[i] += d * (x[i] - state.mean[i])
    return WelfordVariance(n, state.mean, state.m2)


@jit
def welford_restart(state):
    for i in range(state.mean.shape[0]):
        state.mean[i] = 0.0
        state.m2[i] = 0.0
    return WelfordVariance(0.0, state.mean, state.m2)


@jit
def regularized_variance(state, out):
    """Stan's regularised variance into ``out`` (which holds the current inverse mass matrix);
    returns False if any entry is not finite (Stan: "Numerical overflow in metric adaptation")."""
    n = state.n
    ok = True
    for i in range(out.shape[0]):
        var = state.m2[i] / (n - 1.0) if n > 1.0 else out[i]
        out[i] = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        if not np.isfinite(out[i]):
            ok = False
    return ok
