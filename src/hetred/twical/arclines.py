"""Arc lines in extracted fiber spectra: line lists, rough identification and centroids.

The wavelength stage (:mod:`hetred.twical.wavelength`, docs/stages/twical_wavelength.md) fits
its solution to the line positions measured here. Everything works on EXTRACTED spectra,
(112, 1032) arrays in electrons per oriented column (x = 0..1031, wavelength increasing with x).

* :data:`LAMP_LINES`: the Hg and Cd lines of Remedy's ``Lines_list/virus_lines.dat`` (air, A),
  by lamp (OBJECT ``hg`` / ``cd-a``);
* :func:`rough_shifts`: a per-fiber shift (px) of the arc spectra against a model line spectrum
  drawn from a guess solution (by default :data:`DEFAULT_POLY`), by cross-correlation;
* :func:`measure_lines`: for each fiber and line, the peak near the predicted column and a
  least-squares fit of a pixel-integrated Gaussian plus a linear background (centre, width,
  amplitude and their errors), vectorised over all (fiber, line) pairs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.special import erf

NFIB = 112
NCOLS = 1032
XCOLS = np.arange(NCOLS, dtype=float)
#: rough default solution lambda(x) = c0 + c1 x + c2 x^2 (A, x = oriented column), a fit to old
#: Panacea's line/pixel list (hetdex_numbers.md section 3)
DEFAULT_POLY = (3492.0, 2.025, -6.46e-5)

#: Remedy Lines_list/virus_lines.dat by lamp (air wavelengths, A)
LAMP_LINES: dict[str, tuple[float, ...]] = {
    "hg": (4046.565, 4358.335, 4916.068, 5460.750),
    "cd-a": (3610.508, 4678.149, 4799.912, 5085.822),
}
ALL_LINES: tuple[float, ...] = tuple(sorted(w for ws in LAMP_LINES.values() for w in ws))

_SQ2 = np.sqrt(2.0)
_SQ2PI = np.sqrt(2.0 * np.pi)


def lamp_lines(lamp: str) -> tuple[float, ...]:
    """Lines of a lamp (OBJECT name, case-insensitive; 'cd' = 'cd-a'); all lines if unknown."""
    key = lamp.strip().lower()
    key = "cd-a" if key in ("cd", "cda") else key
    return LAMP_LINES.get(key, ALL_LINES)


def guess_wavelength(poly: Sequence[float] = DEFAULT_POLY) -> np.ndarray:
    """(112, 1032) wavelengths of a polynomial guess (same for every fiber)."""
    w = np.polynomial.polynomial.polyval(XCOLS, np.asarray(poly, dtype=float))
    return np.broadcast_to(w, (NFIB, NCOLS)).copy()


def columns_of(wave: np.ndarray, lam: float) -> np.ndarray:
    """Column (float) where each fiber's monotonic wavelength array reaches ``lam`` (NaN outside)."""
    out = np.full(wave.shape[0], np.nan)
    for f in range(wave.shape[0]):
        w = wave[f]
        if w[0] <= lam <= w[-1]:
            out[f] = np.interp(lam, w, XCOLS[: w.size])
    return out


def baseline(spectra: np.ndarray, size: int = 32) -> np.ndarray:
    """Smooth continuum under the arc lines: medians of blocks of ``size`` columns per fiber,
    interpolated linearly between the block centres (lines, ~3 px wide, do not move them)."""
    spec = np.asarray(spectra, dtype=float)
    nfib, ncol = spec.shape
    nb = int(np.ceil(ncol / size))
    pad = np.concatenate([spec, np.repeat(spec[:, -1:], nb * size - ncol, axis=1)], axis=1)
    med = np.median(pad.reshape(nfib, nb, size), axis=2)
    centres = (np.arange(nb) + 0.5) * size - 0.5
    centres[-1] = min(centres[-1], (ncol - 1 + (nb - 1) * size) / 2.0)
    xs = np.arange(ncol, dtype=float)
    return np.stack([np.interp(xs, centres, m) for m in med])


def noise_floor(resid: np.ndarray) -> np.ndarray:
    """(nfib,) per-pixel background variance: (1.4826 MAD)^2 of the continuum-subtracted spectra."""
    med = np.median(resid, axis=1, keepdims=True)
    mad = np.median(np.abs(resid - med), axis=1)
    return np.maximum((1.4826 * mad) ** 2, 1.0)


# ----------------------------------------------------------------------------- rough identification

def _model_line_spectrum(xl: np.ndarray, sigma: float) -> np.ndarray:
    """(nfib, 1032) unit Gaussians at columns ``xl`` (nfib, nlines), NaN columns skipped."""
    out = np.zeros((xl.shape[0], NCOLS))
    for j in range(xl.shape[1]):
        c = xl[:, j:j + 1]
        ok = np.isfinite(c)
        out += np.where(ok, np.exp(-0.5 * ((XCOLS[None, :] - np.nan_to_num(c)) / sigma) ** 2), 0.0)
    return out


def rough_shifts(arcs: Mapping[str, np.ndarray], guess: np.ndarray, max_shift_px: float = 12.0,
                 sigma_px: float = 1.3, min_quality: float = 0.3,
                 fiber_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-fiber shift ``s`` (px) such that a line at guess column x_L appears at x_L + s.

    Each lamp's continuum-subtracted spectrum is square-rooted (so that no single line rules)
    and cross-correlated with a model of its lines (unit Gaussians at the guess columns) over
    integer lags |s| <= ``max_shift_px``; the lamps' normalised correlations are summed and the
    peak is refined by a parabola. A fiber whose peak correlation is below ``min_quality`` (dead,
    vignetted) or that is in ``fiber_mask`` takes the median of the good fibers within 8.

    Returns (shift (nfib,), quality (nfib,) = peak normalised correlation, mean over lamps).
    """
    nfib = guess.shape[0]
    smax = int(np.ceil(max_shift_px))
    lags = np.arange(-smax, smax + 1)
    cc = np.zeros((nfib, lags.size))
    for lamp, spec in arcs.items():
        lines = lamp_lines(lamp)
        xl = np.stack([columns_of(guess, lam) for lam in lines], axis=1)
        model = _model_line_spectrum(xl, sigma_px)
        d = np.asarray(spec, dtype=float)
        t = np.sqrt(np.clip(d - baseline(d), 0.0, None))
        t -= t.mean(axis=1, keepdims=True)
        m = model - model.mean(axis=1, keepdims=True)
        norm = np.sqrt((t * t).sum(axis=1) * (m * m).sum(axis=1))
        norm[norm == 0] = np.inf
        for k, s in enumerate(lags):
            if s >= 0:
                cc[:, k] += (t[:, s:] * m[:, :NCOLS - s]).sum(axis=1) / norm
            else:
                cc[:, k] += (t[:, :NCOLS + s] * m[:, -s:]).sum(axis=1) / norm
    cc /= max(len(arcs), 1)
    k = np.clip(np.argmax(cc, axis=1), 1, lags.size - 2)
    rows = np.arange(nfib)
    y0, y1, y2 = cc[rows, k - 1], cc[rows, k], cc[rows, k + 1]
    den = y0 - 2 * y1 + y2
    frac = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    shift = lags[k] + np.clip(frac, -0.5, 0.5)
    quality = y1
    good = quality >= min_quality
    if fiber_mask is not None:
        good &= ~np.asarray(fiber_mask, dtype=bool)
    if good.any():
        for f in np.nonzero(~good)[0]:
            near = good & (np.abs(rows - f) <= 8)
            pool = shift[near] if near.sum() >= 2 else shift[good]
            shift[f] = float(np.median(pool))
    return shift, quality


# ----------------------------------------------------------------------------- centroids

@dataclass
class LineFits:
    """Measured arc lines: arrays (nfib, nlines) in the order of ``lines``; NaN where absent."""

    lines: np.ndarray        #: (nlines,) list wavelengths (A, air)
    lamp: list[str]          #: lamp of each line
    x: np.ndarray            #: fitted centre (column, 0-based)
    x_err: np.ndarray        #: formal error of the centre (px)
    sigma: np.ndarray        #: Gaussian sigma (px)
    amp: np.ndarray          #: line flux (electrons)
    snr: np.ndarray          #: flux / its error
    chi2: np.ndarray         #: reduced chi^2 of the fit
    ok: np.ndarray           #: bool: a valid fit (found, converged, sane width, S/N)

    @property
    def nlines(self) -> int:
        return self.lines.size


def _gauss_model(p: np.ndarray, xw: np.ndarray, xc: np.ndarray, want_jac: bool = True):
    """Pixel-integrated Gaussian + linear background on windows xw (N, K); p (N, 5)."""
    a, mu, sig, b0, b1 = (p[:, i:i + 1] for i in range(5))
    zp = (xw + 0.5 - mu) / sig
    zm = (xw - 0.5 - mu) / sig
    g = 0.5 * (erf(zp / _SQ2) - erf(zm / _SQ2))
    u = xw - xc[:, None]
    model = a * g + b0 + b1 * u
    if not want_jac:
        return model, None
    pp = np.exp(-0.5 * zp * zp) / _SQ2PI
    pm = np.exp(-0.5 * zm * zm) / _SQ2PI
    jac = np.stack([g, -a * (pp - pm) / sig, -a * (zp * pp - zm * pm) / sig,
                    np.ones_like(g), u], axis=-1)
    return model, jac


def fit_gaussians(data: np.ndarray, xw: np.ndarray, var_bg: np.ndarray, p0: np.ndarray,
                  good: np.ndarray | None = None, niter: int = 12
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted Gauss-Newton fits of pixel-integrated Gaussians, all windows at once.

    data, xw: (N, K) values and columns; var_bg: (N,) background variance per pixel; p0: (N, 5)
    start (flux, centre, sigma, background, slope); good: (N, K) bool, pixels to use (all when
    None). Pixel variance = max(model, 0) + var_bg
    (electrons). Returns (params (N, 5), errors (N, 5), converged (N,), reduced chi^2 (N,)); the
    errors are inflated by sqrt(chi^2) when chi^2 > 1.
    """
    p = p0.astype(float).copy()
    xc = p0[:, 1].copy()
    gw = np.ones(data.shape) if good is None else good.astype(float)
    data = np.where(gw > 0, data, 0.0)
    conv = np.zeros(p.shape[0], dtype=bool)
    eye = np.eye(5) * 1e-9
    for _ in range(niter):
        model, jac = _gauss_model(p, xw, xc)
        w = gw / (np.maximum(model, 0.0) + var_bg[:, None])
        r = data - model
        jw = jac * w[..., None]
        h = np.einsum("nki,nkj->nij", jw, jac) + eye
        gvec = np.einsum("nki,nk->ni", jw, r)
        try:
            step = np.linalg.solve(h, gvec[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(p)
        step = np.where(np.isfinite(step), step, 0.0)
        step[:, 1] = np.clip(step[:, 1], -0.5, 0.5)
        step[:, 2] = np.clip(step[:, 2], -0.3 * p[:, 2], 0.3 * p[:, 2])
        p += step
        p[:, 2] = np.clip(p[:, 2], 0.3, 6.0)
        conv = (np.abs(step[:, 1]) < 1e-4) & (np.abs(step[:, 2]) < 1e-3)
        if conv.all():
            break
    model, jac = _gauss_model(p, xw, xc)
    w = gw / (np.maximum(model, 0.0) + var_bg[:, None])
    h = np.einsum("nki,nkj->nij", jac * w[..., None], jac) + eye
    try:
        cov = np.linalg.inv(h)
        err = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    except np.linalg.LinAlgError:
        err = np.full_like(p, np.inf)
    chi2 = ((data - model) ** 2 * w).sum(axis=1) / np.maximum(gw.sum(axis=1) - 5, 1)
    err = err * np.sqrt(np.maximum(chi2, 1.0))[:, None]       # inflate for a poor model
    return p, err, conv, chi2


def measure_lines(spectra: np.ndarray, lines: Sequence[float], predicted: np.ndarray,
                  search_px: float = 4.0, half: int = 5, min_snr: float = 8.0,
                  sigma_range: tuple[float, float] = (0.5, 3.0), lamp: str = "",
                  mask: np.ndarray | None = None, pix_gain: float = 3.0) -> LineFits:
    """Find and fit ``lines`` in one lamp's spectra.

    spectra: (nfib, 1032) electrons; predicted: (nfib, nlines) expected columns (NaN: skip).
    The peak is the brightest continuum-subtracted pixel within ``search_px`` of the prediction
    (it must be a local maximum: a rising edge is a miss); the fit window is the peak +-``half`` columns.
    A fit is ``ok`` when it converged, its centre stays within 1.5 px of the peak, its sigma is
    within ``sigma_range`` px, its S/N >= ``min_snr`` and at most 2 of its pixels are masked.
    mask: (nfib, 1032) bool, True = bad pixel (e.g. from the pixel flat); non-finite values and
    exact zeros (Karl's "no data") are masked too. A line whose fit is poor (chi^2 > 3) is
    fitted again without each of its pixels in turn; when leaving one pixel out lowers chi^2
    more than ``pix_gain`` times (a cosmic ray, a bad column under the line), that fit is kept.
    """
    spec = np.asarray(spectra, dtype=float)
    bad = ~np.isfinite(spec) | (spec == 0)
    if mask is not None:
        bad |= np.asarray(mask, dtype=bool)
    spec = np.where(bad, 0.0, spec)
    nfib = spec.shape[0]
    lines = np.asarray(lines, dtype=float)
    nl = lines.size
    base = baseline(spec)          # masked pixels are 0 here: a few do not move 32-px block medians
    sub = np.where(bad, 0.0, spec - base)
    var_bg = noise_floor(sub)
    fib, lin = np.nonzero(np.isfinite(predicted))
    xp = predicted[fib, lin]
    inside = (xp > half) & (xp < NCOLS - 1 - half)
    fib, lin, xp = fib[inside], lin[inside], xp[inside]
    srch = int(np.ceil(search_px))
    offs = np.arange(-srch, srch + 1)
    cols = np.clip(np.round(xp).astype(int)[:, None] + offs[None, :], 0, NCOLS - 1)
    vals = sub[fib[:, None], cols]
    dist = np.abs(cols - xp[:, None])
    vals = np.where(dist <= search_px, vals, -np.inf)
    k = np.argmax(vals, axis=1)
    xpk = cols[np.arange(cols.shape[0]), k]
    xpk = np.clip(xpk, half, NCOLS - 1 - half)
    edge = (sub[fib, xpk - 1] > sub[fib, xpk]) | (sub[fib, xpk + 1] > sub[fib, xpk])
    wcols = xpk[:, None] + np.arange(-half, half + 1)[None, :]
    data = spec[fib[:, None], wcols]
    gwin = ~bad[fib[:, None], wcols]
    bwin = base[fib[:, None], wcols]
    peak = data[:, half] - bwin[:, half]
    y0, y1, y2 = data[:, half - 1], data[:, half], data[:, half + 1]
    den = y0 - 2 * y1 + y2
    frac = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    # start: flux ~ peak x sigma sqrt(2 pi) with sigma ~ 1.1 px (5.5 A FWHM at ~2 A/px)
    p0 = np.stack([np.maximum(peak, 1.0) * 1.1 * _SQ2PI, xpk + np.clip(frac, -0.5, 0.5),
                   np.full(xpk.size, 1.2), bwin.mean(axis=1), np.zeros(xpk.size)], axis=1)
    shape = (nfib, nl)
    out = LineFits(lines=lines, lamp=[lamp] * nl, x=np.full(shape, np.nan), x_err=np.full(shape, np.nan),
                   sigma=np.full(shape, np.nan), amp=np.full(shape, np.nan), snr=np.full(shape, np.nan),
                   chi2=np.full(shape, np.nan),
                   ok=np.zeros(shape, dtype=bool))
    if fib.size == 0:
        return out
    xw = wcols.astype(float)
    p, err, conv, chi2 = fit_gaussians(data, xw, var_bg[fib], p0, good=gwin)
    if pix_gain > 0:
        _drop_worst_pixel(data, xw, var_bg[fib], p0, gwin, p, err, conv, chi2, pix_gain)
    snr = p[:, 0] / np.where(err[:, 0] > 0, err[:, 0], np.inf)
    ok = (conv & ~edge & np.all(np.isfinite(p), axis=1) & (np.abs(p[:, 1] - xpk) < 1.5)
          & (p[:, 2] >= sigma_range[0]) & (p[:, 2] <= sigma_range[1]) & (snr >= min_snr)
          & (p[:, 0] > 0) & (gwin.sum(axis=1) >= wcols.shape[1] - 2))
    out.x[fib, lin] = p[:, 1]
    out.x_err[fib, lin] = err[:, 1]
    out.sigma[fib, lin] = p[:, 2]
    out.amp[fib, lin] = p[:, 0]
    out.snr[fib, lin] = snr
    out.chi2[fib, lin] = chi2
    out.ok[fib, lin] = ok
    return out


def _drop_worst_pixel(data, xw, var_bg, p0, good, p, err, conv, chi2, gain) -> None:
    """Leave-one-pixel-out refits of the poor fits; updates good, p, err, conv, chi2 in place."""
    r = np.nonzero(chi2 > 3.0)[0]
    if r.size == 0:
        return
    k = data.shape[1]
    rr = np.repeat(r, k)
    g = good[rr].copy()
    g[np.arange(rr.size), np.tile(np.arange(k), r.size)] = False
    pr, er, cr, c2 = fit_gaussians(data[rr], xw[rr], var_bg[rr], p0[rr], good=g)
    c2 = np.where(cr & np.isfinite(c2), c2, np.inf).reshape(r.size, k)
    best = np.argmin(c2, axis=1)
    take = c2[np.arange(r.size), best] * gain < chi2[r]
    sel = np.arange(r.size) * k + best
    for arr, new in ((p, pr), (err, er), (conv, cr)):
        arr[r[take]] = new[sel[take]]
    chi2[r[take]] = c2[np.arange(r.size), best][take]
    good[r[take]] = g[sel[take]]


def concat(fits: Sequence[LineFits]) -> LineFits:
    """Several lamps' LineFits side by side, ordered by wavelength."""
    lines = np.concatenate([f.lines for f in fits])
    order = np.argsort(lines, kind="stable")
    lamps = [l for f in fits for l in f.lamp]

    def cat(name):
        return np.concatenate([getattr(f, name) for f in fits], axis=1)[:, order]

    return LineFits(lines=lines[order], lamp=[lamps[i] for i in order], x=cat("x"), x_err=cat("x_err"),
                    sigma=cat("sigma"), amp=cat("amp"), snr=cat("snr"), chi2=cat("chi2"), ok=cat("ok"))
