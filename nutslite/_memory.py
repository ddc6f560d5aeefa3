"""Large float64 buffers that the kernel can back with 2 MiB pages.

Fresh memory costs a page fault per page at its first touch: on a virtual machine about 3 µs per
4 KiB page, 0.8 ms per MB, which a process's first ``nl.sample`` call pays for its draws and the
constrained posterior (``benchmarks/README.md``, "The whole call"). With transparent huge pages
in ``madvise`` mode, NumPy asks for huge pages on every allocation of at least 4 MiB
(``madvise(MADV_HUGEPAGE)``), which fault about ten times cheaper per MB, but the kernel can use
one only for an aligned 2 MiB stretch lying wholly inside the allocation; ``malloc`` returns
memory aligned to 16 bytes, so the head and the tail of a large array, up to 2 MiB each, fault in
4 KiB pages. :func:`empty_block` allocates whole huge pages and starts its vector on the first,
so all of it can fault in huge pages. The price: up to 2 MiB more resident memory, the rest of
the last huge page, once the vector's end is written. :func:`small_pages` does the opposite for a
large buffer that a run writes only in scattered parts.

A caveat measured on the benchmark machine, a virtual machine whose balloon driver reports free
2 MiB blocks to the host (free page reporting, ``page_reporting_order`` 9), so that, we suppose,
a huge page taken from a reported block must be backed by the host again. Filling 11 MB in fresh
huge pages usually took 1.4-5 ms of CPU (4 KiB pages: 5-7 ms), but while other jobs loaded the
machine, some processes took 20-40 ms, in bursts that hit every huge-page allocation of the
moment, NumPy's own ones included; 4 KiB pages, taken from recently freed memory, did not show
it. In ``nl.sample``'s first call of a process, the constrained posterior met such a burst in
about a third of 34 processes on the loaded machine (``benchmarks/profile_call.py``).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import DTypeLike

HUGE_PAGE = 2**21  # bytes of a transparent huge page on x86-64 and arm64 (4 KiB base pages)
NUMPY_HUGE_PAGE_MIN = 2**22  # NumPy madvises huge pages for allocations from this size on
ITEM = np.dtype(np.float64).itemsize


def empty_block(n: int) -> np.ndarray:
    """An uninitialised float64 vector of ``n`` entries, which, when it is large enough for NumPy
    to ask for huge pages (``NUMPY_HUGE_PAGE_MIN`` bytes), fills whole ``HUGE_PAGE`` pages from
    the start of its first one.

    The vector is then a view of an allocation one huge page longer than its pages (address
    space only: the kernel backs just the pages written), which stays allocated as long as any
    view of it."""
    if n * ITEM < NUMPY_HUGE_PAGE_MIN:
        return np.empty(n)
    pages = -(-n * ITEM // HUGE_PAGE)
    raw = np.empty((pages + 1) * HUGE_PAGE // ITEM)
    skip = (-raw.ctypes.data) % HUGE_PAGE // ITEM
    return raw[skip : skip + n]


def small_pages(array: np.ndarray) -> np.ndarray:
    """``array``, its memory kept out of transparent huge pages: ``madvise(MADV_NOHUGEPAGE)`` on
    the whole base pages inside it (Linux; elsewhere nothing is done), for a large buffer of which
    a run writes only scattered parts.

    A huge page faults in whole, 2 MiB zeroed at the first touch of any byte of it. NumPy asks for
    huge pages on every allocation of at least ``NUMPY_HUGE_PAGE_MIN`` bytes, so the tree
    builder's rows (``nutslite.engine.tree.allocate_trajectory``: 4.3 MB per chain for radon, of
    which a run writes the rows of the positions its trajectories reach, near both ends) faulted
    in a few huge pages per chain, zeroing several MB in a process's first call. In base pages,
    the first iterations of radon's 4 chains in a first call took 0.9 ms of CPU instead of 1.8,
    and no later call changed (``benchmarks/README.md``, engine round 25). The advice concerns only
    pages not backed yet; ``array`` is returned as it is."""
    madvise = _madvise()
    if madvise is None or array.nbytes < NUMPY_HUGE_PAGE_MIN:
        return array
    page = mmap.PAGESIZE
    first = -(-array.ctypes.data // page) * page
    end = (array.ctypes.data + array.nbytes) // page * page
    if end > first:
        madvise(first, end - first, mmap.MADV_NOHUGEPAGE)  # advice: a failure changes nothing
    return array


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    """The C library's ``madvise``, where it can refuse huge pages (Linux), else ``None``."""
    if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


CACHE_LINE = 64  # bytes


def aligned_empty(shape: tuple[int, ...], dtype: DTypeLike = np.float64) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` whose first entry starts a
    ``CACHE_LINE``: with a last axis a multiple of 8 doubles long, every row does too, so that a
    packed load or store of 4 or 8 doubles never straddles two cache lines (the tree builder's
    points and rows, ``nutslite.engine.tree.allocate_trajectory``)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
    skip = (-raw.ctypes.data) % CACHE_LINE
    return raw[skip : skip + nbytes].view(dtype).reshape(shape)


def aligned_copy(values: np.ndarray) -> np.ndarray:
    """A float64 copy of ``values`` in an :func:`aligned_empty` array."""
    values = np.asarray(values, dtype=np.float64)
    out = aligned_empty(values.shape)
    out[...] = values
    return out


def empty_views(
    lead: tuple[int, ...],
    shapes: Mapping[str, tuple[int, ...]],
    dtypes: Mapping[str, DTypeLike] | None = None,
) -> dict[str, np.ndarray]:
    """Uninitialised arrays of shape ``(*lead, *shapes[name])`` and dtype ``dtypes[name]``
    (float64 where not given) for each name, as consecutive, non-overlapping C-contiguous views
    of one :func:`empty_block`, each starting on 8 bytes: written into once, they fault in
    large pages where separate arrays of under 4 MiB each would fault in small ones. Writing one
    never changes another, and a pickle or ``.npy`` of one holds its own values only; the block
    is freed when the last view is."""
    dtypes = dtypes or {}
    layout, end = {}, 0  # name: (first byte, entries, dtype)
    for name, shape in shapes.items():
        dtype = np.dtype(dtypes.get(name, np.float64))
        count = int(np.prod(lead + shape, dtype=np.int64))
        layout[name] = (end, count, dtype)
        end += -(-count * dtype.itemsize // ITEM) * ITEM
    raw = empty_block(end // ITEM).view(np.uint8)
    return {
        name: raw[start : start + count * dtype.itemsize].view(dtype).reshape(lead + shapes[name])
        for name, (start, count, dtype) in layout.items()
    }


# below this, one thread: radon's default run (11 MB) filled as fast in one thread as in two
# (benchmarks/profile_call.py, alternated with the one-thread version)
PARALLEL_FILL_MIN_BYTES = 2**26


def fill_by_chain(
    fill: Callable[[np.ndarray, dict[str, np.ndarray]], None],
    theta: np.ndarray,
    out: dict[str, np.ndarray],
) -> None:
    """``fill(theta, out)``, the work split over the first axis (the chains, for a run's draws)
    between up to ``os.cpu_count()`` threads when ``out`` holds at least
    ``PARALLEL_FILL_MIN_BYTES``. NumPy's ufuncs release the GIL on large arrays, and fresh memory
    faults in on every core at once: on the benchmark machine, filling 368 MB of a radon run's
    constrained posterior took 0.27-0.32 s in one thread and 0.16-0.20 s in two
    (``benchmarks/README.md``, "Ctrl-C on a long run"). ``fill`` must compute each row of the
    first axis from the same row of ``theta`` alone, so the values are the same either way."""
    size = sum(v.nbytes for v in out.values())
    workers = min(os.cpu_count() or 1, theta.shape[0]) if theta.ndim > 1 else 1
    if workers < 2 or size < PARALLEL_FILL_MIN_BYTES:
        fill(theta, out)
        return
    bounds = np.linspace(0, theta.shape[0], workers + 1).astype(int)

    def part(i: int) -> None:
        rows = slice(bounds[i], bounds[i + 1])
        fill(theta[rows], {name: v[rows] for name, v in out.items()})

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(part, range(workers)))  # re-raises a thread's error
