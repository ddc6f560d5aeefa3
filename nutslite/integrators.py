r"""The leapfrog integrator (Störmer-Verlet), as in Betancourt (2017) sec. 5.1 and Stan's
``base_leapfrog.hpp``: a half step of momentum, a full step of position, a half step of momentum,

    p_{1/2} = p + (eps/2) grad log p(q)
    q'      = q + eps M^{-1} p_{1/2}
    p'      = p_{1/2} + (eps/2) grad log p(q').

It is symplectic (volume preserving) and time reversible: integrating ``(q', p')`` with ``-eps``
returns ``(q, p)``. Its energy error is O(eps^2) over a trajectory of fixed length.
"""

from __future__ import annotations

from nutslite._numba import jit


@jit(inline="always")
def leapfrog(logp_grad, step_size, inv_mass, q, p, grad, q_out, p_out, grad_out):
    """One leapfrog step from ``(q, p)`` with ``grad = grad log p(q)``.

    Writes the new state to ``(q_out, p_out, grad_out)`` and returns ``log p(q_out)``. The output
    arrays may be the input arrays (an in-place step). One gradient evaluation.
    """
    half = 0.5 * step_size
    for i in range(q.shape[0]):
        p_out[i] = p[i] + half * grad[i]
        q_out[i] = q[i] + step_size * inv_mass[i] * p_out[i]
    logp = logp_grad(q_out, grad_out)
    for i in range(q.shape[0]):
        p_out[i] += half * grad_out[i]
    return logp
