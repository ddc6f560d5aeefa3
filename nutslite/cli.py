"""The ``nutslite`` command: sample a model by name or from a PyMC model file, summarise a saved
run, plot it.

::

    nutslite sample radon --parameterization noncentered --seed 1 --out run.npz
    nutslite sample my_model.py --var hierarchical_model --out run.npz
    nutslite summary run.npz
    nutslite plot run.npz --kind pair --vars mu_a sigma_a --out pair.png
    nutslite models

Exit status: 0 on success, 1 when sampling fails (``SamplingError``), 2 for bad input (the
message names the problem, and ``--out`` naming an existing file without ``--force`` is one), 130
when Ctrl-C stopped sampling or the checks after it. ``sample --out`` writes the draws (atomically:
a temporary file, then a rename) before it checks them for problems, so a Ctrl-C at any point
after the chains have started keeps every draw they completed.
"""

from __future__ import annotations

import argparse
import atexit
import difflib
import gc
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "nutslite"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
PLOT_KINDS = ("trace", "pair", "energy", "rank")
MAX_ROWS_PER_VARIABLE = 10  # longer vectors are left out of the table unless asked for
_collection_paused = False  # run() paused the cyclic garbage collector: see _resume_collection

EXAMPLES = """\
examples:
  nutslite sample radon --parameterization noncentered --seed 1 --out run.npz
  nutslite sample eight_schools_centered --target-accept 0.95 --out eight.npz
  nutslite sample my_model.py --var hierarchical_model --out run.npz
  nutslite summary run.npz --vars sigma_a sigma_b
  nutslite plot run.npz --kind pair --vars mu_a sigma_a --out pair.png
"""


class UsageError(Exception):
    """Bad input from the command line: printed as ``nutslite: error: ...``, exit status 2."""


def _int_type(minimum: int):
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            kind = "a positive" if minimum == 1 else "a non-negative"
            raise argparse.ArgumentTypeError(f"must be {kind} integer, got {text!r}")
        return value

    return convert


def _open_unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1, got {text!r}")
    return value


def _model_names() -> list[str]:
    from nutslite.models import ZOO

    return ["radon", *ZOO]


def build_model(
    name: str,
    parameterization: str | None = None,
    likelihood: str | None = None,
    variable: str | None = None,
):
    """The model called ``name``: ``radon`` (with its parameterization and likelihood), a key
    of ``nutslite.models.ZOO``, or a Python file (``FILE.py``) whose global ``variable`` (default
    ``model``) is a PyMC model, compiled by ``nl.from_pymc`` (see ``nutslite.model_file``). An
    unknown name raises ``UsageError`` listing the valid ones."""
    from nutslite.model_file import looks_like_file
    from nutslite.models import ZOO, radon

    builtin = name == "radon" or name in ZOO
    if not builtin and looks_like_file(name):
        return _model_from_file(name, parameterization, likelihood, variable)
    if not builtin:
        names = _model_names()
        close = [f"{name}.py"] if Path(f"{name}.py").is_file() else []
        close = close or difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown model {name!r}{hint}; choose one of: {', '.join(names)}; or "
                         "give a Python file (FILE.py) that defines a PyMC model")
    if variable is not None:
        raise UsageError(f"--var applies only to a model file (FILE.py), not to {name!r}")
    if name == "radon":
        return radon(parameterization or "noncentered", likelihood or "sufficient")
    for option, value in (("--parameterization", parameterization), ("--likelihood", likelihood)):
        if value is not None:
            raise UsageError(f"{option} applies only to the radon model, not to {name!r}")
    return ZOO[name]()


def _model_from_file(
    path: str, parameterization: str | None, likelihood: str | None, variable: str | None
):
    """The PyMC model ``variable`` of the file ``path``, as an ``nl.Model`` named after the file
    (``stem``, or ``stem:variable`` for another variable than ``model``)."""
    from nutslite.model_file import DEFAULT_VARIABLE, ModelFileError, load_pymc_model

    for option, value in (("--parameterization", parameterization), ("--likelihood", likelihood)):
        if value is not None:
            raise UsageError(f"{option} applies only to the radon model, not to {path!r}")
    variable = variable or DEFAULT_VARIABLE
    try:
        pymc_model = load_pymc_model(path, variable)
    except ModelFileError as err:
        raise UsageError(str(err)) from err
    print(f"{PROG}: compiling the PyMC model {variable!r} of {path} with PyTensor's Numba "
          "backend", file=sys.stderr)
    from nutslite.pymc import from_pymc

    name = Path(path).stem
    return from_pymc(pymc_model, name if variable == DEFAULT_VARIABLE else f"{name}:{variable}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Sample a model with the No-U-Turn Sampler (Stan's algorithm; warmup adapts\n"
        "the metric as nutpie does by default, as Stan does with --adaptation stan),\n"
        "then summarise and plot the saved run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from nutslite import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, title="commands"
    )

    run = commands.add_parser(
        "sample", help="sample a model by name or a PyMC model file, then print its summary",
        description="Sample a model with NUTS: one of nutslite's models by name, or a PyMC model "
        "defined in a Python file. Shows progress while sampling, then the summary table and any "
        "warnings. Ctrl-C stops every chain and still saves the draws completed so far (marked "
        "as interrupted). A model file is run as `python FILE.py` would run it (its folder "
        "importable, the working directory unchanged), except that its __name__ is not "
        "'__main__', so an `if __name__ == \"__main__\":` block is skipped; its global "
        "variable `model` (or --var NAME) must be a pymc.Model, which nl.from_pymc compiles with "
        "PyTensor's Numba backend.",
    )
    run.add_argument("model",
                     help="radon, a model listed by `nutslite models`, or a Python file "
                     "(FILE.py) that defines a PyMC model")
    # option declarations below (and the sbc command's) are alike in shape only: argparse's
    # declarative form, one call per option, deliberately not generated from a table
    group = run.add_argument_group("model options")
    group.add_argument("--var", metavar="NAME",
                       help="model file only: the variable that holds the pymc.Model "
                       "(default: model)")
    group.add_argument("--parameterization", choices=("centered", "noncentered"),
                       help="radon only (default: noncentered)")
    group.add_argument("--likelihood", choices=("sufficient", "pointwise"),
                       help="radon only: sufficient statistics (default, fastest) or one term "
                       "per home")
    group = run.add_argument_group("sampler options")
    group.add_argument("--draws", type=_int_type(1), default=1000, metavar="N",
                       help="draws kept per chain (default: 1000)")
    group.add_argument("--tune", type=_int_type(0), default=1000, metavar="N",
                       help="warmup iterations per chain (default: 1000)")
    group.add_argument("--chains", type=_int_type(1), default=4, metavar="N",
                       help="number of chains (default: 4)")
    group.add_argument("--seed", type=_int_type(0), default=None, metavar="N",
                       help="random seed (default: fresh entropy, printed at the end)")
    group.add_argument("--cores", type=_int_type(1), default=None, metavar="N",
                       help="chains run at once (default: all CPUs)")
    group.add_argument("--target-accept", type=_open_unit_interval, default=0.8, metavar="P",
                       help="target mean acceptance statistic, in (0, 1) (default: 0.8)")
    group.add_argument("--max-treedepth", type=_int_type(1), default=10, metavar="N",
                       help="maximum trajectory doublings (default: 10)")
    group.add_argument("--adaptation", default="grad",
                       choices=("grad", "stan", "dense", "low_rank"),
                       help="how warmup learns the metric: grad (nutpie's, the default), stan "
                            "(Stan's windows), dense, low_rank")
    group = run.add_argument_group("output options")
    group.add_argument("--out", metavar="PATH",
                       help="save the run to this .npz file (default: not saved); an existing "
                       "file is refused unless --force")
    group.add_argument("--force", action="store_true",
                       help="let --out replace an existing file")
    group.add_argument("--save-warmup", action="store_true",
                       help="keep the warmup draws in the file too")
    group.add_argument("--no-progress", action="store_true", help="do not show progress")
    _add_table_options(group)
    run.set_defaults(handler=_cmd_sample)

    show = commands.add_parser(
        "summary", help="print the summary table and warnings of a saved run",
        description="Print the summary table (mean, sd, HDI, MCSE, ESS, R-hat) and the warnings "
        "of a run saved with `nutslite sample --out` or res.save().",
    )
    show.add_argument("path", help="a .npz file written by nutslite")
    _add_table_options(show)
    show.set_defaults(handler=_cmd_summary)

    plot = commands.add_parser(
        "plot", help="draw a diagnostic plot of a saved run",
        description="Draw a trace, pair, energy or rank plot of a saved run to an image file.",
    )
    plot.add_argument("path", help="a .npz file written by nutslite")
    plot.add_argument("--kind", choices=PLOT_KINDS, default="trace",
                      help="what to draw (default: trace)")
    plot.add_argument(
        "--vars", nargs="+", metavar="NAME",
        help="trace: variables or elements such as b[3] (default: those with at most "
        f"{MAX_ROWS_PER_VARIABLE} elements); pair: X Y; rank: one scalar; energy: none",
    )
    plot.add_argument("--out", metavar="PATH",
                      help="image file, any format matplotlib writes (default: RUN_KIND.png)")
    plot.set_defaults(handler=_cmd_plot)

    models = commands.add_parser(
        "models", help="list the models available by name",
        description="List the models that `nutslite sample` accepts by name.",
    )
    models.set_defaults(handler=_cmd_models)
    _add_sbc_parser(commands)
    return parser


def _add_table_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--vars", nargs="+", metavar="NAME", help="variables to show in the table (default: "
        f"all, leaving out vectors longer than {MAX_ROWS_PER_VARIABLE})",
    )
    parser.add_argument("--all", action="store_true", help="show every element of every variable")


def _cmd_sample(args: argparse.Namespace) -> int:
    started = time.perf_counter()  # before numba's import: the header says what the user waited
    import nutslite as nl
    from nutslite.io import check_output_path

    if args.out is not None:  # before sampling, so that a long run never ends unsaved
        out = check_output_path(args.out)
        if out.exists() and not args.force:
            raise UsageError(
                f"{str(out)!r} already exists; choose another --out, or pass --force to "
                "replace it"
            )
    from nutslite._precompile import start_diagnostics_compile
    from nutslite.diagnostics import MIN_DRAWS

    # after installing nutslite, the diagnostics behind the table compile in a second process,
    # started before the model is built: building it compiles its log density (a PyMC model's
    # through PyTensor), and the child's compile is the longest wait of a first run
    background = start_diagnostics_compile() if args.draws >= MIN_DRAWS else None
    model = build_model(args.model, args.parameterization, args.likelihood, args.var)
    if args.out is not None:
        _check_saveable(model)
    _resume_collection()
    cores = args.cores or os.cpu_count() or 1
    print(
        f"{PROG}: sampling {model.name} ({model.dim} parameters): {args.chains} chains x "
        f"({args.tune} tune + {args.draws} draws), {min(cores, args.chains)} at a time",
        file=sys.stderr,
    )
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown with the summary
            warnings.simplefilter("always")
            # the checks come after saving (below): a Ctrl-C during them keeps the draws
            res = nl.sample(
                model, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                cores=args.cores, target_accept=args.target_accept,
                max_treedepth=args.max_treedepth, adaptation=args.adaptation,
                save_warmup=args.save_warmup, progress=not args.no_progress, warn=False,
            )
    except KeyboardInterrupt:  # nl.sample returns the draws of any Ctrl-C once chains run
        print(f"{PROG}: interrupted before sampling started; nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except nl.SamplingError as err:
        print(f"{PROG}: sampling failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    # the file is written in a second thread while this one computes the table and the checks:
    # on a long run each takes seconds (benchmarks/README.md, "Ctrl-C on a long run")
    check = res.n_draws >= MIN_DRAWS
    findings = None  # stays None when a Ctrl-C stops the table or the checks
    saving = _BackgroundSave(res, args.out) if args.out is not None else None
    try:  # the table first, then the checks, which reuse its R-hat and ESS
        if check:
            _compile_notice()
        if check and background is not None:
            background.wait()  # compiled there, or its failure leaves the compile to _summarise
        findings = _summarise(res, args.vars, args.all, check)
    except KeyboardInterrupt:
        pass
    finally:  # after an error in the table too (a bad --vars name): the file is finished first
        failed, saved = _finish_save(saving, args.out)
    if failed == EXIT_INTERRUPTED:
        return EXIT_INTERRUPTED
    if findings is None:
        print(f"{PROG}: interrupted while checking the draws{saved}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_report(res, *findings, sampling_warnings=[str(w.message) for w in caught],
                  started=started)
    if args.seed is None:
        print(f"{PROG}: seed {res.settings['seed']} (pass --seed to repeat this run)",
              file=sys.stderr)
    if failed is not None:  # the file could not be written: the table is shown all the same
        return failed
    return EXIT_INTERRUPTED if res.interrupted else 0


class _BackgroundSave:
    """``res.save(path)`` in a daemon thread, started at once. A Ctrl-C reaches only the main
    thread: while it waits here (:meth:`wait`), a Ctrl-C stops the writing, and nothing is
    written (the save is atomic, ``nutslite.io.save_fields``)."""

    def __init__(self, res: Any, path: str) -> None:
        self._stop = threading.Event()
        self._outcome: list[Any] = []  # the path written, or the exception raised
        self._thread = threading.Thread(target=self._save, args=(res, path), daemon=True)
        self._thread.start()

    def _save(self, res: Any, path: str) -> None:
        try:
            self._outcome.append(res.save(path, stop=self._stop))
        except BaseException as err:  # handed to the main thread by wait()
            self._outcome.append(err)

    def wait(self) -> Path:
        """The path written, once it is; re-raises the save's error, and ``KeyboardInterrupt``
        when a Ctrl-C stopped the writing (then or meanwhile)."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.1)  # a timeout, so that a Ctrl-C is seen at once
        except KeyboardInterrupt:
            self._stop.set()
            self._thread.join()
        if isinstance(self._outcome[0], BaseException):
            raise self._outcome[0]
        return self._outcome[0]


def _finish_save(saving: _BackgroundSave | None, out: str | None) -> tuple[int | None, str]:
    """Wait for ``saving`` (if any) and say how it ended. Returns the exit status it calls for
    (``None`` when the file was written, or there was none to write) and the end of the message
    of a later interruption (``"; the draws are saved in PATH"``, or ``""``). A Ctrl-C stops the
    writing (``EXIT_INTERRUPTED``); a file that cannot be written (a full disk, say) is named
    with the system's reason (``EXIT_FAILED``), and nothing is left at ``out``."""
    if saving is None:
        return None, ""
    try:
        path = saving.wait()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted while saving; {out} not written", file=sys.stderr)
        return EXIT_INTERRUPTED, ""
    except OSError as err:
        print(f"{PROG}: error: could not write {out}: {err}", file=sys.stderr)
        return EXIT_FAILED, ""
    print(f"{PROG}: saved to {path}", file=sys.stderr)
    return None, f"; the draws are saved in {path}"


def _check_saveable(model: Any) -> None:
    """Refuse, before sampling, a model whose names, labels or data ``--out`` could not save
    (a PyMC model's coordinate labels may be dates, say), rather than lose the draws after."""
    from nutslite.io import _encode

    fields = {"model_name": model.name, "coords": model.coords, "dims": model.dims,
              "dim_labels": model.dim_labels, "observed_data": model.observed_data,
              "constant_data": model.constant_data}
    try:
        for name, value in fields.items():
            _encode(value, name, {})
    except (TypeError, ValueError) as err:
        raise UsageError(
            f"--out could not save a run of {model.name} ({err}), so nothing was sampled; "
            "sample without --out, or use strings, numbers or dates as coordinate labels"
        ) from err


def _compile_notice() -> None:
    """Say so when the diagnostics behind the table and the checks must be compiled first."""
    from nutslite._diagnostic_kernels import _statistics_kernel
    from nutslite._numba import cache_dir, needs_compiling

    if needs_compiling(_statistics_kernel):
        print(f"{PROG}: compiling the diagnostics, once after installing or upgrading nutslite "
              f"(several seconds); later runs load them from {cache_dir()}", file=sys.stderr)


def _cmd_summary(args: argparse.Namespace) -> int:
    res = _load(args.path)
    _print_report(res, *_summarise(res, args.vars, args.all, check=True))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    from nutslite.io import check_output_path

    out = Path(args.out or f"{Path(args.path).stem}_{args.kind}.png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix.lstrip(".").lower() not in formats:
        raise UsageError(
            f"cannot tell the image format of {str(out)!r}; end it in one of "
            f"{', '.join('.' + ext for ext in sorted(formats))}"
        )
    check_output_path(out)
    names = args.vars or []
    wanted = {"pair": 2, "rank": 1, "energy": 0}.get(args.kind)
    if wanted is not None and len(names) != wanted:
        needs = {0: "takes no --vars", 1: "needs one --vars NAME", 2: "needs --vars X Y"}
        raise UsageError(f"--kind {args.kind} {needs[wanted]}, got {len(names)}")
    res = _load(args.path)
    if res.n_draws == 0:
        raise UsageError(f"{args.path} holds no post-warmup draws to plot")
    from nutslite import plots

    try:
        if args.kind == "trace":
            figure = plots.plot_trace(res, names or _short_variables(res)[0])
        elif args.kind == "pair":
            figure = plots.plot_pair(res, *names)
        elif args.kind == "rank":
            figure = plots.plot_rank(res, names[0])
        else:
            figure = plots.plot_energy(res)
    except (KeyError, IndexError) as err:  # an unknown variable or element
        raise _usage_error(err) from err
    figure.savefig(out)
    plt.close(figure)
    print(f"{PROG}: wrote {out}", file=sys.stderr)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    print("radon  (--parameterization centered|noncentered, --likelihood sufficient|pointwise)")
    for name in _model_names()[1:]:
        print(name)
    return 0


SBC_ALPHA = 1e-3  # overall false-alarm rate of the uniformity tests (Bonferroni over parameters)
# the keys of nutslite.testing.sbc.SBC_MODELS, written out so that building the parser (and
# `nutslite --help`) imports no numerics; a test checks that the two agree
SBC_MODELS = (
    "hierarchical_normal",
    "eight_schools_noncentered",
    "eight_schools_centered",
    "radon_sbc_noncentered",
    "radon_sbc_centered",
)


def _add_sbc_parser(commands: Any) -> None:
    sbc = commands.add_parser(
        "sbc", help="simulation-based calibration of NUTS on a model, in-process or on Dask",
        description="Simulation-based calibration (Talts et al. 2018): draw parameters and data "
        "from the model's prior, sample the posterior, rank the true value among the draws; "
        "repeat. Prints progress as replications finish, appends each to the output file as it "
        "arrives (a rerun with the same file skips those), and ends with rank histograms and a "
        "chi-square uniformity test per parameter. Exit status 1 when a test fails at level "
        f"{SBC_ALPHA:g} / (number of parameters).",
    )
    sbc.add_argument("model", choices=SBC_MODELS, metavar="MODEL",
                     help=f"a model with a data-generating process: {', '.join(SBC_MODELS)}")
    sbc.add_argument("--replications", type=_int_type(1), default=200, metavar="N",
                     help="replications (default: 200)")
    sbc.add_argument("--draws", type=_int_type(2), default=400, metavar="N",
                     help="draws per replication before thinning (default: 400)")
    sbc.add_argument("--tune", type=_int_type(0), default=1000, metavar="N",
                     help="warmup iterations per replication (default: 1000)")
    sbc.add_argument("--target-accept", type=_open_unit_interval, default=0.8, metavar="P",
                     help="target mean acceptance statistic (default: 0.8)")
    sbc.add_argument("--bins", type=_int_type(2), default=10, metavar="B",
                     help="rank histogram bins (default: 10)")
    sbc.add_argument("--seed", type=_int_type(0), default=0, metavar="N",
                     help="seed of every replication's SeedSequence (default: 0)")
    where = sbc.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster of this scheduler (tcp://host:8786)")
    where.add_argument("--workers", type=_int_type(1), metavar="K",
                       help="start a local Dask cluster of K worker processes")
    sbc.add_argument("--batch", type=_int_type(1), default=1, metavar="K",
                     help="replications per task (default: 1); on a cluster, batches of short "
                     "replications spread the cost of each task")
    sbc.add_argument("--threads", type=_int_type(1), default=None, metavar="K",
                     help="without Dask: replications run at once in threads (default: CPUs)")
    sbc.add_argument("--out", metavar="PATH",
                     help="results, one JSON line per replication (default: sbc_MODEL.jsonl)")
    sbc.add_argument("--plot", metavar="PATH",
                     help="rank histogram image (default: the --out path with .png)")
    sbc.add_argument("--no-progress", action="store_true", help="do not show progress")
    sbc.set_defaults(handler=_cmd_sbc)


def _read_sbc_file(path: Path, header: dict[str, Any]) -> list[Any]:
    """The replications already in ``path`` (none when it does not exist), after checking that
    its first line is ``header``. A last line cut short by an interruption is removed from the
    file, so that new records start on a line of their own."""
    import json

    import numpy as np

    from nutslite.testing.sbc import Replication

    if not path.exists() or path.stat().st_size == 0:
        return []
    text = path.read_text()
    if not text.endswith("\n"):  # a record cut short while being written: drop it
        text = text[: text.rfind("\n") + 1]
        path.write_text(text)
    lines = text.splitlines()
    if not lines:
        return []
    try:
        found = json.loads(lines[0])
    except json.JSONDecodeError as err:
        raise UsageError(f"{path} is not an SBC results file; choose another --out") from err
    if found != header:
        changed = sorted(k for k in header.keys() | found.keys() if found.get(k) != header.get(k))
        raise UsageError(
            f"{path} holds a run with other settings ({', '.join(changed)} differ); resume with "
            "the same settings or choose another --out"
        )
    done = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path}, line {number}: not a JSON record") from None
        done.append(Replication(record["index"], np.array(record["u"]), record["thinned"],
                                record["seconds"]))
    return done


class _SBCProgress:
    """``k/N replications, rate, time left`` on stderr: rewritten in place on a terminal, a line
    every 5% otherwise."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        import time

        self.total, self.done, self.enabled = total, done, enabled
        self.start_done, self.start = done, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.step = max(1, total // 20)

    def update(self) -> None:
        import time

        self.done += 1
        if not self.enabled or not (self.tty or self.done % self.step == 0
                                    or self.done == self.total):
            return
        elapsed = time.perf_counter() - self.start
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else math.inf
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        line = (f"sbc: {self.done}/{self.total} replications, {rate:.1f}/s, "
                f"{left:.0f} s left")
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr,
              flush=True)
        if self.tty and self.done == self.total:
            print(file=sys.stderr)


def _cmd_sbc(args: argparse.Namespace) -> int:
    import contextlib
    import json
    from concurrent.futures import ThreadPoolExecutor

    from nutslite.distributed import cluster
    from nutslite.testing.sbc import NutsSampler, sbc, simulated_model

    simulated = simulated_model(args.model)
    out = Path(args.out or f"sbc_{args.model}.jsonl")
    plot_path = args.plot or str(out.with_suffix(".png"))
    for path in (out, Path(plot_path)):
        if not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: folder {path.parent} does not exist")
    header = {"model": args.model, "seed": args.seed, "draws": args.draws, "tune": args.tune,
              "target_accept": args.target_accept, "coords": simulated.coords}
    done = _read_sbc_file(out, header)
    done = [rep for rep in done if rep.index < args.replications]
    if done:
        print(f"resuming {out}: {len(done)} of {args.replications} replications already done",
              file=sys.stderr)
    elif not out.exists() or out.stat().st_size == 0:
        out.write_text(json.dumps(header) + "\n")
    _resume_collection()
    progress = _SBCProgress(args.replications, len(done), not args.no_progress)
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(open(out, "a"))
        executor = stack.enter_context(cluster(args.scheduler, args.workers))
        if executor is not None:
            print(f"dask: {len(executor.scheduler_info()['workers'])} workers at "
                  f"{executor.scheduler.address}", file=sys.stderr)
        elif args.threads is not None:
            executor = stack.enter_context(ThreadPoolExecutor(args.threads))

        def record(rep: Any) -> None:
            sink.write(json.dumps({"index": rep.index, "u": rep.u.tolist(),
                                   "thinned": rep.thinned, "seconds": rep.seconds}) + "\n")
            sink.flush()
            progress.update()

        result = sbc(NutsSampler(args.tune, {"target_accept": args.target_accept}), simulated,
                     replications=args.replications, n_draws=args.draws, bins=args.bins,
                     seed=args.seed, executor=executor, done=done, on_result=record,
                     batch=args.batch)
    drawn = result.plot(plot_path)
    return _report_sbc(result, out, plot_path, drawn)


def _report_sbc(result: Any, out: Path, plot_path: str, drawn: Sequence[str]) -> int:
    """Print the uniformity tests (all when at most 20 parameters, else the 10 smallest
    p-values) and return the exit status: 1 when a test fails at the Bonferroni level."""
    import numpy as np

    n, dim = result.u.shape
    level = SBC_ALPHA / dim
    bins = result.counts.shape[1]
    print(f"{n} replications, median {np.median(result.thinned):.0f} draws kept after thinning, "
          f"median {np.median(result.seconds):.3g} s per replication")
    print(f"rank uniformity, chi-square with {bins - 1} degrees of freedom per parameter "
          f"(fails below p = {SBC_ALPHA:g} / {dim} = {level:.2g}):")
    order = np.argsort(result.pvalues, kind="stable")
    shown = order if dim <= 20 else order[:10]
    width = max(len(result.coords[j]) for j in shown)
    for j in shown:
        mark = "FAIL" if result.pvalues[j] < level else "ok  "
        print(f"  {mark} {result.coords[j]:{width}s}  chi2 {result.chi2[j]:7.2f}  "
              f"p {result.pvalues[j]:.3g}")
    if len(shown) < dim:
        print(f"  ... {dim - len(shown)} more parameters, all with larger p-values")
    failed = int(np.sum(result.pvalues < level))
    print(f"{failed} of {dim} parameters fail; results in {out}; rank histograms of "
          f"{len(drawn)} parameters (smallest p first) in {plot_path}")
    return EXIT_FAILED if failed else 0


def _short_variables(res: Any) -> tuple[list[str], list[str]]:
    """Names of the variables with at most ``MAX_ROWS_PER_VARIABLE`` elements, and the others
    as ``"a (85)"``: the default selection of tables and trace plots."""
    sizes = {name: math.prod(value.shape[2:]) for name, value in res.posterior.items()}
    short = [name for name, size in sizes.items() if size <= MAX_ROWS_PER_VARIABLE]
    long = [f"{name} ({size})" for name, size in sizes.items() if size > MAX_ROWS_PER_VARIABLE]
    return short, long


def _usage_error(err: LookupError) -> UsageError:
    """A ``KeyError`` or ``IndexError`` naming a variable, as a usage error with its message
    (``str(KeyError)`` would quote it)."""
    return UsageError(str(err.args[0]) if err.args else str(err))


def _load(path: str) -> Any:
    from nutslite.result import load

    try:
        return load(path)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err


def _summarise(
    res: Any, var_names: Sequence[str] | None, show_all: bool, check: bool
) -> tuple[Any, list[str], list[str]]:
    """What a run's report shows (:func:`_print_report`), computed: the summary table (``None``
    without draws), the variables left out of it, and the messages of the summary's warnings
    and, with ``check``, of ``warn_problems``, which takes the R-hat and ESS of the scalars
    shown from the table."""
    from nutslite.diagnostics import warn_problems
    from nutslite.summary import summary

    table = None
    hidden: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if res.n_draws:
            if var_names is None and not show_all:
                var_names, hidden = _short_variables(res)
            try:
                table = summary(res, var_names=var_names)
            except KeyError as err:  # an unknown variable
                raise _usage_error(err) from err
            if check:
                warn_problems(res, summary=table)
    return table, hidden, [str(w.message) for w in caught]


def _print_report(
    res: Any,
    table: Any,
    hidden: list[str],
    messages: list[str],
    sampling_warnings: Sequence[str] = (),
    started: float | None = None,
) -> None:
    """Header, summary table (stdout) and warnings (stderr) of a result, from
    :func:`_summarise`'s ``table``, ``hidden`` and ``messages``, after ``sampling_warnings``
    (caught from ``nl.sample``). ``started``: when the command started
    (``time.perf_counter()``); the header then shows the seconds since (imports, compile or
    cache load, sampling, saving, table and checks) beside the chains' own time."""
    settings = res.settings
    timing = f"chains {settings['wall_seconds']:.2f} s"
    if started is not None:
        timing = f"{time.perf_counter() - started:.2f} s since the command started ({timing})"
    print(
        f"{res.model_name}: {res.n_chains} chains x {res.n_draws} draws after {settings['tune']} "
        f"tune, seed {settings['seed']}; {timing}"
    )
    if res.interrupted:
        counts = ", ".join(str(int(n)) for n in res.iterations_completed)
        print(
            f"INTERRUPTED: iterations completed per chain: {counts} (of "
            f"{settings['tune'] + settings['draws']}); kept the {res.n_draws} draws every chain "
            "completed"
        )
    if table is None:
        print("no post-warmup draws to summarise")
    else:
        print(table)
    if hidden:
        print(f"not shown: {', '.join(hidden)}; show them with --all or --vars NAME ...")
    _print_warnings([*sampling_warnings, *messages])


def _print_warnings(messages: Sequence[str]) -> None:
    sys.stdout.flush()  # the table first, then its warnings, also when both go to one terminal
    for message in dict.fromkeys(messages):
        print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nutslite`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit
    status. Bad input prints ``nutslite: error: ...`` and returns 2, never a traceback."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except SystemExit as exit_:  # argparse: --help, --version, or a usage error (printed)
        return exit_.code if isinstance(exit_.code, int) else EXIT_FAILED
    except (UsageError, ValueError, TypeError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C outside sampling (sampling itself returns its draws)
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `nutslite summary run.npz | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_FAILED


def _resume_collection() -> None:
    """Turn the cyclic garbage collector back on, for work from here on, if :func:`run` paused
    it; the objects that exist now are moved out of its reach (``gc.freeze``).

    A full collection walks every object the collector tracks. Importing Numba and SciPy and
    setting up Numba's compilation target create about 120,000 of them, all kept until the
    process ends, and cross the threshold for a full collection twice: 0.12-0.18 s of the README's
    main command on a warm cache (2 cores, AMD EPYC). The command owns its process, so it pauses
    the collector while it imports and builds the model, then freezes what that made and resumes
    collecting before the long part (sampling, SBC); later collections only walk later objects.
    Commands that do a bounded amount of work (``summary``, ``plot``, ``models``) run with the
    collector paused; reference counting still frees everything that is not in a cycle. In a
    process that calls :func:`main` itself (a test, a notebook) nothing changes."""
    global _collection_paused
    if _collection_paused:
        gc.freeze()
        gc.enable()
        _collection_paused = False


def run() -> None:
    """The ``nutslite`` command (``python -m nutslite`` and the installed script): :func:`main`,
    then a quick exit.

    Once the command has finished, its files are closed, and the exit handlers (``atexit``) have
    run and the output is flushed, what is left of a normal exit is the interpreter freeing its
    objects one by one, memory the operating system takes back anyway. In a process that has
    loaded Numba's compiled code that took 0.3-0.4 s, a quarter of the README's main command
    on a warm cache, so the command ends with ``os._exit`` instead. If another thread is still
    running (a thread that is not a daemon, which a normal exit would wait for), it exits
    normally."""
    global _collection_paused
    gc.disable()  # until the imports are done: see _resume_collection
    _collection_paused = True
    code = main()
    others = [
        t for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon
    ]
    if others:
        raise SystemExit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader has gone, or the stream is closed
            pass
    os._exit(code)
