r"""Sample any PyMC model with nutslite: ``nl.from_pymc(pymc_model)`` returns an ``nl.Model``.

PyTensor compiles the model's joint log density and its gradient to Numba, the route nutpie takes
(``nutpie.compile_pymc_model(..., backend="numba")``); a small jitted adapter of the engine's fixed
type ``float64(float64[::1] theta, float64[::1] grad_out)`` calls that compiled graph and copies
the gradient into ``grad_out``, so the engine evaluates it without any Python per leapfrog step.
nutslite and nutpie then run the very same gradient code, and a comparison of the two measures
only the engine and the warmup.

**The unconstrained vector.** PyMC gives each free variable ``x`` a *value variable* on its
transformed scale (``sigma`` -> ``sigma_log__``, a simplex ``p`` -> ``p_simplex__``, ...). The
vector ``theta`` is the concatenation of the raveled value variables in the order of
``model.free_RVs`` (C order within each), and ``model.coords`` names its entries ``mu_a``,
``sigma_a_log__``, ``a[0]``, ``L[1,2]`` and so on. On this scale the density is
``log p(theta) = log p(x(theta)) + log |det J_x(theta)|`` with each transform's log-Jacobian
included, as in Stan (Carpenter et al. 2017, "Stan: a probabilistic programming language", J.
Stat. Softw. 76, section on constrained variables).

**Constrained draws** (``model.constrain``) are PyMC's free variables on their natural scale plus
every ``pm.Deterministic``, with PyMC's names and shapes; ``model.dims`` and ``model.dim_labels``
carry the model's named dims and coords, so ``res.to_arviz()`` has the posterior group that
``pm.sample`` returns (same variables, dims and coordinate labels).

**Initial point.** nutslite keeps Stan's default, uniform(-2, 2) on the unconstrained scale
(``nl.sample(init=None)``), for PyMC models too, so that the chains start dispersed as the
R-hat diagnostic assumes (Vehtari et al. 2021). ``from_pymc`` evaluates the log density at PyMC's
own initial point (``pymc_model.initial_point()``) once, to refuse a model whose density fails
there with an error that names the offending variables.

**Compilation and speed.** PyTensor compiles each graph to Numba in seconds. The adapter, which
contains the whole log-density graph, is cached on disk in PyTensor's Numba cache under the
graph's hash (constants and data included), so a later process with the same model and data loads
it: on the shared 2-core test machine ``from_pymc`` of a posteriordb regression took 11 s cold and
3 s warm. PyTensor's generated code allocates its outputs on every call, so a bridged gradient is
slower than a hand-written one: 20 us against 1.2-1.7 us for ``nl.models.radon("noncentered")``
(one timing on the loaded machine), the same code that nutpie runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nutslite._numba import JIT_DISABLED, LOGP_GRAD_SIGNATURE
from nutslite.model import Model

__all__ = ["from_pymc"]


def _import_pymc() -> tuple[Any, Any]:
    try:
        import pymc
        import pytensor
    except ImportError as err:
        raise ImportError(
            'nl.from_pymc needs PyMC, an optional dependency: pip install "nutslite[pymc]"'
        ) from err
    return pymc, pytensor


def from_pymc(pymc_model: Any, name: str | None = None) -> Model:
    """An ``nl.Model`` whose log density and gradient are the PyMC model's, compiled to Numba.

    The log density, on the unconstrained scale of PyMC's value variables, is the model's joint
    log density (priors, likelihood and ``pm.Potential`` terms) plus the log-Jacobians of the
    transforms; its gradient comes from PyTensor's reverse-mode differentiation. Both are
    compiled by PyTensor's Numba backend into one function that the sampler calls from compiled
    code. With ``NUMBA_DISABLE_JIT=1`` PyTensor's default (C) backend computes them instead and
    the sampler calls it through Python: the same density, but the draws are not bit-identical to
    the compiled run's, since the two backends round differently.

    Shared data (``pm.Data`` and other shared variables) and mutable dims are read *once, when
    the model is compiled* (each shared variable in the compiled graphs becomes a constant): a later
    ``pm.set_data`` does not change the returned ``Model``; call ``from_pymc`` again.

    Parameters
    ----------
    pymc_model
        A ``pymc.Model`` with continuous free variables only.
    name
        The ``Model`` name; defaults to the PyMC model's name or ``"pymc_model"``.

    Returns
    -------
    Model
        ``dim`` = total size of the value variables; ``coords`` as in the module docstring;
        ``constrain`` returns every free variable and deterministic by its PyMC name with shape
        ``(..., *shape)``; ``dims``/``dim_labels`` from the PyMC model's dims and coords;
        ``log_transformed`` lists the coordinates under PyMC's log transform.

    Raises
    ------
    ImportError
        When PyMC is not installed.
    TypeError
        When ``pymc_model`` is not a ``pymc.Model``.
    ValueError
        When the model has no free variables, has discrete free variables (NUTS needs a
        gradient), or its log density or gradient is not finite at PyMC's initial point.
    """
    pm, pytensor = _import_pymc()
    if not isinstance(pymc_model, pm.Model):
        raise TypeError(
            f"from_pymc needs a pymc.Model (the object of `with pm.Model() as model:`), "
            f"got {type(pymc_model).__name__}"
        )
    if not pymc_model.free_RVs:
        raise ValueError("from_pymc: the PyMC model has no free (unobserved) random variables")
    discrete = [rv.name for rv in pymc_model.free_RVs if rv.type.dtype.startswith(("int", "uint"))]
    if discrete:
        raise ValueError(
            f"from_pymc: the PyMC model has discrete free variables {discrete}; NUTS needs a "
            "gradient, so marginalise them out (e.g. pymc_extras.marginalize) or observe them"
        )
    layout = _Layout(pymc_model)
    mode = "FAST_RUN" if JIT_DISABLED else "NUMBA"
    logp_fn = _compile_logp_dlogp(pymc_model, layout, pm, pytensor, mode)
    if JIT_DISABLED:
        logp_grad = _python_logp_grad(logp_fn)
    else:
        logp_grad = _numba_logp_grad(logp_fn.vm.jit_fn)
    _check_initial_point(pymc_model, layout, logp_grad)
    observed, constant = _data_groups(pymc_model)
    names, dims, dim_labels = _named_dims(pymc_model, [*observed, *constant])
    constrain = _make_constrain(pymc_model, layout, names, pm, pytensor, mode)
    return Model(
        name=name or pymc_model.name or "pymc_model",
        dim=layout.dim,
        logp_grad=logp_grad,
        constrain=constrain,
        coords=layout.coords,
        dims=dims,
        dim_labels=dim_labels,
        log_transformed=layout.log_transformed,
        observed_data=observed,
        constant_data=constant,
    )


class _Layout:
    """Where each value variable sits in ``theta``: names, shapes, slices, coordinate names."""

    def __init__(self, model: Any) -> None:
        import pytensor
        from pymc.logprob.transforms import LogTransform

        with pytensor.config.change_flags(mode="FAST_COMPILE"):  # evaluated once: no C compile
            point = model.initial_point()
        free = model.free_RVs
        self.value_vars = [model.rvs_to_values[rv] for rv in free]
        self.names = [v.name for v in self.value_vars]
        self.shapes = [tuple(np.shape(point[n])) for n in self.names]
        sizes = [math.prod(s) for s in self.shapes]
        ends = np.cumsum(sizes)
        self.slices = [slice(int(e - s), int(e)) for s, e in zip(sizes, ends, strict=True)]
        self.dim = int(ends[-1])
        self.initial_point = np.concatenate(
            [np.ravel(point[n]).astype(np.float64) for n in self.names]
        )
        self.coords: list[str] = []
        self.log_transformed: list[int] = []
        for rv, n, shape, sl in zip(free, self.names, self.shapes, self.slices,
                                    strict=True):
            self.coords += [n] if shape == () else [
                f"{n}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)
            ]
            if isinstance(model.rvs_to_transforms.get(rv), LogTransform):
                self.log_transformed += range(sl.start, sl.stop)

    def replacements(self, theta: Any) -> dict:
        """Each value variable as a reshaped slice of the symbolic vector ``theta``."""
        return {
            v: theta[sl].reshape(shape).astype(v.dtype)
            for v, sl, shape in zip(self.value_vars, self.slices, self.shapes, strict=True)
        }


def _compile_logp_dlogp(model: Any, layout: _Layout, pm: Any, pytensor: Any, mode: str) -> Any:
    """A PyTensor function ``theta -> (log p, d log p / d theta)`` of the model's joint density
    with the transforms' log-Jacobians, stabilised by PyTensor's rewrites before differentiation
    (e.g. ``log(1 + x)`` -> ``log1p(x)``)."""
    import pytensor.tensor as pt

    logp = model.logp(jacobian=True)
    logp = pytensor.graph.rewrite_graph(logp, include=("canonicalize", "stabilize"))
    grads = pytensor.grad(logp, layout.value_vars)
    grad = pt.concatenate([pt.as_tensor(g).ravel() for g in grads])
    theta = pt.TensorType("float64", shape=(layout.dim,))("theta")
    logp, grad = _frozen([logp, grad], layout.replacements(theta))
    logp = pt.cast(logp, "float64")
    grad = pt.cast(grad, "float64")
    with model:
        return pm.pytensorf.compile([theta], [logp, grad], mode=mode)


def _frozen(outputs: list, replacements: dict) -> list:
    """``outputs`` with the value variables replaced as given and every shared variable
    (``pm.Data``, mutable dim lengths) replaced by a constant of its current value, so that the
    compiled function takes ``theta`` alone (the effect of PyMC's ``freeze_dims_and_data``,
    applied to the graphs rather than to a clone of the model)."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import graph_inputs

    shared = [v for v in graph_inputs(outputs) if isinstance(v, SharedVariable)]
    constants = {v: pt.constant(v.get_value(borrow=False), dtype=v.dtype) for v in shared}
    return pytensor.clone_replace(outputs, {**replacements, **constants})


def _check_initial_point(model: Any, layout: _Layout, logp_grad: Callable) -> None:
    """Refuse a model whose compiled density (which turns a failure into ``-inf``) is not finite
    at PyMC's initial point, naming the variables whose log density is not finite there
    (``model.point_logps``) and the coordinates whose gradient is not."""
    grad = np.empty(layout.dim)
    value = logp_grad(layout.initial_point.copy(), grad)
    if np.isfinite(value) and np.isfinite(grad).all():
        return
    point = model.initial_point()
    terms = model.point_logps(point)
    bad = [k for k, v in terms.items() if not np.isfinite(v)]
    bad_grad = [c for c, g in zip(layout.coords, grad, strict=True) if not np.isfinite(g)]
    raise ValueError(
        f"from_pymc: the log density is {float(value)} at PyMC's initial point {point}; "
        f"terms that are not finite: {bad or 'none'}; gradient not finite at: "
        f"{bad_grad or 'none'}. Check the data, the priors' parameters and the initial values."
    )


_ADAPTER_SOURCE = """
def nutslite_logp_grad(theta, grad_out):
    try:
        value, grad = graph(theta)
    except Exception:
        grad_out[:] = np.nan
        return -np.inf
    grad_out[:] = grad
    return value[()]
"""


def _numba_logp_grad(graph: Callable) -> Callable:
    """The engine's ``logp_grad`` around PyTensor's jitted graph ``theta -> (logp, grad)``.

    The graph returns a fresh gradient array, which is copied into ``grad_out``. An exception
    inside the graph becomes ``-inf`` with a NaN gradient, which the sampler treats as a
    divergence, as Stan does with a rejected proposal (PyMC's compile already turns its parameter
    checks into ``-inf``).

    Compiling this adapter compiles the whole graph into it, which costs seconds. When PyTensor
    can cache the graph (it then has a key that identifies the graph), the adapter is cached on
    disk in PyTensor's Numba cache under that key and the adapter's source, so a later process
    loads it instead; otherwise it is compiled in every process.
    """
    import hashlib

    import numba
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    graph_key = CACHED_SRC_FUNCTIONS.get(graph.py_func)
    key = None
    if graph_key is not None:
        key = hashlib.sha256(f"{graph_key}{_ADAPTER_SOURCE}{LOGP_GRAD_SIGNATURE}".encode())
        key = f"nutslite_logp_grad_{key.hexdigest()}"
    adapter = compile_numba_function_src(
        _ADAPTER_SOURCE, "nutslite_logp_grad",
        global_env={"__name__": __name__, "graph": graph, "np": np},
        cache_key=key,
    )
    return numba.njit(
        LOGP_GRAD_SIGNATURE, nogil=True, error_model="numpy", cache=key is not None
    )(adapter)


def _python_logp_grad(logp_fn: Callable) -> Callable:
    """The interpreted counterpart of ``_numba_logp_grad`` (``NUMBA_DISABLE_JIT=1``)."""

    def logp_grad(theta: np.ndarray, grad_out: np.ndarray) -> float:
        try:
            value, grad = logp_fn(theta)
        except Exception:  # noqa: BLE001  (a failed parameter check: a rejected point)
            grad_out[:] = np.nan
            return -np.inf
        grad_out[:] = grad
        return float(value)

    return logp_grad


def _data_groups(original: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The values of the observed variables and of the other ``pm.Data``, by name, as
    ``pm.sample`` puts them in ``observed_data`` and ``constant_data``; read now, like every
    ``pm.Data``."""

    def value(var: Any) -> np.ndarray:
        if hasattr(var, "get_value"):  # a shared variable (pm.Data)
            return np.asarray(var.get_value())
        return np.asarray(var.data if hasattr(var, "data") else var.eval())

    observed = {rv.name: value(original.rvs_to_values[rv]) for rv in original.observed_RVs}
    used = {original.rvs_to_values[rv].name for rv in original.observed_RVs}
    constant = {v.name: value(v) for v in original.data_vars if v.name not in used}
    return observed, constant


def _named_dims(
    original: Any, observed: Sequence[str] = (),
) -> tuple[list[str], dict[str, tuple[str, ...]], dict[str, list]]:
    """The constrained variables in ``pm.sample``'s order (``model.unobserved_value_vars``: free
    variables without a transform, then the transformed ones on their natural scale, then the
    deterministics) and the dims and labels of those and of the ``observed`` variables. A dim
    without coordinate values is labelled ``0..n-1``, as ``pm.sample`` does."""
    transformed = {v.name for v in original.value_vars} - {v.name for v in original.free_RVs}
    names = [v.name for v in original.unobserved_value_vars if v.name not in transformed]
    dims: dict[str, tuple[str, ...]] = {}
    for n in [*names, *observed]:
        named = original.named_vars_to_dims.get(n)
        if named and all(d is not None for d in named):
            dims[n] = tuple(named)
    used = {d for ds in dims.values() for d in ds}
    labels = {}
    for d in used:
        values = original.coords.get(d)
        if values is None:
            values = range(int(original.dim_lengths[d].eval()))
        labels[d] = _saveable_labels(values)
    return names, dims, labels


def _saveable_labels(values: Sequence[Any]) -> list:
    """A dim's coordinate values as strings, numbers or NumPy ``datetime64`` values (a
    ``pd.date_range``, say), which ``res.save`` stores and ArviZ reads as ``pm.sample``'s
    coordinates; values of any other type as their ``str``."""
    import pandas as pd

    values = list(values)
    if all(isinstance(v, str) for v in values):
        return [str(v) for v in values]
    array = pd.Index(values).to_numpy()
    if array.dtype.kind in "biuf":
        return array.tolist()  # Python numbers
    if array.dtype.kind in "mM":
        return list(array)  # NumPy datetime64 / timedelta64 values
    return [str(v) for v in values]


def _make_constrain(
    model: Any, layout: _Layout, names: Sequence[str], pm: Any, pytensor: Any, mode: str
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``theta (..., dim) -> {name: (..., *shape)}`` for the free variables on their natural scale
    and the deterministics, with one compiled PyTensor function applied to each row (called once
    per run, not per step)."""
    import pytensor.tensor as pt

    theta = pt.TensorType("float64", shape=(layout.dim,))("theta")
    by_name = {v.name: v for v in model.unobserved_value_vars}
    outputs = [by_name[n] for n in names]
    outputs = _frozen(outputs, layout.replacements(theta))
    with model:
        fn = pm.pytensorf.compile([theta], outputs, mode=mode)
    fn.trust_input = True

    shapes = [np.shape(v) for v in fn(layout.initial_point)]

    def constrain(values: np.ndarray) -> dict[str, np.ndarray]:
        lead = values.shape[:-1]
        rows = np.ascontiguousarray(values, dtype=np.float64).reshape(-1, layout.dim)
        out = [np.empty((len(rows), *shape)) for shape in shapes]
        for i, row in enumerate(rows):
            for target, value in zip(out, fn(row), strict=True):
                target[i] = value
        return {n: o.reshape(*lead, *o.shape[1:]) for n, o in zip(names, out, strict=True)}

    return constrain
