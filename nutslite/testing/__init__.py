"""Property-based testing of samplers: invariant checks, a calibration suite, hypothesis strategies.

* :mod:`nutslite.testing.invariants`: integrator invariants (reversibility, volume preservation,
  second-order energy error, gradients) and NUTS transition invariants (U-turn decisions, the
  acceptance statistic, momentum distribution, selection probabilities), each a function raising
  ``AssertionError`` with the statistic that failed;
* :func:`check_sampler`: run any ``sampler(model, n_draws, seed) -> draws (n_draws, dim)`` on
  targets with known answers and by simulation-based calibration;
* :func:`sbc` (also ``simulation_based_calibration``): simulation-based calibration of any
  sampler on a model with a data-generating process (:data:`SBC_MODELS`), its replications fanned
  out over threads or a Dask cluster (``executor=``). The function shadows the submodule of the
  same name as an attribute; import from ``nutslite.testing.sbc`` with ``from ... import``;
* :mod:`nutslite.testing.strategies`: hypothesis strategies for targets, points, momenta, step sizes
  and mass matrices. It needs the ``hypothesis`` package (the ``test`` extra) and is imported on
  first access, so everything else works without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from nutslite.testing.check import (
    CheckResult,
    SamplerReport,
    Target,
    check_sampler,
    default_targets,
)
from nutslite.testing.invariants import (
    check_acceptance_statistic,
    check_energy_error_order,
    check_gradient,
    check_momentum_distribution,
    check_reversibility,
    check_selection_probabilities,
    check_transitions,
    check_uturn_decisions,
    check_volume_preservation,
    hamiltonian,
    leapfrog,
    record_transitions,
    selection_probabilities,
)
from nutslite.testing.sbc import (
    SBC_MODELS,
    NutsSampler,
    Replication,
    SBCResult,
    sbc,
    simulation_based_calibration,
)

__all__ = [
    "SBC_MODELS",
    "CheckResult",
    "NutsSampler",
    "Replication",
    "SBCResult",
    "SamplerReport",
    "Target",
    "check_acceptance_statistic",
    "check_energy_error_order",
    "check_gradient",
    "check_momentum_distribution",
    "check_reversibility",
    "check_sampler",
    "check_selection_probabilities",
    "check_transitions",
    "check_uturn_decisions",
    "check_volume_preservation",
    "default_targets",
    "hamiltonian",
    "leapfrog",
    "record_transitions",
    "sbc",
    "selection_probabilities",
    "simulation_based_calibration",
    "strategies",
]


def __getattr__(name: str) -> ModuleType:
    """``nutslite.testing.strategies`` on first access (it imports hypothesis)."""
    if name == "strategies":
        return importlib.import_module("nutslite.testing.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
