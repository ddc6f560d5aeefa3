"""nutslite: a No-U-Turn Sampler in NumPy and Numba with Stan's semantics."""

from nutslite import models
from nutslite.model import Model
from nutslite.recorder import TransitionRecord, record_transition
from nutslite.result import SamplingResult
from nutslite.sampling import SamplingError, sample

__version__ = "0.1.0"
__all__ = [
    "Model",
    "SamplingError",
    "SamplingResult",
    "TransitionRecord",
    "__version__",
    "models",
    "record_transition",
    "sample",
]
