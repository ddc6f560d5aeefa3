"""Targets to sample: the blog post's radon regressions and a zoo of test distributions."""

from nutslite.models.radon import RadonData, load_radon, radon, synthetic_radon
from nutslite.models.zoo import (
    ZOO,
    banana,
    banana_inverse,
    correlated_gaussian,
    eight_schools,
    logistic_regression,
    neal_funnel,
    rotated_covariance,
    scaled_gaussian,
    std_normal,
)

__all__ = [
    "ZOO",
    "RadonData",
    "banana",
    "banana_inverse",
    "correlated_gaussian",
    "eight_schools",
    "load_radon",
    "logistic_regression",
    "neal_funnel",
    "radon",
    "rotated_covariance",
    "scaled_gaussian",
    "std_normal",
    "synthetic_radon",
]
