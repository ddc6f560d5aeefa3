r"""Diagnostic plots of sampler output, on matplotlib alone.

Every function takes a ``SamplingResult`` from ``nl.sample`` (or any object with ``.posterior``
and ``.sample_stats``; a bare posterior mapping ``name -> (chains, draws, *shape)`` works where no
sample statistic is needed) and returns the matplotlib ``Figure`` it drew on. Variables are
addressed by name (``"sigma_b"``, or ``"b"`` for all its elements) or by element (``"b[75]"``,
``"x[1,2]"``, 0-based, as in ``nl.summary``).

* :func:`plot_trace`: draws against iteration per chain, with marginal histograms and the
  divergent transitions marked (the traces of Wiecki 2017).
* :func:`plot_pair`: one scalar against another with the draws of divergent transitions
  highlighted, the funnel of Wiecki (2017) and Betancourt and Girolami (2013).
* :func:`plot_energy`: the marginal energy distribution against the energy transition
  distribution, with E-BFMI (Betancourt 2016).
* :func:`plot_rank`: rank histograms per chain (Vehtari et al. 2021).

References
----------
Betancourt, M. (2016). Diagnosing suboptimal cotangent disintegrations in Hamiltonian Monte
Carlo. arXiv:1604.00695.

Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte Carlo. arXiv:1701.02434,
section 6.1.

Betancourt, M. and Girolami, M. (2013). Hamiltonian Monte Carlo for hierarchical models.
arXiv:1312.0906.

Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021).
Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
MCMC. Bayesian Analysis 16(2), 667-718.

Wiecki, T. (2017). Why hierarchical models are awesome, tricky, and Bayesian. Blog post,
https://twiecki.github.io (reposted by ODSC, May 2017).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory
from scipy.stats import rankdata

from nutslite.diagnostics import ebfmi

__all__ = ["plot_energy", "plot_pair", "plot_rank", "plot_trace"]

DIVERGENT_COLOR = "red"
MAX_TRACED_ELEMENTS = 10  # longer vectors: plot_trace draws a forest of intervals instead
MAX_LEGEND_COLUMNS = 8  # more chains wrap to a second legend row
MAX_FOREST_BARS = 200  # longer vectors: bands per chain instead of bars side by side
_ELEMENT = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<index>\s*\d+\s*(?:,\s*\d+\s*)*)\]$")


# ---------------------------------------------------------------------------
# Addressing draws
# ---------------------------------------------------------------------------


def _posterior(source: Any) -> Mapping[str, np.ndarray]:
    posterior = getattr(source, "posterior", source)
    if not isinstance(posterior, Mapping):
        raise TypeError(
            "expected a SamplingResult (or an object with .posterior) or a mapping "
            f"name -> (chains, draws, ...) array, got {type(source).__name__}"
        )
    return posterior


def _draws(source: Any, var: str) -> tuple[list[str], np.ndarray]:
    """Labels and draws ``(chains, draws, k)`` of a variable (all ``k`` elements) or element."""
    posterior = _posterior(source)
    match = _ELEMENT.match(var)
    name = match["name"] if match else var
    if name not in posterior:
        raise KeyError(f"no variable {name!r} in the posterior; have {list(posterior)}")
    arr = np.asarray(posterior[name], dtype=float)
    if arr.ndim < 2:
        raise ValueError(f"{name!r} must have shape (chains, draws, ...), got {arr.shape}")
    shape = arr.shape[2:]
    if match:
        index = tuple(int(i) for i in match["index"].split(","))
        if len(index) != len(shape) or any(
            not 0 <= i < n for i, n in zip(index, shape, strict=True)
        ):
            raise IndexError(f"{var!r} is not an element of {name!r}, whose shape is {shape}")
        return [var], arr[(slice(None), slice(None)) + index][..., np.newaxis]
    if shape == ():
        return [name], arr[..., np.newaxis]
    labels = [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]
    return labels, arr.reshape(arr.shape[:2] + (-1,))


def _scalar(source: Any, var: str, what: str) -> np.ndarray:
    """Draws ``(chains, draws)`` of a scalar variable or element."""
    labels, arr = _draws(source, var)
    if len(labels) != 1:
        raise ValueError(
            f"{what} needs a scalar; {var!r} has {len(labels)} elements (name one, like "
            f"{labels[0]!r})"
        )
    return arr[..., 0]


def _diverging(source: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """The ``(chains, draws)`` divergence flags of ``source``, or None without sample stats."""
    stats = getattr(source, "sample_stats", None) or {}
    if "diverging" not in stats:
        return None
    flags = np.asarray(stats["diverging"], dtype=bool)
    if flags.shape != shape:
        raise ValueError(f"sample_stats['diverging'] has shape {flags.shape}, draws have {shape}")
    return flags


def _chain_list(chains: int | Sequence[int] | None, n_chains: int) -> list[int]:
    selected = list(range(n_chains)) if chains is None else np.atleast_1d(chains).tolist()
    bad = [c for c in selected if not 0 <= c < n_chains]
    if bad or not selected:
        raise ValueError(f"chains must be indices in 0..{n_chains - 1}, got {chains!r}")
    return selected


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


# ---------------------------------------------------------------------------
# Trace
# ---------------------------------------------------------------------------


def plot_trace(
    source: Any,
    var_names: str | Sequence[str],
    *,
    chains: int | Sequence[int] | None = None,
    density: bool = True,
    divergences: bool = True,
    axes: np.ndarray | None = None,
    figsize: tuple[float, float] | None = None,
    max_traced: int = MAX_TRACED_ELEMENTS,
) -> Figure:
    """Trace plots: each variable's draws against iteration, one colour per chain.

    One row per entry of ``var_names``: a histogram of the draws of each chain (left, when
    ``density``) and the draws against iteration (right). A vector variable (``"b"``) of up to
    ``MAX_TRACED_ELEMENTS`` elements draws all of them; with a single chain they are coloured by
    element, as in Wiecki (2017), and otherwise by chain. A longer one (more than ``max_traced``
elements, by default ``MAX_TRACED_ELEMENTS``), whose traces would be an
    unreadable tangle, is drawn as a forest instead: each element's median and central 90%
    interval per chain against its index, with a note in the histogram's place (name single
    elements, ``"b[3]"``, to trace them). With ``divergences``, the iterations of divergent
    transitions are marked by red ticks along the bottom of the trace.

    A trace that wanders into a region and stays there for hundreds of draws (``sigma_b`` near
    zero in the centered radon model) is the sampler failing to explore that region: the
    draws there are correlated, and the chain under-represents it on average.

    Parameters
    ----------
    source
        A ``SamplingResult`` or a posterior mapping.
    var_names
        One name or element, or several (one row each).
    chains
        A chain index or indices to draw (default: all).
    density
        Add the column of per-chain histograms.
    divergences
        Mark divergent transitions (needs ``source.sample_stats["diverging"]``).
    axes
        Existing axes, shape ``(len(var_names), 2)`` with ``density`` or ``(len(var_names),)``
        without.
    figsize
        Size of a new figure (default: 10 wide, 2.4 per row).
    max_traced
        Vectors with more elements are drawn as a forest of intervals; raise it to trace them
        all (Wiecki's figure of one chain's 85 slopes collapsing together).
    """
    names = [var_names] if isinstance(var_names, str) else list(var_names)
    if not names:
        raise ValueError("var_names is empty")
    n_cols = 2 if density else 1
    if axes is None:
        fig, axes = plt.subplots(
            len(names),
            n_cols,
            figsize=figsize or (10.0, 2.4 * len(names) + 0.4),
            squeeze=False,
            layout="constrained",
            width_ratios=[1, 2.5] if density else None,
        )
    else:
        axes = np.asarray(axes, dtype=object).reshape(len(names), n_cols)
        fig = axes[0, 0].figure
    for row, var in enumerate(names):
        labels, arr = _draws(source, var)
        selected = _chain_list(chains, arr.shape[0])
        if len(labels) > max_traced:
            _forest_row(axes[row], var, labels, arr, selected)
        else:
            _trace_row(source, axes[row], var, labels, arr, selected, density, divergences)
    return fig


def _trace_row(
    source: Any, row_axes: np.ndarray, var: str, labels: list[str], arr: np.ndarray,
    selected: list[int], density: bool, divergences: bool,
) -> None:
    """One row of ``plot_trace``: histograms (``row_axes[0]`` with ``density``) and traces."""
    by_element = len(selected) == 1 and len(labels) > 1
    many = len(labels) > 1
    trace_ax = row_axes[-1]
    for c in selected:
        chain_draws = arr[c]
        if by_element:
            trace_ax.plot(chain_draws, lw=0.6, alpha=0.5)
        else:
            for k in range(len(labels)):  # one legend entry per chain, not per element
                trace_ax.plot(
                    chain_draws[:, k],
                    color=f"C{c % 10}",
                    lw=0.4 if many else 0.6,
                    alpha=0.3 if many else 0.7,
                    label=f"chain {c}" if len(selected) > 1 and k == 0 else None,
                )
        if density:
            for k in range(len(labels)):
                row_axes[0].hist(
                    chain_draws[:, k],
                    bins=40,
                    density=True,
                    histtype="step",
                    color=f"C{(k if by_element else c) % 10}",
                    alpha=0.5 if many else 0.9,
                    lw=0.8,
                )
    if divergences:
        flags = _diverging(source, arr.shape[:2])
        if flags is not None:
            _mark_divergent_iterations(trace_ax, flags[selected])
    trace_ax.set(xlabel="draw", ylabel=var, xlim=(0, arr.shape[1]))
    chain_text = f"chain {selected[0]}" if len(selected) == 1 else f"{len(selected)} chains"
    what = f"{len(labels)} elements" if many else "trace"
    trace_ax.set_title(f"{var}: {what} ({chain_text})", fontsize="medium", loc="left")
    if density:
        row_axes[0].set(xlabel=var, ylabel="density")
        row_axes[0].set_title(f"{var}: per chain", fontsize="medium", loc="left")
    _legend_above(trace_ax)


def _legend_above(ax: Axes) -> None:
    """The chains' legend above ``ax``, right of its title, so that no draw is hidden."""
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return
    legend = ax.legend(
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncols=min(len(handles), MAX_LEGEND_COLUMNS),
        fontsize="small",
        frameon=False,
        borderaxespad=0.1,
        handlelength=1.5,
        columnspacing=1.0,
    )
    for handle in legend.legend_handles:  # faint lines in the plot, clear ones in the legend
        handle.set_alpha(1.0)


def _forest_row(
    row_axes: np.ndarray, var: str, labels: list[str], arr: np.ndarray, selected: list[int]
) -> None:
    """A vector too long to trace element by element: each element's median and central 90%
    interval per chain, side by side, against the element's index. Chains that disagree on an
    element (a non-mixing chain) show as intervals that do not overlap."""
    n = len(labels)
    ax = row_axes[-1]
    side_by_side = n <= MAX_FOREST_BARS  # else bands: bars a pixel apart would hide each other
    for j, c in enumerate(selected):
        low, mid, high = np.percentile(arr[c], [5.0, 50.0, 95.0], axis=0)
        color = f"C{c % 10}"
        label = f"chain {c}" if len(selected) > 1 else None
        if side_by_side:
            x = np.arange(n) + 0.8 * ((j + 0.5) / len(selected) - 0.5)
            ax.vlines(x, low, high, color=color, lw=0.8, alpha=0.8, label=label)
            ax.plot(x, mid, linestyle="none", marker=".", markersize=2.5, color=color)
        else:
            ax.fill_between(np.arange(n), low, high, color=color, alpha=0.15, lw=0)
            ax.plot(np.arange(n), mid, color=color, lw=0.6, label=label)
    ax.set(xlabel=f"element of {var} (index)", ylabel=var, xlim=(-1, n))
    ax.set_title(f"{var}: {n} elements, 90% intervals", fontsize="medium", loc="left")
    _legend_above(ax)
    if len(row_axes) > 1:  # the histogram's place holds a note instead
        note = row_axes[0]
        note.set_axis_off()
        note.text(
            0.0, 0.5,
            f"{var} has {n} elements, too many\nto trace one by one. Right: each\n"
            f"element's median and 5% to 95%\n"
            + ("interval, chain by chain" if side_by_side else "band, one colour per chain")
            + f".\nTrace single elements by name,\ne.g. {labels[0]!r}.",
            transform=note.transAxes, va="center", ha="left", fontsize="small",
        )


def _mark_divergent_iterations(ax: Axes, flags: np.ndarray) -> None:
    """Red ticks at the bottom of a trace axis at the iterations where any chain diverged."""
    iterations = np.flatnonzero(flags.any(axis=0))
    if iterations.size == 0:
        return
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(
        iterations,
        np.zeros(iterations.size),
        linestyle="none",
        marker="|",
        markersize=10,
        color=DIVERGENT_COLOR,
        transform=transform,
        clip_on=False,
        label=f"divergent ({int(flags.sum())})",
    )


# ---------------------------------------------------------------------------
# Pair
# ---------------------------------------------------------------------------


def plot_pair(
    source: Any,
    x: str,
    y: str,
    *,
    divergences: bool = True,
    ax: Axes | None = None,
    marginals: bool | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 6.0),
) -> Figure:
    """Scatter of the draws of scalar ``y`` against scalar ``x``, divergent draws in red.

    All chains are pooled. With ``divergences``, the draws of divergent transitions (where
    ``sample_stats["diverging"]`` is true) are drawn on top in red: in a funnel they pile up at
    its neck, which is where the step size is too large for the curvature (Betancourt and
    Girolami 2013). ``marginals`` adds histograms of both variables on the sides, as the
    ``jointplot`` of Wiecki (2017); they are drawn only within ``xlim`` and ``ylim``.

    Parameters
    ----------
    source
        A ``SamplingResult`` or a posterior mapping.
    x, y
        Scalar variables or elements, e.g. ``"b[75]"`` and ``"sigma_b"``.
    divergences
        Highlight the draws of divergent transitions.
    ax
        Draw the scatter on this axis (then without marginals).
    marginals
        Marginal histograms; default True when the function makes its own figure. Needs
        ``ax=None``.
    xlim, ylim
        Axis limits, for example ``ylim=(0, 0.7)`` as in the post.
    xlabel, ylabel, title
        Override the default labels (the variable names) and add a title.
    figsize
        Size of a new figure.
    """
    if marginals is None:
        marginals = ax is None
    if marginals and ax is not None:
        raise ValueError("marginals need a figure of their own; pass ax=None or marginals=False")
    xs = _scalar(source, x, "plot_pair")
    ys = _scalar(source, y, "plot_pair")
    if xs.shape != ys.shape:
        raise ValueError(f"{x!r} and {y!r} have different shapes {xs.shape} and {ys.shape}")
    flags = _diverging(source, xs.shape) if divergences else None

    if marginals:
        fig = plt.figure(figsize=figsize, layout="constrained")
        grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4))
        ax = fig.add_subplot(grid[1, 0])
        top = fig.add_subplot(grid[0, 0], sharex=ax)
        side = fig.add_subplot(grid[1, 1], sharey=ax)
    else:
        fig, ax = _new_axes(ax, figsize)

    ok = np.ones(xs.shape, dtype=bool) if flags is None else ~flags
    ax.scatter(
        xs[ok], ys[ok], s=4, alpha=0.25, color="C0", linewidths=0, rasterized=True, label="draws"
    )
    if flags is not None and flags.any():
        ax.scatter(
            xs[flags],
            ys[flags],
            s=12,
            color=DIVERGENT_COLOR,
            alpha=0.8,
            linewidths=0,
            label=f"divergent ({int(flags.sum())})",
        )
        ax.legend(loc="upper right", fontsize="small", markerscale=2)
    ax.set(xlabel=xlabel or x, ylabel=ylabel or y)
    if xlim is not None:
        ax.set_xlim(xlim)
    if ylim is not None:
        ax.set_ylim(ylim)
    if marginals:
        top.hist(xs.ravel(), bins=60, range=xlim, color="C0", alpha=0.6)
        side.hist(ys.ravel(), bins=60, range=ylim, color="C0", alpha=0.6, orientation="horizontal")
        top.tick_params(labelbottom=False)
        side.tick_params(labelleft=False)
        top.set_ylabel("count")
        side.set_xlabel("count")
        if title:
            fig.suptitle(title)
    elif title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------
# Energy
# ---------------------------------------------------------------------------


def plot_energy(
    source: Any,
    *,
    ax: Axes | None = None,
    bins: int = 60,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 4.0),
) -> Figure:
    r"""Marginal energy against energy transitions, with E-BFMI per chain (Betancourt 2016).

    Each NUTS transition resamples the momentum, which moves the Hamiltonian ``E`` from one
    level set to another; the trajectory then explores within a level set. Two histograms,
    chains pooled, each centred on its mean:

    * the marginal energy distribution ``pi_E``: ``E_n - mean(E)``;
    * the energy transition distribution ``pi_DeltaE``: ``E_n - E_{n-1}`` within each chain.

    When ``pi_DeltaE`` is much narrower than ``pi_E``, momentum resampling cannot move the chain
    across the energy levels it must visit, which happens in heavy tails and funnels (Betancourt
    2017, sec. 6.1). The empirical E-BFMI (:func:`nutslite.diagnostics.ebfmi`),

    ``E-BFMI = sum_n (E_n - E_{n-1})^2 / sum_n (E_n - mean(E))^2``,

    compares their variances; values below 0.3 signal the problem (Betancourt 2016). Needs
    ``source.sample_stats["energy"]``.
    """
    stats = getattr(source, "sample_stats", None) or {}
    if "energy" not in stats:
        raise KeyError("plot_energy needs sample_stats['energy'] (a SamplingResult)")
    energy = np.atleast_2d(np.asarray(stats["energy"], dtype=float))
    marginal = (energy - energy.mean()).ravel()
    transition = np.diff(energy, axis=-1).ravel()
    transition = transition - transition.mean()
    fig, ax = _new_axes(ax, figsize)
    low = min(marginal.min(), transition.min())
    high = max(marginal.max(), transition.max())
    edges = np.linspace(low, high, bins + 1)
    ax.hist(
        marginal, bins=edges, density=True, alpha=0.5, color="C0", label=r"marginal energy $\pi_E$"
    )
    ax.hist(
        transition,
        bins=edges,
        density=True,
        alpha=0.5,
        color="C1",
        label=r"energy transition $\pi_{\Delta E}$",
    )
    values = ebfmi(energy)
    text = "E-BFMI per chain:\n" + ", ".join(f"{v:.2f}" for v in values)
    ax.text(
        0.02,
        0.97,
        text,
        transform=ax.transAxes,
        va="top",
        ha="left",
        fontsize="small",
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"},
    )
    ax.set(xlabel="energy minus its mean", ylabel="density")
    ax.set_yticks([])
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------
# Rank
# ---------------------------------------------------------------------------


def plot_rank(
    source: Any,
    var: str,
    *,
    bins: int = 20,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 4.0),
) -> Figure:
    """Rank plot of a scalar: a histogram of its ranks per chain (Vehtari et al. 2021).

    All draws are ranked together (average ranks for ties); each chain's ranks are binned into
    ``bins`` equal intervals and drawn as a bar chart, chains stacked vertically. If every chain
    samples the same distribution, each chain's ranks are uniform, so its bars scatter around
    the dashed line ``draws / bins``. A chain whose bars slope or pile up in some bins is
    sampling a different region from the others (for example stuck at small ``sigma_b``).
    """
    draws = _scalar(source, var, "plot_rank")
    n_chains, n_draws = draws.shape
    ranks = rankdata(draws.ravel()).reshape(draws.shape)
    edges = np.linspace(0.5, draws.size + 0.5, bins + 1)
    expected = n_draws / bins
    counts = np.stack([np.histogram(ranks[c], bins=edges)[0] for c in range(n_chains)])
    gap = 1.15 * counts.max()
    fig, ax = _new_axes(ax, figsize)
    for c in range(n_chains):
        base = c * gap
        ax.bar(
            edges[:-1],
            counts[c],
            width=np.diff(edges),
            bottom=base,
            align="edge",
            color=f"C{c % 10}",
            alpha=0.8,
            edgecolor="white",
            linewidth=0.5,
        )
        ax.axhline(base + expected, color="black", linestyle="--", lw=0.8)
    ax.set_yticks(
        [c * gap + expected / 2 for c in range(n_chains)], [f"chain {c}" for c in range(n_chains)]
    )
    ax.tick_params(axis="y", length=0)
    ax.set(xlabel=f"rank of {var} among all {draws.size} draws", xlim=(edges[0], edges[-1]))
    ax.set_title(title or f"{var}: ranks per chain (dashed: uniform)", fontsize="medium")
    return fig
