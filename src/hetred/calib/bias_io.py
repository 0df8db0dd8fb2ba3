"""Files of the bias stage (:mod:`hetred.calib.bias`): the unit's zro frames from the month's
tarlist and tars, the per-unit frame stack on disk, the products and the QA plot.

Memory does not grow with the number of frames: each member is decoded once, its trimmed raw
uint16 rows go to an unlinked temporary file (2.1 MB per frame), and the combine reads one band
of rows of all frames at a time (``band_mib``, 64 MiB by default) with ``os.pread``.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from astropy.io import fits

from hetred._ext import boxfilter as K
from hetred._version import __version__
from hetred.calib.bias import (CENTER_COLS, CENTER_ROWS, STAGE, BiasSettings, FrameStats,
                               frame_stats, frame_verdict)
from hetred.errors import HetredError, RawReadError
from hetred.io.atomic import atomic_path, write_fits_atomic, write_text_atomic
from hetred.io.raw import RawAmp, iter_members, read_raw_file
from hetred.layout import Layout
from hetred.lists.tarlist import TarEntry, month_entries
from hetred.virus import amp as ampgeom

#: CONTID of a frame without one (improcb writes "S/N 0666")
NO_CONTID = "0666"
#: imcmb skips values v with nint(v) == -666 (Karl's blank); nint rounds halves away from zero
KARL_FLAG = -666.0


# --------------------------------------------------------------------------------------------
# the month's zro frames

def index_zro(entries: Iterable[TarEntry]) -> dict[tuple[int, str], list[TarEntry]]:
    """The zro entries by (IFU slot, amp), in tarlist order."""
    index: dict[tuple[int, str], list[TarEntry]] = {}
    for e in entries:
        if e.kind == "zro":
            index.setdefault((e.ifuslot, e.amp), []).append(e)
    return index


def zro_entries(layout: Layout, month: str, ifuslot: int, amp: str) -> list[TarEntry]:
    """The zro frames of one IFU slot and amp in the month's tarlist, in tarlist order."""
    return index_zro(month_entries(layout, month)).get((int(ifuslot), amp), [])


# --------------------------------------------------------------------------------------------
# the per-unit frame stack

class FrameStack:
    """Trimmed raw frames (uint16, 1032 x 1032) in an unlinked temporary file.

    ``add`` appends one frame; ``band`` returns rows [r0, r1) of some frames as float32 with
    each frame's overscan subtracted (``float32(raw) - float32(overscan)``, as improcb writes).
    """

    def __init__(self, tmpdir: str | os.PathLike | None = None) -> None:
        self._f = tempfile.TemporaryFile(prefix="hetred-bias-", dir=tmpdir)
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
        self._f.write(data.tobytes())
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


def band_rows(nframes: int, band_mib: float, ncol: int = ampgeom.NCOLS) -> int:
    """Rows per band so that one band of all frames takes about ``band_mib`` MiB (8..1032)."""
    rows = int(band_mib * 2**20 // max(1, nframes * ncol * 4))
    return max(8, min(ampgeom.NROWS, rows))


def combine_stack(stack: FrameStack, indices: Sequence[int], settings: BiasSettings) -> np.ndarray:
    """imcmb: per-pixel biweight of the frames ``indices`` of the stack, in row bands (float32)."""
    n = len(indices)
    nrow, ncol = stack.shape
    out = np.empty((nrow, ncol), dtype=np.float32)
    step = band_rows(n, settings.band_mib, ncol)
    buf = np.empty((n, step, ncol), dtype=np.float32)
    for r0 in range(0, nrow, step):
        r1 = min(nrow, r0 + step)
        band = stack.band(indices, r0, r1, out=buf[:, :r1 - r0])
        if band.min() <= KARL_FLAG + 0.5:      # imcmb leaves out values with nint(v) == -666
            band[(band > KARL_FLAG - 0.5) & (band <= KARL_FLAG + 0.5)] = np.nan
        loc, _ = K.biweight_stack(band.reshape(n, -1), want_scale=False)
        out[r0:r1] = loc.reshape(r1 - r0, ncol)
    return out


# --------------------------------------------------------------------------------------------
# reading the unit's frames

@dataclass
class FrameRecord:
    """One zro frame of a unit: what improcb and rpbias1 would say about it."""

    order: int                  #: position in the tarlist
    member: str                 #: the tarlist line (night/virus/virusOBS/expNN/virus/file)
    source: str                 #: tar::member (or the file) it was read from
    contid: str = ""
    specid: int = -1
    stats: FrameStats | None = None
    verdict: str = "unreadable"
    note: str = ""
    index: int = -1             #: position in the frame stack (used frames only)


def _sources(layout: Layout, entries: Iterable[TarEntry]) -> dict[Path, list[tuple[int, TarEntry]]]:
    by_tar: dict[Path, list[tuple[int, TarEntry]]] = {}
    for k, e in enumerate(entries):
        by_tar.setdefault(layout.path("raw_tar", night=e.night, obs=e.obs), []).append((k, e))
    return by_tar


def _judge(rec: FrameRecord, amp: RawAmp, entry: TarEntry, stack: FrameStack,
           settings: BiasSettings) -> None:
    if amp.amp != entry.amp or amp.ifuslot != entry.ifuslot:
        rec.verdict = "unreadable"
        rec.note = (f"{rec.source}: header says IFU slot {amp.ifuslot:03d} amp {amp.amp}, "
                    f"the file name {entry.ifuslot:03d}{entry.amp}")
        return
    rec.contid = amp.contid or NO_CONTID
    rec.specid = amp.specid
    rec.stats = frame_stats(amp.data)
    rec.verdict, rec.note = frame_verdict(rec.stats, amp.is_saturated(), settings)
    if rec.verdict == "used":
        rec.index = stack.add(amp.data, rec.stats.overscan)


def read_frames(layout: Layout, entries: Sequence[TarEntry], stack: FrameStack,
                settings: BiasSettings) -> list[FrameRecord]:
    """Read every entry once (each tar opened once), judge it, stack the used ones.

    A member that cannot be read fails that frame only: its record is ``unreadable`` with the
    one-line reason naming the tar and member.  Where the tar is absent the untarred file is
    read (rbfits0's "not tarred yet" branch).
    """
    records: list[FrameRecord] = []
    for tar, items in _sources(layout, entries).items():
        if tar.exists():
            got: Iterable[RawAmp | RawReadError] = iter_members(tar, [e.member for _, e in items])
            srcs = [f"{tar}::{e.member}" for _, e in items]
        else:
            got, srcs = [], []
            for _, e in items:
                path = layout.path("raw_untarred", **e.__dict__)
                srcs.append(str(path))
                if path.exists():
                    try:
                        got.append(read_raw_file(path))
                    except RawReadError as err:
                        got.append(err)
                else:
                    got.append(RawReadError(f"{tar}::{e.member}",
                                            "neither the tar nor the untarred file exists"))
        for (order, e), src, item in zip(items, srcs, got):
            rec = FrameRecord(order=order, member=e.line, source=src)
            if isinstance(item, RawReadError):
                rec.verdict, rec.note = "unreadable", str(item).replace("\n", " ")
            else:
                _judge(rec, item, e, stack, settings)
            records.append(rec)
    records.sort(key=lambda r: r.order)
    return records


# --------------------------------------------------------------------------------------------
# writing

def _fmt(v: float | None) -> str:
    return f"{v:10.3f}" if v is not None else f"{'-':>10}"


def write_frames_table(layout: Layout, month: str, ifuslot: int, amp: str,
                       records: Sequence[FrameRecord], settings: BiasSettings) -> Path:
    """The per-frame table (Karl's norm*.dat, one line per frame, with the verdict)."""
    path = layout.path("bias_frames", month=month, ifuslot=ifuslot, amp=amp)
    lines = [
        f"# hetred {__version__} bias: zro frames of IFU slot {ifuslot:03d} amp {amp}, month {month}",
        "# overscan: biweight of raw columns 1034-1060, rows 10-1032; level, scale: biweight of",
        f"# columns/rows {CENTER_COLS[0]}-{CENTER_COLS[1]} x {CENTER_ROWS[0]}-{CENTER_ROWS[1]} "
        f"after overscan subtraction (ADU). used: {settings.scale_lo:g} < scale < {settings.scale_hi:g}",
        "# member contid specid overscan level scale verdict note",
    ]
    for r in records:
        s = r.stats
        lines.append(" ".join([r.member, r.contid or "-", f"{r.specid:03d}" if r.specid >= 0 else "-",
                               _fmt(s.overscan if s else None), _fmt(s.level if s else None),
                               _fmt(s.scale if s else None), r.verdict, r.note or "-"]))
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _header(month: str, ifuslot: int, amp: str, specid: int, contid: str,
            recs: Sequence[FrameRecord], nreject: int, settings: BiasSettings, what: str) -> fits.Header:
    h = fits.Header()
    members = sorted(r.member for r in recs)
    digest = hashlib.sha1("\n".join(members).encode()).hexdigest()
    for key, value, comment in [
        ("OBJECT", what, "hetred bias stage product"),
        ("BUNIT", "adu", "overscan-subtracted ADU"),
        ("MONTH", month, "month of the zro frames"),
        ("IFUSLOT", f"{ifuslot:03d}", ""),
        ("SPECID", f"{specid:03d}", ""),
        ("CONTID", f"S/N {contid}", "controller"),
        ("AMP", amp, "CCDPOS + CCDHALF"),
        ("ORIENT", "RAW", "readout orientation, not flipped (as Karl)"),
        ("TRIMSEC", ampgeom.TRIMSEC, "of the raw frame; overscan removed"),
        ("NFRAMES", len(recs), "zro frames combined"),
        ("NREJECT", nreject, "zro frames of the unit rejected"),
        ("SCALELO", settings.scale_lo, "frames kept if SCALELO < scale < SCALEHI"),
        ("SCALEHI", settings.scale_hi, ""),
        ("COMBINE", "biweight", "per-pixel Karl biwgt (imcmb)"),
        ("INPHASH", digest, "sha1 of sorted inputs"),
        ("HETREDV", __version__, "hetred version"),
    ]:
        h[key] = (value, comment)
    for m in members:
        h.add_history(f"input {m}")
    return h


def write_products(layout: Layout, month: str, ifuslot: int, amp: str, specid: int, contid: str,
                   unsmoothed: np.ndarray, master: np.ndarray, traps: Sequence[tuple[int, int]],
                   recs: Sequence[FrameRecord], nreject: int, settings: BiasSettings) -> list[Path]:
    """Write the master, the unsmoothed combination and the trap list; returns their paths."""
    f = dict(month=month, specid=specid, contid=contid, amp=amp)
    p_master = layout.path("masterbias", **f)
    p_unsm = layout.path("masterbias_unsmoothed", **f)
    p_traps = layout.path("masterbias_traps", **f)

    h = _header(month, ifuslot, amp, specid, contid, recs, nreject, settings, "masterbias")
    h["BOX"] = (f"{settings.box_cols} {settings.box_rows}", "imbox2 box x y, biweight")
    h["BOXRAD"] = (settings.box_radius, "inner radius left out (centre pixel)")
    h["NTRAPS"] = (len(traps), "charge-trap columns zeroed (imgetctrap)")
    h["TRAPSIG"] = (settings.trap_sigma, "trap hit: > TRAPSIG biweight sigma")
    write_fits_atomic(p_master, fits.HDUList([fits.PrimaryHDU(np.asarray(master, np.float32), h)]))

    hu = _header(month, ifuslot, amp, specid, contid, recs, nreject, settings, "masterbias_unsmoothed")
    write_fits_atomic(p_unsm, fits.HDUList([fits.PrimaryHDU(np.asarray(unsmoothed, np.float32), hu)]))

    lines = [f"# hetred {__version__} charge traps of masterbias_{specid:03d}_{contid}_{amp} ({month})",
             "# column first_row (1-based, raw orientation; zeroed from first_row to the last row)"]
    lines += [f"{c:6d} {r:6d}" for c, r in traps]
    write_text_atomic(p_traps, "\n".join(lines) + "\n")
    return [p_master, p_unsm, p_traps]


def write_qa(layout: Layout, unit: str, products: Sequence[dict]) -> Path:
    """QA PNG of a unit: each master bias (raw orientation) with its trap columns marked."""
    from matplotlib.figure import Figure      # no pyplot: the Agg canvas, no global backend

    path = layout.path("qa", stage=STAGE, name=f"{unit}.png")
    n = max(1, len(products))
    fig = Figure(figsize=(5.0 * n, 5.2), dpi=80)
    for k, p in enumerate(products):
        ax = fig.add_subplot(1, n, k + 1)
        img = p["_image"]
        shown = img[::2, ::2]
        good = shown[shown != 0]
        lo, hi = (np.percentile(good, [1, 99]) if good.size else (0.0, 1.0))
        ax.imshow(shown, origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
                  extent=(0.5, img.shape[1] + 0.5, 0.5, img.shape[0] + 0.5))
        for col, row in p["traps"]:
            ax.plot([col, col], [row, img.shape[0]], color="red", lw=0.8)
        ax.set_title(f"{unit} CONTID {p['contid']}\n{p['nframes']} frames, {p['ntraps']} traps "
                     f"[{lo:.2f}, {hi:.2f}] ADU", fontsize=8)
        ax.set_xlabel("column (raw)", fontsize=7)
        ax.set_ylabel("row (raw)", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.subplots_adjust(left=0.16 / n, right=1 - 0.03 / n, bottom=0.11, top=0.88, wspace=0.35)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
