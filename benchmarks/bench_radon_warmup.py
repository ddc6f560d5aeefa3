"""Warmup quality on radon: nutslite's ``"grad"`` warmup against nutpie's, in ESS per gradient.

Usage (from the repository root; nutpie and PyMC come from the ``bench`` extra)::

    python benchmarks/bench_radon_warmup.py                 # 5 seeds, both samplers
    python benchmarks/bench_radon_warmup.py --samplers nutslite --reuse   # nutpie from the JSON
    python benchmarks/bench_radon_warmup.py --samplers nutslite --seeds $(seq 11 50) \
        --out /tmp/radon_more    # nutslite alone on more seeds, e.g. to compare warmups

Both samplers draw 4 chains x (1000 tune + 1000 draws) from the non-centered radon model on the
same data, with ``seed`` 1 to 5, target acceptance 0.8 and maximum tree depth 10. Timing plays no
part: per run it records the minimum bulk ESS over the 175 unconstrained coordinates, per 1000
gradients of the sampling phase and of the whole run (warmup included); the final step size
(median over chains); the mean acceptance statistic and tree depth of the sampling phase; and the
quality of the final metric: the spread (log standard deviation over coordinates) of the
posterior variance in the metric's units, ``Var[x_i] / M^-1_ii``, from the chain's own draws.
The ratios nutslite/nutpie are taken per seed and summarised by their median; from 20 seeds on,
also by the ratio of the means and by how often a median over 5 of the seeds reaches issue 14.4's
target (``five_seed_odds``), since the seed-to-seed spread decides a 5-seed median. ``--reuse``
keeps the nutpie runs of an earlier JSON (nutpie's draws do not depend on nutslite's code).
Output: ``benchmarks/results/radon_warmup.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peers  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SETTINGS = {"chains": 4, "tune": 1000, "draws": 1000, "target_accept": 0.8, "max_treedepth": 10}
TARGETS = {"ess_per_1k_sampling": 1.0, "ess_per_1k_total": 1.2}  # issue 14.4, per 5-seed median
ODDS_MIN_SEEDS = 20  # from this many seeds with both samplers, the odds of a 5-seed median too


def _metric_spread(x: np.ndarray, inv_mass: np.ndarray) -> float:
    """Standard deviation over coordinates of ``log(Var[x_i] / M^-1_ii)``, mean over chains
    (0 for a metric proportional to the posterior variances)."""
    ratio = x.var(axis=1) / inv_mass  # (chains, dim)
    return float(np.log(ratio).std(axis=1).mean())


def _record(x: np.ndarray, grads_warmup: int, grads_sampling: int, step: np.ndarray,
            accept: np.ndarray, depth: np.ndarray, inv_mass: np.ndarray) -> dict[str, Any]:
    ess = _peers.diagnostics(x)["ess_bulk_min"]
    return {
        "ess_bulk_min": ess,
        "grads_warmup": grads_warmup,
        "grads_sampling": grads_sampling,
        "ess_per_1k_sampling": 1000.0 * ess / grads_sampling,
        "ess_per_1k_total": 1000.0 * ess / (grads_warmup + grads_sampling),
        "step_size": float(np.median(step)),
        "accept": float(accept.mean()),
        "tree_depth": float(depth.mean()),
        "metric_spread": _metric_spread(x, inv_mass),
        "inv_mass": inv_mass.tolist(),
    }


def run_nutslite(data, seed: int, cores: int) -> dict[str, Any]:
    import nutslite as nl

    model = nl.models.radon("noncentered", data=data)
    res = nl.sample(model, seed=seed, cores=cores, progress=False, warn=False,
                    draws=SETTINGS["draws"], tune=SETTINGS["tune"], chains=SETTINGS["chains"],
                    target_accept=SETTINGS["target_accept"],
                    max_treedepth=SETTINGS["max_treedepth"])
    st = res.sample_stats
    return _record(res.unconstrained, int(res.warmup["gradient_evaluations"].sum()),
                   int(st["n_steps"].sum()), res.warmup["step_size"], st["acceptance_rate"],
                   st["tree_depth"], res.warmup["inv_mass_matrix"])


def run_nutpie(data, seed: int, cores: int) -> dict[str, Any]:
    import nutpie

    compiled = nutpie.compile_pymc_model(_peers.pymc_radon("noncentered", data))
    idata = nutpie.sample(compiled, seed=seed, cores=cores, save_warmup=True, progress_bar=False,
                          store_mass_matrix=True, draws=SETTINGS["draws"], tune=SETTINGS["tune"],
                          chains=SETTINGS["chains"], target_accept=SETTINGS["target_accept"],
                          maxdepth=SETTINGS["max_treedepth"])
    st, wst = idata.sample_stats, idata.warmup_sample_stats
    x = _peers.unconstrained_from_posterior(idata.posterior, "noncentered")
    # nutpie stores the inverse mass matrix of its own (PyMC's) coordinate order, which
    # pymc_radon declares in nutslite's order
    inv_mass = st["mass_matrix_inv"].values[:, -1]
    return _record(x, int(wst["n_steps"].values.sum()), int(st["n_steps"].values.sum()),
                   st["step_size_bar"].values[:, -1], st["mean_tree_accept"].values,
                   st["depth"].values, inv_mass)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def markdown(report: dict[str, Any]) -> str:
    runs = report["runs"]
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["sampler"], r["seed"]): r for r in runs}
    lines = [
        "| seed | sampler | ESS/1k grads (sampling) | ESS/1k grads (with warmup) | step size "
        "| accept | tree depth | metric spread |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed in seeds:
        for sampler in ("nutslite", "nutpie"):
            r = by.get((sampler, seed))
            if r is not None:
                lines.append(
                    f"| {seed} | {sampler} | {r['ess_per_1k_sampling']:.1f} | "
                    f"{r['ess_per_1k_total']:.2f} | {r['step_size']:.3f} | {r['accept']:.3f} | "
                    f"{r['tree_depth']:.2f} | {r['metric_spread']:.3f} |"
                )
    lines.append("")
    for key, label in (("ess_per_1k_sampling", "sampling phase"),
                       ("ess_per_1k_total", "warmup included")):
        ratios = [by[("nutslite", s)][key] / by[("nutpie", s)][key] for s in seeds
                  if ("nutslite", s) in by and ("nutpie", s) in by]
        if ratios:
            lines.append(f"nutslite/nutpie, {label}: median {np.median(ratios):.2f} "
                         f"[{min(ratios):.2f}-{max(ratios):.2f}] over {len(ratios)} seeds")
        if len(ratios) >= ODDS_MIN_SEEDS:
            mean_ratio = (np.mean([by[("nutslite", s)][key] for s in seeds])
                          / np.mean([by[("nutpie", s)][key] for s in seeds]))
            lines.append(f"  ratio of the means {mean_ratio:.3f}; a median over 5 of these seeds "
                         f"reaches {TARGETS[key]} in {five_seed_odds(ratios, TARGETS[key]):.0%} "
                         "of 5-seed subsets")
    return "\n".join(lines) + "\n"


def five_seed_odds(ratios: list[float], target: float, draws: int = 20_000) -> float:
    """The share of subsets of 5 seeds (``draws`` of them, drawn at random with a fixed seed,
    without repetition within a subset) whose median per-seed ratio reaches ``target``: how
    often issue 14.4's test, a median over 5 seeds, passes when the seeds are left to chance."""
    rng = np.random.default_rng(0)
    ratios_array = np.asarray(ratios)
    medians = [np.median(rng.choice(ratios_array, 5, replace=False)) for _ in range(draws)]
    return float(np.mean(np.asarray(medians) >= target))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--samplers", nargs="+", default=["nutslite", "nutpie"])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--reuse", action="store_true", help="keep the earlier JSON's other runs")
    p.add_argument("--out", default=os.path.join(RESULTS, "radon_warmup"))
    args = p.parse_args(argv)
    data = _peers.data_spec_to_data({"kind": "minnesota"})
    runs: list[dict[str, Any]] = []
    if args.reuse and os.path.exists(args.out + ".json"):
        with open(args.out + ".json") as f:
            runs = [r for r in json.load(f)["runs"] if r["sampler"] not in args.samplers]
    runner = {"nutslite": run_nutslite, "nutpie": run_nutpie}
    for seed in args.seeds:
        for sampler in args.samplers:
            r = runner[sampler](data, seed, args.cores)
            runs.append({"sampler": sampler, "seed": seed, **r})
            print(f"seed {seed} {sampler:8s} ESS/1k sampling {r['ess_per_1k_sampling']:5.1f}  "
                  f"with warmup {r['ess_per_1k_total']:5.2f}  step {r['step_size']:.3f}  "
                  f"accept {r['accept']:.3f}  depth {r['tree_depth']:.2f}  "
                  f"spread {r['metric_spread']:.3f}", flush=True)
    report = {"settings": SETTINGS, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "runs": runs}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(report, f)
    table = markdown(report)
    with open(args.out + ".md", "w") as f:
        f.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
