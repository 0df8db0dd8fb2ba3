"""Step 4: the master bias library, ``hetred bias MONTH`` (docs/stages/bias.md).

Replaces karlspipe hdr2.1 ``bias/rpbias``, ``rpbias1``, ``rbfits``, ``rbfits0``, ``rimcmb``,
``rtrap0``, ``rtrap`` and the Fortran programs they run: ``improcb`` (per-frame overscan, level
and scale), ``mkbiaslist`` (frames grouped by controller), ``imcmb`` (per-pixel biweight),
``imbox2`` (1 x 7 biweight box) and ``imgetctrap`` (charge traps).

Unit of work: month x IFU slot x amp, e.g. ``202008_053_LL``.  Every zro frame of the unit in the
month's tarlist is read once, straight from its tar; frames whose central biweight scale is
outside (scale_lo, scale_hi) ADU, saturated frames and unreadable members are rejected with a
reason.  The kept frames are grouped by controller (CONTID) and each group gives

* ``masterbias_unsmoothed``: the per-pixel biweight of the frames (imcmb);
* ``masterbias``: that image through the 1 x 7 biweight box without its centre pixel (imbox2
  ``1 7``, radius 0), then with its charge-trap columns zeroed (imgetctrap);
* ``masterbias_traps``: the traps, ``column first_row`` (1-based, like Karl's ``.ctrap``).

plus, per unit, the per-frame table ``bias_frames`` and a QA PNG.  Images stay in the RAW readout
orientation of Karl's library: trimmed to 1032 x 1032, overscan subtracted, not flipped.

The array functions here are pure (no files); :mod:`hetred.calib.bias_io` does the reading and
writing; :func:`run_bias` ties them together for one unit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from hetred._ext import boxfilter as K
from hetred.config import parse_stage_table
from hetred.errors import HetredError
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from hetred.virus import amp as ampgeom

STAGE = "bias"

#: improcb.f: the central region whose biweight gives a frame's level and scale (1-based, inclusive)
CENTER_COLS = (300, 700)
CENTER_ROWS = (300, 700)

#: per-frame verdicts, in the order they are tested
VERDICTS = ("used", "unreadable", "saturated", "too_quiet", "too_noisy")


@dataclass(frozen=True)
class BiasSettings:
    """Settings of the bias stage; ``[stages.bias]`` in the config file sets any of them."""

    scale_lo: float = 2.0        #: rpbias1 scale_lo: keep a frame if scale > scale_lo (ADU)
    scale_hi: float = 10.0       #: rpbias1 scale_hi: ... and scale < scale_hi (ADU)
    box_cols: int = 1            #: imbox2 box size x (columns), odd
    box_rows: int = 7            #: imbox2 box size y (rows), odd
    box_radius: float = 0.0      #: imbox2 inner radius left out (0: only the centre pixel)
    trap_sigma: float = 10.0     #: imgetctrap tcut: a hit is > trap_sigma biweight sigma high
    trap_half: int = 9           #: imgetctrap ihalf: +-9 columns around the pixel
    trap_min_hits: int = 50      #: imgetctrap ntrap: a column with more hits is a trap
    trap_margin: int = 10        #: masked from the lowest hit row minus this ...
    trap_floor_row: int = 100    #: ... or from row 1 when that is below this row
    trap_edge: int = 10          #: imgetctrap istart/jstart: rows and columns from 10 (1-based)
    trap_screen: float = 2.0     #: skip the iteration below median + trap_screen * MAD (0: never)
    band_mib: float = 64.0       #: memory for one band of all frames in the combine (MiB)
    tmpdir: str | None = None    #: where the per-unit frame stack file goes (None: system temp)
    qa: bool = True              #: write the QA PNG

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> BiasSettings:
        """Settings from a ``[stages.bias]`` table; unknown keys and bad values are errors."""
        out = parse_stage_table(cls, values, "stages.bias")
        s = cls(**out)
        if not 0 <= s.scale_lo < s.scale_hi:
            raise HetredError(f"[stages.bias]: need 0 <= scale_lo < scale_hi, "
                              f"got {s.scale_lo}, {s.scale_hi}")
        if s.box_rows < 1 or s.box_cols < 1 or s.box_rows % 2 == 0 or s.box_cols % 2 == 0:
            raise HetredError("[stages.bias]: box_rows and box_cols must be odd and >= 1")
        return s


# --------------------------------------------------------------------------------------------
# per frame (improcb)

@dataclass
class FrameStats:
    """improcb's numbers for one frame (Karl's norm*.dat): ADU."""

    overscan: float      #: biweight of columns 1034-1060, rows 10-1032 of the raw frame
    level: float         #: biweight location of the central region after overscan subtraction
    scale: float         #: biweight scale of the same region


def frame_stats(raw: np.ndarray) -> FrameStats:
    """Overscan level, central level and scale of a raw (1032, 1064) uint16 frame (improcb).

    The overscan is Karl's biweight of columns 1034-1060 and rows 10-1032 (1-based); the level
    and scale are the biweight of ``float32(raw) - overscan`` over columns and rows 300-700 of
    the trimmed frame.
    """
    raw = np.asarray(raw)
    if raw.dtype != np.uint16:
        raw = np.clip(np.rint(raw), 0, 65535).astype(np.uint16)
    ov, _ = K.biweight_uint16(ampgeom.overscan_region(raw), 0.0)
    r0, r1 = CENTER_ROWS
    c0, c1 = CENTER_COLS
    level, scale = K.biweight_uint16(raw[r0 - 1:r1, c0 - 1:c1], np.float32(ov))
    return FrameStats(float(np.float32(ov)), level, scale)


def frame_verdict(stats: FrameStats | None, saturated: bool, settings: BiasSettings) -> tuple[str, str]:
    """(verdict, note) of a read frame: used, saturated, too_quiet or too_noisy.

    rpbias1 keeps a frame when scale_lo < scale < scale_hi (strict, its awk test); a frame with
    more than half its data pixels at 65535 is rejected as saturated before that.
    """
    if saturated:
        return "saturated", "more than half the data pixels at 65535"
    assert stats is not None
    if not np.isfinite(stats.scale):
        return "too_noisy", "scale not finite"
    if not stats.scale > settings.scale_lo:
        return "too_quiet", f"scale {stats.scale:.3f} <= {settings.scale_lo:g}"
    if not stats.scale < settings.scale_hi:
        return "too_noisy", f"scale {stats.scale:.3f} >= {settings.scale_hi:g}"
    return "used", ""


# --------------------------------------------------------------------------------------------
# combine, box, traps (imcmb, imbox2, imgetctrap)

def combine_bias(stack: np.ndarray) -> np.ndarray:
    """Per-pixel biweight location over the first axis of a (n, ...) stack (imcmb), float32.

    Karl's ``biwgt`` per pixel; values with nint(v) = -666 (imcmb's blank) and non-finite
    values are left out.  For a file-backed stack use
    :func:`hetred.calib.bias_io.combine_stack`, which feeds this in row bands.
    """
    arr = np.asarray(stack, dtype=np.float32)
    flat = arr.reshape(arr.shape[0], -1)
    blank = (flat > np.float32(-666.5)) & (flat <= np.float32(-665.5))    # imcmb: nint(v) == -666
    if blank.any():
        flat = np.where(blank, np.float32(np.nan), flat)
    loc, _ = K.biweight_stack(flat, want_scale=False)
    return loc.reshape(arr.shape[1:])


def box_offsets(box_rows: int = 7, box_cols: int = 1, radius: float = 0.0) -> np.ndarray:
    """imbox2's window: offsets (row, column) within the box farther than ``radius`` from the centre."""
    hr, hc = (box_rows - 1) // 2, (box_cols - 1) // 2
    offs = [(dr, dc) for dr in range(-hr, hr + 1) for dc in range(-hc, hc + 1)
            if np.sqrt(float(dr * dr + dc * dc)) > radius]
    return np.asarray(offs, dtype=np.int64).reshape(-1, 2)


def box_filter_1x7(image: np.ndarray, box_rows: int = 7, box_cols: int = 1,
                   radius: float = 0.0) -> np.ndarray:
    """imbox2 with biweight: each pixel becomes the biweight of its box neighbours.

    The box is ``box_cols`` x ``box_rows`` (Karl's ``1 7``); pixels at distance <= ``radius``
    from the centre are left out (radius 0: only the centre itself, so an interior output is
    the biweight of its 6 vertical neighbours); neighbours exactly 0 are skipped (imbox2's
    ``iflag``); at the edges the window is cut to the image (rows 1 and 1032 use 3 neighbours,
    rows 2 and 1031 use 4, rows 3 and 1030 use 5).  A pixel with no usable neighbour gets 0.
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    offs = box_offsets(box_rows, box_cols, radius)
    loc, _, cnt = K.neighbour_biweight(img, offs, skip_zero=True, want_scale=False)
    return np.where(cnt > 0, loc, np.float32(0.0)).astype(np.float32)


@dataclass
class TrapResult:
    """imgetctrap's outcome on one master."""

    masked: np.ndarray                  #: the master with trap columns zeroed from first_row up
    traps: list[tuple[int, int]]        #: (column, first_row), 1-based
    hits_per_column: np.ndarray         #: number of hits in each column (0-based index)
    hits: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), np.uint8))


def trap_rules(hits: np.ndarray, min_hits: int = 50, margin: int = 10,
               floor_row: int = 100) -> list[tuple[int, int]]:
    """imgetctrap's column rules on a hit map: (column, first row), 1-based.

    A column with more than ``min_hits`` hits is a trap; it is masked from its lowest hit row
    minus ``margin`` (at least row 1), or from row 1 when that is below ``floor_row``.
    """
    counts = hits.sum(axis=0)
    out = []
    for col in np.nonzero(counts > min_hits)[0]:
        first = int(np.nonzero(hits[:, col])[0].min()) + 1
        jmin = max(1, first - margin)
        if jmin < floor_row:
            jmin = 1
        out.append((int(col) + 1, jmin))
    return out


def find_charge_traps(master: np.ndarray, settings: BiasSettings | None = None) -> TrapResult:
    """imgetctrap on a master bias: find the trap columns and zero them.

    A pixel (rows 10..nrow, columns 10..ncol-10, 1-based) is a hit when it lies more than
    ``trap_sigma`` biweight sigma above the biweight of the ``trap_half`` columns on each side
    in its row (itself excluded); see :func:`trap_rules` for the columns.
    """
    s = settings or BiasSettings()
    img = np.ascontiguousarray(master, dtype=np.float32)
    nrow, ncol = img.shape
    e = s.trap_edge
    hits = K.trap_hits(img, half=s.trap_half, tcut=s.trap_sigma, row_lo=e - 1, row_hi=nrow,
                       col_lo=e - 1, col_hi=ncol - e, screen=s.trap_screen)
    traps = trap_rules(hits, s.trap_min_hits, s.trap_margin, s.trap_floor_row)
    masked = img.copy()
    for col, row in traps:
        masked[row - 1:, col - 1] = 0.0
    return TrapResult(masked, traps, hits.sum(axis=0).astype(np.int64), hits)


def make_master(unsmoothed: np.ndarray,
                settings: BiasSettings | None = None) -> tuple[np.ndarray, TrapResult]:
    """Box-filter a per-pixel combination and remove its charge traps: (master, traps)."""
    s = settings or BiasSettings()
    boxed = box_filter_1x7(unsmoothed, s.box_rows, s.box_cols, s.box_radius)
    tr = find_charge_traps(boxed, s)
    return tr.masked, tr


# --------------------------------------------------------------------------------------------
# one unit

def unit_id(month: str, ifuslot: int, amp: str) -> str:
    """``202008_053_LL``."""
    return f"{month}_{int(ifuslot):03d}_{amp}"


def run_bias(layout: Layout, month: str, ifuslot: int, amp: str,
             settings: BiasSettings | None = None) -> UnitOutcome:
    """Build the master bias(es) of one month x IFU slot x amp; see the module docstring.

    Raises :class:`HetredError` (one line) when the unit has no zro frames or none usable.
    """
    from hetred.calib import bias_io as io

    s = settings or BiasSettings()
    if amp not in ampgeom.AMPS:
        raise HetredError(f"amp must be one of {', '.join(ampgeom.AMPS)}, got {amp!r}")
    t0 = time.perf_counter()
    entries = io.zro_entries(layout, month, ifuslot, amp)
    if not entries:
        raise HetredError(f"no zro frames for IFU slot {ifuslot:03d} amp {amp} in the {month} tarlist "
                          f"({layout.path('tarlist', month=month)})")
    timings: dict[str, float] = {}
    with io.FrameStack(s.tmpdir) as stack:
        records = io.read_frames(layout, entries, stack, s)
        timings["read"] = time.perf_counter() - t0
        used = [r for r in records if r.verdict == "used"]
        frames_path = io.write_frames_table(layout, month, ifuslot, amp, records, s)
        outputs = [str(frames_path)]
        rejected: dict[str, int] = {}
        for r in records:
            if r.verdict != "used":
                rejected[r.verdict] = rejected.get(r.verdict, 0) + 1
        if not used:
            why = ", ".join(f"{n} {v}" for v, n in sorted(rejected.items()))
            raise HetredError(f"IFU slot {ifuslot:03d} amp {amp}: none of {len(records)} zro frames "
                              f"usable ({why}); see {frames_path}")
        groups: dict[tuple[int, str], list[io.FrameRecord]] = {}
        for r in used:
            groups.setdefault((r.specid, r.contid), []).append(r)
        products = []
        for key in ("combine", "box_traps", "write"):
            timings[key] = 0.0
        for (specid, contid), recs in sorted(groups.items()):
            t1 = time.perf_counter()
            unsmoothed = io.combine_stack(stack, [r.index for r in recs], s)
            t2 = time.perf_counter()
            master, tr = make_master(unsmoothed, s)
            t3 = time.perf_counter()
            paths = io.write_products(layout, month, ifuslot, amp, specid, contid, unsmoothed,
                                      master, tr.traps, recs, len(records) - len(used), s)
            timings["combine"] += t2 - t1
            timings["box_traps"] += t3 - t2
            timings["write"] += time.perf_counter() - t3
            outputs += [str(p) for p in paths]
            products.append({"specid": specid, "contid": contid, "nframes": len(recs),
                             "ntraps": len(tr.traps), "traps": tr.traps, "master": str(paths[0]),
                             "_image": master})
    if s.qa:
        t2 = time.perf_counter()
        outputs.append(str(io.write_qa(layout, unit_id(month, ifuslot, amp), products)))
        timings["qa"] = time.perf_counter() - t2
    for p in products:
        p.pop("_image")
    counts = {
        "frames": len(records), "used": len(used), "rejected": rejected,
        "rejected_frames": [f"{r.member}: {r.verdict} {r.note}".strip() for r in records
                            if r.verdict != "used"][:50],
        "groups": products, "ntraps": sum(p["ntraps"] for p in products),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    inputs = [r.source for r in records]
    return UnitOutcome(outputs=outputs, inputs=inputs, counts=counts)
