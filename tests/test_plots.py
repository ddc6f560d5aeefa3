"""nutslite.plots on the Agg backend: the artists exist and divergences are drawn when present."""

import subprocess
import sys
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba

import nutslite as nl
from nutslite import plots
from nutslite.diagnostics import ebfmi

CHAINS, DRAWS = 3, 200
DIVERGENT = [(0, 5), (1, 17), (1, 18), (2, 150)]
RED = to_rgba(plots.DIVERGENT_COLOR)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def result():
    """A result-like object with a scalar, a vector, a matrix and known divergences."""
    rng = np.random.default_rng(0)
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    for c, d in DIVERGENT:
        diverging[c, d] = True
    posterior = {
        "sigma": np.exp(rng.normal(size=(CHAINS, DRAWS))),
        "b": rng.normal(size=(CHAINS, DRAWS, 4)),
        "x": rng.normal(size=(CHAINS, DRAWS, 2, 3)),
    }
    stats = {"diverging": diverging, "energy": rng.normal(size=(CHAINS, DRAWS)).cumsum(axis=1)}
    return SimpleNamespace(posterior=posterior, sample_stats=stats)


def red_lines(ax):
    return [line for line in ax.get_lines() if to_rgba(line.get_color()) == RED]


def test_variables_are_addressed_by_name_or_element(result):
    labels, draws = plots._draws(result, "b[2]")
    assert labels == ["b[2]"]
    np.testing.assert_array_equal(draws[..., 0], result.posterior["b"][..., 2])
    labels, draws = plots._draws(result, "b")
    assert labels == ["b[0]", "b[1]", "b[2]", "b[3]"] and draws.shape == (CHAINS, DRAWS, 4)
    np.testing.assert_array_equal(
        plots._scalar(result, "x[1, 2]", "t"), result.posterior["x"][..., 1, 2]
    )
    assert plots._draws(result.posterior, "sigma")[0] == ["sigma"]
    with pytest.raises(KeyError, match="no variable 'nope'"):
        plots._draws(result, "nope")
    with pytest.raises(IndexError, match="shape is \\(4,\\)"):
        plots._draws(result, "b[4]")
    with pytest.raises(IndexError):
        plots._draws(result, "x[1]")
    with pytest.raises(ValueError, match="needs a scalar"):
        plots.plot_pair(result, "b", "sigma")


def test_trace_draws_one_line_per_chain_and_marks_divergences(result):
    fig = plots.plot_trace(result, ["sigma", "b[1]"])
    assert fig.axes[0].figure is fig and len(fig.axes) == 4
    trace = fig.axes[1]
    chain_lines = [line for line in trace.get_lines() if line not in red_lines(trace)]
    assert len(chain_lines) == CHAINS
    np.testing.assert_array_equal(chain_lines[2].get_ydata(), result.posterior["sigma"][2])
    (ticks,) = red_lines(trace)
    np.testing.assert_array_equal(ticks.get_xdata(), sorted({d for _, d in DIVERGENT}))
    assert f"divergent ({len(DIVERGENT)})" in [t.get_text() for t in trace.get_legend().texts]
    assert len(fig.axes[0].patches) == CHAINS  # one step histogram per chain
    assert trace.get_ylabel() == "sigma"


def test_trace_of_a_vector_in_one_chain_colours_elements(result):
    fig = plots.plot_trace(result, "b", chains=0, density=False, divergences=False)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 4 and len({line.get_color() for line in lines}) == 4
    assert not red_lines(ax)
    np.testing.assert_array_equal(lines[3].get_ydata(), result.posterior["b"][0, :, 3])
    (ticks,) = red_lines(plots.plot_trace(result, "b", chains=0).axes[1])
    np.testing.assert_array_equal(ticks.get_xdata(), [5])  # chain 0's divergence only


def test_trace_on_given_axes_and_without_divergence_stats(result):
    fig, axes = plt.subplots(2, 1)
    assert plots.plot_trace(result.posterior, ["sigma", "b[0]"], density=False, axes=axes) is fig
    assert all(len(ax.get_lines()) == CHAINS for ax in axes)
    with pytest.raises(ValueError, match="chains must be"):
        plots.plot_trace(result, "sigma", chains=[3])


def test_pair_highlights_divergent_draws(result):
    fig = plots.plot_pair(result, "b[0]", "sigma", ylim=(0, 0.7), title="funnel")
    assert len(fig.axes) == 3  # joint plus two marginals
    joint = fig.axes[0]
    draws, divergent = [c for c in joint.collections if isinstance(c, PathCollection)]
    assert len(draws.get_offsets()) == CHAINS * DRAWS - len(DIVERGENT)
    expected = [
        [result.posterior["b"][c, d, 0], result.posterior["sigma"][c, d]] for c, d in DIVERGENT
    ]
    np.testing.assert_allclose(divergent.get_offsets(), expected)
    assert tuple(divergent.get_facecolor()[0][:3]) == RED[:3]
    assert joint.get_ylim() == (0, 0.7)
    assert (joint.get_xlabel(), joint.get_ylabel()) == ("b[0]", "sigma")
    assert fig._suptitle.get_text() == "funnel"
    assert all(len(ax.patches) == 60 for ax in fig.axes[1:])  # the marginal histograms


def test_pair_on_a_given_axis(result):
    fig, ax = plt.subplots()
    assert plots.plot_pair(result, "b[0]", "b[1]", ax=ax, xlabel="first") is fig
    assert len(fig.axes) == 1 and ax.get_xlabel() == "first"
    assert len(ax.collections) == 2
    quiet = plots.plot_pair(result, "b[0]", "b[1]", divergences=False, marginals=False)
    assert len(quiet.axes[0].collections) == 1
    with pytest.raises(ValueError, match="marginals"):
        plots.plot_pair(result, "b[0]", "b[1]", ax=ax, marginals=True)


def test_energy_plot_shows_both_distributions_and_ebfmi(result):
    fig, ax = plt.subplots()
    assert plots.plot_energy(result, ax=ax, bins=30, title="t") is fig
    assert len(ax.patches) == 60
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert any("marginal" in s for s in labels) and any("transition" in s for s in labels)
    values = ebfmi(result.sample_stats["energy"])
    text = " ".join(t.get_text() for t in ax.texts)
    assert "E-BFMI" in text and all(f"{v:.2f}" in text for v in values)
    with pytest.raises(KeyError, match="energy"):
        plots.plot_energy(result.posterior)


def test_rank_plot_bars_count_every_draw(result):
    fig = plots.plot_rank(result, "x[0,1]", bins=10)
    (ax,) = fig.axes
    assert len(ax.patches) == CHAINS * 10
    heights = np.array([p.get_height() for p in ax.patches]).reshape(CHAINS, 10)
    np.testing.assert_array_equal(heights.sum(axis=1), DRAWS)
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"chain {c}" for c in range(CHAINS)]
    assert len([line for line in ax.get_lines() if line.get_linestyle() == "--"]) == CHAINS


def test_rank_plot_separates_a_chain_that_sampled_elsewhere():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(2, 500))
    draws[1] += 3.0
    fig = plots.plot_rank({"theta": draws}, "theta", bins=4)
    heights = np.array([p.get_height() for p in fig.axes[0].patches]).reshape(2, 4)
    assert heights[0, 0] > 200 and heights[1, -1] > 200


def test_plots_accept_a_sampling_result():
    res = nl.sample(
        nl.models.eight_schools("centered"), draws=150, tune=150, chains=2, seed=3, progress=False
    )
    for fig in (
        plots.plot_trace(res, ["tau", "theta[0]"]),
        plots.plot_pair(res, "theta[0]", "tau"),
        plots.plot_energy(res),
        plots.plot_rank(res, "tau"),
    ):
        assert fig.axes and all(ax.has_data() for ax in fig.axes if ax.get_visible())


def test_import_nutslite_does_not_import_matplotlib():
    code = "import sys, nutslite; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("size", [1, 5, 85, 1000])
def test_trace_of_a_vector_stays_readable_at_any_length(size, tmp_path):
    """Issue 17: 85 radon slopes repeated "chain 3" across the legend, the titles overlapped and
    constrained_layout gave up. Now one legend entry per chain, and past
    ``MAX_TRACED_ELEMENTS`` a forest of per-chain intervals with a note."""
    import warnings

    rng = np.random.default_rng(1)
    posterior = {"b": rng.normal(size=(4, 100, size)).squeeze(-1) if size == 1
                 else rng.normal(size=(4, 100, size))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied" fails the test
        fig = plots.plot_trace(posterior, "b")
        fig.savefig(tmp_path / "trace.png")
    hist_ax, trace_ax = fig.axes[:2]
    labels = [t.get_text() for t in trace_ax.get_legend().get_texts()]
    assert labels == [f"chain {c}" for c in range(4)]  # once each, whatever the size
    if size > plots.MAX_TRACED_ELEMENTS:
        assert trace_ax.get_title(loc="left") == f"b: {size} elements, 90% intervals"
        assert not hist_ax.axison and f"b has {size} elements" in hist_ax.texts[0].get_text()
        assert trace_ax.get_xlim() == (-1, size)
    else:
        assert len(trace_ax.get_lines()) == 4 * size


def test_max_traced_traces_every_element_of_a_long_vector():
    """The funnel figure traces all 85 slopes of one chain; by default they become a forest."""
    rng = np.random.default_rng(0)
    posterior = {"b": rng.normal(size=(1, 50, 85))}
    traced = nl.plots.plot_trace(posterior, "b", density=False, max_traced=85)
    forest = nl.plots.plot_trace(posterior, "b", density=False)
    assert len(traced.axes[0].get_lines()) == 85
    assert len(forest.axes[0].get_lines()) < 85
    plt.close(traced)
    plt.close(forest)
