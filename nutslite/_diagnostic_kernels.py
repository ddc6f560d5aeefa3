"""Compiled kernels behind :mod:`nutslite.diagnostics` and :func:`nutslite.summary`.

One call of :func:`scalar_statistics` computes, for every scalar of a batch ``(K, chains, draws)``
of finite draws, the columns of :data:`COLUMNS`: mean, sd, HDI, MCSE of the mean and of the sd,
bulk, tail and mean ESS, rank-normalized and classic split R-hat. The work per scalar is

* **one sort** of the pooled draws, arranged as split chains so that the sort order is each
  draw's split-chain position (:func:`_bucket_argsort`, a bucket sort on the values backed by a
  radix sort for clumped buckets, ``O(S)``). Every
  rank-based statistic reads it: the average ranks of the split draws (Vehtari et al. 2021,
  eq. 14), their median and the ranks of the folded draws ``|theta - median|`` (eq. 15; merged
  from the two sides of the median, which are already in order, so the fold needs no second
  sort), the type-7 quantiles behind the tail ESS (eq. 16) and the shortest-interval HDI;
* autocovariances computed eight lags per pass over the draws, only up to the lag where Geyer's
  (1992) initial positive sequence stops (Vehtari et al. eq. 13), ``O(S)`` per pass; when a
  scalar mixes slowly (the scan passes ``DIRECT_LAGS``, or the autocorrelation is still above
  1/2), FFTs of segments of 1024 draws (``O(S log 1024)``, in the cache) give the lags up to
  1024, and four times as many each time the scan needs more. Either way the cost grows
  linearly (up to the logarithm of the lags needed) with the number of draws. The eight lags
  of a pass are the lanes of ``<4 x double>`` registers, the even and the odd draws' products
  summed apart (:func:`lag_products`); the transforms run two radix-2 stages per pass on such
  vectors (:func:`butterflies`) and are multiplied pointwise in their bit-reversed order
  (:func:`spectrum_products`).

Scalars are independent: :func:`scalar_statistics` runs the jitted, GIL-free kernel in one
thread per core, each taking the next scalar from a shared atomic counter (:func:`claim`). Sums
are NumPy's pairwise summation (:func:`_pairwise_sum`), so means and variances are
bit-identical to NumPy's; the autocovariances differ from a whole-chain FFT's by rounding only,
so every statistic equals the
NumPy/SciPy formulation (``rankdata``, ``scipy.fft``) that :mod:`nutslite.diagnostics` used
before, and ArviZ 0.23, to about 1e-14 relative. (Geyer's scan and the quantile indicators make
discrete choices; a pair sum within rounding of zero could tip one either way in either code. The
tests have not met one.)
The inverse normal CDF of the rank normalization is a table at every possible average rank
(``2S - 1`` half-integers for ``S`` pooled draws), built once per size by the kernel with Cephes'
``ndtri`` (Moshier 1989; :func:`_ndtri`), the algorithm of ``scipy.special.ndtri`` in the same
float operations, so the normal scores are bit-identical to SciPy's without importing it.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from nutslite._numba import JIT_DISABLED, gc_frozen, jit, needs_compiling

__all__ = [
    "COLUMNS",
    "SourceStatistics",
    "normal_scores",
    "scalar_statistics",
    "source_statistics",
]

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
def _block_sum(a):
    """A leaf of :func:`_pairwise_sum`: at most 128 terms, as NumPy sums them."""
    n = a.shape[0]
    if n < 8:
        total = 0.0
        for i in range(n):
            total += a[i]
        return total
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    i = 8
    while i < n - n % 8:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += a[i]
        i += 1
    return total


PAIRWISE_SCRATCH = 448
"""Length of the float scratch ``pw`` that :func:`_pairwise_sum` keeps its stack in."""


@jit
def _pairwise_sum(a, pw):
    """``a.sum()`` in NumPy's pairwise order (``numpy/_core/src/umath/loops_utils.h.src``).

    Below 8 terms a plain loop; up to 128 terms eight interleaved partial sums combined as
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))`` plus the remainder; above that the two
    halves (the first a multiple of 8 long) are summed separately and added. The rounding error
    grows like ``log n`` rather than ``n``. The recursion runs on an explicit stack in the
    scratch ``pw`` (``PAIRWISE_SCRATCH`` floats; Numba's cache cannot hold recursive functions):
    pending nodes ``(start, n, visited)`` in ``pw[:384]``, finished sums in ``pw[384:]``.
    """
    if a.shape[0] <= 128:
        return _block_sum(a)
    top, done = 1, 384
    pw[0], pw[1], pw[2] = 0.0, a.shape[0], 0.0
    while top:
        top -= 1
        start, n = int(pw[3 * top]), int(pw[3 * top + 1])
        if n <= 128:
            pw[done] = _block_sum(a[start : start + n])
            done += 1
        elif pw[3 * top + 2]:
            done -= 1
            pw[done - 1] = pw[done - 1] + pw[done]
        else:
            half = n // 2
            half -= half % 8
            pw[3 * top + 2] = 1.0
            pw[3 * top + 3], pw[3 * top + 4], pw[3 * top + 5] = start + half, n - half, 0.0
            pw[3 * top + 6], pw[3 * top + 7], pw[3 * top + 8] = start, half, 0.0
            top += 3
    return pw[384]


@jit
def _mean(a, pw):
    """NumPy's ``a.mean()``."""
    return _pairwise_sum(a, pw) / a.shape[0]


@jit
def _mean_and_variance(a, work, pw):
    """``(a.mean(), a.var(ddof=1))`` as NumPy computes them; ``work`` holds ``len(a)`` floats."""
    n = a.shape[0]
    mean = _mean(a, pw)
    for i in range(n):
        deviation = a[i] - mean
        work[i] = deviation * deviation
    return mean, _pairwise_sum(work[:n], pw) / (n - 1)


# ---------------------------------------------------------------------------
# R-hat and ESS of split chains stored as rows of a (M, n) array, flattened
# ---------------------------------------------------------------------------


@jit
def _split_rhat(series, chains, n, work, pw):
    """``sqrt(var+ / W)`` of ``chains`` split chains of ``n`` draws (Vehtari et al. eqs. 1-4).

    ``B = n/(M-1) sum_m (mean_m - mean)^2``, ``W = 1/M sum_m s_m^2`` and
    ``var+ = (n-1)/n W + B/n``; ``W = 0`` gives ``inf`` (``nan`` if also ``B = 0``).
    """
    variances = work[n : n + chains]
    means = work[n + chains : n + 2 * chains]
    for m in range(chains):
        means[m], variances[m] = _mean_and_variance(series[m * n : (m + 1) * n], work, pw)
    within = _mean(variances, pw)
    between = n * _mean_and_variance(means, work, pw)[1]
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


LAG_BLOCK = 8
"""Autocovariance lags computed together in one pass over the draws."""


def lag_products(head, tail, count):
    """``s_j = sum_{i<count} head[i] tail[i + j]`` for ``j < 8``: the terms of even ``i`` and
    those of odd ``i`` each summed left to right, then the two partial sums added.

    The sixteen partial sums are independent, so they are the lanes of four vector registers
    and two draws' additions proceed at once (one chain of additions waits on each one before
    it). This Python body is the definition and runs under ``NUMBA_DISABLE_JIT=1``; compiled
    callers run a kernel emitted with llvmlite that performs the same multiplications and
    additions, in the same order per lane, on ``<4 x double>`` vectors (Numba 0.65 compiles
    the scalar body to scalar instructions: see :mod:`nutslite.engine.linalg`). Both give
    bit-identical sums.
    """
    even = [0.0] * LAG_BLOCK
    odd = [0.0] * LAG_BLOCK
    for i in range(count):
        sums = odd if i % 2 else even
        ci = head[i]
        for j in range(LAG_BLOCK):
            sums[j] += ci * tail[i + j]
    return tuple([even[j] + odd[j] for j in range(LAG_BLOCK)])


if not JIT_DISABLED:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic, overload

    from nutslite.engine.linalg import vector_load, vector_type

    @intrinsic
    def _lag_products_kernel(typingctx, head, tail, count):
        """:func:`lag_products` with lanes ``0-3`` and ``4-7`` in two ``<4 x double>`` sums
        for the even draws and two for the odd ones: per draw, ``head[i]`` broadcast times
        ``tail[i : i + 4]`` and ``tail[i + 4 : i + 8]``, two draws per iteration."""
        signature = types.UniTuple(types.float64, LAG_BLOCK)(head, tail, count)

        def codegen(context, builder, sig, args):
            h = context.make_array(sig.args[0])(context, builder, args[0]).data
            t = context.make_array(sig.args[1])(context, builder, args[1]).data
            zero = ir.Constant(vector_type(4), [0.0] * 4)
            sums = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
            n = args[2]
            one, two, four = (ir.Constant(n.type, k) for k in (1, 2, 4))

            def add_draw(i, low, high):
                ci = builder.load(builder.gep(h, [i]))
                splat = builder.insert_element(
                    ir.Constant(vector_type(4), ir.Undefined), ci, ir.Constant(ir.IntType(32), 0)
                )
                splat = builder.shuffle_vector(
                    splat, splat, ir.Constant(ir.VectorType(ir.IntType(32), 4), [0] * 4)
                )
                for acc, offset in ((low, i), (high, builder.add(i, four))):
                    term = builder.fmul(splat, vector_load(builder, t, offset, 4))
                    builder.store(builder.fadd(builder.load(acc), term), acc)

            pairs = builder.sub(n, builder.srem(n, two))
            with cgutils.for_range_slice(builder, ir.Constant(n.type, 0), pairs, two) as (i, _):
                add_draw(i, sums[0], sums[1])
                add_draw(builder.add(i, one), sums[2], sums[3])
            with builder.if_then(builder.icmp_signed("<", pairs, n)):
                add_draw(pairs, sums[0], sums[1])
            lanes = []
            for even, odd in ((sums[0], sums[2]), (sums[1], sums[3])):
                vec = builder.fadd(builder.load(even), builder.load(odd))
                lanes += [
                    builder.extract_element(vec, ir.Constant(ir.IntType(32), k)) for k in range(4)
                ]
            return context.make_tuple(builder, sig.return_type, lanes)

        return signature, codegen

    @overload(lag_products, jit_options={"error_model": "numpy"})
    def _lag_products_compiled(head, tail, count):
        return lambda head, tail, count: _lag_products_kernel(head, tail, count)


@jit
def _lag_block(centred, chains, n, first, sums):
    """``sums[j] = sum_m sum_i c_{m,i} c_{m,i+first+j}`` for the lags ``first + j``, ``j < 8``.

    Lags at or beyond ``n`` give 0. One pass over the draws serves eight lags: each draw is
    multiplied by the eight that follow it at those lags (eight independent sums, the lanes of
    :func:`lag_products`). Each sum runs over blocks of 256 draws that are then added, so its
    rounding error stays far below ``n`` ulps.
    """
    for j in range(LAG_BLOCK):
        sums[j] = 0.0
    full = max(0, n - first - (LAG_BLOCK - 1))  # draws for which all eight lags exist
    for m in range(chains):
        base = m * n
        t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0
        for block in range(0, full, 256):
            stop = min(block + 256, full)
            head = centred[base + block : base + stop]
            tail = centred[base + block + first : base + stop + first + LAG_BLOCK - 1]
            s0, s1, s2, s3, s4, s5, s6, s7 = lag_products(head, tail, stop - block)
            t0 += s0
            t1 += s1
            t2 += s2
            t3 += s3
            t4 += s4
            t5 += s5
            t6 += s6
            t7 += s7
        sums[0] += t0
        sums[1] += t1
        sums[2] += t2
        sums[3] += t3
        sums[4] += t4
        sums[5] += t5
        sums[6] += t6
        sums[7] += t7
        for i in range(full, max(0, n - first)):  # the last draws, where some lags run out
            ci = centred[base + i]
            for lag in range(first, min(first + LAG_BLOCK, n - i)):
                sums[lag - first] += ci * centred[base + i + lag]


def butterflies(re, im, twiddles, half, stages, padded):
    """``stages`` (1 or 2) stages of :func:`_fft`, the first splitting blocks of ``2 half``
    entries: for each block and ``k < half``, with ``a = re[k] + i im[k]`` and ``b`` the entry
    ``half`` further on, ``(a, b) -> (a + b, (a - b) w_k)`` with ``w_k = e^{-i pi k / half}``
    (row 0 of ``twiddles[:, half : 2 half]`` the real, row 1 the imaginary parts); the second
    stage does the same with ``half / 2``. ``half / 2^(stages - 1)`` is a multiple of 4.
    ``padded``: the second half of the (single) block is zero and is not read (``b = 0``).

    This Python body is the definition and runs under ``NUMBA_DISABLE_JIT=1``; compiled callers
    run a kernel emitted with llvmlite that performs the same operations per entry on
    ``<4 x double>`` vectors of four consecutive ``k``, two stages per pass over the entries
    (bit-identical results).
    """
    for stage in range(stages):
        h = half >> stage
        wr, wi = twiddles[0, h : 2 * h], twiddles[1, h : 2 * h]
        for start in range(0, re.shape[0], 2 * h):
            for k in range(h):
                a, b = start + k, start + h + k
                xr, xi = re[a], im[a]
                yr, yi = (0.0, 0.0) if padded and stage == 0 else (re[b], im[b])
                re[a], im[a] = xr + yr, xi + yi
                dr, di = xr - yr, xi - yi
                re[b] = wr[k] * dr - wi[k] * di
                im[b] = wr[k] * di + wi[k] * dr


@jit
def _spectrum_product(re, im, p, q, first, second, previous, total):
    """:func:`spectrum_products` at the one position ``p`` with mirror ``q``."""
    zr, zi, wr, wi = re[p], im[p], re[q], im[q]
    ar, ai = 0.5 * (zr + wr), 0.5 * (zi - wi)  # the first segment's spectrum
    br, bi = 0.5 * (zi + wi), 0.5 * (wr - zr)  # the second's
    pr, pi = previous[0, p], previous[1, p]
    total[0, p] += ((ar * ar + ai * ai) + (br * br + bi * bi)) + (
        first * (pr * ar + pi * ai) + second * (ar * br + ai * bi)
    )
    total[1, p] += first * (pr * ai - pi * ar) + second * (ar * bi - ai * br)
    previous[0, p], previous[1, p] = br, bi


def spectrum_products(re, im, start, count, mirror, first, second, previous, total):
    """The pointwise step of :func:`_blocked_autocovariance_sums` at the stored positions
    ``p = start + i`` of a transform in bit-reversed order, ``i < count``, whose mirrors (the
    positions of ``Z_{L-k}``) are ``mirror - i``.

    With ``Z = re + i im``, ``z = Z[p]`` and ``w = Z[mirror - i]``, the two segments' spectra
    are ``A = (z + conj w) / 2`` and ``B = (z - conj w) / 2i``; with ``P`` the previous pair's
    ``B`` (``previous[0:2, p]``), ``total[0:2, p] += |A|^2 + |B|^2 + first conj(A) P
    + second conj(A) B`` (``first``, ``second`` carry the sign ``(-1)^k`` and whether the
    segment continues the one before it) and ``previous[:, p] = B``. Compiled callers run a
    ``<4 x double>`` kernel with the same operations per position on the first
    ``count - count % 4`` positions (bit-identical results).
    """
    for i in range(count):
        _spectrum_product(re, im, start + i, mirror - i, first, second, previous, total)


if not JIT_DISABLED:

    def _vector_store(builder, base, i, value):
        """Store the ``<4 x double>`` ``value`` at ``base[i : i + 4]``."""
        ptr = builder.bitcast(builder.gep(base, [i]), vector_type(4).as_pointer())
        builder.store(value, ptr, align=8)

    def _row_pointer(builder, array, row):
        """Pointer to row ``row`` (a constant) of a C-contiguous 2-D array."""
        columns = cgutils.unpack_tuple(builder, array.shape, 2)[1]
        return builder.gep(array.data, [builder.mul(ir.Constant(columns.type, row), columns)])

    def _splat(builder, value):
        vec = builder.insert_element(
            ir.Constant(vector_type(4), ir.Undefined), value, ir.Constant(ir.IntType(32), 0)
        )
        return builder.shuffle_vector(
            vec, vec, ir.Constant(ir.VectorType(ir.IntType(32), 4), [0] * 4)
        )

    @intrinsic
    def _butterflies_kernel(typingctx, re, im, twiddles, half, stages, padded):
        """:func:`butterflies` on ``<4 x double>`` vectors of four consecutive ``k``; with two
        stages, the four entries ``k``, ``k + half / 2``, ``k + half`` and ``k + 3 half / 2``
        of a block go through both in registers (a radix-4 pass)."""
        signature = types.void(re, im, twiddles, half, stages, padded)

        def codegen(context, builder, sig, args):
            pre = context.make_array(sig.args[0])(context, builder, args[0]).data
            pim = context.make_array(sig.args[1])(context, builder, args[1]).data
            size = cgutils.unpack_tuple(
                builder, context.make_array(sig.args[0])(context, builder, args[0]).shape, 1
            )[0]
            table = context.make_array(sig.args[2])(context, builder, args[2])
            twr, twi = _row_pointer(builder, table, 0), _row_pointer(builder, table, 1)
            h = args[3]
            zero = ir.Constant(vector_type(4), [0.0] * 4)
            add, sub, mul = builder.fadd, builder.fsub, builder.fmul

            def butterfly(x, y, w):
                """``(x, y) -> (x + y, (x - y) w)`` on (real, imaginary) vector pairs."""
                dr, di = sub(x[0], y[0]), sub(x[1], y[1])
                return (add(x[0], y[0]), add(x[1], y[1])), (
                    sub(mul(w[0], dr), mul(w[1], di)),
                    add(mul(w[0], di), mul(w[1], dr)),
                )

            def load(i):
                return vector_load(builder, pre, i, 4), vector_load(builder, pim, i, 4)

            def store(i, value):
                _vector_store(builder, pre, i, value[0])
                _vector_store(builder, pim, i, value[1])

            def twiddle(i):
                return vector_load(builder, twr, i, 4), vector_load(builder, twi, i, 4)

            def passes(two, is_padded):
                quarter = builder.ashr(h, ir.Constant(h.type, 1)) if two else h
                with cgutils.for_range_slice(
                    builder, ir.Constant(h.type, 0), size, builder.add(h, h)
                ) as (start, _):
                    with cgutils.for_range_slice(
                        builder, ir.Constant(h.type, 0), quarter, ir.Constant(h.type, 4)
                    ) as (k, _):
                        p0 = builder.add(start, k)
                        p2 = builder.add(p0, h)
                        x0 = load(p0)
                        x2 = (zero, zero) if is_padded else load(p2)
                        x0, x2 = butterfly(x0, x2, twiddle(builder.add(h, k)))
                        if not two:
                            store(p0, x0)
                            store(p2, x2)
                            return
                        p1, p3 = builder.add(p0, quarter), builder.add(p2, quarter)
                        x1 = load(p1)
                        x3 = (zero, zero) if is_padded else load(p3)
                        x1, x3 = butterfly(x1, x3, twiddle(builder.add(builder.add(h, quarter), k)))
                        inner = twiddle(builder.add(quarter, k))
                        x0, x1 = butterfly(x0, x1, inner)
                        x2, x3 = butterfly(x2, x3, inner)
                        for position, value in ((p0, x0), (p1, x1), (p2, x2), (p3, x3)):
                            store(position, value)

            two = builder.icmp_signed("==", args[4], ir.Constant(args[4].type, 2))
            with builder.if_else(two) as (fused, single):
                for branch, is_two in ((fused, True), (single, False)):
                    with branch:
                        with builder.if_else(args[5]) as (then, otherwise):
                            with then:
                                passes(is_two, True)
                            with otherwise:
                                passes(is_two, False)
            return context.get_dummy_value()

        return signature, codegen

    @overload(butterflies, jit_options={"error_model": "numpy"})
    def _butterflies_compiled(re, im, twiddles, half, stages, padded):
        def vectorised(re, im, twiddles, half, stages, padded):
            _butterflies_kernel(re, im, twiddles, half, stages, padded)

        return vectorised

    @intrinsic
    def _spectrum_products_kernel(
        typingctx, re, im, start, count, mirror, first, second, previous, total
    ):
        """:func:`spectrum_products` on ``<4 x double>`` vectors of four consecutive positions
        (their mirrors loaded as one vector and reversed)."""
        signature = types.void(re, im, start, count, mirror, first, second, previous, total)

        def codegen(context, builder, sig, args):
            re_, im_, start_, count_, mirror_, first_, second_, previous_, total_ = args
            pre = context.make_array(sig.args[0])(context, builder, re_).data
            pim = context.make_array(sig.args[1])(context, builder, im_).data
            prev = context.make_array(sig.args[7])(context, builder, previous_)
            tot = context.make_array(sig.args[8])(context, builder, total_)
            prev_re, prev_im = _row_pointer(builder, prev, 0), _row_pointer(builder, prev, 1)
            tot_re, tot_im = _row_pointer(builder, tot, 0), _row_pointer(builder, tot, 1)
            f, s = _splat(builder, first_), _splat(builder, second_)
            half = ir.Constant(vector_type(4), [0.5] * 4)
            backwards = ir.Constant(ir.VectorType(ir.IntType(32), 4), [3, 2, 1, 0])
            add, sub, mul = builder.fadd, builder.fsub, builder.fmul
            with cgutils.for_range_slice(
                builder, ir.Constant(count_.type, 0), count_, ir.Constant(count_.type, 4)
            ) as (i, _):
                p = builder.add(start_, i)
                q = builder.sub(builder.sub(mirror_, i), ir.Constant(i.type, 3))
                zr, zi = vector_load(builder, pre, p, 4), vector_load(builder, pim, p, 4)
                wr = vector_load(builder, pre, q, 4)
                wr = builder.shuffle_vector(wr, wr, backwards)
                wi = vector_load(builder, pim, q, 4)
                wi = builder.shuffle_vector(wi, wi, backwards)
                ar, ai = mul(half, add(zr, wr)), mul(half, sub(zi, wi))
                br, bi = mul(half, add(zi, wi)), mul(half, sub(wr, zr))
                pr, pi = vector_load(builder, prev_re, p, 4), vector_load(builder, prev_im, p, 4)
                power = add(add(mul(ar, ar), mul(ai, ai)), add(mul(br, br), mul(bi, bi)))
                cross = add(
                    mul(f, add(mul(pr, ar), mul(pi, ai))), mul(s, add(mul(ar, br), mul(ai, bi)))
                )
                _vector_store(
                    builder, tot_re, p, add(vector_load(builder, tot_re, p, 4), add(power, cross))
                )
                cross_im = add(
                    mul(f, sub(mul(pr, ai), mul(pi, ar))), mul(s, sub(mul(ar, bi), mul(ai, br)))
                )
                _vector_store(
                    builder, tot_im, p, add(vector_load(builder, tot_im, p, 4), cross_im)
                )
                _vector_store(builder, prev_re, p, br)
                _vector_store(builder, prev_im, p, bi)
            return context.get_dummy_value()

        return signature, codegen

    @overload(spectrum_products, jit_options={"error_model": "numpy"})
    def _spectrum_products_compiled(re, im, start, count, mirror, first, second, previous, total):
        def vectorised(re, im, start, count, mirror, first, second, previous, total):
            whole = count - count % 4
            _spectrum_products_kernel(
                re, im, start, whole, mirror, first, second, previous, total
            )
            for i in range(whole, count):
                _spectrum_product(re, im, start + i, mirror - i, first, second, previous, total)

        return vectorised


@jit
def _fft(re, im, twiddles, padded):
    """In-place radix-2 decimation-in-frequency FFT, ``X_k = sum_j x_j e^{-2 pi i jk/L}``, left
    in bit-reversed order: ``X_k`` lands at index ``reverse(k)`` (see :func:`_bit_reversal`).

    ``L = len(re)`` is a power of two (Cooley & Tukey 1965; the Gentleman-Sande butterfly
    ``(a, b) -> (a + b, (a - b) w)``). The stage that splits transforms of length ``2h`` reads
    its twiddle factors ``e^{-i pi k / h}``, ``k < h``, from the contiguous slices
    ``twiddles[0, h:2h]`` (real parts) and ``twiddles[1, h:2h]`` (imaginary parts) of the table
    of :func:`fft_twiddles`. The callers only multiply spectra pointwise, so they read the
    output through the permutation instead of applying it. ``padded`` (for ``L >= 8``): the
    second half of the input is zero and is not read.
    """
    size = re.shape[0]
    half = size // 2
    while half >= 4:
        stages = 2 if half >= 8 else 1
        butterflies(re, im, twiddles, half, stages, padded)
        padded = False
        half >>= stages
    if size >= 4:  # the last two stages at once: twiddle factors 1 and -i, then 1
        for a in range(0, size, 4):
            s0r, s0i = re[a] + re[a + 2], im[a] + im[a + 2]
            d0r, d0i = re[a] - re[a + 2], im[a] - im[a + 2]
            s1r, s1i = re[a + 1] + re[a + 3], im[a + 1] + im[a + 3]
            d1r, d1i = im[a + 1] - im[a + 3], re[a + 3] - re[a + 1]  # (x1 - x3) (-i)
            re[a], im[a] = s0r + s1r, s0i + s1i
            re[a + 1], im[a + 1] = s0r - s1r, s0i - s1i
            re[a + 2], im[a + 2] = d0r + d1r, d0i + d1i
            re[a + 3], im[a + 3] = d0r - d1r, d0i - d1i
    elif size == 2:
        re[0], re[1] = re[0] + re[1], re[0] - re[1]
        im[0], im[1] = im[0] + im[1], im[0] - im[1]


@jit
def _bit_reversal(size, out):
    """``out[k]`` = ``k`` with its ``log2(size)`` bits reversed, for ``k < size``."""
    j = 0
    out[0] = 0
    for i in range(1, size):
        bit = size >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        out[i] = j


@jit
def _blocked_autocovariance_sums(centred, chains, n, block, twiddles, acov):
    """``acov[t] = sum_m sum_i c_{m,i} c_{m,i+t}`` for the lags ``t <= min(block, n - 1)``.

    Each chain is cut into segments of ``block`` draws (a power of two; the last one zero
    padded) with transforms ``X_s`` of length ``L = 2 block``. Lags up to ``block`` only reach
    into the next segment, so the sums are the inverse transform of
    ``sum_s conj(X_s) (X_s + (-1)^k X_{s+1})`` (the next segment shifted by ``block``), with
    ``X_{s+1} = 0`` at a chain's end: ``O(S log block)`` for ``S`` draws rather than
    ``O(S log S)`` for one transform of each whole chain, in transforms that stay in the cache.
    Two real segments share one complex transform: with ``Z = FFT(a + i b)``,
    ``A_k = (Z_k + conj Z_{L-k}) / 2`` and ``B_k = (Z_k - conj Z_{L-k}) / 2i``. Only
    ``k <= block`` is kept: the spectra of real segments are Hermitian. The transforms are
    read through the bit reversal :func:`_fft` leaves them in.
    """
    size = 2 * block
    # the transform (re, im); the previous pair's second spectrum and the sum over pairs, kept
    # at the positions of the transform's bit-reversed order
    scratch = np.zeros((6, size))
    re, im, previous, total = scratch[0], scratch[1], scratch[2:4], scratch[4:6]
    reverse = np.empty(size, dtype=np.int64)
    _bit_reversal(size, reverse)
    segments = (n + block - 1) // block
    count = chains * segments
    padded = size >= 8  # the transform skips the zeros of the second half
    for pair in range(0, count, 2):
        for side in range(2):
            target = scratch[side]  # re, then im
            segment = pair + side
            length = 0
            if segment < count:
                start = segment // segments * n + segment % segments * block
                length = min(block, n - segment % segments * block)
                _copy(centred[start : start + length], target)
            padding = target[length : block if padded else size]
            for i in range(padding.shape[0]):
                padding[i] = 0.0
        _fft(re, im, twiddles, padded)
        # 1.0 where a segment continues the one before it in the same chain, else 0.0
        first_follows = 1.0 if pair % segments > 0 else 0.0
        second_follows = 1.0 if (pair + 1) % segments > 0 else 0.0
        # position 0 holds k = 0, position 1 k = block (each its own mirror L - k); positions
        # g <= p < 2g hold frequencies whose mirrors sit at 3g - 1 - p: the first half of them
        # covers every pair once; k is odd (sign -1) only in the last group
        spectrum_products(re, im, 0, 1, 0, first_follows, second_follows, previous, total)
        group = 1
        while group < size:
            sign = -1.0 if 2 * group == size else 1.0
            spectrum_products(
                re,
                im,
                group,
                max(group // 2, 1),
                2 * group - 1,
                sign * first_follows,
                sign * second_follows,
                previous,
                total,
            )
            group *= 2
    # the inverse transform of the Hermitian sum, as the forward transform of its conjugate (in
    # natural order: the conjugate at k, the sum itself at L - k)
    group = 1
    while group < size:
        for p in range(group, group + max(group // 2, 1)):
            k = reverse[p]
            re[k], im[k] = total[0, p], -total[1, p]
            re[size - k], im[size - k] = total[0, p], total[1, p]
        group *= 2
    re[0], im[0] = total[0, 0], -total[1, 0]
    _fft(re, im, twiddles, False)
    for t in range(min(block + 1, n)):
        acov[t] = re[reverse[t]] / size


DIRECT_LAGS = 32
"""Lags computed directly, eight per pass, before the autocovariances switch to blocked
transforms: 32 products per draw cost about what the transforms cost (about ``log2(block)``
butterflies per draw). An autocorrelation still above 1/2 at the last computed lag switches at
once, since Geyer's scan will then run for many more lags."""
FIRST_BLOCK = 1024
"""Segment length of the first blocked transform: lags up to 1024, enough for Geyer's scan of
nine in ten slowly mixing scalars seen (radon's centered model, AR(1) with phi = 0.99); a longer
scan repeats with four times the length."""


@jit
def _ess(series, marks, chains, n, constant, centred, rho, acov, work, pw, twiddles, slow):
    """Effective sample size of ``chains`` split chains of ``n`` draws (Vehtari et al. sec. 3.2).

    With ``gamma_t`` the biased autocovariance averaged over chains, ``W = gamma_0 n/(n-1)`` and
    ``var+ = (n-1)/n W + var(chain means)`` (eq. 3), ``rho_t = 1 - (W - gamma_t) / var+`` (eq. 10
    in Stan's form) and ``S_eff = S / max(tau, 1 / log10 S)`` with ``tau`` from
    :func:`_geyer_tau` (eqs. 12-13). Lags are computed eight at a time until the scan stops or
    ``DIRECT_LAGS`` are known, then by :func:`_blocked_autocovariance_sums` up to ``FIRST_BLOCK``,
    four times as many each time the scan needs more, at most all. Constant draws (the
    caller's ``constant``: range below 1e-15) give ``S_eff = S``, as ArviZ. ``slow``: the
    caller expects slow mixing (another series of the same scalar needed the transforms), so
    the transforms come first and the eight direct lags, which would only decide that, are not
    computed; ``W`` then comes from the transforms' lag 0 (the same sum, rounded differently).

    The draws are ``series``, or, when ``marks`` is not empty, the 0/1 indicators ``marks``
    (bytes; ``series`` is then not read), whose chain means are exact counts over ``n``.

    Returns ``(S_eff, R, transformed)`` with ``R = sqrt(var+ / W)``, the split R-hat of the same
    chains (eq. 4) from the same ``W`` and ``var+``: equal to :func:`_split_rhat` up to rounding,
    at no extra pass over the draws, and ``transformed`` whether the blocked transforms ran.
    ``R`` is ``nan`` where ``S_eff`` needs no variances (constant draws) or they are not finite
    and positive; :func:`_split_rhat` then gives its value.
    """
    size = chains * n
    if constant:
        return float(size), np.nan, False
    indicators = marks.shape[0] > 0
    means = work[chains : 2 * chains]  # work[:chains] is _mean_and_variance's scratch
    # (loops over slices from 0: the compiler then knows the indices are not negative and
    # vectorises them)
    for m in range(chains):
        out = centred[m * n : (m + 1) * n]
        if indicators:  # the pairwise sum of 0s and 1s is their count: the same mean
            chain_marks = marks[m * n : (m + 1) * n]
            count = 0
            for i in range(n):
                count += int(chain_marks[i])  # int: a byte sum would wrap without the compiler
            mean = count / n
            means[m] = mean
            for i in range(n):
                out[i] = chain_marks[i] - mean
        else:
            chain = series[m * n : (m + 1) * n]
            mean = _mean(chain, pw)
            means[m] = mean
            for i in range(n):
                out[i] = chain[i] - mean
    scale = 1.0 / (n * chains)
    sums = work[2 * chains : 2 * chains + LAG_BLOCK]
    between = _mean_and_variance(means, work, pw)[1]
    available = 0  # lags computed so far
    block = 0  # segment length of the last blocked transform
    within = var_plus = 0.0
    while True:
        if available == 0:
            direct = not slow
        else:
            direct = available < DIRECT_LAGS and rho[available - 1] <= 0.5
        if block == 0 and direct:
            _lag_block(centred, chains, n, available, sums)
            if available == 0:
                within = sums[0] * scale * n / (n - 1.0)
                var_plus = within * (n - 1.0) / n + between
                if not (math.isfinite(var_plus) and var_plus > 0):
                    return np.nan, np.nan, False
            for j in range(min(LAG_BLOCK, n - available)):
                rho[available + j] = 1.0 - (within - sums[j] * scale) / var_plus
            available = min(available + LAG_BLOCK, n)
        else:
            whole = 1  # a block this long holds a whole chain: every lag
            while whole < n:
                whole *= 2
            block = min(FIRST_BLOCK if block == 0 else 4 * block, whole)
            _blocked_autocovariance_sums(centred, chains, n, block, twiddles, acov)
            if available == 0:  # slow: no direct lags before
                within = acov[0] * scale * n / (n - 1.0)
                var_plus = within * (n - 1.0) / n + between
                if not (math.isfinite(var_plus) and var_plus > 0):
                    return np.nan, np.nan, True
            available = min(block + 1, n)
            for t in range(1, available):
                rho[t] = 1.0 - (within - acov[t] * scale) / var_plus
        rho[0] = 1.0
        done, tau = _geyer_tau(rho, available, n)
        if done:
            break
    tau = max(tau, 1.0 / math.log10(size)) if math.isfinite(tau) else np.nan
    return size / tau, math.sqrt(var_plus / within), block > 0


# ---------------------------------------------------------------------------
# The per-scalar kernel
# ---------------------------------------------------------------------------


_CLAIM_LOCK = threading.Lock()


def claim(counter):
    """``counter[0] += 1`` as one atomic step; returns the value before.

    The threads of :func:`scalar_statistics` take the scalars one at a time from this shared
    counter, so none waits at the end for a slice the other is still working through. This
    Python body (under a lock) runs under ``NUMBA_DISABLE_JIT=1``; compiled callers use an
    atomic ``add`` instruction.
    """
    with _CLAIM_LOCK:
        value = counter[0]
        counter[0] = value + 1
    return value


if not JIT_DISABLED:

    @intrinsic
    def _claim_kernel(typingctx, counter):
        """:func:`claim` as LLVM's ``atomicrmw add`` (sequentially consistent)."""
        signature = types.int64(counter)

        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            one = ir.Constant(ir.IntType(64), 1)
            return builder.atomic_rmw("add", data, one, "seq_cst")

        return signature, codegen

    @overload(claim, jit_options={"error_model": "numpy"})
    def _claim_compiled(counter):
        return lambda counter: _claim_kernel(counter)


def prefetch(array, index):
    """A hint that ``array[index]`` will soon be read and written: compiled callers emit LLVM's
    ``llvm.prefetch`` (for writing, kept in every cache level), which loads its cache line
    without waiting for it. Nothing to do interpreted; the results never depend on it."""


if not JIT_DISABLED:

    @intrinsic
    def _prefetch_kernel(typingctx, array, index):
        """:func:`prefetch` as ``llvm.prefetch(ptr, rw=1, locality=3, data)``."""
        signature = types.void(array, index)

        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            byte_pointer = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            function = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
                "llvm.prefetch.p0i8",
            )
            pointer = builder.bitcast(builder.gep(data, [args[1]]), byte_pointer)
            builder.call(
                function, [pointer, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)]
            )
            return context.get_dummy_value()

        return signature, codegen

    @overload(prefetch, jit_options={"error_model": "numpy"})
    def _prefetch_compiled(array, index):
        return lambda array, index: _prefetch_kernel(array, index)


_SIGN_BIT = np.uint64(1) << np.uint64(63)
_ALL_BITS = ~np.uint64(0)


RADIX_BITS_LARGE = 11
"""Digit width of the radix sort above ``RADIX_LARGE`` values (6 passes, 2048 buckets)."""
RADIX_LARGE = 16_384


@jit
def _radix_argsort(values, order, keys, spare_keys, spare_order, counts):
    """``order`` = a stable argsort of the finite ``values`` (LSD radix sort).

    Each float's IEEE-754 bits become an unsigned key in the same order (negative: all bits
    flipped; positive: sign bit set), so ``-0.0`` lands next to ``0.0``. Then one counting-sort
    pass per digit, least significant first, skipping digits all keys share: 8 passes of 8 bits,
    or for more than ``RADIX_LARGE`` values 6 passes of 11 bits. ``O(S)`` for ``S`` values,
    several times faster than a comparison sort here. ``counts`` is ``(8, 2048)`` integer
    scratch; ``keys``, ``spare_keys`` and ``spare_order`` hold ``S`` each.
    """
    size = values.shape[0]
    width = RADIX_BITS_LARGE if size > RADIX_LARGE else 8
    passes = (64 + width - 1) // width
    mask = np.uint64((1 << width) - 1)
    bits = values.view(np.uint64)
    for digit_index in range(passes):
        for digit in range(1 << width):
            counts[digit_index, digit] = 0
    for i in range(size):
        key = bits[i] ^ (_ALL_BITS if bits[i] & _SIGN_BIT else _SIGN_BIT)
        keys[i] = key
        order[i] = i
        for digit_index in range(passes):
            counts[digit_index, (key >> np.uint64(width * digit_index)) & mask] += 1
    source_keys, source_order, target_keys, target_order = keys, order, spare_keys, spare_order
    moved = 0  # passes done: after an odd number the result sits in the spare arrays
    for digit_index in range(passes):
        shift = np.uint64(width * digit_index)
        tally = counts[digit_index]
        if tally[(source_keys[0] >> shift) & mask] == size:
            continue  # every key has this digit: the pass would not move anything
        offset = 0
        for digit in range(1 << width):
            count = tally[digit]
            tally[digit] = offset
            offset += count
        for i in range(size):
            key = source_keys[i]
            digit = (key >> shift) & mask
            position = tally[digit]
            tally[digit] = position + 1
            target_keys[position] = key
            target_order[position] = source_order[i]
        source_keys, target_keys = target_keys, source_keys
        source_order, target_order = target_order, source_order
        moved += 1
    if moved % 2:
        for i in range(size):
            order[i] = spare_order[i]
            keys[i] = spare_keys[i]


@jit
def _sorted_values(keys, size, out):
    """``out[:size]`` = the floats whose keys (as made by :func:`_radix_argsort`) are
    ``keys[:size]``: the sorted values, bit for bit, read in order rather than gathered."""
    bits = out.view(np.uint64)
    for i in range(size):
        key = keys[i]
        bits[i] = key ^ _SIGN_BIT if key & _SIGN_BIT else ~key


INSERTION_MAX = 16
"""Longest bucket of :func:`_bucket_argsort` sorted by insertion; longer ones go to the radix
sort, so clumped draws cost ``O(S)`` too."""
BUCKETS_PER_DRAW = 2
"""Buckets of :func:`_bucket_argsort` per draw: two, against one, halve the draws the insertion
pass must move (a fifth of them instead of a third, on radon's draws), for one more pass over
``S`` counts."""


PREFETCH_MIN_DRAWS = 50_000
"""Draws above which the counting and the scatter of :func:`_bucket_argsort` prefetch the
bucket of the draw ``PREFETCH_AHEAD`` further on: there its ``2 S`` counts, the sorted values
and the indices (16 bytes per draw) outgrow a core's L2 cache, and each draw's bucket is a
cache miss whose latency the prefetch hides (the sort of 2 x 66,670 AR(1) draws, phi 0.5:
counting and scatter 9.6 -> 8.2 ns per draw; below, the prefetches cost more than they save)."""
PREFETCH_AHEAD = 16


@jit
def _bucket_argsort(
    values, lo, hi, order, srt, buckets, local, spare_local, keys, spare_keys, counts
):
    """``order`` = a stable argsort of the finite ``values`` whose extremes (:func:`_extremes`)
    are ``lo`` and ``hi``, ``srt`` = the sorted values
    (``-0.0`` and ``0.0`` count as equal, or ``-0.0`` comes first: the statistics cannot tell).

    A bucket sort on the monotone map ``b(v) = min(floor((v - lo) B / (hi - lo)), B - 1)``, with
    ``B = BUCKETS_PER_DRAW S`` buckets
    (each rounded step is monotone, so buckets are in order): one counting pass, one stable
    scatter of values and indices (above ``PREFETCH_MIN_DRAWS`` both read the draws' buckets,
    computed once into ``local``, and prefetch the one ahead), then the buckets longer than
    ``INSERTION_MAX`` sorted by :func:`_radix_argsort` and the others by one insertion pass over
    all draws (``O(1)`` per draw expected for smooth draws). ``buckets`` is integer scratch of
    ``B``, ``local`` and ``spare_local`` of ``S``, ``keys`` and ``spare_keys`` unsigned ones of
    ``S``, ``counts`` the radix sort's.
    """
    size = values.shape[0]
    count_buckets = BUCKETS_PER_DRAW * size
    scale = count_buckets / (hi - lo)
    if not (hi > lo and math.isfinite(scale) and scale > 0):  # constant, or a range too small
        _radix_argsort(values, order, keys, spare_keys, spare_local, counts)  # or too large
        _sorted_values(keys, size, srt)
        return
    last = count_buckets - 1
    for b in range(count_buckets):
        buckets[b] = 0
    ahead = PREFETCH_AHEAD if size > PREFETCH_MIN_DRAWS else 0
    if ahead:  # each draw's bucket computed once, so that the one ahead can be prefetched
        numbers = local
        for i in range(size):
            numbers[i] = min(int((values[i] - lo) * scale), last)
        for i in range(size - ahead):
            prefetch(buckets, numbers[i + ahead])
            buckets[numbers[i]] += 1
        for i in range(size - ahead, size):
            buckets[numbers[i]] += 1
    else:
        for i in range(size):
            buckets[min(int((values[i] - lo) * scale), last)] += 1
    offset = 0
    longest = 0
    for b in range(count_buckets):
        count = buckets[b]
        longest = max(longest, count)
        buckets[b] = offset
        offset += count
    if ahead:
        for i in range(size):
            if i + ahead < size:
                prefetch(buckets, local[i + ahead])
            b = local[i]
            position = buckets[b]
            buckets[b] = position + 1
            srt[position] = values[i]
            order[position] = i
    else:
        for i in range(size):
            value = values[i]
            b = min(int((value - lo) * scale), last)
            position = buckets[b]
            buckets[b] = position + 1
            srt[position] = value
            order[position] = i
    if longest > INSERTION_MAX:  # clumped draws: the long buckets by radix sort
        start = 0
        for b in range(count_buckets):  # buckets[b] is now where bucket b ends
            end = buckets[b]
            length = end - start
            if length > INSERTION_MAX:
                _radix_argsort(srt[start:end], local, keys, spare_keys, spare_local, counts)
                _sorted_values(keys, length, srt[start:end])
                for t in range(length):
                    spare_local[t] = order[start + local[t]]
                for t in range(length):
                    order[start + t] = spare_local[t]
            start = end
    # the rest by one insertion pass: a draw never passes one of an earlier bucket (the
    # bucket map is monotone), so this sorts each short bucket and leaves the sorted ones. The
    # largest draw so far (top) stays in a register and each step is a select, not a branch
    # (whether a draw is below the one before it is a coin flip within a bucket): the smaller
    # of top and the next draw is stored, the larger is the new top. A draw that belongs
    # further back takes the loop, rarely.
    top, top_index = srt[0], order[0]
    for i in range(1, size):
        value, index = srt[i], order[i]
        swap = top > value
        srt[i - 1] = value if swap else top
        order[i - 1] = index if swap else top_index
        top = top if swap else value
        top_index = top_index if swap else index
        if srt[max(i - 2, 0)] > srt[i - 1]:  # only after a swap
            j = i - 1
            while j > 0 and srt[j - 1] > value:
                srt[j], order[j] = srt[j - 1], order[j - 1]
                j -= 1
            srt[j], order[j] = value, index
    srt[size - 1], order[size - 1] = top, top_index


# The inverse normal CDF of Cephes (S. L. Moshier, Cephes Math Library 2.1, 1989, ``ndtri``), the
# one behind ``scipy.special.ndtri`` (SciPy 1.17: xsf's ``cephes/ndtri.h``), with its constants and
# its float operations in its order, so that every normal score equals SciPy's bit for bit.
# Coefficients highest degree first, as Cephes' ``polevl`` reads them; the denominators are monic
# (their leading 1 left out, as ``p1evl`` assumes).
_NDTRI_CENTRAL_P = (
    -5.99633501014107895267e1,
    9.80010754185999661536e1,
    -5.66762857469070293439e1,
    1.39312609387279679503e1,
    -1.23916583867381258016e0,
)
_NDTRI_CENTRAL_Q = (
    1.95448858338141759834e0,
    4.67627912898881538453e0,
    8.63602421390890590575e1,
    -2.25462687854119370527e2,
    2.00260212380060660359e2,
    -8.20372256168333339912e1,
    1.59056225126211695515e1,
    -1.18331621121330003142e0,
)
_NDTRI_TAIL_P = (  # 2 <= z < 8: exp(-32) < p < exp(-2)
    4.05544892305962419923e0,
    3.15251094599893866154e1,
    5.71628192246421288162e1,
    4.40805073893200834700e1,
    1.46849561928858024014e1,
    2.18663306850790267539e0,
    -1.40256079171354495875e-1,
    -3.50424626827848203418e-2,
    -8.57456785154685413611e-4,
)
_NDTRI_TAIL_Q = (
    1.57799883256466749731e1,
    4.53907635128879210584e1,
    4.13172038254672030440e1,
    1.50425385692907503408e1,
    2.50464946208309415979e0,
    -1.42182922854787788574e-1,
    -3.80806407691578277194e-2,
    -9.33259480895457427372e-4,
)
_NDTRI_FAR_TAIL_P = (  # 8 <= z < 64: p < exp(-32)
    3.23774891776946035970e0,
    6.91522889068984211695e0,
    3.93881025292474443415e0,
    1.33303460815807542389e0,
    2.01485389549179081538e-1,
    1.23716634817820021358e-2,
    3.01581553508235416007e-4,
    2.65806974686737550832e-6,
    6.23974539184983293730e-9,
)
_NDTRI_FAR_TAIL_Q = (
    6.02427039364742014255e0,
    3.67983563856160859403e0,
    1.37702099489081330271e0,
    2.16236993594496635890e-1,
    1.34204006088543189037e-2,
    3.28014464682127739104e-4,
    2.89247864745380683936e-6,
    6.79019408009981274425e-9,
)
_EXP_MINUS_2 = 0.13533528323661269189
_SQRT_2PI = 2.50662827463100050242


@jit
def _horner(x, coefficients, monic):
    """``x^m + c_0 x^{m-1} + ... + c_{m-1}`` if ``monic``, else ``c_0 x^{m-1} + ... + c_{m-1}``
    (``m`` coefficients), by Horner's rule from the highest degree down, as Cephes' ``p1evl``
    and ``polevl`` round it (no fused multiply-add)."""
    if monic:
        total = x + coefficients[0]
    else:
        total = coefficients[0]
    for c in coefficients[1:]:
        total = total * x + c
    return total


@jit
def _ndtri(p):
    """``Phi^{-1}(p)`` for ``0 < p < 1``: Cephes' ``ndtri`` (Moshier 1989), bit for bit.

    Upper tail ``p > 1 - e^{-2}`` is taken as ``-Phi^{-1}(1 - p)``, with ``1 - p`` rounded.
    In the middle, ``|p - 1/2| <= 1/2 - e^{-2}``, with ``w = p - 1/2``,
    ``x = sqrt(2 pi) (w + w w^2 R(w^2) / S(w^2))`` (``R`` of degree 4, ``S`` monic of degree 8).
    In the lower tail, with ``z = sqrt(-2 log p)`` (so ``2 < z``),
    ``x = -(z - log(z) / z - (1/z) P(1/z) / Q(1/z))``, ``P / Q`` of degree 8 / 8 with one set of
    coefficients for ``z < 8`` (``p > e^{-32}``) and another beyond.
    """
    upper = p > 1.0 - _EXP_MINUS_2
    y = 1.0 - p if upper else p
    if y > _EXP_MINUS_2:
        w = y - 0.5
        w2 = w * w
        x = w + w * (
            w2 * _horner(w2, _NDTRI_CENTRAL_P, False) / _horner(w2, _NDTRI_CENTRAL_Q, True)
        )
        return x * _SQRT_2PI
    z = math.sqrt(-2.0 * math.log(y))
    x0 = z - math.log(z) / z
    t = 1.0 / z
    if z < 8.0:
        x1 = t * _horner(t, _NDTRI_TAIL_P, False) / _horner(t, _NDTRI_TAIL_Q, True)
    else:
        x1 = t * _horner(t, _NDTRI_FAR_TAIL_P, False) / _horner(t, _NDTRI_FAR_TAIL_Q, True)
    x = x0 - x1
    return x if upper else -x


@jit
def _fill_normal_scores(scores):
    """``scores[2r - 2] = Phi^{-1}((r - 3/8) / (S + 1/4))`` for every average rank ``r = 1, 1.5,
    ..., S`` of ``S = (len(scores) + 1) / 2`` values: the Blom (1958) normal scores of rank
    normalization (Vehtari et al. 2021, eq. 14). The same float operations as
    ``ndtri((rankdata(x) - 3/8) / (S + 1/4))`` (the half-integer ranks are exact), hence the same
    values bit for bit."""
    size = (scores.shape[0] + 1) // 2
    for k in range(scores.shape[0]):
        scores[k] = _ndtri(((k + 2) / 2.0 - 0.375) / (size + 0.25))


@jit
def _average_ranks_to_scores(values, positions, count, scores, out):
    """Give ``out[positions[i]]`` the normal score of the average rank of ``values[i]``.

    ``values[:count]`` is sorted; tied values share the mean of their ranks (rankdata's
    ``"average"``), ``(first + last) / 2`` in 1-based ranks, looked up as ``scores[2r - 2]``.
    Returns whether all values tie (then every score is the same: constant scores).
    """
    ahead = PREFETCH_AHEAD if count > PREFETCH_MIN_DRAWS else 0
    start = max(count - ahead, 0) if ahead else 0
    for i in range(start):  # every value its own rank i + 1 ...
        prefetch(out, positions[i + ahead])  # (stores far apart: their lines come early)
        out[positions[i]] = scores[2 * i]
    for i in range(start, count):
        out[positions[i]] = scores[2 * i]
    ties = 0
    for i in range(1, count):
        ties += int(values[i] == values[i - 1])
    i = 1 if ties else count
    while i < count:  # ... then each run of ties its average rank
        if values[i] == values[i - 1]:
            first = last = i - 1
            while last + 1 < count and values[last + 1] == values[first]:
                last += 1
            score = scores[first + last]  # 2 * ((first + 1 + last + 1) / 2) - 2
            for j in range(first, last + 1):
                out[positions[j]] = score
            i = last + 1
        i += 1
    return count == 0 or values[0] == values[count - 1]


@jit
def _choose(pair, if_false, if_true, condition):
    """``if_true if condition else if_false``, written to the two integers ``pair`` and read
    back, not selected. In a loop whose condition waits on loads (a merge), LLVM's x86 back end
    turns a select into a branch ("cmov conversion"), which mispredicts about every other time
    when the choices are coin flips; a load from an address the condition computes does not
    (the fold merge of 4,000 draws: 56 -> 27 us)."""
    pair[0] = if_false
    pair[1] = if_true
    return pair[int(condition)]


@jit
def _quantile_type7(srt, size, prob):
    """Hyndman & Fan type-7 quantile of sorted ``srt[:size]`` in ``mquantiles``' float order."""
    h = size * prob + (1.0 - prob)
    k = int(math.floor(min(max(h, 1.0), size - 1.0)))
    g = min(max(h - k, 0.0), 1.0)
    return (1.0 - g) * srt[k - 1] + g * srt[k]


@jit
def _copy(source, target):
    """``target[:len(source)] = source``, as a loop over both from 0 (which the compiler
    vectorises; a slice assignment compiles to much more general code)."""
    for i in range(source.shape[0]):
        target[i] = source[i]


@jit
def _extremes(values):
    """``(min(values), max(values))`` of finite ``values``, from four running extremes taken in
    turn, so that the comparisons do not wait on each other."""
    low0 = low1 = low2 = low3 = values[0]
    high0 = high1 = high2 = high3 = values[0]
    size = values.shape[0]
    whole = size - size % 4
    for i in range(0, whole, 4):
        v0, v1, v2, v3 = values[i], values[i + 1], values[i + 2], values[i + 3]
        low0, low1, low2, low3 = min(low0, v0), min(low1, v1), min(low2, v2), min(low3, v3)
        high0, high1 = max(high0, v0), max(high1, v1)
        high2, high3 = max(high2, v2), max(high3, v3)
    for i in range(whole, size):
        low0, high0 = min(low0, values[i]), max(high0, values[i])
    return min(low0, low1, low2, low3), max(high0, high1, high2, high3)


@jit
def _ess_below(
    xs, chains, draws, threshold, n, marks, centred, rho, acov, work, pw, twiddles, slow
):
    """ESS of the split-chain indicators ``I(theta <= threshold)`` (Vehtari et al. eq. 16) of
    the draws ``xs`` (``chains`` rows of ``draws``, flattened), written as bytes into ``marks``;
    ``slow`` as :func:`_ess`."""
    below = 0
    for c in range(chains):
        row = xs[c * draws : (c + 1) * draws]
        first_draws, second_draws = row[:n], row[draws - n :]
        first_marks = marks[c * n : (c + 1) * n]
        second_marks = marks[(chains + c) * n : (chains + c + 1) * n]
        for i in range(n):
            first_half = first_draws[i] <= threshold
            second_half = second_draws[i] <= threshold
            first_marks[i] = first_half
            second_marks[i] = second_half
            below += int(first_half) + int(second_half)  # bools would add as "or" uncompiled
    constant = below == 0 or below == 2 * chains * n
    size = 2 * chains * n
    return _ess(
        centred, marks[:size], 2 * chains, n, constant, centred, rho, acov, work, pw, twiddles, slow
    )[0]


def _scratch(chains: int, draws: int, block: int) -> tuple[NDArray, ...]:
    """Work arrays for :func:`_statistics_kernel` on ``chains x draws`` draws: eight float rows
    (with room for per-chain values beyond the draws), three index rows, the bucket sort's
    counts, a byte row for the indicators of the tail ESS, the radix sort's keys and counts,
    the pairwise sums' stack, and room for the draws of ``block`` scalars gathered from a
    strided source (:func:`_gather`). One set per thread, reused for every scalar. Allocated
    by NumPy, not compiled: a second compiled entry point would be a second library to load
    from Numba's cache on the first call of each process (about 50 ms)."""
    total = chains * draws
    buffers = np.empty((8, total + 4 * chains + LAG_BLOCK))
    index = np.empty((3, total), dtype=np.int32)
    buckets = np.empty(BUCKETS_PER_DRAW * total, dtype=np.int32)
    marks = np.empty(total, dtype=np.uint8)
    keys = np.empty((2, total), dtype=np.uint64)
    counts = np.empty((8, 1 << RADIX_BITS_LARGE), dtype=np.int64)
    gathered = np.empty(block * total)
    return buffers, index, buckets, marks, keys, counts, np.empty(PAIRWISE_SCRATCH), gathered


GATHER_BLOCK = 8
"""Scalars gathered together from a source whose scalars sit side by side (one cache line)."""


@jit
def _gather(flat, start, strides, chains, draws, count, out):
    """``out[b * S + c * draws + i] = flat[start + b s_k + c s_c + i s_i]`` for the ``count``
    scalars of a block, ``S = chains * draws``: their draws as contiguous ``(chains, draws)``
    rows, from a source whose element strides are ``strides = (s_c, s_i, s_k)``.

    When a block of ``GATHER_BLOCK`` (8) scalars sits side by side in each draw (``s_k = 1``, a
    posterior array ``(chains, draws, m)``), each draw's eight values are read together, one
    cache line, and written to eight rows, in a loop with the eight offsets spelled out (which
    the compiler keeps in registers: 0.6 ns per value against 2 for the loop over ``b``)."""
    chain_stride, draw_stride, scalar_stride = strides[0], strides[1], strides[2]
    total = chains * draws
    if scalar_stride == 1 and count == GATHER_BLOCK:
        o0, o1, o2, o3 = out[:total], out[total:], out[2 * total :], out[3 * total :]
        o4, o5, o6, o7 = out[4 * total :], out[5 * total :], out[6 * total :], out[7 * total :]
        for c in range(chains):
            row = flat[start + c * chain_stride :]
            d = c * draws
            for i in range(draws):
                r, j = i * draw_stride, d + i
                o0[j], o1[j], o2[j], o3[j] = row[r], row[r + 1], row[r + 2], row[r + 3]
                o4[j], o5[j], o6[j], o7[j] = row[r + 4], row[r + 5], row[r + 6], row[r + 7]
        return
    for b in range(count):
        for c in range(chains):
            row = flat[start + b * scalar_stride + c * chain_stride :]
            target = out[b * total + c * draws : b * total + (c + 1) * draws]
            for i in range(draws):
                target[i] = row[i * draw_stride]


_EXPONENT = np.uint64(0x7FF0_0000_0000_0000)


@jit
def _count_non_finite(values):
    """How many of ``values`` are NaN or infinite (all exponent bits set): an integer count
    over the bits, which the compiler vectorises."""
    bits = values.view(np.uint64)
    count = 0
    for i in range(values.shape[0]):
        count += int((bits[i] & _EXPONENT) == _EXPONENT)
    return count


@jit(no_cfunc_wrapper=True)  # called from Python only (``nutslite._numba.jit``)
def _statistics_kernel(
    flat,
    layout,
    wanted,
    scores,
    fill_scores,
    twiddles,
    hdi_prob,
    min_draws,
    mcse,
    counter,
    scratch,
    results,
    finite,
    extremes,
):
    """Every column of :data:`COLUMNS` into ``results[k]`` for the scalars ``k`` of one source
    whose draws are finite (``finite[k]``, with their minimum and maximum in ``extremes[k]``)
    and ``wanted[k]``; the split-chain statistics only if ``draws >= min_draws``, and ``mean``,
    ``sd``, ``split_rhat``, ``ess_mean`` and the MCSEs only if ``mcse``.

    The source is ``(chains, draws, scalars)`` in the float array ``flat``, read through
    ``layout = (s_c, s_i, s_k, chains, draws, scalars, block)`` (strides in elements): scalar
    ``k``'s draw ``i`` of chain ``c`` is ``flat[c s_c + i s_i + k s_k]``. Scalars whose draws
    are one contiguous run are read in place; the others are gathered ``block`` at a time into
    the thread's ``scratch`` (:func:`_scratch`), so no copy of the whole posterior is made.
    Each thread takes the next block from the shared ``counter`` (:func:`claim`) until all are
    taken.

    ``scores`` is the table of normal scores of the ranks, indexed by ``2r - 2``; with
    ``fill_scores`` the call first fills it (:func:`_fill_normal_scores`), which
    :func:`normal_scores` asks of a call on no scalars.

    One function, not a call per scalar: Numba re-optimises every caller together with its
    callees, so each level of calls costs compile time. One entry point, too: each compiled
    function called from Python is another library to load from Numba's cache in every process.
    """
    if fill_scores:
        _fill_normal_scores(scores)
    strides = layout[:3]
    chains, draws, scalars, block = layout[3], layout[4], layout[5], layout[6]
    buffers, index, buckets, marks, keys, counts, pw, gathered = scratch
    total = chains * draws
    in_place = strides[1] == 1 and strides[0] == draws
    floats = marks[:0]  # no indicators: _ess reads the float series
    rank_stats = draws >= min_draws
    while True:
        first = claim(counter) * block
        if first >= scalars:
            break
        members = min(block, scalars - first)
        if not in_place:
            _gather(flat, first * strides[2], strides, chains, draws, members, gathered)
        for member in range(members):
            k = first + member
            if in_place:
                start = k * strides[2]
                xs = flat[start : start + total]
            else:
                xs = gathered[member * total : (member + 1) * total]
            finite[k] = _count_non_finite(xs) == 0
            if not finite[k]:
                continue
            lo, hi = _extremes(xs)
            extremes[k, 0], extremes[k, 1] = lo, hi
            if not wanted[k]:
                continue
            out = results[k]
            # the draws arranged as split chains (chain c's first half is split chain c, its second
            # half split chain C + c), then the middle draw of each odd-length chain: sorting this
            # arrangement gives each sorted draw's split-chain position directly
            n = draws // 2
            split_chains = 2 * chains
            size = split_chains * n
            split = buffers[1]
            for c in range(chains):
                _copy(xs[c * draws : c * draws + n], split[c * n :])
                _copy(xs[(c + 1) * draws - n : (c + 1) * draws], split[(chains + c) * n :])
                if draws % 2:
                    split[size + c] = xs[c * draws + n]
            order = index[0]
            srt = buffers[0]
            _bucket_argsort(  # the split arrangement has the draws' extremes
                split[:total],
                lo,
                hi,
                order,
                srt,
                buckets,
                index[1],
                index[2],
                keys[0],
                keys[1],
                counts,
            )
            if mcse:
                mean, variance = _mean_and_variance(xs, buffers[2], pw)
                out[_MEAN] = mean
                out[_SD] = math.sqrt(variance) if total > 1 else np.nan
            span = min(int(math.floor(hdi_prob * total)), total - 1)
            best = 0
            for i in range(1, total - span):
                if srt[i + span] - srt[i] < srt[best + span] - srt[best]:
                    best = i
            out[_HDI_LOW] = srt[best]
            out[_HDI_HIGH] = srt[best + span]
            if not rank_stats:
                continue

            z, folded, centred, rho, acov, work = (
                buffers[2],
                buffers[3],
                buffers[4],
                buffers[5],
                buffers[6],
                buffers[7],
            )
            q_low = _quantile_type7(srt, total, _TAIL_PROBS[0])
            q_high = _quantile_type7(srt, total, _TAIL_PROBS[1])
            # the sorted split draws and their positions: all sorted draws but the middle ones
            kept_values = srt  # overwritten in place: srt is no longer needed after the quantiles
            positions = order
            count = 0
            if size < total:
                for i in range(total):
                    if order[i] < size:
                        kept_values[count] = srt[i]
                        positions[count] = order[i]
                        count += 1

            # rank normalization (eq. 14) and, merged from both sides of the median, the folded
            # ranks
            z_constant = _average_ranks_to_scores(kept_values, positions, size, scores, z)
            split_constant = kept_values[size - 1] - kept_values[0] < _CONSTANT_TOL
            if size % 2:
                median = kept_values[size // 2]
            else:
                median = (kept_values[size // 2 - 1] + kept_values[size // 2]) / 2.0
            right = size // 2  # then the first sorted draw not below the median
            while right > 0 and kept_values[right - 1] >= median:
                right -= 1
            while right < size and kept_values[right] < median:
                right += 1
            # the draws below the median (indices < boundary) and from it on, each side in
            # increasing distance from the median in the directions the pointers move: merged from
            # the nearest draws up (left, right; a tie goes to the left side) and at the same time
            # from the farthest down (outer_left, outer_right; a tie goes to the right side), two
            # independent merges of half the draws each, in the same order as one merge
            boundary = right
            left = right - 1
            outer_left, outer_right = 0, size - 1
            distances = acov  # scratch: the folded values in increasing order
            fold_positions = index[1]
            near, far = counts[0, :2], counts[0, 2:4]  # scratch of _choose (the sort is done)
            for i in range(size // 2):  # no branch on the choices: they are coin flips
                below = abs(kept_values[max(left, 0)] - median) if left >= 0 else np.inf
                above = abs(kept_values[min(right, size - 1)] - median) if right < size else np.inf
                take_left = below <= above
                nearest = _choose(near, right, left, take_left)
                distances[i] = abs(kept_values[nearest] - median)  # below or above
                fold_positions[i] = positions[nearest]
                left -= take_left
                right += 1 - take_left
                j = size - 1 - i
                far_below = (
                    abs(kept_values[min(outer_left, size - 1)] - median)
                    if outer_left < boundary
                    else -np.inf
                )
                far_above = (
                    abs(kept_values[max(outer_right, 0)] - median)
                    if outer_right >= boundary
                    else -np.inf
                )
                take_right = far_above >= far_below
                farthest = _choose(far, outer_left, outer_right, take_right)
                distances[j] = abs(kept_values[farthest] - median)  # far_below or far_above
                fold_positions[j] = positions[farthest]
                outer_right -= take_right
                outer_left += 1 - take_right
            if size % 2:  # the middle one
                below = abs(kept_values[max(left, 0)] - median) if left >= 0 else np.inf
                above = abs(kept_values[min(right, size - 1)] - median) if right < size else np.inf
                take_left = below <= above
                distances[size // 2] = below if take_left else above
                fold_positions[size // 2] = positions[left] if take_left else positions[right]
            _average_ranks_to_scores(distances, fold_positions, size, scores, folded)

            # the split R-hats of z and of the draws come with their ESS (same W and var+)
            # the bulk ESS decides whether the others start with the transforms (slow)
            out[_ESS_BULK], rhat_bulk, slow = _ess(
                z,
                floats,
                split_chains,
                n,
                z_constant,
                centred,
                rho,
                acov,
                work,
                pw,
                twiddles,
                False,
            )
            if chains >= 2:
                rhat_fold = _split_rhat(folded, split_chains, n, work, pw)
                if math.isnan(rhat_bulk):
                    rhat_bulk = _split_rhat(z, split_chains, n, work, pw)
                out[_R_HAT] = (
                    rhat_fold
                    if math.isnan(rhat_bulk)
                    else (rhat_bulk if math.isnan(rhat_fold) else max(rhat_bulk, rhat_fold))
                )
            if mcse:
                ess_mean, split_rhat, _ = _ess(
                    split, floats, split_chains, n, split_constant, centred, rho, acov, work, pw,
                    twiddles, slow,
                )
                out[_ESS_MEAN] = ess_mean
                if chains >= 2:
                    out[_SPLIT_RHAT] = (
                        split_rhat
                        if not math.isnan(split_rhat)
                        else _split_rhat(split, split_chains, n, work, pw)
                    )
                out[_MCSE_MEAN] = out[_SD] / math.sqrt(ess_mean)

            # tail ESS: indicators of the pooled 5% and 95% quantiles (eq. 16)
            ess_low = _ess_below(
                xs, chains, draws, q_low, n, marks, centred, rho, acov, work, pw, twiddles, slow
            )
            ess_high = _ess_below(
                xs, chains, draws, q_high, n, marks, centred, rho, acov, work, pw, twiddles, slow
            )
            out[_ESS_TAIL] = (
                ess_low
                if math.isnan(ess_high)
                else (ess_high if math.isnan(ess_low) else min(ess_low, ess_high))
            )

            if not mcse:
                continue
            # MCSE of the sd: delta method on the variance of d = (theta - mean)^2
            mean = out[_MEAN]
            squared = buffers[2]  # z is no longer needed
            for i in range(total):
                deviation = xs[i] - mean
                squared[i] = deviation * deviation
            variance = _mean(squared[:total], pw)
            for i in range(total):
                work[i] = squared[i] * squared[i]
            fourth = _mean(work[:total], pw)
            for c in range(chains):
                _copy(squared[c * draws : c * draws + n], split[c * n :])
                _copy(squared[(c + 1) * draws - n : (c + 1) * draws], split[(chains + c) * n :])
            low, high = _extremes(split[:size])
            constant = high - low < _CONSTANT_TOL
            ess_squared = _ess(
                split, floats, split_chains, n, constant, centred, rho, acov, work, pw, twiddles,
                slow,
            )[0]
            var_of_var = (fourth - variance * variance) / ess_squared
            out[_MCSE_SD] = math.sqrt(var_of_var / variance / 4.0)


# ---------------------------------------------------------------------------
# Python driver
# ---------------------------------------------------------------------------


@lru_cache(maxsize=8)
def normal_scores(size: int) -> NDArray[np.float64]:
    """``Phi^{-1}((r - 3/8) / (S + 1/4))`` for every average rank ``r = 1, 1.5, ..., S``.

    The Blom (1958) normal scores of rank normalization (Vehtari et al. 2021, eq. 14), indexed
    by ``2r - 2``, bit-identical to ``scipy.special.ndtri((rankdata(x) - 3/8) / (S + 1/4))``
    (:func:`_ndtri` is Cephes' algorithm), without importing ``scipy.special`` (0.08 s of every
    process's first diagnostics). Computed by the kernel itself, on no scalars, rather than by a
    compiled function of its own, which a process would load from the cache as a second
    library. Shared by every call on ``S`` split draws: not to be written to (it stays writeable
    so that every kernel call has the same argument types, hence one compiled version).
    """
    scores = np.empty(2 * size - 1)
    no_scalars = np.zeros(7, dtype=np.int64)  # the layout of a source with no scalars
    # a process's first call compiles the kernel (or loads it): nutslite._numba.gc_frozen
    with gc_frozen(needs_compiling(_statistics_kernel)):
        _statistics_kernel(
            np.empty(1),
            no_scalars,
            np.zeros(0, dtype=np.bool_),
            scores,
            True,
            fft_twiddles(2),
            0.5,
            0,
            False,
            np.zeros(1, dtype=np.int64),
            _scratch(0, 0, 0),
            np.empty((0, len(COLUMNS))),
            np.zeros(0, dtype=np.bool_),
            np.empty((0, 2)),
        )
    return scores


@lru_cache(maxsize=8)
def fft_twiddles(size: int) -> NDArray[np.float64]:
    """The twiddle factors of :func:`_fft` for transforms of up to ``size`` (a power of two).

    ``(2, size)``: row 0 the real and row 1 the imaginary parts of ``e^{-i pi k / h}`` at
    column ``h + k``, for ``h = 1, 2, 4, ..., size / 2`` and ``k < h`` (column 0 unused), so the
    factors of each stage are contiguous and shared by every smaller transform.
    """
    table = np.zeros((2, max(size, 2)))
    half = 1
    while half < size:
        angle = -np.pi * np.arange(half) / half
        table[0, half : 2 * half] = np.cos(angle)
        table[1, half : 2 * half] = np.sin(angle)
        half *= 2
    table.flags.writeable = False
    return table


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def scalar_statistics(
    batch: NDArray[np.float64],
    usable: NDArray[np.bool_],
    hdi_prob: float,
    min_draws: int,
    threads: int | None = None,
    *,
    mcse: bool = True,
) -> NDArray[np.float64]:
    """Every statistic of :data:`COLUMNS` for each scalar of ``batch (K, chains, draws)``.

    Only scalars with ``usable[k]`` and finite draws are computed; the others, and the
    split-chain statistics when ``draws < min_draws``, are ``nan``; R-hat needs two chains.
    ``mcse=False`` skips ``mean``, ``sd``, ``split_rhat``, ``ess_mean`` and the MCSEs (``nan``),
    two fifths of the autocovariance work, for the convergence checks. Returns
    ``(K, len(COLUMNS))``;
    :func:`source_statistics` with the batch as its one source (read in place).
    """
    batch = np.asarray(batch, dtype=np.float64)
    return source_statistics(
        [batch.transpose(1, 2, 0)], usable, hdi_prob, min_draws, threads, mcse=mcse
    ).table


class SourceStatistics(NamedTuple):
    """What :func:`source_statistics` returns, one row per scalar."""

    table: NDArray[np.float64]
    """``(K, len(COLUMNS))``: the statistics (``nan`` where not computed)."""
    finite: NDArray[np.bool_]
    """``(K,)``: every draw of the scalar is finite (``False`` when there are no draws)."""
    extremes: NDArray[np.float64]
    """``(K, 2)``: the smallest and the largest draw of each finite scalar (``nan`` otherwise)."""


class _Source(NamedTuple):
    """A source ``(chains, draws, m)`` as :func:`_statistics_kernel` reads it."""

    flat: NDArray[np.float64]
    layout: NDArray[np.int64]
    scalars: int
    block: int
    in_place: bool


def _source(draws: NDArray[np.float64]) -> _Source:
    """``draws (chains, draws, m)`` as a flat float array over its memory and its layout,
    without a copy when its strides are non-negative multiples of 8 bytes and it is aligned and
    writeable (a copy otherwise). Writeable, aligned and C-contiguous, so that one compiled
    version of the kernel serves every input (Numba compiles read-only arrays separately)."""
    arr = np.asarray(draws, dtype=np.float64)
    strides_ok = all(s >= 0 and s % arr.itemsize == 0 for s in arr.strides)
    if not (strides_ok and arr.flags.writeable and arr.flags.aligned):
        arr = np.array(arr, order="C")
    strides = [s // arr.itemsize for s in arr.strides]
    span = sum((size - 1) * stride for size, stride in zip(arr.shape, strides, strict=True)) + 1
    flat = np.lib.stride_tricks.as_strided(arr, shape=(span,), strides=(arr.itemsize,))
    chains, n_draws, scalars = arr.shape
    in_place = strides[1] == 1 and strides[0] == n_draws
    block = GATHER_BLOCK if strides[2] == 1 and scalars > 1 and not in_place else 1
    layout = np.array([*strides, chains, n_draws, scalars, block], dtype=np.int64)
    return _Source(flat, layout, scalars, block, in_place)


def source_statistics(
    sources: Sequence[NDArray[np.float64]],
    wanted: NDArray[np.bool_],
    hdi_prob: float,
    min_draws: int,
    threads: int | None = None,
    *,
    mcse: bool = True,
) -> SourceStatistics:
    """Every statistic of :data:`COLUMNS` for each scalar of the ``sources``, arrays ``(chains,
    draws, m)`` with the same ``chains`` and ``draws`` (a posterior's variables flattened to
    their scalars), whose scalars are numbered in order, source after source.

    The kernel reads each source where it lies (views of the sampler's buffers need no copy):
    scalars whose draws are contiguous in place, the others gathered a block at a time into
    scratch of the thread that computes them. Every scalar's finiteness and extremes are found;
    the statistics only for the scalars with ``wanted[k]`` and finite draws; the split-chain
    statistics only when ``draws >= min_draws``; R-hat needs two chains. ``mcse=False`` skips
    ``mean``, ``sd``, ``split_rhat``, ``ess_mean`` and the MCSEs (``nan``), two fifths of the
    autocovariance work, for the convergence checks. ``threads`` (default: the cores this
    process may use; one below ``_MIN_PARALLEL_DRAWS`` draws in all) run the kernel at once, the
    calling thread among them, each taking the next block of scalars from a shared counter; the
    results do not depend on it.
    """
    prepared = [_source(draws) for draws in sources]
    n_scalars = sum(source.scalars for source in prepared)
    table = np.full((n_scalars, len(COLUMNS)), np.nan)
    finite = np.zeros(n_scalars, dtype=np.bool_)
    extremes = np.full((n_scalars, 2), np.nan)
    result = SourceStatistics(table, finite, extremes)
    if n_scalars == 0:
        return result
    chains, draws = (int(v) for v in prepared[0].layout[3:5])
    if any(tuple(source.layout[3:5]) != (chains, draws) for source in prepared):
        raise ValueError("the sources differ in (chains, draws)")
    if chains * draws == 0:
        return result
    split_size = 2 * chains * (draws // 2)
    scores = normal_scores(max(split_size, 1))
    whole = 1  # the longest transform: a whole split chain, zero padded
    while whole < draws // 2:
        whole *= 2
    twiddles = fft_twiddles(2 * whole)
    wanted = np.require(wanted, dtype=np.bool_, requirements=["C", "W"])
    blocks = sum(-(-source.scalars // source.block) for source in prepared)
    if threads is None:
        threads = usable_cores()
        if n_scalars * chains * draws < _MIN_PARALLEL_DRAWS:
            threads = 1
    threads = max(1, min(threads or 1, blocks))
    gather = max((source.block for source in prepared if not source.in_place), default=0)
    counters = np.zeros(len(prepared), dtype=np.int64)  # the next block of each source to take
    bounds = np.cumsum([0] + [source.scalars for source in prepared])
    # the sources taken a block at a time first, those taken a scalar at a time last, so that
    # the threads finish within one scalar of each other (the results do not depend on it)
    order = sorted(range(len(prepared)), key=lambda v: -prepared[v].block)

    def work() -> None:
        scratch = _scratch(chains, draws, gather)
        # compiled, the kernel follows NumPy's error model silently (0 / 0 is NaN); interpreted
        # (NUMBA_DISABLE_JIT=1), the same arithmetic on NumPy scalars would warn from this
        # module. np.errstate is per thread, so each worker sets it
        with np.errstate(all="ignore"):
            for v in order:
                source = prepared[v]
                rows = slice(bounds[v], bounds[v + 1])
                _statistics_kernel(
                    source.flat,
                    source.layout,
                    wanted[rows],
                    scores,
                    False,
                    twiddles,
                    hdi_prob,
                    min_draws,
                    mcse,
                    counters[v : v + 1],
                    scratch,
                    table[rows],
                    finite[rows],
                    extremes[rows],
                )

    if threads == 1:
        work()
        return result
    # the calling thread works too, beside threads - 1 others
    with ThreadPoolExecutor(max_workers=threads - 1) as pool:
        jobs = [pool.submit(work) for _ in range(threads - 1)]
        work()
        for job in jobs:
            job.result()
    return result
