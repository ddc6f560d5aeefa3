"""Run BLAS and LAPACK on one thread while chains sample in threads.

OpenBLAS starts its own worker threads for matrices of a few hundred rows. Called from a chain
thread while the other chains keep the cores busy, those workers spin against the chains:

* on a loaded 2-core machine the low-rank metric update (a few SVDs and eigendecompositions of
  ~200 x 200 matrices) measured 6.5 s with OpenBLAS's default threads and 68 ms with one;
* a log density that calls LAPACK itself (posteriordb's ``gp_pois_regr`` through ``nl.from_pymc``:
  PyTensor's triangular solve calls SciPy's ``dtrtrs``, which OpenBLAS runs in parallel) took
  719 µs per gradient instead of 19 µs with two chains, and 878 s for the whole call instead of
  30 s (``benchmarks/results/posteriors_gp_one_blas_thread.md``).

``single_blas_thread`` limits them for the duration of a block, with ``threadpoolctl`` when it is
installed, else by calling OpenBLAS's ``set_num_threads`` through ``ctypes`` on the libraries this
process has loaded (Linux), else not at all. The limit is process-wide, so the blocks count
rather than lock: the first block to open sets one thread, blocks opened meanwhile (in any
thread: ``nl.sample`` holds one around its chains, and each chain's metric update opens its own)
change nothing, and the last one to close restores the earlier counts.

Finding the loaded libraries means reading ``/proc/self/maps`` and opening each BLAS found, about
1 ms per ``nl.sample`` call (2-3 ms on a loaded machine), more than the rest of its set-up. So they
are found once and found again only when ``sys.modules`` has grown or shrunk since: a BLAS comes
into a process with the extension module that links it. (One loaded by hand with ``ctypes`` after
the first call keeps its own threads, which costs speed, never a draw.)
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()
_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")
_open_blocks = 0
_restore: Callable[[], None] | None = None
# the BLAS controls found, and the number of imported modules when they were found
_found: tuple[int, object] | None = None


def _openblas_controls() -> list[tuple]:
    """``(get_num_threads, set_num_threads)`` of every OpenBLAS loaded in this process now."""
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


def _find_controls() -> object:
    """A ``threadpoolctl.ThreadpoolController`` of the loaded libraries when threadpoolctl is
    installed, else the ``_openblas_controls()`` list; found again only after imports."""
    global _found
    if _found is None or _found[0] != len(sys.modules):
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            controls: object = _openblas_controls()
        else:
            controls = ThreadpoolController()
        _found = (len(sys.modules), controls)
    return _found[1]


def _limit_to_one_thread() -> Callable[[], None]:
    """Set every loaded BLAS to one thread; return what restores the earlier counts."""
    controls = _find_controls()
    if not isinstance(controls, list):  # threadpoolctl's controller
        return controls.limit(limits=1, user_api="blas").restore_original_limits
    before = [get() for get, _ in controls]
    for _, put in controls:
        put(1)

    def restore() -> None:
        for (_, put), n in zip(controls, before, strict=True):
            put(n)

    return restore


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Within the block, BLAS and LAPACK calls use one thread (restored when the last open block
    closes; see the module docstring)."""
    global _open_blocks, _restore
    with _LOCK:
        if _open_blocks == 0:
            _restore = _limit_to_one_thread()
        _open_blocks += 1
    try:
        yield
    finally:
        with _LOCK:
            _open_blocks -= 1
            if _open_blocks == 0 and _restore is not None:
                _restore()
                _restore = None
