"""ArviZ export and the warnings nl.sample issues when it returns."""

import warnings

import numpy as np
import pytest

import nutslite as nl
from nutslite.diagnostics import SamplingWarning

az = pytest.importorskip("arviz")


@pytest.fixture(scope="module")
def radon_run():
    # The warning thresholds are themselves noisy at 4 x 1000 draws: over seeds 1-8 the default
    # ("grad") warned twice (seed 2: R-hat of sigma_b 1.010; seed 8: R-hat 1.015 and tail ESS
    # 339 < 400), over seeds 1-80 six times, and "stan" once in 1-8 (seed 2: R-hat of sigma_b
    # 1.011), so a healthy run stays silent about 12 times in 13. Seed 3 is one.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = nl.sample(nl.models.radon("noncentered"), draws=1000, tune=1000, chains=4, seed=3,
                        save_warmup=True, progress=False)
    return res, [w for w in caught if issubclass(w.category, SamplingWarning)]


def test_to_arviz_groups_names_and_county_coords(radon_run):
    res, _ = radon_run
    idata = res.to_arviz()
    for group in ("posterior", "sample_stats", "warmup_posterior", "warmup_sample_stats"):
        assert group in idata.groups()
    post = idata.posterior
    assert post["b"].dims == ("chain", "draw", "county")
    assert post["b"].shape == (4, 1000, 85)
    assert str(post["b"].coords["county"].values[69]) == "ST LOUIS"
    np.testing.assert_array_equal(post["sigma_b"].values, res.posterior["sigma_b"])
    assert {"lp", "acceptance_rate", "step_size", "tree_depth", "n_steps", "diverging",
            "energy", "energy_error", "reached_max_treedepth"} <= set(idata.sample_stats)
    assert idata.warmup_posterior["mu_a"].shape == (4, 1000)
    # ArviZ's own diagnostics read it: its bulk ESS equals nutslite's
    ess = float(az.ess(idata, var_names=["sigma_b"])["sigma_b"])
    assert ess == pytest.approx(nl.diagnostics.ess_bulk(res.posterior["sigma_b"]), rel=1e-8)


def test_healthy_noncentered_run_warns_nothing(radon_run):
    _, caught = radon_run
    assert caught == [], [str(w.message) for w in caught]


def test_centered_run_warns_about_sigma_b():
    """Every centered radon run of seeds 1-8 warns about ``sigma_b``, until one also warns that
    transitions diverged. Runs diverge after warmup in about 60% of seeds and warned about
    ``sigma_b`` in all of seeds 1-40 (2026-12-04), so no divergence in eight would fail a correct
    sampler with probability about 0.4^8 = 7e-4."""
    model = nl.models.radon("centered")
    for seed in range(1, 9):
        with pytest.warns(SamplingWarning) as caught:
            nl.sample(model, draws=1000, tune=1000, chains=4, seed=seed, progress=False)
        messages = [str(w.message) for w in caught if issubclass(w.category, SamplingWarning)]
        assert any("sigma_b" in m for m in messages), (seed, messages)
        if any("diverged" in m for m in messages):
            break
    assert any("diverged" in m for m in messages), messages


def test_summary_of_a_run(radon_run):
    res, _ = radon_run
    table = nl.summary(res, var_names=["sigma_b", "b"])
    assert "b[75]" in table.rows and "sigma_b" in table.rows
    text = str(table)
    assert "sigma_b" in text and "r_hat" in text
