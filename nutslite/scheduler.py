"""Run chains in compiled chunks on worker threads, the chain that lags most first.

Each chain's compiled loop (``nutslite.engine.chain.run_chain``) releases the GIL, so ``workers``
threads run that many chains at once. A thread repeatedly takes the waiting chain with the fewest
completed iterations and advances it by one *chunk*, sized from the chain's last chunk to take
about ``CHUNK_SECONDS``. So the main thread can show progress between chunks, every chain moves
even when there are fewer workers than chains, and Ctrl-C stops all of them within a chunk with
their work kept. Chunking never changes a draw: iteration ``t`` of a chain does the same thing
whichever chunk runs it.

A chain's first chunk is one iteration, whose time is all the scheduler knows of the model. A
chunk is then at most twice as long as the last one, so that a rising cost per iteration (early
warmup) cannot make one overshoot ``CHUNK_SECONDS`` by much, unless the longer chunk would still
take less than ``MIN_CHUNK_SECONDS`` at the last one's rate: then it takes that long. Each chunk
costs a call from Python: 20-50 µs on one worker, and two to three times that in CPU time when
two workers take turns, because the interpreter's state moves to the other core's cache and a worker
back from compiled code may wait for the GIL. On radon (4 chains on 2 workers), doubling from 1
took 14 calls per chain; a 2 ms floor took 8 or 9, and this 10 ms floor takes about 4, which cut
the chains' time per gradient by 2-3% (``benchmarks/README.md``, engine rounds 22 and 25).

Near the end, chunks shrink so that the chains finish together: a chunk is at most
``END_SHARE`` of the mean number of iterations left per chain (and at least
``MIN_CHUNK_SECONDS`` long). Without that cap, 4 chains on 2 workers could end with one chain's
last chunk of about 1000 iterations running alone, the other worker idle for 10-20 ms of a radon
run's 80 ms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

CHUNK_SECONDS = 0.1  # target wall time of one compiled chunk
POLL_SECONDS = 0.1  # how often the main thread reports progress
END_SHARE = 0.5  # near the end, a chunk is at most this share of the iterations left per chain
MIN_CHUNK_SECONDS = 0.01  # chunks grow to at least this long, and shrink to no less near the end


@dataclass
class ChunkedRun:
    """What the scheduler keeps about one chain: iterations done of ``n_iter``, the size of its
    next chunk, whether a worker is running it, and its compiled time so far."""

    n_iter: int
    done: int = 0
    chunk: int = 1
    running: bool = False
    seconds: float = 0.0


# advance(chain, start, stop) runs iterations [start, stop) and says whether the chain may go on
Advance = Callable[[int, int, int], bool]


class ChainScheduler:
    """Runs ``advance`` over every chain of ``runs`` until each has done its ``n_iter`` iterations,
    one failed (``advance`` returned ``False``), a worker raised, or Ctrl-C arrived."""

    def __init__(self, runs: list[ChunkedRun], advance: Advance, workers: int) -> None:
        self.runs = runs
        self._advance = advance
        self._workers = workers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._waiting = list(range(len(runs)))  # chains neither running a chunk nor finished
        self._futures: list[Future] = []

    def _run_chunk(self, c: int) -> bool:
        run = self.runs[c]
        stop_at = min(run.n_iter, run.done + self._chunk_size(run))
        t0 = time.perf_counter()
        ok = self._advance(c, run.done, stop_at)
        elapsed = time.perf_counter() - t0
        run.seconds += elapsed
        n = stop_at - run.done
        rate = n / max(elapsed, 1e-9)  # iterations per second
        grown = max(2 * n, int(MIN_CHUNK_SECONDS * rate))
        run.chunk = max(1, min(grown, int(CHUNK_SECONDS * rate)))
        run.done = stop_at
        return ok

    def _chunk_size(self, run: ChunkedRun) -> int:
        """Iterations of ``run``'s next chunk: about ``CHUNK_SECONDS`` (``run.chunk``), but near
        the end at most ``END_SHARE`` of the mean number of iterations left per chain, and at
        least ``MIN_CHUNK_SECONDS`` at the chain's rate so far."""
        left = sum(r.n_iter - r.done for r in self.runs)  # this chain's included
        cap = int(END_SHARE * left / len(self.runs))
        if run.seconds > 0:
            cap = max(cap, int(MIN_CHUNK_SECONDS * run.done / run.seconds))
        return min(run.chunk, max(1, cap))

    def _worker(self) -> None:
        """Run a chunk of the chain that lags most, again and again."""
        try:
            while not self._stop.is_set():
                with self._lock:
                    if not self._waiting:
                        return
                    c = min(self._waiting, key=lambda i: self.runs[i].done)
                    self._waiting.remove(c)
                self.runs[c].running = True
                try:
                    ok = self._run_chunk(c)
                finally:
                    self.runs[c].running = False
                if not ok:
                    self._stop.set()  # the run fails; stop the other chains now
                elif self.runs[c].done < self.runs[c].n_iter:
                    with self._lock:
                        self._waiting.append(c)
        except BaseException:
            self._stop.set()  # an error in one chain stops the others promptly
            raise

    def run(self, poll: Callable[[], None]) -> bool:
        """Run the chains, calling ``poll()`` about every ``POLL_SECONDS`` from this thread.
        Returns ``True`` when Ctrl-C interrupted the run; every chain then stops after its current
        chunk, and further Ctrl-C are ignored while they finish it. Errors raised in the workers
        wait for :meth:`raise_errors`."""
        interrupted = False
        pool = ThreadPoolExecutor(max_workers=self._workers)
        self._futures = [pool.submit(self._worker) for _ in range(self._workers)]
        try:
            while wait(self._futures, timeout=POLL_SECONDS).not_done:
                poll()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._stop.set()  # no-op after a normal end
            _wait_through_interrupts(self._futures)
            # every worker has returned: its idle thread ends on its own, unwaited for
            pool.shutdown(wait=False)
        return interrupted

    def raise_errors(self) -> None:
        """Re-raise the first error of a worker thread, if any."""
        for future in self._futures:
            future.result()


def _wait_through_interrupts(futures: list[Future]) -> None:
    """Wait for the chains to finish their current chunk, ignoring further Ctrl-C meanwhile."""
    while True:
        try:
            wait(futures)
            return
        except KeyboardInterrupt:
            continue
