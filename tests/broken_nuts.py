r"""A compact NUTS, written independently of nutslite's engine, with switchable bugs.

It exists to prove that ``nutslite.testing`` has teeth: in its correct mode it must pass every
check, and each bug below must be caught by at least one of them. The algorithm is Stan's
(``base_nuts.hpp``; Hoffman & Gelman 2014, Alg. 3; Betancourt 2017, appendix A): multinomial
sampling, uniform inside subtrees and biased progressive at the top level, the generalised U-turn
criterion with the two extra checks of Stan 2.21+, divergences at ``H - H0 > 1000``. Unlike the
engine, it stores states by position in a plain array, sums momenta directly for each criterion
and uses its own simple warmup (Stan's initial step-size heuristic, dual averaging, and two
variance windows for a diagonal mass matrix).

Bugs (``BUGS``), each a mistake sampler authors make:

``half_step``
    leapfrog opens with a full momentum step instead of a half (first order, not reversible);
``mass_wrong_side``
    the position moves by ``eps M p`` instead of ``eps M^{-1} p`` (no longer conserves ``H``);
``momentum_wrong_side``
    momenta drawn from ``N(0, M^{-1})`` instead of ``N(0, M)``;
``missing_jacobian``
    the log-Jacobian ``+theta_i`` of each log-transformed coordinate is left out;
``last_state``
    the transition returns the last state of the trajectory instead of sampling one;
``accept_ignores_rejected``
    the acceptance statistic averages over accepted subtrees only;
``uniform_top_level``
    uniform instead of biased progressive sampling at the top level;
``no_extra_checks``
    only the whole-segment U-turn check (Stan before 2.21, NumPyro).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from nutslite.model import Model
from nutslite.recorder import TransitionRecord

BUGS = (
    "half_step",
    "mass_wrong_side",
    "momentum_wrong_side",
    "missing_jacobian",
    "last_state",
    "accept_ignores_rejected",
    "uniform_top_level",
    "no_extra_checks",
)
(
    HALF_STEP,
    MASS_WRONG_SIDE,
    MOMENTUM_WRONG_SIDE,
    MISSING_JACOBIAN,
    LAST_STATE,
    ACCEPT_IGNORES_REJECTED,
    UNIFORM_TOP_LEVEL,
    NO_EXTRA_CHECKS,
) = range(1, len(BUGS) + 1)
CORRECT = 0
MAX_DELTA_H = 1000.0


def bug_code(bug: str | None) -> int:
    return CORRECT if bug is None else BUGS.index(bug) + 1


@njit(cache=True)
def log_density(logp_grad, q, grad, jacobian, bug):
    """``log p(q)`` into ``grad``; with ``missing_jacobian`` the ``+q_i`` terms are dropped."""
    logp = logp_grad(q, grad)
    if bug == MISSING_JACOBIAN:
        for i in jacobian:
            logp -= q[i]
            grad[i] -= 1.0
    return logp


@njit(cache=True)
def leapfrog_step(logp_grad, eps, m, q, p, grad, jacobian, bug):
    """One leapfrog step in place (``m`` is the diagonal of ``M^{-1}``); returns ``log p``."""
    first = eps if bug == HALF_STEP else 0.5 * eps
    p += first * grad
    if bug == MASS_WRONG_SIDE:
        q += eps * p / m
    else:
        q += eps * m * p
    logp = log_density(logp_grad, q, grad, jacobian, bug)
    p += 0.5 * eps * grad
    return logp


@njit(cache=True)
def kinetic(m, p):
    return 0.5 * np.sum(m * p * p)


@njit(cache=True)
def is_turning(buf, m, a, b, depth, top, log):
    """Generalised criterion on positions ``[a, b]``, logged into ``log = (checks, count)``."""
    p_all, off = buf[1], buf[5]
    rho = p_all[a + off : b + off + 1].sum(axis=0)
    turning = not (np.sum(m * p_all[a + off] * rho) > 0 and np.sum(m * p_all[b + off] * rho) > 0)
    checks, count = log
    row = checks[count[0]]
    row[0], row[1], row[2], row[3], row[4] = a, b, depth, top, turning
    count[0] += 1
    return turning


@njit(cache=True)
def merge_is_turning(buf, m, a, mid, b, depth, top, log, bug):
    turning = is_turning(buf, m, a, b, depth, top, log)
    if bug != NO_EXTRA_CHECKS:
        turning |= is_turning(buf, m, a, mid + 1, depth, top, log)
        turning |= is_turning(buf, m, mid, b, depth, top, log)
    return turning


@njit
def build_tree(logp_grad, rng, buf, eps, m, edge, direction, depth, h0, jacobian, bug, log):
    """Hoffman & Gelman's recursion: ``2^depth`` states beyond ``edge``. Returns ``(valid,
    log_weight, proposal, sum_accept, n_steps)``. (Recursive, hence not cached on its own.)"""
    q_all, p_all, g_all, lp_all, h_all, off = buf
    if depth == 0:
        s = edge + direction
        q_all[s + off] = q_all[edge + off]
        p_all[s + off] = p_all[edge + off]
        g_all[s + off] = g_all[edge + off]
        lp = leapfrog_step(
            logp_grad, direction * eps, m, q_all[s + off], p_all[s + off], g_all[s + off],
            jacobian, bug,
        )
        h = -lp + kinetic(m, p_all[s + off])
        if math.isnan(h):
            h = math.inf
        lp_all[s + off] = lp
        h_all[s + off] = h
        return h - h0 <= MAX_DELTA_H, h0 - h, s, min(1.0, math.exp(h0 - h)), 1
    half = 1 << (depth - 1)
    valid, w_init, prop, acc, n = build_tree(
        logp_grad, rng, buf, eps, m, edge, direction, depth - 1, h0, jacobian, bug, log
    )
    if not valid:
        return False, w_init, prop, acc, n
    valid, w_final, prop_final, acc2, n2 = build_tree(
        logp_grad, rng, buf, eps, m, edge + direction * half, direction, depth - 1, h0,
        jacobian, bug, log,
    )
    if not valid:
        return False, w_final, prop_final, acc + acc2, n + n2
    w = np.logaddexp(w_init, w_final)
    if rng.random() < math.exp(w_final - w):  # uniform multinomial inside a subtree
        prop = prop_final
    lo = min(edge + direction, edge + direction * 2 * half)
    turning = merge_is_turning(buf, m, lo, lo + half - 1, lo + 2 * half - 1, depth, 0, log, bug)
    return not turning, w, prop, acc + acc2, n + n2


@njit(cache=True)
def transition(logp_grad, rng, buf, eps, m, max_depth, jacobian, bug, log, tops):
    """One transition from the state at position 0 of ``buf`` (whose position, gradient and log
    density are set). Returns ``(proposal, depth, n_steps, accept_stat, left, right, lo, hi,
    h0)``; ``tops`` receives the accepted trajectory after each doubling."""
    q_all, p_all, g_all, lp_all, h_all, off = buf
    for i in range(m.shape[0]):
        z = rng.standard_normal()
        p_all[off, i] = z * math.sqrt(m[i]) if bug == MOMENTUM_WRONG_SIDE else z / math.sqrt(m[i])
    h0 = -lp_all[off] + kinetic(m, p_all[off])
    h_all[off] = h0
    left = right = lo = hi = proposal = depth = n_steps = 0
    log_w, sum_acc, kept_acc, kept_n, last = 0.0, 0.0, 0.0, 0, 0
    while depth < max_depth:
        direction = 1 if rng.random() > 0.5 else -1
        edge = right if direction > 0 else left
        valid, w_sub, prop_sub, acc, n = build_tree(
            logp_grad, rng, buf, eps, m, edge, direction, depth, h0, jacobian, bug, log
        )
        n_steps += n
        sum_acc += acc
        if direction > 0:
            hi = edge + n
        else:
            lo = edge - n
        if not valid:
            break
        kept_acc += acc
        kept_n += n
        if direction > 0:
            right, mid = edge + (1 << depth), edge
        else:
            left, mid = edge - (1 << depth), edge - 1
        last = right if direction > 0 else left
        depth += 1
        tops[depth - 1, 0] = left
        tops[depth - 1, 1] = right
        if bug == UNIFORM_TOP_LEVEL:
            replace = math.exp(w_sub - np.logaddexp(log_w, w_sub))
        else:  # biased progressive sampling
            replace = min(1.0, math.exp(w_sub - log_w))
        if rng.random() < replace:
            proposal = prop_sub
        log_w = np.logaddexp(log_w, w_sub)
        if merge_is_turning(buf, m, left, mid, right, depth, 1, log, bug):
            break
    if bug == LAST_STATE:
        proposal = last
    if bug == ACCEPT_IGNORES_REJECTED and kept_n > 0:
        accept = kept_acc / kept_n
    else:
        accept = sum_acc / n_steps
    return proposal, depth, n_steps, accept, left, right, lo, hi, h0


def allocate(dim: int, max_depth: int):
    """State buffers by position ``-2^max_depth .. 2^max_depth`` and the check/subtree logs."""
    off = 1 << max_depth
    size = 2 * off + 1
    buf = (
        np.zeros((size, dim)), np.zeros((size, dim)), np.zeros((size, dim)), np.zeros(size),
        np.zeros(size), off,
    )
    log = (np.zeros((3 * size, 5), dtype=np.int64), np.zeros(1, dtype=np.int64))
    return buf, log, np.zeros((max_depth, 2), dtype=np.int64)


@njit(cache=True)
def find_step_size(logp_grad, rng, buf, eps, m, jacobian, bug):
    """Stan's heuristic: double or halve ``eps`` until one leapfrog step's acceptance
    ``exp(H0 - H)`` crosses 0.8. The state at position 0 is left as it was."""
    q_all, p_all, g_all, lp_all, _, off = buf
    q, g = q_all[off + 1], g_all[off + 1]
    direction = 0
    while 1e-8 < eps < 1e7:
        q[:] = q_all[off]
        g[:] = g_all[off]
        p = np.empty(m.shape[0])
        for i in range(m.shape[0]):
            p[i] = rng.standard_normal() / math.sqrt(m[i])
        h0 = -lp_all[off] + kinetic(m, p)
        lp = leapfrog_step(logp_grad, eps, m, q, p, g, jacobian, bug)
        delta = h0 - (-lp + kinetic(m, p))
        up = delta > math.log(0.8)
        if direction == 0:
            direction = 1 if up else -1
        elif up != (direction > 0):
            break
        eps = eps * 2.0 if direction > 0 else eps * 0.5
    return eps


@njit(cache=True)
def run_chain(logp_grad, rng, q0, n_tune, n_draws, max_depth, jacobian, bug, target_accept):
    """Warmup and sampling. Warmup: 15% step size only, then two variance windows (1/3 and 2/3 of
    the next 75%) each followed by the step-size heuristic and a dual-averaging restart, then 10%
    step size only; dual averaging as Stan (gamma 0.05, t0 10, kappa 0.75, mu log(10 eps)).
    Returns the draws ``(n_draws, dim)``."""
    dim = q0.shape[0]
    off = 1 << max_depth
    size = 2 * off + 1
    buf = (
        np.zeros((size, dim)), np.zeros((size, dim)), np.zeros((size, dim)), np.zeros(size),
        np.zeros(size), off,
    )
    log = (np.zeros((3 * size, 5), dtype=np.int64), np.zeros(1, dtype=np.int64))
    tops = np.zeros((max_depth, 2), dtype=np.int64)
    m = np.ones(dim)
    buf[0][off] = q0
    buf[3][off] = log_density(logp_grad, buf[0][off], buf[2][off], jacobian, bug)
    eps = find_step_size(logp_grad, rng, buf, 1.0, m, jacobian, bug)
    mu, s_bar, x_bar, t = math.log(10 * eps), 0.0, 0.0, 0
    start = int(0.15 * n_tune)
    stop = n_tune - int(0.1 * n_tune)
    window_ends = (start + (stop - start) // 3, stop)
    mean, m2, count = np.zeros(dim), np.zeros(dim), 0
    draws = np.empty((n_draws, dim))
    for it in range(n_tune + n_draws):
        log[1][0] = 0
        prop, _, _, accept, _, _, _, _, _ = transition(
            logp_grad, rng, buf, eps, m, max_depth, jacobian, bug, log, tops
        )
        if prop != 0:
            buf[0][off] = buf[0][prop + off]
            buf[2][off] = buf[2][prop + off]
            buf[3][off] = buf[3][prop + off]
        if it >= n_tune:
            draws[it - n_tune] = buf[0][off]
            continue
        t += 1
        s_bar += (target_accept - min(1.0, accept) - s_bar) / (t + 10.0)
        x = mu - s_bar * math.sqrt(t) / 0.05
        w = t**-0.75
        x_bar = w * x + (1.0 - w) * x_bar
        eps = math.exp(x)
        if start <= it < stop:  # Welford
            count += 1
            delta = buf[0][off] - mean
            mean += delta / count
            m2 += delta * (buf[0][off] - mean)
            if it + 1 == window_ends[0] or it + 1 == window_ends[1]:
                m[:] = (count / (count + 5.0)) * m2 / (count - 1) + 1e-3 * 5.0 / (count + 5.0)
                mean[:] = 0.0
                m2[:] = 0.0
                count = 0
                eps = find_step_size(logp_grad, rng, buf, eps, m, jacobian, bug)
                mu, s_bar, x_bar, t = math.log(10 * eps), 0.0, 0.0, 0
        if it == n_tune - 1:
            eps = math.exp(x_bar)
    return draws


class BrokenNuts:
    """The sampler with one bug (``None``: correct), in the forms nutslite.testing accepts."""

    def __init__(self, bug: str | None = None, tune: int = 1000, max_treedepth: int = 10) -> None:
        self.bug = bug
        self.code = bug_code(bug)
        self.tune = tune
        self.max_treedepth = max_treedepth

    def __repr__(self) -> str:
        return f"BrokenNuts({self.bug!r})"

    def __call__(self, model: Model, n_draws: int, seed: int) -> np.ndarray:
        """``sampler(model, n_draws, seed) -> draws (n_draws, dim)`` for ``check_sampler``."""
        rng = np.random.default_rng(seed)
        q0 = rng.uniform(-2.0, 2.0, model.dim)
        return run_chain(
            model.logp_grad_function, rng, q0, self.tune, n_draws, self.max_treedepth,
            np.array(model.log_transformed, dtype=np.int64), self.code, 0.8,
        )

    def integrator(self, model, q, p, step_size, inv_mass, n_steps):
        """The integrator protocol of ``nutslite.testing.invariants`` (diagonal ``inv_mass``)."""
        q, p = np.array(q, dtype=np.float64), np.array(p, dtype=np.float64)
        m = np.ones(model.dim) if inv_mass is None else np.asarray(inv_mass, dtype=np.float64)
        grad = np.empty(model.dim)
        jac = np.array(model.log_transformed, dtype=np.int64)
        log_density(model.logp_grad_function, q, grad, jac, self.code)
        for _ in range(n_steps):
            leapfrog_step(model.logp_grad_function, step_size, m, q, p, grad, jac, self.code)
        return q, p

    def record(self, model, q, step_size, inv_mass=None, seed=0, max_treedepth=10):
        """The recorder protocol: one transition as a ``nutslite.TransitionRecord``."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        m = np.ones(model.dim) if inv_mass is None else np.asarray(inv_mass, dtype=np.float64)
        buf, log, tops = allocate(model.dim, max_treedepth)
        off = buf[5]
        jac = np.array(model.log_transformed, dtype=np.int64)
        buf[0][off] = q
        buf[3][off] = log_density(
            model.logp_grad_function, buf[0][off], buf[2][off], jac, self.code
        )
        prop, depth, n_steps, accept, left, right, lo, hi, h0 = transition(
            model.logp_grad_function, rng, buf, float(step_size), m, max_treedepth, jac,
            self.code, log, tops,
        )
        rows = np.arange(lo, hi + 1) + off
        # only the top-level subtree rows: the checks read nothing else of them
        subtrees = np.array(
            [(a, b, k + 1, 1, 1) for k, (a, b) in enumerate(tops[:depth])], dtype=np.int64
        ).reshape(-1, 5)
        return TransitionRecord(
            index=np.arange(lo, hi + 1), positions=buf[0][rows].copy(),
            momenta=buf[1][rows].copy(), velocities=buf[1][rows] * m,
            gradients=buf[2][rows].copy(), logp=buf[3][rows].copy(),
            energies=buf[4][rows].copy(), log_weights=h0 - buf[4][rows],
            accepted=(np.arange(lo, hi + 1) >= left) & (np.arange(lo, hi + 1) <= right),
            left=int(left), right=int(right), selected=int(prop), depth=int(depth),
            n_steps=int(n_steps), accept_stat=float(accept),
            diverging=bool(np.any(buf[4][rows] - h0 > MAX_DELTA_H)), divergent_position=0,
            energy0=float(h0), subtrees=subtrees, checks=log[0][: log[1][0]].copy(),
            step_size=float(step_size), inv_mass=np.diag(m),
        )
