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
what the next step needs of it, so a step reads one point and writes one. (The tree builder keeps
velocities by position for the U-turn criterion, and a step given a ``MomentumSum`` writes its
velocity there.)

**The log density** ``logp_grad`` (``Model.logp_grad_function``) is called here, the one place
the engine evaluates it, as ``logp_grad(theta, grad_out) -> float``. It is a first-class function
(``nutslite._numba.LogpGradType``) or, for a model with data, a ``DensityWithData``: a callable
pair ``(function, data)`` whose call is ``function(theta, grad_out, data)``. Numba types the
call for the one form in use, so the engine compiled for first-class functions is the same as
if data did not exist, and the data, an argument like any other, change without a recompile.
"""

from __future__ import annotations

from collections import namedtuple

from nutslite._numba import JIT_DISABLED, by_type, jit
from nutslite.engine.linalg import kick_drift_packed, kick_packed
from nutslite.engine.metric import DenseMetric, DiagonalMetric, LowRankMetric, velocity

Q, P, V, GRAD = 0, 1, 2, 3  # the rows of a point z: position, momentum, velocity, gradient

MomentumSum = namedtuple("MomentumSum", ["prior", "out", "sign", "velocity"])
MomentumSum.__doc__ = """A running sum of momenta that a leapfrog step extends by its new momentum:
``out = prior + sign * p'`` (vectors; ``sign`` is 1.0 or -1.0, so the product is exact and the
sum is the same correctly rounded ``prior +/- p'``). The step writes its new velocity
``M^{-1} p'`` to ``velocity`` (the tree builder's row for the state, or ``z_out``'s row ``V``)."""


def _call_with_data(density, theta, grad_out):
    return density.function(theta, grad_out, density.data)


class DensityWithData(namedtuple("DensityWithData", ["function", "data"])):
    """A log density that reads data, called as one that does not: ``density(theta, grad_out)``
    is ``function(theta, grad_out, data)``, with ``function`` of type
    ``nutslite._numba.LogpGradDataType`` and ``data`` a read-only float64 vector
    (``nutslite.model.Model`` makes it from ``data=``). Compiled code calls it through the
    typing and lowering registered below."""

    __slots__ = ()

    def __call__(self, theta, grad_out):
        return _call_with_data(self, theta, grad_out)


if not JIT_DISABLED:
    from numba import types
    from numba.extending import lower_builtin, overload_method

    @overload_method(types.NamedTuple, "__call__")
    def _type_call(density, theta, grad_out):
        """Numba looks a call of a tuple up as its ``__call__``: defined for ``DensityWithData``
        only (returning nothing for any other tuple leaves it uncallable)."""
        if density.instance_class is DensityWithData:
            return _call_with_data

    @lower_builtin(types.NamedTuple, types.VarArg(types.Any))
    def _lower_call(context, builder, signature, args):
        """The code of that call (only a ``DensityWithData`` gets past the typing above)."""
        return context.compile_internal(builder, _call_with_data, signature, args)


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _leapfrog_diagonal(logp_grad, metric, step_size, z, z_out, rho, drifted, ahead, z_next):
    """The diagonal metric's step: two passes over the coordinates, or one when ``drifted``. The
    second is ``linalg.kick`` (or ``kick_drift``, going ``ahead``) as a packed kernel, which also
    writes the velocity and the momentum sum and adds up the kinetic energy (the rows must be
    contiguous, as every caller's are)."""
    half = 0.5 * step_size
    m = metric.diag
    n = m.shape[0]  # the dimension: the rows of a point may be longer (padded to a cache line)
    if not drifted:  # LLVM's loop vectoriser packs it, behind a check that the rows don't overlap
        for i in range(n):
            z_out[P, i] = z[P, i] + half * z[GRAD, i]
            z_out[Q, i] = z[Q, i] + step_size * (m[i] * z_out[P, i])
    logp = logp_grad(z_out[Q, :n], z_out[GRAD, :n])
    p, g = z_out[P, :n], z_out[GRAD, :n]
    if ahead:
        return logp, 0.5 * kick_drift_packed(
            p, g, rho.velocity, m, half, rho.prior, rho.out, rho.sign,
            z_out[Q, :n], z_next[P, :n], z_next[Q, :n], step_size,
        ), True
    return logp, 0.5 * kick_packed(
        p, g, rho.velocity, m, half, rho.prior, rho.out, rho.sign
    ), False


@jit(_nrt=False)  # counts no references (``nutslite._numba.jit``)
def _leapfrog_general(logp_grad, metric, step_size, z, z_out, rho, drifted, ahead, z_next):
    """Any metric, through ``velocity``; never passing ahead (so never asked to go on from a
    drift)."""
    half = 0.5 * step_size
    n = metric.diag.shape[0]
    for i in range(n):
        z_out[P, i] = z[P, i] + half * z[GRAD, i]
    velocity(metric, z_out[P, :n], z_out[V, :n])
    for i in range(n):
        z_out[Q, i] = z[Q, i] + step_size * z_out[V, i]
    logp = logp_grad(z_out[Q, :n], z_out[GRAD, :n])
    for i in range(n):
        p_i = z_out[P, i] + half * z_out[GRAD, i]
        z_out[P, i] = p_i
        rho.out[i] = rho.prior[i] + rho.sign * p_i
    return logp, velocity(metric, z_out[P, :n], rho.velocity), False


leapfrog = by_type(
    {
        DiagonalMetric: _leapfrog_diagonal,
        DenseMetric: _leapfrog_general,
        LowRankMetric: _leapfrog_general,
    },
    position=1,
)
leapfrog.__doc__ = """``leapfrog(logp_grad, metric, step_size, z, z_out, rho, drifted, ahead,
z_next) -> (log p(q'), K(p'), passed_ahead)``: one leapfrog step from the point ``z`` (its rows
``Q``, ``P`` and ``GRAD`` are read) to ``z_out``, which receives rows ``Q``, ``P`` and ``GRAD``.
The step reads and writes the first ``dim`` entries of each row, ``dim`` being the metric's: the
tree builder's rows are longer, padded to start on cache lines
(``nutslite.engine.tree.Trajectory``). ``z_out`` may be ``z`` (an in-place step). One gradient
evaluation.

``rho``, a ``MomentumSum``, is extended by the new momentum, ``rho.out = rho.prior + rho.sign *
p'`` (the tree builder's prefix sums), in the pass that writes ``p'``, and the new velocity
``M^{-1} p'`` goes to ``rho.velocity``: one pass over the coordinates less than a separate loop.

**Chained steps.** With a diagonal metric a step can go ``ahead``: its second pass then also
writes the next step's first one (the half step of momentum and the drift, from the new point,
in the same direction) to rows ``P`` and ``Q`` of ``z_next`` (``linalg.kick_drift``), and it
returns ``passed_ahead`` true. The next step, given that ``z_next`` as its ``z_out`` and told it
is ``drifted``, skips its first pass. A chain of such steps does the operations of a chain of
plain steps, with the same results bit for bit, in one pass over the coordinates per step instead
of two: consecutive steps share their half steps of momentum, as the Stormer-Verlet method is
usually run (Leimkuhler & Reich 2004, ch. 2). The pass ahead is wasted when no step goes on from
the new point in that direction, so the tree builder asks for it only within a doubling, where
the next step follows unless a subtree turns or diverges first (at the end of a doubling, the
next one grows the other side, or none does, more often than not).

With a dense or low-rank metric the step is never chained (``passed_ahead`` is false, and
``drifted``, ``ahead`` and ``z_next`` are unused): there the pass ahead would compute a velocity
``M^{-1} p``, a product with a matrix, which a wasted pass would throw away."""
