"""Large float64 buffers that the kernel can back with 2 MiB pages.

Fresh memory costs a page fault per page at its first touch: on a virtual machine about 3 µs per
4 KiB page, 0.8 ms per MB, which a process's first ``nl.sample`` call pays for its draws and the
constrained posterior (``benchmarks/README.md``, "The whole call"). With transparent huge pages
in ``madvise`` mode, NumPy asks for huge pages on every allocation of at least 4 MiB
(``madvise(MADV_HUGEPAGE)``), but the kernel can use one only for an aligned 2 MiB stretch lying
wholly inside the allocation; ``malloc`` returns memory aligned to 16 bytes, so the head and the
tail of a large array, up to 2 MiB each, fault in 4 KiB pages. :func:`empty_block` starts its
buffer on a 2 MiB boundary, which leaves only the tail to small pages; the skipped head is
never touched and costs address space, not memory.
"""

from __future__ import annotations

import numpy as np

HUGE_PAGE = 2**21  # bytes of a transparent huge page on x86-64 and arm64 (4 KiB base pages)
NUMPY_HUGE_PAGE_MIN = 2**22  # NumPy madvises huge pages for allocations from this size on
ITEM = np.dtype(np.float64).itemsize


def empty_block(n: int) -> np.ndarray:
    """An uninitialised float64 vector of ``n`` entries, starting on a ``HUGE_PAGE`` boundary
    when it is large enough for NumPy to ask for huge pages (``NUMPY_HUGE_PAGE_MIN`` bytes).

    The vector is a view of a slightly larger allocation (at most ``HUGE_PAGE`` bytes more, of
    address space only), which stays allocated as long as any view of it."""
    if n * ITEM < NUMPY_HUGE_PAGE_MIN:
        return np.empty(n)
    raw = np.empty(n + HUGE_PAGE // ITEM)
    skip = (-raw.ctypes.data) % HUGE_PAGE // ITEM
    return raw[skip : skip + n]


def empty_views(
    lead: tuple[int, ...], shapes: dict[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """Uninitialised float64 arrays of shape ``(*lead, *shapes[name])`` for each name, as
    consecutive, non-overlapping C-contiguous views of one :func:`empty_block`: written into
    once, they fault in large pages where separate arrays of under 4 MiB each would fault in
    small ones. Writing one never changes another; the block is freed when the last view is."""
    sizes = {name: int(np.prod(lead + shape, dtype=np.int64)) for name, shape in shapes.items()}
    block = empty_block(sum(sizes.values()))
    views, start = {}, 0
    for name, shape in shapes.items():
        views[name] = block[start : start + sizes[name]].reshape(lead + shape)
        start += sizes[name]
    return views
