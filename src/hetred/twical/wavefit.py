"""The least-squares wavelength model of one amp, fitted to measured arc lines.

Part of the wavelength step (docs/stages/twical_wavelength.md, :mod:`hetred.twical.wavelength`);
it replaces the across-fiber interpolation of karlspipe hdr2.1 ``vred.f`` (``getwtrace``: every
3rd fiber, linear between them) and follows Remedy (a polynomial per fiber).

Model, per fiber f and oriented column x (x~ = x scaled to [-1, 1], P_j Legendre):

    lambda(f, x) = sum_{j <= J_f} a_fj P_j(x~) + sum_{J_f < j <= xorder} c_j(f) P_j(x~)

* a_fj, the fiber's **own** coefficients (zero point, tilt, curvature up to ``own_order``), come
  from that fiber's lines only, so nothing across the slit pulls an edge fiber;
* c_j(f) for j > ``own_order`` (the small high-order terms) is one smooth polynomial across the
  slit (degree ``forder`` in the fiber coordinate), fitted to all live fibers at once with each
  fiber's own terms projected out (the exact joint least-squares solution);
* a fiber with too few lines, or lines that do not span the columns, fits fewer own terms
  (J_f < own_order); the missing ones are a **local** straight-line fit of the nearest fibers
  that have them (:func:`local_trend`, extrapolating at the slit edges instead of holding the
  last value); with fewer than ``min_lines`` lines its zero point comes the same way.

Lines are weighted by 1/error^2 (the centroid error times the dispersion, with a systematic
floor, rescaled per line to the real scatter of its studentized residuals over the fibers) and
clipped iteratively, one line per fiber and pass; a line that alone bends a fiber's own terms
away from its neighbours' is dropped too (:func:`fit_lines`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre as L

from hetred.stats import biweight

NCOLS = 1032
XCEN = (NCOLS - 1) / 2.0
#: least fraction of the columns a fiber's used lines must span to fit own terms of order 0..3
SPAN_NEEDED = (0.0, 0.2, 0.4, 0.6)
#: least scale of a line's studentized residuals: its given errors are taken as at most 5x too large
MIN_SCALE = 0.2
#: chi^2 of a fiber's own terms about its neighbours' trend above which one odd line is looked for
ODD_CHI2 = 25.0


def xnorm(x) -> np.ndarray:
    """Oriented column -> [-1, 1]."""
    return (np.asarray(x, dtype=float) - XCEN) / XCEN


def fiber_coord(coord: np.ndarray | None, nfib: int) -> np.ndarray:
    """The fibers' slit coordinate scaled to [-1, 1] (default: the fiber index)."""
    c = np.arange(nfib, dtype=float) if coord is None else np.asarray(coord, dtype=float)
    lo, hi = c.min(), c.max()
    return 2.0 * (c - lo) / (hi - lo) - 1.0 if hi > lo else np.zeros(nfib)


def local_trend(fn: np.ndarray, values: np.ndarray, have: np.ndarray, k: int = 8,
                exclude_self: bool = False) -> np.ndarray:
    """(nfib,) straight-line fit of ``values`` over the ``k`` nearest fibers (in ``fn``) that
    ``have`` a value, evaluated at each fiber (up to two 3-sigma clipping passes). At the slit edges the
    nearest fibers all lie on one side: the line extrapolates the trend there, where a running
    mean or a constant would pull the outermost fibers toward the inner ones."""
    nfib = fn.size
    idx = np.nonzero(have & np.isfinite(values))[0]
    out = np.full(nfib, np.nan)
    if idx.size == 0:
        return out
    for i in range(nfib):
        pool = idx[idx != i] if exclude_self else idx
        if pool.size == 0:
            continue
        near = pool[np.argsort(np.abs(fn[pool] - fn[i]), kind="stable")[:k]]
        x, y = fn[near] - fn[i], values[near]
        if near.size < 3 or np.ptp(x) == 0:
            out[i] = float(np.median(y))
            continue
        keep = np.ones(near.size, bool)
        for _ in range(2):
            c = np.polyfit(x[keep], y[keep], 1)
            r = y - np.polyval(c, x)
            s = 1.4826 * np.median(np.abs(r[keep])) + 1e-12
            new = np.abs(r) <= 3 * s
            if new.sum() < 3 or np.array_equal(new, keep):
                break
            keep = new
        out[i] = float(c[1])
    return out


@dataclass
class FitResult:
    """A fitted model: ``coef`` (nfib, xorder+1) Legendre coefficients of every fiber along
    x~ (after the shared terms and the fills are added), ``order`` (nfib,) own order used (-1:
    no own term, zero point from the neighbours), ``used`` (nfib, nlines) lines kept, ``nown``
    (nfib,) lines of the fiber's own fit."""

    coef: np.ndarray
    order: np.ndarray
    used: np.ndarray
    nown: np.ndarray

    @property
    def zp(self) -> np.ndarray:
        """(nfib,) zero point: the constant term, the fiber's mean wavelength over x~ (A)."""
        return self.coef[:, 0]

    @property
    def own_zp(self) -> np.ndarray:
        return self.order >= 0

    def evaluate(self, ncols: int = NCOLS) -> np.ndarray:
        """(nfib, ncols) float64 wavelengths (A)."""
        px = L.legvander(xnorm(np.arange(ncols)), self.coef.shape[1] - 1)
        return self.coef @ px.T

    def at(self, x: np.ndarray) -> np.ndarray:
        """Model at columns x (nfib, nlines); NaN x -> the centre column."""
        px = L.legvander(xnorm(np.nan_to_num(x, nan=XCEN)), self.coef.shape[1] - 1)
        return np.einsum("flj,fj->fl", px, self.coef)


def own_orders(xn: np.ndarray, used: np.ndarray, own_order: int, min_lines: int) -> np.ndarray:
    """(nfib,) the own order each fiber can carry: order o needs max(min_lines, o + 3) lines
    (two to spare for the clipping) spanning :data:`SPAN_NEEDED`[o] of the columns (``xn``:
    line columns scaled to [-1, 1]); -1 below ``min_lines`` lines."""
    n = used.sum(axis=1)
    hi = np.where(used, xn, -np.inf).max(axis=1)
    lo = np.where(used, xn, np.inf).min(axis=1)
    span = np.where(n > 0, (hi - lo) / 2.0, 0.0)
    order = np.full(n.size, -1)
    for o in range(own_order + 1):
        ok = (n >= max(min_lines, o + 3)) & (span >= SPAN_NEEDED[min(o, 3)])
        order[ok] = o
    return order


def fit_lines(x: np.ndarray, lam: np.ndarray, err: np.ndarray, cand: np.ndarray, live: np.ndarray,
              fn: np.ndarray, xorder: int = 3, forder: int = 3, own_order: int = 2,
              min_lines: int = 3, clip: float = 4.0, max_iter: int = 6,
              neighbours: int = 8) -> FitResult:
    """Fit the model to lines at columns ``x`` (nfib, nlines) of wavelengths ``lam`` (nlines,)
    with errors ``err`` (A, nfib x nlines); ``cand`` marks measured lines, ``live`` (nfib,) the
    fibers allowed into the shared high-order fit and the fills, ``fn`` (nfib,) the slit
    coordinate in [-1, 1].

    Iterated up to ``max_iter`` times: residuals are studentized (:func:`studentized`) and each
    line's errors rescaled by the robust scale of its residuals over the live fibers (so a weak
    or often blended line weighs what its real scatter says, and the clipping measures every
    line against its own scatter); in each fiber the line furthest beyond ``clip`` is dropped,
    and a line that alone bends the fiber's own terms away from its neighbours' (:func:`_odd_line`)."""
    nfib, nl = x.shape
    own_order = min(own_order, xorder)
    cand = cand & np.isfinite(x)
    lam2 = np.broadcast_to(np.asarray(lam, float)[None, :], (nfib, nl))
    xn = xnorm(np.nan_to_num(x, nan=XCEN))
    px = L.legvander(xn, xorder)                                          # (nfib, nl, xorder+1)
    pf = L.legvander(fn, forder)                                          # (nfib, forder+1)
    w = np.where(cand, 1.0 / np.where(cand, err, 1.0) ** 2, 0.0)
    used = cand.copy()
    veto = np.zeros_like(used)
    scale = np.ones(nl)
    for _ in range(max_iter):
        wl = w / scale[None, :] ** 2
        fit = _solve(xn, px, pf, lam2, wl, used, live, fn, own_order, min_lines, neighbours)
        u = studentized(fit, px, wl, lam2, x)
        full = cand & (live & (fit.order == own_order))[:, None]
        step = np.array([_scale(u[full[:, j], j], u[full]) for j in range(nl)])
        new_scale = np.maximum(scale * step, MIN_SCALE)
        z = np.abs(u) * scale[None, :] / new_scale[None, :]
        scale = new_scale
        # only fibers with a full own fit are clipped: a fiber with fewer own terms carries the
        # error of the terms it borrows, which is no fault of its lines
        bad = cand & (z > clip) & (fit.order == own_order)[:, None]
        # one line per fiber and pass: a bad line drags the fiber's own fit, and with it the
        # residuals of its good lines; lines back within the limit are used again
        worst = np.argmax(np.where(bad & used, z, -1.0), axis=1)
        drop = np.zeros_like(used)
        rows = np.nonzero((bad & used).any(axis=1))[0]
        drop[rows, worst[rows]] = True
        # a fiber with no line beyond the limit but whose own terms disagree with its neighbours
        # because of one line (at the end of the range, where the fit follows it)
        veto |= _odd_line(fit, px, wl, lam2, used & ~drop, live, fn, own_order, min_lines, neighbours, z)
        drop |= veto & used
        new_used = (used & ~drop) | (cand & ~used & ~veto & ~(cand & (z > clip)))
        if np.array_equal(new_used, used):
            return fit
        used = new_used
    return _solve(xn, px, pf, lam2, w / scale[None, :] ** 2, used, live, fn, own_order, min_lines, neighbours)


def _odd_line(fit: FitResult, px, w, lam, used, live, fn, own_order, min_lines, k, z) -> np.ndarray:
    """(nfib, nlines) lines to drop: in a fiber whose own terms of order >= 1 lie more than
    :data:`ODD_CHI2` (chi^2 over those terms) off the local trend of its neighbours, the one line
    without which they come back (below ODD_CHI2 and a quarter of the first value) when its own
    residual is above 2 scales. The neighbours only point at the line; the fiber's wavelengths
    still come from its own lines, so a real steep change at a slit edge (no single line
    carries it) is kept."""
    drop = np.zeros_like(used)
    p = own_order + 1
    ref = (fit.order == own_order) & live
    if own_order < 1 or ref.sum() < 5:
        return drop
    own = fit.coef[:, :p]
    trend = np.stack([local_trend(fn, own[:, j], ref, k, exclude_self=True) for j in range(1, p)], 1)
    dev = own[:, 1:] - trend
    sc = np.array([max(float(biweight(dev[ref, j])[1]), 1e-9) for j in range(p - 1)])
    chi = np.nansum((dev / sc) ** 2, axis=1)
    base = np.einsum("flj,fj->fl", px[..., p:], fit.coef[:, p:])
    need = max(min_lines, own_order + 3)
    for f in np.nonzero((fit.order == own_order) & (chi > ODD_CHI2) & (used.sum(axis=1) > need))[0]:
        best, arg = np.inf, -1
        for i in np.nonzero(used[f])[0]:
            m = used[f].copy()
            m[i] = False
            if own_orders(px[f:f + 1, :, 1], m[None], own_order, min_lines)[0] < own_order:
                continue
            c = _wls_batch(px[f:f + 1, :, :p], (lam[f] - base[f])[None], np.where(m, w[f], 0.0)[None])[0]
            ci = np.sum(((c[1:] - trend[f]) / sc) ** 2)
            if ci < best:
                best, arg = ci, i
        if arg >= 0 and best < min(ODD_CHI2, chi[f] / 4) and z[f, arg] > 2.0:
            drop[f, arg] = True
    return drop


def _scale(v: np.ndarray, pool: np.ndarray) -> float:
    """Robust scale of one line's studentized residuals over the fibers (all lines' when fewer
    than 8 fibers have it)."""
    v = v[np.isfinite(v)]
    if v.size < 8:
        v = pool[np.isfinite(pool)]
    return max(float(biweight(v)[1]) if v.size > 2 else 1.0, 1e-3)


def studentized(fit: FitResult, px: np.ndarray, w: np.ndarray, lam: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(nfib, nlines) residuals over their standard deviation given the fiber's own fit: r / (sigma
    sqrt(1 - h)) for a used line (h its leverage: a line at the end of the range pulls the fit
    toward itself, and only this form shows how far off it is), r / (sigma sqrt(1 + h)) for a line
    left out (a prediction); NaN where no error is known."""
    r = fit.at(x) - lam
    h = np.zeros(r.shape)
    for o in range(int(fit.order.max()) + 1 if fit.order.size else 0):
        f = np.nonzero((fit.order == o) & (fit.used.sum(axis=1) > o + 1))[0]
        if f.size == 0:
            continue
        a = px[f, :, :o + 1]                                           # (nf, nl, p)
        cov = np.linalg.pinv(_normal(a, w[f] * fit.used[f]))
        h[f] = w[f] * np.einsum("fli,fij,flj->fl", a, cov, a)
    fac = np.where(fit.used, np.sqrt(np.clip(1.0 - h, 1e-3, None)), np.sqrt(1.0 + h))
    return np.where(w > 0, r * np.sqrt(w) / fac, np.nan)


def _normal(a: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Batched normal matrices a^T W a: a (nf, nl, p), wm (nf, nl) -> (nf, p, p)."""
    return np.einsum("fli,fl,flj->fij", a, wm, a)


def _wls_batch(a: np.ndarray, y: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Batched weighted least squares (zero weight = line not used): (nf, p) coefficients."""
    g = _normal(a, wm)
    b = np.einsum("fli,fl,fl->fi", a, wm, y)
    return np.einsum("fij,fj->fi", np.linalg.pinv(g), b)


def _solve(xn, px, pf, lam, w, used, live, fn, own_order, min_lines, k) -> FitResult:
    nfib = lam.shape[0]
    xorder = px.shape[2] - 1
    order = own_orders(xn, used, own_order, min_lines)
    nshared = xorder - own_order
    coef = np.zeros((nfib, xorder + 1))
    wm = np.where(used, w, 0.0)
    y = np.where(used, lam, 0.0)
    p = own_order + 1
    # --- the shared high-order terms: each fiber's own terms projected out (full-order live fibers)
    if nshared > 0:
        f = np.nonzero(live & (order == own_order))[0]
        if f.size:
            sw = np.sqrt(wm[f])                                         # (nf, nl)
            a = px[f, :, :p] * sw[..., None]                            # (nf, nl, p)
            sh = (px[f, :, p:][..., None] * pf[f][:, None, None, :]).reshape(f.size, px.shape[1], -1)
            sh = sh * sw[..., None]
            yy = y[f] * sw
            proj = np.einsum("fli,fij,fmj->flm", a, np.linalg.pinv(np.einsum("fli,flj->fij", a, a)), a)
            rows = sh - np.einsum("flm,fmk->flk", proj, sh)
            rhs = yy - np.einsum("flm,fm->fl", proj, yy)
            b, *_ = np.linalg.lstsq(rows.reshape(-1, rows.shape[2]), rhs.ravel(), rcond=None)
            coef[:, p:] = pf @ b.reshape(nshared, -1).T
    base = np.einsum("flj,fj->fl", px[..., p:], coef[:, p:])
    # --- own terms; a fiber lacking some takes the local trend of the fibers that have them
    own = np.zeros((nfib, p))
    f = np.nonzero(order == own_order)[0]
    if f.size:
        own[f] = _wls_batch(px[f, :, :p], y[f] - base[f], wm[f])
    lacking = np.nonzero(order < own_order)[0]
    if lacking.size:
        full = (order == own_order) & live
        full = full if full.any() else order == own_order
        trend = {j: local_trend(fn, own[:, j], full, k) for j in range(min(order[lacking]) + 1, p)}
        for f in lacking:
            o = order[f]
            own[f, o + 1:] = np.nan_to_num([trend[j][f] for j in range(o + 1, p)])
            if o >= 0:
                rest = y[f] - base[f] - px[f, :, o + 1:p] @ own[f, o + 1:]
                own[f, :o + 1] = _wls_batch(px[f:f + 1, :, :o + 1], rest[None], wm[f:f + 1])[0]
    coef[:, :p] = own
    return FitResult(coef=coef, order=order, used=used, nown=used.sum(axis=1))
