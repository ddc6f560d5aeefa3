"""How nutslite's and nutpie's cost grows with the data: radon-like synthetic data with 1x, 10x
and 100x the counties and observations of the Minnesota radon data.

Usage::

    python benchmarks/bench_scaling.py            # 1x, 10x, 100x; 4 chains x (1000 + 1000)
    python benchmarks/bench_scaling.py --quick    # 1x and 10x, 2 chains x (150 + 150)
    python benchmarks/bench_scaling.py --scales 10 --repeats 5   # 10x, seeds 1-5

Data: ``nutslite.models.radon.synthetic_radon(85 * scale, 11, seed=0)`` (11 homes per county, as
919 / 85 in Minnesota), non-centered model. nutslite runs with both gradients (``sufficient``:
cost grows with the number of counties only; ``pointwise``: with the number of homes); nutpie runs
the same PyMC model (built by ``_peers.pymc_radon`` on the same synthetic data). Each sampler runs
in its own subprocess, one after the other, with the same settings; the nutslite/nutpie ratios
are taken within the run. ``--repeats N`` runs every scale with seeds ``seed .. seed + N - 1``
and reports each seed's ratio and their median: the ratio of minimum bulk ESS per second moves by
10-20% from seed to seed, so one run cannot tell 11x from 13x. Writes
``benchmarks/results/scaling{,_quick}.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peers  # noqa: E402
from bench_radon import (  # noqa: E402
    LABELS,
    RESULTS,
    available_samplers,
    cache_env,
    check_comparable,
    machine,
    versions,
)

HOMES_PER_COUNTY = 11
BASE_COUNTIES = 85
COLUMNS = (
    ("compile_s", "compile s", "{:.2f}"),
    ("sampling_s", "sampling s", "{:.2f}"),
    ("grads_total", "gradients", "{:,.0f}"),
    ("grad_us", "µs/gradient (function)", "{:.3g}"),
    ("us_per_grad_in_sampler", "µs/gradient (in sampler)", "{:.3g}"),
    ("ess_bulk_min", "min bulk ESS", "{:.0f}"),
    ("ess_bulk_per_s", "bulk ESS/s", "{:,.1f}"),
    ("ess_bulk_per_1k_grads", "bulk ESS/1k grads", "{:.2f}"),
    ("divergences", "divergences", "{:d}"),
    ("rhat_max", "max R-hat", "{:.3f}"),
    ("mean_tree_depth", "mean depth", "{:.2f}"),
    ("other_load_during", "other load (cores)", "{:.2f}"),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run, print and write the scaling tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1x and 10x, small runs (smoke test)")
    p.add_argument("--scales", nargs="+", type=int, default=[1, 10, 100])
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1,
                   help="seeds per scale (seed, seed + 1, ...); ratios are reported per seed and "
                        "as their median")
    p.add_argument("--samplers", nargs="+", default=["nutslite", "nutslite_pointwise", "nutpie"],
                   choices=_peers.SAMPLERS)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.scales, args.draws, args.tune, args.chains = [1, 10], 150, 150, 2
    out_stem = args.out or os.path.join(RESULTS, "scaling_quick" if args.quick else "scaling")
    samplers = available_samplers(args.samplers)
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                "cores": args.cores, "seed": args.seed, "target_accept": 0.8,
                "max_treedepth": 10}
    cache_root = tempfile.mkdtemp(prefix="bench_scaling_")
    env = cache_env(cache_root)
    runs: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    try:
        for scale in args.scales:
            data_spec = {"kind": "synthetic", "n_counties": BASE_COUNTIES * scale,
                         "homes_per_county": HOMES_PER_COUNTY, "seed": 0}
            for seed in range(args.seed, args.seed + args.repeats):
                group = []
                for sampler in samplers:
                    spec = {"sampler": sampler, "parameterization": "noncentered",
                            "data": data_spec, "settings": dict(settings, seed=seed),
                            "mode": "run"}
                    r = _peers.run_worker(spec, env)
                    r.update(sampler=sampler, parameterization="noncentered", scale=scale,
                             settings=spec["settings"], data=data_spec, seed=seed,
                             n_obs=BASE_COUNTIES * scale * HOMES_PER_COUNTY,
                             dim=5 + 2 * BASE_COUNTIES * scale)
                    group.append(r)
                    print(f"  {scale:4d}x  seed {seed}  {LABELS[sampler]:22s} sampling "
                          f"{r['sampling_s']:8.2f} s  grads {r['grads_total']:>9,}  µs/grad fn "
                          f"{r['grad_us']:9.3f}  in sampler {r['us_per_grad_in_sampler']:9.3f}  "
                          f"bulk ESS/s {r['ess_bulk_per_s']:8.1f}  other load "
                          f"{r['other_load_during']:.2f}", flush=True)
                check_comparable(group)
                runs += group
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
    report = {
        "meta": {"command": "python benchmarks/bench_scaling.py " + " ".join(argv or sys.argv[1:]),
                 "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M"),
                 "settings": settings, "scales": args.scales, "samplers": samplers,
                 "seeds": list(range(args.seed, args.seed + args.repeats)),
                 "versions": versions(samplers),
                 "total_seconds": time.perf_counter() - t_start},
        "runs": runs,
    }
    report["growth"] = growth(runs)
    os.makedirs(os.path.dirname(out_stem), exist_ok=True)
    with open(out_stem + ".json", "w") as fh:
        json.dump(report, fh, indent=1)
    text = markdown(report)
    with open(out_stem + ".md", "w") as fh:
        fh.write(text)
    plot(report, out_stem + ".png")
    print()
    print(text)
    print(f"wrote {out_stem}.json, .md and .png")
    return 0


def _median_run(runs: list[dict[str, Any]], sampler: str, scale: int) -> dict[str, float]:
    """The median over seeds of each quantity of ``sampler``'s runs at ``scale``."""
    rs = [r for r in runs if r["sampler"] == sampler and r["scale"] == scale]
    keys = ("sampling_s", "grad_us", "us_per_grad_in_sampler", "grads_total", "ess_bulk_per_s")
    return {k: statistics.median(r[k] for r in rs) for k in keys}


def growth(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per sampler, each scale's sampling time and time per gradient (medians over seeds)
    relative to the smallest scale; per scale, the nutslite/nutpie ratios of bulk ESS/s and of
    sampling time, each seed's (taken within that seed's runs) and their median."""
    out: dict[str, Any] = {"relative": {}, "ratios": {}}
    scales = sorted({r["scale"] for r in runs})
    for sampler in sorted({r["sampler"] for r in runs}):
        mine = [sc for sc in scales if any(r["sampler"] == sampler and r["scale"] == sc
                                           for r in runs)]
        base = _median_run(runs, sampler, mine[0])
        out["relative"][sampler] = {
            str(sc): {k: v / base[k] for k, v in _median_run(runs, sampler, sc).items()
                      if k != "ess_bulk_per_s"}
            for sc in mine
        }
    for scale in scales:
        at = [r for r in runs if r["scale"] == scale]
        seeds = sorted({r.get("seed", 0) for r in at})
        ratios = {}
        for s in ("nutslite", "nutslite_pointwise"):
            per_seed = []
            for seed in seeds:
                by = {r["sampler"]: r for r in at if r.get("seed", 0) == seed}
                if s in by and "nutpie" in by:
                    per_seed.append({
                        "seed": seed,
                        "bulk_ess_per_s": by[s]["ess_bulk_per_s"] / by["nutpie"]["ess_bulk_per_s"],
                        "sampling_time": by["nutpie"]["sampling_s"] / by[s]["sampling_s"],
                    })
            if per_seed:
                ratios[f"{s}/nutpie"] = {
                    key: statistics.median(x[key] for x in per_seed)
                    for key in ("bulk_ess_per_s", "sampling_time")
                } | {"per_seed": per_seed}
        if ratios:
            out["ratios"][str(scale)] = ratios
    return out


def markdown(report: dict[str, Any]) -> str:
    """Scaling tables as markdown."""
    meta, runs = report["meta"], report["runs"]
    s = meta["settings"]
    seeds = meta.get("seeds", [s["seed"]])
    runs_text = ("one run each" if len(seeds) == 1
                 else f"one run per seed, seeds {seeds[0]}-{seeds[-1]}")
    lines = [
        f"# radon scaling: nutslite vs nutpie ({meta['when']})", "",
        f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
        f"Settings: non-centered, {s['chains']} chains x ({s['tune']} tune + {s['draws']} "
        f"draws), cores={s['cores']}; {runs_text}.  ",
        f"Versions: {meta['versions']}", "",
        "| scale | homes | counties | dim | seed | sampler | "
        + " | ".join(c[1] for c in COLUMNS) + " |",
        "|" + "---|" * (6 + len(COLUMNS)),
    ]
    for r in runs:
        cells = [col[2].format(r[col[0]]) for col in COLUMNS]
        seed = r.get("seed", r["settings"]["seed"])
        lines.append(f"| {r['scale']}x | {r['n_obs']:,} | {r['data']['n_counties']:,} | "
                     f"{r['dim']:,} | {seed} | {LABELS[r['sampler']]} | "
                     + " | ".join(cells) + " |")
    median = " (medians over seeds)" if len(seeds) > 1 else ""
    lines += ["", f"Growth relative to 1x{median} (sampling time; µs per gradient of the "
              "function):", "",
              "| sampler | " + " | ".join(f"{sc}x" for sc in meta["scales"]) + " |",
              "|---|" + "---|" * len(meta["scales"])]
    for sampler, rel in report["growth"]["relative"].items():
        cells = [f"{rel[str(sc)]['sampling_s']:.1f}x time; {rel[str(sc)]['grad_us']:.1f}x grad"
                 if str(sc) in rel else "-" for sc in meta["scales"]]
        lines.append(f"| {LABELS[sampler]} | " + " | ".join(cells) + " |")
    lines += ["", "nutslite / nutpie within each scale (bulk ESS/s ratio; nutpie's sampling time "
              f"over nutslite's{'; median over seeds, then each seed' if len(seeds) > 1 else ''}):",
              ""]
    for scale, rat in report["growth"]["ratios"].items():
        parts = []
        for k, v in rat.items():
            part = (f"{LABELS[k.split('/')[0]]}: {v['bulk_ess_per_s']:.2f}x ESS/s, "
                    f"{v['sampling_time']:.1f}x faster")
            if len(v["per_seed"]) > 1:
                part += " (" + ", ".join(f"{x['bulk_ess_per_s']:.2f}x" for x in v["per_seed"]) + ")"
            parts.append(part)
        lines.append(f"- {scale}x: " + "; ".join(parts))
    lines.append("")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: str) -> None:
    """Log-log plot of sampling time and µs per gradient against the number of homes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = (("sampling_s", "sampling wall time (s)"),
              ("us_per_grad_in_sampler", "µs per gradient, in sampler"),
              ("ess_bulk_per_s", "min bulk ESS / s"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for sampler in report["meta"]["samplers"]:
            scales = sorted({r["scale"] for r in runs if r["sampler"] == sampler})
            medians = [_median_run(runs, sampler, sc) for sc in scales]
            homes = [next(r["n_obs"] for r in runs if r["scale"] == sc) for sc in scales]
            ax.plot(homes, [m[key] for m in medians], "o-", label=LABELS[sampler])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("homes (observations)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    s = report["meta"]["settings"]
    fig.suptitle(f"radon-like synthetic data, non-centered, {s['chains']} chains x "
                 f"({s['tune']}+{s['draws']}), cores={s['cores']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
