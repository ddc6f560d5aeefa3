r"""``find_map``: the posterior mode by L-BFGS on the model's hand-written gradient.

The mode is a poor summary of a hierarchical posterior, and this module exists partly to show it
(Wiecki 2017, "Why hierarchical models are awesome, tricky, and Bayesian", and its closing point
on "expectations vs modes"; Betancourt 2017, arXiv:1701.02434, sec. 2). Two facts shape its design.

**The log-Jacobian.** ``model.logp_grad`` is the log density of the *unconstrained* coordinates: for
each coordinate ``theta_i = log x_i`` listed in ``model.log_transformed`` it includes the
log-Jacobian ``+theta_i`` of ``x_i = exp(theta_i)`` (gradient ``+1``). With ``jacobian=False``
(the default) ``find_map`` subtracts it and maximizes the density of the model's own parameters
``p(x | y)`` (``sigma``, not ``log sigma``); the unconstrained scale only removes the boundary
``x > 0`` for the optimizer. That is the usual meaning of "MAP", and what Stan's ``optimize``
does by default (``jacobian=false``), and what PyMC3's ``find_MAP`` has done since version 3.2
(PyMC3 PR #2499, August 2017, which switched it to ``logp_nojac``; PyMC 4+ compiles
``model.logp(jacobian=False)``). PyMC3 3.0/3.1, the versions of Wiecki's post, maximized
``model.logp`` with the Jacobian terms, i.e. ``jacobian=True`` here: the mode of the sampler's
coordinates, which moves with the parameterization (``log sigma`` instead of ``sigma``).

**The mode may not exist.** In the centered radon model, ``b[c] ~ Normal(mu_b, sigma_b)`` for 85
counties contributes ``-85 log sigma_b``: with every ``b[c] = mu_b`` the log density grows like
``-84 log sigma_b`` (``-85`` with the Jacobian removed) as ``sigma_b -> 0``, without bound, and
likewise for ``sigma_a``. The optimizer then creeps down the funnel, ever more ill-conditioned,
and stops wherever its tolerances give out. ``find_map`` does not pretend otherwise: log-scale
coordinates are confined to ``[-log_bound, log_bound]``, the result is accepted as a mode only
when the gradient vanishes (``converged``), and otherwise an :class:`OptimizationWarning`
reports the largest gradient and the smallest scales reached (``sigma_b = 1e-8``, say). The
non-centered model has a proper mode, but at ``sigma_b`` about 20 times its posterior mean: in
those coordinates, small offsets times a large scale beat the prior's pull.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nutslite.model import Model

__all__ = ["MapResult", "MapStart", "OptimizationWarning", "find_map"]

LOG_BOUND = 20.0
"""Default bound on log-scale coordinates: scales in ``[2e-9, 4.9e8]``."""

GRADIENT_TOLERANCE = 1e-3
"""A point is a mode when its largest absolute gradient component is below this."""

_MAX_LISTED = 3


class OptimizationWarning(UserWarning):
    """``find_map`` found no mode: the optimizer stopped where the gradient does not vanish."""


@dataclass(frozen=True)
class MapStart:
    """The outcome of one optimizer start."""

    init: np.ndarray
    theta: np.ndarray
    logp: float
    max_gradient: float
    iterations: int
    message: str


class MapResult(dict):
    """Constrained values at the best point found, ``name -> ndarray`` (a ``dict``), plus:

    Attributes
    ----------
    unconstrained : ndarray
        The best point on the unconstrained scale, shape ``(dim,)``.
    logp : float
        The objective there: ``model.logp`` minus the log-Jacobian unless ``jacobian=True``.
    converged : bool
        True when every gradient component at the best point is below ``gradient_tolerance``:
        the point is a local mode. False when the optimizer stopped on a slope (for example down
        a funnel with no mode at its bottom, or against ``log_bound``); the values are then the
        point reached, not a mode.
    max_gradient : float
        The largest absolute gradient component there (on the unconstrained scale).
    at_bound : tuple[str, ...]
        Coordinates stopped at ``-log_bound`` or ``+log_bound``.
    jacobian : bool
        Whether the log-Jacobian was kept in the objective.
    starts : list[MapStart]
        Every start, in the order tried.
    """

    unconstrained: np.ndarray
    logp: float
    converged: bool
    max_gradient: float
    at_bound: tuple[str, ...]
    jacobian: bool
    starts: list[MapStart]


def find_map(
    model: Model,
    init: np.ndarray | None = None,
    seed: int = 0,
    *,
    jacobian: bool = False,
    n_starts: int = 4,
    log_bound: float = LOG_BOUND,
    max_iterations: int = 20_000,
    gradient_tolerance: float = GRADIENT_TOLERANCE,
    warn: bool = True,
) -> MapResult:
    """Maximize the posterior density of ``model`` with L-BFGS-B from several seeded starts.

    Parameters
    ----------
    model
        The target; ``model.logp_grad`` supplies the log density and its exact gradient.
    init
        An unconstrained starting point ``(dim,)``, tried first when given.
    seed
        Seed of the random starts, drawn as ``model.initial_point`` (Stan's uniform(-2, 2)).
    jacobian
        Keep the log-Jacobian ``+theta_i`` of the coordinates in ``model.log_transformed``
        (the mode of the unconstrained coordinates, as PyMC3 3.0/3.1), or remove it (default:
        the mode of the model's own parameters, as Stan's ``optimize`` and PyMC3 >= 3.2).
    n_starts
        Number of random starts, besides ``init``. The start reaching the highest objective wins.
    log_bound
        Log-scale coordinates are confined to ``[-log_bound, log_bound]``, so that a run down an
        unbounded funnel stops at a finite scale instead of overflowing.
    max_iterations
        L-BFGS iterations per start.
    gradient_tolerance
        Largest absolute gradient component at which a point counts as a mode.
    warn
        Issue an :class:`OptimizationWarning` when the best point is not a mode.

    Returns
    -------
    MapResult
        ``dict`` of constrained values (``model.constrain``) at the best point, with the
        attributes ``converged``, ``max_gradient``, ``at_bound``, ``logp``, ``unconstrained``.

    Raises
    ------
    ValueError
        For a malformed ``init``, ``n_starts`` or ``log_bound``, or when no start has a finite
        log density.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a nutslite.Model, got {type(model).__name__}")
    if isinstance(n_starts, bool) or not isinstance(n_starts, int | np.integer) or n_starts < 0:
        raise ValueError(f"n_starts must be a non-negative integer, got {n_starts!r}")
    if not log_bound > 0:
        raise ValueError(f"log_bound must be positive, got {log_bound!r}")
    inits = []
    if init is not None:
        point = np.array(init, dtype=np.float64)
        if point.shape != (model.dim,) or not np.isfinite(point).all():
            raise ValueError(
                f"init must be a finite array of shape ({model.dim},), got shape {point.shape}"
            )
        inits.append(point)
    rng = np.random.default_rng(seed)
    inits += [model.initial_point(rng) for _ in range(n_starts)]
    if not inits:
        raise ValueError("nothing to start from: give init or n_starts >= 1")

    logs = np.array(model.log_transformed, dtype=np.int64)
    lower = np.full(model.dim, -np.inf)
    upper = np.full(model.dim, np.inf)
    lower[logs], upper[logs] = -log_bound, log_bound
    objective = _objective(model, logs, jacobian)
    starts = [
        _run(objective, np.clip(x0, lower, upper), lower, upper, max_iterations) for x0 in inits
    ]
    finite = [s for s in starts if np.isfinite(s.logp)]
    if not finite:
        raise ValueError(f"model {model.name!r}: the log density is not finite at any start")
    best = max(finite, key=lambda s: s.logp)

    result = MapResult(model.constrain(best.theta))
    result.unconstrained = best.theta
    result.logp = best.logp
    result.max_gradient = best.max_gradient
    result.converged = bool(best.max_gradient <= gradient_tolerance)
    result.at_bound = tuple(model.coords[i] for i in logs if abs(best.theta[i]) >= log_bound)
    result.jacobian = jacobian
    result.starts = starts
    if warn and not result.converged:
        warnings.warn(_no_mode_message(model, result, logs), OptimizationWarning, stacklevel=2)
    return result


def _objective(model: Model, logs: np.ndarray, jacobian: bool):
    """``theta -> (-objective, -gradient)`` for scipy; non-finite values become ``+inf``."""

    def negative(theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        grad = np.empty_like(theta)
        logp = float(model.logp_grad(theta, grad))
        if not jacobian:
            logp -= float(theta[logs].sum())
            grad[logs] -= 1.0
        if not (np.isfinite(logp) and np.isfinite(grad).all()):
            return np.inf, np.zeros_like(theta)
        return -logp, -grad

    return negative


def _run(objective, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, max_iterations: int):
    """One L-BFGS-B run, stopped by a small projected gradient or when a step gains nothing.

    With ``ftol=0`` scipy's test ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`` fires
    only when a step gains nothing; its default (2.2e-9) would declare success on a slow,
    endless climb down a funnel.
    """
    from scipy.optimize import minimize  # here, so that `import nutslite` stays 0.1 s faster

    fit = minimize(
        objective,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lower, upper, strict=True)),
        options={"maxiter": max_iterations, "ftol": 0.0, "gtol": 1e-8},
    )
    theta = np.asarray(fit.x, dtype=np.float64)
    value, grad = objective(theta)
    return MapStart(
        init=x0,
        theta=theta,
        logp=-float(value),
        max_gradient=float(np.abs(grad).max()) if np.isfinite(value) else np.inf,
        iterations=int(fit.nit),
        message=str(fit.message),
    )


def _no_mode_message(model: Model, result: MapResult, logs: Sequence[int]) -> str:
    theta = result.unconstrained
    smallest = sorted(logs, key=lambda i: theta[i])[:_MAX_LISTED]
    scales = ", ".join(
        f"{_scale_name(model.coords[i])} = {np.exp(theta[i]):.3g} ({model.coords[i]} = "
        f"{theta[i]:.2f})"
        for i in smallest
    )
    text = (
        f"find_map({model.name}): no mode found; the best of {len(result.starts)} start(s) "
        f"stopped at log density {result.logp:.6g} with a gradient component of "
        f"{result.max_gradient:.3g}, so the values returned are where the optimizer stopped, "
        "not a mode."
    )
    if result.at_bound:
        text += f" Stopped at log_bound: {', '.join(result.at_bound)}."
    if scales:
        text += (
            f" Smallest scales reached: {scales}. A scale running towards 0 means the density "
            "grows without bound down a funnel (a hierarchical scale with many group effects): "
            "summarize the posterior by expectations from nl.sample instead."
        )
    return text


def _scale_name(coord: str) -> str:
    """``"log_sigma_b"`` -> ``"sigma_b"``; other names are kept as ``exp(name)``."""
    return coord[4:] if coord.startswith("log_") else f"exp({coord})"
