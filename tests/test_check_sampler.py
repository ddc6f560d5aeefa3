"""``nl.testing.check_sampler`` on nutslite's own sampler, and its behaviour on bad input.

``check_sampler`` tests every statistic at level alpha / K (Bonferroni over the K statistics of a
run, alpha = 1e-3 by default), so a correct sampler fails a run with probability at most about
1e-3; seeds are fixed, so a pass is reproducible.
"""

import numpy as np
import pytest

import nutslite as nl
from nutslite.testing import check_sampler, simulation_based_calibration


def nutslite_sampler(model, n_draws, seed):
    return nl.sample(
        model, draws=n_draws, tune=1000, chains=1, seed=seed, progress=False
    ).unconstrained[0]


def test_nutslite_passes_the_default_suite():
    report = check_sampler(nutslite_sampler, seed=1)
    assert report.passed and not report.failures
    names = {r.target for r in report.results}
    targets = {"scaled_gaussian", "correlated_gaussian", "funnel", "banana", "log_gamma"}
    assert names == targets | {"sbc"}
    z = [r for r in report.results if r.name.startswith(("mean", "sd", "P("))]
    assert all(abs(r.statistic) <= r.tolerance for r in z) and len(z) > 40
    assert report.sbc.u.shape == (200, 2) and report.sbc.thinned.min() >= 20


def test_model_argument_checks_that_model_only():
    model = nl.models.correlated_gaussian(nl.models.rotated_covariance(3, seed=2))
    report = check_sampler(nutslite_sampler, model=model, n_draws=1000)
    assert {r.target for r in report.results} == {model.name}
    assert sum(r.name.startswith(("mean", "sd")) for r in report.results) == 6


def test_model_without_moments_is_refused():
    with pytest.raises(ValueError, match="needs model.moments"):
        check_sampler(nutslite_sampler, model=nl.models.radon("noncentered"))


def independent_standard_normal(model, n_draws, seed):
    """Ignores the target: iid N(0, I)."""
    return np.random.default_rng(seed).standard_normal((n_draws, model.dim))


def test_a_sampler_ignoring_its_target_fails_with_the_statistics_named():
    with pytest.raises(AssertionError, match=r"FAIL scaled_gaussian +sd\(x\[0\] / 0.01\)"):
        check_sampler(independent_standard_normal, sbc=False)
    report = check_sampler(independent_standard_normal, sbc=False, raise_on_failure=False)
    failed = {r.target for r in report.failures}
    # iid N(0, 1) happens to match the funnel's v ~ N(0, 1) and nearly its log x^2
    assert failed == {"scaled_gaussian", "correlated_gaussian", "banana", "log_gamma"}


def test_output_of_the_wrong_shape_is_an_error():
    with pytest.raises(AssertionError, match=r"shape \(10, 5\).*expected \(100, 5\)"):
        check_sampler(lambda model, n, seed: np.zeros((10, model.dim)), n_draws=100)


def test_sbc_catches_an_overdispersed_sampler():
    """Draws spread twice too wide around their mean: the true value falls too often in the
    middle, a hump in the rank histogram (Talts et al. 2018, fig. 5); chi-square at 1e-3."""

    def overdispersed(model, n_draws, seed):
        draws = nutslite_sampler(model, n_draws, seed)
        return draws.mean(axis=0) + 2.0 * (draws - draws.mean(axis=0))

    result = simulation_based_calibration(overdispersed, replications=100, seed=0)
    assert result.pvalues.max() < 1e-3
    middle = result.counts[:, 3:7].sum(axis=1) / result.counts.sum(axis=1)
    assert np.all(middle > 0.55)  # uniform ranks put 40% there
