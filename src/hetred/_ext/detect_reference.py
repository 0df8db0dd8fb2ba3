"""NumPy reference of the line-search kernel :mod:`hetred._ext.detkern` (tests compare the two;
benchmarks/bench_detect.py reports the speed ratio).

One call searches many positions of one IFU (fitradecsp mode 104 ``fit2d`` + ``sumspec`` +
``fitspec`` with sigma fixed + ``getbestw``; docs/stages/detect.md). Per position:

1. fibers with centre closer than ``par[P_RADIUS]``; PSF weight g = table row 0 at the distance;
   ADR fractions ``fadc`` at the five node wavelengths (rows 1-5, fiber shifted by
   ``adr[n] (ux, uy)``), ``fadcw = fadc / fadc[:, 2]``, ``sumrata = sum fadc``;
2. weighted flux spectrum: f_i(lambda) = fadcw interpolated over the nodes (``hat_lo``, ``hat_w``),
   G = sum over unflagged fibers of g f, w = g / f / G (``OPT_MULTIPLY`` 0) or g f / G (1);
   spec3 = sum F w / sum w^2, spec5 = sqrt(sum E^2 w / sum w^2) (``OPT_PROPAGATE`` 0) or
   sqrt(sum E^2 w^2) / sum w^2 (1); with ``OPT_MASK`` pixels with ``pixgood`` 0 are left out;
   apcor = sumrata over the nodes; y = spec3 / apcor, e = spec5 / apcor, pixels with y = 0 or
   e <= 0 are not used;
3. profile-likelihood scan: the model con + A N(lambda; mu, sigma) is linear in (con, A) for a
   given mu; for every window (centres 3470 + k 2070/(nwin-1), pixels strictly within
   +-half) the least chi^2 over the mu grid (step ``scan_step``, |mu - centre| <= max_shift,
   mu >= edge from the window's first and last pixel) with A > 0 -- none when it is at either end
   of that range (the line lies beyond: Karl's fit would move past it and be rejected) --, refined
   by the parabola through the neighbouring grid values, then evaluated exactly there; kept when
   A > 0, con <= con_max, chi^2/n <= chicut, more than ``nfit_min - 1`` pixels within +-6 Å and
   sncut <= S/N <= sncut_hi, S/N = 0.95 (A/2) / sqrt(sum e^2 within +-xnp);
4. getbestw: the kept fits by S/N, each removing the others within ``merge_wave`` Å.

Returns arrays (position index, wave, line flux A/2, sigma, continuum, S/N, chi^2/n).
"""
from __future__ import annotations

import numpy as np

# indices into par (float64) and opt (int64)
P_RADIUS, P_SIGMA, P_SCAN, P_HALF, P_SHIFT, P_EDGE, P_SNCUT, P_SNHI, P_CHICUT, P_CONMAX, P_WD, \
    P_NWIN, P_XNP, P_NFITHALF, P_NFITMIN, P_DSTEP = range(16)
OPT_MULTIPLY, OPT_MASK, OPT_PROPAGATE, OPT_COMPRESSED, OPT_MAXFITS = range(5)
GRID0, DGRID, NGRID = 3470.0, 2.0, 1036
TEMPLATE_SIGMAS = 5.0          #: the template is summed over +-5 sigma


def _lookup(table: np.ndarray, d: np.ndarray, step: float) -> np.ndarray:
    u = d / step
    i = np.clip(u.astype(np.int64), 0, table.size - 2)
    f = u - i
    return np.where(u < table.size - 1, table[i] * (1.0 - f) + table[i + 1] * f, 0.0)


def weighted_spectrum(flux, ferr, pixgood, fx, fy, ux, uy, iflag, x0, y0, tables, adr, hat_lo, hat_w,
                      par, opt) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-2 at one position: (y, e) on the grid (0 where unusable)."""
    d = np.hypot(fx - x0, fy - y0)
    use = np.nonzero(d < par[P_RADIUS])[0]
    y = np.zeros(NGRID)
    e = np.zeros(NGRID)
    if use.size == 0:
        return y, e
    step = par[P_DSTEP]
    dx, dy = fx[use] - x0, fy[use] - y0
    g = _lookup(tables[0], np.hypot(dx, dy), step)
    if opt[OPT_COMPRESSED]:          # Karl's adcor: az(i) of the i-th loaded fiber, not of fiber use[i]
        vx, vy = ux[:use.size], uy[:use.size]
    else:
        vx, vy = ux[use], uy[use]
    fadc = np.empty((use.size, 5))
    for n in range(5):
        fadc[:, n] = _lookup(tables[1 + n], np.hypot(dx + adr[n] * vx, dy + adr[n] * vy), step)
    sumrata = fadc.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fadcw = np.where(fadc[:, 2:3] > 0, fadc / fadc[:, 2:3], 1.0)
    ok = iflag[use] == 0
    if not ok.any():
        return y, e
    f = fadcw[:, hat_lo] * (1.0 - hat_w) + fadcw[:, hat_lo + 1] * hat_w       # (m, 1036)
    G = (g[ok, None] * f[ok]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if opt[OPT_MULTIPLY]:
            w = g[:, None] * f / G
        else:
            w = g[:, None] / f / G
    w = w[ok]
    F = flux[use][ok].astype(np.float64)
    E = ferr[use][ok].astype(np.float64)
    if opt[OPT_MASK]:
        w = w * (pixgood[use][ok] != 0)
    w2 = (w * w).sum(axis=0)
    s3 = (F * w).sum(axis=0)
    apcor = sumrata[hat_lo] * (1.0 - hat_w) + sumrata[hat_lo + 1] * hat_w
    good = (w2 > 0) & (apcor > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        spec3 = np.where(good, s3 / w2, 0.0)
        if opt[OPT_PROPAGATE]:
            spec5 = np.where(good, np.sqrt((E * E * w * w).sum(axis=0)) / w2, 0.0)
        else:
            spec5 = np.where(good, np.sqrt(np.abs((E * E * w).sum(axis=0) / w2)), 0.0)
        y = np.where(good, spec3 / apcor, 0.0)
        e = np.where(good, spec5 / apcor, 0.0)
    return y, e


def _template(x: np.ndarray, mu: float, sig: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sig) ** 2) / np.sqrt(2.0 * np.pi * sig * sig)


class _Prepared:
    """Per-spectrum arrays of the scan: valid pixels, weights, cumulative sums."""

    def __init__(self, y: np.ndarray, e: np.ndarray, par: np.ndarray) -> None:
        self.x = GRID0 + DGRID * np.arange(NGRID)
        self.v = (y != 0) & (e > 0)
        self.w = np.where(self.v, 1.0 / np.where(self.v, e, 1.0) ** 2, 0.0)
        self.y = np.where(self.v, y, 0.0)
        self.e2 = np.where(self.v, e * e, 0.0)
        self.cw = np.concatenate([[0.0], np.cumsum(self.w)])
        self.cy = np.concatenate([[0.0], np.cumsum(self.w * self.y)])
        self.cyy = np.concatenate([[0.0], np.cumsum(self.w * self.y * self.y)])
        self.cn = np.concatenate([[0], np.cumsum(self.v)])
        self.sig = par[P_SIGMA]
        self.half_t = int(np.ceil(TEMPLATE_SIGMAS * self.sig / DGRID))
        self.step = par[P_SCAN]
        self._grid: np.ndarray | None = None

    def grid_sums(self) -> np.ndarray:
        """(n_mu, 3) template sums T1, T2, Ty at every grid centre 3470 + m scan_step (once)."""
        if self._grid is None:
            mus = GRID0 + self.step * np.arange(round((self.x[-1] - GRID0) / self.step) + 1)
            self._grid = np.array([self.tsums(mu) for mu in mus])
        return self._grid

    def tsums(self, mu: float, jlo: int = 0, jhi: int = NGRID - 1) -> tuple[float, float, float]:
        j0 = max(jlo, int(np.floor((mu - GRID0) / DGRID)) - self.half_t)
        j1 = min(jhi, int(np.ceil((mu - GRID0) / DGRID)) + self.half_t)
        t = _template(self.x[j0:j1 + 1], mu, self.sig)
        ww = self.w[j0:j1 + 1]
        return float((ww * t).sum()), float((ww * t * t).sum()), float((ww * self.y[j0:j1 + 1] * t).sum())


def scan_window(prep: _Prepared, k: int, par: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """The fit of window k (module docstring step 3): (wave, A/2, con, S/N, chi^2/n) or None."""
    x, v = prep.x, prep.v
    nwin = int(par[P_NWIN])
    step = par[P_SCAN]
    w0 = GRID0 + k * (x[-1] - GRID0) / (nwin - 1)
    lo, hi = w0 - par[P_HALF], w0 + par[P_HALF]
    jlo = max(0, int(np.floor((lo - GRID0) / DGRID)) + 1)
    jhi = min(NGRID - 1, int(np.ceil((hi - GRID0) / DGRID)) - 1)
    if jhi < jlo:
        return None
    nt = prep.cn[jhi + 1] - prep.cn[jlo]
    if nt < 3:
        return None
    sel = np.nonzero(v[jlo:jhi + 1])[0] + jlo
    x1, xn = x[sel[0]], x[sel[-1]]
    Sw = prep.cw[jhi + 1] - prep.cw[jlo]
    Sy = prep.cy[jhi + 1] - prep.cy[jlo]
    Syy = prep.cyy[jhi + 1] - prep.cyy[jlo]
    mlo = max(w0 - par[P_SHIFT], x1 + par[P_EDGE])
    mhi = min(w0 + par[P_SHIFT], xn - par[P_EDGE])
    m0 = int(np.ceil((mlo - GRID0) / step - 1e-9))
    m1 = int(np.floor((mhi - GRID0) / step + 1e-9))
    if m1 < m0:
        return None
    ms = np.arange(m0, m1 + 1)
    mus = GRID0 + step * ms
    T = prep.grid_sums()[ms]
    T1, T2, Ty = T[:, 0], T[:, 1], T[:, 2]
    det = Sw * T2 - T1 ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        A = np.where(det > 0, (Sw * Ty - T1 * Sy) / det, 0.0)
        con = (Sy - A * T1) / Sw
    chi = Syy - con * Sy - A * Ty
    okm = (A > 0) & (det > 0)
    if not okm.any():
        return None
    chim = np.where(okm, chi, np.inf)
    b = int(np.argmin(chim))
    if b == 0 or b == ms.size - 1:          # the least chi^2 lies beyond the allowed range
        return None
    mu = float(mus[b])
    if okm[b - 1] and okm[b + 1]:
        den = chim[b - 1] - 2.0 * chim[b] + chim[b + 1]
        if den > 0:
            mu += step * float(np.clip(0.5 * (chim[b - 1] - chim[b + 1]) / den, -0.5, 0.5))
    t1, t2, ty = prep.tsums(mu, jlo, jhi)          # exact evaluation at mu (window pixels only)
    dt = Sw * t2 - t1 * t1
    if dt <= 0:
        return None
    a = (Sw * ty - t1 * Sy) / dt
    c = (Sy - a * t1) / Sw
    chi2 = (Syy - c * Sy - a * ty) / nt
    if a <= 0 or c > par[P_CONMAX] or chi2 > par[P_CHICUT] or mu < mlo - 1e-9 or mu > mhi + 1e-9:
        return None
    if (v & (np.abs(x - mu) < par[P_NFITHALF])).sum() < par[P_NFITMIN]:
        return None
    noise2 = prep.e2[v & (np.abs(x - mu) <= par[P_XNP])].sum()
    if noise2 <= 0:
        return None
    sn = 0.95 * a / np.sqrt(noise2) / 2.0
    if sn < par[P_SNCUT] or sn > par[P_SNHI]:
        return None
    return (mu, a / 2.0, c, sn, chi2)


def scan_spectrum(y: np.ndarray, e: np.ndarray, par: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    """Steps 3-4 for one spectrum: [(wave, A/2, con, S/N, chi^2/n)] after getbestw."""
    prep = _Prepared(y, e, par)
    if prep.v.sum() < 3:
        return []
    fits = [f for f in (scan_window(prep, k, par) for k in range(int(par[P_NWIN]))) if f is not None]
    out = []
    used = np.zeros(len(fits), bool)
    order = sorted(range(len(fits)), key=lambda i: (-fits[i][3], i))
    for i in order:
        if used[i]:
            continue
        out.append(fits[i])
        for j in range(len(fits)):
            if abs(fits[j][0] - fits[i][0]) < par[P_WD]:
                used[j] = True
    return out


def search_positions_reference(flux, ferr, pixgood, fx, fy, ux, uy, iflag, px, py, tables, adr, hat_lo, hat_w,
                               par, opt):
    """The search at every position (module docstring): (pos, wave, flux, sigma, con, sn, chi)."""
    cols: list[list[float]] = [[] for _ in range(7)]
    maxfits = int(opt[OPT_MAXFITS])
    for p in range(len(px)):
        y, e = weighted_spectrum(flux, ferr, pixgood, fx, fy, ux, uy, iflag, px[p], py[p], tables, adr,
                                 hat_lo, hat_w, par, opt)
        for mu, fl, c, sn, chi in scan_spectrum(y, e, par):
            if len(cols[0]) >= maxfits:
                break
            for k, val in enumerate((p, mu, fl, par[P_SIGMA], c, sn, chi)):
                cols[k].append(val)
        if len(cols[0]) >= maxfits:
            break
    return (np.array(cols[0], dtype=np.int64), *(np.array(c, dtype=np.float64) for c in cols[1:]))
