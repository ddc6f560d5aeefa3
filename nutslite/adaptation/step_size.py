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

**Initial step size** (Stan's ``base_hmc::init_stepsize``; cf. Hoffman & Gelman 2014, Alg. 4):
take one leapfrog step with a fresh momentum; if the energy change ``H0 - H`` exceeds ``log 0.8``,
keep doubling eps until it no longer does, otherwise keep halving until it does.
"""

from __future__ import annotations

import math
from collections import namedtuple

from nutslite._numba import jit
from nutslite.integrators import leapfrog
from nutslite.metric import sample_momentum, velocity

DualAveraging = namedtuple("DualAveraging", ["counter", "s_bar", "x_bar", "mu", "log_step_size"])
DualAveraging.__doc__ = """State of Nesterov dual averaging of log(step size) (all floats)."""

DA_GAMMA = 0.05
DA_KAPPA = 0.75
DA_T0 = 10.0

# status codes of find_initial_step_size
STEP_SIZE_OK = 0
STEP_SIZE_IMPROPER = 1  # grew past 1e7: Stan's "posterior is improper"
STEP_SIZE_ZERO = 2  # shrank to 0: "no acceptably small step size"


@jit
def dual_averaging_init(step_size):
    """A fresh dual-averaging state around ``mu = log(10 step_size)``."""
    return DualAveraging(0.0, 0.0, 0.0, math.log(10.0 * step_size), math.log(step_size))


@jit
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


@jit
def dual_averaging_final(state):
    """The step size to sample with after warmup: ``exp(x_bar)``."""
    return math.exp(state.x_bar)


@jit(inline="always")
def _trial_delta_h(logp_grad, rng, metric, step_size, q, logp, grad, scratch):
    """``H0 - H`` after one leapfrog step of ``step_size`` from ``q`` with a fresh momentum
    (NaN counts as a rejection, -inf). ``scratch`` is a ``(5, dim)`` work array."""
    p0, v, q1, p1, grad1 = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    sample_momentum(rng, metric, p0)
    h0 = -logp + velocity(metric, p0, v)
    logp1, kinetic = leapfrog(logp_grad, step_size, metric, q, p0, grad, q1, p1, grad1, v)
    h = -logp1 + kinetic
    if math.isnan(h):
        return -math.inf
    return h0 - h


@jit
def find_initial_step_size(logp_grad, rng, metric, step_size, q, logp, grad, scratch):
    """Stan's heuristic. ``scratch`` is a ``(5, dim)`` work array. Returns ``(step_size,
    status)``; ``status`` is ``STEP_SIZE_OK`` or an error code for the caller to report."""
    if step_size == 0.0 or step_size > 1e7 or math.isnan(step_size):
        return step_size, STEP_SIZE_OK
    threshold = math.log(0.8)
    delta_h = _trial_delta_h(logp_grad, rng, metric, step_size, q, logp, grad, scratch)
    direction = 1 if delta_h > threshold else -1
    while True:
        delta_h = _trial_delta_h(logp_grad, rng, metric, step_size, q, logp, grad, scratch)
        if direction == 1 and not delta_h > threshold:
            break
        if direction == -1 and not delta_h < threshold:
            break
        step_size = step_size * 2.0 if direction == 1 else step_size * 0.5
        if step_size > 1e7:
            return step_size, STEP_SIZE_IMPROPER
        if step_size == 0.0:
            return step_size, STEP_SIZE_ZERO
    return step_size, STEP_SIZE_OK
