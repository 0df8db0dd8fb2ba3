"""The PSF-weighted spectrum at one position with every column of the ``.spec`` file: fitradecsp
``sumspec`` (karlspipe hdr2.1/progs/fitradecsp.f lines 2683-2906; detect_fullsky.md §1.6).

With g_i the PSF weights, f_i(lambda) the ADR factors ``fadcw`` interpolated over the five node
wavelengths and G = sum over unflagged fibers of g f, the weights are w = g / f / G (hdr2.1) or
g f / G (``adr_weight = multiply``). Per grid pixel:

| col | Karl | value |
|---|---|---|
| 2 | spec2 | sum c w / sum w^2 (counts) |
| 3 | spec3 | sum F w / sum w^2 (flux, 1e-17 erg/s/cm² per 2 Å, not aperture corrected) |
| 4, 5 | spec4, spec5 | sqrt(sum s^2 w / sum w^2) (Karl's; right when sum w = 1) or sqrt(sum s^2 w^2) / sum w^2 |
| 6, 7 | spec6, spec7 | plain sum of the unflagged fibers' counts and its error |
| 8 | spec8 | sum w^2 / sum (m w), m = 1 for real (not filled) pixels |
| 9 | spec9 | apcor: sum over the fibers used of the fiber fractions (sumrata), over the nodes |

With ``fill_masked`` false, masked pixels are left out of every sum (w m instead of w).
``rvar``: the interpolation variance factor of the summed pixel (for ``frat = corrected``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred.detect.psf import node_interp
from hetred.detect.settings import DetectSettings

GRID = 3470.0 + 2.0 * np.arange(1036)


@dataclass
class Spectrum:
    """The 9 columns of a ``.spec`` block (each (1036,), float64) and ``rvar``."""

    wave: np.ndarray
    flux: np.ndarray        #: spec3
    flux_err: np.ndarray    #: spec5
    counts: np.ndarray      #: spec2
    counts_err: np.ndarray  #: spec4
    apsum: np.ndarray       #: spec6
    apsum_err: np.ndarray   #: spec7
    dummy: np.ndarray       #: spec8
    apcor: np.ndarray       #: spec9
    rvar: np.ndarray

    def fit_input(self) -> tuple[np.ndarray, np.ndarray]:
        """(flux, err) / apcor as fitspec uses them (0 where there is no apcor)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = self.apcor > 0
            return (np.where(ok, self.flux / np.where(ok, self.apcor, 1.0), 0.0),
                    np.where(ok, self.flux_err / np.where(ok, self.apcor, 1.0), 0.0))


def weighted_spectrum(g: np.ndarray, fadc: np.ndarray, fadcw: np.ndarray, iflag: np.ndarray,
                      counts: np.ndarray, counts_err: np.ndarray, flux: np.ndarray, flux_err: np.ndarray,
                      good: np.ndarray, rvar: np.ndarray, settings: DetectSettings) -> Spectrum:
    """sumspec for the fibers used at a position: g (m,), fadc/fadcw (m, 5), iflag (m,), the
    fibers' arrays (m, 1036)."""
    ok = np.asarray(iflag) == 0
    apcor = node_interp(fadc.sum(axis=0))
    z = np.zeros(GRID.size)
    if not ok.any():
        return Spectrum(GRID.copy(), z, z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), apcor, z + 1)
    f = node_interp(fadcw[ok])                          # (k, 1036)
    gk = g[ok][:, None]
    G = (gk * f).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = gk * f / G if settings.adr_weight == "multiply" else gk / f / G
    m = good[ok].astype(float)
    if not settings.fill_masked:
        w = w * m
    c, ce = counts[ok].astype(float), counts_err[ok].astype(float)
    F, FE = flux[ok].astype(float), flux_err[ok].astype(float)
    w2 = (w * w).sum(axis=0)
    pos = w2 > 0
    inv = np.where(pos, 1.0 / np.where(pos, w2, 1.0), 0.0)

    def err(e: np.ndarray) -> np.ndarray:
        if settings.fill_masked:
            return np.sqrt(np.abs((e * e * w).sum(axis=0) * inv))
        return np.sqrt((e * e * w * w).sum(axis=0)) * inv

    mw = (m * w).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dummy = np.where(mw > 0, w2 / mw, 0.0)
        sig2 = (FE * FE * w * w).sum(axis=0)
        rv = np.where(sig2 > 0, (FE * FE * w * w * rvar[ok]).sum(axis=0) / sig2, 1.0)
    return Spectrum(GRID.copy(), (F * w).sum(axis=0) * inv, err(FE), (c * w).sum(axis=0) * inv, err(ce),
                    (c * (m if not settings.fill_masked else 1.0)).sum(axis=0),
                    np.sqrt((ce * ce * (m if not settings.fill_masked else 1.0)).sum(axis=0)), dummy, apcor, rv)
