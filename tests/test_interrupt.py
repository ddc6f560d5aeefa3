"""Ctrl-C stops every chain promptly and keeps the draws completed so far (API and CLI)."""

import os
import selectors
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nutslite as nl
from nutslite.progress import Reporter
from nutslite.result import load

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    # interrupted runs are short: the sampler's warnings about R-hat or ESS are expected here
    pytest.mark.filterwarnings("ignore::nutslite.diagnostics.SamplingWarning"),
]

# A model slow enough (about 0.1 ms per transition) that a run is still going when interrupted.
# The subprocess tests run it through the command line by adding it to the zoo.
SLOW_MODEL = """
import numba
import nutslite as nl


@numba.njit
def slow_logp_grad(theta, grad_out):
    busy = 0.0
    for k in range(20000):
        busy += 1e-300 * k
    lp = 0.0
    for i in range(theta.shape[0]):
        grad_out[i] = -theta[i]
        lp -= 0.5 * theta[i] * theta[i]
    return lp + 0.0 * busy


def slow_model():
    return nl.Model("slow", 3, slow_logp_grad)
"""

CLI_WITH_SLOW_MODEL = SLOW_MODEL + """
import signal
import sys

from nutslite.cli import main
from nutslite.models import ZOO

# a job started in the background by a non-interactive shell ignores SIGINT; this test sends one
signal.signal(signal.SIGINT, signal.default_int_handler)
ZOO["slow"] = slow_model
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def ctrl_c_raises_keyboard_interrupt():
    """Python ignores SIGINT when started as a background job of a non-interactive shell."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def slow():
    namespace: dict = {}
    exec(SLOW_MODEL, namespace)
    return namespace["slow_model"]()


class CtrlC(Reporter):
    """Sends this process a real SIGINT once ``when(chains)`` holds; records the moment."""

    def __init__(self, when) -> None:
        self.when = when
        self.sent_at = None
        self.snapshot = None

    def update(self, chains):
        if self.sent_at is None and self.when(chains):
            self.sent_at = time.perf_counter()
            self.snapshot = chains
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupt_while_sampling_keeps_the_completed_draws(slow):
    tune = 100
    ctrl_c = CtrlC(lambda chains: min(ch.done for ch in chains) > tune + 200)
    # without the checks, which may first compile the diagnostics (as in a fresh cache)
    res = nl.sample(slow, draws=100_000, tune=tune, chains=2, seed=3, progress=ctrl_c, warn=False)
    returned_at = time.perf_counter()
    assert res.interrupted
    assert returned_at - ctrl_c.sent_at < 2.0  # chains stop after their current ~0.1 s chunk
    completed = res.iterations_completed
    assert (completed >= [ch.done for ch in ctrl_c.snapshot]).all()
    assert (completed < tune + 100_000).all()
    assert res.n_draws == completed.min() - tune > 200
    assert res.posterior["x"].shape == (2, res.n_draws, 3)
    assert np.isfinite(res.unconstrained).all()
    # the kept draws are exactly those of an uninterrupted run of that length
    full = nl.sample(slow, draws=res.n_draws, tune=tune, chains=2, seed=3, progress=False)
    np.testing.assert_array_equal(res.unconstrained, full.unconstrained)
    np.testing.assert_array_equal(res.sample_stats["lp"], full.sample_stats["lp"])


def test_interrupt_during_warmup_returns_the_warmup_state(slow, tmp_path):
    ctrl_c = CtrlC(lambda chains: min(ch.done for ch in chains) >= 20)
    res = nl.sample(slow, draws=100, tune=100_000, chains=2, seed=1, progress=ctrl_c)
    assert res.interrupted
    assert res.n_draws == 0 and res.posterior["x"].shape == (2, 0, 3)
    assert ((res.iterations_completed >= 20) & (res.iterations_completed < 100_000)).all()
    assert np.isfinite(res.warmup["step_size"]).all()
    back = load(res.save(tmp_path / "warmup.npz"))
    assert back.interrupted and back.n_draws == 0


def test_fewer_cores_than_chains_every_chain_advances(slow):
    """Chains take turns in chunks, so Ctrl-C keeps work from all of them, not one."""
    tune = 100
    ctrl_c = CtrlC(lambda chains: min(ch.done for ch in chains) > tune + 50)
    res = nl.sample(slow, draws=100_000, tune=tune, chains=3, cores=1, seed=2, progress=ctrl_c)
    assert res.interrupted
    assert max(ch.done for ch in ctrl_c.snapshot) < tune + 100_000  # no chain ran to the end
    assert res.n_draws > 50


def _start_cli(tmp_path, *args):
    script = tmp_path / "nutslite_with_slow_model.py"
    script.write_text(CLI_WITH_SLOW_MODEL)
    return subprocess.Popen(
        [sys.executable, str(script), "sample", "slow", "--seed", "1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )


def _wait_for_line(proc, text, timeout=180.0) -> str:
    """Read the child's stderr until a line contains ``text``; everything read so far."""
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                line = proc.stderr.readline()
                seen += line
                if text in line or not line:
                    break
    assert text in seen, f"never saw {text!r}; stderr so far:\n{seen}"
    return seen


def _interrupt(proc, seen):
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)  # a guard against a hang, not a speed target
    return proc.returncode, out, seen + err


def test_ctrl_c_in_the_cli_saves_the_draws_so_far(tmp_path):
    proc = _start_cli(tmp_path, "--draws", "100000", "--tune", "200", "--chains", "2",
                      "--out", "run.npz")
    # the plain progress lines (stderr is a pipe) come one second into sampling
    seen = _wait_for_line(proc, "/100200 sampling")
    code, out, err = _interrupt(proc, seen)
    assert code == 130, err
    assert "interrupted: the chains stopped at the counts above" in err
    assert "saved to run.npz" in err
    res = load(tmp_path / "run.npz")
    assert res.interrupted
    assert (res.iterations_completed < 100_200).all()
    assert res.n_draws == res.iterations_completed.min() - 200 > 0
    assert "INTERRUPTED: iterations completed per chain: " in out
    assert f"slow: 2 chains x {res.n_draws} draws" in out
    assert "mean" in out  # the summary of the draws kept


def test_ctrl_c_in_the_cli_during_warmup_with_fewer_cores_than_chains(tmp_path):
    proc = _start_cli(tmp_path, "--draws", "10", "--tune", "200000", "--chains", "3",
                      "--cores", "1", "--out", "run.npz")
    seen = _wait_for_line(proc, "chain 2")
    code, out, err = _interrupt(proc, seen)
    assert code == 130, err
    res = load(tmp_path / "run.npz")
    assert res.interrupted and res.n_draws == 0
    assert ((res.iterations_completed > 0) & (res.iterations_completed < 200_000)).all()
    assert "no post-warmup draws to summarise" in out


# --- Ctrl-C after the chains have finished: the draws are kept whatever the stage (issue 17) ---


def test_ctrl_c_during_the_checks_returns_the_finished_draws(slow, monkeypatch):
    """The checks behind the warnings (tens of seconds on long runs) come after the draws are
    complete; a Ctrl-C there stops the checks, not the result."""

    def interrupted_checks(result, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nutslite.sampling.warn_problems", interrupted_checks)
    with pytest.warns(nl.diagnostics.SamplingWarning, match="Ctrl-C stopped the diagnostic") as w:
        res = nl.sample(slow, draws=200, tune=50, chains=2, seed=4, progress=False)
    assert not res.interrupted and res.n_draws == 200
    assert all(record.filename == __file__ for record in w)  # points at the caller's line


def test_ctrl_c_while_building_the_result_is_absorbed(slow, monkeypatch):
    """Copying the finished draws into the result is retried, never abandoned."""
    from nutslite.result import SamplingResult

    build = SamplingResult.from_chains
    calls = []

    def interrupted_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return build(**kwargs)

    monkeypatch.setattr(SamplingResult, "from_chains", staticmethod(interrupted_once))
    res = nl.sample(slow, draws=20, tune=20, chains=2, seed=5, progress=False, warn=False)
    assert len(calls) == 2 and res.n_draws == 20


def _interrupted_savez(file, **arrays):
    file.write(b"PK\x03\x04 half an archive")  # a partial write, then Ctrl-C
    raise KeyboardInterrupt


def test_ctrl_c_while_writing_leaves_no_truncated_file(slow, tmp_path, monkeypatch):
    res = nl.sample(slow, draws=20, tune=20, chains=1, seed=6, progress=False, warn=False)
    earlier = tmp_path / "earlier.npz"
    res.save(earlier)
    before = earlier.read_bytes()
    monkeypatch.setattr(np, "savez", _interrupted_savez)
    with pytest.raises(KeyboardInterrupt):
        res.save(tmp_path / "new.npz")
    with pytest.raises(KeyboardInterrupt):
        res.save(earlier)
    assert not (tmp_path / "new.npz").exists()  # nothing under the requested name
    assert earlier.read_bytes() == before  # an earlier file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.npz"]  # no temporary left


def _cli_in_process(tmp_path, monkeypatch, slow, *args):
    from nutslite.cli import main
    from nutslite.models import ZOO

    monkeypatch.setitem(ZOO, "slow", lambda: slow)
    monkeypatch.chdir(tmp_path)
    return main(["sample", "slow", "--seed", "1", "--no-progress", *args])


def test_cli_ctrl_c_during_the_checks_keeps_the_saved_file(slow, tmp_path, monkeypatch, capsys):
    def interrupted_checks(result, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nutslite.diagnostics.warn_problems", interrupted_checks)
    code = _cli_in_process(tmp_path, monkeypatch, slow, "--draws", "200", "--tune", "50",
                           "--chains", "2", "--out", "run.npz")
    err = capsys.readouterr().err
    assert code == 130
    assert "interrupted while checking the draws; the draws are saved in run.npz" in err
    res = load(tmp_path / "run.npz")
    assert not res.interrupted and res.n_draws == 200


def test_cli_ctrl_c_while_writing_writes_nothing(slow, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(np, "savez", _interrupted_savez)
    code = _cli_in_process(tmp_path, monkeypatch, slow, "--draws", "20", "--tune", "20",
                           "--chains", "1", "--out", "run.npz")
    assert code == 130
    assert "interrupted while saving; run.npz not written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_set_stop_event_stops_the_writing_and_writes_nothing(slow, tmp_path):
    """``save(path, stop=...)``, for a save in a background thread: once the event is set, the
    next write raises ``KeyboardInterrupt``, and an earlier file stays as it was."""
    import threading

    res = nl.sample(slow, draws=20, tune=20, chains=1, seed=6, progress=False, warn=False)
    earlier = tmp_path / "earlier.npz"
    res.save(earlier, stop=threading.Event())  # never set: an ordinary save
    before = earlier.read_bytes()
    stop = threading.Event()
    stop.set()
    with pytest.raises(KeyboardInterrupt):
        res.save(earlier, stop=stop)
    assert earlier.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.npz"]  # no temporary left
    np.testing.assert_array_equal(load(earlier).unconstrained, res.unconstrained)


def test_cli_saves_the_draws_before_reporting_a_bad_variable_name(
    slow, tmp_path, monkeypatch, capsys
):
    """The file is written while the table is computed; an error in the table (an unknown
    ``--vars`` name) still leaves the finished file."""
    code = _cli_in_process(tmp_path, monkeypatch, slow, "--draws", "200", "--tune", "50",
                           "--chains", "2", "--out", "run.npz", "--vars", "nope")
    err = capsys.readouterr().err
    assert code == 2 and "nope" in err
    assert "saved to run.npz" in err
    assert load(tmp_path / "run.npz").n_draws == 200


def test_cli_names_a_file_it_cannot_write_and_still_shows_the_table(
    slow, tmp_path, monkeypatch, capsys
):
    def full_disk(file, **arrays):
        file.write(b"PK\x03\x04 part of an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    code = _cli_in_process(tmp_path, monkeypatch, slow, "--draws", "200", "--tune", "50",
                           "--chains", "2", "--out", "run.npz")
    out, err = capsys.readouterr()
    assert code == 1
    assert "error: could not write run.npz: [Errno 28] No space left on device" in err
    assert "saved to" not in err
    assert "mean" in out and "slow: 2 chains x 200 draws" in out  # the table all the same
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary


def test_cli_ctrl_c_while_waiting_for_the_file_stops_it(slow, tmp_path, monkeypatch, capsys):
    """The checks are done and the file is still being written: a Ctrl-C then stops the
    writing, as it did when the file was written before the checks."""
    import nutslite.cli as cli

    class CtrlCInFirstJoin:  # the saving thread, whose first join is cut by a Ctrl-C
        def __init__(self, thread):
            self.thread, self.interrupted = thread, False

        def is_alive(self):
            return self.thread.is_alive()

        def join(self, timeout=None):
            if not self.interrupted:
                self.interrupted = True
                raise KeyboardInterrupt
            self.thread.join(timeout)

    start = cli._BackgroundSave.__init__

    def start_then_wrap(self, res, path):
        start(self, res, path)
        self._thread = CtrlCInFirstJoin(self._thread)

    def slow_savez(file, **arrays):  # writes until stopped
        while True:
            file.write(b"x" * 1024)
            time.sleep(0.001)

    monkeypatch.setattr(np, "savez", slow_savez)
    monkeypatch.setattr(cli._BackgroundSave, "__init__", start_then_wrap)
    code = _cli_in_process(tmp_path, monkeypatch, slow, "--draws", "200", "--tune", "50",
                           "--chains", "2", "--out", "run.npz")
    assert code == 130
    assert "interrupted while saving; run.npz not written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


CLI_WITH_SLOW_CHECKS = CLI_WITH_SLOW_MODEL.replace(
    "sys.exit(main(sys.argv[1:]))",
    """
import time
import nutslite.diagnostics


def slow_checks(result, summary=None):  # warn_problems's signature
    open("checking", "w").close()  # tells the test that the checks have started
    time.sleep(60)


nutslite.diagnostics.warn_problems = slow_checks
sys.exit(main(sys.argv[1:]))
""",
)


def test_real_ctrl_c_in_the_cli_after_the_chains_finished(tmp_path):
    """The issue's reproduction: Ctrl-C once both chains show "done", while the checks run."""
    script = tmp_path / "nutslite_with_slow_checks.py"
    script.write_text(CLI_WITH_SLOW_CHECKS)
    proc = subprocess.Popen(
        [sys.executable, str(script), "sample", "slow", "--seed", "1", "--draws", "300",
         "--tune", "50", "--chains", "2", "--out", "run.npz"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    # a marker file, not a line on stderr: select() misses lines already read into the buffer
    deadline = time.monotonic() + 120
    while not (tmp_path / "checking").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the checks never started"
        time.sleep(0.1)
    code, out, err = _interrupt(proc, "")
    assert code == 130, err
    assert "saved to run.npz" in err and "interrupted while checking the draws" in err
    assert "interrupted before sampling started" not in err
    res = load(tmp_path / "run.npz")
    assert not res.interrupted and res.n_draws == 300


class Recorder(Reporter):
    def close(self, chains, interrupted):
        self.closed = chains


def test_after_an_interrupt_progress_and_warnings_count_the_same_divergences(slow):
    """A step size far past the leapfrog's stability limit makes most transitions diverge."""
    recorder = Recorder()
    ctrl_c = CtrlC(lambda chains: min(ch.done for ch in chains) > 300)
    ctrl_c.close = recorder.close
    res = nl.sample(slow, draws=100_000, tune=0, chains=2, seed=7, step_size=5.0,
                    progress=ctrl_c, warn=False)
    assert res.interrupted
    shown = sum(ch.sampling_divergences for ch in recorder.closed)
    kept = int(res.sample_stats["diverging"].sum())
    assert kept > 0 and shown == kept
