"""Write-behind for very large output files: their written pages are sent to disk as they come
and dropped from the page cache once on disk, so that a file of many GB (a 78-IFU shot file:
18.5 GB) is written through a small, reused window of page-cache memory instead of filling it.

Why: the kernel caches every page written until memory runs short; writing 18.5 GB takes that
much fresh page cache, then the writer is throttled by dirty-page accounting, and other jobs lose
their cached files. On hetred's virtual machines the first touch of a memory page is also slow
(~2 s of kernel time per GB, measured: docs/stages/h5.md "Speed and memory"), so the 18.5 GB of
new cache cost ~40 s of the shot's 85 s. With write-behind the same pages are reused (the write
cost is then the disk's bandwidth, overlapped with the writer's CPU work).

How (the pattern of Linux's ``sync_file_range(2)`` manual): every ``window`` bytes written past
the last mark, writeback of that range is started (``SYNC_FILE_RANGE_WRITE``, which does not
wait); the range ``lag`` windows back is then waited for and dropped
(``posix_fadvise(DONTNEED)``, which drops only clean pages). File content is untouched: this only
decides when written pages go to disk and leave memory. Where the calls do not exist (not Linux)
or fail (a file system without them), :class:`WriteBehind` does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_WRITE, _WAIT_BEFORE, _WAIT_AFTER = 2, 1, 4          #: SYNC_FILE_RANGE_* (linux/fs.h)


def _sync_file_range():
    if not hasattr(os, "posix_fadvise"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SFR = _sync_file_range()


class WriteBehind:
    """Write-behind on an open file descriptor ``fd`` that grows at its end (module docstring).

    Call :meth:`advance` after each batch of writes (it reads the file size with ``fstat``).
    ``window`` (bytes) is the unit of writeback; ``lag`` windows stay in flight, so at most
    ``(lag + 1) * window`` bytes of this file are in the page cache at a time.
    """

    def __init__(self, fd: int, window: int = 128 << 20, lag: int = 2) -> None:
        self.fd, self.window, self.lag = fd, int(window), int(lag)
        self.marks: list[int] = [0]                   #: file offsets where writeback was started
        self.active = _SFR is not None

    def _call(self, start: int, length: int, flags: int) -> bool:
        if _SFR is None or _SFR(self.fd, start, length, flags) != 0:
            self.active = False                       # not supported here: leave the page cache to the kernel
        return self.active

    def advance(self) -> None:
        """Start writeback of what was written since the last mark; wait for and drop what is
        ``lag`` windows older."""
        if not self.active:
            return
        try:
            size = os.fstat(self.fd).st_size
        except OSError:
            self.active = False
            return
        if size - self.marks[-1] < self.window:
            return
        if not self._call(self.marks[-1], size - self.marks[-1], _WRITE):
            return
        self.marks.append(size)
        if len(self.marks) > self.lag + 1:
            start, stop = self.marks[0], self.marks[1]
            if not self._call(start, stop - start, _WAIT_BEFORE | _WRITE | _WAIT_AFTER):
                return
            try:
                os.posix_fadvise(self.fd, start, stop - start, os.POSIX_FADV_DONTNEED)
            except OSError:
                self.active = False
            del self.marks[0]
