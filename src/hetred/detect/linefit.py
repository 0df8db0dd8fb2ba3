"""The line fit at a given wavelength with Monte-Carlo errors: fitradecsp ``fitspec`` (ifit1 = 1),
``fitherms``, NR ``mrqmin``/``mrqcof``, ``gasdev``/``ran1`` (karlspipe hdr2.1/progs/fitradecsp.f
lines 3009-3723; shared/reference/detect_fullsky.md §1.7, §1.9).

Model: ``con + A N(lambda; lambda0 + dlam, sigma)`` (Gauss-Hermite h3 = h4 = 0); free: con, dlam, A
and sigma unless fixed; Levenberg-Marquardt exactly as NR's mrqmin (lambda 1e-3, x0.1 on success,
x10 on failure), stopped when a step succeeds with a relative chi^2 change < 1e-3 (``fit_tol``), or lambda >
1e9, or after 500 steps. The data are the pixels strictly within ``wcen +- wrange`` whose flux is
not 0. A fit is rejected if fewer than 6 pixels lie within +-6 Å of the line, sigma > 50,
chi^2/n > 5, con > 1000, A <= 0, the line moved > 20 Å or lies within 6 Å of the first or last
pixel. S/N = 0.95 (A/2) / sqrt(sum err^2 within +-max(3, 2 sigma) Å).

Realisation 1 is the data; realisations 2..n are its best-fit model plus Gaussian noise of the
errors x frat (frat = residual rms / mean error, 1 when the rms is below 0.2 of it); each is
refitted from the same start; values = realisation 1, errors = biweight scale of the successful
realisations. All realisations are fitted together (batched arrays), each with its own lambda
and stop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hetred.detect.settings import DetectSettings
from hetred.stats import biweight

SQ2PI = np.sqrt(2.0 * np.pi)


# ------------------------------------------------------------------------------------------------
# Karl's random numbers

@lru_cache(maxsize=1)
def _ran1_stream(n: int = 40000) -> np.ndarray:
    """NR ``ran1`` after ``idum = -1`` (Park-Miller with Bays-Durham shuffle), float32 as Karl's."""
    IA, IM, IQ, IR, NTAB = 16807, 2147483647, 127773, 2836, 32
    NDIV = 1 + (IM - 1) // NTAB
    AM = np.float32(1.0) / np.float32(IM)
    RNMX = np.float32(1.0) - np.float32(1.2e-7)
    idum = 1
    iv = [0] * NTAB
    for j in range(NTAB + 8, 0, -1):
        k = idum // IQ
        idum = IA * (idum - k * IQ) - IR * k
        if idum < 0:
            idum += IM
        if j <= NTAB:
            iv[j - 1] = idum
    iy = iv[0]
    out = np.empty(n, np.float32)
    for m in range(n):
        k = idum // IQ
        idum = IA * (idum - k * IQ) - IR * k
        if idum < 0:
            idum += IM
        j = iy // NDIV
        iy = iv[j]
        iv[j] = idum
        out[m] = min(np.float32(AM * np.float32(iy)), RNMX)
    return out


@lru_cache(maxsize=1)
def _gasdev_pairs() -> np.ndarray:
    """The normal deviates gasdev makes from the ran1 stream, in the order it returns them
    (v2 fac, then v1 fac of each accepted pair)."""
    u = _ran1_stream()
    v1 = np.float32(2.0) * u[0::2] - np.float32(1.0)
    v2 = np.float32(2.0) * u[1::2] - np.float32(1.0)
    n = min(v1.size, v2.size)
    v1, v2 = v1[:n], v2[:n]
    rsq = v1 * v1 + v2 * v2
    ok = (rsq < 1.0) & (rsq != 0.0)
    fac = np.sqrt(np.float32(-2.0) * np.log(rsq[ok]) / rsq[ok]).astype(np.float32)
    return np.column_stack([v2[ok] * fac, v1[ok] * fac]).ravel()


@dataclass
class KarlRandom:
    """gasdev with ran1 reset (idum = -1) at every fit, gasdev's saved (iset, gset) carried over."""

    carry: float | None = None

    def normals(self, count: int) -> np.ndarray:
        seq = _gasdev_pairs()
        if self.carry is not None:
            out = np.concatenate([[self.carry], seq[:max(count - 1, 0)]])[:count]
            used = count - 1
        else:
            out = seq[:count]
            used = count
        # after ``used`` deviates of the pair stream, an odd count leaves the pair's second one saved
        self.carry = float(seq[used]) if used > 0 and used % 2 == 1 else None
        return out.astype(np.float64)


@dataclass
class FitState:
    """What persists between fits of a unit: Karl's stale arrays and the random numbers."""

    settings: DetectSettings
    rng: np.random.Generator | None = None
    karl: KarlRandom = field(default_factory=KarlRandom)
    last_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    last_fitout: tuple[float, ...] = (0.0,) * 6

    def normals(self, shape: tuple[int, int]) -> np.ndarray:
        if self.settings.rng == "karl" or self.rng is None:
            return self.karl.normals(shape[0] * shape[1]).reshape(shape)
        return self.rng.standard_normal(shape)


# ------------------------------------------------------------------------------------------------
# Levenberg-Marquardt, batched over realisations

def _model(x: np.ndarray, a: np.ndarray, free_sigma: bool) -> tuple[np.ndarray, np.ndarray]:
    """Model (R, n) and derivatives (R, n, p) for parameters a (R, 4): con, dlam, amp, sigma
    (with the line centre at x0 already subtracted from x)."""
    con, dl, amp, sig = a[:, 0:1], a[:, 1:2], a[:, 2:3], a[:, 3:4]
    w = (x[None, :] - dl) / sig
    gauss = np.exp(-0.5 * w * w) / (SQ2PI * np.abs(sig))
    yadd = amp * gauss
    cols = [np.ones_like(yadd), yadd * w / sig, gauss]
    if free_sigma:
        cols.append(yadd * (w * w - 1.0) / sig)
    return con + yadd, np.stack(cols, axis=-1)


def _chisq(x, y, ye, a, free_sigma):
    m, _ = _model(x, a, free_sigma)
    return (((y - m) / ye) ** 2).sum(axis=1)


def lm_fit(x: np.ndarray, y: np.ndarray, ye: np.ndarray, a0: np.ndarray, free_sigma: bool,
           tol: float = 1e-3, itermax: int = 500) -> np.ndarray:
    """Karl's fitherms for R realisations at once: x (n,) relative to the window centre, y, ye
    (R, n), a0 (4,) start (con, dlam, amp, sigma); returns a (R, 4)."""
    R = y.shape[0]
    p = 4 if free_sigma else 3
    a = np.tile(np.asarray(a0, float), (R, 1))
    s2 = 1.0 / (ye * ye)

    alamda = np.full(R, 1e-3)
    alpha, beta, chisq = _coeffs_sub(x, y, s2, a, free_sigma)
    ochisq = chisq.copy()
    cold = np.full(R, 1e10)
    alamo = np.full(R, 1e10)
    active = np.ones(R, bool)
    eye = np.eye(p)
    for _ in range(itermax):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        cov = alpha[idx] + alpha[idx] * eye[None] * alamda[idx, None, None]
        try:
            da = np.linalg.solve(cov, beta[idx][..., None])[..., 0]
        except np.linalg.LinAlgError:
            da = np.stack([np.linalg.lstsq(c, b, rcond=None)[0] for c, b in zip(cov, beta[idx])])
        atry = a[idx].copy()
        atry[:, :p] += da
        with np.errstate(over="ignore", invalid="ignore"):   # a trial gone to inf/NaN is rejected below
            al_t, be_t, ch_t = (v for v in _coeffs_sub(x, y[idx], s2[idx], atry, free_sigma))
        better = ch_t < ochisq[idx]
        ok = idx[better]
        a[ok] = atry[better]
        alpha[ok], beta[ok] = al_t[better], be_t[better]
        ochisq[ok] = ch_t[better]
        alamda[ok] *= 0.1
        bad = idx[~better]
        alamda[bad] *= 10.0
        chisq[idx] = ochisq[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            chirel = np.abs(cold[idx] - chisq[idx]) / chisq[idx]
        cold[idx] = chisq[idx]
        stop = ((alamda[idx] < alamo[idx]) & (chirel < tol)) | (alamda[idx] > 1e9) | ~np.isfinite(chisq[idx])
        alamo[idx] = alamda[idx]
        active[idx[stop]] = False
    return a


def _coeffs_sub(x, y, s2, a, free_sigma):
    m, d = _model(x, a, free_sigma)
    dy = y - m
    alpha = np.einsum("rni,rnj,rn->rij", d, d, s2)
    beta = np.einsum("rni,rn->ri", d, dy * s2)
    return alpha, beta, (dy * dy * s2).sum(axis=1)


# ------------------------------------------------------------------------------------------------
# fitspec, ifit1 = 1

@dataclass
class LineFit:
    """fitspec's result: ``values``/``errors`` (6,) = wave, flux (A/2), sigma, con, S/N, chi^2;
    ``n_good`` realisations that passed; ``noise_ratio``; ``ok`` (realisation 1 passed)."""

    ok: bool
    values: np.ndarray
    errors: np.ndarray
    n_good: int
    noise_ratio: float


def fit_line(wave: np.ndarray, flux: np.ndarray, err: np.ndarray, wcen: float, sigma: float, fix_sigma: bool,
             nsim: int, state: FitState, rvar: np.ndarray | None = None, wrange: float | None = None) -> LineFit:
    """Karl's fitspec at ``wcen`` (module docstring). ``flux``, ``err``: the apcor-corrected
    spectrum on ``wave`` (1e-17 per 2 Å; flux 0 = no data); ``rvar``: per pixel variance factor
    of the interpolation (``frat = corrected``)."""
    s = state.settings
    wr = s.window_half if wrange is None else wrange
    sel = (wave > wcen - wr) & (wave < wcen + wr) & (flux != 0)
    x, yo, yeo = wave[sel].astype(float), flux[sel].astype(float), err[sel].astype(float)
    nt = x.size
    fail = LineFit(False, np.array(state.last_fitout, float), np.full(6, -2.0), 0, 0.0)
    if nt < 4 or np.any(yeo <= 0):
        return fail
    srt = np.sort(yo)
    xb = biweight(srt[:min(12, nt)] if s.con_start == "lowest12" else srt)[0]
    if s.amp_start == "stale" and state.last_y.size:
        ymax = float(np.max(state.last_y[:nt])) if state.last_y.size >= 1 else float(np.max(yo))
    else:
        ymax = float(np.max(yo))
    a0 = np.array([xb, 0.0, (ymax - xb) * 3.5, abs(sigma)])
    free = not fix_sigma
    xr = x - wcen
    # realisation 1
    a1 = lm_fit(xr, yo[None, :], yeo[None, :], a0, free, tol=s.fit_tol)[0]
    res1 = _evaluate(x, xr, yo[None, :], yeo[None, :], a1[None, :], wcen, s)
    state.last_y = yo
    if not res1["ok"][0]:
        return fail
    rms, sume = res1["rms"][0], res1["sume"][0]
    if s.frat == "corrected" and rvar is not None:
        expected = np.sqrt(np.mean(yeo ** 2 * rvar[sel]))
        npar = 4 if free else 3         # the residual rms of an npar-parameter fit, unbiased
        rms_u = rms * np.sqrt(nt / (nt - npar)) if nt > npar else rms
        frat = rms_u / expected if expected > 0 else 1.0
        if rms <= 0.2 * expected:
            frat = 1.0
    else:
        frat = rms / sume if sume > 0 else 1.0
        if rms <= 0.2 * sume:
            frat = 1.0
    chi1 = res1["chi"][0]
    chi1 = max(chi1, chi1 / frat ** 2) if frat > 0 else chi1
    xnp = max(3.0, 2.0 * abs(a1[3]))
    xnoise = rms * np.sqrt(xnp)
    ratnoise = min(9.9, res1["xn2"][0] / xnoise) if xnoise > 0 else 0.0
    vals1 = np.array([res1["wfit"][0], res1["flux"][0], abs(a1[3]), a1[0], res1["sn"][0], chi1])
    state.last_fitout = tuple(float(v) for v in vals1)
    if nsim <= 1:
        return LineFit(True, vals1, np.zeros(6), 1, ratnoise)
    model1, _ = _model(xr, a1[None, :], free)
    ye_sim = yeo * frat
    noise = state.normals((nsim - 1, nt))
    ysim = model1 + ye_sim[None, :] * noise
    yes = np.broadcast_to(ye_sim, ysim.shape)
    asim = lm_fit(xr, ysim, yes, a0, free, tol=s.fit_tol)
    rs = _evaluate(x, xr, ysim, yes, asim, wcen, s)
    state.last_y = ysim[-1]
    good = rs["ok"]
    sim_vals = np.column_stack([rs["wfit"], rs["flux"], np.abs(asim[:, 3]), asim[:, 0], rs["sn"], rs["chi"]])[good]
    allv = np.vstack([vals1[None, :], sim_vals])
    errs = np.array([biweight(allv[:, k])[1] for k in range(6)])
    return LineFit(True, vals1, errs, int(allv.shape[0]), ratnoise)


def _evaluate(x, xr, y, ye, a, wcen, s: DetectSettings) -> dict[str, np.ndarray]:
    """Karl's post-fit checks and numbers for each realisation (rows of y)."""
    m, _ = _model(xr, a, True)
    nt = x.size
    r = y - m
    rms = np.sqrt((r * r).sum(axis=1) / nt)
    chi = ((r / ye) ** 2).sum(axis=1) / nt
    sume = ye.mean(axis=1)
    wfit = wcen + a[:, 1]
    sig = np.abs(a[:, 3])
    nfit = (np.abs(x[None, :] - wfit[:, None]) < 6.0).sum(axis=1)
    ok = ((nfit > 5) & (sig <= s.sigma_max) & (chi <= s.chicut) & (a[:, 0] <= s.con_max) & (a[:, 2] > 0)
          & (np.abs(wfit - wcen) <= s.max_shift) & (wfit - x[0] >= s.edge_margin) & (x[-1] - wfit >= s.edge_margin)
          & np.all(np.isfinite(a), axis=1))
    xnp = np.maximum(3.0, 2.0 * sig)
    inwin = np.abs(x[None, :] - wfit[:, None]) <= xnp[:, None]
    xn2 = np.sqrt((np.where(inwin & (ye > 0), ye * ye, 0.0)).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        sn = np.where(xn2 > 0, 0.95 * a[:, 2] / xn2 / 2.0, 0.0)
    return {"ok": ok, "rms": rms, "chi": chi, "sume": sume, "wfit": wfit, "flux": a[:, 2] / 2.0, "sn": sn,
            "xn2": xn2}
