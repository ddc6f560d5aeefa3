"""Fan independent sampler runs out over an executor: in-process threads, or a Dask cluster.

SBC replications (:func:`nutslite.testing.sbc`), the targets of
:func:`nutslite.testing.check_sampler` and benchmark sweeps are many independent runs. They take
``executor=``, any :class:`concurrent.futures.Executor`:

* ``None`` (the default): a thread pool in this process, one thread per CPU. The engine releases
  the GIL while it samples, so threads run chains truly in parallel;
* a ``dask.distributed.Client``, or ``client.get_executor()``: the runs become Dask tasks on the
  client's workers (a ``LocalCluster`` on this machine, or any cluster: SSH, Kubernetes, HPC job
  queues through dask-jobqueue). Models travel as the recipes that build them
  (:func:`nutslite.model.picklable`); a worker whose engine cache is warm compiles nothing;
* any other executor, for example a ``ProcessPoolExecutor`` (arguments must then pickle with the
  standard ``pickle``; Dask uses ``cloudpickle``, which also sends lambdas).

Dask is optional (``pip install "nutslite[dask]"``) and imported only by :func:`cluster` and when a
``Client`` is passed; ``import nutslite`` never needs it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def as_executor(executor: Any) -> cf.Executor | None:
    """``executor`` as a ``concurrent.futures.Executor``: a Dask ``Client`` becomes
    ``client.get_executor()``, an ``Executor`` stays itself, ``None`` stays ``None`` (in-process
    threads). Anything else is a ``TypeError`` naming what is accepted."""
    if executor is None or isinstance(executor, cf.Executor):
        return executor
    if type(executor).__module__.startswith("distributed") and hasattr(executor, "get_executor"):
        return executor.get_executor()
    raise TypeError(
        f"executor must be a concurrent.futures.Executor or a dask.distributed.Client, got "
        f"{type(executor).__name__}"
    )


def in_process(executor: cf.Executor | None) -> bool:
    """Whether ``executor`` runs its tasks in this process (``None`` or a thread pool): its
    tasks then share this process's warning filters and need not pickle."""
    return executor is None or isinstance(executor, cf.ThreadPoolExecutor)


def map_unordered(
    function: Callable[..., Any],
    arguments: Iterable[tuple],
    executor: Any = None,
    max_workers: int | None = None,
) -> Iterator[Any]:
    """Yield ``function(*args)`` for every ``args`` of ``arguments`` as each finishes (in the
    order they finish, not the order given). ``executor`` as in the module docstring; without one,
    a thread pool of ``max_workers`` threads (default: the number of CPUs) runs them and is shut
    down afterwards. The first task that raises stops the iteration with its exception and
    cancels the tasks not yet started."""
    executor = as_executor(executor)
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(
                cf.ThreadPoolExecutor(max_workers=max_workers or os.cpu_count() or 1)
            )
        futures = [executor.submit(function, *args) for args in arguments]
        try:
            for future in cf.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


@contextlib.contextmanager
def cluster(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask ``Client`` for the duration of a ``with`` block, or ``None`` for in-process threads.

    ``scheduler``: the address of a running scheduler (``tcp://host:8786``), started for example by
    ``dask scheduler`` and ``dask worker``, dask-jobqueue or dask-kubernetes. ``workers``: start a
    ``LocalCluster`` of that many worker processes with one thread each, closed at the end. With
    neither, yields ``None``. Raises ``ImportError`` naming the extra when Dask is missing.
    """
    if scheduler is not None and workers is not None:
        raise ValueError("give either a scheduler address or a number of local workers, not both")
    if scheduler is None and workers is None:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:
        raise ImportError(
            'running on a Dask cluster needs dask.distributed: pip install "nutslite[dask]"'
        ) from err
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                     dashboard_address=":0") as local,
        Client(local) as client,
    ):
        yield client
