"""Progress of running chains, reported from the main thread a few times a second.

``sample`` builds a reporter with ``make_reporter`` and calls ``update`` with one
``ChainProgress`` per chain roughly every 0.1 s, then ``close`` once. The compiled chains never
call into Python for this: the driver reads their counters between chunks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChainProgress:
    """A snapshot of one chain."""

    chain: int
    done: int  # iterations completed, warmup included
    total: int  # tune + draws
    tune: int
    divergences: int  # divergent transitions so far, warmup included
    step_size: float  # the step size the chain is using now
    seconds: float  # wall time spent in compiled chunks so far

    @property
    def warmup(self) -> bool:
        return self.done < self.tune


class Reporter:
    """Shows nothing. Subclasses draw something in ``update`` and ``close``."""

    def update(self, chains: list[ChainProgress]) -> None:
        """Called with every chain's snapshot about ten times a second."""

    def close(self, chains: list[ChainProgress], interrupted: bool) -> None:
        """Called once when sampling ends (normally or by Ctrl-C)."""


def make_reporter(progress: bool | Reporter) -> Reporter:
    """The reporter for ``sample(progress=...)``: a ``Reporter`` instance is used as given."""
    if isinstance(progress, Reporter):
        return progress
    return Reporter()
