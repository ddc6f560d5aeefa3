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

**The model** (:func:`hierarchical_normal`): ``mu ~ N(0, 1)``, ``sigma ~ HalfNormal(1)``,
``y_i ~ N(mu, sigma^2)``, ``i = 1..n``, on the unconstrained ``(mu, log sigma)``. Its posterior is
not conjugate, its scale changes by orders of magnitude between replications (``sigma`` is drawn
from the prior) and the log-Jacobian of ``sigma = exp(s)`` matters.

**One compiled density for all replications.** Numba freezes arrays captured by a closure into the
compiled code, so a closure over each replication's data would compile once per replication (about
0.05 s each, and each would add a file to the on-disk cache). Instead the density reads its data
through a raw pointer to one NumPy array owned by the model (``numba.carray`` on the array's
address), and each replication overwrites that array in place before calling the sampler. This is
compiled once per process, never cached (the address is process specific), and is safe as long as
the array is not written while a sampler runs: replications run one after another, and a sampler
running chains in threads only reads it. With ``NUMBA_DISABLE_JIT=1`` a plain closure over the
array does the same.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic
from scipy import stats

from nutslite._numba import JIT_DISABLED, LOGP_GRAD_SIGNATURE
from nutslite.diagnostics import DiagnosticWarning, SamplingWarning, ess_bulk
from nutslite.model import Model

Sampler = Callable[[Model, int, int], np.ndarray]


@intrinsic
def _float64_pointer(typingctx, address):
    """``address`` (an integer) as a ``float64*`` (for ``numba.carray``)."""
    pointer = types.CPointer(types.float64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(address), codegen


class SimulatedModel:
    """A model whose data can be redrawn from its prior predictive in place.

    ``model`` is the ``nl.Model`` (one compiled density); ``simulate(rng)`` draws ``theta~`` from
    the prior and data from the likelihood, writes the data into the model, and returns
    ``theta~`` on the unconstrained scale.
    """

    def __init__(self, model: Model, data: np.ndarray, simulate: Callable) -> None:
        self.model = model
        self.data = data  # the density reads this very array
        self._simulate = simulate

    def simulate(self, rng: np.random.Generator) -> np.ndarray:
        theta, data = self._simulate(rng)
        self.data[:] = data
        return theta


@functools.cache
def hierarchical_normal(n_obs: int = 8) -> SimulatedModel:
    r"""``mu ~ N(0, 1)``, ``sigma ~ HalfNormal(1)``, ``y_i ~ N(mu, sigma^2)`` (``i = 1..n_obs``).

    Built once per process and ``n_obs`` (its density is compiled without the disk cache).

    On ``theta = (mu, s)``, ``s = log sigma`` (log-Jacobian ``+s`` included), with
    ``S = sum_i (y_i - mu)^2``::

        log p = -mu^2/2 - sigma^2/2 + s - n s - S / (2 sigma^2)
        d/dmu = -mu + sum_i (y_i - mu) / sigma^2
        d/ds  = -sigma^2 + 1 - n + S / sigma^2
    """
    data = np.zeros(n_obs)
    n = n_obs

    if JIT_DISABLED:

        def logp_grad(theta, grad_out):
            return _hierarchical_normal_logp(theta, grad_out, data)

    else:
        address = data.ctypes.data

        @numba.njit(LOGP_GRAD_SIGNATURE, cache=False, nogil=True, error_model="numpy")
        def logp_grad(theta, grad_out):
            return _hierarchical_normal_logp(
                theta, grad_out, numba.carray(_float64_pointer(address), (n,))
            )

    def simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        mu = rng.standard_normal()
        sigma = abs(rng.standard_normal())
        return np.array([mu, math.log(sigma)]), mu + sigma * rng.standard_normal(n)

    model = Model(
        name=f"sbc_hierarchical_normal_{n_obs}",
        dim=2,
        logp_grad=logp_grad,
        coords=["mu", "log_sigma"],
        log_transformed=(1,),
    )
    return SimulatedModel(model, data, simulate)


@numba.njit(cache=True, nogil=True, error_model="numpy")
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


@dataclass(frozen=True)
class SBCResult:
    """Ranks of one SBC run: ``u`` ``(replications, dim)`` normalised ranks in ``[0, 1)``,
    ``thinned`` the draws kept per replication, ``counts`` ``(dim, bins)`` the histogram,
    ``chi2`` and ``pvalues`` ``(dim,)`` of the uniformity test, ``coords`` the parameter names."""

    u: np.ndarray
    thinned: np.ndarray
    counts: np.ndarray
    chi2: np.ndarray
    pvalues: np.ndarray
    coords: list[str]


def simulation_based_calibration(
    sampler: Sampler,
    simulated: SimulatedModel | None = None,
    *,
    replications: int = 200,
    n_draws: int = 400,
    bins: int = 10,
    seed: int = 0,
) -> SBCResult:
    """Run SBC: ``replications`` times draw ``theta~`` and data from the prior, call
    ``sampler(model, n_draws, seed_r)``, thin the draws to their ESS and rank ``theta~`` among them
    (see the module docstring). Returns the normalised ranks and a chi-square test per parameter.
    """
    simulated = hierarchical_normal() if simulated is None else simulated
    model = simulated.model
    seeds = np.random.SeedSequence(seed).generate_state(replications + 1)
    rng = np.random.default_rng(int(seeds[-1]))
    u = np.empty((replications, model.dim))
    thinned = np.empty(replications, dtype=np.int64)
    for r in range(replications):
        truth = simulated.simulate(rng)
        with warnings.catch_warnings():  # the ranks judge the draws; ESS is handled below
            warnings.simplefilter("ignore", SamplingWarning)
            warnings.simplefilter("ignore", DiagnosticWarning)
            draws = np.asarray(sampler(model, n_draws, int(seeds[r])), dtype=np.float64)
        if draws.shape != (n_draws, model.dim) or not np.all(np.isfinite(draws)):
            raise AssertionError(
                f"SBC replication {r}: the sampler returned {draws.shape} draws (finite: "
                f"{bool(np.all(np.isfinite(draws)))}), expected ({n_draws}, {model.dim}) finite"
            )
        with warnings.catch_warnings():  # constant draws: ESS = n, and the rank test decides
            warnings.simplefilter("ignore", DiagnosticWarning)
            ess = float(np.min(ess_bulk(draws.T[:, None, :])))
        stride = max(1, math.ceil(n_draws / max(ess, 1.0)))
        kept = draws[::stride]
        thinned[r] = len(kept)
        ranks = np.sum(kept < truth, axis=0)
        u[r] = (ranks + rng.random(model.dim)) / (len(kept) + 1)
    counts = np.stack(
        [np.histogram(u[:, j], bins=bins, range=(0.0, 1.0))[0] for j in range(model.dim)]
    )
    expected = replications / bins
    chi2 = ((counts - expected) ** 2 / expected).sum(axis=1)
    return SBCResult(
        u=u,
        thinned=thinned,
        counts=counts,
        chi2=chi2,
        pvalues=stats.chi2.sf(chi2, bins - 1),
        coords=list(model.coords),
    )
