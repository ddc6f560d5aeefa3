r"""The leapfrog integrator (Störmer-Verlet), as in Betancourt (2017) sec. 5.1 and Stan's
``base_leapfrog.hpp``: a half step of momentum, a full step of position, a half step of momentum,

    p_{1/2} = p + (eps/2) grad log p(q)
    q'      = q + eps M^{-1} p_{1/2}
    p'      = p_{1/2} + (eps/2) grad log p(q').

It is symplectic (volume preserving) and time reversible: integrating ``(q', p')`` with ``-eps``
returns ``(q, p)``. Its energy error is O(eps^2) over a trajectory of fixed length (Leimkuhler &
Reich 2004, ch. 4).

**A point of phase space** is stored as one ``(4, dim)`` array ``z`` with rows ``Q`` (position),
``P`` (momentum), ``V`` (velocity ``M^{-1} p``) and ``GRAD`` (``grad log p(q)``): the state with
what the next step and the U-turn criterion need of it, so a step reads one point and writes one.

**The log density** reaches the engine as ``logp_grad`` (``Model.logp_grad_function``), the
argument that every compiled function passes down to here, where ``log_density`` evaluates it (the
only place the engine does). It is either a first-class function ``(theta, grad_out) -> float``
(``nutslite._numba.LogpGradType``) or, for a model with data, ``DensityWithData(function, data)``
whose function is ``(theta, grad_out, data) -> float`` (``LogpGradDataType``). Numba picks the
form while it types the caller, so an engine compiled for one form holds that form's call only,
and the data, an argument like any other, change without a recompile.
"""

from __future__ import annotations

from collections import namedtuple

from numba.extending import overload

from nutslite._numba import JIT_DISABLED, by_type, jit
from nutslite.engine.linalg import dot
from nutslite.engine.metric import DenseMetric, DiagonalMetric, LowRankMetric, velocity

Q, P, V, GRAD = 0, 1, 2, 3  # the rows of a point z: position, momentum, velocity, gradient

DensityWithData = namedtuple("DensityWithData", ["function", "data"])
DensityWithData.__doc__ = """A log density that reads data: ``function(theta, grad_out, data)``
with ``data`` a read-only float64 vector (``nutslite.model.Model`` builds it from ``data=``)."""


def log_density(logp_grad, theta, grad_out):
    """``log p(theta)``, its gradient written into ``grad_out``, for either form of
    ``logp_grad`` (see the module docstring). This body runs interpreted
    (``NUMBA_DISABLE_JIT=1``); compiled, ``_log_density_typed`` gives its twin for the form."""
    if isinstance(logp_grad, DensityWithData):
        return logp_grad.function(theta, grad_out, logp_grad.data)
    return logp_grad(theta, grad_out)


if not JIT_DISABLED:

    @overload(log_density, inline="always")
    def _log_density_typed(logp_grad, theta, grad_out):
        """The compiled twin of ``log_density``: the body for the type of ``logp_grad``, chosen
        while Numba types the caller and inlined into it (Numba IR), so the call costs what a
        direct call of the function costs (a helper function called from the leapfrog cost ~50
        instructions per step, measured with callgrind)."""
        if getattr(logp_grad, "instance_class", None) is DensityWithData:
            return lambda logp_grad, theta, grad_out: logp_grad.function(
                theta, grad_out, logp_grad.data
            )
        return lambda logp_grad, theta, grad_out: logp_grad(theta, grad_out)


@jit
def _leapfrog_diagonal(logp_grad, metric, step_size, z, z_out):
    """The diagonal metric's step, fused into three passes over the coordinates."""
    half = 0.5 * step_size
    m = metric.diag
    for i in range(z.shape[1]):
        z_out[P, i] = z[P, i] + half * z[GRAD, i]
        z_out[Q, i] = z[Q, i] + step_size * (m[i] * z_out[P, i])
    logp = log_density(logp_grad, z_out[Q], z_out[GRAD])
    for i in range(z.shape[1]):
        z_out[P, i] += half * z_out[GRAD, i]
        z_out[V, i] = m[i] * z_out[P, i]
    return logp, 0.5 * dot(z_out[P], z_out[V])


@jit
def _leapfrog_general(logp_grad, metric, step_size, z, z_out):
    """Any metric, through ``velocity``."""
    half = 0.5 * step_size
    n = z.shape[1]
    for i in range(n):
        z_out[P, i] = z[P, i] + half * z[GRAD, i]
    velocity(metric, z_out[P], z_out[V])
    for i in range(n):
        z_out[Q, i] = z[Q, i] + step_size * z_out[V, i]
    logp = log_density(logp_grad, z_out[Q], z_out[GRAD])
    for i in range(n):
        z_out[P, i] += half * z_out[GRAD, i]
    return logp, velocity(metric, z_out[P], z_out[V])


leapfrog = by_type(
    {
        DiagonalMetric: _leapfrog_diagonal,
        DenseMetric: _leapfrog_general,
        LowRankMetric: _leapfrog_general,
    },
    position=1,
)
leapfrog.__doc__ = """``leapfrog(logp_grad, metric, step_size, z, z_out)``: one leapfrog step from
the point ``z`` (its rows ``Q``, ``P`` and ``GRAD`` are read).

Writes the new point, velocity included, to ``z_out`` and returns ``(log p(q'), K(p'))``.
``z_out`` may be ``z`` (an in-place step). One gradient evaluation."""
