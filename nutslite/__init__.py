"""nutslite: a No-U-Turn Sampler in NumPy and Numba with Stan's semantics."""

from nutslite import diagnostics, models
from nutslite._version import __version__
from nutslite.io import load
from nutslite.model import Model
from nutslite.optimize import find_map
from nutslite.recorder import TransitionRecord, record_transition
from nutslite.result import SamplingResult
from nutslite.sampling import SamplingError, sample
from nutslite.summary import Summary, summary

__all__ = [
    "Model",
    "SamplingError",
    "SamplingResult",
    "Summary",
    "TransitionRecord",
    "__version__",
    "diagnostics",
    "find_map",
    "load",
    "models",
    "record_transition",
    "sample",
    "summary",
]


def __getattr__(name: str):
    """``nl.plots`` (matplotlib), ``nl.testing`` and ``nl.from_pymc`` (PyMC) load on first use."""
    if name == "from_pymc":
        from nutslite.pymc import from_pymc

        return from_pymc
    if name in ("plots", "testing"):
        import importlib

        return importlib.import_module(f"nutslite.{name}")
    raise AttributeError(f"module 'nutslite' has no attribute {name!r}")
