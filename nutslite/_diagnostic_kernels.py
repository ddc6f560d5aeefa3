"""Compiled kernels behind :mod:`nutslite.diagnostics` and :func:`nutslite.summary`.

One call of :func:`scalar_statistics` computes, for every scalar of a batch ``(K, chains, draws)``
of finite draws, the columns of :data:`COLUMNS`: mean, sd, HDI, MCSE of the mean and of the sd,
bulk, tail and mean ESS, rank-normalized and classic split R-hat. The work per scalar is

* **one sort** (an argsort of the pooled draws). Every rank-based statistic reads it: the average
  ranks of the split draws (Vehtari et al. 2021, eq. 14), their median and the ranks of the folded
  draws ``|theta - median|`` (eq. 15; merged from the two sides of the median, which are already
  in order, so the fold needs no second sort), the type-7 quantiles behind the tail ESS (eq. 16)
  and the shortest-interval HDI;
* autocovariances computed lag by lag, only up to the lag where Geyer's (1992) initial positive
  sequence stops (Vehtari et al. eq. 13), which costs ``O(draws)`` per lag; when a scalar mixes so
  slowly that this would pass the cost of a transform, a radix-2 FFT of the zero-padded chains
  (``O(draws log draws)``) gives all lags at once.

Scalars are independent: :func:`scalar_statistics` runs the jitted, GIL-free kernel on slices of
the batch in a thread pool, one slice per core. Sums are NumPy's pairwise summation
(:func:`_pairwise_sum`), so means and variances are bit-identical to NumPy's; the autocovariances
differ from an FFT's by rounding only, so every statistic equals the NumPy/SciPy formulation of
:mod:`nutslite.diagnostics` (and ArviZ 0.23) to about 1e-14 relative. The inverse normal CDF of
the rank normalization is taken from a table of ``scipy.special.ndtri`` at every possible average
rank (``(2S - 1)`` half-integers for ``S`` pooled draws), built once per size outside the kernel.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from nutslite._numba import jit

__all__ = ["COLUMNS", "scalar_statistics", "normal_scores"]

COLUMNS = (
    "mean",
    "sd",
    "hdi_low",
    "hdi_high",
    "mcse_mean",
    "mcse_sd",
    "ess_bulk",
    "ess_tail",
    "r_hat",
    "split_rhat",
    "ess_mean",
)
"""The statistics of :func:`scalar_statistics`, in the order of its output's columns."""

(
    _MEAN,
    _SD,
    _HDI_LOW,
    _HDI_HIGH,
    _MCSE_MEAN,
    _MCSE_SD,
    _ESS_BULK,
    _ESS_TAIL,
    _R_HAT,
    _SPLIT_RHAT,
    _ESS_MEAN,
) = range(len(COLUMNS))

_CONSTANT_TOL = np.finfo(float).resolution
"""Draws whose range is below this (1e-15) count as constant (as in ArviZ)."""

_TAIL_PROBS = (0.05, 0.95)
_MIN_PARALLEL_DRAWS = 50_000
"""Draws in a batch below which one thread does all the work (a pool costs more than it saves)."""


# ---------------------------------------------------------------------------
# Sums and moments, bit-identical to NumPy's
# ---------------------------------------------------------------------------


@jit
def _block_sum(a, start, n):
    """A leaf of :func:`_pairwise_sum`: at most 128 terms, as NumPy sums them."""
    if n < 8:
        total = 0.0
        for i in range(start, start + n):
            total += a[i]
        return total
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    while i < n - n % 8:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += a[start + i]
        i += 1
    return total


@jit
def _pairwise_sum(a, start, n):
    """``sum(a[start:start + n])`` in NumPy's pairwise order (``numpy/_core/src/umath``).

    Below 8 terms a plain loop; up to 128 terms eight interleaved partial sums combined as
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))`` plus the remainder; above that the two
    halves (the first a multiple of 8 long) are summed separately and added. The rounding error
    grows like ``log n`` rather than ``n``. The recursion runs on explicit stacks (Numba's cache
    does not handle recursive functions).
    """
    if n <= 128:
        return _block_sum(a, start, n)
    # post-order walk of the halving tree: a pending node is (start, n, visited)
    starts = np.empty(128, dtype=np.int64)
    sizes = np.empty(128, dtype=np.int64)
    visited = np.zeros(128, dtype=np.bool_)
    values = np.empty(64)
    top, n_values = 1, 0
    starts[0], sizes[0], visited[0] = start, n, False
    while top:
        top -= 1
        node_start, node_n, node_visited = starts[top], sizes[top], visited[top]
        if node_n <= 128:
            values[n_values] = _block_sum(a, node_start, node_n)
            n_values += 1
        elif node_visited:
            n_values -= 1
            values[n_values - 1] = values[n_values - 1] + values[n_values]
        else:
            half = node_n // 2
            half -= half % 8
            starts[top], sizes[top], visited[top] = node_start, node_n, True
            starts[top + 1], sizes[top + 1], visited[top + 1] = (
                node_start + half,
                node_n - half,
                False,
            )
            starts[top + 2], sizes[top + 2], visited[top + 2] = node_start, half, False
            top += 3
    return values[0]


@jit
def _mean(a, start, n):
    """NumPy's ``a[start:start + n].mean()``."""
    return _pairwise_sum(a, start, n) / n


@jit
def _variance(a, start, n, ddof, work):
    """NumPy's ``a[start:start + n].var(ddof=ddof)``; ``work`` holds at least ``n`` floats."""
    mean = _mean(a, start, n)
    for i in range(n):
        deviation = a[start + i] - mean
        work[i] = deviation * deviation
    return _pairwise_sum(work, 0, n) / (n - ddof)


# ---------------------------------------------------------------------------
# R-hat and ESS of split chains stored as rows of a (M, n) array, flattened
# ---------------------------------------------------------------------------


@jit
def _split_rhat(series, chains, n, work):
    """``sqrt(var+ / W)`` of ``chains`` split chains of ``n`` draws (Vehtari et al. eqs. 1-4).

    ``B = n/(M-1) sum_m (mean_m - mean)^2``, ``W = 1/M sum_m s_m^2`` and
    ``var+ = (n-1)/n W + B/n``; ``W = 0`` gives ``inf`` (``nan`` if also ``B = 0``).
    """
    variances = work[n : n + chains]
    means = work[n + chains : n + 2 * chains]
    for m in range(chains):
        variances[m] = _variance(series, m * n, n, 1, work)
        means[m] = _mean(series, m * n, n)
    within = _mean(variances, 0, chains)
    between = n * _variance(means, 0, chains, 1, work)
    return math.sqrt(((n - 1) / n * within + between / n) / within)


@jit
def _geyer_tau(rho, available, n):
    """Geyer's initial monotone sequence estimate of ``tau`` from ``rho[:available]``.

    Exactly the rule of Stan and ArviZ (Vehtari et al. 2021, eq. 13): with pair sums
    ``P_k = rho_{2k} + rho_{2k+1}`` scanned while positive (up to ``k = (n - 3) // 2``) and
    ``K`` the index of the last pair computed,
    ``tau = -1 + 2 sum_{k<K} min(P_0, ..., P_k) + rho_{2K}^+`` where ``rho_{2K}^+`` is
    ``rho_{2K}`` if ``P_K >= 0`` or ``rho_{2K} > 0`` and 0 otherwise. Returns
    ``(True, tau)``, or ``(False, nan)`` if the scan needs lags beyond ``available``.
    """
    last_pair = max(0, (n - 3) // 2)
    cumulative = 0.0
    running_min = np.inf
    for k in range(last_pair + 1):
        if 2 * k + 1 >= available:
            return False, np.nan
        pair = rho[2 * k] + rho[2 * k + 1]
        if not math.isfinite(pair):
            return True, np.nan
        if pair <= 0 or k == last_pair:
            even = rho[2 * k]
            extra = even if (pair >= 0 or even > 0) else 0.0
            return True, -1.0 + 2.0 * cumulative + extra
        running_min = min(running_min, pair)
        cumulative += running_min
    return True, np.nan  # not reached: the loop returns at k == last_pair


@jit
def _lagged_products(centred, chains, n, lag):
    """``sum_m sum_i c_{m,i} c_{m,i+lag}`` with four interleaved partial sums per chain."""
    total = 0.0
    count = n - lag
    for m in range(chains):
        base = m * n
        s0 = s1 = s2 = s3 = 0.0
        i = 0
        while i + 4 <= count:
            j = base + i
            s0 += centred[j] * centred[j + lag]
            s1 += centred[j + 1] * centred[j + 1 + lag]
            s2 += centred[j + 2] * centred[j + 2 + lag]
            s3 += centred[j + 3] * centred[j + 3 + lag]
            i += 4
        while i < count:
            s0 += centred[base + i] * centred[base + i + lag]
            i += 1
        total += (s0 + s1) + (s2 + s3)
    return total


@jit
def _fft(re, im, cos_table, sin_table):
    """In-place iterative radix-2 decimation-in-time FFT, ``X_k = sum_j x_j e^{-2 pi i jk/L}``.

    ``L = len(re)`` is a power of two; ``cos_table[j] = cos(2 pi j / L)`` and
    ``sin_table[j] = sin(2 pi j / L)`` for ``j < L/2`` (Cooley & Tukey 1965).
    """
    size = re.shape[0]
    j = 0
    for i in range(1, size):  # bit-reversal permutation
        bit = size >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            re[i], re[j] = re[j], re[i]
            im[i], im[j] = im[j], im[i]
    length = 2
    while length <= size:
        half = length // 2
        stride = size // length
        for start in range(0, size, length):
            for k in range(half):
                wr = cos_table[k * stride]
                wi = -sin_table[k * stride]
                a = start + k
                b = a + half
                tr = wr * re[b] - wi * im[b]
                ti = wr * im[b] + wi * re[b]
                re[b] = re[a] - tr
                im[b] = im[a] - ti
                re[a] += tr
                im[a] += ti
        length *= 2


@jit
def _fft_autocovariance_sums(centred, chains, n, acov):
    """``acov[t] = sum_m sum_i c_{m,i} c_{m,i+t}`` for every lag ``t < n``, by FFT.

    Each chain is zero-padded to a power of two ``L >= 2n`` so the circular correlation is the
    linear one (Wiener-Khinchin). Two real chains share one complex transform: with
    ``z = a + i b`` and ``Z = FFT(z)``, ``|A_k|^2 + |B_k|^2 = (|Z_k|^2 + |Z_{L-k}|^2) / 2``, and
    the pooled power spectrum, real and even, is transformed back with the same forward FFT.
    """
    size = 1
    while size < 2 * n:
        size *= 2
    angles = 2.0 * np.pi * np.arange(size // 2) / size
    cos_table = np.cos(angles)
    sin_table = np.sin(angles)
    re = np.empty(size)
    im = np.empty(size)
    power = np.zeros(size)
    for first in range(0, chains, 2):
        re[:] = 0.0
        im[:] = 0.0
        re[:n] = centred[first * n : (first + 1) * n]
        if first + 1 < chains:
            im[:n] = centred[(first + 1) * n : (first + 2) * n]
        _fft(re, im, cos_table, sin_table)
        for k in range(size):
            mirror = (size - k) % size
            power[k] += 0.5 * (
                re[k] * re[k] + im[k] * im[k] + re[mirror] * re[mirror] + im[mirror] * im[mirror]
            )
    re[:] = power
    im[:] = 0.0
    _fft(re, im, cos_table, sin_table)
    for t in range(n):
        acov[t] = re[t] / size


@jit
def _ess(series, chains, n, centred, rho, acov, work):
    """Effective sample size of ``chains`` split chains of ``n`` draws (Vehtari et al. sec. 3.2).

    With ``gamma_t`` the biased autocovariance averaged over chains, ``W = gamma_0 n/(n-1)`` and
    ``var+ = (n-1)/n W + var(chain means)`` (eq. 3), ``rho_t = 1 - (W - gamma_t) / var+`` (eq. 10
    in Stan's form) and ``S_eff = S / max(tau, 1 / log10 S)`` with ``tau`` from
    :func:`_geyer_tau` (eqs. 12-13). Lags are computed one pair at a time until the scan stops,
    or all at once by FFT once the direct cost would pass the transform's. Constant draws (range
    below 1e-15) give ``S_eff = S``, as ArviZ.
    """
    size = chains * n
    low = high = series[0]
    for i in range(size):
        low = min(low, series[i])
        high = max(high, series[i])
    if high - low < _CONSTANT_TOL:
        return float(size)
    means = work[chains : 2 * chains]  # work[:chains] is _variance's scratch
    for m in range(chains):
        mean = _mean(series, m * n, n)
        means[m] = mean
        for i in range(m * n, (m + 1) * n):
            centred[i] = series[i] - mean
    scale = 1.0 / (n * chains)
    gamma0 = _lagged_products(centred, chains, n, 0) * scale
    within = gamma0 * n / (n - 1.0)
    var_plus = within * (n - 1.0) / n + _variance(means, 0, chains, 1, work)
    if not (math.isfinite(var_plus) and var_plus > 0):
        return np.nan
    rho[0] = 1.0
    # lags computed directly before an FFT is cheaper: the transforms' butterflies (about three
    # products each) against the M n products of one lag
    padded = 1
    while padded < 2 * n:
        padded *= 2
    max_direct = max(8, int(1.5 * (chains // 2 + 1) * padded * math.log2(padded) / size))
    available = 1
    done, tau = _geyer_tau(rho, available, n)
    while not done:
        if available >= max_direct:
            _fft_autocovariance_sums(centred, chains, n, acov)
            for t in range(1, n):
                rho[t] = 1.0 - (within - acov[t] * scale) / var_plus
            available = n
        else:
            for t in range(available, min(available + 2, n)):
                rho[t] = 1.0 - (within - _lagged_products(centred, chains, n, t) * scale) / var_plus
            available = min(available + 2, n)
        done, tau = _geyer_tau(rho, available, n)
    tau = max(tau, 1.0 / math.log10(size)) if math.isfinite(tau) else np.nan
    return size / tau


# ---------------------------------------------------------------------------
# The per-scalar kernel
# ---------------------------------------------------------------------------


@jit
def _average_ranks_to_scores(values, positions, count, scores, out):
    """Give ``out[positions[i]]`` the normal score of the average rank of ``values[i]``.

    ``values[:count]`` is sorted; tied values share the mean of their ranks (rankdata's
    ``"average"``), ``(first + last) / 2`` in 1-based ranks, looked up as ``scores[2r - 2]``.
    """
    first = 0
    while first < count:
        last = first
        while last + 1 < count and values[last + 1] == values[first]:
            last += 1
        score = scores[first + last]  # 2 * ((first + 1 + last + 1) / 2) - 2
        for i in range(first, last + 1):
            out[positions[i]] = score
        first = last + 1


@jit
def _quantile_type7(srt, size, prob):
    """Hyndman & Fan type-7 quantile of sorted ``srt[:size]`` in ``mquantiles``' float order."""
    h = size * prob + (1.0 - prob)
    k = int(math.floor(min(max(h, 1.0), size - 1.0)))
    g = min(max(h - k, 0.0), 1.0)
    return (1.0 - g) * srt[k - 1] + g * srt[k]


@jit
def _one_scalar(x, scores, hdi_prob, rank_stats, out, buffers, index):
    """Every column of :data:`COLUMNS` for the finite draws ``x (chains, draws)``.

    ``rank_stats`` says whether the split-chain statistics are wanted (at least 4 draws).
    ``buffers`` is scratch space of shape ``(8, chains * draws)``, ``index`` two integer rows.
    """
    chains, draws = x.shape
    total = chains * draws
    flat = x.ravel()
    order = np.argsort(flat)
    srt = buffers[0]
    for i in range(total):
        srt[i] = flat[order[i]]
    out[_MEAN] = _mean(flat, 0, total)
    out[_SD] = math.sqrt(_variance(flat, 0, total, 1, buffers[1])) if total > 1 else np.nan
    span = min(int(math.floor(hdi_prob * total)), total - 1)
    best = 0
    for i in range(1, total - span):
        if srt[i + span] - srt[i] < srt[best + span] - srt[best]:
            best = i
    out[_HDI_LOW] = srt[best]
    out[_HDI_HIGH] = srt[best + span]
    if not rank_stats:
        return

    # split chains: chain c's first half is split chain c, its second half split chain C + c
    n = draws // 2
    split_chains = 2 * chains
    size = split_chains * n
    split, z, folded, centred, rho, acov, work = (
        buffers[1],
        buffers[2],
        buffers[3],
        buffers[4],
        buffers[5],
        buffers[6],
        buffers[7],
    )
    kept_values = buffers[0]  # overwrites srt, no longer needed after the quantiles
    q_low = _quantile_type7(srt, total, _TAIL_PROBS[0])
    q_high = _quantile_type7(srt, total, _TAIL_PROBS[1])
    positions = index[0]
    count = 0
    for i in range(total):
        chain, draw = divmod(order[i], draws)
        if draw < n:
            position = chain * n + draw
        elif draw >= draws - n:
            position = (chains + chain) * n + draw - (draws - n)
        else:
            continue  # the middle draw of an odd-length chain
        kept_values[count] = flat[order[i]]
        positions[count] = position
        count += 1
    for c in range(chains):
        for i in range(n):
            split[c * n + i] = x[c, i]
            split[(chains + c) * n + i] = x[c, draws - n + i]

    # rank normalization (eq. 14) and, merged from both sides of the median, the folded ranks
    _average_ranks_to_scores(kept_values, positions, size, scores, z)
    if size % 2:
        median = kept_values[size // 2]
    else:
        median = (kept_values[size // 2 - 1] + kept_values[size // 2]) / 2.0
    right = 0
    while right < size and kept_values[right] < median:
        right += 1
    left = right - 1
    distances = acov  # scratch: the folded values in increasing order
    fold_positions = index[1]
    for i in range(size):
        if left >= 0 and (
            right >= size or abs(kept_values[left] - median) <= abs(kept_values[right] - median)
        ):
            distances[i] = abs(kept_values[left] - median)
            fold_positions[i] = positions[left]
            left -= 1
        else:
            distances[i] = abs(kept_values[right] - median)
            fold_positions[i] = positions[right]
            right += 1
    _average_ranks_to_scores(distances, fold_positions, size, scores, folded)

    if chains >= 2:
        rhat_fold = _split_rhat(folded, split_chains, n, work)
        rhat_bulk = _split_rhat(z, split_chains, n, work)
        out[_R_HAT] = (
            rhat_fold
            if math.isnan(rhat_bulk)
            else (rhat_bulk if math.isnan(rhat_fold) else max(rhat_bulk, rhat_fold))
        )
        out[_SPLIT_RHAT] = _split_rhat(split, split_chains, n, work)
    out[_ESS_BULK] = _ess(z, split_chains, n, centred, rho, acov, work)
    ess_mean = _ess(split, split_chains, n, centred, rho, acov, work)
    out[_ESS_MEAN] = ess_mean
    out[_MCSE_MEAN] = out[_SD] / math.sqrt(ess_mean)

    # tail ESS: indicators of the pooled 5% and 95% quantiles (eq. 16)
    for c in range(chains):
        for i in range(n):
            folded[c * n + i] = 1.0 if x[c, i] <= q_low else 0.0
            folded[(chains + c) * n + i] = 1.0 if x[c, draws - n + i] <= q_low else 0.0
    ess_low = _ess(folded, split_chains, n, centred, rho, acov, work)
    for c in range(chains):
        for i in range(n):
            folded[c * n + i] = 1.0 if x[c, i] <= q_high else 0.0
            folded[(chains + c) * n + i] = 1.0 if x[c, draws - n + i] <= q_high else 0.0
    ess_high = _ess(folded, split_chains, n, centred, rho, acov, work)
    out[_ESS_TAIL] = (
        ess_low
        if math.isnan(ess_high)
        else (ess_high if math.isnan(ess_low) else min(ess_low, ess_high))
    )

    # MCSE of the sd: delta method on the variance of d = (theta - mean)^2
    mean = out[_MEAN]
    squared = buffers[2]  # z is no longer needed
    for i in range(total):
        deviation = flat[i] - mean
        squared[i] = deviation * deviation
    variance = _mean(squared, 0, total)
    for i in range(total):
        work[i] = squared[i] * squared[i]
    fourth = _mean(work, 0, total)
    for c in range(chains):
        for i in range(n):
            split[c * n + i] = squared[c * draws + i]
            split[(chains + c) * n + i] = squared[c * draws + draws - n + i]
    ess_squared = _ess(split, split_chains, n, centred, rho, acov, work)
    var_of_var = (fourth - variance * variance) / ess_squared
    out[_MCSE_SD] = math.sqrt(var_of_var / variance / 4.0)


@jit
def _statistics_kernel(batch, usable, scores, hdi_prob, min_draws, first, last, out):
    """Fill ``out[k]`` for the scalars ``first <= k < last`` with ``usable[k]`` true."""
    _, chains, draws = batch.shape
    total = chains * draws
    buffers = np.empty((8, total + 4 * chains + 8))  # room for per-chain scratch beyond draws
    index = np.empty((2, max(total, 1)), dtype=np.int64)
    for k in range(first, last):
        if usable[k]:
            _one_scalar(batch[k], scores, hdi_prob, draws >= min_draws, out[k], buffers, index)


# ---------------------------------------------------------------------------
# Python driver
# ---------------------------------------------------------------------------


@lru_cache(maxsize=8)
def normal_scores(size: int) -> NDArray[np.float64]:
    """``Phi^{-1}((r - 3/8) / (S + 1/4))`` for every average rank ``r = 1, 1.5, ..., S``.

    The Blom (1958) normal scores of rank normalization (Vehtari et al. 2021, eq. 14), indexed
    by ``2r - 2``; computed with ``scipy.special.ndtri`` in the same float operations as
    ``ndtri((rankdata(x) - 3/8) / (S + 1/4))``, hence bit-identical to them.
    """
    from scipy.special import ndtri

    ranks = np.arange(2, 2 * size + 1) / 2.0
    scores = ndtri((ranks - 3 / 8) / (size + 1 / 4))
    scores.flags.writeable = False
    return scores


def scalar_statistics(
    batch: NDArray[np.float64],
    usable: NDArray[np.bool_],
    hdi_prob: float,
    min_draws: int,
    threads: int | None = None,
) -> NDArray[np.float64]:
    """Every statistic of :data:`COLUMNS` for each scalar of ``batch (K, chains, draws)``.

    Only scalars with ``usable[k]`` (finite draws) are computed; the others, and the split-chain
    statistics when ``draws < min_draws``, are ``nan``; R-hat needs two chains. Returns
    ``(K, len(COLUMNS))``. ``threads`` (default: the cores this process may use) slices the
    scalars among threads; the results do not depend on it.
    """
    batch = np.ascontiguousarray(batch, dtype=np.float64)
    n_scalars, chains, draws = batch.shape
    out = np.full((n_scalars, len(COLUMNS)), np.nan)
    if n_scalars == 0 or chains * draws == 0:
        return out
    split_size = 2 * chains * (draws // 2)
    scores = normal_scores(max(split_size, 1))
    usable = np.ascontiguousarray(usable, dtype=np.bool_)
    if threads is None:
        threads = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
        if batch.size < _MIN_PARALLEL_DRAWS:
            threads = 1
    threads = max(1, min(threads or 1, n_scalars))
    bounds = np.linspace(0, n_scalars, threads + 1).astype(np.int64)
    if threads == 1:
        _statistics_kernel(batch, usable, scores, hdi_prob, min_draws, 0, n_scalars, out)
        return out
    with ThreadPoolExecutor(max_workers=threads) as pool:
        jobs = [
            pool.submit(_statistics_kernel, batch, usable, scores, hdi_prob, min_draws, lo, hi, out)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for job in jobs:
            job.result()
    return out
