"""Karl's full-field sky (karlspipe hdr2.1 ``progs/vred3.f``, iuse = 1), pure arrays.

One exposure: every amp's extracted spectra (multi HDU ``spectrum``, electrons per CCD column) and
wavelengths (HDU ``wavelength``), with the calibration library's fiber-to-fiber and amp-to-amp
and the residual map of ``hetred resmap``. Steps, in vred3's order (line numbers of vred3.f):

1. :func:`prepare` [64-93]: s = spectrum (1 - res) / ftf / a2a per pixel (ftf or a2a = 0 taken as
   1), zeroed where ftf < 0.3, a2a < 0.6, the spectrum is 0 or s is not finite (|s| >= 1e10).
   hetred's ftf is per Angstrom at each fiber's own wavelengths (twical: counts per Å over the
   master's), so s is taken per 2 Å: spectrum x 2 / (dλ/dx) (Karl: counts per column, his ftf
   per column; equal where dλ/dx = 2 Å). The samples of the exposure's master are the pixels with
   a non-zero spectrum, with their s even where s was zeroed (vred3 counts ``arr1 .ne. 0``) [86-90].
2. :func:`exposure_master` [99, 660-668, 740-768]: all samples sorted by wavelength (kernel
   ``hetred._ext.fullsky.sort_by_wave``, stable), runs of
   ``run_full`` + 1 points (kernel ``hetred._ext.fullsky.master_runs``): mean wavelength, biweight.
3. per amp [121-393]:
   * :func:`amp_stage` [122-181]: amp master of its non-zero pixels (runs of ``run_amp`` + 1);
     each fiber's biweight residual from it (master 0 outside its wavelengths, as ``xlinint2``);
     continuum fibers: residual > ``continuum_sigma`` x (biweight scale of all residuals) /
     sqrt(``continuum_pixels``); N_c; the amp master again without the continuum fibers;
   * :func:`amp_factor` [185-193]: Factor = biweight of amp master / exposure master at the same
     wavelengths (1 if N_c >= 40 or Factor <= 0.1);
   * :func:`wavelength_search` [197-239]: the (W1, W0) of the grid with the least sum of
     (amp master - Factor x master(λ'))² (+ 5 x the same within 5455-5472 Å), λ' = λ + W0 +
     W1 (4500 - λ), first minimum in grid order; W0 at an end of its grid: grid centred there and
     searched again (<= 8 times) (kernel ``hetred._ext.fullsky.grid_chi2``);
   * :func:`subtract` [332-380]: s - Factor x master(λ') (0 where s = 0); Avg, Scale = biweight
     of the subtracted non-continuum pixels (clamped at -/+999); Nlow and the residual
     background (:func:`getback`) subtracted where N_c < 40; rectified onto 3470 + 2 i Å by
     linear interpolation on λ' (0 outside the fiber's wavelengths).

hetred's seven documented departures, each a setting (``profile = "karl"`` restores vred3):
``search_points = "inside"`` (only amp-master points that stay inside the exposure master enter
the W0/W1 sum: vred3's xlinint2 gives 0 beyond the master's ends and pulls the amps at the ends
of the wavelength range by up to 0.2 Å), ``passes = 2`` (the exposure master made again from the
samples at their corrected wavelengths divided by their amps' factors, and every amp measured
against it: the first master blends every amp's shift), ``refine = true`` (the minimum of a
quadratic through the 3 x 3 grid sums around the grid's minimum), ``search_smooth = 0.5`` Å (the
search and Factor see the exposure master as a moving mean over 0.5 Å: its 0.4 % point noise was
the largest error of W0/W1, :func:`smooth_master`) and ``newton = true`` (Gauss-Newton steps from
the grid's minimum to the least-squares minimum of the same sum, :func:`newton_minimum`) and ``mask_guard = 8``
Å (the search leaves out the amp-master points within 8 Å of the amp's holes, columns masked in most of
its fibers: a sky line cut by a bad column's mask is not placed by its remaining wing,
:func:`mask_holes`); and ``continuum_own_count`` (a fiber of n < 900 live pixels is held to
7 x scale / sqrt(n), not sqrt(900), in the continuum-fiber cut of :func:`amp_stage`). Numerical
differences from the
Fortran: sums and means in float64 (Karl: float32), a proper interpolation where ``xlinint2``
would keep a stale value (a point before its search start: never for increasing wavelengths),
samples sorted stably by wavelength (Karl's heapsort orders ties otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetred._ext.fullsky import grid_chi2, master_runs, segment_biweights, sort_by_wave
from hetred.fullsky.settings import FullskySettings
from hetred.stats import biweight

NFIB, NCOL = 112, 1032
F32 = np.float32


@dataclass
class AmpInput:
    """One amp of the exposure, as vred3 reads it (getfits, readcal2)."""

    name: str                            #: SSS_III_UUU_AA (specid, ifuslot, ifuid, amp), vred3's cds9
    spectrum: np.ndarray | None = None   #: (112, 1032) e- per column (multi HDU spectrum)
    wave: np.ndarray | None = None       #: (112, 1032) Å (multi HDU wavelength)
    ftf: np.ndarray | None = None        #: (112, 1032) library fiber-to-fiber (per Å)
    a2a: float = 1.0                     #: library amp-to-amp factor
    res: np.ndarray | None = None        #: (112, 1032) fractional residual map (resmap), None: 0
    why: str = ""                        #: why the amp cannot be used ("" = usable)


@dataclass
class Prepared:
    """:func:`prepare`'s result for one amp."""

    s: np.ndarray          #: (112, 1032) float32 calibrated counts per 2 Å (0 = not used)
    wave: np.ndarray       #: (112, 1032) float64 Å
    sample: np.ndarray     #: (112, 1032) bool, pixels that go into the exposure master


@dataclass
class AmpStage:
    """:func:`amp_stage`'s result: continuum fibers and the amp master without them."""

    cont: np.ndarray       #: (112,) bool
    ncut: int
    x2: np.ndarray         #: amp master wavelengths (float64)
    y2: np.ndarray         #: amp master values (float32)
    search: np.ndarray | None = None   #: bool (len(x2),): points of the W0/W1 search (None: all)


@dataclass
class AmpResult:
    """One row of amp.dat and the amp's 112 rows of sub.fits."""

    name: str
    factor: float = 0.0
    ncont: int = 0
    avg: float = 0.0
    scale: float = 0.0
    w0: float = 0.0
    w1: float = 0.0                 #: per Å (amp.dat writes W1 x 1000)
    nlow: int = -1                  #: -1: the amp was not reduced (``why``)
    sub: np.ndarray = field(default_factory=lambda: np.zeros((NFIB, 1036), F32))   #: (112, nwave)
    continuum: np.ndarray = field(default_factory=lambda: np.zeros(NFIB, bool))
    recentred: int = 0              #: times the W0 grid was centred again (last pass)
    why: str = ""                   #: why the amp was not reduced ("" = reduced)

    @property
    def reduced(self) -> bool:
        return not self.why


def flagged(name: str, why: str, nwave: int = 1036) -> AmpResult:
    """The amp.dat row of an amp that was not reduced: Factor 0, Scale 0 (both red by Karl's own
    rules), Nlow -1, sub rows 0."""
    return AmpResult(name=name, sub=np.zeros((NFIB, nwave), F32), why=why)


def a2a_value(a2a: float, st: FullskySettings) -> float:
    """readcal2 on a constant amp-to-amp curve: a value below ``a2a_replace_below`` is replaced by
    the previous one, 1 for the first [vred3:860-871]."""
    return 1.0 if a2a < st.a2a_replace_below else float(a2a)


def prepare(amp: AmpInput, st: FullskySettings) -> Prepared:
    """Step 1 [vred3:64-93] (module docstring) for one usable amp."""
    assert amp.spectrum is not None and amp.wave is not None and amp.ftf is not None
    spec = np.asarray(amp.spectrum, np.float64)
    wave = np.asarray(amp.wave, np.float64)
    ftf0 = np.asarray(amp.ftf, np.float64)
    ata0 = a2a_value(amp.a2a, st)
    res = 0.0 if amp.res is None else np.asarray(amp.res, np.float64)
    disp = np.gradient(wave, axis=1)
    ftf1 = np.where(ftf0 == 0, 1.0, ftf0)
    ata1 = 1.0 if ata0 == 0 else ata0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = spec * (1.0 - res) * (st.dwave / disp) / ftf1 / ata1
    s = np.where((s > -1e10) & (s < 1e10), s, 0.0)
    s[(ftf0 < st.ftf_min) | (ata0 < st.a2a_min)] = 0.0
    s[spec == 0] = 0.0
    sample = (spec != 0) & np.isfinite(wave)
    return Prepared(s.astype(F32), wave, sample)


def sort_samples(wave: np.ndarray, value: np.ndarray, with_order: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """vred3's ``sort2``: (wavelength, value, order or None) sorted by wavelength (stable, the order
    of NumPy's stable argsort), float32; kernel ``hetred._ext.fullsky.sort_by_wave`` (a radix sort)."""
    w = np.ascontiguousarray(np.asarray(wave, F32).ravel())
    v = np.ascontiguousarray(np.asarray(value, F32).ravel())
    return sort_by_wave(w, v, with_order)


def runs_master(wave: np.ndarray, value: np.ndarray, ns: int) -> tuple[np.ndarray, np.ndarray]:
    """vred3's ``getmaster`` (sort2 + smooth3): (mean wavelengths float64, biweights float32)."""
    w, v, _ = sort_samples(wave, value, with_order=False)
    return master_runs(w, v, int(ns))


def exposure_master(prepared: list[Prepared], st: FullskySettings,
                    corrections: list[tuple[float, float, float]] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: the exposure's master sky (wavelengths float64, values float32) from every amp's
    samples (runs of ``run_full`` + 1 points). ``corrections`` (Factor, W0, W1 per amp, pass 2):
    each sample at λ + W0 + W1 (pivot - λ) and divided by its Factor."""
    if not prepared:
        return np.zeros(0), np.zeros(0, F32)
    ws, vs = [], []
    for k, p in enumerate(prepared):
        w = p.wave[p.sample]
        v = p.s[p.sample]
        if corrections is not None:
            xb, w0, w1 = corrections[k]
            w = w + w0
            w = w + w1 * (st.w1_pivot - p.wave[p.sample])
            v = v / F32(xb)
        ws.append(w.astype(F32))
        vs.append(v.astype(F32))
    return runs_master(np.concatenate(ws), np.concatenate(vs), st.run_full)


def interp0(xq: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``xlinint2``: linear between the points (x increasing), 0 outside [x[0], x[-1]]."""
    if len(x) < 2:
        return np.zeros(np.shape(xq))
    return np.interp(xq, x, np.asarray(y, np.float64), left=0.0, right=0.0)


def _bw(values: np.ndarray) -> tuple[float, float]:
    """Karl's biweight (location, scale) of a 1-D set (-666, -2 when empty)."""
    loc, scl = biweight(np.asarray(values, F32))
    return float(loc), float(scl)


def amp_stage(p: Prepared, st: FullskySettings) -> AmpStage:
    """Continuum fibers and the amp master without them [vred3:122-181] (module docstring). The
    samples are sorted once; the second master takes the sorted samples of the other fibers."""
    use = p.s != 0
    fib = np.broadcast_to(np.arange(p.s.shape[0])[:, None], p.s.shape)[use]
    w, v, order = sort_samples(p.wave[use], p.s[use])
    x2, y2 = master_runs(w, v, st.run_amp)
    resid = np.where(use, p.s - interp0(p.wave, x2, y2), np.nan).astype(F32)
    fib_loc = np.asarray(biweight(resid, axis=1)[0], np.float64)   # -666 for a fiber without pixels
    _, xs = _bw(resid[use])
    npix = np.full(p.s.shape[0], st.continuum_pixels)
    if st.continuum_own_count:
        npix = np.clip(use.sum(axis=1), 1, st.continuum_pixels)
    xcut = st.continuum_sigma * xs / np.sqrt(npix)
    cont = fib_loc > xcut
    ncut = int(cont.sum())
    if ncut:
        keep = ~cont[fib[order]]
        x2, y2 = master_runs(np.ascontiguousarray(w[keep]), np.ascontiguousarray(v[keep]), st.run_amp)
    search = away_from_holes(x2, mask_holes(p, st.mask_fraction), st.mask_guard) if st.mask_guard > 0 else None
    return AmpStage(cont, ncut, x2, y2, search)


def mask_holes(p: Prepared, fraction: float) -> np.ndarray:
    """(n, 2) wavelength intervals (Å) of the amp's holes: runs of columns where more than
    ``fraction`` of its live fibers have no data (s = 0) between their first and last column with
    data; each interval spans the wavelengths of those columns over every fiber. Dead fibers and the
    ends of a fiber's range are not holes."""
    use = p.s != 0
    live = use.any(axis=1)
    if not live.any():
        return np.zeros((0, 2))
    u = use[live]
    ncol = u.shape[1]
    first = np.argmax(u, axis=1)
    last = ncol - 1 - np.argmax(u[:, ::-1], axis=1)
    cols = np.arange(ncol)
    inner = (cols >= first[:, None]) & (cols <= last[:, None])
    n_in = inner.sum(axis=0)
    frac = np.where(n_in > 0, (inner & ~u).sum(axis=0) / np.maximum(n_in, 1), 0.0)
    bad = np.concatenate([[False], frac > fraction, [False]])
    starts = np.nonzero(bad[1:] & ~bad[:-1])[0]
    ends = np.nonzero(~bad[1:] & bad[:-1])[0]            # exclusive
    wave = p.wave[live]
    out = []
    for c0, c1 in zip(starts, ends):
        w = wave[:, c0:c1]
        w = w[np.isfinite(w)]
        if w.size:
            out.append((float(w.min()), float(w.max())))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def away_from_holes(x2: np.ndarray, holes: np.ndarray, guard: float) -> np.ndarray | None:
    """bool (len(x2),): amp-master points farther than ``guard`` Å from every hole (``mask_guard``);
    None when nothing is left out, or when that would leave out half of the points or more (an amp of
    holes is searched as vred3 does)."""
    if guard <= 0 or len(holes) == 0:
        return None
    x = np.asarray(x2, np.float64)
    near = np.zeros(x.shape, bool)
    for lo, hi in holes:
        near |= (x > lo - guard) & (x < hi + guard)
    if not near.any() or 2 * int(near.sum()) >= len(x):
        return None
    return ~near


def amp_factor(x2: np.ndarray, y2: np.ndarray, wm: np.ndarray, xm: np.ndarray, ncut: int,
               st: FullskySettings) -> float:
    """Factor [vred3:185-193]: biweight of amp master / exposure master at the amp master's
    wavelengths (a point outside the exposure master divides by 0 and is left out, as biwgt leaves
    out an infinite value); 1 when N_c >= ``continuum_max`` or the factor <= ``factor_min``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = y2 / interp0(x2, wm, xm)
    xb = _bw(ratio[np.isfinite(ratio)])[0] if len(x2) else -666.0
    if ncut >= st.continuum_max or xb <= st.factor_min:
        xb = 1.0
    return float(xb)


def wavelength_grid(st: FullskySettings, w0_centre: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(W0 values (w0_steps,), W1 values (w1_steps,)) of one search [vred3:36-44, 202-205]."""
    w0 = w0_centre + np.linspace(-st.w0_half, st.w0_half, st.w0_steps)
    w1 = np.linspace(-st.w1_half, st.w1_half, st.w1_steps) if st.w1_steps > 1 else np.zeros(1)
    return w0, w1


def inside_master(x2: np.ndarray, w0s: np.ndarray, w1s: np.ndarray, pivot: float, lo: float,
                  hi: float) -> np.ndarray:
    """Amp-master points whose shifted wavelength stays within [lo, hi] (the exposure master's)
    at every (W0, W1) of the grid: ``search_points = "inside"``."""
    d = pivot - x2
    w1a, w1b = float(np.min(w1s)), float(np.max(w1s))
    low = x2 + float(np.min(w0s)) + np.minimum(w1a * d, w1b * d)
    high = x2 + float(np.max(w0s)) + np.maximum(w1a * d, w1b * d)
    return (low >= lo) & (high <= hi)


def refine_minimum(sums: np.ndarray, a: int, b: int) -> tuple[float, float] | None:
    """(row, column) offsets in grid steps (within +-1) of the minimum of the quadratic through the
    3 x 3 sums around (a, b); None at the grid's edge or when the quadratic has no minimum."""
    if not (0 < a < sums.shape[0] - 1 and 0 < b < sums.shape[1] - 1):
        return None
    yy, xx = np.mgrid[-1:2, -1:2]
    x, y = xx.ravel().astype(float), yy.ravel().astype(float)
    z = sums[a - 1:a + 2, b - 1:b + 2].ravel()
    design = np.column_stack([np.ones(9), x, y, x * x, y * y, x * y])
    c = np.linalg.lstsq(design, z, rcond=None)[0]
    hess = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
    if c[3] <= 0 or np.linalg.det(hess) <= 0:
        return None
    dx, dy = np.linalg.solve(hess, [-c[1], -c[2]])
    return float(np.clip(dy, -1.0, 1.0)), float(np.clip(dx, -1.0, 1.0))


def smooth_master(wm: np.ndarray, xm: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """The exposure master as a moving mean (wavelengths and values) over n consecutive points, n the
    odd number nearest to ``width`` Å over the median point spacing (``search_smooth``); n <= 1 or too
    few points: unchanged. (float64, float32)."""
    if width <= 0 or len(wm) < 3:
        return wm, xm
    n = 2 * round(0.5 * (width / float(np.median(np.diff(wm))) - 1)) + 1
    if n <= 1 or len(wm) < 2 * n:
        return wm, xm
    k = np.full(n, 1.0 / n)
    return (np.convolve(np.asarray(wm, np.float64), k, "valid"),
            np.convolve(np.asarray(xm, np.float64), k, "valid").astype(F32))


def newton_minimum(x2: np.ndarray, y2: np.ndarray, wm: np.ndarray, xm: np.ndarray, xb: float, w0: float,
                   w1: float, st: FullskySettings, iterations: int = 20) -> tuple[float, float] | None:
    """(W0, W1) minimising the search's sum (weight 1, ``hg_weight`` + 1 inside ``hg_window``) of
    (y2 - c master(λ'))², λ' = x2 + W0 + W1 (pivot - x2), over (c, W0, W1) by Gauss-Newton steps from
    (xb, w0, w1); master(λ') linear between its points, its derivative the central difference over
    +-``newton_step`` Å; only points with λ' +- 1 Å inside the master. None when a step fails (too
    few points, singular) or the solution leaves ``newton_reach`` grid steps of (w0, w1)."""
    x = np.asarray(x2, np.float64)
    y = np.asarray(y2, np.float64)
    wmf = np.asarray(wm, np.float64)
    xmf = np.asarray(xm, np.float64)
    if len(wmf) < 2 or len(x) < 3:
        return None
    h = st.newton_step
    dw0 = 2 * st.w0_half / (st.w0_steps - 1)
    dw1 = 2 * st.w1_half / (st.w1_steps - 1) if st.w1_steps > 1 else 0.0
    arm = st.w1_pivot - x
    c, a0, a1 = float(xb), float(w0), float(w1)
    for _ in range(iterations):
        lt = x + a0 + a1 * arm
        ok = (lt - 1.0 > wmf[0]) & (lt + 1.0 < wmf[-1])
        if ok.sum() < 3:
            return None
        m = np.interp(lt, wmf, xmf)
        d = c * (np.interp(lt + h, wmf, xmf) - np.interp(lt - h, wmf, xmf)) / (2 * h)
        wt = np.where(ok, 1.0 + st.hg_weight * ((lt > st.hg_window[0]) & (lt < st.hg_window[1])), 0.0)
        cols = [m, d] + ([d * arm * 1e-3] if dw1 > 0 else [])
        jac = np.array(cols)
        r = y - c * m
        try:
            step = np.linalg.solve((jac * wt) @ jac.T, (jac * wt) @ r)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step)):
            return None
        c += step[0]
        a0 += step[1]
        if dw1 > 0:
            a1 += step[2] * 1e-3
        if abs(a0 - w0) > st.newton_reach * dw0 or (dw1 > 0 and abs(a1 - w1) > st.newton_reach * dw1):
            return None
        if abs(step[1]) < 1e-6 and (dw1 == 0 or abs(step[2]) < 1e-6):
            break
    return a0, a1


def wavelength_search(x2: np.ndarray, y2: np.ndarray, wm: np.ndarray, xm: np.ndarray, xb: float,
                      st: FullskySettings, chi2=grid_chi2) -> tuple[float, float, int]:
    """(W0 Å, W1 per Å, times recentred) [vred3:197-239]: the first least sum in grid order (W1
    outer, W0 inner, strict <); W0 at an end of its grid recentres the grid on it, at most
    ``max_recentre`` times (then the last minimum stands). ``search_points``: "all" sums over
    every amp-master point as vred3 (a point moved outside the exposure master counts as
    (y - 0)^2); "inside" over those that stay inside it for the whole grid (:func:`inside_master`).
    ``refine``: the grid minimum moved to the quadratic's (:func:`refine_minimum`)."""
    x2 = np.ascontiguousarray(x2, np.float64)
    y2 = np.ascontiguousarray(y2, F32)
    wm = np.ascontiguousarray(wm, np.float64)
    xm = np.ascontiguousarray(xm, F32)
    centre, ntry = 0.0, 0
    while True:
        w0s, w1s = wavelength_grid(st, centre)
        xs, ys = x2, y2
        if st.search_points == "inside" and len(wm):
            keep = inside_master(x2, w0s, w1s, st.w1_pivot, wm[0], wm[-1])
            xs, ys = np.ascontiguousarray(x2[keep]), np.ascontiguousarray(y2[keep])
        sums = chi2(xs, ys, wm, xm, float(xb), w0s, w1s, st.w1_pivot, st.hg_window[0], st.hg_window[1],
                    st.hg_weight)
        k = int(np.argmin(sums))                # the first minimum in row-major (W1, W0) order
        a, b = divmod(k, len(w0s))
        w0, w1 = float(w0s[b]), float(w1s[a])
        if 0 < b < len(w0s) - 1:
            break
        centre = w0                             # at an end: search again around it (label 890)
        ntry += 1
        if ntry >= st.max_recentre:             # vred3: "if(ntry.eq.8) goto 887" before the search
            break
    if st.refine:
        off = refine_minimum(sums, a, b)
        if off is not None:
            w1 = w1 + off[0] * (w1s[1] - w1s[0]) if len(w1s) > 1 else w1
            w0 = w0 + off[1] * (w0s[1] - w0s[0])
    if st.newton:
        xs_, ys_ = (xs, ys) if st.search_points == "inside" else (x2, y2)
        sol = newton_minimum(xs_, ys_, wm, xm, xb, w0, w1, st)
        if sol is not None:
            w0, w1 = sol
    return w0, w1, ntry


def getback(specsub: np.ndarray, cont: np.ndarray, st: FullskySettings) -> tuple[np.ndarray, int]:
    """vred3's ``getback`` (iback = 0) [vred3:445-572]: (residual background (112, 1032), Nlow).

    Background of fiber j: the biweights, over the columns of each segment of ``back_columns``
    (1-based, inclusive: 100-400, 400-700, 700-1000), of the subtracted spectra of the
    non-continuum fibers within +-``back_fibers`` of j (not j), zeros included as vred3 takes them
    (kernel ``hetred._ext.fullsky.segment_biweights``); placed at the segments' middle columns and
    interpolated linearly in column (flat beyond); 0 when j has no such neighbour. Nlow: fibers
    whose biweight over ``nlow_columns`` of the non-zero values less the amp's biweight is below
    -``nlow_sigma`` x the amp's biweight scale (more than ``nlow_min_pixels`` values).
    """
    nf, nc = specsub.shape
    cols = [int(c) for c in st.back_columns]
    segs = [(cols[k] - 1, cols[k + 1]) for k in range(len(cols) - 1)]      # 0-based [lo, hi)
    mids = np.array([(cols[k] + cols[k + 1]) / 2.0 for k in range(len(cols) - 1)])
    width = max(hi - lo for lo, hi in segs)
    srt = np.full((len(segs), nf, width), np.inf, F32)
    for q, (lo, hi) in enumerate(segs):
        srt[q, :, :hi - lo] = np.sort(np.asarray(specsub[:, lo:hi], F32), axis=1)
    widths = np.array([hi - lo for lo, hi in segs], np.int64)
    loc, have = segment_biweights(srt, widths, (~np.asarray(cont, bool)).astype(np.uint8), int(st.back_fibers))
    sback = np.zeros((nf, nc))
    x = np.arange(1, nc + 1, dtype=np.float64)
    for j in np.nonzero(have)[0]:
        sback[j] = np.interp(x, mids, loc[:, j].astype(np.float64))
    # Nlow on the subtracted spectra before the background
    lo, hi = int(st.nlow_columns[0]) - 1, int(st.nlow_columns[1])
    band = specsub[:, lo:hi].astype(F32)
    nz = band != 0
    xball, xs = _bw(band[nz])
    cut = -st.nlow_sigma * xs
    per = np.where(nz, band - F32(xball), np.nan)
    fl = np.asarray(biweight(per, axis=1)[0], np.float64)
    nlow = int(np.sum((nz.sum(axis=1) > st.nlow_min_pixels) & (fl < cut)))
    return sback, nlow


def subtract(name: str, p: Prepared, a: AmpStage, xb: float, w0: float, w1: float, wm: np.ndarray,
             xm: np.ndarray, st: FullskySettings) -> AmpResult:
    """The subtraction, Avg/Scale, getback, Nlow and the rectified rows [vred3:332-380]."""
    use = p.s != 0
    wavesub = p.wave + w0
    wavesub = wavesub + w1 * (st.w1_pivot - p.wave)
    specsub = np.where(use, p.s - interp0(wavesub, wm, xm) * xb, 0.0)
    avg, scale = _bw(specsub[(specsub != 0) & ~a.cont[:, None]])
    sback, nlow = getback(specsub, a.cont, st)
    sin = np.where((a.ncut < st.continuum_max) & (specsub != 0), specsub - sback, specsub)
    grid = st.grid
    sub = np.zeros((p.s.shape[0], st.nwave), F32)
    for j in range(p.s.shape[0]):
        win = wavesub[j]
        if np.all(np.isfinite(win)) and np.all(np.diff(win) > 0):
            sub[j] = interp0(grid, win, sin[j])
    return AmpResult(name=name, factor=xb, ncont=a.ncut, avg=max(-st.clamp, avg), scale=min(st.clamp, scale),
                     w0=w0, w1=w1, nlow=nlow, sub=sub, continuum=a.cont)


@dataclass
class ExposureResult:
    """vred3's outputs for one exposure: amp.dat rows (in order), the master sky (of the last pass)."""

    amps: list[AmpResult]
    master_wave: np.ndarray
    master_sky: np.ndarray

    @property
    def sub(self) -> np.ndarray:
        """sub.fits: (112 n_amp, nwave) float32, amp after amp as in amp.dat."""
        if not self.amps:
            return np.zeros((0, 1036), F32)
        return np.vstack([a.sub for a in self.amps]).astype(F32)


def reduce_exposure(amps: list[AmpInput], st: FullskySettings, chi2=grid_chi2) -> ExposureResult:
    """vred3 on one exposure (module docstring). ``amps`` in amp.dat order; an amp with ``why`` set
    (missing file, calibration, ...) or without data gets a flagged row (:func:`flagged`)."""
    prepared: dict[int, Prepared] = {}
    for k, a in enumerate(amps):
        if not a.why:
            prepared[k] = prepare(a, st)
    keys = list(prepared)
    wm, xm = exposure_master([prepared[k] for k in keys], st)
    why: dict[int, str] = {k: a.why for k, a in enumerate(amps) if a.why}
    stages: dict[int, AmpStage] = {}
    for k in keys:
        if not (prepared[k].s != 0).any():
            why[k] = "no pixel with data"
            continue
        stages[k] = amp_stage(prepared[k], st)
        if len(stages[k].x2) == 0:
            why[k] = "no pixel with data outside the continuum fibers"
    good = [k for k in keys if k not in why]
    if len(wm) < 2:
        for k in good:
            why[k] = "no master sky (no data in the exposure)"
        good = []
    sol: dict[int, tuple[float, float, float, int]] = {}
    for npass in range(max(1, st.passes)):
        if npass:                       # the master again from the corrected samples (pass 2)
            corr = [sol[k][:3] for k in good]
            wm, xm = exposure_master([prepared[k] for k in good], st, corr)
        wms, xms = smooth_master(wm, xm, st.search_smooth)
        for k in good:
            a = stages[k]
            xb = amp_factor(a.x2, a.y2, wms, xms, a.ncut, st)
            xs, ys = (a.x2, a.y2) if a.search is None else (a.x2[a.search], a.y2[a.search])
            w0, w1, ntry = wavelength_search(xs, ys, wms, xms, xb, st, chi2)
            sol[k] = (xb, w0, w1, ntry)
    out = []
    for k, a in enumerate(amps):
        if k in why:
            out.append(flagged(a.name, why[k], st.nwave))
            continue
        xb, w0, w1, ntry = sol[k]
        r = subtract(a.name, prepared[k], stages[k], xb, w0, w1, wm, xm, st)
        r.recentred = ntry
        out.append(r)
    return ExposureResult(out, wm, xm)
