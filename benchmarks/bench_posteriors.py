"""nutslite (through ``nl.from_pymc``) against nutpie on the eight posteriordb posteriors.

Both samplers run the *same* PyMC model compiled to Numba by PyTensor (nutpie's
``compile_pymc_model(backend="numba")`` and ``nl.from_pymc``), so the gradient code is the same
and only the engine and the warmup differ. Each (sampler, posterior) pair runs in a fresh
subprocess, one after the other, with the Stan settings posteriordb used for the reference
(adapt_delta, max_treedepth), ``--chains`` x (``--tune`` + ``--draws``) and one seed.

Reported per run: compile seconds (``from_pymc`` / ``compile_pymc_model``, apart from sampling),
sampling seconds, gradient evaluations (leapfrog steps, warmup included), divergences after
warmup, the minimum bulk ESS over the reference's scalars (on the constrained scale, where the
reference is summarised), ESS/s and ESS per 1000 gradients, and the largest |z| of the posterior
means against the reference (see tests/test_posteriordb.py). The ratio column is nutslite/nutpie
in min-ESS per second of sampling.

    python benchmarks/bench_posteriordb.py          # all eight -> results/posteriordb.{md,json}
    python benchmarks/bench_posteriordb.py --quick  # 2 chains x (300 + 300), a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLERS = ("nutslite", "nutpie")


def _reference_draws(name: str, posterior) -> dict[str, np.ndarray]:
    """``(chains, draws)`` arrays of each reference scalar, from a dict-like posterior."""
    from benchmarks.posteriors import reference

    out = {}
    for (var, index) in reference(name):
        label = f"{var}{list(index) if index else ''}"
        out[label] = np.asarray(posterior[var])[(slice(None), slice(None), *index)]
    return out


def _summary(name: str, draws: dict[str, np.ndarray]) -> dict[str, float]:
    import nutslite as nl
    from benchmarks.posteriors import reference

    ref = reference(name)
    d = nl.diagnostics
    bulk = {k: float(d.ess_bulk(x)) for k, x in draws.items()}
    z = []
    for (var, index), r in ref.items():
        x = draws[f"{var}{list(index) if index else ''}"]
        z.append(abs(x.mean() - r["mean"]) / np.hypot(d.mcse_mean(x), r["mcse_mean"]))
    worst = min(bulk, key=bulk.get)
    return {"ess_bulk_min": bulk[worst], "ess_bulk_argmin": worst, "max_abs_z_mean": float(max(z))}


def worker(spec: dict) -> dict:
    """One sampler on one posterior, in this process."""
    t0 = time.perf_counter()
    import nutslite as nl
    from benchmarks.posteriors import build, reference_settings

    stan = reference_settings(spec["posterior"])
    s = spec["settings"]
    model = build(spec["posterior"])
    import_s = time.perf_counter() - t0
    if spec["sampler"] == "nutslite":
        t0 = time.perf_counter()
        bridged = nl.from_pymc(model, name=spec["posterior"])
        # one iteration loads (or compiles) the engine, as a user's first call does
        nl.sample(bridged, draws=1, tune=1, chains=1, seed=0, cores=1, progress=False)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = nl.sample(bridged, draws=s["draws"], tune=s["tune"], chains=s["chains"],
                        cores=s["cores"], seed=s["seed"], target_accept=stan["adapt_delta"],
                        max_treedepth=stan["max_treedepth"], save_warmup=True, progress=False,
                        warn=False)
        sampling_s = time.perf_counter() - t0
        grads = int(res.sample_stats["n_steps"].sum() + res.warmup_sample_stats["n_steps"].sum())
        divergences = int(res.sample_stats["diverging"].sum())
        posterior = res.posterior
    else:
        import nutpie

        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model, backend="numba")
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        idata = nutpie.sample(compiled, draws=s["draws"], tune=s["tune"], chains=s["chains"],
                              cores=s["cores"], seed=s["seed"], target_accept=stan["adapt_delta"],
                              maxdepth=stan["max_treedepth"], save_warmup=True,
                              progress_bar=False)
        sampling_s = time.perf_counter() - t0
        grads = int(idata.sample_stats["n_steps"].values.sum()
                    + idata.warmup_sample_stats["n_steps"].values.sum())
        divergences = int(idata.sample_stats["diverging"].values.sum())
        posterior = {k: v.values for k, v in idata.posterior.items()}
    out = {"import_s": import_s, "compile_s": compile_s, "sampling_s": sampling_s,
           "grads": grads, "divergences": divergences}
    out.update(_summary(spec["posterior"], _reference_draws(spec["posterior"], posterior)))
    out["ess_per_s"] = out["ess_bulk_min"] / sampling_s
    out["ess_per_1000_grads"] = 1000.0 * out["ess_bulk_min"] / grads
    return out


def run(spec: dict) -> dict:
    """``worker(spec)`` in a fresh process (no shared thread pool, JIT state or warm cache in
    memory; the on-disk caches of Numba and PyTensor are shared, as for a user's second run)."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{spec['sampler']} on {spec['posterior']} failed:\n{proc.stderr[-4000:]}")


def markdown(rows: list[dict], settings: dict, seconds: float) -> str:
    lines = [
        "# posteriordb: nutslite (nl.from_pymc) vs nutpie on the same compiled PyMC model",
        "",
        f"`python benchmarks/bench_posteriordb.py{' --quick' if settings['quick'] else ''}`: "
        f"{settings['chains']} chains x ({settings['tune']} tune + {settings['draws']} draws), "
        f"seed {settings['seed']}, {settings['cores']} cores, posteriordb's adapt_delta and "
        f"max_treedepth per posterior; each run in its own process, one run each. "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"{seconds / 60:.1f} min in all. The machine was shared with other jobs (load average "
        f"{settings['load']}), so seconds are noisy; gradients and ESS are not.",
        "",
        "min ESS = smallest bulk ESS over the reference's scalars (constrained scale); "
        "max|z| = largest |mean - reference| / combined MCSE; ratio = nutslite / nutpie in "
        "min ESS per second of sampling.",
        "",
        "| posterior | sampler | compile s | sampling s | gradients | div | min ESS (param) "
        "| ESS/s | ESS/1k grads | max\\|z\\| | ratio ESS/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["posterior"], r["sampler"]): r for r in rows}
    for name in dict.fromkeys(r["posterior"] for r in rows):
        for sampler in SAMPLERS:
            r = by.get((name, sampler))
            if r is None:
                continue
            ratio = ""
            if sampler == "nutslite" and (name, "nutpie") in by:
                ratio = f"{r['ess_per_s'] / by[name, 'nutpie']['ess_per_s']:.2f}"
            lines.append(
                f"| {name} | {sampler} | {r['compile_s']:.1f} | {r['sampling_s']:.2f} | "
                f"{r['grads']} | {r['divergences']} | {r['ess_bulk_min']:.0f} "
                f"({r['ess_bulk_argmin']}) | {r['ess_per_s']:.0f} | "
                f"{r['ess_per_1000_grads']:.1f} | {r['max_abs_z_mean']:.1f} | {ratio} |"
            )
    lines += [
        "",
        "Notes. *Compile* is `nl.from_pymc` plus one iteration that loads the engine for nutslite, "
        "and `nutpie.compile_pymc_model` for nutpie. nutslite's adapter (the whole log-density "
        "graph) is cached on disk by PyTensor under the graph's hash, so a process that has seen "
        "the model before loads it (these runs, after the test suite had compiled every model; "
        "a cold `from_pymc` took 11 s for mesquite on the same loaded machine); nutpie compiles "
        "its `cfunc` in every process. *Sampling* is the `nl.sample` call (with `warn=False`) and "
        "the whole `nutpie.sample` call, which includes nutpie's conversion to InferenceData. "
        "Both run the same PyTensor-generated Numba code for the gradient, so the difference is "
        "the engine and the warmup (nutslite's default adaptation against nutpie's).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 chains x (300 + 300)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--posteriors", nargs="*", help="names (default: all eight)")
    parser.add_argument("--out", default=str(HERE / "results" / "posteriordb"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    sys.path.insert(0, str(ROOT))
    from benchmarks.posteriors import POSTERIORS

    if args.quick:
        args.chains, args.draws, args.tune = 2, 300, 300
    settings = {"chains": args.chains, "draws": args.draws, "tune": args.tune,
                "cores": args.cores, "seed": args.seed, "quick": args.quick,
                "load": " ".join(f"{v:.1f}" for v in os.getloadavg())}
    names = args.posteriors or list(POSTERIORS)
    rows, t0 = [], time.perf_counter()
    for name in names:
        for sampler in SAMPLERS:
            spec = {"sampler": sampler, "posterior": name, "settings": settings}
            row = {"posterior": name, "sampler": sampler, **run(spec)}
            rows.append(row)
            print(f"{name:32s} {sampler:9s} compile {row['compile_s']:6.1f}s sampling "
                  f"{row['sampling_s']:7.2f}s min ESS {row['ess_bulk_min']:7.0f} "
                  f"ESS/s {row['ess_per_s']:8.0f} max|z| {row['max_abs_z_mean']:.1f}", flush=True)
    seconds = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))
    Path(args.out + ".md").write_text(markdown(rows, settings, seconds))
    print(f"wrote {args.out}.md and .json")


if __name__ == "__main__":
    main()
