"""A stack of trimmed raw frames on disk, read back in row bands (bias and background stages).

Memory does not grow with the number of frames: each member is decoded once, its trimmed raw
uint16 rows go to an unlinked temporary file (2.1 MB per frame), and a combine reads one band
of rows of all frames at a time with ``os.pread``.
"""
from __future__ import annotations

import os
import tempfile
from typing import Sequence

import numpy as np

from hetred.errors import HetredError, WriteError
from hetred.virus import amp as ampgeom

#: imcmb skips values v with nint(v) == -666 (Karl's blank); nint rounds halves away from zero
KARL_FLAG = -666.0


class FrameStack:
    """Trimmed raw frames (uint16, 1032 x 1032) in an unlinked temporary file.

    ``add`` appends one frame; ``band`` returns rows [r0, r1) of some frames as float32 with
    each frame's overscan subtracted (``float32(raw) - float32(overscan)``, as improcb writes).
    """

    def __init__(self, tmpdir: str | os.PathLike | None = None) -> None:
        self._where = stack_description(tmpdir)
        try:
            self._f = tempfile.TemporaryFile(prefix="hetred-bias-", dir=tmpdir)
        except OSError as err:
            raise WriteError(self._where, err) from None
        self.overscan: list[np.float32] = []
        self.shape = (ampgeom.NROWS, ampgeom.NCOLS)
        self._frame_bytes = self.shape[0] * self.shape[1] * 2

    def __enter__(self) -> FrameStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    def __len__(self) -> int:
        return len(self.overscan)

    def add(self, raw: np.ndarray, overscan: float) -> int:
        """Store the data section of a raw (1032, 1064) uint16 frame; returns its index."""
        data = np.ascontiguousarray(ampgeom.trim(raw), dtype=np.uint16)
        try:
            self._f.write(data.tobytes())
            self._f.flush()
        except OSError as err:
            raise WriteError(self._where, err) from None
        self.overscan.append(np.float32(overscan))
        return len(self.overscan) - 1

    def band(self, indices: Sequence[int], r0: int, r1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows [r0, r1) of the frames ``indices``: float32 (n, r1 - r0, 1032), overscan removed."""
        self._f.flush()
        ncol = self.shape[1]
        nb = (r1 - r0) * ncol * 2
        if out is None:
            out = np.empty((len(indices), r1 - r0, ncol), dtype=np.float32)
        fd = self._f.fileno()
        for k, i in enumerate(indices):
            buf = os.pread(fd, nb, i * self._frame_bytes + r0 * ncol * 2)
            if len(buf) != nb:
                raise HetredError(f"frame stack file is short (frame {i}, rows {r0}-{r1})")
            raw = np.frombuffer(buf, dtype=np.uint16).reshape(r1 - r0, ncol)
            np.subtract(raw, self.overscan[i], out=out[k], dtype=np.float32)
        return out


def stack_description(tmpdir: str | os.PathLike | None) -> str:
    """How messages name an unlinked temporary stack file: its folder and the setting."""
    where = tmpdir if tmpdir is not None else tempfile.gettempdir()
    return f"the temporary frame stack in {where} (setting tmpdir)"


def band_rows(nframes: int, band_mib: float, ncol: int = ampgeom.NCOLS) -> int:
    """Rows per band so that one band of all frames takes about ``band_mib`` MiB (8..1032)."""
    rows = int(band_mib * 2**20 // max(1, nframes * ncol * 4))
    return max(8, min(ampgeom.NROWS, rows))
