"""Where a cold start's compile time goes: ``import nutslite`` to the first radon draw.

Usage::

    python benchmarks/profile_compile.py            # nutslite, empty cache then warm cache
    python benchmarks/profile_compile.py --nutpie   # and nutpie's compile of the same model
    python benchmarks/profile_compile.py --first-call   # nl.sample with the diagnostics, as a
                                                        # user's first call

A second process then times a warm start without the profiler's instrumentation, which imports
``numba`` itself: ``import numba``, then ``import nutslite`` and the radon model (its compiled
log density loaded from the cache), then the first call (the engine loaded from the cache).

Each measurement runs in a fresh process. The cold one points ``NUTSLITE_CACHE_DIR`` (and, for
nutpie, Numba's and PyTensor's caches) at an empty folder; the warm one reuses it. Times are wall
seconds and the process's CPU seconds (all threads; a loaded machine inflates the wall time far more
than the CPU time). For nutslite, every function Numba compiles is listed with the thread CPU
seconds of each phase of its compile: typing, lowering (Numba IR to LLVM IR, wrappers included),
LLVM's function passes on its own code (llvm_fpasses), its module passes with every callee linked
in (llvm_mpasses), machine code, and writing the cache. Each phase is counted without the phases
nested in it (typing a caller compiles its callees, which are counted against them); thread CPU
time is much less inflated than wall time on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import collections, json, sys, threading, time
from numba.core import caching, codegen, event, typed_passes

# thread CPU seconds per (function being compiled, phase), each phase without the phases nested
# in it (typing a caller includes compiling its callees, which are counted against them)
local = threading.local()
phases = collections.defaultdict(float)
parts = collections.defaultdict(float)  # the same, per module of the compile started from Python
PHASES = {
    "typing": (typed_passes.NopythonTypeInference, "run_pass"),
    "lowering": (typed_passes.NativeLowering, "run_pass"),
    "llvm_fpasses": (codegen.CPUCodeLibrary, "_optimize_functions"),
    "llvm_mpasses": (codegen.CPUCodeLibrary, "_optimize_final_module"),
    "machine_code": (codegen.JITCodeLibrary, "_finalize_specific"),
    "cache": (caching.Cache, "save_overload"),
}


def timed(phase, original):
    def run(*args, **kwargs):
        stack = local.__dict__.setdefault("stack", [])
        stack.append([time.thread_time(), 0.0])
        try:
            return original(*args, **kwargs)
        finally:
            start, nested = stack.pop()
            spent = time.thread_time() - start
            if stack:
                stack[-1][1] += spent
            names = local.__dict__.get("names") or ["(outside any compile)"]
            phases[names[-1], phase] += spent - nested
            parts[getattr(local, "part", "(outside any compile)")] += spent - nested
    return run


for phase, (cls, method) in PHASES.items():
    setattr(cls, method, timed(phase, getattr(cls, method)))


class Names(event.Listener):
    def on_start(self, ev):
        names = local.__dict__.setdefault("names", [])
        py_func = ev.data["dispatcher"].py_func
        if not names:  # a compile started from Python: its module names the part it belongs to
            local.part = py_func.__module__
        names.append(py_func.__qualname__)

    def on_end(self, ev):
        local.names.pop()


event.register("numba:compile", Names())
sampler, first_call = sys.argv[1], sys.argv[3] == "first-call"
t0, c0 = time.perf_counter(), time.process_time()
if sampler == "nutslite":
    import nutslite as nl
else:
    import nutpie
    sys.path.insert(0, sys.argv[2])
    import _peers
t1, c1 = time.perf_counter(), time.process_time()
if sampler == "nutslite":
    model = nl.models.radon("noncentered")
    if first_call:  # a user's first call: enough draws for the diagnostics behind the warnings
        import warnings
        from nutslite.diagnostics import MIN_DRAWS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nl.sample(model, draws=MIN_DRAWS, tune=1, chains=1, cores=1, seed=0, progress=False)
    else:
        nl.sample(model, draws=1, tune=1, chains=1, cores=1, seed=0, progress=False)
else:
    nutpie.compile_pymc_model(_peers.pymc_radon("noncentered", _peers.data_spec_to_data(
        {"kind": "minnesota"})))
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"import_s": t1 - t0, "import_cpu_s": c1 - c0, "compile_s": t2 - t1,
                  "compile_cpu_s": c2 - c1,
                  "phases": [[name, phase, s] for (name, phase), s in phases.items()],
                  "parts": parts}))
"""

WARM = r"""
import json, sys, time
clock = lambda: (time.perf_counter(), time.process_time())
t0 = clock()
import numba
t1 = clock()
import nutslite as nl
model = nl.models.radon("noncentered")
t2 = clock()
nl.sample(model, draws=1, tune=1, chains=1, cores=1, seed=0, progress=False)
t3 = clock()
print(json.dumps({name: [b[0] - a[0], b[1] - a[1]] for name, a, b in (
    ("import numba", t0, t1), ("import nutslite, radon model", t1, t2),
    ("first draw (engine from the cache)", t2, t3), ("all", t0, t3))}))
"""


def warm_start(cache_root: str) -> dict:
    """A warm start's parts, wall and CPU seconds, in a fresh uninstrumented process."""
    env = dict(os.environ, NUTSLITE_CACHE_DIR=os.path.join(cache_root, "nutslite"))
    env.pop("NUMBA_CACHE_DIR", None)
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", WARM], env=env, check=True, capture_output=True,
                         text=True, cwd=os.path.dirname(here))
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(sampler: str, cache_root: str, first_call: bool = False) -> dict:
    """One fresh process with its caches in ``cache_root``."""
    env = dict(os.environ, NUTSLITE_CACHE_DIR=os.path.join(cache_root, "nutslite"))
    env.pop("NUMBA_CACHE_DIR", None)
    if sampler == "nutpie":
        env["NUMBA_CACHE_DIR"] = os.path.join(cache_root, "numba")
        env["PYTENSOR_FLAGS"] = f"compiledir={os.path.join(cache_root, 'pytensor')}"
    here = os.path.dirname(os.path.abspath(__file__))
    mode = "first-call" if first_call else "first-draw"
    out = subprocess.run([sys.executable, "-c", CHILD, sampler, here, mode], env=env, check=True,
                         capture_output=True, text=True, cwd=os.path.dirname(here))
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_phases(rows: list) -> None:
    """Thread CPU seconds per compiled function and phase, largest first, and per phase."""
    names = list(dict.fromkeys(phase for _, phase, _ in rows))
    table: dict[str, dict[str, float]] = {}
    for name, phase, seconds in rows:
        table.setdefault(name, {})[phase] = seconds
    print("  thread CPU s per compiled function (Numba's compiles, each without those nested in "
          "it):")
    print(f"  {'function':<44s}" + "".join(f"{p[:13]:>14s}" for p in names) + f"{'total':>8s}")
    for name, row in sorted(table.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"  {name[-44:]:<44s}" + "".join(f"{row.get(p, 0.0):14.2f}" for p in names)
              + f"{sum(row.values()):8.2f}")
    totals = {p: sum(row.get(p, 0.0) for row in table.values()) for p in names}
    print(f"  {'all':<44s}" + "".join(f"{totals[p]:14.2f}" for p in names)
          + f"{sum(totals.values()):8.2f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nutpie", action="store_true", help="also time nutpie's compile")
    p.add_argument("--first-call", action="store_true",
                   help="a user's first nl.sample call (with the diagnostics behind the warnings) "
                        "instead of the first draw, its compile CPU split by module")
    args = p.parse_args(argv)
    for sampler in ("nutslite", "nutpie") if args.nutpie else ("nutslite",):
        with tempfile.TemporaryDirectory() as root:
            cold = measure(sampler, root, args.first_call)
            warm = measure(sampler, root, args.first_call)
            parts = warm_start(root) if sampler == "nutslite" else {}
        print(f"{sampler}: cold compile {cold['compile_s']:.2f} s wall, "
              f"{cold['compile_cpu_s']:.2f} s CPU; warm {warm['compile_s']:.3f} s wall, "
              f"{warm['compile_cpu_s']:.3f} s CPU; import {warm['import_s']:.2f} s")
        if sampler == "nutslite":
            print("  warm start without the profiler, wall / CPU s: " + "; ".join(
                f"{name} {wall:.3f} / {cpu:.3f}" for name, (wall, cpu) in parts.items()))
            print_phases(cold["phases"])
            print("  thread CPU s per module whose function Python called first:")
            for part, seconds in sorted(cold["parts"].items(), key=lambda kv: -kv[1]):
                print(f"  {part:<44s}{seconds:8.2f}")
    with open("/proc/loadavg") as f:
        print("load average after:", f.read().split()[0])


if __name__ == "__main__":
    main()
