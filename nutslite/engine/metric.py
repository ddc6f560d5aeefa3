r"""Euclidean metrics: kinetic energy, velocity and momentum sampling.

The Hamiltonian is ``H(q, p) = -log p(q) + K(p)`` with the Gaussian kinetic energy
``K(p) = 1/2 p^T M^{-1} p``; momenta are drawn from ``N(0, M)`` and the velocity
``dq/dt = M^{-1} p`` is the "sharp" momentum ``p#`` of Betancourt (2017, "A Conceptual
Introduction to Hamiltonian Monte Carlo", sec. 4.2 and appendix A.4.2). The inverse mass matrix
``M^{-1}`` should approximate the posterior covariance. Three forms share one interface:

* ``DIAGONAL``: ``M^{-1} = diag(m)`` (Stan's ``diag_e_metric``): ``v = m * p``,
  ``p = z / sqrt(m)``.
* ``DENSE``: ``M^{-1} = S`` with Cholesky factor ``S = L L^T`` (Stan's ``dense_e_metric``):
  ``v = S p``, ``p = L^{-T} z`` (then ``Cov p = L^{-T} L^{-1} = S^{-1} = M``).
* ``LOW_RANK``: ``M^{-1} = D (I + U (Lambda - I) U^T) D`` with ``D = diag(sqrt(m))``, ``U``
  ``(dim, k)`` orthonormal and ``Lambda`` ``(k,)`` positive (the diagonal-plus-low-rank form of
  Seyboldt, Carlson & Carpenter 2026): ``v = D w`` with ``w = y + U ((Lambda - 1) * U^T y)``,
  ``y = D p``; and ``p = D^{-1} (z + U ((Lambda^{-1/2} - 1) * U^T z))``, whose covariance is
  ``D^{-1} (I + U (Lambda^{-1} - I) U^T) D^{-1} = M`` because ``U^T U = I``. Cost ``O(dim k)``.

The diagonal and low-rank forms keep ``sqrt(m)`` beside ``m`` (``sqrt_diag``), computed when
``m`` is set: the momentum draw divides by it once per transition, the low-rank velocity
multiplies by it twice per call, and a square root costs several times a division
(``benchmarks/README.md``, engine round 12). Whoever writes ``m`` refreshes it
(``refresh_sqrt_diag``); it is the same correctly rounded square root either way, so the draws are
the same bits as when it was computed where used.

Each form is its own plain tuple type (``DiagonalMetric``, ``DenseMetric``, ``LowRankMetric``;
``Metric`` is their union), and ``velocity`` and ``sample_momentum`` pick the form's code by type
(``nutslite._numba.by_type``), so the compiled engine contains only the metric a run uses. A
low-rank basis has a fixed number of columns; columns whose eigenvalue is exactly 1 contribute
nothing and are skipped.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from nutslite._memory import aligned_copy
from nutslite._numba import by_type, jit
from nutslite.engine.linalg import dot, fresh_momentum_packed, sqrt
from nutslite.engine.normal import standard_normals

DIAGONAL, DENSE, LOW_RANK = 0, 1, 2

DiagonalMetric = namedtuple("DiagonalMetric", ["kind", "diag", "sqrt_diag"])
DiagonalMetric.__doc__ = """``M^{-1} = diag(diag)``, ``sqrt_diag = sqrt(diag)``; ``kind`` is
``DIAGONAL``."""
DenseMetric = namedtuple("DenseMetric", ["kind", "diag", "dense", "cholesky"])
DenseMetric.__doc__ = """``M^{-1} = dense`` ``(dim, dim)`` with Cholesky factor ``cholesky``;
``diag`` is its diagonal and ``kind`` is ``DENSE``."""
LowRankMetric = namedtuple("LowRankMetric", ["kind", "diag", "sqrt_diag", "basis", "eigvals"])
LowRankMetric.__doc__ = """``M^{-1} = D (I + U (Lambda - I) U^T) D`` with ``D = diag(sqrt_diag)``,
``sqrt_diag = sqrt(diag)``, ``U = basis`` ``(dim, k)`` and ``Lambda = eigvals`` ``(k,)``;
``kind`` is ``LOW_RANK``."""
Metric = DiagonalMetric | DenseMetric | LowRankMetric


def diagonal_metric(inv_mass: np.ndarray) -> DiagonalMetric:
    """A diagonal metric from the diagonal of ``M^{-1}`` (copied: warmup updates it in place).
    Its vectors start on cache lines, as the trajectory's rows do (``nutslite.engine.tree``):
    each leapfrog step reads ``diag`` in both passes."""
    diag = aligned_copy(inv_mass)
    return DiagonalMetric(DIAGONAL, diag, aligned_copy(np.sqrt(diag)))


def dense_metric(inv_mass: np.ndarray) -> DenseMetric:
    """A dense metric from ``M^{-1}`` (symmetric positive definite)."""
    dense = np.ascontiguousarray(inv_mass, dtype=np.float64)
    chol = np.ascontiguousarray(np.linalg.cholesky(dense))
    return DenseMetric(DENSE, np.diag(dense).copy(), dense, chol)


def low_rank_metric(diag: np.ndarray, basis: np.ndarray, eigvals: np.ndarray) -> LowRankMetric:
    """``M^{-1} = D (I + U (Lambda - I) U^T) D`` with ``D = diag(sqrt(diag))``. The basis is
    kept in column-major (Fortran) order: the velocity and the momentum draw read it a column
    ``u_c`` at a time, which is then contiguous (in row-major order each entry of a column was on
    a cache line of its own; radon's low-rank steps: 3.8 -> 2.5 µs, ``benchmarks/README.md``,
    engine round 12). ``diag`` is copied, on cache lines as in ``diagonal_metric``."""
    diag = aligned_copy(diag)
    return LowRankMetric(
        LOW_RANK,
        diag,
        aligned_copy(np.sqrt(diag)),
        np.asfortranarray(basis, dtype=np.float64),
        np.ascontiguousarray(eigvals, dtype=np.float64),
    )


def initial_metric(kind: int, inv_mass: np.ndarray) -> Metric:
    """The metric of ``kind`` that warmup starts from, with inverse mass matrix ``inv_mass``: a
    vector (its diagonal) or, for ``DENSE``, also a matrix. A ``LOW_RANK`` metric starts diagonal;
    warmup adds the low-rank part."""
    if kind == DENSE:
        return dense_metric(inv_mass if inv_mass.ndim == 2 else np.diag(inv_mass))
    if kind == LOW_RANK:
        n = len(inv_mass)
        return low_rank_metric(inv_mass, np.zeros((n, n)), np.ones(n))
    return diagonal_metric(inv_mass)


def metric_from_inv_mass(inv_mass: np.ndarray | None, dim: int) -> Metric:
    """The metric with inverse mass matrix ``inv_mass``: a vector gives a diagonal metric, a
    ``(dim, dim)`` matrix a dense one, ``None`` the identity."""
    if inv_mass is None:
        return diagonal_metric(np.ones(dim))
    arr = np.asarray(inv_mass, dtype=np.float64)
    return dense_metric(arr) if arr.ndim == 2 else diagonal_metric(arr)


def as_matrix(metric: Metric) -> np.ndarray:
    """``M^{-1}`` as a dense ``(dim, dim)`` array (for tests and reports)."""
    if metric.kind == DIAGONAL:
        return np.diag(metric.diag)
    if metric.kind == DENSE:
        return metric.dense.copy()
    d = np.sqrt(metric.diag)
    u = metric.basis
    inner = np.eye(len(d)) + (u * (metric.eigvals - 1.0)) @ u.T
    return d[:, None] * inner * d[None, :]


@jit(inline="always")  # one call site per compile: no compile of its own
def refresh_sqrt_diag(metric):
    """``metric.sqrt_diag = sqrt(metric.diag)`` after ``metric.diag`` changed (diagonal and
    low-rank metrics)."""
    for i in range(metric.diag.shape[0]):
        metric.sqrt_diag[i] = sqrt(metric.diag[i])


@jit
def _velocity_diagonal(metric, p, v_out):
    for i in range(p.shape[0]):
        v_out[i] = metric.diag[i] * p[i]
    return 0.5 * dot(p, v_out)


@jit
def _velocity_dense(metric, p, v_out):
    n = p.shape[0]
    for i in range(n):
        v_out[i] = dot(metric.dense[i], p)
    return 0.5 * dot(p, v_out)


@jit
def _velocity_low_rank(metric, p, v_out):
    n = p.shape[0]
    basis, r = metric.basis, metric.basis.shape[1]
    for i in range(n):  # y = D p, kept in v_out
        v_out[i] = metric.sqrt_diag[i] * p[i]
    for c in range(r):  # w = y + U ((Lambda - 1) U^T y)
        if metric.eigvals[c] == 1.0:
            continue
        proj = dot(basis[:, c], v_out) * (metric.eigvals[c] - 1.0)
        for i in range(n):
            v_out[i] += basis[i, c] * proj
    for i in range(n):  # v = D w
        v_out[i] *= metric.sqrt_diag[i]
    return 0.5 * dot(p, v_out)


velocity = by_type({
    DiagonalMetric: _velocity_diagonal,
    DenseMetric: _velocity_dense,
    LowRankMetric: _velocity_low_rank,
})
velocity.__doc__ = """``velocity(metric, p, v_out)``: ``v = M^{-1} p`` into ``v_out``; returns
``K(p) = 1/2 p . v``."""


@jit
def _sample_momentum_diagonal(rng, metric, p_out):
    n = p_out.shape[0]
    standard_normals(rng, p_out)
    for i in range(n):  # a separate pass: packed divisions
        p_out[i] /= metric.sqrt_diag[i]


@jit
def _sample_momentum_dense(rng, metric, p_out):
    n = p_out.shape[0]
    standard_normals(rng, p_out)
    chol = metric.cholesky
    for i in range(n - 1, -1, -1):  # solve L^T p = z by back substitution
        s = p_out[i]
        for j in range(i + 1, n):
            s -= chol[j, i] * p_out[j]
        p_out[i] = s / chol[i, i]


@jit
def _sample_momentum_low_rank(rng, metric, p_out):
    n = p_out.shape[0]
    standard_normals(rng, p_out)
    basis, r = metric.basis, metric.basis.shape[1]
    # z + U ((Lambda^{-1/2} - 1) U^T z); updating in place column by column is exact
    # because the columns are orthonormal: u_c . (z + u_b a) = u_c . z for b != c
    for c in range(r):
        if metric.eigvals[c] == 1.0:
            continue
        proj = dot(basis[:, c], p_out) * (1.0 / sqrt(metric.eigvals[c]) - 1.0)
        for i in range(n):
            p_out[i] += basis[i, c] * proj
    for i in range(n):
        p_out[i] /= metric.sqrt_diag[i]


sample_momentum = by_type(
    {
        DiagonalMetric: _sample_momentum_diagonal,
        DenseMetric: _sample_momentum_dense,
        LowRankMetric: _sample_momentum_low_rank,
    },
    position=1,
)
sample_momentum.__doc__ = """``sample_momentum(rng, metric, p_out)``: draw ``p ~ N(0, M)`` into
``p_out`` from ``dim`` standard normal draws."""


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _start_momentum_diagonal(rng, metric, p, v, zero, copy):
    standard_normals(rng, p)
    return 0.5 * fresh_momentum_packed(metric.sqrt_diag, metric.diag, p, v, zero, copy)


@jit
def _start_momentum_general(rng, metric, p, v, zero, copy):
    sample_momentum(rng, metric, p)
    kinetic = velocity(metric, p, v)
    for i in range(p.shape[0]):
        zero[i] = 0.0
        copy[i] = p[i]
    return kinetic


start_momentum = by_type(
    {
        DiagonalMetric: _start_momentum_diagonal,
        DenseMetric: _start_momentum_general,
        LowRankMetric: _start_momentum_general,
    },
    position=1,
)
start_momentum.__doc__ = """``start_momentum(rng, metric, p_out, v_out, zero, copy)``: draw ``p ~
N(0, M)`` into ``p_out`` (``sample_momentum``) and its velocity into ``v_out``, return ``K(p)``
(``velocity``), and write ``zero <- 0`` and ``copy <- p``: what a transition's start needs (the
tree's prefix sums ``R[-1]`` and ``R[0]``, ``nutslite.engine.tree``). For a diagonal metric the
division by ``sqrt(m)``, the velocity, the kinetic energy and the two rows take one pass
(``nutslite.engine.linalg.fresh_momentum``) instead of three; the same bits."""
