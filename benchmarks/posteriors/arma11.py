"""posteriordb ``arma-arma11``: ARMA(1, 1) with a recursive error term.

Stan: ``mu ~ normal(0, 10)``, ``phi, theta ~ normal(0, 2)``, ``sigma ~ cauchy(0, 2.5)`` on
``sigma > 0``; ``err[1] = y[1] - (mu + phi mu)`` and
``err[t] = y[t] - mu - phi y[t-1] - theta err[t-1]``; ``err ~ normal(0, sigma)``.

With ``r[1] = y[1] - mu - phi mu`` and ``r[t] = y[t] - mu - phi y[t-1]`` the recursion
``err[t] = r[t] - theta err[t-1]`` (``err[0] = 0``) unrolls to the causal filter
``err[t] = sum_{j=0}^{t-1} (-theta)^j r[t-j]``: the first T terms of the full convolution of ``r``
with ``p[j] = (-theta)^j``. The powers are written ``(-theta)^max(j, 1)`` with ``p[0] = 1`` so that
their gradient stays finite at ``theta = 0`` (``d x^0/dx`` would be ``0 * x^-1``).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor.signal import convolve1d


def build(data: dict) -> pm.Model:
    y = np.asarray(data["y"], dtype=np.float64)
    lags = np.arange(len(y))
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        phi = pm.Normal("phi", 0.0, 2.0)
        theta = pm.Normal("theta", 0.0, 2.0)
        sigma = pm.HalfCauchy("sigma", 2.5)
        previous = pt.concatenate([pt.atleast_1d(mu), y[:-1]])  # "y[0]" is mu: nu[1] = mu + phi mu
        r = y - mu - phi * previous
        powers = pt.switch(lags == 0, 1.0, (-theta) ** np.maximum(lags, 1))
        err = convolve1d(r, powers, mode="full")[: len(y)]
        pm.Potential("err_lik", pm.logp(pm.Normal.dist(0.0, sigma), err).sum())
    return model
