"""nl.from_pymc: PyMC models sampled by nutslite through PyTensor's Numba backend.

The blog's two radon models, written in PyMC exactly as Wiecki (2017) writes them (PyMC 5 spells
``sd=`` as ``sigma=``), must give ``nl.models.radon``'s log density up to a constant and the same
gradient, and the same posterior within Monte Carlo error.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nutslite as nl

pm = pytest.importorskip("pymc")
pytest.importorskip("pandas")  # examples/radon_pymc.py reads its data with pandas

ROOT = Path(__file__).resolve().parents[1]
N_COUNTIES = 85


def blog_radon(parameterization: str) -> pm.Model:
    """The post's model, line for line (``pymc3`` -> ``pymc``, ``sd`` -> ``sigma``), as
    ``examples/radon_pymc.py`` writes it: the file the README samples with ``nutslite sample``."""
    from nutslite.model_file import load_pymc_model

    variable = {"centered": "hierarchical_model_centered",
                "noncentered": "hierarchical_model_non_centered"}[parameterization]
    return load_pymc_model(ROOT / "examples" / "radon_pymc.py", variable)


@pytest.fixture(scope="module", params=["centered", "noncentered"])
def radon_pair(request):
    return request.param, nl.from_pymc(blog_radon(request.param)), nl.models.radon(request.param)


# PyMC orders the vector by declaration: mu_a, sigma_a, mu_b, sigma_b, a | a_offset, b | b_offset,
# eps; nl.models.radon puts eps fifth. PERM[i] is the nutslite index of PyMC's coordinate i.
PERM = np.r_[0:4, 5 : 5 + 2 * N_COUNTIES, 4]


def test_radon_coords_and_layout(radon_pair):
    parameterization, bridged, handwritten = radon_pair
    group = ("a_offset", "b_offset") if parameterization == "noncentered" else ("a", "b")
    assert bridged.dim == handwritten.dim == 175
    hyper = ["mu_a", "sigma_a_log__", "mu_b", "sigma_b_log__"]
    assert bridged.coords[:5] == [*hyper, f"{group[0]}[0]"]
    assert bridged.coords[-1] == "eps_log__"
    assert bridged.coords[4 + N_COUNTIES] == f"{group[1]}[0]"
    assert bridged.log_transformed == (1, 3, 174)
    # the same names as the handwritten model, up to the spelling of the log transform
    renamed = [c.replace("sigma_a_log__", "log_sigma_a").replace("sigma_b_log__", "log_sigma_b")
               .replace("eps_log__", "log_eps") for c in bridged.coords]
    assert renamed == [handwritten.coords[i] for i in PERM]


def test_radon_logp_and_gradient_match_handwritten(radon_pair):
    """At 8 random points: the log densities differ by one constant (PyMC's normalising terms,
    partly evaluated in float32, see shared/README), the gradients agree."""
    _, bridged, handwritten = radon_pair
    rng = np.random.default_rng(2017)
    offsets = []
    for _ in range(8):
        theta = rng.uniform(-2.0, 2.0, 175)
        lp_b, grad_b = bridged.logp_and_grad(theta[PERM])
        lp_h, grad_h = handwritten.logp_and_grad(theta)
        offsets.append(lp_b - lp_h)
        np.testing.assert_allclose(grad_b, grad_h[PERM], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(offsets, offsets[0], rtol=0, atol=1e-6)


def test_radon_constrain_matches_handwritten(radon_pair):
    _, bridged, handwritten = radon_pair
    theta = np.random.default_rng(3).uniform(-2.0, 2.0, (2, 3, 175))
    got, expected = bridged.constrain(theta[..., PERM]), handwritten.constrain(theta)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, atol=1e-12, err_msg=name)


# The centered model's funnel leaves sigma_b (and sigma_a, which it drags along) with divergences
# and MCSEs that cannot be trusted, so there only the well-identified hyperparameters are compared.
POSTERIOR_CHECKS = {
    "noncentered": ("mu_a", "sigma_a", "mu_b", "sigma_b", "eps"),
    "centered": ("mu_a", "mu_b", "eps"),
}


@pytest.mark.parametrize("parameterization", list(POSTERIOR_CHECKS))
def test_radon_posterior_matches_handwritten(parameterization):
    """The posterior through the bridge and from ``nl.models.radon``: independent runs (2 chains x
    1000 draws each), so for every hyperparameter checked
    z = (mean_1 - mean_2) / sqrt(mcse_1^2 + mcse_2^2) is about standard normal. |z| < 4.5 on all
    8 has a false-alarm rate below 8 * 6.8e-6 = 5.4e-5 (fixed seeds: the same draws every run).
    The sds must agree within 4.5 combined MCSEs of the sd (Vehtari et al. 2021)."""
    kwargs = dict(draws=1000, tune=1000, chains=2, progress=False, warn=False)
    bridged = nl.sample(nl.from_pymc(blog_radon(parameterization)), seed=11, **kwargs)
    handwritten = nl.sample(nl.models.radon(parameterization), seed=12, **kwargs)
    for name in POSTERIOR_CHECKS[parameterization]:
        x, y = bridged.posterior[name], handwritten.posterior[name]
        d = nl.diagnostics
        z_mean = (x.mean() - y.mean()) / np.hypot(d.mcse_mean(x), d.mcse_mean(y))
        z_sd = (x.std(ddof=1) - y.std(ddof=1)) / np.hypot(d.mcse_sd(x), d.mcse_sd(y))
        assert abs(z_mean) < 4.5, (name, z_mean)
        assert abs(z_sd) < 4.5, (name, z_sd)


def small_model() -> pm.Model:
    coords = {"group": ["g0", "g1", "g2"], "obs": np.arange(6)}
    y = np.array([0.1, -0.3, 1.2, 0.8, -0.5, 0.4])
    with pm.Model(coords=coords) as model:
        x = pm.Data("x", np.linspace(-1.0, 1.0, 6), dims="obs")
        mu = pm.Normal("mu", 0.0, 1.0, dims="group")
        sigma = pm.HalfNormal("sigma", 1.0)
        chol = pm.Normal("chol", 0.0, 1.0, shape=(2, 2))
        pm.Deterministic("scaled", 2.0 * mu, dims="group")
        pm.Deterministic("total", mu.sum() + chol.sum())
        pm.Normal("y", mu=mu[np.arange(6) % 3] * x, sigma=sigma, observed=y, dims="obs")
    return model


def test_small_model_layout_and_constrain():
    pymc_model = small_model()
    model = nl.from_pymc(pymc_model)
    assert model.name == "pymc_model"
    assert model.dim == 3 + 1 + 4
    assert model.coords == ["mu[0]", "mu[1]", "mu[2]", "sigma_log__",
                            "chol[0,0]", "chol[0,1]", "chol[1,0]", "chol[1,1]"]
    assert model.log_transformed == (3,)
    assert model.dims == {"mu": ("group",), "scaled": ("group",), "y": ("obs",), "x": ("obs",)}
    assert model.dim_labels == {"group": ["g0", "g1", "g2"], "obs": list(range(6))}
    np.testing.assert_array_equal(model.observed_data["y"], [0.1, -0.3, 1.2, 0.8, -0.5, 0.4])
    theta = np.random.default_rng(0).normal(size=(4, 5, model.dim))
    out = model.constrain(theta)
    assert list(out) == ["mu", "chol", "sigma", "scaled", "total"]  # pm.sample's order
    np.testing.assert_allclose(out["sigma"], np.exp(theta[..., 3]))
    np.testing.assert_allclose(out["chol"], theta[..., 4:].reshape(4, 5, 2, 2))
    np.testing.assert_allclose(out["scaled"], 2.0 * theta[..., :3])
    np.testing.assert_allclose(out["total"], theta[..., :3].sum(-1) + theta[..., 4:].sum(-1))
    # PyMC's own log density and gradient on its own value variables
    point = {"mu": theta[0, 0, :3], "sigma_log__": theta[0, 0, 3],
             "chol": theta[0, 0, 4:].reshape(2, 2)}
    lp, grad = model.logp_and_grad(theta[0, 0])
    lp_pymc = pymc_model.compile_logp(mode="FAST_COMPILE")(point)  # FAST_COMPILE: no C compile
    grad_pymc = pymc_model.compile_dlogp(mode="FAST_COMPILE")(point)
    np.testing.assert_allclose(lp, lp_pymc, rtol=1e-12)
    np.testing.assert_allclose(grad, grad_pymc, rtol=1e-10)


def test_shared_data_is_read_at_compile_time():
    pymc_model = small_model()
    model = nl.from_pymc(pymc_model)
    theta = np.linspace(-1.0, 1.0, model.dim)
    before = model.logp(theta)
    with pymc_model:
        pm.set_data({"x": np.zeros(6)})
    assert model.logp(theta) == before
    assert nl.from_pymc(pymc_model).logp(theta) != before


def test_to_arviz_has_the_structure_of_pm_sample():
    pymc_model = small_model()
    res = nl.sample(nl.from_pymc(pymc_model), draws=20, tune=20, chains=2, seed=1, progress=False,
                    warn=False)
    idata = res.to_arviz()
    with pymc_model:
        reference = pm.sample(draws=5, tune=5, chains=1, cores=1, random_seed=1,
                              progressbar=False, compute_convergence_checks=False,
                              compile_kwargs={"mode": "FAST_COMPILE"})
    ours, theirs = idata.posterior, reference.posterior
    assert list(ours.data_vars) == list(theirs.data_vars)
    for name in theirs.data_vars:
        assert ours[name].dims[2:] == theirs[name].dims[2:], name
    for dim in set(theirs.dims) - {"chain", "draw"}:
        np.testing.assert_array_equal(ours[dim].values, theirs[dim].values)
    # the observed values too, with their dims and labels
    ours, theirs = idata.observed_data, reference.observed_data
    assert list(ours.data_vars) == list(theirs.data_vars) == ["y"]
    assert ours["y"].dims == theirs["y"].dims
    np.testing.assert_array_equal(ours["y"].values, theirs["y"].values)
    np.testing.assert_array_equal(ours["obs"].values, theirs["obs"].values)
    ours, theirs = idata.constant_data, reference.constant_data  # pm.Data("x", ...)
    assert list(ours.data_vars) == list(theirs.data_vars) == ["x"]
    assert ours["x"].dims == theirs["x"].dims
    np.testing.assert_array_equal(ours["x"].values, theirs["x"].values)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="pymc.Model"):
        nl.from_pymc(nl.models.radon())
    with pm.Model() as discrete:
        pm.Normal("x", 0.0, 1.0)
        pm.Poisson("k", 3.0)
    with pytest.raises(ValueError, match=r"discrete free variables \['k'\]"):
        nl.from_pymc(discrete)
    with pm.Model() as empty:
        pm.Normal("y", 0.0, 1.0, observed=[0.5])
    with pytest.raises(ValueError, match="no free"):
        nl.from_pymc(empty)
    with pm.Model() as broken:
        pm.Normal("x", 0.0, 1.0)
        pm.Normal("y", 0.0, -1.0, observed=[0.5])  # a negative scale: logp is -inf everywhere
    with pytest.raises(ValueError, match=r"initial point.*not finite: \['y'\]"):
        nl.from_pymc(broken)


def test_import_nutslite_does_not_import_pymc():
    code = (
        "import sys, nutslite; assert not {'pymc', 'pytensor'} & set(sys.modules); "
        "nutslite.from_pymc"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


DISABLE_JIT_SCRIPT = """
import numpy as np, pymc as pm, nutslite as nl
with pm.Model() as m:
    mu = pm.Normal("mu", 1.0, 2.0)
    sigma = pm.HalfNormal("sigma", 1.0)
    pm.Normal("y", mu, sigma, observed=[0.2, 1.1, 0.7])
model = nl.from_pymc(m)
g = np.empty(2)
print(repr(float(model.logp_grad(np.array([0.3, -0.2]), g))), repr(float(g[0])), repr(float(g[1])))
res = nl.sample(model, draws=30, tune=30, chains=1, seed=1, progress=False)
assert res.posterior["sigma"].shape == (1, 30) and np.isfinite(res.unconstrained).all()
"""


def test_from_pymc_runs_without_the_jit():
    """With NUMBA_DISABLE_JIT=1 PyTensor's C backend computes the density: the same values as the
    Numba backend up to rounding, and nl.sample runs on it."""
    outputs = []
    for flag in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=flag)
        proc = subprocess.run([sys.executable, "-c", DISABLE_JIT_SCRIPT], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append([float(v) for v in proc.stdout.split()[-3:]])
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-12)
