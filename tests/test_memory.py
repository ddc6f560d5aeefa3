"""``nutslite._memory``: blocks aligned for huge pages, buffers kept out of them, and variables
as views of one block; and what ``nl.sample`` stores in its block."""

import mmap
import os
import pickle
import sys

import numpy as np
import pytest

import nutslite as nl
from nutslite import _memory
from nutslite._memory import (
    HUGE_PAGE,
    NUMPY_HUGE_PAGE_MIN,
    empty_block,
    empty_views,
    small_pages,
)
from nutslite.models import zoo


def test_a_large_block_starts_on_a_huge_page_boundary():
    n = NUMPY_HUGE_PAGE_MIN // 8 + 3
    block = empty_block(n)
    assert block.shape == (n,) and block.dtype == np.float64 and block.flags.c_contiguous
    start = block.ctypes.data
    assert start % HUGE_PAGE == 0  # its first huge page, and its last, inside the allocation:
    last_page_end = -(-(start + block.nbytes) // HUGE_PAGE) * HUGE_PAGE
    assert last_page_end <= block.base.ctypes.data + block.base.nbytes
    block[:] = 1.0  # the whole vector lies inside its allocation
    assert block.sum() == n


def _vm_flags(address):
    """The kernel's ``VmFlags`` of the mapping holding ``address`` (``/proc/self/smaps``)."""
    inside = False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise advice is Linux's")
def test_small_pages_keeps_a_large_buffer_out_of_huge_pages():
    rows = np.empty(NUMPY_HUGE_PAGE_MIN // 8 + 1000)
    inner = -(-rows.ctypes.data // mmap.PAGESIZE) * mmap.PAGESIZE
    # memory used before may carry the advice already: ask for huge pages first, as NumPy does
    _memory._madvise()(inner, 2 * mmap.PAGESIZE, mmap.MADV_HUGEPAGE)
    assert "nh" not in _vm_flags(inner)
    assert small_pages(rows) is rows
    assert "nh" in _vm_flags(inner)  # "no huge pages", the advice taken
    rows[:] = 2.0  # and the memory is the array's as before
    assert rows.sum() == 2.0 * rows.size


def test_small_pages_leaves_a_small_buffer_alone():
    rows = np.empty(1000)
    assert small_pages(rows) is rows


def test_a_small_block_is_a_plain_array():
    block = empty_block(1000)
    assert block.shape == (1000,) and block.base is None


def test_views_are_separate_contiguous_arrays_that_pickle_alone():
    # 4 x 1000 x (2 + 85 + 85) doubles: 5.5 MB, an aligned block
    views = empty_views((4, 1000), {"s": (), "t": (2,), "a": (85,), "b": (85,), "f": ()},
                        {"t": np.int64, "f": np.bool_})
    assert [v.shape for v in views.values()] == [(4, 1000), (4, 1000, 2), (4, 1000, 85),
                                                 (4, 1000, 85), (4, 1000)]
    assert [v.dtype for v in views.values()] == [np.float64, np.int64, np.float64, np.float64,
                                                 np.bool_]
    names = list(views)
    for i, name in enumerate(names):
        assert views[name].flags.c_contiguous and views[name].flags.writeable
        for other in names[i + 1 :]:
            assert not np.shares_memory(views[name], views[other])
    for k, v in enumerate(views.values()):
        v[...] = k
    views["a"][...] = -1.0  # writing one changes no other
    expected = {name: k for k, name in enumerate(views)} | {"a": -1.0, "f": True}  # 4 as bool
    for name, v in views.items():
        assert (v == expected[name]).all(), name
    # a pickle holds the variable's own values, not the block's
    assert len(pickle.dumps(views["s"])) < views["s"].nbytes + 1000
    assert np.array_equal(pickle.loads(pickle.dumps(views["b"])), views["b"])


def test_the_warmup_draws_are_stored_only_when_kept():
    """Without ``save_warmup`` the chains write only the draws after warmup (row ``t - tune``):
    the same draws and statistics as a run that keeps every iteration's."""
    settings = dict(draws=40, tune=60, chains=2, seed=3, progress=False, warn=False)
    kept = nl.sample(zoo.std_normal(3), save_warmup=True, **settings)
    not_kept = nl.sample(zoo.std_normal(3), **settings)
    assert not_kept.warmup_unconstrained is None and kept.warmup_unconstrained.shape == (2, 60, 3)
    assert np.array_equal(kept.unconstrained, not_kept.unconstrained)
    assert np.array_equal(kept.posterior["x"], not_kept.posterior["x"])
    for name, values in kept.sample_stats.items():
        assert np.array_equal(values, not_kept.sample_stats[name]), name
    assert np.array_equal(kept.warmup["inv_mass_matrix"], not_kept.warmup["inv_mass_matrix"])


def test_a_large_fill_split_between_threads_gives_the_same_values(monkeypatch):
    """``fill_by_chain``: radon's constrain of 3 chains filled in threads (the size threshold
    lowered to 0, as for a long run) equals the one-thread fill bit for bit."""
    import importlib

    model = nl.models.radon("noncentered")
    theta = np.random.default_rng(1).standard_normal((3, 50, model.dim))
    one = model.constrain(theta)
    rows = []
    fill = _memory.fill_by_chain

    def watched(f, th, out):
        def recording(part, out_part):
            rows.append(part.shape[0])
            f(part, out_part)
        fill(recording, th, out)

    monkeypatch.setattr(_memory, "PARALLEL_FILL_MIN_BYTES", 0)
    # the module, not the function nl.models.radon that shadows its name
    monkeypatch.setattr(importlib.import_module("nutslite.models.radon"), "fill_by_chain", watched)
    split = model.constrain(theta)
    workers = min(3, os.cpu_count() or 1)
    assert len(rows) == workers and sum(rows) == 3  # the chains split between the workers
    assert split.keys() == one.keys()
    for name in one:
        assert split[name].flags.c_contiguous
        np.testing.assert_array_equal(split[name], one[name])
