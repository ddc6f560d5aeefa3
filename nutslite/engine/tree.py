r"""One NUTS transition with Stan's semantics: multinomial sampling, the generalised U-turn
criterion with the extra cross-subtree checks, divergence detection and a maximum tree depth.

References: Hoffman & Gelman (2014), "The No-U-Turn Sampler", JMLR 15:1593, Alg. 3 (recursive
doubling); Betancourt (2017), "A Conceptual Introduction to Hamiltonian Monte Carlo", sec. 6 and
appendix A (multinomial sampling of trajectory states, biased progressive sampling at the top level,
the generalised criterion on momentum sums); Stan's ``base_nuts.hpp`` (v2.21+), whose transition
this module reproduces step for step and in the same order of random draws.

**The trajectory.** States are numbered by their signed position along the trajectory: 0 is the
initial state, 1, 2, ... lie forward in time and -1, -2, ... backward. Every state a transition
visits is written once into a ring buffer (``Trajectory``) at row ``s mod 2^max_depth``; a
transition visits at most ``2^max_depth`` states, so rows never collide. A proposal is therefore
just a position ``s``: choosing it copies nothing.

**Momentum sums.** The criterion needs ``rho`` = the sum of momenta over a segment ``[a, b]`` of
consecutive states. The buffer keeps prefix sums ``R`` with ``rho(a, b) = R[b] - R[a - 1]``, so
any segment's sum costs one subtraction per coordinate instead of being carried up the recursion.
(Stan carries the sums explicitly; the two agree up to floating-point rounding.)

**The U-turn criterion** (Betancourt 2017, eq. in appendix A.4.2; Stan's ``compute_criterion``):
a segment ``[a, b]`` keeps going while ``p#_a . rho > 0`` and ``p#_b . rho > 0``, where
``p# = M^{-1} p`` is the velocity. When two adjacent segments ``[a, m]`` and ``[m + 1, b]`` merge,
Stan (since 2.21, stan-dev/stan#2800) checks three segments: the whole ``[a, b]``, and each half
extended by the neighbouring state of the other half, ``[a, m + 1]`` and ``[m, b]``. The same
three checks apply to subtree merges inside ``build_tree`` and to the top-level merge of the new
subtree with the old trajectory, so both use ``merge_is_turning``.

**Weights.** A state with energy ``H`` has weight ``exp(H0 - H)``. Inside a subtree the proposal is
drawn uniformly by weight (the final half replaces the initial half's proposal with probability
``W_final / W_subtree``); at the top level the new subtree's proposal replaces the current sample
with probability ``min(1, W_subtree / W_old)`` (biased progressive sampling, Betancourt 2017
appendix A.3.2), which favours states far from the start.

**Divergence.** A leapfrog state with ``H - H0 > max_delta_h`` (1000) or ``H`` NaN is divergent:
its subtree is discarded and the trajectory stops, as in Stan.

**Acceptance statistic** (for step-size adaptation): the mean of ``min(1, exp(H0 - H))`` over
*every* leapfrog state of the transition, rejected subtrees included (Stan, ``base_nuts.hpp``).

**Recorder.** With ``record=True`` the same code also logs every completed subtree and every U-turn
check with its outcome into small arrays, for readers and for the invariant checks of
``nutslite.testing``; with ``record=False`` those arrays are empty and never touched.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from nutslite._numba import jit
from nutslite.engine.integrators import leapfrog
from nutslite.engine.metric import sample_momentum, velocity

Trajectory = namedtuple("Trajectory", ["q", "p", "v", "grad", "logp", "energy", "rho_prefix"])
Trajectory.__doc__ = """Ring buffers for the states of one transition (allocated once per chain).

``q, p, v, grad``: ``(2^max_depth, dim)`` (``v = M^{-1} p`` is the velocity); ``logp, energy``:
``(2^max_depth,)``; ``rho_prefix``: ``(2^(max_depth + 1), dim)`` prefix sums of momenta. State ``s``
is in row ``s & (2^max_depth - 1)`` and its prefix sum ``R[s]`` in row ``s & (2^(max_depth + 1) -
1)``.
"""

Recorder = namedtuple("Recorder", ["active", "subtrees", "checks", "counts"])
Recorder.__doc__ = """Where a recorded transition logs its structure.

``subtrees``: rows ``(lo, hi, depth, top_level, valid)`` for every completed subtree of depth >= 1
(``valid`` False when it turned) and, with ``top_level`` 1, the accepted trajectory after every
top-level doubling; ``checks``: rows ``(lo, hi, merge_depth, top_level, turning)`` for every U-turn
criterion evaluated; ``counts``: ``[n_subtrees, n_checks]``.
"""

TransitionInfo = namedtuple(
    "TransitionInfo",
    [
        "proposal",  # position of the selected state
        "depth",  # tree depth reached (number of accepted doublings)
        "n_steps",  # leapfrog steps taken, rejected subtrees included
        "accept_stat",  # mean of min(1, exp(H0 - H)) over every leapfrog state
        "diverging",  # True if a leapfrog state diverged
        "divergent_position",  # position of the divergent state (0 if none)
        "energy0",  # H at the initial state, with the fresh momentum
        "left",  # leftmost position of the accepted trajectory
        "right",  # rightmost position of the accepted trajectory
        "lo",  # leftmost position visited, rejected subtrees included
        "hi",  # rightmost position visited
    ],
)


def allocate_trajectory(dim: int, max_depth: int) -> Trajectory:
    """Buffers for transitions of at most ``2^max_depth`` states in ``dim`` dimensions."""
    cap = 1 << max_depth
    return Trajectory(
        q=np.zeros((cap, dim)),
        p=np.zeros((cap, dim)),
        v=np.zeros((cap, dim)),
        grad=np.zeros((cap, dim)),
        logp=np.zeros(cap),
        energy=np.zeros(cap),
        rho_prefix=np.zeros((2 * cap, dim)),
    )


def allocate_recorder(max_depth: int, active: bool) -> Recorder:
    """Recorder arrays large enough for any transition of at most ``2^max_depth`` states."""
    n = (1 << max_depth) + max_depth + 1 if active else 0
    return Recorder(
        active=active,
        subtrees=np.zeros((n, 5), dtype=np.int64),
        checks=np.zeros((3 * n, 5), dtype=np.int64),
        counts=np.zeros(2, dtype=np.int64),
    )


@jit
def log_sum_exp(a, b):
    """``log(exp(a) + exp(b))`` without overflow (libm only, so compiled and interpreted runs
    agree bit for bit)."""
    if a == -math.inf:
        return b
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@jit
def record_check(recorder, a, b, merge_depth, top_level, turning):
    """Log one U-turn check ``[a, b]`` and its outcome (recorded transitions only)."""
    if recorder is not None and recorder.active:
        n = recorder.counts[1]
        recorder.checks[n, 0] = a
        recorder.checks[n, 1] = b
        recorder.checks[n, 2] = merge_depth
        recorder.checks[n, 3] = top_level
        recorder.checks[n, 4] = turning
        recorder.counts[1] = n + 1


@jit
def merge_is_turning(traj, a, m, b, recorder, merge_depth, top_level):
    """The three checks of Stan 2.21+ when ``[a, m]`` and ``[m + 1, b]`` merge: the whole
    segment ``[a, b]``, and each half extended by the neighbouring state of the other,
    ``[a, m + 1]`` and ``[m, b]``. A segment ``[c, d]`` has turned unless ``p#_c . rho > 0`` and
    ``p#_d . rho > 0`` with ``rho = R[d] - R[c - 1]``.

    All three are evaluated, as Stan does, so the recorder sees every one. Their six dot products
    are summed in one pass over the coordinates, which reads the four velocities and four prefix
    sums once instead of three times; each dot product is summed in two interleaved partial sums
    (even and odd coordinates), a fixed order that compiled and interpreted runs share
    (``nutslite.engine.linalg``).
    """
    v, r = traj.v, traj.rho_prefix
    mask, prefix_mask = v.shape[0] - 1, r.shape[0] - 1  # rows of states and of prefix sums
    va, vb, vm, vn = a & mask, b & mask, m & mask, (m + 1) & mask
    rb, ra, rn, rm = b & prefix_mask, (a - 1) & prefix_mask, (m + 1) & prefix_mask, (
        (m - 1) & prefix_mask
    )
    whole_a0 = whole_a1 = whole_b0 = whole_b1 = 0.0
    left_a0 = left_a1 = left_n0 = left_n1 = 0.0
    right_m0 = right_m1 = right_b0 = right_b1 = 0.0
    dim = v.shape[1]
    even = dim - dim % 2
    for i in range(0, even, 2):
        j = i + 1
        rho_i, rho_j = r[rb, i] - r[ra, i], r[rb, j] - r[ra, j]  # whole [a, b]
        whole_a0 += v[va, i] * rho_i
        whole_a1 += v[va, j] * rho_j
        whole_b0 += v[vb, i] * rho_i
        whole_b1 += v[vb, j] * rho_j
        rho_i, rho_j = r[rn, i] - r[ra, i], r[rn, j] - r[ra, j]  # left [a, m + 1]
        left_a0 += v[va, i] * rho_i
        left_a1 += v[va, j] * rho_j
        left_n0 += v[vn, i] * rho_i
        left_n1 += v[vn, j] * rho_j
        rho_i, rho_j = r[rb, i] - r[rm, i], r[rb, j] - r[rm, j]  # right [m, b]
        right_m0 += v[vm, i] * rho_i
        right_m1 += v[vm, j] * rho_j
        right_b0 += v[vb, i] * rho_i
        right_b1 += v[vb, j] * rho_j
    if even < dim:
        i = even
        rho_i = r[rb, i] - r[ra, i]
        whole_a0 += v[va, i] * rho_i
        whole_b0 += v[vb, i] * rho_i
        rho_i = r[rn, i] - r[ra, i]
        left_a0 += v[va, i] * rho_i
        left_n0 += v[vn, i] * rho_i
        rho_i = r[rb, i] - r[rm, i]
        right_m0 += v[vm, i] * rho_i
        right_b0 += v[vb, i] * rho_i
    whole = not (whole_a0 + whole_a1 > 0.0 and whole_b0 + whole_b1 > 0.0)
    left = not (left_a0 + left_a1 > 0.0 and left_n0 + left_n1 > 0.0)
    right = not (right_m0 + right_m1 > 0.0 and right_b0 + right_b1 > 0.0)
    record_check(recorder, a, b, merge_depth, top_level, whole)
    record_check(recorder, a, m + 1, merge_depth, top_level, left)
    record_check(recorder, m, b, merge_depth, top_level, right)
    return whole or left or right


@jit
def record_subtree(recorder, lo, hi, depth, top_level, valid):
    if recorder is not None and recorder.active:
        n = recorder.counts[0]
        recorder.subtrees[n, 0] = lo
        recorder.subtrees[n, 1] = hi
        recorder.subtrees[n, 2] = depth
        recorder.subtrees[n, 3] = top_level
        recorder.subtrees[n, 4] = valid
        recorder.counts[0] = n + 1


@jit(inline="always")  # one call site: inlined, it needs no compile of its own
def take_step(logp_grad, traj, metric, step_size, edge, direction, h0, max_delta_h):
    """Base case of the recursion: one leapfrog step from position ``edge`` to
    ``s = edge + direction``, stored in the buffer with its energy and momentum prefix sum.

    Returns ``(s, log_weight, divergent)`` with ``log_weight = H0 - H(s)``.
    """
    s = edge + direction
    mask, prefix_mask = traj.q.shape[0] - 1, traj.rho_prefix.shape[0] - 1
    r0, r1 = edge & mask, s & mask
    logp, kinetic = leapfrog(
        logp_grad, direction * step_size, metric, traj.q[r0], traj.p[r0], traj.grad[r0],
        traj.q[r1], traj.p[r1], traj.grad[r1], traj.v[r1],
    )
    h = -logp + kinetic
    if math.isnan(h):
        h = math.inf
    traj.logp[r1] = logp
    traj.energy[r1] = h
    # prefix sums: forward R[s] = R[s-1] + p_s; backward R[s-1] = R[s] - p_s
    if direction > 0:
        src, dst, sign = (s - 1) & prefix_mask, s & prefix_mask, 1.0
    else:
        src, dst, sign = s & prefix_mask, (s - 1) & prefix_mask, -1.0
    for i in range(traj.p.shape[1]):
        traj.rho_prefix[dst, i] = traj.rho_prefix[src, i] + sign * traj.p[r1, i]
    return s, h0 - h, (h - h0) > max_delta_h


@jit(cache=False)  # a cached recursive function can come back with its self-call unresolved
def build_tree(
    logp_grad, rng, traj, metric, step_size, edge, direction, depth, h0, max_delta_h, recorder
):
    """Build a subtree of ``2^depth`` states beyond position ``edge`` in ``direction``.

    Hoffman & Gelman (2014) Alg. 3 with Stan's multinomial weights and extra checks. Returns
    ``(valid, log_weight, proposal, sum_accept, n_steps, divergent_position)``; ``valid`` is False
    when a state diverged or a sub-subtree turned, and the caller then discards the subtree.
    ``divergent_position`` is 0 when nothing diverged (position 0 is never built here).

    Not cached on its own: Numba can reload a cached specialisation of a recursive function with
    its recursive call unresolved (an LLVM "Symbol not found" abort). Its callers are cached, and
    carry its compiled code with them.
    """
    if depth == 0:
        s, log_w, divergent = take_step(
            logp_grad, traj, metric, step_size, edge, direction, h0, max_delta_h
        )
        accept = 1.0 if log_w > 0.0 else math.exp(log_w)
        return not divergent, log_w, s, accept, 1, s if divergent else 0

    half = 1 << (depth - 1)
    valid, log_w_init, prop, acc_init, n_init, div = build_tree(
        logp_grad, rng, traj, metric, step_size, edge, direction, depth - 1, h0, max_delta_h,
        recorder,
    )
    if not valid:
        return False, log_w_init, prop, acc_init, n_init, div
    valid, log_w_final, prop_final, acc_final, n_final, div = build_tree(
        logp_grad, rng, traj, metric, step_size, edge + direction * half, direction, depth - 1,
        h0, max_delta_h, recorder,
    )
    sum_accept = acc_init + acc_final
    n_steps = n_init + n_final
    if not valid:
        return False, log_w_final, prop_final, sum_accept, n_steps, div

    # uniform multinomial sampling within the subtree
    log_w = log_sum_exp(log_w_init, log_w_final)
    if rng.random() < math.exp(log_w_final - log_w):
        prop = prop_final

    first, last = edge + direction, edge + direction * 2 * half
    lo, hi = min(first, last), max(first, last)
    turning = merge_is_turning(traj, lo, lo + half - 1, hi, recorder, depth, 0)
    record_subtree(recorder, lo, hi, depth, 0, not turning)
    return not turning, log_w, prop, sum_accept, n_steps, 0


@jit(inline="always")  # inlined into the chain loop: one compiled module less in a cold start
def nuts_transition(
    logp_grad, rng, traj, metric, step_size, q0, logp0, grad0, max_depth, max_delta_h, recorder
):
    """One NUTS transition from ``q0`` (with ``logp0``, ``grad0``), as Stan's
    ``base_nuts::transition``: draw a momentum, then double the trajectory forward or backward at
    random until it turns, diverges or reaches ``max_depth`` doublings.

    The selected state is in ``traj`` row ``info.proposal & (2^max_depth - 1)``. Returns a
    ``TransitionInfo``.
    """
    r0 = 0  # the row of position 0
    for i in range(q0.shape[0]):
        traj.q[r0, i] = q0[i]
        traj.grad[r0, i] = grad0[i]
    sample_momentum(rng, metric, traj.p[r0])
    h0 = -logp0 + velocity(metric, traj.p[r0], traj.v[r0])
    traj.logp[r0] = logp0
    traj.energy[r0] = h0
    below, at = traj.rho_prefix.shape[0] - 1, 0  # prefix-sum rows of positions -1 and 0
    for i in range(q0.shape[0]):
        traj.rho_prefix[below, i] = 0.0
        traj.rho_prefix[at, i] = traj.p[r0, i]

    left = right = 0  # the accepted trajectory is [left, right]
    lo = hi = 0  # every position visited, rejected subtrees included
    proposal = 0
    log_w = 0.0  # log of the total weight of [left, right]; the initial state weighs exp(0)
    depth = 0
    n_steps = 0
    sum_accept = 0.0
    divergent_position = 0
    while depth < max_depth:
        direction = 1 if rng.random() > 0.5 else -1
        edge = right if direction > 0 else left
        valid, log_w_sub, prop_sub, acc, n, div = build_tree(
            logp_grad, rng, traj, metric, step_size, edge, direction, depth, h0, max_delta_h,
            recorder,
        )
        n_steps += n
        sum_accept += acc
        if direction > 0:
            hi = edge + n
        else:
            lo = edge - n
        if div != 0:
            divergent_position = div
        if not valid:
            break
        if direction > 0:
            right = edge + (1 << depth)
            m = edge
        else:
            left = edge - (1 << depth)
            m = edge - 1
        depth += 1
        record_subtree(recorder, left, right, depth, 1, True)

        # biased progressive sampling at the top level
        if log_w_sub > log_w:
            proposal = prop_sub
        elif rng.random() < math.exp(log_w_sub - log_w):
            proposal = prop_sub
        log_w = log_sum_exp(log_w, log_w_sub)

        if merge_is_turning(traj, left, m, right, recorder, depth, 1):
            break

    return TransitionInfo(
        proposal, depth, n_steps, sum_accept / n_steps, divergent_position != 0,
        divergent_position, h0, left, right, lo, hi,
    )
