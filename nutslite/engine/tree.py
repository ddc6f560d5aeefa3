r"""One NUTS transition with Stan's semantics: multinomial sampling, the generalised U-turn
criterion with the extra cross-subtree checks, divergence detection and a maximum tree depth.

References: Hoffman & Gelman (2014), "The No-U-Turn Sampler", JMLR 15:1593, Alg. 3 (recursive
doubling); Betancourt (2017), "A Conceptual Introduction to Hamiltonian Monte Carlo", sec. 6 and
appendix A (multinomial sampling of trajectory states, biased progressive sampling at the top level,
the generalised criterion on momentum sums); Stan's ``base_nuts.hpp`` (v2.21+), whose transition
this module reproduces step for step and in the same order of random draws.

**The trajectory.** States are numbered by their signed position along the trajectory: 0 is the
initial state, 1, 2, ... lie forward in time and -1, -2, ... backward. What the U-turn criterion
reads of a state, its velocity and its momentum prefix sum, and its log density and energy are
written once into ring buffers (``Trajectory``) at row ``s mod 2^max_depth``; a transition visits
at most ``2^max_depth`` states, so rows never collide.

**Points.** A full phase-space point (position, momentum, gradient) is kept only while something
needs it, as in Stan: the trajectory's two edges, the selected sample, and the proposal of every
subtree under construction. Points live in a few slots, handed out and taken back by reference
count (``acquire``, ``release``): a step reads its edge's slot and writes a fresh one, and a
proposal moves by passing its slot on, so nothing is copied and the memory a step touches stays
in the cache however long the trajectory grows (at 17,005 coordinates a point is 0.54 MB; a
buffer of every state would stream from beyond the L2 cache).

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
check with its outcome into one small array, for readers and for the invariant checks of
``nutslite.testing``; with ``record=False`` that array is empty and never touched.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from nutslite._numba import borrowed, jit
from nutslite.engine.integrators import GRAD, MomentumSum, P, Q, V, leapfrog
from nutslite.engine.linalg import copy_row, segment_dots_packed, uturn_dots_packed
from nutslite.engine.metric import sample_momentum, velocity
from nutslite.engine.normal import uniform

MAX_DELTA_H = 1000.0  # Stan's divergence threshold on H - H0 (``max_deltaH_`` in base_nuts.hpp)

Trajectory = namedtuple("Trajectory", ["points", "slots", "rows", "logp", "energy"])
Trajectory.__doc__ = """Buffers for the states of one transition (allocated once per chain).

``points``: ``(max_depth + 5, 4, dim)`` slots, each a phase-space point ``(4, dim)`` with rows
``Q, P, V, GRAD`` (``nutslite.engine.integrators``; the tree builder keeps velocities in
``rows`` and uses a slot's row ``V`` as scratch only). Slot ``DIVERGENT`` receives the position
where the energy blew up; the others are handed out by ``acquire``: ``slots[REFS, k]`` counts the
references to slot ``k``, and ``slots[FREE, 1 : 1 + slots[FREE, 0]]`` lists the free ones. At
most ``max_depth + 4`` are held at once: the two edges and the sample, the first half's proposal
at each of the (at most ``max_depth - 1``) levels of the subtree being built, the point a step
starts from and the one it writes.

By position ``s``: the prefix sum of momenta ``R[s]`` in row ``s & (2^(max_depth + 1) - 1)`` of
``rows`` ``(3 * 2^max_depth, dim)``, the velocity ``M^{-1} p`` in row ``2^(max_depth + 1) +
(s & (2^max_depth - 1))``, and ``logp, energy`` ``(2^max_depth,)`` in row ``s & (2^max_depth -
1)``. Five arrays: every call of the tree builder passes each array's shape, strides and pointer
(Numba flattens the context into scalars), so fewer arrays cost less per call. (Their reference
counts are gone from the per-step path: ``nuts_transition`` borrows them and the tree builder
counts nothing, ``nutslite._numba``.)
"""
DIVERGENT = 0  # the slot of ``Trajectory.points`` that receives a divergent state's position
REFS, FREE = 0, 1  # the rows of ``Trajectory.slots``

Recorder = namedtuple("Recorder", ["active", "log", "points"])
Recorder.__doc__ = """Where a recorded transition logs its structure, in the order it happened.

``log`` rows after the first are events ``(kind, lo, hi, depth, top_level, outcome)``: kind
``SUBTREE`` for every completed subtree of depth >= 1 (``outcome`` 1 when it is valid, 0 when it
turned) and, with ``top_level`` 1, the accepted trajectory after every top-level doubling; kind
``CHECK`` for every U-turn criterion evaluated on ``[lo, hi]`` at merge depth ``depth``
(``outcome`` 1 when it turned). ``log[0, 0]`` counts the events. ``points``
``(2^max_depth, 4, dim)`` receives every state the transition visits, in the rows of the
trajectory's ring buffers. ``nl.sample`` passes ``None`` instead of a recorder: ``record`` and
``record_point`` then compile to nothing.
"""
SUBTREE, CHECK = 1, 2

Transition = namedtuple(
    "Transition",
    ["logp_grad", "rng", "metric", "step_size", "h0", "max_delta_h", "traj", "recorder"],
)
Transition.__doc__ = """What every step of one transition needs, bundled once by
``nuts_transition`` (in the spirit of nuts-rs's ``Hamiltonian``): the log density and its
gradient, the random stream, the metric, the step size ``eps``, the initial energy ``H0``, the
divergence threshold, the trajectory buffers and the recorder."""

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
        "sample_slot",  # slot of ``traj.points`` that holds the selected state's point
    ],
)


def allocate_trajectory(dim: int, max_depth: int) -> Trajectory:
    """Buffers for transitions of at most ``2^max_depth`` states in ``dim`` dimensions.

    Left uninitialised: a transition writes every row and slot before reading it (the slots'
    bookkeeping, the initial state and the prefix sums of positions -1 and 0 in
    ``nuts_transition``, every later row and slot by the step that reaches it), and zero-filling
    them would cost time per call."""
    cap = 1 << max_depth
    slots = max_depth + 5
    return Trajectory(
        points=np.empty((slots, 4, dim)),
        slots=np.empty((2, slots + 1), dtype=np.int64),
        rows=np.empty((3 * cap, dim)),
        logp=np.empty(cap),
        energy=np.empty(cap),
    )


def allocate_recorder(max_depth: int, active: bool, dim: int = 0) -> Recorder:
    """A recorder large enough for any transition of at most ``2^max_depth`` states in ``dim``
    dimensions (empty when not ``active``)."""
    subtrees = (1 << max_depth) + max_depth + 1  # at most, counting the top-level rows
    rows = 1 << max_depth if active else 0
    return Recorder(
        active,
        np.zeros((1 + 4 * subtrees if active else 0, 6), dtype=np.int64),
        np.zeros((rows, 4, dim if active else 0)),
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
def record(recorder, kind, lo, hi, depth, top_level, outcome):
    """Log one event (recorded transitions only; see ``Recorder``)."""
    if recorder is not None and recorder.active:
        log = recorder.log
        n = log[0, 0] + 1
        log[n, 0] = kind
        log[n, 1] = lo
        log[n, 2] = hi
        log[n, 3] = depth
        log[n, 4] = top_level
        log[n, 5] = outcome
        log[0, 0] = n


@jit
def record_point(recorder, row, z, v):
    """Keep the state ``z`` (its velocity ``v``) in row ``row`` of the recorder's points
    (recorded transitions only)."""
    if recorder is not None and recorder.active:
        out = recorder.points[row]
        copy_row(z[Q], out[Q])
        copy_row(z[P], out[P])
        copy_row(v, out[V])
        copy_row(z[GRAD], out[GRAD])


@jit(inline="always")  # integer arithmetic on a shape, at three call sites
def ring_rows(traj):
    """``(mask, prefix_mask, velocities)`` of the ring buffers (``Trajectory``): position ``s`` is
    in row ``s & mask`` of ``logp`` and ``energy``, its prefix sum in row ``s & prefix_mask`` of
    ``rows`` and its velocity in row ``velocities + (s & mask)``."""
    mask = traj.logp.shape[0] - 1
    return mask, 2 * mask + 1, 2 * mask + 2


@jit(_nrt=False)  # a call, not inlined by Numba: less to type and lower in a cold start
def acquire(table, references):
    """A free slot of ``Trajectory.points`` (``table`` is ``Trajectory.slots``), now held by
    ``references`` owners."""
    n = table[FREE, 0]
    slot = table[FREE, n]
    table[FREE, 0] = n - 1
    table[REFS, slot] = references
    return slot


@jit(_nrt=False)  # a call, not inlined by Numba: less to type and lower in a cold start
def release(table, slot):
    """One owner less for ``slot``; it is free again when none is left.

    Written without a branch, because whether a slot is left unowned follows the multinomial
    choices, which are coin flips (against a version with the branch, the radon loop measured no
    difference). The slot is written past the end of the free list either way and counted only
    when it is free."""
    held = table[REFS, slot] - 1
    table[REFS, slot] = held
    n = table[FREE, 0]
    table[FREE, n + 1] = slot
    table[FREE, 0] = n + (held == 0)


@jit(inline="always")  # two call sites; a call would count the references of its five arrays
def merge_is_turning(traj, a, m, b, recorder, merge_depth, top_level):
    """The three checks of Stan 2.21+ when ``[a, m]`` and ``[m + 1, b]`` merge: the whole
    segment ``[a, b]``, and each half extended by the neighbouring state of the other,
    ``[a, m + 1]`` and ``[m, b]``. A segment ``[c, d]`` has turned unless ``p#_c . rho > 0`` and
    ``p#_d . rho > 0`` with ``rho = R[d] - R[c - 1]``.

    All three are evaluated, as Stan does, so the recorder sees every one. Their six dot products
    are summed in one pass (``nutslite.engine.linalg.uturn_dots``). When two single states merge
    (``m == a``, ``b == a + 1``: every subtree of depth 1, and the first doubling), the three
    segments are all ``[a, b]``, with the same momentum sum ``R[b] - R[a - 1]`` and the same
    velocities: the six products are two, computed once (``segment_dots``, the same operations in
    the same order, so the same bits). Half of a tree's merges are of this kind.
    """
    mask, prefix_mask, v0 = ring_rows(traj)
    rows = traj.rows
    if m == a:
        whole_a, whole_b = segment_dots_packed(
            rows, rows, v0 + (a & mask), v0 + (b & mask), (a - 1) & prefix_mask, b & prefix_mask,
        )
        left_a, left_n, right_m, right_b = whole_a, whole_b, whole_a, whole_b
    else:
        whole_a, whole_b, left_a, left_n, right_m, right_b = uturn_dots_packed(
            rows, rows, v0 + (a & mask), v0 + (b & mask), v0 + (m & mask), v0 + ((m + 1) & mask),
            (a - 1) & prefix_mask, b & prefix_mask, (m - 1) & prefix_mask, (m + 1) & prefix_mask,
        )
    whole = not (whole_a > 0.0 and whole_b > 0.0)
    left = not (left_a > 0.0 and left_n > 0.0)
    right = not (right_m > 0.0 and right_b > 0.0)
    record(recorder, CHECK, a, b, merge_depth, top_level, whole)
    record(recorder, CHECK, a, m + 1, merge_depth, top_level, left)
    record(recorder, CHECK, m, b, merge_depth, top_level, right)
    return whole or left or right


@jit(cache=False, _nrt=False)  # see the docstring
def build_tree(ctx, edge, direction, depth, source):
    """Build a subtree of ``2^depth`` states beyond position ``edge``, whose point is in slot
    ``source``, in ``direction``, for the transition ``ctx`` (a ``Transition``).

    Hoffman & Gelman (2014) Alg. 3 with Stan's multinomial weights and extra checks. Returns
    ``(valid, log_weight, proposal, sum_accept, n_steps, divergent_position, proposal_slot,
    last_slot)``; ``valid`` is False when a state diverged or a sub-subtree turned, and the
    caller then discards the subtree. ``divergent_position`` is 0 when nothing diverged
    (position 0 is never built here). The subtree's proposal is in slot ``proposal_slot`` and
    its last state, the edge the next step starts from, in ``last_slot``: the caller owns one
    reference to each (the same slot twice for a single state). The caller's reference to
    ``source`` passes to the first step, which releases it. (A discarded subtree's slots are
    not given back: the next transition starts with all of them free.)

    Compiled without reference counting (``_nrt=False``, ``nutslite._numba.jit``): its context is
    borrowed (``nuts_transition``), and it allocates nothing.

    Not cached on its own: Numba can reload a cached specialisation of a recursive function with
    its recursive call unresolved (an LLVM "Symbol not found" abort). Its callers are cached, and
    carry its compiled code with them.
    """
    if depth == 0:
        # the base case: one leapfrog step from ``edge`` to ``s``, its point in a fresh slot;
        # by position, its velocity, energy, log weight ``H0 - H(s)`` and momentum prefix sum
        # (written out here: an inlined function would copy the context, which cost what it
        # saved; ``benchmarks/README.md``)
        traj = ctx.traj
        s = edge + direction
        mask, prefix_mask, velocities = ring_rows(traj)
        r = s & mask
        v = traj.rows[velocities + r]
        # forward R[s] = R[s-1] + p_s; backward R[s-1] = R[s] - p_s (in the step's second pass)
        if direction > 0:
            prior, written, sign = (s - 1) & prefix_mask, s & prefix_mask, 1.0
        else:
            prior, written, sign = s & prefix_mask, (s - 1) & prefix_mask, -1.0
        out = acquire(traj.slots, 2)  # the subtree's proposal and its last state
        z = traj.points[out]
        logp, kinetic = leapfrog(
            ctx.logp_grad, ctx.metric, direction * ctx.step_size, traj.points[source], z,
            MomentumSum(traj.rows[prior], traj.rows[written], sign, v),
        )
        release(traj.slots, source)
        h = -logp + kinetic
        if math.isnan(h):
            h = math.inf
        traj.logp[r] = logp
        traj.energy[r] = h
        record_point(ctx.recorder, r, z, v)
        log_w = ctx.h0 - h
        divergent = (h - ctx.h0) > ctx.max_delta_h
        if divergent:
            copy_row(z[Q], traj.points[DIVERGENT, Q])
        accept = 1.0 if log_w > 0.0 else math.exp(log_w)
        return not divergent, log_w, s, accept, 1, s if divergent else 0, out, out

    # the initial half, then the final half from its last state: one recursive call in a loop
    # rather than Stan's two calls, because Numba types each recursive call site by re-typing the
    # whole function (``benchmarks/README.md``, cold compile, round 11)
    half = 1 << (depth - 1)
    log_w, prop, prop_slot, sum_accept, n_steps, last = 0.0, 0, 0, 0.0, 0, source
    for final in range(2):
        valid, log_w_half, prop_half, acc, n, div, half_slot, last = build_tree(
            ctx, edge + final * direction * half, direction, depth - 1, last
        )
        sum_accept += acc
        n_steps += n
        if not valid:
            return False, log_w_half, prop_half, sum_accept, n_steps, div, half_slot, last
        if final == 0:
            log_w, prop, prop_slot = log_w_half, prop_half, half_slot
            continue
        # uniform multinomial sampling within the subtree
        log_w = log_sum_exp(log_w, log_w_half)
        take = uniform(ctx.rng) < math.exp(log_w_half - log_w)  # selects, not branches
        prop = prop_half if take else prop
        release(ctx.traj.slots, prop_slot if take else half_slot)
        prop_slot = half_slot if take else prop_slot

    first, last_position = edge + direction, edge + direction * 2 * half
    lo, hi = min(first, last_position), max(first, last_position)
    turning = merge_is_turning(ctx.traj, lo, lo + half - 1, hi, ctx.recorder, depth, 0)
    record(ctx.recorder, SUBTREE, lo, hi, depth, 0, not turning)
    return not turning, log_w, prop, sum_accept, n_steps, 0, prop_slot, last


@jit(inline="always")  # inlined into the chain loop: one compiled module less in a cold start
def nuts_transition(
    logp_grad, rng, traj, metric, step_size, q0, logp0, grad0, max_depth, max_delta_h, recorder
):
    """One NUTS transition from ``q0`` (with ``logp0``, ``grad0``), as Stan's
    ``base_nuts::transition``: draw a momentum, then double the trajectory forward or backward at
    random until it turns, diverges or reaches ``max_depth`` doublings.

    The selected state's point is in slot ``info.sample_slot`` of ``traj.points``, its log
    density and energy in row ``info.proposal & (2^max_depth - 1)`` of ``traj.logp`` and
    ``traj.energy``; a divergent state's position is in ``traj.points[DIVERGENT, Q]``. Returns a
    ``TransitionInfo``.
    """
    slots = traj.points.shape[0]
    traj.slots[FREE, 0] = slots - 1  # every slot but DIVERGENT is free
    for k in range(1, slots):
        traj.slots[FREE, k] = slots - k
        traj.slots[REFS, k] = 0
    start = acquire(traj.slots, 3)  # the left edge, the right edge and the sample
    z0 = traj.points[start]
    for i in range(q0.shape[0]):
        z0[Q, i] = q0[i]
        z0[GRAD, i] = grad0[i]
    sample_momentum(rng, metric, z0[P])
    _, prefix_mask, velocities = ring_rows(traj)
    v0 = traj.rows[velocities]  # the velocity of position 0
    h0 = -logp0 + velocity(metric, z0[P], v0)
    traj.logp[0] = logp0
    traj.energy[0] = h0
    record_point(recorder, 0, z0, v0)
    below, at = prefix_mask, 0  # prefix-sum rows of positions -1 and 0
    for i in range(q0.shape[0]):
        traj.rows[below, i] = 0.0
        traj.rows[at, i] = z0[P, i]
    # borrowed: the callers own these arrays for longer than ``ctx`` lives (it ends with this
    # transition), so the tree builder's calls and row views need not count references
    ctx = borrowed(Transition(logp_grad, rng, metric, step_size, h0, max_delta_h, traj, recorder))

    left = right = 0  # the accepted trajectory is [left, right]
    left_slot = right_slot = sample_slot = start
    lo = hi = 0  # every position visited, rejected subtrees included
    proposal = 0
    log_w = 0.0  # log of the total weight of [left, right]; the initial state weighs exp(0)
    depth = 0
    n_steps = 0
    sum_accept = 0.0
    divergent_position = 0
    while depth < max_depth:
        direction = 1 if uniform(rng) > 0.5 else -1
        edge, edge_slot = (right, right_slot) if direction > 0 else (left, left_slot)
        ctx.traj.slots[REFS, edge_slot] += 1  # the subtree's first step releases it
        valid, log_w_sub, prop_sub, acc, n, div, prop_slot, last_slot = build_tree(
            ctx, edge, direction, depth, edge_slot
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
        release(ctx.traj.slots, edge_slot)  # the subtree's last state is the new edge
        if direction > 0:
            right, right_slot = edge + (1 << depth), last_slot
            m = edge
        else:
            left, left_slot = edge - (1 << depth), last_slot
            m = edge - 1
        depth += 1
        record(recorder, SUBTREE, left, right, depth, 1, True)

        # biased progressive sampling at the top level
        if log_w_sub > log_w or uniform(rng) < math.exp(log_w_sub - log_w):
            proposal = prop_sub
            release(ctx.traj.slots, sample_slot)
            sample_slot = prop_slot
        else:
            release(ctx.traj.slots, prop_slot)
        log_w = log_sum_exp(log_w, log_w_sub)

        if merge_is_turning(ctx.traj, left, m, right, ctx.recorder, depth, 1):
            break

    return TransitionInfo(
        proposal, depth, n_steps, sum_accept / n_steps, divergent_position != 0,
        divergent_position, h0, left, right, lo, hi, sample_slot,
    )
