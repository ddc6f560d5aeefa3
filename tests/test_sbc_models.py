"""The data-generating processes of the SBC models: their densities equal the models they
calibrate, their simulators draw from the stated priors, and SBC passes on them."""

import pickle

import numpy as np
import pytest

import nutslite as nl
from nutslite.models.radon import (
    _sbc_density,
    hyperprior_logp_grad,
    load_radon,
    radon_simulated,
    sbc_data_vector,
    sbc_hyperprior_logp_grad,
)
from nutslite.models.zoo import EIGHT_SCHOOLS_Y, eight_schools_simulated
from nutslite.testing import SBC_MODELS, NutsSampler, sbc
from nutslite.testing.sbc import hierarchical_normal, simulated_model


@pytest.mark.parametrize("parameterization", ["centered", "noncentered"])
def test_eight_schools_density_with_data_as_argument_is_the_model_bit_for_bit(parameterization):
    model = nl.models.eight_schools(parameterization)
    simulated = eight_schools_simulated(parameterization)
    assert simulated.coords == model.coords and simulated.name == model.name
    rng = np.random.default_rng(1)
    conditioned = simulated.conditioned(np.array(EIGHT_SCHOOLS_Y))
    for _ in range(5):
        theta = rng.normal(0.0, 2.0, model.dim)
        logp, grad = model.logp_and_grad(theta)
        logp_sim, grad_sim = conditioned.logp_and_grad(theta)
        assert logp_sim == logp and np.array_equal(grad_sim, grad)


@pytest.mark.parametrize("parameterization", ["centered", "noncentered"])
def test_radon_sbc_density_is_the_radon_likelihood_under_other_hyperpriors(parameterization):
    """On the real data, the SBC variant minus its hyperpriors equals radon minus its own."""
    data = load_radon()
    model = nl.models.radon(parameterization, data=data)
    vector = sbc_data_vector(data)
    rng = np.random.default_rng(2)
    for _ in range(3):
        theta = rng.normal(0.0, 0.5, model.dim)
        logp, grad = model.logp_and_grad(theta)
        g_sbc, g_hyper, g_hyper_sbc = (np.zeros(model.dim) for _ in range(3))
        logp_sbc = _sbc_density(theta, g_sbc, vector, parameterization == "noncentered")
        hyper = hyperprior_logp_grad(theta, g_hyper)
        hyper_sbc = sbc_hyperprior_logp_grad(theta, g_hyper_sbc)
        np.testing.assert_allclose(logp_sbc - hyper_sbc, logp - hyper, rtol=1e-12)
        np.testing.assert_allclose(g_sbc - g_hyper_sbc, grad - g_hyper, rtol=1e-10, atol=1e-10)


def test_radon_sbc_hyperprior_gradient_matches_finite_differences():
    theta = np.array([0.3, -0.7, -0.2, 0.4, -0.1])
    grad = np.zeros(5)
    sbc_hyperprior_logp_grad(theta, grad)
    h = 1e-6
    for i in range(5):
        step = np.zeros(5)
        step[i] = h
        up = sbc_hyperprior_logp_grad(theta + step, np.zeros(5))
        down = sbc_hyperprior_logp_grad(theta - step, np.zeros(5))
        assert grad[i] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-8)


def test_radon_simulator_draws_the_stated_priors():
    """sigma_a ~ HalfNormal(0.5): E sigma_a = 0.5 sqrt(2/pi); over 400 draws the mean's standard
    error is 0.5 sqrt(1 - 2/pi) / 20 = 0.0075; tolerance 4.5 standard errors (false alarm ~7e-6).
    mu_a ~ N(0, 1) alike. The data vector holds the real design's counts."""
    simulated = radon_simulated("noncentered")
    rng = np.random.default_rng(3)
    draws = [simulated.simulate(rng) for _ in range(400)]
    truths = np.array([t for t, _ in draws])
    sigma_a = np.exp(truths[:, 1])
    assert abs(sigma_a.mean() - 0.5 * np.sqrt(2 / np.pi)) < 4.5 * 0.5 * np.sqrt(1 - 2 / np.pi) / 20
    assert abs(truths[:, 0].mean()) < 4.5 / 20
    data = draws[0][1]
    assert data.shape == (simulated.data_size,) and data[-1] == 919.0
    assert data[: 2 * 85].sum() == 919.0


def test_every_registered_model_simulates_and_pickles():
    for name in SBC_MODELS:
        simulated = simulated_model(name)
        truth, data = simulated.simulate(np.random.default_rng(0))
        assert truth.shape == (simulated.dim,) and np.all(np.isfinite(truth))
        assert data.shape == (simulated.data_size,)
        assert pickle.loads(pickle.dumps(simulated)) is simulated
    with pytest.raises(ValueError, match="no data-generating process for model 'banana'"):
        simulated_model("banana")


def test_replications_do_not_depend_on_how_many_were_asked_for_or_on_threads():
    """Replication r is seeded by SeedSequence(seed).spawn(n)[r]: the first 6 of 10 are those of
    a run of 6, and one thread gives what several give."""
    from concurrent.futures import ThreadPoolExecutor

    sampler = NutsSampler(tune=200)
    short = sbc(sampler, "hierarchical_normal", replications=6, n_draws=100, seed=5)
    with ThreadPoolExecutor(1) as one:
        long = sbc(sampler, hierarchical_normal(), replications=10, n_draws=100, seed=5,
                   executor=one)
    assert np.array_equal(long.u[:6], short.u)


def test_sbc_passes_on_eight_schools_noncentered():
    """100 replications; each parameter's chi-square is tested at 1e-3 / 10 (Bonferroni), so a
    correct sampler fails with probability at most 1e-3."""
    result = sbc(NutsSampler(tune=500), "eight_schools_noncentered", replications=100,
                 n_draws=200, seed=0)
    assert result.pvalues.min() > 1e-3 / 10
    assert result.u.shape == (100, 10) and np.all((result.u >= 0) & (result.u < 1))


def test_bad_replications_are_refused():
    with pytest.raises(ValueError, match="replications must be a positive integer"):
        sbc(replications=0)
    with pytest.raises(ValueError, match="batch must be a positive integer, got 0"):
        sbc(batch=0)


DISABLED_JIT_SCRIPT = """
import json, sys
import numpy as np
from nutslite._numba import JIT_DISABLED
from nutslite.testing.sbc import simulated_model
assert JIT_DISABLED
out = {}
for name in sys.argv[1:]:
    simulated = simulated_model(name)
    truth, data = simulated.simulate(np.random.default_rng(7))
    logp, grad = simulated.conditioned(data).logp_and_grad(0.9 * truth)
    out[name] = [float(logp).hex()] + [float(g).hex() for g in grad]
print(json.dumps(out))
"""


def test_disabled_jit_gives_the_same_bits():
    """The densities with their data and the simulators, interpreted (NUMBA_DISABLE_JIT=1)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    names = sorted(SBC_MODELS)
    proc = subprocess.run([sys.executable, "-c", DISABLED_JIT_SCRIPT, *names], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    python = json.loads(proc.stdout)
    for name in names:
        simulated = simulated_model(name)
        truth, data = simulated.simulate(np.random.default_rng(7))
        logp, grad = simulated.conditioned(data).logp_and_grad(0.9 * truth)
        assert python[name] == [float(logp).hex()] + [float(g).hex() for g in grad], name
