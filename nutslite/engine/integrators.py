r"""The leapfrog integrator (Störmer-Verlet), as in Betancourt (2017) sec. 5.1 and Stan's
``base_leapfrog.hpp``: a half step of momentum, a full step of position, a half step of momentum,

    p_{1/2} = p + (eps/2) grad log p(q)
    q'      = q + eps M^{-1} p_{1/2}
    p'      = p_{1/2} + (eps/2) grad log p(q').

It is symplectic (volume preserving) and time reversible: integrating ``(q', p')`` with ``-eps``
returns ``(q, p)``. Its energy error is O(eps^2) over a trajectory of fixed length (Leimkuhler &
Reich 2004, ch. 4).
"""

from __future__ import annotations

from nutslite._numba import by_type, jit
from nutslite.engine.linalg import dot
from nutslite.engine.metric import DenseMetric, DiagonalMetric, LowRankMetric, velocity


@jit
def _leapfrog_diagonal(logp_grad, step_size, metric, q, p, grad, q_out, p_out, grad_out, v_out):
    """The diagonal metric's step, fused into three passes over the coordinates."""
    half = 0.5 * step_size
    m = metric.diag
    for i in range(q.shape[0]):
        p_out[i] = p[i] + half * grad[i]
        q_out[i] = q[i] + step_size * (m[i] * p_out[i])
    logp = logp_grad(q_out, grad_out)
    for i in range(q.shape[0]):
        p_out[i] += half * grad_out[i]
        v_out[i] = m[i] * p_out[i]
    return logp, 0.5 * dot(p_out, v_out)


@jit
def _leapfrog_general(logp_grad, step_size, metric, q, p, grad, q_out, p_out, grad_out, v_out):
    """Any metric, through ``velocity``."""
    half = 0.5 * step_size
    n = q.shape[0]
    for i in range(n):
        p_out[i] = p[i] + half * grad[i]
    velocity(metric, p_out, v_out)
    for i in range(n):
        q_out[i] = q[i] + step_size * v_out[i]
    logp = logp_grad(q_out, grad_out)
    for i in range(n):
        p_out[i] += half * grad_out[i]
    return logp, velocity(metric, p_out, v_out)


leapfrog = by_type(
    {
        DiagonalMetric: _leapfrog_diagonal,
        DenseMetric: _leapfrog_general,
        LowRankMetric: _leapfrog_general,
    },
    position=2,
)
leapfrog.__doc__ = """``leapfrog(logp_grad, step_size, metric, q, p, grad, q_out, p_out, grad_out,
v_out)``: one leapfrog step from ``(q, p)`` with ``grad = grad log p(q)``.

Writes the new state to ``(q_out, p_out, grad_out)`` and its velocity ``M^{-1} p_out`` to
``v_out``; returns ``(log p(q_out), K(p_out))``. The outputs may be the inputs (an in-place
step). One gradient evaluation."""
