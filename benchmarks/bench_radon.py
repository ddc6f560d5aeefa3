"""nutslite against PyMC's NUTS and nutpie on the radon model of Wiecki (2017), side by side.

Usage (from the repository root; the peers come from the ``bench`` extra)::

    python benchmarks/bench_radon.py            # 3 repeats, 4 chains x (1000 tune + 1000 draws)
    python benchmarks/bench_radon.py --quick    # a smoke test: 1 repeat, small runs, no cold cache
    python benchmarks/bench_radon.py --from-json benchmarks/results/radon.json   # re-render

For each repeat, parameterization and sampler, one fresh subprocess runs one sampler, one after
the other, with the same data, chains, draws, tune, seed (``seed + repeat``), cores,
``target_accept`` and maximum tree depth. Samplers: nutslite with its defaults (gradient
``likelihood="sufficient"``, ``adaptation="grad"``), nutslite with the plain per-observation
gradient (``likelihood="pointwise"``), nutslite with Stan's windowed metric adaptation
(``adaptation="stan"``, default gradient), nutpie (PyMC model compiled to Numba, Rust sampler) and
PyMC's NUTS.

Measured per run: import time; compile time with a cold cache (a fresh, empty ``NUMBA_CACHE_DIR``
and PyTensor ``compiledir``, in a separate process) and with a warm one; for nutslite also the cold
time from ``import nutslite`` to the first draw (another fresh process with empty caches: import,
model, a one-draw call with ``warn=False``, so without the diagnostics' compile that the cold first
call above includes; issue 14.3 compares it with nutpie's cold compile); sampling wall time (the
sampler's own loop, warmup included: ``settings["wall_seconds"]`` for nutslite, PyMC's
``sampling_time``, the whole ``nutpie.sample`` call); gradient evaluations in warmup and sampling
from each sampler's own ``n_steps``; the minimum bulk and tail ESS and maximum R-hat over all 175
unconstrained coordinates (computed the same way for every sampler); ESS per second and per 1000
gradients; divergences; mean tree depth; final step size; microseconds per gradient evaluation of
the bare log-density function (called as its sampler calls it) and per gradient evaluation inside
the sampler (sampling core-seconds / gradients).

The headline is bulk ESS per second of the **whole call**, the sampler's entry function as a user
calls it with its defaults (nutslite: ``nl.sample`` including the diagnostics behind its warnings;
nutpie: ``nutpie.sample``); beside it, bulk ESS per second of the whole process (imports, compile
or warm-cache load, and the call) and of the chain loop alone.

Ratios nutslite/nutpie and nutslite/PyMC are taken within each repeat, then summarised by their
median and range. The script refuses to compare runs whose settings, data or output shapes differ.
Outputs: ``benchmarks/results/radon{,_quick}.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peers  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TARGETS = {"nutpie": 10.0, "pymc": 50.0}  # nutslite's bulk ESS/s must be at least this many times
LABELS = {
    "nutslite": "nutslite (default)",
    "nutslite_pointwise": "nutslite (pointwise)",
    "nutslite_stan": "nutslite (Stan warmup)",
    "nutpie": "nutpie",
    "pymc": "PyMC NUTS",
}
# settings every run of one comparison must share
SHARED_KEYS = ("draws", "tune", "chains", "cores", "seed", "target_accept", "max_treedepth")


class SettingsMismatch(RuntimeError):
    """Runs that are to be compared were made with different settings or data."""


def available_samplers(wanted: Sequence[str]) -> list[str]:
    """The requested samplers whose packages import; the others are reported and skipped."""
    out = []
    for name in wanted:
        module = {"nutpie": "nutpie", "pymc": "pymc"}.get(name)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                print(f"  skipping {name}: `{module}` is not installed (pip install -e .[bench])")
                continue
        out.append(name)
    return out


def cache_env(root: str) -> dict[str, str]:
    """Environment that points Numba's and PyTensor's on-disk caches into ``root``."""
    numba_dir = os.path.join(root, "numba")
    pt_dir = os.path.join(root, "pytensor")
    os.makedirs(numba_dir, exist_ok=True)
    os.makedirs(pt_dir, exist_ok=True)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    flags = f"{flags},compiledir={pt_dir}" if flags else f"compiledir={pt_dir}"
    return {"NUMBA_CACHE_DIR": numba_dir, "PYTENSOR_FLAGS": flags}


# A fresh process with empty caches times ``import nutslite`` + the model + a one-draw call
# without the diagnostics: the compile a user waits for before the first draw.
# argv: parameterization, likelihood, adaptation.
FIRST_DRAW = """
import json, sys, time
t0 = time.perf_counter()
import nutslite as nl
t_import = time.perf_counter() - t0
from nutslite.models.radon import load_radon
model = nl.models.radon(sys.argv[1], likelihood=sys.argv[2], data=load_radon())
res = nl.sample(model, draws=1, tune=0, chains=1, seed=0, cores=1, progress=False, warn=False,
                adaptation=sys.argv[3])
t_draw = time.perf_counter() - t0
assert res.unconstrained.shape == (1, 1, model.dim)
print("RESULT " + json.dumps({"import_s": t_import, "first_draw_s": t_draw,
                              "path": nl.__file__}))
"""


def cold_first_draw(sampler: str, param: str) -> dict[str, Any]:
    """Seconds from ``import nutslite`` to the first radon draw of ``sampler`` (a nutslite variant)
    in a fresh process whose caches (Numba's, nutslite's, PyTensor's) are new and empty."""
    import subprocess

    likelihood = "pointwise" if sampler == "nutslite_pointwise" else "sufficient"
    adaptation = "stan" if sampler == "nutslite_stan" else "grad"
    root = tempfile.mkdtemp(prefix="bench_radon_first_draw_")
    try:
        env = dict(os.environ, **cache_env(root), NUTSLITE_CACHE_DIR=os.path.join(root, "nl"))
        _peers.wait_for_quiet()
        proc = subprocess.run(
            [sys.executable, "-c", FIRST_DRAW, param, likelihood, adaptation],
            capture_output=True, text=True, env=env, timeout=3600,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"first-draw run of {sampler}/{param} failed:\n{proc.stderr[-3000:]}")


def check_comparable(runs: Sequence[dict[str, Any]]) -> None:
    """Raise ``SettingsMismatch`` unless every run has the same settings and data, and each
    sampler's output has the number of chains, draws and warmup draws that were asked for."""
    if not runs:
        return
    ref = runs[0]
    for run in runs:
        for key in SHARED_KEYS:
            if run["settings"][key] != ref["settings"][key]:
                raise SettingsMismatch(
                    f"{run['sampler']} ran with {key}={run['settings'][key]!r} but "
                    f"{ref['sampler']} with {ref['settings'][key]!r}: refusing to compare"
                )
        if run["data"] != ref["data"] or run["data_digest"] != ref["data_digest"]:
            raise SettingsMismatch(
                f"{run['sampler']} and {ref['sampler']} ran on different data: refusing to compare"
            )
        got = run["shape_check"]
        want = {k: run["settings"][k] for k in ("chains", "draws", "tune")}
        if got != want:
            raise SettingsMismatch(
                f"{run['sampler']} returned {got} but was asked for {want}: refusing to compare"
            )


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum and maximum (NaN-free input)."""
    arr = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(arr)), "min": float(arr.min()), "max": float(arr.max()),
            "n": int(arr.size)}


def fmt(s: dict[str, float] | None, digits: int = 3, integer: bool = False) -> str:
    """``median [min-max]`` with a sensible number of significant digits."""
    if s is None:
        return "-"

    def f(v: float) -> str:
        if integer:
            return f"{v:,.0f}"
        if v == 0:
            return "0"
        mag = int(np.floor(np.log10(abs(v))))
        dec = max(0, digits - 1 - mag)
        return f"{v:,.{dec}f}"

    if s["n"] == 1 or s["min"] == s["max"]:
        return f(s["median"])
    return f"{f(s['median'])} [{f(s['min'])}-{f(s['max'])}]"


METRICS = (
    # key, column title, integer
    ("import_s", "import s", False),
    ("compile_cold_s", "compile cold s (nutslite: whole first call, diagnostics included)",
     False),
    ("first_draw_cold_s", "cold, import to first draw s (nutslite: 1 draw, warn=False)", False),
    ("compile_s", "compile warm s", False),
    ("call_s", "whole call s (incl. set-up, conversion, diagnostics)", False),
    ("process_s", "whole process s (import + compile warm + call)", False),
    ("sampling_s", "chain loop s (sampling, warmup included)", False),
    ("cpu_s", "sampler call CPU s", False),
    ("grads_total", "gradients (warmup+draws)", True),
    ("grad_us", "µs/gradient (function)", False),
    ("us_per_grad_in_sampler", "µs/gradient (in sampler)", False),
    ("cpu_us_per_grad", "CPU µs/gradient (in sampler)", False),
    ("grad_share", "gradient share of sampling", False),
    ("ess_bulk_min", "min bulk ESS", True),
    ("ess_tail_min", "min tail ESS", True),
    ("ess_bulk_per_call_s", "**bulk ESS/s, whole call**", True),
    ("ess_bulk_per_process_s", "bulk ESS/s, whole process", True),
    ("ess_bulk_per_s", "bulk ESS/s, chain loop", True),
    ("ess_tail_per_s", "tail ESS/s, chain loop", True),
    ("ess_bulk_per_cpu_s", "bulk ESS per CPU s", True),
    ("ess_bulk_per_1k_grads", "bulk ESS/1k grads", False),
    ("divergences", "divergences", True),
    ("rhat_max", "max R-hat", False),
    ("mean_tree_depth", "mean tree depth", False),
    ("final_step_size", "step size", False),
    ("other_load_during", "other processes' load during run (cores)", False),
)


def summarise(runs: list[dict[str, Any]], samplers: Sequence[str], params: Sequence[str]) -> dict:
    """Per (parameterization, sampler): median and range of each metric; per parameterization:
    the within-repeat ratios of nutslite to each peer."""
    out: dict[str, Any] = {}
    for param in params:
        per = {}
        for sampler in samplers:
            rs = [r for r in runs if r["parameterization"] == param and r["sampler"] == sampler]
            if not rs:
                continue
            per[sampler] = {
                key: stats([r[key] for r in rs if r.get(key) is not None])
                for key, _, _ in METRICS
                if any(r.get(key) is not None for r in rs)
            }
            cold = [r["import_cold_s"] for r in rs if r.get("import_cold_s") is not None]
            if cold:
                per[sampler]["import_cold_s"] = stats(cold)
        ratios: dict[str, Any] = {}
        repeats = sorted({r["repeat"] for r in runs})
        for mine in ("nutslite", "nutslite_pointwise", "nutslite_stan"):
            for peer in ("nutpie", "pymc"):
                rows = []
                for rep in repeats:
                    a = [r for r in runs if r["repeat"] == rep and r["parameterization"] == param
                         and r["sampler"] == mine]
                    b = [r for r in runs if r["repeat"] == rep and r["parameterization"] == param
                         and r["sampler"] == peer]
                    if a and b:
                        check_comparable([a[0], b[0]])
                        rows.append((a[0], b[0]))
                if not rows:
                    continue
                ratios[f"{mine}/{peer}"] = {
                    "bulk_ess_per_call_s": stats([a["ess_bulk_per_call_s"]
                                                  / b["ess_bulk_per_call_s"] for a, b in rows]),
                    "bulk_ess_per_process_s": stats([a["ess_bulk_per_process_s"]
                                                     / b["ess_bulk_per_process_s"]
                                                     for a, b in rows]),
                    "bulk_ess_per_s": stats([a["ess_bulk_per_s"] / b["ess_bulk_per_s"]
                                             for a, b in rows]),
                    "tail_ess_per_s": stats([a["ess_tail_per_s"] / b["ess_tail_per_s"]
                                             for a, b in rows]),
                    "bulk_ess_per_cpu_s": stats([a["ess_bulk_per_cpu_s"]
                                                 / b["ess_bulk_per_cpu_s"] for a, b in rows]),
                    "bulk_ess_per_grad": stats([a["ess_bulk_per_1k_grads"]
                                                / b["ess_bulk_per_1k_grads"] for a, b in rows]),
                    "time_per_grad_in_sampler": stats([b["us_per_grad_in_sampler"]
                                                       / a["us_per_grad_in_sampler"]
                                                       for a, b in rows]),
                    "time_per_grad_function": stats([b["grad_us"] / a["grad_us"]
                                                     for a, b in rows]),
                    "target": TARGETS[peer],
                }
                cold = [a["first_draw_cold_s"] / b["compile_cold_s"] for a, b in rows
                        if a.get("first_draw_cold_s") and b.get("compile_cold_s")]
                if cold:  # issue 14.3, paired within each repeat (the host's speed drifts)
                    ratios[f"{mine}/{peer}"]["first_draw_cold_vs_compile"] = stats(cold)
        out[param] = {"samplers": per, "ratios": ratios}
    return out


def markdown(report: dict[str, Any]) -> str:
    """The tables of ``report`` as markdown."""
    meta, summary = report["meta"], report["summary"]
    s = meta["settings"]
    lines = [
        f"# radon: nutslite vs nutpie vs PyMC ({meta['when']})",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}  ",
        f"Settings: {s['chains']} chains x ({s['tune']} tune + {s['draws']} draws), "
        f"cores={s['cores']}, seed={s['seed']} + repeat, target_accept={s['target_accept']}, "
        f"max_treedepth={s['max_treedepth']}; {meta['repeats']} repeat(s); "
        "each cell: median [min-max] over repeats.  ",
        f"Versions: {meta['versions']}  ",
        "",
    ]
    for param, block in summary.items():
        per = block["samplers"]
        lines += [f"## {param}", ""]
        head = ["metric"] + [LABELS[k] for k in per]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, title, integer in METRICS:
            row = [title] + [fmt(per[k].get(key), integer=integer) for k in per]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        if block["ratios"]:
            lines += [
                "| ratio (within each repeat) | **bulk ESS/s, whole call** "
                "| bulk ESS/s, whole process | bulk ESS/s, chain loop | tail ESS/s, chain loop "
                "| bulk ESS per CPU s "
                "| bulk ESS per gradient | time/gradient in sampler (peer / nutslite) "
                "| time/gradient, function (peer / nutslite) | target (bulk ESS/s, whole call) |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for name, r in block["ratios"].items():
                mine, peer = name.split("/")
                headline = r.get("bulk_ess_per_call_s", r["bulk_ess_per_s"])
                met = "met" if headline["median"] >= r["target"] else "not met"
                lines.append(
                    f"| {LABELS[mine]} / {LABELS[peer]} | {fmt(r.get('bulk_ess_per_call_s'))} | "
                    f"{fmt(r.get('bulk_ess_per_process_s'))} | {fmt(r['bulk_ess_per_s'])} | "
                    f"{fmt(r['tail_ess_per_s'])} | {fmt(r.get('bulk_ess_per_cpu_s'))} | "
                    f"{fmt(r['bulk_ess_per_grad'])} | "
                    f"{fmt(r['time_per_grad_in_sampler'])} | {fmt(r['time_per_grad_function'])} | "
                    f">= {r['target']:g}x: {met} |"
                )
            lines.append("")
        lines += _cold_start_lines(per, block["ratios"])
    if report.get("logp_check"):
        lines += ["## logp and gradient vs PyMC (same model, same data)", ""]
        for param, res in report["logp_check"].items():
            for lik, c in res.items():
                lines.append(
                    f"- {param}, {lik}: logp_pymc - logp_nutslite = {c['logp_offset']:.6f} "
                    f"(spread {c['logp_offset_spread']:.1e} over 5 points), max |grad diff| = "
                    f"{c['grad_max_abs_diff']:.1e}"
                )
        lines.append("")
    lines += [
        "Notes: gradients are counted from each sampler's own `n_steps` (one gradient per leapfrog "
        "step, warmup included; the few evaluations of initialisation and step-size heuristics "
        "are not counted for any sampler). ESS and R-hat: rank-normalised (Vehtari et al. 2021) "
        "over all unconstrained coordinates, same code for every sampler. Sampling time is each "
        "sampler's own loop (PyMC: its `sampling_time`, excluding process start-up and "
        "conversion; nutpie: the whole `nutpie.sample` call; nutslite: `wall_seconds`, its "
        "chain loop). "
        "**Whole call** (the headline): the sampler's entry function from call to return, with "
        "its default settings except the progress display (nutslite: `nl.sample` with the "
        "diagnostics behind its warnings, warmup draws not kept; nutpie: `nutpie.sample`, which "
        "keeps warmup draws by default; PyMC: `pm.sample` with set-up and conversion to "
        "InferenceData, warmup kept to count its gradients, convergence checks off). Whole "
        "process: imports + compile or warm-cache load + whole call, as a fresh Python process "
        "that samples once pays it. "
        "µs/gradient in sampler = sampling wall x min(cores, chains) / gradients. CPU s: CPU "
        "time of the sampler call, all threads and chain processes (robust to other processes "
        "sharing the machine; includes any spinning of idle worker threads). Cold compile: "
        f"first {meta.get('cold_repeats', 1)} repeat(s) only; for nutslite it is the whole first "
        "call with empty caches (the engine's compile and the diagnostics'), and 'import to "
        "first draw' is a separate fresh process with empty caches timing `import nutslite`, "
        "the model and a one-draw call with `warn=False` (the engine's compile only). "
        "'other processes' load' is the machine's busy cores minus the benchmark's own during "
        "each run: wall-time numbers of runs with a high value are inflated.",
        "",
    ]
    return "\n".join(lines)


def _cold_start_lines(per: dict[str, Any], ratios: dict[str, Any]) -> list[str]:
    """Each nutslite variant's cold first call and cold time to the first draw beside nutpie's
    cold compile (issue 14.3), when this run measured them: the ratio of the medians, and the
    median of the ratios within each repeat (the two runs of a repeat are minutes apart, the
    repeats further, and a shared host's speed drifts in between)."""
    peer = per.get("nutpie", {}).get("compile_cold_s")
    lines = []
    for name, cells in per.items():
        first, whole = cells.get("first_draw_cold_s"), cells.get("compile_cold_s")
        if not name.startswith("nutslite") or first is None or whole is None:
            continue
        text = (f"- {LABELS[name]}, cold cache: whole first call {fmt(whole)} s; from `import "
                f"nutslite` to the first draw {fmt(first)} s")
        if peer is not None:
            text += (f"; nutpie's cold compile {fmt(peer)} s (first draw / nutpie compile "
                     f"{first['median'] / peer['median']:.2f}x")
            paired = ratios.get(f"{name}/nutpie", {}).get("first_draw_cold_vs_compile")
            if paired is not None:
                text += f"; within each repeat {fmt(paired)}x"
            text += ")"
        lines.append(text)
    return lines + [""] if lines else []


def chart(report: dict[str, Any], path: str) -> None:
    """Bar charts of bulk ESS/s, bulk ESS per 1000 gradients and µs per gradient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = report["summary"]
    params = list(summary)
    panels = (
        ("ess_bulk_per_call_s", "min bulk ESS / s, whole call (log)", True),
        ("ess_bulk_per_s", "min bulk ESS / s, chain loop (log)", True),
        ("ess_bulk_per_1k_grads", "min bulk ESS / 1000 gradients", False),
        ("us_per_grad_in_sampler", "µs per gradient in sampler (log)", True),
    )
    fig, axes = plt.subplots(len(params), len(panels), figsize=(19, 3.6 * len(params)),
                             squeeze=False)
    colors = {"nutslite": "C0", "nutslite_pointwise": "C9", "nutslite_stan": "C2",
              "nutpie": "C1", "pymc": "C3"}
    for i, param in enumerate(params):
        per = summary[param]["samplers"]
        for j, (key, title, log) in enumerate(panels):
            ax = axes[i, j]
            names = [n for n in per if key in per[n]]  # older JSONs lack the whole-call keys
            med = np.array([per[n][key]["median"] for n in names])
            lo = med - np.array([per[n][key]["min"] for n in names])
            hi = np.array([per[n][key]["max"] for n in names]) - med
            ax.bar(range(len(names)), med, yerr=[lo, hi], capsize=4,
                   color=[colors[n] for n in names])
            ax.set_xticks(range(len(names)), [LABELS[n].replace(" (", "\n(") for n in names],
                          fontsize=7)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{param}: {title}", fontsize=10)
            for x, (v, top) in enumerate(zip(med, med + hi, strict=True)):
                ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.3g}", (x, top), ha="center",
                            va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
            ax.margins(y=0.15)  # room for the labels above the tallest range
    s = report["meta"]["settings"]
    fig.suptitle(
        f"radon, {s['chains']} chains x ({s['tune']}+{s['draws']}), cores={s['cores']}, "
        f"median and range over {report['meta']['repeats']} repeat(s)", fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> str:
    """CPU model, core count, OS and Python."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def versions(samplers: Sequence[str]) -> str:
    """Versions of the packages involved."""
    import numba

    out = [f"numpy {np.__version__}", f"numba {numba.__version__}"]
    for mod in ("pymc", "nutpie", "arviz"):
        if any(s == mod for s in samplers) or (mod == "pymc" and "nutpie" in samplers):
            try:
                out.append(f"{mod} {__import__(mod).__version__}")
            except ImportError:
                pass
    return ", ".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 repeat, 2 chains x (150 + 150), noncentered, no cold cache")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--target-accept", type=float, default=0.8)
    p.add_argument("--max-treedepth", type=int, default=10)
    p.add_argument("--params", nargs="+", default=list(_peers.PARAMETERIZATIONS),
                   choices=_peers.PARAMETERIZATIONS)
    p.add_argument("--samplers", nargs="+", default=list(_peers.SAMPLERS),
                   choices=_peers.SAMPLERS)
    p.add_argument("--no-cold", action="store_true", help="skip the cold-cache compile runs")
    p.add_argument("--cold-repeats", type=int, default=1,
                   help="measure cold-cache compile time in the first N repeats (default 1)")
    p.add_argument("--out", default=None, help="output stem (default results/radon[_quick])")
    p.add_argument("--from-json", default=None, help="re-render tables and chart from a JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.draws, args.tune, args.chains = 1, 150, 150, 2
        args.params, args.no_cold = ["noncentered"], True
    if args.out is None:
        args.out = os.path.join(RESULTS, "radon_quick" if args.quick else "radon")
    return args


def run(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, Any]:
    """Run every sampler, parameterization and repeat; return the report."""
    samplers = available_samplers(args.samplers)
    data_spec = {"kind": "minnesota"}
    data = _peers.data_spec_to_data(data_spec)
    logp_check = {}
    if "pymc" in samplers or "nutpie" in samplers:
        print("logp/gradient check against PyMC (same model, same data):")
        for param in args.params:
            logp_check[param] = _peers.check_against_pymc(param, data)
            for lik, c in logp_check[param].items():
                ok = c["logp_offset_spread"] < 1e-6 and c["grad_max_abs_diff"] < 1e-6
                print(f"  {param:11s} {lik:10s} logp offset {c['logp_offset']:.6f} "
                      f"(spread {c['logp_offset_spread']:.1e}), max |grad diff| "
                      f"{c['grad_max_abs_diff']:.1e}  {'OK' if ok else 'MISMATCH'}")
                if not ok:
                    raise SystemExit("nutslite and PyMC disagree on the radon density")
    base = {"cores": args.cores, "chains": args.chains, "draws": args.draws, "tune": args.tune,
            "target_accept": args.target_accept, "max_treedepth": args.max_treedepth}
    warm_root = tempfile.mkdtemp(prefix="bench_radon_warm_")
    warm_env = cache_env(warm_root)
    runs: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    try:
        print("priming warm caches (not timed)")
        for param in args.params:
            for sampler in samplers:
                _peers.run_worker({"sampler": sampler, "parameterization": param,
                                   "mode": "compile", "data": data_spec}, warm_env)
        for rep in range(args.repeats):
            settings = dict(base, seed=args.seed + rep)
            for param in args.params:
                for sampler in samplers:
                    spec = {"sampler": sampler, "parameterization": param, "data": data_spec,
                            "settings": settings}
                    cold = first = None
                    if not args.no_cold and rep < args.cold_repeats:
                        cold_root = tempfile.mkdtemp(prefix="bench_radon_cold_")
                        try:
                            cold = _peers.run_worker(dict(spec, mode="compile"),
                                                     cache_env(cold_root))
                        finally:
                            shutil.rmtree(cold_root, ignore_errors=True)
                        if sampler.startswith("nutslite"):
                            first = cold_first_draw(sampler, param)
                    r = _peers.run_worker(dict(spec, mode="run"), warm_env)
                    imported = None if first is None else os.path.dirname(first["path"])
                    if imported is not None and imported != r["versions"]["path"]:
                        raise SystemExit(f"the first-draw run imported {first['path']}, the "
                                         f"others {r['versions']['path']}")
                    r.update(sampler=sampler, parameterization=param, repeat=rep,
                             settings=settings, data=data_spec,
                             compile_cold_s=None if cold is None else cold["compile_s"],
                             import_cold_s=None if cold is None else cold["import_s"],
                             first_draw_cold_s=None if first is None else first["first_draw_s"])
                    if first is not None:
                        print(f"  repeat {rep} {param:11s} {LABELS[sampler]:22s} cold: first "
                              f"call {cold['compile_s']:.1f} s, import to first draw "
                              f"{first['first_draw_s']:.1f} s", flush=True)
                    r["grad_share"] = r["grad_us"] / r["us_per_grad_in_sampler"]
                    runs.append(r)
                    print(f"  repeat {rep} {param:11s} {LABELS[sampler]:22s} "
                          f"call {r['call_s']:6.2f} s  loop {r['sampling_s']:6.2f} s  "
                          f"grads {r['grads_total']:>8,}  bulk ESS {r['ess_bulk_min']:6.0f}  "
                          f"ESS/s call {r['ess_bulk_per_call_s']:7.0f} loop "
                          f"{r['ess_bulk_per_s']:7.0f}  div {r['divergences']:3d}  "
                          f"R-hat {r['rhat_max']:.3f}  other load {r['other_load_during']:.2f}",
                          flush=True)
                check_comparable([r for r in runs if r["repeat"] == rep
                                  and r["parameterization"] == param])
    finally:
        shutil.rmtree(warm_root, ignore_errors=True)
    nl_versions = next((r["versions"] for r in runs if r["sampler"].startswith("nutslite")), {})
    meta = {
        "command": "python benchmarks/bench_radon.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "settings": dict(base, seed=args.seed),
        "repeats": args.repeats,
        "cold_repeats": 0 if args.no_cold else min(args.cold_repeats, args.repeats),
        "samplers": samplers,
        "params": args.params,
        "versions": versions(samplers) + f", nutslite {nl_versions.get('commit', '?')}",
        "total_seconds": time.perf_counter() - t_start,
    }
    return {"meta": meta, "logp_check": logp_check, "runs": runs}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    if args.from_json:
        with open(args.from_json) as fh:
            report = json.load(fh)
    else:
        report = run(args, argv)
    meta = report["meta"]
    try:
        report["summary"] = summarise(report["runs"], meta["samplers"], meta["params"])
    except SettingsMismatch as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as fh:
        json.dump(report, fh, indent=1)
    text = markdown(report)
    with open(args.out + ".md", "w") as fh:
        fh.write(text)
    chart(report, args.out + ".png")
    print()
    print(text)
    print(f"wrote {args.out}.json, .md and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
