r"""The hierarchical radon regression of Wiecki (2017), centered and non-centered.

Data: 919 Minnesota homes in 85 counties (``data/radon.csv``). The model, as the post writes it::

    mu_a, mu_b          ~ Normal(0, sd=100**2)
    sigma_a, sigma_b    ~ HalfCauchy(beta=5)
    eps                 ~ HalfCauchy(beta=5)
    a[c] ~ Normal(mu_a, sigma_a),  b[c] ~ Normal(mu_b, sigma_b)        (centered)
    a[c] = mu_a + sigma_a a_offset[c],  a_offset[c] ~ Normal(0, 1)     (non-centered; b alike)
    log_radon[i] ~ Normal(a[county[i]] + b[county[i]] * floor[i], eps)

Unconstrained coordinates, in this order (175 in all)::

    [mu_a, log sigma_a, mu_b, log sigma_b, log eps,
     a[0..84] | a_offset[0..84], b[0..84] | b_offset[0..84]]

The log density on this scale adds the log-Jacobian ``s`` of each ``sigma = exp(s)``. With
``sigma = e^s``, the HalfCauchy(5) prior plus Jacobian is, up to a constant,

    l(s) = s - log(1 + sigma^2 / 25),        dl/ds = 1 - 2 sigma^2 / (25 + sigma^2).

Two exact likelihoods are offered.

``likelihood="sufficient"`` (default). For homes of county ``c`` on floor ``f`` the mean is
``m_cf = a_c + b_c f``, and the residual sum of squares splits exactly into a constant
within-group part and a between-group part (the usual decomposition of a sum of squares)::

    sum_i (y_i - m_cf)^2 = W_cf + n_cf (ybar_cf - m_cf)^2

so the likelihood needs only per-(county, floor) counts and means, one pass over 85 counties:
``log L = -N log eps - (W + sum_cf n_cf (ybar_cf - m_cf)^2) / (2 eps^2)``.

``likelihood="pointwise"``: the plain loop over the 919 observations that a reader expects, adding
each home's residual into its county's gradient. It agrees with the default to rounding.

Both compute ``log p`` and its gradient in one pass, in float64, with no allocation.

``radon_simulated(parameterization)`` is an *SBC variant* (``radon_sbc_{parameterization}``): the
same likelihood and group structure on the same 919 homes, with proper, tighter hyperpriors (see
``SBC_MU_SD`` and below) and a data-generating process, for simulation-based calibration.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from nutslite._memory import empty_views, fill_by_chain
from nutslite._numba import LOGP_GRAD_SIGNATURE, jit
from nutslite.model import Model, picklable
from nutslite.models.simulated import SimulatedModel

PARAMETERIZATIONS = ("centered", "noncentered")
LIKELIHOODS = ("sufficient", "pointwise")
MU_SD = 100.0**2  # the post's sd=100**2
HALF_CAUCHY_BETA = 5.0
N_HYPER = 5  # mu_a, log sigma_a, mu_b, log sigma_b, log eps


@dataclass(frozen=True)
class RadonData:
    """Observations of the radon regression: one entry per home.

    ``county`` holds integer codes ``0..n_counties-1``; ``floor`` is 0 (basement) or 1.
    """

    log_radon: np.ndarray
    floor: np.ndarray
    county: np.ndarray
    county_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.log_radon)
        if not (len(self.floor) == len(self.county) == n and n > 0):
            raise ValueError("log_radon, floor and county must be non-empty and of equal length")
        if not np.all(np.isfinite(self.log_radon)):
            raise ValueError("log_radon must be finite")
        if not np.isin(self.floor, (0, 1)).all():
            raise ValueError("floor must be 0 or 1")
        k = len(self.county_names)
        if self.county.min() < 0 or self.county.max() >= k:
            raise ValueError(f"county codes must lie in 0..{k - 1}")

    @property
    def n_counties(self) -> int:
        return len(self.county_names)


def load_radon() -> RadonData:
    """The 919 homes of the blog post, from the csv shipped inside the package."""
    text = resources.files("nutslite").joinpath("data/radon.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    names = {int(r["county_code"]): r["county"] for r in rows}
    return RadonData(
        log_radon=np.array([float(r["log_radon"]) for r in rows]),
        floor=np.array([int(r["floor"]) for r in rows], dtype=np.int64),
        county=np.array([int(r["county_code"]) for r in rows], dtype=np.int64),
        county_names=tuple(names[c] for c in range(len(names))),
    )


def synthetic_radon(n_counties: int, homes_per_county: int, seed: int = 0) -> RadonData:
    """Radon-like data drawn from the model itself, for scaling benchmarks.

    Intercepts ~ Normal(1.5, 0.3), slopes ~ Normal(-0.6, 0.3), eps = 0.7, about 17% of homes on
    the first floor (as in Minnesota).
    """
    rng = np.random.default_rng(seed)
    county = np.repeat(np.arange(n_counties), homes_per_county)
    floor = (rng.random(county.size) < 0.17).astype(np.int64)
    a = rng.normal(1.5, 0.3, n_counties)
    b = rng.normal(-0.6, 0.3, n_counties)
    y = a[county] + b[county] * floor + rng.normal(0.0, 0.7, county.size)
    names = tuple(f"C{c}" for c in range(n_counties))
    return RadonData(log_radon=y, floor=floor, county=county, county_names=names)


def sufficient_statistics(data: RadonData) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-(county, floor) counts ``n`` and means ``ybar`` (shape ``(n_counties, 2)``) and the
    within-group sum of squares ``W`` (a constant of the likelihood)."""
    k = data.n_counties
    n = np.zeros((k, 2))
    total = np.zeros((k, 2))
    np.add.at(n, (data.county, data.floor), 1.0)
    np.add.at(total, (data.county, data.floor), data.log_radon)
    ybar = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    within = float(np.sum((data.log_radon - ybar[data.county, data.floor]) ** 2))
    return np.ascontiguousarray(n), np.ascontiguousarray(ybar), within


# The three helpers below are inlined by Numba into the one density that calls them (each has one
# call site in any density), so a cold start types, lowers and optimises one function instead of
# four: 0.2 s less CPU (``benchmarks/README.md``, cold compile, round 12).
@jit(inline="always")
def hyperprior_logp_grad(theta, grad_out):
    """Priors of the five hyperparameters on the unconstrained scale, Jacobians included.

    Writes ``grad_out[0:5]`` and returns their log density.
    """
    logp = 0.0
    for i in (0, 2):  # mu_a, mu_b ~ Normal(0, MU_SD)
        logp -= 0.5 * (theta[i] / MU_SD) ** 2
        grad_out[i] = -theta[i] / (MU_SD * MU_SD)
    for i in (1, 3, 4):  # sigma_a, sigma_b, eps ~ HalfCauchy(5), s = log sigma
        s2 = math.exp(2.0 * theta[i]) / (HALF_CAUCHY_BETA * HALF_CAUCHY_BETA)
        logp += theta[i] - math.log1p(s2)
        grad_out[i] = 1.0 - 2.0 * s2 / (1.0 + s2)
    return logp


@jit(inline="always")
def group_prior_and_chain_rule(theta, grad_out, logp, ssr, n_obs, noncentered):
    """Add the group-level prior and the likelihood's ``eps`` terms to ``logp``, and finish the
    gradient by the chain rule.

    On entry ``grad_out`` holds the hyperpriors' gradient in its first ``N_HYPER`` slots and, in
    the slots of ``a[c]`` and ``b[c]`` (or of their offsets), the likelihood's gradient with
    respect to the county intercept and slope themselves, ``d log L / d a[c]`` and
    ``d log L / d b[c]`` at ``eps = 1``; ``ssr`` is the residual sum of squares over the ``n_obs``
    homes. Non-centered: ``a = mu_a + sigma_a z_a``, so ``d/d z_a = sigma_a d/d a - z_a`` and the
    hyperparameters collect ``d/d a`` (``mu_a``) and ``sigma_a z_a d/d a`` (``log sigma_a``).
    Centered: ``a ~ Normal(mu_a, sigma_a)`` adds ``-(a - mu_a)^2 / (2 sigma_a^2) - log sigma_a``.
    Shared by both likelihood forms of :func:`radon` and by its SBC variant."""
    k = (theta.shape[0] - N_HYPER) // 2
    mu_a, mu_b = theta[0], theta[2]
    sigma_a, sigma_b = math.exp(theta[1]), math.exp(theta[3])
    inv_eps2 = math.exp(-2.0 * theta[4])
    d_mu_a = d_mu_b = d_ls_a = d_ls_b = 0.0
    for c in range(k):
        ia, ib = N_HYPER + c, N_HYPER + k + c
        ga, gb = grad_out[ia] * inv_eps2, grad_out[ib] * inv_eps2
        if noncentered:
            za, zb = theta[ia], theta[ib]
            logp -= 0.5 * (za * za + zb * zb)
            d_mu_a += ga
            d_mu_b += gb
            d_ls_a += ga * sigma_a * za
            d_ls_b += gb * sigma_b * zb
            grad_out[ia] = ga * sigma_a - za
            grad_out[ib] = gb * sigma_b - zb
        else:
            ua, ub = (theta[ia] - mu_a) / sigma_a, (theta[ib] - mu_b) / sigma_b
            logp -= 0.5 * (ua * ua + ub * ub)
            d_mu_a += ua / sigma_a
            d_mu_b += ub / sigma_b
            d_ls_a += ua * ua
            d_ls_b += ub * ub
            grad_out[ia] = ga - ua / sigma_a
            grad_out[ib] = gb - ub / sigma_b
    if not noncentered:  # a ~ Normal(mu_a, sigma_a): -k log sigma_a
        logp -= k * (theta[1] + theta[3])
        d_ls_a -= k
        d_ls_b -= k
    logp += -n_obs * theta[4] - 0.5 * ssr * inv_eps2
    grad_out[0] += d_mu_a
    grad_out[1] += d_ls_a
    grad_out[2] += d_mu_b
    grad_out[3] += d_ls_b
    grad_out[4] += -n_obs + ssr * inv_eps2
    return logp


@jit(inline="always")
def group_and_likelihood_logp_grad(theta, grad_out, logp, n, ybar, within, n_obs, noncentered):
    """Add the group-level terms and the likelihood, from sufficient statistics, to ``logp`` (the
    hyperpriors' value, whose gradient is already in ``grad_out``) and their gradient to
    ``grad_out``. ``n`` and ``ybar`` are ``(k, 2)``: homes and mean log radon per county and floor;
    ``within`` the within-cell sum of squares; ``n_obs`` the number of homes
    (:func:`sufficient_statistics`). Shared by :func:`radon`'s ``"sufficient"`` form and its SBC
    variant, which differ only in the hyperpriors."""
    k = n.shape[0]
    mu_a, mu_b = theta[0], theta[2]
    sigma_a, sigma_b = math.exp(theta[1]), math.exp(theta[3])
    ssr = within  # residual sum of squares, built up county by county
    for c in range(k):
        ia, ib = N_HYPER + c, N_HYPER + k + c
        if noncentered:
            a, b = mu_a + sigma_a * theta[ia], mu_b + sigma_b * theta[ib]
        else:
            a, b = theta[ia], theta[ib]
        r0 = ybar[c, 0] - a  # basement mean residual
        r1 = ybar[c, 1] - a - b  # first-floor mean residual
        ssr += n[c, 0] * r0 * r0 + n[c, 1] * r1 * r1
        grad_out[ia] = n[c, 0] * r0 + n[c, 1] * r1  # d log L / d a[c] at eps = 1
        grad_out[ib] = n[c, 1] * r1  # d log L / d b[c]
    return group_prior_and_chain_rule(theta, grad_out, logp, ssr, n_obs, noncentered)


def _make_logp_grad(parameterization: str, likelihood: str, data: RadonData):
    """Compile ``logp_grad`` for one parameterization and likelihood, with the data frozen in."""
    k = data.n_counties
    noncentered = parameterization == "noncentered"
    if likelihood == "sufficient":
        n, ybar, within = sufficient_statistics(data)
        n_obs = float(len(data.log_radon))

        @jit(LOGP_GRAD_SIGNATURE)
        def logp_grad(theta, grad_out):
            logp = hyperprior_logp_grad(theta, grad_out)
            return group_and_likelihood_logp_grad(
                theta, grad_out, logp, n, ybar, within, n_obs, noncentered
            )

        return logp_grad

    y = np.ascontiguousarray(data.log_radon, dtype=np.float64)
    floor = np.ascontiguousarray(data.floor, dtype=np.float64)
    county = np.ascontiguousarray(data.county, dtype=np.int64)

    @jit(LOGP_GRAD_SIGNATURE)
    def logp_grad_pointwise(theta, grad_out):
        logp = hyperprior_logp_grad(theta, grad_out)
        mu_a, mu_b = theta[0], theta[2]
        sigma_a, sigma_b = math.exp(theta[1]), math.exp(theta[3])
        for j in range(N_HYPER, N_HYPER + 2 * k):
            grad_out[j] = 0.0
        ssr = 0.0
        for i in range(y.shape[0]):  # the likelihood, one home at a time
            c = county[i]
            if noncentered:
                a = mu_a + sigma_a * theta[N_HYPER + c]
                b = mu_b + sigma_b * theta[N_HYPER + k + c]
            else:
                a, b = theta[N_HYPER + c], theta[N_HYPER + k + c]
            r = y[i] - a - b * floor[i]
            ssr += r * r
            grad_out[N_HYPER + c] += r  # d log L / d a[c] at eps = 1
            grad_out[N_HYPER + k + c] += r * floor[i]  # d log L / d b[c] at eps = 1
        return group_prior_and_chain_rule(theta, grad_out, logp, ssr, float(y.shape[0]),
                                          noncentered)

    return logp_grad_pointwise


@picklable
def radon(
    parameterization: str = "noncentered",
    likelihood: str = "sufficient",
    data: RadonData | None = None,
) -> Model:
    """The radon regression of the blog post as a ``Model`` with 5 + 2 * n_counties coordinates.

    Parameters
    ----------
    parameterization
        ``"centered"`` or ``"noncentered"``.
    likelihood
        ``"sufficient"`` (default, the fastest exact form) or ``"pointwise"`` (one term per home).
    data
        Defaults to the 919 Minnesota homes; ``synthetic_radon`` makes larger data sets.
    """
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"unknown radon parameterization {parameterization!r}; choose one of "
            f"{', '.join(map(repr, PARAMETERIZATIONS))}"
        )
    if likelihood not in LIKELIHOODS:
        raise ValueError(
            f"unknown radon likelihood {likelihood!r}; choose one of "
            f"{', '.join(map(repr, LIKELIHOODS))}"
        )
    if data is None:
        data = load_radon()
    elif not isinstance(data, RadonData):
        raise TypeError(f"data must be a RadonData, got {type(data).__name__}")
    k = data.n_counties
    group = ("a_offset", "b_offset") if parameterization == "noncentered" else ("a", "b")
    coords = ["mu_a", "log_sigma_a", "mu_b", "log_sigma_b", "log_eps"]
    coords += [f"{group[0]}[{c}]" for c in range(k)] + [f"{group[1]}[{c}]" for c in range(k)]

    shapes = {name: () for name in ("mu_a", "sigma_a", "mu_b", "sigma_b", "eps")}
    shapes.update({name: (k,) for name in ("a", "b")})
    if parameterization == "noncentered":
        shapes.update({name: (k,) for name in group})

    def constrain(theta: np.ndarray) -> dict[str, np.ndarray]:
        """Every variable computed into its own view of one block (``empty_views``), with no
        temporaries: fresh memory is what a process's first call pays for. Large runs are
        filled chain by chain on several threads (``fill_by_chain``)."""
        out = empty_views(theta.shape[:-1], shapes)
        fill_by_chain(fill, theta, out)
        return out

    def fill(theta: np.ndarray, out: dict[str, np.ndarray]) -> None:
        """``out`` computed from ``theta``, row by row of the leading axes."""
        first = theta[..., N_HYPER : N_HYPER + k]
        second = theta[..., N_HYPER + k : N_HYPER + 2 * k]
        np.copyto(out["mu_a"], theta[..., 0])
        np.exp(theta[..., 1], out=out["sigma_a"])
        np.copyto(out["mu_b"], theta[..., 2])
        np.exp(theta[..., 3], out=out["sigma_b"])
        np.exp(theta[..., 4], out=out["eps"])
        if parameterization == "noncentered":
            for name, offset, mu, sigma in (("a", first, "mu_a", "sigma_a"),
                                            ("b", second, "mu_b", "sigma_b")):
                np.multiply(out[sigma][..., None], offset, out=out[name])  # mu + sigma * offset
                np.add(out[mu][..., None], out[name], out=out[name])
            np.copyto(out["a_offset"], first)
            np.copyto(out["b_offset"], second)
        else:
            np.copyto(out["a"], first)
            np.copyto(out["b"], second)

    county_vars = ("a", "b", "a_offset", "b_offset")
    return Model(
        name=f"radon_{parameterization}",
        dim=N_HYPER + 2 * k,
        logp_grad=_make_logp_grad(parameterization, likelihood, data),
        constrain=constrain,
        coords=coords,
        dims={v: ("county",) for v in county_vars},
        dim_labels={"county": list(data.county_names)},
        log_transformed=(1, 3, 4),
    )


# --- an SBC variant with proper, tighter priors and its data-generating process -------------
#
# Simulation-based calibration draws parameters from the model's prior and data given them. The
# post's priors, Normal(0, sd=1e4) and HalfCauchy(5), are so wide that such data look nothing like
# radon (county means of +-1e4, noise scales of hundreds): a calibration on them tests the sampler
# far from where it is used. The SBC variant keeps the model's structure and the real design (the
# 919 homes' counties and floors) and puts weakly informative priors on the log-radon scale:
SBC_MU_SD = 1.0  # mu_a, mu_b ~ Normal(0, 1)
SBC_GROUP_SD = 0.5  # sigma_a, sigma_b ~ HalfNormal(0.5)
SBC_EPS_SD = 1.0  # eps ~ HalfNormal(1)


@jit
def sbc_hyperprior_logp_grad(theta, grad_out):
    """Priors of the SBC variant's five hyperparameters, unconstrained, Jacobians included: for
    ``sigma = e^s ~ HalfNormal(c)``, ``l(s) = s - e^(2s) / (2 c^2)``, ``dl/ds = 1 - e^(2s) / c^2``.
    Writes ``grad_out[0:5]`` and returns their log density."""
    logp = 0.0
    for i in (0, 2):
        logp -= 0.5 * (theta[i] / SBC_MU_SD) ** 2
        grad_out[i] = -theta[i] / (SBC_MU_SD * SBC_MU_SD)
    for i in (1, 3, 4):
        scale = SBC_EPS_SD if i == 4 else SBC_GROUP_SD
        s2 = math.exp(2.0 * theta[i]) / (scale * scale)
        logp += theta[i] - 0.5 * s2
        grad_out[i] = 1.0 - s2
    return logp


@jit
def _sbc_density(theta, grad_out, data, noncentered):
    """The SBC variant's log density with the sufficient statistics as an argument: ``data`` is
    ``[n (k x 2, row-major), ybar (k x 2), W, N]`` (see :func:`sufficient_statistics`). The
    likelihood and group-level terms are :func:`radon`'s ``"sufficient"`` form's
    (:func:`group_and_likelihood_logp_grad`), the hyperpriors :func:`sbc_hyperprior_logp_grad`."""
    k = (data.shape[0] - 2) // 4
    logp = sbc_hyperprior_logp_grad(theta, grad_out)
    n = data[: 2 * k].reshape((k, 2))
    ybar = data[2 * k : 4 * k].reshape((k, 2))
    return group_and_likelihood_logp_grad(
        theta, grad_out, logp, n, ybar, data[4 * k], data[4 * k + 1], noncentered
    )


# One top-level function per parameterization, as for eight schools in zoo.py, on purpose: a
# density takes exactly (theta, grad_out, data), and a top-level function compiles the flag in as
# a constant and is cached on disk by its code (a closure from a shared helper is cached under a
# pickle of what it captures, here a dispatcher, whose pickle Numba says can vary by process).
@jit
def _sbc_noncentered_density(theta, grad_out, data):
    return _sbc_density(theta, grad_out, data, True)


@jit
def _sbc_centered_density(theta, grad_out, data):
    return _sbc_density(theta, grad_out, data, False)


def sbc_data_vector(data: RadonData) -> np.ndarray:
    """The data vector of the SBC variant's density: ``[n, ybar, W, N]`` of ``data``."""
    n, ybar, within = sufficient_statistics(data)
    return np.concatenate([n.ravel(), ybar.ravel(), [within, float(len(data.log_radon))]])


def simulate_radon(
    parameterization: str, design: RadonData, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    r"""One draw of the SBC variant's prior predictive on the homes (county, floor) of ``design``::

        mu_a, mu_b ~ N(0, 1),  sigma_a, sigma_b ~ HalfNormal(0.5),  eps ~ HalfNormal(1),
        a_offset[c], b_offset[c] ~ N(0, 1),  a = mu_a + sigma_a a_offset,  b alike,
        log_radon[i] ~ N(a[county[i]] + b[county[i]] floor[i], eps^2)

    Returns the unconstrained parameters (in :func:`radon`'s order, offsets when non-centered)
    and the data vector (:func:`sbc_data_vector`).
    """
    k = design.n_counties
    mu_a, mu_b = SBC_MU_SD * rng.standard_normal(2)
    sigma_a, sigma_b = SBC_GROUP_SD * np.abs(rng.standard_normal(2))
    eps = SBC_EPS_SD * abs(rng.standard_normal())
    a_offset, b_offset = rng.standard_normal((2, k))
    a, b = mu_a + sigma_a * a_offset, mu_b + sigma_b * b_offset
    mean = a[design.county] + b[design.county] * design.floor
    y = mean + eps * rng.standard_normal(len(mean))
    fake = RadonData(log_radon=y, floor=design.floor, county=design.county,
                     county_names=design.county_names)
    groups = [a_offset, b_offset] if parameterization == "noncentered" else [a, b]
    hyper = [mu_a, math.log(sigma_a), mu_b, math.log(sigma_b), math.log(eps)]
    return np.concatenate([hyper, *groups]), sbc_data_vector(fake)


@functools.cache
def radon_simulated(parameterization: str = "noncentered") -> SimulatedModel:
    """The SBC variant of :func:`radon` (priors above, named ``radon_sbc_{parameterization}``)
    with its data-generating process (:func:`simulate_radon`) on the 919 homes of the post."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"unknown radon parameterization {parameterization!r}; choose one of "
            f"{', '.join(map(repr, PARAMETERIZATIONS))}"
        )
    design = load_radon()
    k = design.n_counties
    group = ("a_offset", "b_offset") if parameterization == "noncentered" else ("a", "b")
    coords = ["mu_a", "log_sigma_a", "mu_b", "log_sigma_b", "log_eps"]
    coords += [f"{group[0]}[{c}]" for c in range(k)] + [f"{group[1]}[{c}]" for c in range(k)]
    density = (_sbc_noncentered_density if parameterization == "noncentered"
               else _sbc_centered_density)
    return SimulatedModel(
        name=f"radon_sbc_{parameterization}",
        coords=coords,
        density=density,
        simulate=functools.partial(simulate_radon, parameterization, design),
        data_size=4 * k + 2,
        log_transformed=(1, 3, 4),
        recipe=(radon_simulated, (parameterization,)),
    )
