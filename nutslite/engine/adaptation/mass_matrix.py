r"""Mass-matrix adaptation: estimate ``M^{-1}`` from warmup draws (and gradients).

Running moments use Welford's (1962) update, one draw at a time:
``n += 1;  d = x - mean;  mean += d / n;  m2 += d * (x - mean)``.

Four estimators, each with a state of its own (a tuple type; the compiled functions
``adaptation_collect``, ``adaptation_update`` and ``adaptation_restart`` pick the estimator's code
by the state's type, so a chain loop compiles only the estimator in use). A state is two or three
arrays, its counts among them, updated in place and never rebuilt: every array a compiled call
is passed costs a reference-count increment and decrement, which for a tuple of eight arrays
rebuilt at every draw was a large part of a warmup iteration (``benchmarks/README.md``, engine
round 23). Which adaptation uses which estimator, metric and window schedule is the table in
``nutslite.engine.adaptation``.

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
foreground and starts afresh (``nutslite.engine.adaptation.windows.nutpie_schedule``). The ratio is
clipped to ``[1e-20, 1e20]`` as in nuts-rs. The Welford steps multiply by ``1 / n`` instead of
dividing by ``n``, as nuts-rs does (``array_update_variance``'s ``diff_scale``): one division per
draw instead of four per coordinate, which took collecting a 175-dimensional draw from 0.41 to
0.20 µs (``benchmarks/README.md``, engine round 24).

*Where ``"grad"`` departs from nutpie.* The nutpie compared against (0.16.8, in
``benchmarks/bench_radon_warmup.py``) bundles nuts-rs 0.17.4; the files named are nuts-rs's.
nutslite keeps Stan's step-size machinery (``step_size``) around nutpie's metric, so:

* the step size is tuned on Stan's acceptance statistic, the mean over the trajectory's leapfrog
  states of ``min(1, e^{-dH})``, throughout warmup. nuts-rs switches to the symmetric
  ``mean 2 min(1, e^{-dH}) / (1 + e^{-dH})`` once no further window switch fits, from iteration
  771 of 1000 on (``adapt_strategy.rs``, ``is_late``; ``AcceptanceRateCollector``). The
  symmetric statistic also penalises energy decreases, so it is smaller and gives slightly
  smaller step sizes; the engine's transitions report Stan's statistic only;
* nuts-rs's initial step-size search starts from 0.1 at every call, keeps one momentum for all
  trial steps and compares ``min(1, e^{-dH})`` with ``target_accept``; nutslite runs Stan's
  heuristic (a fresh momentum per trial, threshold 0.8) from the user's step size (default 1);
* dual averaging may propose any step size; nuts-rs caps ``log eps`` at ``log pi``;
* no jitter unless asked for (``jitter=0``, Stan's default); nuts-rs jitters every step size by
  a uniform +-10% by default (``StepSizeSettings::default``);
* the estimators start empty and take every warmup draw. nuts-rs adds the initial point and its
  gradient, and leaves out draws where the chain did not move (``index_in_trajectory == 0``) and
  divergent draws unless ``|index| > 4`` (``DrawGradCollector``);
* short warmups follow ``nutslite.engine.adaptation.windows`` and ``step_size`` ("Short
  warmups"); windows keep 80 draws as in nuts-rs 0.17, not the 1.5x growth of nuts-rs 0.18
  (``windows``).
* the tree depth is capped at 3 until the final foreground begins (iteration 620 of 1000;
  ``windows``, "Short trajectories early"); nuts-rs uses ``maxdepth`` throughout. No capped draw
  enters the final metric, and on radon the cap cut the warmup's gradients by a third with no
  change in sampling ESS per gradient that 200 seeds could see.

Why: one engine serves all four adaptations, and its transitions replay Stan's ``base_nuts``
exactly (the symmetric statistic and a moved-or-not flag would have to come out of the tree);
``sample(jitter=0.1)`` gives nutpie's jitter back; the depth cap is there to spend fewer
gradients on warmup draws that no final metric uses. Apart from the cap, which makes nutslite's
warmup cheaper (median 37,316 gradients over seeds 101 to 200 against nutpie's 57,759), none of
these decides ESS per gradient on radon: over seeds 1 to 5 (``bench_radon_warmup.py``) both
samplers end warmup with the same step size (medians 0.381 and 0.379), acceptance in sampling
(0.81 and 0.80) and tree depth (3.98 and 3.94). Their minimum bulk ESS is always that of
``log sigma_b``, whose posterior is skewed (skewness -2.4): ``sqrt(Var x / Var g)`` puts its
inverse mass at 0.11 to 0.32 per chain (both samplers) against a posterior variance of 0.61.
With the metric held fixed (step size 0.38), its ESS per gradient falls by 30% when that entry
goes from 0.2 to 0.1. This spread between chains, not the step size, moves the per-seed ESS of
either sampler by up to 2x.

``LOW_RANK`` (nutpie's ``low_rank``; Seyboldt, Carlson & Carpenter 2026) adds, on top of that
diagonal ``D^2``, the directions in which the whitened posterior is far from isotropic. From the
foreground window's draws ``X`` and gradients ``G`` (``n x dim``):

1. whiten: ``Xw = (X - mean) / D`` and ``Gw = (G - mean) * D``, ``D_i = (Var x_i / Var g_i)^{1/4}``;
2. a subspace: the right singular vectors of ``Xw`` and of ``Gw`` together, orthonormalised by QR
   into ``Q`` (``dim x m``); the sample covariances have no information outside it;
3. in it, ``C_x = Q^T Xw^T Xw Q / n + r I`` and ``C_g`` alike (ridge ``r = n gamma``, gamma =
   1e-5; see below), and the unique SPD ``S`` with ``S C_g S = C_x``: their geometric mean
   ``S = C_g^{-1/2} (C_g^{1/2} C_x C_g^{1/2})^{1/2} C_g^{-1/2}``. For a Gaussian, ``Cov x`` is
   the inverse of ``Cov grad``, so ``S`` is then the whitened covariance itself;
4. eigenpairs ``S = V Lambda V^T`` with ``Lambda`` outside ``[1/c, c]`` (c = 2) give the
   correction: ``M^{-1} = D (I + U (Lambda - I) U^T) D`` with ``U = Q V``.

*The ridge is nuts-rs's.* nuts-rs (``mass_matrix/low_rank.rs``: ``rescale_points``,
``estimate_mass_matrix``) scales the centred, whitened draws by ``1 / (std n)``, so its
``X X^T`` is ``C / n`` with ``C`` the ``1/n``-normalised covariance used here; it then divides by
gamma and adds the identity: ``C / (n gamma) + I = (C + n gamma I) / (n gamma)``. The common
factor ``1 / (n gamma)`` cancels in the geometric mean (``S`` solves ``S (a C_g) S = a C_x`` for
any ``a > 0``), so the ridge on ``C`` is ``n gamma``, as here. Reading nuts-rs's ``X X^T`` as
``n C`` (draws not divided by ``n``) would give ``gamma / n``, a factor ``n^2`` smaller; that is
not what its code computes. In the whitened units (variances near 1) both are small: ``n gamma``
is 1e-3 at 100 draws. Measured with ``gamma / n`` in its place (``bench_adaptation.run_one``,
``low_rank`` on correlated_gaussian_5, scaled_gaussian_10, logistic_regression and
correlated_gaussian_20_cond1e4 at tune 200 and 1000, 3 seeds each): the median ESS per 1000
gradients changed by -13% to +6%, geometric mean -2.4%, within the spread between seeds.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import objmode

from nutslite._blas import single_blas_thread
from nutslite._numba import by_type, jit
from nutslite.engine.adaptation.windows import MIN_LIVE_WARMUP
from nutslite.engine.metric import refresh_sqrt_diag

GRAD_CLIP = 1e20
LOW_RANK_GAMMA = 1e-5  # ridge per draw in the whitened subspace (nuts-rs LowRankSettings)
LOW_RANK_CUTOFF = 2.0  # keep eigenvalues outside [1/c, c] (nuts-rs eigval_cutoff)

# A diagonal estimator's ``moments`` (``(rows, dim)``): the running mean and the sum of squared
# deviations of the draws, then (``GRAD``) of the gradients, one row each; ``GRAD``'s background
# repeats the four rows from row ``BACKGROUND`` on
X_MEAN, X_M2, G_MEAN, G_M2 = 0, 1, 2, 3
BACKGROUND = 4
# an estimator's ``counts``: draws in the foreground, in the background, collected in all
N, N_BG, N_TOTAL = 0, 1, 2

StanAdaptation = namedtuple("StanAdaptation", ["counts", "moments"])
StanAdaptation.__doc__ = """Stan's windowed variance: ``counts[N]`` draws in the window, and their
mean and sum of squared deviations, rows ``X_MEAN`` and ``X_M2`` of ``moments``."""
DenseAdaptation = namedtuple("DenseAdaptation", ["counts", "x_mean", "cov_m2"])
DenseAdaptation.__doc__ = """Stan's windowed covariance: ``counts[N]`` draws in the window, their
mean and sum of outer products of deviations ``(dim, dim)``."""
GradAdaptation = namedtuple("GradAdaptation", ["counts", "moments"])
GradAdaptation.__doc__ = """nutpie's draw and gradient variances: ``counts[N]`` draws in the
foreground and ``counts[N_BG]`` in the background, which replaces the foreground at a switch;
``moments`` holds the foreground's mean and sum of squared deviations of the draws and of the
gradients (rows ``X_MEAN``, ``X_M2``, ``G_MEAN``, ``G_M2``) and the background's after them."""
LowRankAdaptation = namedtuple("LowRankAdaptation", ["counts", "history_x", "history_g"])
LowRankAdaptation.__doc__ = """nutpie's low-rank estimator: every collected draw and gradient
(``history_*``, ``(num_warmup, dim)``; ``counts[N_TOTAL]`` rows so far), of which the foreground
is the last ``counts[N]`` and the background the last ``counts[N_BG]``."""
MetricAdaptation = StanAdaptation | DenseAdaptation | GradAdaptation | LowRankAdaptation


def stan_adaptation_init(dim: int, num_warmup: int) -> StanAdaptation:
    """An empty windowed-variance estimator in ``dim`` dimensions."""
    return StanAdaptation(np.zeros(1), np.zeros((2, dim)))


def dense_adaptation_init(dim: int, num_warmup: int) -> DenseAdaptation:
    """An empty windowed-covariance estimator in ``dim`` dimensions."""
    return DenseAdaptation(np.zeros(1), np.zeros(dim), np.zeros((dim, dim)))


def grad_adaptation_init(dim: int, num_warmup: int) -> GradAdaptation:
    """Empty foreground and background draw and gradient variances in ``dim`` dimensions."""
    return GradAdaptation(np.zeros(2), np.zeros((2 * BACKGROUND, dim)))


def low_rank_adaptation_init(dim: int, num_warmup: int) -> LowRankAdaptation:
    """Room for every draw and gradient of ``num_warmup`` iterations in ``dim`` dimensions."""
    return LowRankAdaptation(np.zeros(3), np.zeros((num_warmup, dim)), np.zeros((num_warmup, dim)))


@jit(inline="always")  # three lines: a loop over the coordinates calls it for each moment
def _welford(n, moments, mean_row, i, value):
    """Add ``value`` to coordinate ``i``'s running mean (row ``mean_row`` of ``moments``) and sum
    of squared deviations (the next row) in place (Welford 1962); ``n`` is the new count."""
    d = value - moments[mean_row, i]
    moments[mean_row, i] += d / n
    moments[mean_row + 1, i] += d * (value - moments[mean_row, i])


@jit(inline="always")
def _welford_scaled(inv_n, moments, mean_row, i, value):
    """``_welford`` with the mean's step ``d / n`` taken as ``d * (1 / n)``, as nuts-rs does
    (``array_update_variance``'s ``diff_scale``): one division per draw instead of one per
    coordinate and moment (a rounding more in the mean, about 1e-16 relative)."""
    d = value - moments[mean_row, i]
    moments[mean_row, i] += d * inv_n
    moments[mean_row + 1, i] += d * (value - moments[mean_row, i])


@jit(inline="always")  # one call site per compile: no compile of its own
def _all_finite(x):
    """Whether every entry of the vector ``x`` is finite (a loop: ``np.all(np.isfinite(x))``
    would compile NumPy's ufunc machinery and an array allocation into every cold start)."""
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            return False
    return True


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _collect_low_rank(state, x, g):
    row = int(state.counts[N_TOTAL])
    for i in range(x.shape[0]):
        state.history_x[row, i] = x[i]
        state.history_g[row, i] = g[i]
    for k in range(3):  # N, N_BG and N_TOTAL
        state.counts[k] += 1.0


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _collect_dense(state, x, g):
    n = state.counts[N] + 1.0
    state.counts[N] = n
    dim = x.shape[0]
    for i in range(dim):  # m2 += (x - mean_old) (x - mean_new)^T, Welford for covariances
        d = x[i] - state.x_mean[i]
        for j in range(dim):
            state.cov_m2[i, j] += d * (x[j] - state.x_mean[j]) * (n - 1.0) / n
    for i in range(dim):
        state.x_mean[i] += (x[i] - state.x_mean[i]) / n


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _collect_stan(state, x, g):
    n = state.counts[N] + 1.0
    state.counts[N] = n
    moments = state.moments
    for i in range(x.shape[0]):
        _welford(n, moments, X_MEAN, i, x[i])


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _collect_grad(state, x, g):
    n, n_bg = state.counts[N] + 1.0, state.counts[N_BG] + 1.0
    state.counts[N] = n
    state.counts[N_BG] = n_bg
    inv_n, inv_n_bg = 1.0 / n, 1.0 / n_bg
    moments = state.moments
    for i in range(x.shape[0]):  # one loop for the four estimators: one compiled loop, not four
        _welford_scaled(inv_n, moments, X_MEAN, i, x[i])
        _welford_scaled(inv_n, moments, G_MEAN, i, g[i])
        _welford_scaled(inv_n_bg, moments, BACKGROUND + X_MEAN, i, x[i])
        _welford_scaled(inv_n_bg, moments, BACKGROUND + G_MEAN, i, g[i])


adaptation_collect = by_type({
    StanAdaptation: _collect_stan,
    DenseAdaptation: _collect_dense,
    GradAdaptation: _collect_grad,
    LowRankAdaptation: _collect_low_rank,
})
adaptation_collect.__doc__ = """``adaptation_collect(state, x, g)``: add a draw ``x`` with gradient
``g`` to the estimator ``state`` (in place)."""


@jit(nogil=False)  # object mode takes the GIL anyway; callers are compiled and release it
def _cholesky_into(a, out):
    """``out = cholesky(a)`` by NumPy's LAPACK in object mode: once per window, and nothing of
    ``np.linalg`` has to be compiled (which would add seconds to every cold start)."""
    with objmode():
        cholesky_into(a, out)


@jit(nogil=False)
def _low_rank_into(xs, gs, diag, basis, eigvals):
    """``low_rank_estimate`` in object mode (once per update, every 20 draws)."""
    with objmode():
        low_rank_estimate(xs, gs, diag, basis, eigvals)


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _update_stan(state, metric):
    n = state.counts[N]
    moments = state.moments
    shrink, ridge = n / (n + 5.0), 1e-3 * (5.0 / (n + 5.0))
    for i in range(moments.shape[1]):
        var = moments[X_M2, i] / (n - 1.0) if n > 1.0 else metric.diag[i]
        metric.diag[i] = shrink * var + ridge
    refresh_sqrt_diag(metric)
    return _all_finite(metric.diag)


@jit
def _update_dense(state, metric):
    n = state.counts[N]
    shrink, ridge = n / (n + 5.0), 1e-3 * (5.0 / (n + 5.0))
    dim = state.x_mean.shape[0]
    for i in range(dim):
        for j in range(dim):
            cov = state.cov_m2[i, j] / (n - 1.0) if n > 1.0 else metric.dense[i, j]
            metric.dense[i, j] = shrink * cov + (ridge if i == j else 0.0)
    for i in range(dim):
        if not _all_finite(metric.dense[i]):
            return False
    _cholesky_into(metric.dense, metric.cholesky)
    for i in range(dim):
        metric.diag[i] = metric.dense[i, i]
    return _all_finite(metric.diag)


@jit
def _update_low_rank(state, metric):
    first, last = int(state.counts[N_TOTAL] - state.counts[N]), int(state.counts[N_TOTAL])
    _low_rank_into(
        state.history_x[first:last], state.history_g[first:last],
        metric.diag, metric.basis, metric.eigvals,
    )
    refresh_sqrt_diag(metric)
    return _all_finite(metric.diag)


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _update_grad(state, metric):
    moments = state.moments
    for i in range(moments.shape[1]):
        if moments[G_M2, i] > 0.0 and moments[X_M2, i] > 0.0:
            ratio = math.sqrt(moments[X_M2, i] / moments[G_M2, i])
            metric.diag[i] = min(max(ratio, 1.0 / GRAD_CLIP), GRAD_CLIP)
    refresh_sqrt_diag(metric)
    return _all_finite(metric.diag)


adaptation_update = by_type({
    StanAdaptation: _update_stan,
    DenseAdaptation: _update_dense,
    GradAdaptation: _update_grad,
    LowRankAdaptation: _update_low_rank,
})
adaptation_update.__doc__ = """``adaptation_update(state, metric)``: set the metric from the
estimator; returns False if a value is not finite (Stan: "Numerical overflow in metric
adaptation"), leaving the metric partly updated."""


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _restart_low_rank(state):
    state.counts[N] = state.counts[N_BG]
    state.counts[N_BG] = 0.0


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _restart_grad(state):
    moments = state.moments
    for row in range(BACKGROUND):
        for i in range(moments.shape[1]):
            moments[row, i] = moments[BACKGROUND + row, i]
            moments[BACKGROUND + row, i] = 0.0
    state.counts[N] = state.counts[N_BG]
    state.counts[N_BG] = 0.0


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _restart_stan(state):
    state.moments[:, :] = 0.0
    state.counts[N] = 0.0


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _restart_dense(state):
    state.x_mean[:] = 0.0
    state.cov_m2[:, :] = 0.0
    state.counts[N] = 0.0


adaptation_restart = by_type({
    StanAdaptation: _restart_stan,
    DenseAdaptation: _restart_dense,
    GradAdaptation: _restart_grad,
    LowRankAdaptation: _restart_low_rank,
})
adaptation_restart.__doc__ = """``adaptation_restart(state)``: start the next window (in place):
Stan's estimators forget; ``GRAD``'s background becomes the foreground and starts afresh."""


def cholesky_into(a: np.ndarray, out: np.ndarray) -> None:
    """``out = L`` with ``a = L L^T``, on one BLAS thread (plain NumPy)."""
    with single_blas_thread():
        out[:, :] = np.linalg.cholesky(a)


def _spd_power(a: np.ndarray, power: float) -> np.ndarray:
    """``a^power`` for a symmetric positive definite ``a`` (eigenvalues floored at 1e-300)."""
    w, v = np.linalg.eigh(a)
    return (v * np.maximum(w, 1e-300) ** power) @ v.T


def low_rank_estimate(
    xs: np.ndarray, gs: np.ndarray, diag: np.ndarray, basis: np.ndarray, eigvals: np.ndarray
) -> None:
    """Set a ``LOW_RANK`` metric's ``diag``, ``basis`` and ``eigvals`` in place from draws ``xs``
    and gradients ``gs`` (``n x dim``), as in the module docstring. Columns of ``basis`` beyond
    the kept rank get eigenvalue 1 (no correction). Plain NumPy: called from the compiled chain
    loop through ``numba.objmode`` once per update."""
    with single_blas_thread():
        _low_rank_estimate(xs, gs, diag, basis, eigvals)


def _low_rank_estimate(xs, gs, diag, basis, eigvals) -> None:
    n = len(xs)
    xc, gc = xs - xs.mean(axis=0), gs - gs.mean(axis=0)
    vx, vg = (xc**2).mean(axis=0), (gc**2).mean(axis=0)
    ok = (vx > 0) & (vg > 0)
    ratio = np.sqrt(np.divide(vx, vg, out=np.ones_like(vx), where=ok))
    diag[:] = np.clip(np.where(ok, ratio, diag), 1.0 / GRAD_CLIP, GRAD_CLIP)
    scale = np.sqrt(diag)
    xw, gw = xc / scale, gc * scale
    vt_x = np.linalg.svd(xw, full_matrices=False)[2]
    vt_g = np.linalg.svd(gw, full_matrices=False)[2]
    q = np.linalg.qr(np.concatenate((vt_x, vt_g)).T)[0]
    px, pg = xw @ q, gw @ q
    ridge = n * LOW_RANK_GAMMA * np.eye(q.shape[1])
    cx, cg = px.T @ px / n + ridge, pg.T @ pg / n + ridge
    cg_half, cg_inv_half = _spd_power(cg, 0.5), _spd_power(cg, -0.5)
    lam, vecs = np.linalg.eigh(cg_inv_half @ _spd_power(cg_half @ cx @ cg_half, 0.5) @ cg_inv_half)
    keep = (lam > LOW_RANK_CUTOFF) | (lam < 1.0 / LOW_RANK_CUTOFF)
    k = int(keep.sum())
    basis[:] = 0.0
    eigvals[:] = 1.0
    basis[:, :k] = q @ vecs[:, keep]
    eigvals[:k] = lam[keep]


def unit_inv_mass(grad: np.ndarray, num_warmup: int) -> np.ndarray:
    """Stan's starting diagonal: ones."""
    return np.ones(len(grad))


def gradient_inv_mass(grad: np.ndarray, num_warmup: int) -> np.ndarray:
    """nutpie's starting diagonal, ``1 / |grad log p(q0)|``. Deviation from nuts-rs, which clips
    that to ``[1e-20, 1e20]``: a zero or non-finite gradient entry gets 1 (a zero gradient at
    the start would otherwise give a 1e20 inverse mass, the pitfall of roualdes/bridgestan#320),
    and the rest is clipped to ``[1e-10, 1e10]``. Ones below ``MIN_LIVE_WARMUP`` warmup
    iterations, where the schedule adapts no metric and nothing would replace that start."""
    if num_warmup < MIN_LIVE_WARMUP:
        return np.ones(len(grad))
    size = np.abs(grad)
    usable = np.isfinite(size) & (size > 0)
    inv = np.divide(1.0, size, out=np.ones_like(size), where=usable)
    return np.clip(inv, 1e-10, 1e10)
