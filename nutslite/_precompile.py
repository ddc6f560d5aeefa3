"""Compile the diagnostics in a second process while this one compiles the sampler.

A first ``nl.sample`` call after installing nutslite compiles two independent pieces of code: the
engine, before the first draw, and the diagnostics behind the warnings, after the last (each
several seconds). Numba compiles one function at a time in a process (its compiler lock), so in
one process the two compiles add up. :func:`start_diagnostics_compile` starts a child process
that compiles the diagnostics' kernel into the same on-disk cache (``nutslite._numba.cache_dir``)
on another core; when the parent reaches the checks it waits for the child
(:meth:`DiagnosticsCompile.wait`) and loads the kernel from the cache. Numba writes a cache entry
to a temporary file and renames it, so a child stopped part way leaves no broken entry, and if
the child fails for any reason the parent compiles the kernel itself, as it would without it.

The child shares the parent's process group, so a Ctrl-C at the terminal stops both. If the
parent's call ends early otherwise (an error), the child still finishes, and the next call finds
the diagnostics compiled.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import numpy as np

from nutslite._diagnostic_kernels import _statistics_kernel, source_statistics, usable_cores
from nutslite._numba import cache_dir, needs_compiling

if TYPE_CHECKING:
    import subprocess

__all__ = ["DiagnosticsCompile", "start_diagnostics_compile"]


class DiagnosticsCompile:
    """A child process compiling the diagnostics' kernel into the shared cache."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def wait(self) -> bool:
        """Wait for the child; whether it compiled the kernel into the cache. On ``False`` the
        parent's first call of the kernel compiles it, as without a child."""
        return self.process.wait() == 0 and not needs_compiling(_statistics_kernel)


def start_diagnostics_compile() -> DiagnosticsCompile | None:
    """A child process compiling the diagnostics' kernel, when its next call here would compile
    it (``nutslite._numba.needs_compiling``) and this process may use a second core; else
    ``None``. Its output is discarded: if it fails, the parent compiles, as without it."""
    if usable_cores() < 2 or not needs_compiling(_statistics_kernel):
        return None
    import subprocess  # here: a warm start never needs it

    process = subprocess.Popen(
        child_command(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return DiagnosticsCompile(process)


def child_command() -> list[str]:
    """The child's command line: this process's Python, this nutslite (its folder first on
    ``sys.path``), :func:`compile_diagnostics` with this ``cache_dir()``.

    ``-P`` keeps the working folder off ``sys.path``: run from a checkout of nutslite (as the
    README's main command is), ``python -c`` would otherwise import the checkout's sources rather
    than the installed package the parent runs, and Numba, which checks a cache entry against its
    source file's modification time and size, would then write nothing the parent can load (the
    parent compiled the diagnostics again after the chains: 18.5 s instead of 9.7 s for a first
    run of the README's command)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import sys\n"
        f"sys.path.insert(0, {root!r})\n"
        "from nutslite._precompile import compile_diagnostics\n"
        f"compile_diagnostics({cache_dir()!r})\n"
    )
    return [sys.executable, "-P", "-c", code]


def compile_diagnostics(expected_cache: str) -> None:
    """The child's work: one call of the kernel on a few draws, which compiles it and writes it to
    the cache. The kernel's argument types do not depend on the draws (``source_statistics``
    passes every source as a flat, writeable, C-contiguous array), so this is the version the
    parent's checks call. Exits with status 2 if this process would cache elsewhere."""
    if cache_dir() != expected_cache:
        sys.exit(2)
    draws = np.random.default_rng(0).standard_normal((2, 8, 2))
    source_statistics([draws], np.ones(2, dtype=np.bool_), 0.94, 4, threads=1)
