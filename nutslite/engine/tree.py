r"""One NUTS transition with Stan's semantics: multinomial sampling, the generalised U-turn
criterion with the extra cross-subtree checks, divergence detection and a maximum tree depth.

References: Hoffman & Gelman (2014), "The No-U-Turn Sampler", JMLR 15:1593, Alg. 3 (recursive
doubling); Betancourt (2017), "A Conceptual Introduction to Hamiltonian Monte Carlo", sec. 6 and
appendix A (multinomial sampling of trajectory states, biased progressive sampling at the top level,
the generalised criterion on momentum sums); Stan's ``base_nuts.hpp`` (v2.21+), whose transition
this module reproduces step for step and in the same order of random draws.

**The trajectory.** States are numbered by their signed position along the trajectory: 0 is the
initial state, 1, 2, ... lie forward in time and -1, -2, ... backward. A state's log density and
energy are written once into ring buffers (``Trajectory``) at row ``s mod 2^max_depth``; a
transition visits at most ``2^max_depth`` states, so rows never collide. What the U-turn criterion
reads of a state, its velocity and its momentum prefix sum, is kept by position as well, or, for
large models, only while a check can still read it (``CompactTrajectory``): a completed segment
``[a, b]`` of the trajectory is only ever checked through the velocities at its ends and the
prefix sums ``R[a - 1], R[a], R[b - 1], R[b]``, so when two segments merge, the rows of the
states between them are handed back (``release_interior``). At most ``6 (max_depth + 2)`` rows
are then held at once instead of one per state: at 17,005 coordinates the rows of a depth-5
transition take about 4 MB instead of 17 MB. Smaller models keep the rows by position, where the
free list's bookkeeping would cost more than the cache it saves (``allocate_trajectory``).

**Points.** A full phase-space point (position, momentum, gradient) is kept only while something
needs it, as in Stan: the trajectory's two edges, the selected sample, and the proposal of every
subtree under construction. Points live in a few slots, handed out and taken back by reference
count (``acquire``, ``release``): a step reads its edge's slot and writes a fresh one, and a
proposal moves by passing its slot on, so nothing is copied and the memory a step touches stays
in the cache however long the trajectory grows (at 17,005 coordinates a point is 0.54 MB; a
buffer of every state would stream from beyond the L2 cache). Between transitions the chain's
point stays where it is: the next transition starts from the slot of the last one's sample
(``place_start`` puts a chain's first point into a slot).

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

from nutslite._memory import aligned_empty, small_pages
from nutslite._numba import borrowed, by_reference, by_type, jit
from nutslite.engine.integrators import GRAD, MomentumSum, P, Q, V, leapfrog
from nutslite.engine.linalg import copy_row, segment_dots_packed, uturn_dots_packed
from nutslite.engine.metric import start_momentum
from nutslite.engine.normal import uniform

MAX_DELTA_H = 1000.0  # Stan's divergence threshold on H - H0 (``max_deltaH_`` in base_nuts.hpp)
COMPACT_ROWS_FROM_DIM = 8192  # from this many coordinates on, compact rows (allocate_trajectory)
ROW_ALIGN = 8  # doubles in a 64-byte cache line: a trajectory row is padded to a multiple of it

Trajectory = namedtuple("Trajectory", ["points", "slots", "rows", "logp", "energy"])
Trajectory.__doc__ = """Buffers for the states of one transition (allocated once per chain).

``points``: ``(max_depth + 7, 4, dim)`` slots, each a phase-space point ``(4, dim)`` with rows
``Q, P, V, GRAD`` (``nutslite.engine.integrators``; the tree builder keeps velocities in
``rows`` and uses a slot's row ``V`` as scratch only). Slot ``DIVERGENT`` receives the position
where the energy blew up; the others are handed out by ``acquire``: ``slots[REFS, k]`` counts the
references to slot ``k``, and ``slots[FREE, 1 : 1 + slots[FREE, 0]]`` lists the free ones. At
most ``max_depth + 6`` are held at once: the transition's start (held for its caller), the two
edges and the sample, the first half's proposal at each of the (at most ``max_depth - 1``)
levels of the subtree being built, the point a step starts from, the one it writes and the one
its pass ahead writes (``integrators.leapfrog``). ``slots[REFS, max_depth + 7 :]`` records
that pass: the slot of the point it went on from, and its own slot (0 if none).

By position ``s``: ``logp, energy`` ``(2^max_depth,)`` in row ``s & (2^max_depth - 1)``, and
the velocity ``M^{-1} p`` and the prefix sum of momenta ``R[s]`` in ``rows`` ``(3 * 2^max_depth,
dim)``: ``R[s]`` in row ``s & (2^(max_depth + 1) - 1)``, the velocity in row ``2^(max_depth + 1)
+ (s & (2^max_depth - 1))`` (``step_rows``, ``check_rows``, ``start_rows``). (Their reference
counts are gone from the per-step path: ``nuts_transition`` borrows them and the tree builder
counts nothing, ``nutslite._numba``.)

**Rows on cache lines.** Each row of ``points`` and ``rows`` is ``width`` entries long, ``dim``
rounded up to a multiple of ``ROW_ALIGN`` (8 doubles, 64 bytes), and the arrays start on a
cache line, so every row does. The engine reads and writes the first ``dim`` entries only (the
rest is never touched, not even initialised). Packed loads and stores of 4 or 8 doubles then
never straddle two cache lines: with 175 coordinates, rows 1,400 bytes apart, three rows in four
did, and the leapfrog's second pass took twice as long on a row that started off a 32-byte
boundary (``benchmarks/README.md``, engine round 18).
"""
CompactTrajectory = namedtuple("CompactTrajectory", Trajectory._fields)
CompactTrajectory.__doc__ = """``Trajectory`` with its velocities and prefix sums in rows handed out
and taken back (the module's docstring): ``rows`` ``(6 (max_depth + 2), dim)``, and row
``ROW_OF`` of ``slots`` maps positions to them (``ring_rows``). For large ``dim``, where one row
per position would spill out of the caches (``allocate_trajectory``). A type of its own, so a
chain loop compiled for one kind contains that kind's code only (``step_rows``).
"""
DIVERGENT = 0  # the slot of ``Trajectory.points`` that receives a divergent state's position
START = 1  # the slot a chain's first point is placed in (``place_start``)
REFS, FREE, ROW_OF = 0, 1, 2  # the rows of ``Trajectory.slots``

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


def allocate_trajectory(dim: int, max_depth: int, compact: bool | None = None) -> Trajectory:
    """Buffers for transitions of at most ``2^max_depth`` states in ``dim`` dimensions.

    ``compact`` chooses how the velocities and prefix sums are kept: one row per position
    (``Trajectory``), or rows handed out and taken back (``CompactTrajectory``); both give the
    same draws, bit for bit. By default compact from ``COMPACT_ROWS_FROM_DIM`` (8,192)
    coordinates on, where the 64 rows of a depth-5 transition by position would take 4 MB,
    about one core's share of a server's L3 cache. Measured on radon-like data
    (``benchmarks/README.md``, engine round 15): compact rows took 11% less sampling time at
    17,005 coordinates and none less at 1,705; at 175, the free list's bookkeeping made each
    step 5-10% slower.

    Rows are padded to start on cache lines (``Trajectory``), so ``points`` and ``rows`` have
    ``width = ROW_ALIGN * ceil(dim / ROW_ALIGN)`` columns, of which the engine uses the first
    ``dim``.

    The rows by position are kept out of transparent huge pages (``nutslite._memory.small_pages``):
    a run writes only those of the positions its trajectories reach.

    Left uninitialised: a transition writes every row and slot before reading it (the slots'
    bookkeeping, the initial state and the prefix sums of positions -1 and 0 in
    ``nuts_transition``, every later row and slot by the step that reaches it), and zero-filling
    them would cost time per call."""
    cap = 1 << max_depth
    slots = max_depth + 7
    # compact rows held at once: the old trajectory and the pending halves of the subtree being
    # built, at most max_depth + 1 consecutive segments, hold 2 velocities each and 3 prefix sums
    # each besides the first R[a - 1]; then a step's two new rows
    held = 6 * (max_depth + 2)
    if compact is None:
        compact = dim >= COMPACT_ROWS_FROM_DIM
    compact = compact and held < 3 * cap  # otherwise the rows by position are fewer
    width = -(-dim // ROW_ALIGN) * ROW_ALIGN  # each row starts a cache line
    return (CompactTrajectory if compact else Trajectory)(
        points=aligned_empty((slots, 4, width)),
        slots=np.empty((3, 3 * cap + 3 + held) if compact else (2, slots + 2), dtype=np.int64),
        rows=small_pages(aligned_empty((held if compact else 3 * cap, width))),
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
def log_sum_exp_share(a, b):
    """``(log(exp(a) + exp(b)), exp(b) / (exp(a) + exp(b)))``: the log weight of two merged
    halves with log weights ``a`` and ``b``, and the final half's share of it, the probability of
    taking its proposal (Betancourt 2017, appendix A.3.1), without overflow and with one ``exp``.

    With ``e = exp(-|a - b|)``, the log sum is ``max(a, b) + log1p(e)``, the same operations as
    ``log_sum_exp`` is usually written with, and the share ``e / (1 + e)`` when ``a > b``, else
    ``1 / (1 + e)``. Stan computes the share as ``exp(b - log sum)``, a second ``exp`` for a
    number that differs from this one in its last bits at most, so a uniform draw falls on the
    other side of it with probability about ``1e-16``. libm only, so compiled and interpreted
    runs agree bit for bit. (A log weight is never ``-inf`` here: its state would have diverged.)
    """
    if a > b:
        e = math.exp(b - a)
        return a + math.log1p(e), e / (1.0 + e)
    e = math.exp(a - b)
    return b + math.log1p(e), 1.0 / (1.0 + e)


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
        dim = out.shape[1]  # the trajectory's rows are longer (``allocate_trajectory``)
        copy_row(z[Q, :dim], out[Q])
        copy_row(z[P, :dim], out[P])
        copy_row(v, out[V])
        copy_row(z[GRAD, :dim], out[GRAD])


@jit(inline="always")  # integer arithmetic on a shape, at six call sites
def ring_rows(traj):
    """``(mask, prefix_mask, prefix_base, free)`` of the trajectory's buffers (``Trajectory``):
    position ``s`` is in row ``s & mask`` of ``logp`` and ``energy``; with compact rows
    ``traj.slots[ROW_OF, s & mask]`` is the row of ``rows`` that holds its velocity and
    ``traj.slots[ROW_OF, prefix_base + (s & prefix_mask)]`` the one that holds its prefix sum
    ``R[s]``; ``traj.slots[ROW_OF, free]`` counts the rows handed back, listed from ``free + 2``
    on, and ``traj.slots[ROW_OF, free + 1]`` is the first row not yet handed out."""
    mask = traj.logp.shape[0] - 1
    return mask, 2 * mask + 1, mask + 1, 3 * mask + 3


@jit(inline="always")  # a few integer operations, at five call sites
def row_acquire(row_of, free):
    """A free row of ``Trajectory.rows`` (``row_of`` is ``traj.slots[ROW_OF]``, ``free`` as in
    ``ring_rows``): the last one handed back, or when none is, the first not yet handed out
    (``row_of[free + 1 + 0]``), chosen without a branch."""
    n = row_of[free]
    row = row_of[free + 1 + n]
    row_of[free] = n - (n > 0)
    row_of[free + 1] += n == 0
    return row


@jit(inline="always")  # one call site
def release_interior(traj, a, m, b):
    """Hand back the rows of ``[a, m]`` and ``[m + 1, b]`` that no check can read once they have
    merged: a later check reads of ``[a, b]`` only the velocities at ``a`` and ``b`` and the prefix
    sums ``R[a - 1], R[a], R[b - 1], R[b]`` (``merge_is_turning``), and of its neighbours only
    their own rows. Of the halves' rows, the velocities at ``m`` and ``m + 1`` and the prefix sums
    ``R[m - 1], R[m], R[m + 1]`` are the ones that can fall outside that set.

    Written without branches, as ``release`` is: whether a row falls outside follows the tree's
    shape, which the coin flips of the directions change from transition to transition. Each row
    is written past the end of the free list and counted only when it is free.
    """
    mask, prefix_mask, prefix_base, free = ring_rows(traj)
    row_of = traj.slots[ROW_OF]
    n = row_of[free]
    row_of[free + n + 2] = row_of[m & mask]
    n += m != a
    row_of[free + n + 2] = row_of[(m + 1) & mask]
    n += m + 1 != b
    for i in range(m - 1, m + 2):
        row_of[free + n + 2] = row_of[prefix_base + (i & prefix_mask)]
        n += (i != a - 1) & (i != a) & (i != b - 1) & (i != b)
    row_of[free] = n


# The rows of the velocities and prefix sums a step writes, a merge checks and a transition starts
# with: by position (``Trajectory``), or handed out and taken back (``CompactTrajectory``). Chosen
# by the trajectory's type while Numba types the caller (``nutslite._numba.by_type``), so a chain
# loop compiled for one kind has none of the other kind's code, and the by-position functions
# compile to the few integer operations that LLVM inlines.


@jit(_nrt=False)
def _step_rows_by_position(traj, s, direction):
    mask, prefix_mask, _, _ = ring_rows(traj)
    prior, written = (s - 1, s) if direction > 0 else (s, s - 1)
    return 2 * mask + 2 + (s & mask), prior & prefix_mask, written & prefix_mask


@jit(_nrt=False)
def _step_rows_compact(traj, s, direction):
    mask, prefix_mask, prefix_base, free = ring_rows(traj)
    row_of = traj.slots[ROW_OF]
    prior, written = (s - 1, s) if direction > 0 else (s, s - 1)
    v = row_acquire(row_of, free)
    row_of[s & mask] = v
    w = row_acquire(row_of, free)
    row_of[prefix_base + (written & prefix_mask)] = w
    return v, row_of[prefix_base + (prior & prefix_mask)], w


step_rows = by_type({Trajectory: _step_rows_by_position, CompactTrajectory: _step_rows_compact})
step_rows.__doc__ = """``(velocity, prior, written)``: the rows of ``traj.rows`` for a step to
position ``s`` in ``direction``: its velocity's, and the prefix sums it reads and writes (``R[s -
1]`` and ``R[s]`` forward, ``R[s]`` and ``R[s - 1]`` backward); compact rows are handed out here."""


@jit(_nrt=False)
def _check_rows_by_position(traj, a, m, b):
    mask, prefix_mask, _, _ = ring_rows(traj)
    v = 2 * mask + 2
    return (v + (a & mask), v + (b & mask), v + (m & mask), v + ((m + 1) & mask),
            (a - 1) & prefix_mask, b & prefix_mask, (m - 1) & prefix_mask, (m + 1) & prefix_mask)


@jit(_nrt=False)
def _check_rows_compact(traj, a, m, b):
    mask, prefix_mask, prefix_base, _ = ring_rows(traj)
    row_of = traj.slots[ROW_OF]
    rows = (row_of[a & mask], row_of[b & mask], row_of[m & mask], row_of[(m + 1) & mask],
            row_of[prefix_base + ((a - 1) & prefix_mask)], row_of[prefix_base + (b & prefix_mask)],
            row_of[prefix_base + ((m - 1) & prefix_mask)],
            row_of[prefix_base + ((m + 1) & prefix_mask)])
    release_interior(traj, a, m, b)  # read before any row is handed out again
    return rows


check_rows = by_type({Trajectory: _check_rows_by_position, CompactTrajectory: _check_rows_compact})
check_rows.__doc__ = """The rows that the checks of ``[a, m]`` and ``[m + 1, b]`` merging read:
the velocities at ``a, b, m, m + 1`` and the prefix sums ``R[a - 1], R[b], R[m - 1], R[m + 1]``;
compact rows that no later check reads are handed back here (``release_interior``)."""


@jit(_nrt=False)
def _start_rows_by_position(traj):
    mask, prefix_mask, _, _ = ring_rows(traj)
    return 2 * mask + 2, prefix_mask, 0


@jit(_nrt=False)
def _start_rows_compact(traj):
    _, prefix_mask, prefix_base, free = ring_rows(traj)
    row_of = traj.slots[ROW_OF]
    row_of[free] = 0  # no row handed back, none handed out
    row_of[free + 1] = 0
    v0 = row_acquire(row_of, free)
    row_of[0] = v0
    below = row_acquire(row_of, free)
    row_of[prefix_base + prefix_mask] = below
    at = row_acquire(row_of, free)
    row_of[prefix_base] = at
    return v0, below, at


start_rows = by_type({Trajectory: _start_rows_by_position, CompactTrajectory: _start_rows_compact})
start_rows.__doc__ = """``(velocity, below, at)``: the rows of position 0's velocity and of the
prefix sums ``R[-1]`` and ``R[0]``, as a transition starts (compact rows: all free before)."""


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


@jit(inline="always")  # two call sites; a call would pass its five arrays as 35 values
def merge_is_turning(traj, dim, a, m, b, recorder, merge_depth, top_level):
    """The three checks of Stan 2.21+ when ``[a, m]`` and ``[m + 1, b]`` merge: the whole
    segment ``[a, b]``, and each half extended by the neighbouring state of the other,
    ``[a, m + 1]`` and ``[m, b]``. A segment ``[c, d]`` has turned unless ``p#_c . rho > 0`` and
    ``p#_d . rho > 0`` with ``rho = R[d] - R[c - 1]``.

    All three are evaluated, as Stan does, so the recorder sees every one. Their six dot products
    are summed in one pass (``nutslite.engine.linalg.uturn_dots``). When two single states merge
    (``m == a``, ``b == a + 1``: every subtree of depth 1, and the first doubling), the three
    segments are all ``[a, b]``, with the same momentum sum ``R[b] - R[a - 1]`` and the same
    velocities: the six products are two, computed once (``segment_dots``, the same operations in
    the same order, so the same bits). Half of a tree's merges are of this kind. Compact rows that
    no later check reads are handed back as the rows are looked up (``check_rows``).
    """
    rows = traj.rows[:, :dim]  # the first ``dim`` entries of each (padded) row
    va, vb, vm, vn, ra, rb, rm, rn = check_rows(traj, a, m, b)
    if m == a:
        whole_a, whole_b = segment_dots_packed(rows, rows, va, vb, ra, rb)
        left_a, left_n, right_m, right_b = whole_a, whole_b, whole_a, whole_b
    else:
        whole_a, whole_b, left_a, left_n, right_m, right_b = uturn_dots_packed(
            rows, rows, va, vb, vm, vn, ra, rb, rm, rn,
        )
    whole = not (whole_a > 0.0 and whole_b > 0.0)
    left = not (left_a > 0.0 and left_n > 0.0)
    right = not (right_m > 0.0 and right_b > 0.0)
    record(recorder, CHECK, a, b, merge_depth, top_level, whole)
    record(recorder, CHECK, a, m + 1, merge_depth, top_level, left)
    record(recorder, CHECK, m, b, merge_depth, top_level, right)
    return whole or left or right


@jit(cache=False, _nrt=False)  # see the docstring
def build_tree(ctx, edge, direction, depth, source, go_on):
    """Build a subtree of ``2^depth`` states beyond position ``edge``, whose point is in slot
    ``source``, in ``direction``, for the transition ``ctx``: a ``Transition`` passed by
    reference (``nutslite._numba.by_reference``), so a call passes one pointer instead of the
    context's some 80 flattened members (``benchmarks/README.md``, engine round 17). ``go_on``
    says that a step of the same doubling follows this subtree's last one (it is the initial
    half of a larger subtree, or within one): the steps then pass ahead to the next one
    (chained steps, ``integrators.leapfrog``), all of them but the doubling's last.

    Hoffman & Gelman (2014) Alg. 3 with Stan's multinomial weights and extra checks. Returns
    ``(valid, log_weight, proposal, sum_accept, n_steps, divergent_position, proposal_slot,
    last_slot)``; ``valid`` is False when a state diverged or a sub-subtree turned, and the
    caller then discards the subtree. ``divergent_position`` is 0 when nothing diverged
    (position 0 is never built here). The subtree's proposal is in slot ``proposal_slot`` and
    its last state, the edge the next step starts from, in ``last_slot``: the caller owns one
    reference to each (the same slot twice for a single state). The caller's reference to
    ``source`` passes to the first step, which releases it. (A discarded subtree's slots are
    not given back: the next transition starts with all of them free but its start.)

    Compiled without reference counting (``_nrt=False``, ``nutslite._numba.jit``): its context is
    borrowed (``nuts_transition``), and it allocates nothing.

    Not cached on its own: Numba can reload a cached specialisation of a recursive function with
    its recursive call unresolved (an LLVM "Symbol not found" abort). Its callers are cached, and
    carry its compiled code with them.
    """
    dim = ctx.metric.diag.shape[0]  # the trajectory's rows are longer (``allocate_trajectory``)
    if depth == 0:
        # the base case: one leapfrog step from ``edge`` to ``s``, its point in a fresh slot;
        # by position, its velocity, energy, log weight ``H0 - H(s)`` and momentum prefix sum
        # (written out here: an inlined function would copy the context, which cost what it
        # saved; ``benchmarks/README.md``)
        traj = ctx.traj
        s = edge + direction
        r = s & (traj.logp.shape[0] - 1)
        # forward R[s] = R[s-1] + p_s; backward R[s-1] = R[s] - p_s (in the step's second pass)
        v_row, prior, written = step_rows(traj, s, direction)
        v = traj.rows[v_row, :dim]
        sign = 1.0 if direction > 0 else -1.0
        # the step's point goes to a fresh slot ``out`` (the subtree's proposal and its last
        # state), unless the step before passed ahead (``leapfrog``) from ``source``: its slot
        # ``ahead`` then holds this step's first pass already (in this direction, since a point
        # that a step wrote lies at an end of the trajectory, which grows outwards)
        k = traj.points.shape[0]  # the record of the pass ahead, after the reference counts
        ahead = traj.slots[REFS, k + 1]  # 0 if the last step did not pass ahead
        drifted = ahead != 0 and traj.slots[REFS, k] == source
        if drifted:
            out = ahead
            traj.slots[REFS, out] = 2
        else:
            if ahead != 0:
                release(traj.slots, ahead)  # no step went on from there
            out = acquire(traj.slots, 2)
        # with ``go_on``, this subtree's next step goes on from this one (if nothing turns or
        # diverges before it): pass ahead to it, into a slot held for it (slot 0 is never written)
        ahead = acquire(traj.slots, 1) if go_on else 0
        z = traj.points[out]
        logp, kinetic, passed_ahead = leapfrog(
            ctx.logp_grad, ctx.metric, direction * ctx.step_size, traj.points[source], z,
            MomentumSum(traj.rows[prior, :dim], traj.rows[written, :dim], sign, v),
            drifted, go_on, traj.points[ahead],
        )
        if ahead != 0 and not passed_ahead:
            release(traj.slots, ahead)
            ahead = 0
        traj.slots[REFS, k] = out
        traj.slots[REFS, k + 1] = ahead
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
            copy_row(z[Q, :dim], traj.points[DIVERGENT, Q, :dim])
        accept = 1.0 if log_w > 0.0 else math.exp(log_w)
        return not divergent, log_w, s, accept, 1, s if divergent else 0, out, out

    # the initial half, then the final half from its last state: one recursive call in a loop
    # rather than Stan's two calls, because Numba types each recursive call site by re-typing the
    # whole function (``benchmarks/README.md``, cold compile, round 11)
    half = 1 << (depth - 1)
    log_w, prop, prop_slot, sum_accept, n_steps, last = 0.0, 0, 0, 0.0, 0, source
    for final in range(2):
        valid, log_w_half, prop_half, acc, n, div, half_slot, last = build_tree(
            ctx, edge + final * direction * half, direction, depth - 1, last,
            go_on or final == 0,  # the initial half's last step is followed by the final half
        )
        sum_accept += acc
        n_steps += n
        if not valid:
            return False, log_w_half, prop_half, sum_accept, n_steps, div, half_slot, last
        if final == 0:
            log_w, prop, prop_slot = log_w_half, prop_half, half_slot
            continue
        # uniform multinomial sampling within the subtree
        log_w, share = log_sum_exp_share(log_w, log_w_half)
        take = uniform(ctx.rng) < share  # selects, not branches
        prop = prop_half if take else prop
        release(ctx.traj.slots, prop_slot if take else half_slot)
        prop_slot = half_slot if take else prop_slot

    first, last_position = edge + direction, edge + direction * 2 * half
    lo, hi = min(first, last_position), max(first, last_position)
    turning = merge_is_turning(ctx.traj, dim, lo, lo + half - 1, hi, ctx.recorder, depth, 0)
    record(ctx.recorder, SUBTREE, lo, hi, depth, 0, not turning)
    return not turning, log_w, prop, sum_accept, n_steps, 0, prop_slot, last


@jit(inline="always")  # a copy, at the chain loop's and the recorder's call sites
def place_start(traj, q, grad):
    """Put a chain's position ``q`` and gradient ``grad`` into slot ``START`` of
    ``traj.points`` for its first transition, and return the slot. Each later transition starts
    from the slot of the one before's sample (``nuts_transition``), so the point is not copied
    out of the trajectory and back in at every transition."""
    for i in range(q.shape[0]):
        traj.points[START, Q, i] = q[i]
        traj.points[START, GRAD, i] = grad[i]
    return START


@jit(inline="always")  # a copy, at the chain loop's two call sites
def take_point(traj, slot, q, grad):
    """Copy the position and gradient of slot ``slot`` of ``traj.points`` into ``q`` and
    ``grad`` (where a chain's point is read outside the trajectory)."""
    for i in range(q.shape[0]):
        q[i] = traj.points[slot, Q, i]
        grad[i] = traj.points[slot, GRAD, i]


@jit(inline="always")  # inlined into the chain loop: one compiled module less in a cold start
def nuts_transition(
    logp_grad, rng, traj, metric, step_size, start, logp0, max_depth, max_delta_h, recorder
):
    """One NUTS transition from the point in slot ``start`` of ``traj.points`` (its rows ``Q``
    and ``GRAD``; log density ``logp0``), as Stan's ``base_nuts::transition``: draw a momentum,
    then double the trajectory forward or backward at random until it turns, diverges or reaches
    ``max_depth`` doublings. The first transition's start is placed by ``place_start``; the next
    starts from this one's ``info.sample_slot``.

    The selected state's point is in slot ``info.sample_slot`` of ``traj.points``, its log
    density and energy in row ``info.proposal & (2^max_depth - 1)`` of ``traj.logp`` and
    ``traj.energy``; a divergent state's position is in ``traj.points[DIVERGENT, Q]``. The start's
    position and gradient are left as they were (its slot stays held until the next transition,
    so the caller can still read them). Returns a ``TransitionInfo``.
    """
    # borrowed (``nutslite._numba.borrowed``): the caller owns these arrays for longer than this
    # transition lasts, so the views made of them here and in the tree builder need not count
    # references
    rng, traj, metric = borrowed((rng, traj, metric))
    slots = traj.points.shape[0]
    n = 0
    for k in range(1, slots):  # every slot but DIVERGENT and the start is free
        traj.slots[REFS, k] = 0
        traj.slots[FREE, n + 1] = k
        n += k != start
    traj.slots[FREE, 0] = n
    traj.slots[REFS, start] = 4  # the left edge, the right edge, the sample, and the caller
    traj.slots[REFS, slots + 1] = 0  # no step has passed ahead (``build_tree``)
    dim = metric.diag.shape[0]  # the trajectory's rows are longer (``allocate_trajectory``)
    z0 = traj.points[start]
    v0_row, below, at = start_rows(traj)
    v0 = traj.rows[v0_row, :dim]  # the velocity of position 0
    # the momentum, its velocity and the prefix sums R[-1] = 0 and R[0] = p
    h0 = -logp0 + start_momentum(
        rng, metric, z0[P, :dim], v0, traj.rows[below, :dim], traj.rows[at, :dim]
    )
    traj.logp[0] = logp0
    traj.energy[0] = h0
    record_point(recorder, 0, z0, v0)
    # the tree builder reads the context through a pointer into this frame; the log density's
    # data and the recorder are borrowed as the arrays above are
    ctx = by_reference(
        borrowed(Transition(logp_grad, rng, metric, step_size, h0, max_delta_h, traj, recorder))
    )

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
            ctx, edge, direction, depth, edge_slot, False
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

        # biased progressive sampling at the top level: take the subtree's proposal with
        # probability min(1, w) with w = exp(log_w_sub - log_w), then log_w = log(exp(log_w) +
        # exp(log_w_sub)) as ``log_sum_exp_share`` computes it, whose exp(log_w_sub - log_w) when
        # log_w_sub <= log_w is that w: one exp for both
        if log_w_sub > log_w:
            take = True
            log_w = log_w_sub + math.log1p(math.exp(log_w - log_w_sub))
        else:
            w = math.exp(log_w_sub - log_w)
            take = uniform(rng) < w
            log_w += math.log1p(w)
        if take:
            proposal = prop_sub
            release(ctx.traj.slots, sample_slot)
            sample_slot = prop_slot
        else:
            release(ctx.traj.slots, prop_slot)

        if merge_is_turning(ctx.traj, dim, left, m, right, ctx.recorder, depth, 1):
            break

    return TransitionInfo(
        proposal, depth, n_steps, sum_accept / n_steps, divergent_position != 0,
        divergent_position, h0, left, right, lo, hi, sample_slot,
    )
