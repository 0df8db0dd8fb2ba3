"""Flux calibration of fiber spectra (karlspipe hdr2.1 progs/fitradecsp.f mode 106 ``getspec2``
and ``writefits``; shared/reference/astrom_throughput.md §4).

For a fiber's sky-subtracted counts per 2 Å on 3470 + 2 i Å, its fiber-to-fiber ftf(lambda),
the amp-to-amp factor a, the exposure's norm.dat value n and the shot's throughput tp(lambda)
(``DATEvOBSsedtp_f.dat`` columns 1-2, linear, constant outside 3540-5540 Å):

    calib_c  = counts / (ftf a n)                                     [electrons per 2 Å]
    calib    = calib_c x h c / (360 s x 5e5 cm^2) / lambda / tp(lambda) x 1e17
                                                               [1e-17 erg/s/cm^2 per 2 Å]

(h c = 6.626e-27 x 3e18 erg Å: Karl's constants; 1 count at 4540 Å with tp 0.13 gives 0.0187).
The errors get the same factors: by default the propagated 1-sigma of the rectified spectra
(hetred sci: extraction, sky and rebinning variance). :func:`karl_error` is fitradecsp's ad-hoc
model, kept to compare (docs/stages/calfib.md measures both against the simulator's truth).
A bin is 0 with error 0 where the spectrum has no data, ftf <= 0.1 or tp <= 0 (Karl's cuts).
"""
from __future__ import annotations

import numpy as np

from hetred.stats import biweight

GRID = 3470.0 + 2.0 * np.arange(1036)       #: Å
HC = 6.626e-27 * 3e18                       #: erg Å (Karl)
EXPTIME, AREA = 360.0, 5e5                  #: s, cm^2 (Karl's fixed values)
FTF_MIN = 0.1


def flux_factor(tp_wave: np.ndarray, tp: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """(n_grid,) 1e-17 erg/s/cm^2 per 2 Å of one calibrated count: hc / (360 x 5e5) / lambda /
    tp(lambda) x 1e17; 0 where tp <= 0. tp linear in (tp_wave, tp), constant outside."""
    t = np.interp(grid, np.asarray(tp_wave, dtype=np.float64), np.asarray(tp, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, HC / (EXPTIME * AREA) / grid / t * 1e17, 0.0)


def calibrate(counts: np.ndarray, error: np.ndarray, ftf: np.ndarray, a2a: float, norm: float,
              factor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(calib, calibe, calib_c, calibe_c), each (n_fib, n_grid) float32, from counts and errors
    per 2 Å, the fiber-to-fiber on the grid, the amp-to-amp factor, the norm.dat value and
    :func:`flux_factor`. Missing bins (error <= 0, ftf <= 0.1, non-finite, factor 0) are 0."""
    f = np.asarray(ftf, dtype=np.float64) * float(a2a) * float(norm)
    ok = (error > 0) & (ftf > FTF_MIN) & np.isfinite(counts) & np.isfinite(error) & (factor[None, :] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cc = np.where(ok, counts / f, 0.0)
        ce = np.where(ok, error / f, 0.0)
    return ((cc * factor).astype(np.float32), (ce * factor).astype(np.float32), cc.astype(np.float32),
            ce.astype(np.float32))


def karl_error(counts: np.ndarray, sky: np.ndarray, read_noise: float = 3.0, npix: int = 3,
               frac: float = 0.03) -> np.ndarray:
    """fitradecsp's ad-hoc error of every native pixel (n_fib, n_pix), electrons per pixel
    (:func:`calibrate` then divides by the fiber-to-fiber, as Karl does): s = the biweight of
    the sky-subtracted counts within +-1 pixel when it exceeds (biweight + 1.2 biweight scale)
    within +-5 pixels, else that +-5-pixel biweight; stot = max(0, sky + max(0, s));
    sigma = sqrt(stot + npix read_noise^2 + (frac stot)^2) (Karl's residual-map terms are 1:
    hetred has no residual maps)."""
    c = np.asarray(counts, dtype=np.float64)
    n, m = c.shape
    pad = np.pad(c, ((0, 0), (5, 5)), mode="edge")
    w5 = np.stack([pad[:, k:k + m] for k in range(11)])             # (11, n, m)
    b5, s5 = biweight(w5.reshape(11, -1) / _unit(c), axis=0)
    b5 = np.asarray(b5, np.float64).reshape(n, m) * _unit(c)
    s5 = np.asarray(s5, np.float64).reshape(n, m) * _unit(c)
    b1 = np.asarray(biweight(w5[4:7].reshape(3, -1) / _unit(c), axis=0)[0], np.float64).reshape(n, m) * _unit(c)
    s = np.where(b1 > b5 + 1.2 * s5, b1, b5)
    stot = np.maximum(0.0, sky + np.maximum(0.0, s))
    return np.sqrt(stot + npix * read_noise**2 + (frac * stot) ** 2)


def _unit(a: np.ndarray) -> float:
    """A scale for Karl's biweight (its MAD floor is absolute): the typical |value|."""
    v = float(np.nanmedian(np.abs(a))) if a.size else 1.0
    return v if v > 0 else 1.0
