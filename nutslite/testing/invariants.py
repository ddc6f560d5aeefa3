r"""Invariant checks for Hamiltonian integrators and NUTS transitions.

Each ``check_*`` function raises ``AssertionError`` naming the statistic that failed, its value and
the tolerance; on success it returns the statistic, so a test can also look at it. They test any
implementation that follows two small protocols:

* an **integrator** ``integrator(model, q, p, step_size, inv_mass, n_steps) -> (q', p')``, taking
  ``n_steps`` steps of ``step_size`` (``inv_mass`` is ``M^{-1}``, a diagonal ``(dim,)`` or a matrix
  ``(dim, dim)``); the default, :func:`leapfrog`, runs nutslite's compiled leapfrog;
* a **transition recorder** ``record(model, q, step_size, inv_mass=..., seed=rng,
  max_treedepth=...) -> TransitionRecord`` (:func:`nutslite.record_transition` is the default):
  one NUTS transition with every visited state, the completed subtrees and every U-turn check.

Integrator invariants (Leimkuhler & Reich 2004, "Simulating Hamiltonian Dynamics", ch. 2-4;
Betancourt 2017, "A Conceptual Introduction to Hamiltonian Monte Carlo", sec. 5.1):

* :func:`check_reversibility`: the leapfrog map ``Phi`` is time reversible, ``R Phi R Phi = id``
  with the momentum flip ``R(q, p) = (q, -p)``;
* :func:`check_volume_preservation`: ``Phi`` is symplectic, so ``det D Phi = 1``;
* :func:`check_energy_error_order`: leapfrog is a second-order method, so over a trajectory of fixed
  length ``T`` the energy error ``max_t |H(z_t) - H(z_0)|`` is ``O(eps^2)``;
* :func:`check_gradient`: the model's gradient against central finite differences.

Transition invariants (Hoffman & Gelman 2014, "The No-U-Turn Sampler", JMLR 15:1593, Alg. 3;
Betancourt 2017, appendix A; Stan's ``base_nuts.hpp``):

* :func:`check_uturn_decisions`: every recorded U-turn decision agrees with a brute-force evaluation
  of the criterion, and the checks made are exactly those Stan's algorithm makes;
* :func:`check_acceptance_statistic`: the acceptance statistic averages ``min(1, exp(H0 - H))``
  over every state visited, rejected subtrees included;
* :func:`check_momentum_distribution`: the fresh momentum is ``N(0, M)``;
* :func:`check_selection_probabilities`: the selected state follows the exact selection
  distribution of :func:`selection_probabilities`, by a chi-square test on frequencies.

:func:`check_transitions` records many transitions from one start and runs all four.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from scipy import stats

from nutslite._numba import jit
from nutslite.engine.integrators import GRAD, MomentumSum, P, Q, V
from nutslite.engine.integrators import leapfrog as _leapfrog_step
from nutslite.engine.metric import metric_from_inv_mass
from nutslite.engine.tree import MAX_DELTA_H
from nutslite.model import Model
from nutslite.recorder import TransitionRecord, record_transition

Integrator = Callable[[Model, np.ndarray, np.ndarray, float, np.ndarray, int], tuple]


class Recorder(Protocol):
    """A function that runs and records one NUTS transition, like ``nl.record_transition``."""

    def __call__(
        self,
        model: Model,
        q: np.ndarray,
        step_size: float,
        inv_mass: np.ndarray | None = ...,
        seed: int | np.random.Generator = ...,
        max_treedepth: int = ...,
    ) -> TransitionRecord: ...


# ----------------------------------------------------------------------------------------------
# Integrator-level invariants
# ----------------------------------------------------------------------------------------------


@jit
def _leapfrog_steps(logp_grad, step_size, metric, q, p, n_steps):
    z = np.empty((4, q.shape[0]))  # a point: rows Q, P, V, GRAD (nutslite.engine.integrators)
    z[Q] = q
    z[P] = p
    logp_grad(z[Q], z[GRAD])
    unread = np.zeros(q.shape[0])  # the momentum sum the step extends (with sign 0)
    for _ in range(n_steps):  # plain steps, in place
        _leapfrog_step(logp_grad, metric, step_size, z, z, MomentumSum(unread, unread, 0.0, z[V]),
                       False, False, z)
    return z[Q].copy(), z[P].copy()


def leapfrog(
    model: Model,
    q: np.ndarray,
    p: np.ndarray,
    step_size: float,
    inv_mass: np.ndarray | None = None,
    n_steps: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_steps`` steps of nutslite's compiled leapfrog
    (``nutslite.engine.integrators.leapfrog``) from ``(q, p)``; returns new arrays ``(q', p')``.
    The default integrator of the checks below."""
    q = np.array(q, dtype=np.float64)
    p = np.array(p, dtype=np.float64)
    metric = metric_from_inv_mass(inv_mass, model.dim)
    return _leapfrog_steps(model.logp_grad_function, float(step_size), metric, q, p, int(n_steps))


def _inv_mass_matrix(inv_mass: np.ndarray | None, dim: int) -> np.ndarray:
    if inv_mass is None:
        return np.eye(dim)
    arr = np.asarray(inv_mass, dtype=np.float64)
    return np.diag(arr) if arr.ndim == 1 else arr


def hamiltonian(
    model: Model, q: np.ndarray, p: np.ndarray, inv_mass: np.ndarray | None = None
) -> float:
    """``H(q, p) = -log p(q) + p^T M^{-1} p / 2`` (NaN counts as ``+inf``)."""
    minv = _inv_mass_matrix(inv_mass, model.dim)
    h = -model.logp(q) + 0.5 * float(p @ minv @ p)
    return math.inf if math.isnan(h) else h


def check_gradient(
    model: Model,
    q: np.ndarray,
    *,
    rel_step: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> float:
    r"""Compare ``model.logp_grad`` with central finite differences at ``q``.

    ``g_i ~ (log p(q + h_i e_i) - log p(q - h_i e_i)) / (2 h_i)`` with ``h_i = rel_step
    max(1, |q_i|)``; the truncation error is ``O(h^2)`` and the rounding error ``O(eps_mach
    |log p| / h)``, so each coordinate must satisfy ``|g_i - fd_i| <= atol + rtol |fd_i|`` where the
    defaults leave room for both. Returns the largest ``|g_i - fd_i| / (atol + rtol |fd_i|)``.
    """
    q = np.asarray(q, dtype=np.float64)
    grad = model.grad(q)
    fd = np.empty(model.dim)
    for i in range(model.dim):
        h = rel_step * max(1.0, abs(q[i]))
        up, down = q.copy(), q.copy()
        up[i] += h
        down[i] -= h
        fd[i] = (model.logp(up) - model.logp(down)) / (up[i] - down[i])
    ratio = np.abs(grad - fd) / (atol + rtol * np.abs(fd))
    worst = int(np.argmax(ratio))
    if not ratio[worst] <= 1.0:
        raise AssertionError(
            f"gradient of {model.name}: coordinate {worst} is {grad[worst]!r} but central finite "
            f"differences give {fd[worst]!r} (|error| / (atol + rtol |fd|) = {ratio[worst]:.3g}, "
            f"limit 1)"
        )
    return float(ratio[worst])


# Deliberately repeated: the three integrator checks open with the integrator's own arguments
# (model, q, p, step_size, inv_mass; see Integrator), spelled out in each for its help and hints.
def check_reversibility(
    model: Model,
    q: np.ndarray,
    p: np.ndarray,
    step_size: float,
    inv_mass: np.ndarray | None = None,
    *,
    n_steps: int = 10,
    integrator: Integrator = leapfrog,
    tol: float = 1e-8,
) -> float:
    r"""Time reversibility: ``n_steps`` forward, flip the momentum, ``n_steps`` forward again, flip
    it back, and the state must return to ``(q, p)``.

    The leapfrog map ``Phi`` satisfies ``R Phi R = Phi^{-1}`` (Leimkuhler & Reich 2004, sec. 4.3.3),
    so only rounding separates the round trip from the start. The statistic is the largest
    coordinate error relative to ``1 + max(|q|, |p|)`` over the trajectory's start and its turning
    point; it must not exceed ``tol``. An integrator with unequal half steps (symplectic Euler)
    fails with an ``O(eps)`` error.
    """
    q0 = np.array(q, dtype=np.float64)
    p0 = np.array(p, dtype=np.float64)
    q1, p1 = integrator(model, q0.copy(), p0.copy(), step_size, inv_mass, n_steps)
    q2, p2 = integrator(model, np.array(q1), -np.array(p1), step_size, inv_mass, n_steps)
    scale = 1.0 + max(np.abs(q0).max(), np.abs(p0).max(), np.abs(q1).max(), np.abs(p1).max())
    error = max(np.abs(q2 - q0).max(), np.abs(-p2 - p0).max()) / scale
    if not error <= tol:
        raise AssertionError(
            f"reversibility on {model.name}: after {n_steps} steps of {step_size!r} forward and "
            f"back the state is off by {error:.3g} (relative to 1 + max |z| = {scale:.3g}; limit "
            f"{tol:g})"
        )
    return float(error)


# Deliberately repeated: the three integrator checks open with the integrator's own arguments
# (model, q, p, step_size, inv_mass; see Integrator), spelled out in each for its help and hints.
def check_volume_preservation(
    model: Model,
    q: np.ndarray,
    p: np.ndarray,
    step_size: float,
    inv_mass: np.ndarray | None = None,
    *,
    n_steps: int = 1,
    integrator: Integrator = leapfrog,
    rel_step: float = 1e-5,
    tol: float = 1e-5,
) -> float:
    r"""Volume preservation: the Jacobian ``D Phi`` of ``n_steps`` integrator steps, by central
    finite differences in each of the ``2 dim`` phase-space coordinates, has ``|det| = 1``.

    Leapfrog is a composition of shears ``(q, p) -> (q, p + a grad log p(q))`` and
    ``(q, p) -> (q + b M^{-1} p, p)``, each with unit Jacobian determinant, hence symplectic
    (Leimkuhler & Reich 2004, sec. 4.1); Hamiltonian Monte Carlo needs this for its acceptance
    weights to be ``exp(-H)`` without a Jacobian factor (Betancourt 2017, sec. 5.1). The statistic
    is ``|log |det D Phi||``, whose finite-difference error is ``O(dim rel_step^2)``; it must not
    exceed ``tol``. A damped integrator (``p <- c p``) gives ``dim |log c|``.
    """
    z0 = np.concatenate([np.asarray(q, np.float64), np.asarray(p, np.float64)])
    d = model.dim

    def flow(z: np.ndarray) -> np.ndarray:
        qz, pz = integrator(model, z[:d].copy(), z[d:].copy(), step_size, inv_mass, n_steps)
        return np.concatenate([np.asarray(qz), np.asarray(pz)])

    jac = np.empty((2 * d, 2 * d))
    for j in range(2 * d):
        h = rel_step * max(1.0, abs(z0[j]))
        up, down = z0.copy(), z0.copy()
        up[j] += h
        down[j] -= h
        jac[:, j] = (flow(up) - flow(down)) / (up[j] - down[j])
    sign, logdet = np.linalg.slogdet(jac)
    stat = abs(logdet) if sign != 0 else math.inf
    if not stat <= tol:
        raise AssertionError(
            f"volume preservation on {model.name}: |log |det D Phi|| = {stat:.3g} after {n_steps} "
            f"step(s) of {step_size!r} (limit {tol:g})"
        )
    return float(stat)


def _energy_errors(model, q, p, step_size, inv_mass, n_steps, integrator) -> float:
    """``max_k |H(z_k) - H(z_0)|`` over the ``n_steps`` states of one trajectory."""
    h0 = hamiltonian(model, q, p, inv_mass)
    worst = 0.0
    qk, pk = np.array(q, dtype=np.float64), np.array(p, dtype=np.float64)
    for _ in range(n_steps):
        qk, pk = integrator(model, qk, pk, step_size, inv_mass, 1)
        qk, pk = np.array(qk), np.array(pk)
        worst = max(worst, abs(hamiltonian(model, qk, pk, inv_mass) - h0))
    return worst


# Deliberately repeated: the three integrator checks open with the integrator's own arguments
# (model, q, p, step_size, inv_mass; see Integrator), spelled out in each for its help and hints.
def check_energy_error_order(
    model: Model,
    q: np.ndarray,
    p: np.ndarray,
    step_size: float,
    inv_mass: np.ndarray | None = None,
    *,
    n_steps: int = 8,
    n_halvings: int = 4,
    order: float = 2.0,
    slack: float = 0.4,
    integrator: Integrator = leapfrog,
) -> float:
    r"""Second order: the energy error over a trajectory of fixed length shrinks as ``eps^2``.

    For a method of order ``r`` the global error over a fixed time ``T`` is ``O(eps^r)``, and so is
    the energy error ``max_{t <= T} |H(z_t) - H(z_0)|`` (Leimkuhler & Reich 2004, sec. 2.2 and 4.3;
    for symplectic methods it stays bounded, sec. 5). With ``T = n_steps step_size`` the check
    integrates with ``eps_k = step_size 2^-k``, ``k = 0..n_halvings``, and estimates the order
    ``log2(err_k / err_{k+1})`` from the two finest levels whose errors are well above rounding
    (``1e-11 max(1, |H0|)``, a thousand times the rounding error of ``H``), which is where the
    asymptotic regime is most nearly reached. The order
    must lie within ``order +- slack``. Symplectic Euler (unequal half steps) gives about 1; a full
    opening momentum step (kicks of ``1.5 eps`` per step, an inconsistent method) or a mass matrix
    applied on the wrong side (a flow that does not conserve ``H``) gives about 0. Returns the
    estimated order.
    """
    q = np.asarray(q, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    floor = 1e-11 * max(1.0, abs(hamiltonian(model, q, p, inv_mass)))
    errors = [
        _energy_errors(model, q, p, step_size / 2**k, inv_mass, n_steps * 2**k, integrator)
        for k in range(n_halvings + 1)
    ]
    usable = [k for k in range(n_halvings) if errors[k + 1] > floor and np.isfinite(errors[k])]
    if not usable:
        raise AssertionError(
            f"energy error order on {model.name}: the energy errors {errors} are at rounding level "
            f"or not finite for every step size; choose a larger step_size"
        )
    k = usable[-1]
    estimated = math.log2(errors[k] / errors[k + 1])
    if not abs(estimated - order) <= slack:
        raise AssertionError(
            f"energy error order on {model.name}: max |H - H0| is {errors[k]:.3g} at step size "
            f"{step_size / 2**k:.3g} and {errors[k + 1]:.3g} at half of it, an order of "
            f"{estimated:.2f} (expected {order:g} +- {slack:g}; errors by halving: "
            f"{', '.join(f'{e:.2g}' for e in errors)})"
        )
    return estimated


# ----------------------------------------------------------------------------------------------
# Transition-level invariants
# ----------------------------------------------------------------------------------------------


def _top_level_segments(rec: TransitionRecord) -> list[tuple[int, int, int]]:
    """``(first, last, direction)`` of each accepted top-level subtree, in the order built."""
    rows = rec.subtrees[rec.subtrees[:, 3] == 1]
    left = right = 0
    segments = []
    for lo, hi, depth, _, _ in rows:
        if depth != len(segments) + 1:
            raise AssertionError(f"top-level subtree rows are out of order: {rows.tolist()}")
        if hi > right and lo == left:
            segments.append((right + 1, hi, 1))
        elif lo < left and hi == right:
            segments.append((lo, left - 1, -1))
        else:
            raise AssertionError(
                f"top-level trajectory [{lo}, {hi}] does not extend [{left}, {right}] on one side"
            )
        if hi - lo + 1 != 2 ** len(segments):
            raise AssertionError(f"top-level trajectory [{lo}, {hi}] after {depth} doublings")
        left, right = lo, hi
    if (left, right, len(segments)) != (rec.left, rec.right, rec.depth):
        raise AssertionError(
            f"top-level rows end at [{left}, {right}] depth {len(segments)}, but the record says "
            f"[{rec.left}, {rec.right}] depth {rec.depth}"
        )
    return segments


def _log_sum_exp(x: np.ndarray) -> float:
    top = np.max(x)
    if top == -math.inf:
        return -math.inf
    return float(top + np.log(np.sum(np.exp(x - top))))


def selection_probabilities(rec: TransitionRecord) -> np.ndarray:
    r"""The exact probability that the transition selects each recorded state, given the trajectory.

    Conditioning on the trajectory is legitimate because NUTS decides where to go and when to stop
    from the U-turn criterion and divergences alone, never from which state is currently proposed;
    the selection draws are uniform numbers independent of those decisions (they share one stream
    with the direction draws, but each draw is a fresh uniform).

    Derivation (Betancourt 2017, appendix A.3.2; Stan's ``base_nuts.hpp``). State ``i`` has weight
    ``w_i = exp(H0 - H_i)``. The accepted trajectory is the initial state ``T_0 = {0}`` followed by
    the top-level subtrees ``T_1, ..., T_D`` of ``1, 1, 2, ..., 2^(D-1)`` states, in the order they
    were built (a rejected last subtree contributes nothing). With ``W_k = sum_{i in T_k} w_i``:

    * inside a subtree, sampling is *uniform* multinomial: when two halves merge, the second's
      proposal replaces the first's with probability ``W_final / (W_init + W_final)``, so by
      induction the subtree's proposal is state ``i`` with probability ``w_i / W_k``;
    * at the top level, sampling is *biased progressive*: after doubling ``k`` the sample becomes
      ``T_k``'s proposal with probability ``a_k = min(1, W_k / W_{<k})``, where
      ``W_{<k} = sum_{j<k} W_j``.

    Hence ``P(sample in T_k) = a_k prod_{j > k} (1 - a_j)`` (with ``a_0 = 1``), and
    ``P(i) = P(sample in T_k) w_i / W_k`` for ``i in T_k``. Returns an array aligned with
    ``rec.index`` (zeros outside ``[rec.left, rec.right]``).
    """
    segments = _top_level_segments(rec)
    offset = int(rec.index[0])
    logw = np.asarray(rec.log_weights, dtype=np.float64)
    groups = [(0, 0)] + [(a, b) for a, b, _ in segments]
    log_totals = [_log_sum_exp(logw[a - offset : b - offset + 1]) for a, b in groups]
    accept = [1.0]
    log_before = log_totals[0]
    for lw in log_totals[1:]:
        accept.append(min(1.0, math.exp(lw - log_before)) if lw > -math.inf else 0.0)
        log_before = float(np.logaddexp(log_before, lw))
    probs = np.zeros(len(rec.index))
    keep = 1.0  # prod_{j > k} (1 - a_j), built from the last subtree backwards
    for (a, b), lw, acc in reversed(list(zip(groups, log_totals, accept, strict=True))):
        sl = slice(a - offset, b - offset + 1)
        if lw > -math.inf:
            probs[sl] = keep * acc * np.exp(logw[sl] - lw)
        keep *= 1.0 - acc
    return probs


def check_acceptance_statistic(rec: TransitionRecord, rtol: float = 1e-10) -> float:
    r"""The acceptance statistic is ``(1/n) sum_i min(1, exp(H0 - H_i))`` over *every* leapfrog
    state of the transition, rejected subtrees included (Stan's ``base_nuts.hpp``: "even over
    subtrees that may have been rejected"), with ``n`` the number of leapfrog steps.

    Step-size adaptation drives this statistic to ``target_accept``, so leaving rejected subtrees
    out biases it upwards and the adapted step size up with it. Returns the recomputed statistic.
    """
    visited = rec.index != 0
    n = int(visited.sum())
    if rec.n_steps != n:
        raise AssertionError(f"n_steps is {rec.n_steps} but {n} leapfrog states were recorded")
    expected = float(np.mean(np.minimum(1.0, np.exp(rec.log_weights[visited])))) if n else math.nan
    if not abs(rec.accept_stat - expected) <= rtol * max(1.0, expected):
        n_rejected = int((~rec.accepted).sum())
        raise AssertionError(
            f"acceptance statistic is {rec.accept_stat!r}, but the mean of min(1, exp(H0 - H)) "
            f"over all {n} leapfrog states ({n_rejected} of them in a rejected subtree) is "
            f"{expected!r}"
        )
    return expected


def _turning(rho: np.ndarray, v_a: np.ndarray, v_b: np.ndarray, rtol: float):
    """Brute-force criterion on one segment: ``(turning, ambiguous)``. A dot product within
    ``rtol |v| |rho|`` of zero is ambiguous: rounding may decide it either way."""
    dot_a, dot_b = float(v_a @ rho), float(v_b @ rho)
    norm = float(np.linalg.norm(rho))
    near_zero = min(
        abs(dot_a) / (np.linalg.norm(v_a) * norm + 1e-300),
        abs(dot_b) / (np.linalg.norm(v_b) * norm + 1e-300),
    )
    return not (dot_a > 0.0 and dot_b > 0.0), near_zero <= rtol


class _UTurnReplay:
    """Stan's tree building replayed over a recorded trajectory (see check_uturn_decisions)."""

    def __init__(self, rec: TransitionRecord, max_delta_h: float, rtol: float) -> None:
        self.rec = rec
        self.offset = int(rec.index[0])
        self.velocity = rec.momenta @ np.asarray(rec.inv_mass).T
        self.max_delta_h = max_delta_h
        self.rtol = rtol
        self.cursor = 0  # next recorded check row
        self.lo = self.hi = 0  # positions visited so far

    def state_exists(self, s: int) -> bool:
        return 0 <= s - self.offset < len(self.rec.index)

    def merge(self, a: int, m: int, b: int, depth: int, top: int) -> bool:
        """The three checks of a merge of ``[a, m]`` and ``[m + 1, b]``; True when turning."""
        expected = sorted([(a, b), (a, m + 1), (m, b)])
        rows = self.rec.checks[self.cursor : self.cursor + 3]
        where = f"merge of [{a}, {m}] and [{m + 1}, {b}] (depth {depth}, top level {top})"
        if len(rows) < 3:
            raise AssertionError(f"U-turn checks: the {where} was not checked (checks end early)")
        got = sorted((int(r[0]), int(r[1])) for r in rows)
        if got != expected or set(rows[:, 2]) != {depth} or set(rows[:, 3]) != {top}:
            raise AssertionError(
                f"U-turn checks: the {where} should check segments {expected} at depth {depth}, "
                f"top level {top}; recorded rows {self.cursor}..{self.cursor + 2} are "
                f"{rows.tolist()}"
            )
        self.cursor += 3
        turning = False
        for lo, hi, _, _, recorded in rows:
            i, j = lo - self.offset, hi - self.offset
            rho = self.rec.momenta[i : j + 1].sum(axis=0)
            brute, ambiguous = _turning(rho, self.velocity[i], self.velocity[j], self.rtol)
            if brute != bool(recorded) and not ambiguous:
                raise AssertionError(
                    f"U-turn decision on [{lo}, {hi}] in the {where}: recorded turning="
                    f"{bool(recorded)}, but the criterion on the recorded momenta says {brute} "
                    f"(p#_lo . rho = {self.velocity[i] @ rho:.6g}, p#_hi . rho = "
                    f"{self.velocity[j] @ rho:.6g})"
                )
            turning = turning or bool(recorded)
        return turning

    def build(self, edge: int, direction: int, depth: int) -> bool:
        """Replay ``build_tree``: True when the subtree is valid."""
        if depth == 0:
            s = edge + direction
            if not self.state_exists(s):
                raise AssertionError(f"U-turn replay: state {s} should have been built")
            self.lo, self.hi = min(self.lo, s), max(self.hi, s)
            delta = self.rec.energies[s - self.offset] - self.rec.energy0
            return bool(delta <= self.max_delta_h)  # NaN or inf energy: divergent
        half = 1 << (depth - 1)
        if not self.build(edge, direction, depth - 1):
            return False
        if not self.build(edge + direction * half, direction, depth - 1):
            return False
        first, last = edge + direction, edge + direction * 2 * half
        lo, hi = min(first, last), max(first, last)
        return not self.merge(lo, lo + half - 1, hi, depth, 0)


def check_uturn_decisions(
    rec: TransitionRecord,
    max_treedepth: int | None = None,
    max_delta_h: float = MAX_DELTA_H,
    rtol: float = 1e-9,
) -> int:
    r"""The U-turn decisions of one recorded transition, against a brute-force re-evaluation.

    **The criterion** (Betancourt 2017, appendix A.4.2; Stan's ``compute_criterion``): a segment of
    consecutive states ``[a, b]`` has turned unless ``p#_a . rho > 0`` and ``p#_b . rho > 0``, where
    ``rho = sum_{s=a}^{b} p_s`` is recomputed here by summing the recorded momenta directly and
    ``p# = M^{-1} p`` from the recorded ``M^{-1}``. Every recorded check row ``(lo, hi,
    merge_depth, top_level, turning)`` must agree, except where a dot product lies within ``rtol``
    (relative) of zero and rounding may go either way.

    **The set of checks.** The recorded top-level subtrees give the direction of every doubling
    (and a visited state outside ``[left, right]`` the direction of a rejected last one). From
    them the check replays Stan's recursion (Hoffman & Gelman 2014, Alg. 3; stan-dev/stan#2800): a
    subtree of depth ``d`` builds its two halves in order, stops at the first invalid one (a
    divergence, ``H - H0 > max_delta_h`` or NaN, or a turned half), and when two adjacent segments
    ``[a, m]`` and ``[m + 1, b]`` merge (inside a subtree, or the new subtree with the old
    trajectory at the top level) it checks exactly ``[a, b]``, ``[a, m + 1]`` and ``[m, b]``. The
    recorded checks must be exactly these, merge by merge in the order of the recursion (the three
    of one merge in any order), the trajectory must stop where the replay stops, and the states
    visited must be exactly those the replay builds. With ``max_treedepth`` given, a trajectory
    that neither turned nor diverged must have reached it. Returns the number of checks verified.
    """
    segments = _top_level_segments(rec)
    directions = [d for _, _, d in segments]
    if rec.index[0] < rec.left:
        directions.append(-1)
    elif rec.index[-1] > rec.right:
        directions.append(1)
    replay = _UTurnReplay(rec, max_delta_h, rtol)
    left = right = 0
    stopped = False
    for depth, direction in enumerate(directions):
        edge = right if direction > 0 else left
        if not replay.build(edge, direction, depth):
            if depth != len(segments):
                way = "forward" if direction > 0 else "backward"
                raise AssertionError(
                    f"U-turn replay: subtree {depth + 1} ({way}, depth {depth}) is invalid, yet "
                    f"the transition kept it"
                )
            stopped = True
            break
        if depth == len(segments):
            raise AssertionError("U-turn replay: the last subtree is valid, yet it was rejected")
        if direction > 0:
            right, m = edge + (1 << depth), edge
        else:
            left, m = edge - (1 << depth), edge - 1
        if replay.merge(left, m, right, depth + 1, 1):
            stopped = True
            if depth + 1 != len(directions):
                raise AssertionError(
                    f"U-turn replay: the trajectory [{left}, {right}] turned at depth {depth + 1}, "
                    f"yet the transition went on to depth {len(directions)}"
                )
    if replay.cursor != len(rec.checks):
        raise AssertionError(
            f"U-turn checks: {len(rec.checks) - replay.cursor} recorded check(s) beyond those Stan "
            f"makes, from row {replay.cursor}: {rec.checks[replay.cursor :].tolist()}"
        )
    if (replay.lo, replay.hi) != (int(rec.index[0]), int(rec.index[-1])):
        raise AssertionError(
            f"U-turn replay visits [{replay.lo}, {replay.hi}], the transition visited "
            f"[{rec.index[0]}, {rec.index[-1]}]"
        )
    if not stopped and max_treedepth is not None and rec.depth != max_treedepth:
        raise AssertionError(
            f"the transition stopped at depth {rec.depth} without a U-turn or divergence "
            f"(max_treedepth {max_treedepth})"
        )
    return replay.cursor


def check_momentum_distribution(records: Sequence[TransitionRecord], alpha: float = 1e-3) -> float:
    r"""The fresh momenta are ``N(0, M)``: ``p0^T M^{-1} p0 ~ chi^2_dim``.

    A Kolmogorov-Smirnov test of ``p0^T M^{-1} p0`` over the records (independent momentum draws)
    against ``chi^2_dim``, rejected when its p-value is below ``alpha`` (the false-alarm rate).
    Drawing ``p`` from ``N(0, M^{-1})`` instead (the mass matrix on the wrong side) fails unless
    ``M = I``. Returns the p-value.
    """
    values = []
    for rec in records:
        k0 = int(np.searchsorted(rec.index, 0))
        p0 = rec.momenta[k0]
        values.append(float(p0 @ np.asarray(rec.inv_mass) @ p0))
    dim = records[0].momenta.shape[1]
    result = stats.kstest(values, stats.chi2(dim).cdf)
    if not result.pvalue >= alpha:
        raise AssertionError(
            f"momentum distribution: p0^T M^-1 p0 over {len(values)} transitions is not chi2_{dim} "
            f"(KS statistic {result.statistic:.4f}, p-value {result.pvalue:.3g} < {alpha:g}; mean "
            f"{np.mean(values):.3f}, expected {dim})"
        )
    return float(result.pvalue)


MIN_EXPECTED = 5.0  # smallest expected count of a chi-square cell


def check_selection_probabilities(
    records: Sequence[TransitionRecord], alpha: float = 1e-3, min_group: int = 20
) -> float:
    r"""Selection frequencies against the exact selection distribution, by a chi-square test.

    Transitions from one start are grouped by the shape of their trajectory: accepted span
    ``[left, right]``, visited span (hence the rejected subtree) and depth. Within a group the
    cells are trajectory positions, with observed count ``O`` (how often that position was
    selected) and expected count ``E = sum_t P_t(position)`` over the group's transitions, where
    ``P_t`` is the exact distribution of :func:`selection_probabilities` for transition ``t``
    (momenta differ between transitions, so ``P_t`` does too). Cells with ``E < 5`` are pooled;
    groups of fewer than ``min_group`` transitions are left out (a choice that depends on the
    trajectories only, not on the selections, so it does not bias the test).

    Pearson's ``X^2 = sum (O - E)^2 / E`` is referred to ``chi^2`` with ``sum_groups (cells - 1)``
    degrees of freedom. Given the trajectories, the selections are independent draws from the
    ``P_t``; when the ``P_t`` of a group differ, each count's variance ``sum_t P_t (1 - P_t)`` is
    at most the multinomial one, so the test is conservative: its false-alarm rate is at most about
    ``alpha``. Returns the p-value; raises when it is below ``alpha``.

    Always selecting the last state, or uniform instead of biased progressive sampling at the top
    level (``P(sample in T_k) = W_k / W`` instead of ``min(1, W_k / W_{<k}) ...``), moves the
    frequencies towards later (resp. earlier) subtrees and fails.
    """
    observed: dict[tuple, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    expected: dict[tuple, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    sizes: dict[tuple, int] = defaultdict(int)
    for rec in records:
        key = (rec.left, rec.right, int(rec.index[0]), int(rec.index[-1]), rec.depth)
        probs = selection_probabilities(rec)
        if not np.any(rec.index == rec.selected) or probs[rec.index == rec.selected][0] == 0.0:
            raise AssertionError(
                f"selection: state {rec.selected} was selected, but it has probability 0 "
                f"(accepted trajectory [{rec.left}, {rec.right}])"
            )
        sizes[key] += 1
        observed[key][rec.selected] += 1.0
        for pos, pr in zip(rec.index.tolist(), probs.tolist(), strict=True):
            if pr > 0.0:
                expected[key][pos] += pr
    stat, dof, worst = 0.0, 0, (0.0, None)
    for key, n in sizes.items():
        if n < min_group:
            continue
        cells_o, cells_e = [], []
        rest_o = rest_e = 0.0
        for pos, e in expected[key].items():
            if e >= MIN_EXPECTED:
                cells_o.append(observed[key][pos])
                cells_e.append(e)
            else:
                rest_o += observed[key][pos]
                rest_e += e
        if rest_e > 0.0:
            if rest_e >= MIN_EXPECTED or not cells_e:
                cells_o.append(rest_o)
                cells_e.append(rest_e)
            else:
                k = int(np.argmin(cells_e))
                cells_o[k] += rest_o
                cells_e[k] += rest_e
        if len(cells_e) < 2:
            continue
        o, e = np.array(cells_o), np.array(cells_e)
        contrib = (o - e) ** 2 / e
        stat += float(contrib.sum())
        dof += len(e) - 1
        k = int(np.argmax(contrib))
        if contrib[k] > worst[0]:
            worst = (
                float(contrib[k]),
                f"trajectory {key[:2]}: observed {o[k]:g}, expected {e[k]:.1f}",
            )
    if dof == 0:
        raise AssertionError(
            f"selection: no trajectory shape occurred {min_group} times in {len(records)} "
            f"transitions; record more transitions or use a shorter trajectory"
        )
    pvalue = float(stats.chi2.sf(stat, dof))
    if not pvalue >= alpha:
        raise AssertionError(
            f"selection frequencies differ from the exact multinomial / biased progressive "
            f"selection probabilities: chi2 = {stat:.1f} on {dof} dof, p-value {pvalue:.3g} < "
            f"{alpha:g} (largest cell: {worst[1]})"
        )
    return pvalue


def record_transitions(
    model: Model,
    q: np.ndarray,
    step_size: float,
    inv_mass: np.ndarray | None = None,
    *,
    n_transitions: int = 1000,
    seed: int = 0,
    max_treedepth: int = 10,
    record: Recorder = record_transition,
) -> list[TransitionRecord]:
    """``n_transitions`` independent transitions from the same start ``q``, drawn with one
    ``numpy.random.Generator`` seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    return [
        record(model, q, step_size, inv_mass=inv_mass, seed=rng, max_treedepth=max_treedepth)
        for _ in range(n_transitions)
    ]


def check_transitions(
    model: Model,
    q: np.ndarray,
    step_size: float,
    inv_mass: np.ndarray | None = None,
    *,
    n_transitions: int = 2000,
    seed: int = 0,
    max_treedepth: int = 10,
    alpha: float = 1e-3,
    record: Recorder = record_transition,
) -> dict[str, Any]:
    """Record ``n_transitions`` transitions from ``q`` and run every transition invariant.

    The deterministic checks (:func:`check_uturn_decisions`, :func:`check_acceptance_statistic`)
    run on every transition; the two statistical ones (:func:`check_momentum_distribution`,
    :func:`check_selection_probabilities`) share ``alpha`` by Bonferroni, ``alpha / 2`` each, so a
    correct sampler fails with probability at most about ``alpha``. Returns the statistics.
    """
    records = record_transitions(
        model, q, step_size, inv_mass, n_transitions=n_transitions, seed=seed,
        max_treedepth=max_treedepth, record=record,
    )
    n_checks = 0
    for rec in records:
        n_checks += check_uturn_decisions(rec, max_treedepth=max_treedepth)
        check_acceptance_statistic(rec)
    return {
        "n_uturn_checks": n_checks,
        "momentum_pvalue": check_momentum_distribution(records, alpha / 2),
        "selection_pvalue": check_selection_probabilities(records, alpha / 2),
    }
