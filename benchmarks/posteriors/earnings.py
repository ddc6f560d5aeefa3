"""posteriordb ``earnings-logearn_interaction``: log earnings on height, sex and their product.

Stan: ``log(earn) ~ normal(beta[1] + beta[2] height + beta[3] male + beta[4] height male, sigma)``
with improper flat priors on ``beta`` and on ``sigma > 0`` (``pm.Flat``, ``pm.HalfFlat``).
"""

from __future__ import annotations

import numpy as np
import pymc as pm


def build(data: dict) -> pm.Model:
    earn, height, male = (np.asarray(data[k], dtype=np.float64) for k in ("earn", "height", "male"))
    x = np.column_stack([np.ones_like(height), height, male, height * male])
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=4)
        sigma = pm.HalfFlat("sigma")
        pm.Normal("log_earn", mu=x @ beta, sigma=sigma, observed=np.log(earn))
    return model
