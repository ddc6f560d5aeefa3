"""Tests of nutslite.diagnostics: ArviZ agreement, edge cases, known answers, check().

Statistical tests use fixed seeds; each states how often it would fail for a
random seed (its false-alarm rate), from the estimator's sampling distribution.
The reference numbers quoted below come from 20 000 simulated replications of
4 chains x 1000 iid N(0, 1) draws (and AR(1) draws with phi = 0.5).
"""

import logging
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter

from nutslite.diagnostics import (
    DiagnosticWarning,
    SamplingWarning,
    check,
    divergence_counts,
    divergence_locations,
    ebfmi,
    ess_bulk,
    ess_mean,
    ess_tail,
    mcse_mean,
    mcse_sd,
    rhat,
    scalar_diagnostics,
    scalar_draws,
    split_rhat,
    treedepth_saturation,
    warn_problems,
)

RTOL = 1e-8
EXAMPLES = max(30, settings.default.max_examples)


def ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float, df: float = np.inf):
    """Stationary-ish AR(1) draws along the last axis with Student-t (or normal) innovations."""
    noise = rng.standard_normal(shape) if np.isinf(df) else rng.standard_t(df, shape)
    burn = 50
    padded = np.concatenate([rng.standard_normal(shape[:-1] + (burn,)), noise], axis=-1)
    return lfilter([1.0], [1.0, -phi], padded, axis=-1)[..., burn:]


@pytest.fixture(scope="module")
def az():
    arviz = pytest.importorskip("arviz")
    # ArviZ 0.23's Numba path of mcse(method="sd") raises a TypeError with numpy 2.x.
    arviz.Numba.disable_numba()
    logging.getLogger("arviz").setLevel(logging.ERROR)
    return arviz


def _arviz_all(az, x: np.ndarray) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ArviZ's own 0/0 on degenerate draws
        return {
            "rhat": float(az.rhat(x, method="rank")),
            "split_rhat": float(az.rhat(x, method="split")),
            "ess_bulk": float(az.ess(x, method="bulk")),
            "ess_tail": float(az.ess(x, method="tail")),
            "ess_mean": float(az.ess(x, method="mean")),
            "mcse_mean": float(az.mcse(x, method="mean")),
            "mcse_sd": float(az.mcse(x, method="sd")),
        }


def _ours_all(x: np.ndarray) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        return {
            "rhat": rhat(x),
            "split_rhat": split_rhat(x),
            "ess_bulk": ess_bulk(x),
            "ess_tail": ess_tail(x),
            "ess_mean": ess_mean(x),
            "mcse_mean": mcse_mean(x),
            "mcse_sd": mcse_sd(x),
        }


def _assert_matches_arviz(az, x: np.ndarray) -> None:
    ours, theirs = _ours_all(x), _arviz_all(az, x)
    for name in theirs:
        np.testing.assert_allclose(
            ours[name], theirs[name], rtol=RTOL, atol=0, equal_nan=True, err_msg=name
        )


# ---------------------------------------------------------------------------
# Agreement with ArviZ 0.23
# ---------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    chains=st.integers(1, 6),
    draws=st.integers(4, 300),
    phi=st.floats(-0.9, 0.99),
    df=st.sampled_from([1.0, 2.5, 5.0, np.inf]),
    offset=st.floats(0.0, 3.0),
    ties=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_scalar_diagnostics_match_arviz(az, chains, draws, phi, df, offset, ties, seed):
    rng = np.random.default_rng(seed)
    x = ar1(rng, (chains, draws), phi, df) + offset * rng.standard_normal((chains, 1))
    if ties:
        x = np.round(x)
    _assert_matches_arviz(az, x)


def test_large_ar1_matches_arviz(az):
    rng = np.random.default_rng(20240611)
    _assert_matches_arviz(az, ar1(rng, (4, 2000), 0.9))
    _assert_matches_arviz(az, ar1(rng, (4, 1001), -0.6))  # odd length, antithetic


def test_batched_diagnostics_match_arviz_dataset(az):
    rng = np.random.default_rng(11)
    x = ar1(rng, (4, 500, 6), 0.7)  # (chains, draws, dim) as ArviZ stores a vector
    x[..., 5] += np.arange(4)[:, None]  # one badly mixed element
    dataset = az.convert_to_dataset({"x": x})
    batch = np.moveaxis(x, -1, 0)
    pairs = {
        "rhat": (rhat(batch), az.rhat(dataset, method="rank")),
        "ess_bulk": (ess_bulk(batch), az.ess(dataset, method="bulk")),
        "ess_tail": (ess_tail(batch), az.ess(dataset, method="tail")),
        "mcse_mean": (mcse_mean(batch), az.mcse(dataset, method="mean")),
        "mcse_sd": (mcse_sd(batch), az.mcse(dataset, method="sd")),
    }
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == (6,)
        np.testing.assert_allclose(ours, theirs["x"].values, rtol=RTOL, atol=0, err_msg=name)
    joint = scalar_diagnostics(batch)
    np.testing.assert_array_equal(joint["r_hat"], pairs["rhat"][0])
    np.testing.assert_array_equal(joint["ess_tail"], pairs["ess_tail"][0])


@pytest.mark.parametrize(
    "x",
    [
        np.ones((4, 100)),  # constant: R-hat nan, ESS = number of draws
        np.arange(4.0)[:, None] * np.ones((4, 60)),  # constant chains at different values
        np.where(np.arange(400).reshape(4, 100) % 2, 1.0, -1.0),  # folded draws constant
        np.tile([0.0, 0.0, 0.0, 1.0], (3, 25)),  # many ties at one value
    ],
    ids=["constant", "constant-chains", "two-point", "ties"],
)
def test_degenerate_draws_match_arviz(az, x):
    _assert_matches_arviz(az, x)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    chains=st.integers(1, 6),
    draws=st.integers(2, 300),
    phi=st.floats(-0.9, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_ebfmi_matches_arviz(az, chains, draws, phi, seed):
    energy = ar1(np.random.default_rng(seed), (chains, draws), phi)
    np.testing.assert_allclose(ebfmi(energy), az.bfmi(energy), rtol=RTOL, atol=0)


# ---------------------------------------------------------------------------
# Shapes and edge cases
# ---------------------------------------------------------------------------


def test_one_dimensional_input_is_one_chain():
    x = np.random.default_rng(3).standard_normal(400)
    assert ess_bulk(x) == ess_bulk(x[None, :])
    assert mcse_sd(x) == mcse_sd(x[None, :])
    assert isinstance(ess_tail(x), float)
    with pytest.warns(DiagnosticWarning, match="at least 2 chain"):
        assert np.isnan(rhat(x))
    assert ebfmi(x).shape == (1,)


def test_batches_over_leading_dimensions():
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 50))
    for fn in (rhat, split_rhat, ess_bulk, ess_tail, ess_mean, mcse_mean, mcse_sd):
        batched = fn(x)
        assert batched.shape == (2, 3)
        assert batched[1, 2] == fn(x[1, 2])
    diag = scalar_diagnostics(x)
    assert all(values.shape == (2, 3) for values in diag.values())
    assert scalar_diagnostics(x[0, 0])["r_hat"].shape == (1,)


def test_constant_draws_warn_and_give_defined_values():
    x = np.full((4, 100), 2.5)
    with pytest.warns(DiagnosticWarning, match="constant"):
        assert np.isnan(rhat(x))
    with pytest.warns(DiagnosticWarning, match="constant"):
        assert np.isnan(split_rhat(x))
    with pytest.warns(DiagnosticWarning, match="constant"):
        assert ess_bulk(x) == 400.0
    with pytest.warns(DiagnosticWarning, match="constant"):
        assert ess_tail(x) == 400.0
    with pytest.warns(DiagnosticWarning, match="constant"):
        assert mcse_mean(x) == 0.0
    with pytest.warns(DiagnosticWarning, match="constant"):
        assert np.isnan(mcse_sd(x))
    with pytest.warns(DiagnosticWarning, match="constant"):
        diag = scalar_diagnostics(x)
    assert np.isnan(diag["r_hat"][0]) and diag["ess_bulk"][0] == 400.0


def test_constant_chains_at_different_values_give_huge_rhat():
    x = np.arange(4.0)[:, None] * np.ones((4, 60))
    assert split_rhat(x) == np.inf  # W = 0 exactly
    assert rhat(x) > 1e6  # W is rounding noise after rank normalization (ArviZ agrees)


def test_one_chain():
    x = np.random.default_rng(5).standard_normal((1, 500))
    with pytest.warns(DiagnosticWarning, match="at least 2 chain"):
        assert np.isnan(rhat(x))
    with pytest.warns(DiagnosticWarning, match="at least 2 chain"):
        assert np.isnan(split_rhat(x))
    assert np.isfinite([ess_bulk(x), ess_tail(x), mcse_mean(x), mcse_sd(x)]).all()
    with pytest.warns(DiagnosticWarning, match="R-hat needs at least 2 chains"):
        diag = scalar_diagnostics(x)
    assert np.isnan(diag["r_hat"][0]) and np.isfinite(diag["ess_bulk"][0])


@pytest.mark.parametrize("draws", [0, 1, 3])
def test_too_few_draws_give_nan_with_warning(draws):
    x = np.random.default_rng(6).standard_normal((4, draws))
    for fn in (rhat, split_rhat, ess_bulk, ess_tail, ess_mean, mcse_mean, mcse_sd):
        with pytest.warns(DiagnosticWarning, match="at least 4 draws"):
            assert np.isnan(fn(x))
    with pytest.warns(DiagnosticWarning, match="at least 4 draws"):
        assert np.isnan(list(scalar_diagnostics(x).values())).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_draws_give_nan_for_that_scalar_only(bad):
    x = np.random.default_rng(7).standard_normal((3, 4, 100))
    x[1, 2, 17] = bad
    for fn in (rhat, split_rhat, ess_bulk, ess_tail, ess_mean, mcse_mean, mcse_sd):
        with pytest.warns(DiagnosticWarning, match="1 of 3 scalar"):
            values = fn(x)
        assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all()


def test_ebfmi_edge_cases():
    with pytest.warns(DiagnosticWarning, match="at least 2 draws"):
        assert np.isnan(ebfmi(np.ones((4, 1)))).all()
    energy = np.random.default_rng(8).standard_normal((3, 100))
    energy[1, 5] = np.nan
    with pytest.warns(DiagnosticWarning, match="NaN or infinite"):
        values = ebfmi(energy)
    assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all()
    energy[1] = 3.0
    with pytest.warns(DiagnosticWarning, match="constant"):
        assert np.isnan(ebfmi(energy)[1])


def test_scalar_draws_names_and_layout():
    rng = np.random.default_rng(9)
    posterior = {"mu": rng.standard_normal((2, 5)), "x": rng.standard_normal((2, 5, 2, 3))}
    names, draws = scalar_draws(posterior)
    assert names == ["mu", "x[0,0]", "x[0,1]", "x[0,2]", "x[1,0]", "x[1,1]", "x[1,2]"]
    assert draws.shape == (7, 2, 5)
    np.testing.assert_array_equal(draws[6], posterior["x"][:, :, 1, 2])
    assert scalar_draws(posterior, ["x"])[0][0] == "x[0,0]"
    with pytest.raises(KeyError, match="nope"):
        scalar_draws(posterior, ["nope"])


# ---------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------


def test_iid_normal_known_answers():
    x = np.random.default_rng(2024).standard_normal((4, 1000))
    size = x.size
    # Over 20 000 simulated seeds ESS/S had sd 0.044 and range [0.72, 1.14] (bulk, tail and
    # mean alike; tail is biased low by 4%).  The band [0.55, 1.35] S is >= 9 sd away: no
    # simulated seed left it, so the false-alarm rate is below 1e-4.
    for fn in (ess_bulk, ess_tail, ess_mean):
        assert 0.55 * size < fn(x) < 1.35 * size
    # R-hat - 1 had sd 5e-4 and maximum 0.0038 over 20 000 seeds: |R-hat - 1| < 0.01 is
    # ~18 sd, a false-alarm rate far below 1e-6.
    assert abs(rhat(x) - 1) < 0.01
    assert abs(split_rhat(x) - 1) < 0.01
    # sqrt(S) * MCSE: mean had sd 0.026 around 1 (range [0.93, 1.17]); sd had sd 0.023
    # around sqrt(1/2) (range [0.63, 0.86]).  Both bands are >= 7 sd wide on each side:
    # false-alarm rate below 1e-4 (no simulated seed left them).
    assert 0.8 < mcse_mean(x) * np.sqrt(size) < 1.3
    assert 0.5 < mcse_sd(x) * np.sqrt(size) < 0.95


def test_ar1_ess_matches_theory():
    # For AR(1) with coefficient phi, ESS / S -> (1 - phi) / (1 + phi) = 1/3 at phi = 0.5.
    # Over 20 000 seeds ess_mean / S had sd 0.026 and range [0.21, 0.41] (ess_bulk over 5 000
    # seeds: sd 0.025, range [0.20, 0.42]); the band 1/3 +- 0.15 is ~6 sd wide: false-alarm
    # rate below 1e-4 (no simulated seed left it).
    x = ar1(np.random.default_rng(77), (4, 1000), 0.5)
    assert abs(ess_mean(x) / x.size - 1 / 3) < 0.15
    assert abs(ess_bulk(x) / x.size - 1 / 3) < 0.15


def test_rhat_detects_shifted_and_narrow_chains():
    rng = np.random.default_rng(31)
    shifted = rng.standard_normal((4, 1000)) + np.array([[0.0], [0.5], [1.0], [1.5]])
    # Over 5 000 simulated seeds this R-hat had mean 1.165, sd 0.009 and minimum 1.135:
    # > 1.1 is 7 sd below the mean, so the test fails for fewer than 1e-6 of seeds.
    assert rhat(shifted) > 1.1
    assert split_rhat(shifted) > 1.1
    # One chain with a third of the variance: the folded (tail) R-hat catches it while the
    # classic split-R-hat stays near 1 (Vehtari et al. 2021, Fig. 1).  Over 5 000 seeds the
    # rank R-hat had mean 1.036, sd 0.004, minimum 1.021 (> 1.01 is 6.4 sd below the mean)
    # and split-R-hat mean 1.000, sd 6e-4, maximum 1.004 (< 1.01 is 17 sd above): both
    # assertions fail for fewer than 1e-4 of seeds.
    narrow = rng.standard_normal((4, 1000))
    narrow[0] /= np.sqrt(3)
    assert rhat(narrow) > 1.01
    assert split_rhat(narrow) < 1.01


def test_ebfmi_of_white_noise_is_two():
    # For iid energies E-BFMI -> 2 with asymptotic variance 4 / N (delta method: Var(mean
    # diff^2) = 12/N, Var(var) = 2/N, Cov = 4/N).  The chain average over 4 x 1000 draws has
    # sd 2 / sqrt(4000) = 0.032 (simulation: 0.0315); 5 sd gives a false-alarm rate of 6e-7.
    energy = np.random.default_rng(99).standard_normal((4, 1000))
    values = ebfmi(energy)
    assert values.shape == (4,)
    assert abs(values.mean() - 2) < 5 * 2 / np.sqrt(energy.size)


# ---------------------------------------------------------------------------
# Divergences and tree depth
# ---------------------------------------------------------------------------


def test_divergence_counts_and_treedepth_saturation():
    diverging = np.zeros((3, 10), dtype=bool)
    diverging[0, [1, 4]] = True
    diverging[2, 9] = True
    np.testing.assert_array_equal(divergence_counts(diverging), [2, 0, 1])
    assert divergence_counts(diverging[0]).tolist() == [2]
    saturation = treedepth_saturation(diverging)
    np.testing.assert_allclose(saturation.per_chain, [0.2, 0.0, 0.1])
    assert saturation.overall == pytest.approx(0.1)
    per_chain, overall = treedepth_saturation(np.zeros((2, 0), dtype=bool))
    assert np.isnan(per_chain).all() and np.isnan(overall)


def test_divergence_locations_ranks_the_culprit():
    rng = np.random.default_rng(12)
    draws = rng.standard_normal((4, 500, 3))
    diverging = draws[..., 1] < -1.5  # divergences where the scale parameter is small
    ranked = divergence_locations(draws, diverging, ["a", "log_tau", "b"])
    assert [name for name, _ in ranked][0] == "log_tau"
    names = dict(ranked)
    other = draws[..., 1][~diverging]
    expected = abs(draws[..., 1][diverging].mean() - other.mean()) / other.std(ddof=1)
    assert names["log_tau"] == pytest.approx(expected)
    # The other two are independent of the divergences: over 5 000 seeds their scores had
    # mean 0.07, sd 0.05 and maximum 0.37, so < 1.0 (17 sd) fails for fewer than 1e-6 of seeds.
    assert names["a"] < 1.0 and names["b"] < 1.0
    assert [name for name, _ in divergence_locations(draws, diverging)][0] == "x[1]"
    posterior = {"a": draws[..., 0], "v": draws[..., 1:]}
    assert divergence_locations(posterior, diverging)[0][0] == "v[0]"
    assert divergence_locations(draws, np.zeros((4, 500), dtype=bool)) == []


def test_divergence_locations_constant_parameter():
    draws = np.zeros((1, 6, 2))
    draws[0, :, 1] = [1.0, 2.0, 3.0, 4.0, 5.0, 9.0]
    diverging = np.array([[False] * 5 + [True]])
    ranked = divergence_locations(draws, diverging, ["const", "z"])
    assert ranked[0] == ("z", pytest.approx(6 / np.std([1, 2, 3, 4, 5], ddof=1)))
    assert ranked[1] == ("const", 0.0)


# ---------------------------------------------------------------------------
# check() and warn_problems()
# ---------------------------------------------------------------------------


def _healthy(seed: int = 0, chains: int = 4, draws: int = 1000) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        posterior={
            "mu": rng.standard_normal((chains, draws)),
            "sigma_b": np.exp(rng.standard_normal((chains, draws))),
            "b": rng.standard_normal((chains, draws, 100)),
        },
        sample_stats={
            "diverging": np.zeros((chains, draws), dtype=bool),
            "reached_max_treedepth": np.zeros((chains, draws), dtype=bool),
            "energy": rng.standard_normal((chains, draws)),
        },
        settings={"max_treedepth": 10},
    )


def test_check_healthy_result_has_no_messages():
    # 102 iid scalars: each R-hat exceeds 1.01 and each ESS falls below 400 with probability
    # < 1e-6 (see the known-answer tests), so a false alarm has probability < 1e-4.
    res = _healthy()
    assert check(res) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_problems(res) == []


def test_check_reports_divergences():
    res = _healthy()
    res.sample_stats["diverging"][1, :5] = True
    res.sample_stats["diverging"][3, 10] = True
    (message,) = check(res)
    assert "6 of 4000" in message and "0, 5, 0, 1" in message


def test_check_reports_treedepth_saturation():
    res = _healthy()
    res.sample_stats["reached_max_treedepth"][0, :200] = True
    (message,) = check(res)
    assert "5.0%" in message and "tree depth 10" in message


def test_check_reports_rhat_with_names_and_values():
    res = _healthy()
    res.posterior["b"][2, :, 75] += 2.0
    res.posterior["sigma_b"][0] *= 3.0
    messages = check(res)
    rhat_messages = [m for m in messages if "R-hat" in m]
    assert len(rhat_messages) == 1
    message = rhat_messages[0]
    assert f"b[75] {rhat(res.posterior['b'][..., 75]):.3f}" in message
    assert f"sigma_b {rhat(res.posterior['sigma_b']):.3f}" in message
    assert "2 of 102" in message


def test_check_reports_low_ess_and_truncates_long_lists():
    rng = np.random.default_rng(5)
    res = _healthy()
    res.posterior["b"][..., :40] = ar1(rng, (40, 4, 1000), 0.995).transpose(1, 2, 0)
    messages = check(res)
    bulk = next(m for m in messages if m.startswith("bulk ESS"))
    tail = next(m for m in messages if m.startswith("tail ESS"))
    assert "below 400" in bulk and "40 of 102" in bulk and "and 35 more" in bulk
    worst = int(np.argmin(ess_bulk(np.moveaxis(res.posterior["b"], -1, 0))))
    assert bulk.split(": ", 1)[1].startswith(f"b[{worst}] ")
    assert "and 35 more" in tail


def test_check_reuses_the_statistics_of_a_summary():
    from unittest import mock

    import nutslite.diagnostics as diagnostics
    from nutslite.summary import summary

    rng = np.random.default_rng(6)
    res = _healthy()
    res.posterior["b"][..., :3] = ar1(rng, (3, 4, 1000), 0.995).transpose(1, 2, 0)
    res.posterior["sigma_b"][0] *= 3.0
    expected = check(res)
    whole, part = summary(res), summary(res, var_names=["sigma_b", "mu"])
    computed = []
    original = diagnostics.source_statistics

    def counting(sources, wanted, *args, **kwargs):
        computed.append(int(np.count_nonzero(wanted)))
        return original(sources, wanted, *args, **kwargs)

    with mock.patch.object(diagnostics, "source_statistics", counting):
        assert check(res, summary=whole) == expected  # every scalar from the table
        assert check(res, summary=part) == expected
    # the first table has every scalar, the second lacks b: only b's statistics were computed
    assert computed == [0, 100]


def test_check_reports_low_ebfmi_and_nonfinite_draws():
    res = _healthy()
    res.sample_stats["energy"][2] = np.cumsum(res.sample_stats["energy"][2])  # random walk
    res.posterior["b"][0, 3, 7] = np.nan
    messages = check(res)
    assert any("E-BFMI below 0.3" in m and "chain 2:" in m for m in messages)
    assert any("NaN or infinite" in m and "b[7]" in m for m in messages)


def test_warn_problems_issues_one_warning_per_message():
    res = _healthy()
    res.sample_stats["diverging"][0, 0] = True
    res.sample_stats["reached_max_treedepth"][1, :3] = True
    with pytest.warns(SamplingWarning) as record:
        messages = warn_problems(res)
    assert len(messages) == 2
    assert [str(w.message) for w in record if w.category is SamplingWarning] == messages


def test_check_tolerates_missing_stats_and_settings():
    res = SimpleNamespace(posterior=_healthy().posterior)
    assert check(res) == []
    res = _healthy()
    res.settings = {}
    res.sample_stats["reached_max_treedepth"][:] = True
    assert "100.0% of transitions hit the maximum tree depth (" in check(res)[0]


def test_small_percentages_are_never_printed_as_zero():
    res = _healthy(draws=1000)
    res.sample_stats["diverging"][0, 0] = True  # 1 of 4000 = 0.025%
    res.sample_stats["reached_max_treedepth"][1, 0] = True
    divergence, treedepth = check(res)
    assert "(<0.1%)" in divergence and "0.0%" not in divergence
    assert treedepth.startswith("<0.1% of transitions") and "0.0%" not in treedepth
    assert "per chain: 0%, 0.1%, 0%, 0%" in treedepth  # 1 of 1000 in chain 1
    res.sample_stats["reached_max_treedepth"][:] = True
    res.sample_stats["reached_max_treedepth"][2, 5] = False
    assert check(res)[1].startswith(">99.9% of transitions")


def test_divergence_message_after_an_interrupt_counts_the_kept_draws():
    res = _healthy(draws=300)
    res.sample_stats["diverging"][2, :3] = True
    res.interrupted = True
    (message,) = check(res)
    assert message.startswith("3 of 1200 post-warmup transitions kept before the interrupt")
    res.interrupted = False
    assert "interrupt" not in check(res)[0]


def _warn_from_library(res, stacklevel):
    """Stands for nl.sample: a library function that checks the result it returns."""
    return warn_problems(res, stacklevel=stacklevel)


def test_warn_problems_stacklevel_points_at_the_chosen_line():
    res = _healthy(draws=200)
    res.sample_stats["diverging"][0, 0] = True
    res.sample_stats["energy"][1] = 1.0  # constant energy: a DiagnosticWarning from check
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        _warn_from_library(res, stacklevel=3)
    assert {w.category for w in record} == {SamplingWarning, DiagnosticWarning}
    assert all(w.filename == __file__ and w.lineno == line for w in record)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _warn_from_library(res, stacklevel=2)
    assert {w.lineno for w in record} == {_warn_from_library.__code__.co_firstlineno + 2}
