"""The chain scheduler: every iteration of every chain runs once, in order, and chunks shrink
near the end so that the chains finish together."""

from types import SimpleNamespace

import pytest

from nutslite import scheduler
from nutslite.scheduler import ChainScheduler, ChunkedRun


@pytest.mark.parametrize("workers", [1, 2])
def test_every_iteration_runs_once_in_order(workers):
    chunks = []

    def advance(c, start, stop):
        chunks.append((c, start, stop))
        return True

    runs = [ChunkedRun(n_iter) for n_iter in (300, 1, 250, 0)]
    assert not ChainScheduler(runs, advance, workers).run(lambda: None)
    for c, run in enumerate(runs):
        mine = sorted((start, stop) for chain, start, stop in chunks if chain == c)
        assert [start for start, _ in mine] == [0] + [stop for _, stop in mine[:-1]]
        assert run.done == run.n_iter == (mine[-1][1] if mine else 0)


def test_chunks_shrink_to_the_iterations_left(monkeypatch):
    """One worker replays exactly: before each chunk, the iterations left over all chains are
    known, and no chunk is longer than ``END_SHARE`` of their mean per chain (or 1)."""
    monkeypatch.setattr(scheduler, "MIN_CHUNK_SECONDS", 0.0)
    runs = [ChunkedRun(2000) for _ in range(4)]
    sizes = []

    def advance(c, start, stop):
        left = sum(r.n_iter - r.done for r in runs)
        sizes.append((stop - start, max(1, int(scheduler.END_SHARE * left / len(runs)))))
        return True

    ChainScheduler(runs, advance, 1).run(lambda: None)
    assert all(size <= cap for size, cap in sizes)
    assert max(size for size, _ in sizes) > 100  # chunks still grow while much is left
    assert sizes[-1][0] == 1  # and the last one is a single iteration


def test_short_chunks_grow_past_doubling(monkeypatch):
    """On a clock where an iteration takes 10 µs and a call 50 µs, a chain of 2000 iterations
    starts with one iteration, then grows its chunks to ``MIN_CHUNK_SECONDS`` at the last chunk's
    rate (faster than doubling: 1, 2, 4, ... took 14 calls, these take 4), and no chunk is
    longer than ``CHUNK_SECONDS`` at that rate or, once that long, more than twice the last
    one."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(scheduler, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    sizes = []

    def advance(c, start, stop):
        clock.now += 50e-6 + 10e-6 * (stop - start)
        sizes.append(stop - start)
        return True

    ChainScheduler([ChunkedRun(2000)], advance, 1).run(lambda: None)
    assert sum(sizes) == 2000 and sizes[0] == 1
    assert sizes[1] == int(scheduler.MIN_CHUNK_SECONDS / 60e-6)  # 1 iteration in 60 µs
    for last, size in zip(sizes, sizes[1:-1], strict=False):  # the last chunk is what is left
        rate = last / (50e-6 + 10e-6 * last)
        assert size <= scheduler.CHUNK_SECONDS * rate
        assert size <= max(2 * last, scheduler.MIN_CHUNK_SECONDS * rate)
    assert len(sizes) <= 4
