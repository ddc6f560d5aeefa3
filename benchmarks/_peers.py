"""Shared pieces of the benchmarks: the radon model for PyMC/nutpie, unconstrained draws, a
uniform set of diagnostics, and the worker that runs one sampler in its own process.

Every sampler is run by ``python benchmarks/_peers.py '<json spec>'`` in a fresh subprocess, one
after the other, so no sampler shares a process, a thread pool or a warm cache with another. The
worker prints one JSON line (prefixed ``RESULT``) with timings, gradient counts and diagnostics.

Diagnostics are computed the same way for every sampler, from the unconstrained draws (``mu_a,
log sigma_a, mu_b, log sigma_b, log eps`` and the 170 county coordinates), with
``nutslite.diagnostics`` (rank-normalised split R-hat, bulk and tail ESS of Vehtari et al. 2021;
ArviZ when that module is missing).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any

import numpy as np

T_PROCESS_START = time.perf_counter()

SAMPLERS = ("nutslite", "nutslite_pointwise", "nutslite_stan", "nutpie", "pymc")
PARAMETERIZATIONS = ("noncentered", "centered")
HYPER = ("mu_a", "sigma_a", "mu_b", "sigma_b", "eps")
LOG_SCALE = ("sigma_a", "sigma_b", "eps")


def data_spec_to_data(spec: dict[str, Any]):
    """The radon data a spec names: ``{"kind": "minnesota"}`` or
    ``{"kind": "synthetic", "n_counties": K, "homes_per_county": H, "seed": s}``."""
    from nutslite.models.radon import load_radon, synthetic_radon

    if spec["kind"] == "minnesota":
        return load_radon()
    if spec["kind"] == "synthetic":
        return synthetic_radon(spec["n_counties"], spec["homes_per_county"], spec.get("seed", 0))
    raise ValueError(f"unknown data kind {spec['kind']!r}")


def nutslite_provenance() -> dict[str, str]:
    """Version, location and git commit of the nutslite that was imported (a ``COMMIT`` file
    beside the package, as in a ``git archive`` snapshot, or ``git rev-parse`` of its checkout;
    ``+dirty`` when the package's files differ from the commit)."""
    import subprocess

    import nutslite

    pkg = os.path.dirname(os.path.abspath(nutslite.__file__))
    root = os.path.dirname(pkg)
    commit = "unknown"
    marker = os.path.join(root, "COMMIT")
    if os.path.exists(marker):
        with open(marker) as fh:
            commit = fh.read().strip()
    else:
        try:
            commit = subprocess.run(
                ["git", "-C", root, "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", root, "status", "--porcelain", "--", "nutslite"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            commit += "+dirty" if dirty else ""
        except (OSError, subprocess.CalledProcessError):
            pass
    return {"nutslite": nutslite.__version__, "path": pkg, "commit": commit}


def data_digest(data) -> str:
    """A short hash of the observations, so runs on different data cannot be compared."""
    h = hashlib.sha256()
    for arr in (data.log_radon, data.floor, data.county):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def pymc_radon(parameterization: str, data):
    """The blog post's radon model in PyMC, variables declared in nutslite's coordinate order
    (``mu_a, sigma_a, mu_b, sigma_b, eps, a | a_offset, b | b_offset``)."""
    import pymc as pm

    coords = {"county": list(data.county_names)}
    county = np.asarray(data.county, dtype=np.int64)
    floor = np.asarray(data.floor, dtype=np.float64)
    with pm.Model(coords=coords) as model:
        mu_a = pm.Normal("mu_a", mu=0.0, sigma=100.0**2)
        sigma_a = pm.HalfCauchy("sigma_a", beta=5.0)
        mu_b = pm.Normal("mu_b", mu=0.0, sigma=100.0**2)
        sigma_b = pm.HalfCauchy("sigma_b", beta=5.0)
        eps = pm.HalfCauchy("eps", beta=5.0)
        if parameterization == "noncentered":
            a_offset = pm.Normal("a_offset", mu=0.0, sigma=1.0, dims="county")
            b_offset = pm.Normal("b_offset", mu=0.0, sigma=1.0, dims="county")
            a = pm.Deterministic("a", mu_a + sigma_a * a_offset, dims="county")
            b = pm.Deterministic("b", mu_b + sigma_b * b_offset, dims="county")
        elif parameterization == "centered":
            a = pm.Normal("a", mu=mu_a, sigma=sigma_a, dims="county")
            b = pm.Normal("b", mu=mu_b, sigma=sigma_b, dims="county")
        else:
            raise ValueError(f"unknown parameterization {parameterization!r}")
        pm.Normal(
            "log_radon", mu=a[county] + b[county] * floor, sigma=eps,
            observed=np.asarray(data.log_radon, dtype=np.float64),
        )
    return model


def group_names(parameterization: str) -> tuple[str, str]:
    """Names of the two county-level unconstrained variables."""
    return ("a_offset", "b_offset") if parameterization == "noncentered" else ("a", "b")


def unconstrained_from_posterior(posterior, parameterization: str) -> np.ndarray:
    """``(chains, draws, dim)`` unconstrained draws in nutslite's coordinate order, from a mapping
    of constrained draws (an ArviZ posterior group or a dict): ``log`` of the scales, the rest
    as they are."""
    cols = []
    for name in HYPER:
        x = np.asarray(posterior[name], dtype=np.float64)
        cols.append((np.log(x) if name in LOG_SCALE else x)[..., None])
    for name in group_names(parameterization):
        cols.append(np.asarray(posterior[name], dtype=np.float64))
    return np.concatenate(cols, axis=-1)


def pymc_point(theta: np.ndarray, parameterization: str, k: int) -> dict[str, np.ndarray]:
    """PyMC value-variable point for nutslite's unconstrained vector ``theta``."""
    g1, g2 = group_names(parameterization)
    return {
        "mu_a": np.array(theta[0]), "sigma_a_log__": np.array(theta[1]),
        "mu_b": np.array(theta[2]), "sigma_b_log__": np.array(theta[3]),
        "eps_log__": np.array(theta[4]),
        g1: theta[5 : 5 + k].copy(), g2: theta[5 + k : 5 + 2 * k].copy(),
    }


def check_against_pymc(parameterization: str, data, n_points: int = 5, seed: int = 0) -> dict:
    """Compare nutslite's logp and gradient with PyMC's on the same model and data.

    Returns the spread of ``logp_pymc - logp_nutslite`` over random points (it must be a
    constant) and the largest absolute and relative gradient differences, for both likelihoods.
    """
    import nutslite as nl

    pm_model = pymc_radon(parameterization, data)
    k = data.n_counties
    logp_fn = pm_model.compile_logp()
    dlogp_fn = pm_model.compile_dlogp()
    rng = np.random.default_rng(seed)
    out = {}
    for likelihood in ("sufficient", "pointwise"):
        model = nl.models.radon(parameterization, likelihood=likelihood, data=data)
        offsets, grad_abs, grad_rel = [], 0.0, 0.0
        for _ in range(n_points):
            theta = rng.uniform(-1.0, 1.0, model.dim)
            lp, g = model.logp_and_grad(theta)
            point = pymc_point(theta, parameterization, k)
            offsets.append(float(logp_fn(point)) - lp)
            g_pm = np.asarray(dlogp_fn(point), dtype=np.float64)
            grad_abs = max(grad_abs, float(np.max(np.abs(g_pm - g))))
            grad_rel = max(grad_rel, float(np.max(np.abs(g_pm - g) / (1.0 + np.abs(g)))))
        out[likelihood] = {
            "logp_offset": float(np.mean(offsets)),
            "logp_offset_spread": float(np.ptp(offsets)),
            "grad_max_abs_diff": grad_abs,
            "grad_max_rel_diff": grad_rel,
        }
    return out


def diagnostics(x: np.ndarray) -> dict[str, float]:
    """Min bulk/tail ESS and max R-hat over every coordinate of ``x`` ``(chains, draws, dim)``."""
    xs = np.moveaxis(x, -1, 0)
    try:
        from nutslite import diagnostics as dg

        bulk, tail, rhat = dg.ess_bulk(xs), dg.ess_tail(xs), dg.rhat(xs)
        source = "nutslite.diagnostics"
    except (ImportError, AttributeError):  # diagnostics module not there yet
        import arviz as az

        ds = az.convert_to_dataset({"x": x})
        bulk = az.ess(ds, method="bulk")["x"].values
        tail = az.ess(ds, method="tail")["x"].values
        rhat = az.rhat(ds)["x"].values
        source = "arviz"
    bulk, tail, rhat = (np.asarray(v, dtype=np.float64) for v in (bulk, tail, rhat))
    return {
        "ess_bulk_min": float(np.nanmin(bulk)),
        "ess_bulk_argmin": int(np.nanargmin(bulk)),
        "ess_tail_min": float(np.nanmin(tail)),
        "rhat_max": float(np.nanmax(rhat)),
        "diagnostics_source": source,
    }



# --------------------------------------------------------------------------------------------
# time per gradient evaluation, each sampler's function called the way its sampler calls it
# --------------------------------------------------------------------------------------------


def _njit_drivers():
    """Compiled loops that call a log-density function ``reps`` times (built on first use)."""
    import numba

    @numba.njit
    def first_class_loop(f, theta, grad, reps):
        total = 0.0
        for i in range(reps):
            theta[0] += 1e-12 * (i & 1)  # the argument changes, so no call can be hoisted
            total += f(theta, grad)
        return total

    @numba.njit
    def cfunc_loop(f, n, theta, grad, logp, user_data, reps):
        status = 0
        for i in range(reps):
            theta[0] += 1e-12 * (i & 1)
            status += f(n, theta.ctypes, grad.ctypes, logp.ctypes, user_data)
        return status

    return first_class_loop, cfunc_loop


_DRIVERS: list = []


BUDGET_S = 0.25  # seconds per timed round; smoke tests lower it


def _best_of(fn, reps: int, rounds: int = 5, budget_s: float | None = None) -> float:
    """Smallest time per call in microseconds over ``rounds`` timed rounds of ``fn(n)`` (``n``
    calls each). ``n`` is at most ``reps`` and small enough that a round takes about
    ``budget_s`` (default ``BUDGET_S``; so large models are not timed for minutes)."""
    budget_s = BUDGET_S if budget_s is None else budget_s
    fn(1)  # compile / warm up
    t0 = time.perf_counter()
    fn(10)
    per_call = max((time.perf_counter() - t0) / 10, 1e-9)
    n = int(min(reps, max(10, budget_s / per_call)))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - t0) / n)
    return 1e6 * best


def time_nutslite_gradient(model, theta: np.ndarray, reps: int = 200_000) -> float:
    """Microseconds per ``logp_grad`` call, from a compiled loop over the first-class function
    the engine calls (``model.logp_grad_function``)."""
    if not _DRIVERS:
        _DRIVERS.extend(_njit_drivers())
    loop = _DRIVERS[0]
    theta = np.array(theta, dtype=np.float64)
    grad = np.empty_like(theta)
    return _best_of(lambda n: loop(model.logp_grad_function, theta, grad, n), reps)


def time_nutpie_gradient(compiled, theta: np.ndarray, reps: int = 50_000) -> float:
    """Microseconds per call of nutpie's compiled C log-density (the cfunc its Rust sampler
    calls), from a compiled loop."""
    if not _DRIVERS:
        _DRIVERS.extend(_njit_drivers())
    loop = _DRIVERS[1]
    fn = compiled.compiled_logp_func.ctypes
    theta = np.array(theta, dtype=np.float64)
    grad, logp = np.empty_like(theta), np.empty(1)
    ud = compiled.user_data.ctypes.data
    n = compiled.n_dim
    return _best_of(lambda r: loop(fn, n, theta, grad, logp, ud, r), reps)


def time_pymc_gradient(model, theta: np.ndarray, reps: int = 5_000) -> float:
    """Microseconds per call of PyMC's ``logp_dlogp_function`` from Python, as its NUTS calls it."""
    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    theta = np.array(theta, dtype=np.float64)

    def run(r: int) -> None:
        for _ in range(r):
            fn(theta)

    return _best_of(run, reps, rounds=3)


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) plus its waited-for child processes (PyMC's
    chain processes): robust to other processes sharing the machine, unlike wall time."""
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


# --------------------------------------------------------------------------------------------
# the worker: one sampler, one process
# --------------------------------------------------------------------------------------------


def _run_nutslite(spec: dict, t_imports: float) -> dict:
    import nutslite as nl

    data = data_spec_to_data(spec["data"])
    likelihood = "pointwise" if spec["sampler"] == "nutslite_pointwise" else "sufficient"
    # nutslite_stan: the same sampler with Stan's windowed metric adaptation; the other two use
    # nutslite's default (adaptation="grad": nutpie-style draw and gradient variances)
    extra = {"adaptation": "stan"} if spec["sampler"] == "nutslite_stan" else {}
    t0 = time.perf_counter()
    model = nl.models.radon(spec["parameterization"], likelihood=likelihood, data=data)
    # a tiny run compiles (or loads from the disk cache) the engine and the diagnostics behind
    # the warnings, as a user's first call does (enough draws that the checks run)
    import warnings

    from nutslite.diagnostics import MIN_DRAWS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nl.sample(model, draws=MIN_DRAWS, tune=1, chains=1, seed=0, cores=1, progress=False,
                  **extra)  # the engine compiles per adaptation kind
    compile_s = time.perf_counter() - t0
    out = {"import_s": t_imports, "compile_s": compile_s, "data_digest": data_digest(data)}
    if spec["mode"] == "compile":
        return out
    s = spec["settings"]
    # the call as a user makes it: nutslite's defaults (the diagnostics behind its warnings on,
    # warmup draws not kept), with only the progress display off, as for the peers
    c0, t0 = cpu_seconds(), time.perf_counter()
    res = nl.sample(
        model, draws=s["draws"], tune=s["tune"], chains=s["chains"], seed=s["seed"],
        cores=s["cores"], target_accept=s["target_accept"], max_treedepth=s["max_treedepth"],
        progress=False, **extra,
    )
    call_s, cpu_s = time.perf_counter() - t0, cpu_seconds() - c0
    st, div = res.sample_stats, res.divergences
    out.update(
        call_s=call_s,
        cpu_s=cpu_s,
        sampling_s=float(res.settings["wall_seconds"]),
        unconstrained=res.unconstrained,
        grads_warmup=int(res.warmup["gradient_evaluations"].sum()),
        grads_sampling=int(st["n_steps"].sum()),
        divergences=int(st["diverging"].sum()),
        divergences_warmup=int(div["warmup"].sum()),
        mean_tree_depth=float(st["tree_depth"].mean()),
        final_step_size=float(np.median(res.warmup["step_size"])),
        shape_check={"chains": res.n_chains, "draws": res.n_draws,
                     "tune": int(res.warmup["tune"])},
        versions=nutslite_provenance(),
    )
    out["grad_us"] = time_nutslite_gradient(model, res.unconstrained[0, -1])
    return out


def _idata_common(idata, spec: dict, depth_name: str) -> dict:
    """Gradient counts and sample stats from an InferenceData with warmup groups kept."""
    st, wst = idata.sample_stats, idata.warmup_sample_stats
    step = st["step_size_bar"] if "step_size_bar" in st else st["step_size"]
    return {
        "unconstrained": unconstrained_from_posterior(idata.posterior, spec["parameterization"]),
        "grads_warmup": int(wst["n_steps"].values.sum()),
        "grads_sampling": int(st["n_steps"].values.sum()),
        "divergences": int(st["diverging"].values.sum()),
        "divergences_warmup": int(wst["diverging"].values.sum()),
        "mean_tree_depth": float(st[depth_name].values.mean()),
        "final_step_size": float(np.median(step.values[:, -1])),
        "shape_check": {"chains": int(st.sizes["chain"]), "draws": int(st.sizes["draw"]),
                        "tune": int(wst.sizes["draw"])},
    }


def _run_nutpie(spec: dict, t_imports: float) -> dict:
    import nutpie

    data = data_spec_to_data(spec["data"])
    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_radon(spec["parameterization"], data))
    compile_s = time.perf_counter() - t0
    out = {"import_s": t_imports, "compile_s": compile_s, "data_digest": data_digest(data)}
    if spec["mode"] == "compile":
        return out
    s = spec["settings"]
    c0, t0 = cpu_seconds(), time.perf_counter()
    idata = nutpie.sample(
        compiled, draws=s["draws"], tune=s["tune"], chains=s["chains"], cores=s["cores"],
        seed=s["seed"], target_accept=s["target_accept"], maxdepth=s["max_treedepth"],
        save_warmup=True, progress_bar=False,
    )
    call_s, cpu_s = time.perf_counter() - t0, cpu_seconds() - c0
    out.update(call_s=call_s, cpu_s=cpu_s, sampling_s=call_s,
               **_idata_common(idata, spec, "depth"))
    out["versions"] = {"nutpie": nutpie.__version__}
    out["grad_us"] = time_nutpie_gradient(compiled, out["unconstrained"][0, -1])
    return out


def _run_pymc(spec: dict, t_imports: float) -> dict:
    import pymc as pm

    data = data_spec_to_data(spec["data"])
    t0 = time.perf_counter()
    model = pymc_radon(spec["parameterization"], data)
    # the function PyMC's NUTS evaluates (C backend; cached in pytensor's compiledir once built)
    model.logp_dlogp_function(ravel_inputs=True)
    compile_s = time.perf_counter() - t0
    out = {"import_s": t_imports, "compile_s": compile_s, "data_digest": data_digest(data)}
    if spec["mode"] == "compile":
        return out
    s = spec["settings"]
    c0, t0 = cpu_seconds(), time.perf_counter()
    with model:
        idata = pm.sample(
            draws=s["draws"], tune=s["tune"], chains=s["chains"], cores=s["cores"],
            random_seed=s["seed"], target_accept=s["target_accept"],
            nuts={"max_treedepth": s["max_treedepth"]}, discard_tuned_samples=False,
            progressbar=False, compute_convergence_checks=False,
        )
    call_s, cpu_s = time.perf_counter() - t0, cpu_seconds() - c0
    # PyMC's own timer of its sampling loop (warmup + draws), without set-up and conversion
    sampling_s = float(idata.sample_stats.attrs.get("sampling_time", call_s))
    out.update(call_s=call_s, cpu_s=cpu_s, sampling_s=sampling_s,
               **_idata_common(idata, spec, "tree_depth"))
    out["versions"] = {"pymc": pm.__version__}
    out["grad_us"] = time_pymc_gradient(model, out["unconstrained"][0, -1])
    return out


def worker(spec: dict) -> dict:
    """Run one sampler as ``spec`` says and return its measurements (JSON-ready)."""
    t0 = time.perf_counter()
    sampler = spec["sampler"]
    if sampler.startswith("nutslite"):
        import nutslite  # noqa: F401

        runner = _run_nutslite
    elif sampler == "nutpie":
        import nutpie  # noqa: F401
        import pymc  # noqa: F401

        runner = _run_nutpie
    elif sampler == "pymc":
        import pymc  # noqa: F401

        runner = _run_pymc
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    out = runner(spec, time.perf_counter() - t0)
    out["load_avg_before"] = spec.get("load_avg_before")
    if "unconstrained" in out:
        x = out.pop("unconstrained")
        out.update(diagnostics(x))
        grads = out["grads_warmup"] + out["grads_sampling"]
        busy = min(spec["settings"]["cores"], spec["settings"]["chains"])
        out["grads_total"] = grads
        out["ess_bulk_per_s"] = out["ess_bulk_min"] / out["sampling_s"]
        out["ess_tail_per_s"] = out["ess_tail_min"] / out["sampling_s"]
        # what a user waits for: the whole sampling call, and the whole process with a warm cache
        # (imports, compile or cache load, the call)
        out["process_s"] = out["import_s"] + out["compile_s"] + out["call_s"]
        out["ess_bulk_per_call_s"] = out["ess_bulk_min"] / out["call_s"]
        out["ess_bulk_per_process_s"] = out["ess_bulk_min"] / out["process_s"]
        out["ess_bulk_per_1k_grads"] = 1000.0 * out["ess_bulk_min"] / grads
        # core-seconds of sampling per gradient evaluation: the gradient and everything the
        # sampler does around it (tree building, adaptation, bookkeeping)
        out["us_per_grad_in_sampler"] = 1e6 * out["sampling_s"] * busy / grads
        # the same from CPU time of the whole sampler call (all threads and chain processes)
        out["ess_bulk_per_cpu_s"] = out["ess_bulk_min"] / out["cpu_s"]
        out["cpu_us_per_grad"] = 1e6 * out["cpu_s"] / grads
    return out


def _cpu_busy_seconds() -> float:
    """Core-seconds all CPUs of the machine have been busy since boot (``/proc/stat``)."""
    with open("/proc/stat") as fh:
        fields = [float(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def other_load(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes during ``seconds`` (this process sleeps meanwhile)."""
    try:
        b0 = _cpu_busy_seconds()
        time.sleep(seconds)
        return (_cpu_busy_seconds() - b0) / seconds
    except OSError:
        return float("nan")


def wait_for_quiet(threshold: float = 0.3, max_wait: float = 10.0) -> float:
    """Wait (at most ``max_wait`` seconds) until other processes use fewer than ``threshold``
    cores, so a timed run does not share the machine; returns the last measured load."""
    t0 = time.perf_counter()
    load = other_load()
    while load > threshold and time.perf_counter() - t0 < max_wait:
        load = other_load()
    return load


def run_worker(spec: dict, env_extra: dict[str, str] | None = None, timeout: float = 3600,
               quiet: bool = True) -> dict:
    """Run ``worker(spec)`` in a fresh Python process and return its result.

    With ``quiet``, first wait for other processes to leave the CPUs alone (see
    ``wait_for_quiet``). The result records the cores other processes kept busy just before
    (``other_load_before``) and, on average, during the run (``other_load_during``: machine busy
    core-seconds minus the worker's own CPU time, over the worker's wall time), so runs that
    shared the machine can be spotted.
    """
    import resource
    import subprocess

    env = dict(os.environ)
    env.update(env_extra or {})
    env["PYTHONWARNINGS"] = "ignore"
    load_before = wait_for_quiet() if quiet else float("nan")
    spec = dict(spec, load_avg_before=os.getloadavg()[0])
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, t0 = _cpu_busy_seconds(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), json.dumps(spec)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    others = max(0.0, (_cpu_busy_seconds() - busy0) - own) / wall
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[len("RESULT "):])
            out.update(other_load_before=load_before, other_load_during=others,
                       process_wall_s=wall)
            return out
    raise RuntimeError(
        f"worker {spec['sampler']}/{spec['parameterization']} failed (exit {proc.returncode}):\n"
        f"{proc.stderr[-3000:]}"
    )


if __name__ == "__main__":
    result = worker(json.loads(sys.argv[1]))
    print("RESULT " + json.dumps(result), flush=True)
