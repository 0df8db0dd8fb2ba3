"""Pure array steps of the pixel flat (imar_flt, imcmb): the smooth fiber model of a frame, the
ratio frame / model near the traces, the per-pixel combination in bands, the row trend.
"""
from __future__ import annotations

import os
import tempfile
from functools import lru_cache

import numpy as np
from scipy import ndimage

from hetred.errors import WriteError
from hetred.flat.settings import F32, FlatSettings
from hetred.io.framestack import stack_description
from hetred.stats import biweight
from hetred.virus import amp as ampgeom


def smooth_spectra(spectra: np.ndarray, neighbours: int = 4, smooth_cols: int = 41,
                   template: bool = True, trend_cols: int = 101) -> np.ndarray:
    """Spectra without pixel-scale structure along the columns.

    Karl divides the frame by the model of the spectra as extracted; a defect wider than a
    fiber's profile (a low box, a bad column) then lowers the extracted flux itself and
    cancels in the ratio.  Here the spectra are made smooth, so that the defects stay in the
    ratio.  spectra: (nfib, ncol) extracted e- per column; returns the same shape (float64).

    ``template=True`` (twilights, :func:`_smooth_twilight`): each fiber's ratio to the median
    shape of its ``neighbours`` fibers on each side, running median over ``smooth_cols``, times
    that shape; the shape keeps every real spectral feature shared by neighbouring fibers (solar
    lines), so a bad column, which dims every fiber like a line, cancels too.

    ``template=False`` (lamp flats, :func:`_smooth_lamp`): lamp flats have no lines, so the
    shape is made smooth as well and bad columns stay in the flat.
    """
    if template:
        return _smooth_twilight(spectra, neighbours, smooth_cols)
    return _smooth_lamp(spectra, smooth_cols, trend_cols)


def _smooth_twilight(spectra: np.ndarray, neighbours: int, smooth_cols: int) -> np.ndarray:
    s = np.asarray(spectra, dtype=np.float64)
    nfib = s.shape[0]
    med = np.median(s, axis=1, keepdims=True)
    ok = (med[:, 0] > 0) & np.isfinite(med[:, 0])
    t = np.where(ok[:, None], s / np.where(med > 0, med, 1.0), np.nan)
    out = s.copy()
    for f in range(nfib):
        if not ok[f]:
            continue
        nb = [g for g in range(max(0, f - neighbours), min(nfib, f + neighbours + 1)) if g != f and ok[g]]
        if len(nb) < 2:
            continue
        shape = np.nanmedian(t[nb], axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(shape > 0, s[f] / shape, np.nan)
        good = np.isfinite(r)
        if good.sum() < smooth_cols:
            continue
        rf = np.interp(np.arange(len(r)), np.nonzero(good)[0], r[good])
        rs = ndimage.median_filter(rf, size=smooth_cols, mode="nearest")
        out[f] = np.where(shape > 0, rs * shape, s[f])
    return out


SHAPE_COLS = 21      #: columns of the local quadratic that smooths the lamp's mean shape
CLIP_SIGMA = 4.0     #: robust sigma beyond which a column is left out of a smooth fit


@lru_cache(maxsize=8)
def _quadratic_weights(window: int) -> tuple[np.ndarray, np.ndarray]:
    """(design matrix (window, 3) in offsets -m..m, its pseudo-inverse (3, window))."""
    m = window // 2
    a = np.vander(np.arange(-m, m + 1, dtype=np.float64), 3, increasing=True)
    return a, np.linalg.pinv(a)


def local_quadratic(y: np.ndarray, window: int) -> np.ndarray:
    """Least-squares quadratic over ``window`` (odd) samples centred on each sample, along the
    last axis (a Savitzky-Golay smoothing); within window // 2 of the ends, the quadratic of the
    first or last ``window`` samples."""
    y = np.asarray(y, dtype=np.float64)
    m = window // 2
    a, p = _quadratic_weights(window)
    out = ndimage.correlate1d(y, p[0], axis=-1, mode="nearest")
    out[..., :m] = (y[..., :window] @ p.T) @ a[:m].T
    out[..., -m:] = (y[..., -window:] @ p.T) @ a[-m:].T
    return out


def robust_quadratic(y: np.ndarray, window: int, clip: float = CLIP_SIGMA, niter: int = 3) -> np.ndarray:
    """:func:`local_quadratic` smoothing of ``y`` (along the last axis) over ``window`` columns,
    with the columns farther than ``clip`` robust sigma (per row) from the fit replaced by the
    fit and refitted ``niter`` times (single-column defects, cosmic rays).  Unlike a running
    median it follows a steep or curved spectrum without bias and averages the noise."""
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[-1]
    w = min(window, n - (1 - n % 2))
    if w < 5:
        return y.copy()
    size = (1,) * (y.ndim - 1) + (5,)
    fit = local_quadratic(ndimage.median_filter(y, size=size, mode="nearest"), w)
    for _ in range(niter):
        res = y - fit
        sig = 1.4826 * np.median(np.abs(res - np.median(res, axis=-1, keepdims=True)), axis=-1, keepdims=True)
        fit = local_quadratic(np.where(np.abs(res) > clip * np.maximum(sig, 1e-12), fit, y), w)
    return fit


def _smooth_lamp(spectra: np.ndarray, smooth_cols: int, trend_cols: int) -> np.ndarray:
    """Lamp-flat spectra as (the lamp's shape) x (a smooth factor per fiber).

    The shape is the median over the fibers of their spectra / their median, smoothed by
    :func:`robust_quadratic` over SHAPE_COLS columns (a bad column, a cosmic ray and the pixel
    flat's imprint, ~0.5 % per column and fiber, averaged out).  A fiber's factor is its
    spectrum / shape: smooth, because the fibers differ only by throughput and a wavelength
    offset of a pixel or two; its running median over ``smooth_cols`` (robust to a defect box
    up to smooth_cols / 2 wide) marks the columns farther than CLIP_SIGMA robust sigma from it,
    which are replaced by it, and a local quadratic over ``trend_cols`` columns smooths the rest.
    A running median of the spectrum itself does not smooth where the lamp spectrum is steep
    (its blue end rises ~1 % a column, more than the noise, so the median is the column's own
    value with its pixel-flat imprint) and is pulled by a box there (measured on the simulator:
    0.24 % rms flat error without noise, a 16 % box recovered as 7 %).
    """
    s = np.asarray(spectra, dtype=np.float64)
    out = s.copy()
    s = np.where(np.isfinite(s), s, 0.0)          # a column without flux is clipped below
    med = np.median(s, axis=1)
    ok = med > 0
    if ok.sum() < 3 or s.shape[1] < smooth_cols:
        return out
    shape = robust_quadratic(np.median(s[ok] / med[ok, None], axis=0), SHAPE_COLS)
    if not (shape > 0).all():
        return out
    r = s[ok] / shape
    rm = ndimage.median_filter(r, size=(1, smooth_cols), mode="nearest")
    dev = r - rm
    sig = 1.4826 * np.median(np.abs(dev), axis=1, keepdims=True)
    clean = np.where(np.abs(dev) > CLIP_SIGMA * np.maximum(sig, 1e-12), rm, r)
    out[ok] = robust_quadratic(clean, trend_cols) * shape
    return out


def trace_distance(trace: np.ndarray, nrow: int = ampgeom.NROWS) -> tuple[np.ndarray, np.ndarray]:
    """(nrow, ncol) distance (px) of every pixel centre from the nearest trace, and the index
    of that trace (int16; traces increase with fiber index)."""
    tr = np.asarray(trace, dtype=np.float64)
    ncol = tr.shape[1]
    rows = np.arange(nrow, dtype=np.float64)
    out = np.empty((nrow, ncol), dtype=F32)
    idx = np.empty((nrow, ncol), dtype=np.int16)
    for c in range(ncol):
        t = tr[:, c]
        i = np.clip(np.searchsorted(t, rows), 1, len(t) - 1)
        lo, hi = np.abs(rows - t[i - 1]), np.abs(rows - t[i])
        out[:, c] = np.minimum(lo, hi)
        idx[:, c] = np.where(lo <= hi, i - 1, i)
    return out, idx


def flat_ratio(image: np.ndarray, read_noise: float = 3.0, settings: FlatSettings | None = None,
               reference=None, kind: str = "flt") -> tuple[np.ndarray, dict]:
    """imar_flt on one reduced frame: frame / fiber model within rcut px of a trace, else 1.

    image: (1032, 1032) oriented e-; kind: ``flt`` or ``twi`` (see :func:`smooth_spectra`).
    Pixels whose nearest trace is a dead fiber are set to 1 (too faint to measure).  reference: the ``calibration`` of an earlier frame of
    the unit, or None.  With a reference the frame's traces are the reference's moved by the
    frame's measured cross-dispersion shift and the reference's profile is reused (one
    extraction, ~1 s); without one, or when the shift exceeds ``max_shift`` px, the full
    :func:`~hetred.fibers.profile.calibrate_frame` runs (~7-10 s).  Returns (ratio float32,
    info) with ``calibration`` (the full one, or the reference), ``trace``, ``shift``,
    ``distance`` and ``model``."""
    from hetred.fibers import trace as T
    from hetred.fibers.extract import extract, model_image
    from hetred.fibers.profile import calibrate_frame

    s = settings or FlatSettings()
    shift = 0.0
    if reference is not None:
        live = ~reference.trace.dead
        shift = T.measure_trace_shift(image, reference.trace.trace, exclude=~live)
    if reference is None or not abs(shift) <= s.max_shift:
        cal = calibrate_frame(image, None, read_noise=read_noise)
        trace, prof, spectra, shift = cal.trace.trace, cal.profile, cal.extraction.spectra, 0.0
    else:
        cal = reference
        trace = np.asarray(reference.trace.trace, dtype=F32) + F32(shift)
        prof = reference.profile
        spectra = extract(image, trace, prof, read_noise=read_noise).spectra
    spec = smooth_spectra(spectra, s.neighbours, s.smooth_cols, template=(kind != "flt"),
                          trend_cols=s.trend_cols)
    model = model_image(spec, trace, prof, image.shape[0])
    dist, nearest = trace_distance(trace, image.shape[0])
    live = ~np.asarray(cal.trace.dead, dtype=bool)[nearest]
    # a fiber-column without a flux (masked core: spectra 0) leaves only the neighbours' wings in
    # the model there: pixels whose model is below 2 % of the column's brightest are not measured
    lit = model > F32(0.02) * np.max(model, axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((dist <= s.rcut) & live & lit & (model > 0), image / model, F32(1.0)).astype(F32)
    ratio[~np.isfinite(ratio)] = 1.0
    return ratio, {"calibration": cal, "trace": trace, "shift": shift, "distance": dist, "model": model}


class RatioStack:
    """float32 (1032, 1032) images in an unlinked temporary file; combined in row bands."""

    def __init__(self, tmpdir: str | None = None, shape=(ampgeom.NROWS, ampgeom.NCOLS)) -> None:
        self._where = stack_description(tmpdir)
        try:
            self._f = tempfile.TemporaryFile(prefix="hetred-flat-", dir=tmpdir)
        except OSError as err:
            raise WriteError(self._where, err) from None
        self.shape = tuple(shape)
        self.n = 0

    def __enter__(self) -> "RatioStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def add(self, image: np.ndarray) -> None:
        try:
            self._f.write(np.ascontiguousarray(image, dtype=F32).tobytes())
            self._f.flush()
        except OSError as err:
            raise WriteError(self._where, err) from None
        self.n += 1

    def combine(self, band_mib: float = 64.0) -> np.ndarray:
        """Per-pixel biweight location (Karl's biwgt, imcmb) over the images."""
        self._f.flush()
        nrow, ncol = self.shape
        fb = nrow * ncol * 4
        step = max(1, min(nrow, int(band_mib * 2**20 // max(1, self.n * ncol * 4))))
        out = np.empty((nrow, ncol), dtype=F32)
        fd = self._f.fileno()
        for r0 in range(0, nrow, step):
            r1 = min(nrow, r0 + step)
            nb = (r1 - r0) * ncol * 4
            band = np.empty((self.n, r1 - r0, ncol), dtype=F32)
            for k in range(self.n):
                buf = os.pread(fd, nb, k * fb + r0 * ncol * 4)
                band[k] = np.frombuffer(buf, dtype=F32).reshape(r1 - r0, ncol)
            out[r0:r1] = biweight(band, axis=0)[0]
        return out


def remove_row_trend(flat: np.ndarray, near: np.ndarray, width: int = 101, clip: float = 0.05) -> np.ndarray:
    """Divide every row of the combined ratio by its clipped running mean along the columns.

    flat: (1032, 1032) combined ratio (1 beyond ``rcut`` of a trace); near: bool, the pixels
    within ``rcut``. A row runs along a fiber at a nearly constant offset from its trace, so an
    error of the fiber profile at that offset (a few % in the wings when the profile of the
    unit's reference frame is not exact there) is a smooth factor along the row; the pixel
    flat is the pixel-to-pixel response, and structure wider than ``width`` columns is left to
    the fiber-to-fiber (smoothed over 50 Å, ~25 columns). Two passes: the running mean of the
    near pixels, then again without the pixels more than ``clip`` from it (defects). Near the
    ends of a row the window is cut at the frame edge (the mean of the pixels in the frame;
    repeating the edge pixel instead would divide the first and last ~50 columns by their
    edge pixel's own noise). Rows with fewer than ``width // 4`` near pixels in the window are
    left alone. Returns float32.
    """
    from scipy.ndimage import uniform_filter1d

    f = np.asarray(flat, dtype=np.float64)
    use = np.asarray(near, bool).copy()
    mean = np.ones_like(f)
    for _ in range(2):
        num = uniform_filter1d(np.where(use, f, 0.0), width, axis=1, mode="constant")
        den = uniform_filter1d(use.astype(np.float64), width, axis=1, mode="constant")
        ok = den * width >= width // 4
        mean = np.where(ok, num / np.maximum(den, 1e-12), 1.0)
        use = near & (np.abs(f - mean) <= clip)
    return np.where(near, f / mean, 1.0).astype(F32)
