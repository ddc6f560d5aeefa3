"""Run NumPy's linear algebra on one BLAS thread while chains sample in threads.

OpenBLAS starts its own worker threads for matrices of a few hundred rows. Called from a chain
thread while the other chains keep both cores busy, those workers spin against the chains: on a
loaded 2-core machine the low-rank metric update (a few SVDs and eigendecompositions of ~200 x 200
matrices) measured 6.5 s with OpenBLAS's default threads and 68 ms with one. ``single_blas_thread``
limits them for the duration of a block, with ``threadpoolctl`` when it is installed, else by
calling OpenBLAS's ``set_num_threads`` through ``ctypes`` on the libraries this process has loaded
(Linux), else not at all.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

_LOCK = threading.Lock()
_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")


@cache
def _openblas_controls() -> list[tuple]:
    """``(get_num_threads, set_num_threads)`` of every OpenBLAS loaded in this process."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line and ".so" in line}
    except OSError:
        return []
    controls = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    controls.append((get, put))
                    break
            else:
                continue
            break
    return controls


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Within the block, BLAS and LAPACK calls use one thread (restored afterwards)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    with _LOCK:  # the thread count is process-wide: one block at a time changes it
        if threadpool_limits is not None:
            with threadpool_limits(limits=1, user_api="blas"):
                yield
            return
        controls = _openblas_controls()
        before = [get() for get, _ in controls]
        for _, put in controls:
            put(1)
        try:
            yield
        finally:
            for (_, put), n in zip(controls, before, strict=True):
                put(n)
