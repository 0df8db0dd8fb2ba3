"""Reconstructed IFU images (``CoFeS{stamp}_{ifuslot}_sci.fits``), read by the astrometry.

Issue 6 step 7. Algorithm of Karl's ``vrecon`` (HETDEX/karlspipe hdr2.1/progs/vrecon.f, run by
sci/rbacks on the sky-subtracted spectra of the four amps of an IFU):

1. per fiber, one number: the biweight location of its sky-subtracted counts over the native
   CCD columns 400..800 (1-based, inclusive; about 4270-5070 Angstrom), i.e. the mean
   sky-subtracted electrons per CCD column in that band (:func:`fiber_band_flux`);
2. every fiber with a non-zero value adds a Gaussian of FWHM 4" (sigma = 4/2.35), truncated at
   r < 6", centred on its IFU position, to the image; the Gaussian is normalised so that a field
   where every fiber has the value f reconstructs to about f per pixel: it is divided by
   ``sumg`` = (sum of the truncated Gaussian over a 1" grid, centred half-way between pixels)
   / (area per fiber), with Karl's area per fiber 50 x 50 / 448 arcsec^2 (:func:`cofes_image`).

The grid is that of the real CoFeS files (HETDEX/vdrp utest/testdata, shot 20180611 v017): 51 x
51 float32 pixels of 1", pixel (i, j) (0-based, numpy ``image[j, i]``) centred at IFU
x = -25.15 + i, y = -25.24 + j arcsec, i.e. one pixel beyond the outermost fiber centres
(x = +-24.15, y = +-24.24). Those files carry exactly two non-structural cards,
``CRPIX1 = -25.15`` and ``CRPIX2 = -25.24`` (the coordinates of the first pixel, not a FITS
reference pixel; vdrp's rimars0 turns them into ``CRVAL1/2`` with ``CRPIX = 1``, ``CDELT = 1``,
``CTYPE = 'pixel'``). :func:`write_cofes` writes the same two cards and no other WCS card, plus
non-WCS provenance cards. No dither offset is applied: the image is in the IFU frame of the
exposure (the astrometry adds the dithers).

Differences from vrecon: 51 x 51 grid at the positions above (vrecon: 50 x 50 at -24.5 + i);
fiber positions come from the caller (the multi files' ``ifupos``, which already carry the
IFUID fiber swaps and reversed-R IFUs), masked columns (NaN, or flagged) are left out of the
biweight instead of entering as zeros.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from astropy.io import fits

from hetred._version import __version__
from hetred.io.atomic import write_fits_atomic
from hetred.layout import Layout
from hetred.stats import biweight

NPIX = 51                       #: image side, pixels
PIXEL = 1.0                     #: arcsec per pixel
X0 = -25.15                     #: arcsec, IFU x of the centre of the first pixel column
Y0 = -25.24                     #: arcsec, IFU y of the centre of the first pixel row
FWHM = 4.0                      #: arcsec, Gaussian FWHM of a fiber's footprint (vrecon rfw)
SIGMA = FWHM / 2.35             #: arcsec (vrecon rsig = rfw / 2.35)
RMAX = 6.0                      #: arcsec, truncation radius (vrecon radm)
AREA_PER_FIBER = 50 * 50 / 448  #: arcsec^2 (vrecon fac = nx*ny/nfib)
BAND_COLUMNS = (400, 800)       #: native CCD columns of the band, 1-based inclusive (vrecon getfibb)
AMPS = ("LL", "LU", "RL", "RU")


def grid_x() -> np.ndarray:
    """IFU x (arcsec) of the pixel-column centres, (51,)."""
    return X0 + PIXEL * np.arange(NPIX)


def grid_y() -> np.ndarray:
    """IFU y (arcsec) of the pixel-row centres, (51,)."""
    return Y0 + PIXEL * np.arange(NPIX)


def _sumg() -> float:
    """vrecon's normalisation: the truncated Gaussian summed over a 1" grid whose points sit
    half a pixel off its centre (vrecon's grid 0..49 around 24.5), over the area per fiber."""
    k = np.arange(-int(RMAX) - 1, int(RMAX) + 1) + 0.5
    r = np.hypot(k[:, None], k[None, :])
    g = np.where(r < RMAX, np.exp(-0.5 * (r / SIGMA) ** 2), 0.0)
    return float(g.sum() / AREA_PER_FIBER)


def fiber_band_flux(spectra: np.ndarray, mask: np.ndarray | None = None,
                    columns: tuple[int, int] = BAND_COLUMNS) -> np.ndarray:
    """Per fiber, the biweight location of ``spectra`` over native columns ``columns``.

    spectra: (nfib, 1032) sky-subtracted electrons per CCD column; mask: optional (nfib, 1032)
    bool, True = left out (as are non-finite values). columns: 1-based inclusive (Karl's 400,
    800). Returns (nfib,) float32 electrons per column; 0 for a fiber with no usable column.
    """
    a = np.array(spectra, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"spectra must be (nfib, ncol), got {a.shape}")
    lo, hi = columns
    if not 1 <= lo <= hi <= a.shape[1]:
        raise ValueError(f"band columns {columns} outside 1..{a.shape[1]}")
    if mask is not None:
        a[np.asarray(mask, dtype=bool)] = np.nan
    band = a[:, lo - 1:hi]
    loc, _ = biweight(band, axis=1)
    n = np.isfinite(band).sum(axis=1)
    return np.where(n > 0, loc, 0.0).astype(np.float32)


def cofes_image(fiber_xy: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Karl's reconstructed image of one IFU: (51, 51) float32, ``image[j, i]`` at
    (x, y) = (:data:`X0` + i, :data:`Y0` + j) arcsec.

    fiber_xy: (N, 2) arcsec fiber positions in the IFU frame (no dither); flux: (N,) per-fiber
    band values (e.g. :func:`fiber_band_flux`, electrons per column). Fibers with a zero or
    non-finite value are skipped. The image is in the units of ``flux`` (per fiber, see the
    module docstring for the normalisation).
    """
    xy = np.asarray(fiber_xy, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or f.shape != (xy.shape[0],):
        raise ValueError(f"fiber_xy must be (N, 2) and flux (N,), got {xy.shape}, {f.shape}")
    use = np.isfinite(f) & (f != 0) & np.all(np.isfinite(xy), axis=1)
    xy, f = xy[use], f[use]
    # each fiber touches only a (2 RMAX + 2)^2 stamp of pixels around it
    k = np.arange(-int(RMAX) - 1, int(RMAX) + 2)                       # (K,)
    ii = np.floor((xy[:, 0] - X0) / PIXEL).astype(np.int64)[:, None] + k  # (N, K) columns
    jj = np.floor((xy[:, 1] - Y0) / PIXEL).astype(np.int64)[:, None] + k  # (N, K) rows
    dx = X0 + PIXEL * ii - xy[:, 0, None]
    dy = Y0 + PIXEL * jj - xy[:, 1, None]
    r2 = dy[:, :, None] ** 2 + dx[:, None, :] ** 2                     # (N, K, K)
    inside = ((jj >= 0) & (jj < NPIX))[:, :, None] & ((ii >= 0) & (ii < NPIX))[:, None, :]
    w = np.where((r2 < RMAX * RMAX) & inside, np.exp(-0.5 * r2 / (SIGMA * SIGMA)), 0.0)
    rows = np.broadcast_to(np.clip(jj, 0, NPIX - 1)[:, :, None], w.shape)
    cols = np.broadcast_to(np.clip(ii, 0, NPIX - 1)[:, None, :], w.shape)
    image = np.bincount((rows * NPIX + cols).ravel(), weights=(w * f[:, None, None]).ravel(),
                        minlength=NPIX * NPIX).reshape(NPIX, NPIX) / _sumg()
    return image.astype(np.float32)


def cofes_from_amps(ifupos: Mapping[str, np.ndarray], sky_subtracted: Mapping[str, np.ndarray],
                    masks: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The reconstructed image of an IFU from its amps' multi-file arrays.

    ifupos[amp]: (112, 2) arcsec (multi HDU ``ifupos``); sky_subtracted[amp]: (112, 1032) e-
    (HDU ``sky_subtracted``); masks[amp]: optional (112, 1032) bool. Amps missing from the
    mappings are left out (their fibers stay dark, as vrecon does for a missing file).
    """
    xy, fl = [], []
    for amp in AMPS:
        if amp not in ifupos or amp not in sky_subtracted:
            continue
        m = None if masks is None else masks.get(amp)
        xy.append(np.asarray(ifupos[amp], dtype=np.float64))
        fl.append(fiber_band_flux(sky_subtracted[amp], m))
    if not xy:
        return np.zeros((NPIX, NPIX), dtype=np.float32)
    return cofes_image(np.vstack(xy), np.concatenate(fl))


def cofes_header(*, ifuslot: int, ifuid: str | None = None, specid: int | None = None,
                 name0: str | None = None, extra: Mapping | None = None) -> fits.Header:
    """The CoFeS header: the real files' ``CRPIX1/CRPIX2`` plus non-WCS provenance cards."""
    h = fits.Header()
    h["CRPIX1"] = X0
    h["CRPIX2"] = Y0
    for key, value, comment in [
        ("IFUSLOT", f"{int(ifuslot):03d}", ""),
        ("IFUID", ifuid, ""),
        ("SPECID", None if specid is None else f"{int(specid):03d}", ""),
        ("NAME0", name0, "raw file of the first amp"),
        ("IFUX0", X0, "arcsec, IFU x of pixel 1 (as CRPIX1 above)"),
        ("IFUY0", Y0, "arcsec, IFU y of pixel 1 (as CRPIX2 above)"),
        ("PIXSCALE", PIXEL, "arcsec per pixel"),
        ("BANDCOL1", BAND_COLUMNS[0], "first native column of the band (1-based)"),
        ("BANDCOL2", BAND_COLUMNS[1], "last native column of the band"),
        ("RECONFW", FWHM, "arcsec, Gaussian FWHM (Karl vrecon)"),
        ("RECONRAD", RMAX, "arcsec, truncation radius"),
        ("BUNIT", "electron", "per CCD column per fiber, sky subtracted"),
        ("HETRED", __version__, "hetred version"),
    ]:
        if value is not None:
            h[key] = (value, comment)
    for key, value in (extra or {}).items():
        if key not in h:
            h[key] = value
    return h


def write_cofes(layout: Layout, *, night: str, obs: int, exp: int, stamp: str, ifuslot: int,
                image: np.ndarray, header: fits.Header | None = None) -> Path:
    """Write ``CoFeS{stamp}_{ifuslot}_sci.fits`` (layout key ``cofes``) atomically.

    stamp: the raw time stamp, e.g. ``20180611T054545.2``; image: (51, 51); header: from
    :func:`cofes_header` (made with ``ifuslot`` alone when None). Returns the path.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.shape != (NPIX, NPIX):
        raise ValueError(f"CoFeS image must be ({NPIX}, {NPIX}), got {img.shape}")
    h = cofes_header(ifuslot=ifuslot) if header is None else header
    path = layout.path("cofes", night=night, obs=obs, exp=exp, stamp=stamp, ifuslot=ifuslot)
    write_fits_atomic(path, fits.HDUList([fits.PrimaryHDU(img, h)]))
    return path


def read_cofes(path: str | Path) -> tuple[np.ndarray, fits.Header]:
    """(image (51, 51) float32, header) of a CoFeS file (ours or a real one)."""
    with fits.open(path, memmap=False) as h:
        return np.asarray(h[0].data, dtype=np.float32), h[0].header.copy()


def write_unit_cofes(layout: Layout, unit, raws, results) -> Path | None:
    """The CoFeS file of one ``hetred sci`` unit (called by :func:`hetred.sci.run.run_sci`).

    unit: has ``night``, ``obs``, ``exp``, ``ifuslot``, ``stamp``; raws: the unit's raw amps
    (``amp``, ``header``, ``source``); results: per amp ``amp`` and ``arrays`` holding the multi
    arrays ``ifupos``, ``sky_subtracted`` and ``error1d`` (0 = masked column, left out of the
    band). Returns the path, or None when no amp has arrays.
    """
    ifupos, sky, masks = {}, {}, {}
    for r in results:
        a = r.arrays
        if "ifupos" not in a or "sky_subtracted" not in a:
            continue
        ifupos[r.amp], sky[r.amp] = a["ifupos"], a["sky_subtracted"]
        if "error1d" in a:
            masks[r.amp] = np.asarray(a["error1d"]) <= 0
    if not sky:
        return None
    image = cofes_from_amps(ifupos, sky, masks)
    by_amp = {r.amp: r for r in raws}
    first = next((by_amp[a] for a in AMPS if a in by_amp), raws[0] if raws else None)
    hdr = first.header if first is not None else {}
    name0 = Path(str(first.source).split("::")[-1]).name if first is not None else None
    header = cofes_header(ifuslot=unit.ifuslot, ifuid=str(hdr.get("IFUID", "")).strip() or None,
                          specid=hdr.get("SPECID"), name0=name0)
    return write_cofes(layout, night=unit.night, obs=unit.obs, exp=unit.exp, stamp=unit.stamp,
                       ifuslot=unit.ifuslot, image=image, header=header)
