"""Every adaptation ("stan", "grad", "dense", "low_rank") samples the right posterior.

A cheaper mass matrix must never buy speed with bias, so each adaptation runs the same three
checks:

* ``nl.testing.check_sampler`` with its default targets (Bonferroni over all its statistics at
  ``alpha`` = 1e-3), one chain of 4000 draws, at each of five seeds, and simulation-based
  calibration once. Its 1e-3 bound holds for a chain that has explored its target, and one chain
  does not always explore the twisted tips of the banana: now and then it wanders out to
  ``y[0]`` = 30 or so, where the banana bends more sharply than the adapted step size allows, and
  sticks there with divergences. Check_sampler is right to report such draws. Measured with 4000
  draws and ``sbc=False``, the seeds that failed were: over seeds 0-19 on an AMD EPYC, stan 1,
  grad 2, dense 0, low_rank 1; over seeds 0-29 on an Intel Xeon, stan 0, grad 2, dense 0,
  low_rank 2 (at ``target_accept`` 0.9: 0, 1, 1, 1). So a seed fails with probability p of about
  0.05 (at most 0.08 for any adaptation) for a sampler without a bug, while a biased sampler fails
  at every seed. The test asks for at least 3 passing seeds of 5: with p = 0.08 a correct
  adaptation fails it with probability ``10 p^3 (1-p)^2 + 5 p^4 (1-p) + p^5`` < 0.005.
  One seed would not do. ``"dense"`` and ``"low_rank"`` call LAPACK (NumPy), whose CPU-specific
  kernels change the last bits of the metric, so their draws at a seed are reproducible on one
  machine but not across machines (``"low_rank"`` at seed 4 passes on the AMD machine and fails
  on the Intel one);
* the exact means and variances of three Gaussians of the test zoo (``assert_moments`` of
  ``test_engine``: Bonferroni over the statistics of each test, false-alarm rate about 1e-3);
* radon non-centered, which has no closed-form moments: the posterior means of all 175
  unconstrained coordinates against an independent run with Stan's adaptation. The difference of
  two independent estimates is tested in units of ``sqrt(mcse_a^2 + mcse_b^2)`` with a
  Bonferroni threshold over the 175 coordinates (false-alarm rate about 1e-3 per adaptation).
  A rare divergence is allowed here: Stan's adaptation meets one or two on this model at some
  seeds (so do PyMC's, see ``benchmarks/results/radon.md``); the means must still agree.

Seeds are fixed, so a pass is reproducible on one machine.
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


CHECK_SEEDS = range(5)
MIN_PASSING_SEEDS = 3  # of 5; see the module docstring for the false-alarm rate


@pytest.mark.parametrize("adaptation", ADAPTATIONS)
def test_check_sampler_passes(adaptation):
    def sampler(model, n_draws, seed):
        return nl.sample(model, draws=n_draws, tune=1000, chains=1, seed=seed, progress=False,
                         adaptation=adaptation, warn=False).unconstrained[0]

    reports = [check_sampler(sampler, seed=seed, n_draws=4000, sbc=False, raise_on_failure=False)
               for seed in CHECK_SEEDS]
    failed = {seed: report for seed, report in zip(CHECK_SEEDS, reports, strict=True)
              if not report.passed}
    assert len(CHECK_SEEDS) - len(failed) >= MIN_PASSING_SEEDS, "\n".join(
        f"seed {seed}: {failure}" for seed, report in failed.items() for failure in report.failures
    )
    assert {r.target for r in reports[0].results} >= {"scaled_gaussian", "funnel", "banana"}
    sbc = check_sampler(sampler, seed=4, targets=[], sbc=True)
    assert sbc.passed and {r.target for r in sbc.results} == {"sbc"}


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
