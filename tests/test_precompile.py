"""The diagnostics compiled in a second process during a first ``nl.sample`` call
(``nutslite._precompile``): the child compiles the very version the checks call, into this
process's cache, and a child that fails leaves the compile to the parent."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import nutslite as nl
from nutslite import _precompile, sampling
from nutslite._diagnostic_kernels import _statistics_kernel
from nutslite._numba import JIT_DISABLED, cache_dir, needs_compiling
from nutslite.models.zoo import std_normal

pytestmark = pytest.mark.skipif(JIT_DISABLED, reason="about compiled code")


def _sample(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nl.sample(std_normal(3), draws=50, tune=50, chains=2, seed=4, progress=False,
                         **kwargs)


def test_the_child_compiles_the_version_the_checks_call():
    _precompile.compile_diagnostics(cache_dir())  # what the child runs
    _sample()  # the checks behind the warnings
    # one version serves both, so the parent finds the child's in the cache
    assert len(_statistics_kernel.signatures) == 1
    assert not needs_compiling(_statistics_kernel)
    assert _precompile.start_diagnostics_compile() is None  # nothing left to compile


def test_the_child_runs_on_this_nutslite_and_cache():
    done = subprocess.run(_precompile.child_command(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    index = _statistics_kernel._cache._cache_file._index_path
    assert index.startswith(cache_dir() + os.sep) and os.path.exists(index)


def test_the_child_ignores_a_nutslite_in_the_working_folder(tmp_path):
    # run from a checkout, the child must still import the parent's nutslite: a decoy package in
    # its working folder exits with 7 if it is imported. The parent's nutslite is on the child's
    # sys.path already, as site-packages is for a regular (not editable) install
    decoy = tmp_path / "nutslite"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit(7)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(nl.__file__)))
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run(
        _precompile.child_command(), cwd=tmp_path, env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()


def test_the_child_refuses_another_cache(tmp_path):
    env = {**os.environ, "NUTSLITE_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(_precompile.child_command(), env=env, capture_output=True, timeout=300)
    assert done.returncode == 2, done.stderr.decode()


def test_a_failed_child_leaves_the_compile_to_the_call(monkeypatch):
    waited = []

    class Failing(_precompile.DiagnosticsCompile):
        def wait(self) -> bool:
            waited.append(super().wait())
            return waited[-1]

    def start():
        return Failing(subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]))

    monkeypatch.setattr(sampling, "start_diagnostics_compile", start)
    res = _sample()
    assert waited == [False]  # the checks waited for the child, which failed
    assert "check_seconds" in res.settings  # and ran all the same
    assert np.isfinite(res.posterior["x"]).all()
