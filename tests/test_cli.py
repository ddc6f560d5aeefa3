"""The ``nutslite`` command: sample, summary, plot, models, help, and an error for bad input."""

import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nutslite
from nutslite.cli import main
from nutslite.models import ZOO
from nutslite.result import load


def run(*argv: str) -> tuple[int, str, str]:
    """``main(argv)`` in this process: exit status, stdout, stderr."""
    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


SMALL = ("--draws", "100", "--tune", "100", "--chains", "2", "--seed", "1")


@pytest.fixture(scope="module")
def radon_run(tmp_path_factory) -> tuple[Path, str, str]:
    path = tmp_path_factory.mktemp("cli") / "run.npz"
    code, out, err = run("sample", "radon", *SMALL, "--out", str(path))
    assert code == 0, err
    return path, out, err


def test_sample_shows_progress_summary_and_saves(radon_run):
    path, out, err = radon_run
    assert err.startswith("nutslite: sampling radon_noncentered (175 parameters): 2 chains x "
                          "(100 tune + 100 draws)")
    assert err.count("200/200 done") == 2  # plain progress lines: stderr is not a terminal
    assert f"nutslite: saved to {path}" in err
    lines = out.splitlines()
    assert lines[0].startswith("radon_noncentered: 2 chains x 100 draws after 100 tune, seed 1")
    assert lines[1].split() == ["mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd",
                                "ess_bulk", "ess_tail", "r_hat"]
    assert [line.split()[0] for line in lines[2:7]] == ["mu_a", "sigma_a", "mu_b", "sigma_b",
                                                        "eps"]
    assert lines[7] == ("not shown: a (85), b (85), a_offset (85), b_offset (85); show them "
                        "with --all or --vars NAME ...")
    res = load(path)
    assert res.model_name == "radon_noncentered" and res.posterior["a"].shape == (2, 100, 85)
    assert res.settings["seed"] == 1 and not res.interrupted


def test_same_seed_same_draws(radon_run, tmp_path):
    path, _, _ = radon_run
    code, _, _ = run("sample", "radon", *SMALL, "--no-progress", "--out", str(tmp_path / "b.npz"))
    assert code == 0
    np.testing.assert_array_equal(load(path).unconstrained,
                                  load(tmp_path / "b.npz").unconstrained)


def test_summary_of_a_saved_run_repeats_the_table(radon_run):
    path, sampled, _ = radon_run
    code, out, _ = run("summary", str(path))
    # the same table; the header of a saved run gives the chains' time, not the command's
    assert code == 0 and out.splitlines()[1:] == sampled.splitlines()[1:]
    assert out.splitlines()[0].split(";")[0] == sampled.splitlines()[0].split(";")[0]
    code, out, _ = run("summary", str(path), "--vars", "sigma_b", "b")
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert rows == ["sigma_b"] + [f"b[{i}]" for i in range(85)]
    code, out, _ = run("summary", str(path), "--all")
    assert "a_offset[84]" in out and "not shown" not in out


def test_problems_are_warned_about_once(tmp_path):
    path = str(tmp_path / "centered.npz")
    code, _, err = run("sample", "radon", "--parameterization", "centered", *SMALL,
                       "--no-progress", "--out", path)
    assert code == 0
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert any("R-hat above 1.01" in line for line in warned)
    assert len(warned) == len(set(warned))
    code, _, err = run("summary", path)  # the saved run is checked again
    assert [line for line in err.splitlines() if line.startswith("warning: ")] == warned


def test_without_seed_the_seed_is_printed(tmp_path):
    code, out, err = run("sample", "std_normal_5", "--draws", "20", "--tune", "20",
                         "--no-progress")
    assert code == 0
    seed = int(err.split("nutslite: seed ")[1].split()[0])
    assert f"seed {seed};" in out


def test_models_lists_radon_and_the_zoo():
    code, out, _ = run("models")
    assert code == 0
    assert out.splitlines()[0].startswith("radon  (--parameterization centered|noncentered")
    assert out.splitlines()[1:] == list(ZOO)


@pytest.mark.parametrize("kind, extra", [
    ("trace", ()),
    ("trace", ("--vars", "sigma_b", "b[3]")),
    ("pair", ("--vars", "b_offset[75]", "sigma_b")),
    ("energy", ()),
    ("rank", ("--vars", "sigma_b")),
])
def test_plot_writes_an_image(radon_run, tmp_path, kind, extra):
    path, _, _ = radon_run
    out = tmp_path / f"{kind}.png"
    code, _, err = run("plot", str(path), "--kind", kind, *extra, "--out", str(out))
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_defaults_to_a_trace_named_after_the_run(radon_run, tmp_path, monkeypatch):
    path, _, _ = radon_run
    monkeypatch.chdir(tmp_path)
    code, _, err = run("plot", str(path))
    assert code == 0 and (tmp_path / "run_trace.png").exists()
    assert "nutslite: wrote run_trace.png" in err


# --- errors: exit status 2 and a message that names the problem --------------------------------

@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "radn"], "unknown model 'radn' (did you mean 'radon'?); choose one of: radon, "
                             "std_normal_5,"),
        (["sample", "radon", "--parameterization", "noncenterd"],
         "argument --parameterization: invalid choice: 'noncenterd' (choose from 'centered', "
         "'noncentered')"),
        (["sample", "radon", "--likelihood", "fast"], "invalid choice: 'fast'"),
        (["sample", "banana", "--parameterization", "centered"],
         "--parameterization applies only to the radon model, not to 'banana'"),
        (["sample", "radon", "--draws", "0"],
         "argument --draws: must be a positive integer, got '0'"),
        (["sample", "radon", "--draws", "1e3"], "argument --draws: must be a positive integer"),
        (["sample", "radon", "--chains", "-2"], "argument --chains: must be a positive integer"),
        (["sample", "radon", "--tune", "-1"],
         "argument --tune: must be a non-negative integer, got '-1'"),
        (["sample", "radon", "--cores", "x"], "argument --cores: must be a positive integer"),
        (["sample", "radon", "--seed", "-1"], "argument --seed: must be a non-negative integer"),
        (["sample", "radon", "--max-treedepth", "0"], "argument --max-treedepth: must be"),
        (["sample", "radon", "--target-accept", "1"],
         "argument --target-accept: must be a number strictly between 0 and 1, got '1'"),
        (["sample", "radon", "--target-accept", "nan"], "strictly between 0 and 1"),
        (["sample"], "the following arguments are required: model"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments(argv, message):
    code, out, err = run(*argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and out == ""


def test_bad_output_path_fails_before_sampling(tmp_path):
    code, _, err = run("sample", "radon", "--out", str(tmp_path / "missing" / "run.npz"))
    assert code == 2
    assert f"directory '{tmp_path / 'missing'}' does not exist" in err
    assert "sampling" not in err  # refused before any work
    code, _, err = run("sample", "radon", "--out", str(tmp_path))
    assert code == 2 and "is a directory; give a file name such as run.npz" in err


def test_out_never_overwrites_silently(tmp_path):
    existing = tmp_path / "run.npz"
    existing.write_text("an unrelated file")
    tiny = ("sample", "std_normal_5", "--draws", "20", "--tune", "20", "--seed", "1",
            "--no-progress", "--out", str(existing))
    code, _, err = run(*tiny)
    assert code == 2
    assert f"'{existing}' already exists; choose another --out, or pass --force" in err
    assert "sampling" not in err  # refused before any work
    assert existing.read_text() == "an unrelated file"
    code, _, err = run(*tiny, "--force")
    assert code == 0, err
    assert load(existing).n_draws == 20


def test_summary_of_a_text_file_names_the_problem(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("mean sd\n1 2\n")
    code, out, err = run("summary", str(text))
    assert code == 2 and out == ""
    assert f"nutslite: error: '{text}' is not a readable nutslite result" in err
    assert "it is not an .npz (zip) archive" in err
    assert "pickle" not in err  # numpy's advice to load it with allow_pickle is no use here


def test_help_names_the_default_warmup():
    code, out, _ = run("--help")
    assert code == 0
    assert "Stan's algorithm and warmup" not in out
    assert "nutpie does by default" in out


def test_bad_input_files(tmp_path, radon_run):
    code, _, err = run("summary", str(tmp_path / "nope.npz"))
    assert code == 2 and f"nutslite: error: no such file: '{tmp_path / 'nope.npz'}'" in err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = run("summary", str(junk))
    assert code == 2 and "is not a readable nutslite result" in err
    path, _, _ = radon_run
    code, _, err = run("summary", str(path), "--vars", "sigma", "mu_a")
    assert code == 2 and "variables not in the posterior: ['sigma']" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--kind", "pair", "--vars", "sigma_b"), "--kind pair needs --vars X Y, got 1"),
        (("--kind", "rank"), "--kind rank needs one --vars NAME, got 0"),
        (("--kind", "energy", "--vars", "mu_a"), "--kind energy takes no --vars, got 1"),
        (("--kind", "rank", "--vars", "b"), "plot_rank needs a scalar; 'b' has 85 elements"),
        (("--vars", "nope"), "no variable 'nope' in the posterior"),
        (("--vars", "b[85]"), "'b[85]' is not an element of 'b'"),
        (("--out", "fig.pgn"), "cannot tell the image format of 'fig.pgn'; end it in one of"),
        (("--kind", "violin"), "argument --kind: invalid choice: 'violin'"),
    ],
)
def test_bad_plot_requests(radon_run, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    path, _, _ = radon_run
    code, _, err = run("plot", str(path), *extra)
    assert code == 2
    assert message in err
    assert list(tmp_path.iterdir()) == []  # nothing written


# --- the installed command ---------------------------------------------------------------------

def test_python_dash_m_help_reads_well():
    proc = subprocess.run([sys.executable, "-m", "nutslite", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: nutslite [-h] [--version] COMMAND ...")
    for command in ("sample", "summary", "plot", "models"):
        assert f"\n    {command} " in proc.stdout
    assert "nutslite sample radon --parameterization noncentered --seed 1 --out run.npz" in (
        proc.stdout
    )


def test_the_command_flushes_everything_before_its_quick_exit(radon_run):
    """``python -m nutslite`` ends with ``os._exit`` (``nutslite.cli.run``): the table, the
    warnings and the exit status must be those of ``main`` in this process."""
    path = radon_run[0]
    proc = subprocess.run([sys.executable, "-m", "nutslite", "summary", str(path), "--all"],
                          capture_output=True, text=True, timeout=120)
    code, out, err = run("summary", str(path), "--all")
    assert (proc.returncode, proc.stdout) == (code, out) == (0, out)
    assert out.count("\n") > 345  # every scalar's row, the last one included
    bad = subprocess.run([sys.executable, "-m", "nutslite", "summary", str(path.with_suffix(""))],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "nutslite: error:" in bad.stderr


def test_the_command_resumes_the_collector_it_paused(monkeypatch):
    """``nutslite.cli.run`` pauses the cyclic garbage collector during the imports; the long part
    of a command (sampling, SBC) runs with it on again and the imported objects frozen."""
    import gc

    from nutslite import cli

    assert gc.isenabled() and not cli._collection_paused  # main() in a process of its own
    cli._resume_collection()
    assert gc.get_freeze_count() == 0  # nothing frozen unless run() paused the collector
    monkeypatch.setattr(cli, "_collection_paused", True)
    gc.disable()
    try:
        cli._resume_collection()
        assert gc.isenabled() and gc.get_freeze_count() > 0 and not cli._collection_paused
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.parametrize("command", ["sample", "summary", "plot", "models"])
def test_every_subcommand_has_help(command):
    code, out, _ = run(command, "--help")
    assert code == 0
    assert out.startswith(f"usage: nutslite {command}")
    assert len(out.splitlines()) > 5 or command == "models"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "nutslite"
    if not script.exists():
        pytest.skip("nutslite is not installed in this environment")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"nutslite {nutslite.__version__}"


# --- fuzzing ---------------------------------------------------------------------------------

TOKENS = [
    "sample", "summary", "plot", "models", "radon", "std_normal_5", "banana", "nope", "",
    "--draws", "--tune", "--chains", "--seed", "--cores", "--target-accept", "--max-treedepth",
    "--parameterization", "--likelihood", "centered", "pointwise", "--out", "--kind", "--vars",
    "--all", "--no-progress", "--save-warmup", "trace", "pair", "mu_a", "x[0]", "0", "1", "5",
    "-1", "0.5", "1e9", "nan", "--help", "-", "--", "FILE", "OUT", "PNG",
]


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=8))
def test_fuzz_command_line(argv, radon_run, tmp_path, monkeypatch):
    """Any argument list: exit status 0 or 2, and never a traceback."""
    monkeypatch.chdir(tmp_path)  # whatever the command writes lands here
    path, _, _ = radon_run
    files = {"FILE": str(path), "OUT": str(tmp_path / "fuzz.npz"), "PNG": str(tmp_path / "f.png")}
    argv = [files.get(token, token) for token in argv]
    # keep sampling runs short: a valid sample command gets small counts
    if argv[:1] == ["sample"]:
        argv += ["--draws", "5", "--tune", "5", "--chains", "1", "--no-progress"]
    code, _, err = run(*argv)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert "error: " in err
