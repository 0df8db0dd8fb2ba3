"""Rectified fiber spectra: each fiber's sky-subtracted counts moved onto the common HETDEX grid.

Issue 6 step 6. The common grid is the calfib grid of HETDEX (karlspipe vred.f
``wfito(i) = 3470 + 2(i-1)``, ``nwo = 1036``; hetdex_api ``wave_rect``): bin centres
:data:`RECT_WAVE` = 3470, 3472, ..., 5540 Angstrom, each 2 Angstrom wide (edges
:data:`RECT_EDGES` = 3469 ... 5541).

The rebinning is flux conserving: a native CCD pixel covers the wavelengths between the midpoints
to its neighbours and its counts are spread uniformly over them; an output bin receives the
pixel fractions it overlaps (Cython kernel :func:`hetred._ext.rebin.rebin_fibers`, NumPy
reference :func:`hetred._ext.reference.rebin_reference`). So the sum over output bins equals the
sum over the native pixels they cover, and the output unit is electrons per 2 Angstrom bin.

Errors: the variance of a bin is the sum of (fraction^2 x pixel variance) over its pixels, i.e.
the pixels are taken as independent. Caveat: a native pixel usually feeds two neighbouring
output bins, so neighbouring output bins are positively correlated; the per-bin error is right,
but a sum of K adjacent bins has a larger variance than the sum of their squared errors (up to
x2 for K = 2, tending to x1 for wide sums). Fitting codes that treat bins as independent
therefore over-weight narrow features slightly, as they do with Karl's and Panacea's products.

Missing data follow HETDEX calfib/calfibe (hetdex_api shot.py / extract.py / create_fiber_mask:
``calfibe == 0`` marks "no data"): a bin is set to 0 with error 0 when any pixel contributing to
it is masked (``mask`` true, a non-finite value or error, or error <= 0 -- Karl zeroes the error
of rejected pixels), when the fiber's wavelengths do not cover the whole bin, or when the fiber
has no valid (finite, strictly increasing) wavelength solution.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from astropy.io import fits

from hetred._ext.rebin import rebin_fibers
from hetred._version import __version__
from hetred.io.atomic import write_fits_atomic
from hetred.layout import Layout

N_RECT = 1036
RECT_START = 3470.0   #: Angstrom, centre of the first bin
RECT_STEP = 2.0       #: Angstrom, bin width
#: bin centres (1036,) float64 Angstrom: 3470 + 2 i
RECT_WAVE = RECT_START + RECT_STEP * np.arange(N_RECT)
#: bin edges (1037,) float64 Angstrom: 3469 + 2 i
RECT_EDGES = RECT_START - RECT_STEP / 2 + RECT_STEP * np.arange(N_RECT + 1)
#: smallest pixel fraction counted as a contribution to a bin (guards edge rounding)
EPS = 1e-6

#: extension names of the rectified product (as the HETDEX calfib files / H5 columns)
HDU_FLUX = "calfib_counts"
HDU_ERROR = "calfibe_counts"

#: header cards of a source header that are never copied (structure and WCS of other arrays)
_SKIP = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "BZERO", "BSCALE",
         "EXTNAME", "PCOUNT", "GCOUNT", "XTENSION", "CHECKSUM", "DATASUM", "BUNIT", "",
         "COMMENT", "HISTORY"}
_WCS_PREFIX = ("CRVAL", "CRPIX", "CDELT", "CTYPE", "CUNIT", "CD1_", "CD2_", "PC1_", "PC2_")


def rectify(spectra: np.ndarray, error: np.ndarray, wave: np.ndarray,
            mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rebin fiber spectra onto :data:`RECT_WAVE`, conserving counts.

    Parameters
    ----------
    spectra : (nfib, npix) array, electrons per native pixel (e.g. sky_subtracted (112, 1032))
    error : (nfib, npix) array, 1-sigma error of ``spectra`` (electrons); <= 0 or NaN = masked
    wave : (nfib, npix) array, Angstrom at each pixel centre, strictly increasing along a fiber
    mask : optional (nfib, npix) bool, True = masked pixel

    Returns
    -------
    flux, err : (nfib, 1036) float32, electrons per 2 Angstrom bin and 1-sigma error;
        0 and 0 where the bin is missing (see the module docstring).
    """
    spec = np.asarray(spectra, dtype=np.float64)
    err = np.asarray(error, dtype=np.float64)
    wav = np.ascontiguousarray(wave, dtype=np.float64)
    if spec.ndim != 2 or spec.shape != err.shape or spec.shape != wav.shape:
        raise ValueError(f"spectra, error and wave must be 2-D of one shape, got "
                         f"{spec.shape}, {err.shape}, {wav.shape}")
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(spec) & np.isfinite(err) & (err > 0))
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != spec.shape:
            raise ValueError(f"mask shape {m.shape} != spectra shape {spec.shape}")
        bad |= m
    counts = np.ascontiguousarray(np.where(bad, 0.0, spec))
    var = np.ascontiguousarray(np.where(bad, 0.0, err * err))
    return rebin_fibers(counts, var, np.ascontiguousarray(bad, dtype=np.uint8), wav, RECT_EDGES, EPS)


def _copy_cards(dest: fits.Header, source: Mapping | fits.Header | None) -> None:
    """Copy the cards of ``source`` that ``dest`` lacks, except structure and WCS keywords."""
    if source is None:
        return
    if isinstance(source, fits.Header):
        cards = [(c.keyword, c.value, c.comment) for c in source.cards]
    else:
        cards = [(str(k), v, "") for k, v in source.items()]
    for key, value, comment in cards:
        if key in _SKIP or key.startswith(_WCS_PREFIX) or key in dest:
            continue
        # a long value: keep it, drop the comment (astropy would truncate it with a warning)
        short = len(fits.Card(key, value).image) + len(comment) + 3 <= 80
        dest[key] = (value, comment) if short else value


def rectified_hdulist(flux: np.ndarray, error: np.ndarray, *, specid: int, ifuslot: int, ifuid: str,
                      amp: str, header: Mapping | fits.Header | None = None,
                      inputs: Iterable[str] = ()) -> fits.HDUList:
    """The rectified product in memory: an empty primary HDU with the provenance header (the
    raw/multi header cards of ``header`` copied after hetred's own), then ``calfib_counts`` and
    ``calfibe_counts``, each (nfib, 1036) float32 with the wavelength WCS on axis 1."""
    flux = np.asarray(flux, dtype=np.float32)
    error = np.asarray(error, dtype=np.float32)
    if flux.shape != error.shape or flux.ndim != 2 or flux.shape[1] != N_RECT:
        raise ValueError(f"flux and error must be (nfib, {N_RECT}), got {flux.shape}, {error.shape}")
    h = fits.Header()
    for key, value, comment in [
        ("PRODUCT", "rectified", "hetred sci: fiber spectra on 3470+2i A"),
        ("HETRED", __version__, "hetred version"),
        ("STAGE", "sci", "hetred stage"),
        ("SPECID", f"{int(specid):03d}", ""),
        ("IFUSLOT", f"{int(ifuslot):03d}", ""),
        ("IFUID", str(ifuid), ""),
        ("AMP", amp, "CCDPOS + CCDHALF"),
        ("NFIB", flux.shape[0], "fibers, multi-file order (fibnum 1..)"),
        ("WAVE0", RECT_START, "Angstrom, centre of bin 1"),
        ("DWAVE", RECT_STEP, "Angstrom, bin width"),
        ("NWAVE", N_RECT, "bins"),
        ("REBIN", "flux-conserving", "pixel step function integrated over bins"),
        ("MISSING", "0 with error 0", "as HETDEX calfib/calfibe"),
    ]:
        h[key] = (value, comment)
    _copy_cards(h, header)
    for name in inputs:
        h.add_history(f"input {name}")
    hdus = [fits.PrimaryHDU(header=h)]
    for name, data, unit in ((HDU_FLUX, flux, "electron"), (HDU_ERROR, error, "electron")):
        ext = fits.ImageHDU(data, name=name)
        eh = ext.header
        eh["BUNIT"] = (unit, "per 2 A bin, sky subtracted, uncalibrated")
        eh["CTYPE1"] = ("WAVE", "air wavelength")
        eh["CUNIT1"] = ("Angstrom", "")
        eh["CRPIX1"] = (1.0, "")
        eh["CRVAL1"] = (RECT_START, "")
        eh["CDELT1"] = (RECT_STEP, "")
        eh["CTYPE2"] = ("FIBNUM", "multi-file fiber number = row + 1")
        eh["CRPIX2"] = (1.0, "")
        eh["CRVAL2"] = (1.0, "")
        eh["CDELT2"] = (1.0, "")
        hdus.append(ext)
    return fits.HDUList(hdus)


def write_rectified(layout: Layout, *, night: str, obs: int, exp: int, specid: int, ifuslot: int,
                    ifuid: str, amp: str, flux: np.ndarray, error: np.ndarray,
                    header: Mapping | fits.Header | None = None,
                    inputs: Iterable[str] = ()) -> Path:
    """Write the layout's ``rectified`` product atomically; returns its path.

    ``header``: the multi file's primary header (raw header + NAME0), copied for provenance.
    ``inputs``: names recorded as HISTORY (e.g. the multi file).
    """
    path = layout.path("rectified", night=night, obs=obs, exp=exp, specid=specid, ifuslot=ifuslot,
                       ifuid=ifuid, amp=amp)
    write_fits_atomic(path, rectified_hdulist(flux, error, specid=specid, ifuslot=ifuslot,
                                              ifuid=ifuid, amp=amp, header=header, inputs=inputs))
    return path


def read_rectified(path: str | Path) -> tuple[np.ndarray, np.ndarray, fits.Header]:
    """(flux, error, primary header) of a rectified product; arrays (nfib, 1036) float32."""
    with fits.open(path, memmap=False) as h:
        return (np.asarray(h[HDU_FLUX].data, dtype=np.float32),
                np.asarray(h[HDU_ERROR].data, dtype=np.float32), h[0].header.copy())
