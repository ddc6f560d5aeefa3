"""posteriordb ``kilpisjarvi_mod-kilpisjarvi``: a linear trend of summer temperature at Kilpisjärvi
on the calendar year, ``x`` left uncentred (intercept-slope correlation -0.99999).

Stan: ``alpha ~ normal(pmualpha, psalpha)``, ``beta ~ normal(pmubeta, psbeta)`` (from the data),
``y ~ normal(alpha + beta x, sigma)``, flat prior on ``sigma > 0``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm


def build(data: dict) -> pm.Model:
    x, y = np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
    with pm.Model() as model:
        alpha = pm.Normal("alpha", float(data["pmualpha"]), float(data["psalpha"]))
        beta = pm.Normal("beta", float(data["pmubeta"]), float(data["psbeta"]))
        sigma = pm.HalfFlat("sigma")
        pm.Normal("y", mu=alpha + beta * x, sigma=sigma, observed=y)
    return model
