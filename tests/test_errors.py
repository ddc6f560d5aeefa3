"""Bad input gets an error that names the problem; a NaN log density mid-run is a divergence."""

import math

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nutslite as nl
from nutslite._numba import JIT_DISABLED
from nutslite.models import zoo
from nutslite.progress import Reporter

# short runs: the sampler's warnings about R-hat, ESS or divergences are expected here
pytestmark = pytest.mark.filterwarnings("ignore::nutslite.diagnostics.SamplingWarning")

needs_jit = pytest.mark.skipif(JIT_DISABLED, reason="any callable is accepted without the JIT")


@pytest.fixture(scope="module")
def model():
    return zoo.std_normal(2)


def sample(model, **kwargs):
    kwargs = {"draws": 10, "tune": 10, "chains": 1, "seed": 0, "progress": False, **kwargs}
    return nl.sample(model, **kwargs)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (name, value)
        for value in (0, -3, 2.5, "10", True, None)
        for name in ("draws", "chains", "cores", "max_treedepth")
        if not (name == "cores" and value is None)  # cores=None means all CPUs
    ],
)
def test_counts_must_be_positive_integers(model, name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value!r}"):
        sample(model, **{name: value})


@pytest.mark.parametrize("value", [-1, 0.5, "10", None])
def test_tune_must_be_a_non_negative_integer(model, value):
    with pytest.raises(ValueError, match=f"tune must be a non-negative integer, got {value!r}"):
        sample(model, tune=value)


def test_numpy_integers_are_counts(model):
    res = sample(model, draws=np.int64(7), tune=np.int32(5), chains=np.uint8(2))
    assert res.unconstrained.shape == (2, 7, 2)


@pytest.mark.parametrize("value", [0, 1, -0.1, 1.5, math.nan, math.inf, "0.8", True, None])
def test_target_accept_must_lie_in_the_open_unit_interval(model, value):
    with pytest.raises(ValueError, match="target_accept must lie strictly between 0 and 1"):
        sample(model, target_accept=value)


@pytest.mark.parametrize("value", [-1, 1.5, "1", True])
def test_seed_must_be_a_non_negative_integer(model, value):
    with pytest.raises(ValueError, match="seed must be a non-negative integer or None"):
        sample(model, seed=value)


def test_draw_buffers_that_cannot_fit_are_refused_before_allocating(model):
    with pytest.raises(ValueError, match=r"need \d+\.\d GiB for draws .* use fewer draws"):
        sample(model, draws=10**13)


def test_max_treedepth_beyond_memory_is_refused(model):
    with pytest.raises(ValueError, match="choose a smaller max_treedepth"):
        sample(model, max_treedepth=40)


@pytest.mark.parametrize(
    "init, message",
    [
        (np.zeros(3), r"init must have shape \(2,\) or \(3, 2\), got \(3,\)"),
        (np.zeros((2, 2)), r"init must have shape \(2,\) or \(3, 2\), got \(2, 2\)"),
        ([[0.0, 1.0]], r"got \(1, 2\)"),
        ([0.0, np.nan], r"init must be finite; chain 0, coordinate 1 is nan"),
        (np.array([[0, 0], [0, 0], [np.inf, 0]]), r"chain 2, coordinate 0 is inf"),
    ],
)
def test_init_of_the_wrong_shape_or_not_finite(model, init, message):
    with pytest.raises(ValueError, match=message):
        sample(model, chains=3, init=init)


@pytest.mark.parametrize("init", [["a", "b"], [[0.0, 1.0], [2.0]], {"x": 1}])
def test_init_that_is_not_numbers(model, init):
    with pytest.raises((TypeError, ValueError), match="init must"):
        sample(model, init=init)


def test_init_accepts_one_point_or_one_per_chain(model):
    one = sample(model, chains=2, init=[0.5, -0.5], tune=0, step_size=0.1)
    per_chain = sample(model, chains=2, init=[[0.5, -0.5], [0.5, -0.5]], tune=0, step_size=0.1)
    np.testing.assert_array_equal(one.warmup["init"], [[0.5, -0.5]] * 2)
    np.testing.assert_array_equal(one.unconstrained, per_chain.unconstrained)


@pytest.mark.parametrize(
    "name, value, error, message",
    [
        ("step_size", "big", TypeError, "step_size must be a number or an array of numbers"),
        ("step_size", -1.0, ValueError, "step_size must be a positive finite number"),
        ("step_size", [0.1, 0.2, 0.3], ValueError, "an array of 1 of them"),
        ("jitter", 1.0, ValueError, r"jitter must lie in \[0, 1\)"),
        ("inv_mass_matrix", [1.0, -1.0], ValueError, "inv_mass_matrix must be positive"),
        ("progress", "yes", TypeError, "progress must be True, False or"),
    ],
)
def test_other_arguments(model, name, value, error, message):
    with pytest.raises(error, match=message):
        sample(model, **{name: value})


def test_model_must_be_a_model():
    with pytest.raises(TypeError, match="model must be a nutslite.Model, got str"):
        nl.sample("radon")


@numba.njit
def _nowhere_finite(theta, grad_out):
    for i in range(theta.shape[0]):
        grad_out[i] = 0.0
    grad_out[1] = np.nan
    return -np.inf


def test_log_density_not_finite_at_any_initial_point_names_the_coordinates():
    model = nl.Model("nowhere", 3, _nowhere_finite, coords=["mu", "log_sigma", "z"])
    with pytest.raises(ValueError) as info:
        nl.sample(model, chains=1, progress=False)
    message = str(info.value)
    assert "not finite at 100 uniform(-2, 2) points" in message
    assert "log density -inf, gradient not finite in log_sigma" in message
    assert "(point: mu=" in message and "z=" in message
    with pytest.raises(ValueError, match=r"given init; .* \(point: mu=1, log_sigma=2, z=3\)"):
        nl.sample(model, chains=1, init=[1.0, 2.0, 3.0], progress=False)


@numba.njit
def _one_argument(theta):
    return 0.0


@numba.njit
def _returns_an_array(theta, grad_out):
    return theta


def _not_jitted(theta, grad_out):
    return 0.0


@needs_jit
@pytest.mark.parametrize(
    "function, message",
    [
        (_one_argument, r"does not compile as \(theta: float64\[::1\], grad_out: float64\[::1\]\)"),
        (_returns_an_array, "does not compile as"),
        (_not_jitted, r"must be a Numba-jitted function \(decorate it with @numba.njit\)"),
    ],
)
def test_logp_grad_with_the_wrong_signature(function, message):
    with pytest.raises(TypeError, match=message):
        nl.Model("bad", 2, function)


def test_unknown_radon_parameterization_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of 'centered', 'noncentered'"):
        nl.models.radon("non-centered")


@numba.njit
def _nan_outside(theta, grad_out):
    """A standard normal whose log density turns NaN where |x[0]| > 1.5."""
    lp = 0.0
    for i in range(theta.shape[0]):
        grad_out[i] = -theta[i]
        lp -= 0.5 * theta[i] * theta[i]
    if abs(theta[0]) > 1.5:
        return np.nan
    return lp


def test_a_log_density_that_turns_nan_mid_run_makes_divergences():
    model = nl.Model("nan_outside", 2, _nan_outside)
    res = nl.sample(model, draws=300, tune=200, chains=2, seed=4, init=np.zeros(2),
                    progress=False)
    assert res.sample_stats["diverging"].sum() > 0
    assert np.isfinite(res.unconstrained).all()
    assert np.abs(res.unconstrained[..., 0]).max() <= 1.5
    assert np.isfinite(res.sample_stats["lp"]).all()


# --- fuzzing ---------------------------------------------------------------------------------

def _counts(low: int, high: int):
    """Mostly small valid counts, plus every kind of invalid one."""
    return st.one_of(
        st.integers(low, high),
        st.integers(-(2**70), low - 1),
        st.integers(10**12, 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=3),
        st.booleans(),
        st.none(),
    )


class _Silent(Reporter):
    pass


@given(
    draws=_counts(1, 20),
    tune=_counts(0, 20),
    chains=_counts(1, 3),
    cores=st.one_of(st.none(), _counts(1, 2)),
    max_treedepth=_counts(1, 6),
    target_accept=st.one_of(st.floats(), st.integers(-2, 2), st.text(max_size=3)),
    seed=st.one_of(st.none(), st.integers(-5, 2**130), st.floats(), st.text(max_size=2)),
    init=st.one_of(
        st.none(),
        st.lists(st.floats(), min_size=0, max_size=3),
        st.lists(st.lists(st.floats(-3, 3), min_size=2, max_size=2), min_size=1, max_size=3),
        st.text(max_size=3),
    ),
    step_size=st.one_of(st.none(), st.floats(), st.text(max_size=2)),
    progress=st.sampled_from([False, _Silent(), "yes", None, 1]),
)
def test_fuzz_sample_arguments(model, draws, tune, chains, cores, max_treedepth, target_accept,
                               seed, init, step_size, progress):
    """Any arguments: a result, or a ValueError/TypeError with a message, nothing else."""
    kwargs = dict(draws=draws, tune=tune, chains=chains, cores=cores, seed=seed, init=init,
                  max_treedepth=max_treedepth, target_accept=target_accept,
                  step_size=step_size, progress=progress)
    try:
        res = nl.sample(model, **kwargs)
    except (ValueError, TypeError) as err:
        assert str(err).strip()
    else:
        assert res.unconstrained.shape == (chains, draws, 2)
        assert np.isfinite(res.unconstrained).all()


# --- the trial call at construction (issue 17) --------------------------------------------------


@numba.njit
def _writes_five_gradient_entries(theta, grad_out):
    for i in range(5):  # a model of dim 3 that writes a 5-element gradient
        grad_out[i] = -0.1 * i
    return 0.0


def test_a_gradient_written_past_dim_is_caught_not_a_crash():
    """Compiled, this used to corrupt the heap (``corrupted double-linked list``, exit 134)."""
    with pytest.raises(ValueError, match=r"Model 'too_long': logp_grad wrote past the end of "
                                         r"grad_out, which has dim=3 entries"):
        nl.Model("too_long", 3, _writes_five_gradient_entries)


@numba.njit
def _one_over_norm(theta, grad_out):
    """log p = -1 / |theta|: undefined at the origin only (a ZeroDivisionError there)."""
    r = np.sqrt(np.sum(theta * theta))
    for i in range(theta.shape[0]):
        grad_out[i] = theta[i] / r**3
    return -1.0 / r


@numba.njit
def _always_fails(theta, grad_out):
    raise ValueError("no density here")


def test_a_density_undefined_at_the_origin_is_accepted():
    model = nl.Model("one_over_norm", 2, _one_over_norm)
    assert model.logp(np.array([3.0, 4.0])) == pytest.approx(-0.2)


def test_a_density_failing_everywhere_reports_each_trial_point():
    with pytest.raises(TypeError, match="failed at each of 4 trial points") as info:
        nl.Model("broken", 2, _always_fails)
    message = str(info.value)
    assert message.count("ValueError: no density here") == 4
    assert "at the origin: " in message and message.count("at (") == 3


def test_sampling_warnings_point_at_the_callers_line():
    """Not at sampling.py: the line to look at is the user's call of nl.sample."""
    with pytest.warns(nl.diagnostics.SamplingWarning, match="diverged") as caught:
        nl.sample(zoo.std_normal(2), draws=100, tune=0, chains=2, seed=1, step_size=5.0,
                  progress=False)
    assert {w.filename for w in caught} == {__file__}
