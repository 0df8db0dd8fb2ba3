"""Wavelength of every fiber and column from Hg and Cd arcs (docs/stages/twical_wavelength.md).

Replaces the wavelength parts of karlspipe hdr2.1 ``progs/vred.f`` (``getwtrace``,
``getmaster``/``fitmaster``/``writemaster``, ``getpeaks``/``getwtrace3``, ``getwsol``: a
solution from the twilight's solar spectrum) with an arc-line solution in Remedy's manner (a
polynomial per fiber); Karl's solar cross-correlation survives as a zero-point refinement
(:mod:`hetred.twical.solar_shift`) and ``progs/getwavo.f`` (biweight of several solutions) as
:func:`combine_solutions`.

Input: extracted arc spectra, (112, 1032) electrons per oriented column, by lamp (``hg``,
``cd-a``). Steps (:func:`solve_arcs`):

1. rough identification: per-fiber shift against the guess solution by cross-correlation with a
   model line spectrum (:func:`hetred.twical.arclines.rough_shifts`);
2. line centres: pixel-integrated Gaussian fits near the predicted columns
   (:func:`hetred.twical.arclines.measure_lines`), weighted by their errors; lines whose width is
   off the line's biweight over fibers are blends and are dropped;
3. each fiber's own solution (:mod:`hetred.twical.wavefit`): zero point, tilt and curvature
   (Legendre terms up to ``own_order`` along the columns) from the fiber's own lines, only the
   cubic term shared across the slit; a fiber with too few lines borrows the missing terms
   from the local trend of its nearest neighbours (extrapolated at the slit edges);
4. steps 2-3 once more with the columns predicted by the first solution.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import IntFlag
from typing import Any, Mapping, Sequence

import numpy as np

from hetred.errors import HetredError
from hetred.stats import biweight
from hetred.twical import arclines as A
from hetred.twical import wavefit as WF

NFIB, NCOLS = A.NFIB, A.NCOLS
XCEN = (NCOLS - 1) / 2.0


class WaveFlag(IntFlag):
    """Per-fiber flags of a :class:`WaveSolution`."""

    DEAD = 1            #: excluded by the caller (dead fiber): wavelengths from the neighbours' shape
    FEW_LINES = 2       #: fewer than ``min_lines`` good lines: zero point interpolated
    HIGH_RMS = 4        #: line rms above ``max_rms``
    ZP_OUTLIER = 8      #: zero point more than ``zp_tol`` off the fibers' smooth trend (information)
    NONMONOTONIC = 16   #: wavelength not increasing with the column somewhere
    TWI_BAD = 32        #: twilight shift not measured; the fiber got its neighbours' shift


@dataclass(frozen=True)
class WaveSettings:
    """Settings of the arc solution; ``[stages.wavelength]`` in the config file sets any of them."""

    guess_poly: tuple[float, ...] = A.DEFAULT_POLY   #: rough lambda(x) = c0 + c1 x + c2 x^2 (A)
    max_shift_px: float = 12.0   #: cross-correlation range of the per-fiber shift (px)
    search_px: float = 4.0       #: first pass: peak search +- px around the predicted column
    search2_px: float = 1.5      #: second pass: +- px around the first solution's column
    fit_half: int = 5            #: Gaussian fit window: peak +- px
    min_snr: float = 8.0         #: a line needs this S/N (flux / error)
    width_tol: float = 0.35      #: blend: |sigma - line's biweight sigma| above this (px) ...
    width_nsig: float = 5.0      #: ... and above this many biweight scales
    sys_px: float = 0.02         #: added in quadrature to every centroid error (px)
    xorder: int = 3              #: polynomial degree along the columns
    own_order: int = 2           #: terms up to this degree along the columns come from each fiber's own lines
    forder: int = 3              #: degree across the fibers of the shared terms above ``own_order``
    neighbours: int = 8          #: fibers in the local trend that fills a fiber's missing terms
    min_lines: int = 3           #: good lines a fiber needs for its own zero point
    clip: float = 4.0            #: clip residuals above clip x the robust scale (normalised)
    max_iter: int = 6            #: clipping iterations
    max_rms: float = 0.1         #: flag HIGH_RMS above this line rms (A)
    zp_tol: float = 1.0          #: flag ZP_OUTLIER beyond this (A)

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> "WaveSettings":
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HetredError(f"[stages.wavelength]: unknown setting(s) {', '.join(unknown)}")
        if "guess_poly" in values:
            values["guess_poly"] = tuple(float(v) for v in values["guess_poly"])
        return cls(**values)


@dataclass
class WaveSolution:
    """Wavelengths of one amp: (112, 1032) float32 A (air) at oriented column centres.

    Per fiber: ``rms`` (A, used lines about the solution), ``nlines``, ``zero_point`` (A),
    ``lsf_fwhm`` (A, median over the fiber's lines), ``flags`` (:class:`WaveFlag`). Per fiber
    and line (``lines``): ``line_x`` (column), ``line_resid`` (A, solution at line_x minus the
    list wavelength), ``line_used``, ``line_snr``. ``twilight_shift`` (A, added) when a twilight
    refinement was applied; ``scatter`` (A, per pixel) and ``nexp`` for combined solutions.
    """

    wavelength: np.ndarray
    rms: np.ndarray
    nlines: np.ndarray
    zero_point: np.ndarray
    lsf_fwhm: np.ndarray
    flags: np.ndarray
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0))
    line_x: np.ndarray = field(default_factory=lambda: np.zeros((NFIB, 0)))
    line_resid: np.ndarray = field(default_factory=lambda: np.zeros((NFIB, 0)))
    line_used: np.ndarray = field(default_factory=lambda: np.zeros((NFIB, 0), bool))
    line_snr: np.ndarray = field(default_factory=lambda: np.zeros((NFIB, 0)))
    twilight_shift: np.ndarray | None = None
    scatter: np.ndarray | None = None
    nexp: int = 1
    meta: dict = field(default_factory=dict)

    def line_summary(self) -> list[dict]:
        """Per line: used fibers, biweight and scale of the residuals (A) -- for the QA plot."""
        out = []
        for j, lam in enumerate(self.lines):
            r = self.line_resid[self.line_used[:, j], j]
            loc, scl = biweight(r) if r.size else (np.nan, np.nan)
            out.append({"line": float(lam), "nfib": int(r.size), "resid": float(loc), "scatter": float(scl)})
        return out

    def with_shift(self, shift: np.ndarray, flags: np.ndarray | None = None,
                   record: bool = True) -> "WaveSolution":
        """A copy with ``shift`` (A per fiber, added) applied, e.g. the twilight zero point;
        ``record``: add it to ``twilight_shift`` too. ``flags`` are OR-ed in."""
        s = np.asarray(shift, dtype=float).reshape(-1)
        new = WaveSolution(**{f.name: getattr(self, f.name) for f in fields(self)})
        new.wavelength = (self.wavelength.astype(float) + s[:, None]).astype(np.float32)
        new.zero_point = self.zero_point + s
        if record:
            new.twilight_shift = s.copy() if self.twilight_shift is None else self.twilight_shift + s
        new.line_resid = self.line_resid + s[:, None]
        if flags is not None:
            new.flags = self.flags | np.asarray(flags)
        new.meta = dict(self.meta)
        return new


    # ------------------------------------------------------------------ FITS
    def to_hdulist(self):
        """astropy HDUList: WAVELENGTH (float32 A), FIBERS table, LINE_X / LINE_RESID / LINE_USED / LINE_SNR
        images (nfib, nlines; header LINE1.. = list wavelengths), SCATTER for combined solutions."""
        from astropy.io import fits

        ph = fits.PrimaryHDU()
        ph.header["NEXP"] = (self.nexp, "solutions combined")
        ph.header["ORIENT"] = ("oriented", "x = column (wavelength up), 0-based centres")
        ph.header["AIRWAVE"] = (True, "air wavelengths (A)")
        hdus = [ph, fits.ImageHDU(self.wavelength.astype(np.float32), name="WAVELENGTH")]
        hdus[1].header["BUNIT"] = "Angstrom"
        tw = np.full(self.rms.size, np.nan) if self.twilight_shift is None else self.twilight_shift
        cols = [fits.Column(name=n, format=f, array=np.asarray(v)) for n, f, v in (
            ("FIBER", "J", np.arange(1, self.rms.size + 1)), ("RMS", "E", self.rms),
            ("NLINES", "I", self.nlines), ("ZEROPT", "D", self.zero_point), ("LSF_FWHM", "E", self.lsf_fwhm),
            ("FLAGS", "J", self.flags), ("TWISHIFT", "D", tw))]
        hdus.append(fits.BinTableHDU.from_columns(cols, name="FIBERS"))
        for name, arr, dt in (("LINE_X", self.line_x, np.float64), ("LINE_RESID", self.line_resid, np.float32),
                              ("LINE_USED", self.line_used, np.uint8), ("LINE_SNR", self.line_snr, np.float32)):
            h = fits.ImageHDU(np.asarray(arr).astype(dt), name=name)
            for j, lam in enumerate(self.lines):
                h.header[f"LINE{j + 1}"] = float(lam)
            hdus.append(h)
        if self.scatter is not None:
            hdus.append(fits.ImageHDU(self.scatter.astype(np.float32), name="SCATTER"))
        return fits.HDUList(hdus)

    @classmethod
    def from_hdulist(cls, hdul) -> "WaveSolution":
        t = hdul["FIBERS"].data
        hx = hdul["LINE_X"]
        nl = hx.data.shape[1] if hx.data is not None and hx.data.ndim == 2 else 0
        lines = np.array([hx.header[f"LINE{j + 1}"] for j in range(nl)], dtype=float)
        tw = np.asarray(t["TWISHIFT"], float)
        names = [h.name for h in hdul]
        return cls(wavelength=np.asarray(hdul["WAVELENGTH"].data, np.float32), rms=np.asarray(t["RMS"], np.float32),
                   nlines=np.asarray(t["NLINES"], np.int16), zero_point=np.asarray(t["ZEROPT"], float),
                   lsf_fwhm=np.asarray(t["LSF_FWHM"], np.float32), flags=np.asarray(t["FLAGS"], np.int32),
                   lines=lines, line_x=np.asarray(hx.data, float).reshape(-1, nl),
                   line_resid=np.asarray(hdul["LINE_RESID"].data, np.float32).reshape(-1, nl),
                   line_used=np.asarray(hdul["LINE_USED"].data, bool).reshape(-1, nl),
                   line_snr=np.asarray(hdul["LINE_SNR"].data, float).reshape(-1, nl),
                   twilight_shift=None if np.all(np.isnan(tw)) else tw,
                   scatter=np.asarray(hdul["SCATTER"].data, np.float32) if "SCATTER" in names else None,
                   nexp=int(hdul[0].header.get("NEXP", 1)))


# ----------------------------------------------------------------------------- the fit

def fit_solution(lf: A.LineFits, disp: np.ndarray, s: WaveSettings, live: np.ndarray,
                 fn: np.ndarray) -> WF.FitResult:
    """The model of :mod:`hetred.twical.wavefit` fitted to measured lines. disp: (nfib, nlines)
    A/px at the lines (for the errors, with the ``sys_px`` floor)."""
    err = disp * np.sqrt(np.nan_to_num(lf.x_err, nan=1.0) ** 2 + s.sys_px ** 2)
    return WF.fit_lines(lf.x, lf.lines, err, lf.ok & np.isfinite(lf.x), live, fn, xorder=s.xorder,
                        forder=s.forder, own_order=s.own_order, min_lines=s.min_lines, clip=s.clip,
                        max_iter=s.max_iter, neighbours=s.neighbours)


# ----------------------------------------------------------------------------- driver

def _stack_mean(spec) -> np.ndarray:
    a = np.asarray(spec, dtype=np.float64)
    return a.mean(axis=0) if a.ndim == 3 else a


def _measure_all(arcs, predicted_of, search, s, masks) -> A.LineFits:
    fits_ = []
    for lamp, spec in arcs.items():
        lines = A.lamp_lines(lamp)
        pred = np.stack([predicted_of(lam) for lam in lines], axis=1)
        lf = A.measure_lines(spec, lines, pred, search_px=search, half=s.fit_half, min_snr=s.min_snr,
                             lamp=lamp, mask=masks.get(lamp))
        _reject_blends(lf, s)
        fits_.append(lf)
    return A.concat(fits_)


def _reject_blends(lf: A.LineFits, s: WaveSettings) -> None:
    """A line much wider or narrower than the same line in the other fibers is blended."""
    for j in range(lf.nlines):
        ok = lf.ok[:, j]
        if ok.sum() < 5:
            continue
        loc, scl = biweight(lf.sigma[ok, j])
        off = np.abs(lf.sigma[:, j] - loc)
        lf.ok[:, j] &= ~((off > s.width_tol) & (off > s.width_nsig * scl))


def solve_arcs(arcs: Mapping[str, np.ndarray], settings: WaveSettings | None = None,
               fiber_mask: np.ndarray | None = None, fiber_coord: np.ndarray | None = None,
               guess: np.ndarray | None = None,
               masks: Mapping[str, np.ndarray] | None = None) -> WaveSolution:
    """The wavelength solution of one amp from its extracted arc spectra.

    arcs: lamp name (OBJECT: ``hg``, ``cd-a``; another name uses every line) -> (112, 1032)
    electrons, or a stack (n, 112, 1032) of one lamp's exposures (averaged). fiber_mask: (112,)
    bool, True = dead fiber (kept out of the shape fit, flagged DEAD). fiber_coord: (112,) the
    fibers' position along the slit (e.g. trace y at the centre column) for the across-fiber
    polynomials (default: fiber index). guess: (112, 1032) wavelengths for the identification
    (e.g. last month's solution; default ``settings.guess_poly``). masks: lamp -> (112, 1032)
    bool bad pixels (True = bad).
    """
    s = settings or WaveSettings()
    arcs = {k: _stack_mean(v) for k, v in arcs.items()}
    if not arcs:
        raise HetredError("wavelength: no arc spectra")
    nfib = next(iter(arcs.values())).shape[0]
    masks = dict(masks or {})
    dead = np.zeros(nfib, bool) if fiber_mask is None else np.asarray(fiber_mask, bool).copy()
    live = ~dead
    fn = WF.fiber_coord(fiber_coord, nfib)
    g = A.guess_wavelength(s.guess_poly)[:nfib] if guess is None else np.asarray(guess, float)
    shift, quality = A.rough_shifts(arcs, g, s.max_shift_px, fiber_mask=dead)
    lf = _measure_all(arcs, lambda lam: A.columns_of(g, lam) + shift, s.search_px, s, masks)
    nfound = int(((lf.ok.sum(axis=1) >= s.min_lines) & live).sum())
    if nfound < max(10, s.forder + 2):
        raise HetredError(f"wavelength: only {nfound} live fibers show {s.min_lines} or more arc lines "
                          f"(lamps {', '.join(arcs)}); are these arcs, and is the guess solution right?")
    disp = np.gradient(g, axis=1)
    fit = fit_solution(lf, _at(disp, lf.x), s, live, fn)
    wave = fit.evaluate(NCOLS)
    lf = _measure_all(arcs, lambda lam: A.columns_of(wave, lam), s.search2_px, s, masks)
    disp = np.gradient(wave, axis=1)
    fit = fit_solution(lf, _at(disp, lf.x), s, live, fn)
    wave = fit.evaluate(NCOLS)
    return _solution(wave, lf, fit, dead, fn, s, shift, quality)


def _at(arr: np.ndarray, x: np.ndarray) -> np.ndarray:
    """arr (nfib, 1032) at the nearest columns x (nfib, nlines); NaN x -> column 515."""
    xi = np.clip(np.round(np.nan_to_num(x, nan=XCEN)).astype(int), 0, arr.shape[1] - 1)
    return arr[np.arange(arr.shape[0])[:, None], xi]


def _solution(wave, lf, fit, dead, fn, s, shift, quality) -> WaveSolution:
    nfib = wave.shape[0]
    model = np.full(lf.x.shape, np.nan)
    for f in range(nfib):
        m = np.isfinite(lf.x[f])
        model[f, m] = np.interp(lf.x[f, m], A.XCOLS, wave[f])
    resid = model - lf.lines[None, :]
    used = fit.used
    nlines = used.sum(axis=1)
    rms = np.sqrt(np.nanmean(np.where(used, resid, np.nan) ** 2, axis=1)) if used.any() else np.full(nfib, np.nan)
    disp = _at(np.gradient(wave, axis=1), lf.x)
    fwhm = np.where(lf.ok, lf.sigma * disp * 2.3548200450309493, np.nan)
    lsf = np.array([np.nanmedian(r) if np.isfinite(r).any() else np.nan for r in fwhm])
    flags = np.zeros(nfib, dtype=np.int32)
    flags[dead] |= WaveFlag.DEAD
    flags[~fit.own_zp] |= WaveFlag.FEW_LINES
    flags[np.nan_to_num(rms, nan=0.0) > s.max_rms] |= WaveFlag.HIGH_RMS
    own = fit.own_zp & ~dead
    if own.sum() >= 3:      # the local trend of the other fibers: a steep but smooth edge is no outlier
        trend = WF.local_trend(fn, fit.zp, own, s.neighbours, exclude_self=True)
        flags[np.abs(fit.zp - np.nan_to_num(trend, nan=fit.zp)) > s.zp_tol] |= WaveFlag.ZP_OUTLIER
    flags[np.any(np.diff(wave, axis=1) <= 0, axis=1)] |= WaveFlag.NONMONOTONIC
    meta = {"settings": asdict(s), "rough_shift_px": shift.tolist(), "rough_quality": quality.tolist(),
            "nused": int(used.sum()), "lamps": sorted(set(lf.lamp)), "own_order": fit.order.tolist()}
    return WaveSolution(wavelength=wave.astype(np.float32), rms=rms.astype(np.float32),
                        nlines=nlines.astype(np.int16), zero_point=fit.zp, lsf_fwhm=lsf.astype(np.float32),
                        flags=flags, lines=lf.lines.copy(), line_x=lf.x, line_resid=resid.astype(np.float32),
                        line_used=used, line_snr=lf.snr, meta=meta)


# ----------------------------------------------------------------------------- combine (getwavo.f)

def combine_solutions(solutions: Sequence[WaveSolution | np.ndarray]) -> WaveSolution:
    """Biweight per fiber and column of several exposures' (or nights') solutions (getwavo.f),
    after aligning their amp-wide offsets.

    Each solution's offset d_i is the median over the amp of its difference from the per-pixel
    median of all solutions; the biweight per pixel is taken of the solutions minus their d_i,
    and the biweight of the d_i is added back. Nights whose wavelengths differ by a shift
    (thermal, ~0.1-0.4 A) would otherwise form clusters in every pixel's biweight, whose
    outermost one sits near the rejection limit: small per-exposure differences would then move
    the library by several times their size, differently in every pixel.

    Returns a WaveSolution whose ``wavelength`` is that location, ``scatter`` the biweight scale
    (A) per pixel about the aligned solutions, ``nexp`` the number combined; ``rms`` is the
    median scatter of each fiber, ``flags`` the OR of flags set in at least half of the inputs,
    ``zero_point`` and ``lsf_fwhm`` medians; ``meta['offsets']`` the d_i (A). Line tables are
    not carried over.
    """
    sols = [s if isinstance(s, WaveSolution) else _bare(np.asarray(s)) for s in solutions]
    if not sols:
        raise HetredError("combine_solutions: nothing to combine")
    stack = np.stack([s.wavelength.astype(np.float64) for s in sols])
    ref = np.median(stack, axis=0)
    offsets = np.median((stack - ref).reshape(len(sols), -1), axis=1)
    loc, scl = biweight((stack - ref - offsets[:, None, None]).astype(np.float32), axis=0)
    n = len(sols)
    off = float(biweight(offsets)[0]) if n > 2 else float(np.mean(offsets))
    wave = ref + loc.astype(np.float64) + off
    scatter = np.where(scl < 0, 0.0, scl).astype(np.float32) if n > 1 else np.zeros_like(loc)
    votes = np.zeros(wave.shape[0], dtype=np.int32)
    for bit in WaveFlag:
        cnt = sum(((s.flags & bit) > 0).astype(int) for s in sols)
        votes |= np.where(2 * cnt >= n, int(bit), 0).astype(np.int32)
    zp = np.median(np.stack([s.zero_point for s in sols]), axis=0)
    lsf_all = np.stack([s.lsf_fwhm for s in sols]).astype(float)
    lsf = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan for c in lsf_all.T])
    return WaveSolution(wavelength=wave.astype(np.float32), rms=np.median(scatter, axis=1),
                        nlines=np.zeros(wave.shape[0], np.int16), zero_point=zp, lsf_fwhm=lsf,
                        flags=votes, scatter=scatter, nexp=n,
                        meta={"combined": n, "offsets": [round(float(o), 5) for o in offsets]})


def _bare(wave: np.ndarray) -> WaveSolution:
    nfib = wave.shape[0]
    return WaveSolution(wavelength=wave.astype(np.float32), rms=np.zeros(nfib, np.float32),
                        nlines=np.zeros(nfib, np.int16), zero_point=np.zeros(nfib),
                        lsf_fwhm=np.full(nfib, np.nan, np.float32), flags=np.zeros(nfib, np.int32))
