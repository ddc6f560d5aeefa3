"""The result of ``nl.sample``: draws, sample statistics, the adapted warmup state, divergences.

:class:`ChainOutput` is what one chain hands over when it stops; :meth:`SamplingResult.from_chains`
assembles the run from them. :meth:`SamplingResult.save` and :func:`load` store a result in the
plain ``.npz`` format of :mod:`nutslite.io`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nutslite import io
from nutslite._memory import empty_views
from nutslite._version import __version__
from nutslite.engine.metric import DIAGONAL, LOW_RANK, Metric, as_matrix
from nutslite.engine.stats import N_STEPS, SAMPLE_STATS


@dataclass(frozen=True)
class ChainOutput:
    """One chain's work when it stops (finished or interrupted); its draws are in the buffer
    that :meth:`SamplingResult.from_chains` receives beside it.

    ``stats`` ``(n_iter, len(SAMPLE_STATS))`` holds every iteration, warmup first, of which the
    first ``completed`` were run. ``step_size`` and ``metric`` are
    the adapted ones; ``init_point`` is where the chain started. ``divergence_iters`` ``(n,)``
    and ``divergence_points`` ``(n, 2, dim)`` give each divergent transition's iteration, start and
    the point where the energy error first exceeded the threshold. ``seconds``: compiled time.
    """

    index: int
    stats: np.ndarray
    completed: int
    step_size: float
    metric: Metric
    init_point: np.ndarray
    divergence_iters: np.ndarray
    divergence_points: np.ndarray
    seconds: float


def _low_rank_parts(chains: Sequence[ChainOutput]) -> dict[str, np.ndarray]:
    """The factors of low-rank metrics, ``M^{-1} = D (I + U (Lambda - I) U^T) D``."""
    metrics = [ch.metric for ch in chains]
    if metrics[0].kind != LOW_RANK:
        return {}
    return {
        "low_rank_diag": np.stack([m.diag for m in metrics]),
        "low_rank_basis": np.stack([m.basis for m in metrics]),
        "low_rank_eigvals": np.stack([m.eigvals for m in metrics]),
    }


@dataclass(eq=False)  # identity: comparing arrays field by field has no single truth value
class SamplingResult:
    """Draws of one run.

    Attributes
    ----------
    posterior : dict[str, ndarray]
        Constrained values, ``(chains, draws, *shape)``, deterministics included. The model's
        ``constrain`` may return them as views of one block (``nl.models.radon`` and the
        identity do, ``nutslite._memory.empty_views``): each variable is C-contiguous and
        overlaps no other, so writing one never changes another, and pickling or saving one
        stores its own values only; the block is freed when the last of them is.
    unconstrained : ndarray
        ``(chains, draws, dim)``, in the order of ``coords``; from ``nl.sample`` a view of the
        sampler's buffer, which also holds the warmup draws.
    sample_stats : dict[str, ndarray]
        ``(chains, draws)`` each, with ArviZ names: ``lp, acceptance_rate, step_size,
        tree_depth, n_steps, diverging, energy, energy_error, reached_max_treedepth`` and
        ``index_in_trajectory`` (position of the selected state along its trajectory).
    warmup : dict
        ``step_size`` ``(chains,)`` and ``inv_mass_matrix`` after warmup, ``(chains, dim)``
        (diagonal) or ``(chains, dim, dim)`` (``"dense"``, and ``"low_rank"``, whose parts are
        also kept as ``low_rank_diag``, ``low_rank_basis`` and ``low_rank_eigvals``) (pass
        them to ``nl.sample`` to warm-start), ``windows`` (the slow windows), ``init`` (the initial
        points), ``gradient_evaluations`` (each chain's leapfrog steps in warmup, ``(chains,)``,
        kept whether or not ``save_warmup``) and ``tune``.
    divergences : dict[str, ndarray]
        One entry per divergent transition (warmup included, see ``warmup``): ``chain``,
        ``iteration`` (0-based, warmup first), ``draw`` (``iteration - tune``, negative in
        warmup), ``warmup`` (bool), ``start`` ``(n, dim)`` where the transition started, and
        ``point`` ``(n, dim)`` where the energy error first exceeded the threshold.
    observed_data, constant_data : dict[str, ndarray] or None
        The model's observed values and other data (``nl.from_pymc`` models), for ``to_arviz``.
    warmup_posterior, warmup_unconstrained, warmup_sample_stats
        The same for the warmup iterations when ``save_warmup=True``, else ``None``.
    interrupted : bool
        True when Ctrl-C stopped the run; the arrays then hold the draws every chain completed
        (the shortest chain's count) and ``iterations_completed`` gives each chain's count.
    settings : dict
        The arguments of the run (seed included) and where the call's time went, in seconds:
        ``setup_seconds`` (validation, initial points and step sizes, buffers),
        ``wall_seconds`` (the chains, warmup included), ``assemble_seconds`` (building this
        result) and, when ``nl.sample`` checked the draws, ``check_seconds`` (the diagnostics
        behind its warnings).
    model_name, coords, dims, dim_labels
        The model's name, its unconstrained coordinates, and the named dimensions and labels of
        its vector variables (for ArviZ).
    chain_seconds : ndarray
        ``(chains,)`` each chain's compiled time, warmup included.
    nutslite_version : str
        The version that produced the draws.
    """

    model_name: str
    coords: list[str]
    dims: dict[str, Any]
    dim_labels: dict[str, Any]
    posterior: dict[str, np.ndarray]
    unconstrained: np.ndarray
    sample_stats: dict[str, np.ndarray]
    warmup: dict[str, Any]
    divergences: dict[str, np.ndarray]
    interrupted: bool
    iterations_completed: np.ndarray
    settings: dict[str, Any]
    observed_data: dict[str, np.ndarray] | None = None  # absent from files of older versions
    constant_data: dict[str, np.ndarray] | None = None
    warmup_posterior: dict[str, np.ndarray] | None = None
    warmup_unconstrained: np.ndarray | None = None
    warmup_sample_stats: dict[str, np.ndarray] | None = None
    chain_seconds: np.ndarray | None = None
    nutslite_version: str = __version__

    @classmethod
    def from_chains(
        cls, model, chains: Sequence[ChainOutput], all_draws: np.ndarray, tune, draws,
        save_warmup, interrupted, schedule, settings,
    ) -> SamplingResult:
        """The result of ``chains``, whose draws are ``all_draws`` (chain ``c`` wrote
        ``all_draws[c]``): ``(chains, tune + draws, dim)``, warmup first, or ``(chains, draws,
        dim)`` when the warmup's were not kept (``save_warmup`` false).

        ``unconstrained`` and ``warmup_unconstrained`` are views of ``all_draws``, not copies, so
        the block (with the chains' statistics, which ``nl.sample`` keeps in it) stays allocated
        as long as the result. A copy of radon's 4 x 1000 x 175
        draws took 0.8 ms, and 2-4 ms in the first call of a process, whose fresh memory costs
        page faults (``benchmarks/README.md``, "The whole call")."""
        completed = np.array([ch.completed for ch in chains])
        n_keep = int(max(0, min(completed.min() - tune, draws)))
        n_warm = int(min(completed.min(), tune))

        def stats_dict(sl: slice) -> dict[str, np.ndarray]:
            """Each statistic ``(chains, len(sl))`` in its dtype, cast as ``astype`` casts, in
            views of one block (``empty_views``)."""
            n = sl.stop - sl.start
            out = empty_views((len(chains), n), {name: () for name, _ in SAMPLE_STATS},
                              dict(SAMPLE_STATS))
            for k, (name, _) in enumerate(SAMPLE_STATS):
                for c, ch in enumerate(chains):
                    np.copyto(out[name][c], ch.stats[sl, k], casting="unsafe")
            return out

        sampling = slice(tune, tune + n_keep)
        warm = slice(0, n_warm)
        stored_warmup = all_draws.shape[1] - draws  # tune, or 0 if the warmup's were not kept
        if save_warmup and stored_warmup != tune:
            raise ValueError("save_warmup needs the warmup's draws in all_draws")
        unconstrained = all_draws[:, stored_warmup : stored_warmup + n_keep]
        warm_unc = all_draws[:, warm] if save_warmup else None

        dim = model.dim
        points = np.concatenate([ch.divergence_points for ch in chains]).reshape(-1, 2, dim)
        divergences = {
            "chain": np.concatenate([np.full(len(ch.divergence_iters), ch.index, dtype=np.int64)
                                     for ch in chains]),
            "iteration": np.concatenate([ch.divergence_iters for ch in chains]).astype(np.int64),
            "start": points[:, 0],
            "point": points[:, 1],
        }
        divergences["draw"] = divergences["iteration"] - tune
        divergences["warmup"] = divergences["iteration"] < tune

        return cls(
            model_name=model.name,
            coords=list(model.coords),
            dims=dict(model.dims),
            dim_labels=dict(model.dim_labels),
            posterior=model.constrain(unconstrained),
            unconstrained=unconstrained,
            sample_stats=stats_dict(sampling),
            warmup={
                "step_size": np.array([ch.step_size for ch in chains]),
                "inv_mass_matrix": np.stack([
                    ch.metric.diag if ch.metric.kind == DIAGONAL else as_matrix(ch.metric)
                    for ch in chains
                ]),
                **_low_rank_parts(chains),
                "init": np.stack([ch.init_point for ch in chains]),
                # leapfrog steps of each chain's warmup, kept even when its draws are not
                "gradient_evaluations": np.array(
                    [int(ch.stats[:n_warm, N_STEPS].sum()) for ch in chains], dtype=np.int64
                ),
                "windows": np.array(schedule.windows, dtype=np.int64).reshape(-1, 2),
                "tune": tune,
            },
            divergences=divergences,
            observed_data=dict(model.observed_data) or None,
            constant_data=dict(model.constant_data) or None,
            warmup_posterior=model.constrain(warm_unc) if save_warmup else None,
            warmup_unconstrained=warm_unc,
            warmup_sample_stats=stats_dict(warm) if save_warmup else None,
            interrupted=interrupted,
            iterations_completed=completed,
            chain_seconds=np.array([ch.seconds for ch in chains]),
            settings=settings,
        )

    @property
    def n_chains(self) -> int:
        return self.unconstrained.shape[0]

    @property
    def n_draws(self) -> int:
        return self.unconstrained.shape[1]

    @property
    def n_gradient_evaluations(self) -> int:
        """Leapfrog steps (one gradient each) over the kept draws, plus warmup if saved."""
        total = int(self.sample_stats["n_steps"].sum())
        if self.warmup_sample_stats is not None:
            total += int(self.warmup_sample_stats["n_steps"].sum())
        return total

    def save(self, path: str | os.PathLike, stop: threading.Event | None = None) -> Path:
        """Write this result to ``path`` as a plain ``.npz`` (no pickle); read it back with
        ``nl.load(path)``. See :func:`nutslite.io.save_fields` for the format and its errors.
        ``stop``: for a save in a background thread, an event that stops the writing when set
        (``KeyboardInterrupt``; nothing is written)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return io.save_fields(fields, path, self.nutslite_version, stop)

    def to_arviz(self) -> Any:
        """An ``arviz.InferenceData`` with ``posterior`` and ``sample_stats`` (ArviZ's names),
        ``observed_data`` and ``constant_data`` when the model has them (``nl.from_pymc``), plus
        ``warmup_posterior``
        and ``warmup_sample_stats`` when warmup draws were kept.
        Vector variables get the model's named dimensions and labels (``county`` for radon).
        ArviZ is an optional dependency (``pip install arviz``)."""
        try:
            import arviz as az
        except ImportError as err:
            raise ImportError(
                "to_arviz needs ArviZ, an optional dependency: pip install arviz"
            ) from err
        observed, constant = self.observed_data, self.constant_data
        named = {*self.posterior, *(observed or {}), *(constant or {})}
        dims = {name: list(d) for name, d in self.dims.items() if name in named}
        used = {d for names in dims.values() for d in names}
        coords = {d: labels for d, labels in self.dim_labels.items() if d in used}
        warm = self.warmup_posterior is not None
        return az.from_dict(
            posterior=self.posterior,
            sample_stats=self.sample_stats,
            observed_data=observed,
            constant_data=constant,
            warmup_posterior=self.warmup_posterior if warm else None,
            warmup_sample_stats=self.warmup_sample_stats if warm else None,
            save_warmup=warm,
            coords=coords,
            dims=dims,
        )

    def __repr__(self) -> str:
        n_div = int(self.sample_stats["diverging"].sum())
        flag = ", interrupted" if self.interrupted else ""
        return (
            f"<SamplingResult {self.model_name}: {self.n_chains} chains x {self.n_draws} draws, "
            f"{n_div} divergences{flag}>"
        )


def load(path: str | os.PathLike) -> SamplingResult:
    """Read a result written by ``SamplingResult.save`` or ``nutslite sample --out``.

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` when it is not
    an ``.npz`` file written by nutslite, is damaged, or holds fields this version does not know.
    """
    fields = io.load_fields(path)
    known = {f.name for f in dataclasses.fields(SamplingResult)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"{str(path)!r} holds fields this nutslite ({__version__}) does not know: "
            f"{', '.join(unknown)}; it was written by nutslite {fields.get('nutslite_version')}"
        )
    return SamplingResult(**fields)
