"""A target distribution: a log density and its gradient on an unconstrained space.

A ``Model`` wraps a Numba-jitted function ``logp_grad(theta, grad_out) -> float`` that returns
``log p(theta)`` (up to an additive constant, log-Jacobians of any transforms included) and writes
``d log p / d theta`` into ``grad_out`` in place. The sampler calls it once per leapfrog step from
compiled code, so it must not allocate or call Python.
"""

from __future__ import annotations

import functools
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nutslite._numba import JIT_DISABLED, LOGP_GRAD_SIGNATURE

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
        A ``numba.njit`` function ``(theta: float64[dim], grad_out: float64[dim]) -> float``.
        It is compiled here for C-contiguous float64 vectors and tried at the origin and, if it
        fails there, at up to three seeded uniform(-2, 2) points; a gradient written past
        ``grad_out[dim - 1]`` is detected there (``_guarded_call`` says what cannot be).
    constrain
        Maps unconstrained draws of shape ``(..., dim)`` to a dict of named arrays with the leading
        dimensions kept (deterministics included). Defaults to the identity, named ``"x"``.
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
        read them.

    Raises
    ------
    TypeError
        When ``logp_grad`` is not a Numba-jitted function, returns something other than a
        number, or fails at every trial point (the message says what happened at each).
    ValueError
        When ``name``, ``dim`` or ``coords`` are malformed, or ``logp_grad`` writes past the end
        of ``grad_out`` (``dim`` is not the length of the gradient it writes).
    """

    def __init__(
        self,
        name: str,
        dim: int,
        logp_grad: Callable[[np.ndarray, np.ndarray], float],
        constrain: ConstrainFn | None = None,
        coords: Sequence[str] | None = None,
        dims: Mapping[str, tuple[str, ...]] | None = None,
        dim_labels: Mapping[str, Sequence[str]] | None = None,
        moments: Mapping[str, np.ndarray] | None = None,
        log_transformed: Sequence[int] = (),
        observed_data: Mapping[str, np.ndarray] | None = None,
        constant_data: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Model name must be a non-empty string, got {name!r}")
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise ValueError(f"Model dim must be a positive integer, got {dim!r}")
        self.name = name
        self.dim = int(dim)
        self.logp_grad = _compiled_logp_grad(logp_grad, name)
        self.logp_grad_function = _first_class(self.logp_grad)
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
        raise TypeError(
            f"Model {self.name!r}: logp_grad(theta, grad_out) failed at each of {TRIAL_POINTS} "
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
        if self._constrain is None:
            return {"x": theta.copy()}
        return self._constrain(theta)

    def initial_point(self, rng: np.random.Generator) -> np.ndarray:
        """Stan's default initialisation: uniform(-2, 2) on the unconstrained scale."""
        return rng.uniform(-2.0, 2.0, size=self.dim)

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, dim={self.dim})"

    # --- pickling: a model travels as the recipe that rebuilt it -----------------------------
    recipe: tuple[Callable[..., Model], tuple, dict[str, Any]] | None = None

    def __reduce__(self) -> tuple[Callable[..., Model], tuple]:
        """Pickle as the recipe ``(factory, args, kwargs)`` recorded by :func:`picklable`.

        A compiled ``logp_grad`` does not pickle (it holds machine code and, for the zoo's
        closures, frozen data). A model made by a module-level factory pickles as the call of that
        factory instead: unpickling calls it again, so the log density is recompiled, or loaded
        from the on-disk cache when the receiving machine has one (see ``nutslite._numba``). A
        process rebuilds each recipe once (:func:`rebuild`).
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
    reported the same way.
    """
    dim = model.dim
    buffer = np.full(dim + GUARD, GUARD_VALUE)
    grad = buffer[:dim]
    try:
        value, error = model.logp_grad(theta, grad), None
    except IndexError as err:  # interpreted: NumPy's bounds check caught the same mistake
        raise _past_the_end(model, f"({err})") from err
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


def _first_class(logp_grad: Callable) -> Callable:
    """The form in which the engine receives ``logp_grad``: a first-class function of type
    ``LogpGradType`` (Numba's wrapper-address protocol). The engine is then compiled once for that
    type, not once per model, and later processes load it from the disk cache."""
    if JIT_DISABLED:
        return _numpy_error_model(logp_grad)
    import numba.experimental.function_type  # noqa: F401  (registers the typing of the wrapper)
    from numba.core.types.function_type import CompileResultWAP

    return CompileResultWAP(logp_grad.overloads[LOGP_GRAD_SIGNATURE.args])


def _numpy_error_model(logp_grad: Callable) -> Callable:
    """Interpreted, ``math.exp(800)`` raises where compiled code (NumPy's error model) gives
    inf and the sampler sees a divergence; this wrapper turns such errors into a NaN density,
    which the sampler also treats as a divergence, so an interpreted run stays a faithful
    step-through of the compiled one."""

    def logp_grad_numpy_errors(theta: np.ndarray, grad_out: np.ndarray) -> float:
        try:
            return logp_grad(theta, grad_out)
        except (OverflowError, ZeroDivisionError):
            grad_out[:] = np.nan
            return np.nan

    return logp_grad_numpy_errors


def _compiled_logp_grad(logp_grad: Callable, name: str) -> Callable:
    """Return ``logp_grad`` compiled for ``float64(float64[::1], float64[::1])``.

    With ``NUMBA_DISABLE_JIT=1`` any Python callable is accepted, so a reader can step into it.
    """
    if JIT_DISABLED:
        if not callable(logp_grad):
            raise TypeError(f"Model {name!r}: logp_grad must be callable, got {type(logp_grad)}")
        return logp_grad
    from numba.core.registry import CPUDispatcher

    if not isinstance(logp_grad, CPUDispatcher):
        raise TypeError(
            f"Model {name!r}: logp_grad must be a Numba-jitted function (decorate it with "
            f"@numba.njit), got {type(logp_grad).__name__}"
        )
    if LOGP_GRAD_SIGNATURE.args not in logp_grad.overloads:
        try:
            logp_grad.compile(LOGP_GRAD_SIGNATURE)
        except Exception as err:
            raise TypeError(
                f"Model {name!r}: logp_grad does not compile as "
                f"(theta: float64[::1], grad_out: float64[::1]) -> float64: "
                f"{type(err).__name__}: {err}"
            ) from err
    return logp_grad
