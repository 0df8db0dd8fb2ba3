"""Every fiber's calibrated spectrum on the 2-Å grid: fitradecsp ``getspec``/``getmulti``/``getspec2``
/``sclean`` (karlspipe hdr2.1/progs/fitradecsp.f; shared/reference/detect_fullsky.md §1.2-1.3).

Per amp (112 fibers, all at once; :func:`amp_spectra`), from the multi file's ``wavelength``,
``sky_subtracted``, ``fiber_to_fiber``, ``sky_spectrum``, ``trace``, ``chi2`` and the 2-D
``error`` frame (0 = masked pixel):

1. an amp whose biweight chi^2 (values > 0) is <= 0.15 is zeroed; wavelengths get the full-sky
   shift ``lambda += W0 + W1/1000 (4500 - lambda)``;
2. native pixels with 3470 < lambda < 5540: ``xsp = sky_subtracted - sky x res``, divided by the
   fiber-to-fiber where it is > 0.1 (else the pixel is flagged -1);
3. linear interpolation onto lambda_k = 3470 + 2k (k < 1036): counts as Karl's ``xlinint4`` (a
   zero neighbour is skipped), the chi^2 from the nearest pixel, everything else linearly;
4. the error per grid pixel, Karl's model (``errors = "karl"``; with ``error1d`` the multi file's
   error1d interpolated in variance, / ftf): local source level s1 (biweight of the non-zero counts
   within +-1 pixel if above the +-5 pixel biweight + 1.2 x its scale, else the +-5 biweight),
   ``stot = max(sky + max(0, s1), 0)``, ``sigma^2 = stot + 3 rn^2 + (f stot)^2`` with f = 0.03
   growing to 0.06 as |res| goes 0.03 -> 0.10, x (1 + 4 (rres - 1.03)/0.17) where rres > 1.03,
   / ftf;
5. counts and errors / norm.dat of the exposure; with ``per_2aa`` x 2 / (dlambda/dx) (counts per
   2 Å: hetred's throughput is per 2-Å bin, Karl's was per native pixel); counts / amp-to-amp;
   flux = counts x hc / (lambda t A throughput amp-to-amp) in 1e-17 erg/s/cm² per 2 Å; a pixel
   is masked (0) if its interpolated flag <= 0, error <= 0 or > 1e5, outside the 3rd..(n-3)th
   native pixel, amp-to-amp <= 0.1, throughput 0 or counts outside (-1e3, 1e7);
6. ``sclean`` (``fill_masked``): a masked pixel gets the mean of the non-zero values within +-5
   pixels of the nearest good pixel and 4x that pixel's error.

Shapes: (112, 1036) float32 per amp; the grid is :data:`GRID`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred.detect.settings import DetectSettings
from hetred.stats import biweight

GRID = 3470.0 + 2.0 * np.arange(1036)        #: Å
NGRID = GRID.size
WMIN, WMAX = 3470.0, 5540.0
HC = 6.626e-27 * 3.0e18                      #: Karl's h c (erg Å)


@dataclass
class AmpSpectra:
    """The grid spectra of one amp's 112 fibers (flux in 1e-17 erg/s/cm² per 2 Å)."""

    counts: np.ndarray        #: (112, 1036) float32, e- (after ftf, amp-to-amp, norm)
    counts_err: np.ndarray
    flux: np.ndarray          #: (112, 1036) float32
    flux_err: np.ndarray
    good: np.ndarray          #: (112, 1036) bool, Karl's fweight21 (1 = real data before sclean)
    chi2: np.ndarray          #: (112, 1036) float32, nearest native chi^2
    rvar: np.ndarray          #: (112, 1036) float32, variance factor of the interpolation ((1-t)^2 + t^2)
    zero_before: int          #: pixels with zero counts before sclean
    wave: np.ndarray          #: (112, 1032) corrected native wavelengths (for x_raw)
    trace: np.ndarray         #: (112, 1032) 1-based trace rows (for y_raw)


def nint(x: np.ndarray) -> np.ndarray:
    """Fortran NINT (half away from zero) as int."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def _interp_index(wave: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For one fiber's in-range native wavelengths ``wave[lo:hi+1]``: per grid point the left
    column j (absolute), t in [0, 1], and the masks below / above the range."""
    x = wave[lo:hi + 1]
    k = np.searchsorted(x, GRID, side="left") - 1
    below = GRID < x[0]
    above = GRID > x[-1]
    k = np.clip(k, 0, x.size - 2)
    t = (GRID - x[k]) / (x[k + 1] - x[k])
    t = np.where(below, 0.0, np.where(above, 1.0, t))
    return k + lo, t, below, above


def _lin(a: np.ndarray, j: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows of ``a`` (112, 1032) at column j + t (112, 1036)."""
    y0 = np.take_along_axis(a, j, axis=1)
    y1 = np.take_along_axis(a, j + 1, axis=1)
    return y0 + (y1 - y0) * t


def _window_stack(y: np.ndarray, half: int) -> np.ndarray:
    """(2 half + 1, n, m) of y shifted by -half..half along axis 1; NaN off the ends and for zeros."""
    n, m = y.shape
    out = np.full((2 * half + 1, n, m), np.nan, dtype=np.float32)
    yz = np.where(y != 0, y, np.nan).astype(np.float32)
    for k, s in enumerate(range(-half, half + 1)):
        if s < 0:
            out[k, :, -s:] = yz[:, :m + s]
        elif s > 0:
            out[k, :, :m - s] = yz[:, s:]
        else:
            out[k] = yz
    return out


def error_model(ypa: np.ndarray, sky: np.ndarray, res: np.ndarray, rres: np.ndarray, ftf: np.ndarray,
                settings: DetectSettings) -> np.ndarray:
    """Karl's getspec2 error of every grid pixel (module docstring step 4); all (n, 1036)."""
    n, m = ypa.shape
    b1 = biweight(_window_stack(ypa, 1).reshape(3, -1), axis=0)[0].reshape(n, m)
    b2, s2 = biweight(_window_stack(ypa, 5).reshape(11, -1), axis=0)
    b2, s2 = b2.reshape(n, m), s2.reshape(n, m)
    s1 = np.where(b1 > b2 + 1.2 * s2, b1, b2).astype(np.float64)
    stot = np.maximum(sky + np.maximum(0.0, s1), 0.0)
    stots2 = stot + 3.0 * settings.read_noise ** 2
    r = np.abs(res)
    f = np.where(r > 0.03, np.minimum(settings.sky_err + 0.03 * (r - 0.03) / (0.1 - 0.03), settings.sky_err_max),
                 settings.sky_err)
    err = np.sqrt(stots2 + (f * stot) ** 2)
    err = np.where(rres > 1.03, err * (1.0 + 4.0 * (rres - 1.03) / (1.2 - 1.03)), err)
    return np.where(ftf > 0, err / np.where(ftf > 0, ftf, 1.0), err)


def sclean(w: np.ndarray, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Karl's ``sclean`` on rows of (counts, counts_err, flux, flux_err): a pixel with counts 0 or
    error 0 gets the mean of the non-zero counts (and fluxes) within +-5 pixels of the nearest
    pixel with both non-zero (ties: the lower one) and 4x that pixel's errors. Rows without any
    good pixel stay 0."""
    c, ce, f, fe = (np.array(a, dtype=np.float64) for a in arrays)
    n, m = c.shape
    good = (c != 0) & (ce != 0)
    bad = ~good
    if not bad.any():
        return [c, ce, f, fe]
    idx = np.arange(m)
    nz = c != 0
    cs_c = np.concatenate([np.zeros((n, 1)), np.cumsum(np.where(nz, c, 0.0), axis=1)], axis=1)
    cs_f = np.concatenate([np.zeros((n, 1)), np.cumsum(np.where(nz, f, 0.0), axis=1)], axis=1)
    cs_n = np.concatenate([np.zeros((n, 1)), np.cumsum(nz, axis=1)], axis=1)
    for i in np.nonzero(bad.any(axis=1) & good.any(axis=1))[0]:
        g = np.nonzero(good[i])[0]
        b = np.nonzero(bad[i])[0]
        pos = np.searchsorted(g, b)
        left = g[np.clip(pos - 1, 0, g.size - 1)]
        right = g[np.clip(pos, 0, g.size - 1)]
        dl = np.abs(w[b] - w[left])
        dr = np.abs(w[b] - w[right])
        near = np.where(dr < dl, right, left)
        lo = np.maximum(near - 5, 0)
        hi = np.minimum(near + 5, m - 1) + 1
        cnt = cs_n[i, hi] - cs_n[i, lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            ac = np.where(cnt > 0, (cs_c[i, hi] - cs_c[i, lo]) / cnt, 0.0)
            af = np.where(cnt > 0, (cs_f[i, hi] - cs_f[i, lo]) / cnt, 0.0)
        ce_near, fe_near = ce[i, near], fe[i, near]
        c[i, b], f[i, b] = ac, af
        ce[i, b], fe[i, b] = 4.0 * ce_near, 4.0 * fe_near
    del idx
    return [c, ce, f, fe]


def amp_spectra(m: dict[str, np.ndarray], *, norm: float, tp_wave: np.ndarray, tp: np.ndarray,
                a2a_wave: np.ndarray, a2a: np.ndarray, res, rres, w0: float, w1: float,
                settings: DetectSettings, notes: list[str] | None = None, label: str = "") -> AmpSpectra:
    """The grid spectra of one amp (module docstring).

    ``m``: the multi file's arrays ``wavelength``, ``sky_subtracted``, ``fiber_to_fiber``,
    ``sky_spectrum``, ``trace``, ``chi2`` (112, 1032) and ``error`` (1032, 1032); ``res``,
    ``rres``: scalars or (112, 1032) maps; ``norm``: the exposure's norm.dat value.
    """
    notes = notes if notes is not None else []
    f64 = np.float64
    wave = np.asarray(m["wavelength"], f64)
    nf, ncol = wave.shape
    skysub = np.asarray(m["sky_subtracted"], f64)
    sky = np.asarray(m["sky_spectrum"], f64)
    ftf = np.asarray(m["fiber_to_fiber"], f64)
    trace = np.asarray(m["trace"], f64)
    chi2 = np.asarray(m["chi2"], f64)
    err2d = np.asarray(m["error"], f64)
    bad = ~np.isfinite(skysub) | ~np.isfinite(sky) | ~np.isfinite(ftf)
    if bad.any():
        notes.append(f"{label}: {int(bad.sum())} non-finite pixels masked")
        skysub = np.where(np.isfinite(skysub), skysub, 0.0)
        sky = np.where(np.isfinite(sky), sky, 0.0)
        ftf = np.where(np.isfinite(ftf), ftf, 0.0)
    chi2 = np.where(np.isfinite(chi2), chi2, 0.0)
    trace = np.where(np.isfinite(trace), trace, 1.0)
    err2d = np.where(np.isfinite(err2d), err2d, 0.0)
    cpos = chi2[chi2 > 0]
    if biweight(cpos)[0] <= settings.amp_chi2_min:
        notes.append(f"{label}: chi^2 biweight <= {settings.amp_chi2_min}: the amp is zeroed (Karl's getmulti)")
        skysub = np.zeros_like(skysub)
    wave = wave + w0 + (w1 / 1000.0) * (4500.0 - wave)
    resm = np.broadcast_to(np.asarray(res, f64), wave.shape)
    rresm = np.broadcast_to(np.asarray(rres, f64), wave.shape)

    xsp = skysub - sky * resm
    okf = ftf > settings.ftf_min
    xsp = np.where(okf, xsp / np.where(okf, ftf, 1.0), xsp)
    f2f = np.where(okf, ftf, 1.0)
    skyv = np.where(okf, sky, 0.0)
    chiv = np.where(okf, chi2, 0.0)
    rows = np.clip(nint(trace) - 1, 0, err2d.shape[0] - 1)
    cols = np.broadcast_to(np.arange(ncol), wave.shape)
    flag = np.where(okf, err2d[rows, np.clip(cols, 0, err2d.shape[1] - 1)], -1.0)
    disp = np.gradient(wave, axis=1)

    shape = (nf, NGRID)
    jj = np.zeros(shape, np.int64)
    tt = np.zeros(shape)
    below = np.ones(shape, bool)
    above = np.zeros(shape, bool)
    edge_lo = np.full(nf, np.inf)
    edge_hi = np.full(nf, -np.inf)
    live = np.zeros(nf, bool)
    for f in range(nf):
        w = wave[f]
        inr = np.nonzero((w > WMIN) & (w < WMAX) & np.isfinite(w))[0]
        if inr.size < 8:
            continue
        lo, hi = int(inr[0]), int(inr[-1])
        if hi - lo + 1 != inr.size or np.any(np.diff(w[lo:hi + 1]) <= 0):
            continue
        live[f] = True
        jj[f], tt[f], below[f], above[f] = _interp_index(w, lo, hi)
        # Karl: grid points outside the 3rd..(n-3)th in-range pixel are masked
        edge_lo[f], edge_hi[f] = w[lo + 2], w[hi - 3]
    if not live.all():
        notes.append(f"{label}: {int((~live).sum())} fibers without a usable wavelength solution")
    jj = np.where(live[:, None], jj, 0)

    y0 = np.take_along_axis(xsp, jj, axis=1)
    y1 = np.take_along_axis(xsp, jj + 1, axis=1)
    ypa = y0 + (y1 - y0) * tt
    ypa = np.where(y0 == 0, y1, ypa)
    ypa = np.where(y1 == 0, y0, ypa)
    rvar = np.where((y0 != 0) & (y1 != 0), (1.0 - tt) ** 2 + tt ** 2, 1.0)
    ypa = np.where(below, y0, np.where(above, y1, ypa))
    rvar = np.where(below | above, 1.0, rvar)
    skys = _lin(skyv, jj, tt)
    rr = _lin(rresm, jj, tt)
    rs = _lin(resm, jj, tt)
    ftfs = _lin(f2f, jj, tt)
    yflag = _lin(flag, jj, tt)
    dispg = _lin(disp, jj, tt)
    c0 = np.take_along_axis(chiv, jj, axis=1)
    c1 = np.take_along_axis(chiv, jj + 1, axis=1)
    chis = np.where(tt > 0.5, c1, c0)
    ypa = np.where(live[:, None], ypa, 0.0)

    if settings.errors == "error1d":
        e1 = np.asarray(m["error1d"], f64)
        var = np.where(np.isfinite(e1) & (e1 > 0), e1 * e1, 0.0)
        v0 = np.take_along_axis(var, jj, axis=1)
        v1 = np.take_along_axis(var, jj + 1, axis=1)
        vg = v0 + (v1 - v0) * tt
        vg = np.where(v0 == 0, v1, np.where(v1 == 0, v0, vg))
        vg = np.where(below, v0, np.where(above, v1, vg))
        yerr = np.where(ftfs > 0, np.sqrt(vg) / np.where(ftfs > 0, ftfs, 1.0), np.sqrt(vg))
    else:
        yerr = error_model(ypa, skys, rs, rr, ftfs, settings)
    ytp = np.interp(GRID, tp_wave, tp)
    yfp = np.interp(GRID, a2a_wave, a2a)
    yp = ypa / norm if norm > 0 else ypa
    ye = yerr / norm if norm > 0 else yerr
    inside = (GRID[None, :] >= edge_lo[:, None]) & (GRID[None, :] <= edge_hi[:, None])
    ok = (live[:, None] & (yflag > 0) & (ye > 0) & (ye <= 1e5) & inside & (yfp > 0.1)[None, :]
          & (ytp != 0)[None, :] & (yp < 1e7) & (yp > -1e3))
    if settings.per_2aa:
        scale = np.where(dispg > 0, 2.0 / np.where(dispg > 0, dispg, 1.0), 1.0)
        yp, ye = yp * scale, ye * scale
    conv = HC / settings.exptime / settings.area * 1e17
    cal = conv / GRID / np.where(ytp != 0, ytp, 1.0) / yfp
    counts = np.where(ok, yp / yfp, 0.0)
    counts_err = np.where(ok, ye / yfp, 0.0)
    flux = np.where(ok, yp * cal, 0.0)
    flux_err = np.where(ok, ye * cal, 0.0)
    zero_before = int(np.count_nonzero(counts == 0))
    if settings.fill_masked:
        counts, counts_err, flux, flux_err = sclean(GRID, [counts, counts_err, flux, flux_err])
    f32 = np.float32
    return AmpSpectra(counts.astype(f32), counts_err.astype(f32), flux.astype(f32), flux_err.astype(f32),
                      ok, chis.astype(f32), rvar.astype(f32), zero_before, wave, trace)


def empty_amp(settings: DetectSettings, nf: int = 112) -> AmpSpectra:
    """An amp without data (missing multi file): every pixel masked."""
    z = np.zeros((nf, NGRID), np.float32)
    return AmpSpectra(z, z.copy(), z.copy(), z.copy(), np.zeros(z.shape, bool), z.copy(), np.ones_like(z),
                      nf * NGRID, np.zeros((nf, 1032)), np.ones((nf, 1032)))
