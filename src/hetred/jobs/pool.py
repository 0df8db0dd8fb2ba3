"""Worker processes for units run side by side (``hetred run --jobs``, ``twical --jobs``,
``sci --jobs``, ``astrom --jobs``), where a dead worker fails only its own unit, and every
worker dies with its parent (:func:`hetred.jobs.workers.die_with_parent`, the default
initializer).

A ``ProcessPoolExecutor`` of N processes is *broken* for good when one of them dies (SIGKILL,
the out-of-memory killer, a crash in C code): every unit still pending in it fails with
``BrokenProcessPool`` and nobody knows which unit killed it. Here each of the N workers is an
executor of its own (one process) that runs one unit at a time, so a death breaks only that
executor: the unit it was running is reported (with the signal or exit status), a fresh worker
takes the place of the dead one, and the other units go on.
"""
from __future__ import annotations

import os
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from hetred.jobs.units import UnitResult, mark_failed
from hetred.jobs.workers import die_with_parent
from hetred.layout import Layout

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerDied:
    """The result of a unit whose worker process ended without returning one."""

    exitcode: int | None = None      #: the process's exit code (-N: killed by signal N), if known

    @property
    def reason(self) -> str:
        """One line for the unit's failure."""
        code = self.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (the out-of-memory killer, or kill -9)" if -code == signal.SIGKILL else ""
            return f"its worker process was killed by {name}{hint}"
        if code:
            return f"its worker process exited with status {code} before the unit ended"
        return "its worker process died before the unit ended"


class WorkerPool:
    """``workers`` one-process executors; :meth:`imap` runs ``fn(item)`` for every item.

    ``initializer(*initargs)`` runs in every worker process when it starts (as for
    ``ProcessPoolExecutor``), also in a worker that replaces a dead one; by default
    :func:`hetred.jobs.workers.die_with_parent` of this process.
    """

    def __init__(self, workers: int, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        if initializer is None:                  # by default the workers die with this process
            initializer, initargs = die_with_parent, (os.getpid(),)
        self._initializer, self._initargs = initializer, initargs
        self._slots: list[ProcessPoolExecutor | None] = [None] * workers

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _executor(self, k: int) -> ProcessPoolExecutor:
        ex = self._slots[k]
        if ex is None:
            ex = ProcessPoolExecutor(max_workers=1, initializer=self._initializer, initargs=self._initargs)
            self._slots[k] = ex
        return ex

    def _replace(self, k: int) -> WorkerDied:
        """Retire the broken executor of slot ``k``; what is known of its dead process."""
        ex = self._slots[k]
        self._slots[k] = None
        if ex is None:
            return WorkerDied()
        # the executor keeps its processes in _processes (CPython); read them before shutdown
        # clears it, for the exit code (-9 = SIGKILL); without it the reason is less precise
        procs = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=True, cancel_futures=True)
        codes = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        return WorkerDied(codes[0] if codes else None)

    def _submit(self, k: int, fn: Callable[[T], Any], item: T) -> Future:
        try:
            return self._executor(k).submit(fn, item)
        except BrokenProcessPool:          # the idle worker died (e.g. the OOM killer): a new one
            self._replace(k)
            return self._executor(k).submit(fn, item)

    def imap(self, fn: Callable[[T], Any], items: Iterable[T]) -> Iterator[tuple[T, Any]]:
        """(item, fn(item)) in the order the units end; the result is a :class:`WorkerDied`
        when the item's worker died. An exception raised by ``fn`` is re-raised here."""
        todo = deque(items)
        free = list(range(self.workers))[::-1]
        running: dict[Future, tuple[T, int]] = {}
        while todo or running:
            while todo and free:
                k = free.pop()
                item = todo.popleft()
                running[self._submit(k, fn, item)] = (item, k)
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                item, k = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    result = self._replace(k)
                free.append(k)
                yield item, result

    def shutdown(self) -> None:
        """End every worker (pending work is cancelled)."""
        for k, ex in enumerate(self._slots):
            if ex is not None:
                ex.shutdown(wait=True, cancel_futures=True)
            self._slots[k] = None


def died_result(layout: Layout, stage: str, unit: str, died: WorkerDied) -> UnitResult:
    """The failed result of a unit whose worker died, its failed marker written (the unit could
    not write one)."""
    note = mark_failed(layout, stage, unit, died.reason)
    return UnitResult(stage, unit, "failed", message=died.reason + note)


__all__: Sequence[str] = ("WorkerDied", "WorkerPool", "died_result")
