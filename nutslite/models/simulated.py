r"""Models with a data-generating process, for simulation-based calibration.

A :class:`SimulatedModel` pairs a prior predictive simulator, ``simulate(rng) -> (theta~, data)``
(``theta~`` drawn from the prior on the unconstrained scale, ``data`` from the likelihood given
it, flattened to one float64 vector), with a log density that takes the data as an argument,
``density(theta, grad_out, data) -> log p(theta | data)`` up to a constant. ``conditioned(data)``
turns the pair into an ordinary :class:`nutslite.model.Model` for one data set, a model with
``data`` (see :mod:`nutslite.model`).

**One compiled density and engine for every data set.** Numba freezes arrays captured by a
closure into the compiled code, so a closure over each data set would compile once per
replication (and add a file to the on-disk cache each time). Instead ``density`` is compiled once
and cached on disk like any other nutslite function, and the data reach it as an argument: the
engine receives them with the density (``nutslite.engine.integrators.DensityWithData``) and is
compiled once for that form. Each conditioned model holds its own read-only copy of its data, so
concurrent replications (threads) never share one.

**Pickling.** A ``SimulatedModel`` pickles as the call of the cached factory that made it, so a
Dask worker rebuilds it once; a conditioned model pickles as the call ``_condition(simulated,
data)``, its data included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nutslite.model import Model, picklable

Simulator = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


class SimulatedModel:
    """A log density with data as an argument, and the prior predictive that draws the data.

    Parameters
    ----------
    name
        The name of the models it conditions (``Model.name``).
    coords
        Names of the unconstrained coordinates (their number is ``dim``).
    density
        A ``numba.njit`` function ``(theta, grad_out, data) -> float``: ``log p(theta | data)``
        up to a constant, log-Jacobians included, gradient written into ``grad_out``; ``data``
        is read-only (``Model``'s ``logp_grad`` with ``data``).
    simulate
        ``simulate(rng) -> (theta~, data)``: a draw from the prior (unconstrained, ``(dim,)``)
        and data from the likelihood given it (float64, ``(data_size,)``).
    data_size
        Length of the data vector.
    log_transformed
        As for :class:`~nutslite.model.Model`.
    recipe
        ``(factory, args)`` such that ``factory(*args)`` returns this object (pickling).
    """

    def __init__(
        self,
        name: str,
        coords: Sequence[str],
        density: Callable,
        simulate: Simulator,
        data_size: int,
        log_transformed: Sequence[int] = (),
        recipe: tuple[Callable[..., SimulatedModel], tuple] | None = None,
    ) -> None:
        self.name = name
        self.coords = list(coords)
        self.dim = len(self.coords)
        self.density = density
        self._simulate = simulate
        self.data_size = int(data_size)
        self.log_transformed = tuple(log_transformed)
        self.recipe = recipe

    def simulate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(theta~, data)``: parameters from the prior, data from the likelihood given them."""
        theta, data = self._simulate(rng)
        data = np.asarray(data, dtype=np.float64)
        self._check_data(data, "simulate returned")
        return np.asarray(theta, dtype=np.float64), data

    def conditioned(self, data: np.ndarray) -> Model:
        """The model of ``p(theta | data)``: ``density`` with ``data`` (copied) as its data. No
        compile after the first: every data set shares the compiled density and engine."""
        data = np.array(data)  # a copy for the recipe: later changes to the caller's array
        self._check_data(data, "conditioned on")  # reach neither the model nor its pickle
        return _condition(self, data)

    def _check_data(self, data: np.ndarray, what: str) -> None:
        if data.shape != (self.data_size,):
            raise ValueError(
                f"{self.name}: {what} data of shape {data.shape}, expected ({self.data_size},)"
            )

    def __reduce__(self) -> tuple[Callable[..., SimulatedModel], tuple]:
        if self.recipe is None:
            raise TypeError(f"SimulatedModel {self.name!r} records no recipe and cannot be pickled")
        return self.recipe

    def __repr__(self) -> str:
        return f"SimulatedModel(name={self.name!r}, dim={self.dim})"


@picklable
def _condition(simulated: SimulatedModel, data: np.ndarray) -> Model:
    """``simulated.conditioned(data)``, as a module-level factory so that the model pickles."""
    return Model(simulated.name, simulated.dim, simulated.density, coords=simulated.coords,
                 log_transformed=simulated.log_transformed, data=data)
