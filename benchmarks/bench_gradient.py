"""Time per ``logp_grad`` call of the radon models, against a vectorised NumPy implementation.

Usage::

    python benchmarks/bench_gradient.py            # both parameterizations, both likelihoods
    python benchmarks/bench_gradient.py --quick    # fewer calls (a smoke test, ~10 s)
    python benchmarks/bench_gradient.py --peers    # also nutpie's compiled C function, PyMC's,
                                                   # and the same PyMC model through nl.from_pymc

nutslite's function is timed as the engine calls it: a compiled (``numba.njit``) loop calls the
first-class function ``model.logp_grad_function`` many times. The NumPy implementation (written
here, vectorised with fancy indexing and ``np.bincount``) is timed from a Python loop, which is how
a NumPy log density is called. Both compute the same log density (checked to 1e-9 before timing).
Each time is the best of several rounds. Target: at most 1 µs per call (about 0.4 µs within reach)
for the default (``sufficient``) likelihood.
Writes ``benchmarks/results/gradient{,_quick}.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peers  # noqa: E402
from bench_radon import RESULTS, machine  # noqa: E402

TARGET_US = 1.0
MU_SD = 100.0**2
BETA = 5.0


def numpy_logp_grad(theta: np.ndarray, y: np.ndarray, floor: np.ndarray, county: np.ndarray,
                    k: int, noncentered: bool) -> tuple[float, np.ndarray]:
    """The radon log density and gradient on nutslite's unconstrained scale, vectorised NumPy.

    Same terms (and the same additive constant) as ``nutslite.models.radon(..., "pointwise")``.
    """
    mu_a, ls_a, mu_b, ls_b, l_eps = theta[:5]
    first, second = theta[5 : 5 + k], theta[5 + k : 5 + 2 * k]
    sigma_a, sigma_b = math.exp(ls_a), math.exp(ls_b)
    inv_eps2 = math.exp(-2.0 * l_eps)
    grad = np.empty_like(theta)
    # hyperpriors with log-Jacobians
    logp = -0.5 * ((mu_a / MU_SD) ** 2 + (mu_b / MU_SD) ** 2)
    grad[0], grad[2] = -mu_a / MU_SD**2, -mu_b / MU_SD**2
    s = theta[[1, 3, 4]]
    s2 = np.exp(2.0 * s) / BETA**2
    logp += float(np.sum(s - np.log1p(s2)))
    grad[[1, 3, 4]] = 1.0 - 2.0 * s2 / (1.0 + s2)
    # likelihood
    if noncentered:
        a, b = mu_a + sigma_a * first, mu_b + sigma_b * second
    else:
        a, b = first, second
    r = y - a[county] - b[county] * floor
    ssr = float(r @ r)
    ga = np.bincount(county, weights=r, minlength=k) * inv_eps2
    gb = np.bincount(county, weights=r * floor, minlength=k) * inv_eps2
    n = y.shape[0]
    logp += -n * l_eps - 0.5 * ssr * inv_eps2
    grad[4] += -n + ssr * inv_eps2
    # group-level prior and chain rule
    if noncentered:
        logp -= 0.5 * float(first @ first + second @ second)
        grad[0] += ga.sum()
        grad[2] += gb.sum()
        grad[1] += sigma_a * float(ga @ first)
        grad[3] += sigma_b * float(gb @ second)
        grad[5 : 5 + k] = ga * sigma_a - first
        grad[5 + k :] = gb * sigma_b - second
    else:
        ua, ub = (first - mu_a) / sigma_a, (second - mu_b) / sigma_b
        logp -= 0.5 * float(ua @ ua + ub @ ub) + k * (ls_a + ls_b)
        grad[0] += ua.sum() / sigma_a
        grad[2] += ub.sum() / sigma_b
        grad[1] += float(ua @ ua) - k
        grad[3] += float(ub @ ub) - k
        grad[5 : 5 + k] = ga - ua / sigma_a
        grad[5 + k :] = gb - ub / sigma_b
    return logp, grad


def time_numpy(theta: np.ndarray, args: tuple, reps: int) -> float:
    """Best microseconds per call of ``numpy_logp_grad`` from a Python loop."""

    def run(r: int) -> None:
        for _ in range(r):
            numpy_logp_grad(theta, *args)

    return _peers._best_of(run, reps, rounds=5)


def time_python_call(model, theta: np.ndarray, reps: int) -> float:
    """Best microseconds per call of the jitted ``model.logp_grad`` from a Python loop (what a
    Python sampler would pay per gradient)."""
    grad = np.empty_like(theta)
    f = model.logp_grad

    def run(r: int) -> None:
        for _ in range(r):
            f(theta, grad)

    return _peers._best_of(run, reps, rounds=5)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints the table and writes JSON and markdown."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer calls (smoke test)")
    p.add_argument("--peers", action="store_true",
                   help="also time nutpie's compiled function, PyMC's, and the PyMC model "
                        "through nl.from_pymc (if installed)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    out_stem = args.out or os.path.join(RESULTS, "gradient_quick" if args.quick else "gradient")
    reps_nl, reps_np = (20_000, 2_000) if args.quick else (500_000, 20_000)
    if args.quick:
        _peers.BUDGET_S = 0.02

    import nutslite as nl

    data = _peers.data_spec_to_data({"kind": "minnesota"})
    y = np.asarray(data.log_radon, dtype=np.float64)
    floor = np.asarray(data.floor, dtype=np.float64)
    county = np.asarray(data.county, dtype=np.int64)
    k = data.n_counties
    rng = np.random.default_rng(0)
    rows = []
    print(f"radon gradient, {len(y)} homes, {k} counties; machine: {machine()}")
    print(f"{'model':38s} {'µs/call':>9s} {'NumPy µs':>9s} {'NumPy/nutslite':>15s} "
          f"{'py-call µs':>10s}  target <= {TARGET_US:g} µs")
    for param in ("noncentered", "centered"):
        theta = rng.uniform(-1.0, 1.0, 5 + 2 * k)
        np_args = (y, floor, county, k, param == "noncentered")
        lp_np, g_np = numpy_logp_grad(theta, *np_args)
        us_np = time_numpy(theta, np_args, reps_np)
        peer_us = {}
        if args.peers:
            peer_us = peer_gradient_times(param, data, theta)
        for lik in ("sufficient", "pointwise"):
            model = nl.models.radon(param, likelihood=lik, data=data)
            lp, g = model.logp_and_grad(theta)
            same = abs(lp - lp_np) < 1e-9 * max(1.0, abs(lp))
            if not (same and np.allclose(g, g_np, rtol=1e-9, atol=1e-9)):
                raise SystemExit(f"NumPy and nutslite disagree on radon {param}/{lik}")
            us = _peers.time_nutslite_gradient(model, theta, reps_nl)
            us_py = time_python_call(model, theta, reps_np)
            met = "met" if us <= TARGET_US else "not met"
            name = f"radon_{param} ({lik})"
            print(f"{name:38s} {us:9.3f} {us_np:9.2f} {us_np / us:14.1f}x {us_py:10.3f}  "
                  f"{met if lik == 'sufficient' else ''}")
            rows.append({"parameterization": param, "likelihood": lik, "nutslite_us": us,
                         "numpy_us": us_np, "ratio_numpy_over_nutslite": us_np / us,
                         "nutslite_python_call_us": us_py, **peer_us})
        for name, us in peer_us.items():
            print(f"  {name:36s} {us:9.3f}")
    report = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M"),
              "command": "python benchmarks/bench_gradient.py " + " ".join(argv or sys.argv[1:]),
              "reps": {"nutslite": reps_nl, "numpy": reps_np}, "rows": rows,
              "target_us": TARGET_US}
    os.makedirs(os.path.dirname(out_stem), exist_ok=True)
    with open(out_stem + ".json", "w") as fh:
        json.dump(report, fh, indent=1)
    with open(out_stem + ".md", "w") as fh:
        fh.write(markdown(report))
    print(f"wrote {out_stem}.json and .md")
    return 0


def peer_gradient_times(param: str, data, theta: np.ndarray) -> dict[str, float]:
    """µs per gradient of nutpie's compiled C function, PyMC's compiled function, and the same
    PyMC model bridged by ``nl.from_pymc`` (PyTensor's Numba code behind nutslite's adapter, as
    the engine calls it), or nothing when they are not installed. Same model, same data; the
    point is the same vector, whose coordinates the three order alike (PyMC's value variables)."""
    out = {}
    try:
        import nutpie
    except ImportError:
        return out
    import nutslite as nl

    model = _peers.pymc_radon(param, data)
    out["nutpie_us"] = _peers.time_nutpie_gradient(nutpie.compile_pymc_model(model), theta)
    out["pymc_us"] = _peers.time_pymc_gradient(model, theta)
    out["from_pymc_us"] = _peers.time_nutslite_gradient(nl.from_pymc(model), theta, 50_000)
    return out


def markdown(report: dict) -> str:
    """The gradient table as markdown."""
    peers = any("nutpie_us" in r for r in report["rows"])
    head = ("| model | nutslite µs/call (compiled loop) | NumPy µs/call (Python loop) "
            "| NumPy / nutslite | nutslite µs/call from Python |")
    sep = "|---|---|---|---|---|"
    if peers:
        head += " nutpie µs/call | PyMC µs/call | nutslite via `nl.from_pymc` µs/call |"
        sep += "---|---|---|"
    lines = [f"# radon gradient timings ({report['when']})", "",
             f"Command: `{report['command']}`  ", f"Machine: {report['machine']}", "", head, sep]
    for r in report["rows"]:
        line = (f"| radon_{r['parameterization']} ({r['likelihood']}) | {r['nutslite_us']:.3f} | "
                f"{r['numpy_us']:.2f} | {r['ratio_numpy_over_nutslite']:.1f}x | "
                f"{r['nutslite_python_call_us']:.3f} |")
        if peers:
            nan = float("nan")
            line += (f" {r.get('nutpie_us', nan):.2f} | {r.get('pymc_us', nan):.1f} | "
                     f"{r.get('from_pymc_us', nan):.2f} |")
        lines.append(line)
    lines += ["", f"Target: <= {report['target_us']:g} µs per call for the default (sufficient) "
              "likelihood.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
