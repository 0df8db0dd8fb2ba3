"""Step 5: background models, ``hetred bgmodel MONTH`` (docs/stages/bgmodel.md).

Replaces karlspipe hdr2.1 ``back/rpsci0kg`` (kind ``sci``), ``rpsci1kg`` (``bri``), ``rptwi0kg``
(``twi``), ``rgfits``/``rgfits0`` and the Fortran they run: ``improcn`` (overscan and master bias
removed, level = central biweight / 25, frame scaled to level 25), ``imcmb`` (per-pixel biweight)
and ``imgetgap`` (the background between and around the fiber blocks).

Unit: month x IFU slot x amp x kind, e.g. ``201801_053_LL_sci``. The unit's frames (sci frames
for sci and bri, twi frames for twi) are read once each from their tars; a frame is kept when its
level passes the kind's cut; the kept frames, scaled to level 25, are combined per pixel
(``bgcombined``) and :func:`background_model` (imgetgap) turns the combination into the model
(``bgmodel``). Both are 1032 x 1032 float32 in the RAW readout orientation, like Karl's.

Rows and columns below are Karl's 1-based numbers unless a name ends in ``0``.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from astropy.io import fits

from hetred._ext import boxfilter as K
from hetred._version import __version__
from hetred.errors import HetredError, RawReadError
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from hetred.stats import biweight
from hetred.virus import amp as ampgeom

STAGE = "bgmodel"
F32 = np.float32
XNORM = 25.0                        #: improcn: frames are scaled so that their level is 25
CENTER = (300, 700)                 #: improcn: rows and columns of the level region (1-based)
RAWTYPE = {"sci": "sci", "bri": "sci", "twi": "twi"}
KINDS = tuple(RAWTYPE)
# imgetgap parameters
NRCHECK = 35          #: rows searched for the first / last fiber
JUMP_SIGMA = 6.0      #: a fiber starts where a row is > 6 biweight sigma above the rows before it
IBIN = 9              #: columns in the biweight smoothing of the fiber edges
GAP_OFFSET = 40       #: gap search from first fiber + 40 to the middle, middle to last fiber - 40
GAP_HALF = 4          #: 9-row windows (j-4..j+4) for the gap search and the gap levels
FRAC = 0.1            #: Karl's extra node 10% of the way to the first gap (replaced, see docs)
ISUB, ISINGLE_MAX = 3, 17   #: bottom rows modelled one by one: up to first fiber - 3, at most 17
SINGLE_COLS = (400, 600)    #: columns of the per-row biweight of the bottom rows
REF_COL = 500               #: column whose first-fiber row sets the number of single rows
HIGH_NODE = 10.0            #: a node (gap/top) whose biweight over columns is above this is replaced
CLIP_SIGMA = 5.0            #: node values > 5 sigma above the biweight are left out of the smoothing
ISMOOTH = 13                #: columns per bin of the node smoothing (smxin)
POWER = 0.3                 #: rows between the single rows and the first gap: fac ** 0.3


@dataclass(frozen=True)
class BgSettings:
    """Settings of the bgmodel stage; ``[stages.bgmodel]`` in the config file sets any of them."""

    sci_lo: float = 0.2      #: rpsci0kg: $4 > 0.2 && $4 < xnorm (3)
    sci_hi: float = 3.0
    bri_lo: float = 2.0      #: rpsci1kg: $4 > xnl (2) && $4 < xnh (15)
    bri_hi: float = 15.0
    twi_lo: float = 100.0    #: rptwi0kg: $4 > 0.2 && $4 > xnorm (100); no upper limit
    band_mib: float = 64.0   #: memory for one band of all frames in the combine (MiB)
    tmpdir: str | None = None
    qa: bool = True

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> BgSettings:
        """Settings from a ``[stages.bgmodel]`` table; unknown keys and bad values are errors."""
        values, out = dict(values or {}), {}
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise HetredError(f"[stages.bgmodel]: unknown setting(s) {', '.join(unknown)} "
                              f"(known: {', '.join(f.name for f in fields(cls))})")
        for name, value in values.items():
            default = getattr(cls, name)
            try:
                if isinstance(default, bool) or isinstance(value, bool):
                    if not (isinstance(default, bool) and isinstance(value, bool)):
                        raise TypeError
                    out[name] = value
                else:
                    out[name] = float(value) if isinstance(default, float) else (str(value) if value else None)
            except (TypeError, ValueError):
                raise HetredError(f"[stages.bgmodel]: {name} = {value!r} is not valid") from None
        s = cls(**out)
        for k in KINDS:
            lo, hi = s.cut(k)
            if not lo >= 1.0 / XNORM or (hi is not None and not hi > lo):
                raise HetredError(f"[stages.bgmodel]: need 0.04 <= {k}_lo < {k}_hi, got {lo}, {hi}")
        return s

    def cut(self, kind: str) -> tuple[float, float | None]:
        """(lo, hi) of a kind: a frame is kept when lo < level < hi (hi None: no upper limit)."""
        if kind == "twi":
            return max(0.2, self.twi_lo), None
        return getattr(self, f"{kind}_lo"), getattr(self, f"{kind}_hi")

    def cut_text(self, kind: str) -> str:
        lo, hi = self.cut(kind)
        return f"level > {lo:g}" if hi is None else f"{lo:g} < level < {hi:g}"

    def passes(self, kind: str, level: float) -> bool:
        lo, hi = self.cut(kind)
        return bool(level > lo and (hi is None or level < hi))


# ------------------------------------------------------------------------------------------
# per frame (improcn)

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


# ------------------------------------------------------------------------------------------
# imgetgap

def _bw(a, axis=0):
    return biweight(np.ascontiguousarray(a, dtype=F32), axis=axis)


def _nint(x) -> np.ndarray:
    """Fortran NINT: round half away from zero."""
    x = np.asarray(x, dtype=np.float64)                 # exact for float32 input: no rounding in x + 0.5
    return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5)).astype(np.int64)


def _first_jump(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the first k (0-based, k >= 4) with seq[k] more than 6 biweight sigma above
    the biweight of seq[0..k] (itself included); and whether one was found."""
    ncol = seq.shape[1]
    pos = np.zeros(ncol, np.int64)
    found = np.zeros(ncol, bool)
    with np.errstate(all="ignore"):
        for k in range(4, seq.shape[0]):
            loc, sc = _bw(seq[:k + 1])
            hit = ((seq[k] - loc) / sc > F32(JUMP_SIGMA)) & ~found
            pos[hit] = k
            found |= hit
    return pos, found


def _smooth_rows(xrow: np.ndarray) -> np.ndarray:
    """Biweight of xrow over columns i-5..i+3 (Karl's window: ihalf = nint(10/2), cut at the ends)."""
    ncol = xrow.size
    ihalf = 5
    i = np.arange(1, ncol + 1)
    ibs = np.maximum(1, i - ihalf)
    ibs = np.where(ibs + IBIN - 1 > ncol, ncol - IBIN + 1, ibs)
    idx = (ibs[None, :] - 1) + np.arange(IBIN)[:, None]
    return _bw(xrow[idx])[0]


def fiber_edges(xd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ixl, ixu) per column, 1-based: the last row below the first fiber and the first row
    above the last one, from a 6-sigma jump in the first 35 rows (last 36 rows from the top),
    biweight-smoothed over 9 columns: ixl = nint(xb - 1), ixu = nint(xb + 1)."""
    nrow, ncol = xd.shape
    pos, found = _first_jump(xd[:NRCHECK])
    xrow = np.zeros(ncol, F32)               # Karl's xrow(1) starts at 0 (static storage)
    for i in range(ncol):
        if found[i]:
            xrow[i] = pos[i] + 1
        elif i > 0:
            xrow[i] = xrow[i - 1]            # not found: the previous column's row
    ixl = _nint(_smooth_rows(xrow) - F32(1))
    pos, found = _first_jump(xd[::-1][:NRCHECK + 1])
    top = np.where(found, nrow - pos, nrow).astype(F32)
    if not found[0]:
        top[0] = xrow[0]                     # column 1 keeps the bottom search's value
    ixu = _nint(_smooth_rows(top) + F32(1))
    return ixl, ixu


def gap_rows(xd: np.ndarray, ixl: np.ndarray, ixu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ixm1, ixm2) per column, 1-based: centres of the minimum 9-row sum (float32, summed in row
    order) over rows ixl+40..ncol/2 and ncol/2..ixu-40; first minimum wins; an empty range keeps
    the previous search's row (Karl's jmin)."""
    nrow, ncol = xd.shape
    nhalf = ncol // 2
    sums = xd[0:nrow - 2 * GAP_HALF].astype(F32)
    for k in range(1, 2 * GAP_HALF + 1):
        sums = sums + xd[k:nrow - 2 * GAP_HALF + k]
    centre = np.arange(GAP_HALF + 1, nrow - GAP_HALF + 1)[:, None]     # 1-based row of sums[t]
    out = []
    for lo, hi in ((ixl + GAP_OFFSET, np.full(ncol, nhalf)), (np.full(ncol, nhalf), ixu - GAP_OFFSET)):
        ok = (centre >= lo[None, :]) & (centre <= hi[None, :])
        masked = np.where(ok, sums, np.inf)
        out.append((np.argmin(masked, axis=0) + GAP_HALF + 1, ok.any(axis=0)))
    (m1, ok1), (m2, ok2) = out
    jmin = nhalf
    for i in range(ncol):                    # Karl's jmin carries over empty searches
        jmin = m1[i] = m1[i] if ok1[i] else jmin
        jmin = m2[i] = m2[i] if ok2[i] else jmin
    return m1, m2


def _masked_rows_bw(xd: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, biweight of rows lo..hi (1-based, inclusive) and the number of rows."""
    n = np.maximum(hi - lo + 1, 0)
    r0, r1 = max(1, int(lo.min())), min(xd.shape[0], int(hi.max()))
    if r1 < r0:
        return np.full(xd.shape[1], -666.0, F32), n
    rows = np.arange(r0, r1 + 1)[:, None]
    sub = np.where((rows >= lo[None, :]) & (rows <= hi[None, :]), xd[r0 - 1:r1], np.nan)
    return _bw(sub)[0], n


def _window_bw(xd: np.ndarray, centre: np.ndarray) -> np.ndarray:
    idx = np.clip(centre[None, :] - 1 + np.arange(-GAP_HALF, GAP_HALF + 1)[:, None], 0, xd.shape[0] - 1)
    return _bw(np.take_along_axis(xd, idx, axis=0))[0]


def lin_interp(xp: np.ndarray, x: np.ndarray, y: np.ndarray, power_segment: int | None = None) -> np.ndarray:
    """Karl's xlinint / xlinint2 at points xp (float32), for nodes x, y of shape (n,) or (n, m).

    The first segment j with x[j] <= xp < x[j+1] is used (linear, or fac ** 0.3 in segment
    ``power_segment``, 0-based); xp < x[0] gives y[0], xp > x[-1] gives y[-1]; any other point
    (xp == x[-1], or in no segment of unsorted nodes) keeps the previous point's value, in the
    order of xp along axis 0 then the columns, 0 for the very first.
    """
    xp = np.asarray(xp, F32)
    shape = np.broadcast_shapes(xp.shape, (1,) + x.shape[1:])
    out = np.zeros(shape, F32)
    done = np.zeros(shape, bool)
    with np.errstate(all="ignore"):
        for j in range(x.shape[0] - 2, -1, -1):       # descending: the first matching segment wins
            m = (xp >= x[j]) & (xp < x[j + 1])
            dx, dy = x[j + 1] - x[j], y[j + 1] - y[j]
            if j == power_segment:
                val = y[j] + dy * ((xp - x[j]) / dx) ** F32(POWER)
            else:
                val = y[j] + (dy * (xp - x[j])) / dx
            out = np.where(m, val, out)
            done |= m
        below, above = ~done & (xp < x[0]), ~done & (xp > x[-1])
        out = np.where(above, y[-1], np.where(below, y[0], out)).astype(F32)   # Fortran: y(n) last
    done |= below | above
    if not done.all():                                  # carry the previous value (Fortran)
        o, d = out.T.ravel().copy(), done.T.ravel().copy()
        if not d[0]:
            o[0], d[0] = 0.0, True
        idx = np.maximum.accumulate(np.where(d, np.arange(d.size), 0))
        out = o[idx].reshape(out.T.shape).T
    return np.ascontiguousarray(out, dtype=F32)


def smooth_nodes(x: np.ndarray, ibin: int = ISMOOTH) -> np.ndarray:
    """Karl's smxin: the values other than -666 in bins of ``ibin`` (bin k, 0-based, starts at
    value max(1, k*ibin + 1 - (ibin-1)/2); the last bin ends at the last value); biweight of each
    bin's values and of their 1-based positions; linear interpolation (xlinint) at every position."""
    x = np.asarray(x, F32)
    keep = np.nonzero(x != F32(-666))[0]
    n2 = keep.size
    if n2 == 0:
        return x.copy()
    x2, xi2 = x[keep], (keep + 1).astype(F32)
    ib1 = (ibin - 1) // 2
    starts = []
    for j in range(1, n2 + 1, ibin):
        istart = max(1, j - ib1)
        if istart + ibin - 1 > n2:
            istart = max(1, n2 - ibin + 1)
        starts.append(istart)
    idx = np.asarray(starts)[None, :] - 1 + np.arange(min(ibin, n2))[:, None]
    yn, xn = _bw(x2[idx])[0], _bw(xi2[idx])[0]
    return lin_interp(np.arange(1, x.size + 1, dtype=F32), xn, yn)


@dataclass
class GapResult:
    """imgetgap's intermediate results (1-based rows, per column)."""

    ixl: np.ndarray        #: last row below the first fiber
    ixu: np.ndarray        #: first row above the last fiber
    ixm1: np.ndarray       #: centre of the lower inter-block gap
    ixm2: np.ndarray       #: centre of the upper inter-block gap
    isingle: int           #: bottom rows 1..isingle replaced by their own biweight
    xsing: np.ndarray      #: (isingle,) those values
    ynodes: np.ndarray     #: (5, ncol) node rows
    xnodes: np.ndarray     #: (5, ncol) node levels after smoothing
    raw_nodes: np.ndarray  #: (5, ncol) node levels before the 10%-node replacement and smoothing


def background_model(xd: np.ndarray) -> tuple[np.ndarray, GapResult]:
    """imgetgap: the background model (float32, shape of ``xd``) of a combined, normalised frame
    in Karl's orientation (fibers along the rows, first fiber within 35 rows of row 1)."""
    xd = np.ascontiguousarray(xd, dtype=F32)
    nrow, ncol = xd.shape
    if nrow < 2 * GAP_OFFSET + 2 * NRCHECK or ncol < SINGLE_COLS[1]:
        raise HetredError(f"imgetgap needs at least {SINGLE_COLS[1]} columns and "
                          f"{2 * GAP_OFFSET + 2 * NRCHECK} rows, got {xd.shape}")
    ixl, ixu = fiber_edges(xd)
    ixm1, ixm2 = gap_rows(xd, ixl, ixu)
    # node levels and rows (xback, yback)
    js = np.where(ixl >= 11, 6, 1)
    b1, n1 = _masked_rows_bw(xd, js, ixl)
    y1 = (ixl + 1).astype(F32) / F32(2)
    b1, y1 = np.where(n1 < 5, F32(0), b1), np.where(n1 < 5, F32(1), y1)
    b2, b3 = _window_bw(xd, ixm1), _window_bw(xd, ixm2)
    b4, n4 = _masked_rows_bw(xd, ixu, np.full(ncol, nrow))
    y4 = (ixu + nrow).astype(F32) / F32(2)
    b4, y4 = np.where(n4 < 5, F32(0), b4), np.where(n4 < 5, F32(nrow), y4)
    b1 = np.where(b1 == 0, b2, b1)
    b4 = np.where(b4 == 0, b3, b4)
    ynew = y1 + F32(FRAC) * (ixm1.astype(F32) - y1)      # Karl's 10% node ...
    bnew = F32(1 - FRAC) * b2 + F32(FRAC) * b1
    X = np.stack([b1, bnew, b2, b3, b4]).astype(F32)
    Y = np.stack([y1, ynew, ixm1, ixm2, y4]).astype(F32)
    raw_nodes = X.copy()
    # ... replaced by the bottom rows, each the biweight of columns 400-600 of its row
    isingle = ISINGLE_MAX if ixl[REF_COL - 1] > 20 else max(2, int(ixl[REF_COL - 1]) - ISUB)
    xsing = _bw(xd[:isingle, SINGLE_COLS[0] - 1:SINGLE_COLS[1]], axis=1)[0]
    xsing = np.where(xsing < -10, F32(0), xsing).astype(F32)
    Y[1], X[1] = F32(isingle), xsing[isingle - 1]
    for j in (2, 3, 4):                                  # nodes 3-5 above 10: the node below
        if _bw(X[j], None)[0] > HIGH_NODE:
            X[j] = X[j - 1]
    with np.errstate(all="ignore"):
        for j in range(5):
            xb, xs = _bw(X[j], None)
            v = X[j].copy()
            v[(v - F32(xb)) / F32(xs) > F32(CLIP_SIGMA)] = -666
            X[j] = smooth_nodes(v, ISMOOTH)
    rows = np.arange(1, nrow + 1, dtype=F32)[:, None]
    model = lin_interp(rows, Y, X, power_segment=1)
    model[:isingle] = xsing[:, None]
    return model, GapResult(ixl, ixu, ixm1, ixm2, isingle, xsing, Y, X, raw_nodes)


# ------------------------------------------------------------------------------------------
# the unit's frames

_INDEX: dict[tuple[str, int, int], dict[tuple[int, str, str], list]] = {}   #: tarlist (path, mtime, size)


def index_frames(lines: Sequence[str]) -> dict[tuple[int, str, str], list]:
    """The sci and twi entries of tarlist lines by (IFU slot, amp, type), in line order."""
    from hetred.lists.tarlist import parse_line

    out: dict[tuple[int, str, str], list] = {}
    for line in lines:
        if "_sci.fits" in line or "_twi.fits" in line:
            e = parse_line(line)
            if e is not None and e.kind in ("sci", "twi"):
                out.setdefault((e.ifuslot, e.amp, e.kind), []).append(e)
    return out


def month_index(layout: Layout, month: str) -> dict[tuple[int, str, str], list]:
    """:func:`index_frames` of the month's tarlist (made first when missing), cached."""
    from hetred.calib.bias_io import ensure_tarlist

    path = ensure_tarlist(layout, month)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _INDEX:
        _INDEX.clear()
        _INDEX[key] = index_frames(path.read_text().splitlines())
    return _INDEX[key]


def unit_id(month: str, ifuslot: int, amp: str, kind: str) -> str:
    """``201801_053_LL_sci``."""
    return f"{month}_{int(ifuslot):03d}_{amp}_{kind}"


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
    from hetred.io.raw import iter_members, read_raw_file

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
    from hetred.calib.bias_io import NO_CONTID

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
    from hetred.calib.bias_io import band_rows

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


# ------------------------------------------------------------------------------------------
# products

def write_products(layout: Layout, f: dict, kind: str, used: Sequence[FrameRecord], nread: int,
                   combined: np.ndarray, model: np.ndarray, g: GapResult, s: BgSettings) -> list[Path]:
    """Write ``bgmodel`` and ``bgcombined`` (float32, headers with the inputs); their paths."""
    from hetred.io.atomic import write_fits_atomic

    lo, hi = s.cut(kind)
    members = sorted(r.member for r in used)
    common = [
        ("BUNIT", "adu", "ADU of frames scaled to level 25 (improcn)"),
        ("MONTH", f["month"], ""), ("IFUSLOT", f"{f['ifuslot']:03d}", ""),
        ("SPECID", f"{f['specid']:03d}", ""), ("AMP", f["amp"], "CCDPOS + CCDHALF"),
        ("BGKIND", kind, "sci, bri or twi"), ("RAWTYPE", RAWTYPE[kind], "raw frame type combined"),
        ("LEVLO", lo, "keep if LEVLO < level"), ("LEVHI", "none" if hi is None else hi, "... < LEVHI"),
        ("XNORM", XNORM, "level = central biweight / XNORM"),
        ("ORIENT", "RAW", "readout orientation, not flipped (as Karl)"),
        ("TRIMSEC", ampgeom.TRIMSEC, "overscan and master bias removed"),
        ("NFRAMES", len(used), "frames combined"), ("NREAD", nread, "frames of the unit read"),
        ("COMBINE", "biweight", "per-pixel Karl biwgt (imcmb)"),
        ("INPHASH", hashlib.sha1("\n".join(members).encode()).hexdigest(), "sha1 of sorted inputs"),
        ("HETREDV", __version__, "hetred version")]
    rows = [("ISINGLE", g.isingle, "bottom rows modelled one by one"),
            ("ROWFIRST", int(np.median(g.ixl)), "median last row below fiber 1"),
            ("ROWGAP1", int(np.median(g.ixm1)), "median lower gap row"),
            ("ROWGAP2", int(np.median(g.ixm2)), "median upper gap row"),
            ("ROWLAST", int(np.median(g.ixu)), "median first row above the last fiber"),
            ("ISMOOTH", ISMOOTH, "columns per node-smoothing bin")]
    paths = []
    for key, image, extra in (("bgmodel", model, rows), ("bgcombined", combined, [])):
        h = fits.Header()
        for card in [("OBJECT", key, "hetred bgmodel product")] + common + extra:
            h[card[0]] = card[1:]
        for c in sorted({(r.specid, r.contid) for r in used}):
            h.add_history(f"masterbias masterbias_{c[0]:03d}_{c[1]}_{f['amp']}.fits")
        for m in members:
            h.add_history(f"input {m}")
        paths.append(layout.path(key, **f))
        write_fits_atomic(paths[-1], fits.HDUList([fits.PrimaryHDU(np.asarray(image, F32), h)]))
    return paths


def write_qa(path: Path, unit: str, combined: np.ndarray, model: np.ndarray, g: GapResult,
             title: str) -> Path:
    """QA PNG: the model's profile across rows over the combined frame's, at three columns."""
    from matplotlib.figure import Figure

    from hetred.io.atomic import atomic_path

    fig = Figure(figsize=(11, 3.6), dpi=80)
    rows = np.arange(1, combined.shape[0] + 1)
    for k, c in enumerate((200, combined.shape[1] // 2, combined.shape[1] - 200)):
        ax = fig.add_subplot(1, 3, k + 1)
        m = model[:, c - 1]
        span = float(m.max() - m.min()) + 0.05 * abs(float(m.max())) + 1e-3
        ax.plot(rows, combined[:, c - 1], color="0.6", lw=0.5, label="combined")
        ax.plot(rows, m, color="red", lw=1.2, label="model")
        for r in (g.ixl[c - 1], g.ixm1[c - 1], g.ixm2[c - 1], g.ixu[c - 1]):
            ax.axvline(r, color="tab:blue", lw=0.6, ls=":")
        top = max(float(np.percentile(combined[:, c - 1], 99.5)), float(m.max()) + 4 * span)
        ax.set_yscale("symlog", linthresh=max(2.0 * float(np.abs(m).max()), 1e-3), linscale=2.0)
        ax.set_ylim(float(m.min()) - 1.5 * span, top)
        ax.set_title(f"column {c} (raw); dotted: fiber edges and gaps", fontsize=8)
        ax.set_xlabel("row (raw)", fontsize=7)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.set_ylabel("ADU at level 25", fontsize=7)
            ax.legend(fontsize=6, loc="upper right")
    fig.suptitle(f"{unit}: {title}", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.85, wspace=0.25)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


# ------------------------------------------------------------------------------------------
# one unit

def run_bgmodel(layout: Layout, month: str, ifuslot: int, amp: str, kind: str,
                settings: BgSettings | None = None) -> UnitOutcome:
    """Build the background model of one month x IFU slot x amp x kind (module docstring).

    Raises :class:`HetredError` (one line) when no frame of the unit passes the kind's cut.
    """
    from hetred.calib.bias_io import FrameStack

    s = settings or BgSettings()
    if kind not in KINDS or amp not in ampgeom.AMPS:
        raise HetredError(f"kind must be one of {', '.join(KINDS)} and amp one of "
                          f"{', '.join(ampgeom.AMPS)}, got {kind!r}, {amp!r}")
    slot, uid, t0 = f"{int(ifuslot):03d}{amp}", unit_id(month, ifuslot, amp, kind), time.perf_counter()
    entries = month_index(layout, month).get((int(ifuslot), amp, RAWTYPE[kind]), [])
    if not entries:
        raise HetredError(f"no {RAWTYPE[kind]} frames for {slot} in the {month} tarlist")
    timings = {}
    with FrameStack(s.tmpdir) as stack:
        records, biases = read_frames(layout, month, amp, kind, entries, stack, s)
        used = [r for r in records if r.verdict == "used"]
        specid = Counter(r.specid for r in used).most_common(1)[0][0] if used else -1
        for r in used:
            if r.specid != specid:
                r.verdict, r.note = "other_specid", f"SPECID {r.specid:03d}, the unit's {specid:03d}"
        used = [r for r in used if r.verdict == "used"]
        if not used:
            levels = [r.level for r in records if np.isfinite(r.central)]
            why = [f"{len(records)} read"] + ([f"levels {min(levels):.3g}-{max(levels):.3g}"] if levels else [])
            why += [f"{n} {v}" for v, n in sorted(Counter(r.verdict for r in records).items())
                    if v != "outside_cut"]
            missing = sorted({f"masterbias_{r.specid:03d}_{r.contid}_{amp}" for r in records
                              if r.verdict == "no_masterbias"})
            hint = f"; no {', '.join(missing)} (run hetred bias {month})" if missing else ""
            raise HetredError(f"no {kind} frames with {s.cut_text(kind)} for {slot} in {month} "
                              f"({', '.join(why)}){hint}")
        timings["read"], t1 = time.perf_counter() - t0, time.perf_counter()
        combined = combine_frames(stack, used, biases, s)
    timings["combine"], t1 = time.perf_counter() - t1, time.perf_counter()
    model, gaps = background_model(combined)
    timings["imgetgap"], t1 = time.perf_counter() - t1, time.perf_counter()
    f = dict(month=month, bgkind=kind, specid=specid, ifuslot=int(ifuslot), amp=amp)
    outputs = [str(p) for p in write_products(layout, f, kind, used, len(records), combined, model, gaps, s)]
    timings["write"], t1 = time.perf_counter() - t1, time.perf_counter()
    if s.qa:
        outputs.append(str(write_qa(layout.path("qa", stage=STAGE, name=f"{uid}.png"), uid, combined,
                                    model, gaps, f"{len(used)} {RAWTYPE[kind]} frames, {s.cut_text(kind)}")))
        timings["qa"] = time.perf_counter() - t1
    levels = [r.level for r in used]
    counts = {
        "kind": kind, "cut": s.cut_text(kind), "read": len(records), "used": len(used), "specid": specid,
        "levels": [round(min(levels), 4), round(max(levels), 4)],
        "rejected": dict(Counter(r.verdict for r in records if r.verdict != "used")),
        "frames": [{"member": r.member, "level": round(r.level, 5) if np.isfinite(r.central) else None,
                    "overscan": round(r.overscan, 3) if np.isfinite(r.overscan) else None,
                    "verdict": r.verdict, "note": r.note} for r in records],
        "gaps": {"isingle": gaps.isingle, **{k: int(np.median(v)) for k, v in
                 (("first", gaps.ixl), ("gap1", gaps.ixm1), ("gap2", gaps.ixm2), ("last", gaps.ixu))}},
        "node_medians": [round(float(np.median(x)), 4) for x in gaps.xnodes],
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    return UnitOutcome(outputs=outputs, inputs=[r.source for r in records], counts=counts)
