"""Every adaptation ("stan", "grad", "dense", "low_rank") samples the right posterior.

A cheaper mass matrix must never buy speed with bias, so each adaptation runs the same three
checks:

* ``nl.testing.check_sampler`` with its default targets and simulation-based calibration
  (Bonferroni over all its statistics at ``alpha`` = 1e-3), with 4000 draws. Its 1e-3 bound
  holds for a chain that has explored its target, and one chain does not always explore the
  twisted tips of the banana. Measured over seeds 0-19 (without SBC), runs that failed with 2000
  / 4000 draws: stan 1 / 1 (the rotated Gaussian's 95% quantile at z = 4.6, seed 3), grad 4 / 2,
  dense 2 / 0, low_rank 5 / 1, all others on the banana: its tips under-visited (sd of ``y[0]``
  and mean of ``y[1]`` at z = -4.4 to -6.8) or its bulk ESS below the 100 that the MCSE needs
  (one low_rank run also missed the funnel's neck).
  Those are real shortfalls of the draws, which ``check_sampler`` is right to report, so this test
  guards against regressions at one seed rather than claiming a 1e-3 failure rate;
* the exact means and variances of three Gaussians of the test zoo (``assert_moments`` of
  ``test_engine``: Bonferroni over the statistics of each test, false-alarm rate about 1e-3);
* radon non-centered, which has no closed-form moments: the posterior means of all 175
  unconstrained coordinates against an independent run with Stan's adaptation. The difference of
  two independent estimates is tested in units of ``sqrt(mcse_a^2 + mcse_b^2)`` with a
  Bonferroni threshold over the 175 coordinates (false-alarm rate about 1e-3 per adaptation).
  A rare divergence is allowed here: Stan's adaptation meets one or two on this model at some
  seeds (so do PyMC's, see ``benchmarks/results/radon.md``); the means must still agree.

Seeds are fixed, so a pass is reproducible.
"""

from functools import cache

import numpy as np
import pytest
from test_engine import assert_moments, z_threshold

import nutslite as nl
from nutslite import diagnostics
from nutslite.models import zoo
from nutslite.testing import check_sampler

ADAPTATIONS = ["stan", "grad", "dense", "low_rank"]


@pytest.mark.parametrize("adaptation", ADAPTATIONS)
def test_check_sampler_passes(adaptation):
    def sampler(model, n_draws, seed):
        return nl.sample(model, draws=n_draws, tune=1000, chains=1, seed=seed, progress=False,
                         adaptation=adaptation, warn=False).unconstrained[0]

    report = check_sampler(sampler, seed=4, n_draws=4000)
    assert report.passed and not report.failures
    assert {r.target for r in report.results} >= {"scaled_gaussian", "funnel", "sbc"}


@pytest.mark.parametrize("adaptation", ADAPTATIONS)
@pytest.mark.parametrize(
    "model",
    [zoo.std_normal(5), zoo.ZOO["correlated_gaussian_5"](), zoo.scaled_gaussian(10)],
    ids=lambda m: m.name,
)
def test_gaussian_moments(model, adaptation):
    res = nl.sample(model, draws=1000, tune=1000, chains=4, seed=22, adaptation=adaptation,
                    progress=False, warn=False)
    assert res.sample_stats["diverging"].sum() == 0
    assert_moments(res.unconstrained, model.moments["mean"], model.moments["var"])


@cache
def radon_means(adaptation: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means of radon non-centered's unconstrained coordinates and their MCSE."""
    res = nl.sample(nl.models.radon("noncentered"), draws=1000, tune=1000, chains=4, seed=seed,
                    adaptation=adaptation, progress=False, warn=False)
    x = np.moveaxis(res.unconstrained, -1, 0)
    return x.mean(axis=(1, 2)), diagnostics.mcse_mean(x)


@pytest.mark.parametrize("adaptation", ["grad", "dense", "low_rank"])
def test_radon_means_agree_with_stans_adaptation(adaptation):
    ref_mean, ref_mcse = radon_means("stan", 100)
    mean, mcse = radon_means(adaptation, 101)
    z = np.abs(mean - ref_mean) / np.hypot(mcse, ref_mcse)
    limit = z_threshold(len(z))
    assert z.max() < limit, f"coordinate {z.argmax()}: {z.max():.2f} sd apart (limit {limit:.2f})"
