"""Numba settings shared by every compiled function in nutslite.

Every hot function is compiled with ``jit``: nopython mode, the GIL released (chains run as
threads), the NumPy error model (a division by zero gives inf or NaN instead of raising, which the
sampler turns into a divergence) and an on-disk cache, so a second process starts sampling in about
a second. Floating-point contraction and fast-math stay off, so that a compiled run and a run with
``NUMBA_DISABLE_JIT=1`` produce bit-identical draws.

A log density is passed to the engine as a first-class function of the fixed type
``LogpGradType``: ``float64(float64[::1] theta, float64[::1] grad_out)``. Numba then compiles the
engine once for that *type* rather than once per model, and the compiled engine is found in the
cache by every later process, whatever model it samples.
"""

from __future__ import annotations

import os

from numba import njit, types

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")

FloatVector = types.float64[::1]
LOGP_GRAD_SIGNATURE = types.float64(FloatVector, FloatVector)
LogpGradType = types.FunctionType(LOGP_GRAD_SIGNATURE)


def jit(*args, **kwargs):
    """``numba.njit`` with nutslite's settings (cache, nogil, NumPy error model)."""
    options = {"cache": True, "nogil": True, "error_model": "numpy"}
    options.update(kwargs)
    return njit(*args, **options)
