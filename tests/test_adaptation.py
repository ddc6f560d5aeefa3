"""Warmup pieces against Stan's definitions, and the structure of a recorded transition."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nutslite as nl
from nutslite import scheduler
from nutslite.engine.adaptation import ADAPTATIONS
from nutslite.engine.adaptation.mass_matrix import (
    BACKGROUND,
    N_BG,
    X_MEAN,
    N,
    adaptation_collect,
    adaptation_restart,
    adaptation_update,
)
from nutslite.engine.adaptation.status import STEP_SIZE_IMPROPER, WARMUP_OK
from nutslite.engine.adaptation.step_size import (
    DA_MIN_UPDATES,
    dual_averaging_final,
    dual_averaging_init,
    dual_averaging_update,
    find_initial_step_size,
)
from nutslite.engine.adaptation.windows import (
    EARLY_MAX_DEPTH,
    UNCAPPED,
    nutpie_schedule,
    stan_schedule,
)
from nutslite.engine.metric import (
    as_matrix,
    dense_metric,
    diagonal_metric,
    low_rank_metric,
    sample_momentum,
    velocity,
)
from nutslite.models import zoo


def test_stan_windows_for_1000_warmup():
    s = stan_schedule(1000)
    assert s.windows == [(75, 99), (100, 149), (150, 249), (250, 449), (450, 949)]
    assert s.collect.sum() == 1000 - 75 - 50


def test_stan_windows_resize_and_skip():
    assert stan_schedule(19).windows == []  # fewer than 20: no metric adaptation
    # 20 to 149: Stan logs a resize to 15% / 75% / 10% but its code never ends a window
    # (stan-dev/stan#3380), so the metric is not adapted
    assert stan_schedule(100).windows == [] and not stan_schedule(149).collect.any()
    assert stan_schedule(150).windows == [(75, 99)]  # exactly 75 + 25 + 50: no resize
    # 2000: the 400-long window would leave less than twice its size, so it stretches
    assert stan_schedule(2000).windows[-2:] == [(450, 849), (850, 1949)]


@given(st.integers(150, 5000))
def test_windows_tile_the_slow_stage(n):
    s = stan_schedule(n)
    windows = s.windows
    assert windows, n
    assert all(b + 1 == c for (_, b), (c, _) in zip(windows, windows[1:], strict=False))
    first, last = windows[0][0], windows[-1][1]
    assert np.array_equal(np.flatnonzero(s.collect), np.arange(first, last + 1))
    assert last == n - s.collect[::-1].argmax() - 1  # the last window closes the slow stage
    # each window but the last doubles its predecessor; the last is stretched (or, as in Stan,
    # cut short) to end where the terminal buffer begins
    sizes = [b - a + 1 for a, b in windows]
    assert all(later == 2 * earlier for earlier, later in zip(sizes, sizes[1:-1], strict=False))


def test_dual_averaging_matches_its_equations():
    """Hoffman & Gelman (2014) eq. 6 with Stan's constants, iterated by hand."""
    state = dual_averaging_init(0.5)
    assert state.mu == math.log(5.0)
    s_bar = x_bar = 0.0
    for t, alpha in enumerate([0.2, 0.95, 1.3, 0.6, 0.85], start=1):
        state = dual_averaging_update(state, alpha, 0.8)
        eta = 1 / (t + 10)
        s_bar = (1 - eta) * s_bar + eta * (0.8 - min(alpha, 1.0))
        x = math.log(5.0) - s_bar * math.sqrt(t) / 0.05
        x_bar = t**-0.75 * x + (1 - t**-0.75) * x_bar
        assert math.isclose(state.log_step_size, x, rel_tol=1e-14)
        assert math.isclose(state.x_bar, x_bar, rel_tol=1e-14, abs_tol=1e-15)
    # fewer than DA_MIN_UPDATES updates: shrunk towards exp(mu) by t / (t + t0)
    # (engine/adaptation/step_size.py)
    t = state.counter
    shrunk = math.exp(state.mu + (state.x_bar - state.mu) * t / (t + 10))
    assert math.isclose(dual_averaging_final(state), shrunk, rel_tol=1e-14)
    for _ in range(DA_MIN_UPDATES - 5):
        state = dual_averaging_update(state, 0.7, 0.8)
    assert dual_averaging_final(state) == math.exp(state.x_bar)  # Stan's from then on


def test_dual_averaging_moves_the_step_size_the_right_way():
    high = low = dual_averaging_init(1.0)
    for _ in range(50):
        high = dual_averaging_update(high, 1.0, 0.8)  # accepting everything: grow
        low = dual_averaging_update(low, 0.1, 0.8)  # rejecting: shrink
    assert dual_averaging_final(high) > 1.0 > dual_averaging_final(low)


def _collect(adaptation, x, g):
    state = ADAPTATIONS[adaptation].estimator(x.shape[1], len(x))
    for row, grow in zip(x, g, strict=True):
        adaptation_collect(state, row, grow)
    return state


@given(st.integers(2, 200), st.integers(0, 2**31))
def test_welford_matches_numpy_and_stan_regularisation(n, seed):
    x = np.random.default_rng(seed).normal(size=(n, 3)) * [1e-3, 1.0, 1e3]
    state = _collect("stan", x, x)
    metric = diagonal_metric(np.ones(3))
    assert adaptation_update(state, metric)
    expected = (n / (n + 5)) * x.var(axis=0, ddof=1) + 1e-3 * 5 / (n + 5)
    np.testing.assert_allclose(metric.diag, expected, rtol=1e-9)
    np.testing.assert_allclose(state.moments[X_MEAN], x.mean(axis=0), rtol=1e-9, atol=1e-12)
    adaptation_restart(state)
    assert state.counts[N] == 0 and not state.moments.any()


@given(st.integers(2, 100), st.integers(0, 2**31))
def test_dense_welford_matches_numpy_covariance(n, seed):
    """Stan's covar_adaptation: n/(n+5) S + 1e-3 5/(n+5) I, S the sample covariance."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) @ rng.normal(size=(4, 4))
    state = _collect("dense", x, x)
    metric = dense_metric(np.eye(4))
    assert adaptation_update(state, metric)
    expected = (n / (n + 5)) * np.cov(x.T) + 1e-3 * 5 / (n + 5) * np.eye(4)
    np.testing.assert_allclose(metric.dense, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(metric.cholesky @ metric.cholesky.T, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(metric.diag, np.diag(expected))


def test_grad_estimator_is_exact_for_a_diagonal_gaussian():
    """For x ~ N(0, diag(s^2)), grad = -x / s^2: sqrt(Var x / Var grad) = s^2 exactly."""
    rng = np.random.default_rng(0)
    s2 = np.array([1e-4, 1.0, 1e4])
    x = rng.normal(size=(50, 3)) * np.sqrt(s2)
    state = _collect("grad", x, -x / s2)
    metric = diagonal_metric(np.ones(3))
    assert adaptation_update(state, metric)
    np.testing.assert_allclose(metric.diag, s2, rtol=1e-12)


@pytest.mark.parametrize("adaptation", ["stan", "grad", "low_rank"])
def test_metric_updates_keep_the_square_roots_of_the_diagonal(adaptation):
    """The momentum draw and the low-rank velocity read ``sqrt_diag``, not ``sqrt(diag)``: every
    update of a diagonal or low-rank metric sets it to the square roots of the new ``diag``, bit
    for bit (the same correctly rounded square root the draw computed before it was cached)."""
    rng = np.random.default_rng(6)
    dim = 5
    scales = np.geomspace(1e-3, 1e3, dim)
    x = rng.normal(size=(60, dim)) * scales
    state = _collect(adaptation, x, -x / scales**2)  # the gradients of N(0, diag(scales^2))
    metric = (
        low_rank_metric(np.ones(dim), np.zeros((dim, dim)), np.ones(dim))
        if adaptation == "low_rank"
        else diagonal_metric(np.ones(dim))
    )
    assert adaptation_update(state, metric)
    assert not np.array_equal(metric.diag, np.ones(dim))  # the update moved the diagonal
    np.testing.assert_array_equal(metric.sqrt_diag, np.sqrt(metric.diag))


def test_low_rank_estimate_recovers_a_correlated_gaussian():
    """With exact Gaussian draws and gradients, D (I + U (Lambda - I) U^T) D is the covariance
    up to the eigenvalues inside the cutoff band, which are set to 1."""
    from nutslite.engine.adaptation.mass_matrix import low_rank_estimate

    rng = np.random.default_rng(4)
    dim = 6
    cov = zoo.rotated_covariance(dim, seed=1, low=0.05, high=20.0)
    x = rng.multivariate_normal(np.zeros(dim), cov, size=400)
    g = -x @ np.linalg.inv(cov)
    metric = low_rank_metric(np.ones(dim), np.zeros((dim, dim)), np.ones(dim))
    low_rank_estimate(x, g, metric.diag, metric.basis, metric.eigvals)
    assert metric.eigvals.min() < 0.5 and metric.eigvals.max() > 2
    basis = metric.basis[:, metric.eigvals != 1.0]
    np.testing.assert_allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-10)
    # the learned M^{-1} whitens the target: M cov (similar to a symmetric matrix, so its
    # eigenvalues are real) has eigenvalue 1 along the kept directions and the dropped
    # eigenvalues, inside [1/c, c], elsewhere; 400 draws estimate them within ~15%
    learned = as_matrix(metric)
    w = np.linalg.eigvals(np.linalg.solve(learned, cov)).real
    assert 0.5 / 1.15 < w.min() and w.max() < 2.0 * 1.15, w
    assert np.sum(np.abs(w - 1) < 0.15) >= 4  # the four corrected directions


def test_grad_restart_swaps_in_the_background():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2))
    state = _collect("grad", x[:20], x[:20])
    adaptation_restart(state)  # the background had all 20 draws too
    assert state.counts[N] == 20 and state.counts[N_BG] == 0
    for row in x[20:]:
        adaptation_collect(state, row, row)
    assert state.counts[N] == 30 and state.counts[N_BG] == 10
    np.testing.assert_allclose(state.moments[BACKGROUND + X_MEAN], x[20:].mean(axis=0))
    np.testing.assert_allclose(state.moments[X_MEAN], x.mean(axis=0))


def test_nutpie_schedule_adapts_no_metric_below_20_iterations():
    for n in (3, 19):
        s = nutpie_schedule(n)
        assert not (s.collect.any() or s.update.any() or s.retune.any())
    assert nutpie_schedule(20).retune[2]  # 17 dual-averaging updates follow the retune


def test_nutpie_schedule():
    s = nutpie_schedule(1000)
    assert not s.collect[850:].any() and s.collect[:850].all()  # last 15%: step size only
    assert s.update[2] and not s.update[1]  # live updates once 3 draws are in
    assert np.flatnonzero(s.retune).tolist() == [2]  # heuristic after the first update only
    windows = s.windows
    early = [b - a + 1 for a, b in windows if b < 300]
    assert early and all(size == 10 for size in early[1:])
    assert all(b - a + 1 == 80 for a, b in windows[:-1] if a >= 300)
    # the last window runs to the final phase: another 80-draw window would not have fitted
    assert windows[-1][1] == 849 and 80 < windows[-1][1] - windows[-1][0] + 1 < 160


@pytest.mark.parametrize("num_warmup", [20, 50, 100, 200, 333, 1000, 2000])
def test_nutpie_schedule_caps_depth_until_the_final_foreground(num_warmup):
    """The final metric is the foreground of the last two windows: it comes from draws after the
    cap (windows docstring)."""
    s = nutpie_schedule(num_warmup)
    windows = s.windows
    end = windows[-2][0] if len(windows) >= 2 else 0
    assert (s.max_depth[:end] == EARLY_MAX_DEPTH).all() and (s.max_depth[end:] == UNCAPPED).all()
    if num_warmup == 1000:
        assert end == 620 and windows[-3:] == [(540, 619), (620, 699), (700, 849)]
    assert (nutpie_schedule(num_warmup, early_max_depth=None).max_depth == UNCAPPED).all()
    assert (stan_schedule(num_warmup).max_depth == UNCAPPED).all()


def test_warmup_depth_cap_is_applied_and_lifted():
    """Trees of a badly scaled Gaussian go deeper than 3; warmup caps them until the cap's end
    and not after, and the capped transitions report the cap as the depth they hit."""
    tune = 200
    end = int(np.argmax(nutpie_schedule(tune).max_depth == UNCAPPED))
    assert end > 0
    model = zoo.correlated_gaussian(zoo.rotated_covariance(20, seed=3, low=1e-2, high=1e2))
    res = nl.sample(model, draws=20, tune=tune, chains=1, seed=4, save_warmup=True,
                    progress=False, warn=False)
    depth = res.warmup_sample_stats["tree_depth"][0]
    hit = res.warmup_sample_stats["reached_max_treedepth"][0]
    assert depth[:end].max() == EARLY_MAX_DEPTH and depth[end:].max() > EARLY_MAX_DEPTH
    np.testing.assert_array_equal(hit[:end], depth[:end] == EARLY_MAX_DEPTH)
    assert res.sample_stats["tree_depth"].max() > EARLY_MAX_DEPTH


@pytest.mark.parametrize("adaptation", sorted(ADAPTATIONS))
def test_draws_do_not_depend_on_where_the_chunks_end(adaptation, monkeypatch):
    """The chain loop runs in chunks whose ends follow the clock (``nutslite.scheduler``), and
    hands back between chunks only the log density, the step size, dual averaging's state and the
    estimator's counts (its arrays are updated in place). Chunks of one iteration each and
    doubling chunks (1, 2, 4, ...) must then give the same draws and statistics bit for bit,
    warmup included, for every adaptation."""
    model = zoo.eight_schools("noncentered")
    runs = []
    for seconds in (0.0, 1e9):  # a chunk of ``CHUNK_SECONDS`` at the last one's rate
        monkeypatch.setattr(scheduler, "CHUNK_SECONDS", seconds)
        runs.append(nl.sample(model, draws=30, tune=150, chains=1, seed=5, cores=1,
                              progress=False, warn=False, save_warmup=True,
                              adaptation=adaptation))
    one, doubling = runs
    np.testing.assert_array_equal(one.warmup_unconstrained, doubling.warmup_unconstrained)
    np.testing.assert_array_equal(one.unconstrained, doubling.unconstrained)
    for name in ("step_size", "n_steps", "lp"):
        np.testing.assert_array_equal(one.sample_stats[name], doubling.sample_stats[name])
        np.testing.assert_array_equal(one.warmup_sample_stats[name],
                                      doubling.warmup_sample_stats[name])


CAPPED_RUN = """
import sys, numpy as np, nutslite as nl
from nutslite.models import zoo
res = nl.sample(zoo.eight_schools("noncentered"), draws=5, tune=100, chains=1, seed=9, cores=1,
                progress=False, warn=False, save_warmup=True)
np.save(sys.argv[1], np.concatenate([res.warmup_unconstrained.ravel(), res.unconstrained.ravel(),
        res.warmup_sample_stats["tree_depth"].ravel()]))
"""


def test_depth_capped_warmup_is_bit_identical_without_jit(tmp_path):
    """A warmup long enough to be capped (``nutpie_schedule(100)`` caps iterations 0 to 9) gives
    the same bits compiled and interpreted (``NUMBA_DISABLE_JIT=1``)."""
    assert nutpie_schedule(100).max_depth[9] == EARLY_MAX_DEPTH
    root = str(Path(__file__).resolve().parents[1])
    out = {}
    for flag in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=flag)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        path = tmp_path / f"jit{flag}.npy"
        subprocess.run([sys.executable, "-c", CAPPED_RUN, str(path)], env=env, check=True)
        out[flag] = np.load(path)
    np.testing.assert_array_equal(out["0"], out["1"])


@pytest.mark.parametrize("kind", ["diagonal", "dense", "low_rank"])
def test_metric_forms_agree_with_their_matrix(kind):
    """velocity = M^{-1} p, K = p.v/2, and momenta ~ N(0, M) with M = (M^{-1})^{-1}."""
    rng = np.random.default_rng(2)
    dim = 4
    if kind == "diagonal":
        metric = diagonal_metric(rng.uniform(0.1, 3.0, dim))
    elif kind == "dense":
        a = rng.normal(size=(dim, dim))
        metric = dense_metric(a @ a.T + 0.5 * np.eye(dim))
    else:
        basis, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
        metric = low_rank_metric(rng.uniform(0.5, 2.0, dim), basis, np.array([9.0, 0.2]))
    inv_mass = as_matrix(metric)
    p = rng.normal(size=dim)
    v = np.empty(dim)
    kinetic = velocity(metric, p, v)
    np.testing.assert_allclose(v, inv_mass @ p, rtol=1e-12)
    assert math.isclose(kinetic, 0.5 * p @ inv_mass @ p, rel_tol=1e-12)
    draws = np.empty((40000, dim))
    gen = np.random.default_rng(3)
    for row in draws:
        sample_momentum(gen, metric, row)
    cov = np.cov(draws.T)
    mass = np.linalg.inv(inv_mass)
    # each entry of a sample covariance of 40000 Gaussian draws has sd
    # sqrt((M_ij^2 + M_ii M_jj) / n); 6 sd over 16 entries: false alarm < 1e-7
    sd = np.sqrt((mass**2 + np.outer(np.diag(mass), np.diag(mass))) / len(draws))
    assert np.all(np.abs(cov - mass) < 6 * sd)


def test_one_draw_window_keeps_the_current_metric_like_stan():
    state = _collect("stan", np.array([[3.0, -1.0]]), np.zeros((1, 2)))
    metric = diagonal_metric(np.array([0.5, 2.0]))
    assert adaptation_update(state, metric)
    np.testing.assert_allclose(metric.diag, np.array([0.5, 2.0]) / 6 + 1e-3 * 5 / 6)
    res = nl.sample(zoo.std_normal(2), draws=10, tune=151, chains=1, seed=1, progress=False)
    assert np.isfinite(res.warmup["inv_mass_matrix"]).all()


def test_initial_step_size_heuristic():
    """For N(0, 1) the heuristic stops where one leapfrog step's acceptance crosses 0.8."""
    model = zoo.std_normal(50)
    q = np.zeros(50)
    grad = np.empty(50)
    logp = model.logp_grad(q, grad)
    rng = np.random.default_rng(1)
    eps, status = find_initial_step_size(
        model.logp_grad_function, rng, diagonal_metric(np.ones(50)), 1.0, q, logp, grad,
        np.empty((5, 50)),
    )
    assert status == WARMUP_OK
    assert 0.05 < eps < 1.0
    # a flat density: the step size grows until Stan's "improper posterior" bound
    flat = nl.Model("flat", 2, _flat())
    eps, status = find_initial_step_size(
        flat.logp_grad_function, rng, diagonal_metric(np.ones(2)), 1.0, np.zeros(2), 0.0,
        np.zeros(2), np.empty((5, 2)),
    )
    assert status == STEP_SIZE_IMPROPER and eps > 1e7


def _flat():
    from numba import njit

    @njit
    def logp_grad(theta, grad):
        grad[:] = 0.0
        return 0.0

    return logp_grad


def test_improper_posterior_raises_a_clear_error():
    with pytest.raises(nl.SamplingError, match="improper"):
        nl.sample(nl.Model("flat", 2, _flat()), draws=10, tune=10, chains=1, progress=False)


@pytest.fixture(scope="module")
def radon_state():
    model = nl.models.radon("noncentered")
    res = nl.sample(model, draws=20, tune=300, chains=1, seed=2, progress=False)
    return model, res.unconstrained[0, -1], float(res.warmup["step_size"][0]), res.warmup[
        "inv_mass_matrix"][0]


@pytest.mark.parametrize("seed", range(8))
def test_recorded_transition_structure(radon_state, seed):
    model, q, eps, inv_mass = radon_state
    rec = nl.record_transition(model, q, eps, inv_mass, seed=seed)
    assert rec.right - rec.left + 1 == 2**rec.depth
    assert rec.left <= rec.selected <= rec.right
    assert rec.index[0] <= rec.left and rec.right <= rec.index[-1]
    assert len(rec.index) == rec.n_steps + 1
    np.testing.assert_array_equal(rec.positions[rec.index == 0][0], q)
    # the accept statistic averages min(1, exp(H0 - H)) over every state but the start
    others = rec.index != 0
    assert math.isclose(rec.accept_stat, np.minimum(1, np.exp(rec.log_weights[others])).mean())
    # every top-level doubling was followed by the three checks of Stan 2.21+
    top = rec.checks[rec.checks[:, 3] == 1]
    assert len(top) == 3 * rec.depth
    # the transition stopped because of a turn, a divergence, or the depth limit
    stopped_by_turn = rec.checks[-3:, 4].any() if len(rec.checks) else False
    assert stopped_by_turn or rec.diverging or rec.depth == 10
    # leapfrog states are consecutive: each one is a step from its neighbour
    k = int(np.flatnonzero(rec.index == rec.selected)[0])
    assert rec.logp[k] == model.logp(rec.positions[k])


def test_recorded_transition_is_the_sampled_one(radon_state):
    """The recorder only logs: the same stream gives the same transition without it."""
    from nutslite.engine.tree import (
        allocate_recorder,
        allocate_trajectory,
        nuts_transition,
        place_start,
    )

    model, q, eps, inv_mass = radon_state
    rec = nl.record_transition(model, q, eps, inv_mass, seed=5)
    grad = np.empty(model.dim)
    logp = model.logp_grad(q, grad)
    traj = allocate_trajectory(model.dim, 10)
    info = nuts_transition(
        model.logp_grad_function, np.random.default_rng(5), traj, diagonal_metric(inv_mass), eps,
        place_start(traj, q, grad), logp, 10, 1000.0, allocate_recorder(10, False),
    )
    assert (info.proposal, info.depth, info.n_steps) == (rec.selected, rec.depth, rec.n_steps)
