"""nutslite.testing's invariant checks, on nutslite's own integrator and NUTS transitions, and
their teeth: each check must reject a deliberately wrong integrator or a tampered record.

Statistical checks run at ``ALPHA`` = 1e-3 with fixed seeds: a correct implementation fails one of
them with probability at most about 1e-3 (a pass is then reproducible).
"""

import dataclasses
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import nutslite as nl
from nutslite._numba import LOGP_GRAD_SIGNATURE
from nutslite.testing import invariants as inv
from nutslite.testing import strategies as nst

ALPHA = 1e-3


def stable_step_fraction(model, inv_mass, fraction):
    """``fraction`` of leapfrog's stability limit ``2 / sqrt(lambda_max(M^-1 P))`` on a Gaussian."""
    minv = inv._inv_mass_matrix(inv_mass, model.dim)
    precision = np.linalg.inv(model.moments["cov"])
    lam = np.max(np.real(np.linalg.eigvals(minv @ precision)))
    return fraction * 2.0 / np.sqrt(lam)


@st.composite
def gaussian_phase_points(draw, max_dim=50):
    """A Gaussian target, a mass matrix, a point, a momentum and a step size within 2-20% of the
    stability limit (so the energy error is in its asymptotic regime)."""
    model = draw(nst.gaussian_targets(max_dim=max_dim))
    inv_mass = draw(st.none() | nst.mass_matrices(model.dim))
    q = draw(nst.points(model))
    p = draw(nst.momenta(model.dim, inv_mass))
    step = stable_step_fraction(model, inv_mass, draw(st.floats(0.02, 0.2)))
    return model, inv_mass, q, p, step


@given(gaussian_phase_points())
def test_leapfrog_invariants_on_gaussians(case):
    model, inv_mass, q, p, step = case
    assume(np.abs(p).max() > 0.1)  # at rest at the mode the energy error is exactly 0
    assert inv.check_reversibility(model, q, p, step, inv_mass) <= 1e-8
    assert inv.check_volume_preservation(model, q, p, step, inv_mass, n_steps=2) <= 1e-5
    assert abs(inv.check_energy_error_order(model, q, p, step, inv_mass) - 2.0) <= 0.4


@settings(max_examples=10)  # each example compiles a model; the zoo is small
@given(nst.targets(max_dim=20).flatmap(lambda m: st.tuples(st.just(m), nst.points(m))))
def test_gradients_of_all_targets(case):
    model, q = case
    assert inv.check_gradient(model, q) <= 1.0


@given(nst.funnels(max_dim=6).flatmap(lambda m: st.tuples(st.just(m), nst.points(m, max_sd=1.0))),
       nst.step_sizes(1e-3, 1e-2))
def test_leapfrog_invariants_on_funnels(case, step):
    model, q = case
    p = np.linspace(-1.0, 1.0, model.dim)
    inv.check_reversibility(model, q, p, step)
    inv.check_volume_preservation(model, q, p, step)
    assert abs(inv.check_energy_error_order(model, q, p, step) - 2.0) <= 0.4


@given(gaussian_phase_points(max_dim=10), st.integers(0, 2**32 - 1))
def test_recorded_transitions_satisfy_the_deterministic_invariants(case, seed):
    model, inv_mass, q, _, _ = case
    step = stable_step_fraction(model, inv_mass, 0.3)
    rec = nl.record_transition(model, q, step, inv_mass, seed=seed, max_treedepth=8)
    assert inv.check_uturn_decisions(rec, max_treedepth=8) >= 3 * (rec.depth > 0)
    inv.check_acceptance_statistic(rec)
    probs = inv.selection_probabilities(rec)
    assert probs.sum() == pytest.approx(1.0) and probs[~rec.accepted].sum() == 0.0


@pytest.mark.parametrize("dense", [False, True])
def test_nutslite_transitions_pass_the_statistical_invariants(dense):
    """Chi-square selection test and momentum KS test on 2000 transitions from one start
    (false-alarm rate ALPHA)."""
    model = nl.models.ZOO["correlated_gaussian_5"]()
    cov = model.moments["cov"]
    inv_mass = cov if dense else np.diag(cov)
    stats = inv.check_transitions(
        model, np.linspace(-1, 1, 5), 0.5, inv_mass, n_transitions=2000, seed=3, alpha=ALPHA
    )
    assert stats["n_uturn_checks"] > 2000 * 3


# ---- teeth: wrong integrators and tampered records ----------------------------------------


def damped_leapfrog(model, q, p, step_size, inv_mass, n_steps):
    q, p = inv.leapfrog(model, q, p, step_size, inv_mass, n_steps)
    return q, 0.99 * p


def symplectic_euler(model, q, p, step_size, inv_mass, n_steps):
    """Symplectic Euler (Leimkuhler & Reich 2004, sec. 4.1): first order, volume preserving, not
    time reversible."""
    q, p = np.array(q, dtype=float), np.array(p, dtype=float)
    for _ in range(n_steps):
        p = p + step_size * model.grad(q)
        q = q + step_size * p
    return q, p


GAUSS = nl.models.ZOO["correlated_gaussian_5"]()
Q0, P0 = np.linspace(-1, 1, 5), np.linspace(0.5, -0.5, 5)


def test_volume_check_rejects_a_damped_integrator():
    with pytest.raises(AssertionError, match=r"volume preservation.*\|log \|det D Phi\|\| = 0.05"):
        inv.check_volume_preservation(GAUSS, Q0, P0, 0.1, integrator=damped_leapfrog)


def test_reversibility_and_order_reject_symplectic_euler():
    inv.check_volume_preservation(GAUSS, Q0, P0, 0.1, integrator=symplectic_euler)
    with pytest.raises(AssertionError, match="reversibility"):
        inv.check_reversibility(GAUSS, Q0, P0, 0.1, integrator=symplectic_euler)
    with pytest.raises(AssertionError, match=r"an order of 1\.\d"):
        inv.check_energy_error_order(GAUSS, Q0, P0, 0.1, integrator=symplectic_euler)


def test_gradient_check_rejects_a_wrong_gradient():
    @numba.njit(LOGP_GRAD_SIGNATURE)
    def half_gradient(theta, grad_out):
        logp = 0.0
        for i in range(theta.shape[0]):
            logp -= theta[i] ** 2
            grad_out[i] = -theta[i]  # should be -2 theta
        return logp

    model = nl.Model("wrong_gradient", 3, half_gradient)
    message = r"gradient of wrong_gradient: coordinate \d is .* finite differences give"
    with pytest.raises(AssertionError, match=message):
        inv.check_gradient(model, np.array([1.0, 2.0, 3.0]))


@pytest.fixture(scope="module")
def deep_record():
    """A transition with a rejected (turning) last subtree and several doublings."""
    for seed in range(100):
        rec = nl.record_transition(GAUSS, Q0, 0.3, seed=seed)
        if rec.depth >= 3 and not rec.accepted.all():
            return rec
    raise AssertionError("no transition of depth >= 3 with a rejected subtree in 100 seeds")


def test_uturn_check_rejects_a_flipped_decision(deep_record):
    checks = deep_record.checks.copy()
    checks[-4, 4] = 1 - checks[-4, 4]
    with pytest.raises(AssertionError, match="U-turn"):
        inv.check_uturn_decisions(dataclasses.replace(deep_record, checks=checks))


def test_uturn_check_rejects_a_missing_or_extra_check(deep_record):
    recorded = deep_record.checks
    for checks in (recorded[1:], np.vstack([recorded, recorded[-1:]])):
        with pytest.raises(AssertionError, match="U-turn"):
            inv.check_uturn_decisions(dataclasses.replace(deep_record, checks=checks))


def test_uturn_check_rejects_wrong_momenta(deep_record):
    momenta = deep_record.momenta.copy()
    momenta[deep_record.index > 0] *= -1.0  # the recorded decisions no longer follow
    with pytest.raises(AssertionError, match="U-turn decision"):
        inv.check_uturn_decisions(dataclasses.replace(deep_record, momenta=momenta))


def test_acceptance_check_rejects_a_statistic_without_the_rejected_subtree(deep_record):
    kept = deep_record.accepted & (deep_record.index != 0)
    accepted_only = float(np.mean(np.minimum(1.0, np.exp(deep_record.log_weights[kept]))))
    with pytest.raises(AssertionError, match="rejected subtree"):
        inv.check_acceptance_statistic(dataclasses.replace(deep_record, accept_stat=accepted_only))


def test_selection_probabilities_by_hand():
    """Weights 1 (start), then subtrees {1}: w=2, {-2,-1}: w=1+1: a_1 = min(1, 2/1) = 1,
    a_2 = min(1, 2/3) = 2/3, so P(T_0) = 0, P(T_1) = 1/3, P(T_2) = 2/3 split evenly."""
    rec = nl.record_transition(GAUSS, Q0, 0.3, seed=0)
    fake = dataclasses.replace(
        rec,
        index=np.arange(-2, 2),
        log_weights=np.log([1.0, 1.0, 1.0, 2.0]),
        accepted=np.ones(4, dtype=bool),
        left=-2, right=1, depth=2,
        subtrees=np.array([[0, 1, 1, 1, 1], [-2, 1, 2, 1, 1]]),
    )
    np.testing.assert_allclose(inv.selection_probabilities(fake), [1 / 3, 1 / 3, 0.0, 1 / 3])


def test_testing_package_imports_without_hypothesis():
    """``import nutslite.testing`` must not import hypothesis; ``strategies`` does, on access."""
    code = (
        "import sys, nutslite.testing as t; assert 'hypothesis' not in sys.modules; "
        "t.strategies; assert 'hypothesis' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
