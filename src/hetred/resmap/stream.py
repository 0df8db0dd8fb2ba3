"""The multi files of a month for one camera amp, read a block of fiber rows at a time.

Karl's mkres0/mklist0 list ``multi_{SSS}_???_???_{AA}.fits`` of every exposure of the shots in
``listmth``; imcmbext then reads, for each fiber row, that row of every file (so memory does not
grow with the number of files). Here: :func:`month_files` lists the files of the month's science
shots (tarlist), :class:`RowReader` keeps each file's HDU offsets (one header scan per file) and
:meth:`RowReader.block` reads rows [r0, r1) of the HDUs asked for from every file straight from
disk (big-endian float32), giving (nfiles, r1 - r0, ncol) arrays. The block size follows the
memory budget (:func:`rows_per_block`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hetred.errors import HetredError
from hetred.io.fastfits import scan
from hetred.layout import Layout, parse

HDUS = ("sky_subtracted", "sky_spectrum", "error1d", "chi2")


def month_files(layout: Layout, entries, specid: int, amp: str) -> list[Path]:
    """Every multi file of camera ``specid`` and ``amp`` in the science shots of ``entries``
    (tarlist rows), sorted."""
    shots = sorted({(e.night, e.obs) for e in entries if e.kind == "sci"})
    out = []
    for night, obs in shots:
        out += list(layout.glob("multi", night=night, obs=obs, specid=specid, amp=amp))
    return sorted(set(out))


def month_cameras(layout: Layout, entries) -> list[tuple[int, str]]:
    """(specid, amp) of the month's science amps: SPECID from each night's fplane
    (``fplane/fp{night}.txt``), else from the multi files' names."""
    from hetred.virus.fplane import read_fplane

    out: set[tuple[int, str]] = set()
    by_night: dict[str, set[tuple[int, str]]] = {}
    for e in entries:
        if e.kind == "sci":
            by_night.setdefault(e.night, set()).add((e.ifuslot, e.amp))
    for night, pairs in by_night.items():
        fp = layout.path("fplane", night=night)
        slots = read_fplane(fp) if fp.exists() else {}
        for slot, amp in pairs:
            if slot in slots:
                out.add((int(slots[slot].specid), amp))
    if not out:
        for night, obs in sorted({(e.night, e.obs) for e in entries if e.kind == "sci"}):
            for p in layout.glob("multi", night=night, obs=obs):
                f = parse("multi", str(p.relative_to(layout.red)))
                if f is not None:
                    out.add((int(f["specid"]), str(f["amp"])))
    return sorted(out)


def rows_per_block(nfiles: int, ncol: int, nhdu: int, memory_mb: float) -> int:
    """Rows per block so that nhdu (nfiles, rows, ncol) float32 stacks and their float64 work
    copies stay within ``memory_mb`` (at least one row)."""
    per_row = max(1, nfiles) * ncol * nhdu * 4 * 3      # the stack, the NaN-masked copy, sort workspace
    return max(1, int(memory_mb * 1e6 // per_row))


class RowReader:
    """Rows of named (nrow, ncol) float32 image HDUs of many FITS files (module docstring)."""

    def __init__(self, paths: list[Path], names: tuple[str, ...] = HDUS) -> None:
        self.paths = list(paths)
        self.names = names
        self.offsets: list[dict[str, int]] = []
        self.shape: tuple[int, int] | None = None
        for p in self.paths:
            try:
                hdus = {h["name"]: h for h in reversed(scan(p))}
            except OSError as err:
                raise HetredError(f"{p}: unreadable ({err})") from None
            off = {}
            for n in names:
                h = hdus.get(n)
                if h is None or h["bitpix"] != -32 or len(h["shape"]) != 2:
                    raise HetredError(f"{p}: no float32 image HDU {n!r} (not a multi file?)")
                if self.shape is None:
                    self.shape = tuple(h["shape"])         # type: ignore[assignment]
                elif tuple(h["shape"]) != self.shape:
                    raise HetredError(f"{p}: HDU {n} of shape {h['shape']}, others {self.shape}")
                off[n] = int(h["offset"])
            self.offsets.append(off)

    def block(self, r0: int, r1: int) -> dict[str, np.ndarray]:
        """{name: (nfiles, r1 - r0, ncol) float32} of rows [r0, r1)."""
        assert self.shape is not None
        ncol = self.shape[1]
        out = {n: np.empty((len(self.paths), r1 - r0, ncol), np.float32) for n in self.names}
        count = (r1 - r0) * ncol
        for i, (p, off) in enumerate(zip(self.paths, self.offsets)):
            with open(p, "rb") as fh:
                for n in self.names:
                    fh.seek(off[n] + 4 * r0 * ncol)
                    a = np.fromfile(fh, dtype=">f4", count=count)
                    if a.size != count:
                        raise HetredError(f"{p}: truncated in HDU {n}")
                    out[n][i] = a.reshape(r1 - r0, ncol)
        return out
