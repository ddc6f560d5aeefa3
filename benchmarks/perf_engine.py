"""Where the tree builder's time goes, function by function and instruction by instruction.

Usage (Linux, with ``perf`` from linux-perf and ``objdump`` from binutils)::

    perf record -e cpu-clock -F 4000 -o /tmp/engine.data \\
        python benchmarks/perf_engine.py run --transitions 1500000 --dump /tmp/engine-code
    python benchmarks/perf_engine.py report /tmp/engine.data --dump /tmp/engine-code
    python benchmarks/perf_engine.py report /tmp/engine.data --dump /tmp/engine-code \\
        --annotate build_tree --threshold 0.5

``run`` times a compiled loop of ``nuts_transition`` as ``bench_tree_builder.py`` does (a
``--dim``-dimensional standard normal, 175 by default, a unit diagonal metric, step size
``--step-size``, each transition starting from the last one's sample) and then names the JIT's
code for ``perf``: it writes ``/tmp/perf-<pid>.map``, which ``perf report`` reads for addresses
that belong to no file, one line per function the loop's compiled library defines (its address
from ``library.get_pointer_to_function``, its size up to the next function's), and it copies each
function's machine code into ``--dump`` with a manifest of the addresses and names. The log
density is compiled apart from the loop and stays unnamed (``perf`` shows its addresses).

``report`` counts the samples of ``perf script -F ip,sym`` by function: the loop's functions by
the manifest's address ranges, everything else by the symbol ``perf`` found (``exp``, ``log1p``,
the interpreter while Numba compiled). It prints each function's share of all samples and of the
engine's (the loop's functions with libm's ``exp``, ``log1p`` and their PLT stubs). With
``--annotate NAME`` it disassembles the first function whose name contains NAME (``objdump -b
binary --adjust-vma``) and prints each instruction at or above ``--threshold`` percent of that
function's samples. Numbers are shares of samples, not times: they locate the cost, and
``bench_tree_builder.py --alternate`` measures a change (``benchmarks/README.md``, engine round
20, has a profile and the instructions of a hot loop read this way).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import ctypes
import json
import os
import re
import subprocess
import time
from collections.abc import Sequence

from profile_compile import demangled

LIBM = ("exp", "log1p", "ieee754_exp")  # libm's symbols begin so, their underscores stripped


def compiled_functions(dispatcher) -> list[tuple[int, int, str]]:
    """``(address, size, name)`` of every function defined in the compiled libraries of
    ``dispatcher``'s specialisations, sorted by address (a function's size: up to the next one of
    the same libraries). A library loaded from Numba's cache lists none (its module is not
    kept): ``run``'s loop is compiled in every run, and its library holds its callees' code."""
    found = {}
    for result in dispatcher.overloads.values():
        library = result.library
        for function in library._final_module.functions:
            if not function.is_declaration:
                found[library.get_pointer_to_function(function.name)] = function.name
    starts = sorted(a for a in found if a)
    ends = starts[1:] + [starts[-1] + 4096] if starts else []
    return [(a, min(b, _mapping_end(a)) - a, found[a]) for a, b in zip(starts, ends, strict=True)]


def _mapping_end(address: int) -> int:
    """The end of the mapping of this process that holds ``address`` (``/proc/self/maps``): a
    function's code is read up to the next function's start, or to here if that comes first (the
    last function's, and any followed by a gap, would otherwise be read past the mapped pages)."""
    with open("/proc/self/maps") as f:
        for line in f:
            low, high = (int(x, 16) for x in line.split(None, 1)[0].split("-"))
            if low <= address < high:
                return high
    return address


def name_for_perf(functions: list[tuple[int, int, str]], dump: str) -> None:
    """Write ``/tmp/perf-<pid>.map`` for ``functions`` and their code and a manifest to ``dump``."""
    os.makedirs(dump, exist_ok=True)
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as f:
        for address, size, name in functions:
            f.write(f"{address:x} {size:x} {name}\n")
    manifest = []
    for k, (address, size, name) in enumerate(functions):
        path = os.path.join(dump, f"{k:03d}.bin")
        with open(path, "wb") as f:
            f.write(ctypes.string_at(address, size))
        manifest.append({"address": address, "size": size, "name": name, "file": path})
    with open(os.path.join(dump, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from profile_engine import compiled_transition_loop, trivial_model

    from nutslite.engine.metric import diagonal_metric
    from nutslite.engine.tree import allocate_trajectory

    loop = compiled_transition_loop(cache=False)  # so that its library lists its functions

    model = trivial_model(args.dim)
    metric = diagonal_metric(np.ones(args.dim))

    def timed(n: int) -> tuple[float, int]:
        traj = allocate_trajectory(args.dim, 10)
        q, grad = np.random.default_rng(1).standard_normal(args.dim), np.empty(args.dim)
        t0 = time.thread_time()
        steps = loop(model.logp_grad_function, np.random.default_rng(7), traj, metric,
                     args.step_size, q, grad, n)
        return time.thread_time() - t0, steps

    timed(5)  # compile or load
    seconds, steps = timed(args.transitions)
    print(f"{args.transitions} transitions, {steps} leapfrog steps, "
          f"{1e6 * seconds / steps:.3f} µs per step (thread CPU, gradient included)")
    functions = compiled_functions(loop)
    name_for_perf(functions, args.dump)
    print(f"named {len(functions)} compiled functions in /tmp/perf-{os.getpid()}.map; "
          f"their code is in {args.dump}")
    return 0


def report(args: argparse.Namespace) -> int:
    with open(os.path.join(args.dump, "manifest.json")) as f:
        manifest = json.load(f)
    starts = [m["address"] for m in manifest]
    script = subprocess.run(["perf", "script", "-i", args.data, "-F", "ip,sym"],
                            capture_output=True, text=True, check=True).stdout
    by_function: collections.Counter = collections.Counter()
    by_address: collections.Counter = collections.Counter()
    for line in script.splitlines():
        fields = line.split(None, 1)
        if not fields:
            continue
        address = int(fields[0], 16)
        k = bisect.bisect_right(starts, address) - 1
        if k >= 0 and address < starts[k] + manifest[k]["size"]:
            by_function[manifest[k]["name"]] += 1
            by_address[address] += 1
        else:
            by_function[fields[1].strip() if len(fields) > 1 else "?"] += 1
    total = sum(by_function.values())
    engine_names = {m["name"] for m in manifest}
    engine = {n: c for n, c in by_function.items()
              if n in engine_names or n.lstrip("_").startswith(LIBM)}
    engine_total = sum(engine.values())
    print(f"{total} samples; the engine's (its compiled functions and libm's exp and log1p): "
          f"{engine_total}")
    print(f"{'% of all':>8} {'% engine':>9}  function")
    for name, count in by_function.most_common(args.top):
        share = f"{100 * count / engine_total:8.1f}%" if name in engine else " " * 9
        print(f"{100 * count / total:7.1f}% {share}  {demangled(name)[:100]}")
    if args.annotate:
        chosen = next((m for m in manifest if args.annotate in m["name"]), None)
        if chosen is None:
            raise SystemExit(f"no compiled function's name contains {args.annotate!r}")
        listing = subprocess.run(
            ["objdump", "-D", "-b", "binary", "-m", "i386:x86-64",
             f"--adjust-vma={chosen['address']:#x}", chosen["file"]],
            capture_output=True, text=True, check=True).stdout
        own = by_function[chosen["name"]] or 1
        print(f"\n{demangled(chosen['name'])}: instructions with at least {args.threshold}% of its "
              f"{by_function[chosen['name']]} samples")
        for line in listing.splitlines():
            match = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(.*)", line)
            if match:
                share = 100 * by_address[int(match.group(1), 16)] / own
                if share >= args.threshold:
                    print(f"{match.group(1)} {share:5.1f}%  {match.group(2)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    timed = commands.add_parser("run", help="time the loop and name its code for perf")
    timed.add_argument("--transitions", type=int, default=1_500_000)
    timed.add_argument("--dim", type=int, default=175)
    timed.add_argument("--step-size", type=float, default=0.6)
    timed.add_argument("--dump", required=True, help="folder for the functions' machine code")
    read = commands.add_parser("report", help="the samples of a perf.data by function")
    read.add_argument("data", help="perf record's output")
    read.add_argument("--dump", required=True, help="the folder that run wrote")
    read.add_argument("--top", type=int, default=20)
    read.add_argument("--annotate", metavar="NAME", help="instructions of the function NAME")
    read.add_argument("--threshold", type=float, default=0.5, help="percent, for --annotate")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    raise SystemExit(main())
