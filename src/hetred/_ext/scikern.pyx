# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Kernels of the science reduction (``hetred.sci.reduce``).

* :func:`shift_moments` -- per fiber, the light and its first moment about the trace in a window
  of +-``half`` px (edge pixels weighted by their overlap) around trace + s: the inner loop of
  the trace-shift measurement (NumPy reference :func:`hetred._ext.reference.shift_moments_reference`,
  the vectorised block of :func:`hetred.calib.trace.measure_trace_shift`);
* :func:`profile_weights` -- the extraction's pixel weights (the twical kernel's, reorganised:
  one set of Catmull-Rom coefficients per fiber and column);
* :func:`window_rms` -- per fiber and column, the rms of a residual image over the rows
  nint(trace) - half .. nint(trace) + half inside the frame (vred's rms; reference
  :func:`hetred._ext.reference.window_rms_reference`).

Images are C-contiguous (nrow, ncol) float32, traces (nfib, ncol) float32 rows (0-based).
Sums in float64.
"""
import numpy as np
cimport numpy as cnp

from libc.math cimport floor, fabs, sqrt

cnp.import_array()


def shift_moments(const float[:, ::1] img, const float[:, ::1] trace, double s, double half):
    """(tot, mom), each (nfib,) float64: sum of w v and of w v (row - trace) over the rows
    floor(c + 0.5) + k, k = -int(half) - 2 .. int(half) + 2, c = trace + s, w = clip(half + 0.5
    - |row - c|, 0, 1), rows outside the frame skipped, over every column."""
    cdef Py_ssize_t nrow = img.shape[0], ncol = img.shape[1], nfib = trace.shape[0]
    if trace.shape[1] != ncol:
        raise ValueError("trace and image disagree in columns")
    tot_a = np.zeros(nfib, dtype=np.float64)
    mom_a = np.zeros(nfib, dtype=np.float64)
    cdef double[::1] tot = tot_a
    cdef double[::1] mom = mom_a
    cdef Py_ssize_t f, x, k, row, r0
    cdef int kh = <int>half + 2
    cdef double t, c, w, v, st, sm
    with nogil:
        for f in range(nfib):
            st = 0.0
            sm = 0.0
            for x in range(ncol):
                t = trace[f, x]
                c = t + s
                r0 = <Py_ssize_t>floor(c + 0.5)
                for k in range(-kh, kh + 1):
                    row = r0 + k
                    if row < 0 or row >= nrow:
                        continue
                    w = half + 0.5 - fabs(row - c)
                    if w <= 0.0:
                        continue
                    if w > 1.0:
                        w = 1.0
                    v = w * img[row, x]
                    st += v
                    sm += v * (row - t)
            tot[f] = st
            mom[f] = sm
    return tot_a, mom_a


def window_rms(const float[:, ::1] resid, const float[:, ::1] trace, int half):
    """(nfib, ncol) float32: sqrt(mean of resid^2) over rows nint(trace) +- half inside the frame
    (0 when none is)."""
    cdef Py_ssize_t nrow = resid.shape[0], ncol = resid.shape[1], nfib = trace.shape[0]
    if trace.shape[1] != ncol:
        raise ValueError("trace and image disagree in columns")
    out_a = np.zeros((nfib, ncol), dtype=np.float32)
    cdef float[:, ::1] out = out_a
    cdef Py_ssize_t f, x, row, r0
    cdef double acc, v
    cdef int n
    with nogil:
        for f in range(nfib):
            for x in range(ncol):
                r0 = <Py_ssize_t>floor(trace[f, x] + 0.5)
                acc = 0.0
                n = 0
                for row in range(r0 - half, r0 + half + 1):
                    if 0 <= row < nrow:
                        v = resid[row, x]
                        acc += v * v
                        n += 1
                if n > 0:
                    out[f, x] = <float>sqrt(acc / n)
    return out_a


def profile_weights(const float[:, :, ::1] values, const long[::1] knot, const double[::1] frac,
                    double node0, double step, const double[:, ::1] trace, int half,
                    bint transposed=False):
    """The pixel weights of :func:`hetred._ext.extract.profile_weights` (no derivative), faster:
    the rows of a window are 1 px apart, so with 1/``step`` an integer m the node coordinate of
    row k is u0 + k m -- the same fractional part for every row of the window, whose four
    Catmull-Rom basis coefficients are therefore computed once per fiber and column.  Same
    arguments and returns (r0 (nfib, ncol) int32, w (nfib, ncol, 2 half + 1) float32); raises
    ValueError when 1/step is not an integer.  With ``transposed`` the outputs come in the
    extraction kernel's column-major layout: r0 (ncol, nfib), w (ncol, nfib, 2 half + 1).
    NumPy reference: :func:`hetred._ext.reference.profile_weights_reference`."""
    cdef Py_ssize_t nfib = trace.shape[0], ncol = trace.shape[1], nn = values.shape[2]
    cdef Py_ssize_t nwin = 2 * half + 1
    cdef double minv = 1.0 / step
    cdef Py_ssize_t m = <Py_ssize_t>floor(minv + 0.5)
    if fabs(minv - m) > 1e-9 or m < 1:
        raise ValueError("1/step must be an integer")
    if values.shape[0] != nfib or knot.shape[0] != ncol or frac.shape[0] != ncol:
        raise ValueError("values (nfib, nknot, nnode), knot/frac (ncol,) and trace (nfib, ncol) disagree")
    if transposed:
        r0_a = np.zeros((ncol, nfib), dtype=np.int32)
        w_a = np.zeros((ncol, nfib, nwin), dtype=np.float32)
    else:
        r0_a = np.zeros((nfib, ncol), dtype=np.int32)
        w_a = np.zeros((nfib, ncol, nwin), dtype=np.float32)
    cdef int* r0p = <int*>cnp.PyArray_DATA(r0_a)
    cdef float* wp = <float*>cnp.PyArray_DATA(w_a)
    cdef Py_ssize_t rstride_f = 1 if transposed else ncol, rstride_x = nfib if transposed else 1
    cdef Py_ssize_t wbase
    cdef double p[64]
    if nwin > 64:
        raise ValueError("window too long")
    cdef Py_ssize_t f, x, k, i, i0, j, rr, q
    cdef double t, u0, u, tt, fc, c0, c1, c2, c3, s, val, a0, a1
    cdef const float* va
    cdef const float* vb
    cdef const float* vv
    with nogil:
        for f in range(nfib):
            for x in range(ncol):
                t = trace[f, x]
                rr = <Py_ssize_t>floor(t + 0.5) - half
                r0p[f * rstride_f + x * rstride_x] = <int>rr
                j = knot[x]
                fc = frac[x]
                va = &values[f, j, 0]
                vb = &values[f, j + 1, 0]
                u0 = ((rr - t) - node0) / step
                i0 = <Py_ssize_t>floor(u0)
                tt = u0 - i0
                c0 = 0.5 * (-tt + 2.0 * tt * tt - tt * tt * tt)
                c1 = 0.5 * (2.0 - 5.0 * tt * tt + 3.0 * tt * tt * tt)
                c2 = 0.5 * (tt + 4.0 * tt * tt - 3.0 * tt * tt * tt)
                c3 = 0.5 * (-tt * tt + tt * tt * tt)
                s = 0.0
                for k in range(nwin):
                    u = u0 + k * m
                    val = 0.0
                    if u >= 0.0 and u <= nn - 1:
                        i = i0 + k * m
                        if i > nn - 2 or i < 0:          # at the last node (tt = 1): evaluate as the kernel does
                            i = nn - 2 if i > nn - 2 else 0
                            tt = u - i
                            a0 = 0.5 * (-tt + 2.0 * tt * tt - tt * tt * tt)
                            a1 = 0.5 * (-tt * tt + tt * tt * tt)
                            val = 0.0
                            for q in range(2):
                                vv = va if q == 0 else vb
                                val += (1.0 - fc if q == 0 else fc) * (
                                    a0 * (vv[i - 1] if i >= 1 else 0.0)
                                    + 0.5 * (2.0 - 5.0 * tt * tt + 3.0 * tt * tt * tt) * vv[i]
                                    + 0.5 * (tt + 4.0 * tt * tt - 3.0 * tt * tt * tt) * vv[i + 1]
                                    + a1 * (vv[i + 2] if i + 2 < nn else 0.0))
                            tt = u0 - i0
                        else:
                            val = (1.0 - fc) * ((c0 * va[i - 1] if i >= 1 else 0.0) + c1 * va[i] + c2 * va[i + 1]
                                                + (c3 * va[i + 2] if i + 2 < nn else 0.0))
                            if fc != 0.0:
                                val += fc * ((c0 * vb[i - 1] if i >= 1 else 0.0) + c1 * vb[i] + c2 * vb[i + 1]
                                             + (c3 * vb[i + 2] if i + 2 < nn else 0.0))
                    if val < 0.0:
                        val = 0.0
                    p[k] = val
                    s += val
                if s <= 0.0:
                    s = 1.0
                wbase = (f * rstride_f + x * rstride_x) * nwin
                for k in range(nwin):
                    wp[wbase + k] = <float>(p[k] / s)
    return r0_a, w_a
