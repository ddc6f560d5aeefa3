"""Warmup: step-size adaptation by dual averaging and windowed mass-matrix adaptation (Stan)."""

from nutslite.adaptation.mass_matrix import WelfordVariance
from nutslite.adaptation.step_size import DualAveraging
from nutslite.adaptation.windows import WarmupSchedule, stan_schedule

__all__ = ["DualAveraging", "WarmupSchedule", "WelfordVariance", "stan_schedule"]
