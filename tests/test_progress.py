"""Progress display: which reporter ``progress=`` picks, what the lines say, how often they come."""

import io
import re

import pytest

import nutslite as nl
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
    assert stream.getvalue().endswith("interrupted: the chains stopped at the counts above\n")


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
    nl.sample(zoo.std_normal(5), draws=50, tune=50, chains=2, seed=1, progress=False)
    assert capfd.readouterr() == ("", "")


def test_sample_progress_true_without_a_terminal_prints_plain_lines(capfd):
    nl.sample(zoo.std_normal(5), draws=50, tune=50, chains=2, seed=1)
    out, err = capfd.readouterr()
    assert out == ""
    assert not ANSI.search(err)
    assert err.count("100/100 done") == 2
