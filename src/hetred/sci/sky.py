"""Sky subtraction of one amp (Karl's vred.f getmaster / subtract / getback in science mode).

Input: extracted spectra (112, 1032) e- per column, their errors, wavelengths (112, 1032) Å,
fiber-to-fiber (112, 1032) (the library's, per Å at each fiber's own wavelengths), and the masks.

1. **Master sky** (:func:`master_sky`, vred getmaster + smooth3): every good fiber column (live
   fiber, not masked, not a continuum fiber or its neighbour) gives one sample
   (wavelength, counts / (dλ/dx) / ftf), i.e. the sky per Å of a fiber of unit throughput at
   that fiber's own wavelength; the samples of all fibers are sorted by wavelength and cut into
   blocks of ``master_block`` (40) consecutive samples (Karl: 12); each block gives one point
   (mean wavelength, Karl's biweight of the values). With ~100 fibers the points are ~0.8 Å
   apart, well inside the instrument's resolution (FWHM ~5.5 Å), so the master keeps the sky
   lines' shape while each point averages 40 samples. Evaluated at a wavelength by linear
   interpolation between the points.
2. **Sky per fiber** = master(λ) x dλ/dx x ftf (the amp-to-amp factor cancels: the master is the
   amp's own); the error of the master point (biweight scale / sqrt(n)) goes into ``sky_error``.
3. **Continuum fibers** (vred getback): per fiber the biweight of spectrum - sky over columns
   300-800; a fiber more than ``continuum_sigma`` (2.5) x the biweight scale of those values
   over the fibers (capped at 70 e-) above their biweight is a continuum fiber; it and
   ``continuum_grow`` (1) neighbours on either side are left out of the master, which is then made
   again (``master_iter`` passes in all).
4. **Residual background** (vred getback, ``residual_background``): per fiber, the biweights of
   spectrum - sky of the fibers within +-2 that are not continuum fibers (or neighbours) over
   columns 100-400, 400-700 and 700-1000, placed at columns 250, 550, 850 and interpolated
   linearly (constant beyond), are added to the fiber's sky (Karl subtracts them from the
   sky-subtracted spectrum; hetred adds them to ``sky_spectrum`` so that
   ``sky_subtracted = spectrum - sky_spectrum`` holds exactly).
5. **Wavelength zero point** (:func:`zero_point`): the centres of bright sky lines
   (``zero_point_lines``: Hg 4358.34, 5460.75 Å, air; Gaussian + straight continuum fitted to
   the master) against their laboratory wavelengths; the median offset is recorded (and
   applied with ``apply_zero_point``).

Masked fiber columns (spectrum 0 and error 0) stay 0 in ``sky_subtracted``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetred.stats import biweight

F32 = np.float32
CONT_COLS = slice(299, 800)                    #: vred getback: columns 300-800 (1-based)
BACK_RANGES = ((99, 400), (399, 700), (699, 1000))   #: vred getback ila: 100-400, 400-700, 700-1000
BACK_CENTRES = (249.0, 549.0, 849.0)           #: 0-based columns of (ila(k) + ila(k+1)) / 2
BACK_FIBERS = 2                                #: vred getback ifibh
FTF_RANGE = (0.0, 2.0)                         #: vred: ftf outside (0, 2) is set to 1


@dataclass
class MasterSky:
    """The master sky of an amp: points sorted by wavelength."""

    wave: np.ndarray        #: (n,) Å, mean wavelength of each block
    density: np.ndarray     #: (n,) e- per Å for unit fiber-to-fiber
    error: np.ndarray       #: (n,) error of ``density`` (biweight scale / sqrt(samples))
    nsamples: int = 0
    nfibers: int = 0

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        shape = np.shape(wave)
        return np.interp(np.ravel(wave), self.wave, self.density).reshape(shape)

    def err(self, wave: np.ndarray) -> np.ndarray:
        shape = np.shape(wave)
        return np.interp(np.ravel(wave), self.wave, self.error).reshape(shape)


def dispersion(wave: np.ndarray) -> np.ndarray:
    """dλ/dx (Å per column) of every fiber, (112, 1032) float64."""
    return np.gradient(np.asarray(wave, np.float64), axis=1)


def block_starts(w: np.ndarray, block: int, max_span: float, min_count: int) -> np.ndarray:
    """Start indices of the blocks of sorted wavelengths ``w``: every ``block`` samples and at
    every ``max_span`` Å step (so that no block straddles a gap left by masked columns); a
    fragment of fewer than ``min_count`` samples is joined to the block before it unless a gap
    (> ``max_span`` / 2) separates them, then it stays alone (to the block after it when it has
    fewer than 3 samples)."""
    n = w.size
    grid = np.arange(w[0], w[-1] + max_span, max_span)
    cut = np.searchsorted(w, grid)
    s = np.union1d(np.arange(0, n, block), cut[(cut > 0) & (cut < n)])
    length = np.diff(np.append(s, n))
    small = length < min_count
    gap = np.zeros(len(s), bool)
    gap[1:] = w[s[1:]] - w[s[1:] - 1] > max_span / 2
    join_prev = small & ~gap
    join_prev[0] = False
    keep = ~join_prev
    tiny = small & ~join_prev & (length < 3)                # too few to stand alone: join the next
    nxt = np.nonzero(tiny[:-1])[0] + 1
    keep[nxt] = False
    if len(s) > 1 and small[0] and not gap[1]:
        keep[1] = False
    keep[0] = True
    return s[keep]


class Samples:
    """The sky samples of an amp sorted by wavelength once: wavelength, value and fiber of every
    usable fiber column (:func:`master_sky` then takes subsets without sorting again)."""

    def __init__(self, wave: np.ndarray, density: np.ndarray, use: np.ndarray) -> None:
        use = np.asarray(use, bool) & np.isfinite(wave) & np.isfinite(density)
        fib = np.nonzero(use)[0]
        w = np.asarray(wave, np.float64)[use]
        order = np.argsort(w, kind="stable")
        self.wave = w[order]
        self.value = np.asarray(density, np.float64)[use][order]
        self.fiber = fib[order]


def master_sky(wave: np.ndarray | Samples, density: np.ndarray | None = None, use: np.ndarray | None = None,
               block: int = 40, max_span: float = 1.0, exclude: np.ndarray | None = None) -> MasterSky:
    """Step 1: the master from the samples ``use`` (bool, like ``wave``) of ``density`` (e- per
    Å / ftf) at ``wave`` (Å) -- or from a :class:`Samples` without the fibers ``exclude``
    ((112,) bool): samples sorted by wavelength, blocks of ``block`` samples no wider than
    ``max_span`` Å (:func:`block_starts`), one point per block: (mean wavelength, biweight,
    biweight scale / sqrt(n))."""
    smp = wave if isinstance(wave, Samples) else Samples(wave, density, use)
    keep = slice(None) if exclude is None else ~np.asarray(exclude, bool)[smp.fiber]
    w, v = smp.wave[keep], smp.value[keep]
    if w.size < 2 * block:
        from hetred.errors import HetredError
        raise HetredError(f"too few good sky samples for a master sky ({w.size})")
    starts = block_starts(w, block, max_span, max(5, block // 4))
    cnt = np.diff(np.append(starts, w.size))
    nb = len(starts)
    idx = np.repeat(np.arange(nb), cnt)
    pos = np.arange(w.size) - np.repeat(starts, cnt)
    pad = np.full((int(cnt.max()), nb), np.nan, F32)
    pad[pos, idx] = v
    loc, scl = biweight(pad, axis=0)
    mw = np.bincount(idx, weights=w, minlength=nb) / cnt
    me = np.asarray(scl, np.float64) / np.sqrt(cnt)
    nfib = int(np.count_nonzero(np.bincount(smp.fiber[keep], minlength=1)))
    return MasterSky(mw, np.asarray(loc, np.float64), me, int(w.size), nfib)


def continuum_fibers(resid: np.ndarray, valid: np.ndarray, nsigma: float = 2.5, cap: float = 70.0,
                     grow: int = 1) -> tuple[np.ndarray, int]:
    """Step 3: (flags (112,) bool incl. ``grow`` neighbours, number of continuum fibers before
    growing). ``resid``: spectrum - sky (112, 1032) e-; ``valid``: usable fiber columns."""
    r = np.where(valid, resid, np.nan)[:, CONT_COLS]
    lev = np.asarray(biweight(r.T.astype(F32), axis=0)[0], np.float64)
    live = valid.any(axis=1) & (lev != -666)
    lev = np.where(live, lev, np.nan)
    if np.count_nonzero(live) < 5:
        return np.zeros(resid.shape[0], bool), 0
    xb, xs = biweight(lev[live].astype(F32))
    xs = min(float(xs), cap)
    core = live & (lev - float(xb) > nsigma * xs)
    flags = core.copy()
    for k in range(1, grow + 1):
        flags[k:] |= core[:-k]
        flags[:-k] |= core[k:]
    return flags, int(np.count_nonzero(core))


def residual_background(resid: np.ndarray, valid: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Step 4: (112, 1032) float64 e- per column: the smooth residual of every fiber from the
    fibers within +-2 (``exclude``: continuum fibers and neighbours left out)."""
    nfib, ncol = resid.shape
    r = np.where(valid & ~exclude[:, None], resid, np.nan)
    pts = np.full((nfib, len(BACK_RANGES)), np.nan)
    for k, (a, b) in enumerate(BACK_RANGES):
        seg = r[:, a:b]                                                  # (nfib, ncols)
        pad = np.full((nfib + 2 * BACK_FIBERS, seg.shape[1]), np.nan)
        pad[BACK_FIBERS:BACK_FIBERS + nfib] = seg
        stack = np.concatenate([pad[j:j + nfib] for j in range(2 * BACK_FIBERS + 1)], axis=1)
        loc = np.asarray(biweight(stack.T.astype(F32), axis=0)[0], np.float64)
        pts[:, k] = np.where((loc == -666) | ~np.isfinite(stack).any(axis=1), np.nan, loc)
    x = np.arange(ncol, dtype=np.float64)
    (c0, c1, c2), p = BACK_CENTRES, pts
    f1 = np.clip((x - c0) / (c1 - c0), 0.0, 1.0)[None, :]
    f2 = np.clip((x - c1) / (c2 - c1), 0.0, 1.0)[None, :]
    out = np.where(x[None, :] <= c1, p[:, :1] + (p[:, 1:2] - p[:, :1]) * f1,
                   p[:, 1:2] + (p[:, 2:3] - p[:, 1:2]) * f2)
    return np.where(np.isfinite(pts).all(axis=1)[:, None], out, 0.0)   # vred: all three or nothing


def fit_gauss_line(x: np.ndarray, y: np.ndarray, sig: np.ndarray, p0: tuple, niter: int = 30):
    """Weighted least-squares fit of a * exp(-(x - c)^2 / 2 s^2) + b0 + b1 x (Gauss-Newton with
    step halving); returns (params (5,), covariance (5, 5)) or None when it does not converge."""
    p = np.array(p0, np.float64)
    wgt = 1.0 / np.asarray(sig, np.float64) ** 2

    def model(q):
        g = np.exp(-0.5 * ((x - q[1]) / q[2]) ** 2)
        return q[0] * g + q[3] + q[4] * x, g

    m, g = model(p)
    chi = float(np.sum(wgt * (y - m) ** 2))
    for _ in range(niter):
        dx = (x - p[1]) / p[2]
        jac = np.column_stack([g, p[0] * g * dx / p[2], p[0] * g * dx * dx / p[2], np.ones_like(x), x])
        a = jac.T @ (jac * wgt[:, None])
        try:
            step = np.linalg.solve(a, jac.T @ (wgt * (y - m)))
        except np.linalg.LinAlgError:
            return None
        lam = 1.0
        while lam > 1e-3:
            q = p + lam * step
            if q[2] > 0:
                mq, gq = model(q)
                cq = float(np.sum(wgt * (y - mq) ** 2))
                if cq <= chi:
                    break
            lam *= 0.5
        else:
            break
        done = abs(chi - cq) < 1e-8 * max(chi, 1.0)
        p, m, g, chi = q, mq, gq, cq
        if done:
            break
    dx = (x - p[1]) / p[2]
    jac = np.column_stack([g, p[0] * g * dx / p[2], p[0] * g * dx * dx / p[2], np.ones_like(x), x])
    try:
        cov = np.linalg.inv(jac.T @ (jac * wgt[:, None]))
    except np.linalg.LinAlgError:
        return None
    return p, cov


def zero_point(master: MasterSky, lines: tuple[float, ...], half: float = 12.0, max_gap: float = 1.5,
               min_snr: float = 20.0) -> dict:
    """Step 5: offsets (Å, measured - laboratory) of bright sky lines in the master: a Gaussian
    plus a straight continuum fitted within +-``half`` Å of each line (lines whose window has a
    gap wider than ``max_gap`` Å between master points, from fully masked columns, or whose
    line flux is below ``min_snr`` sigma are skipped). Returns {"offset": median or None,
    "lines": {λ: offset}, "snr": {λ: S/N}}."""
    out: dict = {"lines": {}, "snr": {}}
    w, v, e = master.wave, master.density, master.error
    for lam in lines:
        win = np.abs(w - lam) <= half
        if win.sum() < 10 or w[win].min() > lam - half + max_gap or w[win].max() < lam + half - max_gap:
            continue
        x, y, s = w[win] - lam, v[win], np.maximum(e[win], 1e-6)
        if np.diff(x).max() > max_gap:
            continue
        b0 = float(np.median(y[np.abs(x) > half - 3]))
        fit = fit_gauss_line(x, y, s, (float(y.max() - b0), 0.0, 2.4, b0, 0.0))
        if fit is None:
            continue
        p, cov = fit
        flux = p[0] * abs(p[2]) * np.sqrt(2 * np.pi)
        ferr = np.sqrt(max(cov[0, 0], 0)) * abs(p[2]) * np.sqrt(2 * np.pi)
        snr = float(flux / ferr) if ferr > 0 else 0.0
        if not (snr >= min_snr and abs(p[1]) < 5 and 1.0 < abs(p[2]) < 6.0):
            continue
        out["lines"][float(lam)] = round(float(p[1]), 4)
        out["snr"][float(lam)] = round(snr, 1)
    offs = list(out["lines"].values())
    out["offset"] = float(np.median(offs)) if offs else None
    return out


@dataclass
class SkyResult:
    """Result of :func:`subtract_sky` (fiber arrays (112, 1032) float32)."""

    sky: np.ndarray              #: sky model per fiber, e- per column (incl. residual background)
    sky_subtracted: np.ndarray   #: spectrum - sky, 0 where masked
    sky_error: np.ndarray        #: error of the sky model (master point errors)
    residual: np.ndarray         #: the residual background part of ``sky``
    continuum: np.ndarray        #: (112,) bool continuum fibers and neighbours
    ncut: int                    #: continuum fibers (before adding neighbours)
    master: MasterSky
    zero_point: dict = field(default_factory=dict)


def subtract_sky(spectra: np.ndarray, masked: np.ndarray, wave: np.ndarray, ftf: np.ndarray,
                 dead: np.ndarray, *, block: int = 40, iterations: int = 2, nsigma: float = 2.5,
                 cap: float = 70.0, grow: int = 1, residual: bool = True,
                 lines: tuple[float, ...] = ()) -> SkyResult:
    """Steps 1-5 for one amp. spectra: (112, 1032) e- per column (0 where masked); masked:
    (112, 1032) bool; wave (112, 1032) Å; ftf (112, 1032); dead (112,) bool."""
    spec = np.asarray(spectra, np.float64)
    wave = np.asarray(wave, np.float64)
    ff = np.asarray(ftf, np.float64)
    ff = np.where((ff > FTF_RANGE[0]) & (ff < FTF_RANGE[1]), ff, 1.0)
    disp = dispersion(wave)
    valid = ~np.asarray(masked, bool) & ~np.asarray(dead, bool)[:, None] & (spec != 0) & (disp > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dens = spec / (disp * ff)
    cont = np.zeros(spec.shape[0], bool)
    ncut = 0
    samples = Samples(wave, dens, valid)
    for it in range(max(1, iterations)):
        master = master_sky(samples, block=block, exclude=cont)
        sky = master(wave) * disp * ff
        if it + 1 < iterations:
            cont, ncut = continuum_fibers(spec - sky, valid, nsigma, cap, grow)
    if iterations == 1:
        cont, ncut = continuum_fibers(spec - sky, valid, nsigma, cap, grow)
    sky_err = master.err(wave) * disp * ff
    back = residual_background(spec - sky, valid, cont) if residual else np.zeros_like(sky)
    sky = sky + back
    sub = np.where(valid, spec - sky, 0.0)
    zp = zero_point(master, tuple(lines)) if lines else {}
    return SkyResult(sky.astype(F32), sub.astype(F32), sky_err.astype(F32), back.astype(F32), cont,
                     ncut, master, zp)
