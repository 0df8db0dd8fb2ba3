"""Pure array steps of the pixel flat (imar_flt, imcmb): the smooth fiber model of a frame, the
ratio frame / model near the traces, the per-pixel combination in bands, the row trend.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
from scipy import ndimage

from hetred.errors import WriteError
from hetred.flat.settings import F32, FlatSettings
from hetred.io.framestack import stack_description
from hetred.stats import biweight
from hetred.virus import amp as ampgeom


def smooth_spectra(spectra: np.ndarray, neighbours: int = 4, smooth_cols: int = 41,
                   template: bool = True) -> np.ndarray:
    """Spectra without pixel-scale structure along the columns.

    Karl divides the frame by the model of the spectra as extracted; a defect wider than a
    fiber's profile (a low box, a bad column) then lowers the extracted flux itself and
    cancels in the ratio.  Here each fiber's spectrum is written as (its ratio to the median
    shape of its ``neighbours`` fibers on each side) x (that shape), and the ratio is replaced
    by its running median over ``smooth_cols`` columns.  The shape keeps every real spectral
    feature shared by neighbouring fibers (solar lines of a twilight); the running median
    removes what belongs to one or two fibers over fewer than ~smooth_cols/2 columns.

    A bad column dims every fiber at that column, like a spectral line, so with the template it
    stays in the spectra and cancels in the ratio.  Lamp flats have no such lines: with
    ``template=False`` (used for ``flt``) the spectrum itself is replaced by its running median,
    which keeps bad columns in the flat.
    """
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
        if template and len(nb) < 2:
            continue
        shape = np.nanmedian(t[nb], axis=0) if template else np.ones(s.shape[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(shape > 0, s[f] / shape, np.nan)
        good = np.isfinite(r)
        if good.sum() < smooth_cols:
            continue
        rf = np.interp(np.arange(len(r)), np.nonzero(good)[0], r[good])
        rs = ndimage.median_filter(rf, size=smooth_cols, mode="nearest")
        out[f] = np.where(shape > 0, rs * shape, s[f])
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
    spec = smooth_spectra(spectra, s.neighbours, s.smooth_cols, template=(kind != "flt"))
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
    near pixels, then again without the pixels more than ``clip`` from it (defects). Rows
    with fewer than ``width // 4`` near pixels in the window are left alone. Returns float32.
    """
    from scipy.ndimage import uniform_filter1d

    f = np.asarray(flat, dtype=np.float64)
    use = np.asarray(near, bool).copy()
    mean = np.ones_like(f)
    for _ in range(2):
        num = uniform_filter1d(np.where(use, f, 0.0), width, axis=1, mode="nearest")
        den = uniform_filter1d(use.astype(np.float64), width, axis=1, mode="nearest")
        ok = den * width >= width // 4
        mean = np.where(ok, num / np.maximum(den, 1e-12), 1.0)
        use = near & (np.abs(f - mean) <= clip)
    return np.where(near, f / mean, 1.0).astype(F32)
