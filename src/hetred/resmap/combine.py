"""Karl's per-pixel combinations over many multi files (karlspipe hdr2.1 progs/imcmbext.f and
imcmbchi.f), pure arrays: a block of rows at a time, the files along axis 0.

imcmbext, per pixel (a fiber row and CCD column of the (112, 1032) fiber arrays):

* r = sky_subtracted / sky_spectrum from every file where sky_subtracted != 0 and sky > 0 (the
  other files are left out; the same files give the sky and error1d values, an error of 0 left
  out too) [imcmbext:71-113];
* ``res`` = biweight location of r and ``sres`` = its biweight scale when more than nuse =
  nint(0.2 n) files contribute, else 0 [114-124];
* ``rres`` = scale(r) x location(sky) / location(error1d): the measured scatter of the
  sky-subtracted counts over the files against the expected one, when location(error1d) > 0 and
  more than nuse errors contribute, else 1 [125-129]; then divided by its biweight over columns
  10-1021 and rows 2-111 of the values that are not 1, when there are more than 1000 (``norm``)
  [133-150];

imcmbchi: ``chi`` = biweight location of the chi2 HDU over the files, values rounding to -666
left out [imcmbchi:61-72]. Non-finite values are left out everywhere (Karl's data have none).

hetred adds :func:`zscale_block`, the scatter of sky_subtracted / error1d over the files per pixel,
whose biweight over the normalisation box (``ZNORM``) tells whether an amp's errors are right: rres's
``NORM`` also carries how much the sky level differs between the files (scale(r) x location(sky) /
location(err) exceeds 1 by 2-3 % for skies 0.8-1.5 x dark with right errors).
"""
from __future__ import annotations

import numpy as np

from hetred.stats import biweight

F32 = np.float32


def nuse_of(nfiles: int, fraction: float = 0.2) -> int:
    """imcmbext's nuse = nint(0.2 n) (Fortran nint: halves away from zero)."""
    return int(np.floor(fraction * nfiles + 0.5))


def zscale_block(skysub: np.ndarray, err: np.ndarray, nuse: int) -> np.ndarray:
    """hetred's per-pixel noise ratio: the biweight scale over the files of sky_subtracted / error1d
    (the same files as imcmbext's r, an error of 0 left out; NaN with nuse or fewer). Unlike rres it
    does not depend on how the sky level differs between the files."""
    ok = (skysub != 0) & (err > 0) & np.isfinite(skysub) & np.isfinite(err)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(ok, skysub / np.where(ok, err, 1), np.nan).astype(F32)
    scl = np.asarray(biweight(z, axis=0)[1], np.float64)
    return np.where(ok.sum(axis=0) > nuse, scl, np.nan).astype(F32)


def imcmbext_block(skysub: np.ndarray, sky: np.ndarray, err: np.ndarray, nuse: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(res, sres, rres before normalisation) of a block: inputs (nfiles, ...) float32."""
    ok = (skysub != 0) & (sky > 0) & np.isfinite(skysub) & np.isfinite(sky)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ok, skysub / np.where(ok, sky, 1), np.nan).astype(F32)
    s2 = np.where(ok, sky, np.nan).astype(F32)
    e3 = np.where(ok & (err != 0) & np.isfinite(err), err, np.nan).astype(F32)
    nin = np.isfinite(r).sum(axis=0)
    nin3 = np.isfinite(e3).sum(axis=0)
    xl, xs = (np.asarray(v, np.float64) for v in biweight(r, axis=0))
    xl2 = np.asarray(biweight(s2, axis=0)[0], np.float64)
    xl3 = np.asarray(biweight(e3, axis=0)[0], np.float64)
    use = nin > nuse
    res = np.where(use, xl, 0.0).astype(F32)
    sres = np.where(use, xs, 0.0).astype(F32)
    good = (xl3 > 0) & (nin3 > nuse)
    with np.errstate(divide="ignore", invalid="ignore"):
        rres = np.where(good, xs * xl2 / np.where(good, xl3, 1), 1.0).astype(F32)
    return res, sres, rres


def normalise_rres(rres: np.ndarray, columns: tuple[int, int] = (10, 1021), rows: tuple[int, int] = (2, 111),
                   min_values: int = 1000) -> tuple[np.ndarray, float, int]:
    """(rres / norm where rres != 1, norm, number of values it came from): norm = biweight of the
    values != 1 in the 1-based, inclusive ``columns`` and ``rows``, if more than ``min_values``
    (else rres unchanged and norm 1; Karl's key then holds a stale value)."""
    box = rres[rows[0] - 1:rows[1], columns[0] - 1:columns[1]]
    vals = box[(box != 1) & np.isfinite(box)]
    if vals.size <= min_values:
        return rres, 1.0, int(vals.size)
    xl = float(biweight(vals.astype(F32))[0])
    out = np.where(rres != 1, rres / F32(xl), rres).astype(F32)
    return out, xl, int(vals.size)


def imcmbchi_block(chi: np.ndarray, missing: float = -666.0) -> np.ndarray:
    """chi of a block: biweight location over the files (axis 0), ``missing`` left out."""
    c = np.where((np.rint(chi) != missing) & np.isfinite(chi), chi, np.nan).astype(F32)
    return np.asarray(biweight(c, axis=0)[0], F32)
