"""nutslite: a No-U-Turn Sampler in NumPy and Numba with Stan's semantics."""

from nutslite import models
from nutslite.model import Model

__version__ = "0.1.0"
__all__ = ["Model", "models", "__version__"]
