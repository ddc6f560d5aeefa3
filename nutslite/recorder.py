"""Record one NUTS transition in full, for readers and for invariant checks.

``record_transition`` runs the very same compiled ``nuts_transition`` that ``nl.sample`` runs,
with its recorder switched on, and returns every leapfrog state in trajectory order (position,
momentum, log density, energy, multinomial weight), the subtrees that were completed, every U-turn
check with its outcome, and the selected state::

    rec = nl.record_transition(nl.models.radon("noncentered"), q0, step_size=0.2, seed=3)
    rec.positions          # (n_states, dim), leftmost state first; rec.index[k] is its position
    rec.selected           # position of the state the transition returned
    rec.checks             # per criterion evaluated: lo, hi, merge_depth, top_level, turning
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nutslite.engine.integrators import GRAD, P, Q, V
from nutslite.engine.metric import Metric, as_matrix, metric_from_inv_mass
from nutslite.engine.tree import (
    CHECK,
    MAX_DELTA_H,
    SUBTREE,
    allocate_recorder,
    allocate_trajectory,
    nuts_transition,
    place_start,
)
from nutslite.model import Model


@dataclass(frozen=True)
class TransitionRecord:
    """Everything one NUTS transition did.

    ``index`` holds the signed trajectory position of each recorded state (0 = start); states are
    sorted by position. ``log_weights`` are ``H0 - H`` (the multinomial log weights, unnormalised).
    ``accepted`` marks the states of the final trajectory ``[left, right]``; the rest belong to a
    rejected (turning or divergent) last subtree. ``subtrees`` rows are
    ``(lo, hi, depth, top_level, valid)`` and ``checks`` rows ``(lo, hi, merge_depth, top_level,
    turning)``.
    """

    index: np.ndarray
    positions: np.ndarray
    momenta: np.ndarray
    velocities: np.ndarray
    gradients: np.ndarray
    logp: np.ndarray
    energies: np.ndarray
    log_weights: np.ndarray
    accepted: np.ndarray
    left: int
    right: int
    selected: int
    depth: int
    n_steps: int
    accept_stat: float
    diverging: bool
    divergent_position: int
    energy0: float
    subtrees: np.ndarray
    checks: np.ndarray
    step_size: float
    inv_mass: np.ndarray  # M^{-1} as a (dim, dim) matrix

    def state(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """``(q, p)`` of the state at a signed trajectory position."""
        k = int(np.searchsorted(self.index, position))
        if k >= len(self.index) or self.index[k] != position:
            raise KeyError(f"position {position} was not visited")
        return self.positions[k], self.momenta[k]


def record_transition(
    model: Model,
    q: np.ndarray,
    step_size: float,
    inv_mass: np.ndarray | Metric | None = None,
    seed: int | np.random.Generator = 0,
    max_treedepth: int = 10,
) -> TransitionRecord:
    """Run one NUTS transition from ``q`` with the recorder on.

    ``inv_mass`` is a diagonal ``(dim,)``, a matrix ``(dim, dim)`` or a ``Metric`` (default: the
    identity). ``seed`` may be a ``numpy.random.Generator``, whose stream the transition then
    advances (draw many transitions from the same start with one generator to study selection
    frequencies).
    """
    q = np.ascontiguousarray(q, dtype=np.float64)
    if q.shape != (model.dim,):
        raise ValueError(f"q must have shape ({model.dim},), got {q.shape}")
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
    if isinstance(inv_mass, Metric):
        metric = inv_mass
    else:
        metric = metric_from_inv_mass(inv_mass, model.dim)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    grad = np.empty(model.dim)
    logp = float(model.logp_grad(q, grad))
    traj = allocate_trajectory(model.dim, max_treedepth)
    recorder = allocate_recorder(max_treedepth, True, model.dim)
    info = nuts_transition(
        model.logp_grad_function, rng, traj, metric, float(step_size), place_start(traj, q, grad),
        logp, max_treedepth, MAX_DELTA_H, recorder,
    )
    positions = np.arange(info.lo, info.hi + 1)
    rows = positions & (traj.logp.shape[0] - 1)
    events = recorder.log[1 : 1 + recorder.log[0, 0]]
    left, right = int(info.left), int(info.right)
    return TransitionRecord(
        index=positions,
        positions=recorder.points[rows, Q].copy(),
        momenta=recorder.points[rows, P].copy(),
        velocities=recorder.points[rows, V].copy(),
        gradients=recorder.points[rows, GRAD].copy(),
        logp=traj.logp[rows].copy(),
        energies=traj.energy[rows].copy(),
        log_weights=info.energy0 - traj.energy[rows],
        accepted=(positions >= left) & (positions <= right),
        left=left,
        right=right,
        selected=int(info.proposal),
        depth=int(info.depth),
        n_steps=int(info.n_steps),
        accept_stat=float(info.accept_stat),
        diverging=bool(info.diverging),
        divergent_position=int(info.divergent_position),
        energy0=float(info.energy0),
        subtrees=events[events[:, 0] == SUBTREE, 1:],
        checks=events[events[:, 0] == CHECK, 1:],
        step_size=float(step_size),
        inv_mass=as_matrix(metric),
    )
