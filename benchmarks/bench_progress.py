"""What the progress display costs: ``nl.sample`` with progress off, with the live terminal
display and with plain log lines, on radon non-centered (4 chains x (1000 + 5000), same seed).

Usage::

    python benchmarks/bench_progress.py            # 10 rounds
    python benchmarks/bench_progress.py --rounds 3

The three modes run interleaved in a shuffled order in each round, so that drifts of a shared
machine hit them alike. The displays write to ``os.devnull``: the same bytes a terminal gets,
without a terminal's rendering. Reported: the median over rounds of the chain loop's wall time
(``settings["wall_seconds"]``, where a display could slow the chains) and of the CPU time of the
whole call, each as a ratio to progress off. Writes ``benchmarks/results/progress.md``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import nutslite as nl
from nutslite.progress import LogReporter, TerminalReporter

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    model = nl.models.radon("noncentered")
    settings = {"draws": 5000, "tune": 1000, "chains": 4, "seed": 1, "warn": False}
    nl.sample(model, progress=False, **settings)  # compile or load the engine first
    with open(os.devnull, "w") as sink:
        modes = {
            "off": lambda: False,
            "terminal display": lambda: TerminalReporter(sink),
            "plain log lines": lambda: LogReporter(sink),
        }
        loop: dict[str, list[float]] = {m: [] for m in modes}
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        rng = random.Random(0)
        for _ in range(args.rounds):
            order = list(modes.items())
            rng.shuffle(order)
            for mode, make in order:
                c0 = time.process_time()
                res = nl.sample(model, progress=make(), **settings)
                cpu[mode].append(time.process_time() - c0)
                loop[mode].append(res.settings["wall_seconds"])
    base_loop, base_cpu = statistics.median(loop["off"]), statistics.median(cpu["off"])
    lines = [
        "# Cost of the progress display",
        "",
        f"Command: `python benchmarks/bench_progress.py --rounds {args.rounds}`; radon "
        "non-centered, 4 chains x (1000 + 5000), 2 cores; medians over rounds.",
        "",
        "| progress | chain loop wall s | ratio to off | call CPU s | ratio to off |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in modes:
        w, c = statistics.median(loop[mode]), statistics.median(cpu[mode])
        lines.append(f"| {mode} | {w:.3f} | {w / base_loop:.3f} | {c:.3f} | {c / base_cpu:.3f} |")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "progress.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
