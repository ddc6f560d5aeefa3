"""The sample statistics of a NUTS transition: one schema for the chain loop and the result.

The chain loop writes each statistic of iteration ``t`` into column ``k`` of a float64 array
``stats[t, k]`` (one array per chain, so the compiled loop has a single buffer to fill);
:class:`nutslite.result.SamplingResult` turns column ``k`` into ``sample_stats[name]`` with the
statistic's dtype. Names follow ArviZ, which follows Stan's ``sampler_diagnostics``
(``accept_stat__``, ``stepsize__``, ``treedepth__``, ``n_leapfrog__``, ``divergent__``,
``energy__``).
"""

from __future__ import annotations

import numpy as np

SAMPLE_STATS: tuple[tuple[str, type], ...] = (
    ("lp", np.float64),  # log density of the selected state, up to a constant
    ("acceptance_rate", np.float64),  # Stan's accept_stat: mean Metropolis probability
    ("step_size", np.float64),  # after jitter
    ("tree_depth", np.int64),
    ("n_steps", np.int64),  # leapfrog steps, one gradient each
    ("diverging", np.bool_),
    ("energy", np.float64),  # Hamiltonian of the selected state
    ("energy_error", np.float64),  # ... minus the Hamiltonian at the transition's start
    ("reached_max_treedepth", np.bool_),
    ("index_in_trajectory", np.int64),  # position of the selected state along the trajectory
)
STAT_NAMES = tuple(name for name, _ in SAMPLE_STATS)
(
    LP, ACCEPT, STEP, DEPTH, N_STEPS, DIVERGING, ENERGY, ENERGY_ERROR, MAX_DEPTH_HIT, INDEX,
) = range(len(SAMPLE_STATS))
