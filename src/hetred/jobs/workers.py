"""Worker processes that die with their parent (``hetred run --jobs``, ``twical --jobs``, ``sci --jobs``).

A ``ProcessPoolExecutor`` worker waits on its call queue for ever when the parent is killed
outright (``kill -9``, the OOM killer): nothing tells it. :func:`process_pool` gives every worker
an initializer that asks the kernel for SIGTERM when the parent dies (Linux ``prctl
PR_SET_PDEATHSIG``, through ctypes) and, where that is not available, a watchdog thread that
checks ``os.getppid()`` every second. SIGTERM becomes ``SystemExit`` in hetred's processes
(:func:`hetred.cli.main`), so the worker's running unit leaves a failed marker ("interrupted")
and removes its temporary files; a worker that does not unwind within ``GRACE`` seconds is ended
with ``os._exit``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1
GRACE = 30.0          #: s a worker has to unwind after its parent died


def _prctl_pdeathsig(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, signalled: bool, poll: float = 1.0) -> None:
    while True:
        time.sleep(poll)
        if os.getppid() != parent:
            if not signalled:                # the kernel did not send SIGTERM itself
                os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(GRACE)
            os._exit(143)


def die_with_parent(parent: int) -> None:
    """Pool initializer: end this worker when the process ``parent`` ends (module docstring)."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminated)
    signalled = _prctl_pdeathsig(signal.SIGTERM)
    if os.getppid() != parent:        # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
    # the watchdog covers systems without prctl, and ends a worker that has not unwound from
    # SIGTERM within GRACE seconds (e.g. one that went back to wait on its call queue)
    threading.Thread(target=_watch, args=(parent, signalled), name="hetred-parent-watch",
                     daemon=True).start()


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``jobs`` workers that end when this process ends."""
    return ProcessPoolExecutor(max_workers=jobs, initializer=die_with_parent, initargs=(os.getpid(),))
