"""``nutslite sample FILE.py``: a PyMC model read from a Python file, sampled by the command.

One small model file (two group means with a named dim, a scale and a deterministic; its data in
a file beside it, its helper module imported from beside it) is sampled once for the whole module;
the error cases need no sampling.
"""

import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

import nutslite as nl
from nutslite.cli import main

pytest.importorskip("pymc")

SMALL = ("--draws", "200", "--tune", "200", "--chains", "2", "--seed", "3", "--no-progress")

MODEL_FILE = '''\
from pathlib import Path

import numpy as np
import pymc as pm

from group_labels import GROUPS  # a module beside this file: its folder is importable

y = np.loadtxt(Path(__file__).with_name("y.txt"))  # data read relative to this file
group = np.array([0, 0, 0, 1, 1, 1])

with pm.Model(coords={"group": GROUPS}) as model:
    mu = pm.Normal("mu", 0.0, 5.0, dims="group")
    sigma = pm.HalfNormal("sigma", 2.0)
    pm.Deterministic("mu_diff", mu[1] - mu[0])
    pm.Normal("y", mu[group], sigma, observed=y)

with pm.Model() as other:
    pm.Normal("x", 1.0, 0.5)

not_a_model = 3

if __name__ == "__main__":
    raise SystemExit("the command must not run this block")
'''


def run(*argv: str) -> tuple[int, str, str]:
    """``main(argv)`` in this process: exit status, stdout, stderr."""
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pymc_file")
    (folder / "group_labels.py").write_text('GROUPS = ["north", "south"]\n')
    (folder / "y.txt").write_text("0.1\n-0.3\n0.4\n2.2\n1.7\n2.5\n")
    path = folder / "two_groups.py"
    path.write_text(MODEL_FILE)
    return path


@pytest.fixture(scope="module")
def sampled(model_file) -> tuple[Path, str, str]:
    out = model_file.with_name("run.npz")
    path, argv = list(sys.path), list(sys.argv)
    # a success also shows that the file's `if __name__ == "__main__":` block was skipped
    code, stdout, stderr = run("sample", str(model_file), *SMALL, "--out", str(out))
    assert code == 0, stderr
    assert sys.path == path and sys.argv == argv  # the file's folder is importable while it runs
    return out, stdout, stderr


def test_sample_a_model_file_prints_its_variables(sampled, model_file):
    path, out, err = sampled
    assert f"nutslite: compiling the PyMC model 'model' of {model_file}" in err
    assert "nutslite: sampling two_groups (3 parameters): 2 chains x (200 tune + 200 draws)" in err
    assert f"nutslite: saved to {path}" in err
    lines = out.splitlines()
    assert lines[0].startswith("two_groups: 2 chains x 200 draws after 200 tune, seed 3")
    assert [line.split()[0] for line in lines[2:]] == ["mu[0]", "mu[1]", "sigma", "mu_diff"]


def test_the_saved_run_loads_with_the_deterministic_and_dims(sampled):
    path, _, _ = sampled
    res = nl.load(path)
    assert res.model_name == "two_groups"
    assert res.posterior["mu"].shape == (2, 200, 2) and res.posterior["sigma"].shape == (2, 200)
    # the deterministic is computed from the draws, exactly
    np.testing.assert_array_equal(res.posterior["mu_diff"],
                                  res.posterior["mu"][..., 1] - res.posterior["mu"][..., 0])
    assert list(res.dims["mu"]) == ["group"]
    assert list(res.dim_labels["group"]) == ["north", "south"]
    np.testing.assert_array_equal(res.observed_data["y"], [0.1, -0.3, 0.4, 2.2, 1.7, 2.5])


def test_summary_and_plot_of_the_saved_run(sampled, tmp_path):
    path, sampled_out, _ = sampled
    code, out, _ = run("summary", str(path))
    assert code == 0 and out.splitlines()[1:] == sampled_out.splitlines()[1:]
    code, out, _ = run("summary", str(path), "--vars", "mu_diff", "mu")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["mu_diff", "mu[0]", "mu[1]"]
    figure = tmp_path / "pair.png"
    code, _, err = run("plot", str(path), "--kind", "pair", "--vars", "mu[1]", "sigma",
                       "--out", str(figure))
    assert code == 0 and figure.stat().st_size > 0, err


def test_var_picks_another_model(model_file):
    code, out, err = run("sample", str(model_file), "--var", "other", *SMALL)
    assert code == 0, err
    assert "nutslite: sampling two_groups:other (1 parameters)" in err
    lines = out.splitlines()
    assert lines[0].startswith("two_groups:other: 2 chains x 200 draws")
    assert [line.split()[0] for line in lines[2:]] == ["x"]


# --- errors: exit status 2, a message that names the problem, no traceback ----------------------

def error_of(*argv: str) -> str:
    code, out, err = run(*argv)
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    assert err.splitlines()[-1].startswith("nutslite: error: ")
    return err


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_missing_file(tmp_path):
    err = error_of("sample", str(tmp_path / "nope.py"))
    assert f"no such file: '{tmp_path / 'nope.py'}'" in err


def test_a_path_that_is_not_a_python_file(tmp_path):
    data = write(tmp_path, "model.txt", "x = 1\n")
    err = error_of("sample", str(data))
    assert f"'{data}' is not a Python file (FILE.py) that defines a PyMC model" in err
    err = error_of("sample", str(tmp_path / "folder_that_is_not_there" / "model"))
    assert "no such file" in err


def test_a_file_that_raises(tmp_path):
    path = write(tmp_path, "broken.py", """\
        import math

        x = math.sqrt(-1)
    """)
    err = error_of("sample", str(path))
    assert f"running {path} raised ValueError: math domain error (line 3)" in err
    path = write(tmp_path, "syntax.py", "with pm.Model() as model\n    pass\n")
    assert f"running {path} raised SyntaxError: " in error_of("sample", str(path))
    path = write(tmp_path, "quits.py", "import sys\nsys.exit('no data')\n")
    assert f"running {path} raised SystemExit: no data (line 2)" in error_of("sample", str(path))


def test_no_variable_model_lists_the_models_defined(tmp_path, model_file):
    path = write(tmp_path, "named.py", """\
        import pymc as pm

        with pm.Model() as centered:
            pm.Normal("x")
        with pm.Model() as noncentered:
            pm.Normal("z")
    """)
    err = error_of("sample", str(path))
    assert (f"{path} has no variable 'model'; its PyMC models: centered, noncentered; choose one "
            "with --var NAME") in err
    err = error_of("sample", str(model_file), "--var", "nope")
    assert "has no variable 'nope'; its PyMC models: model, other" in err
    path = write(tmp_path, "empty.py", "x = 1\n")
    err = error_of("sample", str(path))
    assert "has no variable 'model'; it defines no PyMC model as a global variable" in err


def test_var_that_is_not_a_model(model_file):
    err = error_of("sample", str(model_file), "--var", "not_a_model")
    assert (f"'not_a_model' in {model_file} is not a pymc.Model but an object of type int; "
            "its PyMC models: model, other") in err


def test_pymc_not_installed(model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)  # `import pymc` now raises ImportError
    err = error_of("sample", str(model_file))
    assert 'needs PyMC, an optional dependency: pip install "nutslite[pymc]"' in err


@pytest.mark.parametrize("argv, message", [
    (["radon", "--var", "model"], "--var applies only to a model file (FILE.py), not to 'radon'"),
    (["banana", "--var", "x"], "--var applies only to a model file (FILE.py), not to 'banana'"),
    (["{file}", "--parameterization", "centered"],
     "--parameterization applies only to the radon model, not to '{file}'"),
    (["{file}", "--likelihood", "pointwise"],
     "--likelihood applies only to the radon model, not to '{file}'"),
])
def test_options_that_do_not_apply(model_file, argv, message):
    argv = [a.format(file=model_file) for a in argv]
    message = message.format(file=model_file)
    assert message in error_of("sample", *argv)


def test_a_name_without_py_that_has_a_file_is_suggested(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "mymodel.py", "x = 1\n")
    err = error_of("sample", "mymodel")
    assert "unknown model 'mymodel' (did you mean 'mymodel.py'?)" in err


def test_date_labels_are_saved_and_loaded(tmp_path):
    """A PyMC model whose coordinates are dates (``pd.date_range``) samples, saves and loads,
    with its labels as ``datetime64`` values."""
    import pandas as pd

    path = write(tmp_path, "dates.py", """\
        import pandas as pd
        import pymc as pm

        with pm.Model(coords={"day": pd.date_range("2024-01-01", periods=3)}) as model:
            pm.Normal("x", dims="day")
    """)
    out = tmp_path / "run.npz"
    code, _, err = run("sample", str(path), *SMALL, "--out", str(out))
    assert code == 0, err
    labels = nl.load(out).dim_labels["day"]
    assert list(labels) == list(pd.date_range("2024-01-01", periods=3).to_numpy())


def test_a_model_that_cannot_be_saved_is_refused_before_sampling(tmp_path, monkeypatch):
    """``--out`` checks, before sampling, that the model's names, labels and data can be saved
    (here a label that is an arbitrary object), rather than lose the draws after."""
    from nutslite import cli
    from nutslite.models import ZOO

    def unsaveable(*args):
        model = ZOO["eight_schools_noncentered"]()
        model.dim_labels = {"school": [object()] * 8}
        return model

    monkeypatch.setattr(cli, "build_model", unsaveable)
    out = tmp_path / "run.npz"
    err = error_of("sample", "eight_schools_noncentered", *SMALL, "--out", str(out))
    assert "--out could not save a run of eight_schools_noncentered" in err
    assert "unsupported type object" in err
    assert "nutslite: sampling" not in err and not out.exists()


def test_the_example_file_defines_the_blogs_models(tmp_path, monkeypatch):
    """``examples/radon_pymc.py``, which the README samples, runs from any working directory and
    holds the post's two models, the non-centered one as ``model`` (run only, not compiled)."""
    from nutslite.model_file import load_pymc_model

    monkeypatch.chdir(tmp_path)
    path = Path(__file__).resolve().parents[1] / "examples" / "radon_pymc.py"
    model = load_pymc_model(path)
    assert [rv.name for rv in model.free_RVs] == [
        "mu_a", "sigma_a", "mu_b", "sigma_b", "a_offset", "b_offset", "eps"]
    assert [v.name for v in model.deterministics] == ["a", "b"]
    centered = load_pymc_model(path, "hierarchical_model_centered")
    assert [rv.name for rv in centered.free_RVs] == [
        "mu_a", "sigma_a", "mu_b", "sigma_b", "a", "b", "eps"]
