"""Where the default ``nl.sample`` call's time goes outside the compiled chain loop.

Usage (from the repository root, with nutslite importable)::

    python benchmarks/profile_call.py              # radon non-centered, 4 x (1000 + 1000), 2 cores
    python benchmarks/profile_call.py --calls 40

One process: a tiny call loads the compiled code (as ``bench_radon.py``'s worker does), then the
first full default call (warnings on) and ``--calls`` more. Each phase of ``nl.sample`` is timed
by wrapping the function that does it: input checks, initial points and step-size heuristics,
the chain threads (from their start to their join, and the compiled chunks inside), result
assembly with the model's ``constrain``, and the checks behind the warnings with their parts
(the batched kernels, reading the posterior in place; E-BFMI). Printed per phase: the first call,
and the minimum and median over the later ones (on a shared machine the minimum is the
trustworthy one); the CPU time of the process in each phase, first call and minimum of the
others (all threads: in the chain threads' phase the workers' time, elsewhere the main thread's,
less disturbed by other jobs than wall time); and the page faults of each phase, in the first
call and the median of the others, which on a virtual machine cost milliseconds. Each result
stays alive until the next call returns, as with ``res = nl.sample(...)`` run again;
``--discard`` drops it first (a loop of runs that keeps only a summary), which changes which
memory the allocator can reuse
(``benchmarks/README.md``, "The whole call").
"""

from __future__ import annotations

import argparse
import importlib
import resource
import statistics
import threading
import time
import warnings
from collections.abc import Callable

# (module, attribute, label): the functions whose calls are timed; indented labels are parts
PHASES = (
    ("nutslite.sampling", "_validate", "input checks"),
    ("nutslite.sampling", "_init_chain", "initial points, step sizes, buffers"),
    ("nutslite.sampling", "_run_chains", "chain threads, start to join"),
    ("nutslite.sampling", "_despite_interrupts", "result assembly"),
    ("nutslite.model", "Model.constrain", "  of which the model's constrain"),
    ("nutslite.sampling", "_warn_problems_at_caller", "checks behind the warnings"),
    ("nutslite.diagnostics", "source_statistics", "  batched kernels (on the posterior in place)"),
    ("nutslite.diagnostics", "_ebfmi", "  E-BFMI"),
)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _wrap(
    owner: object, name: str, label: str, seconds: dict, cpu: dict, faults: dict
) -> None:
    """Replace ``owner.name`` by a wrapper that adds its wall time, the process's CPU time and
    page faults to ``label``."""
    inner = getattr(owner, name)

    def timed(*args, **kwargs):
        f0, c0, t0 = _faults(), time.process_time(), time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - t0
            cpu[label] = cpu.get(label, 0.0) + time.process_time() - c0
            faults[label] = faults.get(label, 0) + _faults() - f0

    setattr(owner, name, timed)


def _chunk_spans(scheduler: object, spans: list) -> None:
    """Record (thread, start, end) of every compiled chunk."""
    inner = scheduler.ChainScheduler._run_chunk

    def timed(self, c):
        t0 = time.perf_counter()
        try:
            return inner(self, c)
        finally:
            spans.append((threading.get_ident(), t0, time.perf_counter()))

    scheduler.ChainScheduler._run_chunk = timed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20, help="calls after the first (default 20)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--discard", action="store_true",
                   help="drop each result before the next call (default: keep it meanwhile, "
                        "as `res = nl.sample(...)` run again does)")
    args = p.parse_args(argv)

    import nutslite as nl
    from nutslite import scheduler
    from nutslite.diagnostics import MIN_DRAWS
    from nutslite.models.radon import load_radon

    model = nl.models.radon("noncentered", data=load_radon())
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    faults: dict[str, int] = {}
    for module, attribute, label in PHASES:
        owner = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        _wrap(owner, name, label, seconds, cpu, faults)
    spans: list = []
    _chunk_spans(scheduler, spans)

    rows: list[dict[str, float]] = []
    cpu_rows: list[dict[str, float]] = []
    fault_rows: list[dict[str, int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nl.sample(model, draws=MIN_DRAWS, tune=1, chains=1, seed=0, cores=1, progress=False)
        for i in range(args.calls + 1):
            seconds.clear()
            cpu.clear()
            faults.clear()
            spans.clear()
            f0, c0, t0 = _faults(), time.process_time(), time.perf_counter()
            kept = nl.sample(model, seed=1 + i % 3, cores=args.cores, progress=False)
            row = {"whole call": time.perf_counter() - t0}
            cpu_rows.append(dict(cpu, **{"whole call": time.process_time() - c0}))
            first = min(s[1] for s in spans)
            last = max(s[2] for s in spans)
            threads = {s[0] for s in spans}
            row["compiled chunks, first start to last end"] = last - first
            row["  idle core-time in that span"] = len(threads) * (last - first) - sum(
                s[2] - s[1] for s in spans
            )
            row.update(seconds)
            row["rest (BLAS limit, seeds, progress, ...)"] = row["whole call"] - sum(
                seconds.get(label, 0.0) for _, _, label in PHASES if not label.startswith(" ")
            )
            row["chain threads, outside the chunks"] = (
                seconds["chain threads, start to join"] - (last - first)
            )
            rows.append(row)
            if args.discard:
                del kept
            fault_rows.append(dict(faults, **{"whole call": _faults() - f0}))

    print(f"radon non-centered, 4 chains x (1000 + 1000), cores={args.cores}: milliseconds")
    print(f"{'phase':45s} {'first call':>10s} {'min':>8s} {'median':>8s}   CPU: {'first':>7s} "
          f"{'min':>7s}   page faults: first call, median of the others")
    later = rows[1:]
    order = ["whole call", *(label for _, _, label in PHASES[:3]),
             "chain threads, outside the chunks", "compiled chunks, first start to last end",
             "  idle core-time in that span", *(label for _, _, label in PHASES[3:]),
             "rest (BLAS limit, seeds, progress, ...)"]
    for label in order:
        values: list[float] = [r[label] for r in later if label in r]
        show: Callable[[float], str] = lambda v: f"{1e3 * v:8.2f}"  # noqa: E731
        counts = [f[label] for f in fault_rows[1:] if label in f]
        faults_text = (f"{fault_rows[0][label]:>8} {statistics.median(counts):>8.0f}"
                       if label in fault_rows[0] else "")
        cpus = [c[label] for c in cpu_rows[1:] if label in c]
        cpu_text = (f"{1e3 * cpu_rows[0][label]:7.2f} {1e3 * min(cpus):7.2f}"
                    if label in cpu_rows[0] else " " * 15)
        print(f"{label:45s} {show(rows[0][label]):>10s} {show(min(values))} "
              f"{show(statistics.median(values))}        {cpu_text}   {faults_text}")


if __name__ == "__main__":
    main()
