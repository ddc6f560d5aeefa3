"""``nutslite sbc``: progress, results written as they arrive, resume after an interruption."""

import json

import numpy as np
import pytest

from nutslite.cli import main
from nutslite.testing import NutsSampler, sbc

ARGS = ["sbc", "hierarchical_normal", "--replications", "12", "--draws", "100", "--tune",
        "200", "--seed", "4"]


def read(path):
    lines = path.read_text().splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def ranks(records):
    return np.array([r["u"] for r in sorted(records, key=lambda r: r["index"])])


@pytest.fixture(scope="module")
def reference():
    """The library's run with the command's settings."""
    return sbc(NutsSampler(200, {"target_accept": 0.8}), "hierarchical_normal", replications=12,
               n_draws=100, seed=4)


def test_a_run_writes_every_replication_a_plot_and_the_tests(tmp_path, capsys, reference):
    out = tmp_path / "run.jsonl"
    status = main([*ARGS, "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    header, records = read(out)
    assert header["model"] == "hierarchical_normal" and header["coords"] == ["mu", "log_sigma"]
    assert sorted(r["index"] for r in records) == list(range(12))
    assert np.array_equal(ranks(records), reference.u)
    assert (tmp_path / "run.png").stat().st_size > 0
    assert "sbc: 12/12 replications" in stderr
    assert "rank uniformity, chi-square with 9 degrees of freedom" in stdout
    assert status == (1 if reference.pvalues.min() < 1e-3 / 2 else 0)
    for coord, p in zip(reference.coords, reference.pvalues, strict=True):
        assert f"{coord}" in stdout and f"p {p:.3g}" in stdout


def test_an_interrupted_run_resumes_without_redoing_finished_replications(tmp_path, capsys,
                                                                           reference):
    """Keep the header, 5 replications and half a line, as a Ctrl-C during a write leaves it."""
    out = tmp_path / "run.jsonl"
    main([*ARGS, "--out", str(out), "--no-progress"])
    lines = out.read_text().splitlines(keepends=True)
    kept = {json.loads(line)["index"] for line in lines[1:6]}
    out.write_text("".join(lines[:6]) + lines[6][:20])
    capsys.readouterr()
    main([*ARGS, "--out", str(out), "--no-progress"])
    assert "resuming" in capsys.readouterr().err
    _, records = read(out)  # every line parses: the cut one was dropped
    assert sorted(r["index"] for r in records) == list(range(12))
    assert {r["index"] for r in records[:5]} == kept  # those were not run again
    assert np.array_equal(ranks(records), reference.u)


def test_a_file_from_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run.jsonl"
    main([*ARGS, "--out", str(out), "--no-progress", "--replications", "2"])
    capsys.readouterr()
    assert main([*ARGS, "--out", str(out), "--seed", "5"]) == 2
    assert "other settings (seed differ)" in capsys.readouterr().err


def test_an_output_folder_that_does_not_exist_is_a_usage_error(tmp_path, capsys):
    assert main([*ARGS, "--out", str(tmp_path / "missing" / "run.jsonl")]) == 2
    assert f"folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err


def test_a_model_without_a_data_generating_process_is_a_usage_error(capsys):
    assert main(["sbc", "banana"]) == 2
    assert "invalid choice: 'banana'" in capsys.readouterr().err


def test_ctrl_c_stops_the_run_and_a_rerun_finishes_it(tmp_path):
    """A real SIGINT in the middle of a run (radon's replications last long enough to interrupt):
    exit status 130, every line written is whole, and the rerun resumes and completes."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "radon.jsonl"
    argv = [sys.executable, "-m", "nutslite", "sbc", "radon_sbc_noncentered", "--replications",
            "40", "--draws", "100", "--tune", "300", "--out", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root),
                                                                    os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(out.read_text().splitlines()) >= 4:  # header + 3 records
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    _, records = read(out)
    assert 3 <= len(records) < 40
    rerun = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert rerun.returncode in (0, 1), rerun.stderr  # 1: a uniformity test failed
    assert f"resuming {out}: {len(records)} of 40" in rerun.stderr
    _, after = read(out)
    assert sorted(r["index"] for r in after) == list(range(40))
    assert after[: len(records)] == records
