"""SBC replications in-process (threads) against a Dask LocalCluster: throughput and overhead.

Runs ``--replications`` (default 1000) SBC replications of eight schools non-centered (NUTS, one
chain, tune 1000, 400 draws: the defaults of ``nutslite sbc``) three ways, all with the same seed:

* serially, one thread in this process: the cost ``t`` of one replication on an idle core;
* in-process with one thread per CPU (the default of ``nutslite.testing.sbc``);
* on a ``LocalCluster`` of ``--workers`` worker processes (one thread each), after they have
  loaded the compiled engine from the disk cache (timed apart, with the cluster's start).

Every way must give the same ranks (checked). From the walls it derives the throughput and the
overhead per task, ``o = workers * wall / R - t``: what each replication costs beyond its own
sampling, in scheduling, pickling and transfer (for threads: in contention for the GIL and the
cores), and ``o_in = workers * wall / R - mean task seconds``, the same with the time measured
inside each task (where it ran, so CPU contention on a loaded machine is left out). It then times
``R`` no-op Dask tasks (the scheduler's own cost per task), and repeats the threads-against-Dask
comparison (and Dask with ``BATCH`` replications per task) at smaller and larger replications (fewer
or more draws), ``REPEATS`` times interleaved, to find the smallest replication at which the
cluster is faster. Writes ``results/sbc_dask.{json,md}``.

Usage: ``python benchmarks/bench_sbc_dask.py [--replications 1000] [--workers 2] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nutslite.distributed import cluster
from nutslite.testing import NutsSampler, sbc

MODEL = "eight_schools_noncentered"
RESULTS = Path(__file__).parent / "results"
SIZES = ((100, 50), (300, 100), (1000, 400), (2000, 2000))  # (tune, draws) per replication
BATCH = 10  # replications per task in the batched runs
REPEATS = 3  # of each size in the sweep, interleaved


def warm(threads: int = 1) -> float:
    """Load the engine and the model's density (from the disk cache when warm) and compile one
    data slot per thread (see ``nutslite.models.simulated``); seconds."""
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        sbc(NutsSampler(tune=50), MODEL, replications=threads, n_draws=20, seed=0,
            executor=pool)
    return time.perf_counter() - start


def noop(i: int) -> int:
    return i


def timed_sbc(tune: int, draws: int, replications: int, executor, seed: int = 0,
              batch: int = 1):
    start = time.perf_counter()
    result = sbc(NutsSampler(tune=tune), MODEL, replications=replications, n_draws=draws,
                 seed=seed, executor=executor, batch=batch)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="100 replications, two sizes")
    args = parser.parse_args()
    reps = 100 if args.quick else args.replications
    sizes = SIZES[1:3] if args.quick else SIZES
    cpus = os.cpu_count() or 1
    out: dict = {"replications": reps, "workers": args.workers, "cpus": cpus, "model": MODEL,
                 "machine": f"{platform.processor() or platform.machine()}, {cpus} cores",
                 "load_before": os.getloadavg()}
    warm(cpus)

    with ThreadPoolExecutor(1) as one:
        wall_serial, serial = timed_sbc(1000, 400, reps, one)
    wall_threads, threads = timed_sbc(1000, 400, reps, None)
    assert np.array_equal(serial.u, threads.u)
    t = wall_serial / reps
    out["serial"] = {"wall": wall_serial, "per_replication": t}
    out["threads"] = {"wall": wall_threads, "throughput": reps / wall_threads,
                      "overhead_per_task": cpus * wall_threads / reps - t,
                      "overhead_outside_task": cpus * wall_threads / reps - threads.seconds.mean()}
    print(f"serial: {wall_serial:.1f} s ({1000 * t:.1f} ms per replication); threads x{cpus}: "
          f"{wall_threads:.1f} s", flush=True)

    start = time.perf_counter()
    with cluster(workers=args.workers) as client:
        client.wait_for_workers(args.workers)
        started = time.perf_counter() - start
        loads = client.run(warm)
        ready = time.perf_counter() - start
        wall_dask, on_dask = timed_sbc(1000, 400, reps, client)
        assert np.array_equal(on_dask.u, serial.u)
        wall_batched, batched = timed_sbc(1000, 400, reps, client, batch=BATCH)
        assert np.array_equal(batched.u, serial.u)
        start = time.perf_counter()
        client.gather(client.map(noop, range(reps), pure=False))
        wall_noop = time.perf_counter() - start
        out["dask"] = {
            "cluster_start": started, "worker_engine_load": sorted(loads.values()),
            "ready": ready, "wall": wall_dask, "throughput": reps / wall_dask,
            "overhead_per_task": args.workers * wall_dask / reps - t,
            "overhead_outside_task": args.workers * wall_dask / reps - on_dask.seconds.mean(),
            "noop_wall": wall_noop, "noop_per_task": wall_noop / reps,
            "batched": {"batch": BATCH, "wall": wall_batched, "throughput": reps / wall_batched,
                        "overhead_per_task": args.workers * wall_batched / reps - t,
                        "overhead_outside_task":
                            args.workers * wall_batched / reps - batched.seconds.mean()},
        }
        print(f"dask x{args.workers}: start {started:.1f} s, engine loaded in "
              f"{max(loads.values()):.1f} s, {wall_dask:.1f} s for {reps}; {reps} no-op tasks "
              f"{wall_noop:.2f} s", flush=True)
        sweep = []
        n_sweep = max(50, reps // 5)
        for tune, draws in sizes:
            walls: dict[str, list[float]] = {"threads": [], "dask": [], "dask_batched": []}
            for _ in range(REPEATS):  # interleaved, so that a burst of load hits all three
                wall_t, res_t = timed_sbc(tune, draws, n_sweep, None, seed=1)
                wall_d, res_d = timed_sbc(tune, draws, n_sweep, client, seed=1)
                wall_b, res_b = timed_sbc(tune, draws, n_sweep, client, seed=1, batch=BATCH)
                assert np.array_equal(res_t.u, res_d.u) and np.array_equal(res_t.u, res_b.u)
                for key, wall in zip(walls, (wall_t, wall_d, wall_b), strict=True):
                    walls[key].append(wall)
            median = {key: float(np.median(v)) for key, v in walls.items()}
            sweep.append({"tune": tune, "draws": draws, "replications": n_sweep,
                          "median_task_seconds": float(np.median(res_t.seconds)),
                          "walls": walls, **{f"{k}_wall": v for k, v in median.items()},
                          "dask_over_threads": median["dask"] / median["threads"],
                          "batched_over_threads": median["dask_batched"] / median["threads"]})
            print(f"tune {tune} draws {draws}: median of {REPEATS}: threads "
                  f"{median['threads']:.2f} s, dask {median['dask']:.2f} s, batches of {BATCH} "
                  f"{median['dask_batched']:.2f} s ({n_sweep} replications)", flush=True)
        out["sweep"] = sweep
    out["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sbc_dask.json").write_text(json.dumps(out, indent=1))
    report = table(out)
    (RESULTS / "sbc_dask.md").write_text(report)
    print(report)


def table(out: dict) -> str:
    reps, w, c = out["replications"], out["workers"], out["cpus"]
    s, th, d = out["serial"], out["threads"], out["dask"]
    b = d["batched"]
    rows = [
        f"# SBC of {out['model']}: {reps} replications (tune 1000, 400 draws, one chain each)",
        "",
        f"{out['machine']}; load average before {out['load_before'][0]:.1f}, after "
        f"{out['load_after'][0]:.1f} (other jobs were running). One run; walls in seconds.",
        "",
        "| how | wall s | replications/s | overhead per task o, ms | outside the task o_in, ms |",
        "|---|---:|---:|---:|---:|",
        f"| serial, 1 thread | {s['wall']:.1f} | {reps / s['wall']:.1f} | (t = "
        f"{1000 * s['per_replication']:.1f} ms per replication) | |",
        f"| in-process, {c} threads | {th['wall']:.1f} | {th['throughput']:.1f} | "
        f"{1000 * th['overhead_per_task']:.1f} | {1000 * th['overhead_outside_task']:.1f} |",
        f"| LocalCluster, {w} workers | {d['wall']:.1f} | {d['throughput']:.1f} | "
        f"{1000 * d['overhead_per_task']:.1f} | {1000 * d['overhead_outside_task']:.1f} |",
        f"| LocalCluster, {w} workers, batches of {b['batch']} | {b['wall']:.1f} | "
        f"{b['throughput']:.1f} | {1000 * b['overhead_per_task']:.1f} | "
        f"{1000 * b['overhead_outside_task']:.1f} |",
        "",
        f"Cluster start {d['cluster_start']:.1f} s; each worker loaded the engine from the disk "
        f"cache in {', '.join(f'{x:.1f}' for x in d['worker_engine_load'])} s. {reps} no-op "
        f"Dask tasks took {d['noop_wall']:.2f} s ({1000 * d['noop_per_task']:.2f} ms each).",
        "",
        f"Sweep: {out['sweep'][0]['replications']} replications per size, median wall of "
        f"{REPEATS} interleaved repeats.",
        "",
        "| tune | draws | median replication s | threads wall s | Dask wall s | Dask / threads "
        f"| Dask, batches of {b['batch']}, wall s | batched / threads |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in out["sweep"]:
        rows.append(f"| {r['tune']} | {r['draws']} | {r['median_task_seconds']:.3f} | "
                    f"{r['threads_wall']:.2f} | {r['dask_wall']:.2f} | "
                    f"{r['dask_over_threads']:.2f} | {r['dask_batched_wall']:.2f} | "
                    f"{r['batched_over_threads']:.2f} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
