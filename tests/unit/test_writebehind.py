"""Write-behind: the file's bytes are the ones written; older windows leave the page cache; an fd
that does not support it (a pipe) makes it a no-op."""
from __future__ import annotations

import os

import numpy as np
import pytest

from hetred.io import writebehind
from hetred.io.writebehind import WriteBehind

pytestmark = pytest.mark.skipif(writebehind._SFR is None, reason="no sync_file_range / posix_fadvise here")


def test_content_unchanged_and_windows_dropped(tmp_path, monkeypatch):
    dropped = []
    real = os.posix_fadvise

    def spy(fd, start, length, advice):
        dropped.append((start, length, advice))
        return real(fd, start, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    p = tmp_path / "big.bin"
    rng = np.random.default_rng(1)
    blocks = [rng.integers(0, 255, 300_000, dtype=np.uint8).tobytes() for _ in range(12)]
    with open(p, "wb") as fh:
        wb = WriteBehind(fh.fileno(), window=1 << 20, lag=2)
        for k, b in enumerate(blocks):
            fh.write(b)
            fh.flush()
            if k == 5:                              # rewriting an already dropped range is fine
                fh.seek(10)
                fh.write(b"rewritten")
                fh.seek(0, os.SEEK_END)
                fh.flush()
            wb.advance()
        assert wb.active
    want = bytearray(b"".join(blocks))
    want[10:19] = b"rewritten"
    assert p.read_bytes() == bytes(want)
    assert dropped and all(a == os.POSIX_FADV_DONTNEED for _, _, a in dropped)
    starts = [s for s, _, _ in dropped]
    assert starts[0] == 0 and starts == sorted(starts)
    assert all(s + n <= len(want) for s, n, _ in dropped)
    assert len(wb.marks) <= wb.lag + 1              # at most lag windows in flight


def test_unsupported_fd_is_a_no_op():
    r, w = os.pipe()
    try:
        wb = WriteBehind(w, window=1, lag=1)
        os.write(w, b"x" * 10)
        wb.advance()                                # fstat size of a pipe is 0: nothing to do
        wb.marks.append(0)
        assert wb._call(0, 10, 2) is False          # ESPIPE: switched off, never raises
        wb.advance()
        assert not wb.active
    finally:
        os.close(r)
        os.close(w)
