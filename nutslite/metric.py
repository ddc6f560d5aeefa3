r"""The diagonal Euclidean metric: kinetic energy, velocity and momentum sampling.

With a diagonal inverse mass matrix ``M^{-1} = diag(m)`` (the estimated posterior variance), the
Hamiltonian is ``H(q, p) = -log p(q) + K(p)`` with the Gaussian kinetic energy

    K(p) = 1/2 p^T M^{-1} p = 1/2 sum_i m_i p_i^2,

momenta are drawn from ``N(0, M)``, i.e. ``p_i = z_i / sqrt(m_i)``, and the velocity
``dq/dt = dK/dp = M^{-1} p`` is the "sharp" momentum ``p#`` of Betancourt (2017, "A Conceptual
Introduction to Hamiltonian Monte Carlo", sec. 4.2 and appendix A.4.2), as in Stan's
``diag_e_metric.hpp``.
"""

from __future__ import annotations

import math

from nutslite._numba import jit


@jit(inline="always")
def kinetic_energy(p, inv_mass):
    """``K(p) = 1/2 sum_i m_i p_i^2``."""
    k = 0.0
    for i in range(p.shape[0]):
        k += inv_mass[i] * p[i] * p[i]
    return 0.5 * k


@jit(inline="always")
def velocity_dot(p, inv_mass, v):
    """``(M^{-1} p) . v``: the sharp momentum ``p#`` dotted with ``v``, without forming ``p#``."""
    s = 0.0
    for i in range(p.shape[0]):
        s += inv_mass[i] * p[i] * v[i]
    return s


@jit(inline="always")
def sample_momentum(rng, inv_mass, p_out):
    """Draw ``p ~ N(0, M)`` into ``p_out``: ``p_i = z_i / sqrt(m_i)`` with ``z_i ~ N(0, 1)``."""
    for i in range(p_out.shape[0]):
        p_out[i] = rng.standard_normal() / math.sqrt(inv_mass[i])
