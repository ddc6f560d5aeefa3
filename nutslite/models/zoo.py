r"""A zoo of test targets with hand-written, Numba-compiled log densities and gradients.

Every factory returns a :class:`nutslite.model.Model` whose ``logp_grad(theta, grad_out)`` is a
closure compiled once with ``@jit(LOGP_GRAD_SIGNATURE)``, with its data frozen in. Numba caches a
closure on disk keyed by its frozen data, so the default instances in :data:`ZOO` (seeded, fixed
data) compile once per machine. Sums are written as explicit loops and scalars go through
``math``, so that a compiled run and a run with ``NUMBA_DISABLE_JIT=1`` agree bit for bit.

Each model's ``moments`` holds ``"mean"`` and ``"var"`` of the target on the unconstrained scale
(shape ``(dim,)``, NaN where no closed form is known) and the extra exact quantities documented
by its factory. All log densities drop additive constants.

Targets
-------
``std_normal(dim)``
    iid ``N(0, 1)``.
``correlated_gaussian(cov, mean)``
    ``N(mean, cov)`` for a given symmetric positive definite ``cov``.
``scaled_gaussian(dim, low, high)``
    independent ``N(0, s_i^2)``, ``s_i`` log-spaced from ``low`` to ``high``.
``neal_funnel(dim)``
    the funnel of Neal (2003).
``eight_schools(parameterization)``
    the hierarchical model of Rubin (1981), as in Gelman et al. (2013, sec. 5.5).
``logistic_regression(n, p, seed)``
    Bayesian logistic regression on seeded synthetic data.
``banana(b, dim)``
    the twisted Gaussian of Haario, Saksman and Tamminen (2001).

Every factory is decorated with :func:`nutslite.model.picklable`: its models pickle as the call
that built them and are rebuilt (from the disk cache) in the receiving process.
:func:`eight_schools_simulated` adds eight schools' data-generating process, for
simulation-based calibration (:func:`nutslite.testing.sbc`).

References
----------
Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A. and Rubin, D. B. (2013).
*Bayesian Data Analysis*, 3rd edition (BDA3), section 5.5. CRC Press.

Haario, H., Saksman, E. and Tamminen, J. (2001). An adaptive Metropolis algorithm.
*Bernoulli* 7(2), 223-242.

Neal, R. M. (2003). Slice sampling. *The Annals of Statistics* 31(3), 705-767, section 8.

Rubin, D. B. (1981). Estimation in parallel randomized experiments.
*Journal of Educational Statistics* 6(4), 377-401.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from nutslite._numba import LOGP_GRAD_SIGNATURE, jit
from nutslite.model import Model, picklable
from nutslite.models.simulated import SimulatedModel

EIGHT_SCHOOLS_PARAMETERIZATIONS = ("centered", "noncentered")
EIGHT_SCHOOLS_Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
EIGHT_SCHOOLS_SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)
EIGHT_SCHOOLS_LABELS = ("A", "B", "C", "D", "E", "F", "G", "H")  # as in BDA3, Table 5.2
FUNNEL_V_SD = 3.0
LOGISTIC_PRIOR_SD = 2.5
BANANA_X1_VAR = 100.0


def _check_int(factory: str, name: str, value: int, minimum: int) -> int:
    """``value`` as an int, or a ValueError naming the factory, the argument and the bound."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{factory}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@picklable
def std_normal(dim: int) -> Model:
    r"""The standard normal ``N(0, I_dim)``.

    ``log p(x) = -\sum_i x_i^2 / 2``, ``d log p / d x = -x``. Exact moments: mean 0, variance 1.
    Named ``std_normal_{dim}``, coordinates ``x[i]``.
    """
    dim = _check_int("std_normal", "dim", dim, 1)

    @jit(LOGP_GRAD_SIGNATURE)
    def logp_grad(theta, grad_out):
        logp = 0.0
        for i in range(theta.shape[0]):
            logp -= 0.5 * theta[i] * theta[i]
            grad_out[i] = -theta[i]
        return logp

    return Model(
        name=f"std_normal_{dim}",
        dim=dim,
        logp_grad=logp_grad,
        moments={"mean": np.zeros(dim), "var": np.ones(dim)},
    )


@picklable
def correlated_gaussian(
    cov: ArrayLike, mean: ArrayLike | None = None, *, name: str = "correlated_gaussian",
    cache: bool = True,
) -> Model:
    r"""The Gaussian ``N(mean, cov)`` for a symmetric positive definite ``cov``.

    With the precision ``P = cov^{-1}`` (computed once, from the Cholesky factor of ``cov``)::

        log p(x) = -(x - m)^T P (x - m) / 2,        d log p / d x = -P (x - m).

    Exact moments: ``"mean"`` = ``m`` (zero by default), ``"var"`` = ``diag(cov)`` and the whole
    ``"cov"``. Named ``{name}_{dim}``, coordinates ``x[i]``. ``cache=False`` compiles without
    the disk cache, for models built by the hundred (``nutslite.testing.strategies``).

    Raises
    ------
    ValueError
        When ``cov`` is not a non-empty square matrix, is not finite, is not symmetric (to a
        relative 1e-10 of its largest entry) or is not positive definite; or when ``mean`` does not
        have shape ``(dim,)`` or is not finite.
    """
    cov = np.array(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise ValueError(
            f"correlated_gaussian: cov must be a non-empty square matrix, got shape {cov.shape}"
        )
    if not np.all(np.isfinite(cov)):
        raise ValueError("correlated_gaussian: cov must be finite (it holds NaN or inf)")
    asymmetry = np.max(np.abs(cov - cov.T))
    if asymmetry > 1e-10 * np.max(np.abs(cov)):
        raise ValueError(
            f"correlated_gaussian: cov must be symmetric, max |cov - cov.T| = {asymmetry:.3g}"
        )
    cov = 0.5 * (cov + cov.T)
    dim = cov.shape[0]
    import scipy.linalg  # here: `import nutslite` and the radon models need no SciPy

    try:
        factor = scipy.linalg.cho_factor(cov, lower=True)
    except np.linalg.LinAlgError as err:
        raise ValueError("correlated_gaussian: cov must be positive definite") from err
    precision = scipy.linalg.cho_solve(factor, np.eye(dim))
    precision = np.ascontiguousarray(0.5 * (precision + precision.T))
    m = np.zeros(dim) if mean is None else np.array(mean, dtype=np.float64)
    if m.shape != (dim,):
        raise ValueError(f"correlated_gaussian: mean must have shape ({dim},), got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("correlated_gaussian: mean must be finite (it holds NaN or inf)")
    m = np.ascontiguousarray(m)

    @jit(LOGP_GRAD_SIGNATURE, cache=cache)
    def logp_grad(theta, grad_out):
        quad = 0.0  # -(x - m)^T P (x - m)
        for i in range(precision.shape[0]):
            g = 0.0
            for j in range(precision.shape[0]):
                g -= precision[i, j] * (theta[j] - m[j])
            grad_out[i] = g
            quad += (theta[i] - m[i]) * g
        return 0.5 * quad

    return Model(
        name=f"{name}_{dim}",
        dim=dim,
        logp_grad=logp_grad,
        moments={"mean": m.copy(), "var": np.diag(cov).copy(), "cov": cov},
    )


@picklable
def scaled_gaussian(dim: int = 10, low: float = 1e-2, high: float = 1e2) -> Model:
    r"""Independent ``N(0, s_i^2)`` with scales ``s_i`` log-spaced from ``low`` to ``high``.

    ``s = geomspace(low, high, dim)``; ``log p(x) = -\sum_i x_i^2 / (2 s_i^2)``,
    ``d log p / d x_i = -x_i / s_i^2``. A test of mass-matrix adaptation: with the defaults the
    scales span four orders of magnitude. Exact moments: mean 0, ``"var"`` = ``s^2``, and
    ``"scale"`` = ``s``. Named ``scaled_gaussian_{dim}``, coordinates ``x[i]``.

    Raises
    ------
    ValueError
        When ``dim < 1`` or not ``0 < low <= high < inf``.
    """
    dim = _check_int("scaled_gaussian", "dim", dim, 1)
    if not (0.0 < low <= high < math.inf):
        raise ValueError(
            f"scaled_gaussian: need 0 < low <= high < inf, got low={low!r}, high={high!r}"
        )
    scale = np.geomspace(low, high, dim)
    inv_var = np.ascontiguousarray(1.0 / (scale * scale))

    @jit(LOGP_GRAD_SIGNATURE)
    def logp_grad(theta, grad_out):
        logp = 0.0
        for i in range(inv_var.shape[0]):
            g = -theta[i] * inv_var[i]
            grad_out[i] = g
            logp += 0.5 * theta[i] * g
        return logp

    return Model(
        name=f"scaled_gaussian_{dim}",
        dim=dim,
        logp_grad=logp_grad,
        moments={"mean": np.zeros(dim), "var": scale * scale, "scale": scale},
    )


@picklable
def neal_funnel(dim: int = 10, v_sd: float = FUNNEL_V_SD) -> Model:
    r"""Neal's funnel (Neal 2003, section 8), coordinates ``[v, x[0], ..., x[dim-2]]``::

        v ~ N(0, s^2),        x_k | v ~ N(0, e^v),  k = 1..dim-1,

        log p = -v^2/(2 s^2) - e^{-v} S/2 - (dim-1) v/2,        S = sum_k x_k^2,
        d/dv = -v/s^2 + e^{-v} S/2 - (dim-1)/2,                 d/dx_k = -x_k e^{-v},

    with Neal's ``s = v_sd = 3`` by default (a smaller ``v_sd`` gives a gentler funnel, one that
    NUTS can explore fully). Exact moments for ``s = 3``: ``E v = 0``, ``Var v = 9``,
    ``E x_k = 0``, ``Var x_k = E e^v = e^{9/2}`` (generally ``s^2`` and ``e^{s^2/2}``). The
    variance of ``x_k`` is dominated by rare draws deep in the mouth (``E x_k^4 = 3 e^{18}``), so
    its Monte Carlo estimates are very noisy; the log scale is better behaved. As
    ``log x_k^2 = v + log z^2`` with ``z ~ N(0, 1)`` independent of ``v``, and
    ``log z^2 = log chi^2_1`` has mean ``psi(1/2) + log 2 = -gamma - log 2`` and variance
    ``psi'(1/2) = pi^2/2``, ``moments`` also holds (arrays of shape ``(dim-1,)``):

    ``"log_x2_mean"``
        ``E log x_k^2 = -gamma - log 2`` (``gamma`` Euler's constant), about -1.2704.
    ``"log_x2_var"``
        ``Var log x_k^2 = s^2 + pi^2/2``, about 13.935 for ``s = 3``.

    Named ``neal_funnel_{dim}``; ``constrain`` returns ``{"v": ..., "x": ...}``.

    Raises
    ------
    ValueError
        When ``dim < 2``: the funnel needs ``v`` and at least one ``x``.
    """
    dim = _check_int("neal_funnel", "dim", dim, 2)
    if not (isinstance(v_sd, int | float) and math.isfinite(v_sd) and v_sd > 0):
        raise ValueError(f"neal_funnel: v_sd must be a positive finite number, got {v_sd!r}")
    v_var = float(v_sd) * float(v_sd)

    @jit(LOGP_GRAD_SIGNATURE)
    def logp_grad(theta, grad_out):
        v = theta[0]
        inv_ev = math.exp(-v)
        sum_sq = 0.0
        for k in range(1, theta.shape[0]):
            sum_sq += theta[k] * theta[k]
            grad_out[k] = -theta[k] * inv_ev
        half_n = 0.5 * (theta.shape[0] - 1)
        grad_out[0] = -v / v_var + 0.5 * sum_sq * inv_ev - half_n
        return -0.5 * v * v / v_var - 0.5 * sum_sq * inv_ev - half_n * v

    def constrain(theta: np.ndarray) -> dict[str, np.ndarray]:
        return {"v": theta[..., 0].copy(), "x": theta[..., 1:].copy()}

    n_x = dim - 1
    suffix = "" if v_sd == FUNNEL_V_SD else f"_vsd{v_sd:g}"
    return Model(
        name=f"neal_funnel_{dim}{suffix}",
        dim=dim,
        logp_grad=logp_grad,
        constrain=constrain,
        coords=["v"] + [f"x[{k}]" for k in range(n_x)],
        moments={
            "mean": np.zeros(dim),
            "var": np.array([v_var] + [math.exp(v_var / 2.0)] * n_x),
            "log_x2_mean": np.full(n_x, -np.euler_gamma - math.log(2.0)),
            "log_x2_var": np.full(n_x, v_var + math.pi**2 / 2.0),
        },
    )


@picklable
def eight_schools(parameterization: str = "noncentered") -> Model:
    r"""The eight schools of Rubin (1981), as analysed in BDA3 (Gelman et al. 2013, sec. 5.5).

    Data: estimated coaching effects ``y`` and their standard errors ``sigma`` for schools A-H::

        y     = [28, 8, -3,  7, -1,  1, 18, 12]
        sigma = [15, 10, 16, 11,  9, 11, 10, 18]

    Model::

        mu ~ N(0, 5^2),   tau ~ HalfCauchy(5),   y_j ~ N(theta_j, sigma_j^2)
        theta_j ~ N(mu, tau^2)                                          (centered)
        theta_j = mu + tau theta_tilde_j,  theta_tilde_j ~ N(0, 1)      (non-centered)

    Unconstrained coordinates ``[mu, log_tau, theta[0..7]]`` (centered) or
    ``[mu, log_tau, theta_tilde[0..7]]`` (non-centered). With ``tau = e^s`` the log-Jacobian ``s``
    is included, so the HalfCauchy(5) prior contributes ``s - log(1 + tau^2/25)`` with gradient
    ``1 - 2 tau^2 / (25 + tau^2)``. The centered prior on ``theta`` adds ``-8 s``.

    The posterior has no closed-form moments: ``"mean"`` and ``"var"`` are NaN. ``constrain``
    returns ``mu``, ``tau``, ``theta`` (and ``theta_tilde`` when non-centered), with ``theta``
    along the dimension ``"school"`` labelled A-H. Named ``eight_schools_{parameterization}``.

    Raises
    ------
    ValueError
        When ``parameterization`` is not ``"centered"`` or ``"noncentered"``.
    """
    if parameterization not in EIGHT_SCHOOLS_PARAMETERIZATIONS:
        raise ValueError(
            f"eight_schools: unknown parameterization {parameterization!r}; choose one of "
            f"{', '.join(map(repr, EIGHT_SCHOOLS_PARAMETERIZATIONS))}"
        )
    noncentered = parameterization == "noncentered"
    y = np.array(EIGHT_SCHOOLS_Y)
    n_schools = len(EIGHT_SCHOOLS_Y)

    @jit(LOGP_GRAD_SIGNATURE)
    def logp_grad(theta, grad_out):
        return _eight_schools_density(theta, grad_out, y, noncentered)

    group = "theta_tilde" if noncentered else "theta"

    def constrain(theta: np.ndarray) -> dict[str, np.ndarray]:
        out = {"mu": theta[..., 0].copy(), "tau": np.exp(theta[..., 1])}
        rest = theta[..., 2:]
        if noncentered:
            out["theta"] = out["mu"][..., None] + out["tau"][..., None] * rest
            out["theta_tilde"] = rest.copy()
        else:
            out["theta"] = rest.copy()
        return out

    dim = 2 + n_schools
    return Model(
        name=f"eight_schools_{parameterization}",
        dim=dim,
        logp_grad=logp_grad,
        constrain=constrain,
        log_transformed=(1,),
        coords=["mu", "log_tau"] + [f"{group}[{j}]" for j in range(n_schools)],
        dims={v: ("school",) for v in ("theta", group)},
        dim_labels={"school": list(EIGHT_SCHOOLS_LABELS)},
        moments={"mean": np.full(dim, np.nan), "var": np.full(dim, np.nan)},
    )


@picklable
def logistic_regression(n: int = 200, p: int = 5, seed: int = 0) -> Model:
    r"""Bayesian logistic regression on synthetic data, drawn with ``np.random.default_rng(seed)``.

    Data: ``X`` is ``(n, p)``, a leading column of ones (the intercept) then ``p - 1`` columns of
    iid ``N(0, 1)``; the true coefficients are ``beta* ~ N(0, I_p)``; ``y_i ~ Bernoulli(
    sigmoid(x_i . beta*))``. Prior ``beta ~ N(0, 2.5^2 I_p)``, a weakly informative scale for
    coefficients of standardised predictors. With ``eta_i = x_i . beta``::

        log p(beta) = sum_i [y_i eta_i - softplus(eta_i)] - |beta|^2 / (2 * 2.5^2)
        d/d beta    = sum_i (y_i - sigmoid(eta_i)) x_i - beta / 2.5^2

    where ``softplus(e) = max(e, 0) + log1p(exp(-|e|))`` and ``y - sigmoid(eta)`` is taken as
    ``sigmoid(-eta)`` or ``-sigmoid(eta)``, so nothing overflows or cancels. ``p`` counts the
    intercept, so ``dim = p``.

    Moments have no closed form (NaN). The data are kept as ``model.data``, a dict with ``"X"``,
    ``"y"`` (0.0 or 1.0) and ``"beta_true"``. Named ``logistic_regression``; coordinates
    ``beta[j]``, ``constrain`` returns ``{"beta": ...}``.

    Raises
    ------
    ValueError
        When ``n < 1`` or ``p < 1``.
    """
    n = _check_int("logistic_regression", "n", n, 1)
    p = _check_int("logistic_regression", "p", p, 1)
    rng = np.random.default_rng(seed)
    X = np.ascontiguousarray(np.column_stack([np.ones(n), rng.standard_normal((n, p - 1))]))
    beta_true = rng.standard_normal(p)
    eta_true = X @ beta_true
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta_true))).astype(np.float64)
    inv_prior_var = 1.0 / (LOGISTIC_PRIOR_SD * LOGISTIC_PRIOR_SD)

    @jit(LOGP_GRAD_SIGNATURE)
    def logp_grad(theta, grad_out):
        logp = 0.0
        for j in range(X.shape[1]):
            grad_out[j] = -theta[j] * inv_prior_var
            logp += 0.5 * theta[j] * grad_out[j]
        for i in range(X.shape[0]):
            eta = 0.0
            for j in range(X.shape[1]):
                eta += X[i, j] * theta[j]
            e = math.exp(-abs(eta))
            inv = 1.0 / (1.0 + e)
            if eta > 0.0:
                softplus, sig, sig_neg = eta + math.log1p(e), inv, e * inv
            else:
                softplus, sig, sig_neg = math.log1p(e), e * inv, inv
            logp += y[i] * eta - softplus
            resid = y[i] * sig_neg - (1.0 - y[i]) * sig  # y_i - sigmoid(eta_i)
            for j in range(X.shape[1]):
                grad_out[j] += resid * X[i, j]
        return logp

    def constrain(theta: np.ndarray) -> dict[str, np.ndarray]:
        return {"beta": theta.copy()}

    model = Model(
        name="logistic_regression",
        dim=p,
        logp_grad=logp_grad,
        constrain=constrain,
        coords=[f"beta[{j}]" for j in range(p)],
        moments={"mean": np.full(p, np.nan), "var": np.full(p, np.nan)},
    )
    model.data = {"X": X, "y": y, "beta_true": beta_true}
    return model


def banana_inverse(y: ArrayLike, b: float) -> np.ndarray:
    r"""The Gaussian point ``x`` of a banana point ``y`` (shape ``(..., dim)``, ``dim >= 2``).

    ``x_1 = y_1``, ``x_2 = y_2 - b (y_1^2 - 100)``, ``x_k = y_k`` for ``k > 2``: the inverse of the
    twist in :func:`banana`. Draws from ``banana(b, dim)`` map to ``N(0, diag(100, 1, ..., 1))``.
    """
    x = np.array(y, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 2:
        raise ValueError(f"banana_inverse: y must have shape (..., dim >= 2), got {x.shape}")
    x[..., 1] -= b * (x[..., 0] ** 2 - BANANA_X1_VAR)
    return x


@picklable
def banana(b: float = 0.1, dim: int = 2) -> Model:
    r"""The twisted Gaussian "banana" of Haario, Saksman and Tamminen (2001).

    Take ``x ~ N(0, diag(100, 1, ..., 1))`` in ``dim`` dimensions and twist it::

        y_1 = x_1,    y_2 = x_2 + b (x_1^2 - 100),    y_k = x_k  (k > 2).

    The twist has unit Jacobian, so ``log p(y)`` is the Gaussian log density at
    ``x = banana_inverse(y, b)``. With ``u = y_2 - b (y_1^2 - 100)``::

        log p(y) = -y_1^2 / 200 - u^2 / 2 - sum_{k>2} y_k^2 / 2
        d/dy_1 = -y_1 / 100 + 2 b y_1 u,    d/dy_2 = -u,    d/dy_k = -y_k.

    Exact moments (``E x_1^2 = 100``, ``Var x_1^2 = 2 * 100^2``)::

        E y = 0,   Var y_1 = 100,   Var y_2 = 1 + 2 b^2 100^2,   Var y_k = 1,

    and ``Cov(y_1, y_2) = b E[x_1^3 - 100 x_1] = 0``: the coordinates are uncorrelated though
    dependent, so ``"cov"`` is ``diag(var)``. Quantiles of ``y_2`` have no closed form; map draws
    back with :func:`banana_inverse` to test them against the Gaussian. Haario et al. use
    ``b = 0.03`` (moderately) and ``b = 0.1`` (strongly twisted). Named ``banana``; coordinates
    ``y[i]``, ``constrain`` returns ``{"y": ...}``.

    Raises
    ------
    ValueError
        When ``b`` is not finite or ``dim < 2``.
    """
    dim = _check_int("banana", "dim", dim, 2)
    if not math.isfinite(b):
        raise ValueError(f"banana: b must be finite, got {b!r}")
    b = float(b)
    x1_var = BANANA_X1_VAR

    @jit(LOGP_GRAD_SIGNATURE)
    def logp_grad(theta, grad_out):
        y1 = theta[0]
        u = theta[1] - b * (y1 * y1 - x1_var)
        logp = -0.5 * y1 * y1 / x1_var - 0.5 * u * u
        grad_out[0] = -y1 / x1_var + 2.0 * b * y1 * u
        grad_out[1] = -u
        for k in range(2, theta.shape[0]):
            logp -= 0.5 * theta[k] * theta[k]
            grad_out[k] = -theta[k]
        return logp

    def constrain(theta: np.ndarray) -> dict[str, np.ndarray]:
        return {"y": theta.copy()}

    var = np.ones(dim)
    var[0] = x1_var
    var[1] = 1.0 + 2.0 * b * b * x1_var * x1_var
    return Model(
        name="banana",
        dim=dim,
        logp_grad=logp_grad,
        constrain=constrain,
        coords=[f"y[{i}]" for i in range(dim)],
        moments={"mean": np.zeros(dim), "var": var, "cov": np.diag(var)},
    )


def rotated_covariance(dim: int, seed: int = 0, low: float = 0.1, high: float = 10.0) -> np.ndarray:
    """A seeded SPD matrix ``Q diag(lam) Q^T``: ``lam`` log-spaced in ``[low, high]``, ``Q`` a
    Haar-random orthogonal matrix (QR of a Gaussian matrix, signs fixed by ``diag(R) > 0``)."""
    dim = _check_int("rotated_covariance", "dim", dim, 1)
    if not (0.0 < low <= high < math.inf):
        raise ValueError(f"rotated_covariance: need 0 < low <= high < inf, got {low!r}, {high!r}")
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    cov = (q * np.geomspace(low, high, dim)) @ q.T
    return 0.5 * (cov + cov.T)


ZOO: dict[str, Callable[[], Model]] = {
    "std_normal_5": lambda: std_normal(5),
    "correlated_gaussian_5": lambda: correlated_gaussian(rotated_covariance(5, seed=0)),
    "scaled_gaussian_10": lambda: scaled_gaussian(10),
    "neal_funnel_5": lambda: neal_funnel(5),
    "eight_schools_centered": lambda: eight_schools("centered"),
    "eight_schools_noncentered": lambda: eight_schools("noncentered"),
    "logistic_regression": lambda: logistic_regression(),
    "banana": lambda: banana(),
}
"""Small default instances by name (each key is the model's ``name``), built on call."""


# --- eight schools' data-generating process, for simulation-based calibration ---------------

_EIGHT_SCHOOLS_INV_SIGMA2 = np.array([1.0 / (s * s) for s in EIGHT_SCHOOLS_SIGMA])
EIGHT_SCHOOLS_MU_SD = 5.0  # mu ~ N(0, 5^2)
EIGHT_SCHOOLS_TAU_SCALE = 5.0  # tau ~ HalfCauchy(5)


@jit
def _eight_schools_density(theta, grad_out, y, noncentered):
    """The density of :func:`eight_schools` with the effects ``y`` as an argument (the standard
    errors stay those of BDA3): the model itself calls it with BDA3's effects, and SBC with
    simulated ones. Priors mu ~ N(0, 5^2), tau ~ HalfCauchy(5), on ``s = log tau``."""
    mu_var = EIGHT_SCHOOLS_MU_SD * EIGHT_SCHOOLS_MU_SD
    beta2 = EIGHT_SCHOOLS_TAU_SCALE * EIGHT_SCHOOLS_TAU_SCALE
    mu, s = theta[0], theta[1]
    tau = math.exp(s)
    inv_tau2 = math.exp(-2.0 * s)
    t2 = math.exp(2.0 * s) / beta2
    logp = -0.5 * mu * mu / mu_var + s - math.log1p(t2)
    d_mu = -mu / mu_var
    d_s = 1.0 - 2.0 * t2 / (1.0 + t2)
    for j in range(y.shape[0]):
        inv_sigma2 = _EIGHT_SCHOOLS_INV_SIGMA2[j]
        if noncentered:
            z = theta[2 + j]
            effect = mu + tau * z
            r = (y[j] - effect) * inv_sigma2
            logp -= 0.5 * z * z + 0.5 * (y[j] - effect) * r
            d_mu += r
            d_s += r * tau * z
            grad_out[2 + j] = r * tau - z
        else:
            effect = theta[2 + j]
            dev = effect - mu
            u2 = dev * dev * inv_tau2
            r = (y[j] - effect) * inv_sigma2
            logp -= 0.5 * u2 + s + 0.5 * (y[j] - effect) * r
            d_mu += dev * inv_tau2
            d_s += u2 - 1.0
            grad_out[2 + j] = r - dev * inv_tau2
    grad_out[0] = d_mu
    grad_out[1] = d_s
    return logp


# One top-level function per parameterization, as for radon's SBC variant, on purpose: see the
# comment at nutslite.models.radon._sbc_noncentered_density.
@jit
def _eight_schools_noncentered_density(theta, grad_out, y):
    return _eight_schools_density(theta, grad_out, y, True)


@jit
def _eight_schools_centered_density(theta, grad_out, y):
    return _eight_schools_density(theta, grad_out, y, False)


def simulate_eight_schools(
    parameterization: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    r"""One draw of eight schools' prior predictive (the model's own priors, which are proper)::

        mu ~ N(0, 5^2),  tau ~ HalfCauchy(5),  theta_tilde_j ~ N(0, 1),
        theta_j = mu + tau theta_tilde_j,  y_j ~ N(theta_j, sigma_j^2)

    with BDA3's standard errors ``sigma_j``. Returns the unconstrained parameters
    ``[mu, log tau, theta_tilde]`` (non-centered) or ``[mu, log tau, theta]`` (centered) and ``y``.
    """
    mu = EIGHT_SCHOOLS_MU_SD * rng.standard_normal()
    tau = EIGHT_SCHOOLS_TAU_SCALE * abs(rng.standard_cauchy())
    theta_tilde = rng.standard_normal(len(EIGHT_SCHOOLS_Y))
    effects = mu + tau * theta_tilde
    y = effects + np.array(EIGHT_SCHOOLS_SIGMA) * rng.standard_normal(len(EIGHT_SCHOOLS_Y))
    group = theta_tilde if parameterization == "noncentered" else effects
    return np.concatenate([[mu, math.log(tau)], group]), y


@functools.cache
def eight_schools_simulated(parameterization: str = "noncentered") -> SimulatedModel:
    """:func:`eight_schools` with its data-generating process (:func:`simulate_eight_schools`),
    for simulation-based calibration: the same coordinates, ``data`` the eight effects ``y``."""
    if parameterization not in EIGHT_SCHOOLS_PARAMETERIZATIONS:
        raise ValueError(
            f"eight_schools_simulated: unknown parameterization {parameterization!r}; choose one "
            f"of {', '.join(map(repr, EIGHT_SCHOOLS_PARAMETERIZATIONS))}"
        )
    noncentered = parameterization == "noncentered"
    group = "theta_tilde" if noncentered else "theta"
    return SimulatedModel(
        name=f"eight_schools_{parameterization}",
        coords=["mu", "log_tau"] + [f"{group}[{j}]" for j in range(len(EIGHT_SCHOOLS_Y))],
        density=(_eight_schools_noncentered_density if noncentered
                 else _eight_schools_centered_density),
        simulate=functools.partial(simulate_eight_schools, parameterization),
        data_size=len(EIGHT_SCHOOLS_Y),
        log_transformed=(1,),
        recipe=(eight_schools_simulated, (parameterization,)),
    )
