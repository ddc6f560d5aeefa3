"""posteriordb ``gp_pois_regr-gp_pois_regr``: a latent Gaussian process, non-centred, with Poisson
counts.

Stan: ``rho ~ gamma(25, 4)`` (rate 4), ``alpha ~ normal(0, 2)`` on ``alpha > 0``,
``f_tilde ~ normal(0, 1)``, ``f = cholesky(K) f_tilde`` with
``K_ij = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + 1e-10 [i = j]``, ``k ~ poisson_log(f)``. The
reference reports ``f``, kept here as a ``pm.Deterministic``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

JITTER = 1e-10


def build(data: dict) -> pm.Model:
    x = np.asarray(data["x"], dtype=np.float64)
    counts = np.asarray(data["k"], dtype=np.int64)
    n = len(x)
    sq_dist = (x[:, None] - x[None, :]) ** 2
    with pm.Model() as model:
        rho = pm.Gamma("rho", alpha=25.0, beta=4.0)
        alpha = pm.HalfNormal("alpha", 2.0)
        f_tilde = pm.Normal("f_tilde", 0.0, 1.0, shape=n)
        cov = alpha**2 * pt.exp(-sq_dist / (2.0 * rho**2)) + JITTER * np.eye(n)
        f = pm.Deterministic("f", pt.linalg.cholesky(cov) @ f_tilde)
        pm.Poisson("k", mu=pt.exp(f), observed=counts)
    return model
