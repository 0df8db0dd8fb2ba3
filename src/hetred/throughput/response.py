"""Steps 11-13: from star counts and SEDs to the shot's response curve (karlspipe hdr2.1
cal_script/rgettp, rgettp2, rgettp4, progs/getsdssg.f, combsed.f, fitpoly.f;
shared/reference/astrom_throughput.md §3.4-3.6).

Conventions (Karl's): 360 s and 5e5 cm^2 whatever the exposure time; counts per 100 Å bin;
h c = 6.626e-27 erg s x 3e18 Å/s. The throughput is dimensionless (detected electrons per photon
at the top of the atmosphere, for the relative exposure normalisation of norm.dat).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred.stats import biweight

HC = 6.626e-27 * 3e18         #: erg Å, Karl's constants
EXPTIME = 360.0               #: s
AREA = 5e5                    #: cm^2
BIN = 100.0                   #: Å
AB_G0 = 5.048e-9              #: erg/s/cm^2/Å of AB g = 0 (cal_script/readme.cal)
G_WAVE = 4680.0               #: Å, rgettp2's wavelength for the g-band photons
#: Karl's sdssg.dat (karlspipe hdr2.1/cal_script/sdssg.dat): wavelength Å, response
SDSSG = ((4000.0, 0.40), (4200.0, 0.84), (4400.0, 0.89), (4600.0, 0.91), (4800.0, 0.93),
         (5000.0, 0.94), (5200.0, 0.93), (5400.0, 0.20))
#: Robin's polynomial (fitpoly.f ifit0 = 2): P(x), x = lambda / 1000, highest power first
ROBIN = (-0.01972573, 0.43904144, -3.86654830, 16.7814045, -35.7178268, 29.7167950)
TP_G_RANGE = (0.01, 0.25)     #: rgettp: per-star g-band throughput kept inside (exclusive)
MIN_FIBERS_G = 10             #: rgettp: more than this many fibers listed


def expected_counts(sed_flam: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """Photons per 100 Å bin in 360 s on 5e5 cm^2 of f_lambda ``sed_flam`` (erg/s/cm^2/Å) at
    ``wave`` Å (rgettp4): F lambda / (h c) 360 5e5 100."""
    return np.asarray(sed_flam, dtype=np.float64) * np.asarray(wave, dtype=np.float64) / HC * EXPTIME * AREA * BIN


def robin(wave: np.ndarray | float) -> np.ndarray:
    """Robin's throughput shape P(lambda) (fitpoly.f), ``wave`` in Å."""
    return np.polyval(ROBIN, np.asarray(wave, dtype=np.float64) / 1000.0)


def xlinint(x: np.ndarray, xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """Karl's ``xlinint``: linear interpolation, constant beyond the ends."""
    return np.interp(np.asarray(x, dtype=np.float64), xp, yp)


def getsdssg(wave: np.ndarray, values: np.ndarray) -> float:
    """getsdssg.f: sum S(lambda_i) y_i / sum S(lambda_i) over the rows with 4000 < lambda < 5400
    Å, S = sdssg.dat linearly interpolated (no lambda weighting). NaN when no row qualifies."""
    s = np.array(SDSSG)
    w = np.asarray(wave, dtype=np.float64)
    sel = (w > s[0, 0]) & (w < s[-1, 0])
    if not sel.any():
        return float("nan")
    f = xlinint(w[sel], s[:, 0], s[:, 1])
    return float(np.sum(f * np.asarray(values, dtype=np.float64)[sel]) / np.sum(f))


def g_expected_counts(g: np.ndarray | float) -> np.ndarray:
    """rgettp2: counts per 100 Å expected at 4680 Å for a flat-f_lambda source of AB g,
    5.048e-9 10^(-0.4 g) / (h c / 4680) 360 5e5 100."""
    return AB_G0 * 10.0 ** (-0.4 * np.asarray(g, dtype=np.float64)) / (HC / G_WAVE) * EXPTIME * AREA * BIN


@dataclass
class Combined:
    """combsed.f: per star ``offset`` (biweight of tp / reference), ``scale`` (its biweight
    scale), ``rms``, ``level`` (biweight of tp), ``flag`` (0 used, 1 used only in the flag < 2
    curve, 2 not used); per wavelength ``tp``, ``tp_low``, ``tp_high``, ``tp_flag2``, ``n``."""

    offset: np.ndarray
    scale: np.ndarray
    rms: np.ndarray
    level: np.ndarray
    flag: np.ndarray
    tp: np.ndarray
    tp_low: np.ndarray
    tp_high: np.ndarray
    tp_flag2: np.ndarray
    n: int


def combsed(curves: np.ndarray, reference: np.ndarray, sigcut: float = 0.2, rmscut: float = 0.02,
            min_level: float = 0.005) -> Combined:
    """Karl's acceptance and combination of per-star throughput curves (combsed.f).

    curves: (n_star, n_wave) per-star throughput at the bins; reference: (n_wave,) the reference
    shape (Karl's goodsed.dat). Per star, over all points but the last: r = tp / reference,
    offset = biweight(r), scale = biweight scale(r), rms = sqrt(mean((reference - tp/offset)^2))
    (1e10 when offset <= 0; NaN points, bins without counts, are left out); flag 1 when rms > rmscut or scale > sigcut, 2 when rms > 2 rmscut
    or biweight(tp) over all points < min_level (Karl 0.005). Per wavelength: tp = max(0,
    biweight over flag-0 stars), tp_low/high = tp -/+ max(0, scale)/sqrt(N) (0 without stars),
    tp_flag2 = max(0, biweight over flag < 2 stars).
    """
    c = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    ref = np.asarray(reference, dtype=np.float64)
    ns, nw = c.shape
    off, sc, rms, lev = np.zeros(ns), np.zeros(ns), np.full(ns, 1e10), np.zeros(ns)
    flag = np.zeros(ns, int)
    for k in range(ns):
        with np.errstate(divide="ignore", invalid="ignore"):
            r = c[k, :-1] / ref[:-1]
        o, s = biweight(r)
        off[k], sc[k] = float(o), float(s)
        dev = (ref[:-1] - c[k, :-1] / off[k]) ** 2 if off[k] > 0 else np.array([np.nan])
        if np.isfinite(dev).any():
            rms[k] = float(np.sqrt(np.nanmean(dev)))
        lev[k] = float(biweight(c[k])[0])
        if rms[k] > rmscut or sc[k] > sigcut or not np.isfinite(sc[k]):
            flag[k] = 1
        if rms[k] > 2 * rmscut or lev[k] < min_level or not np.isfinite(lev[k]):
            flag[k] = 2
    tp, lo, hi, tp2 = np.zeros(nw), np.zeros(nw), np.zeros(nw), np.zeros(nw)
    use0, use1 = flag == 0, flag < 2
    n0 = int(use0.sum())
    for j in range(nw):
        if n0:
            b, s = (float(v) for v in biweight(c[use0, j]))
            tp[j] = max(0.0, b)
            s = max(0.0, s)
            lo[j], hi[j] = tp[j] - s / np.sqrt(n0), tp[j] + s / np.sqrt(n0)
        if use1.any():
            tp2[j] = max(0.0, float(biweight(c[use1, j])[0]))
    return Combined(off, sc, rms, lev, flag, tp, lo, hi, tp2, n0)


@dataclass
class PolyFit:
    """fitpoly.f (Robin's fit): ``c1`` (normalisation at 4500 Å), ``c2`` (fractional change over
    2000 Å); per row ``model``, ``rat_poly`` = tp / model, ``tp_gband``."""

    c1: float
    c2: float
    model: np.ndarray
    rat_poly: np.ndarray
    tp_gband: np.ndarray


def fitpoly(wave: np.ndarray, tp: np.ndarray, tp_g: float | None = None,
            c1_steps: int = 100, c2_steps: int = 200, exact: bool = True) -> PolyFit:
    """Fit tp(lambda) with P(lambda) (c1 + c2 (lambda - 4500) / 2000) (fitpoly.f, ifit0 = 2).

    Karl: P tabulated on 100 points 3500-5500 Å and interpolated (constant beyond); c1 on a grid
    of ``c1_steps`` values in [0.8, 1.2] x biweight(tp / P) over all rows but the last, c2 on
    ``c2_steps`` values in [-0.4, 0.4]; minimise sum(((tp - m) / m)^2) over rows with lambda <
    5450 Å; model floored at 0.0005. ``exact``: then refine (c1, c2) on two finer grids around the optimum
    (1/20 and 1/400 of Karl's steps of 0.4 % in c1 and 0.004 in c2), inside his bounds. tp_gband = 1.1 tp_g
    P(lambda) / P(4934.3) (1 + 0.18 (lambda - 4500) / 2000), 0 without ``tp_g``.
    """
    w = np.asarray(wave, dtype=np.float64)
    y = np.asarray(tp, dtype=np.float64)
    xp = np.linspace(3500.0, 5500.0, 100)
    pp = robin(xp)
    pw = xlinint(w, xp, pp)
    xb = float(biweight(y[:-1] / pw[:-1])[0])
    c1a = np.linspace(0.8 * xb, 1.2 * xb, c1_steps)
    c2a = np.linspace(-0.4, 0.4, c2_steps)
    fit = w < 5450.0
    lin = (w[fit] - 4500.0) / 2000.0
    m = pw[fit][None, None, :] * (c1a[:, None, None] + c2a[None, :, None] * lin[None, None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.nansum(((y[fit] - m) / m) ** 2, axis=2)
    i1, i2 = np.unravel_index(np.argmin(s), s.shape)
    c1, c2 = float(c1a[i1]), float(c2a[i2])
    if exact:        # two finer 41 x 41 grids around the optimum, inside Karl's bounds
        d1, d2 = c1a[1] - c1a[0], c2a[1] - c2a[0]
        best = s[i1, i2]
        for _ in range(2):
            g1 = np.clip(c1 + np.linspace(-d1, d1, 41), c1a[0], c1a[-1])
            g2 = np.clip(c2 + np.linspace(-d2, d2, 41), c2a[0], c2a[-1])
            mm = pw[fit][None, None, :] * (g1[:, None, None] + g2[None, :, None] * lin[None, None, :])
            with np.errstate(divide="ignore", invalid="ignore"):
                ss = np.nansum(((y[fit] - mm) / mm) ** 2, axis=2)
            j1, j2 = np.unravel_index(np.argmin(ss), ss.shape)
            if ss[j1, j2] <= best:
                c1, c2, best = float(g1[j1]), float(g2[j2]), ss[j1, j2]
            d1, d2 = d1 / 20.0, d2 / 20.0
    model = np.maximum(pw * (c1 + (w - 4500.0) * c2 / 2000.0), 0.0005)
    with np.errstate(divide="ignore", invalid="ignore"):
        rat = np.where(model > 0, y / model, 0.0)
    if tp_g is not None and np.isfinite(tp_g) and tp_g > 0:
        p4934 = pp[np.argmin(np.abs(xp - 4940.0))]
        gband = 1.1 * tp_g * pw / p4934 * (1.0 + (w - 4500.0) * 0.18 / 2000.0)
    else:
        gband = np.zeros_like(w)
    return PolyFit(c1, c2, model, rat, gband)
