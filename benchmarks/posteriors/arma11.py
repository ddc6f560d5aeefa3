"""posteriordb ``arma-arma11``: ARMA(1, 1) with a recursive error term.

Stan: ``mu ~ normal(0, 10)``, ``phi, theta ~ normal(0, 2)``, ``sigma ~ cauchy(0, 2.5)`` on
``sigma > 0``; ``err[1] = y[1] - (mu + phi mu)`` and
``err[t] = y[t] - mu - phi y[t-1] - theta err[t-1]``; ``err ~ normal(0, sigma)``. The recursion is
a ``pytensor.scan`` over ``r[t] = y[t] - mu - phi y[t-1]`` (``err[t] = r[t] - theta err[t-1]``).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt


def build(data: dict) -> pm.Model:
    y = np.asarray(data["y"], dtype=np.float64)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        phi = pm.Normal("phi", 0.0, 2.0)
        theta = pm.Normal("theta", 0.0, 2.0)
        sigma = pm.HalfCauchy("sigma", 2.5)
        first = y[0] - (mu + phi * mu)
        rest = y[1:] - mu - phi * y[:-1]
        err_rest = pytensor.scan(
            lambda r, previous: r - theta * previous,
            sequences=[rest],
            outputs_info=[first],
            return_updates=False,
        )
        err = pt.concatenate([pt.atleast_1d(first), err_rest])
        pm.Potential("err_lik", pm.logp(pm.Normal.dist(0.0, sigma), err).sum())
    return model
