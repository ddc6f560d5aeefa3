r"""Stan's warmup schedule (``windowed_adaptation.hpp``), computed once before sampling.

Warmup has three stages: an initial fast buffer (default 75 iterations) that adapts only the step
size, a series of slow windows (the first of 25 iterations, each next one twice as long) whose
draws estimate the inverse mass matrix, and a terminal fast buffer (50 iterations). Rules:

* fewer than 20 warmup iterations: the metric is not adapted at all;
* if 75 + 25 + 50 exceed the warmup, the stages are resized to 15% / 75% / 10% of it;
* a window that would leave too little room for the next (twice as long) one is stretched to the
  start of the terminal buffer.

For 1000 warmup iterations the windows end at iterations 99, 149, 249, 449 and 949.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WarmupSchedule:
    """Per-iteration flags of warmup: ``collect[t]`` adds draw ``t`` to the variance estimator,
    ``window_end[t]`` ends a slow window after iteration ``t`` (update the metric, find a new
    initial step size, restart dual averaging)."""

    collect: np.ndarray
    window_end: np.ndarray

    @property
    def windows(self) -> list[tuple[int, int]]:
        """The slow windows as ``(first, last)`` iteration pairs, both inclusive."""
        out, start = [], None
        for t in range(len(self.collect)):
            if self.collect[t] and start is None:
                start = t
            if self.window_end[t]:
                out.append((start, t))
                start = None
        return out


def stan_schedule(
    num_warmup: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> WarmupSchedule:
    """The schedule Stan's ``windowed_adaptation`` follows for ``num_warmup`` iterations."""
    collect = np.zeros(num_warmup, dtype=np.bool_)
    window_end = np.zeros(num_warmup, dtype=np.bool_)
    if num_warmup < 20:
        return WarmupSchedule(collect, window_end)
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - (init_buffer + term_buffer)
    last = num_warmup - term_buffer - 1  # the last iteration of the last slow window
    size = base_window
    next_end = init_buffer + size - 1
    for t in range(num_warmup):
        collect[t] = init_buffer <= t < num_warmup - term_buffer
        if t == next_end:
            window_end[t] = True
            if next_end == last:
                next_end = -1
                continue
            size *= 2
            next_end = t + size
            if next_end != last and next_end + 2 * size >= num_warmup - term_buffer:
                next_end = last
    return WarmupSchedule(collect, window_end)
