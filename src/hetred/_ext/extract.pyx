# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fiber extraction kernels: a simultaneous, weighted least-squares fit of all fibers per column.

In one column x of the oriented frame the pixel values d(y) are modelled as

    m(y) = sum_f s_f * w_f(y),

where w_f(y) is fiber f's pixel profile (its fraction of the fiber's light in pixel row y,
normalised to unit sum over the fiber's window of ``nwin`` rows starting at row ``r0[x, f]``).
The fluxes s_f minimise chi^2 = sum_y (d - m)^2 / var(y) over the unmasked pixels.  Because a
window only overlaps the windows of the next one or two fibers, the normal matrix
A_fg = sum_y w_f w_g / var is banded (half-bandwidth 2); it is factored as L D L^T, solved, and
the diagonal of A^-1 (the variance of s_f) comes from Takahashi's recursion on the factor.
Overlaps with fibers more than two away are ignored (they cannot occur for windows shorter than
two fiber pitches).

Per fiber and column the kernel also returns the reduced chi^2 of the pixels within
``core_half`` px of the trace, against the complete model (all fibers), divided by
(n_core - leverage) with leverage = sum_core w^2 / var * (A^-1)_ff, and the number of those
pixels.  A fiber with no usable pixel gets flux 0, error 0, chi^2 0 and n_core 0.

All arrays are column-major for the kernel: image, variance and mask are passed TRANSPOSED
(ncol, nrow); r0 and trace are (ncol, nfib); the weights (ncol, nfib, nwin).  The Python
wrapper :mod:`hetred.calib.extract` does the transposes.  Sums in float64, outputs float32.
The NumPy reference is :func:`hetred._ext.reference.extract_reference`.
"""
import numpy as np

from libc.math cimport sqrt, fabs
from libc.stdlib cimport malloc, free

cdef enum:
    KB = 2          # half-bandwidth of the normal matrix


cdef inline bint _usable(const unsigned char[:, ::1] maskT, const float[:, ::1] varT,
                         Py_ssize_t x, Py_ssize_t row, Py_ssize_t nrow) noexcept nogil:
    return 0 <= row < nrow and maskT[x, row] == 0 and varT[x, row] > 0


def extract_columns(const float[:, ::1] imageT, const float[:, ::1] varT,
                    const unsigned char[:, ::1] maskT, const int[:, ::1] r0,
                    const float[:, :, ::1] w, const float[:, ::1] traceT, double core_half):
    """Simultaneous weighted fit of every fiber in every column.

    imageT, varT, maskT: (ncol, nrow) transposed image (e-), variance (e-^2), mask (nonzero =
    bad).  r0: (ncol, nfib) int32 first window row.  w: (ncol, nfib, nwin) float32 weights.
    traceT: (ncol, nfib) float32 trace rows (for the core).  Returns (spec, err, chi2, ncore),
    the first three (nfib, ncol) float32 (e-, e-, reduced chi^2), ncore (nfib, ncol) int16.
    """
    cdef Py_ssize_t ncol = imageT.shape[0], nrow = imageT.shape[1]
    cdef Py_ssize_t nfib = r0.shape[1], nwin = w.shape[2]
    if varT.shape[0] != ncol or varT.shape[1] != nrow or maskT.shape[0] != ncol or maskT.shape[1] != nrow:
        raise ValueError("image, variance and mask must have the same shape")
    if r0.shape[0] != ncol or w.shape[0] != ncol or w.shape[1] != nfib:
        raise ValueError("r0 and weights must be (ncol, nfib[, nwin])")
    if traceT.shape[0] != ncol or traceT.shape[1] != nfib:
        raise ValueError("trace must be (ncol, nfib)")
    spec_a = np.zeros((nfib, ncol), dtype=np.float32)
    err_a = np.zeros((nfib, ncol), dtype=np.float32)
    chi_a = np.zeros((nfib, ncol), dtype=np.float32)
    nc_a = np.zeros((nfib, ncol), dtype=np.int16)
    cdef float[:, ::1] spec = spec_a
    cdef float[:, ::1] err = err_a
    cdef float[:, ::1] chi = chi_a
    cdef short[:, ::1] ncore = nc_a
    cdef double* work = <double*>malloc(sizeof(double) * (12 * nfib + 8 + nrow))
    if work == NULL:
        raise MemoryError()
    cdef double* a0 = work
    cdef double* a1 = a0 + nfib + 2
    cdef double* a2 = a1 + nfib + 2
    cdef double* bb = a2 + nfib + 2
    cdef double* dd = bb + nfib + 2
    cdef double* l1 = dd + nfib
    cdef double* l2 = l1 + nfib
    cdef double* sol = l2 + nfib
    cdef double* z0 = sol + nfib
    cdef double* z1 = z0 + nfib
    cdef double* z2 = z1 + nfib
    cdef double* model = z2 + nfib
    cdef unsigned char* empty = <unsigned char*>malloc(nfib + 1)
    if empty == NULL:
        free(work)
        raise MemoryError()
    cdef Py_ssize_t x, f, g, k, row, lo, hi, rf, rg, j
    cdef double wv, iv, dv, res, c, n, lev, s
    with nogil:
        for x in range(ncol):
            # ---- normal equations
            for f in range(nfib):
                a0[f] = 0.0
                a1[f] = 0.0
                a2[f] = 0.0
                bb[f] = 0.0
            for f in range(nfib):
                rf = r0[x, f]
                for k in range(nwin):
                    row = rf + k
                    if not _usable(maskT, varT, x, row, nrow):
                        continue
                    wv = w[x, f, k]
                    iv = 1.0 / varT[x, row]
                    a0[f] += wv * wv * iv
                    bb[f] += wv * imageT[x, row] * iv
                for j in range(1, KB + 1):
                    g = f + j
                    if g >= nfib:
                        break
                    rg = r0[x, g]
                    lo = rf if rf > rg else rg
                    hi = rf + nwin if rf + nwin < rg + nwin else rg + nwin
                    s = 0.0
                    for row in range(lo, hi):
                        if not _usable(maskT, varT, x, row, nrow):
                            continue
                        s += <double>w[x, f, row - rf] * w[x, g, row - rg] / varT[x, row]
                    if j == 1:
                        a1[f] = s
                    else:
                        a2[f] = s
            # fibers without pixels: decouple them (flux 0)
            for f in range(nfib):
                empty[f] = a0[f] <= 0.0
            for f in range(nfib):
                if empty[f]:
                    a0[f] = 1.0
                    bb[f] = 0.0
                    a1[f] = 0.0
                    a2[f] = 0.0
                    if f >= 1:
                        a1[f - 1] = 0.0
                    if f >= 2:
                        a2[f - 2] = 0.0
            # ---- banded L D L^T (half-bandwidth 2): l1[j] = L[j+1, j], l2[j] = L[j+2, j]
            for j in range(nfib):
                c = a0[j]
                if j >= 1:
                    c -= l1[j - 1] * l1[j - 1] * dd[j - 1]
                if j >= 2:
                    c -= l2[j - 2] * l2[j - 2] * dd[j - 2]
                if c <= 1e-300:
                    c = 1e-300
                dd[j] = c
                c = a1[j]
                if j >= 1:
                    c -= l2[j - 1] * l1[j - 1] * dd[j - 1]
                l1[j] = c / dd[j] if j + 1 < nfib else 0.0
                l2[j] = a2[j] / dd[j] if j + 2 < nfib else 0.0
            # ---- solve
            for j in range(nfib):
                c = bb[j]
                if j >= 1:
                    c -= l1[j - 1] * sol[j - 1]
                if j >= 2:
                    c -= l2[j - 2] * sol[j - 2]
                sol[j] = c
            for j in range(nfib):
                sol[j] /= dd[j]
            for j in range(nfib - 1, -1, -1):
                c = sol[j]
                if j + 1 < nfib:
                    c -= l1[j] * sol[j + 1]
                if j + 2 < nfib:
                    c -= l2[j] * sol[j + 2]
                sol[j] = c
            # ---- diagonal (and band) of A^-1 (Takahashi)
            for j in range(nfib - 1, -1, -1):
                if j + 2 < nfib:
                    z2[j] = -(l1[j] * z1[j + 1] + l2[j] * z0[j + 2])
                else:
                    z2[j] = 0.0
                if j + 1 < nfib:
                    z1[j] = -(l1[j] * z0[j + 1] + l2[j] * (z1[j + 1] if j + 2 < nfib else 0.0))
                else:
                    z1[j] = 0.0
                z0[j] = 1.0 / dd[j] - l1[j] * z1[j] - l2[j] * z2[j]
            # ---- model of the column
            for row in range(nrow):
                model[row] = 0.0
            for f in range(nfib):
                if empty[f]:
                    continue
                rf = r0[x, f]
                for k in range(nwin):
                    row = rf + k
                    if 0 <= row < nrow:
                        model[row] += sol[f] * w[x, f, k]
            # ---- outputs and core chi^2
            for f in range(nfib):
                if empty[f]:
                    continue
                spec[f, x] = <float>sol[f]
                err[f, x] = <float>sqrt(z0[f]) if z0[f] > 0 else 0.0
                rf = r0[x, f]
                c = 0.0
                n = 0.0
                lev = 0.0
                for k in range(nwin):
                    row = rf + k
                    if fabs(row - traceT[x, f]) > core_half:
                        continue
                    if not _usable(maskT, varT, x, row, nrow):
                        continue
                    iv = 1.0 / varT[x, row]
                    res = imageT[x, row] - model[row]
                    c += res * res * iv
                    n += 1.0
                    wv = w[x, f, k]
                    lev += wv * wv * iv * z0[f]
                ncore[f, x] = <short>n
                if n - lev > 0.5:
                    chi[f, x] = <float>(c / (n - lev))
    free(work)
    free(empty)
    return spec_a, err_a, chi_a, nc_a


def model_columns(const int[:, ::1] r0, const float[:, :, ::1] w, const float[:, ::1] spec,
                  Py_ssize_t nrow):
    """Transposed 2-D model (ncol, nrow) float32: sum_f spec[f, x] * w[x, f, k] at row r0 + k.

    r0: (ncol, nfib) int32; w: (ncol, nfib, nwin) float32; spec: (nfib, ncol) float32.
    Rows outside 0..nrow-1 are dropped.
    """
    cdef Py_ssize_t ncol = r0.shape[0], nfib = r0.shape[1], nwin = w.shape[2]
    if w.shape[0] != ncol or w.shape[1] != nfib or spec.shape[0] != nfib or spec.shape[1] != ncol:
        raise ValueError("r0 (ncol, nfib), w (ncol, nfib, nwin) and spec (nfib, ncol) disagree")
    out_a = np.zeros((ncol, nrow), dtype=np.float32)
    cdef float[:, ::1] out = out_a
    cdef Py_ssize_t x, f, k, row, rf
    cdef float s
    with nogil:
        for x in range(ncol):
            for f in range(nfib):
                s = spec[f, x]
                rf = r0[x, f]
                for k in range(nwin):
                    row = rf + k
                    if 0 <= row < nrow:
                        out[x, row] += s * w[x, f, k]
    return out_a


cdef inline double _node(const float[:, :, ::1] v, Py_ssize_t f, Py_ssize_t j, Py_ssize_t i,
                         Py_ssize_t nn) noexcept nogil:
    if i < 0 or i >= nn:
        return 0.0
    return v[f, j, i]


def profile_weights(const float[:, :, ::1] values, const long[::1] knot, const double[::1] frac,
                    double node0, double step, const double[:, ::1] trace, int half,
                    bint derivative):
    """Pixel weights of every fiber at every column from node values (pixel-offset profile).

    values: (nfib, nknot, nnode) float32 node values on the regular grid node0 + i*step (px);
    knot, frac: (ncol,) the knot below each column and the linear fraction towards the next;
    trace: (nfib, ncol) float64 rows; half: window rows on each side of the nearest row.
    The node curve is the Catmull-Rom cubic through the nodes (zero beyond the grid and outside
    it), linear in column between knots, clipped at 0, normalised to unit sum over the window.
    Returns r0 (nfib, ncol) int32, w (nfib, ncol, 2*half+1) float32 and, with ``derivative``,
    dw/dtrace of the same shape (else None).  NumPy reference:
    :func:`hetred._ext.reference.profile_weights_reference`.
    """
    cdef Py_ssize_t nfib = trace.shape[0], ncol = trace.shape[1], nn = values.shape[2]
    cdef Py_ssize_t nwin = 2 * half + 1
    if values.shape[0] != nfib or knot.shape[0] != ncol or frac.shape[0] != ncol:
        raise ValueError("values (nfib, nknot, nnode), knot/frac (ncol,) and trace (nfib, ncol) disagree")
    r0_a = np.zeros((nfib, ncol), dtype=np.int32)
    w_a = np.zeros((nfib, ncol, nwin), dtype=np.float32)
    dw_a = np.zeros((nfib, ncol, nwin), dtype=np.float32) if derivative else np.zeros((1, 1, 1), dtype=np.float32)
    cdef int[:, ::1] r0 = r0_a
    cdef float[:, :, ::1] w = w_a
    cdef float[:, :, ::1] dw = dw_a
    cdef double* p = <double*>malloc(sizeof(double) * 2 * nwin)
    if p == NULL:
        raise MemoryError()
    cdef double* dp = p + nwin
    cdef Py_ssize_t f, x, k, i, j, jj, rr
    cdef double t, d, u, tt, fc, val, der, a, b, p0, p1, p2, p3, s, sd, wt
    cdef int pass_
    with nogil:
        for f in range(nfib):
            for x in range(ncol):
                t = trace[f, x]
                rr = <Py_ssize_t>(t + 0.5 + 1e6) - 1000000 - half     # floor(t + 0.5) - half
                r0[f, x] = <int>rr
                j = knot[x]
                fc = frac[x]
                s = 0.0
                sd = 0.0
                for k in range(nwin):
                    d = rr + k - t
                    u = (d - node0) / step
                    val = 0.0
                    der = 0.0
                    if u >= 0.0 and u <= nn - 1:
                        i = <Py_ssize_t>u
                        if i > nn - 2:
                            i = nn - 2
                        tt = u - i
                        for pass_ in range(2):
                            jj = j + pass_
                            wt = fc if pass_ else 1.0 - fc
                            if wt == 0.0:
                                continue
                            p0 = _node(values, f, jj, i - 1, nn)
                            p1 = _node(values, f, jj, i, nn)
                            p2 = _node(values, f, jj, i + 1, nn)
                            p3 = _node(values, f, jj, i + 2, nn)
                            a = 2 * p0 - 5 * p1 + 4 * p2 - p3
                            b = -p0 + 3 * p1 - 3 * p2 + p3
                            val += wt * 0.5 * (2 * p1 + (p2 - p0) * tt + a * tt * tt + b * tt * tt * tt)
                            der += wt * 0.5 * ((p2 - p0) + 2 * a * tt + 3 * b * tt * tt)
                    if val > 0.0:
                        p[k] = val
                        dp[k] = der / step
                    else:
                        p[k] = 0.0
                        dp[k] = 0.0
                    s += p[k]
                    sd += dp[k]
                if s <= 0.0:
                    s = 1.0
                for k in range(nwin):
                    w[f, x, k] = <float>(p[k] / s)
                    if derivative:
                        dw[f, x, k] = <float>((-dp[k] + p[k] * sd / s) / s)
    free(p)
    return r0_a, w_a, (dw_a if derivative else None)
