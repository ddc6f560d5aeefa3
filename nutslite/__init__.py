"""nutslite: a No-U-Turn Sampler in NumPy and Numba with Stan's semantics.

The public names load on first use (PEP 562), so ``import nutslite`` and ``nutslite --help`` stay
quick: Numba, the engine and the models are imported when ``nl.sample``, ``nl.models`` or another
name is first touched, and SciPy, matplotlib and ArviZ only where they are used
(``nl.find_map``, ``nl.plots``, ``res.to_arviz()``, ``nl.from_pymc``).
"""

from __future__ import annotations

import importlib
import sys
import types
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


def __getattr__(name: str):
    """Import the module behind ``name`` on first use and keep the value in this namespace."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'nutslite' has no attribute {name!r}")
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
