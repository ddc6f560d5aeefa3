"""The NumPy/SciPy diagnostics nutslite used before its compiled kernels: the tests' oracle.

A copy of the array-level functions of ``nutslite/diagnostics.py`` and ``nutslite/summary.py`` as
of commit 6508cbf (rank normalization with ``scipy.stats.rankdata``, autocovariances with
``scipy.fft``), which matched ArviZ 0.23 to 1e-8. They take a batch of finite draws
``(K, chains, draws)`` with ``draws >= 4`` and return one value per scalar; the compiled
statistics must equal them to 1e-12 relative. Not part of the package.
"""

import math

import numpy as np
from scipy import fft
from scipy.special import ndtri
from scipy.stats import rankdata

FloatArray = np.ndarray
_CONSTANT_TOL = np.finfo(float).resolution


def _is_constant(batch):
    return (batch.max(axis=(1, 2)) - batch.min(axis=(1, 2))) < _CONSTANT_TOL


def _split_chains(batch: FloatArray) -> FloatArray:
    """Split every chain in half: ``(K, M, N) -> (K, 2M, N // 2)``.

    For odd ``N`` the middle draw is dropped (BDA3 sec. 11.4; Stan, ArviZ).
    """
    half = batch.shape[-1] // 2
    return np.concatenate((batch[..., :half], batch[..., batch.shape[-1] - half :]), axis=1)


def _rank_normalize(batch: FloatArray) -> FloatArray:
    """Rank-normalize over the pooled draws of each scalar (Vehtari et al. eq. 14).

    ``z = Phi^{-1}((r - 3/8) / (S + 1/4))`` with ``r`` the average rank among all
    ``S`` draws of the scalar (Blom 1958 offsets).
    """
    flat = batch.reshape(len(batch), -1)
    ranks = rankdata(flat, method="average", axis=-1)
    return ndtri((ranks - 3 / 8) / (flat.shape[-1] + 1 / 4)).reshape(batch.shape)


def _fold(batch: FloatArray) -> FloatArray:
    """Folded draws ``|theta - median(theta)|`` (Vehtari et al. eq. 15)."""
    median = np.median(batch.reshape(len(batch), -1), axis=-1)
    return np.abs(batch - median[:, np.newaxis, np.newaxis])


def _quantile_type7(batch: FloatArray, prob: float) -> FloatArray:
    """Per-scalar ``prob`` quantile of the pooled draws, Hyndman & Fan (1996) type 7.

    With ``h = S p + (1 - p)`` (1-based), ``k = floor(clip(h, 1, S - 1))`` and
    ``g = clip(h - k, 0, 1)``: ``q = (1 - g) x_(k) + g x_(k+1)``.  Written in the
    same floating-point order as ``scipy.stats.mstats.mquantiles(alphap=1, betap=1)``
    (used by ArviZ), so the quantile indicators below match ArviZ exactly.
    """
    srt = np.sort(batch.reshape(len(batch), -1), axis=-1)
    size = srt.shape[-1]
    h = size * prob + (1.0 - prob)
    k = int(np.floor(np.clip(h, 1, size - 1)))
    g = float(np.clip(h - k, 0.0, 1.0))
    return (1.0 - g) * srt[:, k - 1] + g * srt[:, k]


def _autocovariance(chains: FloatArray) -> FloatArray:
    """Biased autocovariance ``gamma_t = 1/n sum_i (x_i - xbar)(x_{i+t} - xbar)`` by FFT.

    Zero-padded to at least ``2n`` so the circular correlation equals the linear
    one (Geyer 1992 recommends the divisor ``n``; Vehtari et al. sec. 3.2).
    """
    n = chains.shape[-1]
    centred = chains - chains.mean(axis=-1, keepdims=True)
    size = fft.next_fast_len(2 * n, real=True)
    spectrum = fft.rfft(centred, n=size, axis=-1)
    return fft.irfft(spectrum * spectrum.conj(), n=size, axis=-1)[..., :n] / n


def _geyer_tau(rho: FloatArray) -> FloatArray:
    """Integrated autocorrelation time from multi-chain autocorrelations ``rho (K, n)``.

    Geyer's (1992) initial positive sequence, made monotone, exactly as Stan and
    ArviZ do it (Vehtari et al. eq. 13).  With pair sums
    ``P_k = rho_{2k} + rho_{2k+1}`` (``rho_0 = 1``), the scan computes
    ``P_1, P_2, ...`` while the previous pair sum is positive and the lag stays
    below ``n - 3``; let ``K`` be the index of the last pair computed (``K = 0``
    when no pair beyond ``P_0`` is computed).  Then

    ``tau = -1 + 2 sum_{k<K} min(P_0, ..., P_k) + rho_{2K}^+``

    where the running minimum is the initial *monotone* sequence and the extra
    even-lag term ``rho_{2K}^+`` is ``rho_{2K}`` if ``P_K >= 0`` or
    ``rho_{2K} > 0`` and 0 otherwise: Stan's rule that averages the sums ending at
    the last odd and the next even lag, which stabilises antithetic chains.
    """
    n_scalars, n = rho.shape
    last_pair = max(0, (n - 3) // 2)
    pair_sums = rho[:, 0 : 2 * last_pair + 1 : 2] + rho[:, 1 : 2 * last_pair + 2 : 2]
    nonpositive = pair_sums <= 0
    stop = np.where(nonpositive.any(axis=1), nonpositive.argmax(axis=1), last_pair)
    monotone = np.minimum.accumulate(pair_sums, axis=1)
    cumulative = np.concatenate((np.zeros((n_scalars, 1)), np.cumsum(monotone, axis=1)), axis=1)
    rows = np.arange(n_scalars)
    even = rho[rows, 2 * stop]
    extra = np.where((pair_sums[rows, stop] >= 0) | (even > 0), even, 0.0)
    tau = -1.0 + 2.0 * cumulative[rows, stop] + extra
    return np.where(np.isfinite(rho).all(axis=1), tau, np.nan)


def _ess(split: FloatArray) -> FloatArray:
    """Effective sample size of already-split chains ``(K, M, n)`` (Vehtari et al. sec. 3.2).

    With per-chain biased autocovariances ``gamma_{t,m}`` (FFT), ``W`` the mean
    within-chain variance and ``var+ = (n-1)/n W + var(chain means)`` (eq. 3), the
    multi-chain autocorrelation is (eq. 10, in Stan's form)
    ``rho_t = 1 - (W - mean_m gamma_{t,m}) / var+``.  Then ``S_eff = S / tau``
    (eq. 12) with ``tau`` from :func:`_geyer_tau`, capped below at
    ``1 / log10(S)`` so that ``S_eff <= S log10 S`` (Vehtari et al. sec. 3.2).
    Constant draws get ``S_eff = S`` (ArviZ's convention).
    """
    n_scalars, chains, n = split.shape
    size = chains * n
    out = np.full(n_scalars, float(size))
    varying = ~_is_constant(split)
    if not varying.any():
        return out
    draws = split[varying]
    mean_acov = _autocovariance(draws).mean(axis=1)
    within = mean_acov[:, 0] * n / (n - 1.0)
    var_plus = within * (n - 1.0) / n
    if chains > 1:
        var_plus = var_plus + draws.mean(axis=-1).var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (within[:, np.newaxis] - mean_acov) / var_plus[:, np.newaxis]
    rho[:, 0] = 1.0
    tau = np.maximum(_geyer_tau(rho), 1.0 / np.log10(size))
    out[varying] = size / tau
    return out


def _rhat_from_split(split: FloatArray) -> FloatArray:
    """``sqrt(var+ / W)`` for already-split chains (Vehtari et al. eqs. 1-4).

    ``B = n/(M-1) sum_m (mean_m - mean)^2``, ``W = 1/M sum_m s_m^2``,
    ``var+ = (n-1)/n W + B/n``.  ``W = 0`` gives ``inf`` (or ``nan`` if also
    ``B = 0``).
    """
    n = split.shape[-1]
    within = split.var(axis=-1, ddof=1).mean(axis=-1)
    between = n * split.mean(axis=-1).var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(((n - 1) / n * within + between / n) / within)


def _rank_rhat_from_split(split: FloatArray, z_split: FloatArray) -> FloatArray:
    """max(rank-normalized split-R-hat, rank-normalized folded split-R-hat).

    ``split`` are the split chains and ``z_split`` their rank-normalized values.
    """
    tail = _rhat_from_split(_rank_normalize(_fold(split)))
    return np.fmax(_rhat_from_split(z_split), tail)


def _rank_rhat(batch: FloatArray) -> FloatArray:
    split = _split_chains(batch)
    return _rank_rhat_from_split(split, _rank_normalize(split))


def _ess_bulk(batch: FloatArray) -> FloatArray:
    return _ess(_rank_normalize(_split_chains(batch)))


def _ess_tail(batch: FloatArray) -> FloatArray:
    low, high = (
        _ess(_split_chains(_indicator_below(batch, _quantile_type7(batch, p))))
        for p in (0.05, 0.95)
    )
    return np.fmin(low, high)


def _indicator_below(batch: FloatArray, threshold: FloatArray) -> FloatArray:
    """``I(theta <= threshold)`` as floats, one threshold per scalar (eq. 16)."""
    return (batch <= threshold[:, np.newaxis, np.newaxis]).astype(float)


def _ess_mean(batch: FloatArray) -> FloatArray:
    return _ess(_split_chains(batch))


def _mcse_mean(batch: FloatArray, ess: FloatArray) -> FloatArray:
    """``sd / sqrt(ess)`` with ``ess`` the :func:`ess_mean` of ``batch``."""
    flat = batch.reshape(len(batch), -1)
    return flat.std(axis=-1, ddof=1) / np.sqrt(ess)


def _mcse_sd(batch: FloatArray) -> FloatArray:
    flat = batch.reshape(len(batch), -1)
    squared = (batch - flat.mean(axis=-1)[:, np.newaxis, np.newaxis]) ** 2
    sq_flat = squared.reshape(len(batch), -1)
    var = sq_flat.mean(axis=-1)
    var_of_var = ((sq_flat**2).mean(axis=-1) - var**2) / _ess_mean(squared)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(var_of_var / var / 4.0)


# ---------------------------------------------------------------------------
# Public scalar diagnostics
# ---------------------------------------------------------------------------


def _hdi_rows(flat, hdi_prob):
    """Shortest-interval HDI of each row of ``flat (K, S)``: returns ``(K, 2)``.

    With the ``S`` draws sorted, ``j = floor(hdi_prob * S)`` (at most ``S - 1``)
    and the interval ``[x_(i), x_(i+j)]`` of smallest width over ``i`` (first one
    on ties), as ``az.hdi`` for unimodal distributions.  Rows with non-finite
    draws give ``nan``.
    """
    n_rows, size = flat.shape
    out = np.full((n_rows, 2), np.nan)
    finite = np.isfinite(flat).all(axis=1)
    if size == 0 or not finite.any():
        return out
    srt = np.sort(flat[finite], axis=1)
    span = min(math.floor(hdi_prob * size), size - 1)
    widths = srt[:, span:] - srt[:, : size - span]
    start = widths.argmin(axis=1)
    rows = np.arange(len(srt))
    out[finite, 0] = srt[rows, start]
    out[finite, 1] = srt[rows, start + span]
    return out


def oracle(batch, hdi_prob=0.94):
    """Every statistic of ``nutslite._diagnostic_kernels.COLUMNS`` the old way."""
    flat = batch.reshape(len(batch), -1)
    split = _split_chains(batch)
    z_split = _rank_normalize(split)
    hdi = _hdi_rows(flat, hdi_prob)
    with np.errstate(divide="ignore", invalid="ignore"):
        two_chains = batch.shape[1] >= 2
        nan = np.full(len(batch), np.nan)
        return {
            "mean": flat.mean(axis=1),
            "sd": flat.std(axis=1, ddof=1),
            "hdi_low": hdi[:, 0],
            "hdi_high": hdi[:, 1],
            "mcse_mean": _mcse_mean(batch, _ess(split)),
            "mcse_sd": _mcse_sd(batch),
            "ess_bulk": _ess(z_split),
            "ess_tail": _ess_tail(batch),
            "r_hat": _rank_rhat_from_split(split, z_split) if two_chains else nan,
            "split_rhat": _rhat_from_split(split) if two_chains else nan,
            "ess_mean": _ess(split),
        }
