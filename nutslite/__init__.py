"""nutslite: a No-U-Turn Sampler in NumPy and Numba with Stan's semantics.

The public names load on first use (PEP 562), so ``import nutslite`` and ``nutslite --help`` stay
quick: Numba, the engine and the models are imported when ``nl.sample``, ``nl.models`` or another
name is first touched, and SciPy, matplotlib and ArviZ only where they are used
(``nl.find_map``, ``nl.plots``, ``res.to_arviz()``, ``nl.from_pymc``).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import threading
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

from nutslite._version import __version__

# public name -> the module that defines it (a name equal to its module is a submodule)
_EXPORTS = {
    "Model": "nutslite.model",
    "SamplingError": "nutslite.sampling",
    "SamplingResult": "nutslite.result",
    "Summary": "nutslite.summary",
    "TransitionRecord": "nutslite.recorder",
    "diagnostics": "nutslite.diagnostics",
    "find_map": "nutslite.optimize",
    "from_pymc": "nutslite.pymc",
    "load": "nutslite.result",
    "models": "nutslite.models",
    "plots": "nutslite.plots",
    "record_transition": "nutslite.recorder",
    "sample": "nutslite.sampling",
    "summary": "nutslite.summary",
    "testing": "nutslite.testing",
}

__all__ = [
    "Model",
    "SamplingError",
    "SamplingResult",
    "Summary",
    "TransitionRecord",
    "__version__",
    "diagnostics",
    "find_map",
    "from_pymc",
    "load",
    "models",
    "plots",
    "record_transition",
    "sample",
    "summary",
    "testing",
]

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from nutslite import diagnostics, models, plots, testing
    from nutslite.model import Model
    from nutslite.optimize import find_map
    from nutslite.pymc import from_pymc
    from nutslite.recorder import TransitionRecord, record_transition
    from nutslite.result import SamplingResult, load
    from nutslite.sampling import SamplingError, sample
    from nutslite.summary import Summary, summary


_SUBMODULES = {"diagnostics", "models", "plots", "testing"}

_PAUSE_LOCK = threading.Lock()
_pauses = [0, False]  # blocks open now; whether the collector was on when the first one opened


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Within the block, CPython's cyclic garbage collector does not run (reference counting
    still frees everything else); afterwards it is on again if it was on before.

    For the steps that create tens of thousands of long-lived objects and no cyclic garbage to
    speak of: importing nutslite's modules (with Numba, its dispatchers and typing templates) and
    loading compiled code from the disk cache (with Numba's target, its registries and SciPy).
    Each full collection walks every object in the process (about 60-75 ms with Numba and SciPy
    loaded on the benchmark machine) and frees next to nothing here; a warm start ran two of
    them, 35-40% of nutslite's own share of it (``benchmarks/README.md``, compile, round 6).
    The objects made in the block are collected afterwards like any others. Blocks may nest and
    overlap across threads; the collector comes back when the last one closes.
    """
    with _PAUSE_LOCK:
        if _pauses[0] == 0:
            _pauses[1] = gc.isenabled()
            gc.disable()
        _pauses[0] += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _pauses[0] -= 1
            if _pauses[0] == 0 and _pauses[1]:
                gc.enable()


def __getattr__(name: str):
    """Import the module behind ``name`` on first use and keep the value in this namespace."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'nutslite' has no attribute {name!r}")
    with _collector_paused():
        module = importlib.import_module(module_name)
    value = module if name in _SUBMODULES else getattr(module, name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """``nl.summary`` is the function, although ``nutslite.summary`` is also a module: importing
    that module would bind the package attribute to the module, so the binding is refused here
    (the module stays reachable as ``sys.modules["nutslite.summary"]`` and by ``from
    nutslite.summary import ...``), as it was when this file imported the function eagerly."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _EXPORTS and name not in _SUBMODULES:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return list(__all__)
