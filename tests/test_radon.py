"""The radon data and both radon posteriors: facts, densities, gradients, constrain, bad input."""

import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import nutslite as nl
from nutslite.models.radon import load_radon, sufficient_statistics

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ("centered", "noncentered")
MODELS = {
    (p, lik): nl.models.radon(p, likelihood=lik)
    for p in PARAMS
    for lik in ("sufficient", "pointwise")
}
DATA = load_radon()

# points on the unconstrained scale: hyperparameters near the posterior, group effects around it
points = st.builds(
    lambda seed, scale: _point(np.random.default_rng(seed), scale),
    st.integers(0, 2**32 - 1),
    st.floats(0.1, 2.0),
)


def _point(rng, scale):
    theta = rng.normal(0.0, scale, 175)
    theta[[0, 2]] = rng.normal([1.5, -0.6], scale)
    theta[[1, 3, 4]] = rng.normal([-1.0, -1.5, -0.3], 0.5 * scale)
    return theta


def test_data_facts():
    assert len(DATA.log_radon) == 919
    assert DATA.n_counties == 85
    assert int(DATA.floor.sum()) == 153
    assert round(float(DATA.log_radon.mean()), 6) == 1.264779
    assert DATA.county_names[0] == "AITKIN"
    assert DATA.county_names[69] == "ST LOUIS"
    assert DATA.county_names[84] == "YELLOW MEDICINE"
    assert list(DATA.county_names) == sorted(DATA.county_names)


def test_model_shape_and_coords():
    for p in PARAMS:
        m = nl.models.radon(p)
        assert m.name == f"radon_{p}"
        assert m.dim == 175
        group = "a_offset" if p == "noncentered" else "a"
        expected = ["mu_a", "log_sigma_a", "mu_b", "log_sigma_b", "log_eps", f"{group}[0]"]
        assert m.coords[:6] == expected
        assert m.coords[5 + 85] == ("b_offset[0]" if p == "noncentered" else "b[0]")
        assert m.dim_labels["county"][69] == "ST LOUIS"


def scipy_logp(theta, parameterization):
    """The posterior written independently with scipy.stats, on the unconstrained scale."""
    mu_a, ls_a, mu_b, ls_b, l_eps = theta[:5]
    sigma_a, sigma_b, eps = np.exp([ls_a, ls_b, l_eps])
    first, second = theta[5:90], theta[90:175]
    lp = stats.norm(0, 100**2).logpdf([mu_a, mu_b]).sum()
    lp += stats.halfcauchy(scale=5).logpdf([sigma_a, sigma_b, eps]).sum() + ls_a + ls_b + l_eps
    if parameterization == "noncentered":
        lp += stats.norm.logpdf(first).sum() + stats.norm.logpdf(second).sum()
        a, b = mu_a + sigma_a * first, mu_b + sigma_b * second
    else:
        lp += stats.norm(mu_a, sigma_a).logpdf(first).sum()
        lp += stats.norm(mu_b, sigma_b).logpdf(second).sum()
        a, b = first, second
    mean = a[DATA.county] + b[DATA.county] * DATA.floor
    return lp + stats.norm(mean, eps).logpdf(DATA.log_radon).sum()


@pytest.mark.parametrize("parameterization", PARAMS)
@pytest.mark.parametrize("likelihood", ["sufficient", "pointwise"])
def test_logp_matches_scipy_up_to_one_constant(parameterization, likelihood):
    model = MODELS[(parameterization, likelihood)]
    rng = np.random.default_rng(11)
    diffs = [
        model.logp(t) - scipy_logp(t, parameterization)
        for t in (_point(rng, s) for s in (0.2, 0.5, 1.0, 1.5, 2.0))
    ]
    np.testing.assert_allclose(diffs, diffs[0], rtol=0, atol=1e-8 * max(1.0, abs(diffs[0])))


@pytest.mark.parametrize("parameterization", PARAMS)
@given(theta=points)
def test_gradient_matches_central_differences(parameterization, theta):
    model = MODELS[(parameterization, "sufficient")]
    grad = model.grad(theta)
    h = 1e-6
    fd = np.empty(175)
    for i in range(175):
        e = np.zeros(175)
        e[i] = h
        fd[i] = (model.logp(theta + e) - model.logp(theta - e)) / (2 * h)
    # central differences err by O(h^2 f''') + O(eps |f| / h); |f| is ~1e3 here
    np.testing.assert_allclose(fd, grad, rtol=1e-5, atol=1e-4 * (1 + np.abs(grad).max()) * 1e-2)


@pytest.mark.parametrize("parameterization", PARAMS)
@given(theta=points)
def test_sufficient_and_pointwise_agree_to_rounding(parameterization, theta):
    lp1, g1 = MODELS[(parameterization, "sufficient")].logp_and_grad(theta)
    lp2, g2 = MODELS[(parameterization, "pointwise")].logp_and_grad(theta)
    assert math.isclose(lp1, lp2, rel_tol=1e-12, abs_tol=1e-9)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-9 * (1 + np.abs(g2).max()))


def test_sufficient_statistics_reproduce_the_residual_sum_of_squares():
    n, ybar, within = sufficient_statistics(DATA)
    assert n.sum() == 919 and n[:, 1].sum() == 153
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=85), rng.normal(size=85)
    direct = np.sum((DATA.log_radon - a[DATA.county] - b[DATA.county] * DATA.floor) ** 2)
    split = within + np.sum(n[:, 0] * (ybar[:, 0] - a) ** 2 + n[:, 1] * (ybar[:, 1] - a - b) ** 2)
    assert math.isclose(direct, split, rel_tol=1e-12)


def test_constrain_noncentered():
    m = nl.models.radon("noncentered")
    theta = np.random.default_rng(5).normal(size=(3, 2, 175))
    out = m.constrain(theta)
    names = {"mu_a", "sigma_a", "mu_b", "sigma_b", "eps", "a", "b", "a_offset", "b_offset"}
    assert set(out) == names
    assert out["a"].shape == (3, 2, 85) and out["sigma_b"].shape == (3, 2)
    # bit for bit the plain expressions, though written into preallocated views of one block
    np.testing.assert_array_equal(out["sigma_a"], np.exp(theta[..., 1]))
    np.testing.assert_array_equal(out["eps"], np.exp(theta[..., 4]))
    np.testing.assert_array_equal(
        out["a"], theta[..., :1] + np.exp(theta[..., 1:2]) * theta[..., 5:90]
    )
    np.testing.assert_array_equal(
        out["b"], theta[..., 2:3] + np.exp(theta[..., 3:4]) * theta[..., 90:175]
    )
    np.testing.assert_array_equal(out["b_offset"], theta[..., 90:175])
    arrays = [*out.values(), theta]
    for i, x in enumerate(arrays):  # no variable overlaps another or the draws
        assert not any(np.shares_memory(x, y) for y in arrays[i + 1 :])


def test_constrain_centered():
    m = nl.models.radon("centered")
    theta = np.random.default_rng(6).normal(size=(4, 175))
    out = m.constrain(theta)
    assert "a_offset" not in out
    np.testing.assert_array_equal(out["a"], theta[:, 5:90])
    np.testing.assert_array_equal(out["b"], theta[:, 90:175])
    np.testing.assert_allclose(out["sigma_b"], np.exp(theta[:, 3]))


def test_radon_bad_input_names_the_choices():
    with pytest.raises(ValueError, match="'centered', 'noncentered'"):
        nl.models.radon("uncentered")
    with pytest.raises(ValueError, match="'sufficient', 'pointwise'"):
        nl.models.radon("centered", likelihood="vectorised")
    with pytest.raises(TypeError, match="RadonData"):
        nl.models.radon("centered", data={"y": [1.0]})


def test_model_rejects_bad_logp_grad():
    from numba import njit

    with pytest.raises(TypeError, match="Numba-jitted"):
        nl.Model("plain", 2, lambda theta, grad: 0.0)

    @njit
    def one_argument(theta):
        return 0.0

    with pytest.raises(TypeError, match="logp_grad"):
        nl.Model("one_arg", 2, one_argument)

    @njit
    def out_of_bounds(theta, grad):
        return theta[5] + grad[0]

    # NumPy error model: no bounds checks; reading past the end must not be asked for
    with pytest.raises(ValueError, match="dim"):
        nl.Model("bad_dim", 0, out_of_bounds)
    with pytest.raises(ValueError, match="coords"):
        nl.Model("bad_coords", 2, _gauss(), coords=["x"])
    with pytest.raises(ValueError, match="name"):
        nl.Model("", 2, _gauss())


def _gauss():
    from numba import njit

    @njit
    def logp_grad(theta, grad):
        s = 0.0
        for i in range(theta.shape[0]):
            grad[i] = -theta[i]
            s += theta[i] * theta[i]
        return -0.5 * s

    return logp_grad


def test_user_model_defaults():
    m = nl.Model("my_gauss", 3, _gauss())
    assert m.coords == ["x[0]", "x[1]", "x[2]"]
    theta = np.array([1.0, 2.0, 3.0])
    assert m.logp(theta) == -7.0
    np.testing.assert_array_equal(m.grad(theta), -theta)
    np.testing.assert_array_equal(m.constrain(theta)["x"], theta)
    q = m.initial_point(np.random.default_rng(0))
    assert q.shape == (3,) and np.all(np.abs(q) < 2)


def test_the_wheel_carries_the_data(tmp_path):
    """A plain (non-editable) install carries radon.csv: build the wheel, install it into an empty
    target directory, and load the data from there in a fresh interpreter."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(wheel_dir), str(ROOT)],
        check=True,
    )
    (wheel,) = wheel_dir.glob("nutslite-*.whl")
    assert "nutslite/data/radon.csv" in zipfile.ZipFile(wheel).namelist()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )
    code = (
        "import nutslite as nl, sys; m = nl.models.radon('centered'); "
        "assert nl.__file__.startswith(sys.argv[1]), nl.__file__; print(m.dim)"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run(
        [sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env, check=True,
        capture_output=True, text=True,
    )
    assert out.stdout.strip() == "175"
