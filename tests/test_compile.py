"""How the engine is compiled: one specialisation per plain argument type, no wrappers for calls
between compiled functions, type dispatch that puts only the kind in use into a compiled caller,
and where compiled code is cached (``nutslite._numba``)."""

import importlib
import importlib.util
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from numba import config, objmode

import nutslite
from nutslite import _numba
from nutslite._numba import JIT_DISABLED, by_type, jit

pytestmark = pytest.mark.skipif(JIT_DISABLED, reason="about compiled code")

Twice = namedtuple("Twice", ["x"])
Thrice = namedtuple("Thrice", ["x", "unused"])


@jit(cache=False)
def _twice(form, y):
    return 2.0 * form.x[0] + y


@jit(cache=False)
def _thrice(form, y):
    return 3.0 * form.x[0] + y


scale = by_type({Twice: _twice, Thrice: _thrice})


@jit(cache=False)
def _call_scale(form):
    return scale(form, 1.0)


def test_by_type_dispatches_in_python_and_in_compiled_code():
    twice, thrice = Twice(np.array([5.0])), Thrice(np.array([5.0]), np.zeros(2))
    assert _call_scale(twice) == 11.0 and _call_scale(thrice) == 16.0
    # the compiled caller compiled each implementation for its own type only, without wrappers
    assert [sig[0].instance_class for sig in _twice.twin.signatures] == [Twice]
    assert [sig[0].instance_class for sig in _thrice.twin.signatures] == [Thrice]
    assert not _twice.signatures and not _thrice.signatures
    assert scale(twice, 1.0) == 11.0 and scale(thrice, 1.0) == 16.0


@jit(cache=False)
def _callee(a, flag):
    return a + flag


@jit(cache=False)
def _caller(a):
    return _callee(a, 0) + _callee(a, 1) + _callee(a, True)


def test_constant_arguments_share_one_specialisation():
    """Numba would compile ``_callee`` once per literal (0, 1, True); nutslite's ``jit`` types
    calls between compiled functions with plain types, so ints share one compile."""
    assert _caller(1) == 5
    args = {tuple(str(t) for t in sig) for sig in _callee.twin.signatures}
    assert args == {("int64", "int64"), ("int64", "bool")}


@jit(cache=False)
def _inner(x):
    return x + 1.0


@jit(cache=False)
def _outer(x):
    return _inner(x) * 2.0


@jit(cache=False)
def _countdown(n):
    return 0 if n == 0 else 1 + _countdown(n - 1)


@jit(cache=False)
def _call_countdown(n):
    return _countdown(n)


def test_compiled_callers_get_no_wrappers_and_python_still_calls():
    """A call from compiled code compiles the callee's twin, without the wrapper that unboxes
    Python arguments (nor the C-pointer one); a call from Python compiles it with them."""
    assert _outer(1.0) == 4.0
    assert not _inner.signatures and len(_inner.twin.signatures) == 1
    overload = _inner.twin.overloads[_inner.twin.signatures[0]]
    assert overload.fndesc.llvm_cpython_wrapper_name not in overload.library.get_llvm_str()
    assert _inner(1.0) == 2.0  # compiled again, with its wrapper, for Python
    assert len(_inner.signatures) == 1
    assert _call_countdown(5) == 5  # a recursive twin calls itself
    assert not _countdown.signatures


@jit(cache=False, nogil=False)
def _host_sum(x):
    with objmode(total="float64"):  # needs its environment in the JIT engine
        total = float(np.sum(x))
    return total


@jit(cache=False)
def _link_only_caller(x):
    return _inner(x[0]) + _host_sum(x) + _countdown(3)


def test_twins_are_linked_into_their_callers_not_finalised_on_their_own():
    """A twin's library holds LLVM IR for its callers to link (no module passes, no machine code
    of its own); one with an ``objmode`` block is finalised as Numba does, and both run."""
    assert _link_only_caller(np.array([1.0, 2.0])) == 2.0 + 3.0 + 3.0
    linked = {f: f.twin.overloads[f.twin.signatures[0]].library for f in (_inner, _countdown)}
    for f, library in linked.items():
        assert type(library) is _numba._LinkOnlyLibrary and library.link_only
        assert library._finalized  # linked into the caller, which finalised it
        fndesc = f.twin.overloads[f.twin.signatures[0]].fndesc
        assert library.get_pointer_to_function(fndesc.llvm_func_name) == 0
    host = _host_sum.twin.overloads[_host_sum.twin.signatures[0]].library
    assert not getattr(host, "link_only", False)  # an ordinary library


@jit(cache=False)
def _first_from_python(x):
    return x - 1.0


@jit(cache=False)
def _then_from_compiled_code(x):
    return _first_from_python(x)


def test_a_version_compiled_for_python_serves_compiled_callers():
    """A function called from Python before compiled code calls it: the compiled caller reuses
    that version instead of compiling a twin."""
    assert _first_from_python(3.0) == 2.0
    assert _then_from_compiled_code(3.0) == 2.0
    assert not hasattr(_first_from_python, "twin")


def _cache_dir_of(package_parent: Path) -> str:
    """``cache_dir()`` as a fresh interpreter computes it for the nutslite in ``package_parent``."""
    code = "from nutslite._numba import cache_dir; print(cache_dir())"
    out = subprocess.run([sys.executable, "-c", code], cwd=package_parent, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(package_parent),
                                                             "NUTSLITE_CACHE_DIR": "/nowhere"})
    return out.stdout.strip()


def test_an_edit_anywhere_in_the_package_starts_a_fresh_cache(tmp_path):
    """The cache folder is named after a hash of every source, wherever the package lives: a copy
    shares it, and an edit to any module (here one the engine does not import) changes it, so
    code compiled against the old source is never loaded."""
    shutil.copytree(Path(nutslite.__file__).parent, tmp_path / "nutslite",
                    ignore=shutil.ignore_patterns("__pycache__"))
    here = _cache_dir_of(Path(nutslite.__file__).parent.parent)
    assert _cache_dir_of(tmp_path) == here
    with open(tmp_path / "nutslite" / "plots.py", "a") as module:
        module.write("# an edit\n")
    edited = _cache_dir_of(tmp_path)
    assert edited != here and Path(edited).parent == Path(here).parent


@pytest.mark.skipif(not hasattr(config, "CACHE_LOCATOR_CLASSES"),
                    reason="this Numba has no CACHE_LOCATOR_CLASSES")
def test_cached_functions_go_to_nutslite_folder_with_one_writability_check(tmp_path, monkeypatch):
    """Two cached functions of one module: both are cached under ``cache_dir()``; Numba's check
    that the folder is writable (a temporary file) runs once, and a folder deleted since is made
    again before the save."""
    monkeypatch.setattr(_numba, "cache_dir", lambda: str(tmp_path / "cache"))
    checks = []
    original = _numba.UserProvidedCacheLocator.ensure_cache_path
    monkeypatch.setattr(_numba.UserProvidedCacheLocator, "ensure_cache_path",
                        lambda self: (checks.append(self.get_cache_path()), original(self))[1])
    (tmp_path / "two_cached.py").write_text(
        "from nutslite._numba import jit\n\n@jit\ndef plus_one(x):\n    return x + 1.0\n\n"
        "@jit\ndef plus_two(x):\n    return x + 2.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("two_cached")
    folder = module.plus_one._cache.cache_path
    assert folder.startswith(str(tmp_path / "cache")) and checks == [folder]
    assert module.plus_two._cache.cache_path == folder
    shutil.rmtree(tmp_path / "cache")
    assert module.plus_one(1.0) == 2.0 and module.plus_two(1.0) == 3.0
    assert len(list(Path(folder).glob("*.nbi"))) == 2 and checks == [folder]


def test_typing_shortcuts_give_numbas_results():
    """``Flags.values()`` is the dictionary Numba builds, keys in the same order; an operator on
    scalars is typed as before and one on arrays still goes through NumPy's ufunc rules."""
    from numba.core.compiler import Flags
    from numba.core.typing.npydecl import NumpyRulesArrayOperator

    set_some = Flags()
    set_some.nrt, set_some.no_cpython_wrapper, set_some.error_model = True, True, "numpy"
    for flags in (Flags(), set_some, Flags(set_some)):
        numbas = {name: getattr(flags, name) for name in flags.options}
        assert flags.values() == numbas and list(flags.values()) == list(numbas)
    assert NumpyRulesArrayOperator.generic.__module__ == "nutslite._numba"

    @jit(cache=False)
    def mixed(x, a):
        return x * 2.0 - 1, a * x + a, -x, x > 0.5

    y, b, neg, gt = mixed(0.75, np.arange(3.0))
    assert (y, neg, gt) == (0.5, -0.75, True) and np.array_equal(b, np.arange(3.0) * 1.75)


_BLAS_IN_A_FRESH_PROCESS = """
import sys
import numpy as np
import nutslite as nl
from nutslite._numba import jit

model = nl.models.radon("noncentered")  # the first compile or cache load: Numba's target set-up
import numba.np.arraymath as arraymath
import numba.np.linalg as linalg
print(arraymath._HAVE_BLAS, arraymath.ensure_blas is linalg.ensure_blas,
      linalg.ensure_blas.__module__, "scipy.linalg" in sys.modules)

@jit(cache=False)
def product(a, b):
    return a @ b

a = np.arange(6.0).reshape(2, 3)
print(np.array_equal(product(a, a.T), a @ a.T), "scipy.linalg.cython_blas" in sys.modules)
"""


def test_numbas_blas_check_does_not_import_scipy_linalg():
    """A fresh process that builds a model finds SciPy's BLAS as Numba would (``_HAVE_BLAS``),
    with Numba's own ``ensure_blas`` restored and ``scipy.linalg`` not imported; a matrix product
    compiled afterwards still gets SciPy's BLAS and the right answer."""
    out = subprocess.run(
        [sys.executable, "-c", _BLAS_IN_A_FRESH_PROCESS],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout.split("\n")
    assert out[0] == "True True numba.np.linalg False"
    assert out[1] == "True True"


def test_the_blas_check_leaves_an_unusual_scipy_to_numba(monkeypatch):
    """``_cython_blas_found`` answers without importing when ``scipy.linalg.cython_blas`` is where
    a plain install puts it; when SciPy or the file cannot be found that way (an unusual install,
    or none), Numba's ``ensure_blas`` is asked, and its ``ImportError`` comes through."""
    asked = []

    def numbas(error=None):
        asked.append(error)
        if error:
            raise error

    assert _numba._cython_blas_found(numbas) is None and asked == []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert _numba._cython_blas_found(numbas) is None and asked == [None]
    with pytest.raises(ImportError, match="scipy"):
        _numba._cython_blas_found(lambda: numbas(ImportError("scipy 0.16+ is required")))


def test_a_locator_another_library_added_first_is_kept(tmp_path, monkeypatch):
    """PyTensor adds a cache locator of its own to Numba's list when it is imported; if that
    happens before nutslite decorates its functions, nutslite must name it so that Numba can
    import it (an undotted name is looked up among Numba's own classes only: a RuntimeError)."""
    from numba.core.caching import FunctionCache, _CacheLocator

    class ForeignLocator(_CacheLocator):
        """Serves no function, as PyTensor's serves none of nutslite's."""

        @classmethod
        def from_function(cls, py_func, py_file):
            return None

    monkeypatch.setattr(sys.modules[__name__], "ForeignLocator", ForeignLocator, raising=False)
    monkeypatch.setattr(_numba, "cache_dir", lambda: str(tmp_path / "cache"))
    locators = FunctionCache._impl_class._locator_classes
    monkeypatch.setattr(FunctionCache._impl_class, "_locator_classes", [ForeignLocator, *locators])
    monkeypatch.setattr(_numba, "_NUMBA_LOCATORS", FunctionCache._impl_class._locator_classes)
    assert f"{__name__}.ForeignLocator" in _numba._locator_setting().split(",")
    (tmp_path / "after_foreign.py").write_text(
        "from nutslite._numba import jit\n\n@jit\ndef plus_three(x):\n    return x + 3.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("after_foreign")
    assert module.plus_three(1.0) == 4.0
    assert module.plus_three._cache.cache_path.startswith(str(tmp_path / "cache"))


def test_nutslite_after_pymc_in_a_fresh_process():
    """``import pymc`` before ``import nutslite``: PyTensor's Numba cache locator is already in
    Numba's list when nutslite decorates its cached functions (the diagnostics' here)."""
    pytest.importorskip("pytensor")
    code = ("import pytensor.link.numba.cache\nimport nutslite as nl\n"
            "print(float(nl.diagnostics.rhat(__import__('numpy').ones((2, 8)) + "
            "__import__('numpy').arange(16).reshape(2, 8))))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout) > 1.0  # two chains at different levels


def test_gc_frozen_spares_existing_objects_for_the_outermost_block_only():
    """``gc_frozen`` freezes what exists at the outermost entry and unfreezes it at that block's
    exit, even after an error; nested blocks and inactive ones do nothing of their own, and
    objects frozen before (a program's own ``gc.freeze``) stay frozen after it."""
    import gc

    assert gc.get_freeze_count() == 0
    with _numba.gc_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with _numba.gc_frozen():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # the inner exit unfroze nothing
    assert gc.get_freeze_count() == 0
    with _numba.gc_frozen(active=False):  # nothing to compile: nothing frozen
        assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), _numba.gc_frozen():
        raise RuntimeError("a failed compile")
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        with _numba.gc_frozen():
            assert gc.get_freeze_count() == mine
        assert gc.get_freeze_count() == mine
    finally:
        gc.unfreeze()
