"""Convergence and sampler diagnostics for MCMC output.

Conventions
-----------
A *scalar* diagnostic (R-hat, ESS, MCSE) takes draws ``x`` of shape
``(chains, draws)``; a 1-D ``x`` is one chain.  Extra leading dimensions are a
batch of scalars: ``x`` of shape ``(..., chains, draws)`` gives a result of shape
``(...)``.  A 1-D or 2-D input gives a Python ``float``.

Every estimator follows Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021),
"Rank-normalization, folding, and localization: An improved R-hat for assessing
convergence of MCMC", Bayesian Analysis 16(2), 667-718, with the implementation
details of Stan and ArviZ 0.23 (whose results these functions reproduce to
floating-point rounding).  Equation numbers refer to that paper:

* eqs. (1)-(4): split-R-hat from the between-chain variance ``B``, the
  within-chain variance ``W`` and ``var+ = (N-1)/N W + B/N`` (also BDA3 eq. 11.4);
* eq. (10): the multi-chain autocorrelation estimate; eqs. (12)-(13): ESS and
  Geyer's (1992) initial positive / monotone sequence estimator of ``tau``;
* eq. (14): rank normalization; eq. (15): folding; eq. (16): quantile
  indicators used by the tail ESS.

Edge cases never raise; they return a documented value and issue a
:class:`DiagnosticWarning`:

* fewer than 4 draws per chain, or fewer than 2 chains for R-hat: ``nan``;
* NaN or infinite draws: ``nan`` for that scalar;
* constant draws: R-hat ``nan``; ESS equals the number of draws kept after
  splitting (ArviZ's convention); ``mcse_mean`` 0 and ``mcse_sd`` ``nan``.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import fft
from scipy.special import ndtri
from scipy.stats import rankdata

__all__ = [
    "DiagnosticWarning",
    "SamplingWarning",
    "TreeDepthSaturation",
    "check",
    "divergence_counts",
    "divergence_locations",
    "ebfmi",
    "ess_bulk",
    "ess_mean",
    "ess_tail",
    "mcse_mean",
    "mcse_sd",
    "rhat",
    "scalar_diagnostics",
    "scalar_draws",
    "split_rhat",
    "treedepth_saturation",
    "warn_problems",
]

FloatArray = NDArray[np.float64]

MIN_DRAWS = 4
"""Fewest draws per chain for which R-hat, ESS and MCSE are computed."""

_CONSTANT_TOL = np.finfo(float).resolution
"""Draws whose range is below this (1e-15) count as constant (as in ArviZ)."""

RHAT_THRESHOLD = 1.01
ESS_PER_CHAIN_THRESHOLD = 100
EBFMI_THRESHOLD = 0.3
_MAX_LISTED = 5


class DiagnosticWarning(UserWarning):
    """A diagnostic was asked of draws it cannot fully assess.

    Raised for too few draws or chains, NaN/infinite draws and constant draws;
    the diagnostic still returns a defined value (usually ``nan``).
    """


class SamplingWarning(UserWarning):
    """The sampler output shows a problem found by :func:`check`."""


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------


def _as_batch(x: ArrayLike) -> tuple[FloatArray, tuple[int, ...]]:
    """Return ``x`` as a float array ``(K, chains, draws)`` and the batch shape."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0:
        raise ValueError("draws must have at least one dimension (draws,)")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    lead = arr.shape[:-2]
    return arr.reshape((math.prod(lead),) + arr.shape[-2:]), lead


def _finish(values: FloatArray, lead: tuple[int, ...]) -> float | FloatArray:
    """Shape a per-scalar result back to the batch shape (a float for no batch)."""
    if lead == ():
        return float(values[0])
    return values.reshape(lead)


def _warn(message: str) -> None:
    """Issue a :class:`DiagnosticWarning` attributed to the first caller outside nutslite."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("nutslite."):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DiagnosticWarning, stacklevel=level)


def _usable(batch: FloatArray, what: str, min_chains: int, warn: bool) -> NDArray[np.bool_]:
    """Mask of the scalars ``what`` can be computed for; warn about the others."""
    n_scalars, chains, draws = batch.shape
    if draws < MIN_DRAWS or chains < min_chains:
        if warn and n_scalars:
            _warn(
                f"{what} needs at least {min_chains} chain(s) of at least {MIN_DRAWS} draws, "
                f"got {chains} chain(s) of {draws} draws; returning nan"
            )
        return np.zeros(n_scalars, dtype=bool)
    finite = np.isfinite(batch).all(axis=(1, 2))
    if warn and not finite.all():
        _warn(
            f"{what}: {np.count_nonzero(~finite)} of {n_scalars} scalar(s) have NaN or "
            "infinite draws; returning nan for them"
        )
    return finite


def _is_constant(batch: FloatArray) -> NDArray[np.bool_]:
    """Per scalar: is the range of all draws below ``_CONSTANT_TOL``?"""
    return (batch.max(axis=(1, 2)) - batch.min(axis=(1, 2))) < _CONSTANT_TOL


def _warn_constant(batch: FloatArray, what: str, consequence: str) -> None:
    n_const = np.count_nonzero(_is_constant(batch))
    if n_const:
        _warn(f"{what}: {n_const} of {len(batch)} scalar(s) have constant draws; {consequence}")


# ---------------------------------------------------------------------------
# Building blocks (all act on valid batches of shape (K, chains, draws))
# ---------------------------------------------------------------------------


def _split_chains(batch: FloatArray) -> FloatArray:
    """Split every chain in half: ``(K, M, N) -> (K, 2M, N // 2)``.

    For odd ``N`` the middle draw is dropped (BDA3 sec. 11.4; Stan, ArviZ).
    """
    half = batch.shape[-1] // 2
    return np.concatenate((batch[..., :half], batch[..., batch.shape[-1] - half :]), axis=1)


def _rank_normalize(batch: FloatArray) -> FloatArray:
    """Rank-normalize over the pooled draws of each scalar (Vehtari et al. eq. 14).

    ``z = Phi^{-1}((r - 3/8) / (S + 1/4))`` with ``r`` the average rank among all
    ``S`` draws of the scalar (Blom 1958 offsets).
    """
    flat = batch.reshape(len(batch), -1)
    ranks = rankdata(flat, method="average", axis=-1)
    return ndtri((ranks - 3 / 8) / (flat.shape[-1] + 1 / 4)).reshape(batch.shape)


def _fold(batch: FloatArray) -> FloatArray:
    """Folded draws ``|theta - median(theta)|`` (Vehtari et al. eq. 15)."""
    median = np.median(batch.reshape(len(batch), -1), axis=-1)
    return np.abs(batch - median[:, np.newaxis, np.newaxis])


def _quantile_type7(batch: FloatArray, prob: float) -> FloatArray:
    """Per-scalar ``prob`` quantile of the pooled draws, Hyndman & Fan (1996) type 7.

    With ``h = S p + (1 - p)`` (1-based), ``k = floor(clip(h, 1, S - 1))`` and
    ``g = clip(h - k, 0, 1)``: ``q = (1 - g) x_(k) + g x_(k+1)``.  Written in the
    same floating-point order as ``scipy.stats.mstats.mquantiles(alphap=1, betap=1)``
    (used by ArviZ), so the quantile indicators below match ArviZ exactly.
    """
    srt = np.sort(batch.reshape(len(batch), -1), axis=-1)
    size = srt.shape[-1]
    h = size * prob + (1.0 - prob)
    k = int(np.floor(np.clip(h, 1, size - 1)))
    g = float(np.clip(h - k, 0.0, 1.0))
    return (1.0 - g) * srt[:, k - 1] + g * srt[:, k]


def _autocovariance(chains: FloatArray) -> FloatArray:
    """Biased autocovariance ``gamma_t = 1/n sum_i (x_i - xbar)(x_{i+t} - xbar)`` by FFT.

    Zero-padded to at least ``2n`` so the circular correlation equals the linear
    one (Geyer 1992 recommends the divisor ``n``; Vehtari et al. sec. 3.2).
    """
    n = chains.shape[-1]
    centred = chains - chains.mean(axis=-1, keepdims=True)
    size = fft.next_fast_len(2 * n, real=True)
    spectrum = fft.rfft(centred, n=size, axis=-1)
    return fft.irfft(spectrum * spectrum.conj(), n=size, axis=-1)[..., :n] / n


def _geyer_tau(rho: FloatArray) -> FloatArray:
    """Integrated autocorrelation time from multi-chain autocorrelations ``rho (K, n)``.

    Geyer's (1992) initial positive sequence, made monotone, exactly as Stan and
    ArviZ do it (Vehtari et al. eq. 13).  With pair sums
    ``P_k = rho_{2k} + rho_{2k+1}`` (``rho_0 = 1``), the scan computes
    ``P_1, P_2, ...`` while the previous pair sum is positive and the lag stays
    below ``n - 3``; let ``K`` be the index of the last pair computed (``K = 0``
    when no pair beyond ``P_0`` is computed).  Then

    ``tau = -1 + 2 sum_{k<K} min(P_0, ..., P_k) + rho_{2K}^+``

    where the running minimum is the initial *monotone* sequence and the extra
    even-lag term ``rho_{2K}^+`` is ``rho_{2K}`` if ``P_K >= 0`` or
    ``rho_{2K} > 0`` and 0 otherwise: Stan's rule that averages the sums ending at
    the last odd and the next even lag, which stabilises antithetic chains.
    """
    n_scalars, n = rho.shape
    last_pair = max(0, (n - 3) // 2)
    pair_sums = rho[:, 0 : 2 * last_pair + 1 : 2] + rho[:, 1 : 2 * last_pair + 2 : 2]
    nonpositive = pair_sums <= 0
    stop = np.where(nonpositive.any(axis=1), nonpositive.argmax(axis=1), last_pair)
    monotone = np.minimum.accumulate(pair_sums, axis=1)
    cumulative = np.concatenate((np.zeros((n_scalars, 1)), np.cumsum(monotone, axis=1)), axis=1)
    rows = np.arange(n_scalars)
    even = rho[rows, 2 * stop]
    extra = np.where((pair_sums[rows, stop] >= 0) | (even > 0), even, 0.0)
    tau = -1.0 + 2.0 * cumulative[rows, stop] + extra
    return np.where(np.isfinite(rho).all(axis=1), tau, np.nan)


def _ess(split: FloatArray) -> FloatArray:
    """Effective sample size of already-split chains ``(K, M, n)`` (Vehtari et al. sec. 3.2).

    With per-chain biased autocovariances ``gamma_{t,m}`` (FFT), ``W`` the mean
    within-chain variance and ``var+ = (n-1)/n W + var(chain means)`` (eq. 3), the
    multi-chain autocorrelation is (eq. 10, in Stan's form)
    ``rho_t = 1 - (W - mean_m gamma_{t,m}) / var+``.  Then ``S_eff = S / tau``
    (eq. 12) with ``tau`` from :func:`_geyer_tau`, capped below at
    ``1 / log10(S)`` so that ``S_eff <= S log10 S`` (Vehtari et al. sec. 3.2).
    Constant draws get ``S_eff = S`` (ArviZ's convention).
    """
    n_scalars, chains, n = split.shape
    size = chains * n
    out = np.full(n_scalars, float(size))
    varying = ~_is_constant(split)
    if not varying.any():
        return out
    draws = split[varying]
    mean_acov = _autocovariance(draws).mean(axis=1)
    within = mean_acov[:, 0] * n / (n - 1.0)
    var_plus = within * (n - 1.0) / n
    if chains > 1:
        var_plus = var_plus + draws.mean(axis=-1).var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (within[:, np.newaxis] - mean_acov) / var_plus[:, np.newaxis]
    rho[:, 0] = 1.0
    tau = np.maximum(_geyer_tau(rho), 1.0 / np.log10(size))
    out[varying] = size / tau
    return out


def _rhat_from_split(split: FloatArray) -> FloatArray:
    """``sqrt(var+ / W)`` for already-split chains (Vehtari et al. eqs. 1-4).

    ``B = n/(M-1) sum_m (mean_m - mean)^2``, ``W = 1/M sum_m s_m^2``,
    ``var+ = (n-1)/n W + B/n``.  ``W = 0`` gives ``inf`` (or ``nan`` if also
    ``B = 0``).
    """
    n = split.shape[-1]
    within = split.var(axis=-1, ddof=1).mean(axis=-1)
    between = n * split.mean(axis=-1).var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(((n - 1) / n * within + between / n) / within)


def _rank_rhat_from_split(split: FloatArray, z_split: FloatArray) -> FloatArray:
    """max(rank-normalized split-R-hat, rank-normalized folded split-R-hat).

    ``split`` are the split chains and ``z_split`` their rank-normalized values.
    """
    tail = _rhat_from_split(_rank_normalize(_fold(split)))
    return np.fmax(_rhat_from_split(z_split), tail)


def _rank_rhat(batch: FloatArray) -> FloatArray:
    split = _split_chains(batch)
    return _rank_rhat_from_split(split, _rank_normalize(split))


def _ess_bulk(batch: FloatArray) -> FloatArray:
    return _ess(_rank_normalize(_split_chains(batch)))


def _ess_tail(batch: FloatArray) -> FloatArray:
    low, high = (
        _ess(_split_chains(_indicator_below(batch, _quantile_type7(batch, p))))
        for p in (0.05, 0.95)
    )
    return np.fmin(low, high)


def _indicator_below(batch: FloatArray, threshold: FloatArray) -> FloatArray:
    """``I(theta <= threshold)`` as floats, one threshold per scalar (eq. 16)."""
    return (batch <= threshold[:, np.newaxis, np.newaxis]).astype(float)


def _ess_mean(batch: FloatArray) -> FloatArray:
    return _ess(_split_chains(batch))


def _mcse_mean(batch: FloatArray, ess: FloatArray) -> FloatArray:
    """``sd / sqrt(ess)`` with ``ess`` the :func:`ess_mean` of ``batch``."""
    flat = batch.reshape(len(batch), -1)
    return flat.std(axis=-1, ddof=1) / np.sqrt(ess)


def _mcse_sd(batch: FloatArray) -> FloatArray:
    flat = batch.reshape(len(batch), -1)
    squared = (batch - flat.mean(axis=-1)[:, np.newaxis, np.newaxis]) ** 2
    sq_flat = squared.reshape(len(batch), -1)
    var = sq_flat.mean(axis=-1)
    var_of_var = ((sq_flat**2).mean(axis=-1) - var**2) / _ess_mean(squared)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(var_of_var / var / 4.0)


# ---------------------------------------------------------------------------
# Public scalar diagnostics
# ---------------------------------------------------------------------------


def _apply(
    x: ArrayLike,
    core: Callable[[FloatArray], FloatArray],
    what: str,
    min_chains: int = 1,
    constant_consequence: str | None = None,
) -> float | FloatArray:
    batch, lead = _as_batch(x)
    out = np.full(len(batch), np.nan)
    usable = _usable(batch, what, min_chains, warn=True)
    if usable.any():
        good = batch[usable]
        if constant_consequence is not None:
            _warn_constant(good, what, constant_consequence)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[usable] = core(good)
    return _finish(out, lead)


def split_rhat(x: ArrayLike) -> float | FloatArray:
    """Classic split-R-hat on the raw draws (BDA3 sec. 11.4, eq. 11.4).

    Each chain is split into halves, giving ``M`` chains of ``n`` draws, and

    ``R = sqrt(var+ / W)``, ``var+ = (n-1)/n W + B/n``,
    ``B = n/(M-1) sum_m (mean_m - mean)^2``, ``W = 1/M sum_m s_m^2``

    (Vehtari et al. 2021 eqs. 1-4).  Equals ``az.rhat(x, method="split")``.
    Needs at least 2 chains of 4 draws (as ArviZ); otherwise ``nan``.
    """
    return _apply(
        x,
        lambda b: _rhat_from_split(_split_chains(b)),
        "split_rhat",
        min_chains=2,
        constant_consequence="their R-hat is nan",
    )


def rhat(x: ArrayLike) -> float | FloatArray:
    """Rank-normalized split-R-hat (Vehtari et al. 2021 sec. 4.1-4.2).

    The maximum of split-R-hat (eqs. 1-4) computed on the rank-normalized split
    draws (eq. 14; the *bulk* R-hat) and on the rank-normalized folded split draws
    ``|theta - median(theta)|`` (eq. 15; the *tail* R-hat).  Equals
    ``az.rhat(x, method="rank")``.  Values above 1.01 indicate non-convergence.
    Needs at least 2 chains of 4 draws (as ArviZ); otherwise ``nan``.
    """
    return _apply(x, _rank_rhat, "rhat", min_chains=2, constant_consequence="their R-hat is nan")


def ess_bulk(x: ArrayLike) -> float | FloatArray:
    """Bulk effective sample size (Vehtari et al. 2021 sec. 4.1).

    The ESS of eqs. (10)-(13) applied to the rank-normalized (eq. 14) split
    chains.  Equals ``az.ess(x, method="bulk")``.
    """
    return _apply(x, _ess_bulk, "ess_bulk", constant_consequence="their ESS is the number of draws")


def ess_tail(x: ArrayLike) -> float | FloatArray:
    """Tail effective sample size (Vehtari et al. 2021 sec. 4.3, eq. 16).

    ``min(ESS(I(theta <= q_0.05)), ESS(I(theta <= q_0.95)))``: the ESS of the
    split-chain indicators of the pooled 5% and 95% quantiles (type-7 quantiles).
    Equals ``az.ess(x, method="tail")``.
    """
    return _apply(x, _ess_tail, "ess_tail", constant_consequence="their ESS is the number of draws")


def ess_mean(x: ArrayLike) -> float | FloatArray:
    """Effective sample size for the mean: eqs. (10)-(13) on the raw split chains.

    No rank normalization, so it is the ESS relevant to ``mcse_mean`` (Vehtari et
    al. 2021 sec. 3.2).  Equals ``az.ess(x, method="mean")``.
    """
    return _apply(x, _ess_mean, "ess_mean", constant_consequence="their ESS is the number of draws")


def mcse_mean(x: ArrayLike) -> float | FloatArray:
    """Monte Carlo standard error of the posterior mean.

    ``sd(theta) / sqrt(S_eff)`` with ``sd`` over all pooled draws (``ddof=1``) and
    ``S_eff`` from :func:`ess_mean`: Vehtari et al. 2021 eq. (5) with ``S``
    replaced by the effective sample size.  Equals ``az.mcse(x, method="mean")``.
    """
    return _apply(
        x,
        lambda b: _mcse_mean(b, _ess_mean(b)),
        "mcse_mean",
        constant_consequence="their MCSE is 0",
    )


def mcse_sd(x: ArrayLike) -> float | FloatArray:
    """Monte Carlo standard error of the posterior standard deviation.

    Delta method on the variance, as ArviZ 0.23 (``az.mcse(x, method="sd")``):
    with ``d = (theta - mean)^2`` over the pooled draws, ``v = mean(d)``,
    ``Var(v_hat) ~ (mean(d^2) - v^2) / S_eff(d)`` where ``S_eff(d)`` is
    :func:`ess_mean` of ``d``, and ``sd = sqrt(v)`` gives
    ``Var(sd_hat) ~ Var(v_hat) / (4 v)``.  Returns ``sqrt`` of that.
    """
    return _apply(x, _mcse_sd, "mcse_sd", constant_consequence="their MCSE of the sd is nan")


DIAGNOSTIC_COLUMNS = ("mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")


def scalar_diagnostics(x: ArrayLike, *, warn: bool = True) -> dict[str, FloatArray]:
    """All per-scalar diagnostics of a batch ``x (..., chains, draws)`` at once.

    Returns ``{"mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"}`` (ArviZ's
    summary column names), each of shape ``x.shape[:-2]`` (``(1,)`` for 1-D or 2-D
    ``x``), equal to :func:`mcse_mean`, :func:`mcse_sd`, :func:`ess_bulk`,
    :func:`ess_tail` and :func:`rhat`.  With ``warn=True`` each edge case is
    reported once by a :class:`DiagnosticWarning`; ``warn=False`` stays silent.
    """
    batch, lead = _as_batch(x)
    shape = lead if lead else (1,)
    out = {name: np.full(len(batch), np.nan) for name in DIAGNOSTIC_COLUMNS}
    usable = _usable(batch, "diagnostics", 1, warn)
    if usable.any():
        good = batch[usable]
        if warn:
            _warn_constant(good, "diagnostics", "R-hat and MCSE of the sd are nan for them")
            if batch.shape[1] < 2:
                _warn("R-hat needs at least 2 chains; returning nan")
        # every scalar is independent of the others: with many of them, two threads share the
        # work (NumPy's sorts and SciPy's FFTs release the GIL), with identical results
        parts = np.array_split(np.arange(len(good)), 2 if good.size >= PARALLEL_SIZE else 1)
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            results = list(pool.map(lambda idx: _scalar_diagnostics(good[idx]), parts))
        for name in DIAGNOSTIC_COLUMNS:
            out[name][usable] = np.concatenate([r[name] for r in results])
    return {name: values.reshape(shape) for name, values in out.items()}


PARALLEL_SIZE = 200_000  # draws in a batch above which scalar_diagnostics uses two threads


def _scalar_diagnostics(good: FloatArray) -> dict[str, FloatArray]:
    """``scalar_diagnostics`` of usable scalars ``good (K, chains, draws)``, without warnings."""
    split = _split_chains(good)
    z_split = _rank_normalize(split)
    nan = np.full(len(good), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "mcse_mean": _mcse_mean(good, _ess(split)),
            "mcse_sd": _mcse_sd(good),
            "ess_bulk": _ess(z_split),
            "ess_tail": _ess_tail(good),
            "r_hat": _rank_rhat_from_split(split, z_split) if good.shape[1] >= 2 else nan,
        }


# ---------------------------------------------------------------------------
# HMC-specific diagnostics
# ---------------------------------------------------------------------------


def ebfmi(energy: ArrayLike) -> FloatArray:
    """Energy Bayesian fraction of missing information, one value per chain.

    The empirical estimator of Betancourt (2016), "Diagnosing suboptimal
    cotangent disintegrations in Hamiltonian Monte Carlo" (arXiv:1604.00695):

    ``E-BFMI = sum_{n=1}^{N-1} (E_n - E_{n-1})^2 / sum_{n=0}^{N-1} (E_n - Ebar)^2``

    which equals ``mean(diff(E)^2) / var(E, ddof=1)`` and ``az.bfmi``.  It is 2
    for white-noise energies; values below 0.3 indicate that momentum
    resampling explores the energy distribution poorly.  ``energy`` has shape
    ``(..., draws)`` (typically ``(chains, draws)``); the result has shape
    ``energy.shape[:-1]`` (``(1,)`` for 1-D input).  Fewer than 2 draws,
    non-finite or constant energies give ``nan`` with a warning.
    """
    arr = np.atleast_2d(np.asarray(energy, dtype=float))
    out = np.full(arr.shape[:-1], np.nan)
    if arr.shape[-1] < 2:
        _warn(f"ebfmi needs at least 2 draws per chain, got {arr.shape[-1]}; returning nan")
        return out
    finite = np.isfinite(arr).all(axis=-1)
    if not finite.all():
        _warn(
            f"ebfmi: {np.count_nonzero(~finite)} chain(s) have NaN or infinite energies; "
            "returning nan for them"
        )
    good = arr[finite]
    denominator = good.var(axis=-1, ddof=1)
    if np.any(denominator == 0):
        _warn("ebfmi: constant energy in some chain(s); returning nan for them")
    with np.errstate(divide="ignore", invalid="ignore"):
        out[finite] = np.square(np.diff(good, axis=-1)).mean(axis=-1) / denominator
    return out


def divergence_counts(diverging: ArrayLike) -> NDArray[np.int64]:
    """Number of divergent transitions per chain: ``(chains, draws) -> (chains,)``.

    A 1-D ``diverging`` is one chain (result of shape ``(1,)``).
    """
    return np.atleast_2d(np.asarray(diverging, dtype=bool)).sum(axis=-1).astype(np.int64)


class TreeDepthSaturation(NamedTuple):
    """Fraction of transitions that hit the maximum tree depth."""

    per_chain: FloatArray
    """Shape ``(chains,)``: the fraction within each chain."""
    overall: float
    """The fraction over all chains pooled."""


def treedepth_saturation(reached_max_treedepth: ArrayLike) -> TreeDepthSaturation:
    """Fraction of transitions whose trajectory was cut at the maximum tree depth.

    ``reached_max_treedepth`` is a boolean ``(chains, draws)`` array (1-D: one
    chain).  Returns ``TreeDepthSaturation(per_chain, overall)``: per-chain
    fractions of shape ``(chains,)`` and the pooled fraction as a float (``nan``
    when there are no draws).
    """
    hits = np.atleast_2d(np.asarray(reached_max_treedepth, dtype=bool))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_chain = hits.sum(axis=-1) / np.float64(hits.shape[-1])
        overall = float(np.float64(hits.sum()) / hits.size)
    return TreeDepthSaturation(per_chain, overall)


def _element_names(name: str, shape: tuple[int, ...]) -> list[str]:
    if shape == ():
        return [name]
    return [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


def scalar_draws(
    posterior: Mapping[str, ArrayLike], var_names: Sequence[str] | None = None
) -> tuple[list[str], FloatArray]:
    """Flatten named draws ``name -> (chains, draws, *shape)`` into scalars.

    Returns ``(names, draws)`` with ``draws`` of shape ``(K, chains, draws)``.
    Elements are named ``b[75]`` or ``x[1,2]`` (0-based, C order); a variable
    with ``shape == ()`` keeps its own name.  ``var_names`` selects and orders
    the variables (default: all, in mapping order).
    """
    selected = list(posterior) if var_names is None else list(var_names)
    missing = [name for name in selected if name not in posterior]
    if missing:
        raise KeyError(f"variables not in the posterior: {missing}; have {list(posterior)}")
    names: list[str] = []
    blocks: list[FloatArray] = []
    for name in selected:
        arr = np.asarray(posterior[name], dtype=float)
        if arr.ndim < 2:
            raise ValueError(f"{name!r} must have shape (chains, draws, ...), got {arr.shape}")
        names.extend(_element_names(name, arr.shape[2:]))
        blocks.append(np.moveaxis(arr.reshape(arr.shape[:2] + (-1,)), -1, 0))
    if not blocks:
        return names, np.empty((0, 0, 0))
    return names, np.concatenate(blocks, axis=0)


def divergence_locations(
    draws: ArrayLike | Mapping[str, ArrayLike],
    diverging: ArrayLike,
    names: Sequence[str] | None = None,
) -> list[tuple[str, float]]:
    """Rank parameters by how far their divergent draws sit from the others.

    For each scalar parameter, with ``D`` the draws of divergent transitions and
    ``O`` the other draws (all chains pooled), the score is the standardized
    mean difference

    ``|mean(D) - mean(O)| / sd(O)``  (``sd`` with ``ddof=1``),

    i.e. how many non-divergent standard deviations the divergences are
    displaced; large scores point at the parameters (often a hierarchical scale
    on the unconstrained, log scale) near which the sampler diverges.  A
    parameter constant over ``O`` scores 0 if ``mean(D)`` equals it, else
    ``inf``.

    ``draws`` is an array ``(chains, draws, dim)`` (named by ``names``, default
    ``x[0]``, ``x[1]``, ...) or a mapping ``name -> (chains, draws, *shape)``
    (named as in :func:`scalar_draws`; ``names`` is then ignored); ``diverging``
    is ``(chains, draws)`` boolean.  Returns ``[(name, score), ...]`` sorted by decreasing score
    (``nan`` last); empty when there is no divergent draw or fewer than two
    non-divergent draws.
    """
    if isinstance(draws, Mapping):
        labels, flat = scalar_draws(draws)
    else:
        arr = np.asarray(draws, dtype=float)
        if arr.ndim != 3:
            raise ValueError(f"draws must have shape (chains, draws, dim), got {arr.shape}")
        flat = np.moveaxis(arr, -1, 0)
        labels = list(names) if names is not None else _element_names("x", arr.shape[2:])
    if len(labels) != len(flat):
        raise ValueError(f"{len(labels)} names given for {len(flat)} parameters")
    mask = np.asarray(diverging, dtype=bool)
    if mask.shape != flat.shape[1:]:
        raise ValueError(f"diverging has shape {mask.shape}, draws have {flat.shape[1:]}")
    if not mask.any() or np.count_nonzero(~mask) < 2:
        return []
    div = flat[:, mask]
    other = flat[:, ~mask]
    diff = np.abs(div.mean(axis=1) - other.mean(axis=1))
    scale = other.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(scale > 0, diff / scale, np.where(diff == 0, 0.0, np.inf))
    order = np.argsort(np.where(np.isnan(score), np.inf, -score), kind="stable")
    return [(labels[i], float(score[i])) for i in order]


# ---------------------------------------------------------------------------
# Problem report
# ---------------------------------------------------------------------------


def _worst(
    names: list[str], values: FloatArray, flagged: NDArray[np.bool_], high: bool, fmt: str
) -> str:
    """``"b[3] 1.05, sigma 1.03 and 7 more"`` for the flagged scalars, worst first."""
    idx = np.flatnonzero(flagged)
    idx = idx[np.argsort(-values[idx] if high else values[idx], kind="stable")]
    listed = ", ".join(f"{names[i]} {values[i]:{fmt}}" for i in idx[:_MAX_LISTED])
    more = len(idx) - _MAX_LISTED
    return listed + (f" and {more} more" if more > 0 else "")


def check(res: Any) -> list[str]:
    """Human-readable messages for every sampling problem found in ``res``.

    ``res`` has ``.posterior`` (``name -> (chains, draws, *shape)``),
    ``.sample_stats`` (with ``diverging``, ``reached_max_treedepth`` and
    ``energy``, each ``(chains, draws)``; missing entries are skipped) and
    optionally ``.settings`` (``max_treedepth`` is used if present).  Checks:

    * any divergent post-warmup transition (count, percentage, per chain);
    * any transition that hit the maximum tree depth (fraction, depth);
    * NaN or infinite draws;
    * R-hat (:func:`rhat`) above 1.01;
    * bulk or tail ESS below 100 per chain (``100 * chains``);
    * E-BFMI below 0.3 in any chain.

    Offending scalars are named (``sigma_b``, ``b[75]``) with their values, worst
    first, at most five per message.  A healthy result gives ``[]``.
    """
    messages: list[str] = []
    stats = getattr(res, "sample_stats", None) or {}
    settings = getattr(res, "settings", None) or {}

    if "diverging" in stats:
        counts = divergence_counts(stats["diverging"])
        total = int(counts.sum())
        if total:
            n_draws = np.atleast_2d(np.asarray(stats["diverging"])).size
            messages.append(
                f"{total} of {n_draws} post-warmup transitions ({total / n_draws:.1%}) diverged "
                f"(per chain: {', '.join(map(str, counts))}); reparameterize or raise "
                "target_accept"
            )

    if "reached_max_treedepth" in stats:
        saturation = treedepth_saturation(stats["reached_max_treedepth"])
        if saturation.overall > 0:
            depth = settings.get("max_treedepth")
            depth_text = "the maximum tree depth" + (f" {depth}" if depth is not None else "")
            per_chain = ", ".join(f"{f:.1%}" for f in saturation.per_chain)
            messages.append(
                f"{saturation.overall:.1%} of transitions hit {depth_text} "
                f"(per chain: {per_chain}); trajectories were cut short"
            )

    names, draws = scalar_draws(res.posterior)
    if len(names):
        finite = np.isfinite(draws).all(axis=(1, 2))
        if not finite.all():
            bad = [names[i] for i in np.flatnonzero(~finite)]
            more = len(bad) - _MAX_LISTED
            messages.append(
                f"{len(bad)} scalar(s) have NaN or infinite draws: "
                + ", ".join(bad[:_MAX_LISTED])
                + (f" and {more} more" if more > 0 else "")
            )
        chains = draws.shape[1]
        diag = scalar_diagnostics(draws, warn=False)
        r_hat = diag["r_hat"]
        high = r_hat > RHAT_THRESHOLD
        if high.any():
            messages.append(
                f"R-hat above {RHAT_THRESHOLD} for {np.count_nonzero(high)} of {len(names)} "
                f"scalars: {_worst(names, r_hat, high, True, '.3f')}"
            )
        threshold = ESS_PER_CHAIN_THRESHOLD * chains
        for kind in ("bulk", "tail"):
            ess = diag[f"ess_{kind}"]
            low = ess < threshold
            if low.any():
                messages.append(
                    f"{kind} ESS below {threshold} ({ESS_PER_CHAIN_THRESHOLD} per chain) for "
                    f"{np.count_nonzero(low)} of {len(names)} scalars: "
                    f"{_worst(names, ess, low, False, '.0f')}"
                )

    if "energy" in stats:
        values = ebfmi(stats["energy"])
        low = values < EBFMI_THRESHOLD
        if low.any():
            listed = ", ".join(f"chain {c}: {values[c]:.2f}" for c in np.flatnonzero(low))
            messages.append(
                f"E-BFMI below {EBFMI_THRESHOLD} in {np.count_nonzero(low)} of {len(values)} "
                f"chains ({listed}); momentum resampling explores the energy poorly"
            )
    return messages


def warn_problems(res: Any) -> list[str]:
    """Issue one :class:`SamplingWarning` per message of :func:`check`; return them."""
    messages = check(res)
    for message in messages:
        warnings.warn(message, SamplingWarning, stacklevel=2)
    return messages
