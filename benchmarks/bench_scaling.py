"""How nutslite's and nutpie's cost grows with the data: radon-like synthetic data with 1x, 10x
and 100x the counties and observations of the Minnesota radon data.

Usage::

    python benchmarks/bench_scaling.py            # 1x, 10x, 100x; 4 chains x (1000 + 1000)
    python benchmarks/bench_scaling.py --quick    # 1x and 10x, 2 chains x (150 + 150)

Data: ``nutslite.models.radon.synthetic_radon(85 * scale, 11, seed=0)`` (11 homes per county, as
919 / 85 in Minnesota), non-centered model. nutslite runs with both gradients (``sufficient``:
cost grows with the number of counties only; ``pointwise``: with the number of homes); nutpie runs
the same PyMC model (built by ``_peers.pymc_radon`` on the same synthetic data). Each sampler runs
in its own subprocess, one after the other, with the same settings; the nutslite/nutpie ratios
are taken within the run. Writes ``benchmarks/results/scaling{,_quick}.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
            group = []
            for sampler in samplers:
                spec = {"sampler": sampler, "parameterization": "noncentered",
                        "data": data_spec, "settings": settings, "mode": "run"}
                r = _peers.run_worker(spec, env)
                r.update(sampler=sampler, parameterization="noncentered", scale=scale,
                         settings=settings, data=data_spec,
                         n_obs=BASE_COUNTIES * scale * HOMES_PER_COUNTY,
                         dim=5 + 2 * BASE_COUNTIES * scale)
                group.append(r)
                print(f"  {scale:4d}x  {LABELS[sampler]:22s} sampling {r['sampling_s']:8.2f} s  "
                      f"grads {r['grads_total']:>9,}  µs/grad fn {r['grad_us']:9.3f}  "
                      f"in sampler {r['us_per_grad_in_sampler']:9.3f}  bulk ESS/s "
                      f"{r['ess_bulk_per_s']:8.1f}  other load {r['other_load_during']:.2f}",
                      flush=True)
            check_comparable(group)
            runs += group
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
    report = {
        "meta": {"command": "python benchmarks/bench_scaling.py " + " ".join(argv or sys.argv[1:]),
                 "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M"),
                 "settings": settings, "scales": args.scales, "samplers": samplers,
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


def growth(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per sampler, each scale's sampling time and time per gradient relative to the smallest
    scale; per scale, nutslite/nutpie ratios of bulk ESS/s."""
    out: dict[str, Any] = {"relative": {}, "ratios": {}}
    for sampler in sorted({r["sampler"] for r in runs}):
        rs = sorted((r for r in runs if r["sampler"] == sampler), key=lambda r: r["scale"])
        base = rs[0]
        out["relative"][sampler] = {
            str(r["scale"]): {
                "sampling_s": r["sampling_s"] / base["sampling_s"],
                "grad_us": r["grad_us"] / base["grad_us"],
                "us_per_grad_in_sampler": r["us_per_grad_in_sampler"]
                / base["us_per_grad_in_sampler"],
                "grads_total": r["grads_total"] / base["grads_total"],
            }
            for r in rs
        }
    for scale in sorted({r["scale"] for r in runs}):
        by = {r["sampler"]: r for r in runs if r["scale"] == scale}
        if "nutpie" in by:
            out["ratios"][str(scale)] = {
                f"{s}/nutpie": {
                    "bulk_ess_per_s": by[s]["ess_bulk_per_s"] / by["nutpie"]["ess_bulk_per_s"],
                    "sampling_time": by["nutpie"]["sampling_s"] / by[s]["sampling_s"],
                }
                for s in ("nutslite", "nutslite_pointwise") if s in by
            }
    return out


def markdown(report: dict[str, Any]) -> str:
    """Scaling tables as markdown."""
    meta, runs = report["meta"], report["runs"]
    s = meta["settings"]
    lines = [
        f"# radon scaling: nutslite vs nutpie ({meta['when']})", "",
        f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
        f"Settings: non-centered, {s['chains']} chains x ({s['tune']} tune + {s['draws']} "
        f"draws), cores={s['cores']}, seed={s['seed']}; one run each.  ",
        f"Versions: {meta['versions']}", "",
        "| scale | homes | counties | dim | sampler | "
        + " | ".join(c[1] for c in COLUMNS) + " |",
        "|" + "---|" * (5 + len(COLUMNS)),
    ]
    for r in runs:
        cells = [col[2].format(r[col[0]]) for col in COLUMNS]
        lines.append(f"| {r['scale']}x | {r['n_obs']:,} | {r['data']['n_counties']:,} | "
                     f"{r['dim']:,} | {LABELS[r['sampler']]} | " + " | ".join(cells) + " |")
    lines += ["", "Growth relative to 1x (sampling time; µs per gradient of the function):", "",
              "| sampler | " + " | ".join(f"{sc}x" for sc in meta["scales"]) + " |",
              "|---|" + "---|" * len(meta["scales"])]
    for sampler, rel in report["growth"]["relative"].items():
        cells = [f"{rel[str(sc)]['sampling_s']:.1f}x time; {rel[str(sc)]['grad_us']:.1f}x grad"
                 if str(sc) in rel else "-" for sc in meta["scales"]]
        lines.append(f"| {LABELS[sampler]} | " + " | ".join(cells) + " |")
    lines += ["", "nutslite / nutpie within each scale (bulk ESS/s ratio; nutpie's sampling time "
              "over nutslite's):", ""]
    for scale, rat in report["growth"]["ratios"].items():
        parts = [f"{LABELS[k.split('/')[0]]}: {v['bulk_ess_per_s']:.2f}x ESS/s, "
                 f"{v['sampling_time']:.1f}x faster" for k, v in rat.items()]
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
            rs = sorted((r for r in runs if r["sampler"] == sampler), key=lambda r: r["n_obs"])
            ax.plot([r["n_obs"] for r in rs], [r[key] for r in rs], "o-", label=LABELS[sampler])
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
