r"""``check_sampler``: run any sampler on targets with known answers and by simulation-based
calibration, and fail loudly when its draws are inconsistent with the target.

A *sampler under test* is any callable ``sampler(model, n_draws, seed) -> ndarray (n_draws, dim)``
of unconstrained draws from ``model``'s target, for example nutslite's own::

    sampler = lambda model, n, seed: nl.sample(
        model, draws=n, tune=1000, chains=1, seed=seed, progress=False
    ).unconstrained[0]

**Moment checks.** Each target defines scalar quantities ``f(theta)`` of the draws with known
mean, standard deviation and quantiles. For each the check computes a z-score against the Monte
Carlo standard error of the estimate, treating the draws as one chain (Vehtari et al. 2021,
"Rank-normalization, folding, and localization", sec. 3; :mod:`nutslite.diagnostics`, whose ESS
estimates split the chain in halves):

* mean: ``z = (mean(f) - E f) / mcse_mean(f)``;
* standard deviation: ``z = (sd(f) - SD f) / mcse_sd(f)``;
* quantile ``q_p`` (``p`` = 0.05, 0.5, 0.95): with the indicator ``I = 1{f <= q_p}``,
  ``z = (mean(I) - p) / mcse_mean(I)`` (Vehtari et al. 2021, sec. 4.3, eq. 16).

**False-alarm rate.** With ``K`` statistics in the run (moment z-scores and SBC chi-squares), each
is tested at level ``alpha / K`` (Bonferroni): ``|z| <= Phi^-1(1 - alpha / (2K))`` and chi-square
p-value ``>= alpha / K``. So a correct sampler fails a run with probability at most about ``alpha``
(default 1e-3); "about", because the MCSE in a z-score is itself estimated from the draws. Each
target also requires ``ess_bulk >= min_ess`` of every quantity: not a statistical test, but below it
the MCSE, and so the tolerances, cannot be trusted.

**What the bound does not cover.** It assumes that the chain has explored its target, so that its
MCSE is right. A valid sampler whose one chain has not yet reached a region of the target fails,
and rightly: its draws do not represent the target. The banana's tips are such a region. Measured
for nutslite over seeds 0-19 (``sbc=False``, default ``n_draws`` 2000 / 4000 draws; 2026-11-25,
before later changes to the warmups, the early depth cap among them), the runs that failed were:
adaptation ``"stan"`` 1 / 1 (a 95% quantile of the rotated Gaussian), ``"grad"`` 4 / 2,
``"dense"`` 2 / 0 and ``"low_rank"`` 5 / 1. Every failure other than ``"stan"``'s was on the
banana: the tips were under-visited (the sd of ``y[0]`` and the mean of ``y[1]`` too small by 4.4
to 6.8 MCSE), or its bulk ESS was below ``min_ess``; one ``"low_rank"`` run also under-visited the
funnel's neck (``v`` at z = -6.3). ``"grad"`` as it is now (the default; one chain of
``nl.sample`` with tune 1000, re-measured 2026-12-03): 8 / 2, five of the eight with the banana's
bulk ESS below ``min_ess``, one with its 95% quantile of ``y[0]`` off (seed 0, the default) and
two in the funnel's neck (seeds 2 and 3: the 5% quantile and the sd of ``v``). More draws
(``n_draws``) make such failures rarer, and so does a sampler that explores better. On a second
machine (Intel Xeon, seeds 0-29, 4000 draws) the counts were 0, 2, 0 and 2. A sampler without a
bug thus fails at some seeds and passes at most; a biased one fails at every seed, so test a
sampler at several seeds, as ``tests/test_adaptation_correctness.py`` does.

**Targets** (:func:`default_targets`), chosen to catch mistakes rather than to be hard:

``scaled_gaussian``
    independent ``N(0, s_i^2)``, ``s = 10^-2 .. 10^2``: quantities ``x_i / s_i ~ N(0, 1)``;
    needs mass-matrix adaptation (a sampler without it exhausts its tree depth);
``correlated_gaussian``
    ``N(0, Sigma)`` with condition number 100 and a random rotation: quantities are the
    whitened principal components ``u_k = e_k^T x / sqrt(lambda_k) ~ N(0, 1)``;
``funnel``
    Neal's funnel ``v ~ N(0, s^2)``, ``x_k | v ~ N(0, e^v)`` with ``s = 1``: quantities ``v / s
    ~ N(0, 1)`` and ``log x_0^2`` (mean ``-gamma - log 2``, variance ``s^2 + pi^2/2``). Neal's
    ``s = 3`` is not used: there NUTS (nutslite's, like Stan's) never reaches the neck with
    ``target_accept = 0.8`` and its ``v`` is off by 5-10 MCSE, a real failure to converge rather
    than a bug; check it explicitly with ``model=nl.models.neal_funnel(...)`` if you wish;
``banana``
    the twisted Gaussian of Haario et al. (2001) with ``b = 0.01``: ``y_1 / 10 ~ N(0, 1)``,
    the untwisted ``x_2 = y_2 - b (y_1^2 - 100) ~ N(0, 1)``, and the skewed ``y_2`` (mean 0; its
    standard deviation ``(1 + 2 b^2 10^4)^(1/2)`` is not checked: it rests on the rarely visited
    tips of the banana, and its MCSE is unreliable);
``log_gamma``
    ``theta = log sigma`` with ``sigma ~ Gamma(2, 1)``, a skewed target whose density includes the
    log-Jacobian ``+theta``: ``E theta = psi(2)``, ``Var theta = psi'(2)``, ``q_p = log
    Gamma^-1(p; 2)``. A sampler that drops log-Jacobians shifts the mean by a whole unit.

**SBC** (:mod:`nutslite.testing.sbc`) on a small hierarchical normal model: one chi-square
uniformity test of the rank histogram per parameter.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from nutslite._numba import LOGP_GRAD_SIGNATURE, jit
from nutslite.diagnostics import (
    DiagnosticWarning,
    SamplingWarning,
    ess_bulk,
    mcse_mean,
    mcse_sd,
)
from nutslite.distributed import as_executor, map_unordered
from nutslite.model import Model
from nutslite.models import zoo
from nutslite.testing.sbc import (
    Sampler,
    SBCResult,
    hierarchical_normal,
    simulation_based_calibration,
)

QUANTILE_PROBS = (0.05, 0.5, 0.95)
LOG_GAMMA_SHAPE = 2.0
FUNNEL_V_SD = 1.0
BANANA_B = 0.01


@dataclass(frozen=True)
class Quantity:
    """A scalar function of the draws with known answers (``None`` where unknown): ``mean``,
    ``sd`` and the quantile function ``ppf``."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    mean: float | None = None
    sd: float | None = None
    ppf: Callable[[float], float] | None = None


@dataclass(frozen=True)
class Target:
    """A model and the quantities checked on its draws."""

    name: str
    build: Callable[[], Model]
    quantities: Sequence[Quantity]

    def n_statistics(self) -> int:
        return sum(
            (q.mean is not None) + (q.sd is not None) + (len(QUANTILE_PROBS) if q.ppf else 0)
            for q in self.quantities
        )


@dataclass(frozen=True)
class CheckResult:
    """One statistic: its estimate, the exact value, the test statistic (a z-score, a chi-square
    or an ESS), the tolerance it is compared with, and the outcome."""

    target: str
    name: str
    estimate: float
    expected: float
    statistic: float
    tolerance: float
    passed: bool

    def __str__(self) -> str:
        mark = "ok  " if self.passed else "FAIL"
        return (
            f"{mark} {self.target:22s} {self.name:34s} estimate {self.estimate:11.4g} expected "
            f"{self.expected:11.4g}  stat {self.statistic:9.3g} tol {self.tolerance:.3g}"
        )


@dataclass
class SamplerReport:
    """Every statistic of a ``check_sampler`` run; ``passed`` when all passed."""

    results: list[CheckResult]
    alpha: float
    seconds: float
    sbc: SBCResult | None = field(default=None, repr=False)  # when SBC ran

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def __str__(self) -> str:
        head = (
            f"check_sampler: {len(self.results)} statistics, {len(self.failures)} failed "
            f"(overall false-alarm rate alpha = {self.alpha:g}, Bonferroni), {self.seconds:.1f} s"
        )
        return "\n".join([head, *map(str, self.results)])


@jit(LOGP_GRAD_SIGNATURE)
def _log_gamma_logp_grad(theta, grad_out):
    # sigma = e^theta ~ Gamma(a, 1): log p = (a - 1) theta - e^theta, plus the log-Jacobian theta
    e = math.exp(theta[0])
    grad_out[0] = LOG_GAMMA_SHAPE - e
    return LOG_GAMMA_SHAPE * theta[0] - e


def log_gamma() -> Model:
    r"""``theta = log sigma``, ``sigma ~ Gamma(2, 1)``: ``log p(theta) = 2 theta - e^theta``."""
    a = LOG_GAMMA_SHAPE
    return Model(
        name="log_gamma",
        dim=1,
        logp_grad=_log_gamma_logp_grad,
        coords=["log_sigma"],
        log_transformed=(0,),
        moments={
            "mean": np.array([special.digamma(a)]),
            "var": np.array([special.polygamma(1, a)]),
        },
    )


def _standard_normal(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Quantity:
    return Quantity(name, fn, 0.0, 1.0, stats.norm.ppf)


def default_targets() -> list[Target]:
    """The suite of :func:`check_sampler` (see the module docstring)."""
    scales = np.geomspace(1e-2, 1e2, 5)
    cov = zoo.rotated_covariance(4, seed=1, low=0.1, high=10.0)
    eigvals, eigvecs = np.linalg.eigh(cov)
    whiten = eigvecs / np.sqrt(eigvals)
    gamma_shape = LOG_GAMMA_SHAPE
    return [
        Target(
            "scaled_gaussian",
            lambda: zoo.scaled_gaussian(len(scales), scales[0], scales[-1]),
            [_standard_normal(f"x[{i}] / {s:g}", lambda d, i=i, s=s: d[:, i] / s)
             for i, s in enumerate(scales)],
        ),
        Target(
            "correlated_gaussian",
            lambda: zoo.correlated_gaussian(cov),
            [_standard_normal(f"whitened pc[{k}]", lambda d, k=k: d @ whiten[:, k])
             for k in range(len(eigvals))],
        ),
        Target(
            "funnel",
            lambda: zoo.neal_funnel(3, v_sd=FUNNEL_V_SD),
            [
                _standard_normal("v / s", lambda d: d[:, 0] / FUNNEL_V_SD),
                Quantity(
                    "log x[0]^2",
                    lambda d: np.log(d[:, 1] ** 2),
                    -np.euler_gamma - math.log(2.0),
                    math.sqrt(FUNNEL_V_SD**2 + math.pi**2 / 2.0),
                ),
            ],
        ),
        Target(
            "banana",
            lambda: zoo.banana(BANANA_B, 2),
            [
                _standard_normal("y[0] / 10", lambda d: d[:, 0] / 10.0),
                _standard_normal("untwisted x[1]", lambda d: zoo.banana_inverse(d, BANANA_B)[:, 1]),
                Quantity("y[1]", lambda d: d[:, 1], 0.0),
            ],
        ),
        Target(
            "log_gamma",
            log_gamma,
            [
                Quantity(
                    "log sigma",
                    lambda d: d[:, 0],
                    float(special.digamma(gamma_shape)),
                    math.sqrt(special.polygamma(1, gamma_shape)),
                    lambda p: math.log(stats.gamma.ppf(p, gamma_shape)),
                )
            ],
        ),
    ]


def _model_target(model: Model) -> Target:
    """A target from a model's exact ``moments["mean"]`` and ``moments["var"]`` (NaN: unknown)."""
    if "mean" not in model.moments or "var" not in model.moments:
        raise ValueError(
            f"check_sampler(model=...) needs model.moments with 'mean' and 'var'; {model.name} "
            f"has {sorted(model.moments)}"
        )
    mean, var = model.moments["mean"], model.moments["var"]
    quantities = []
    for i, coord in enumerate(model.coords):
        m = float(mean[i]) if np.isfinite(mean[i]) else None
        sd = math.sqrt(var[i]) if np.isfinite(var[i]) else None
        if m is not None or sd is not None:
            quantities.append(Quantity(coord, lambda d, i=i: d[:, i], m, sd))
    if not quantities:
        raise ValueError(f"check_sampler: {model.name} has no finite exact moments to check")
    return Target(model.name, lambda: model, quantities)


def _z_result(target, name, estimate, expected, mcse, z_max) -> CheckResult:
    z = (estimate - expected) / mcse if mcse > 0 else (0.0 if estimate == expected else math.inf)
    return CheckResult(target, name, float(estimate), float(expected), float(z), z_max,
                       bool(abs(z) <= z_max))


def _check_target(
    target: Target, draws: np.ndarray, z_max: float, min_ess: float
) -> list[CheckResult]:
    results = []
    for q in target.quantities:
        x = np.asarray(q.fn(draws), dtype=np.float64)
        ess = float(ess_bulk(x))
        results.append(CheckResult(target.name, f"ess_bulk({q.name})", ess, min_ess, ess,
                                   min_ess, bool(ess >= min_ess)))
        if q.mean is not None:
            results.append(_z_result(target.name, f"mean({q.name})", x.mean(), q.mean,
                                     float(mcse_mean(x)), z_max))
        if q.sd is not None:
            results.append(_z_result(target.name, f"sd({q.name})", x.std(ddof=1), q.sd,
                                     float(mcse_sd(x)), z_max))
        if q.ppf is not None:
            for p in QUANTILE_PROBS:
                below = (x <= q.ppf(p)).astype(np.float64)
                results.append(_z_result(target.name, f"P({q.name} <= q{p:g})", below.mean(), p,
                                         float(mcse_mean(below)), z_max))
    return results


def _draw(sampler: Sampler, model: Model, n_draws: int, seed: int) -> np.ndarray:
    draws = np.asarray(sampler(model, n_draws, seed), dtype=np.float64)
    if draws.shape != (n_draws, model.dim):
        raise AssertionError(
            f"the sampler returned draws of shape {draws.shape} for {model.name}; expected "
            f"({n_draws}, {model.dim})"
        )
    if not np.all(np.isfinite(draws)):
        raise AssertionError(f"the sampler returned non-finite draws for {model.name}")
    return draws


def _sample_target(
    sampler: Sampler, target: Target, n_draws: int, seed: int, index: int
) -> tuple[int, np.ndarray | Exception]:
    """``(index, draws)`` of ``sampler`` on ``target``'s model (built where the task runs), or
    ``(index, error)`` when the sampler raised or returned draws of the wrong shape, so that the
    caller reports the first failing target in the order given, whichever finished first."""
    try:
        return index, _draw(sampler, target.build(), n_draws, seed)
    except Exception as error:  # re-raised by check_sampler, in target order
        return index, error


def check_sampler(
    sampler: Sampler,
    model: Model | None = None,
    *,
    n_draws: int = 2000,
    seed: int = 0,
    alpha: float = 1e-3,
    targets: Sequence[Target] | None = None,
    sbc: bool = True,
    sbc_replications: int = 200,
    sbc_draws: int = 400,
    sbc_bins: int = 10,
    min_ess: float = 100.0,
    raise_on_failure: bool = True,
    executor: Any = None,
) -> SamplerReport:
    """Check that ``sampler(model, n_draws, seed) -> (n_draws, dim)`` draws from its target.

    Runs the sampler once (``n_draws`` draws) on each target of :func:`default_targets` (or
    ``targets``) and, with ``sbc``, ``sbc_replications`` times (``sbc_draws`` draws each) for
    simulation-based calibration; see the module docstring for the statistics and their
    tolerances. With ``model`` given, checks only that model's exact ``moments["mean"]`` and
    ``moments["var"]`` (no SBC). Seeds derive from ``seed``, so a run is reproducible when the
    sampler is.

    Each statistic is tested at level ``alpha / K`` over the run's ``K`` statistics, so a correct
    sampler fails with probability at most about ``alpha``. Returns a :class:`SamplerReport`; raises
    ``AssertionError`` listing the failed statistics when any failed (unless
    ``raise_on_failure=False``).

    ``executor``: where the sampler runs (:mod:`nutslite.distributed`): by default threads in this
    process, one run per target and per SBC replication at a time on each CPU; a Dask ``Client``
    fans them out over its workers (the sampler and the targets must then pickle with
    ``cloudpickle``, which Dask uses). The statistics do not depend on where the runs ran. A
    sampler that cannot run in two threads at once needs ``executor=ThreadPoolExecutor(1)``.
    """
    start = time.perf_counter()
    if model is not None:
        targets = [_model_target(model)]
        sbc = False
    elif targets is None:
        targets = default_targets()
    n_sbc = 0
    if sbc:
        simulated = hierarchical_normal()
        n_sbc = simulated.dim
    n_stats = sum(t.n_statistics() for t in targets) + n_sbc
    z_max = float(stats.norm.isf(alpha / (2 * n_stats)))
    seeds = np.random.SeedSequence(seed).generate_state(len(targets) + 1)
    results: list[CheckResult] = []
    executor = as_executor(executor)
    with warnings.catch_warnings():
        # judged here: a stuck sampler's constant indicators, the sampler's own ESS warnings
        warnings.simplefilter("ignore", DiagnosticWarning)
        warnings.simplefilter("ignore", SamplingWarning)
        tasks = ((sampler, target, n_draws, int(s), i) for i, (target, s) in
                 enumerate(zip(targets, seeds, strict=False)))
        draws = dict(map_unordered(_sample_target, tasks, executor))
        for i in range(len(targets)):  # in the order given, whatever finished first
            if isinstance(draws[i], Exception):
                raise draws[i]
        for i, target in enumerate(targets):
            results += _check_target(target, draws[i], z_max, min_ess)
        sbc_result = None
        if sbc:
            sbc_result = simulation_based_calibration(
                sampler, simulated, replications=sbc_replications, n_draws=sbc_draws,
                bins=sbc_bins, seed=int(seeds[-1]), executor=executor,
            )
            chi2_max = float(stats.chi2.isf(alpha / n_stats, sbc_bins - 1))
            for j, coord in enumerate(sbc_result.coords):
                results.append(CheckResult(
                    "sbc", f"rank uniformity({coord}): chi2_{sbc_bins - 1}",
                    float(sbc_result.chi2[j]), sbc_bins - 1.0, float(sbc_result.chi2[j]), chi2_max,
                    bool(sbc_result.chi2[j] <= chi2_max),
                ))
    report = SamplerReport(results, alpha, time.perf_counter() - start, sbc_result)
    if raise_on_failure and not report.passed:
        lines = "\n".join(map(str, report.failures))
        raise AssertionError(
            f"check_sampler: {len(report.failures)} of {len(results)} statistics failed "
            f"(each tested at level alpha/K = {alpha:g}/{n_stats}):\n{lines}"
        )
    return report
