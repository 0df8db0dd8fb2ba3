"""VIRUS amplifier geometry and orientation.

A raw amp frame is 1032 rows x 1064 columns (numpy shape ``(1032, 1064)``), uint16 with
BZERO 32768: DATASEC/TRIMSEC ``[1:1032,1:1032]`` and 32 overscan columns BIASSEC
``[1033:1064,1:1032]`` (FITS 1-based ``[col, row]``). Binning is 2x1 (CCDSUM '2 1': 2 in the
column / dispersion direction). Raw files have no AMP keyword: amp = CCDPOS + CCDHALF.

Orientation (Karl's vred.f "flip amps for data", Remedy and Panacea alike), applied after the
overscan is removed and the frame trimmed: LU and RL are rotated by 180 degrees; when AMPNAME is
LR or UL the columns are mirrored. Afterwards columns run blue to red (wavelength increases
with the column) and rows are the cross-dispersion direction with 112 fibers.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

AMPS: tuple[str, ...] = ("LL", "LU", "RL", "RU")
NROWS = 1032          #: raw rows (cross-dispersion, unbinned)
NCOLS_RAW = 1064      #: raw columns including overscan (binned by 2)
NCOLS = 1032          #: data columns after trimming
NOVERSCAN = 32
BIASSEC = "[1033:1064,1:1032]"
TRIMSEC = "[1:1032,1:1032]"
DATASEC = TRIMSEC
CCDSUM = "2 1"
BINNING = (2, 1)      #: (column, row) binning
FIBERS_PER_AMP = 112

#: Karl's overscan region (vred.f, improcb.f), 1-based inclusive: columns 1034-1060, rows 10-1032
OVERSCAN_COLS = (1034, 1060)
OVERSCAN_ROWS = (10, 1032)

ROTATED_AMPS = ("LU", "RL")
MIRRORED_AMPNAMES = ("LR", "UL")


def amp_from_header(header: Mapping[str, object]) -> str:
    """The amp name (LL, LU, RL or RU) from CCDPOS + CCDHALF."""
    amp = f"{str(header['CCDPOS']).strip()}{str(header['CCDHALF']).strip()}".upper()
    if amp not in AMPS:
        raise ValueError(f"CCDPOS+CCDHALF gives {amp!r}, not one of {AMPS}")
    return amp


def ampname_from_header(header: Mapping[str, object]) -> str:
    """AMPNAME, falling back to AMPLIFIE (older files), else ''."""
    for key in ("AMPNAME", "AMPLIFIE"):
        if key in header:
            return str(header[key]).strip().upper()
    return ""


def orient(image: np.ndarray, amp: str, ampname: str) -> np.ndarray:
    """Raw (trimmed) amp frame -> oriented frame (wavelength increasing with column).

    image: (..., rows, cols) array; returns a view with the flips applied.
    """
    out = image
    if amp in ROTATED_AMPS:
        out = out[..., ::-1, ::-1]
    if ampname in MIRRORED_AMPNAMES:
        out = out[..., :, ::-1]
    return out


def deorient(image: np.ndarray, amp: str, ampname: str) -> np.ndarray:
    """Oriented frame -> readout orientation; the inverse of :func:`orient`.

    Both flips are involutions and commute, so the inverse applies them again.
    """
    return orient(image, amp, ampname)


def trim(raw: np.ndarray) -> np.ndarray:
    """Data section (1032 x 1032) of a raw (1032 x 1064) frame."""
    return raw[..., :NROWS, :NCOLS]


def overscan_region(raw: np.ndarray) -> np.ndarray:
    """Karl's overscan region of a raw frame: rows 10-1032, columns 1034-1060 (1-based)."""
    r0, r1 = OVERSCAN_ROWS
    c0, c1 = OVERSCAN_COLS
    return raw[..., r0 - 1:r1, c0 - 1:c1]


def overscan_level(raw: np.ndarray) -> float:
    """Overscan level in ADU: Karl's biweight location of :func:`overscan_region`."""
    from hetred.stats import biweight_location

    return float(biweight_location(np.asarray(overscan_region(raw), dtype=np.float32), axis=None))
