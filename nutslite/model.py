"""A target distribution: a log density and its gradient on an unconstrained space.

A ``Model`` wraps a Numba-jitted function ``logp_grad(theta, grad_out) -> float`` that returns
``log p(theta)`` (up to an additive constant, log-Jacobians of any transforms included) and writes
``d log p / d theta`` into ``grad_out`` in place. The sampler calls it once per leapfrog step from
compiled code, so it must not allocate or call Python.

**Data.** A model can carry a data vector that its log density reads:
``Model(..., logp_grad=f, data=y)`` with ``f(theta, grad_out, data) -> float``. The engine
receives ``f`` and ``y`` together as a ``DensityWithData`` (``nutslite.engine.integrators``), which
it calls as it calls a density without data, and is compiled once for that form, not once per
function or data set: a second model of the same function with other data, a new SBC data set
for instance, samples at once. The alternative, a closure over the data, is compiled with the
data frozen into its machine code: once per data set.
"""

from __future__ import annotations

import functools
import inspect
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from nutslite._memory import empty_block
from nutslite._numba import JIT_DISABLED, LOGP_GRAD_DATA_SIGNATURE, LOGP_GRAD_SIGNATURE
from nutslite.engine.integrators import DensityWithData

ConstrainFn = Callable[[np.ndarray], dict[str, np.ndarray]]

TRIAL_POINTS = 4  # the origin and three uniform(-2, 2) points (Model._trial_call)
TRIAL_SEED = 20141  # the trial points are the same for every construction
GUARD = 64  # sentinel entries after grad_out at a trial call
GUARD_VALUE = -1.2345678901234567e-300  # an unlikely gradient entry


class Model:
    """A differentiable log density on ``R^dim``.

    Parameters
    ----------
    name
        A short identifier, for example ``"radon_noncentered"``.
    dim
        Number of unconstrained coordinates.
    logp_grad
        A ``numba.njit`` function ``(theta: float64[dim], grad_out: float64[dim]) -> float``,
        or, when ``data`` is given, ``(theta, grad_out, data) -> float``. It is compiled here
        for C-contiguous float64 vectors (``nutslite._numba.LOGP_GRAD_SIGNATURE``, or
        ``LOGP_GRAD_DATA_SIGNATURE`` with ``data`` read-only) and tried at the origin and, if it
        fails there, at up to three seeded uniform(-2, 2) points; a gradient written past
        ``grad_out[dim - 1]`` is detected there (``_guarded_call`` says what cannot be).
    constrain
        Maps unconstrained draws of shape ``(..., dim)`` to a dict of named arrays with the leading
        dimensions kept (deterministics included). Defaults to the identity, named ``"x"``.
        The arrays returned must not share memory with ``theta`` or with each other (a result
        hands them to the user). For many draws, computing each into its own view of one block
        (``nutslite._memory.empty_views``, as ``nl.models.radon`` does) avoids temporaries and
        lets the block fault in huge pages.
    coords
        Names of the ``dim`` unconstrained coordinates. Defaults to ``x[0]``, ``x[1]``, ...
    dims
        Optional dimension names of each constrained variable, for example ``{"a": ("county",)}``.
    dim_labels
        Optional labels of each named dimension, for example ``{"county": ["AITKIN", ...]}``.
    log_transformed
        Indices of coordinates that are the log of a positive parameter, ``theta_i = log x_i``.
        ``logp_grad`` includes their log-Jacobian ``+theta_i``; ``find_map`` can remove it.
    moments
        Optional exact moments of the target on the unconstrained scale, for tests: ``"mean"`` and
        ``"var"`` (arrays of shape ``(dim,)``, NaN where unknown), and any others documented by the
        model that defines them.
    observed_data, constant_data
        Optional observed values and other data by name (for example a PyMC model's observed
        variables and its ``pm.Data``), kept with every result and exported by
        ``res.to_arviz()`` as its ``observed_data`` and ``constant_data`` groups; their
        dimension names may be given in ``dims``. Informational only: the log density does not
        read them (it reads ``data``).
    data
        The data the log density reads, passed to it as its third argument: a 1-D array of
        numbers whose dtype NumPy casts to float64 safely (floats, integers, booleans; integers
        beyond 2^53 round); several arrays go in as one vector, concatenated, that ``logp_grad``
        slices. The model keeps a
        read-only float64 copy as ``model.data``, so the density cannot change it (chains run as
        threads and share it), nor can the caller after the fact. Models of the same function
        with different data share one compiled engine. Pickled with the model's recipe.

    Attributes
    ----------
    logp_grad
        ``logp_grad(theta, grad_out) -> float`` callable from Python: the function given, or
        with data ``DensityWithData(function, data)``, which passes the data on.
    logp_grad_function
        The log density in the form the compiled engine receives and calls,
        ``(theta, grad_out) -> float``: a first-class function, or
        ``DensityWithData(function, data)`` (``nutslite.engine.integrators``).
    data
        The read-only data vector, or ``None``.

    Raises
    ------
    TypeError
        When ``logp_grad`` is not a Numba-jitted function, takes three arguments without
        ``data`` or two with it, returns something other than a number, or fails at every trial
        point (the message says what happened at each); when ``data`` is not numeric.
    ValueError
        When ``name``, ``dim`` or ``coords`` are malformed, ``data`` is not one-dimensional, or
        ``logp_grad`` writes past the end of ``grad_out`` (``dim`` is not the length of the
        gradient it writes).
    """

    def __init__(
        self,
        name: str,
        dim: int,
        logp_grad: Callable[..., float],
        constrain: ConstrainFn | None = None,
        coords: Sequence[str] | None = None,
        dims: Mapping[str, tuple[str, ...]] | None = None,
        dim_labels: Mapping[str, Sequence[str]] | None = None,
        moments: Mapping[str, np.ndarray] | None = None,
        log_transformed: Sequence[int] = (),
        observed_data: Mapping[str, np.ndarray] | None = None,
        constant_data: Mapping[str, np.ndarray] | None = None,
        *,
        data: ArrayLike | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Model name must be a non-empty string, got {name!r}")
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise ValueError(f"Model dim must be a positive integer, got {dim!r}")
        self.name = name
        self.dim = int(dim)
        self.data = None if data is None else _data_vector(data, name)
        function = _compiled_logp_grad(logp_grad, name, self.data is not None)
        self.logp_grad = function if self.data is None else DensityWithData(function, self.data)
        self.logp_grad_function = _first_class(function, self.data)
        if coords is None:
            coords = [f"x[{i}]" for i in range(self.dim)]
        coords = list(coords)
        if len(coords) != self.dim or not all(isinstance(c, str) for c in coords):
            raise ValueError(
                f"Model {name!r}: coords must be {self.dim} strings, got {len(coords)}"
            )
        self.coords = coords
        if constrain is not None and not callable(constrain):
            raise TypeError(f"Model {name!r}: constrain must be callable, got {type(constrain)}")
        self._constrain = constrain
        self.dims = dict(dims or {})
        self.dim_labels = {k: list(v) for k, v in (dim_labels or {}).items()}
        self.log_transformed = tuple(int(i) for i in log_transformed)
        if any(not 0 <= i < self.dim for i in self.log_transformed):
            raise ValueError(
                f"Model {name!r}: log_transformed indices must lie in 0..{self.dim - 1}"
            )
        self.moments = {k: np.asarray(v, dtype=np.float64) for k, v in (moments or {}).items()}
        self.observed_data = {k: np.asarray(v) for k, v in (observed_data or {}).items()}
        self.constant_data = {k: np.asarray(v) for k, v in (constant_data or {}).items()}
        self._trial_call()

    def _trial_call(self) -> None:
        """Call ``logp_grad`` at ``TRIAL_POINTS`` seeded points (the origin first, then Stan's
        uniform(-2, 2)) and check what it did. See ``_guarded_call`` for what a trial call can
        and cannot detect.

        Raises ``ValueError`` when a call writes past ``grad_out[dim - 1]``, ``TypeError`` when
        it returns something other than a number, or when it fails (raises) at every point;
        one point where it works is enough, since a valid density may fail at a single point
        (``1 / |theta|`` at the origin)."""
        rng = np.random.default_rng(TRIAL_SEED)
        points = [np.zeros(self.dim)]
        points += [rng.uniform(-2.0, 2.0, self.dim) for _ in range(TRIAL_POINTS - 1)]
        outcomes = []
        for theta in points:
            error, value = _guarded_call(self, theta)
            if error is None:
                if not isinstance(value, float | np.floating | int | np.integer):
                    raise TypeError(
                        f"Model {self.name!r}: logp_grad must return a float, got "
                        f"{type(value).__name__}"
                    )
                return
            outcomes.append(f"at {_point_text(theta)}: {type(error).__name__}: {error}")
        arguments = "theta, grad_out" if self.data is None else "theta, grad_out, data"
        raise TypeError(
            f"Model {self.name!r}: logp_grad({arguments}) failed at each of {TRIAL_POINTS} "
            f"trial points (float64 arrays of shape ({self.dim},)): " + "; ".join(outcomes)
        )

    def logp(self, theta: np.ndarray) -> float:
        """``log p(theta)`` up to a constant (Python convenience; allocates)."""
        return self.logp_and_grad(theta)[0]

    def grad(self, theta: np.ndarray) -> np.ndarray:
        """``d log p / d theta`` (Python convenience; allocates)."""
        return self.logp_and_grad(theta)[1]

    def logp_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once, from one call of ``logp_grad``."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        if theta.shape != (self.dim,):
            raise ValueError(f"theta must have shape ({self.dim},), got {theta.shape}")
        grad = np.empty(self.dim)
        return float(self.logp_grad(theta, grad)), grad

    def constrain(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named constrained values of unconstrained ``theta`` with shape ``(..., dim)``."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape[-1:] != (self.dim,):
            raise ValueError(f"theta must have shape (..., {self.dim}), got {theta.shape}")
        if self._constrain is None:  # a copy, in memory that can get huge pages (_memory)
            x = empty_block(theta.size).reshape(theta.shape)
            np.copyto(x, theta)
            return {"x": x}
        return self._constrain(theta)

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """Stan's default initialisation: uniform(-2, 2) on the unconstrained scale."""
        return rng.uniform(-2.0, 2.0, size=self.dim)

    def __repr__(self) -> str:
        data = "" if self.data is None else f", data=<{len(self.data)} values>"
        return f"Model(name={self.name!r}, dim={self.dim}{data})"

    # --- pickling: a model travels as the recipe that rebuilt it -----------------------------
    recipe: tuple[Callable[..., Model], tuple, dict[str, Any]] | None = None

    def __reduce__(self) -> tuple[Callable[..., Model], tuple]:
        """Pickle as the recipe ``(factory, args, kwargs)`` recorded by :func:`picklable`.

        A compiled ``logp_grad`` does not pickle (it holds machine code and, for the zoo's
        closures, frozen data). A model made by a module-level factory pickles as the call of that
        factory instead: unpickling calls it again, so the log density is recompiled, or loaded
        from the on-disk cache when the receiving machine has one (see ``nutslite._numba``). A
        process rebuilds each recipe once (:func:`rebuild`). A model's ``data`` travel as the
        factory's arguments (for example :meth:`SimulatedModel.conditioned
        <nutslite.models.simulated.SimulatedModel.conditioned>`'s data).
        """
        if self.recipe is None:
            raise TypeError(
                f"Model {self.name!r} cannot be pickled: it holds compiled code and records no "
                "recipe to rebuild it. Build it in a module-level function decorated with "
                "@nutslite.model.picklable, which makes the model pickle as a call of that function"
            )
        return rebuild, self.recipe


_REBUILT: OrderedDict[bytes, Model] = OrderedDict()
_REBUILT_LOCK = threading.Lock()
MAX_REBUILT = 32  # models kept per process by `rebuild`


def picklable(factory: Callable[..., Model]) -> Callable[..., Model]:
    """Decorate a module-level function returning a :class:`Model`: the models it returns pickle
    as ``(factory, args, kwargs)``, so they can be sent to another process (a Dask worker, a
    ``ProcessPoolExecutor``) and rebuilt there. The arguments must pickle."""

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> Model:
        model = factory(*args, **kwargs)
        model.recipe = (build, args, kwargs)
        return model

    return build


def rebuild(factory: Callable[..., Model], args: tuple, kwargs: dict[str, Any]) -> Model:
    """``factory(*args, **kwargs)``, built once per process: Dask unpickles a task's arguments for
    every task, and the same recipe then returns the model already built (the last
    ``MAX_REBUILT`` recipes are kept)."""
    key = pickle.dumps((factory, args, sorted(kwargs.items())))
    with _REBUILT_LOCK:
        if key in _REBUILT:
            _REBUILT.move_to_end(key)
            return _REBUILT[key]
    model = factory(*args, **kwargs)
    with _REBUILT_LOCK:
        _REBUILT[key] = model
        while len(_REBUILT) > MAX_REBUILT:
            _REBUILT.popitem(last=False)
    return model


def _guarded_call(model: Model, theta: np.ndarray) -> tuple[Exception | None, object]:
    """Call ``model.logp_grad(theta, grad_out)`` with ``GUARD`` sentinel entries after
    ``grad_out`` in the same buffer; return ``(exception or None, returned value)``.

    Compiled code does not check bounds, so a function that writes past ``grad_out[dim - 1]``
    (a gradient of the wrong length) corrupts whatever memory follows, and the interpreter dies
    later (``corrupted double-linked list``). Here it overwrites the sentinels instead, and a
    ``ValueError`` names the model and its ``dim``. What a trial call cannot detect: a write more
    than ``GUARD`` entries past the end or before the start, a write of exactly the sentinel's
    bits, a write past the end that happens only at other points than those tried, reads past
    the end of ``theta`` (they return garbage, not a crash), and writes into other arrays.
    Interpreted (``NUMBA_DISABLE_JIT=1``), NumPy checks bounds and raises ``IndexError``,
    reported the same way, unless the model has data: the index may then be past the end of the
    data, and the error is reported as a failure at that trial point.
    """
    dim = model.dim
    buffer = np.full(dim + GUARD, GUARD_VALUE)
    grad = buffer[:dim]
    try:
        value, error = model.logp_grad(theta, grad), None
    except IndexError as err:  # interpreted: NumPy's bounds check caught the same mistake,
        if model.data is None:  # or, with data, maybe an index past the end of the data
            raise _past_the_end(model, f"({err})") from err
        value, error = None, err
    except Exception as err:  # any failure here is the user's function failing at theta
        value, error = None, err
    guards = buffer[dim:].view(np.int64)
    written = np.flatnonzero(guards != np.array(GUARD_VALUE).view(np.int64))
    if len(written):
        raise _past_the_end(model, f"(it wrote grad_out[{dim + written[-1]}] at least)")
    return error, value


def _past_the_end(model: Model, detail: str) -> ValueError:
    return ValueError(
        f"Model {model.name!r}: logp_grad wrote past the end of grad_out, which has dim="
        f"{model.dim} entries {detail}; check that dim matches the gradient logp_grad writes"
    )


def _point_text(theta: np.ndarray, limit: int = 4) -> str:
    """``the origin`` or ``(0.512, -1.33, ...)``."""
    if not theta.any():
        return "the origin"
    text = ", ".join(f"{v:.3g}" for v in theta[:limit])
    return f"({text}{', ...' if len(theta) > limit else ''})"


def _first_class(function: Callable, data: np.ndarray | None) -> Callable | DensityWithData:
    """The form in which the engine receives the log density: a first-class function of type
    ``LogpGradType``, or ``LogpGradDataType`` paired with its data (Numba's wrapper-address
    protocol). The engine is then compiled once for that type, not once per model or data set,
    and later processes load it from the disk cache."""
    if JIT_DISABLED:
        function = _numpy_error_model(function)
    else:
        import numba.experimental.function_type  # noqa: F401  (registers the wrapper's typing)
        from numba.core.types.function_type import CompileResultWAP

        signature = LOGP_GRAD_SIGNATURE if data is None else LOGP_GRAD_DATA_SIGNATURE
        function = CompileResultWAP(function.overloads[signature.args])
    return function if data is None else DensityWithData(function, data)


def _numpy_error_model(logp_grad: Callable) -> Callable:
    """Interpreted, ``math.exp(800)`` raises where compiled code (NumPy's error model) gives
    inf and the sampler sees a divergence; this wrapper turns such errors into a NaN density,
    which the sampler also treats as a divergence, so an interpreted run stays a faithful
    step-through of the compiled one. ``data`` is the data argument, if the density has one."""

    def logp_grad_numpy_errors(theta: np.ndarray, grad_out: np.ndarray, *data: np.ndarray) -> float:
        try:
            return logp_grad(theta, grad_out, *data)
        except (OverflowError, ZeroDivisionError):
            grad_out[:] = np.nan
            return np.nan

    return logp_grad_numpy_errors


def _data_vector(data: ArrayLike, name: str) -> np.ndarray:
    """``data`` as the model's own read-only, C-contiguous float64 vector (a copy)."""
    array = np.asarray(data)
    if not np.can_cast(array.dtype, np.float64, "safe"):
        raise TypeError(
            f"Model {name!r}: data must be numbers that NumPy casts safely to float64 (floats, "
            f"integers, booleans), got dtype {array.dtype}"
        )
    if array.ndim != 1:
        raise ValueError(
            f"Model {name!r}: data must be a 1-D array, got shape {array.shape}; pass several "
            "arrays as one vector (np.concatenate of their ravel()) and slice it in logp_grad"
        )
    vector = np.array(array, dtype=np.float64, order="C")
    vector.flags.writeable = False
    return vector


def _compiled_logp_grad(logp_grad: Callable, name: str, with_data: bool) -> Callable:
    """Return ``logp_grad`` compiled for ``float64(float64[::1], float64[::1])``, or with a
    third argument, ``readonly float64[::1]``, when ``with_data``.

    With ``NUMBA_DISABLE_JIT=1`` any Python callable is accepted, so a reader can step into it.
    """
    if JIT_DISABLED:
        if not callable(logp_grad):
            raise TypeError(f"Model {name!r}: logp_grad must be callable, got {type(logp_grad)}")
        _check_arguments(logp_grad, name, with_data)
        return logp_grad
    from numba.core.registry import CPUDispatcher

    if not isinstance(logp_grad, CPUDispatcher):
        raise TypeError(
            f"Model {name!r}: logp_grad must be a Numba-jitted function (decorate it with "
            f"@numba.njit), got {type(logp_grad).__name__}"
        )
    _check_arguments(logp_grad.py_func, name, with_data)
    signature = LOGP_GRAD_DATA_SIGNATURE if with_data else LOGP_GRAD_SIGNATURE
    if signature.args not in logp_grad.overloads:
        arguments = "theta: float64[::1], grad_out: float64[::1]"
        if with_data:
            arguments += ", data: float64[::1] (read-only)"
        try:
            logp_grad.compile(signature)
        except Exception as err:
            raise TypeError(
                f"Model {name!r}: logp_grad does not compile as ({arguments}) -> float64: "
                f"{type(err).__name__}: {err}"
            ) from err
    return logp_grad


def _check_arguments(function: Callable, name: str, with_data: bool) -> None:
    """Raise ``TypeError`` when ``function`` takes the data argument and no ``data`` was given,
    or the other way round (other mistakes are left to the compile and the trial call)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # no signature to read (a builtin)
        return

    def takes(n: int) -> bool:
        try:
            signature.bind(*range(n))
        except TypeError:
            return False
        return True

    if with_data and takes(2) and not takes(3):
        raise TypeError(
            f"Model {name!r}: data= was given, but logp_grad takes (theta, grad_out); a log "
            "density that reads data takes them as its third argument, "
            "logp_grad(theta, grad_out, data)"
        )
    if not with_data and takes(3) and not takes(2):
        raise TypeError(
            f"Model {name!r}: logp_grad takes a third argument, (theta, grad_out, data), but no "
            "data= was given; pass the array it reads as Model(..., data=...)"
        )
