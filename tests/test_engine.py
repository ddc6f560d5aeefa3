"""The NUTS engine: moments of known targets, radon, reproducibility, warmup, divergences.

Statistical tests compare each estimate with its exact value in units of its Monte Carlo standard
error (``nutslite.diagnostics.mcse_mean``, Vehtari et al. 2021), with a Bonferroni threshold over
all statistics of a test so that a correct sampler fails a test with probability about
``ALPHA`` (1e-3; the MCSE is itself estimated, so this is approximate). Seeds are fixed, so a pass
is reproducible.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

import nutslite as nl
from nutslite import diagnostics
from nutslite._numba import JIT_DISABLED
from nutslite.models import zoo

ALPHA = 1e-3


def z_threshold(n_stats: int, alpha: float = ALPHA) -> float:
    """Two-sided Bonferroni z threshold for ``n_stats`` statistics at overall level ``alpha``."""
    return float(stats.norm.isf(alpha / (2 * n_stats)))


def assert_moments(draws: np.ndarray, mean: np.ndarray, var: np.ndarray) -> None:
    """Means and variances of ``draws`` (chains, draws, dim) against exact values, each within
    ``z * MCSE``; the variance is the mean of ``(x - mean)^2``, whose MCSE is its own."""
    x = np.moveaxis(draws, -1, 0)  # (dim, chains, draws)
    sq = (x - mean[:, None, None]) ** 2
    z = z_threshold(2 * len(mean))
    err_mean = np.abs(x.mean(axis=(1, 2)) - mean) / diagnostics.mcse_mean(x)
    err_var = np.abs(sq.mean(axis=(1, 2)) - var) / diagnostics.mcse_mean(sq)
    assert err_mean.max() < z, f"mean off by {err_mean.max():.2f} MCSE (limit {z:.2f})"
    assert err_var.max() < z, f"variance off by {err_var.max():.2f} MCSE (limit {z:.2f})"


@pytest.mark.parametrize(
    "model",
    [zoo.std_normal(5), zoo.ZOO["correlated_gaussian_5"](), zoo.scaled_gaussian(10)],
    ids=lambda m: m.name,
)
def test_gaussian_moments(model):
    res = nl.sample(model, draws=1000, tune=1000, chains=4, seed=20, progress=False)
    assert res.sample_stats["diverging"].sum() == 0
    assert_moments(res.unconstrained, model.moments["mean"], model.moments["var"])


def test_scaled_gaussian_adapts_the_mass_matrix():
    """Stan's windows learn the variances (scales 1e-2 .. 1e2), so trees stay shallow."""
    model = zoo.scaled_gaussian(10)
    res = nl.sample(model, draws=200, tune=1000, chains=2, seed=4, progress=False)
    ratio = res.warmup["inv_mass_matrix"] / model.moments["var"]
    # the last window holds 500 draws: the variance estimate is within ~20% (5 sd of chi2_500)
    assert np.all(np.abs(np.log(ratio)) < 0.5), ratio
    assert res.sample_stats["tree_depth"].max() <= 4


def test_funnel_log_scale_marginal():
    """Neal's funnel with a gentle log-scale (v ~ N(0, 1)): the v marginal is recovered."""
    model = zoo.neal_funnel(5, v_sd=1.0)
    # MCSE on a funnel is approximate (rare excursions into the neck): with 2000 draws this seed
    # sits at z = -3.9 on the variance, with 8000 at -2.1; an excursion shrinks with more draws,
    # a bias would not. 8000 draws of 5 dimensions take about a second.
    res = nl.sample(model, draws=8000, tune=1000, chains=4, seed=5, target_accept=0.95,
                    progress=False)
    v = res.unconstrained[..., :1]
    assert_moments(v, np.zeros(1), np.ones(1))
    # and its quantiles: the fraction of draws below N(0,1) quantiles, within z * MCSE
    for p in (0.05, 0.5, 0.95):
        below = (v[..., 0] < stats.norm.ppf(p)).astype(float)
        z = abs(below.mean() - p) / diagnostics.mcse_mean(below)
        assert z < z_threshold(5), (p, below.mean())


def test_hard_funnel_raises_divergences():
    """With Neal's v ~ N(0, 3^2) NUTS cannot enter the neck; it must say so with divergences."""
    res = nl.sample(zoo.neal_funnel(10), draws=1000, tune=1000, chains=4, seed=6, progress=False)
    assert res.sample_stats["diverging"].sum() > 0


def test_radon_noncentered_is_healthy():
    res = nl.sample(nl.models.radon("noncentered"), draws=1000, tune=1000, chains=4, seed=1,
                    progress=False)
    assert res.sample_stats["diverging"].sum() == 0
    rhat = diagnostics.rhat(np.moveaxis(res.unconstrained, -1, 0))
    assert rhat.max() < 1.01, (res.warmup, rhat.max())
    # the posterior the blog post reports: eps ~ 0.72, sigma_b clearly above zero
    assert 0.68 < res.posterior["eps"].mean() < 0.76
    assert 0.1 < res.posterior["sigma_b"].mean() < 0.45


def test_radon_centered_diverges():
    """The centered radon model diverges after warmup in some of seeds 1-8. One run of 4 x 1000
    draws diverges in about 60% of seeds (24 of seeds 1-40 on 2026-12-04), so none of eight
    would fail a correct sampler with probability about 0.4^8 = 7e-4."""
    model = nl.models.radon("centered")
    for seed in range(1, 9):
        res = nl.sample(model, draws=1000, tune=1000, chains=4, seed=seed, progress=False,
                        warn=False)
        if res.sample_stats["diverging"].sum() > 0:
            break
    assert res.sample_stats["diverging"].sum() > 0


def test_same_seed_same_draws_whatever_the_cores():
    model = nl.models.radon("noncentered")
    kw = dict(draws=50, tune=150, chains=3, seed=7, progress=False)
    a = nl.sample(model, cores=1, **kw)
    b = nl.sample(model, cores=3, **kw)
    np.testing.assert_array_equal(a.unconstrained, b.unconstrained)
    for k in a.sample_stats:
        np.testing.assert_array_equal(a.sample_stats[k], b.sample_stats[k])
    np.testing.assert_array_equal(a.warmup["inv_mass_matrix"], b.warmup["inv_mass_matrix"])
    c = nl.sample(model, cores=3, **{**kw, "seed": 8})
    assert not np.array_equal(a.unconstrained, c.unconstrained)


DISABLE_JIT_SCRIPT = """
import sys, numpy as np, nutslite as nl
from nutslite.models import zoo
data_model = zoo.eight_schools_simulated("centered").conditioned(np.array(zoo.EIGHT_SCHOOLS_Y))
out = []
for model in (zoo.eight_schools("noncentered"), data_model):
    res = nl.sample(model, draws=15, tune=30, chains=2, seed=9, cores=1, progress=False)
    out += [res.unconstrained.ravel(), res.sample_stats["lp"].ravel(), res.warmup["step_size"]]
np.save(sys.argv[1], np.concatenate(out))
"""


def test_bit_identical_without_jit(tmp_path):
    """The same source interpreted by Python (NUMBA_DISABLE_JIT=1) gives the same bits, for a
    model without data and one with data (``nl.Model(..., data=)``)."""
    out = {}
    for flag in ("0", "1"):
        path = tmp_path / f"jit{flag}.npy"
        env = dict(os.environ, NUMBA_DISABLE_JIT=flag)
        subprocess.run([sys.executable, "-c", DISABLE_JIT_SCRIPT, str(path)], env=env, check=True)
        out[flag] = np.load(path)
    np.testing.assert_array_equal(out["0"], out["1"])


def test_divergence_records_start_and_end():
    # a low target_accept makes the centered funnel diverge often (this seed: 19 times)
    res = nl.sample(nl.models.radon("centered"), draws=300, tune=300, chains=2, seed=2,
                    target_accept=0.6, adaptation="stan", progress=False)
    div = res.divergences
    after = ~div["warmup"]
    assert after.sum() == res.sample_stats["diverging"].sum() > 0
    model = nl.models.radon("centered")
    for c, d, start, point in zip(
        div["chain"][after], div["draw"][after], div["start"][after], div["point"][after],
        strict=True,
    ):
        assert res.sample_stats["diverging"][c, d]
        if d > 0:  # a transition starts where the previous draw ended
            np.testing.assert_array_equal(start, res.unconstrained[c, d - 1])
        # where the energy blew up, log p is far below the start's (or not finite)
        lp = model.logp(point)
        assert not np.isfinite(lp) or lp < model.logp(start) - 10


def test_nan_mid_run_is_a_divergence_not_a_crash():
    from numba import njit

    @njit
    def walled_gauss(theta, grad):
        s = 0.0
        for i in range(theta.shape[0]):
            grad[i] = -theta[i]
            s += theta[i] * theta[i]
        return np.nan if theta[0] > 1.5 else -0.5 * s

    model = nl.Model("walled", 2, walled_gauss)
    res = nl.sample(model, draws=300, tune=300, chains=2, seed=1, progress=False)
    assert res.sample_stats["diverging"].any()
    assert np.all(res.unconstrained[..., 0] <= 1.5)
    assert np.all(np.isfinite(res.sample_stats["lp"]))


def test_warm_start_reuses_step_size_and_metric():
    model = nl.models.radon("noncentered")
    first = nl.sample(model, draws=100, tune=500, chains=2, seed=2, progress=False)
    second = nl.sample(
        model, draws=100, tune=0, chains=2, seed=3, progress=False,
        init=first.unconstrained[:, -1], step_size=first.warmup["step_size"],
        inv_mass_matrix=first.warmup["inv_mass_matrix"],
    )
    np.testing.assert_array_equal(second.sample_stats["step_size"][:, 0], first.warmup["step_size"])
    np.testing.assert_array_equal(second.warmup["inv_mass_matrix"], first.warmup["inv_mass_matrix"])
    assert second.sample_stats["diverging"].sum() == 0


def test_save_warmup_keeps_warmup_draws():
    res = nl.sample(zoo.std_normal(3), draws=20, tune=40, chains=2, seed=1, save_warmup=True,
                    progress=False)
    assert res.warmup_unconstrained.shape == (2, 40, 3)
    assert res.warmup_sample_stats["n_steps"].shape == (2, 40)
    assert res.warmup_posterior["x"].shape == (2, 40, 3)
    assert res.n_gradient_evaluations == (
        res.sample_stats["n_steps"].sum() + res.warmup_sample_stats["n_steps"].sum()
    )


def test_sample_stats_names_and_types():
    res = nl.sample(zoo.std_normal(2), draws=10, tune=20, chains=2, seed=1, progress=False)
    expected = {"lp", "acceptance_rate", "step_size", "tree_depth", "n_steps", "diverging",
                "energy", "energy_error", "reached_max_treedepth", "index_in_trajectory"}
    assert set(res.sample_stats) == expected
    assert all(v.shape == (2, 10) for v in res.sample_stats.values())
    assert res.sample_stats["diverging"].dtype == bool
    assert res.sample_stats["tree_depth"].dtype == np.int64
    assert np.all(res.sample_stats["n_steps"] >= 2 ** res.sample_stats["tree_depth"] - 1)


def test_max_treedepth_is_respected():
    res = nl.sample(zoo.scaled_gaussian(10), draws=50, tune=0, chains=1, seed=1, max_treedepth=3,
                    step_size=1e-3, init=np.zeros(10), progress=False)
    assert res.sample_stats["tree_depth"].max() == 3
    assert res.sample_stats["reached_max_treedepth"].all()
    assert res.sample_stats["n_steps"].max() <= 2**3


@pytest.mark.parametrize("adaptation", ["stan", "dense", "grad", "low_rank"])
def test_every_adaptation_samples_the_right_moments(adaptation):
    model = zoo.ZOO["correlated_gaussian_5"]()
    res = nl.sample(model, draws=1000, tune=1000, chains=4, seed=21, adaptation=adaptation,
                    progress=False)
    assert res.settings["adaptation"] == adaptation
    assert res.sample_stats["diverging"].sum() == 0
    assert_moments(res.unconstrained, model.moments["mean"], model.moments["var"])


def test_dense_adaptation_learns_the_covariance():
    model = zoo.ZOO["correlated_gaussian_5"]()
    res = nl.sample(model, draws=200, tune=1000, chains=2, seed=3, adaptation="dense",
                    progress=False)
    learned = res.warmup["inv_mass_matrix"]
    assert learned.shape == (2, 5, 5)
    # the last window holds 500 draws: entries within ~25% of the scale of the covariance
    scale = np.sqrt(np.outer(model.moments["var"], model.moments["var"]))
    assert np.all(np.abs(learned - model.moments["cov"]) < 0.25 * scale)
    # and the learned metric whitens the target: short, shallow trees
    assert res.sample_stats["tree_depth"].mean() < 3


def test_log_sum_exp_share_is_the_merged_weight_and_the_final_halfs_share():
    """``log_sum_exp_share(a, b)`` gives ``log(e^a + e^b)`` by the usual overflow-free formula,
    bit for bit, and the final half's share ``e^b / (e^a + e^b)`` to within the rounding of its
    exponent ``a - b`` (relative error ``(|a - b| + 2) 2^-52``, against 50 digits of ``decimal``;
    Stan's ``exp(b - log sum)`` carries the rounding of ``b - log sum`` the same way); compiled
    and interpreted alike."""
    import math
    from decimal import Decimal, localcontext

    from nutslite.engine.tree import log_sum_exp_share

    python = getattr(log_sum_exp_share, "py_func", log_sum_exp_share)  # also without the JIT
    rng = np.random.default_rng(5)
    pairs = [(0.0, 0.0), (-1000.0, 0.0), (0.0, -1000.0), (3.0, 3.0 + 1e-12), (-745.0, 1.0)]
    pairs += [tuple(x) for x in 30.0 * rng.standard_normal((200, 2))]
    for a, b in pairs:
        big, small = max(a, b), min(a, b)
        expected = big + math.log1p(math.exp(small - big))
        for f in (log_sum_exp_share, python):
            total, share = f(a, b)
            assert total == expected
            with localcontext() as ctx:
                ctx.prec = 50
                exact = 1 / (1 + (Decimal(a) - Decimal(b)).exp())
            bound = exact * Decimal((abs(a - b) + 2) * 2.0**-52) + Decimal(5e-324)  # underflow
            assert abs(Decimal(share) - exact) <= bound
        assert log_sum_exp_share(a, b) == python(a, b)


def test_packed_uturn_kernel_matches_its_python_body():
    """``uturn_dots_packed`` (a <4 x double> kernel) returns exactly what ``uturn_dots``, its
    Python body, returns, for even and odd dimensions and any rows."""
    import numba

    from nutslite.engine.linalg import uturn_dots, uturn_dots_packed

    compiled = numba.njit(lambda *args: uturn_dots_packed(*args))
    rng = np.random.default_rng(0)
    for dim in (1, 2, 3, 7, 175, 176):
        v, r = rng.standard_normal((8, dim)), rng.standard_normal((16, dim))
        for _ in range(10):
            rows = [int(k) for k in rng.integers(0, 8, 4)]
            rows += [int(k) for k in rng.integers(0, 16, 4)]
            assert compiled(v, r, *rows) == uturn_dots(v, r, *rows)


def test_uturn_kernel_sums_as_dot_does():
    """Each of the kernel's six sums is ``dot``'s sum of the same vectors, bit for bit, for every
    length of the tail (the last ``dim mod 4`` coordinates), on a strided velocity view (the
    kernel takes rows of any stride)."""
    import numba

    from nutslite.engine.linalg import dot, uturn_dots_packed

    python_dot = getattr(dot, "py_func", dot)  # the definition, also under NUMBA_DISABLE_JIT

    compiled = numba.njit(lambda *args: uturn_dots_packed(*args))
    rng = np.random.default_rng(1)
    for dim in range(4, 14):
        z, r = rng.standard_normal((8, 4, dim)), rng.standard_normal((16, dim))
        v = z[:, 2]
        va, vb, vm, vn = (int(k) for k in rng.integers(0, 8, 4))
        ra, rb, rm, rn = (int(k) for k in rng.integers(0, 16, 4))
        whole, left, right = r[rb] - r[ra], r[rn] - r[ra], r[rb] - r[rm]
        pairs = ((va, whole), (vb, whole), (va, left), (vn, left), (vm, right), (vb, right))
        expected = tuple(python_dot(v[k], rho) for k, rho in pairs)
        assert compiled(v, r, va, vb, vm, vn, ra, rb, rm, rn) == expected


def test_leapfrog_is_the_leapfrog_and_extends_the_momentum_sum():
    """``leapfrog(..., rho, False, False, _)`` writes the leapfrog's point (the equations of the
    module docstring, evaluated with NumPy in the same order), the velocity ``m p'`` and
    ``rho.out = rho.prior + rho.sign * p'``, and returns ``K(p') = p'.v'/2`` summed as ``dot``
    sums, bit for bit, in both directions."""
    import numba

    from nutslite.engine.integrators import GRAD, MomentumSum, P, Q, leapfrog
    from nutslite.engine.linalg import dot
    from nutslite.engine.metric import diagonal_metric

    python_dot = getattr(dot, "py_func", dot)
    model = zoo.std_normal(11)
    m = np.linspace(0.5, 2.0, 11)
    metric = diagonal_metric(m)
    step = numba.njit(lambda *args: leapfrog(*args))
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 11))
    model.logp_grad(z[Q].copy(), z[GRAD])
    for eps, sign in ((0.3, 1.0), (-0.3, -1.0)):
        p_half = z[P] + (0.5 * eps) * z[GRAD]
        q_new = z[Q] + eps * (m * p_half)
        g_new = np.empty(11)
        logp = model.logp_grad(q_new.copy(), g_new)
        p_new = p_half + (0.5 * eps) * g_new
        v_new = m * p_new
        for f in (step, leapfrog):  # from compiled code, and from Python
            out = np.empty_like(z)
            prior, summed, velocity = rng.standard_normal(11), np.empty(11), np.empty(11)
            got = f(model.logp_grad_function, metric, eps, z, out,
                    MomentumSum(prior, summed, sign, velocity), False, False, out)
            assert got == (logp, 0.5 * python_dot(p_new, v_new), False)
            for row, expected in ((Q, q_new), (P, p_new), (GRAD, g_new)):
                assert out[row].tobytes() == expected.tobytes()
            assert velocity.tobytes() == v_new.tobytes()
            assert summed.tobytes() == (prior + sign * p_new).tobytes()


def test_compiled_sqrt_is_math_sqrt():
    """``nutslite.engine.linalg.sqrt`` (LLVM's ``llvm.sqrt`` when compiled) gives the bits of
    ``math.sqrt``, on normal, subnormal, huge, zero and infinite arguments."""
    import math

    import numba

    from nutslite.engine.linalg import sqrt

    @numba.njit
    def roots(x, out):
        for i in range(x.shape[0]):
            out[i] = sqrt(x[i])

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.exponential(size=1000), 10.0 ** rng.uniform(-320, 308, 1000),
                        [0.0, 5e-324, 1.0, 2.0, np.inf]])
    out = np.empty_like(x)
    roots(x, out)
    assert [math.sqrt(v) for v in x] == out.tolist()


def test_borrowed_views_share_the_owners_data_and_leak_nothing():
    """A ``borrowed`` copy of arrays and a generator, in a tuple, writes into the owner's memory
    and advances the owner's random stream; repeated calls leave no reference behind."""
    import numba

    from nutslite._numba import borrowed

    @numba.njit
    def fill(owner, rng):
        arrays, gen = borrowed((owner, rng))
        a, b = arrays
        for i in range(a.shape[0]):
            a[i] = gen.standard_normal()
            b[i, 0] = a[i]
        return a.shape[0] + b[1:].shape[0]  # a view of a borrowed array is borrowed too

    a, b = np.zeros(5), np.zeros((5, 2))
    rng, reference = np.random.default_rng(4), np.random.default_rng(4)
    counts = sys.getrefcount(a), sys.getrefcount(b), sys.getrefcount(rng)
    for _ in range(3):
        assert fill((a, b), rng) == 9
        expected = reference.standard_normal(5)
        assert a.tolist() == expected.tolist() and b[:, 0].tolist() == expected.tolist()
    assert rng.standard_normal() == reference.standard_normal()
    assert (sys.getrefcount(a), sys.getrefcount(b), sys.getrefcount(rng)) == counts


def test_by_reference_reads_the_members_where_they_lie_and_leaks_nothing():
    """A named tuple passed ``by_reference`` to a compiled callee reads the caller's values and
    writes into the caller's arrays; repeated calls, with reference counting on, leave no
    reference behind; a value that is not a named tuple is refused by name."""
    from collections import namedtuple

    import numba

    from nutslite._numba import by_reference

    Pair = namedtuple("Pair", ["values", "scale"])

    @numba.njit
    def scaled_sum(pair):
        total = 0.0
        for i in range(pair.values.shape[0]):
            pair.values[i] *= pair.scale
            total += pair.values[i]
        return total

    @numba.njit
    def caller(values, scale):
        return scaled_sum(by_reference(Pair(values, scale)))

    values = np.arange(4.0)
    count = sys.getrefcount(values)
    for k in range(1, 4):
        assert caller(values, 2.0) == 6.0 * 2.0**k
        assert values.tolist() == [v * 2.0**k for v in range(4)]
    assert sys.getrefcount(values) == count

    @numba.njit
    def refused(values):
        return by_reference((values, 1.0))

    with pytest.raises(numba.core.errors.TypingError, match="expected a named tuple"):
        refused(values)


def test_trajectory_buffers_need_no_initial_values(monkeypatch):
    """``allocate_trajectory`` leaves its buffers uninitialised: filled with NaN beforehand (the
    slots' integer bookkeeping with -1, an index out of range), they must give the same draws,
    bit for bit (a row read before it is written would spread NaN)."""
    from nutslite import sampling
    from nutslite.engine.tree import allocate_trajectory

    model = zoo.eight_schools("centered")  # divergences and trees of every depth
    kwargs = dict(draws=60, tune=60, chains=2, seed=4, progress=False, warn=False)
    plain = nl.sample(model, **kwargs)

    def nan_filled(dim, max_depth):
        traj = allocate_trajectory(dim, max_depth)
        for buffer in traj:
            buffer.fill(np.nan if buffer.dtype.kind == "f" else -1)
        return traj

    monkeypatch.setattr(sampling, "allocate_trajectory", nan_filled)
    filled = nl.sample(model, **kwargs)
    np.testing.assert_array_equal(plain.unconstrained, filled.unconstrained)
    for name in ("lp", "n_steps", "acceptance_rate", "diverging"):
        np.testing.assert_array_equal(plain.sample_stats[name], filled.sample_stats[name])


def test_point_slots_are_returned_and_suffice_at_every_depth():
    """The tree builder's slots (``nutslite.engine.tree.acquire``, ``release``): after every
    transition, at every maximum depth, each slot is either free (listed once) or held, the held
    ones are the two edges and the sample (plus those of a discarded subtree), and the sample's
    point is the selected state (its log density is the one stored for its position). Tiny steps
    make every transition reach its maximum depth, the largest number of slots held at once;
    large ones make subtrees turn and diverge, so that slots are left behind. Each transition
    starts from the slot of the last one's sample (as the chain loop does), and leaves its
    start's position and gradient as they were, for the caller to read."""
    from nutslite.engine.integrators import GRAD, Q
    from nutslite.engine.metric import diagonal_metric
    from nutslite.engine.tree import (
        DIVERGENT,
        FREE,
        REFS,
        allocate_trajectory,
        nuts_transition,
        place_start,
    )

    model = zoo.neal_funnel(5)
    metric = diagonal_metric(np.ones(model.dim))
    rng = np.random.default_rng(0)
    for max_depth in (1, 2, 3, 6):
        traj = allocate_trajectory(model.dim, max_depth)
        for step_size in (1e-3, 0.4, 3.0):
            q = np.full(model.dim, 0.5)
            grad = np.empty(model.dim)
            logp = model.logp_grad(q, grad)
            slot = place_start(traj, q, grad)
            for _ in range(30):
                start = traj.points[slot][[Q, GRAD], : model.dim].copy()  # rows are padded
                info = nuts_transition(model.logp_grad_function, rng, traj, metric, step_size,
                                       slot, logp, max_depth, 1000.0, None)
                slots = traj.points.shape[0]
                refs = traj.slots[REFS]
                free = traj.slots[FREE, 1 : 1 + traj.slots[FREE, 0]]
                held = [k for k in range(slots) if k != DIVERGENT and refs[k] > 0]
                assert sorted(free.tolist() + held) == list(range(1, slots))
                assert (refs[free] == 0).all()
                assert info.sample_slot in held and slot in held
                np.testing.assert_array_equal(traj.points[slot][[Q, GRAD], : model.dim], start)
                if step_size == 1e-3:
                    assert info.depth == max_depth and not info.diverging
                slot = info.sample_slot
                logp = traj.logp[info.proposal & (traj.logp.shape[0] - 1)]
                q = traj.points[slot, Q, : model.dim].copy()
                assert logp == model.logp_grad(q, np.empty(model.dim))


def test_segment_kernel_is_uturn_dots_on_one_segment():
    """``segment_dots`` (the merge of two single states) returns, compiled and interpreted, the
    sums ``uturn_dots`` returns when its three segments are the same ``[a, b]``, bit for bit, for
    every length of the tail, on a strided velocity view like the tree builder's."""
    import numba

    from nutslite.engine.linalg import dot, segment_dots, segment_dots_packed, uturn_dots_packed

    python_dot = getattr(dot, "py_func", dot)  # the definition, also under NUMBA_DISABLE_JIT

    segment = numba.njit(lambda *args: segment_dots_packed(*args))
    three = numba.njit(lambda *args: uturn_dots_packed(*args))
    rng = np.random.default_rng(3)
    for dim in range(1, 14):
        z, r = rng.standard_normal((8, 4, dim)), rng.standard_normal((16, dim))
        v = z[:, 2]
        va, vb = (int(k) for k in rng.integers(0, 8, 2))
        ra, rb = (int(k) for k in rng.integers(0, 16, 2))
        expected = (python_dot(v[va], r[rb] - r[ra]), python_dot(v[vb], r[rb] - r[ra]))
        assert segment(v, r, va, vb, ra, rb) == expected
        assert segment_dots(v, r, va, vb, ra, rb) == expected
        assert three(v, r, va, vb, va, vb, ra, rb, ra, rb) == expected * 3


@pytest.mark.parametrize("drift", [False, True])
def test_kick_kernels_match_their_python_bodies(drift):
    """``kick_packed`` and ``kick_drift_packed`` (<4 x double> kernels) write the same rows as
    their Python bodies ``kick`` and ``kick_drift`` (the momentum, velocity and momentum sum; and
    the next half step of momentum and position) and return the same ``p . v``, bit for bit, for
    every length of the tail; and ``kick_drift`` is ``kick`` followed by the first pass of a
    leapfrog step from its result."""
    import numba

    from nutslite.engine.linalg import kick, kick_drift, kick_drift_packed, kick_packed

    kernel, body = (kick_drift_packed, kick_drift) if drift else (kick_packed, kick)
    compiled = numba.njit(lambda *args: kernel(*args))
    rng = np.random.default_rng(4)
    for dim in range(1, 14):
        z = rng.standard_normal((4, dim))
        m, prior = rng.uniform(0.5, 2.0, dim), rng.standard_normal(dim)
        results = []
        for f in (compiled, body):
            zz, out, ahead = z.copy(), np.empty(dim), np.zeros((2, dim))
            extra = (zz[0], ahead[0], ahead[1], -0.74) if drift else ()
            total = f(zz[1], zz[3], zz[2], m, -0.37, prior, out, -1.0, *extra)
            results.append((total, zz, out, ahead))
        (t1, z1, o1, a1), (t2, z2, o2, a2) = results
        assert t1 == t2
        assert z1.tobytes() == z2.tobytes() and o1.tobytes() == o2.tobytes()
        assert a1.tobytes() == a2.tobytes()
        if drift:
            zz, out = z.copy(), np.empty(dim)
            assert kick(zz[1], zz[3], zz[2], m, -0.37, prior, out, -1.0) == t1
            p_half = zz[1] + -0.37 * zz[3]
            np.testing.assert_array_equal(a1[0], p_half)
            np.testing.assert_array_equal(a1[1], zz[0] + -0.74 * (m * p_half))


@pytest.mark.parametrize("kind", ["diagonal", "dense"])
def test_chained_leapfrog_steps_are_leapfrog_steps(kind):
    """A chain of ``leapfrog`` steps that go ``ahead``, each going on from the pass ahead of the
    one before (as the tree builder's steps within a doubling do), writes the points, momentum
    sums, velocities and energies of a chain of plain steps, bit for bit, in both directions. A
    dense metric's steps never pass ahead."""
    import numba

    from nutslite.engine.integrators import GRAD, MomentumSum, P, Q, leapfrog
    from nutslite.engine.metric import dense_metric, diagonal_metric

    model = zoo.std_normal(11)
    rng = np.random.default_rng(7)
    inv_mass = np.linspace(0.5, 2.0, 11)
    metric = diagonal_metric(inv_mass) if kind == "diagonal" else dense_metric(np.diag(inv_mass))
    compiled = numba.njit(lambda *args: leapfrog(*args))

    def momentum_sum(sign):
        return MomentumSum(np.zeros(11), np.empty(11), sign, np.empty(11))

    for step, sign in ((0.3, 1.0), (-0.3, -1.0)):
        start = rng.standard_normal((4, 11))
        model.logp_grad(start[Q].copy(), start[GRAD])
        plain, source = [], start
        for _ in range(4):
            z, r = np.empty_like(start), momentum_sum(sign)
            logp, kinetic, _ = leapfrog(model.logp_grad_function, metric, step, source, z, r,
                                        False, False, z)
            plain.append((z, r, (logp, kinetic)))
            source = z
        for f in (compiled, leapfrog):  # from compiled code, and from Python
            source, drifted, ahead = start, False, np.empty_like(start)
            for z_plain, r_plain, energies in plain:
                z = ahead if drifted else np.empty_like(start)
                ahead, r = np.empty_like(start), momentum_sum(sign)
                logp, kinetic, drifted = f(model.logp_grad_function, metric, step, source, z, r,
                                           drifted, True, ahead)
                assert drifted == (kind == "diagonal")
                assert (logp, kinetic) == energies
                for row in (Q, P, GRAD):
                    assert z[row].tobytes() == z_plain[row].tobytes()
                assert r.out.tobytes() == r_plain.out.tobytes()
                assert r.velocity.tobytes() == r_plain.velocity.tobytes()
                source = z


def test_fresh_momentum_kernel_matches_its_python_body():
    """``fresh_momentum_packed`` writes the same momentum ``z / s``, velocity ``m p`` and rows
    ``0`` and ``p`` as ``fresh_momentum``'s Python body and returns the same ``p . v``, bit for
    bit, for every length of the tail, on rows of a padded array as the tree builder passes them;
    and these are the division, the product and ``dot`` done one after the other."""
    import numba

    from nutslite.engine.linalg import dot, fresh_momentum, fresh_momentum_packed

    compiled = numba.njit(lambda s, m, rows, dim: fresh_momentum_packed(
        s, m, rows[0, :dim], rows[1, :dim], rows[2, :dim], rows[3, :dim]))
    rng = np.random.default_rng(5)
    for dim in range(1, 14):
        m = rng.uniform(0.5, 2.0, dim)
        s = np.sqrt(m)
        rows = np.full((4, 16), np.nan)  # the padding must stay unread and unwritten
        rows[0, :dim] = rng.standard_normal(dim)
        expected = np.full((4, dim), np.nan)
        expected[0] = rows[0, :dim]
        twice_kinetic = fresh_momentum(s, m, *expected)
        p = rows[0, :dim] / s
        assert expected[0].tobytes() == p.tobytes()
        assert expected[1].tobytes() == (m * p).tobytes()
        assert twice_kinetic == dot(p, m * p)
        assert compiled(s, m, rows, dim) == twice_kinetic
        assert rows[:, :dim].tobytes() == np.vstack([p, m * p, np.zeros(dim), p]).tobytes()
        assert np.isnan(rows[:, dim:]).all()


DRAWS_SCRIPT = """
import sys
import numpy as np
from numba import njit
from nutslite.engine.normal import standard_normals, uniform

@njit
def draws(rng, rounds, out):
    for k in range(0, 9 * rounds, 9):  # as transitions draw: a momentum, then uniforms
        standard_normals(rng, out[k:k + 7])
        out[k + 7] = uniform(rng)
        standard_normals(rng, out[k + 8:k + 9])

rounds = int(sys.argv[1])
for bits in (np.random.PCG64, np.random.Philox):  # stepped inline, and through its pointer
    ours, theirs = np.random.Generator(bits(12)), np.random.Generator(bits(12))
    got = np.empty(9 * rounds)
    draws(ours, rounds, got)
    want = np.concatenate([np.r_[theirs.standard_normal(7), theirs.random(),
                                 theirs.standard_normal()] for _ in range(rounds)])
    assert got.tobytes() == want.tobytes(), bits
    assert repr(ours.bit_generator.state) == repr(theirs.bit_generator.state), bits  # arrays
    print(int(np.sum(np.abs(want) > 3.6541528853610088)))  # draws from the tail
"""


def test_momentum_and_tree_draws_are_numpys_bit_for_bit():
    """``standard_normals`` (the momentum: NumPy's ziggurat with the sign applied by a
    multiplication, a PCG64's state stepped inline) and ``uniform`` give ``standard_normal`` and
    ``random``'s draws bit for bit, interleaved as transitions draw them, and leave the generator
    in NumPy's state: with a PCG64 and with a Philox (drawn through its
    function pointer), compiled and interpreted (``NUMBA_DISABLE_JIT=1``). Compiled, 400,000
    normals per generator take the tail (about 1 in 3,800) and the wedges (about 1 in 80) many
    times; interpreted, 40,000 reach the tail too."""
    for flag, rounds in (("0", 50_000), ("1", 5_000)):
        env = dict(os.environ, NUMBA_DISABLE_JIT=flag)
        done = subprocess.run([sys.executable, "-c", DRAWS_SCRIPT, str(rounds)], env=env,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        assert all(int(tails) > 0 for tails in done.stdout.split()[-2:])  # with each generator


@pytest.mark.skipif(JIT_DISABLED, reason="nothing is compiled with NUMBA_DISABLE_JIT=1")
def test_pcg64_is_stepped_inline_only_for_numpys_pcg64():
    """``nutslite.engine.pcg64``: its step is NumPy's (the definition against ``random_raw``, on
    states from several seeds); this NumPy keeps the state as a native 128-bit integer, as its
    Linux and macOS wheels do (else nothing is stepped inline, which is correct but slower); and
    compiled, ``is_pcg64`` holds for a PCG64 and for no other bit generator."""
    import numba

    from nutslite.engine.pcg64 import NATIVE_LAYOUT, is_pcg64, pcg64_load, pcg64_next

    for seed in range(20):
        bits = np.random.PCG64(seed)
        lo, hi, inc_lo, inc_hi = pcg64_load.py_func(bits)
        for _ in range(3):
            lo, hi, output = pcg64_next.py_func(lo, hi, inc_lo, inc_hi)
            assert int(output) == int(bits.random_raw())
        assert pcg64_load.py_func(bits) == (lo, hi, inc_lo, inc_hi)
    assert NATIVE_LAYOUT

    @numba.njit
    def compiled(rng):
        return is_pcg64(rng.bit_generator)

    assert compiled(np.random.default_rng(1))
    for bits in (np.random.PCG64DXSM, np.random.Philox, np.random.SFC64, np.random.MT19937):
        assert not compiled(np.random.Generator(bits(1)))


@pytest.mark.skipif(JIT_DISABLED, reason="nothing is compiled with NUMBA_DISABLE_JIT=1")
def test_pcg64_leap_is_two_steps():
    """``pcg64_leap`` (``s <- a^2 s + (a + 1) c``) lands where two ``pcg64_next`` steps do, and
    ``pcg64_output`` is the output ``pcg64_next`` gives: the definitions on states from several
    seeds, and the compiled intrinsics against the definitions."""
    import numba

    from nutslite.engine.pcg64 import (
        pcg64_leap,
        pcg64_leap_increment,
        pcg64_load,
        pcg64_next,
        pcg64_output,
    )

    @numba.njit
    def compiled(lo, hi, inc_lo, inc_hi):
        leap_lo, leap_hi = pcg64_leap_increment(inc_lo, inc_hi)
        once = pcg64_next(lo, hi, inc_lo, inc_hi)
        return once, pcg64_output(once[0], once[1]), pcg64_leap(lo, hi, leap_lo, leap_hi)

    for seed in range(20):
        lo, hi, inc_lo, inc_hi = pcg64_load.py_func(np.random.PCG64(seed))
        once = pcg64_next.py_func(lo, hi, inc_lo, inc_hi)
        twice = pcg64_next.py_func(once[0], once[1], inc_lo, inc_hi)
        leap = pcg64_leap.py_func(lo, hi, *pcg64_leap_increment.py_func(inc_lo, inc_hi))
        assert leap == twice[:2]
        assert pcg64_output.py_func(once[0], once[1]) == once[2]
        assert compiled(lo, hi, inc_lo, inc_hi) == (once, once[2], leap)


CACHED_CHECK = """
import numpy as np
from nutslite._numba import jit
from nutslite.engine.pcg64 import is_pcg64

@jit
def check(rng):
    return is_pcg64(rng.bit_generator)

print(check(np.random.default_rng(1)), sum(check.stats.cache_hits.values()))
"""


@pytest.mark.skipif(JIT_DISABLED, reason="nothing is compiled with NUMBA_DISABLE_JIT=1")
def test_pcg64_is_recognised_by_code_loaded_from_the_cache(tmp_path):
    """``is_pcg64`` compares with an address that each process registers anew: code compiled and
    cached by one process, then loaded from the cache by another, still recognises a PCG64
    (else it would silently draw through the function pointer, the same draws but slower)."""
    script = tmp_path / "cached_check.py"  # a file: Numba caches only functions it can find
    script.write_text(CACHED_CHECK)
    env = dict(os.environ, NUTSLITE_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert runs[0][0] == runs[1][0] == "True"
    assert (runs[0][1], runs[1][1]) == ("0", "1")  # compiled, then loaded from the cache


def _compact_allocator(fill: bool):
    """``allocate_trajectory`` with compact rows forced (``CompactTrajectory``), its buffers
    filled with NaN and -1 when ``fill`` (a row read before it is written would spread NaN)."""
    from nutslite.engine.tree import CompactTrajectory, allocate_trajectory

    def allocate(dim, max_depth):
        traj = allocate_trajectory(dim, max_depth, compact=True)
        assert isinstance(traj, CompactTrajectory)
        if fill:
            for buffer in traj:
                buffer.fill(np.nan if buffer.dtype.kind == "f" else -1)
        return traj

    return allocate


@pytest.mark.parametrize(
    ("model", "adaptation", "max_treedepth"),
    [
        (zoo.eight_schools("centered"), "stan", 10),  # divergences, trees of every depth
        (zoo.neal_funnel(5), "grad", 4),  # depth saturated: the most rows held at once
        (nl.models.radon("noncentered"), "dense", 10),
    ],
    ids=["eight_schools", "funnel_depth4", "radon_dense"],
)
def test_compact_rows_give_the_same_bits(monkeypatch, model, adaptation, max_treedepth):
    """Rows handed out and taken back (``CompactTrajectory``, chosen for large models) give the
    same draws and statistics, bit for bit, as one row per position, uninitialised buffers
    included."""
    from nutslite import sampling
    from nutslite.engine.tree import Trajectory, allocate_trajectory

    assert isinstance(allocate_trajectory(model.dim, max_treedepth), Trajectory)
    kwargs = dict(draws=60, tune=60, chains=2, seed=4, progress=False, warn=False,
                  adaptation=adaptation, max_treedepth=max_treedepth)
    plain = nl.sample(model, **kwargs)
    monkeypatch.setattr(sampling, "allocate_trajectory", _compact_allocator(fill=True))
    compact = nl.sample(model, **kwargs)
    np.testing.assert_array_equal(plain.unconstrained, compact.unconstrained)
    for name in plain.sample_stats:
        np.testing.assert_array_equal(plain.sample_stats[name], compact.sample_stats[name])


def test_compact_rows_suffice_at_every_depth():
    """``CompactTrajectory`` holds at most ``6 (max_depth + 2)`` rows (``allocate_trajectory``):
    with tiny steps every transition reaches its maximum depth, where the most rows are held at
    once, and no row beyond them is ever handed out (``traj.slots[ROW_OF, free + 1]`` counts
    those handed out); with large ones subtrees turn and diverge part way."""
    from nutslite.engine.metric import diagonal_metric
    from nutslite.engine.tree import (
        ROW_OF,
        CompactTrajectory,
        allocate_trajectory,
        nuts_transition,
        place_start,
        ring_rows,
    )

    model = zoo.neal_funnel(5)
    metric = diagonal_metric(np.ones(model.dim))
    rng = np.random.default_rng(0)
    q = np.full(model.dim, 0.5)  # every transition starts here, with a fresh momentum
    grad = np.empty(model.dim)
    logp = model.logp_grad(q, grad)
    deepest_by_depth = []
    for max_depth in (4, 5, 8):
        traj = allocate_trajectory(model.dim, max_depth, compact=True)
        assert isinstance(traj, CompactTrajectory)
        free = ring_rows(traj)[3]
        deepest = 0
        for step_size in (1e-3, 0.4, 3.0):
            for _ in range(20):
                info = nuts_transition(model.logp_grad_function, rng, traj, metric, step_size,
                                       place_start(traj, q, grad), logp, max_depth, 1000.0, None)
                handed_out = traj.slots[ROW_OF, free + 1]
                assert 3 <= handed_out <= traj.rows.shape[0]
                deepest = max(deepest, handed_out)
                if step_size == 1e-3:
                    assert info.depth == max_depth
        deepest_by_depth.append(deepest)
    # rows are taken back: a saturated tree of 2^max_depth states holds O(max_depth) of them
    assert deepest_by_depth == sorted(set(deepest_by_depth)), deepest_by_depth
    assert deepest_by_depth[-1] < 2 ** 8 // 4, deepest_by_depth
