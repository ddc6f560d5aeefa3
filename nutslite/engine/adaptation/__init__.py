"""Warmup: step-size adaptation by dual averaging and mass-matrix adaptation (Stan, nutpie)."""

from nutslite.engine.adaptation.mass_matrix import ADAPTATION_KINDS, MetricAdaptation
from nutslite.engine.adaptation.step_size import DualAveraging
from nutslite.engine.adaptation.windows import WarmupSchedule, nutpie_schedule, stan_schedule

__all__ = [
    "ADAPTATION_KINDS",
    "DualAveraging",
    "MetricAdaptation",
    "WarmupSchedule",
    "nutpie_schedule",
    "stan_schedule",
]
