"""The frames of a bgmodel unit (improcn): level of a frame, the unit's sci or twi frames read once
from their tars, judged against the kind's level cut, stacked on disk and combined per pixel
(imcmb) after scaling to level 25. Rows and columns are Karl's 1-based numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from astropy.io import fits

from hetred._ext import boxfilter as K
from hetred.background.settings import CENTER, F32, XNORM, BgSettings
from hetred.errors import HetredError, RawReadError
from hetred.io.framestack import band_rows
from hetred.io.raw import iter_members, read_raw_file
from hetred.layout import Layout
from hetred.lists.tarlist import TarEntry, month_entries
from hetred.stats import biweight
from hetred.virus import amp as ampgeom
from hetred.virus.ids import NO_CONTID


def frame_level(raw: np.ndarray, bias: np.ndarray) -> tuple[float, float]:
    """(overscan, central biweight) in ADU of a raw (1032, 1064) uint16 frame (improcn).

    The overscan is Karl's biweight of columns 1034-1060, rows 10-1032; the central biweight is
    that of ``float32(raw) - overscan - bias`` over rows and columns 300-700 of the trimmed
    frame; the frame's *level* is this / 25.
    """
    raw = np.asarray(raw)
    if raw.dtype != np.uint16:
        raw = np.clip(np.rint(raw), 0, 65535).astype(np.uint16)
    ov = F32(K.biweight_uint16(ampgeom.overscan_region(raw), 0.0)[0])
    s = slice(CENTER[0] - 1, CENTER[1])
    centre = (raw[s, s].astype(F32) - ov) - np.asarray(bias, F32)[s, s]
    return float(ov), float(biweight(centre)[0])


def normalise(trimmed: np.ndarray, central: float) -> np.ndarray:
    """improcn's scaling of an overscan- and bias-subtracted frame: divided by central/25 when
    the central biweight is above 1 ADU, else all zeros."""
    if central > 1.0:
        return trimmed / (F32(central) / F32(XNORM))
    return np.zeros_like(trimmed, dtype=F32)


def index_frames(entries: Iterable[TarEntry]) -> dict[tuple[int, str, str], list[TarEntry]]:
    """The sci and twi entries by (IFU slot, amp, type), in tarlist order."""
    out: dict[tuple[int, str, str], list[TarEntry]] = {}
    for e in entries:
        if e.kind in ("sci", "twi"):
            out.setdefault((e.ifuslot, e.amp, e.kind), []).append(e)
    return out


def month_index(layout: Layout, month: str) -> dict[tuple[int, str, str], list[TarEntry]]:
    """:func:`index_frames` of the month's tarlist (made first when missing)."""
    return index_frames(month_entries(layout, month))


@dataclass
class FrameRecord:
    """One frame of a unit and improcn's numbers for it (ADU; level = central / 25)."""

    order: int
    member: str
    source: str
    contid: str = ""
    specid: int = -1
    overscan: float = float("nan")
    central: float = float("nan")
    verdict: str = "unreadable"    #: used, outside_cut, no_masterbias, other_specid, unreadable
    note: str = ""
    index: int = -1                #: position in the frame stack (kept frames)

    @property
    def level(self) -> float:
        return self.central / XNORM


def _iter_raw(layout: Layout, entries: Sequence):
    """(order, entry, source, RawAmp or RawReadError) for every entry, each tar opened once;
    the untarred file where the tar is absent (rgfits0)."""

    by_tar: dict[Path, list] = {}
    for k, e in enumerate(entries):
        by_tar.setdefault(layout.path("raw_tar", night=e.night, obs=e.obs), []).append((k, e))
    for tar, items in by_tar.items():
        if tar.exists():
            for (k, e), got in zip(items, iter_members(tar, [e.member for _, e in items])):
                yield k, e, f"{tar}::{e.member}", got
            continue
        for k, e in items:
            path = layout.path("raw_untarred", **e.__dict__)
            try:
                if not path.exists():
                    raise RawReadError(f"{tar}::{e.member}", "neither the tar nor the untarred file exists")
                yield k, e, str(path), read_raw_file(path)
            except RawReadError as err:
                yield k, e, str(path), err


def read_masterbias(layout: Layout, month: str, specid: int, contid: str, amp: str) -> np.ndarray | None:
    """The month's master bias of a controller (None when there is none), float32 (1032, 1032)."""
    p = layout.path("masterbias", month=month, specid=specid, contid=contid, amp=amp)
    if not p.exists():
        return None
    try:
        data = fits.getdata(p)
    except (OSError, ValueError, TypeError) as err:
        raise HetredError(f"master bias {p} is unreadable ({err})") from None
    if data is None or data.shape != (ampgeom.NROWS, ampgeom.NCOLS):
        raise HetredError(f"master bias {p} is not a 1032 x 1032 image")
    return np.asarray(data, F32)


def read_frames(layout: Layout, month: str, amp: str, kind: str, entries: Sequence, stack,
                settings: BgSettings) -> tuple[list[FrameRecord], dict[tuple[int, str], np.ndarray | None]]:
    """Read and measure every entry once; stack the frames that pass the kind's cut.

    Returns the records (tarlist order) and the master biases by (specid, contid) (None: missing).
    """

    biases: dict[tuple[int, str], np.ndarray | None] = {}
    records = []
    for k, e, src, got in _iter_raw(layout, entries):
        rec = FrameRecord(order=k, member=e.line, source=src)
        records.append(rec)
        if isinstance(got, RawReadError):
            rec.note = str(got).replace("\n", " ")
            continue
        if got.amp != e.amp or got.ifuslot != e.ifuslot:
            rec.note = f"header says {got.ifuslot:03d}{got.amp}, the file name {e.ifuslot:03d}{e.amp}"
            continue
        rec.contid, rec.specid = got.contid or NO_CONTID, got.specid
        key = (rec.specid, rec.contid)
        if key not in biases:
            biases[key] = read_masterbias(layout, month, rec.specid, rec.contid, amp)
        if biases[key] is None:
            rec.verdict, rec.note = "no_masterbias", f"masterbias_{rec.specid:03d}_{rec.contid}_{amp} missing"
            continue
        rec.overscan, rec.central = frame_level(got.data, biases[key])
        if settings.passes(kind, rec.level):
            rec.verdict, rec.index = "used", stack.add(got.data, rec.overscan)
        else:
            rec.verdict, rec.note = "outside_cut", f"level {rec.level:.3f}"
    records.sort(key=lambda r: r.order)
    return records, biases


def combine_frames(stack, recs: Sequence[FrameRecord], biases: Mapping, settings: BgSettings) -> np.ndarray:
    """imcmb of improcn's frames: per pixel, Karl's biweight of (raw - overscan - bias) / (central
    / 25) over the kept frames, read from the stack in row bands."""

    n = len(recs)
    nrow, ncol = stack.shape
    out = np.empty((nrow, ncol), F32)
    step = band_rows(n, settings.band_mib, ncol)
    buf = np.empty((n, step, ncol), F32)
    for r0 in range(0, nrow, step):
        r1 = min(nrow, r0 + step)
        band = stack.band([r.index for r in recs], r0, r1, out=buf[:, :r1 - r0])
        for k, r in enumerate(recs):
            band[k] -= biases[(r.specid, r.contid)][r0:r1]
            band[k] = normalise(band[k], r.central)
        out[r0:r1] = K.biweight_stack(band.reshape(n, -1))[0].reshape(r1 - r0, ncol)
    return out
