"""``nl.sample``: validate the request, initialise each chain, run the chains in threads.

Each chain owns one random stream, ``numpy.random.SeedSequence(seed).spawn(chains)[c]``, its own
buffers (allocated once) and its own compiled loop (``nutslite.engine.chain.run_chain``), which
releases the GIL. ``cores`` worker threads run the loop in chunks sized to take about a tenth of a
second, always advancing the chain that lags most, so progress can be shown, every chain moves even
when there are fewer cores than chains, and Ctrl-C stops them all promptly with their work kept.
Chunking never changes a draw, so a seed gives bit-identical draws whatever ``cores`` is.
Across machines the draws agree too, except with ``adaptation="dense"`` or ``"low_rank"``, whose
metric estimates go through NumPy's LAPACK (CPU-specific kernels; last bits differ).
"""

from __future__ import annotations

import numbers
import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from nutslite._diagnostic_kernels import _statistics_kernel
from nutslite._numba import cache_dir, needs_compiling
from nutslite.diagnostics import MIN_DRAWS, SamplingWarning, warn_problems
from nutslite.engine.adaptation.mass_matrix import (
    ADAPTATION_KINDS,
    DENSE,
    LOW_RANK,
    initial_inv_mass,
    metric_adaptation_init,
)
from nutslite.engine.adaptation.step_size import (
    SHORT_WARMUP,
    STEP_SIZE_IMPROPER,
    STEP_SIZE_OK,
    DualAveraging,
    dual_averaging_start,
    find_initial_step_size,
)
from nutslite.engine.adaptation.windows import nutpie_schedule, stan_schedule
from nutslite.engine.chain import (
    CHAIN_METRIC_OVERFLOW,
    CHAIN_OK,
    STAT_NAMES,
    ChainState,
    NutsSettings,
    run_chain,
)
from nutslite.engine.metric import Metric, dense_metric, diagonal_metric, low_rank_metric
from nutslite.engine.tree import allocate_trajectory
from nutslite.model import Model
from nutslite.progress import ChainProgress, Reporter, make_reporter
from nutslite.result import SamplingResult

MAX_INIT_TRIES = 100  # Stan's number of attempts at a random initial point
MAX_DELTA_H = 1000.0  # Stan's divergence threshold on H - H0
CHUNK_SECONDS = 0.1  # target wall time of one compiled chunk
TRAJECTORY_MEMORY_LIMIT = 2**31  # bytes of trajectory buffers per chain


class SamplingError(RuntimeError):
    """The sampler could not continue (improper posterior, numerical overflow in adaptation)."""


@dataclass
class _Chain:
    """Everything one chain needs between chunks."""

    index: int
    rng: np.random.Generator
    state: ChainState
    da: DualAveraging
    adapt: object
    traj: object
    scratch: np.ndarray
    draws: np.ndarray
    stats: np.ndarray
    divergences: np.ndarray
    divergence_iters: np.ndarray
    divergence_count: np.ndarray
    done: int = 0
    status: int = CHAIN_OK
    seconds: float = 0.0
    init_point: np.ndarray = field(default=None)
    chunk: int = 1  # iterations in the next compiled chunk, sized to take about CHUNK_SECONDS
    running: bool = False  # a worker thread is running a chunk of this chain


def sample(
    model: Model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int | None = None,
    cores: int | None = None,
    target_accept: float = 0.8,
    max_treedepth: int = 10,
    init: np.ndarray | None = None,
    step_size: float | np.ndarray | None = None,
    inv_mass_matrix: np.ndarray | None = None,
    adaptation: str = "grad",
    jitter: float = 0.0,
    save_warmup: bool = False,
    progress: bool | Reporter = True,
    warn: bool = True,
) -> SamplingResult:
    """Draw from ``model`` with NUTS and Stan's windowed adaptation.

    Parameters
    ----------
    model
        The target (``nl.Model``).
    draws, tune, chains
        Draws kept per chain, warmup iterations per chain, number of chains. Shorter warmups
        adapt only the step size: below 150 iterations with ``"stan"`` and ``"dense"`` (as
        Stan's code does), below 20 with ``"grad"`` and ``"low_rank"``; below 20 the step-size
        adaptation starts cautiously (``nutslite.engine.adaptation.step_size``, "Short warmups").
    seed
        Seed of ``numpy.random.SeedSequence``; chain ``c`` uses the ``c``-th spawned stream.
        ``None`` draws fresh entropy (recorded in ``result.settings["seed"]``).
    cores
        How many chains run at once (threads). ``None``: as many as there are CPUs.
    target_accept
        Target of dual averaging for the mean acceptance statistic, in (0, 1).
    max_treedepth
        Maximum number of trajectory doublings per transition.
    init
        Initial unconstrained point, shape ``(dim,)`` or ``(chains, dim)``. ``None``: Stan's
        uniform(-2, 2), retried up to 100 times where the density or gradient is not finite.
    step_size, inv_mass_matrix
        Starting step size (scalar or ``(chains,)``) and inverse mass matrix: a diagonal
        (``(dim,)`` or ``(chains, dim)``), or with ``adaptation="dense"`` also a matrix
        (``(dim, dim)`` or ``(chains, dim, dim)``); for example ``res.warmup["step_size"]`` and
        ``res.warmup["inv_mass_matrix"]`` of an earlier run. With ``tune=0`` they are used as
        given; otherwise warmup starts from them.
    adaptation
        How warmup learns the metric (``nutslite.engine.adaptation``): ``"grad"`` (the default:
        nutpie's diagonal from draw and gradient variances, live windows), ``"stan"`` (Stan's
        diagonal and windows, the reference semantics), ``"dense"`` (Stan's dense covariance),
        ``"low_rank"`` (nutpie's diagonal plus low-rank correction, updated every 20 draws).
        ``"grad"`` is the default because it won ``benchmarks/bench_adaptation.py``: among the
        adaptations that run on every target it has the best ESS per second (geometric mean over
        the scored targets 15k against Stan's 7.5k and low-rank's 4.1k) and twice Stan's ESS per
        gradient; ``"low_rank"`` gets the most ESS per gradient, ``"dense"`` wins on small
        correlated targets. Choose ``"stan"`` to reproduce Stan.
    jitter
        Uniform step-size jitter ``eps (1 + jitter (2u - 1))`` per transition (Stan's default 0).
    save_warmup
        Keep warmup draws and stats in ``result.warmup_posterior`` and friends.
    progress
        ``True`` shows progress (``nutslite.progress``), ``False`` shows nothing, and a
        ``nutslite.progress.Reporter`` instance receives the updates.
    warn
        Issue the diagnostic warnings below when sampling ends (``False`` skips the checks,
        which take about half a second for radon, for loops of many short runs).

    Returns
    -------
    SamplingResult
        With ``posterior``, ``unconstrained``, ``sample_stats``, ``warmup`` and ``divergences``.
        Interrupted by Ctrl-C, it holds the draws every chain completed (``result.interrupted``).
        A Ctrl-C after the chains have finished never loses the draws: during the checks below
        it stops them and ``sample`` returns the complete result with a warning saying so.
        Before it returns (unless ``warn=False``), ``nutslite.diagnostics.warn_problems`` issues one
        ``SamplingWarning`` per problem found (divergences, tree-depth saturation, R-hat above
        1.01, ESS below 100 per chain, E-BFMI below 0.3).
    """
    t_call = time.perf_counter()
    if not isinstance(model, Model):
        raise TypeError(f"model must be a nutslite.Model, got {type(model).__name__}")
    draws = _positive_int("draws", draws, allow_zero=False)
    tune = _positive_int("tune", tune, allow_zero=True)
    chains = _positive_int("chains", chains, allow_zero=False)
    max_treedepth = _positive_int("max_treedepth", max_treedepth, allow_zero=False)
    cores = (os.cpu_count() or 1) if cores is None else _positive_int("cores", cores, False)
    if not _is_real(target_accept) or not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must lie strictly between 0 and 1, got {target_accept!r}")
    if not _is_real(jitter) or not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must lie in [0, 1), got {jitter!r}")
    reporter = make_reporter(progress)
    trajectory_bytes = 5 * 8 * model.dim * 2**max_treedepth
    if trajectory_bytes > TRAJECTORY_MEMORY_LIMIT:
        raise ValueError(
            f"max_treedepth={max_treedepth} needs {trajectory_bytes / 2**30:.1f} GiB of trajectory "
            f"buffers per chain for dim={model.dim}; choose a smaller max_treedepth"
        )
    _check_draw_memory(chains, tune + draws, model.dim)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)
    elif isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")

    if adaptation not in ADAPTATION_KINDS:
        raise ValueError(
            f"unknown adaptation {adaptation!r}; choose one of "
            f"{', '.join(map(repr, ADAPTATION_KINDS))}"
        )
    kind = ADAPTATION_KINDS[adaptation]
    dim = model.dim
    inits = _per_chain("init", init, chains, dim)
    inv_masses = _inv_mass_matrices(inv_mass_matrix, chains, dim, dense=kind == DENSE)
    step_sizes = _step_sizes(step_size, chains)
    if adaptation == "grad":
        schedule = nutpie_schedule(tune)
    elif adaptation == "low_rank":
        schedule = nutpie_schedule(tune, update_freq=20)
    else:
        schedule = stan_schedule(tune)
    settings = NutsSettings(max_treedepth, MAX_DELTA_H, float(target_accept), float(jitter), tune)
    streams = np.random.SeedSequence(seed).spawn(chains)
    rngs = [np.random.Generator(np.random.PCG64(s)) for s in streams]

    n_iter = tune + draws
    chain_list = []
    for c in range(chains):
        rng = rngs[c]
        q = _initial_point(model, rng, None if inits is None else inits[c], c)
        grad = np.empty(dim)
        logp = float(model.logp_grad(q, grad))
        metric = _initial_metric(
            kind, None if inv_masses is None else inv_masses[c], grad, tune
        )
        user_step = 1.0 if step_sizes is None else float(step_sizes[c])
        scratch = np.empty((5, dim))
        eps = user_step
        if tune > 0 or step_sizes is None:
            eps, status = find_initial_step_size(
                model.logp_grad_function, rng, metric, user_step, q, logp, grad, scratch,
                tune < SHORT_WARMUP,  # too short to correct it: the largest that passed
            )
            _raise_for_status(status, c, "finding the initial step size")
        chain_list.append(
            _Chain(
                index=c,
                rng=rng,
                state=ChainState(q, grad, logp, eps, metric),
                da=dual_averaging_start(user_step, eps, tune),
                adapt=metric_adaptation_init(kind, dim, tune),
                traj=allocate_trajectory(dim, max_treedepth),
                scratch=scratch,
                draws=np.empty((n_iter, dim)),
                stats=np.empty((n_iter, len(STAT_NAMES))),
                divergences=np.empty((n_iter, 2, dim)),
                divergence_iters=np.empty(n_iter, dtype=np.int64),
                divergence_count=np.zeros(1, dtype=np.int64),
                init_point=q.copy(),
            )
        )

    recorder = None  # nothing recorded: the record_* calls compile to nothing
    stop = threading.Event()
    lock = threading.Lock()
    waiting = list(chain_list)  # chains that are neither running a chunk nor finished

    def run_chunk(chain: _Chain) -> None:
        stop_at = min(n_iter, chain.done + chain.chunk)
        t0 = time.perf_counter()
        chain.state, chain.da, chain.adapt, status = run_chain(
            model.logp_grad_function, chain.rng, chain.state, chain.da, chain.adapt, settings,
            (schedule.collect, schedule.update, schedule.restart, schedule.retune),
            chain.done, stop_at,
            chain.traj, recorder, chain.scratch, chain.draws, chain.stats,
            chain.divergences, chain.divergence_iters, chain.divergence_count,
        )
        elapsed = time.perf_counter() - t0
        chain.seconds += elapsed
        n = stop_at - chain.done
        chain.chunk = max(1, min(2 * n, int(CHUNK_SECONDS * n / max(elapsed, 1e-9))))
        chain.done = stop_at
        chain.status = status
        if status != CHAIN_OK:
            stop.set()  # the run fails (SamplingError below); stop the other chains now

    def worker() -> None:
        """Run a chunk of the chain that lags most, again and again. With fewer cores than chains
        every chain advances at the same pace, so Ctrl-C keeps the work of all of them."""
        try:
            while not stop.is_set():
                with lock:
                    if not waiting:
                        return
                    chain = min(waiting, key=lambda ch: ch.done)
                    waiting.remove(chain)
                chain.running = True
                try:
                    run_chunk(chain)
                finally:
                    chain.running = False
                if chain.done < n_iter and chain.status == CHAIN_OK:
                    with lock:
                        waiting.append(chain)
        except BaseException:
            stop.set()  # an error in one chain stops the others promptly
            raise

    def snapshot(kept: int = n_iter) -> list[ChainProgress]:
        """Every chain's progress, with the divergences among its first ``kept`` iterations."""
        progress = []
        for ch in chain_list:
            iters = ch.divergence_iters[: ch.divergence_count[0]]
            progress.append(ChainProgress(
                ch.index, ch.done, n_iter, tune, int(np.count_nonzero(iters < kept)),
                float(ch.state.step_size), ch.seconds,
                warmup_divergences=int(np.count_nonzero(iters < min(tune, kept))),
                running=ch.running,
            ))
        return progress

    if needs_compiling(run_chain):
        also = " and the diagnostics" if warn and needs_compiling(_statistics_kernel) else ""
        reporter.note(
            f"compiling the sampler{also}, once after installing or upgrading nutslite (tens of "
            f"seconds); later runs load it from {cache_dir()}"
        )
    interrupted = False
    t_start = time.perf_counter()
    n_workers = min(cores, chains)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        futures = [pool.submit(worker) for _ in range(n_workers)]
        try:
            while wait(futures, timeout=0.1).not_done:
                reporter.update(snapshot())
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stop.set()  # no-op after a normal end; else every chain stops after its chunk
            _wait_through_interrupts(futures)
    # From here on the draws are finished: a Ctrl-C must not lose them. An interrupted run keeps
    # the iterations every chain completed, so the final progress counts divergences among those.
    try:
        reporter.close(snapshot(min(ch.done for ch in chain_list)), interrupted)
    except KeyboardInterrupt:
        pass  # the progress display is cut short; the draws are not
    for f in futures:
        f.result()  # re-raise any error from a chain thread
    wall = time.perf_counter() - t_start
    for ch in chain_list:
        _raise_for_status(ch.status, ch.index, "warmup")

    t_assemble = time.perf_counter()
    result = _despite_interrupts(lambda: SamplingResult.from_chains(
        model=model,
        chains=chain_list,
        tune=tune,
        draws=draws,
        save_warmup=save_warmup,
        interrupted=interrupted,
        schedule=schedule,
        settings={
            "draws": draws, "tune": tune, "chains": chains, "seed": int(seed), "cores": cores,
            "target_accept": float(target_accept), "max_treedepth": max_treedepth,
            "jitter": float(jitter), "max_delta_h": MAX_DELTA_H, "adaptation": adaptation,
            "wall_seconds": wall, "setup_seconds": t_start - t_call,
        },
    ))
    t_check = time.perf_counter()
    result.settings["assemble_seconds"] = t_check - t_assemble
    if warn and result.n_draws >= MIN_DRAWS:  # name every problem: divergences, R-hat, ...
        _warn_problems_at_caller(result)
        result.settings["check_seconds"] = time.perf_counter() - t_check
    return result


def _despite_interrupts(build: Callable[[], SamplingResult]) -> SamplingResult:
    """``build()``, run again from the start if Ctrl-C interrupts it: it only copies finished
    draws into a result, which takes a moment, and a Ctrl-C must never throw them away."""
    while True:
        try:
            return build()
        except KeyboardInterrupt:
            continue


def _warn_problems_at_caller(result: SamplingResult) -> None:
    """``warn_problems(result)``, its warnings attributed to the line that called ``sample``.

    A Ctrl-C during the checks stops them, and ``sample`` still returns the finished draws, with
    a warning saying that the checks did not run to the end.
    """
    try:
        warn_problems(result, stacklevel=4)  # warn_problems < this < sample < the caller
    except KeyboardInterrupt:
        warnings.warn(
            "Ctrl-C stopped the diagnostic checks after sampling had finished; the draws are "
            "complete. Check them with nutslite.diagnostics.warn_problems(result)",
            SamplingWarning, stacklevel=3,
        )


def _wait_through_interrupts(futures: list) -> None:
    """Wait for the chains to finish their current chunk, ignoring further Ctrl-C meanwhile."""
    while True:
        try:
            wait(futures)
            return
        except KeyboardInterrupt:
            continue


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _check_draw_memory(chains: int, n_iter: int, dim: int) -> None:
    """Fail before allocating when the draw buffers cannot fit in this machine's memory."""
    need = chains * n_iter * 8 * (3 * dim + len(STAT_NAMES) + 1)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): let numpy try
        return
    if need > have:
        raise ValueError(
            f"{chains} chains of tune + draws = {n_iter} iterations with dim={dim} need "
            f"{need / 2**30:.1f} GiB for draws and statistics, more than this machine's "
            f"{have / 2**30:.1f} GiB; use fewer draws"
        )


def _positive_int(name: str, value: object, allow_zero: bool) -> int:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {kind} integer, got {value!r}")
    return int(value)


def _per_chain(
    name: str, value: object, chains: int, dim: int, positive: bool = False
) -> np.ndarray | None:
    """Broadcast a ``(dim,)`` or ``(chains, dim)`` array to ``(chains, dim)``, validated."""
    if value is None:
        return None
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers: {err}") from err
    if arr.shape == (dim,):
        arr = np.tile(arr, (chains, 1))
    if arr.shape != (chains, dim):
        raise ValueError(
            f"{name} must have shape ({dim},) or ({chains}, {dim}), got {arr.shape}"
        )
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else False)
    if bad.any():
        c, i = np.argwhere(bad)[0]
        what = "positive and finite" if positive else "finite"
        raise ValueError(f"{name} must be {what}; chain {c}, coordinate {i} is {float(arr[c, i])}")
    return np.ascontiguousarray(arr)


def _inv_mass_matrices(value: object, chains: int, dim: int, dense: bool) -> np.ndarray | None:
    """User inverse mass matrices per chain: diagonals ``(chains, dim)``, or with ``dense``
    matrices ``(chains, dim, dim)`` (symmetric positive definite)."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, str) else None
    if dense and arr is not None and arr.shape in ((dim, dim), (chains, dim, dim)) and dim > 1:
        mats = np.broadcast_to(arr, (chains, dim, dim)).copy()
        for c, m in enumerate(mats):
            if not (np.isfinite(m).all() and np.allclose(m, m.T)):
                raise ValueError(f"inv_mass_matrix of chain {c} must be finite and symmetric")
            try:
                np.linalg.cholesky(m)
            except np.linalg.LinAlgError as err:
                raise ValueError(
                    f"inv_mass_matrix of chain {c} must be positive definite"
                ) from err
        return mats
    return _per_chain("inv_mass_matrix", value, chains, dim, positive=True)


def _initial_metric(
    kind: int, inv_mass: np.ndarray | None, grad: np.ndarray, tune: int
) -> Metric:
    """The metric warmup starts from: the user's, else the adaptation's default."""
    if inv_mass is None:
        inv_mass = initial_inv_mass(kind, grad, tune)
    if kind == DENSE:
        return dense_metric(inv_mass if inv_mass.ndim == 2 else np.diag(inv_mass))
    if kind == LOW_RANK:  # starts diagonal; warmup adds the low-rank part
        n = len(inv_mass)
        return low_rank_metric(inv_mass.copy(), np.zeros((n, n)), np.ones(n))
    return diagonal_metric(inv_mass.copy())


def _step_sizes(step_size: object, chains: int) -> np.ndarray | None:
    if step_size is None:
        return None
    try:
        arr = np.array(step_size, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"step_size must be a number or an array of numbers: {err}") from err
    if arr.ndim == 0:
        arr = np.full(chains, float(arr))
    if arr.shape != (chains,) or not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(
            f"step_size must be a positive finite number or an array of {chains} of them, "
            f"got {step_size!r}"
        )
    return arr


def _initial_point(model: Model, rng: np.random.Generator, init: np.ndarray | None, chain: int):
    """A point where the log density and its gradient are finite (Stan: 100 random tries)."""
    grad = np.empty(model.dim)
    candidates = [init] if init is not None else (
        model.initial_point(rng) for _ in range(MAX_INIT_TRIES)
    )
    for q in candidates:
        q = np.ascontiguousarray(q, dtype=np.float64)
        logp = model.logp_grad(q, grad)
        if np.isfinite(logp) and np.isfinite(grad).all():
            return q
    where = "the given init" if init is not None else f"{MAX_INIT_TRIES} uniform(-2, 2) points"
    raise ValueError(
        f"chain {chain}: the log density or its gradient is not finite at {where}; at the last "
        f"point tried, {_non_finite_detail(model, q, logp, grad)}. Pass init= a point inside the "
        "model's support, or check logp_grad there"
    )


def _non_finite_detail(model: Model, q: np.ndarray, logp: float, grad: np.ndarray) -> str:
    """Which coordinates fail at ``q``: those with a non-finite gradient, and the point itself."""
    bad = np.flatnonzero(~np.isfinite(grad))
    if len(bad):
        detail = f"log density {logp!r}, gradient not finite in {_listing(model.coords, bad)}"
    else:
        detail = f"log density {logp!r} with a finite gradient"
    values = [f"{name}={value:.4g}" for name, value in zip(model.coords, q, strict=True)]
    return f"{detail} (point: {_listing(values, np.arange(model.dim))})"


def _listing(items: list[str], indices: np.ndarray, limit: int = 10) -> str:
    """``"a, b, c and 7 more"``: the first ``limit`` of ``items[indices]``."""
    text = ", ".join(items[i] for i in indices[:limit])
    return text + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


def _raise_for_status(status: int, chain: int, stage: str) -> None:
    if status == STEP_SIZE_OK:
        return
    if status == STEP_SIZE_IMPROPER:
        raise SamplingError(
            f"chain {chain}: the step size grew past 1e7 while {stage}; the posterior looks "
            "improper (check the model)"
        )
    if status == CHAIN_METRIC_OVERFLOW:
        raise SamplingError(f"chain {chain}: numerical overflow in the mass-matrix adaptation")
    raise SamplingError(
        f"chain {chain}: no acceptably small step size could be found while {stage}; "
        "is the log density continuous?"
    )
