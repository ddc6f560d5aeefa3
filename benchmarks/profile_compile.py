"""Where a cold start's compile time goes: ``import nutslite`` to the first radon draw.

Usage::

    python benchmarks/profile_compile.py            # nutslite, empty cache then warm cache
    python benchmarks/profile_compile.py --nutpie   # and nutpie's compile of the same model

Each measurement runs in a fresh process. The cold one points ``NUTSLITE_CACHE_DIR`` (and, for
nutpie, Numba's and PyTensor's caches) at an empty folder; the warm one reuses it. Times are wall
seconds and the process's CPU seconds (all threads; a loaded machine inflates the wall time far more
than the CPU time). For nutslite, Numba's compile events give every function compiled, nested as
the compiles nest, with the time spent holding LLVM's lock (optimisation and machine code) counted
against the innermost function being compiled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, threading, time
from numba.core import event

records = []

class Listener(event.Listener):
    def on_start(self, ev):
        records.append((True, ev.kind, time.perf_counter(), ev.data))

    def on_end(self, ev):
        records.append((False, ev.kind, time.perf_counter(), ev.data))

for kind in ("numba:compile", "numba:llvm_lock"):
    event.register(kind, Listener())
sampler = sys.argv[1]
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
    nl.sample(model, draws=1, tune=1, chains=1, cores=1, seed=0, progress=False)
else:
    nutpie.compile_pymc_model(_peers.pymc_radon("noncentered", _peers.data_spec_to_data(
        {"kind": "minnesota"})))
t2, c2 = time.perf_counter(), time.process_time()
stack, compiles, llvm_start = [], [], None
for start, kind, t, data in records:
    if kind == "numba:compile":
        if start:
            stack.append([data["dispatcher"].py_func.__qualname__, t, 0.0])
        else:
            name, t_start, llvm = stack.pop()
            compiles.append((len(stack), name, t - t_start, llvm))
    elif start:
        llvm_start = t
    elif stack:
        stack[-1][2] += t - llvm_start
print(json.dumps({"import_s": t1 - t0, "import_cpu_s": c1 - c0, "compile_s": t2 - t1,
                  "compile_cpu_s": c2 - c1, "compiles": compiles}))
"""


def measure(sampler: str, cache_root: str) -> dict:
    """One fresh process with its caches in ``cache_root``."""
    env = dict(os.environ, NUTSLITE_CACHE_DIR=os.path.join(cache_root, "nutslite"))
    env.pop("NUMBA_CACHE_DIR", None)
    if sampler == "nutpie":
        env["NUMBA_CACHE_DIR"] = os.path.join(cache_root, "numba")
        env["PYTENSOR_FLAGS"] = f"compiledir={os.path.join(cache_root, 'pytensor')}"
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", CHILD, sampler, here], env=env, check=True,
                         capture_output=True, text=True, cwd=os.path.dirname(here))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nutpie", action="store_true", help="also time nutpie's compile")
    args = p.parse_args(argv)
    for sampler in ("nutslite", "nutpie") if args.nutpie else ("nutslite",):
        with tempfile.TemporaryDirectory() as root:
            cold, warm = measure(sampler, root), measure(sampler, root)
        print(f"{sampler}: cold compile {cold['compile_s']:.2f} s wall, "
              f"{cold['compile_cpu_s']:.2f} s CPU; warm {warm['compile_s']:.3f} s wall, "
              f"{warm['compile_cpu_s']:.3f} s CPU; import {warm['import_s']:.2f} s")
        if sampler == "nutslite":
            print("  functions compiled (nested), wall s, of which holding LLVM's lock:")
            for depth, name, seconds, llvm in reversed(cold["compiles"]):
                print(f"  {'  ' * depth}{name:<50s} {seconds:6.2f} {llvm:6.2f}")
    with open("/proc/loadavg") as f:
        print("load average after:", f.read().split()[0])


if __name__ == "__main__":
    main()
