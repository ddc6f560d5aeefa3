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

The arithmetic runs in the compiled kernels of :mod:`nutslite._diagnostic_kernels`: all
statistics of all scalars in one call, one sort per scalar shared by every rank-based
statistic, threads across scalars. This module checks the input and issues the warnings.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nutslite._diagnostic_kernels import COLUMNS, source_statistics

__all__ = [
    "DiagnosticWarning",
    "SamplingWarning",
    "TreeDepthSaturation",
    "all_statistics",
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


def _warn(message: str, stacklevel: int | None = None) -> None:
    """Issue a :class:`DiagnosticWarning`.

    By default it is attributed to the first caller outside nutslite; ``stacklevel`` counts
    frames from the caller of ``_warn`` instead (1 = that caller), as ``warnings.warn`` does.
    """
    if stacklevel is not None:
        warnings.warn(message, DiagnosticWarning, stacklevel=stacklevel + 1)
        return
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("nutslite."):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DiagnosticWarning, stacklevel=level)


class _Checked(NamedTuple):
    """What the kernel found for a batch of scalars: their statistics, finiteness and constancy."""

    table: FloatArray
    """``(K, len(COLUMNS))``: the statistics (``nan`` where not computed)."""
    finite: NDArray[np.bool_]
    """All draws finite (``False`` when there are no draws)."""
    constant: NDArray[np.bool_]
    """Finite, and the range of the draws is below ``_CONSTANT_TOL`` (1e-15, as ArviZ)."""


def _statistics(
    sources: Sequence[FloatArray],
    wanted: NDArray[np.bool_] | None = None,
    *,
    hdi_prob: float = 0.94,
    mcse: bool = True,
) -> _Checked:
    """The kernel's statistics of the scalars of ``sources`` (arrays ``(chains, draws, m)``, read
    where they lie), computed for the ``wanted`` ones (default: all) with finite draws, and every
    scalar's finiteness and constancy."""
    if wanted is None:
        wanted = np.ones(sum(source.shape[2] for source in sources), dtype=bool)
    table, finite, extremes = source_statistics(
        sources, wanted, hdi_prob, min_draws=MIN_DRAWS, mcse=mcse
    )
    with np.errstate(invalid="ignore"):
        constant = finite & ((extremes[:, 1] - extremes[:, 0]) < _CONSTANT_TOL)
    return _Checked(table, finite, constant)


def _as_sources(batch: FloatArray) -> list[FloatArray]:
    """A batch ``(K, chains, draws)`` as the one source ``(chains, draws, K)`` (a view)."""
    return [batch.transpose(1, 2, 0)]


def _shape_ok(batch_shape: tuple[int, ...], what: str, min_chains: int, warn: bool) -> bool:
    """Whether ``what`` can be computed for ``(K, chains, draws)``; warn if not."""
    n_scalars, chains, draws = batch_shape
    if draws < MIN_DRAWS or chains < min_chains:
        if warn and n_scalars:
            _warn(
                f"{what} needs at least {min_chains} chain(s) of at least {MIN_DRAWS} draws, "
                f"got {chains} chain(s) of {draws} draws; returning nan"
            )
        return False
    return True


def _warn_non_finite(finite: NDArray[np.bool_], what: str) -> None:
    if not finite.all():
        _warn(
            f"{what}: {np.count_nonzero(~finite)} of {len(finite)} scalar(s) have NaN or "
            "infinite draws; returning nan for them"
        )


def _warn_constant(checked: _Checked, what: str, consequence: str) -> None:
    n_const = np.count_nonzero(checked.constant)
    if n_const:
        _warn(
            f"{what}: {n_const} of {np.count_nonzero(checked.finite)} scalar(s) have constant "
            f"draws; {consequence}"
        )


def _apply(
    x: ArrayLike,
    column: str,
    what: str,
    min_chains: int = 1,
    constant_consequence: str | None = None,
) -> float | FloatArray:
    """One column of the kernel for ``x (..., chains, draws)``, with the edge-case warnings."""
    batch, lead = _as_batch(x)
    out = np.full(len(batch), np.nan)
    if _shape_ok(batch.shape, what, min_chains, warn=True):
        checked = _statistics(_as_sources(batch))
        _warn_non_finite(checked.finite, what)
        if constant_consequence is not None and checked.finite.any():
            _warn_constant(checked, what, constant_consequence)
        out = checked.table[:, COLUMNS.index(column)]
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
        "split_rhat",
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
    return _apply(x, "r_hat", "rhat", min_chains=2, constant_consequence="their R-hat is nan")


def ess_bulk(x: ArrayLike) -> float | FloatArray:
    """Bulk effective sample size (Vehtari et al. 2021 sec. 4.1).

    The ESS of eqs. (10)-(13) applied to the rank-normalized (eq. 14) split
    chains.  Equals ``az.ess(x, method="bulk")``.
    """
    return _apply(
        x, "ess_bulk", "ess_bulk", constant_consequence="their ESS is the number of draws"
    )


def ess_tail(x: ArrayLike) -> float | FloatArray:
    """Tail effective sample size (Vehtari et al. 2021 sec. 4.3, eq. 16).

    ``min(ESS(I(theta <= q_0.05)), ESS(I(theta <= q_0.95)))``: the ESS of the
    split-chain indicators of the pooled 5% and 95% quantiles (type-7 quantiles).
    Equals ``az.ess(x, method="tail")``.
    """
    return _apply(
        x, "ess_tail", "ess_tail", constant_consequence="their ESS is the number of draws"
    )


def ess_mean(x: ArrayLike) -> float | FloatArray:
    """Effective sample size for the mean: eqs. (10)-(13) on the raw split chains.

    No rank normalization, so it is the ESS relevant to ``mcse_mean`` (Vehtari et
    al. 2021 sec. 3.2).  Equals ``az.ess(x, method="mean")``.
    """
    return _apply(
        x, "ess_mean", "ess_mean", constant_consequence="their ESS is the number of draws"
    )


def mcse_mean(x: ArrayLike) -> float | FloatArray:
    """Monte Carlo standard error of the posterior mean.

    ``sd(theta) / sqrt(S_eff)`` with ``sd`` over all pooled draws (``ddof=1``) and
    ``S_eff`` from :func:`ess_mean`: Vehtari et al. 2021 eq. (5) with ``S``
    replaced by the effective sample size.  Equals ``az.mcse(x, method="mean")``.
    """
    return _apply(
        x,
        "mcse_mean",
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
    return _apply(x, "mcse_sd", "mcse_sd", constant_consequence="their MCSE of the sd is nan")


DIAGNOSTIC_COLUMNS = ("mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")


def scalar_diagnostics(x: ArrayLike, *, warn: bool = True) -> dict[str, FloatArray]:
    """All per-scalar diagnostics of a batch ``x (..., chains, draws)`` at once.

    Returns ``{"mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"}`` (ArviZ's
    summary column names), each of shape ``x.shape[:-2]`` (``(1,)`` for 1-D or 2-D
    ``x``), equal to :func:`mcse_mean`, :func:`mcse_sd`, :func:`ess_bulk`,
    :func:`ess_tail` and :func:`rhat`.  With ``warn=True`` each edge case is
    reported once by a :class:`DiagnosticWarning`; ``warn=False`` stays silent.
    """
    table = all_statistics(x, warn=warn)
    return {name: table[name] for name in DIAGNOSTIC_COLUMNS}


def all_statistics(
    x: ArrayLike, *, hdi_prob: float = 0.94, warn: bool = True
) -> dict[str, FloatArray]:
    """Every per-scalar statistic of ``x (..., chains, draws)`` from one compiled pass.

    The columns of :data:`nutslite._diagnostic_kernels.COLUMNS`: ``mean``, ``sd``
    (``ddof=1``) and the shortest ``hdi_prob`` interval ``hdi_low``/``hdi_high``
    for every scalar with finite draws (``nan`` otherwise, except that ``mean`` and
    ``sd`` keep NumPy's value), and the diagnostics of :func:`scalar_diagnostics`
    plus ``split_rhat`` and ``ess_mean`` where those are defined.  Each column has
    shape ``x.shape[:-2]`` (``(1,)`` for 1-D or 2-D ``x``).  Warnings as
    :func:`scalar_diagnostics`.
    """
    batch, lead = _as_batch(x)
    return _all_statistics(_as_sources(batch), lead if lead else (1,), hdi_prob, warn)


def _all_statistics(
    sources: Sequence[FloatArray], shape: tuple[int, ...], hdi_prob: float, warn: bool
) -> dict[str, FloatArray]:
    """:func:`all_statistics` of the scalars of ``sources`` (arrays ``(chains, draws, m)``, read
    where they lie), each column reshaped to ``shape``."""
    n_scalars = sum(source.shape[2] for source in sources)
    chains, draws = sources[0].shape[:2] if sources else (0, 0)
    checked = _statistics(sources, hdi_prob=hdi_prob)
    finite = checked.finite
    if warn and _shape_ok((n_scalars, chains, draws), "diagnostics", 1, warn):
        _warn_non_finite(finite, "diagnostics")
        if finite.any():
            _warn_constant(checked, "diagnostics", "R-hat and MCSE of the sd are nan for them")
            if chains < 2:
                _warn("R-hat needs at least 2 chains; returning nan")
    out = {name: checked.table[:, j] for j, name in enumerate(COLUMNS)}
    bad = np.flatnonzero(~finite)
    if len(bad):
        flat = _scalars_of(sources, bad).reshape(len(bad), -1)
        with np.errstate(invalid="ignore"):
            if flat.shape[1]:
                out["mean"][bad] = flat.mean(axis=1)
            if flat.shape[1] > 1:
                out["sd"][bad] = flat.std(axis=1, ddof=1)
    return {name: values.reshape(shape) for name, values in out.items()}


def _scalars_of(sources: Sequence[FloatArray], indices: NDArray[np.intp]) -> FloatArray:
    """The draws ``(len(indices), chains, draws)`` of the scalars ``indices`` of ``sources``
    (numbered in order, source after source)."""
    bounds = np.cumsum([0] + [source.shape[2] for source in sources])
    which = np.searchsorted(bounds, indices, side="right") - 1
    return np.stack(
        [sources[v][:, :, k - bounds[v]] for v, k in zip(which, indices, strict=True)]
    ).astype(float)


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
    return _ebfmi(energy, None)


def _ebfmi(energy: ArrayLike, stacklevel: int | None) -> FloatArray:
    """:func:`ebfmi` with its warnings' ``stacklevel`` counted from the caller (see ``_warn``)."""
    level = None if stacklevel is None else stacklevel + 1
    arr = np.atleast_2d(np.asarray(energy, dtype=float))
    out = np.full(arr.shape[:-1], np.nan)
    if arr.shape[-1] < 2:
        _warn(f"ebfmi needs at least 2 draws per chain, got {arr.shape[-1]}; returning nan", level)
        return out
    finite = np.isfinite(arr).all(axis=-1)
    if not finite.all():
        _warn(
            f"ebfmi: {np.count_nonzero(~finite)} chain(s) have NaN or infinite energies; "
            "returning nan for them",
            level,
        )
    good = arr[finite]
    denominator = good.var(axis=-1, ddof=1)
    if np.any(denominator == 0):
        _warn("ebfmi: constant energy in some chain(s); returning nan for them", level)
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


def _scalar_sources(
    posterior: Mapping[str, ArrayLike], var_names: Sequence[str] | None = None
) -> tuple[list[str], list[FloatArray]]:
    """The scalars' names as :func:`scalar_draws` gives them and the variables as arrays
    ``(chains, draws, m)`` of their ``m`` scalars: views of the posterior's arrays, not copies,
    when these are float arrays (a reshape)."""
    selected = list(posterior) if var_names is None else list(var_names)
    missing = [name for name in selected if name not in posterior]
    if missing:
        raise KeyError(f"variables not in the posterior: {missing}; have {list(posterior)}")
    names: list[str] = []
    sources: list[FloatArray] = []
    for name in selected:
        arr = np.asarray(posterior[name], dtype=float)
        if arr.ndim < 2:
            raise ValueError(f"{name!r} must have shape (chains, draws, ...), got {arr.shape}")
        names.extend(_element_names(name, arr.shape[2:]))
        sources.append(arr.reshape(arr.shape[:2] + (-1,)))
    if len({source.shape[:2] for source in sources}) > 1:
        shapes = {name: np.shape(posterior[name])[:2] for name in selected}
        raise ValueError(f"variables differ in (chains, draws): {shapes}")
    return names, sources


def scalar_draws(
    posterior: Mapping[str, ArrayLike], var_names: Sequence[str] | None = None
) -> tuple[list[str], FloatArray]:
    """Flatten named draws ``name -> (chains, draws, *shape)`` into scalars.

    Returns ``(names, draws)`` with ``draws`` of shape ``(K, chains, draws)``.
    Elements are named ``b[75]`` or ``x[1,2]`` (0-based, C order); a variable
    with ``shape == ()`` keeps its own name.  ``var_names`` selects and orders
    the variables (default: all, in mapping order).  (The diagnostics and
    :func:`nutslite.summary` read the variables where they lie instead of this copy.)
    """
    names, sources = _scalar_sources(posterior, var_names)
    if not sources:
        return names, np.empty((0, 0, 0))
    chains, draws = sources[0].shape[:2]
    out = np.empty((len(names), chains, draws))  # C order: each scalar's draws contiguous

    first = 0  # in runs of draws that stay in the cache, not one strided sweep
    for source in sources:
        last = first + source.shape[2]
        for start in range(0, draws, _TRANSPOSE_RUN):
            stop = min(start + _TRANSPOSE_RUN, draws)
            out[first:last, :, start:stop] = source[:, start:stop, :].transpose(2, 0, 1)
        first = last
    return names, out


_TRANSPOSE_RUN = 256
"""Draws per piece of :func:`scalar_draws`'s transposition (``256 x K`` doubles per chain)."""


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


def _percent(fraction: float) -> str:
    """``"5.0%"``; a fraction strictly between 0 and 0.1% is ``"<0.1%"`` (never ``"0.0%"``),
    one strictly between 99.9% and 1 is ``">99.9%"``, and exactly 0 is ``"0%"``."""
    if fraction == 0:
        return "0%"
    if 0 < fraction < 0.001:
        return "<0.1%"
    if 0.999 < fraction < 1:
        return ">99.9%"
    return f"{fraction:.1%}"


CONVERGENCE_COLUMNS = ("r_hat", "ess_bulk", "ess_tail")
"""The per-scalar statistics behind :func:`check`."""


def _convergence(
    names: list[str], sources: Sequence[FloatArray], known: Any = None
) -> tuple[dict[str, FloatArray], NDArray[np.bool_]]:
    """``r_hat``, ``ess_bulk`` and ``ess_tail`` of the scalars of ``sources`` (arrays ``(chains,
    draws, m)``, read where they lie) as :func:`scalar_diagnostics` gives them, silently,
    without the MCSE work, and whether each scalar's draws are finite. Scalars among the rows of
    the table ``known`` (a :class:`nutslite.summary.Summary` of the same draws) take its values;
    only the others are computed."""
    rows = {} if known is None else {row: i for i, row in enumerate(known.rows)}
    found = np.array([name in rows for name in names], dtype=bool)
    out = {name: np.full(len(names), np.nan) for name in CONVERGENCE_COLUMNS}
    if found.any():
        taken = [rows[name] for name, hit in zip(names, found, strict=True) if hit]
        for name in CONVERGENCE_COLUMNS:
            out[name][found] = known[name][taken]
    checked = _statistics(sources, ~found, mcse=False)  # finiteness of every scalar
    for name in CONVERGENCE_COLUMNS:
        out[name][~found] = checked.table[~found, COLUMNS.index(name)]
    return out, checked.finite


def check(res: Any, *, stacklevel: int = 2, summary: Any = None) -> list[str]:
    """Human-readable messages for every sampling problem found in ``res``.

    ``res`` has ``.posterior`` (``name -> (chains, draws, *shape)``),
    ``.sample_stats`` (with ``diverging``, ``reached_max_treedepth`` and
    ``energy``, each ``(chains, draws)``; missing entries are skipped) and
    optionally ``.settings`` (``max_treedepth`` is used if present) and
    ``.interrupted`` (then the divergence count says it covers the draws kept
    before the interrupt).  ``stacklevel`` attributes the
    :class:`DiagnosticWarning` s of the E-BFMI check as ``warnings.warn`` would
    from inside ``check`` (2: the line that called ``check``).  ``summary``, a table
    :func:`nutslite.summary` made of ``res``, lends its ``r_hat``, ``ess_bulk`` and
    ``ess_tail`` of the scalars it covers, so that they are not computed twice (a table of
    other draws gives wrong checks).  Checks:

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
            kept = " kept before the interrupt" if getattr(res, "interrupted", False) else ""
            messages.append(
                f"{total} of {n_draws} post-warmup transitions{kept} ({_percent(total / n_draws)}) "
                "diverged "
                f"(per chain: {', '.join(map(str, counts))}); reparameterize or raise "
                "target_accept"
            )

    if "reached_max_treedepth" in stats:
        saturation = treedepth_saturation(stats["reached_max_treedepth"])
        if saturation.overall > 0:
            depth = settings.get("max_treedepth")
            depth_text = "the maximum tree depth" + (f" {depth}" if depth is not None else "")
            per_chain = ", ".join(_percent(f) for f in saturation.per_chain)
            messages.append(
                f"{_percent(saturation.overall)} of transitions hit {depth_text} "
                f"(per chain: {per_chain}); trajectories were cut short"
            )

    names, sources = _scalar_sources(res.posterior)
    if len(names):
        chains, n_draws = sources[0].shape[:2]
        diag, finite = _convergence(names, sources, summary)
        if chains * n_draws == 0:
            finite[:] = True  # no draws: none of them is NaN or infinite
        if not finite.all():
            bad = [names[i] for i in np.flatnonzero(~finite)]
            more = len(bad) - _MAX_LISTED
            messages.append(
                f"{len(bad)} scalar(s) have NaN or infinite draws: "
                + ", ".join(bad[:_MAX_LISTED])
                + (f" and {more} more" if more > 0 else "")
            )
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
        values = _ebfmi(stats["energy"], stacklevel)
        low = values < EBFMI_THRESHOLD
        if low.any():
            listed = ", ".join(f"chain {c}: {values[c]:.2f}" for c in np.flatnonzero(low))
            messages.append(
                f"E-BFMI below {EBFMI_THRESHOLD} in {np.count_nonzero(low)} of {len(values)} "
                f"chains ({listed}); momentum resampling explores the energy poorly"
            )
    return messages


def warn_problems(res: Any, *, stacklevel: int = 2, summary: Any = None) -> list[str]:
    """Issue one :class:`SamplingWarning` per message of :func:`check`; return them.

    ``summary``: as for :func:`check`, a table of ``res`` whose values are reused.

    ``stacklevel`` is passed to ``warnings.warn``: 2 (the default) attributes the
    warnings to the line that called ``warn_problems``; a caller inside a library
    function passes 3 so that they point at its own caller's line.
    """
    messages = check(res, stacklevel=stacklevel + 1, summary=summary)
    for message in messages:
        warnings.warn(message, SamplingWarning, stacklevel=stacklevel)
    return messages
