"""Tests of nutslite.summary: the table, its columns, round trips and ArviZ agreement."""

import logging
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nutslite.diagnostics import DiagnosticWarning, ess_bulk, ess_tail, mcse_mean, mcse_sd, rhat
from nutslite.summary import Summary, hdi, summary

RTOL = 1e-8
EXAMPLES = max(30, settings.default.max_examples)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def az():
    arviz = pytest.importorskip("arviz")
    arviz.Numba.disable_numba()  # ArviZ 0.23's Numba mcse_sd path fails with numpy 2.x
    logging.getLogger("arviz").setLevel(logging.ERROR)
    return arviz


@pytest.fixture(scope="module")
def posterior():
    rng = np.random.default_rng(42)
    return {
        "mu": rng.standard_normal((4, 200)),
        "sigma_b": np.exp(rng.standard_normal((4, 200))),
        "b": rng.standard_normal((4, 200, 80)) + np.arange(80),
        "x": rng.standard_normal((4, 200, 2, 3)),
    }


def test_rows_columns_and_values(posterior):
    table = summary(SimpleNamespace(posterior=posterior))
    assert len(table) == 1 + 1 + 80 + 6
    assert table.rows[:3] == ["mu", "sigma_b", "b[0]"]
    assert "b[75]" in table.rows and table.rows[-1] == "x[1,2]"
    assert table.columns == [
        "mean",
        "sd",
        "hdi_3%",
        "hdi_97%",
        "mcse_mean",
        "mcse_sd",
        "ess_bulk",
        "ess_tail",
        "r_hat",
    ]
    i = table.rows.index("b[75]")
    draws = posterior["b"][..., 75]
    assert table["mean"][i] == pytest.approx(draws.mean())
    assert table["sd"][i] == pytest.approx(draws.std(ddof=1))
    np.testing.assert_array_equal([table["hdi_3%"][i], table["hdi_97%"][i]], hdi(draws))
    expected = {
        "mcse_mean": mcse_mean,
        "mcse_sd": mcse_sd,
        "ess_bulk": ess_bulk,
        "ess_tail": ess_tail,
        "r_hat": rhat,
    }
    for column, fn in expected.items():
        assert table[column][i] == fn(draws), column
    j = table.rows.index("x[1,0]")
    assert table["r_hat"][j] == rhat(posterior["x"][:, :, 1, 0])
    with pytest.raises(KeyError, match="no column"):
        table["median"]


def test_var_names_and_plain_mapping(posterior):
    table = summary(posterior, var_names=["sigma_b", "mu"])
    assert table.rows == ["sigma_b", "mu"]
    with pytest.raises(KeyError, match="nope"):
        summary(posterior, var_names=["nope"])
    with pytest.raises(TypeError, match="posterior"):
        summary(np.zeros((4, 100)))


@pytest.mark.parametrize(
    ("prob", "names"),
    [
        (0.94, ("hdi_3%", "hdi_97%")),
        (0.9, ("hdi_5%", "hdi_95%")),
        (0.89, ("hdi_5.5%", "hdi_94.5%")),
    ],
)
def test_hdi_column_names_follow_hdi_prob(posterior, prob, names):
    table = summary(posterior, var_names=["mu"], hdi_prob=prob)
    assert tuple(table.columns[2:4]) == names
    with pytest.raises(ValueError, match="hdi_prob"):
        summary(posterior, hdi_prob=1.5)


def test_text_table_is_aligned(posterior):
    table = summary(posterior)
    text = str(table)
    assert repr(table) == text
    lines = text.splitlines()
    assert len(lines) == len(table) + 1
    assert len({len(line) for line in lines}) == 1  # every column right-aligned to one edge
    header = lines[0].split()
    assert header == table.columns
    row = next(line for line in lines if line.startswith("b[75] "))
    cells = row.split()
    assert len(cells) == 1 + len(table.columns)
    i = table.rows.index("b[75]")
    assert cells[1] == f"{table['mean'][i]:.3f}"
    assert cells[7] == f"{table['ess_bulk'][i]:.0f}"
    assert cells[9] == f"{table['r_hat'][i]:.2f}"
    # Every column's cells end at the column's header end.
    for name in table.columns:
        end = lines[0].index(name) + len(name)
        assert all(line[end - 1] != " " for line in lines)


def test_number_formatting_of_extreme_values():
    rng = np.random.default_rng(1)
    with pytest.warns(DiagnosticWarning, match="constant"):
        table = summary(
            {"tiny": 1e-6 * rng.standard_normal((2, 50)), "huge": np.full((2, 50), 3e8)}
        )
    text = str(table)
    assert "e-06" in text or "e-07" in text
    assert "3.00e+08" in text
    assert "nan" in text  # the constant variable's R-hat


def test_to_dict_round_trip(posterior):
    table = summary(posterior)
    data = table.to_dict()
    assert list(data) == ["name"] + table.columns
    assert data["name"].tolist() == table.rows
    data["mean"][0] = 123.0  # to_dict returns copies
    assert table["mean"][0] != 123.0
    back = Summary.from_dict(table.to_dict())
    assert back.rows == table.rows and back.columns == table.columns
    for column in table.columns:
        np.testing.assert_array_equal(back[column], table[column])
    assert str(back) == str(table)


def test_to_pandas(posterior):
    pd = pytest.importorskip("pandas")
    frame = summary(posterior, var_names=["b"]).to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert frame.index[75] == "b[75]"
    assert list(frame.columns)[-1] == "r_hat"


def test_to_pandas_without_pandas(monkeypatch, posterior):
    table = summary(posterior, var_names=["mu"])
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError, match="needs pandas"):
        table.to_pandas()


def test_pandas_is_not_imported_at_module_import():
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import importlib, numpy as np\n"
        "s = importlib.import_module('nutslite.summary')\n"
        "print(s.summary({'a': np.random.default_rng(0).standard_normal((2, 50))}).rows)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['a']"


def test_edge_cases_warn_but_do_not_raise():
    rng = np.random.default_rng(2)
    draws = {"c": np.ones((4, 100)), "n": rng.standard_normal((4, 100)), "one": rng.random((1, 3))}
    draws["n"][0, 0] = np.nan
    with pytest.warns(DiagnosticWarning):
        table = summary(draws, var_names=["c", "n"])
    assert np.isnan(table["r_hat"]).all()
    assert np.isnan([table["mean"][1], table["hdi_3%"][1]]).all()
    with pytest.warns(DiagnosticWarning, match="at least 4 draws"):
        short = summary(draws, var_names=["one"])
    assert np.isfinite(short["mean"][0]) and np.isnan(short["ess_bulk"][0])
    empty = summary({})
    assert len(empty) == 0 and empty.columns[0] == "mean"
    assert str(empty).split() == empty.columns


def test_hdi_is_the_shortest_interval():
    draws = np.arange(100.0)[None, :] ** 2  # right-skewed: the HDI hugs the left end
    lower, upper = hdi(draws, 0.5)
    assert (lower, upper) == (0.0, 50.0**2)
    assert hdi(draws, 1.0).tolist() == [0.0, 99.0**2]
    assert hdi(np.zeros((3, 2, 10))).shape == (3, 2)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    chains=st.integers(1, 4),
    draws=st.integers(2, 200),
    prob=st.floats(0.05, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_hdi_matches_arviz(az, chains, draws, prob, seed):
    x = np.random.default_rng(seed).standard_t(3, (chains, draws))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "more chains than draws"
        theirs = az.hdi(az.convert_to_dataset({"x": x}), hdi_prob=prob)["x"].values
    np.testing.assert_array_equal(hdi(x, prob), theirs)


def test_summary_matches_arviz_summary(az, posterior):
    # Even draw counts: ArviZ's summary folds around the median of the unsplit draws, which
    # equals az.rhat's (and our) fold only when splitting drops no middle draw.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        theirs = az.summary(az.convert_to_dataset(posterior), round_to="none")
    ours = summary(posterior)
    assert list(theirs.columns) == ours.columns
    assert [name.replace(" ", "") for name in theirs.index] == ours.rows
    for column in ours.columns:
        np.testing.assert_allclose(
            ours[column], theirs[column].to_numpy(), rtol=RTOL, atol=0, err_msg=column
        )


def test_variables_with_different_chains_or_draws_are_refused_by_name():
    posterior = {"a": np.zeros((2, 50)), "b": np.zeros((2, 40, 3))}
    expected = r"differ in \(chains, draws\).*'a': \(2, 50\).*'b': \(2, 40\)"
    with pytest.raises(ValueError, match=expected):
        summary(posterior)
