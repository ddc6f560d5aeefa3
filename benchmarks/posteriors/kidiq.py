"""posteriordb ``kidiq-kidscore_interaction``: kid's test score on mother's IQ, high school and
their product (Gelman & Hill 2006).

Stan: ``kid_score ~ normal(beta[1] + beta[2] mom_hs + beta[3] mom_iq + beta[4] mom_hs mom_iq,
sigma)``, ``sigma ~ cauchy(0, 2.5)`` on ``sigma > 0``, flat prior on ``beta``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm


def build(data: dict) -> pm.Model:
    score, hs, iq = (
        np.asarray(data[k], dtype=np.float64) for k in ("kid_score", "mom_hs", "mom_iq")
    )
    x = np.column_stack([np.ones_like(hs), hs, iq, hs * iq])
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=4)
        sigma = pm.HalfCauchy("sigma", 2.5)
        pm.Normal("kid_score", mu=x @ beta, sigma=sigma, observed=score)
    return model
