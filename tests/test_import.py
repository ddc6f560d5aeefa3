"""``import nutslite`` and ``nutslite --help`` stay light: heavy dependencies load where used.

Each check runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("scipy.stats", "scipy.optimize", "scipy.linalg", "matplotlib", "arviz", "pymc", "dask")


def _modules_after(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter after running ``code``."""
    program = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_import_nutslite_loads_no_heavy_dependency():
    loaded = _modules_after("import nutslite")
    assert not {m for m in loaded if m.split(".")[0] in ("numba", "scipy", "matplotlib")}


def test_the_sampling_api_pulls_in_neither_scipy_stats_nor_matplotlib():
    loaded = _modules_after(
        "import nutslite as nl\n"
        "nl.sample, nl.summary, nl.diagnostics.rhat, nl.Model, nl.load, nl.models.radon"
    )
    assert "numba" in loaded  # the names really were resolved
    assert not [m for m in HEAVY if m in loaded]


def test_a_name_that_is_also_a_module_stays_the_function():
    loaded_first = subprocess.run(
        [sys.executable, "-c", "import nutslite.summary, nutslite as nl; print(callable(nl.summary)"
         " and nl.summary.__module__)"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert loaded_first.stdout.strip() == "nutslite.summary"


def test_unknown_names_raise_attribute_error():
    import nutslite

    try:
        nutslite.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("nutslite.no_such_name did not raise AttributeError")


def test_help_does_not_import_numba():
    loaded = _modules_after(
        "import sys\nfrom nutslite.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "numba" not in loaded and "numpy" not in loaded


def test_every_public_name_resolves():
    import nutslite

    assert set(nutslite.__all__) == {*nutslite._EXPORTS, "__version__"}
    for name in nutslite.__all__:
        assert getattr(nutslite, name) is not None


def test_the_cli_lists_every_sbc_model():
    from nutslite import cli
    from nutslite.testing.sbc import SBC_MODELS

    assert tuple(SBC_MODELS) == cli.SBC_MODELS
