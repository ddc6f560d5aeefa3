r"""Models with a data-generating process, for simulation-based calibration.

A :class:`SimulatedModel` pairs a prior predictive simulator, ``simulate(rng) -> (theta~, data)``
(``theta~`` drawn from the prior on the unconstrained scale, ``data`` from the likelihood given
it, flattened to one float64 vector), with a log density that takes the data as an argument,
``density(theta, grad_out, data) -> log p(theta | data)`` up to a constant. ``conditioned(data)``
turns the pair into an ordinary :class:`nutslite.model.Model` for one data set.

**One compiled density for every data set.** Numba freezes arrays captured by a closure into the
compiled code, so a closure over each data set would compile once per replication (and add a file
to the on-disk cache each time). Instead ``density`` is compiled once and cached on disk like any
other nutslite function, and a *slot* wraps it in a small function that reads the data through a
raw pointer to a NumPy array the slot owns (``numba.carray`` on the array's address). A replication
takes a free slot, overwrites its array and samples; concurrent replications (threads) take
different slots, so a slot's array is never written while a sampler reads it. A process compiles
one wrapper per slot (without the disk cache: the address is process specific), so at most as many
as replications ever ran at once in it. With ``NUMBA_DISABLE_JIT=1`` a plain closure over the
array does the same.

**Pickling.** A ``SimulatedModel`` pickles as the call of the cached factory that made it, so a
Dask worker rebuilds it once and reuses its slots for every replication it runs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from nutslite._numba import JIT_DISABLED, LOGP_GRAD_SIGNATURE
from nutslite.model import Model

Simulator = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


@intrinsic
def _float64_pointer(typingctx, address):
    """``address`` (an integer) as a ``float64*`` (for ``numba.carray``)."""
    pointer = types.CPointer(types.float64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(address), codegen


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
        up to a constant, log-Jacobians included, gradient written into ``grad_out``.
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
        self._free: list[tuple[np.ndarray, Model]] = []
        self._lock = threading.Lock()

    def simulate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(theta~, data)``: parameters from the prior, data from the likelihood given them."""
        theta, data = self._simulate(rng)
        data = np.asarray(data, dtype=np.float64)
        if data.shape != (self.data_size,):
            raise ValueError(
                f"{self.name}: simulate returned data of shape {data.shape}, expected "
                f"({self.data_size},)"
            )
        return np.asarray(theta, dtype=np.float64), data

    @contextlib.contextmanager
    def conditioned(self, data: np.ndarray) -> Iterator[Model]:
        """The model of ``p(theta | data)`` for the duration of a ``with`` block."""
        with self._lock:
            slot = self._free.pop() if self._free else None
        if slot is None:
            slot = self._new_slot()
        try:
            slot[0][:] = data
            yield slot[1]
        finally:
            with self._lock:
                self._free.append(slot)

    def _new_slot(self) -> tuple[np.ndarray, Model]:
        data = np.zeros(self.data_size)
        density, size = self.density, self.data_size
        if JIT_DISABLED:

            def logp_grad(theta, grad_out):
                return density(theta, grad_out, data)

        else:
            address = data.ctypes.data

            @numba.njit(LOGP_GRAD_SIGNATURE, cache=False, nogil=True, error_model="numpy")
            def logp_grad(theta, grad_out):
                return density(theta, grad_out, numba.carray(_float64_pointer(address), (size,)))

        model = Model(self.name, self.dim, logp_grad, coords=self.coords,
                      log_transformed=self.log_transformed)
        return data, model

    def __reduce__(self) -> tuple[Callable[..., SimulatedModel], tuple]:
        if self.recipe is None:
            raise TypeError(f"SimulatedModel {self.name!r} records no recipe and cannot be pickled")
        return self.recipe

    def __repr__(self) -> str:
        return f"SimulatedModel(name={self.name!r}, dim={self.dim})"
