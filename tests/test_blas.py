"""BLAS and LAPACK run on one thread while chains sample (``nutslite._blas``).

Two chain threads that each call OpenBLAS, which starts threads of its own, made posteriordb's
``gp_pois_regr`` 30 times slower (``benchmarks/results/posteriors_gp_one_blas_thread.md``).
"""

import sys
import threading
import types

import numpy as np

import nutslite as nl
from nutslite import _blas, sampling
from nutslite.models import ZOO


def blas_threads() -> int:
    """OpenBLAS's thread count (NumPy's wheels bundle OpenBLAS; SciPy's too)."""
    np.linalg.cholesky(np.eye(2))  # NumPy's OpenBLAS is loaded
    controls = _blas._openblas_controls()
    assert controls, "no OpenBLAS found in this process"
    return controls[0][0]()


def test_blocks_nest_across_threads_and_the_last_one_restores():
    before = blas_threads()
    inside = []
    with _blas.single_blas_thread():
        inside.append(blas_threads())

        def chain() -> None:  # a metric update in a chain thread opens a block of its own
            with _blas.single_blas_thread():
                inside.append(blas_threads())

        worker = threading.Thread(target=chain)
        worker.start()
        worker.join()
        inside.append(blas_threads())  # the inner block's end restores nothing yet
    assert inside == [1, 1, 1]
    assert blas_threads() == before


def test_chains_run_with_one_blas_thread(monkeypatch):
    before = blas_threads()
    seen = []
    run_chains = sampling._run_chains

    def spy(*args):
        seen.append(blas_threads())
        return run_chains(*args)

    monkeypatch.setattr(sampling, "_run_chains", spy)
    nl.sample(ZOO["std_normal_5"](), draws=20, tune=20, chains=2, seed=0, progress=False,
              warn=False)
    assert seen == [1]
    assert blas_threads() == before


def test_libraries_are_found_once_and_again_after_an_import(monkeypatch):
    found = _blas._find_controls()
    assert _blas._find_controls() is found  # no second scan of the loaded libraries
    # a BLAS arrives with the extension module that links it: a new module means a new scan
    monkeypatch.setitem(sys.modules, "nutslite_test_new_module", types.ModuleType("new"))
    again = _blas._find_controls()
    assert again is not found
    assert _blas._find_controls() is again
