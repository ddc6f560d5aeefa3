"""Where nutslite's time goes on radon: gradient, tree builder, adaptation, Python around them.

Usage::

    python benchmarks/profile_engine.py            # 1 chain on 1 core, 1000 + 1000, 3 rounds
    python benchmarks/profile_engine.py --quick
    python benchmarks/profile_engine.py --loop     # the compiled transition loop only (CPU time)
    python benchmarks/profile_engine.py --loop --split   # and a transition's fixed and per-step
                                                         # costs on the 175-d normal

Method (one chain, one core, so threads do not blur the numbers; best of ``--rounds``):

* **gradient**: µs per ``logp_grad`` call from a compiled loop (as in ``bench_gradient.py``) times
  the number of gradient evaluations of the run;
* **sampling without adaptation**: a run with ``tune=0`` started from the adapted step size, mass
  matrix and last draw of a full run; its time per leapfrog step minus the gradient's is the
  **tree builder's** cost per step (leapfrog updates, energies, U-turn checks, multinomial
  sampling, momentum draws, bookkeeping);
* **adaptation**: the warmup-only run's time (``draws=1``) minus its leapfrog steps at the
  sampling cost per step (dual averaging, Welford updates, and the step-size heuristic that reruns
  at each window end; its gradient evaluations are not in ``n_steps``);
* **diagnostics**: the checks behind ``nl.sample``'s warnings (``settings["check_seconds"]``);
* **Python around**: ``nl.sample`` call time minus the compiled chain time and the diagnostics
  (validation, initial point and step size, thread pool and chunked calls, building the result),
  and for the benchmark setting (4 chains, 2 cores, the default call) its parts from
  ``res.settings``, with the total per chain;
* a **trivial model** (iid normal, same dimension, gradient ~0.1 µs) isolates the tree builder.

``--loop`` measures instead what the tree builder costs inside the compiled code, without the
chain loop's chunks, threads and Python: a compiled loop of ``nuts_transition`` from the adapted
state (step size, diagonal metric and last draw of a 1000-iteration warmup, seed 3), 3000
transitions per round (radon: 1500), the **thread CPU time** of the best of ``--rounds``
rounds, and the gradient timed the same way in the same process; the number of leapfrog steps
(a check that two versions ran the same transitions). CPU time is what a loaded
machine perturbs least; compare two versions by alternating them in one run (``benchmarks/
README.md``, engine rounds). Nothing is written.

``--split`` (with ``--loop``) also separates, on the 175-d normal, what a transition costs once
(the momentum draw, its energy, the first prefix sums, the slots' bookkeeping) from what each
leapfrog step costs: the same loop with the tree depth capped at 1, 2
and 3 (20,000 transitions each) makes every transition 1, 3 and 7 steps long, and a least-squares
line through the three costs per transition gives the fixed cost and the cost per step
(``benchmarks/README.md``, engine round 12).

Writes ``benchmarks/results/profile{,_quick}.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peers  # noqa: E402
from bench_radon import RESULTS, machine  # noqa: E402


def trivial_model(dim: int):
    """An iid standard normal in ``dim`` dimensions: the cheapest possible gradient."""
    import nutslite as nl
    from nutslite._numba import LOGP_GRAD_SIGNATURE, jit

    @jit(LOGP_GRAD_SIGNATURE)
    def logp_grad(theta, grad_out):
        s = 0.0
        for i in range(theta.shape[0]):
            s -= 0.5 * theta[i] * theta[i]
            grad_out[i] = -theta[i]
        return s

    return nl.Model(name=f"iid_normal_{dim}", dim=dim, logp_grad=logp_grad)


def timed_sample(model, **kw) -> tuple[Any, float]:
    """``nl.sample`` with its call wall time."""
    import nutslite as nl

    t0 = time.perf_counter()
    res = nl.sample(model, progress=False, save_warmup=True, **kw)
    return res, time.perf_counter() - t0


def grads(res) -> tuple[int, int]:
    """Leapfrog steps (gradients) in warmup and in sampling."""
    w = 0 if res.warmup_sample_stats is None else int(res.warmup_sample_stats["n_steps"].sum())
    return w, int(res.sample_stats["n_steps"].sum())


def profile_model(model, draws: int, tune: int, rounds: int, seed: int = 1) -> dict[str, Any]:
    """The single-chain breakdown of one model (best of ``rounds`` for every time)."""
    theta0 = np.zeros(model.dim)
    grad_us = _peers.time_nutslite_gradient(model, theta0)
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = min(best.get(name, np.inf), value)

    full = warm = fixed = None
    for _ in range(rounds):
        full, call = timed_sample(model, draws=draws, tune=tune, chains=1, cores=1, seed=seed)
        keep("full_chain_s", float(full.chain_seconds.sum()))
        keep("full_call_s", call)
        keep("check_s", float(full.settings.get("check_seconds", 0.0)))
        warm, _ = timed_sample(model, draws=1, tune=tune, chains=1, cores=1, seed=seed)
        keep("warmup_chain_s", float(warm.chain_seconds.sum()))
        fixed, _ = timed_sample(
            model, draws=draws, tune=0, chains=1, cores=1, seed=seed + 1,
            init=full.unconstrained[0, -1], step_size=full.warmup["step_size"],
            inv_mass_matrix=full.warmup["inv_mass_matrix"],
        )
        keep("fixed_chain_s", float(fixed.chain_seconds.sum()))
    w_full, s_full = grads(full)
    w_warm, _ = grads(warm)
    _, s_fixed = grads(fixed)
    us_step_sampling = 1e6 * best["fixed_chain_s"] / s_fixed
    tree_us = us_step_sampling - grad_us
    adapt_s = best["warmup_chain_s"] - w_warm * us_step_sampling * 1e-6
    n_full = w_full + s_full
    gradient_s = n_full * grad_us * 1e-6
    tree_s = n_full * tree_us * 1e-6
    check_s = best["check_s"]
    python_s = best["full_call_s"] - best["full_chain_s"] - check_s
    total = best["full_call_s"]
    return {
        "model": model.name, "dim": model.dim, "grad_us": grad_us,
        "gradients_warmup": w_full, "gradients_sampling": s_full,
        "steps_per_draw": s_full / draws,
        "us_per_step_sampling": us_step_sampling, "tree_us_per_step": tree_us,
        "times": best,
        "breakdown_s": {"gradient": gradient_s, "tree builder": tree_s,
                        "adaptation": adapt_s, "diagnostics": check_s,
                        "python around": python_s, "total call": total},
        "breakdown_share": {"gradient": gradient_s / total, "tree builder": tree_s / total,
                            "adaptation": adapt_s / total, "diagnostics": check_s / total,
                            "python around": python_s / total},
    }


def compiled_transition_loop(max_depth: int = 10, cache: bool = True):
    """``run(logp_grad, rng, traj, metric, eps, q, grad, n) -> leapfrog steps``: ``n`` compiled
    transitions of at most ``max_depth`` doublings from ``q``, each from the last one's sample as
    in ``run_chain`` (also ``perf_engine.py``'s loop, compiled there with ``cache=False``)."""
    from nutslite._numba import jit
    from nutslite.engine.tree import MAX_DELTA_H, nuts_transition, place_start

    @jit(cache=cache)
    def run(logp_grad, rng, traj, metric, eps, q, grad, n):
        mask = traj.logp.shape[0] - 1
        logp = logp_grad(q, grad)
        slot = place_start(traj, q, grad)
        steps = 0
        for _ in range(n):  # each transition starts from the last one's sample, as in run_chain
            info = nuts_transition(logp_grad, rng, traj, metric, eps, slot, logp,
                                   max_depth, MAX_DELTA_H, None)
            slot = info.sample_slot
            logp = traj.logp[info.proposal & mask]
            steps += info.n_steps
        return steps

    return run


def transition_loop(model, n_transitions: int, rounds: int, max_depth: int = 10) -> dict:
    """Thread CPU µs per leapfrog step of a compiled loop of ``nuts_transition`` and per
    gradient (best of ``rounds`` each), from the adapted state of a warmup run (see ``--loop``)."""
    import nutslite as nl
    from nutslite._numba import jit
    from nutslite.engine.metric import diagonal_metric
    from nutslite.engine.tree import allocate_trajectory

    run = compiled_transition_loop(max_depth)

    @jit
    def gradients(logp_grad, q, grad, n):
        total = 0.0
        for _ in range(n):
            total += logp_grad(q, grad)
        return total

    adapted = nl.sample(model, draws=1, tune=1000, chains=1, cores=1, seed=3, progress=False)
    eps = float(np.ravel(adapted.warmup["step_size"])[0])
    inv_mass = np.asarray(adapted.warmup["inv_mass_matrix"]).reshape(-1, model.dim)[0]
    q0 = np.ascontiguousarray(adapted.unconstrained[0, -1], dtype=np.float64)
    logp_grad = model.logp_grad_function

    def timed(n: int) -> tuple[float, int]:
        rng = np.random.default_rng(7)
        traj = allocate_trajectory(model.dim, max_depth)
        q, grad = q0.copy(), np.empty_like(q0)
        t0 = time.thread_time()
        steps = run(logp_grad, rng, traj, diagonal_metric(inv_mass), eps, q, grad, n)
        return time.thread_time() - t0, steps

    def timed_gradients(n: int) -> float:
        q, grad = q0.copy(), np.empty_like(q0)
        t0 = time.thread_time()
        gradients(logp_grad, q, grad, n)
        return time.thread_time() - t0

    timed(5)  # compile or load
    timed_gradients(5)
    runs = [timed(n_transitions) for _ in range(rounds)]
    step_us = min(1e6 * t / steps for t, steps in runs)
    grad_us = min(1e6 * timed_gradients(200_000) / 200_000 for _ in range(rounds))
    return {"model": model.name, "step_us": step_us, "grad_us": grad_us,
            "tree_us": step_us - grad_us, "step_per_gradient": step_us / grad_us,
            "steps": runs[0][1]}


def split_transition(model, rounds: int, steps_per_transition: float) -> None:
    """Print a transition's fixed cost and its cost per step (see ``--split``)."""
    n = 20_000
    steps, costs = [], []
    for depth in (1, 2, 3):
        r = transition_loop(model, n, rounds, max_depth=depth)
        steps.append(r["steps"] / n)
        costs.append(r["step_us"] * r["steps"] / n)
        print(f"  depth <= {depth}: {steps[-1]:.2f} steps per transition, "
              f"{costs[-1]:.3f} µs per transition")
    per_step, fixed = np.polyfit(steps, costs, 1)
    print(f"  a transition: {fixed:.3f} µs once + {per_step:.3f} µs per step (gradient "
          f"{r['grad_us']:.3f}); at {steps_per_transition:.1f} steps per transition the fixed "
          f"part is {fixed / steps_per_transition:.3f} µs per step")


def threads_overhead(model, draws: int, tune: int, rounds: int) -> dict[str, float]:
    """The benchmark setting, 4 chains on 2 cores, as ``nl.sample`` is called by default (warmup
    draws not kept): where the call's time goes, from ``res.settings`` (best of ``rounds`` each).

    *Python around the chain loop*, per chain: set-up (validation, initial point, the step-size
    heuristic's call, metric and buffers) + dispatch (chain-loop wall time beyond the chains' own
    time over 2 cores: chunk calls, thread hand-offs, imbalance) + assembly of the result.
    """
    import nutslite as nl

    best: dict[str, float] = {}
    for _ in range(rounds):
        t0 = time.perf_counter()
        res = nl.sample(model, draws=draws, tune=tune, chains=4, cores=2, seed=1, progress=False)
        st = res.settings
        for key, value in (("call_s", time.perf_counter() - t0), ("wall_s", st["wall_seconds"]),
                           ("chain_seconds_sum", float(res.chain_seconds.sum())),
                           ("setup_s", st["setup_seconds"]),
                           ("assemble_s", st["assemble_seconds"]),
                           ("check_s", st.get("check_seconds", 0.0)),
                           ("dispatch_s", st["wall_seconds"] - res.chain_seconds.sum() / 2)):
            best[key] = min(best.get(key, np.inf), float(value))
    best["ideal_wall_s"] = best["chain_seconds_sum"] / 2
    best["python_per_chain_ms"] = 1e3 * (
        best["setup_s"] + max(best["dispatch_s"], 0.0) + best["assemble_s"]) / 4
    return best


def markdown(report: dict[str, Any]) -> str:
    """The breakdown as markdown."""
    lines = [f"# nutslite time breakdown ({report['when']})", "",
             f"Command: `{report['command']}`  ", f"Machine: {report['machine']}  ",
             f"One chain, one core, {report['tune']} tune + {report['draws']} draws; best of "
             f"{report['rounds']} rounds; other processes' load before: "
             f"{report['other_load_before']:.2f} cores.", "",
             "| model | dim | µs/gradient | steps/draw | µs/step (sampling) | tree µs/step "
             "| gradient | tree builder | adaptation | diagnostics | Python around "
             "| total call s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["models"]:
        b, sh = r["breakdown_s"], r["breakdown_share"]
        cells = [f"{b.get(k, 0.0):.3f} s ({100 * sh.get(k, 0.0):.0f}%)"
                 for k in ("gradient", "tree builder", "adaptation", "diagnostics",
                           "python around")]
        lines.append(f"| {r['model']} | {r['dim']} | {r['grad_us']:.3f} | "
                     f"{r['steps_per_draw']:.1f} | {r['us_per_step_sampling']:.3f} | "
                     f"{r['tree_us_per_step']:.3f} | " + " | ".join(cells)
                     + f" | {b['total call']:.3f} |")
    t = report["threads"]
    lines += ["", "4 chains on 2 cores, the default `nl.sample` call (radon non-centered, "
              f"sufficient): whole call {t['call_s']:.3f} s = set-up {t['setup_s']:.4f} s + "
              f"chain loop {t['wall_s']:.3f} s + assembly {t['assemble_s']:.4f} s + diagnostics "
              f"{t['check_s']:.3f} s (+ the rest). The chain loop's wall time exceeds the chains' "
              f"own time over 2 cores ({t['ideal_wall_s']:.3f} s) by {t['dispatch_s']:.4f} s "
              "(chunk dispatch, thread hand-offs, imbalance between chains). **Python around the "
              f"chain loop: {t['python_per_chain_ms']:.1f} ms per chain** (set-up + dispatch + "
              "assembly, over 4 chains).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=None)
    p.add_argument("--loop", action="store_true", help="the compiled transition loop only")
    p.add_argument("--split", action="store_true",
                   help="with --loop: a transition's fixed and per-step costs (175-d normal)")
    args = p.parse_args(argv)
    if args.split and not args.loop:
        p.error("--split needs --loop")
    if args.loop:
        import nutslite as nl

        normal = trivial_model(175)
        for model, n in ((normal, 3000), (nl.models.radon("noncentered"), 1500)):
            r = transition_loop(model, n, args.rounds)
            print(f"{r['model']:28s} step {r['step_us']:.3f} µs  gradient {r['grad_us']:.3f} µs  "
                  f"tree {r['tree_us']:.3f} µs/step  step/gradient {r['step_per_gradient']:.2f}  "
                  f"({r['steps']} steps)")
            if model is normal:
                steps_per_transition = r["steps"] / n
        if args.split:
            split_transition(normal, args.rounds, steps_per_transition)
        return 0
    if args.quick:
        args.draws, args.tune, args.rounds = 200, 200, 1
    out_stem = args.out or os.path.join(RESULTS, "profile_quick" if args.quick else "profile")
    import nutslite as nl

    load = _peers.wait_for_quiet()
    models = [nl.models.radon("noncentered"),
              nl.models.radon("noncentered", likelihood="pointwise"),
              nl.models.radon("centered"),
              trivial_model(175)]
    names = ["radon_noncentered (sufficient)", "radon_noncentered (pointwise)",
             "radon_centered (sufficient)", "iid_normal_175 (trivial gradient)"]
    nl.sample(models[0], draws=5, tune=5, chains=1, cores=1, progress=False)  # compile
    rows = []
    for model, name in zip(models, names, strict=True):
        r = profile_model(model, args.draws, args.tune, args.rounds)
        r["model"] = name
        rows.append(r)
        b = r["breakdown_s"]
        print(f"{name:36s} grad {r['grad_us']:.3f} µs  step {r['us_per_step_sampling']:.3f} µs  "
              f"tree {r['tree_us_per_step']:.3f} µs/step  | gradient {b['gradient']:.3f} s  "
              f"tree {b['tree builder']:.3f} s  adaptation {b['adaptation']:.3f} s  "
              f"diagnostics {b['diagnostics']:.3f} s  python {b['python around']:.3f} s  "
              f"total {b['total call']:.3f} s", flush=True)
    threads = threads_overhead(models[0], args.draws, args.tune, args.rounds)
    print(f"4 chains / 2 cores: {threads}")
    report = {"when": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
              "command": "python benchmarks/profile_engine.py " + " ".join(argv or sys.argv[1:]),
              "draws": args.draws, "tune": args.tune, "rounds": args.rounds,
              "other_load_before": load, "nutslite": _peers.nutslite_provenance(),
              "models": rows, "threads": threads}
    os.makedirs(os.path.dirname(out_stem), exist_ok=True)
    with open(out_stem + ".json", "w") as fh:
        json.dump(report, fh, indent=1)
    text = markdown(report)
    with open(out_stem + ".md", "w") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
