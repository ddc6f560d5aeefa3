"""Shared test settings: hypothesis profiles and a non-interactive matplotlib backend.

``HYPOTHESIS_PROFILE=thorough pytest`` runs many more, randomised examples; the default ``ci``
profile is derandomised (the same examples every run) and small, so the suite stays fast.
"""

import os

import matplotlib
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=20,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=500,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
