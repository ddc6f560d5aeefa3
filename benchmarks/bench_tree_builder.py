"""The tree builder's cost per leapfrog step, this checkout against others, in turn.

Usage::

    git worktree add ../baseline a36c9ae   # issue 14's baseline, for example
    python benchmarks/bench_tree_builder.py --against ../baseline --rounds 5
    python benchmarks/bench_tree_builder.py --against ../baseline --alternate --rounds 60 \
        --transitions 6000

Each checkout runs in a process of its own, with its own Numba cache (``NUTSLITE_CACHE_DIR``
under the system's temporary folder, kept between runs) and its own ``nutslite`` on
``sys.path``. The process times a compiled loop of ``nuts_transition``, the same transitions in
every version: a 175-dimensional standard normal (``trivial_model`` of the checkout's own
``profile_engine.py``), a unit diagonal metric, step size ``--step-size`` (0.6: 7 leapfrog steps
per transition, as the adapted step size gives), ``--transitions`` (3000) from a fixed start and
seed; and the gradient alone, looped the same way. The tree builder's cost is the step's less
the gradient's (thread CPU time). Each process also prints the number of leapfrog steps: equal
counts show that the versions ran the same transitions.

By default each round starts every checkout's process afresh, which times the loop 5 times and
keeps the best. With ``--alternate`` (``alternate()``) each checkout's process keeps running and
is asked for one timing per round, in turn: the timings of a round lie within a second of each
other, so the ratio within each round is little moved by the host's drift, and the medians and
quartiles of those ratios are the measurement.

With ``--model radon`` the loop runs radon non-centered instead (the Minnesota data, 175
coordinates), and with ``--model radon10x`` on 10x that data (``synthetic_radon(850, 11,
seed=0)``, 1,705 coordinates, as ``bench_scaling.py``'s 10x), from the step size, diagonal metric
and last draw of a 1000-iteration warmup (seed 3): a transition takes 15 steps, and at 10x each
step's passes over the coordinates outweigh its bookkeeping (``--step-size`` is then unused;
``--transitions`` 3000 for radon and 300 for radon10x take about as long as 6000 of the
normal's).

Each version's loop starts the next transition from the selected state as that version's chain
loop does: from the slot ``info.sample_slot`` itself (``place_start``, engine round 20), or by
copying it out of that slot of ``traj.points`` (rounds 10-19), or, in releases before the engine
subpackage (such as ``a36c9ae``), out of row ``row(traj, info.proposal)`` of ``traj.q`` and
``traj.grad`` (``nutslite.tree``).

Prints, per checkout, the median tree builder cost and its ratio to the first checkout's (by
default also each run). Nothing is written. Absolute times drift on shared machines from minute
to minute; ratios measured in turn are the measurement (``benchmarks/README.md``, engine rounds
18 and 19).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = r'''
import os, sys, time
import numpy as np
from nutslite._numba import jit

sys.path.insert(0, os.path.join(sys.argv[2], "benchmarks"))
from profile_engine import trivial_model  # the checkout's own (a36c9ae has it too)

try:
    from nutslite.engine.integrators import GRAD, Q
    from nutslite.engine.metric import diagonal_metric
    from nutslite.engine.tree import allocate_trajectory, nuts_transition
    LAYOUT = "slots"
    try:  # a transition starts from the slot of the last one's sample (engine round 20)
        from nutslite.engine.tree import place_start
        LAYOUT = "start"
    except ImportError:
        pass
except ImportError:  # before the engine subpackage (a36c9ae)
    from nutslite.metric import diagonal_metric
    from nutslite.tree import allocate_recorder, allocate_trajectory, nuts_transition, row
    LAYOUT = "rows"

EPS, N, MODEL = float(sys.argv[1]), int(sys.argv[3]), sys.argv[4]
if MODEL == "normal":
    DIM = 175
    model = trivial_model(DIM)
    INV_MASS, Q0 = np.ones(DIM), np.random.default_rng(1).standard_normal(DIM)
else:  # radon non-centered (on 10x the data), from the state a warmup adapted
    import nutslite as nl
    from nutslite.models.radon import radon, synthetic_radon

    model = radon("noncentered", data=synthetic_radon(850, 11, seed=0)
                  if MODEL == "radon10x" else None)
    DIM = model.dim
    adapted = nl.sample(model, draws=1, tune=1000, chains=1, cores=1, seed=3, progress=False)
    EPS = float(np.ravel(adapted.warmup["step_size"])[0])
    INV_MASS = np.asarray(adapted.warmup["inv_mass_matrix"]).reshape(-1, DIM)[0]
    Q0 = np.ascontiguousarray(adapted.unconstrained[0, -1])

if LAYOUT == "start":
    @jit
    def run(f, rng, traj, metric, eps, q, grad, n, recorder):
        mask = traj.logp.shape[0] - 1
        logp = f(q, grad)
        slot = place_start(traj, q, grad)
        steps = 0
        for _ in range(n):
            info = nuts_transition(f, rng, traj, metric, eps, slot, logp, 10, 1000.0, recorder)
            slot = info.sample_slot
            logp = traj.logp[info.proposal & mask]
            steps += info.n_steps
        return steps

    RECORDER = None
elif LAYOUT == "slots":
    @jit
    def run(f, rng, traj, metric, eps, q, grad, n, recorder):
        mask = traj.logp.shape[0] - 1
        logp = f(q, grad)
        steps = 0
        for _ in range(n):
            info = nuts_transition(f, rng, traj, metric, eps, q, logp, grad, 10, 1000.0, recorder)
            for i in range(q.shape[0]):
                q[i] = traj.points[info.sample_slot, Q, i]
                grad[i] = traj.points[info.sample_slot, GRAD, i]
            logp = traj.logp[info.proposal & mask]
            steps += info.n_steps
        return steps

    RECORDER = None
else:
    @jit
    def run(f, rng, traj, metric, eps, q, grad, n, recorder):
        logp = f(q, grad)
        steps = 0
        for _ in range(n):
            info = nuts_transition(f, rng, traj, metric, eps, q, logp, grad, 10, 1000.0, recorder)
            r = row(traj, info.proposal)
            for i in range(q.shape[0]):
                q[i] = traj.q[r, i]
                grad[i] = traj.grad[r, i]
            logp = traj.logp[r]
            steps += info.n_steps
        return steps

    RECORDER = allocate_recorder(10, False)


@jit
def gradients(f, q, grad, n):
    total = 0.0
    for _ in range(n):
        total += f(q, grad)
    return total


def transitions(n):
    rng = np.random.default_rng(7)
    traj = allocate_trajectory(DIM, 10)
    q, grad = Q0.copy(), np.empty(DIM)
    t0 = time.thread_time()
    steps = run(model.logp_grad_function, rng, traj, diagonal_metric(INV_MASS), EPS, q, grad,
                n, RECORDER)
    return time.thread_time() - t0, steps


def gradient_calls(n):
    q, grad = Q0.copy(), np.empty(DIM)
    t0 = time.thread_time()
    gradients(model.logp_grad_function, q, grad, n)
    return time.thread_time() - t0


transitions(5)  # compile or load
gradient_calls(5)
if sys.argv[5:] == ["serve"]:  # one timing per line read, for --alternate
    print("ready", flush=True)
    for _ in sys.stdin:
        t, steps = transitions(N)
        grad = gradient_calls(50_000) / 50_000
        print(f"{1e6 * t / steps:.5f} {1e6 * grad:.5f} {steps}", flush=True)
    sys.exit()
runs = [transitions(N) for _ in range(5)]
step = min(t / s for t, s in runs)
grad = min(gradient_calls(200_000) / 200_000 for _ in range(5))
print(f"{1e6 * step:.4f} {1e6 * grad:.4f} {runs[0][1]}")
'''


def _child(checkout: str, step_size: float, transitions: int, model: str,
           *mode: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a process that times ``checkout``'s loop."""
    name = os.path.basename(os.path.abspath(checkout))
    env = {
        **os.environ,
        "PYTHONPATH": os.path.abspath(checkout),
        "NUTSLITE_CACHE_DIR": os.path.join(tempfile.gettempdir(), f"nutslite-tree-{name}"),
        "OPENBLAS_NUM_THREADS": "1",
    }
    # a file, not ``-c``: Numba caches only functions whose source file it can find
    script = os.path.join(tempfile.gettempdir(), "nutslite_tree_builder_loop.py")
    with open(script, "w") as f:
        f.write(CHILD)
    command = [sys.executable, script, str(step_size), os.path.abspath(checkout), str(transitions),
               model, *mode]
    return command, env


def run_once(checkout: str, step_size: float, transitions: int,
             model: str) -> tuple[float, float, int]:
    """``(step µs, gradient µs, leapfrog steps)`` of one fresh process on ``checkout``."""
    command, env = _child(checkout, step_size, transitions, model)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: the loop failed:\n{done.stderr[-2000:]}")
    step, grad, steps = done.stdout.split()[-3:]
    return float(step), float(grad), int(steps)


def alternate(checkouts: list[str], step_size: float, transitions: int, rounds: int,
              model: str) -> int:
    """``--alternate``: one process per checkout, kept running, asked for one timing in turn.

    Each round asks every checkout once, in an order that rotates from round to round, so the
    timings of one round lie within a second or so of each other, and the host's drift, which
    moves every process's speed by up to half within minutes, moves all of them alike. The
    ratio of each checkout's tree builder to the first checkout's is taken within each round;
    the medians and quartiles of those ratios are the measurement."""
    servers = {}
    for checkout in checkouts:
        command, env = _child(checkout, step_size, transitions, model, "serve")
        server = subprocess.Popen(command, env=env, text=True, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        if server.stdout.readline().strip() != "ready":
            raise SystemExit(f"{checkout}: the loop failed to start")
        servers[checkout] = server
    trees: dict[str, list[float]] = {c: [] for c in checkouts}
    ratios: dict[str, list[float]] = {c: [] for c in checkouts}
    steps = {}
    for r in range(rounds):
        shift = r % len(checkouts)
        for checkout in checkouts[shift:] + checkouts[:shift]:
            server = servers[checkout]
            server.stdin.write("time\n")
            server.stdin.flush()
            step, grad, steps[checkout] = server.stdout.readline().split()
            trees[checkout].append(float(step) - float(grad))
        for checkout in checkouts:
            ratios[checkout].append(trees[checkout][-1] / trees[checkouts[0]][-1])
    for server in servers.values():
        server.stdin.close()
        server.wait()

    def quartiles(values: list[float]) -> str:
        q1, _, q3 = statistics.quantiles(values, n=4)
        return f"{statistics.median(values):.3f} [{q1:.3f}-{q3:.3f}]"

    for checkout in checkouts:
        print(f"{checkout:40s} tree builder {quartiles(trees[checkout])} µs/step, "
              f"{quartiles(ratios[checkout])}x the first within rounds "
              f"({rounds} rounds, {steps[checkout]} steps)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", nargs="+", default=[], metavar="CHECKOUT",
                        help="other checkouts to time in turn with this one")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--step-size", type=float, default=0.6)
    parser.add_argument("--transitions", type=int, default=3000,
                        help="per timed loop (more: longer runs, less timer noise)")
    parser.add_argument("--model", choices=("normal", "radon", "radon10x"), default="normal",
                        help="the 175-d standard normal, or radon (on 10x the data; see above)")
    parser.add_argument("--alternate", action="store_true",
                        help="keep one process per checkout and alternate them (alternate())")
    args = parser.parse_args(argv)
    checkouts = [*args.against, ROOT]
    if args.alternate:
        return alternate(checkouts, args.step_size, args.transitions, args.rounds, args.model)
    trees: dict[str, list[float]] = {c: [] for c in checkouts}
    for r in range(args.rounds):
        for checkout in checkouts:
            step, grad, steps = run_once(checkout, args.step_size, args.transitions, args.model)
            trees[checkout].append(step - grad)
            print(f"round {r + 1}  {checkout:40s} step {step:.3f} µs  gradient {grad:.3f} µs  "
                  f"tree {step - grad:.3f} µs/step  ({steps} steps)", flush=True)
    first = statistics.median(trees[checkouts[0]])
    for checkout in checkouts:
        median = statistics.median(trees[checkout])
        print(f"{checkout:40s} tree builder median {median:.3f} µs/step "
              f"[{min(trees[checkout]):.3f}-{max(trees[checkout]):.3f}], "
              f"{median / first:.3f}x the first")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
