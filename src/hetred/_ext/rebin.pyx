# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Flux-conserving rebinning of fiber spectra onto one common wavelength grid.

Each native pixel k of a fiber (centre wavelength w_k, Angstrom, strictly increasing along the
fiber) spans the wavelength interval between the midpoints to its neighbours,

    e_k = (w_{k-1} + w_k) / 2,   e_{k+1} = (w_k + w_{k+1}) / 2,

the first and last pixels extended by half the spacing to their only neighbour.  Its counts are
spread uniformly over that interval (a step function), so output bin [lo, hi) receives

    F = sum_k f_k c_k,    f_k = |[lo, hi) & [e_k, e_{k+1})| / (e_{k+1} - e_k),
    V = sum_k f_k^2 v_k   (v_k the pixel variance; pixels taken as independent).

A pixel "contributes" to a bin when f_k > eps (so an edge that falls on a pixel edge up to
rounding does not pull in the neighbour).  An output bin is *missing* -- value 0 and error 0,
the convention of HETDEX calfib/calfibe -- when it is not fully inside [e_0, e_n] (up to eps of a
pixel), when any contributing pixel is flagged bad, or when the fiber's wavelengths are not
finite and strictly increasing.

One forward sweep per fiber (pixels and bins both advance monotonically): O(npix + nout).
Sums in float64, outputs float32.  NumPy reference: :func:`hetred._ext.reference.rebin_reference`.
"""
import numpy as np

from libc.math cimport sqrt, isfinite
from libc.stdlib cimport malloc, free


def rebin_fibers(const double[:, ::1] counts, const double[:, ::1] var,
                 const unsigned char[:, ::1] bad, const double[:, ::1] wave,
                 const double[::1] out_edges, double eps=1e-6):
    """Rebin every fiber onto the bins ``out_edges[i] .. out_edges[i+1]``.

    counts, var: (nfib, npix) float64 (counts per native pixel, their variance); values of bad
    pixels are never read.  bad: (nfib, npix) uint8, nonzero = masked.  wave: (nfib, npix)
    float64 Angstrom, pixel centres.  out_edges: (nout + 1,) float64 increasing Angstrom.
    eps: smallest pixel fraction that counts as a contribution.

    Returns (flux, error), each (nfib, nout) float32: counts per output bin and their 1-sigma
    error; 0 and 0 where missing.
    """
    cdef Py_ssize_t nfib = counts.shape[0], npix = counts.shape[1]
    cdef Py_ssize_t nout = out_edges.shape[0] - 1
    if var.shape[0] != nfib or var.shape[1] != npix or bad.shape[0] != nfib or bad.shape[1] != npix \
            or wave.shape[0] != nfib or wave.shape[1] != npix:
        raise ValueError("counts, var, bad and wave must have the same (nfib, npix) shape")
    if npix < 2:
        raise ValueError("need at least two pixels per fiber")
    if nout < 1:
        raise ValueError("need at least one output bin")
    flux_a = np.zeros((nfib, nout), dtype=np.float32)
    err_a = np.zeros((nfib, nout), dtype=np.float32)
    cdef float[:, ::1] flux = flux_a
    cdef float[:, ::1] err = err_a
    # per fiber: pixel edges e, inverse widths, and the eps-shifted edges used for "contributes"
    cdef double* e = <double*> malloc((4 * npix + 1) * sizeof(double))
    if e == NULL:
        raise MemoryError()
    cdef double* inv_w = e + npix + 1
    cdef double* lo_eff = inv_w + npix    # e[k] + eps w_k: pixel k reaches a bin ending above it
    cdef double* hi_eff = lo_eff + npix   # e[k+1] - eps w_k: pixel k reaches a bin starting below it
    cdef Py_ssize_t f, k, i, j, kk
    cdef double lo, hi, width, frac, s, v, lo_lim, hi_lim
    cdef bint ok, isbad
    try:
        with nogil:
            for f in range(nfib):
                ok = True
                for k in range(npix):
                    if not isfinite(wave[f, k]) or (k > 0 and wave[f, k] <= wave[f, k - 1]):
                        ok = False
                        break
                if not ok:
                    continue
                e[0] = wave[f, 0] - 0.5 * (wave[f, 1] - wave[f, 0])
                for k in range(1, npix):
                    e[k] = 0.5 * (wave[f, k - 1] + wave[f, k])
                e[npix] = wave[f, npix - 1] + 0.5 * (wave[f, npix - 1] - wave[f, npix - 2])
                for k in range(npix):
                    width = e[k + 1] - e[k]
                    inv_w[k] = 1.0 / width
                    lo_eff[k] = e[k] + eps * width
                    hi_eff[k] = e[k + 1] - eps * width
                lo_lim = e[0] - eps * (e[1] - e[0])
                hi_lim = e[npix] + eps * (e[npix] - e[npix - 1])
                j = 0
                for i in range(nout):
                    lo = out_edges[i]
                    hi = out_edges[i + 1]
                    if lo < lo_lim:
                        continue
                    if hi > hi_lim:
                        break
                    # first pixel that reaches past lo by more than eps of itself
                    while j < npix and hi_eff[j] <= lo:
                        j += 1
                    s = 0.0
                    v = 0.0
                    isbad = False
                    kk = j
                    while kk < npix and lo_eff[kk] < hi:
                        if bad[f, kk]:
                            isbad = True
                            break
                        frac = ((e[kk + 1] if e[kk + 1] < hi else hi)
                                - (e[kk] if e[kk] > lo else lo)) * inv_w[kk]
                        s += frac * counts[f, kk]
                        v += frac * frac * var[f, kk]
                        kk += 1
                    if isbad or kk == j:
                        continue
                    flux[f, i] = <float> s
                    err[f, i] = <float> sqrt(v) if v > 0.0 else 0.0
    finally:
        free(e)
    return flux_a, err_a
