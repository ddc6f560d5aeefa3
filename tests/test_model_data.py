"""A model carries data that its log density reads (``nl.Model(..., data=)``): the same draws as a
closure over the same data, one compiled engine for every data set, its own read-only copy of the
data, clear errors for the wrong form, and pickling with the data."""

import pickle

import numba
import numpy as np
import pytest

import nutslite as nl
from nutslite._numba import JIT_DISABLED
from nutslite.engine.chain import run_chain
from nutslite.models.zoo import EIGHT_SCHOOLS_Y, eight_schools_simulated
from nutslite.testing.sbc import hierarchical_normal

needs_jit = pytest.mark.skipif(JIT_DISABLED, reason="counts compiled specialisations")


@numba.njit
def _shifted_normal(theta, grad_out, data):
    """``N(data[:dim], I)``: the data are the mean."""
    logp = 0.0
    for i in range(theta.shape[0]):
        d = theta[i] - data[i]
        logp -= 0.5 * d * d
        grad_out[i] = -d
    return logp


@numba.njit
def _two_arguments(theta, grad_out):
    grad_out[:] = -theta
    return -0.5 * np.sum(theta * theta)


@numba.njit
def _writes_its_data(theta, grad_out, data):
    data[0] = theta[0]
    grad_out[:] = 0.0
    return 0.0


def test_data_model_draws_what_the_closure_over_the_same_data_draws():
    """Eight schools with its effects as data is bit for bit the zoo's closure over them, so the
    engine's data path samples exactly what its closure path samples."""
    closure = nl.models.eight_schools("noncentered")
    with_data = eight_schools_simulated("noncentered").conditioned(np.array(EIGHT_SCHOOLS_Y))
    kw = dict(draws=40, tune=60, chains=2, seed=3, progress=False, warn=False)
    a, b = nl.sample(closure, **kw), nl.sample(with_data, **kw)
    np.testing.assert_array_equal(a.unconstrained, b.unconstrained)
    np.testing.assert_array_equal(a.sample_stats["lp"], b.sample_stats["lp"])


@needs_jit
def test_other_data_compile_nothing():
    """After one run with data, a model of the same function with other data adds no compiled
    specialisation: neither to the chain loop nor to the density."""
    simulated = hierarchical_normal(4)
    kw = dict(draws=20, tune=20, chains=1, seed=1, progress=False, warn=False)
    nl.sample(simulated.conditioned(np.zeros(4)), **kw)
    engine, density = len(run_chain.overloads), len(simulated.density.overloads)
    res = nl.sample(simulated.conditioned(np.array([3.0, 2.5, 4.0, 3.5])), **kw)
    assert len(run_chain.overloads) == engine and len(simulated.density.overloads) == density
    assert res.unconstrained[..., 0].mean() > 1.0  # mu follows the new data (mean 3.25)


def test_the_model_keeps_a_read_only_copy_of_its_data():
    data = np.array([1.0, -2.0])
    model = nl.Model("shifted", 2, _shifted_normal, data=data)
    data[0] = 100.0
    assert model.data.tolist() == [1.0, -2.0] and not model.data.flags.writeable
    logp, grad = model.logp_and_grad(np.array([1.0, -2.0]))
    assert logp == 0.0 and grad.tolist() == [0.0, 0.0]
    assert "data=<2 values>" in repr(model)
    # integers convert to float64 exactly
    assert nl.Model("ints", 2, _shifted_normal, data=[1, 2]).data.dtype == np.float64


@pytest.mark.parametrize(
    "function, data, error, message",
    [
        (_shifted_normal, None, TypeError, r"takes a third argument.*no data= was given"),
        (_two_arguments, np.zeros(2), TypeError, r"data= was given, but logp_grad takes "
                                                 r"\(theta, grad_out\)"),
        (_shifted_normal, np.zeros((2, 2)), ValueError, r"data must be a 1-D array, got shape"),
        (_shifted_normal, np.zeros(2, dtype=complex), TypeError, r"data must be numbers that "
                                                                 r"NumPy casts safely to float64"),
        (_shifted_normal, ["a", "b"], TypeError, "data must be numbers"),
    ],
)
def test_the_wrong_form_names_the_problem(function, data, error, message):
    with pytest.raises(error, match=message):
        nl.Model("bad", 2, function, data=data)


def test_a_density_that_writes_its_data_is_refused():
    """Compiled, it does not compile for read-only data; interpreted, NumPy refuses the write at
    every trial call."""
    message = r"does not compile as .*\(read-only\)" if not JIT_DISABLED else "read-only"
    with pytest.raises(TypeError, match=message):
        nl.Model("writer", 2, _writes_its_data, data=np.zeros(2))


def test_a_conditioned_model_pickles_with_its_data():
    simulated = hierarchical_normal(3)
    data = np.array([0.5, -1.0, 2.0])
    model = simulated.conditioned(data)
    data[:] = 0.0  # the caller's array changes after the fact: neither model nor pickle sees it
    copy = pickle.loads(pickle.dumps(model))
    assert copy.data.tolist() == [0.5, -1.0, 2.0] and copy.name == model.name
    theta = np.array([0.3, -0.2])
    assert copy.logp(theta) == model.logp(theta)
    with pytest.raises(ValueError, match=r"conditioned on data of shape \(2,\), expected \(3,\)"):
        simulated.conditioned(np.zeros(2))
