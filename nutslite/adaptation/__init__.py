"""Warmup: step-size adaptation by dual averaging and mass-matrix adaptation (Stan, nutpie)."""

from nutslite.adaptation.mass_matrix import ADAPTATION_KINDS, MetricAdaptation
from nutslite.adaptation.step_size import DualAveraging
from nutslite.adaptation.windows import WarmupSchedule, nutpie_schedule, stan_schedule

__all__ = [
    "ADAPTATION_KINDS",
    "DualAveraging",
    "MetricAdaptation",
    "WarmupSchedule",
    "nutpie_schedule",
    "stan_schedule",
]
