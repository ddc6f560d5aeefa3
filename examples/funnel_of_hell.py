"""The funnel of hell, reproduced: Wiecki (2017) retold from nutslite's own draws.

T. Wiecki, "Why hierarchical models are awesome, tricky, and Bayesian" (2017) samples the radon
regression of 919 Minnesota homes in 85 counties twice: centered (``b[c] ~ Normal(mu_b,
sigma_b)``), where the sampler gets stuck at small ``sigma_b`` and yet R-hat says 1.0008, and
non-centered (``b[c] = mu_b + sigma_b b_offset[c]``), which escapes the funnel. Then it warns that
the mode is a poor summary of such a posterior. This script runs both models as the post does
(4 chains, 5000 draws after 1000 tuning steps), redraws its figures, and adds what the post could
not show: where the divergent transitions sit, rank-normalized R-hat, bulk and tail ESS, energy
plots with E-BFMI, rank plots, and the MAP against the posterior mean.

Usage::

    python examples/funnel_of_hell.py            # the post's run; figures in a temporary folder
    python examples/funnel_of_hell.py --quick    # 4 x 1000 draws, a few seconds
    python examples/funnel_of_hell.py --scan 10  # also R-hat & co. over 10 seeds

Figures and the printed report (``funnel_of_hell.txt``) go to ``--out``, by default a folder in
the system's temporary directory, so that a run never rewrites the copies kept in the repository
(``examples/output``); ``--out examples/output`` refreshes those.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import nutslite as nl  # noqa: E402
from nutslite import diagnostics, plots  # noqa: E402
from nutslite.optimize import OptimizationWarning, find_map  # noqa: E402

DPI = 100
SLOPE = "b[75]"  # the post's "randomly chosen" slope
HYPER = ("sigma_a", "sigma_b", "eps", "mu_a", "mu_b")
MODELS = ("centered", "noncentered")
LABEL = {"centered": "centered", "noncentered": "non-centered"}


class Report:
    """Print lines and keep them for the text file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def save(self, path: Path) -> None:
        path.write_text("\n".join(self.lines) + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 x 1000 draws after 1000 tune")
    parser.add_argument("--draws", type=int, default=None, help="draws per chain (default 5000)")
    parser.add_argument("--tune", type=int, default=1000, help="warmup iterations per chain")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=123, help="the post's np.random.seed(123)")
    parser.add_argument("--chain", type=int, default=None,
                        help="chain of the single-chain traces (default: the centered chain with "
                        "the most divergences, where the funnel shows)")
    parser.add_argument("--scan", type=int, default=0, help="also summarize this many seeds")
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "nutslite_funnel_of_hell",
        help="folder for the figures and the report (default: %(default)s; the copies in the "
        "repository are refreshed with --out examples/output)",
    )
    args = parser.parse_args()
    if args.draws is None:
        args.draws = 1000 if args.quick else 5000
    return args


def sample(
    parameterization: str, args: argparse.Namespace, seed: int, warn: bool = True
) -> nl.SamplingResult:
    return nl.sample(
        nl.models.radon(parameterization),
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        seed=seed,
        progress=False,
        warn=warn,
    )


def save(fig: plt.Figure, out: Path, name: str, say: Report) -> None:
    path = out / name
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    say(f"  {name} ({path.stat().st_size / 1024:.0f} kB)")


def figures(res: dict, args: argparse.Namespace, say: Report) -> None:
    """The post's figures, in its order, plus energy and rank plots."""
    out, centered, noncentered = args.out, res["centered"], res["noncentered"]
    county = centered.dim_labels["county"][75]

    chain = args.chain
    if chain is None:
        chain = int(np.argmax(centered.sample_stats["diverging"].sum(axis=1)))
    fig = plots.plot_trace(
        centered, ["sigma_b", "b"], chains=chain, density=False, figsize=(10, 5.5),
        max_traced=85,  # every slope's trace, to show them collapse together
    )
    fig.suptitle(
        f"Centered model, chain {chain}: sigma_b drifts to small values and stays; "
        "the 85 slopes b collapse together meanwhile"
    )
    save(fig, out, "01_centered_trace_single_chain.png", say)

    fig = plots.plot_pair(
        centered,
        SLOPE,
        "sigma_b",
        ylim=(0, 0.7),
        xlabel=f"slope {SLOPE} ({county})",
        ylabel="slope group sd sigma_b",
        title="Centered: the funnel of hell (divergent draws in red)",
    )
    save(fig, out, "02_centered_joint_b75_sigma_b.png", say)

    fig = plots.plot_trace(noncentered, "sigma_b", figsize=(10, 3))
    fig.suptitle("Non-centered model: sigma_b mixes well in every chain")
    save(fig, out, "03_noncentered_trace_sigma_b.png", say)

    fig, axs = plt.subplots(1, 2, sharex=True, sharey=True, figsize=(11, 5), layout="constrained")
    for ax, name in zip(axs, MODELS, strict=True):
        n_div = int(res[name].sample_stats["diverging"].sum())
        plots.plot_pair(
            res[name],
            SLOPE,
            "sigma_b",
            ax=ax,
            xlabel=f"slope {SLOPE}",
            ylabel="slope group sd sigma_b",
            title=f"{LABEL[name]}: {n_div} divergences",
        )
    axs[1].set_ylabel("")
    fig.suptitle(
        "The same posterior, two parameterizations: only the non-centered one reaches "
        "into the neck of the funnel"
    )
    save(fig, out, "04_joint_centered_vs_noncentered.png", say)

    offset = noncentered.posterior["b_offset"][..., 75].ravel()
    corr = np.corrcoef(offset, noncentered.posterior["sigma_b"].ravel())[0, 1]
    fig = plots.plot_pair(
        noncentered,
        "b_offset[75]",
        "sigma_b",
        xlabel="b_offset[75]",
        ylabel="slope group sd sigma_b",
        title=f"Non-centered: b_offset[75] and sigma_b nearly independent\n(corr {corr:.3f})",
    )
    save(fig, out, "05_noncentered_joint_b_offset75_sigma_b.png", say)

    fig, axs = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax, name in zip(axs, MODELS, strict=True):
        plots.plot_energy(res[name], ax=ax, title=LABEL[name])
    fig.suptitle(
        "Energy: a narrow transition distribution (centered) cannot cross the energy "
        "levels the funnel needs"
    )
    save(fig, out, "06_energy.png", say)

    fig, axs = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax, name in zip(axs, MODELS, strict=True):
        plots.plot_rank(res[name], "sigma_b", ax=ax, title=f"{LABEL[name]}: ranks of sigma_b")
    fig.suptitle("Rank plots: non-uniform ranks mean the chains saw different parts of sigma_b")
    save(fig, out, "07_rank_sigma_b.png", say)


def diagnostics_rows(res: nl.SamplingResult) -> dict[str, str]:
    sigma_b = res.posterior["sigma_b"]
    diverging = res.sample_stats["diverging"]
    n_div = int(diverging.sum())
    return {
        "R-hat sigma_b, classic split (BDA3)": f"{diagnostics.split_rhat(sigma_b):.4f}",
        "R-hat sigma_b, rank-normalized": f"{diagnostics.rhat(sigma_b):.4f}",
        "bulk ESS sigma_b": f"{diagnostics.ess_bulk(sigma_b):.0f}",
        "tail ESS sigma_b": f"{diagnostics.ess_tail(sigma_b):.0f}",
        "divergences after warmup": f"{n_div} ({n_div / diverging.size:.1%})",
        "E-BFMI per chain": " ".join(
            f"{v:.2f}" for v in diagnostics.ebfmi(res.sample_stats["energy"])
        ),
        "posterior mean sigma_b": f"{sigma_b.mean():.3f}",
        "sampling wall time": f"{res.settings['wall_seconds']:.1f} s",
    }


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = [str.ljust] + [str.rjust] * (len(header) - 1)
    lines = [
        "  ".join(f(cell, w) for f, cell, w in zip(fmt, row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def report_diagnostics(res: dict, say: Report) -> None:
    rows = {name: diagnostics_rows(res[name]) for name in MODELS}
    say("Convergence of sigma_b (the post quotes PyMC3's Gelman-Rubin R-hat = 1.0008, centered)")
    for line in table(
        ["", *(LABEL[m] for m in MODELS)],
        [[key, *(rows[m][key] for m in MODELS)] for key in rows["centered"]],
    ):
        say("  " + line)
    say()

    centered = res["centered"]
    diverging = centered.sample_stats["diverging"]
    if diverging.any():
        located = diagnostics.divergence_locations(
            centered.unconstrained, diverging, names=centered.coords
        )
        listed = ", ".join(f"{name} {score:.1f}" for name, score in located[:4])
        sigma_b = centered.posterior["sigma_b"]
        say("Where the centered model diverges (unconstrained coordinates ranked by how many sd")
        say(f"the divergent draws sit from the others): {listed}")
        say(
            f"  median sigma_b of divergent draws {np.median(sigma_b[diverging]):.3f}, of the "
            f"others {np.median(sigma_b[~diverging]):.3f}: the divergences mark the funnel's neck"
        )
        say()

    for name in MODELS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", diagnostics.SamplingWarning)
            diagnostics.warn_problems(res[name])
        say(f"nutslite.diagnostics.warn_problems, {LABEL[name]}: {len(caught)} warning(s)")
        for w in caught:
            say(f"  {w.category.__name__}: {w.message}")
    say()


def report_modes(res: dict, say: Report) -> None:
    say("Expectation against mode: find_map (L-BFGS, 4 seeded starts, jacobian=False) against")
    say("the posterior mean. The mode depends on the parameterization; the mean does not.")
    maps, notes = {}, []
    for name in MODELS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OptimizationWarning)
            maps[name] = find_map(nl.models.radon(name), seed=0)
        status = "converged" if maps[name].converged else "NOT converged (no mode exists)"
        notes.append(f"  {LABEL[name]}: {status}; max |gradient| {maps[name].max_gradient:.3g}")
        notes += [f"    {w.category.__name__}: {w.message}" for w in caught]
    header = ["", "centered MAP", "centered mean", "non-centered MAP", "non-centered mean"]
    rows = [
        [var]
        + [
            f"{x:.3g}"
            for name in MODELS
            for x in (float(maps[name][var]), float(res[name].posterior[var].mean()))
        ]
        for var in HYPER
    ]
    for line in table(header, rows):
        say("  " + line)
    for note in notes:
        say(note)
    say()


def seed_scan(args: argparse.Namespace, say: Report) -> None:
    say(f"Over {args.scan} seeds ({args.chains} x {args.draws} draws, {args.tune} tune): R-hat and")
    say("bulk ESS of sigma_b, divergences, smallest E-BFMI; C centered, NC non-centered")
    rows = []
    for seed in range(1, args.scan + 1):
        row = [str(seed)]
        for name in MODELS:
            # the table below reports what the warnings would; checking all 345 scalars of
            # every run for them took much of the scan's time
            res = sample(name, args, seed, warn=False)
            sigma_b = res.posterior["sigma_b"]
            row += [
                f"{diagnostics.split_rhat(sigma_b):.4f}",
                f"{diagnostics.rhat(sigma_b):.4f}",
                f"{diagnostics.ess_bulk(sigma_b):.0f}",
                str(int(res.sample_stats["diverging"].sum())),
                f"{diagnostics.ebfmi(res.sample_stats['energy']).min():.2f}",
            ]
        rows.append(row)
    cols = ["split R", "rank R", "ESS", "div", "E-BFMI"]
    header = ["seed", *(f"{'C' if m == 'centered' else 'NC'} {c}" for m in MODELS for c in cols)]
    for line in table(header, rows):
        say("  " + line)
    say()


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    say = Report()
    say(
        f"nutslite {nl.__version__}: radon, {args.chains} chains x {args.draws} draws after "
        f"{args.tune} tune, seed {args.seed}"
    )
    res = {}
    for name in MODELS:
        start = time.perf_counter()
        res[name] = sample(name, args, args.seed)
        say(
            f"  {LABEL[name]}: {res[name]!r} in {time.perf_counter() - start:.1f} s "
            "(compilation included)"
        )
    say()
    report_diagnostics(res, say)
    report_modes(res, say)
    if args.scan:
        seed_scan(args, say)
    say("Figures:")
    figures(res, args, say)
    say.save(args.out / "funnel_of_hell.txt")
    print(f"(report and figures written to {args.out})")


if __name__ == "__main__":
    main()
