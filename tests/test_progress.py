"""Progress display: which reporter ``progress=`` picks, what the lines say, how often they come."""

import importlib
import io
import os
import re
import time

import numpy as np
import pytest

import nutslite as nl
from nutslite._numba import JIT_DISABLED, needs_compiling
from nutslite.engine.chain import run_chain
from nutslite.models import zoo
from nutslite.progress import (
    ChainProgress,
    LogReporter,
    Reporter,
    TerminalReporter,
    make_reporter,
)

# short runs: the sampler's warnings about R-hat, ESS or divergences are expected here
pytestmark = pytest.mark.filterwarnings("ignore::nutslite.diagnostics.SamplingWarning")

ANSI = re.compile(r"\x1b\[\d*[A-Za-z]")


class TTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def snapshot(done: int, total: int = 200, tune: int = 100, chains: int = 2) -> list[ChainProgress]:
    return [
        ChainProgress(c, done, total, tune, divergences=3, step_size=0.25, seconds=0.5,
                      warmup_divergences=2)
        for c in range(chains)
    ]


class Recorder(Reporter):
    def __init__(self) -> None:
        self.updates: list[list[ChainProgress]] = []
        self.closed: list[tuple[list[ChainProgress], bool]] = []

    def update(self, chains):
        self.updates.append(chains)

    def close(self, chains, interrupted):
        self.closed.append((chains, interrupted))


def test_make_reporter_follows_the_stream(monkeypatch):
    monkeypatch.setattr("sys.stderr", TTY())
    assert isinstance(make_reporter(True), TerminalReporter)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(make_reporter(True), LogReporter)
    assert type(make_reporter(False)) is Reporter
    mine = Recorder()
    assert make_reporter(mine) is mine
    with pytest.raises(TypeError, match="progress must be True, False or"):
        make_reporter("yes")


def test_terminal_lines_redraw_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    stream = TTY()
    reporter = TerminalReporter(stream, interval=0.0)
    reporter.update(snapshot(50))
    first = stream.getvalue()
    lines = first.splitlines()
    assert len(lines) == 3  # two chains and the footer
    assert "chain 0 [" in lines[0] and " 50/200 warmup " in lines[0]
    assert "draws/s" in lines[0] and "3 div" in lines[0] and "step 0.25" in lines[0]
    assert lines[2].startswith("\x1b[2Kelapsed")
    reporter.update(snapshot(150))
    redraw = stream.getvalue()[len(first):]
    assert redraw.startswith("\x1b[3A")  # back up over the three lines drawn before
    assert "150/200 sampling" in redraw and " 1 div" in redraw  # sampling counts its own
    reporter.close(snapshot(170), interrupted=True)
    assert "170/200 stopped" in stream.getvalue()
    assert stream.getvalue().endswith(
        "interrupted: the chains stopped at the counts above; the result keeps the first 70 "
        "draws of every chain, and the divergence counts above are those among them\n"
    )


def test_terminal_lines_fit_a_narrow_window(monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    stream = TTY()
    TerminalReporter(stream, interval=0.0).update(snapshot(50))
    for line in stream.getvalue().splitlines():
        assert len(ANSI.sub("", line)) <= 49
        assert "[#" not in line and "[." not in line  # no room for a bar


def test_terminal_redraws_a_few_times_a_second():
    stream = TTY()
    reporter = TerminalReporter(stream, interval=10.0)
    for done in range(1, 50):
        reporter.update(snapshot(done))
    assert stream.getvalue().count("elapsed") == 1


def test_log_lines_are_plain_and_occasional():
    stream = io.StringIO()
    reporter = LogReporter(stream, interval=10.0, first=0.0)
    for done in range(1, 50):
        reporter.update(snapshot(done))
    reporter.close(snapshot(200), interrupted=False)
    text = stream.getvalue()
    assert not ANSI.search(text)
    lines = text.splitlines()
    assert len(lines) == 4  # one block when it started, one at the end
    assert all(line.startswith("nutslite: [0:00] chain ") for line in lines)
    assert "200/200 done" in lines[-1]


def test_log_reporter_is_silent_for_a_short_run_until_the_end():
    stream = io.StringIO()
    reporter = LogReporter(stream)  # first block after one second
    reporter.update(snapshot(10))
    assert stream.getvalue() == ""
    reporter.close(snapshot(200), interrupted=False)
    assert stream.getvalue().count("\n") == 2


def test_sample_reports_a_few_times_a_second_not_per_draw():
    recorder = Recorder()
    res = nl.sample(zoo.eight_schools("centered"), draws=1500, tune=500, chains=2, seed=3,
                    progress=recorder)
    wall = res.settings["wall_seconds"]
    assert len(recorder.updates) <= wall / 0.1 + 2
    done = [[ch.done for ch in snap] for snap in recorder.updates]
    assert done == sorted(done)  # counts only grow
    (final, interrupted), = recorder.closed
    assert not interrupted
    assert [ch.done for ch in final] == [2000, 2000]
    assert [ch.chain for ch in final] == [0, 1]
    total_div = res.divergences["chain"].size
    assert sum(ch.divergences for ch in final) == total_div
    assert sum(ch.sampling_divergences for ch in final) == int(res.sample_stats["diverging"].sum())
    assert [ch.step_size for ch in final] == pytest.approx(res.warmup["step_size"].tolist())


def test_sample_progress_false_prints_nothing(capfd):
    nl.sample(zoo.std_normal(5), draws=50, tune=50, chains=2, seed=1, progress=False,
              warn=False)  # warnings are another channel (and print when pytest's plugin is off)
    assert capfd.readouterr() == ("", "")


def test_sample_progress_true_without_a_terminal_prints_plain_lines(capfd):
    nl.sample(zoo.std_normal(5), draws=50, tune=50, chains=2, seed=1)
    out, err = capfd.readouterr()
    assert out == ""
    assert not ANSI.search(err)
    assert err.count("100/100 done") == 2


def test_a_chain_in_its_first_chunk_is_starting_and_a_queued_one_waiting():
    stream = io.StringIO()
    LogReporter(stream).close(
        [ChainProgress(0, 0, 200, 100, 0, 1.0, 0.0, running=True),
         ChainProgress(1, 0, 200, 100, 0, 1.0, 0.0)],
        interrupted=False,
    )
    first, second = stream.getvalue().splitlines()
    assert "0/200 starting" in first and "0/200 waiting" in second


@pytest.mark.parametrize("reporter_type", [LogReporter, TerminalReporter])
def test_a_note_is_one_plain_line(reporter_type):
    stream = TTY() if reporter_type is TerminalReporter else io.StringIO()
    reporter_type(stream).note("compiling the sampler")
    assert stream.getvalue() == "nutslite: compiling the sampler\n"


class NoteRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def note(self, text):
        assert not self.updates, "a note comes before the first update"
        self.notes.append(text)


@pytest.mark.parametrize("compiling", [True, False])
def test_sample_announces_a_compile_only_when_one_is_coming(monkeypatch, compiling):
    monkeypatch.setattr("nutslite.sampling.needs_compiling", lambda function: compiling)
    recorder = NoteRecorder()
    nl.sample(zoo.std_normal(2), draws=20, tune=20, chains=1, seed=1, progress=recorder)
    if compiling:
        (text,) = recorder.notes
        assert text.startswith("compiling the sampler") and "later runs load it from" in text
    else:
        assert recorder.notes == []


def test_the_compile_before_the_chains_changes_no_draw(monkeypatch):
    """A compile of the chain loop is run in the calling thread, by a call of no iterations
    before the chains start; the run is the same as one that needs no compile."""
    def run():
        return nl.sample(zoo.std_normal(3), draws=30, tune=30, chains=2, seed=5, progress=False,
                         warn=False)

    cached = run()
    monkeypatch.setattr("nutslite.sampling.needs_compiling", lambda function: True)
    compiled = run()
    assert np.array_equal(cached.unconstrained, compiled.unconstrained)
    for name, values in cached.sample_stats.items():
        assert np.array_equal(values, compiled.sample_stats[name]), name
    assert np.array_equal(cached.warmup["step_size"], compiled.warmup["step_size"])


@pytest.mark.skipif(JIT_DISABLED, reason="nothing is compiled without the JIT")
def test_needs_compiling_until_compiled_or_cached(tmp_path, monkeypatch):
    (tmp_path / "jitted_module.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef twice(x):\n    return 2 * x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("numba.config.CACHE_DIR", str(tmp_path / "cache"))
    import jitted_module

    assert needs_compiling(jitted_module.twice)
    assert jitted_module.twice(2.0) == 4.0
    assert not needs_compiling(jitted_module.twice)  # compiled in this process (and cached)
    fresh = importlib.reload(jitted_module).twice  # as in a new process: only the disk cache
    assert not fresh.signatures and not needs_compiling(fresh)
    # the same source with another time stamp: the index is still there, but Numba drops it
    source = tmp_path / "jitted_module.py"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    stale = importlib.reload(jitted_module).twice
    assert os.path.exists(stale._cache._cache_file._index_path)
    assert needs_compiling(stale)
    assert stale(3.0) == 6.0  # compiled again, and cached for the new time stamp
    assert not needs_compiling(importlib.reload(jitted_module).twice)
    nl.sample(zoo.std_normal(2), draws=5, tune=5, chains=1, seed=1, progress=False, warn=False)
    assert not needs_compiling(run_chain)


def test_rates_count_from_begin_not_from_a_compile():
    """``sample`` calls ``begin`` once the engine is compiled: a compile before it must not
    lower the rates shown (100 iterations just after ``begin`` are far more than 100 / 0.05 s)."""
    stream = io.StringIO()
    reporter = LogReporter(stream)
    made = reporter.start
    time.sleep(0.05)  # a compile
    reporter.begin()
    assert reporter.start > made
    reporter.close([ChainProgress(0, 100, 100, 50, 0, 0.1, 0.01)], interrupted=False)
    rate = float(stream.getvalue().split("done")[1].split("draws/s")[0])
    assert rate > 100 / 0.05
