r"""Warmup schedules, computed once before sampling as per-iteration flags.

**Stan** (``windowed_adaptation.hpp``, ``stan_schedule``).

Warmup has three stages: an initial fast buffer (default 75 iterations) that adapts only the step
size, a series of slow windows (the first of 25 iterations, each next one twice as long) whose
draws estimate the inverse mass matrix, and a terminal fast buffer (50 iterations). Rules:

* fewer than 75 + 25 + 50 = 150 warmup iterations: the metric is not adapted at all, only the
  step size (by dual averaging over the whole warmup);
* a window that would leave too little room for the next (twice as long) one is stretched to the
  start of the terminal buffer.

The first rule is what Stan's code does, not what its log says. For fewer than 20 iterations
Stan says so and adapts no metric. Between 20 and 149 it logs that it resizes the stages to
15% / 75% / 10%, but ``set_window_params`` then returns without calling ``restart()``, so the end
of the first window stays at the value the constructor computed from zero-sized stages
(``0 + 0 - 1``, which wraps to the largest unsigned integer) and is never reached: the metric
stays the initial one, and dual averaging is never restarted (stan-dev/stan#3380). nutslite
follows the code, for ``"stan"`` and ``"dense"`` alike. Following the log instead, as nutslite
did before, restarts dual averaging with only ``int(0.1 * num_warmup)`` iterations left (2 at
20): on a 50-dimensional normal at 20 warmup iterations 40% of the transitions then diverged.
Below 20 iterations the step-size adaptation itself departs from Stan's (``step_size``, "Short
warmups").

For 1000 warmup iterations the windows end at iterations 99, 149, 249, 449 and 949. At each
window's end the metric is set from the window's draws, the estimator forgets, the initial
step-size heuristic runs again and dual averaging restarts.

**nutpie** (nuts-rs ``adapt_strategy.rs``, ``nutpie_schedule``). The metric is recomputed after
every draw from a foreground estimator; a background estimator collects alongside, and replaces
the foreground at a *switch*, once it holds ``switch_freq`` draws (10 in the first 30% of warmup,
80 after) and another window still fits before the final phase. The last 15% of warmup adapt only
the step size. The step-size heuristic reruns (and dual averaging restarts) after the first metric
update only. Deviation: nuts-rs skips draws whose chain did not move and grows later windows by
1.5x (since 2026-03); here every draw counts and windows keep 80 draws, as in nuts-rs 0.17.4, the
version nutpie 0.16.8 bundles. Growth was measured and not taken: at 1000 warmup iterations it
makes the final foreground 470 draws instead of 230, but on radon (non-centered,
``benchmarks/bench_radon_warmup.py``, seeds 1 to 5) the median bulk ESS per 1000 sampling
gradients went from 12.3 to 10.0, within the spread between seeds and no better.

*Short warmups (a departure from nutpie).* The first metric update, and with it the step-size
heuristic and the restart of dual averaging, comes after the third draw. With fewer than
``MIN_LIVE_WARMUP`` (20) warmup iterations the restart would leave dual averaging too few
iterations to settle (at 3 the restart fell on the last warmup iteration and the step size came
out as ``exp(0) = 1``); the metric is then not adapted, as in Stan below 20 iterations.

*Short trajectories early (a departure from nutpie and Stan).* ``nutpie_schedule`` caps the tree
depth at ``EARLY_MAX_DEPTH`` (3: at most 7 leapfrog steps) until the final foreground begins; at
1000 warmup iterations that is iterations 0 to 619 of the windows ``(540, 619)``, ``(620, 699)``
and ``(700, 849)``. The metric sampling uses is the final foreground's, estimated from draws 620
to 849, so every draw that enters it comes from an uncapped NUTS trajectory; the metrics those
draws are made with come from draws 540 on, the first 80 of them capped. Draws before that only
take the chain to the typical set and feed intermediate metrics, which are replaced. The cap is
of the warmup only: Stan's transition is unchanged for the depth it is given, and sampling uses
``max_treedepth``. nuts-rs (0.17) uses one ``maxdepth`` for warmup and sampling; PyMC caps the
depth at 8 for its first 200 tuning steps (``early_max_treedepth``), which is a precedent but too
deep to save anything on a model whose trees are of depth 4.

Measured on radon non-centered (``benchmarks/bench_radon_warmup.py``, 4 chains x (1000 + 1000),
200 seeds 101-300, nutslite only; ``benchmarks/README.md``, engine round 26), mean bulk ESS per
1000 gradients of the sampling phase / with warmup included, and the median warmup cost:

========================================  ==============  ============  ===============
cap                                       sampling        with warmup   warmup grads
========================================  ==============  ============  ===============
none                                      11.84 +- 0.12   6.12          55,988
until the window before the final one     11.74 +- 0.11   7.10          39,338
until the final foreground (the default)  11.74 +- 0.11   7.24          37,346
========================================  ==============  ============  ===============

Earlier, on 40 seeds (11-50), the cap until the window before the final foreground made no
difference to sampling either (11.99 against 12.10 without, a standard error of 0.33), and
``sample``'s checks warned (R-hat of ``sigma_b`` above 1.01, or its tail ESS below 400) for 5 and
6 of 80 seeds without and with it. On 20 seeds (11-30) the cap lifted at 620 had seemed to cost
the sampling phase 9% (11.48 against 12.56, two standard errors); the 200 seeds above show no
such cost. Tried and not kept: a depth of 2 cost 7% of sampling ESS on seeds 1-10 (median 11.0
against 11.8); a depth of 4 saved only 6% of the warmup gradients (radon's trees are of depth 4);
capping the final step-size-only phase as well tuned the step size on trajectories shorter than
the ones sampling uses (median sampling ratio to nutpie 1.03 on seeds 1-5, worst seed 0.56). On
the targets of ``benchmarks/bench_adaptation.py`` (10 seeds; ``"grad"`` and ``"low_rank"`` at
warmup 1000) the cap lifted at 620 made no healthy target unhealthy, and the strongly correlated
20-dimensional Gaussian (trees mostly of depth 6 and 7) took 1.80 bulk ESS per 1000 gradients
with ``"grad"``, against 1.65 with the cap lifted at 540; with 3 seeds the cap had cut its
gradients at warmup 1000 by 29% (``"grad"``) and 33% (``"low_rank"``) against no cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_LIVE_WARMUP = 20  # fewer warmup iterations: nutpie_schedule adapts no metric
EARLY_MAX_DEPTH = 3  # nutpie_schedule's tree-depth cap early in warmup (module docstring)
UNCAPPED = np.iinfo(np.int64).max  # no cap: the sampler's max_treedepth alone applies

@dataclass(frozen=True)
class WarmupSchedule:
    """What happens after warmup iteration ``t``, in this order: ``collect[t]`` adds the draw to
    the estimator; ``update[t]`` sets the metric from it; ``restart[t]`` starts the next window;
    ``retune[t]`` reruns the initial step-size heuristic and restarts dual averaging. Before it,
    ``max_depth[t]`` caps the tree depth of transition ``t`` (the smaller of it and the sampler's
    ``max_treedepth`` applies; ``UNCAPPED`` leaves the latter alone)."""

    collect: np.ndarray
    update: np.ndarray
    restart: np.ndarray
    retune: np.ndarray
    max_depth: np.ndarray

    @property
    def windows(self) -> list[tuple[int, int]]:
        """The estimation windows as ``(first, last)`` iteration pairs, both inclusive: the draws
        collected between two restarts (or up to the last collected draw)."""
        out, start = [], None
        for t in range(len(self.collect)):
            if self.collect[t] and start is None:
                start = t
            if self.restart[t] and start is not None:
                out.append((start, t))
                start = None
        if start is not None:  # the last window of a live schedule is never restarted
            out.append((start, int(np.flatnonzero(self.collect)[-1])))
        return out


def stan_schedule(
    num_warmup: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> WarmupSchedule:
    """The schedule Stan's ``windowed_adaptation`` follows for ``num_warmup`` iterations: no
    metric adaptation when the three stages do not fit (stan-dev/stan#3380, module docstring)."""
    collect = np.zeros(num_warmup, dtype=np.bool_)
    window_end = np.zeros(num_warmup, dtype=np.bool_)
    uncapped = np.full(num_warmup, UNCAPPED, dtype=np.int64)
    if num_warmup < 20 or init_buffer + base_window + term_buffer > num_warmup:
        return WarmupSchedule(collect, window_end, window_end, window_end, uncapped)  # module doc
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
    return WarmupSchedule(collect, window_end, window_end, window_end, uncapped)


def nutpie_schedule(
    num_warmup: int,
    early_window: float = 0.3,
    step_size_window: float = 0.15,
    early_switch_freq: int = 10,
    switch_freq: int = 80,
    update_freq: int = 1,
    early_max_depth: int | None = EARLY_MAX_DEPTH,
) -> WarmupSchedule:
    """nutpie's live schedule for ``num_warmup`` iterations (defaults of nuts-rs 0.17). The
    metric is recomputed every ``update_freq`` draws (nutpie: 1 for diagonal, 20 for low-rank),
    and always at the first chance and at the end of the adaptation phase. Below
    ``MIN_LIVE_WARMUP`` iterations no metric is adapted (module docstring). The tree depth is
    capped at ``early_max_depth`` until the final foreground begins (``None``: never; module
    docstring, "Short trajectories early")."""
    collect = np.zeros(num_warmup, dtype=np.bool_)
    update = np.zeros(num_warmup, dtype=np.bool_)
    restart = np.zeros(num_warmup, dtype=np.bool_)
    retune = np.zeros(num_warmup, dtype=np.bool_)
    max_depth = np.full(num_warmup, UNCAPPED, dtype=np.int64)
    if num_warmup < MIN_LIVE_WARMUP:
        return WarmupSchedule(collect, update, restart, retune, max_depth)
    adapt_end = num_warmup - int(step_size_window * num_warmup)
    n_fg = n_bg = 0
    tuned = False
    for t in range(adapt_end):
        collect[t] = True
        n_fg += 1
        n_bg += 1
        if n_fg >= 3 and (not tuned or (t + 1) % update_freq == 0 or t == adapt_end - 1):
            update[t] = True
            if not tuned:
                retune[t] = tuned = True
        freq = early_switch_freq if t < early_window * num_warmup else switch_freq
        if n_bg >= freq and t + freq < adapt_end:
            restart[t] = True
            n_fg, n_bg = n_bg, 0
    # the final foreground starts after the last restart but one: capped before that, so no
    # capped draw enters the final metric
    restarts = np.flatnonzero(restart)
    if early_max_depth is not None and len(restarts) >= 2:
        max_depth[: restarts[-2] + 1] = early_max_depth
    return WarmupSchedule(collect, update, restart, retune, max_depth)
