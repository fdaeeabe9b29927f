"""Every core on one machine: a function mapped over tasks by forked worker processes.

The workers are forked from the process that already holds the compiled
definitions, so they share its memory pages instead of loading or parsing
anything again; only the small tasks (a file name, or a chunk of NDJSON lines)
and their results (issues) cross between processes.  Results come back in the
order of the tasks, and at most a few tasks per worker are in flight, so the
input is read as it is consumed (memory stays flat whatever its size).
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: The function the workers run: set in the parent just before the fork, inherited by the workers.
_work: Callable | None = None
#: Tasks queued or running per worker: enough to keep every worker busy while the parent collects results.
IN_FLIGHT = 4
#: Finished results held per worker while an earlier, longer task is still running (results come
#: out in task order): a worker goes on with later tasks instead of waiting for a slow one elsewhere
#: (a 40 MB Bundle among small files), and what is held stays bounded.
AHEAD = 128


def cores() -> int:
    """The cores this process may use (the default for ``-j``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def available() -> bool:
    """Forking is how the workers share the loaded definitions; without it, one process."""
    return "fork" in multiprocessing.get_all_start_methods()


def _init_worker() -> None:
    # Ctrl-C goes to the whole process group: the parent stops the workers, they say nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(task):
    return _work(task)


class _Done:
    """A result computed in the parent, standing in the queue beside the workers' futures."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value

    def done(self) -> bool:
        return True

    def cancel(self) -> bool:
        return False


def ordered_map(fn: Callable[[T], R], tasks: Iterable[T], jobs: int,
                before_fork: Callable[[], object] | None = None,
                in_parent: Callable[[T], bool] | None = None,
                meanwhile: Callable[[], object] | None = None) -> Iterator[tuple[T, R]]:
    """(task, fn(task)) for every task, in task order, computed by ``jobs`` forked workers.

    With one job, one task or no fork on this platform, everything runs in this process.
    ``before_fork`` loads what the workers should share (run once, in the parent);
    tasks for which ``in_parent`` is true run in the parent (e.g. reading standard input,
    which workers do not have); ``meanwhile`` runs once in the parent while the workers have
    their first tasks (in one process: first).
    """
    global _work
    it = iter(tasks)
    head = []
    for task in it:
        head.append(task)
        if len(head) == 2:
            break
    if jobs <= 1 or len(head) < 2 or not available():
        if meanwhile is not None:
            meanwhile()
        for task in head:
            yield task, fn(task)
        for task in it:
            yield task, fn(task)
        return
    if before_fork is not None:
        before_fork()
    _work = fn
    gc.collect()
    gc.freeze()  # objects made so far are never touched by the collector: their pages stay shared
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker)
    pending: deque = deque()  # (task, future) in task order, finished or not
    running: set = set()  # the futures among them not finished yet
    done = False
    try:
        for task in _chain(head, it):
            local = in_parent is not None and in_parent(task)
            fut = _Done(fn(task)) if local else pool.submit(_run, task)
            pending.append((task, fut))
            if not local:
                running.add(fut)
            if meanwhile is not None and len(pending) >= jobs * IN_FLIGHT:
                meanwhile()
                meanwhile = None
            while True:
                while pending and pending[0][1].done():  # what is ready in order goes out at once
                    task0, fut = pending.popleft()
                    yield task0, fut.result()
                running = {f for f in running if not f.done()}
                if len(running) < jobs * IN_FLIGHT and len(pending) < jobs * AHEAD:
                    break
                wait(running, return_when=FIRST_COMPLETED)  # (running is not empty: the head is in it)
        if meanwhile is not None:
            meanwhile()
        while pending:
            task0, fut = pending.popleft()
            yield task0, fut.result()
        done = True
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=done, cancel_futures=True)
        _work = None
        gc.unfreeze()


def _chain(head: list, rest: Iterator) -> Iterator:
    yield from head
    yield from rest
