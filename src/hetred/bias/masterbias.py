"""Pure array functions of the bias stage: per-frame statistics (improcb), the per-pixel
biweight (imcmb), the 1 x 7 biweight box (imbox2) and charge traps (imgetctrap).

No files here: :mod:`hetred.bias.frames` reads the frames, :mod:`hetred.bias.products` writes,
:mod:`hetred.bias.run` ties them together for one unit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetred._ext import boxfilter as K
from hetred.bias.settings import CENTER_COLS, CENTER_ROWS, BiasSettings
from hetred.virus import amp as ampgeom


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


def combine_bias(stack: np.ndarray) -> np.ndarray:
    """Per-pixel biweight location over the first axis of a (n, ...) stack (imcmb), float32.

    Karl's ``biwgt`` per pixel; values with nint(v) = -666 (imcmb's blank) and non-finite
    values are left out.  For a file-backed stack use
    :func:`hetred.bias.frames.combine_stack`, which feeds this in row bands.
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
