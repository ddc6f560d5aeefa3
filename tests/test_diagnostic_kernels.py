"""The compiled diagnostics equal the NumPy/SciPy code they replaced, to 1e-12 relative.

The oracle is ``tests/diagnostics_oracle.py``: the array-level functions of
``nutslite/diagnostics.py`` and ``nutslite/summary.py`` before the kernels (rankdata, scipy.fft),
which matched ArviZ 0.23. These are deterministic comparisons, not statistical tests: a mismatch
beyond 1e-12 relative is a bug, whatever the seed.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from diagnostics_oracle import oracle
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from scipy.signal import lfilter

from nutslite import _diagnostic_kernels as kernels
from nutslite._numba import JIT_DISABLED
from nutslite.diagnostics import (
    DiagnosticWarning,
    all_statistics,
    ess_bulk,
    ess_mean,
    ess_tail,
    mcse_mean,
    mcse_sd,
    rhat,
    scalar_diagnostics,
    split_rhat,
)
from nutslite.summary import hdi

RTOL = 1e-12
EXAMPLES = max(60, settings.default.max_examples)
REPO = Path(__file__).resolve().parents[1]
PUBLIC = {
    "r_hat": rhat,
    "split_rhat": split_rhat,
    "ess_bulk": ess_bulk,
    "ess_tail": ess_tail,
    "ess_mean": ess_mean,
    "mcse_mean": mcse_mean,
    "mcse_sd": mcse_sd,
}


def ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float) -> np.ndarray:
    """AR(1) draws along the last axis, started from N(0, 1)."""
    noise = rng.standard_normal(shape)
    noise[..., 0] /= np.sqrt(max(1e-3, 1 - phi**2))
    return lfilter([1.0], [1.0, -phi], noise, axis=-1)


def assert_equals_oracle(batch: np.ndarray, hdi_prob: float = 0.94) -> None:
    """Every kernel column equals the oracle's to 1e-12 relative (NaN where it is NaN)."""
    ours = kernels.scalar_statistics(batch, np.ones(len(batch), bool), hdi_prob, 4)
    theirs = oracle(batch, hdi_prob)
    for j, name in enumerate(kernels.COLUMNS):
        np.testing.assert_allclose(
            ours[:, j], theirs[name], rtol=RTOL, atol=0, equal_nan=True, err_msg=name
        )


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    scalars=st.integers(1, 3),
    chains=st.integers(1, 6),
    draws=st.integers(4, 300),
    phi=st.floats(-0.9, 0.995),
    rounding=st.sampled_from([None, 1.0, 0.25]),
    constant_chain=st.booleans(),
    constant_scalar=st.booleans(),
    hdi_prob=st.sampled_from([0.5, 0.94, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_kernels_equal_the_oracle(
    scalars, chains, draws, phi, rounding, constant_chain, constant_scalar, hdi_prob, seed
):
    rng = np.random.default_rng(seed)
    batch = ar1(rng, (scalars, chains, draws), phi) + rng.standard_normal((scalars, chains, 1))
    if rounding is not None:  # ties, as for discrete or rounded draws
        batch = np.round(batch / rounding) * rounding
    if constant_chain:
        batch[0, 0] = 1.5
    if constant_scalar:
        batch[-1] = -0.25
    assert_equals_oracle(batch, hdi_prob)


@pytest.mark.parametrize(
    "batch",
    [
        np.ones((1, 4, 100)),  # constant
        np.arange(4.0)[None, :, None] * np.ones((1, 4, 60)),  # constant chains, different values
        np.where(np.arange(400).reshape(1, 4, 100) % 2, 1.0, -1.0),  # folded draws constant
        np.tile([0.0, 0.0, 0.0, 1.0], (1, 3, 25)),  # many ties at one value
        np.array([[[0.0, -0.0, 1.0, -1.0, 0.0], [2.0, -0.0, 0.0, 0.0, 1.0]]]),  # signed zeros
        np.random.default_rng(3).standard_normal((2, 1, 4)),  # shortest chains, one chain
        1e-300 * np.random.default_rng(4).standard_normal((1, 2, 50)),  # tiny but not constant
    ],
    ids=["constant", "constant-chains", "two-point", "ties", "signed-zeros", "short", "tiny"],
)
def test_degenerate_draws_equal_the_oracle(batch):
    assert_equals_oracle(batch)


def test_slow_mixing_uses_the_fft_and_equals_the_oracle():
    # phi = 0.999: the autocorrelations stay positive for hundreds of lags, so they come from
    # the blocked transforms: one block per chain (4 x 1500), or segments of 1024 draws whose
    # scan runs past lag 1024 and repeats with blocks of 4096 (2 x 12,000)
    rng = np.random.default_rng(20)
    assert_equals_oracle(ar1(rng, (2, 4, 1500), 0.999))
    assert_equals_oracle(ar1(rng, (1, 2, 12_000), 0.9995))


def test_draws_beyond_the_prefetch_threshold_equal_the_oracle():
    # more than PREFETCH_MIN_DRAWS pooled draws: the sort and the scatters of the normal scores
    # prefetch; some draws tied, so the average ranks of ties are scattered too
    batch = ar1(np.random.default_rng(27), (1, 2, kernels.PREFETCH_MIN_DRAWS // 2 + 10), 0.5)
    batch[0, :, ::7] = np.round(batch[0, :, ::7], 1)
    assert_equals_oracle(batch)


def test_blocked_autocovariances_equal_direct_sums():
    rng = np.random.default_rng(21)
    for chains, n, block in [(1, 5, 8), (3, 17, 4), (4, 64, 16), (5, 300, 32), (2, 100, 128)]:
        centred = rng.standard_normal(chains * n)
        acov = np.full(n, np.nan)
        twiddles = kernels.fft_twiddles(2 * block)
        kernels._blocked_autocovariance_sums(centred, chains, n, block, twiddles, acov)
        rows = centred.reshape(chains, n)
        lags = min(block + 1, n)
        direct = [np.sum(rows[:, : n - t] * rows[:, t:]) for t in range(lags)]
        scale = np.sum(rows**2)
        np.testing.assert_allclose(acov[:lags], direct, rtol=0, atol=1e-13 * scale)
        assert np.isnan(acov[lags:]).all()


def test_fft_equals_numpys():
    rng = np.random.default_rng(22)
    for size in (2, 4, 8, 1024):
        x = rng.standard_normal(size) + 1j * rng.standard_normal(size)
        re, im = x.real.copy(), x.imag.copy()
        kernels._fft(re, im, kernels.fft_twiddles(size), False)
        reverse = np.empty(size, np.int64)
        kernels._bit_reversal(size, reverse)
        bits = size.bit_length() - 1
        assert [int(f"{k:0{bits}b}"[::-1] or "0", 2) for k in range(size)] == list(reverse)
        np.testing.assert_allclose(
            (re + 1j * im)[reverse], np.fft.fft(x), rtol=0, atol=1e-13 * size
        )


def test_packed_lag_products_are_the_python_sums_bit_for_bit():
    """The compiled ``<4 x double>`` kernel adds the same products in the same order per lane
    as the Python definition, so the eight sums are equal, not merely close."""
    from nutslite._numba import jit

    @jit
    def compiled(head, tail, count):
        return kernels.lag_products(head, tail, count)

    rng = np.random.default_rng(5)
    for count in (0, 1, 5, 256):
        tail = rng.standard_normal(count + kernels.LAG_BLOCK - 1) * 1e3
        head = rng.standard_normal(count)
        assert compiled(head, tail, count) == kernels.lag_products(head, tail, count)


@pytest.mark.parametrize("n", [40, 700])
def test_lag_blocks_equal_direct_sums(n):
    rng = np.random.default_rng(22)
    chains = 3
    centred = rng.standard_normal(chains * n)
    rows = centred.reshape(chains, n)
    sums = np.empty(kernels.LAG_BLOCK)
    for first in (0, 8, 33, 39, n - 1):
        kernels._lag_block(centred, chains, n, first, sums)
        lags = range(first, first + kernels.LAG_BLOCK)
        direct = [np.sum(rows[:, : n - t] * rows[:, t:]) if t < n else 0.0 for t in lags]
        # both sums round; their difference is bounded by a few ulps per 256-term block
        bound = [8e-16 * np.sum(np.abs(rows[:, : n - t] * rows[:, t:])) if t < n else 0.0
                 for t in lags]
        assert np.all(np.abs(sums - direct) <= np.maximum(bound, 1e-300))


@pytest.mark.parametrize("size", [1, 7, 8, 127, 128, 129, 1000, 4001, 70_000])
def test_pairwise_sums_are_numpys(size):
    values = np.random.default_rng(size).standard_normal(size) * 1e3 + 0.1
    pw = np.empty(kernels.PAIRWISE_SCRATCH)
    assert kernels._pairwise_sum(values, pw) == values.sum()
    assert kernels._mean(values, pw) == values.mean()
    if size > 1:
        assert kernels._mean_and_variance(values, np.empty(size), pw)[1] == values.var(ddof=1)


@pytest.mark.parametrize("size", [3, 200, 20_000])
def test_radix_argsort_sorts(size):
    rng = np.random.default_rng(size)
    cases = [
        rng.standard_normal(size),
        rng.uniform(1, 2, size),  # the top digits are shared: those passes are skipped
        np.round(rng.standard_normal(size)),  # ties and signed zeros
        -np.exp(rng.standard_normal(size) * 50),
    ]
    for values in cases:
        order = np.empty(size, np.int64)
        keys = np.empty((2, size), np.uint64)
        counts = np.empty((8, 1 << kernels.RADIX_BITS_LARGE), np.int64)
        kernels._radix_argsort(values, order, keys[0], keys[1], np.empty(size, np.int64), counts)
        np.testing.assert_array_equal(np.sort(order), np.arange(size))
        np.testing.assert_array_equal(values[order], np.sort(values))


@pytest.mark.parametrize("size", [1, 3, 200, 20_000, kernels.PREFETCH_MIN_DRAWS + 1])
def test_bucket_argsort_is_a_stable_sort(size):
    rng = np.random.default_rng(size)
    clumped = rng.standard_normal(size)
    clumped[: size // 2] = 1e-9 * rng.standard_normal(size // 2)  # long buckets: radix sorted
    cases = [
        rng.standard_normal(size),
        np.round(rng.standard_normal(size)),  # ties and signed zeros
        clumped,
        np.full(size, 2.5),  # constant
        1.0 + 1e-300 * rng.standard_normal(size),  # a range too small for the bucket map
        np.where(rng.random(size) < 0.5, -1e308, 1e308) * rng.random(size),  # a range too large
    ]
    for values in cases:
        order, local, spare_local = np.empty((3, size), np.int64)
        buckets = np.empty(kernels.BUCKETS_PER_DRAW * size, np.int64)
        srt = np.empty(size)
        keys = np.empty((2, size), np.uint64)
        counts = np.empty((8, 1 << kernels.RADIX_BITS_LARGE), np.int64)
        low, high = kernels._extremes(values)
        kernels._bucket_argsort(
            values, low, high, order, srt, buckets, local, spare_local, keys[0], keys[1], counts
        )
        np.testing.assert_array_equal(np.sort(order), np.arange(size))
        np.testing.assert_array_equal(srt.view(np.uint64), values[order].view(np.uint64))
        np.testing.assert_array_equal(srt, np.sort(values))
        # stable: draws with the same bits keep their order (-0.0 may precede 0.0)
        same = srt[1:].view(np.uint64) == srt[:-1].view(np.uint64)
        assert np.all(order[1:][same] > order[:-1][same])


def test_public_functions_equal_the_kernel_columns_and_handle_nan():
    rng = np.random.default_rng(23)
    batch = ar1(rng, (4, 3, 120), 0.6)
    batch[2, 1, 7] = np.nan
    theirs = oracle(batch[[0, 1, 3]])
    for name, function in PUBLIC.items():
        with pytest.warns(DiagnosticWarning, match="1 of 4 scalar"):
            values = function(batch)
        assert np.isnan(values[2])
        np.testing.assert_allclose(values[[0, 1, 3]], theirs[name], rtol=RTOL, atol=0)
    with pytest.warns(DiagnosticWarning, match="NaN"):
        table = all_statistics(batch)
    assert np.isnan(table["hdi_low"][2]) and np.isnan(table["mean"][2])
    np.testing.assert_allclose(hdi(batch[[0, 1, 3]]), np.c_[theirs["hdi_low"], theirs["hdi_high"]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        joint = scalar_diagnostics(batch, warn=False)
    np.testing.assert_array_equal(joint["ess_tail"][[0, 1, 3]], table["ess_tail"][[0, 1, 3]])


def test_results_do_not_depend_on_the_threads():
    batch = ar1(np.random.default_rng(24), (7, 2, 80), 0.3)
    usable = np.ones(7, bool)
    one = kernels.scalar_statistics(batch, usable, 0.94, 4, threads=1)
    three = kernels.scalar_statistics(batch, usable, 0.94, 4, threads=3)
    np.testing.assert_array_equal(one, three)


INTERPRETED_SCRIPT = """
import sys, numpy as np
from nutslite._diagnostic_kernels import scalar_statistics, source_statistics
x = np.random.default_rng(5).standard_normal((3, 3, 41)).cumsum(axis=-1)
x[1] = np.round(x[1])
# a random walk of 2 x 1500 draws: the blocked FFTs of 2048 points (radix-4 passes, one radix-2
# stage, the vectorised spectrum products), as compiled kernels and as their Python definitions
walk = np.random.default_rng(6).standard_normal((1, 2, 1500)).cumsum(axis=-1)
np.save(sys.argv[1], np.concatenate([
    scalar_statistics(x, np.ones(3, bool), 0.94, 4),
    scalar_statistics(walk, np.ones(1, bool), 0.94, 4),
    # the same draws as a posterior array (chains, draws, 3), gathered in a block
    source_statistics([np.ascontiguousarray(x.transpose(1, 2, 0))], np.ones(3, bool), 0.94, 4)[0],
]))
"""


def test_interpreted_kernels_give_the_compiled_values(tmp_path):
    """The same source runs under NUMBA_DISABLE_JIT=1 and gives the compiled bits."""
    out = {}
    for flag in ("0", "1"):
        path = tmp_path / f"jit{flag}.npy"
        env = dict(os.environ, NUMBA_DISABLE_JIT=flag)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        subprocess.run([sys.executable, "-c", INTERPRETED_SCRIPT, str(path)], env=env, check=True)
        out[flag] = np.load(path)
    np.testing.assert_array_equal(out["0"], out["1"])


def test_import_and_a_call_pull_in_no_scipy_stats_fft_or_special():
    code = (
        "import sys, numpy as np, nutslite.diagnostics, nutslite.summary\n"
        "nutslite.diagnostics.ess_bulk(np.random.default_rng(1).normal(size=(2, 2, 50)))\n"
        "print([m for m in ('scipy.stats', 'scipy.fft', 'scipy.special', 'matplotlib') "
        "if m in sys.modules])"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == "[]"


SCORE_SIZES = [1, 2, 3, 7, 1000, 4000, 8000, 33_334, 66_670, 133_340, 500_001, 10**6]


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(
            size, marks=pytest.mark.skipif(JIT_DISABLED and size > 10_000, reason="interpreted")
        )
        for size in SCORE_SIZES
    ],
)
def test_normal_scores_are_scipys_ndtri_bit_for_bit(size):
    """The table of Blom scores equals ``scipy.special.ndtri`` at every average rank, bit for
    bit (Cephes' algorithm, its constants and its order of operations), so that the rank
    statistics are SciPy's, down to the rounding noise of constant chains."""
    from scipy.special import ndtri

    ranks = np.arange(2, 2 * size + 1) / 2.0
    expected = ndtri((ranks - 3 / 8) / (size + 1 / 4))
    scores = kernels.normal_scores(size)
    assert scores.shape == expected.shape
    np.testing.assert_array_equal(scores.view(np.int64), expected.view(np.int64))
    kernels.normal_scores.cache_clear()  # the largest tables are 16 MB


def test_inverse_normal_cdf_is_scipys_ndtri_bit_for_bit():
    """Every branch of :func:`_ndtri` (the middle, the tail and the far tail of either side)
    at probabilities spread over the whole open interval, as the compiled kernel runs it."""
    from scipy.special import ndtri

    rng = np.random.default_rng(27)
    count = 2_000 if JIT_DISABLED else 200_000
    p = np.concatenate([
        rng.random(count),
        np.exp(-rng.uniform(0, 700, count)),  # far into the lower tail (p < exp(-32) too)
        1.0 - np.exp(-rng.uniform(0, 36, count)),  # the upper tail, as 1 - p rounds it
        [5e-324, 1e-300, np.exp(-2), 1 - np.exp(-2), 0.5, np.nextafter(1.0, 0.0)],
    ])
    p = p[(p > 0) & (p < 1)]

    @njit
    def quantiles(p, out):
        for i in range(p.shape[0]):
            out[i] = kernels._ndtri(p[i])

    ours = np.empty_like(p)
    quantiles(p, ours)
    np.testing.assert_array_equal(ours.view(np.int64), ndtri(p).view(np.int64))


@pytest.mark.skipif(JIT_DISABLED, reason="nothing is compiled with NUMBA_DISABLE_JIT=1")
def test_read_only_draws_need_no_second_compilation():
    batch = ar1(np.random.default_rng(25), (2, 2, 30), 0.2)
    kernels.scalar_statistics(batch, np.ones(2, bool), 0.94, 4)
    signatures = len(kernels._statistics_kernel.signatures)
    batch.flags.writeable = False
    kernels.scalar_statistics(batch, np.ones(2, bool), 0.94, 4)
    assert len(kernels._statistics_kernel.signatures) == signatures


def test_convergence_checks_skip_only_the_mcse_columns():
    batch = ar1(np.random.default_rng(26), (3, 4, 90), 0.7)
    usable = np.ones(3, bool)
    full = kernels.scalar_statistics(batch, usable, 0.94, 4)
    short = kernels.scalar_statistics(batch, usable, 0.94, 4, mcse=False)
    for j, name in enumerate(kernels.COLUMNS):
        if name in ("mean", "sd", "split_rhat", "ess_mean", "mcse_mean", "mcse_sd"):
            assert np.isnan(short[:, j]).all(), name
        else:
            np.testing.assert_array_equal(short[:, j], full[:, j], err_msg=name)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    widths=st.lists(st.integers(0, 19), min_size=1, max_size=4),
    chains=st.integers(1, 4),
    draws=st.integers(0, 60),
    layout=st.sampled_from(["posterior", "fortran", "reversed", "read-only", "every-other"]),
    nan_at=st.integers(-1, 40),
    constant_at=st.integers(-1, 40),
    threads=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_sources_read_in_place_give_the_batch_values(
    widths, chains, draws, layout, nan_at, constant_at, threads, seed
):
    """Variables ``(chains, draws, m)`` read where they lie (gathered in blocks of 8 scalars,
    any strides, read-only, NaN, constant, single chains, no draws) give the bits of the copied
    batch ``(K, chains, draws)``, and every scalar's finiteness and extremes."""
    rng = np.random.default_rng(seed)
    total = sum(widths)
    batch = ar1(rng, (total, chains, draws), 0.6) if draws else np.empty((total, chains, 0))
    if 0 <= nan_at < total and draws:
        batch[nan_at, -1, draws // 2] = np.nan if nan_at % 2 else np.inf
    if 0 <= constant_at < total:
        batch[constant_at] = 0.5
    sources, first = [], 0
    for width in widths:
        part = batch[first : first + width].transpose(1, 2, 0)  # (chains, draws, width)
        first += width
        if layout == "posterior":
            part = np.ascontiguousarray(part)
        elif layout == "fortran":
            part = np.asfortranarray(part)
        elif layout == "reversed":  # negative strides: copied before the kernel reads them
            part = np.ascontiguousarray(part[:, ::-1])[:, ::-1]
        elif layout == "read-only":
            part = np.ascontiguousarray(part)
            part.flags.writeable = False
        else:  # every other column of a wider array
            wide = np.zeros(part.shape[:2] + (2 * width,))
            wide[:, :, ::2] = part
            part = wide[:, :, ::2]
        sources.append(part)
    wanted = rng.random(total) < 0.8
    got = kernels.source_statistics(sources, wanted, 0.94, 4, threads=threads)
    expected = kernels.scalar_statistics(batch, wanted, 0.94, 4, threads=1)
    np.testing.assert_array_equal(got.table, expected)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(batch).all(axis=(1, 2)) & (chains * draws > 0)
    np.testing.assert_array_equal(got.finite, finite)
    if finite.any():
        np.testing.assert_array_equal(got.extremes[finite, 0], batch[finite].min(axis=(1, 2)))
        np.testing.assert_array_equal(got.extremes[finite, 1], batch[finite].max(axis=(1, 2)))
    assert np.isnan(got.extremes[~finite]).all()
    assert np.isnan(got.table[~(finite & wanted)]).all()
