"""nutslite.testing has teeth: the compact NUTS of ``broken_nuts.py`` passes every check in its
correct mode, and each of its bugs is rejected by the check written for it.

Which check catches which bug, and why some bugs escape ``check_sampler``:

=========================  =========================================================================
bug                        rejected by
=========================  =========================================================================
half_step                  reversibility; energy-error order (0: the momentum gets 1.5 eps kicks per
                           step, inconsistent dynamics); check_sampler (biased moments)
mass_wrong_side            energy-error order (0: the flow no longer conserves H). The map is still
                           reversible and volume preserving, so with correct weights the target
                           stays invariant; check_sampler only sees it through collapsed ESS
momentum_wrong_side        momentum KS test; check_sampler (momenta from the wrong distribution)
missing_jacobian           check_sampler (log_gamma: the mean of log sigma shifts by a whole unit);
                           no transition invariant sees it, the density itself is wrong
last_state                 selection chi-square; check_sampler (biased moments)
accept_ignores_rejected    acceptance-statistic check only: it changes only the adapted step size,
                           never the target, so check_sampler cannot see it
uniform_top_level          selection check only: uniform progressive sampling is still a valid
                           sampler (Betancourt 2017, A.3.2), just a less efficient one
no_extra_checks            U-turn replay only: Stan before 2.21 and NumPyro are valid samplers
=========================  =========================================================================

Statistical checks use fixed seeds and a false-alarm rate of 1e-3 (check_sampler: Bonferroni over
its statistics; transitions: 1e-3 shared by the momentum and selection tests).
"""

import numpy as np
import pytest
from broken_nuts import BUGS, BrokenNuts

import nutslite as nl
from nutslite.testing import check_sampler, invariants

ALPHA = 1e-3
MODEL = nl.models.ZOO["correlated_gaussian_5"]()
Q0 = np.linspace(-1.0, 1.0, 5)
P0 = np.linspace(0.8, -0.4, 5)
INV_MASS = np.array([2.0, 1.0, 0.5, 3.0, 0.3])  # not the identity: mass-matrix bugs show


def integrator_checks(sampler):
    invariants.check_reversibility(MODEL, Q0, P0, 0.1, INV_MASS, integrator=sampler.integrator)
    invariants.check_volume_preservation(
        MODEL, Q0, P0, 0.1, INV_MASS, n_steps=3, integrator=sampler.integrator
    )
    invariants.check_energy_error_order(MODEL, Q0, P0, 0.1, INV_MASS, integrator=sampler.integrator)


def transition_checks(sampler):
    return invariants.check_transitions(
        MODEL, Q0, 0.4, INV_MASS, n_transitions=2000, seed=5, alpha=ALPHA, record=sampler.record
    )


def sampler_checks(sampler):
    check_sampler(sampler, sbc=False, alpha=ALPHA)


def test_correct_mode_passes_everything():
    sampler = BrokenNuts(None, max_treedepth=7)
    integrator_checks(sampler)
    assert transition_checks(sampler)["selection_pvalue"] >= ALPHA / 2
    assert check_sampler(sampler, seed=0, alpha=ALPHA).passed


CAUGHT_BY = {
    "half_step": [
        (integrator_checks, r"reversibility .* off by"),
        (sampler_checks, r"FAIL scaled_gaussian .* mean\(x\[0\] / 0.01\)"),
    ],
    "mass_wrong_side": [(integrator_checks, r"energy error order .* an order of -?0\.\d\d")],
    "momentum_wrong_side": [
        (transition_checks, r"momentum distribution: .* is not chi2_5"),
        (sampler_checks, r"FAIL log_gamma +sd\(log sigma\)"),
    ],
    "missing_jacobian": [(sampler_checks, r"FAIL log_gamma +mean\(log sigma\)")],
    "last_state": [
        (transition_checks, "selection frequencies differ"),
        (sampler_checks, r"FAIL correlated_gaussian +sd\(whitened pc\[0\]\)"),
    ],
    "accept_ignores_rejected": [(transition_checks, "acceptance statistic .* rejected subtree")],
    "uniform_top_level": [(transition_checks, r"selection: state -?\d+ was selected|frequencies")],
    "no_extra_checks": [(transition_checks, r"U-turn checks: the merge of .* should check")],
}


def test_every_bug_has_a_catching_check():
    assert set(CAUGHT_BY) == set(BUGS)


@pytest.mark.parametrize(
    ("bug", "check", "message"),
    [
        pytest.param(bug, check, message, id=f"{bug}-{check.__name__}")
        for bug, pairs in CAUGHT_BY.items()
        for check, message in pairs
    ],
)
def test_bug_is_caught(bug, check, message):
    with pytest.raises(AssertionError, match=message):
        check(BrokenNuts(bug, max_treedepth=7))


def test_nutslite_sample_passes_the_same_transition_checks():
    stats = invariants.check_transitions(
        MODEL, Q0, 0.4, INV_MASS, n_transitions=2000, seed=5, alpha=ALPHA, max_treedepth=7
    )
    assert stats["momentum_pvalue"] >= ALPHA / 2 and stats["selection_pvalue"] >= ALPHA / 2
