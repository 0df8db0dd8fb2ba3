"""Per-amp science reduction after the detector steps: trace shift, extraction and masking.

Karl's vred.f in science mode (iuse = 1), step by step (rows/columns 1-based in his words):

1. the detector steps (overscan, master bias, pixel flat, background blend by level, gain,
   orientation, masks): :func:`hetred.ccd.reduce.reduce_amp`, the one per-amp reduction that the
   twilight calibration uses too (vred reduces every frame type with the same code).
2. :func:`extract_amp` -- one cross-dispersion shift of the library trace measured on the frame
   (:func:`hetred.fibers.trace.measure_trace_shift`); extraction with the library profiles (the
   twical kernel :mod:`hetred.fibers.extract`: pass 1 with the variance from the data, pass 2 with
   the variance from the model of pass 1 plus the subtracted background); chi^2 per fiber and
   column from pass 2; fiber columns with chi^2 > ``chi2_cut`` (10) masked together with
   ``chi2_grow`` (1) columns on either side (vred extract: cosmic rays); then a pass that masks
   single pixels more than ``reject_sigma`` above the model and refits (cosmic-ray pixels below
   the chi^2 cut); masked fiber columns get spectrum 0 and error 0.
3. :func:`error_frame` -- the 2-D error (Karl's geterror): sqrt(read noise^2 + flat x (model +
   background)) / flat from the final model, 0 on masked pixels.

Arrays: oriented frame (1032, 1032) rows x columns, e-; fiber arrays (112, 1032).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred._ext import extract as K
from hetred._ext import scikern as SK
from hetred.ccd.reduce import ReducedAmp
from hetred.errors import HetredError
from hetred.fibers import extract as E
from hetred.fibers.profile import HALF_WIN
from hetred.fibers.trace import CENTROID_HALF
from hetred.sci.settings import SciSettings
from hetred.stats import biweight

F32 = np.float32


@dataclass
class AmpExtraction:
    """Result of :func:`extract_amp` (fiber arrays (112, 1032) float32 unless noted)."""

    trace: np.ndarray            #: rows: library trace + shift
    shift: float                 #: px, measured trace shift (frame - library)
    spectra: np.ndarray          #: e- per column, 0 where masked
    error: np.ndarray            #: e-, 0 where masked
    chi2: np.ndarray             #: reduced chi^2 of the core pixels (pass 2, before masking)
    rms: np.ndarray              #: e-, rms of data - model over the rows within 4 px of the trace
    masked: np.ndarray           #: (112, 1032) bool: fiber column masked (chi^2, pixels, dead)
    pixel_mask: np.ndarray       #: (1032, 1032) bool: masked pixels: input, rejected, cores of masked columns
    model: np.ndarray            #: (1032, 1032) float32 e-: fitted fiber light (masked columns included)
    columns: object = None       #: the :class:`ColumnFit` (for projecting models)
    n_chi2: int = 0              #: fiber columns over the chi^2 cut
    n_rejected: int = 0          #: pixels rejected by the last pass


def _grow(flags: np.ndarray, n: int) -> np.ndarray:
    out = flags.copy()
    for k in range(1, n + 1):
        out[:, k:] |= flags[:, :-k]
        out[:, :-k] |= flags[:, k:]
    return out


RMS_HALF = 4          #: vred: rms over rows nint(trace) +- 4 (jhalf)
SHIFT_TOL = 1e-3      #: px: the trace-shift iteration stops when a step is smaller


def profile_weights(profile, trace: np.ndarray, transposed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``profile.weights(trace)`` (r0 (112, 1032) int32, w (112, 1032, 15) float32) through the
    faster kernel :func:`hetred._ext.scikern.profile_weights` (same numbers); ``transposed``:
    r0 (1032, 112) and w (1032, 112, 15), the extraction kernel's layout."""
    tr = np.ascontiguousarray(trace, dtype=np.float64)
    j, fc = profile.knot_fractions(tr.shape[1])
    try:
        return SK.profile_weights(np.ascontiguousarray(profile.values, dtype=F32), j, fc,
                                  float(profile.offsets[0]), profile.step, tr, HALF_WIN, transposed)
    except ValueError:                  # a node step whose inverse is not an integer
        r0, w = profile.weights(trace)
        if transposed:
            return np.ascontiguousarray(r0.T), np.ascontiguousarray(np.moveaxis(w, 1, 0))
        return r0, w


def measure_shift(image: np.ndarray, trace: np.ndarray, *, mask: np.ndarray | None = None,
                  exclude: np.ndarray | None = None, half: float = CENTROID_HALF, n_iter: int = 6,
                  tol: float = 1e-4) -> float:
    """One cross-dispersion shift (px, frame - trace): :func:`hetred.fibers.trace.measure_trace_shift`
    with its inner loop in the Cython kernel :func:`hetred._ext.scikern.shift_moments` (same
    iteration: per fiber the light centroid within +-``half`` px of trace + s, s = the biweight
    of the fibers' centroids, until it moves by less than ``tol`` px)."""
    img = np.asarray(image, dtype=F32)
    if mask is not None:
        img = np.where(np.asarray(mask, bool), F32(0.0), img)
    if not np.isfinite(img).all():
        img = np.nan_to_num(img)
    img = np.ascontiguousarray(img, dtype=F32)
    tr = np.ascontiguousarray(trace, dtype=F32)
    keep = np.ones(tr.shape[0], bool) if exclude is None else ~np.asarray(exclude, bool)
    s = 0.0
    for _ in range(n_iter):
        tot, mom = SK.shift_moments(img, tr, s, float(half))
        good = keep & (tot > 0)
        if not good.any():
            return 0.0
        s_new = float(biweight((mom[good] / tot[good]).astype(F32))[0])
        if abs(s_new - s) < tol:
            s = s_new
            break
        s = s_new
    return s


class ColumnFit:
    """The extraction kernel (:func:`hetred._ext.extract.extract_columns`) with every input kept
    in its column-major layout for the whole amp: image, mask, background and flat transposed
    once, variances and models computed in that layout (no transposes between passes).

    r0T (1032, 112) int32, wT (1032, 112, 15) float32 and traceT (1032, 112) float32 are the
    transposed window starts, weights and trace; the rest as in :class:`ReducedAmp`.
    """

    def __init__(self, red: ReducedAmp, r0T: np.ndarray, wT: np.ndarray, traceT: np.ndarray) -> None:
        self.nrow = red.image.shape[0]
        self.imgT = np.ascontiguousarray(red.image.T)
        self.maskT = np.ascontiguousarray(red.mask.T).view(np.uint8)
        self.backT = np.ascontiguousarray(red.background.T)
        self.flT = np.ascontiguousarray(red.flat.T)
        with np.errstate(divide="ignore"):
            self.ifl2T = np.where(self.flT > 0, F32(1.0) / (self.flT * self.flT), F32(0.0)).astype(F32)
        self.rn2 = F32(red.read_noise ** 2)
        self.r0T, self.wT, self.trT = r0T, wT, traceT

    def variance(self, lightT: np.ndarray) -> np.ndarray:
        """(ncol, nrow) e-^2 of flat-divided pixels expecting ``lightT`` e- of fiber light plus
        the background: (rn^2 + max(light + background, 0) x flat) / flat^2 (0 where flat <= 0),
        :func:`hetred.fibers.extract.pixel_variance` in the column-major layout."""
        v = lightT + self.backT
        np.maximum(v, F32(0.0), out=v)
        v *= self.flT
        v += self.rn2
        v *= self.ifl2T
        return v

    def fit(self, varT: np.ndarray, maskT: np.ndarray | None = None, cols: np.ndarray | None = None):
        """(spectra, error, chi2, ncore) of every fiber at the columns ``cols`` (all: None)."""
        m = self.maskT if maskT is None else maskT
        if cols is None:
            return K.extract_columns(self.imgT, varT, m, self.r0T, self.wT, self.trT, float(E.CORE_HALF))
        c = np.ascontiguousarray
        return K.extract_columns(c(self.imgT[cols]), c(varT[cols]), c(m[cols]), c(self.r0T[cols]),
                                 c(self.wT[cols]), c(self.trT[cols]), float(E.CORE_HALF))

    def modelT(self, spectra: np.ndarray) -> np.ndarray:
        """(ncol, nrow) float32: ``spectra`` (112, 1032) e- through the pixel weights."""
        return K.model_columns(self.r0T, self.wT, np.ascontiguousarray(spectra, dtype=F32), self.nrow)

    def model(self, spectra: np.ndarray) -> np.ndarray:
        """The same in the natural layout (nrow, ncol)."""
        return np.ascontiguousarray(self.modelT(spectra).T)


def extract_amp(red: ReducedAmp, cal, settings: SciSettings) -> AmpExtraction:
    """Step 2 (module docstring). ``cal``: :class:`hetred.sci.calibration.AmpCalibration`."""
    img = red.image
    dead = np.asarray(cal.dead, bool)
    shift = measure_shift(img, cal.trace, exclude=dead, tol=SHIFT_TOL)   # masked pixels are 0 already
    if not np.isfinite(shift) or abs(shift) > settings.shift_max:
        raise HetredError(f"trace shift {shift:+.2f} px against the {cal.month} library is beyond "
                          f"{settings.shift_max} px (wrong calibration month?)")
    trace = (cal.trace + F32(shift)).astype(F32)
    r0T, wT = profile_weights(cal.profile, trace, transposed=True)
    cf = ColumnFit(red, r0T, wT, np.ascontiguousarray(trace.T))
    spec, err, chi2, ncore = cf.fit(cf.variance(np.maximum(cf.imgT, F32(0.0))))   # pass 1: data
    varT = cf.variance(cf.modelT(spec))                                           # pass 2: model
    spec, err, chi2, ncore = cf.fit(varT)
    over = chi2 > F32(settings.chi2_cut)
    n_chi2 = int(np.count_nonzero(over))
    masked = _grow(over | (ncore == 0) | dead[:, None], settings.chi2_grow)
    n_rej = 0
    maskT = cf.maskT.copy()
    if settings.reject_sigma > 0:                    # pass 3: single high pixels, refit their columns
        dT = cf.imgT - cf.modelT(np.where(masked, F32(0.0), spec))
        hitT = (dT > 0) & (dT * dT > F32(settings.reject_sigma ** 2) * varT) & (varT > 0) & (maskT == 0)
        n_rej = int(np.count_nonzero(hitT))
        if n_rej:
            maskT |= hitT.view(np.uint8)
            sel = np.nonzero(hitT.any(axis=1))[0]
            spec2, err2, _, ncore2 = cf.fit(varT, maskT, sel)
            keep = ~masked[:, sel]
            spec[:, sel] = np.where(keep, spec2, spec[:, sel])
            err[:, sel] = np.where(keep, err2, err[:, sel])
            masked[:, sel] |= ncore2 == 0
    modelT = cf.modelT(np.where(dead[:, None], F32(0.0), spec))     # masked columns keep their fit
    model = np.ascontiguousarray(modelT.T)
    rms = SK.window_rms(np.ascontiguousarray((cf.imgT - modelT).T), trace, RMS_HALF)
    spec = np.where(masked, F32(0.0), spec).astype(F32)
    err = np.where(masked, F32(0.0), err).astype(F32)
    rms[masked] = 0.0
    bad = maskT.view(bool).T | core_pixels(trace, masked, img.shape)
    return AmpExtraction(trace, float(shift), spec, err, chi2.astype(F32), rms, masked, bad, model,
                         cf, n_chi2, n_rej)


def core_pixels(trace: np.ndarray, flags: np.ndarray, shape: tuple[int, int], half: int = 3) -> np.ndarray:
    """(nrow, ncol) bool: the pixels within ``half`` rows of nint(trace) of every flagged fiber
    column (vred: a masked fiber column zeroes its pixels in clean_image and the error frame)."""
    out = np.zeros(shape, bool)
    f, x = np.nonzero(flags)
    if f.size:
        rows = np.rint(trace[f, x]).astype(np.int64)[:, None] + np.arange(-half, half + 1)
        ok = (rows >= 0) & (rows < shape[0])
        out[rows[ok], np.broadcast_to(x[:, None], rows.shape)[ok]] = True
    return out


def error_frame(model: np.ndarray, background: np.ndarray, flat: np.ndarray, read_noise: float,
                mask: np.ndarray) -> np.ndarray:
    """Step 3: (1032, 1032) float32 e-, sqrt(rn^2 + max(flat (model + background), 0)) / flat,
    0 where ``mask`` or flat <= 0 (Karl's geterror with the full model and the header read
    noise instead of his fixed 3 e-)."""
    fl = np.asarray(flat, F32)
    v = np.maximum((model + background) * fl, F32(0.0)) + F32(read_noise * read_noise)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.sqrt(v) / fl
    err[mask | ~(fl > 0)] = 0.0
    return err.astype(F32)


def project(ext: AmpExtraction, spectra: np.ndarray) -> np.ndarray:
    """(1032, 1032) float32: fiber spectra (112, 1032) e- projected through the profiles at the
    frame's trace (vred subtract: the 2-D sky model)."""
    return ext.columns.model(spectra)
