"""Read a point source's spectrum back from a shot file with PyTables alone (what ``hetred demo``
ends with, and what the tests check without hetdex_api).

The same steps as hetdex_api's Extract (0.8.7): the fibers within ``radius`` of the source by
their (dithered) RA/Dec from ``/Data/FiberIndex`` (row i of FiberIndex is row i of Fibers); the
source's position in the IFU frame from the fibers' ``ifux, ifuy`` + the exposure's dither
(HETDEX's (1.27, -/+0.73)") fitted against their sky offsets (an affine map); per fiber and
wavelength the Moffat (beta 3.5) light fraction at its distance from the source shifted by the
default ADR along IFU x; then ``f = sum(m d w) / sum(m w^2)`` with ``d = calfib / 2`` (per Å) and
``m`` the mask of hetdex_api (calfibe > 1e-8, calfib != 0, median fiber_to_fiber > 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tables as tb

from hetred.errors import HetredError
from hetred.h5.fluxlimit import moffat_fraction
from hetred.virus.coords import DITHERS

WAVE = 3470.0 + 2.0 * np.arange(1036)
_ADR_WAVE = np.array([3500.0, 4000.0, 4500.0, 5000.0, 5500.0])
_ADR = np.array([-0.74, -0.4, -0.08, 0.08, 0.20])
ADR = np.polyval(np.polyfit(_ADR_WAVE, _ADR, 3), WAVE)      #: hetdex_api's default ADR (arcsec) along IFU x


@dataclass
class Extraction:
    wave: np.ndarray          #: (1036,) Å
    flam: np.ndarray          #: (1036,) 1e-17 erg s^-1 cm^-2 Å^-1 (NaN where no weight)
    n_fibers: int
    xc: float                 #: source position in the IFU frame (arcsec)
    yc: float
    fiber_id: list[str]


def fibers_near(path: Path, ra: float, dec: float, radius: float = 3.5) -> tuple[np.ndarray, np.ndarray]:
    """(row numbers, Fibers rows) of the fibers within ``radius`` arcsec of (ra, dec)."""
    try:
        with tb.open_file(str(path), "r") as f:
            fra = f.root.Data.FiberIndex.cols.ra[:].astype(np.float64)
            fdec = f.root.Data.FiberIndex.cols.dec[:].astype(np.float64)
            d = _sep(ra, dec, fra, fdec)
            idx = np.nonzero(d < radius)[0]
            rows = f.root.Data.Fibers.read_coordinates(idx) if len(idx) else None
    except (OSError, tb.NoSuchNodeError, tb.HDF5ExtError) as err:
        raise HetredError(f"shot file {path}: cannot read its fibers ({err.__class__.__name__})") from None
    return idx, rows


def _sep(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Angular distance (arcsec), small-angle."""
    dx = (ra - ra0) * np.cos(np.radians(dec0)) * 3600.0
    dy = (dec - dec0) * 3600.0
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(dx) & np.isfinite(dy), np.hypot(dx, dy), np.inf)


def extract(path: Path, ra: float, dec: float, fwhm: float, radius: float = 3.5, beta: float = 3.5,
            adr: bool = True) -> Extraction:
    """The source's spectrum (module docstring); HetredError with fewer than 3 fibers."""
    _, rows = fibers_near(path, ra, dec, radius)
    if rows is None or len(rows) < 3:
        raise HetredError(f"{path}: {0 if rows is None else len(rows)} fibers within {radius}\" of "
                          f"({ra:.6f}, {dec:.6f}): cannot extract")
    dith = np.array(DITHERS)[rows["expnum"] - 1]
    x = rows["ifux"].astype(np.float64) + dith[:, 0]
    y = rows["ifuy"].astype(np.float64) + dith[:, 1]
    dxi = (rows["ra"].astype(np.float64) - ra) * np.cos(np.radians(dec)) * 3600.0
    deta = (rows["dec"].astype(np.float64) - dec) * 3600.0
    a = np.column_stack([dxi, deta, np.ones_like(dxi)])
    cx, *_ = np.linalg.lstsq(a, x, rcond=None)
    cy, *_ = np.linalg.lstsq(a, y, rcond=None)
    xc, yc = float(cx[2]), float(cy[2])
    shift = ADR if adr else np.zeros_like(WAVE)
    ddx = x[:, None] - shift[None, :] - xc
    ddy = np.broadcast_to((y - yc)[:, None], ddx.shape)
    w = moffat_fraction(ddx, ddy, fwhm, beta)
    data = rows["calfib"].astype(np.float64) / 2.0
    err = rows["calfibe"].astype(np.float64)
    m = (err > 1e-8) & (data != 0) & (np.median(rows["fiber_to_fiber"], axis=1) > 0.5)[:, None]
    den = np.sum(m * w ** 2, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        flam = np.where(den > 0.05, np.sum(m * data * w, axis=0) / den, np.nan)
    return Extraction(WAVE.copy(), flam, len(rows), xc, yc, [s.decode() for s in rows["fiber_id"]])
