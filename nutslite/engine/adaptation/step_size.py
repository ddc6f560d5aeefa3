r"""Step-size adaptation: Stan's initial heuristic and Nesterov dual averaging.

**Dual averaging** (Hoffman & Gelman 2014, sec. 3.2, eq. 6, after Nesterov 2009), as in Stan's
``stepsize_adaptation.hpp``. After warmup iteration ``t`` with acceptance statistic
``alpha_t = min(1, accept_stat)`` and target ``delta``:

    s_bar_t = (1 - 1/(t + t0)) s_bar_{t-1} + (delta - alpha_t) / (t + t0)
    x_t     = mu - sqrt(t) / gamma * s_bar_t                 (log step size used next)
    x_bar_t = t^{-kappa} x_t + (1 - t^{-kappa}) x_bar_{t-1}  (its weighted average)

with gamma = 0.05, kappa = 0.75, t0 = 10 and mu = log(10 eps_0). After warmup the step size is
``exp(x_bar)``. The state restarts (t = 0, s_bar = x_bar = 0, mu = log(10 eps)) after every
mass-matrix update.

*Short warmups (a departure from Stan).* The offset ``log 10`` in ``mu`` makes the first iterates
try step sizes ten times the heuristic's, and it takes the average ``x_bar`` some tens of updates
to lose it: after one update ``x_bar = x_1``, about ``log(10 eps_0)`` whatever the acceptance
was. Stan keeps the offset whatever the warmup's length, so a warmup of a few iterations ends
with a step size several times too large (at ``tune=1`` every transition of a 50-dimensional
normal diverged). With fewer than ``SHORT_WARMUP`` warmup iterations nutslite centres dual
averaging on the heuristic's step size itself, ``mu = log eps_0`` (``dual_averaging_start``).
Stan's ``x_bar = 0`` at a restart gives ``exp(0) = 1`` when no update follows the restart
(stan-dev/stan#3345); here ``dual_averaging_final`` then returns the restart's own step size.
Such a warmup (and ``tune=0``, which has none) also starts from a cautious step size: half the
largest one the heuristic saw pass its test (``cautious=True``), where Stan keeps the first one
that failed it when doubling. On a standard normal the heuristic's single leapfrog step often
passes at 2, the leapfrog's stability limit, where whole trajectories are rejected, and a few
dual-averaging updates cannot recover from that. The final step size of a dual averaging with
fewer than ``DA_MIN_UPDATES`` updates is shrunk towards ``exp(mu)`` by ``t / (t + t0)``, the
weight ``t0`` already gives the first iterates. Over ``tune`` from 1 to 200 the mean acceptance
after warmup then stays within 0.8 to 0.98 on small Gaussians (``tests/test_short_warmup.py``).
Without warmup that step size is used as it is: nothing steers the acceptance rate.

**Initial step size** (Stan's ``base_hmc::init_stepsize``; cf. Hoffman & Gelman 2014, Alg. 4):
take one leapfrog step with a fresh momentum; if the energy change ``H0 - H`` exceeds ``log 0.8``,
keep doubling eps until it no longer does, otherwise keep halving until it does.
"""

from __future__ import annotations

import math
from collections import namedtuple

from nutslite._numba import jit
from nutslite.engine.adaptation.status import STEP_SIZE_IMPROPER, STEP_SIZE_ZERO, WARMUP_OK
from nutslite.engine.integrators import GRAD, MomentumSum, P, Q, V, leapfrog
from nutslite.engine.metric import start_momentum

DualAveraging = namedtuple("DualAveraging", ["counter", "s_bar", "x_bar", "mu", "log_step_size"])
DualAveraging.__doc__ = """State of Nesterov dual averaging of log(step size) (all floats)."""

DA_GAMMA = 0.05
DA_KAPPA = 0.75
DA_T0 = 10.0
SHORT_WARMUP = 20  # fewer warmup iterations: no exploration offset (see "Short warmups" above)
DA_MIN_UPDATES = 10  # fewer updates: the final step size is shrunk towards exp(mu)


@jit(inline="always")  # one call site per compile: no compile of its own
def dual_averaging_init(step_size):
    """A fresh dual-averaging state around ``mu = log(10 step_size)``."""
    return DualAveraging(0.0, 0.0, 0.0, math.log(10.0 * step_size), math.log(step_size))


@jit(inline="always")  # one call site per compile: no compile of its own
def dual_averaging_update(state, accept_stat, target_accept):
    """One dual-averaging update; returns the new state. Stan clips the statistic at 1."""
    alpha = min(1.0, accept_stat)
    t = state.counter + 1.0
    eta = 1.0 / (t + DA_T0)
    s_bar = (1.0 - eta) * state.s_bar + eta * (target_accept - alpha)
    x = state.mu - s_bar * math.sqrt(t) / DA_GAMMA
    w = t ** (-DA_KAPPA)
    x_bar = (1.0 - w) * state.x_bar + w * x
    return DualAveraging(t, s_bar, x_bar, state.mu, x)


def dual_averaging_start(user_step_size: float, step_size: float, num_warmup: int):
    """The state warmup starts from, after the heuristic found ``step_size``: Stan's ``mu =
    log(10 user_step_size)``, or ``mu = log(step_size)`` for a warmup shorter than
    ``SHORT_WARMUP`` (module docstring)."""
    centre = 10.0 * user_step_size if num_warmup >= SHORT_WARMUP else step_size
    return DualAveraging(0.0, 0.0, 0.0, math.log(centre), math.log(step_size))


@jit(inline="always")  # one call site per compile: no compile of its own
def dual_averaging_final(state):
    """The step size to sample with after warmup: ``exp(x_bar)``; with no update since the last
    restart, the restart's step size (Stan's ``exp(0) = 1``; module docstring)."""
    t = state.counter
    if t == 0.0:
        return math.exp(state.log_step_size)
    if t < DA_MIN_UPDATES:
        return math.exp(state.mu + (state.x_bar - state.mu) * t / (t + DA_T0))
    return math.exp(state.x_bar)


@jit(inline="always")  # one call site: no compile of its own
def _trial_delta_h(logp_grad, rng, metric, step_size, q, logp, grad, scratch):
    """``H0 - H`` after one leapfrog step of ``step_size`` from ``q`` with a fresh momentum
    (NaN counts as a rejection, -inf). ``scratch`` is a ``(5, dim)`` work array: its first four
    rows hold the point (``nutslite.engine.integrators``) and are stepped in place; the fifth
    receives momentum sums nobody reads. The momentum is drawn by ``start_momentum``, which also
    writes a transition's first two prefix sums (here to that row), and the step asks for a sum
    (with sign 0, and the velocity to the point's own row) and is not chained, only so that both
    call the same compiled functions as a transition: one specialisation of each to compile, not
    two (about 0.4 s of a cold start for the leapfrog, ``benchmarks/README.md``, round 6)."""
    z = scratch[:4]
    for i in range(q.shape[0]):
        z[Q, i] = q[i]
        z[GRAD, i] = grad[i]
    unread = scratch[4]
    h0 = -logp + start_momentum(rng, metric, z[P], z[V], unread, unread)
    logp1, kinetic, _ = leapfrog(
        logp_grad, metric, step_size, z, z, MomentumSum(unread, unread, 0.0, z[V]), False, False, z
    )
    h = -logp1 + kinetic
    if math.isnan(h):
        return -math.inf
    return h0 - h


@jit(no_cfunc_wrapper=True)  # called from the chain loop (and from Python in tests)
def find_initial_step_size(
    logp_grad, rng, metric, step_size, q, logp, grad, scratch, cautious=False
):
    """Stan's heuristic. ``scratch`` is a ``(5, dim)`` work array. Returns ``(step_size,
    status)``; ``status`` is ``WARMUP_OK`` or an error code for the caller to report.

    While doubling, Stan stops at (and returns) the first step size that fails the test, which
    dual averaging then corrects. ``cautious=True`` returns half the largest step size that
    passed instead, for warmups too short to correct it (module docstring)."""
    if step_size == 0.0 or step_size > 1e7 or math.isnan(step_size):
        return step_size, WARMUP_OK
    threshold = math.log(0.8)
    direction = 0  # set by the first trial: double while it passes, halve while it fails
    doubled = False
    while True:  # one call site: ``_trial_delta_h`` is inlined, and compiled once
        delta_h = _trial_delta_h(logp_grad, rng, metric, step_size, q, logp, grad, scratch)
        if direction == 0:
            direction = 1 if delta_h > threshold else -1
            continue
        if direction == 1 and not delta_h > threshold:
            if cautious:
                step_size *= 0.25 if doubled else 0.5
            break
        if direction == -1 and not delta_h < threshold:
            if cautious:
                step_size *= 0.5
            break
        step_size = step_size * 2.0 if direction == 1 else step_size * 0.5
        doubled = direction == 1
        if step_size > 1e7:
            return step_size, STEP_SIZE_IMPROPER
        if step_size == 0.0:
            return step_size, STEP_SIZE_ZERO
    return step_size, WARMUP_OK
