r"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018, "Validating
Bayesian inference algorithms with simulation-based calibration", arXiv:1804.06788).

If ``theta~ ~ p(theta)``, ``y ~ p(y | theta~)`` and ``theta_1..L`` are independent draws from the
posterior ``p(theta | y)``, then the rank of ``theta~`` among ``theta_1..L`` (the number of draws
below it) is uniform on ``{0, ..., L}`` (Talts et al., Theorem 1), for every parameter. A sampler
that draws from the wrong distribution (on some data sets) makes the ranks non-uniform; the shape of
their histogram shows how (Talts et al. sec. 4).

MCMC draws are autocorrelated, which piles ranks up at both ends, so each replication's draws are
thinned to about their effective sample size (Talts et al. sec. 5.1): the stride is ``ceil(n /
ESS_bulk)`` (the smallest ESS over the parameters), leaving ``L_r`` draws. Replications then have
different ``L_r``, so ranks are mapped to ``u = (rank + V) / (L_r + 1)`` with ``V ~ U(0, 1)``,
uniform on ``[0, 1)`` exactly when the rank is uniform on ``{0..L_r}``. The ``u`` of ``R``
replications go into ``B`` equal bins and Pearson's chi-square test with ``B - 1`` degrees of
freedom measures their uniformity.

**The models.** Any :class:`nutslite.models.simulated.SimulatedModel` (a log density with its
data as an argument and the prior predictive that draws the data). The default,
:func:`hierarchical_normal`: ``mu ~ N(0, 1)``, ``sigma ~ HalfNormal(1)``, ``y_i ~ N(mu,
sigma^2)``, ``i = 1..n``, on the unconstrained ``(mu, log sigma)``; its posterior is not
conjugate, its scale changes by orders of magnitude between replications and the log-Jacobian of
``sigma = exp(s)`` matters. By name (:data:`SBC_MODELS`) also eight schools (both
parameterizations, the model's own priors) and an SBC variant of radon with proper, tighter priors
(:func:`nutslite.models.radon.radon_simulated`; the post's priors make useless fake data). A
density is compiled once per machine and cached on disk; each replication conditions it on its
own data, a model with ``data`` (:meth:`SimulatedModel.conditioned
<nutslite.models.simulated.SimulatedModel.conditioned>`) whose log density reads them as an
argument, so concurrent replications (threads) each have their own data and replications compile
nothing.

**Fan-out and seeds.** Replication ``r`` is a pure function of the model, the sampler, ``n_draws``
and the ``r``-th child of ``numpy.random.SeedSequence(seed).spawn(replications)``: it draws
``theta~`` and the data, the sampler's seed and the rank jitter from three streams of that child.
So replications run in any order and anywhere, in this process's threads or as tasks on a Dask
cluster (``executor=``, see :mod:`nutslite.distributed`), and give the same ranks; a replication
that is run twice (a Dask worker died and its task was retried) gives the same result twice, and
replication ``r`` does not depend on how many were asked for, so a run can be resumed or extended.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from nutslite._numba import jit
from nutslite.diagnostics import DiagnosticWarning, SamplingWarning, ess_bulk
from nutslite.distributed import as_executor, in_process, map_unordered
from nutslite.model import Model
from nutslite.models.radon import radon_simulated
from nutslite.models.simulated import SimulatedModel
from nutslite.models.zoo import eight_schools_simulated

Sampler = Callable[[Model, int, int], np.ndarray]


@functools.cache
def hierarchical_normal(n_obs: int = 8) -> SimulatedModel:
    r"""``mu ~ N(0, 1)``, ``sigma ~ HalfNormal(1)``, ``y_i ~ N(mu, sigma^2)`` (``i = 1..n_obs``).

    On ``theta = (mu, s)``, ``s = log sigma`` (log-Jacobian ``+s`` included), with
    ``S = sum_i (y_i - mu)^2``::

        log p = -mu^2/2 - sigma^2/2 + s - n s - S / (2 sigma^2)
        d/dmu = -mu + sum_i (y_i - mu) / sigma^2
        d/ds  = -sigma^2 + 1 - n + S / sigma^2
    """

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        mu = rng.standard_normal()
        sigma = abs(rng.standard_normal())
        return np.array([mu, math.log(sigma)]), mu + sigma * rng.standard_normal(n_obs)

    return SimulatedModel(
        name=f"sbc_hierarchical_normal_{n_obs}",
        coords=["mu", "log_sigma"],
        density=_hierarchical_normal_logp,
        simulate=simulate,
        data_size=n_obs,
        log_transformed=(1,),
        recipe=(hierarchical_normal, (n_obs,)),
    )


@jit
def _hierarchical_normal_logp(theta, grad_out, y):
    mu, s = theta[0], theta[1]
    var = math.exp(2.0 * s)
    sum_sq = 0.0
    sum_dev = 0.0
    for i in range(y.shape[0]):
        sum_sq += (y[i] - mu) * (y[i] - mu)
        sum_dev += y[i] - mu
    n = y.shape[0]
    grad_out[0] = -mu + sum_dev / var
    grad_out[1] = -var + 1.0 - n + sum_sq / var
    return -0.5 * mu * mu - 0.5 * var + s - n * s - 0.5 * sum_sq / var


SBC_MODELS: dict[str, Callable[[], SimulatedModel]] = {
    "hierarchical_normal": lambda: hierarchical_normal(8),
    "eight_schools_noncentered": lambda: eight_schools_simulated("noncentered"),
    "eight_schools_centered": lambda: eight_schools_simulated("centered"),
    "radon_sbc_noncentered": lambda: radon_simulated("noncentered"),
    "radon_sbc_centered": lambda: radon_simulated("centered"),
}
"""The built-in models with a data-generating process, by name. Each factory is cached and called
with the arguments of its pickling recipe, so a process holds one instance per model."""


def simulated_model(name: str) -> SimulatedModel:
    """The :data:`SBC_MODELS` entry ``name``; a ``ValueError`` listing the names otherwise."""
    if name not in SBC_MODELS:
        raise ValueError(
            f"no data-generating process for model {name!r}; SBC knows: {', '.join(SBC_MODELS)}"
        )
    return SBC_MODELS[name]()


@dataclass(frozen=True)
class NutsSampler:
    """nutslite's NUTS as a sampler under test: one chain of ``n_draws`` draws after ``tune``
    warmup iterations, its options passed on to :func:`nutslite.sample`. Picklable, so that it
    can run on Dask workers."""

    tune: int = 1000
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, model: Model, n_draws: int, seed: int) -> np.ndarray:
        from nutslite.sampling import sample

        result = sample(model, draws=n_draws, tune=self.tune, chains=1, seed=seed, cores=1,
                        progress=False, warn=False, **self.options)
        return result.unconstrained[0]


@dataclass(frozen=True)
class Replication:
    """One SBC replication: its ``index``, the normalised ranks ``u`` ``(dim,)``, the draws kept
    after thinning, and its wall-clock seconds (simulation, sampling and ranking)."""

    index: int
    u: np.ndarray
    thinned: int
    seconds: float


@dataclass(frozen=True)
class SBCResult:
    """Ranks of one SBC run: ``u`` ``(replications, dim)`` normalised ranks in ``[0, 1)``,
    ``thinned`` the draws kept per replication, ``counts`` ``(dim, bins)`` the histogram,
    ``chi2`` and ``pvalues`` ``(dim,)`` of the uniformity test, ``coords`` the parameter names,
    ``seconds`` each replication's wall-clock time."""

    u: np.ndarray
    thinned: np.ndarray
    counts: np.ndarray
    chi2: np.ndarray
    pvalues: np.ndarray
    coords: list[str]
    seconds: np.ndarray

    @classmethod
    def from_replications(
        cls, replications: Iterable[Replication], coords: list[str], bins: int = 10
    ) -> SBCResult:
        """Histogram and chi-square test of ``replications`` (in the order of their index)."""
        reps = sorted(replications, key=lambda rep: rep.index)
        if not reps:
            raise ValueError("SBC needs at least one replication")
        u = np.stack([rep.u for rep in reps])
        counts = np.stack(
            [np.histogram(u[:, j], bins=bins, range=(0.0, 1.0))[0] for j in range(u.shape[1])]
        )
        expected = len(reps) / bins
        chi2 = ((counts - expected) ** 2 / expected).sum(axis=1)
        return cls(
            u=u,
            thinned=np.array([rep.thinned for rep in reps], dtype=np.int64),
            counts=counts,
            chi2=chi2,
            pvalues=stats.chi2.sf(chi2, bins - 1),
            coords=list(coords),
            seconds=np.array([rep.seconds for rep in reps]),
        )


    def plot(self, path: str, max_parameters: int = 12, alpha: float = 0.01) -> list[str]:
        """Save the rank histogram of the ``max_parameters`` parameters with the smallest
        p-values (all when fewer) to ``path``, with the band that each bin count of uniform ranks
        falls in with probability ``1 - alpha`` (a binomial quantile; Talts et al. 2018, fig. 1).
        Returns the parameters drawn."""
        import matplotlib

        matplotlib.use("Agg")  # a file, never a window
        import matplotlib.pyplot as plt

        order = np.argsort(self.pvalues, kind="stable")[:max_parameters]
        bins = self.counts.shape[1]
        n = len(self.u)
        low, high = stats.binom.ppf([alpha / 2, 1 - alpha / 2], n, 1.0 / bins)
        cols = min(4, len(order))
        rows = math.ceil(len(order) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
        for ax in axes.ravel()[len(order):]:
            ax.set_visible(False)
        for ax, j in zip(axes.ravel(), order, strict=False):
            ax.axhspan(low, high, color="0.85", zorder=0)
            ax.axhline(n / bins, color="0.5", lw=0.8)
            ax.bar(np.arange(bins), self.counts[j], width=1.0, align="edge", color="C0",
                   edgecolor="white")
            ax.set_title(f"{self.coords[j]}  p = {self.pvalues[j]:.2g}", fontsize=9)
            ax.set_xticks([0, bins])
            ax.set_xticklabels(["0", "1"])
        fig.suptitle(f"SBC rank histograms, {n} replications ({100 * (1 - alpha):g}% band of "
                     "uniform ranks in grey)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [self.coords[j] for j in order]


def _stream(child: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The ``k``-th stream of ``child``, as ``child.spawn`` would give but without changing
    ``child`` (so a replication run twice draws the same numbers)."""
    return np.random.SeedSequence(child.entropy, spawn_key=(*child.spawn_key, k))


def run_replication(
    simulated: SimulatedModel,
    sampler: Sampler,
    index: int,
    child: np.random.SeedSequence,
    n_draws: int,
    quiet: bool = False,
) -> Replication:
    """Replication ``index`` of SBC, seeded by ``child`` (see the module docstring): draw
    ``theta~`` and data, sample the conditioned model, thin the draws to their ESS and rank
    ``theta~`` among them. ``quiet`` ignores the sampler's and ESS's warnings (in a worker
    process; in-process runs filter them once around the whole run)."""
    start = time.perf_counter()
    truth, data = simulated.simulate(np.random.default_rng(_stream(child, 0)))
    sampler_seed = int(_stream(child, 1).generate_state(1)[0])
    with warnings.catch_warnings() if quiet else contextlib.nullcontext():
        if quiet:
            _ignore_sampling_warnings()
        model = simulated.conditioned(data)
        draws = np.asarray(sampler(model, n_draws, sampler_seed), dtype=np.float64)
        if draws.shape != (n_draws, simulated.dim) or not np.all(np.isfinite(draws)):
            raise AssertionError(
                f"SBC replication {index}: the sampler returned {draws.shape} draws (finite: "
                f"{bool(np.all(np.isfinite(draws)))}), expected ({n_draws}, {simulated.dim}) finite"
            )
        ess = float(np.min(ess_bulk(draws.T[:, None, :])))  # constant draws: ESS = n
    stride = max(1, math.ceil(n_draws / max(ess, 1.0)))
    kept = draws[::stride]
    ranks = np.sum(kept < truth, axis=0)
    jitter = np.random.default_rng(_stream(child, 2)).random(simulated.dim)
    u = (ranks + jitter) / (len(kept) + 1)
    return Replication(index, u, len(kept), time.perf_counter() - start)


def run_replications(
    simulated: SimulatedModel,
    sampler: Sampler,
    seeds: list[tuple[int, np.random.SeedSequence]],
    n_draws: int,
    quiet: bool = False,
) -> list[Replication]:
    """:func:`run_replication` for each ``(index, child)`` of ``seeds``: one task of a batch."""
    return [run_replication(simulated, sampler, index, child, n_draws, quiet)
            for index, child in seeds]


def _ignore_sampling_warnings() -> None:
    """The ranks judge the draws: the sampler's warnings and ESS's constant-draws warning are
    not the test's business."""
    warnings.simplefilter("ignore", SamplingWarning)
    warnings.simplefilter("ignore", DiagnosticWarning)


def sbc(
    sampler: Sampler | None = None,
    simulated: SimulatedModel | str | None = None,
    *,
    replications: int = 200,
    n_draws: int = 400,
    bins: int = 10,
    seed: int = 0,
    executor: Any = None,
    done: Iterable[Replication] = (),
    on_result: Callable[[Replication], None] | None = None,
    batch: int = 1,
) -> SBCResult:
    """Run SBC: ``replications`` times draw ``theta~`` and data from the prior, call
    ``sampler(model, n_draws, seed_r)``, thin the draws to their ESS and rank ``theta~`` among them
    (see the module docstring). Returns the normalised ranks and a chi-square test per parameter.

    ``sampler`` defaults to :class:`NutsSampler` and ``simulated`` (a ``SimulatedModel`` or a name
    of :data:`SBC_MODELS`) to :func:`hierarchical_normal`. ``executor``: where the replications
    run (:mod:`nutslite.distributed`; default: threads in this process), a Dask ``Client`` among
    others. ``done``: replications already finished (a resumed run), not run again.
    ``on_result`` is called in this process with each new replication as it finishes. ``batch``
    replications go in one task: on a cluster, batches of short replications spread the
    scheduler's cost per task (a few ms) over several (``benchmarks/README.md``).
    """
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 1:
        raise ValueError(f"replications must be a positive integer, got {replications!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    sampler = NutsSampler() if sampler is None else sampler
    if simulated is None:
        simulated = hierarchical_normal()
    elif isinstance(simulated, str):
        simulated = simulated_model(simulated)
    executor = as_executor(executor)
    children = np.random.SeedSequence(seed).spawn(replications)
    results = {rep.index: rep for rep in done if rep.index < replications}
    todo = [r for r in range(replications) if r not in results]
    quiet = not in_process(executor)
    with warnings.catch_warnings():
        _ignore_sampling_warnings()
        tasks = ((simulated, sampler, [(r, children[r]) for r in todo[i : i + batch]],
                  n_draws, quiet) for i in range(0, len(todo), batch))
        for reps in map_unordered(run_replications, tasks, executor):
            for rep in reps:
                results[rep.index] = rep
                if on_result is not None:
                    on_result(rep)
    return SBCResult.from_replications(results.values(), simulated.coords, bins)


simulation_based_calibration = sbc  # the name of earlier releases
