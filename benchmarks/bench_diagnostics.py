"""What the diagnostics behind ``nl.sample``'s warnings and ``nl.summary`` cost.

Usage::

    python benchmarks/bench_diagnostics.py             # radon draws from nl.sample, seed 1
    python benchmarks/bench_diagnostics.py --synthetic # AR(1) draws for (a)-(b), no sampling

Measured in one process, on the same draws:

(a) the old NumPy/SciPy code (``tests/diagnostics_oracle.py``: rankdata, scipy.fft, every column
    of the summary) against the compiled kernels (``nutslite.diagnostics.all_statistics``, the
    same columns), and ``warn_problems`` as ``nl.sample`` runs it (345 scalars x 4 x 1000:
    the non-centered radon model's draws, or AR(1) draws with ``--synthetic``);
(b) ``arviz.summary`` against ``nl.summary`` on those draws;
(c) ``nl.summary`` and ``warn_problems`` on 345 scalars x 2 chains x 66,670 AR(1) draws, phi 0.5
    (fast mixing) and 0.99 (slow mixing), and for each the CPU time of ``nl.summary`` per draw at
    1/4, 1/2 and all of the draws (linear growth: equal costs per draw); with ``--longer`` also at
    2 and 4 times the draws (1.5 GB of draws per phi), where each scalar's arrays outgrow the L3
    cache;
(d) the same on a real, highly autocorrelated long run: the centered radon model (175 scalars),
    ``nl.sample(radon("centered"), draws=66670, tune=1000, chains=2, seed=1)``, and both as the
    ``nutslite summary --all`` and ``nutslite sample --all`` commands run them (the warnings
    reuse the table's R-hat and ESS).
(e) issue 13's own case, the interrupted long run it timed at 42 s: the non-centered radon model
    (345 scalars), ``nl.sample(radon("noncentered"), draws=66670, tune=1000, chains=2, seed=1)``,
    as (d), with the old NumPy/SciPy code timed once on the same draws (the ratio that the issue's
    42 s -> 1.5 s asks for is 28x, measured here in one process, free of the host's drift) and
    ``nl.summary``'s CPU time per draw at 1/4, 1/2 and all of the draws.

Warm times are the minimum over ``--repeats`` calls (compiled code loaded); the cold compile of
the kernels is timed apart, in a fresh process with an empty cache. Writes
``benchmarks/results/diagnostics.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import nutslite as nl
from nutslite.diagnostics import all_statistics, scalar_draws, warn_problems

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))

COLD_SCRIPT = """
import time, numpy as np
from nutslite._diagnostic_kernels import scalar_statistics
x = np.random.default_rng(0).standard_normal((2, 4, 50))
start, cpu = time.perf_counter(), time.process_time()
scalar_statistics(x, np.ones(2, bool), 0.94, 4)
print(time.perf_counter() - start, time.process_time() - cpu)
"""

NONE = (float("nan"), float("nan"))


def best_time(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The fastest wall-clock and the smallest CPU time (all threads) of ``repeats`` calls of
    ``function()``, in seconds. On a shared machine the CPU time is the steadier of the two."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def cold_compile_seconds() -> tuple[float, float]:
    """Wall and CPU seconds of the first kernel call in a fresh process whose cache is empty."""
    package_root = Path(nl.__file__).resolve().parents[1]  # the nutslite being measured
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUTSLITE_CACHE_DIR=cache)
        env.pop("NUMBA_CACHE_DIR", None)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(package_root), env.get("PYTHONPATH")])
        )
        out = subprocess.run(
            [sys.executable, "-c", COLD_SCRIPT], env=env, check=True, capture_output=True, text=True
        )
    wall, cpu = out.stdout.split()[-2:]
    return float(wall), float(cpu)


def ar1_draws(shape: tuple[int, ...], phi: float, seed: int) -> np.ndarray:
    """AR(1) draws along the last axis (stationary start), as a slowly mixing sampler gives."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape)
    noise[..., 0] /= np.sqrt(1 - phi**2)
    return lfilter([1.0], [1.0, -phi], noise, axis=-1)


def long_rows(label: str, res: object, shape: str, repeats: int) -> list[tuple]:
    """``nl.summary``, ``warn_problems`` and both as the CLI runs them, on ``res``."""
    rows = [
        (f"{label}: nl.summary", shape, NONE, best_time(lambda: nl.summary(res), repeats)),
        (f"{label}: warn_problems", shape, NONE, best_time(lambda: warn_problems(res), repeats)),
    ]

    def both() -> None:
        warn_problems(res, summary=nl.summary(res))

    rows.append((f"{label}: both, shared (CLI)", shape, NONE, best_time(both, repeats)))
    return rows


def prefix_rows(
    label: str,
    scalars: int,
    draws: int,
    head: Callable[[int], dict[str, np.ndarray]],
    whole: tuple[float, float],
    repeats: int,
) -> tuple[list[tuple], list[float]]:
    """``nl.summary`` on the first quarter and half of ``draws`` per chain (``head(n)``: a
    posterior of the first ``n``, built before the timing), as table rows, and its CPU time per
    draw there and on all of them (``whole``: its wall and CPU seconds on all)."""
    rows, costs = [], []
    for fraction in (4, 2):
        n = draws // fraction
        part = head(n)
        seconds = best_time(lambda part=part: nl.summary(part), repeats)
        rows.append(
            (f"{label}: nl.summary, {n} draws per chain", f"{scalars} x 2 x {n}", NONE, seconds)
        )
        costs.append(seconds[1] / (scalars * 2 * n))
        del part
    costs.append(whole[1] / (scalars * 2 * draws))
    return rows, costs


def long_radon_run(parameterization: str, draws: int) -> tuple[object, int]:
    """A long radon run as an interrupted one leaves it, ``draws`` per chain after 1000 warmup
    iterations on 2 chains (seed 1), and its number of scalars."""
    res = nl.sample(
        nl.models.radon(parameterization),
        draws=draws,
        tune=1000,
        chains=2,
        seed=1,
        progress=False,
        warn=False,
    )
    return res, len(scalar_draws(res.posterior)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="AR(1) draws for (a) and (b)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "diagnostics.md")
    parser.add_argument(
        "--longer", action="store_true", help="(c)'s cost per draw also at 2x and 4x the draws"
    )
    args = parser.parse_args(argv)

    import arviz as az
    from diagnostics_oracle import oracle

    logging.getLogger("arviz").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    cold = cold_compile_seconds()
    long_repeats = max(2, args.repeats // 2)

    if args.synthetic:
        source = "AR(1) draws, phi = 0.5, 345 scalars"
        res = None
        posterior = {"theta": np.moveaxis(ar1_draws((345, 4, 1000), 0.5, 1), 0, -1)}
    else:
        source = 'radon draws: `nl.sample(nl.models.radon("noncentered"), seed=1)`'
        res = nl.sample(nl.models.radon("noncentered"), seed=1, progress=False, warn=False)
        posterior = res.posterior
    names, batch = scalar_draws(posterior)
    all_statistics(batch[:2])  # load the compiled kernels
    rows: list[tuple[str, str, tuple[float, float], tuple[float, float]]] = []

    old = best_time(lambda: oracle(batch), args.repeats)
    new = best_time(lambda: all_statistics(batch, warn=False), args.repeats)
    shape = f"{batch.shape[0]} x {batch.shape[1]} x {batch.shape[2]}"
    rows.append(("(a) every summary column: old NumPy/SciPy vs kernels", shape, old, new))
    if res is not None:
        checks = best_time(lambda: warn_problems(res), args.repeats)
        rows.append(("(a) warn_problems(res) as nl.sample runs it", shape, NONE, checks))

    dataset = az.convert_to_dataset({name: np.asarray(value) for name, value in posterior.items()})
    theirs = best_time(lambda: az.summary(dataset), max(2, args.repeats // 2))
    ours = best_time(lambda: nl.summary(posterior), args.repeats)
    rows.append(("(b) arviz.summary vs nl.summary", shape, theirs, ours))

    draws = 66_670
    per_draw: dict[float | str, list[float]] = {}
    for phi, seed in ((0.5, 2), (0.99, 3)):
        big = ar1_draws((345, 2, draws), phi, seed)
        synthetic = SimpleNamespace(posterior={"theta": np.moveaxis(big, 0, -1)}, sample_stats={})
        made = long_rows(f"(c) AR(1) phi {phi}", synthetic, f"345 x 2 x {draws}", long_repeats)
        rows += made
        # copies, so that each scalar's draws are contiguous, as in big: the kernels read both
        # in place (a strided slice would be gathered first, a cost big does not pay)
        prefix, costs = prefix_rows(
            f"(c) AR(1) phi {phi}",
            345,
            draws,
            lambda n, big=big: {"theta": np.moveaxis(np.ascontiguousarray(big[..., :n]), 0, -1)},
            made[0][3],
            long_repeats,
        )
        rows += prefix
        per_draw[phi] = costs
        if args.longer:  # a series of its own, 4x as long; its prefix for 2x
            del big, synthetic
            longer = ar1_draws((345, 2, 4 * draws), phi, seed)
            for factor in (2, 4):
                head = longer if factor == 4 else np.ascontiguousarray(longer[..., : 2 * draws])
                part = {"theta": np.moveaxis(head, 0, -1)}
                seconds = best_time(lambda part=part: nl.summary(part), long_repeats)
                label = f"(c) AR(1) phi {phi}: nl.summary, {factor * draws} draws per chain"
                rows.append((label, f"345 x 2 x {factor * draws}", NONE, seconds))
                costs.append(seconds[1] / (345 * 2 * factor * draws))
                del head, part
            del longer

    radon, count = long_radon_run("centered", draws)
    rows += long_rows("(d) centered radon", radon, f"{count} x 2 x {draws}", long_repeats)
    del radon

    radon, count = long_radon_run("noncentered", draws)
    shape = f"{count} x 2 x {draws}"
    made = long_rows("(e) non-centered radon", radon, shape, long_repeats)
    old_batch = scalar_draws(radon.posterior)[1]
    before = best_time(partial(oracle, old_batch), 1)  # about 40 s: once
    del old_batch
    label = "(e) non-centered radon: old NumPy/SciPy vs nl.summary"
    rows += [(label, shape, before, made[0][3]), *made[1:]]  # made[0]: nl.summary's row
    prefix, per_draw["radon"] = prefix_rows(
        "(e) non-centered radon",
        count,
        draws,
        lambda n: {
            name: np.ascontiguousarray(np.asarray(value)[:, :n])
            for name, value in radon.posterior.items()
        },
        made[0][3],
        long_repeats,
    )
    rows += prefix

    flag = " --synthetic" if args.synthetic else ""
    lines = [
        "# Diagnostics: compiled kernels against the old code and ArviZ",
        "",
        f"Command: `python benchmarks/bench_diagnostics.py{flag}{' --longer' * args.longer} "
        f"--repeats {args.repeats}`; "
        f"(a)-(b): {source}; {os.cpu_count()} cores shared with other jobs "
        "(wall times are noisy, the ratios within one run are the result; CPU time counts all "
        f"threads); warm times are the best of {args.repeats} calls ({long_repeats} for (c)-(e), "
        "the old code once in (e)).",
        "",
        "| what | scalars x chains x draws | before / ArviZ: wall s, CPU s | nutslite: wall s, "
        "CPU s | ratio: wall, CPU |",
        "|---|---|---:|---:|---:|",
    ]
    for what, size, before, after in rows:
        if np.isfinite(before[0]):
            before_text = f"{before[0]:.3f}, {before[1]:.3f}"
            ratio = f"{before[0] / after[0]:.1f}x, {before[1] / after[1]:.1f}x"
        else:
            before_text = ratio = ""
        lines.append(
            f"| {what} | {size} | {before_text} | {after[0]:.3f}, {after[1]:.3f} | {ratio} |"
        )
    fractions = "1/4, 1/2, all, 2x and 4x" if args.longer else "1/4, 1/2 and all"
    for key, costs in per_draw.items():
        which = "(e), non-centered radon" if key == "radon" else f"phi {key}"
        lines += [
            "",
            f"CPU time of nl.summary per draw at "
            f"{'1/4, 1/2 and all' if key == 'radon' else fractions} of 66,670 draws ({which}): "
            + ", ".join(f"{1e9 * c:.1f} ns" for c in costs)
            + f" (largest / smallest {max(costs) / min(costs):.2f}, all / a quarter "
            f"{costs[2] / costs[0]:.2f}; linear growth gives 1).",
        ]
    lines += [
        "",
        "Cold compile of the kernels (first call, fresh process, empty cache): "
        f"{cold[0]:.1f} s wall, {cold[1]:.1f} s CPU.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
