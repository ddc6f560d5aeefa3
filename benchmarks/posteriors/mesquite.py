"""posteriordb ``mesquite-logmesquite_logvas``: log weight of mesquite bushes on log canopy volume,
area, shape, total height, density and group (Gelman & Hill 2006).

Stan: ``log(weight) ~ normal(X beta, sigma)`` with the transformed predictors of its
``transformed data`` block and flat priors on ``beta`` and on ``sigma > 0``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm


def build(data: dict) -> pm.Model:
    d = {k: np.asarray(v, dtype=np.float64) for k, v in data.items() if k != "N"}
    x = np.column_stack([
        np.ones_like(d["weight"]),
        np.log(d["diam1"] * d["diam2"] * d["canopy_height"]),  # log canopy volume
        np.log(d["diam1"] * d["diam2"]),  # log canopy area
        np.log(d["diam1"] / d["diam2"]),  # log canopy shape
        np.log(d["total_height"]),
        np.log(d["density"]),
        d["group"],
    ])
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=7)
        sigma = pm.HalfFlat("sigma")
        pm.Normal("log_weight", mu=x @ beta, sigma=sigma, observed=np.log(d["weight"]))
    return model
