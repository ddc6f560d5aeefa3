"""Which warmup should be nutslite's default? Every adaptation on every target, measured alike.

For each target (the test zoo, both radon models and a strongly correlated Gaussian), each
adaptation (``stan``, ``grad``, ``dense``, ``low_rank``) and each warmup length (200, 400, 1000),
it runs 4 chains x 1000 draws over several seeds (all in this one process, after one warm-up call
per adaptation so that compilation is not timed) and reports

* ESS per 1000 gradient evaluations, warmup included: the minimum bulk ESS over all unconstrained
  coordinates divided by every leapfrog step of the run (the cost that does not depend on the
  machine);
* ESS per second of sampling wall time (4 chains on 2 cores, warmup included; the chain loop,
  ``settings["wall_seconds"]``, as in ``bench_radon.py``: the diagnostics ``nl.sample`` computes
  for its warnings afterwards are the same for every adaptation and are left out);
* whether the run is healthy: no divergence after warmup, every rank-normalized R-hat below 1.01
  and the minimum bulk ESS at least 400;
* the tune needed: the smallest warmup length of the grid at which every seed is healthy.

Scores, per adaptation and warmup length: the geometric mean over targets of the median ESS per
1000 gradients and of the median ESS per second, unhealthy runs scored as a tenth of their value
(a fast sampler that is wrong is no use). Targets that no adaptation samples healthily (funnels,
the banana) are shown but not scored: they rank nothing. Every adaptation runs on every target,
the dense metric included (its O(dim^2) leapfrog step is part of what is measured).

**The rule for the default**, fixed before the numbers: the highest geometric-mean ESS per second
at tune = 1000, since seconds are what a user waits for; ESS per gradient is the
machine-independent check on it.

    python benchmarks/bench_adaptation.py                 # full grid, ~25 min on 2 cores
    python benchmarks/bench_adaptation.py --quick         # 1 seed, tune 400 only, small targets
    python benchmarks/bench_adaptation.py --workers 4     # the runs as tasks of a LocalCluster
    python benchmarks/bench_adaptation.py --scheduler tcp://host:8786   # or of a running cluster

With ``--workers`` or ``--scheduler`` the runs (target x adaptation x warmup x seed) are Dask
tasks (``nutslite.distributed``); each worker first loads every engine variant. ESS per gradient
does not depend on where a run ran; ESS per second compares adaptations fairly only when every
worker has the cores its 4 chains use (``cores=2``) to itself, that is one worker per 2 cores of
each machine. Without either option the runs go one after another in this process, as before.

Writes ``benchmarks/results/adaptation.json`` and ``adaptation.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

import nutslite as nl
from nutslite import diagnostics
from nutslite.distributed import cluster, map_unordered
from nutslite.models import zoo

ADAPTATIONS = ("stan", "grad", "dense", "low_rank")
RESULTS = Path(__file__).parent / "results"


def targets(quick: bool) -> dict[str, nl.Model]:
    models = {name: factory() for name, factory in zoo.ZOO.items()}
    models["correlated_gaussian_20_cond1e4"] = zoo.correlated_gaussian(
        zoo.rotated_covariance(20, seed=3, low=1e-2, high=1e2)
    )
    models["banana_b0.01"] = zoo.banana(0.01, 2)  # the mildly twisted one of check_sampler
    if not quick:
        models["radon_noncentered"] = nl.models.radon("noncentered")
        models["radon_centered"] = nl.models.radon("centered")
    return models


def run_one(model: nl.Model, adaptation: str, tune: int, seed: int) -> dict[str, float]:
    res = nl.sample(model, draws=1000, tune=tune, chains=4, seed=seed, cores=2,
                    adaptation=adaptation, save_warmup=True, progress=False, warn=False)
    wall = res.settings["wall_seconds"]
    x = np.moveaxis(res.unconstrained, -1, 0)
    ess = float(np.min(diagnostics.ess_bulk(x)))
    rhat = float(np.max(diagnostics.rhat(x)))
    divergences = int(res.sample_stats["diverging"].sum())
    grads = res.n_gradient_evaluations
    return {
        "ess": ess, "rhat": rhat, "divergences": divergences, "gradients": grads, "wall": wall,
        "ess_per_kgrad": 1000 * ess / grads, "ess_per_s": ess / wall,
        "healthy": divergences == 0 and rhat < 1.01 and ess >= 400,
    }


def compile_engines() -> None:
    """Compile (or load) every engine variant, so that compilation is not timed."""
    for adaptation in ADAPTATIONS:
        nl.sample(zoo.std_normal(2), draws=5, tune=30, chains=1, adaptation=adaptation,
                  progress=False)


def run_job(name: str, model: nl.Model, adaptation: str, tune: int, seed: int) -> dict:
    """One run of the grid as a row of the results (a task: it may run on a Dask worker)."""
    return {"target": name, "adaptation": adaptation, "tune": tune, "seed": seed,
            **run_one(model, adaptation, tune, seed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler")
    where.add_argument("--workers", type=int, metavar="K", help="start a LocalCluster of K")
    args = parser.parse_args()
    tunes = (400,) if args.quick else (200, 400, 1000)
    seeds = range(1, 2 if args.quick else args.seeds + 1)
    models = targets(args.quick)
    jobs = [(name, model, adaptation, tune, seed) for name, model in models.items()
            for adaptation in ADAPTATIONS for tune in tunes for seed in seeds]
    rows = []
    with cluster(args.scheduler, args.workers) as client:
        if client is None:
            compile_engines()
        else:
            client.run(compile_engines)
        for row in map_unordered(run_job, jobs, client, max_workers=1):
            rows.append(row)
            print(f"{row['target']:32s} {row['adaptation']:9s} tune {row['tune']:5d} seed "
                  f"{row['seed']}: ESS/kgrad {row['ess_per_kgrad']:7.2f}  ESS/s "
                  f"{row['ess_per_s']:9.0f}  div {row['divergences']:4d}  rhat "
                  f"{row['rhat']:.3f}", flush=True)
    order = {(name, adaptation, tune, seed): i  # the table reads rows in the grid's order
             for i, (name, _, adaptation, tune, seed) in enumerate(jobs)}
    rows.sort(key=lambda r: order[(r["target"], r["adaptation"], r["tune"], r["seed"])])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "adaptation.json").write_text(json.dumps(rows, indent=1))
    report = table(rows, models, tunes)
    (RESULTS / "adaptation.md").write_text(report)
    print(report)


def table(rows: list[dict], models: dict[str, nl.Model], tunes: tuple[int, ...]) -> str:
    """Markdown: per target the tune = max(tunes) results, then the scores per warmup length."""

    def pick(target: str, adaptation: str, tune: int) -> list[dict]:
        key = (target, adaptation, tune)
        return [r for r in rows if (r["target"], r["adaptation"], r["tune"]) == key]

    def healthy(target: str, adaptation: str, tune: int) -> bool:
        runs = pick(target, adaptation, tune)
        return bool(runs) and all(r["healthy"] for r in runs)

    top = max(tunes)
    scored = [name for name in models if any(healthy(name, a, top) for a in ADAPTATIONS)]
    lines = [
        f"Per target, tune = {top}, median over seeds: ESS per 1000 gradients (warmup included) "
        "/ ESS per second of sampling; `*` marks a setting where some seed was not healthy "
        "(divergences, R-hat >= 1.01 or bulk ESS < 400); in brackets the smallest tune of the "
        f"grid {tunes} at which every seed was healthy.",
        "",
        "| target | dim | " + " | ".join(ADAPTATIONS) + " |",
        "|---|---:|" + "---:|" * len(ADAPTATIONS),
    ]
    for name, model in models.items():
        cells = []
        for adaptation in ADAPTATIONS:
            runs = pick(name, adaptation, top)
            kgrad = float(np.median([r["ess_per_kgrad"] for r in runs]))
            per_s = float(np.median([r["ess_per_s"] for r in runs]))
            needed = next((t for t in tunes if healthy(name, adaptation, t)), None)
            flag = "" if healthy(name, adaptation, top) else "*"
            cells.append(f"{kgrad:.1f} / {per_s:,.0f}{flag} ({needed or '—'})")
        label = name if name in scored else f"{name} (not scored)"
        lines.append(f"| {label} | {model.dim} | " + " | ".join(cells) + " |")

    def score(adaptation: str, tune: int, key: str) -> float:
        values = []
        for name in scored:
            value = float(np.median([r[key] for r in pick(name, adaptation, tune)]))
            values.append(value if healthy(name, adaptation, tune) else value / 10)
        return math.exp(np.mean(np.log(values)))

    lines += [
        "",
        f"Scores over the {len(scored)} scored targets: geometric mean of ESS per 1000 gradients "
        "/ of ESS per second (unhealthy settings count a tenth).",
        "",
        "| adaptation | " + " | ".join(f"tune {t}" for t in tunes) + " |",
        "|---|" + "---:|" * len(tunes),
    ]
    for adaptation in ADAPTATIONS:
        cells = [f"{score(adaptation, t, 'ess_per_kgrad'):.1f} / "
                 f"{score(adaptation, t, 'ess_per_s'):,.0f}" for t in tunes]
        lines.append(f"| {adaptation} | " + " | ".join(cells) + " |")
    best = max(ADAPTATIONS, key=lambda a: score(a, top, "ess_per_s"))
    lines += ["", f"Highest geometric-mean ESS per second at tune {top}: **{best}**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
