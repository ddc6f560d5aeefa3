"""nutslite (through ``nl.from_pymc``), nutpie and PyMC's NUTS on the eight posteriordb posteriors.

The posteriors are written in PyMC (``benchmarks/posteriors``), so all three samplers start from
the same ``pymc.Model``: nutslite and nutpie both compile it to Numba with PyTensor
(``nl.from_pymc``; ``nutpie.compile_pymc_model(backend="numba")``) and run the same generated
gradient code, while PyMC's own NUTS (``pm.sample``) evaluates PyTensor's C-compiled gradient from
Python. Every (sampler, posterior, repeat) runs in a fresh subprocess, with the same chains, warmup,
draws, cores and seed, and with the Stan settings posteriordb used for its reference (adapt_delta
as ``target_accept``, max_treedepth). The samplers of one posterior run one after the other
(interleaved, the order rotated by repeat), so a ratio compares runs made minutes apart.

**Whole call.** The clock starts when the subprocess starts its work and stops when the sampler's
call returns, so it covers what a user waits for: importing the sampler (and PyMC, which builds the
model), building the model, compiling it (``nl.from_pymc``; ``nutpie.compile_pymc_model``;
inside ``pm.sample``), warmup, sampling and the diagnostics each default call computes
(``nl.sample`` with its warnings on; ``pm.sample`` with its convergence checks on; nutpie computes
none). The parts are reported beside it: *compile* (``nl.from_pymc``; ``compile_pymc_model``; for
PyMC the part of ``pm.sample`` outside its own ``sampling_time``, i.e. compiling, initialising,
the conversion to InferenceData and its checks) and *sampling* (nutslite's
``settings["wall_seconds"]``, the whole ``nutpie.sample`` call, PyMC's ``sampling_time``). Only
the progress display is off (for all three) and warmup statistics are kept where a sampler would
drop them (PyMC's ``discard_tuned_samples=False``), to count gradients.

A pass before the timed runs calls each sampler once on each posterior with a tiny run (1 chain,
1 warmup iteration, 4 draws; not reported), so that the on-disk caches (Numba's for nutslite's
engine and adapter, PyTensor's C cache for PyMC) hold what a user's second session would find;
nutpie compiles in every process.

**Reported** per posterior and sampler (medians over the repeats): whole-call, compile and
sampling seconds; gradient evaluations (leapfrog steps, warmup included); divergences after
warmup; the smallest bulk ESS and the largest rank-normalised split R-hat over the reference's
scalars (``nutslite.diagnostics``, Vehtari et al. 2021, on the constrained scale where the
reference is summarised); bulk ESS per second of the whole call (the headline) and of sampling;
bulk ESS per 1000 gradients; and the largest ``|z| = |mean - ref mean| / sqrt(mcse^2 +
ref mcse^2)`` over the scalars. Agreement with the reference is a Bonferroni test over every
scalar and sampler: a family-wise false-alarm rate ``ALPHA`` = 1% over ``m`` two-sided tests gives
the bound ``z* = Phi^-1(1 - ALPHA / (2 m))`` (3.99 for the 51 scalars x 3 samplers).

**Goals** (issue 15): nutslite's whole-call ESS/s at least nutpie's on every posterior; its
geometric mean at least 3x nutpie's and 20x PyMC's; agreement on every posterior.

    python benchmarks/bench_posteriors.py                 # -> results/posteriors.{md,json,png}
    python benchmarks/bench_posteriors.py --repeats 3 --pymc-repeats 1
    python benchmarks/bench_posteriors.py --quick         # 2 chains x (300 + 300), a smoke run
    python benchmarks/bench_posteriors.py --from-json     # tables and chart from the JSON only
    python benchmarks/bench_posteriors.py --append --samplers nutslite nutpie  # more repeats
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLERS = ("nutslite", "nutpie", "pymc")
LABEL = {"nutslite": "nutslite", "nutpie": "nutpie", "pymc": "PyMC NUTS"}
ALPHA = 0.01  # family-wise false-alarm rate of the agreement check (Bonferroni)
GOAL_VS_NUTPIE = 3.0  # geometric mean of nutslite / nutpie, whole-call ESS/s
GOAL_VS_PYMC = 20.0  # geometric mean of nutslite / PyMC
# environment variables that set BLAS threads, recorded with the command when set
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# medians over repeats
FIELDS = ("whole_s", "import_build_s", "compile_s", "sampling_s", "grads", "ess_bulk_min")


def _scalar_draws(name: str, posterior) -> dict[tuple[str, tuple[int, ...]], np.ndarray]:
    """``(chains, draws)`` arrays of each reference scalar, from a dict-like posterior."""
    from benchmarks.posteriors import reference

    return {
        (var, index): np.asarray(posterior[var])[(slice(None), slice(None), *index)]
        for (var, index) in reference(name)
    }


def _label(var: str, index: tuple[int, ...]) -> str:
    return f"{var}{list(index) if index else ''}"


def _summary(name: str, posterior) -> dict:
    """Min bulk ESS, max R-hat and the z of each posterior mean against the reference."""
    import nutslite as nl
    from benchmarks.posteriors import reference

    d = nl.diagnostics
    draws = _scalar_draws(name, posterior)
    bulk = {k: float(d.ess_bulk(x)) for k, x in draws.items()}
    rhat = {k: float(d.rhat(x)) for k, x in draws.items()}
    z = {
        _label(*k): float((x.mean() - r["mean"]) / np.hypot(d.mcse_mean(x), r["mcse_mean"]))
        for (k, r), x in zip(reference(name).items(), draws.values(), strict=True)
    }
    worst = min(bulk, key=bulk.get)
    return {"ess_bulk_min": bulk[worst], "ess_bulk_argmin": _label(*worst),
            "rhat_max": max(rhat.values()), "z": z,
            "max_abs_z_mean": max(abs(v) for v in z.values())}


def worker(spec: dict) -> dict:
    """One sampler on one posterior, in this process; the clock starts here."""
    t_start = time.perf_counter()
    sampler, name, s = spec["sampler"], spec["posterior"], spec["settings"]
    if sampler == "nutslite":
        import nutslite as nl
    elif sampler == "nutpie":
        import nutpie
    elif sampler == "pymc":
        import pymc as pm
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    from benchmarks.posteriors import build, reference_settings

    stan = reference_settings(name)
    model = build(name)
    common = {"draws": s["draws"], "tune": s["tune"], "chains": s["chains"], "cores": s["cores"],
              "target_accept": stan["adapt_delta"]}
    t0 = time.perf_counter()
    if sampler == "nutslite":
        bridged = nl.from_pymc(model, name=name)
        t1 = time.perf_counter()
        res = nl.sample(bridged, seed=s["seed"], max_treedepth=stan["max_treedepth"],
                        progress=False, **common)
        t_end = time.perf_counter()
        compile_s, sampling_s = t1 - t0, float(res.settings["wall_seconds"])
        grads = int(res.warmup["gradient_evaluations"].sum() + res.sample_stats["n_steps"].sum())
        divergences = int(res.sample_stats["diverging"].sum())
        posterior = res.posterior
    elif sampler == "nutpie":
        compiled = nutpie.compile_pymc_model(model, backend="numba")
        t1 = time.perf_counter()
        idata = nutpie.sample(compiled, seed=s["seed"], maxdepth=stan["max_treedepth"],
                              save_warmup=True, progress_bar=False, **common)
        t_end = time.perf_counter()
        compile_s, sampling_s = t1 - t0, t_end - t1
    else:
        with model:
            idata = pm.sample(random_seed=s["seed"], nuts={"max_treedepth": stan["max_treedepth"]},
                              discard_tuned_samples=False, progressbar=False, **common)
        t_end = time.perf_counter()
        sampling_s = float(idata.sample_stats.attrs["sampling_time"])
        compile_s = t_end - t0 - sampling_s
    if sampler != "nutslite":
        grads = int(idata.sample_stats["n_steps"].values.sum()
                    + idata.warmup_sample_stats["n_steps"].values.sum())
        divergences = int(idata.sample_stats["diverging"].values.sum())
        posterior = {k: v.values for k, v in idata.posterior.items()}
    out = {"whole_s": t_end - t_start, "import_build_s": t0 - t_start, "compile_s": compile_s,
           "sampling_s": sampling_s, "grads": grads, "divergences": divergences}
    out.update(_summary(name, posterior))
    out["ess_per_s"] = out["ess_bulk_min"] / out["whole_s"]
    out["ess_per_s_sampling"] = out["ess_bulk_min"] / sampling_s
    out["ess_per_1000_grads"] = 1000.0 * out["ess_bulk_min"] / grads
    return out


def run(spec: dict, timeout_s: float = 7200.0) -> dict:
    """``worker(spec)`` in a fresh process (no shared thread pool, JIT state or warm cache in
    memory; the on-disk caches of Numba and PyTensor are shared, as for a user's second run).
    A run still going after ``timeout_s`` is stopped, with every process it started (PyMC's
    chain processes), and returns ``{"timed_out_s": timeout_s}``."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the worker and its children
        proc.communicate()
        return {"timed_out_s": timeout_s}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{spec['sampler']} on {spec['posterior']} failed:\n{stderr[-4000:]}")


# --------------------------------------------------------------------------------------------
# the report: medians over repeats, ratios, goals, agreement
# --------------------------------------------------------------------------------------------


def z_bound(n_tests: int, alpha: float = ALPHA) -> float:
    """Bonferroni bound on |z| for ``n_tests`` two-sided standard-normal tests with family-wise
    false-alarm rate ``alpha``: ``Phi^-1(1 - alpha / (2 n_tests))``."""
    from scipy.stats import norm

    return float(norm.isf(alpha / (2.0 * n_tests)))


def geometric_mean(values: list[float]) -> float:
    return float(math.exp(np.mean(np.log(values))))


def aggregate(report: dict) -> dict:
    """Per (posterior, sampler): the first repeat's row with the timings, gradients and min ESS
    replaced by their medians over the repeats and the rates recomputed from those; ratios of
    nutslite's whole-call ESS/s to each peer's; goals; the Bonferroni agreement check over every
    scalar and sampler."""
    rows, settings = report["rows"], report["meta"]["settings"]
    busy = min(settings["cores"], settings["chains"])
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "timed_out_s" in r:
            continue
        runs.setdefault((r["posterior"], r["sampler"]), []).append(r)
    table = {}
    for key, rs in runs.items():
        row = dict(rs[0], repeats=len(rs))
        for f in FIELDS:
            row[f] = float(np.median([r[f] for r in rs]))
        row["ess_per_s"] = row["ess_bulk_min"] / row["whole_s"]
        row["ess_per_s_sampling"] = row["ess_bulk_min"] / row["sampling_s"]
        row["ess_per_1000_grads"] = 1000.0 * row["ess_bulk_min"] / row["grads"]
        table[key] = row
    n_tests = sum(len(r["z"]) for r in table.values())
    bound = z_bound(n_tests)
    for row in table.values():  # busy-core microseconds per gradient while sampling
        row["us_per_grad"] = 1e6 * row["sampling_s"] * busy / row["grads"]
        row["sampling_share"] = row["sampling_s"] / row["whole_s"]
    names = list(dict.fromkeys(r["posterior"] for r in rows))
    per_posterior, ratios = {}, {"nutpie": [], "pymc": []}
    for name in names:
        entry = {"agrees": {}}
        for sampler in SAMPLERS:
            if (name, sampler) in table:
                r = table[name, sampler]
                r["agrees"] = r["max_abs_z_mean"] < bound
                entry["agrees"][sampler] = r["agrees"]
        mine = table.get((name, "nutslite"))
        for peer in ("nutpie", "pymc"):
            if mine is not None and (name, peer) in table:
                ratio = mine["ess_per_s"] / table[name, peer]["ess_per_s"]
                entry[f"ratio_{peer}"] = ratio
                other = table[name, peer]
                entry[f"ratio_{peer}_sampling"] = (mine["ess_per_s_sampling"]
                                                   / other["ess_per_s_sampling"])
                # the whole-call ratio is the product of these three
                entry[f"parts_{peer}"] = {
                    "ess_per_grad": mine["ess_per_1000_grads"] / other["ess_per_1000_grads"],
                    "grad_speed": other["us_per_grad"] / mine["us_per_grad"],
                    "sampling_share": mine["sampling_share"] / other["sampling_share"],
                }
                ratios[peer].append(ratio)
        if "ratio_nutpie" in entry:
            entry["goal_vs_nutpie"] = entry["ratio_nutpie"] >= 1.0
        per_posterior[name] = entry
    geo = {peer: geometric_mean(v) for peer, v in ratios.items() if v}
    counts = {peer: len(v) for peer, v in ratios.items()}
    return {"table": table, "per_posterior": per_posterior, "geomean": geo, "counts": counts,
            "n_tests": n_tests, "z_bound": bound, "names": names}


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(report: dict, meta: dict) -> str:
    agg = aggregate(report)
    s, table, pp = meta["settings"], agg["table"], agg["per_posterior"]
    reps = sorted({r["repeats"] for r in table.values()})
    lines = [
        "# posteriordb: nutslite (nl.from_pymc), nutpie and PyMC's NUTS",
        "",
        " then ".join(f"`{c}`" for c in meta.get("commands", [meta.get("command")]))
        + f": {s['chains']} chains x ({s['tune']} tune + {s['draws']} draws), "
        f"seed {s['seed']}, {s['cores']} cores, posteriordb's adapt_delta (as target_accept) and "
        f"max_treedepth per posterior; every run in its own process, the samplers of a "
        f"posterior interleaved; {'/'.join(map(str, reps))} repeat(s) per sampler (medians). "
        f"{meta['machine']}; {meta['versions']}; {meta['minutes']:.0f} min in all. "
        f"{meta['load_note']}",
        "",
        "*whole s* = from the start of the subprocess's work to the return of the sampler's "
        "call (imports, model build, compile, warmup, sampling, the default call's diagnostics); "
        "*compile s* = `nl.from_pymc`, `nutpie.compile_pymc_model`, or the part of `pm.sample` "
        "outside its `sampling_time`; *sampling s* = nutslite's chain loop, the whole "
        "`nutpie.sample` call, PyMC's `sampling_time`. *min ESS* = smallest bulk ESS over the "
        "reference's scalars; *ESS/s* = min ESS per second of the whole call (headline) and of "
        "sampling; *max R-hat* over the same scalars; *max |z|* = largest |mean - reference| / "
        "combined MCSE; *µs/grad* = sampling seconds x busy cores / gradients (the cost of a "
        "gradient inside each sampler, its tree building included).",
        "",
        "| posterior | sampler | whole s | compile s | sampling s | gradients | µs/grad | div "
        "| max R-hat | min ESS (scalar) | **ESS/s whole** | ESS/s sampling | ESS/1k grads "
        "| max \\|z\\| | agrees |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|---|",
    ]
    for name in agg["names"]:
        for sampler in SAMPLERS:
            r = table.get((name, sampler))
            if r is None:
                continue
            lines.append(
                f"| {name} | {LABEL[sampler]} | {r['whole_s']:.1f} | {r['compile_s']:.1f} | "
                f"{r['sampling_s']:.1f} | {r['grads']:,.0f} | {r['us_per_grad']:.1f} | "
                f"{r['divergences']} | "
                f"{r['rhat_max']:.3f} | {r['ess_bulk_min']:.0f} ({r['ess_bulk_argmin']}) | "
                f"**{r['ess_per_s']:.1f}** | {r['ess_per_s_sampling']:.0f} | "
                f"{r['ess_per_1000_grads']:.1f} | {r['max_abs_z_mean']:.2f} | "
                f"{_met(r['agrees'])} |"
            )
    for r in report["rows"]:
        if "timed_out_s" in r and (r["posterior"], r["sampler"]) not in table:
            lines.append(f"| {r['posterior']} | {LABEL[r['sampler']]} | stopped after "
                         f"{r['timed_out_s'] / 60:.0f} min, unfinished |" + " |" * 13)
    lines += [
        "",
        "## Ratios and goals",
        "",
        "nutslite's whole-call ESS/s over each peer's (sampling-only ratio in brackets), and "
        "that ratio as the product of three: ESS per gradient x gradient speed in sampling x "
        "sampling's share of the whole call (each nutslite / peer). Goal per "
        "posterior: at least nutpie's (ratio >= 1). Agreement: every sampler's max |z| below the "
        f"Bonferroni bound {agg['z_bound']:.2f} (family-wise false-alarm rate {ALPHA:.0%} over "
        f"{agg['n_tests']} tests = scalars x samplers).",
        "",
        "| posterior | vs nutpie | = ESS/grad x speed x share | vs PyMC "
        "| = ESS/grad x speed x share | >= nutpie | agreement (nutslite / nutpie / PyMC) |",
        "|---|--:|---|--:|---|---|---|",
    ]
    for name in agg["names"]:
        e = pp[name]
        cells = []
        for peer in ("nutpie", "pymc"):
            if f"ratio_{peer}" not in e:
                cells += ["", ""]
                continue
            parts = e[f"parts_{peer}"]
            cells.append(f"{e[f'ratio_{peer}']:.2f} ({e[f'ratio_{peer}_sampling']:.2f})")
            cells.append(f"{parts['ess_per_grad']:.2f} x {parts['grad_speed']:.2f} x "
                         f"{parts['sampling_share']:.2f}")
        goal = _met(e["goal_vs_nutpie"]) if "goal_vs_nutpie" in e else ""
        agree = " / ".join(_met(e["agrees"][k]) if k in e["agrees"] else "-" for k in SAMPLERS)
        lines.append(f"| {name} | {' | '.join(cells)} | {goal} | {agree} |")
    geo = agg["geomean"]
    goals = []
    for peer, goal in (("nutpie", GOAL_VS_NUTPIE), ("pymc", GOAL_VS_PYMC)):
        if peer in geo:
            goals.append(f"vs {LABEL[peer]} **{geo[peer]:.2f}x** over {agg['counts'][peer]} "
                         f"(goal {goal:g}x: {_met(geo[peer] >= goal)})")
    all_agree = all(all(e["agrees"].values()) for e in pp.values())
    every = all(e.get("goal_vs_nutpie", False) for e in pp.values())
    lines += [
        "",
        "Geometric means of the whole-call ratio over the posteriors where both ran: "
        + "; ".join(goals) + f". At least nutpie's on every posterior: {_met(every)}. "
        f"Agreement on every posterior: {_met(all_agree)}. Why a goal is missed: "
        "[benchmarks/README.md](../README.md#posteriordb-nutslite-nutpie-and-pymc).",
    ]
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> None:
    """Per posterior, the whole-call bulk ESS/s of the three samplers (log axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = aggregate(report)
    names = agg["names"]
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(SAMPLERS)
    for i, sampler in enumerate(SAMPLERS):
        x = [j + (i - 1) * width for j, n in enumerate(names) if (n, sampler) in agg["table"]]
        y = [agg["table"][n, sampler]["ess_per_s"] for n in names if (n, sampler) in agg["table"]]
        ax.bar(x, y, width, label=LABEL[sampler])
        for r in report["rows"]:  # a run stopped by --timeout: no bar, a note where it would be
            if (r["sampler"] == sampler and "timed_out_s" in r
                    and (r["posterior"], sampler) not in agg["table"]):
                ax.annotate(f"stopped after {r['timed_out_s'] / 60:.0f} min",
                            (names.index(r["posterior"]) + (i - 1) * width, 0.02),
                            xycoords=("data", "axes fraction"), rotation=90, fontsize=8,
                            ha="center", va="bottom")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.split("-")[0] for n in names], rotation=20)
    ax.set_ylabel("min bulk ESS per second of the whole call")
    geo = agg["geomean"]
    ax.set_title(
        "posteriordb, " + ", ".join(
            f"nutslite / {LABEL[p]}: {g:.2f}x (geo. mean)" for p, g in geo.items()), fontsize=10)
    ax.legend()
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> str:
    """CPU model, core count, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def versions() -> str:
    import numba
    import nutpie
    import pymc

    return f"numba {numba.__version__}, pymc {pymc.__version__}, nutpie {nutpie.__version__}"


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(report, indent=1))
    Path(f"{out}.md").write_text(markdown(report, report["meta"]))
    chart(report, Path(f"{out}.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 chains x (300 + 300)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="runs of nutslite and nutpie")
    parser.add_argument("--pymc-repeats", type=int, help="runs of PyMC (default: --repeats)")
    parser.add_argument("--samplers", nargs="*", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--posteriors", nargs="*", help="names (default: all eight)")
    parser.add_argument("--timeout", type=float, default=7200.0,
                        help="seconds after which a run is stopped and reported unfinished")
    parser.add_argument("--no-warm", action="store_true", help="skip the cache-warming pass")
    parser.add_argument("--out", default=str(HERE / "results" / "posteriors"))
    parser.add_argument("--append", action="store_true",
                        help="add these runs as further repeats to the existing .json")
    parser.add_argument("--from-json", action="store_true",
                        help="rewrite the .md and .png from the existing .json, run nothing")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    out = Path(args.out)
    if args.from_json:
        write(json.loads(Path(f"{out}.json").read_text()), out)
        print(f"wrote {out}.md and .png from {out}.json")
        return 0
    sys.path.insert(0, str(ROOT))
    from benchmarks.posteriors import POSTERIORS

    if args.quick:
        args.chains, args.draws, args.tune = 2, 300, 300
    pymc_repeats = args.repeats if args.pymc_repeats is None else args.pymc_repeats
    settings = {"chains": args.chains, "draws": args.draws, "tune": args.tune,
                "cores": args.cores, "seed": args.seed}
    names = args.posteriors or list(POSTERIORS)
    for name in names:
        if name not in POSTERIORS:
            parser.error(f"unknown posterior {name!r}; choose among {', '.join(POSTERIORS)}")
    threads = [f"{k}={os.environ[k]}" for k in THREAD_VARIABLES if k in os.environ]
    command = " ".join([*threads, "python benchmarks/bench_posteriors.py",
                        *(argv if argv is not None else sys.argv[1:])])
    if args.append:
        report = json.loads(Path(f"{out}.json").read_text())
        meta = report["meta"]
        if meta["settings"] != settings:
            parser.error(f"--append: {out}.json was run with {meta['settings']}, not {settings}")
        meta["commands"] = [*meta.get("commands", [meta.get("command")]), command]
        first = 1 + max(r["repeat"] for r in report["rows"])
    else:
        meta = {"settings": settings, "machine": machine(), "versions": versions(),
                "commands": [command], "loads": [], "minutes": 0.0}
        report, first = {"meta": meta, "rows": []}, 0
    loads, minutes_before = meta.setdefault("loads", []), meta.get("minutes", 0.0)
    loads.append(os.getloadavg()[0])
    t_all = time.perf_counter()
    if not args.no_warm:
        # one chain, one warmup iteration and the fewest draws for which nutslite runs its
        # checks: enough to compile what is cached, short even where the step size is poor
        tiny = dict(settings, chains=1, draws=4, tune=1)
        for name in names:
            for sampler in args.samplers:
                run({"sampler": sampler, "posterior": name, "settings": tiny})
        print(f"cache-warming pass: {time.perf_counter() - t_all:.0f} s", flush=True)
    for repeat in range(max(args.repeats, pymc_repeats)):
        for name in names:
            shift = repeat % len(args.samplers)
            for sampler in args.samplers[shift:] + args.samplers[:shift]:
                if repeat >= (pymc_repeats if sampler == "pymc" else args.repeats):
                    continue
                loads.append(os.getloadavg()[0])
                spec = {"sampler": sampler, "posterior": name, "settings": settings}
                row = {"posterior": name, "sampler": sampler, "repeat": first + repeat,
                       **run(spec, args.timeout)}
                report["rows"].append(row)
                meta["minutes"] = minutes_before + (time.perf_counter() - t_all) / 60
                meta["load_note"] = (
                    "The machine was shared with other jobs (1-minute load average "
                    f"{min(loads):.1f} to {max(loads):.1f} at the starts of the runs, on 2 "
                    "cores), so seconds are noisy; gradients, ESS and z are not.")
                write(report, out)  # after every run, so an interrupted benchmark keeps its rows
                if "timed_out_s" in row:
                    print(f"{row['repeat']} {name:30s} {sampler:8s} stopped after "
                          f"{args.timeout:.0f} s", flush=True)
                    continue
                print(f"{row['repeat']} {name:30s} {sampler:8s} whole {row['whole_s']:7.1f}s "
                      f"compile {row['compile_s']:5.1f}s sampling {row['sampling_s']:7.1f}s "
                      f"min ESS {row['ess_bulk_min']:6.0f} ESS/s {row['ess_per_s']:7.1f} "
                      f"max|z| {row['max_abs_z_mean']:.1f}", flush=True)
    print(f"wrote {out}.md, .json and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
