"""Targets to sample: the blog post's radon regressions and a zoo of test distributions."""

from nutslite.models.radon import RadonData, load_radon, radon, synthetic_radon

__all__ = ["RadonData", "load_radon", "radon", "synthetic_radon"]
