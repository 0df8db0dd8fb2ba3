"""The final measurement of each detection: fitradecsp mode 104 after pass 2 (karlspipe
hdr2.1/progs/fitradecsp.f lines 359-427, ``writeinfo``; detect_fullsky.md §1.9, §2).

For detection ``nga`` at (x, y, lambda): the fibers within 3.5" get the PSF weights there (fit2d);
each gives a ``.list`` row (writeinfo: its dithall position, distance -- on the tangent plane, the
one that selected it; Karl's formula with cos(dec / 57.3) and float32 coordinates can put a fiber
just inside 3.5" at 3.505" --, CCD column and row of lambda, weight, flag); the weighted spectrum (sumspec) is fitted at lambda (+-50 Å): fit A with
sigma fixed at 2.5 Å (unused, as Karl), fit B with sigma free from 2.5 (``.mc`` 17-18), fit C with
sigma free from 3.0 and 100 Monte-Carlo realisations (``.mc`` 1-12). The ``.spec`` block is the
weighted spectrum with the unit's ratzero. The highest-weight fiber (the first on ties) names
``.mc`` 19, 21-27; ``.mc`` 19 is the largest chi^2 of that fiber at the three grid pixels nearest
lambda (at most 99).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred.detect.fibers import nint
from hetred.detect.formats import ListRow, McRow
from hetred.detect.linefit import FitState, LineFit, fit_line
from hetred.detect.loading import FiberSet
from hetred.detect.psf import PsfModel, untangent
from hetred.detect.spectrum import Spectrum, weighted_spectrum


@dataclass
class Measurement:
    """One detection's rows: ``mc`` is None when fit C failed."""

    src_index: int
    x: float
    y: float
    ra: float
    dec: float
    mc: McRow | None
    rows: list[ListRow]
    spectrum: Spectrum
    fit: LineFit


def used_fibers(fs: FiberSet, x: float, y: float, radius: float) -> np.ndarray:
    """getint: indices (file order) of the fibers closer than ``radius``."""
    return np.nonzero(np.hypot(fs.x - x, fs.y - y) < radius)[0]


def position_weights(fs: FiberSet, use: np.ndarray, x: float, y: float, psf: PsfModel, compressed: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fit2d at (x, y) for fibers ``use``: g, fadc, fadcw (Karl's adcor takes the ADR direction of
    the k-th loaded fiber for the k-th used one when ``compressed``)."""
    ux = fs.ux[:use.size] if compressed else fs.ux[use]
    uy = fs.uy[:use.size] if compressed else fs.uy[use]
    return psf.weights(fs.x[use] - x, fs.y[use] - y, ux, uy)


def raw_xy(fs: FiberSet, k: int, wave: float) -> tuple[int, int]:
    """writeinfo: the CCD column (1-based, nearest) where fiber k sees ``wave`` in its corrected
    wavelengths, and the trace row there (1-based, nearest)."""
    w = fs.amp_wave[fs.amp_index[k]][fs.fiber[k] - 1]
    tr = fs.amp_trace[fs.amp_index[k]][fs.fiber[k] - 1]
    n = w.size
    if not np.all(np.isfinite(w)) or w[-1] <= w[0]:
        return 0, 0
    col = float(np.interp(wave, w, np.arange(1, n + 1)))
    ix = int(np.clip(nint(col), 1, n))
    iy = int(nint(tr[ix - 1]))
    return ix, iy


def measure(fs: FiberSet, nga: int, x: float, y: float, wave: float, iflag: np.ndarray, psf: PsfModel,
            state: FitState) -> Measurement:
    """Detection ``nga`` at (x, y) arcsec and ``wave`` Å (module docstring)."""
    s = state.settings
    ra, dec = untangent(np.array([x]), np.array([y]), fs.ra0, fs.dec0)
    ra, dec = float(ra[0]), float(dec[0])
    use = used_fibers(fs, x, y, s.fit_radius)
    g, fadc, fadcw = position_weights(fs, use, x, y, psf, s.az_index == "compressed")
    flags = iflag[use]
    date, shot = fs.datevobs[:8], fs.datevobs[9:12]
    rows = []
    kmax, wmax = -1, 0.0
    for j, k in enumerate(use):
        ix, iy = raw_xy(fs, int(k), wave)
        if g[j] > wmax:
            kmax, wmax = j, float(g[j])
        rows.append(ListRow(float(np.float32(fs.ra[k])), float(np.float32(fs.dec[k])), float(fs.xs[k]),
                            float(fs.ys[k]), fs.multifits[k], fs.expname[k],
                            float(np.hypot(fs.x[k] - x, fs.y[k] - y)),
                            wave, fs.timestamp[k], date, shot, ix, iy, float(g[j]), int(flags[j]), nga))
    spec = weighted_spectrum(g, fadc, fadcw, flags, fs.counts[use], fs.counts_err[use], fs.flux[use],
                             fs.flux_err[use], fs.good[use], fs.rvar[use], s)
    yv, ev = spec.fit_input()
    fit_line(spec.wave, yv, ev, wave, s.sigma_fix, True, 1, state)                      # fit A (unused)
    fb = fit_line(spec.wave, yv, ev, wave, s.sigma_fix, False, 1, state)               # fit B
    if fb.ok:
        sig_fix, chi_fix = float(fb.values[2]), float(fb.values[5])
    elif s.stale_fitb:
        sig_fix, chi_fix = state.last_fitout[2], state.last_fitout[5]
    else:
        sig_fix, chi_fix = 0.0, 0.0
    fc = fit_line(spec.wave, yv, ev, wave, s.sigma_mc, False, s.mc, state, rvar=spec.rvar)   # fit C
    mc = None
    if fc.ok and kmax >= 0:
        k = int(use[kmax])
        iwave = int(nint((wave - 3470.0) / 2.0 + 1))
        lo, hi = max(iwave - 2, 0), min(iwave, fs.chi2.shape[1] - 1)
        chi2fib = min(float(np.max(fs.chi2[k, lo:hi + 1])) if hi >= lo else 0.0, 99.0)
        extra: tuple[float, ...] = ()
        if s.mc_columns == 33:
            extra = later_columns(fs, use, g, fadc, fadcw, flags, spec, fc, state)
        mc = McRow(fc.values, fc.errors, ra, dec, fs.datevobs, fc.noise_ratio, sig_fix, chi_fix, chi2fib, nga,
                   fs.multifits[k][:24], fs.expname[k], float(fs.xs[k]), float(fs.ys[k]), rows[kmax].xraw,
                   rows[kmax].yraw, wmax, extra)
    return Measurement(nga, x, y, ra, dec, mc, rows, spec, fc)


def _sn_cen(spec_flux: np.ndarray, spec_err: np.ndarray, wave: float, con: float, half: float) -> float:
    grid = 3470.0 + 2.0 * np.arange(spec_flux.size)
    sel = (np.abs(grid - wave) <= half) & (spec_flux != 0)
    noise = np.sqrt(np.sum(spec_err[sel] ** 2))
    return float(np.sum(spec_flux[sel] - con) / noise) if noise > 0 else 0.0


def later_columns(fs: FiberSet, use, g, fadc, fadcw, flags, spec: Spectrum, fc: LineFit, state: FitState
                  ) -> tuple[float, ...]:
    """Karl's later .mc columns 28-33 (FRn): apcor at the line; sn_cen = sum(data - con) /
    sqrt(sum err^2) within +-max(2.1, sigma) Å; flux_noise_1sigma = sqrt(sum err^2) within +-7 Å
    (<= 999); sn_3fib and sn_3fib_cen from the spectrum of the three highest-weight fibers; the
    last = sum(data - con) within +-6.5 Å / its noise."""
    wave, con, sig = float(fc.values[0]), float(fc.values[3]), float(fc.values[2])
    yv, ev = spec.fit_input()
    apcor = float(np.interp(wave, spec.wave, spec.apcor))
    sn_cen = _sn_cen(yv, ev, wave, con, max(2.1, sig))
    sel = np.abs(spec.wave - wave) <= 7.0
    noise1 = min(float(np.sqrt(np.sum(ev[sel] ** 2))), 999.0)
    top = np.argsort(-g, kind="stable")[:3]
    s3 = weighted_spectrum(g[top], fadc[top], fadcw[top], flags[top], fs.counts[use[top]], fs.counts_err[use[top]],
                           fs.flux[use[top]], fs.flux_err[use[top]], fs.good[use[top]], fs.rvar[use[top]],
                           state.settings)
    y3, e3 = s3.fit_input()
    f3 = fit_line(s3.wave, y3, e3, wave, state.settings.sigma_mc, False, 1, state)
    sn3 = float(f3.values[4]) if f3.ok else 0.0
    sn3c = _sn_cen(y3, e3, wave, float(f3.values[3]) if f3.ok else con, max(2.1, sig))
    last = _sn_cen(yv, ev, wave, con, 6.5)
    return (apcor, sn_cen, noise1, sn3, sn3c, last)
