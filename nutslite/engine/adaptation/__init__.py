"""Warmup: step-size adaptation by dual averaging and mass-matrix adaptation (Stan, nutpie).

``ADAPTATIONS`` is the one table that turns the name a user passes to ``nl.sample(adaptation=...)``
into the pieces warmup is made of: the kind of metric it learns (``nutslite.engine.metric``), its
window schedule (``windows``), its estimator (``mass_matrix``) and the inverse mass matrix it starts
from. Nothing else decodes the name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nutslite.engine.adaptation.mass_matrix import (
    MetricAdaptation,
    dense_adaptation_init,
    grad_adaptation_init,
    gradient_inv_mass,
    low_rank_adaptation_init,
    stan_adaptation_init,
    unit_inv_mass,
)
from nutslite.engine.adaptation.step_size import DualAveraging
from nutslite.engine.adaptation.windows import WarmupSchedule, nutpie_schedule, stan_schedule
from nutslite.engine.metric import DENSE, DIAGONAL, LOW_RANK


@dataclass(frozen=True)
class Adaptation:
    """How one warmup learns the metric.

    ``metric_kind``: the metric it adapts (``DIAGONAL``, ``DENSE`` or ``LOW_RANK``);
    ``schedule(num_warmup)``: when it collects draws, updates the metric and starts a new window;
    ``estimator(dim, num_warmup)``: its empty estimator state; ``initial_inv_mass(grad,
    num_warmup)``: the diagonal of ``M^{-1}`` it starts from, given the gradient at the initial
    point.
    """

    metric_kind: int
    schedule: Callable[[int], WarmupSchedule]
    estimator: Callable[[int, int], MetricAdaptation]
    initial_inv_mass: Callable[[np.ndarray, int], np.ndarray]


ADAPTATIONS: dict[str, Adaptation] = {
    # nutpie's diagonal from draw and gradient variances, recomputed after every draw
    "grad": Adaptation(DIAGONAL, nutpie_schedule, grad_adaptation_init, gradient_inv_mass),
    # Stan's windowed variance (the reference semantics)
    "stan": Adaptation(DIAGONAL, stan_schedule, stan_adaptation_init, unit_inv_mass),
    # Stan's windowed covariance
    "dense": Adaptation(DENSE, stan_schedule, dense_adaptation_init, unit_inv_mass),
    # nutpie's diagonal plus a low-rank correction, recomputed every 20 draws
    "low_rank": Adaptation(
        LOW_RANK, functools.partial(nutpie_schedule, update_freq=20), low_rank_adaptation_init,
        gradient_inv_mass,
    ),
}

__all__ = [
    "ADAPTATIONS",
    "Adaptation",
    "DualAveraging",
    "MetricAdaptation",
    "WarmupSchedule",
    "nutpie_schedule",
    "stan_schedule",
]
