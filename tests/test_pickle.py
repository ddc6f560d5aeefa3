"""Models pickle as the recipe that built them, so they can travel to other processes."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

import nutslite as nl
from nutslite.model import rebuild


@pytest.mark.parametrize(
    "build",
    [
        lambda: nl.models.radon("noncentered"),
        lambda: nl.models.radon("centered", likelihood="pointwise"),
        lambda: nl.models.eight_schools("centered"),
        lambda: nl.models.correlated_gaussian(nl.models.rotated_covariance(3, seed=4)),
        lambda: nl.models.banana(0.05, dim=3),
    ],
)
def test_a_model_survives_a_round_trip(build):
    model = build()
    copy = pickle.loads(pickle.dumps(model))
    assert copy.name == model.name and copy.coords == model.coords
    assert copy.log_transformed == model.log_transformed and copy.dims == model.dims
    theta = np.random.default_rng(0).standard_normal(model.dim) * 0.5
    logp, grad = model.logp_and_grad(theta)
    logp_copy, grad_copy = copy.logp_and_grad(theta)
    assert logp_copy == logp and np.array_equal(grad_copy, grad)
    assert all(np.array_equal(model.constrain(theta)[k], v)
               for k, v in copy.constrain(theta).items())


def test_unpickling_one_recipe_twice_builds_the_model_once():
    blob = pickle.dumps(nl.models.std_normal(4))
    assert pickle.loads(blob) is pickle.loads(blob)
    assert rebuild(nl.models.std_normal, (4,), {}) is pickle.loads(blob)


def test_a_model_is_rebuilt_in_another_process():
    """The pickle names the factory, not compiled code: a fresh interpreter rebuilds it."""
    blob = pickle.dumps(nl.models.eight_schools("noncentered"))
    script = (
        "import pickle, sys, numpy as np; m = pickle.loads(sys.stdin.buffer.read()); "
        "print(m.name, m.logp(np.zeros(m.dim)))"
    )
    out = subprocess.run([sys.executable, "-c", script], input=blob, capture_output=True,
                         check=True).stdout.decode().split()
    model = nl.models.eight_schools("noncentered")
    assert out == [model.name, repr(model.logp(np.zeros(model.dim)))]


def test_a_model_without_recipe_names_the_problem():
    model = nl.Model("user_model", 2, nl.models.std_normal(2).logp_grad)
    with pytest.raises(TypeError, match=r"user_model.*cannot be pickled.*picklable"):
        pickle.dumps(model)


def test_a_model_built_while_another_thread_compiles_caches_in_nutslite_folder():
    """Models are rebuilt in threads (in-process SBC and check_sampler, Dask workers with several
    threads). While one thread compiles under nutslite's cache lock, ``numba.config.CACHE_DIR``
    holds that thread's temporary value; another thread must wait for the lock rather than take
    the value, which is reset under it (its cache then landed in the working directory)."""
    import threading

    from numba import config

    from nutslite._numba import _CACHE_LOCK, cache_dir, jit

    built = {}

    def build():
        def triple(x):
            return 3.0 * x

        built["dispatcher"] = jit(triple)

    with _CACHE_LOCK:  # as if another thread were compiling right now
        config.CACHE_DIR = cache_dir()
        worker = threading.Thread(target=build)
        worker.start()
        worker.join(timeout=0.5)
        waited = worker.is_alive()
        config.CACHE_DIR = ""
    worker.join()
    assert waited
    assert built["dispatcher"]._cache._cache_path.startswith(cache_dir())
