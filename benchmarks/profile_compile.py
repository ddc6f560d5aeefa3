"""Where a cold start's compile time goes: ``import nutslite`` to the first radon draw.

Usage::

    python benchmarks/profile_compile.py            # nutslite, empty cache then warm cache
    python benchmarks/profile_compile.py --nutpie   # and nutpie's compile of the same model
    python benchmarks/profile_compile.py --first-call   # nl.sample with the diagnostics, as a
                                                        # user's first call
    python benchmarks/profile_compile.py --warm 9   # where a warm start's time goes: medians of
                                                    # 9 fresh processes, nutslite's own cache
    python benchmarks/profile_compile.py --warm 9 --against ../base   # and another checkout's,
                                                                      # run in turn
    python benchmarks/profile_compile.py --cold 6 --against ../base   # cold starts, A/B: 6 pairs
    python benchmarks/profile_compile.py --cold 3 --against ../base --first-call   # the same, to
                                                  # the end of a user's first default call
    python benchmarks/profile_compile.py --ir       # lines of optimised LLVM IR per function
    python benchmarks/profile_compile.py --imports 8   # import nutslite against import numba,
                                                       # and nutslite --help, 8 fresh processes each

A second process then times a warm start without the profiler's instrumentation, which imports
``numba`` itself: ``import numba``, then ``import nutslite`` and the radon model (its compiled
log density loaded from the cache), then the first call (the engine loaded from the cache).

``--warm N`` breaks a warm start down instead (``bench_radon.py``'s "compile warm": the radon model
and a first ``nl.sample`` call with the diagnostics behind the warnings, from nutslite's own cache,
which the first process fills if it is empty): ``import numba`` and Numba's CPU target set-up
(its registries; Numba's own check for SciPy's BLAS imports ``scipy.linalg``, nutslite's only
looks for the file: ``nutslite._numba._blas_check_without_scipy_linalg``), about what any Numba
program pays;
each cache entry loaded and its parts (index, reading and unpickling the entry, parsing its bitcode,
loading and linking its object code); the cyclic garbage collector; the imports of nutslite's
modules and the libraries it pulls in; and the rest (Python set-up and the chain itself).

``--cold N --against CHECKOUT`` compares cold starts instead: N pairs of fresh processes, this
checkout's and the other's in alternating order, each with an empty cache and without the
profiler, timing the process CPU seconds (all threads) and wall seconds from ``import nutslite``
to the first radon draw; it prints every pair, the medians and the median of the pairs' ratios.
With ``--first-call`` each process instead runs a user's first call, ``nl.sample`` of radon
non-centered with the defaults (4 chains x 2000, the diagnostics behind the warnings), and its CPU
seconds include child processes' (the diagnostics' compile in a second process).

``--ir`` counts instead what LLVM is given to optimise and turn into machine code, which does not
drift with the host as times do: in a fresh process with an empty cache, after a one-draw radon
call and the diagnostics' compile, the lines of optimised LLVM IR in the chain loop's compiled
module and in the diagnostics kernel's, per function (the callees linked into each module, and
the Python wrapper, are functions of their own; LLVM inlined the rest).

``--imports N`` times what a user waits for before anything compiles (issue 13.3): in N rounds of
fresh processes run in turn, with the bytecode cached as ``pip install`` leaves it, ``import numba``
alone, ``import nutslite`` with ``nl.sample``, ``nl.models`` and ``nl.summary`` resolved (its names
load lazily), each timed inside its process, and ``nutslite --help`` end to end (the console script
next to this Python, or ``python -m nutslite`` without one). It prints the medians and ranges, and
the median of the rounds' differences between the second and the first.

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
import re
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

COLD = r"""
import json, resource, sys, time


def children_cpu():  # CPU of finished child processes (the diagnostics' compile, if one ran)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


c0, k0, t0 = time.process_time(), children_cpu(), time.perf_counter()
import nutslite as nl
if sys.argv[1] == "first-call":  # a user's first call: the defaults, warnings and checks on
    nl.sample(nl.models.radon("noncentered"), seed=1, progress=False)
else:
    nl.sample(nl.models.radon("noncentered"), draws=1, tune=1, chains=1, cores=1, seed=0,
              progress=False)
print(json.dumps({"cpu": time.process_time() - c0 + children_cpu() - k0,
                  "wall": time.perf_counter() - t0}))
"""


IR = r"""
import json
import nutslite as nl
from nutslite._diagnostic_kernels import _statistics_kernel
from nutslite._numba import cache_dir
from nutslite._precompile import compile_diagnostics
from nutslite.engine.chain import run_chain
nl.sample(nl.models.radon("noncentered"), draws=1, tune=1, chains=1, cores=1, seed=0,
          progress=False, warn=False)
compile_diagnostics(cache_dir())
print(json.dumps({name: "".join(dispatcher.inspect_llvm().values())
                  for name, dispatcher in (("run_chain", run_chain),
                                           ("_statistics_kernel", _statistics_kernel))}))
"""


def demangled(symbol: str) -> str:
    """The dotted name in a symbol that Numba mangled the Itanium way (``_ZN`` followed by
    length-prefixed parts, then Numba's suffixes): ``_ZN8nutslite6engine5chain9run_chainB2v6...``
    is ``nutslite.engine.chain.run_chain``; any other symbol as it is."""
    if not symbol.startswith("_ZN"):
        return symbol
    parts, i = [], 3
    while i < len(symbol) and symbol[i].isdigit():
        j = i
        while symbol[j].isdigit():
            j += 1
        size = int(symbol[i:j])
        parts.append(symbol[j : j + size])
        i = j + size
    return ".".join(parts).replace("_3clocals_3e", "<locals>") or symbol


def ir_lines(ir: str) -> tuple[int, list[tuple[int, str]]]:
    """Lines of an LLVM module's text, and of each function it defines (largest first)."""
    functions = []
    for part in ir.split("\ndefine ")[1:]:
        symbol = re.search(r'@"?([^\s("]+)', part).group(1)
        functions.append((part[: part.index("\n}")].count("\n"), demangled(symbol)))
    return ir.count("\n"), sorted(functions, reverse=True)


def ir_report() -> None:
    """``--ir``: the two modules' sizes, per function, from a fresh process with an empty cache."""
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUTSLITE_CACHE_DIR=cache)
        env.pop("NUMBA_CACHE_DIR", None)
        out = subprocess.run([sys.executable, "-c", IR], env=env, check=True,
                             capture_output=True, text=True, cwd=os.path.dirname(here))
    for name, ir in json.loads(out.stdout.strip().splitlines()[-1]).items():
        total, functions = ir_lines(ir)
        print(f"{name}: {total} lines of optimised LLVM IR in its module")
        for lines, function in functions:
            print(f"  {lines:7d}  {function}")


WARM_BREAKDOWN = r"""
import gc, json, sys, time, warnings
t_start = time.perf_counter()
import numba
t_numba = time.perf_counter() - t_start
import llvmlite.binding as ll
from numba.core import base, caching, codegen

state = {"target": None, "in_target": False, "entries": [], "gc": 0.0, "gc_target": 0.0,
         "gc_imports": {}, "full": 0}
parts = dict.fromkeys(("index", "read+unpickle", "parse bitcode", "load+link object",
                       "register symbols"), 0.0)
refresh = base.BaseContext.refresh


def timed_refresh(self):  # the first refresh sets Numba's CPU target up (and nests refreshes)
    if state["target"] is not None or state["in_target"]:
        return refresh(self)
    state["in_target"], t = True, time.perf_counter()
    try:
        return refresh(self)
    finally:
        state["target"], state["in_target"] = time.perf_counter() - t, False


base.BaseContext.refresh = timed_refresh


def timed(part, owner, name):
    original = getattr(owner, name)

    def run(*args, **kwargs):
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            parts[part] += time.perf_counter() - t
    setattr(owner, name, run)


timed("index", caching.IndexDataCacheFile, "_load_index")
timed("read+unpickle", caching.IndexDataCacheFile, "_load_data")
timed("parse bitcode", ll, "parse_bitcode")
timed("load+link object", codegen.JITCodeLibrary, "_finalize_specific")
timed("register symbols", codegen.JitEngine, "_load_defined_symbols")
load = caching.Cache.load_overload


def timed_load(self, sig, target_context):
    first, t, gc_before = state["target"] is None, time.perf_counter(), state["gc"]
    result = load(self, sig, target_context)
    seconds = time.perf_counter() - t - (state["target"] if first else 0.0)
    seconds -= state["gc"] - gc_before  # counted as GC
    state["entries"].append([self._py_func.__qualname__.split(".")[-1], seconds,
                             result is not None])
    return result


caching.Cache.load_overload = timed_load
clock = [0.0]


def collected(phase, info):
    if phase == "start":
        clock[0] = time.perf_counter()
        return
    seconds = time.perf_counter() - clock[0]
    state["gc_target" if state["in_target"] else "gc"] += seconds
    state["full"] += info["generation"] == 2
    frame, outermost = sys._getframe(0), None
    while frame is not None and not state["in_target"]:
        if frame.f_code.co_name == "_find_and_load":
            outermost = frame.f_locals.get("name")
        frame = frame.f_back
    if outermost is not None:  # also inside this import's time, as -X importtime counts it
        state["gc_imports"][outermost] = state["gc_imports"].get(outermost, 0.0) + seconds


gc.callbacks.append(collected)
t0 = time.perf_counter()
import nutslite as nl
import nutslite.models, nutslite.sampling  # here, to time them apart (the flow imports them anyway)
t_imports, gc_imports = time.perf_counter() - t0, state["gc"]
model = nl.models.radon("noncentered")
t1 = time.perf_counter()
from nutslite.diagnostics import MIN_DRAWS
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    nl.sample(model, draws=MIN_DRAWS, tune=1, chains=1, seed=0, cores=1, progress=False)
t2 = time.perf_counter()
print(json.dumps({"numba": t_numba, "target": state["target"], "model": t1 - t0,
                  "nutslite_imports": t_imports - gc_imports,
                  "sample": t2 - t1, "gc": state["gc"], "gc_target": state["gc_target"],
                  "gc_imports": state["gc_imports"],
                  "full_collections": state["full"], "entries": state["entries"],
                  "parts": parts}))
"""

# modules whose import a warm start pays for besides Numba's own (cumulative seconds each)
WATCHED_IMPORTS = ("scipy.special", "threadpoolctl")  # each imported once, inside nl.sample


def _warm_row(root: str, env: dict) -> dict:
    """One warm start of the nutslite checkout in ``root``, in a fresh process."""
    import re

    out = subprocess.run([sys.executable, "-X", "importtime", "-c", WARM_BREAKDOWN], env=env,
                         check=True, capture_output=True, text=True, cwd=root)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    imports = {"nutslite's modules": row["nutslite_imports"]}
    imports.update(dict.fromkeys(WATCHED_IMPORTS, 0.0))
    for line in out.stderr.splitlines():  # "import time: self | cumulative | name"
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| *(\S+)", line)
        if match is not None and match[2] in WATCHED_IMPORTS:  # without the GC inside
            imports[match[2]] += int(match[1]) / 1e6 - row["gc_imports"].get(match[2], 0.0)
    row["imports"] = imports
    return row


def warm_breakdown(runs: int, others: list[str]) -> None:
    """Medians over ``runs`` fresh processes of a warm start's parts, wall seconds, for this
    checkout and each of ``others`` (other nutslite checkouts), run in turn."""
    import statistics

    roots = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), *others]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as after pip install: bytecode cached
    for root in roots:  # fills an empty cache
        subprocess.run([sys.executable, "-c", WARM_BREAKDOWN], env=dict(env, PYTHONPATH=root),
                       check=True, capture_output=True, cwd=root)
    rows: dict[str, list[dict]] = {root: [] for root in roots}
    for _ in range(runs):
        for root in roots:
            rows[root].append(_warm_row(root, dict(env, PYTHONPATH=root)))

    def rest(r: dict) -> float:
        counted = r["target"] + sum(e[1] for e in r["entries"]) + sum(r["imports"].values())
        return r["model"] + r["sample"] - counted - r["gc"]

    first = rows[roots[0]][0]
    names = list(dict.fromkeys(e[0] for r in rows[roots[0]] for e in r["entries"]))
    lines = [
        ("import numba (floor)", lambda r: r["numba"]),
        ("Numba's CPU target set-up, its BLAS check incl.", lambda r: r["target"]),
        ("  of which the GC", lambda r: r["gc_target"]),
        ("model + first call (bench_radon's compile warm without import numba)",
         lambda r: r["model"] + r["sample"]),
        ("nutslite's own share (that, without the target set-up)",
         lambda r: r["model"] + r["sample"] - r["target"]),
        (f"  loading the {len(first['entries'])} cache entries (without GC)",
         lambda r: sum(e[1] for e in r["entries"])),
        *((f"    {name}", lambda r, n=name: sum(e[1] for e in r["entries"] if e[0] == n))
          for name in names),
        *((f"    (all entries) {part}", lambda r, p=part: r["parts"][p])
          for part in first["parts"]),
        ("  cyclic GC outside the target set-up", lambda r: r["gc"]),
        ("    full collections", lambda r: r["full_collections"]),
        *((f"  import {name} (without GC)", lambda r, n=name: r["imports"][n])
          for name in first["imports"]),
        ("  the rest (Python set-up, the chain, the checks)", rest),
    ]
    print(f"warm start, medians of {runs} fresh processes (run in turn), wall s; load average "
          f"{os.getloadavg()[0]:.1f} at the end; entries all cache hits: "
          f"{all(e[2] for rs in rows.values() for r in rs for e in r['entries'])}")
    print(f"{'':<72s}" + "".join(f"{os.path.basename(root)[-12:]:>13s}" for root in roots))
    for label, get in lines:
        print(f"{label:<72s}" + "".join(
            f"{statistics.median(get(r) for r in rows[root]):13.3f}" for root in roots))


def cold_ab(pairs: int, other: str, first_call: bool = False) -> None:
    """``pairs`` cold starts of this checkout and of ``other`` (another nutslite checkout), each
    in a fresh process with an empty cache, the order alternating from pair to pair; to the first
    draw, or with ``first_call`` to the end of a default ``nl.sample`` call."""
    import statistics

    roots = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), other]
    rows: dict[str, list[dict]] = {root: [] for root in roots}
    mode = "first-call" if first_call else "first-draw"
    for k in range(pairs):
        for root in roots if k % 2 == 0 else roots[::-1]:
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, NUTSLITE_CACHE_DIR=cache, PYTHONPATH=root)
                env.pop("NUMBA_CACHE_DIR", None)
                out = subprocess.run([sys.executable, "-c", COLD, mode], env=env, check=True,
                                     capture_output=True, text=True, cwd=root)
            rows[root].append(json.loads(out.stdout.strip().splitlines()[-1]))
        this, that = rows[roots[0]][-1], rows[roots[1]][-1]
        print(f"pair {k + 1}: this {this['cpu']:.2f} s CPU ({this['wall']:.2f} wall), other "
              f"{that['cpu']:.2f} s CPU ({that['wall']:.2f} wall), ratio "
              f"{this['cpu'] / that['cpu']:.3f}; load {os.getloadavg()[0]:.1f}", flush=True)
    this, that = rows[roots[0]], rows[roots[1]]
    ratios = [a["cpu"] / b["cpu"] for a, b in zip(this, that, strict=True)]
    for label, key in (("process CPU s", "cpu"), ("wall s", "wall")):
        print(f"median {label}: this {statistics.median(r[key] for r in this):.2f}, other "
              f"{statistics.median(r[key] for r in that):.2f}")
    print(f"median of the pairs' CPU ratios (this / other): {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")


IMPORT_NUMBA = "import time; t = time.perf_counter(); import numba; print(time.perf_counter() - t)"
IMPORT_NUTSLITE = (
    "import time; t = time.perf_counter(); import nutslite as nl; nl.sample, nl.models, nl.summary;"
    " print(time.perf_counter() - t)"
)


def import_times(rounds: int) -> None:
    """Medians over ``rounds`` rounds of fresh processes: ``import numba``, ``import nutslite``
    with its main names resolved, and ``nutslite --help`` (wall seconds)."""
    import shutil
    import statistics
    import time

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as after pip install: bytecode cached
    script = os.path.join(os.path.dirname(sys.executable), "nutslite")
    helper = [script] if shutil.which(script) else [sys.executable, "-m", "nutslite"]

    def inner(code: str) -> float:
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True)
        return float(out.stdout.strip().splitlines()[-1])

    def help_wall() -> float:
        t = time.perf_counter()
        subprocess.run([*helper, "--help"], env=env, check=True, capture_output=True)
        return time.perf_counter() - t

    inner(IMPORT_NUTSLITE)  # writes the bytecode if it is missing
    rows = [(inner(IMPORT_NUMBA), inner(IMPORT_NUTSLITE), help_wall()) for _ in range(rounds)]
    for k, label in enumerate(("import numba", "import nutslite; nl.sample, nl.models, nl.summary",
                               f"{' '.join(os.path.basename(a) for a in helper)} --help (wall)")):
        values = [r[k] for r in rows]
        print(f"{label:<56s} median {statistics.median(values):.3f} s "
              f"(range {min(values):.3f}-{max(values):.3f})")
    print(f"import nutslite minus import numba, median of {rounds} rounds: "
          f"{statistics.median(r[1] - r[0] for r in rows):.3f} s")


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
                        "instead of the first draw, its compile CPU split by module (with "
                        "--cold: to the end of that call, child processes' CPU included)")
    p.add_argument("--warm", type=int, metavar="N",
                   help="only break a warm start down, medians of N fresh processes")
    p.add_argument("--cold", type=int, metavar="N",
                   help="only compare cold starts with --against's first checkout, N A/B pairs")
    p.add_argument("--against", nargs="+", default=[], metavar="CHECKOUT",
                   help="with --warm: other nutslite checkouts to run in turn with this one")
    p.add_argument("--ir", action="store_true",
                   help="only count the lines of optimised LLVM IR per compiled function")
    p.add_argument("--imports", type=int, metavar="N",
                   help="only time import nutslite against import numba, and nutslite --help, "
                        "in N rounds of fresh processes")
    args = p.parse_args(argv)
    if args.imports:
        import_times(args.imports)
        return
    if args.ir:
        ir_report()
        return
    if args.cold:
        if not args.against:
            p.error("--cold needs --against CHECKOUT")
        cold_ab(args.cold, args.against[0], args.first_call)
        return
    if args.warm:
        warm_breakdown(args.warm, args.against)
        return
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
