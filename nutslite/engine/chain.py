r"""The compiled chain loop: NUTS transitions with warmup (Stan's ``adapt_diag_e_nuts.hpp``).

Each iteration ``t``:

1. draw the step size (``eps (1 + j (2u - 1))`` when jitter ``j > 0``; Stan's default is 0);
2. run one NUTS transition (``nutslite.engine.tree.nuts_transition``) and record the draw and
   its stats;
3. during warmup, let the adaptation update the step size and the metric
   (``nutslite.engine.adaptation.warmup.warmup_step``: dual averaging, the window schedule, and
   ``exp(x_bar)`` after the last warmup iteration).

``run_chain`` runs iterations ``[start, stop)`` and returns the state to resume from, so the
Python driver can call it in chunks (for progress and Ctrl-C) without changing a single draw.
"""

from __future__ import annotations

from collections import namedtuple

from nutslite._numba import jit
from nutslite.engine.adaptation.status import WARMUP_OK
from nutslite.engine.adaptation.step_size import find_initial_step_size
from nutslite.engine.adaptation.warmup import warmup_step
from nutslite.engine.integrators import Q
from nutslite.engine.normal import uniform
from nutslite.engine.stats import (
    ACCEPT,
    DEPTH,
    DIVERGING,
    ENERGY,
    ENERGY_ERROR,
    INDEX,
    LP,
    MAX_DEPTH_HIT,
    N_STEPS,
    STEP,
)
from nutslite.engine.tree import DIVERGENT, nuts_transition, place_start, take_point

ChainState = namedtuple("ChainState", ["q", "grad", "logp", "step_size", "metric"])
ChainState.__doc__ = """Where a chain stands: position, gradient, log density, step size and
metric (``nutslite.engine.metric.Metric``; the arrays are updated in place)."""

NutsSettings = namedtuple(
    "NutsSettings", ["max_depth", "max_delta_h", "target_accept", "jitter", "num_warmup"]
)

# ``run_chain``'s ``heuristic``: none, Stan's initial step size, or its cautious variant
NO_HEURISTIC, STAN_HEURISTIC, CAUTIOUS_HEURISTIC = 0, 1, 2


@jit(no_cfunc_wrapper=True)  # called from Python only (``nutslite._numba.jit``)
def run_chain(
    logp_grad, rng, state, da, adapt, settings, schedule, start, stop,
    traj, recorder, scratch, draws, stats, divergences, divergence_iters, divergence_count,
    heuristic,
):
    """Run iterations ``[start, stop)`` of one chain, after Stan's initial step-size heuristic
    from ``state.step_size`` if ``heuristic`` asks for it (``STAN_HEURISTIC``, or
    ``CAUTIOUS_HEURISTIC``: ``find_initial_step_size``'s ``cautious``). ``nl.sample`` runs the
    heuristic in a call of no iteration (``start == stop``) as it initialises each chain: the
    heuristic is then part of the loop's compiled code, and the engine has one entry point
    from Python and one cache entry (``benchmarks/README.md``, cold compile, round 9).

    ``stats`` ``(n_iter, len(STAT_NAMES))`` (the columns of ``nutslite.engine.stats``)
    receives every iteration, warmup included, and ``draws`` every iteration (``(n_iter, dim)``)
    or only those after warmup (``(n_iter - num_warmup, dim)``, row ``t - num_warmup``).
    ``divergences`` ``(n_iter, 2, dim)`` receives, for each divergent transition in order, its
    starting point and the point where the energy blew up; ``divergence_iters[k]`` is the
    iteration of the k-th and ``divergence_count[0]`` counts them.
    ``schedule`` is ``(collect, update, restart, retune, max_depth)``, per warmup iteration;
    ``max_depth[t]`` caps warmup transition ``t``'s tree depth below ``settings.max_depth``.
    Returns ``(logp, step_size, da, status)``: the chain's log density and step size
    (``state``'s arrays hold its position, gradient and metric, and ``adapt``'s the estimator),
    the dual-averaging state and one of ``nutslite.engine.adaptation.status``; a failure stops
    the loop at its iteration (a failure of the heuristic, before the first).

    The arguments stay flat: bundled into ``ChainWork(traj, recorder, scratch)`` and
    ``ChainOutput(draws, ...)`` tuples they made the compiled loop 7% larger (Numba copies and
    reference-counts a tuple and its unpacked members separately), for a tidier call only.
    """
    q, grad, metric = state.q, state.grad, state.metric
    logp, step_size = state.logp, state.step_size
    mask = traj.logp.shape[0] - 1  # trajectory position s is stored in row s & mask
    first_kept = stats.shape[0] - draws.shape[0]  # 0, or num_warmup if warmup draws are not kept
    status = WARMUP_OK
    if heuristic != NO_HEURISTIC:
        step_size, status = find_initial_step_size(
            logp_grad, rng, metric, step_size, q, logp, grad, scratch,
            heuristic == CAUTIOUS_HEURISTIC,
        )
        if status != WARMUP_OK:
            stop = start
    # the chain's point stays in the trajectory's slots: each transition starts from the slot
    # of the last one's sample, and ``q`` and ``grad`` are written only where they are read
    slot = place_start(traj, q, grad)
    for t in range(start, stop):
        eps = step_size
        if settings.jitter > 0.0:
            eps *= 1.0 + settings.jitter * (2.0 * uniform(rng) - 1.0)
        max_depth = settings.max_depth
        if t < settings.num_warmup:  # the warmup schedule may cap it (adaptation.windows)
            max_depth = min(max_depth, schedule[4][t])
        info = nuts_transition(
            logp_grad, rng, traj, metric, eps, slot, logp, max_depth, settings.max_delta_h,
            recorder,
        )
        if info.diverging:
            k = divergence_count[0]
            for i in range(q.shape[0]):  # the start's slot is held until the next transition
                divergences[k, 0, i] = traj.points[slot, Q, i]
                divergences[k, 1, i] = traj.points[DIVERGENT, Q, i]
            divergence_iters[k] = t
            divergence_count[0] = k + 1
        slot = info.sample_slot
        r = info.proposal & mask
        if t >= first_kept:
            for i in range(q.shape[0]):
                draws[t - first_kept, i] = traj.points[slot, Q, i]
        logp = traj.logp[r]
        stats[t, LP] = logp
        stats[t, ACCEPT] = info.accept_stat
        stats[t, STEP] = eps
        stats[t, DEPTH] = info.depth
        stats[t, N_STEPS] = info.n_steps
        stats[t, DIVERGING] = info.diverging
        stats[t, ENERGY] = traj.energy[r]
        stats[t, ENERGY_ERROR] = traj.energy[r] - info.energy0
        stats[t, MAX_DEPTH_HIT] = info.depth >= max_depth
        stats[t, INDEX] = info.proposal

        if t < settings.num_warmup:
            take_point(traj, slot, q, grad)  # the adaptation reads the draw there
            step_size, da, status = warmup_step(
                logp_grad, rng, t, info.accept_stat, q, logp, grad, metric, da, adapt, settings,
                schedule, scratch,
            )
            if status != WARMUP_OK:
                break
    take_point(traj, slot, q, grad)  # where the next call resumes from
    # one return: Numba copies the returned tuples and releases every live array at each return.
    # Scalars only: the arrays are updated in place, and boxing them into new Python objects was a
    # quarter of the compiled wrapper (benchmarks/README.md, cold compile, round 13)
    return logp, step_size, da, status
