"""Fiber extraction: profile-weighted fluxes of all 112 fibers at once, column by column.

Replaces ``extract`` in karlspipe hdr2.1 ``progs/vred.f`` (see docs/stages/twical_trace.md).
Karl fits each fiber alone (``spec = sum d P / sum P^2`` over +-4 px, profile normalised to unit
sum, no weights); here every column is one weighted least-squares problem for all fibers,

    d(y) = sum_f s_f w_f(y) + noise,   var(y) = read_noise^2 + max(model(y), 0),

whose normal matrix is banded because a fiber's window (+-7 rows) overlaps only its
neighbours' windows.  The simultaneous fit gives each fiber its own light where the profiles of
neighbours overlap (about 13 % of the peak at half a pitch) instead of a share of the
neighbour's, and the inverse-variance weights make it the optimal (minimum-variance) unbiased
estimate; the variance comes from the model of the first pass, not from the data, so faint
(sky) fibers are not biased low.  The flux s_f is the fiber's total counts in that column, in
electrons, because the weights w_f sum to 1 over the window (:class:`hetred.fibers.profile.FiberProfile`).

Arrays (oriented frame, 0-based): image (1032, 1032) rows x columns in electrons; trace
(112, 1032) rows; spectra/errors/chi2 (112, 1032).  The kernel is
:func:`hetred._ext.extract.extract_columns` (Cython, nogil); its NumPy reference is
:func:`hetred._ext.reference.extract_reference`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hetred._ext import extract as K

F32 = np.float32
CORE_HALF = 3.0        #: px: pixels within this of the trace make the fiber's core (chi^2)
REJECT_SIGMA = 6.0     #: positive outliers beyond this many sigma are masked (cosmic rays)
REJECT_FRAC = 0.10     #: ... and more than this fraction of the model (profile errors of bright frames are not cosmic rays)
MIN_CORE = 4           #: a fiber-column with fewer usable core pixels (of ~6) is missing: flux 0, error 0


class ProfileLike(Protocol):
    def weights(self, trace: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class Extraction:
    """Result of :func:`extract`; all (112, 1032) except ``mask`` (1032, 1032).

    spectra: e- per fiber and column (total counts of the fiber in that column).
    error: 1-sigma error of ``spectra`` (e-), from the model variance and the full fit.
    chi2: reduced chi^2 of the core pixels (|row - trace| <= core_half) against the model.
    ncore: number of usable core pixels (0: the fiber had no usable pixel; flux 0).
    mask: pixel mask used in the last pass (input mask, non-finite and rejected pixels).
    n_rejected: pixels masked by the outlier rejection.
    """

    spectra: np.ndarray
    error: np.ndarray
    chi2: np.ndarray
    ncore: np.ndarray
    mask: np.ndarray
    n_rejected: int = 0     #: pixels masked by the outlier rejection


def _cf(a, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def extract_weighted(image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None,
                     r0: np.ndarray, w: np.ndarray, trace: np.ndarray,
                     core_half: float = CORE_HALF) -> tuple[np.ndarray, ...]:
    """One pass of the kernel with given pixel weights (natural orientation).

    image, variance: (nrow, ncol) e-, e-^2 (pixels with variance <= 0 are unused); mask: (nrow,
    ncol) nonzero = bad, or None; r0: (nfib, ncol) first window row; w: (nfib, ncol, nwin)
    weights summing to 1 over the window; trace: (nfib, ncol) rows.  Returns (spectra, error,
    chi2, ncore), each (nfib, ncol).
    """
    img = np.asarray(image)
    m = np.zeros(img.shape, dtype=np.uint8) if mask is None else np.asarray(mask).astype(np.uint8)
    return _Columns(img, m, r0, w, trace).run(variance, core_half)


class _Columns:
    """The kernel's column-major copies of everything that does not change between passes."""

    def __init__(self, image, mask, r0, w, trace):
        self.imgT = _cf(np.asarray(image).T, F32)
        self.maskT = _cf(np.asarray(mask).astype(np.uint8).T, np.uint8)
        self.r0T = _cf(np.asarray(r0).T, np.int32)
        self.wT = _cf(np.moveaxis(np.asarray(w), 1, 0), F32)
        self.trT = _cf(np.asarray(trace).T, F32)

    def run(self, variance, core_half: float = CORE_HALF):
        return K.extract_columns(self.imgT, _cf(np.asarray(variance).T, F32), self.maskT, self.r0T,
                                 self.wT, self.trT, float(core_half))

    def model(self, spectra) -> np.ndarray:
        out = K.model_columns(self.r0T, self.wT, _cf(spectra, F32), self.imgT.shape[1])
        return np.ascontiguousarray(out.T)


def model_from_weights(spectra: np.ndarray, r0: np.ndarray, w: np.ndarray, nrow: int = 1032) -> np.ndarray:
    """(nrow, ncol) float32 model: every fiber's flux spread through its pixel weights."""
    out = K.model_columns(_cf(np.asarray(r0).T, np.int32), _cf(np.moveaxis(np.asarray(w), 1, 0), F32),
                          _cf(spectra, F32), int(nrow))
    return np.ascontiguousarray(out.T)


def model_image(spectra: np.ndarray, trace: np.ndarray, profile: ProfileLike, nrow: int = 1032) -> np.ndarray:
    """The 2-D model of a frame (nrow, ncol) float32 e-: ``spectra`` (112, 1032) e- projected
    back through the fiber profiles at ``trace`` (112, 1032)."""
    r0, w = profile.weights(trace)
    return model_from_weights(spectra, r0, w, nrow)


def pixel_variance(model: np.ndarray, read_noise: float, flat: np.ndarray | None = None) -> np.ndarray:
    """Variance (e-^2) of a pixel whose expected counts are ``model`` (e-, flat-fielded):
    read_noise^2 + max(model, 0), or with the pixel flat ``flat`` the variance of the
    flat-divided pixel, (read_noise^2 + max(model * flat, 0)) / flat^2.  float32."""
    m = np.maximum(np.asarray(model, dtype=F32), F32(0.0))
    if flat is None:
        return m + F32(read_noise * read_noise)
    fl = np.asarray(flat, dtype=F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (m * fl + F32(read_noise * read_noise)) / (fl * fl)
    return np.where(fl > 0, v, F32(0.0)).astype(F32)


def extract(image: np.ndarray, trace: np.ndarray, profile: ProfileLike, *, read_noise: float = 3.0,
            mask: np.ndarray | None = None, flat: np.ndarray | None = None,
            variance: np.ndarray | None = None, core_half: float = CORE_HALF,
            reject_sigma: float | None = REJECT_SIGMA, min_core: int = MIN_CORE) -> Extraction:
    """Extract every fiber of a frame.

    image: (1032, 1032) e- (overscan, bias and background removed, pixel-flat divided).
    trace: (112, 1032) 0-based row centres.  profile: a :class:`~hetred.fibers.profile.FiberProfile`.
    read_noise: e-.  mask: (1032, 1032) nonzero = bad pixel.  flat: the pixel flat the image
    was divided by (only used for the variance).  variance: explicit (1032, 1032) e-^2 variance
    (then one pass, no rejection).

    Passes: (1) variance from the data, (2) variance from the model of pass 1, and, when
    ``reject_sigma`` is set, (3) after masking pixels whose residual is more than
    ``reject_sigma`` sigma ABOVE the model and more than ``REJECT_FRAC`` (10 %) of it (cosmic
    rays, hot pixels; in bright frames a profile error of a few % is many sigma but not a
    cosmic ray).  A fiber-column with
    fewer than ``min_core`` usable core pixels is missing: spectra and error 0 (Karl's
    convention for no data).
    """
    img = np.asarray(image, dtype=F32)
    bad = ~np.isfinite(img)
    if mask is not None:
        bad |= np.asarray(mask).astype(bool)
    img = np.where(bad, F32(0.0), img)
    r0, w = profile.weights(trace)
    cols = _Columns(img, bad, r0, w, np.asarray(trace, dtype=F32))
    n_rej = 0
    if variance is not None:
        out = cols.run(variance, core_half)
    else:
        out = cols.run(pixel_variance(img, read_noise, flat), core_half)
        model = cols.model(out[0])
        out = cols.run(pixel_variance(model, read_noise, flat), core_half)
        if reject_sigma is not None:
            model = cols.model(out[0])
            var = pixel_variance(model, read_noise, flat)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (img - model) / np.sqrt(var)
            hit = (z > reject_sigma) & (img - model > F32(REJECT_FRAC) * np.maximum(model, F32(0.0))) & ~bad
            n_rej = int(hit.sum())
            if n_rej:
                bad = bad | hit
                cols.maskT = _cf(bad.T, np.uint8)
                out = cols.run(var, core_half)
    spectra, error, chi2, ncore = out
    if min_core > 0:      # mostly masked core (pixel-flat defect <= 0.666, bad column): missing
        missing = ncore < min_core
        if missing.any():
            spectra = np.where(missing, F32(0.0), spectra).astype(F32)
            error = np.where(missing, F32(0.0), error).astype(F32)
    return Extraction(spectra, error, chi2, ncore, bad, n_rej)
