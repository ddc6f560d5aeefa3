"""Progress of running chains, reported from the main thread a few times a second.

``sample`` builds a reporter with ``make_reporter``, calls ``note`` once when the compiled engine
is neither loaded nor cached (the first run after an install takes tens of seconds to compile it),
``begin`` once the engine is compiled and the chains start (the elapsed time and the rates count
from there), ``update`` with one ``ChainProgress`` per chain roughly every 0.1 s, then ``close``
once. A chain is ``waiting`` until a thread takes it up, ``starting`` during its first
one-iteration chunk, then ``warmup``, ``sampling`` and ``done``.
The compiled chains never call into Python for this: the driver reads their counters between
chunks, so showing progress costs the sampler nothing but a few string operations on the main
thread.

``progress=True`` picks the display from the standard error stream: in a terminal, one line per
chain redrawn in place (``TerminalReporter``, ANSI cursor movement) about four times a second;
otherwise (a log file, a pipe, CI, a notebook) plain lines, one per chain, one second after
sampling starts, every ten seconds and at the end (``LogReporter``). ``progress=False`` shows
nothing.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class ChainProgress:
    """A snapshot of one chain."""

    chain: int
    done: int  # iterations completed, warmup included
    total: int  # tune + draws
    tune: int
    divergences: int  # divergent transitions so far, warmup included
    step_size: float  # the step size the chain is using now
    seconds: float  # wall time spent in compiled chunks so far
    warmup_divergences: int = 0  # how many of ``divergences`` happened during warmup
    running: bool = False  # a compiled chunk of this chain is running now

    @property
    def warmup(self) -> bool:
        return self.done < self.tune

    @property
    def sampling_divergences(self) -> int:
        """Divergences after warmup: the ones that bias the draws."""
        return self.divergences - self.warmup_divergences


def _interrupted_line(chains: list[ChainProgress]) -> str:
    """What an interrupted run keeps: every chain's first ``min(done)`` iterations (the result
    is rectangular), so the divergences shown at the end are those among them, as in the
    warnings."""
    kept = min(ch.done for ch in chains) - chains[0].tune if chains else 0
    if kept <= 0:
        return "interrupted during warmup: the chains stopped at the counts above; no draws kept"
    return (
        f"interrupted: the chains stopped at the counts above; the result keeps the first {kept} "
        "draws of every chain, and the divergence counts above are those among them"
    )


class Reporter:
    """Shows nothing. Subclasses draw something in ``update`` and ``close``."""

    def note(self, text: str) -> None:
        """Called before the first ``update`` with something to say once (a compile is coming)."""

    def begin(self) -> None:
        """Called once when the chains start, after any compile and before the first
        ``update``."""

    def update(self, chains: list[ChainProgress]) -> None:
        """Called with every chain's snapshot about ten times a second."""

    def close(self, chains: list[ChainProgress], interrupted: bool) -> None:
        """Called once when sampling ends (normally or by Ctrl-C)."""


class _RateMeter:
    """Iterations per second of each chain over the last few seconds of wall time."""

    def __init__(self, start: float, window: float = 3.0) -> None:
        self.start = start
        self.window = window
        self.history: deque[tuple[float, list[int]]] = deque()

    def rates(self, now: float, chains: list[ChainProgress]) -> list[float]:
        done = [ch.done for ch in chains]
        if not self.history:
            self.history.append((self.start, [0] * len(done)))
        self.history.append((now, done))
        while len(self.history) > 2 and now - self.history[1][0] >= self.window:
            self.history.popleft()
        then, done_then = self.history[0]
        if now <= then:
            return [0.0] * len(done)
        return [(d - d0) / (now - then) for d, d0 in zip(done, done_then, strict=True)]


def _clock(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{s:02d}" if hours else f"{minutes}:{s:02d}"


def _phase(ch: ChainProgress, interrupted: bool) -> str:
    if ch.done >= ch.total:
        return "done"
    if interrupted:
        return "stopped"
    if ch.done == 0:  # queued, or running its first (one-iteration) chunk
        return "starting" if ch.running else "waiting"
    return "warmup" if ch.warmup else "sampling"


def _chain_line(ch: ChainProgress, rate: float, interrupted: bool, columns: int = 0) -> str:
    """``chain 0 [#####.....]  812/2000 warmup     410 draws/s    3 div  step 0.123``, with a
    bar of up to 30 characters when ``columns`` leaves room for one.

    Divergences count the sampling phase once it has begun (warmup ones are common and harmless).
    """
    width = len(str(ch.total))
    divergences = ch.divergences if ch.warmup else ch.sampling_divergences
    rest = (
        f" {ch.done:>{width}}/{ch.total} {_phase(ch, interrupted):<8} "
        f"{rate:>6.0f} draws/s {divergences:>4} div  step {ch.step_size:.3g}"
    )
    text = f"chain {ch.chain}"
    bar_width = min(30, columns - len(text) - len(rest) - 3)
    if bar_width >= 5:
        filled = bar_width * ch.done // max(ch.total, 1)
        text += " [" + "#" * filled + "." * (bar_width - filled) + "]"
    return text + rest


def _footer(chains: list[ChainProgress], elapsed: float) -> str:
    """Elapsed time and, from the overall rate so far, the time left."""
    done = sum(ch.done for ch in chains)
    left = sum(ch.total - ch.done for ch in chains)
    text = f"elapsed {_clock(elapsed)}"
    if left and done and elapsed > 1.0 and left * elapsed / done >= 1.0:
        text += f", about {_clock(left * elapsed / done)} left"
    return text


class _StreamReporter(Reporter):
    """A reporter that writes to ``self.stream``; a note is one plain line."""

    stream: TextIO

    def note(self, text: str) -> None:
        self.stream.write(f"nutslite: {text}\n")
        self.stream.flush()


class TerminalReporter(_StreamReporter):
    """One line per chain plus a footer, redrawn in place with ANSI cursor-up on ``stream``.

    Redraws at most every ``interval`` seconds; lines are cut to the terminal width so that a
    narrow window never wraps them (which would break the redraw).
    """

    def __init__(self, stream: TextIO | None = None, interval: float = 0.25) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.last_draw = -float("inf")
        self.lines_drawn = 0
        self.begin()

    def begin(self) -> None:
        """The elapsed time and the rates count from here, not from before a compile."""
        self.start = time.perf_counter()
        self.meter = _RateMeter(self.start)

    def update(self, chains: list[ChainProgress]) -> None:
        now = time.perf_counter()
        if now - self.last_draw >= self.interval:
            self.last_draw = now
            self._draw(chains, now, interrupted=False)

    def close(self, chains: list[ChainProgress], interrupted: bool) -> None:
        self._draw(chains, time.perf_counter(), interrupted)
        if interrupted:
            self.stream.write(_interrupted_line(chains) + "\n")
        self.stream.flush()

    def _draw(self, chains: list[ChainProgress], now: float, interrupted: bool) -> None:
        columns = shutil.get_terminal_size().columns - 1
        rates = self.meter.rates(now, chains)
        lines = [
            _chain_line(ch, rate, interrupted, columns)
            for ch, rate in zip(chains, rates, strict=True)
        ]
        lines.append(_footer(chains, now - self.start))
        up = f"\x1b[{self.lines_drawn}A" if self.lines_drawn else ""  # back to the first line
        self.stream.write(up + "".join(f"\x1b[2K{line[:columns]}\n" for line in lines))
        self.stream.flush()
        self.lines_drawn = len(lines)


class LogReporter(_StreamReporter):
    """Plain lines for logs and pipes, one per chain, each prefixed with ``nutslite:`` and the
    elapsed time: ``first`` seconds after sampling starts (a shorter run shows only its end),
    then every ``interval`` seconds, and at the end."""

    def __init__(
        self, stream: TextIO | None = None, interval: float = 10.0, first: float = 1.0
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.first = first
        self.begin()

    def begin(self) -> None:
        """The elapsed time, the first line's time and the rates count from here, not from
        before a compile."""
        self.start = time.perf_counter()
        self.next_write = self.start + self.first
        self.meter = _RateMeter(self.start, window=self.interval)

    def update(self, chains: list[ChainProgress]) -> None:
        now = time.perf_counter()
        if now >= self.next_write:
            self.next_write = now + self.interval
            self._write(chains, now, interrupted=False)

    def close(self, chains: list[ChainProgress], interrupted: bool) -> None:
        self._write(chains, time.perf_counter(), interrupted)

    def _write(self, chains: list[ChainProgress], now: float, interrupted: bool) -> None:
        rates = self.meter.rates(now, chains)
        stamp = f"nutslite: [{_clock(now - self.start)}]"
        for ch, rate in zip(chains, rates, strict=True):
            self.stream.write(f"{stamp} {_chain_line(ch, rate, interrupted)}\n")
        if interrupted:
            self.stream.write(f"{stamp} {_interrupted_line(chains)}\n")
        self.stream.flush()


def make_reporter(progress: bool | Reporter) -> Reporter:
    """The reporter for ``sample(progress=...)``.

    ``True``: ``TerminalReporter`` when standard error is a terminal, else ``LogReporter``;
    ``False``: nothing; a ``Reporter`` instance is used as given.
    """
    if isinstance(progress, Reporter):
        return progress
    if not isinstance(progress, bool):
        raise TypeError(
            f"progress must be True, False or a nutslite.progress.Reporter, got {progress!r}"
        )
    if not progress:
        return Reporter()
    stream = sys.stderr
    if stream is None:  # pythonw and some embedded interpreters have no standard error
        return Reporter()
    return TerminalReporter(stream) if stream.isatty() else LogReporter(stream)
