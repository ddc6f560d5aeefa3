"""posteriordb ``arK-arK``: an AR(K) time series, the likelihood conditioned on the first K values.

Stan: ``alpha, beta[k] ~ normal(0, 10)``, ``sigma ~ cauchy(0, 2.5)`` on ``sigma > 0``, and for
``t = K+1..T``: ``y[t] ~ normal(alpha + sum_k beta[k] y[t-k], sigma)``. The lags form a fixed
``(T-K, K)`` design matrix, built once from the data.
"""

from __future__ import annotations

import numpy as np
import pymc as pm


def build(data: dict) -> pm.Model:
    k, y = int(data["K"]), np.asarray(data["y"], dtype=np.float64)
    t = len(y)
    lags = np.column_stack([y[k - j - 1 : t - j - 1] for j in range(k)])  # lags[:, j] = y[t-j-1]
    with pm.Model() as model:
        alpha = pm.Normal("alpha", 0.0, 10.0)
        beta = pm.Normal("beta", 0.0, 10.0, shape=k)
        sigma = pm.HalfCauchy("sigma", 2.5)
        pm.Normal("y", mu=alpha + lags @ beta, sigma=sigma, observed=y[k:])
    return model
