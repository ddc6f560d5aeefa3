"""find_map: known modes, the log-Jacobian switch, and honest failure on the centered funnel."""

import math
import warnings

import numpy as np
import pytest

import nutslite as nl
from nutslite._numba import LOGP_GRAD_SIGNATURE, jit
from nutslite.optimize import MapResult, OptimizationWarning, find_map

SHAPE = 3.0  # x ~ Gamma(3, rate 1): mode 2 on the x scale, 3 on the log x scale
MEAN = 1.5  # y ~ Normal(1.5, 1)


@jit(LOGP_GRAD_SIGNATURE)
def gamma_normal_logp_grad(theta, grad_out):
    """theta = (log x, y): Gamma(SHAPE, 1) for x with the log-Jacobian theta[0], Normal for y."""
    x = math.exp(theta[0])
    grad_out[0] = SHAPE - x
    grad_out[1] = MEAN - theta[1]
    return SHAPE * theta[0] - x - 0.5 * (theta[1] - MEAN) ** 2


@jit(LOGP_GRAD_SIGNATURE)
def half_flat_logp_grad(theta, grad_out):
    """p(x) proportional to 1 / x^2 on x = exp(theta[0]): no mode, the density grows as x -> 0."""
    grad_out[0] = -1.0
    return -theta[0]


def gamma_normal():
    return nl.Model(
        "gamma_normal",
        2,
        gamma_normal_logp_grad,
        constrain=lambda t: {"x": np.exp(t[..., 0]), "y": t[..., 1].copy()},
        coords=["log_x", "y"],
        log_transformed=(0,),
    )


def test_jacobian_switch_moves_the_mode_as_the_density_changes():
    model = gamma_normal()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = find_map(model, n_starts=2)
        with_jacobian = find_map(model, n_starts=2, jacobian=True)
    assert isinstance(plain, MapResult) and set(plain) == {"x", "y"}
    assert plain["x"] == pytest.approx(SHAPE - 1, rel=1e-6)  # mode of p(x)
    assert with_jacobian["x"] == pytest.approx(SHAPE, rel=1e-6)  # mode of p(log x)
    assert plain["y"] == pytest.approx(MEAN, abs=1e-6)
    assert plain.converged and plain.max_gradient < 1e-3 and plain.at_bound == ()
    assert not plain.jacobian and with_jacobian.jacobian
    assert plain.logp == pytest.approx((SHAPE - 1) * math.log(SHAPE - 1) - (SHAPE - 1), rel=1e-9)
    np.testing.assert_allclose(plain.unconstrained, [math.log(SHAPE - 1), MEAN], atol=1e-6)


def test_starts_are_seeded_and_init_comes_first():
    model = gamma_normal()
    first, again = find_map(model, seed=4), find_map(model, seed=4)
    assert len(first.starts) == 4
    for a, b in zip(first.starts, again.starts, strict=True):
        np.testing.assert_array_equal(a.init, b.init)
    init = np.array([0.5, -1.0])
    only = find_map(model, init=init, n_starts=0)
    assert len(only.starts) == 1
    np.testing.assert_array_equal(only.starts[0].init, init)
    assert only["x"] == pytest.approx(SHAPE - 1, rel=1e-6)


def test_bad_arguments_are_rejected():
    model = gamma_normal()
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        find_map(model, init=np.zeros(3))
    with pytest.raises(ValueError, match="nothing to start from"):
        find_map(model, n_starts=0)
    with pytest.raises(ValueError, match="log_bound"):
        find_map(model, log_bound=0.0)
    with pytest.raises(TypeError):
        find_map("model")


def test_an_unbounded_density_stops_at_the_bound_with_a_warning():
    model = nl.Model("half_flat", 1, half_flat_logp_grad, coords=["log_x"], log_transformed=(0,))
    with pytest.warns(OptimizationWarning, match="Stopped at log_bound: log_x"):
        result = find_map(model, n_starts=1, log_bound=5.0)
    assert not result.converged and result.at_bound == ("log_x",)
    assert result.unconstrained[0] == -5.0
    assert result.max_gradient == pytest.approx(2.0)  # d(-2 log x)/d log x, Jacobian removed


def test_centered_radon_has_no_mode_and_says_so():
    with pytest.warns(OptimizationWarning, match="no mode found.*sigma_"):
        result = find_map(nl.models.radon("centered"), n_starts=1)
    assert not result.converged and result.max_gradient > 1.0
    assert min(float(result["sigma_a"]), float(result["sigma_b"])) < 1e-4  # down the funnel
    assert result["b"].shape == (85,)


def test_noncentered_radon_mode_is_far_from_the_posterior_mean():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = find_map(nl.models.radon("noncentered"), n_starts=1)
    assert result.converged
    assert set(result) == {
        "mu_a",
        "sigma_a",
        "mu_b",
        "sigma_b",
        "eps",
        "a",
        "b",
        "a_offset",
        "b_offset",
    }
    # the posterior mean of sigma_b is about 0.26 (4 x 5000 draws); its mode here is above 5
    assert float(result["sigma_b"]) > 3.0
    assert float(result["eps"]) == pytest.approx(0.658, abs=0.01)
