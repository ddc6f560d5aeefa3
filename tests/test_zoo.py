"""Tests of the model zoo: gradients, log densities against scipy, exact moments, bad input, and
bit-identical results with ``NUMBA_DISABLE_JIT=1``."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate, special, stats

from nutslite.model import Model
from nutslite.models.zoo import (
    ZOO,
    banana,
    banana_inverse,
    correlated_gaussian,
    eight_schools,
    logistic_regression,
    neal_funnel,
    rotated_covariance,
    scaled_gaussian,
    std_normal,
)

# Written out again here rather than imported, so the reference densities are independent.
SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
COV3 = np.array([[2.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 0.5]])
MEAN3 = np.array([1.0, -2.0, 0.5])

Reference = Callable[[Model, np.ndarray], float]


def ref_std_normal(model: Model, x: np.ndarray) -> float:
    return stats.norm.logpdf(x).sum()


def ref_gaussian(cov: np.ndarray, mean: np.ndarray) -> Reference:
    return lambda model, x: stats.multivariate_normal(mean=mean, cov=cov).logpdf(x)


def ref_scaled_gaussian(model: Model, x: np.ndarray) -> float:
    return stats.norm.logpdf(x, scale=np.geomspace(1e-2, 1e2, 10)).sum()


def ref_funnel(model: Model, x: np.ndarray) -> float:
    v = x[0]
    return stats.norm.logpdf(v, scale=3.0) + stats.norm.logpdf(x[1:], scale=np.exp(v / 2)).sum()


def ref_eight_schools(noncentered: bool) -> Reference:
    def ref(model: Model, x: np.ndarray) -> float:
        mu, log_tau, rest = x[0], x[1], x[2:]
        tau = np.exp(log_tau)
        logp = stats.norm.logpdf(mu, scale=5.0) + stats.halfcauchy.logpdf(tau, scale=5.0) + log_tau
        if noncentered:
            effects = mu + tau * rest
            logp += stats.norm.logpdf(rest).sum()
        else:
            effects = rest
            logp += stats.norm.logpdf(rest, loc=mu, scale=tau).sum()
        return logp + stats.norm.logpdf(SCHOOLS_Y, loc=effects, scale=SCHOOLS_SIGMA).sum()

    return ref


def ref_logistic(model: Model, beta: np.ndarray) -> float:
    X, y = model.data["X"], model.data["y"]
    eta = X @ beta
    loglik = y * special.log_expit(eta) + (1.0 - y) * special.log_expit(-eta)
    return loglik.sum() + stats.norm.logpdf(beta, scale=2.5).sum()


def ref_banana(b: float) -> Reference:
    def ref(model: Model, y: np.ndarray) -> float:
        u = y[1] - b * (y[0] ** 2 - 100.0)
        return stats.norm.logpdf(y[0], scale=10.0) + stats.norm.logpdf(np.r_[u, y[2:]]).sum()

    return ref


# Every zoo model, plus a few non-default instances that reach other code paths.
CASES: dict[str, tuple[Callable[[], Model], Reference]] = {
    "std_normal_5": (ZOO["std_normal_5"], ref_std_normal),
    "correlated_gaussian_5": (
        ZOO["correlated_gaussian_5"],
        ref_gaussian(rotated_covariance(5, seed=0), np.zeros(5)),
    ),
    "correlated_gaussian_3_mean": (
        lambda: correlated_gaussian(COV3, MEAN3),
        ref_gaussian(COV3, MEAN3),
    ),
    "scaled_gaussian_10": (ZOO["scaled_gaussian_10"], ref_scaled_gaussian),
    "neal_funnel_5": (ZOO["neal_funnel_5"], ref_funnel),
    "neal_funnel_2": (lambda: neal_funnel(2), ref_funnel),
    "eight_schools_centered": (ZOO["eight_schools_centered"], ref_eight_schools(False)),
    "eight_schools_noncentered": (ZOO["eight_schools_noncentered"], ref_eight_schools(True)),
    "logistic_regression": (ZOO["logistic_regression"], ref_logistic),
    "logistic_regression_50x1": (lambda: logistic_regression(50, 1, seed=3), ref_logistic),
    "banana": (ZOO["banana"], ref_banana(0.1)),
    "banana_b0.03_dim4": (lambda: banana(0.03, 4), ref_banana(0.03)),
}
GAUSSIANS = [
    "std_normal_5",
    "correlated_gaussian_5",
    "correlated_gaussian_3_mean",
    "scaled_gaussian_10",
]
COORDINATE = st.floats(-4.0, 4.0, width=64)


@functools.cache
def case_model(name: str) -> Model:
    return CASES[name][0]()


def draw_points(data: st.DataObject, model: Model, n: int) -> np.ndarray:
    return data.draw(arrays(np.float64, (n, model.dim), elements=COORDINATE))


def test_zoo_entries_are_well_formed():
    assert set(ZOO) <= set(CASES), "every zoo model needs a reference density in CASES"
    for name, factory in ZOO.items():
        model = case_model(name)
        assert factory().name == model.name == name
        assert len(model.coords) == len(set(model.coords)) == model.dim
        assert model.moments["mean"].shape == model.moments["var"].shape == (model.dim,)
        draws = np.zeros((3, model.dim))
        assert all(v.shape[:1] == (3,) for v in model.constrain(draws).values())


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_gradient_matches_central_differences(name, data):
    model = case_model(name)
    theta = draw_points(data, model, 1)[0]
    grad = model.grad(theta)
    for i in range(model.dim):
        step = 1e-5 * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        f_up, f_down = model.logp(up), model.logp(down)
        fd = (f_up - f_down) / (up[i] - down[i])
        # Truncation error is O(step^2) relative to the derivatives' scale; rounding in the two
        # evaluations adds about eps * |logp| / step.
        rounding = 16 * np.finfo(float).eps * (abs(f_up) + abs(f_down)) / step
        assert abs(fd - grad[i]) <= 1e-6 * abs(grad[i]) + rounding + 1e-9, (i, fd, grad[i])


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_logp_matches_scipy_up_to_a_constant(name, data):
    model = case_model(name)
    reference = CASES[name][1]
    points = draw_points(data, model, 3)
    ours = np.array([model.logp(x) for x in points])
    theirs = np.array([reference(model, x) for x in points])
    offsets = ours - theirs  # the dropped normalising constant: the same at every point
    scale = 1.0 + np.max(np.abs(theirs))
    np.testing.assert_allclose(offsets - offsets[0], 0.0, atol=1e-10 * scale)


@pytest.mark.parametrize("name", GAUSSIANS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_gaussian_moments_define_the_density(name, data):
    """N(m, C) has grad log p(x) = -C^{-1} (x - m) and log p(x) - log p(m) = that form / 2."""
    model = case_model(name)
    mean, var = model.moments["mean"], model.moments["var"]
    cov = model.moments.get("cov", np.diag(var))
    np.testing.assert_array_equal(np.diag(cov), var)
    x = draw_points(data, model, 1)[0]
    logp, grad = model.logp_and_grad(x)
    np.testing.assert_allclose(-cov @ grad, x - mean, rtol=1e-10, atol=1e-10)
    quad = (x - mean) @ np.linalg.solve(cov, x - mean)
    np.testing.assert_allclose(logp - model.logp(mean), -0.5 * quad, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(model.grad(mean), 0.0)


def test_gaussian_moments_are_the_inputs():
    model = case_model("correlated_gaussian_3_mean")
    np.testing.assert_array_equal(model.moments["cov"], COV3)
    np.testing.assert_array_equal(model.moments["mean"], MEAN3)
    np.testing.assert_array_equal(model.moments["var"], np.diag(COV3))
    scales = np.geomspace(1e-2, 1e2, 10)
    np.testing.assert_allclose(case_model("scaled_gaussian_10").moments["scale"], scales)
    np.testing.assert_array_equal(case_model("std_normal_5").moments["var"], np.ones(5))
    eigenvalues = np.linalg.eigvalsh(case_model("correlated_gaussian_5").moments["cov"])
    np.testing.assert_allclose(eigenvalues, np.geomspace(0.1, 10.0, 5), rtol=1e-12)


def assert_moments_match(draws: np.ndarray, mean: np.ndarray, var: np.ndarray) -> None:
    """Sample moments of exact iid draws against exact values, per column, as z-scores.

    The variance is estimated with the known mean, mean((x - m)^2), a plain iid average, so both
    statistics are asymptotically normal with standard errors estimated from the draws. A true
    |z| exceeds 5 with probability 5.7e-7: with the dozen statistics of a test the false-alarm rate
    is below 1e-5 (and the seeds are fixed, so a pass is reproducible).
    """
    n = draws.shape[0]
    deviations = draws - mean
    z_mean = deviations.mean(axis=0) / np.sqrt(draws.var(axis=0) / n)
    squares = deviations**2
    z_var = (squares.mean(axis=0) - var) / np.sqrt(squares.var(axis=0) / n)
    assert np.all(np.abs(z_mean) < 5.0), z_mean
    assert np.all(np.abs(z_var) < 5.0), z_var


def test_funnel_moments():
    model = case_model("neal_funnel_5")
    mean, var = model.moments["mean"], model.moments["var"]
    np.testing.assert_array_equal(mean, 0.0)
    assert var[0] == 9.0
    # Var x_k = E e^v for v ~ N(0, 9), by quadrature.
    e_ev, _ = integrate.quad(lambda v: np.exp(v) * stats.norm.pdf(v, scale=3.0), -60.0, 60.0)
    np.testing.assert_allclose(var[1:], e_ev, rtol=1e-10)

    # log x_k^2 = v + log z^2 with z ~ N(0, 1): the moments of log z^2 by quadrature.
    def expect(f: Callable[[float], float]) -> float:  # E f(|z|), z ~ N(0, 1)
        return integrate.quad(lambda z: f(z) * 2.0 * stats.norm.pdf(z), 0.0, np.inf)[0]

    log_z2_mean = expect(lambda z: 2.0 * np.log(z))
    log_z2_var = expect(lambda z: (2.0 * np.log(z) - log_z2_mean) ** 2)
    np.testing.assert_allclose(model.moments["log_x2_mean"], log_z2_mean, rtol=1e-9)
    np.testing.assert_allclose(model.moments["log_x2_var"], 9.0 + log_z2_var, rtol=1e-9)
    # Exact draws from the generative definition, as a check on the composition.
    rng = np.random.default_rng(20030601)
    n = 200_000
    v = rng.normal(0.0, 3.0, n)
    x = np.exp(v / 2)[:, None] * rng.standard_normal((n, model.dim - 1))
    assert_moments_match(v[:, None], mean[:1], var[:1])
    assert_moments_match(np.log(x**2), model.moments["log_x2_mean"], model.moments["log_x2_var"])


@pytest.mark.parametrize(("name", "b"), [("banana", 0.1), ("banana_b0.03_dim4", 0.03)])
def test_banana_moments_and_inverse(name, b):
    model = case_model(name)
    rng = np.random.default_rng(2001)
    x = rng.standard_normal((200_000, model.dim))
    x[:, 0] *= 10.0
    y = x.copy()
    y[:, 1] += b * (x[:, 0] ** 2 - 100.0)
    np.testing.assert_allclose(banana_inverse(y, b), x, atol=1e-9)
    mean, var = model.moments["mean"], model.moments["var"]
    np.testing.assert_array_equal(model.moments["cov"], np.diag(var))
    np.testing.assert_allclose(var[1], 1.0 + 2.0 * b**2 * 100.0**2, rtol=1e-14)
    assert_moments_match(y, mean, var)
    product = y[:, 0] * y[:, 1]  # Cov(y_1, y_2) = E[y_1 y_2] = 0
    assert abs(product.mean()) < 5.0 * np.sqrt(product.var() / len(product))


def test_eight_schools_constrain():
    theta = np.random.default_rng(8).normal(size=(3, 10))
    centered = case_model("eight_schools_centered").constrain(theta)
    noncentered = case_model("eight_schools_noncentered").constrain(theta)
    for out in (centered, noncentered):
        np.testing.assert_array_equal(out["mu"], theta[:, 0])
        np.testing.assert_array_equal(out["tau"], np.exp(theta[:, 1]))
    np.testing.assert_array_equal(centered["theta"], theta[:, 2:])
    np.testing.assert_array_equal(noncentered["theta_tilde"], theta[:, 2:])
    effects = theta[:, :1] + np.exp(theta[:, 1:2]) * theta[:, 2:]
    np.testing.assert_allclose(noncentered["theta"], effects, rtol=1e-15)
    model = case_model("eight_schools_noncentered")
    assert model.coords[:3] == ["mu", "log_tau", "theta_tilde[0]"]
    assert model.dim_labels["school"] == list("ABCDEFGH")


def test_moments_without_closed_form_are_nan():
    for name in ("eight_schools_centered", "eight_schools_noncentered", "logistic_regression"):
        model = case_model(name)
        assert set(model.moments) == {"mean", "var"}
        assert np.isnan(model.moments["mean"]).all() and np.isnan(model.moments["var"]).all()


def test_logistic_regression_data():
    data = case_model("logistic_regression").data
    X, y = data["X"], data["y"]
    assert X.shape == (200, 5) and y.shape == (200,) and data["beta_true"].shape == (5,)
    np.testing.assert_array_equal(X[:, 0], 1.0)
    assert set(np.unique(y)) == {0.0, 1.0}
    assert X.flags.c_contiguous
    again = logistic_regression(seed=0).data
    np.testing.assert_array_equal(again["X"], X)
    np.testing.assert_array_equal(again["y"], y)
    assert not np.array_equal(case_model("logistic_regression_50x1").data["y"], y[:50])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: correlated_gaussian(np.ones((2, 3))), "square matrix"),
        (lambda: correlated_gaussian(np.ones(3)), "square matrix"),
        (lambda: correlated_gaussian(np.zeros((0, 0))), "square matrix"),
        (lambda: correlated_gaussian([[1.0, 0.5], [0.4, 1.0]]), "symmetric"),
        (lambda: correlated_gaussian([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (lambda: correlated_gaussian([[np.nan, 0.0], [0.0, 1.0]]), "finite"),
        (lambda: correlated_gaussian([[np.inf, 0.0], [0.0, 1.0]]), "finite"),
        (lambda: correlated_gaussian(np.eye(2), mean=[0.0, 0.0, 0.0]), r"mean must have shape"),
        (lambda: correlated_gaussian(np.eye(2), mean=[0.0, np.nan]), "mean must be finite"),
        (lambda: eight_schools("foo"), r"'foo'.*'centered', 'noncentered'"),
        (lambda: std_normal(0), "dim must be an integer >= 1"),
        (lambda: std_normal(2.0), "dim must be an integer >= 1"),
        (lambda: neal_funnel(1), "dim must be an integer >= 2"),
        (lambda: scaled_gaussian(low=0.0), "0 < low <= high"),
        (lambda: scaled_gaussian(low=10.0, high=1.0), "0 < low <= high"),
        (lambda: banana(b=np.nan), "b must be finite"),
        (lambda: banana(dim=1), "dim must be an integer >= 2"),
        (lambda: logistic_regression(n=0), "n must be an integer >= 1"),
        (lambda: logistic_regression(p=0), "p must be an integer >= 1"),
        (lambda: banana_inverse(np.zeros(1), 0.1), "dim >= 2"),
        (lambda: rotated_covariance(3, low=-1.0), "0 < low <= high"),
    ],
)
def test_bad_input_raises(build, message):
    with pytest.raises(ValueError, match=message):
        build()


DISABLED_JIT_SCRIPT = """
import json, sys
import numpy as np
from nutslite._numba import JIT_DISABLED
from nutslite.models.zoo import ZOO
assert JIT_DISABLED
out = {}
for name in sys.argv[1:]:
    model = ZOO[name]()
    logp, grad = model.logp_and_grad(np.linspace(-1.3, 1.7, model.dim))
    out[name] = [float(logp).hex()] + [float(g).hex() for g in grad]
print(json.dumps(out))
"""


def test_disabled_jit_is_bit_identical():
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    names = sorted(ZOO)
    proc = subprocess.run(
        [sys.executable, "-c", DISABLED_JIT_SCRIPT, *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    python = json.loads(proc.stdout)
    for name in names:
        model = case_model(name)
        logp, grad = model.logp_and_grad(np.linspace(-1.3, 1.7, model.dim))
        compiled = [float(logp).hex()] + [float(g).hex() for g in grad]
        assert python[name] == compiled, name
