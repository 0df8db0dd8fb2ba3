"""Per-amp science reduction: the detector steps, then trace shift, extraction and masking.

Karl's vred.f in science mode (iuse = 1), step by step (rows/columns 1-based in his words):

1. :func:`reduce_image` -- overscan = biweight of raw columns 1034-1060, rows 10-1032;
   frame = raw - overscan - master bias of the controller (raw orientation); divided by the pixel
   flat where the flat is above ``flat_min`` (0.666), else 0 (masked); level ``xbn`` = biweight of
   rows/columns 300-700 / 25; the background models of the month (sci, bri, twi made at levels
   1, 5, 25) blended by linear interpolation of ``xbn`` in (1, 5, 25) (``xlinint``: below 1 the
   sci model alone, above 25 the twi model alone) and ``xbn x`` the blend subtracted from every
   unmasked pixel; x GAIN -> electrons; oriented (LU, RL rotated; AMPNAME LR/UL mirrored).
   Masked as well: zero pixels of the master bias (charge traps), saturated raw pixels and the
   boxes of ``pix_mask.tab`` for the amp (Karl's getpdefect).
2. :func:`extract_amp` -- one cross-dispersion shift of the library trace measured on the frame
   (:func:`hetred.calib.trace.measure_trace_shift`); extraction with the library profiles (the
   twical kernel :mod:`hetred.calib.extract`: pass 1 with the variance from the data, pass 2 with
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

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred._ext import boxfilter as BF
from hetred._ext import extract as K
from hetred._ext import scikern as SK
from hetred.calib import extract as E
from hetred.calib.profile import HALF_WIN
from hetred.calib.trace import CENTROID_HALF
from hetred.errors import HetredError
from hetred.io.raw import RawAmp
from hetred.layout import Layout
from hetred.sci.settings import SciSettings
from hetred.stats import biweight
from hetred.virus import amp as ampgeom

F32 = np.float32
XNORM = 25.0                                  #: vred: xnorm
BACK_LEVELS = (1.0, 5.0, 25.0)                #: vred: xback, levels of the sci, bri, twi models
BACK_KINDS = ("sci", "bri", "twi")
LEVEL_REGION = slice(299, 700)                #: vred: rows and columns 300-700 (1-based)
SATURATED = 65535


@lru_cache(maxsize=48)
def _read_image(path: str, mtime_ns: int) -> np.ndarray:
    try:
        data = np.ascontiguousarray(fits.getdata(path, memmap=False), dtype=F32)
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise HetredError(f"{path} is unreadable ({err.__class__.__name__}: {err})") from None
    if data.shape != (ampgeom.NROWS, ampgeom.NCOLS):
        raise HetredError(f"{path}: image shape {data.shape}, expected (1032, 1032)")
    data.setflags(write=False)
    return data


def read_image(path: Path) -> np.ndarray:
    """A 1032 x 1032 calibration image (read once per process and file version), read-only."""
    return _read_image(str(path), path.stat().st_mtime_ns)


def background_weights(xbn: float) -> tuple[float, float, float]:
    """vred's blend of the (sci, bri, twi) models for a frame of level ``xbn`` (xlinint of xbn
    in (1, 5, 25) onto (1, 2, 3), clamped at both ends)."""
    x, y = BACK_LEVELS, (1.0, 2.0, 3.0)
    xib = y[0] if xbn < x[0] else y[-1]
    for j in range(2):
        if x[j] <= xbn < x[j + 1]:
            xib = y[j] + (y[j + 1] - y[j]) * (xbn - x[j]) / (x[j + 1] - x[j])
    if 1.0 <= xib < 2.0:
        return 2.0 - xib, xib - 1.0, 0.0
    return 0.0, 3.0 - xib, xib - 2.0


@dataclass
class ReducedAmp:
    """Result of :func:`reduce_image` (oriented arrays)."""

    image: np.ndarray            #: (1032, 1032) float32 e-, 0 where masked
    mask: np.ndarray             #: (1032, 1032) bool, True = masked pixel
    flat: np.ndarray             #: (1032, 1032) float32 pixel flat, oriented (1 without one)
    flat_orig: np.ndarray        #: (1032, 1032) float32 the same in the raw orientation
    background: np.ndarray       #: (1032, 1032) float32 e-, the background subtracted
    gain: float                  #: e-/ADU (header GAIN)
    read_noise: float            #: e- (header RDNOISE)
    overscan: float              #: ADU
    level: float                 #: vred xbn = central biweight / 25 (ADU, flat-divided)
    notes: dict = field(default_factory=dict)   #: provenance: files used, weights


def reduce_image(layout: Layout, month: str, raw: RawAmp, settings: SciSettings,
                 boxes=()) -> ReducedAmp:
    """Step 1 (module docstring). ``month``: the calibration month (bias, background).
    ``boxes``: :class:`hetred.calib.pixmask.Box` of this amp (oriented, 1-based inclusive).
    Raises :class:`HetredError` naming a missing master bias."""
    from hetred.calib.twical import master_bias_path

    amp, ampname = raw.amp, raw.ampname
    mb_path = master_bias_path(layout, month, raw)
    if not mb_path.exists():
        raise HetredError(f"no master bias {mb_path.relative_to(layout.red)} for {raw.source} "
                          f"(run hetred bias {month})")
    mbias = read_image(mb_path)
    notes: dict = {"masterbias": mb_path.name}
    overscan = float(BF.biweight_uint16(np.ascontiguousarray(ampgeom.overscan_region(raw.data)), 0.0)[0])
    data = ampgeom.trim(raw.data)
    arr = data.astype(F32)
    arr -= F32(overscan)
    arr -= mbias
    fl_path = layout.path("pixelflat", specid=raw.specid, amp=amp)
    if fl_path.exists():
        flat = read_image(fl_path)
        notes["pixelflat"] = fl_path.name
    else:
        flat = np.ones((ampgeom.NROWS, ampgeom.NCOLS), F32)
        notes["pixelflat"] = "none"
    flat_raw = ampgeom.deorient(flat, amp, ampname)
    good = flat_raw > F32(settings.flat_min)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(arr, flat_raw, out=arr, where=good)
    arr[~good] = 0.0
    xb = float(biweight(arr[LEVEL_REGION, LEVEL_REGION])[0])
    xbn = xb / XNORM
    wts = dict(zip(BACK_KINDS, background_weights(xbn)))
    models = {}
    for kind, wt in wts.items():
        if wt > 0:
            p = layout.path("bgmodel", month=month, bgkind=kind, specid=raw.specid, ifuslot=raw.ifuslot, amp=amp)
            if p.exists():
                models[kind] = (wt, read_image(p))
    total = sum(w for w, _ in models.values())
    back = np.zeros_like(arr)
    if models:
        for kind, (wt, m) in models.items():      # weights of missing models go to the others
            back += F32(xbn * wt / total) * m
        notes["background"] = ",".join(f"{k}:{w / total:.3f}" for k, (w, _) in models.items())
    else:
        notes["background"] = "none"
    notes["background_wanted"] = ",".join(f"{k}:{w:.3f}" for k, w in wts.items() if w > 0)
    gain = float(raw.header.get("GAIN", 1.0))
    nonzero = arr != 0
    arr -= back
    arr *= F32(gain)
    arr[~nonzero] = 0.0
    mask = ~good | (mbias == 0) | (data == SATURATED)
    image = np.ascontiguousarray(ampgeom.orient(arr, amp, ampname))
    mask_o = np.ascontiguousarray(ampgeom.orient(mask, amp, ampname))
    for b in boxes:
        mask_o[b.slices()] = True
    image[mask_o] = 0.0
    back *= F32(gain)
    return ReducedAmp(image, mask_o, np.asarray(flat), np.asarray(flat_raw),
                      np.ascontiguousarray(ampgeom.orient(back, amp, ampname)), gain,
                      float(raw.header.get("RDNOISE", 3.0)), overscan, xbn, notes)


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
    """One cross-dispersion shift (px, frame - trace): :func:`hetred.calib.trace.measure_trace_shift`
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
        :func:`hetred.calib.extract.pixel_variance` in the column-major layout."""
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
