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
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nutslite._blas import single_blas_thread
from nutslite._diagnostic_kernels import _statistics_kernel
from nutslite._memory import empty_block
from nutslite._numba import cache_dir, gc_frozen, needs_compiling
from nutslite._precompile import DiagnosticsCompile, start_diagnostics_compile
from nutslite.diagnostics import MIN_DRAWS, SamplingWarning, warn_problems
from nutslite.engine.adaptation import ADAPTATIONS, Adaptation
from nutslite.engine.adaptation.status import METRIC_OVERFLOW, STEP_SIZE_IMPROPER, WARMUP_OK
from nutslite.engine.adaptation.step_size import SHORT_WARMUP, DualAveraging, dual_averaging_start
from nutslite.engine.adaptation.windows import WarmupSchedule
from nutslite.engine.chain import (
    CAUTIOUS_HEURISTIC,
    NO_HEURISTIC,
    STAN_HEURISTIC,
    ChainState,
    NutsSettings,
    run_chain,
)
from nutslite.engine.metric import DENSE, initial_metric
from nutslite.engine.stats import STAT_NAMES
from nutslite.engine.tree import MAX_DELTA_H, allocate_trajectory
from nutslite.model import Model
from nutslite.progress import ChainProgress, Reporter, make_reporter
from nutslite.result import ChainOutput, SamplingResult
from nutslite.scheduler import ChainScheduler, ChunkedRun

MAX_INIT_TRIES = 100  # Stan's number of attempts at a random initial point
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
    init_point: np.ndarray
    run: ChunkedRun  # iterations done, chunk size, compiled time (``nutslite.scheduler``)
    status: int = WARMUP_OK

    def output(self) -> ChainOutput:
        """What the chain hands to the result (its buffers, not copies)."""
        n_div = int(self.divergence_count[0])
        return ChainOutput(
            index=self.index, stats=self.stats, completed=self.run.done,
            step_size=self.state.step_size, metric=self.state.metric, init_point=self.init_point,
            divergence_iters=self.divergence_iters[:n_div],
            divergence_points=self.divergences[:n_div], seconds=self.run.seconds,
        )


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
        Issue the diagnostic warnings below when sampling ends (``False`` skips the checks, for
        loops of many short runs; for radon's 345 scalars x 4 x 1000 draws they take about
        0.03 s on 2 cores, a quarter of the call: ``benchmarks/profile_call.py``).

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
    request = _validate(
        model, draws, tune, chains, seed, cores, target_accept, max_treedepth, init, step_size,
        inv_mass_matrix, adaptation, jitter,
    )
    reporter = make_reporter(progress)
    # after installing nutslite, its diagnostics compile in a second process meanwhile
    background = start_diagnostics_compile() if warn and request.draws >= MIN_DRAWS else None
    streams = np.random.SeedSequence(request.seed).spawn(chains)
    # BLAS and LAPACK (in a log density, or the metric updates) on one thread: their own threads
    # would spin against the chains' (nutslite._blas)
    with single_blas_thread():
        # every chain's draws (the warmup's only if they are kept) and then its statistics
        # (every iteration's), in one buffer that faults in huge pages (nutslite._memory): the
        # result's draws are views of it
        n_chains, n_iter = request.chains, request.tune + request.draws  # Python ints
        n_kept = n_iter if save_warmup else request.draws
        size = n_chains * n_kept * model.dim
        block = empty_block(size + n_chains * n_iter * len(STAT_NAMES))
        all_draws = block[:size].reshape(n_chains, n_kept, model.dim)
        all_stats = block[size:].reshape(n_chains, n_iter, len(STAT_NAMES))
        compiling = needs_compiling(run_chain)
        if compiling:
            also = " and the diagnostics" if warn and needs_compiling(_statistics_kernel) else ""
            reporter.note(
                f"compiling the sampler{also}, once after installing or upgrading nutslite (tens "
                f"of seconds); later runs load it from {cache_dir()}"
            )
        # the first chain's step-size heuristic compiles the engine (and a model's first call its
        # log density): the collector's full collections then skip what exists already
        with gc_frozen(compiling):
            chain_list = [
                _init_chain(model, request, c, streams[c], all_draws[c], all_stats[c])
                for c in range(n_chains)
            ]
        t_start = time.perf_counter()
        interrupted = _run_chains(model, request, chain_list, reporter)
        wall = time.perf_counter() - t_start

    t_assemble = time.perf_counter()
    result = _despite_interrupts(lambda: SamplingResult.from_chains(
        model=model,
        chains=[ch.output() for ch in chain_list],
        all_draws=all_draws,
        tune=request.tune,
        draws=request.draws,
        save_warmup=save_warmup,
        interrupted=interrupted,
        schedule=request.schedule,
        settings={
            **request.settings(), "wall_seconds": wall, "setup_seconds": t_start - t_call,
        },
    ))
    t_check = time.perf_counter()
    result.settings["assemble_seconds"] = t_check - t_assemble
    if warn and result.n_draws >= MIN_DRAWS:  # name every problem: divergences, R-hat, ...
        _warn_problems_at_caller(result, background)
        result.settings["check_seconds"] = time.perf_counter() - t_check
    return result


@dataclass(frozen=True)
class _Request:
    """The validated arguments of one ``sample`` call."""

    draws: int
    tune: int
    chains: int
    seed: int
    cores: int
    target_accept: float
    max_treedepth: int
    jitter: float
    adaptation: str
    warmup: Adaptation  # ``ADAPTATIONS[adaptation]``
    schedule: WarmupSchedule
    nuts: NutsSettings
    inits: np.ndarray | None  # (chains, dim)
    inv_masses: np.ndarray | None  # (chains, dim) or (chains, dim, dim)
    step_sizes: np.ndarray | None  # (chains,)

    def settings(self) -> dict[str, object]:
        """The run's arguments as ``SamplingResult.settings`` records them."""
        return {
            "draws": self.draws, "tune": self.tune, "chains": self.chains, "seed": self.seed,
            "cores": self.cores, "target_accept": self.target_accept,
            "max_treedepth": self.max_treedepth, "jitter": self.jitter,
            "max_delta_h": MAX_DELTA_H, "adaptation": self.adaptation,
        }


def _validate(
    model, draws, tune, chains, seed, cores, target_accept, max_treedepth, init, step_size,
    inv_mass_matrix, adaptation, jitter,
) -> _Request:
    """``sample``'s arguments checked, each bad one named in a ``TypeError`` or ``ValueError``."""
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
    if adaptation not in ADAPTATIONS:
        raise ValueError(
            f"unknown adaptation {adaptation!r}; choose one of "
            f"{', '.join(map(repr, ADAPTATIONS))}"
        )
    warmup = ADAPTATIONS[adaptation]
    dim = model.dim
    return _Request(
        draws=draws, tune=tune, chains=chains, seed=int(seed), cores=cores,
        target_accept=float(target_accept), max_treedepth=max_treedepth, jitter=float(jitter),
        adaptation=adaptation, warmup=warmup, schedule=warmup.schedule(tune),
        nuts=NutsSettings(max_treedepth, MAX_DELTA_H, float(target_accept), float(jitter), tune),
        inits=_per_chain("init", init, chains, dim),
        inv_masses=_inv_mass_matrices(
            inv_mass_matrix, chains, dim, dense=warmup.metric_kind == DENSE
        ),
        step_sizes=_step_sizes(step_size, chains),
    )


def _init_chain(
    model: Model, request: _Request, c: int, stream: np.random.SeedSequence, draws: np.ndarray,
    stats: np.ndarray,
) -> _Chain:
    """Chain ``c`` ready to run: its random stream, initial point, metric, step size (Stan's
    heuristic, unless the user's is used as given) and buffers; it writes its draws into
    ``draws`` (``(tune + draws, dim)``, or ``(draws, dim)`` without the warmup's) and its
    statistics into ``stats`` ``(tune + draws, len(STAT_NAMES))``."""
    rng = np.random.Generator(np.random.PCG64(stream))
    dim, tune = model.dim, request.tune
    q = _initial_point(model, rng, None if request.inits is None else request.inits[c], c)
    grad = np.empty(dim)
    logp = float(model.logp_grad(q, grad))
    inv_mass = None if request.inv_masses is None else request.inv_masses[c]
    if inv_mass is None:
        inv_mass = request.warmup.initial_inv_mass(grad, tune)
    metric = initial_metric(request.warmup.metric_kind, inv_mass)
    user_step = 1.0 if request.step_sizes is None else float(request.step_sizes[c])
    n_iter = tune + request.draws
    chain = _Chain(
        index=c,
        rng=rng,
        state=ChainState(q, grad, logp, user_step, metric),
        da=dual_averaging_start(user_step, user_step, tune),
        adapt=request.warmup.estimator(dim, tune),
        traj=allocate_trajectory(dim, request.max_treedepth),
        scratch=np.empty((5, dim)),  # a phase-space point and a row for the step-size heuristic
        draws=draws,
        stats=stats,
        divergences=np.empty((n_iter, 2, dim)),
        divergence_iters=np.empty(n_iter, dtype=np.int64),
        divergence_count=np.zeros(1, dtype=np.int64),
        init_point=q.copy(),
        run=ChunkedRun(n_iter),
    )
    if tune > 0 or request.step_sizes is None:
        # Stan's heuristic, by the chain loop in a call of no iteration (``run_chain``); a warmup
        # too short to correct its step size gets the cautious one, half the largest that passed
        heuristic = CAUTIOUS_HEURISTIC if tune < SHORT_WARMUP else STAN_HEURISTIC
        status = _run_chain(model, request, chain, 0, 0, heuristic)
        _raise_for_status(status, c, "finding the initial step size")
        chain.da = dual_averaging_start(user_step, chain.state.step_size, tune)
    return chain


def _run_chain(
    model: Model, request: _Request, chain: _Chain, start: int, stop: int,
    heuristic: int = NO_HEURISTIC,
) -> int:
    """``run_chain`` for iterations ``[start, stop)`` of ``chain``, nothing recorded (the calls
    that log events compile to nothing); updates ``chain``'s state, dual averaging and estimator,
    and returns the status (``nutslite.engine.adaptation.status``)."""
    schedule = request.schedule
    logp, step_size, chain.da, status = run_chain(
        model.logp_grad_function, chain.rng, chain.state, chain.da, chain.adapt, request.nuts,
        (schedule.collect, schedule.update, schedule.restart, schedule.retune,
         schedule.max_depth),
        start, stop, chain.traj, None, chain.scratch, chain.draws, chain.stats,
        chain.divergences, chain.divergence_iters, chain.divergence_count, heuristic,
    )
    chain.state = chain.state._replace(logp=logp, step_size=step_size)
    return status


def _run_chains(
    model: Model, request: _Request, chain_list: list[_Chain], reporter: Reporter
) -> bool:
    """Run every chain to its end on ``request.cores`` threads, showing progress; returns whether
    Ctrl-C interrupted the run. Raises ``SamplingError`` when a chain failed in warmup."""

    def advance(c: int, start: int, stop: int) -> bool:
        chain = chain_list[c]
        chain.status = _run_chain(model, request, chain, start, stop)
        return chain.status == WARMUP_OK

    n_iter, tune = request.tune + request.draws, request.tune
    if needs_compiling(run_chain):
        # compiled here, by a call that runs no iteration: compiled in a chain's worker thread,
        # the same compile faults in about 20k more fresh pages (benchmarks/README.md, round 7)
        with gc_frozen():
            advance(0, 0, 0)
    reporter.begin()  # the progress clock starts with the chains, after any compile

    def snapshot(kept: int = n_iter) -> list[ChainProgress]:
        """Every chain's progress, with the divergences among its first ``kept`` iterations."""
        progress = []
        for ch in chain_list:
            iters = ch.divergence_iters[: ch.divergence_count[0]]
            progress.append(ChainProgress(
                ch.index, ch.run.done, n_iter, tune, int(np.count_nonzero(iters < kept)),
                float(ch.state.step_size), ch.run.seconds,
                warmup_divergences=int(np.count_nonzero(iters < min(tune, kept))),
                running=ch.run.running,
            ))
        return progress

    scheduler = ChainScheduler(
        [ch.run for ch in chain_list], advance, min(request.cores, request.chains)
    )
    interrupted = scheduler.run(lambda: reporter.update(snapshot()))
    # From here on the draws are finished: a Ctrl-C must not lose them. An interrupted run keeps
    # the iterations every chain completed, so the final progress counts divergences among those.
    try:
        reporter.close(snapshot(min(ch.run.done for ch in chain_list)), interrupted)
    except KeyboardInterrupt:
        pass  # the progress display is cut short; the draws are not
    scheduler.raise_errors()  # an error from a chain thread
    for ch in chain_list:
        _raise_for_status(ch.status, ch.index, "warmup")
    return interrupted


def _despite_interrupts(build: Callable[[], SamplingResult]) -> SamplingResult:
    """``build()``, run again from the start if Ctrl-C interrupts it: it only copies finished
    draws into a result, which takes a moment, and a Ctrl-C must never throw them away."""
    while True:
        try:
            return build()
        except KeyboardInterrupt:
            continue


def _warn_problems_at_caller(
    result: SamplingResult, background: DiagnosticsCompile | None
) -> None:
    """``warn_problems(result)``, its warnings attributed to the line that called ``sample``,
    once ``background`` (if any) has compiled the diagnostics.

    A Ctrl-C during the checks stops them, and ``sample`` still returns the finished draws, with
    a warning saying that the checks did not run to the end.
    """
    try:
        if background is not None:
            background.wait()  # compiled there, or its failure leaves the compile to this call
        warn_problems(result, stacklevel=4)  # warn_problems < this < sample < the caller
    except KeyboardInterrupt:
        warnings.warn(
            "Ctrl-C stopped the diagnostic checks after sampling had finished; the draws are "
            "complete. Check them with nutslite.diagnostics.warn_problems(result)",
            SamplingWarning, stacklevel=3,
        )


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


def _float_array(name: str, value: object, what: str) -> np.ndarray:
    """``value`` as a new float64 array; a ``TypeError`` saying that ``name`` must be ``what``."""
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be {what}: {err}") from err


def _per_chain(
    name: str, value: object, chains: int, dim: int, positive: bool = False
) -> np.ndarray | None:
    """Broadcast a ``(dim,)`` or ``(chains, dim)`` array to ``(chains, dim)``, validated."""
    if value is None:
        return None
    arr = _float_array(name, value, "an array of numbers")
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


def _step_sizes(step_size: object, chains: int) -> np.ndarray | None:
    if step_size is None:
        return None
    arr = _float_array("step_size", step_size, "a number or an array of numbers")
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
    """Raise the ``SamplingError`` for a warmup status (``nutslite.engine.adaptation.status``)."""
    if status == WARMUP_OK:
        return
    if status == STEP_SIZE_IMPROPER:
        raise SamplingError(
            f"chain {chain}: the step size grew past 1e7 while {stage}; the posterior looks "
            "improper (check the model)"
        )
    if status == METRIC_OVERFLOW:
        raise SamplingError(f"chain {chain}: numerical overflow in the mass-matrix adaptation")
    raise SamplingError(
        f"chain {chain}: no acceptably small step size could be found while {stage}; "
        "is the log density continuous?"
    )
