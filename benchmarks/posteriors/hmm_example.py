"""posteriordb ``hmm_example-hmm_example``: a two-state hidden Markov model with Gaussian
emissions (sd 1), the states marginalised by the forward algorithm.

Stan: ``theta1, theta2`` are simplexes with no prior (Dirichlet(1, ..., 1)), the rows of the
transition matrix; ``mu`` is ``positive_ordered`` with ``target += normal_lpdf(mu[1] | 3, 1) +
normal_lpdf(mu[2] | 10, 1)`` (no truncation correction). With ``g[t, k]`` the log joint of
``y[1..t]`` and state ``k`` at ``t``:
``g[1, k] = N(y[1] | mu[k], 1)`` and ``g[t, k] = logsumexp_j(g[t-1, j] + log theta[j, k]) +
N(y[t] | mu[k], 1)``; ``target += logsumexp_k g[N, k]``. The recursion is a ``pytensor.scan``
(the transition matrix passed as a non-sequence: captured from the closure instead, PyTensor's
gradient of the model's log density failed with "'NominalVariable' object has no attribute
'shape'").
``mu`` takes PyMC's positive-ordered transform, the same constraint as Stan's.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.distributions.transforms import Ordered


def build(data: dict) -> pm.Model:
    y = np.asarray(data["y"], dtype=np.float64)
    k = int(data["K"])
    if k != 2:
        raise ValueError(f"the Stan program's priors on mu are written for K = 2 states, got {k}")
    with pm.Model() as model:
        theta1 = pm.Dirichlet("theta1", a=np.ones(k))
        theta2 = pm.Dirichlet("theta2", a=np.ones(k))
        mu = pm.Normal(
            "mu", mu=np.array([3.0, 10.0]), sigma=1.0, shape=k,
            transform=Ordered(positive=True), initval=np.array([3.0, 10.0]),
        )
        log_theta = pt.log(pt.stack([theta1, theta2]))  # log_theta[j, k]: from state j to k
        emission = pm.logp(pm.Normal.dist(mu[None, :], 1.0), y[:, None])  # (N, K)
        gamma = pytensor.scan(
            lambda e, previous, lt: pt.logsumexp(previous[:, None] + lt, axis=0) + e,
            sequences=[emission[1:]],
            outputs_info=[emission[0]],
            non_sequences=[log_theta],
            return_updates=False,
        )
        pm.Potential("forward", pt.logsumexp(gamma[-1]))
    return model
