"""Which warmup should be nutslite's default? Every adaptation on every target, measured alike.

For each target (the test zoo, both radon models and a strongly correlated Gaussian), each
adaptation (``stan``, ``grad``, ``dense``, ``low_rank``) and each warmup length (200, 400, 1000),
it runs 4 chains x 1000 draws over several seeds (all in this one process, after one warm-up call
per adaptation so that compilation is not timed) and reports

* ESS per 1000 gradient evaluations, warmup included: the minimum bulk ESS over all unconstrained
  coordinates divided by every leapfrog step of the run (the cost that does not depend on the
  machine);
* ESS per second of wall time (2 cores, 4 chains);
* whether the run is healthy: no divergence after warmup, every rank-normalized R-hat below 1.01
  and the minimum bulk ESS at least 400;
* the tune needed: the smallest warmup length of the grid at which every seed is healthy.

The overall score of an adaptation is the geometric mean over targets of its median ESS per 1000
gradients at the longest warmup, with unhealthy runs scored as a tenth of their value (a fast
sampler that is wrong is no use). Targets that no adaptation samples healthily (funnels, the
banana) are shown but not scored: they rank nothing.

    python benchmarks/bench_adaptation.py                 # full grid, ~15 min on 2 cores
    python benchmarks/bench_adaptation.py --quick         # 1 seed, tune 400 only, small targets

Writes ``benchmarks/results/adaptation.json`` and ``adaptation.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

import nutslite as nl
from nutslite import diagnostics
from nutslite.models import zoo

ADAPTATIONS = ("stan", "grad", "dense", "low_rank")
RESULTS = Path(__file__).parent / "results"


def targets(quick: bool) -> dict[str, nl.Model]:
    models = {name: factory() for name, factory in zoo.ZOO.items()}
    models["correlated_gaussian_20_cond1e4"] = zoo.correlated_gaussian(
        zoo.rotated_covariance(20, seed=3, low=1e-2, high=1e2)
    )
    if not quick:
        models["radon_noncentered"] = nl.models.radon("noncentered")
        models["radon_centered"] = nl.models.radon("centered")
    return models


def run_one(model: nl.Model, adaptation: str, tune: int, seed: int) -> dict[str, float]:
    t0 = time.perf_counter()
    res = nl.sample(model, draws=1000, tune=tune, chains=4, seed=seed, cores=2,
                    adaptation=adaptation, save_warmup=True, progress=False)
    wall = time.perf_counter() - t0
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    tunes = (400,) if args.quick else (200, 400, 1000)
    seeds = range(1, 2 if args.quick else args.seeds + 1)
    models = targets(args.quick)
    for adaptation in ADAPTATIONS:  # compile (or load) every engine variant before timing
        nl.sample(zoo.std_normal(2), draws=5, tune=30, chains=1, adaptation=adaptation,
                  progress=False)

    rows = []
    for name, model in models.items():
        for adaptation in ADAPTATIONS:
            if adaptation == "dense" and model.dim > 50:
                continue  # O(dim^2) per leapfrog step: not a contender at 175 dimensions
            for tune in tunes:
                for seed in seeds:
                    r = run_one(model, adaptation, tune, seed)
                    rows.append({"target": name, "adaptation": adaptation, "tune": tune,
                                 "seed": seed, **r})
                    print(f"{name:32s} {adaptation:9s} tune {tune:5d} seed {seed}: "
                          f"ESS/kgrad {r['ess_per_kgrad']:7.2f}  ESS/s {r['ess_per_s']:9.0f}  "
                          f"div {r['divergences']:4d}  rhat {r['rhat']:.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "adaptation.json").write_text(json.dumps(rows, indent=1))
    report = table(rows, models, tunes)
    (RESULTS / "adaptation.md").write_text(report)
    print(report)


def table(rows: list[dict], models: dict[str, nl.Model], tunes: tuple[int, ...]) -> str:
    def pick(target: str, adaptation: str, tune: int) -> list[dict]:
        key = (target, adaptation, tune)
        return [r for r in rows if (r["target"], r["adaptation"], r["tune"]) == key]

    top = max(tunes)
    lines = [
        f"ESS per 1000 gradients (warmup included), median over seeds, tune = {top}; "
        "`*` marks a run that is not healthy (divergences, R-hat >= 1.01 or ESS < 400); "
        "in brackets the smallest tune at which every seed was healthy.",
        "",
        "| target | dim | " + " | ".join(ADAPTATIONS) + " |",
        "|---|---:|" + "---:|" * len(ADAPTATIONS),
    ]
    scores: dict[str, list[float]] = {a: [] for a in ADAPTATIONS}
    for name, model in models.items():
        scored = any(all(r["healthy"] for r in pick(name, a, top)) for a in ADAPTATIONS
                     if pick(name, a, top))
        cells = []
        for adaptation in ADAPTATIONS:
            runs = pick(name, adaptation, top)
            if not runs:
                cells.append("—")
                continue
            value = float(np.median([r["ess_per_kgrad"] for r in runs]))
            healthy = all(r["healthy"] for r in runs)
            needed = next(
                (t for t in tunes if all(r["healthy"] for r in pick(name, adaptation, t))), None
            )
            cells.append(f"{value:.2f}{'' if healthy else '*'} ({needed or '—'})")
            if scored:
                scores[adaptation].append(value if healthy else value / 10)
        label = name if scored else f"{name} (not scored)"
        lines.append(f"| {label} | {model.dim} | " + " | ".join(cells) + " |")
    lines += ["", "| adaptation | geometric mean ESS/kgrad (scored targets) | "
              f"median ESS/s (tune {top}) | targets |", "|---|---:|---:|---:|"]
    for adaptation in ADAPTATIONS:
        s = scores[adaptation]
        gm = math.exp(np.mean(np.log(s))) if s else float("nan")
        per_s = np.median([r["ess_per_s"] for r in rows
                           if r["adaptation"] == adaptation and r["tune"] == top])
        lines.append(f"| {adaptation} | {gm:.2f} | {per_s:.0f} | {len(s)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
