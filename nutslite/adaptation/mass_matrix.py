r"""Mass-matrix adaptation: estimate ``M^{-1}`` from warmup draws (and gradients).

Running moments use Welford's (1962) update, one draw at a time:
``n += 1;  d = x - mean;  mean += d / n;  m2 += d * (x - mean)``.

Three estimators share one state (``MetricAdaptation``), chosen by ``kind``:

``STAN`` (Stan's ``var_adaptation.hpp``): the regularised sample variance of the window's draws,
shrunk towards a small multiple of the identity so that short windows cannot produce a
degenerate metric,

    M^{-1} = n / (n + 5) * s^2 + 1e-3 * 5 / (n + 5).

With a single draw in the window (Stan's stretch rule can make one, e.g. for 151 warmup
iterations) ``s^2`` is undefined; Stan's estimator leaves the current ``M^{-1}`` in its place before
shrinking it, and so does this one.

``DENSE`` (Stan's ``covar_adaptation.hpp``): the same shrinkage applied to the sample covariance,
``n / (n + 5) * S + 1e-3 * 5 / (n + 5) * I``, with a Welford update of the outer products.

``GRAD`` (nutpie; Seyboldt, Carlson & Carpenter 2026): for a Gaussian target with covariance
``Sigma`` the gradient has covariance ``Sigma^{-1}``, so per coordinate

    M^{-1}_ii = sqrt(Var[x_i] / Var[d log p / d x_i]),

which is exact for any Gaussian with diagonal covariance and minimises a Fisher divergence in
general. Draws and gradients feed a foreground and a background estimator; the metric is
recomputed from the foreground after every draw, and at a switch the background replaces the
foreground and starts afresh (``nutslite.adaptation.windows.nutpie_schedule``). The ratio is
clipped to ``[1e-20, 1e20]`` as in nuts-rs.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from nutslite._numba import jit

STAN, DENSE, GRAD = 0, 1, 2
ADAPTATION_KINDS = {"stan": STAN, "dense": DENSE, "grad": GRAD}
GRAD_CLIP = 1e20

MetricAdaptation = namedtuple(
    "MetricAdaptation",
    ["kind", "n", "x_mean", "x_m2", "g_mean", "g_m2",
     "n_bg", "bg_x_mean", "bg_x_m2", "bg_g_mean", "bg_g_m2", "cov_m2"],
)
MetricAdaptation.__doc__ = """Running moments for mass-matrix adaptation.

``n``, ``x_*``, ``g_*``: count, mean and sum of squared deviations of the (foreground) draws and
gradients; ``n_bg``, ``bg_*``: the background estimator of ``GRAD``; ``cov_m2``: the sum of outer
products of ``DENSE``. Arrays a kind does not use are empty."""


def metric_adaptation_init(kind: int, dim: int) -> MetricAdaptation:
    """Empty estimators for ``kind`` (``STAN``, ``DENSE`` or ``GRAD``) in ``dim`` dimensions."""
    def vec(used: bool) -> np.ndarray:
        return np.zeros(dim if used else 0)

    grad = kind == GRAD
    return MetricAdaptation(
        kind, 0.0, vec(True), vec(True), vec(grad), vec(grad),
        0.0, vec(grad), vec(grad), vec(grad), vec(grad),
        np.zeros((dim, dim) if kind == DENSE else (0, 0)),
    )


@jit(inline="always")
def _welford(n, mean, m2, x):
    """Add ``x`` to the running ``mean`` and ``m2`` in place; ``n`` is the new count."""
    for i in range(x.shape[0]):
        d = x[i] - mean[i]
        mean[i] += d / n
        m2[i] += d * (x[i] - mean[i])


@jit(inline="always")
def _with_counts(state, n, n_bg):
    """``state`` with new counts (namedtuples are immutable; the arrays are shared)."""
    return MetricAdaptation(
        state.kind, n, state.x_mean, state.x_m2, state.g_mean, state.g_m2, n_bg,
        state.bg_x_mean, state.bg_x_m2, state.bg_g_mean, state.bg_g_m2, state.cov_m2,
    )


@jit
def adaptation_collect(state, x, g):
    """Add a draw ``x`` with gradient ``g``; returns the new state (arrays updated in place)."""
    n = state.n + 1.0
    if state.kind == DENSE:
        dim = x.shape[0]
        for i in range(dim):  # m2 += (x - mean_old) (x - mean_new)^T, Welford for covariances
            d = x[i] - state.x_mean[i]
            for j in range(dim):
                state.cov_m2[i, j] += d * (x[j] - state.x_mean[j]) * (n - 1.0) / n
        _welford(n, state.x_mean, state.x_m2, x)
        return _with_counts(state, n, state.n_bg)
    _welford(n, state.x_mean, state.x_m2, x)
    if state.kind != GRAD:
        return _with_counts(state, n, state.n_bg)
    _welford(n, state.g_mean, state.g_m2, g)
    n_bg = state.n_bg + 1.0
    _welford(n_bg, state.bg_x_mean, state.bg_x_m2, x)
    _welford(n_bg, state.bg_g_mean, state.bg_g_m2, g)
    return _with_counts(state, n, n_bg)


@jit
def adaptation_update(state, metric):
    """Set the metric from the estimator; returns False if a value is not finite (Stan:
    "Numerical overflow in metric adaptation"), leaving the metric partly updated."""
    n = state.n
    shrink, ridge = n / (n + 5.0), 1e-3 * (5.0 / (n + 5.0))
    dim = state.x_mean.shape[0]
    if state.kind == STAN:
        for i in range(dim):
            var = state.x_m2[i] / (n - 1.0) if n > 1.0 else metric.diag[i]
            metric.diag[i] = shrink * var + ridge
    elif state.kind == DENSE:
        for i in range(dim):
            for j in range(dim):
                cov = state.cov_m2[i, j] / (n - 1.0) if n > 1.0 else metric.dense[i, j]
                metric.dense[i, j] = shrink * cov + (ridge if i == j else 0.0)
        if not np.all(np.isfinite(metric.dense)):
            return False
        chol = np.linalg.cholesky(metric.dense)
        for i in range(dim):
            metric.diag[i] = metric.dense[i, i]
            for j in range(dim):
                metric.cholesky[i, j] = chol[i, j]
    else:
        for i in range(dim):
            if state.g_m2[i] > 0.0 and state.x_m2[i] > 0.0:
                ratio = math.sqrt(state.x_m2[i] / state.g_m2[i])
                metric.diag[i] = min(max(ratio, 1.0 / GRAD_CLIP), GRAD_CLIP)
    return bool(np.all(np.isfinite(metric.diag)))


@jit
def adaptation_restart(state):
    """Start the next window: Stan's estimators forget; ``GRAD``'s background becomes the
    foreground and starts afresh."""
    if state.kind == GRAD:
        for i in range(state.x_mean.shape[0]):
            state.x_mean[i] = state.bg_x_mean[i]
            state.x_m2[i] = state.bg_x_m2[i]
            state.g_mean[i] = state.bg_g_mean[i]
            state.g_m2[i] = state.bg_g_m2[i]
            state.bg_x_mean[i] = 0.0
            state.bg_x_m2[i] = 0.0
            state.bg_g_mean[i] = 0.0
            state.bg_g_m2[i] = 0.0
        return _with_counts(state, state.n_bg, 0.0)
    state.x_mean[:] = 0.0
    state.x_m2[:] = 0.0
    state.cov_m2[:, :] = 0.0
    return _with_counts(state, 0.0, 0.0)


def initial_inv_mass(kind: int, grad: np.ndarray) -> np.ndarray:
    """The starting diagonal: ones (Stan), or ``1 / |grad log p(q0)|`` clipped (nutpie's start
    for ``GRAD``, exact for a standard normal's scale in each coordinate's own units)."""
    if kind != GRAD:
        return np.ones(len(grad))
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.abs(grad)
    return np.clip(inv, 1.0 / GRAD_CLIP, GRAD_CLIP)

