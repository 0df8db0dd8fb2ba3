"""The zro frames of a bias unit: found in the month's tarlist, read once from their tars, judged
(improcb, rpbias1) and stacked on disk; the per-pixel biweight of the stack in row bands (imcmb).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from hetred._ext import boxfilter as K
from hetred.bias.masterbias import FrameStats, frame_stats, frame_verdict
from hetred.bias.settings import BiasSettings
from hetred.errors import RawReadError
from hetred.io.framestack import KARL_FLAG, FrameStack, band_rows
from hetred.io.raw import RawAmp, iter_members, read_raw_file
from hetred.layout import Layout
from hetred.lists.tarlist import TarEntry, month_entries
from hetred.virus.ids import NO_CONTID


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
