# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Biweight kernels of the bias stage: stack combine, neighbourhood (box) biweight, trap search,
uint16 samples.

Every biweight here is Karl Gebhardt's ``biwgt`` (HETDEX/karlspipe hdr2.1/progs/biwt.f) with
the Fortran's precision -- data, median, MAD, location and step in float32 (``real``), the sums
in float64 (``real*8``), summed over the *sorted* sample as ``biwgt`` does after ``medmad`` -- so
a result equals :func:`hetred._ext.reference.biweight_scalar_reference` bit for bit.  Two
differences from the Fortran: the MAD is the true median absolute deviation (Karl's walk outward
from the median equals it unless one side of the walk runs out, which needs more than half the
sample on one side of the median to within rounding), and non-finite values are skipped (as
:mod:`hetred._ext.biweight` does).

Speed comes from doing 8 independent samples ("lanes") at once: a sample tile is ``n`` rows x 8
lanes, sorted with a Batcher odd-even merge network applied row-wise (min/max of whole rows,
branch-free); when every lane is full the MAD comes from the two sorted runs of deviations
below and above the median (k-th smallest of two sorted lists) instead of a second sort; the
location iteration and the scale sum then run in lockstep over the lanes.  Excluded entries
(out of the image, non-finite, or the skip value) are +inf: the network moves them to the end
of their lane and ``|x - xbl| < c*MAD`` rejects them, so each lane keeps its own count and sums.
The C core uses SSE2 (x86-64 baseline) or GCC/Clang vector extensions, and an AVX2 path chosen
at run time (:func:`simd_level`); both give the same bits.

* :func:`biweight_stack` -- per-column biweight of a float32 (n, M) array (imcmb's per-pixel
  combine of n frames, for a band of rows flattened to M pixels).
* :func:`neighbour_biweight` -- for every pixel, the biweight of the pixels at a list of
  (row, column) offsets: imbox2's box with an inner radius (the 1x7 box without its centre).
* :func:`trap_hits` -- imgetctrap's per-pixel test against the +-9 columns of a row.
* :func:`biweight_uint16` -- biweight of ``float32(a) - offset`` for a uint16 region, through a
  histogram of the integer values (improcb's overscan and central-region statistics).
* :func:`sorting_network` -- the comparator network used for a sample size.
"""
import numpy as np

from libc.math cimport fabs, fabsf, sqrt, INFINITY
from libc.stdlib cimport malloc, calloc, free

cdef enum:
    L = 8          # lanes per tile

cdef float _INF = INFINITY

_NETWORKS = {}


def sorting_network(Py_ssize_t n):
    """Comparator pairs (i, j), i < j, of a Batcher odd-even merge sort of ``n`` elements.

    Built for the next power of two and pruned of comparators that touch an index >= n (those
    positions would hold +inf and never move), as an int32 array of shape (k, 2).
    """
    if n in _NETWORKS:
        return _NETWORKS[n]
    pairs = []
    p = 1
    while p < n:
        p *= 2
    # Knuth / Batcher odd-even merge sort, iterative form
    t = 1
    while t < p:
        k = t
        while k >= 1:
            j = k % t
            while j + k < p:
                for i in range(min(k, p - j - k)):
                    a = i + j
                    b = i + j + k
                    if a // (2 * t) == b // (2 * t) and b < n:
                        pairs.append((a, b))
                j += 2 * k
            k //= 2
        t *= 2
    net = np.asarray(pairs, dtype=np.int32).reshape(-1, 2)
    _NETWORKS[n] = net
    return net


cdef extern from "boxfilter_core.h":
    int hr_set_simd(int level) noexcept nogil
    int hr_use_avx2() noexcept nogil
    void hr_fill8(const float* src, float* dst, int skip_zero, int* cnt) noexcept nogil
    void hr_lanes(float* t, float* dev, Py_ssize_t n, const int* cnt, const int* net,
                  Py_ssize_t nnet, float* loc, float* scale, int want) noexcept nogil
    void hr_trap_hits(const float* img, Py_ssize_t nrow, Py_ssize_t ncol, Py_ssize_t r0,
                      Py_ssize_t r1, Py_ssize_t c0, Py_ssize_t c1, const long long* dcs,
                      Py_ssize_t k, const int* net, Py_ssize_t nnet, float tcut, float screen,
                      float* tile, float* dev, float* qbuf, unsigned char* hits) noexcept nogil
    void hr_group_lockstep(float* tile, float* dev, Py_ssize_t n, const int* cnt,
                           const int* net, Py_ssize_t nnet, const Py_ssize_t* out, int nlanes,
                           float* locs, float* scales, int want) noexcept nogil
    void hr_group_pair(float* tA, const int* cntA, const Py_ssize_t* outA, int nA,
                       float* tB, const int* cntB, const Py_ssize_t* outB, int nB,
                       float* dev, Py_ssize_t n, const int* net, Py_ssize_t nnet,
                       float* locs, float* scales, int want) noexcept nogil


def simd_level(level=None):
    """The vector code path of the kernels: 1 = AVX2 (chosen when the CPU has it), 0 = baseline.

    ``simd_level(0)`` forces the baseline path (tests compare both); both give identical bits.
    """
    if level is not None:
        return hr_set_simd(int(level))
    return hr_use_avx2()


def biweight_stack(const float[:, :] x, bint want_scale=True):
    """Biweight (location, scale) of each column of a float32 (n, M) array, Karl's ``biwgt``.

    Non-finite values are skipped.  Any strides; C-contiguous rows are fastest.  Returns two
    float32 arrays of length M; with ``want_scale=False`` the scale sums are skipped and the
    scale is None.
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1]
    cdef Py_ssize_t g, j0, i, c, nfull
    cdef int cnts[2][L]
    cdef Py_ssize_t outs[2][L]
    cdef int nls[2]
    cdef int p = 0
    cdef float buf[L]
    cdef int* cnt
    cdef float* tile
    net_arr = sorting_network(max(n, 1))
    cdef const int[:, ::1] netv = net_arr
    cdef Py_ssize_t nnet = netv.shape[0]
    cdef const int* net = &netv[0, 0] if nnet > 0 else NULL
    loc_arr = np.empty(m, dtype=np.float32)
    scale_arr = np.empty(m, dtype=np.float32)
    if m == 0:
        return loc_arr, scale_arr
    cdef float[::1] loc = loc_arr
    cdef float[::1] scale = scale_arr
    cdef bint unit = x.strides[1] == sizeof(float)
    cdef Py_ssize_t tsize = (n + 1) * L
    cdef float* tiles = <float*>malloc(2 * tsize * sizeof(float))
    cdef float* dev = <float*>malloc(tsize * sizeof(float))
    if tiles == NULL or dev == NULL:
        free(tiles)
        free(dev)
        raise MemoryError()
    with nogil:
        for g in range((m + L - 1) // L):
            j0 = g * L
            nfull = L if j0 + L <= m else m - j0
            tile = tiles + p * tsize
            cnt = cnts[p]
            nls[p] = <int>nfull
            for c in range(L):
                cnt[c] = 0
                outs[p][c] = j0 + c
            for i in range(n):
                if unit and nfull == L:
                    hr_fill8(&x[i, j0], tile + i * L, 0, cnt)
                else:
                    for c in range(L):
                        buf[c] = x[i, j0 + c] if c < nfull else _INF
                    hr_fill8(buf, tile + i * L, 0, cnt)
            for c in range(nfull, L):
                cnt[c] = 0
            if p == 1:     # two tiles ready: iterate them together
                hr_group_pair(tiles, cnts[0], outs[0], nls[0], tiles + tsize, cnts[1], outs[1], nls[1],
                              dev, n, net, nnet, &loc[0], &scale[0], want_scale)
                p = 0
            else:
                p = 1
        if p == 1:
            hr_group_lockstep(tiles, dev, n, cnts[0], net, nnet, outs[0], nls[0], &loc[0], &scale[0],
                              want_scale)
    free(tiles)
    free(dev)
    return loc_arr, (scale_arr if want_scale else None)


def neighbour_biweight(const float[:, :] img, offsets, bint skip_zero=False,
                       Py_ssize_t row_lo=0, Py_ssize_t row_hi=-1,
                       Py_ssize_t col_lo=0, Py_ssize_t col_hi=-1, bint want_scale=True):
    """For each pixel, Karl's biweight of its neighbours at ``offsets``.

    img: float32 (nrow, ncol).  offsets: (k, 2) integers (row offset, column offset); the pixel
    itself is used only if (0, 0) is listed.  Neighbours outside the image are left out (the
    window shrinks at the edges, as imbox2's max/min limits do); with ``skip_zero`` neighbours
    exactly 0.0 are left out too (imbox2's ``iflag``); non-finite values are always left out.
    Only pixels in rows [row_lo, row_hi) and columns [col_lo, col_hi) are computed (-1: to the
    end); the others get NaN and count 0.  Returns (location, scale, count) arrays of the
    image's shape (float32, float32, int16); Karl's special cases hold: count 0 gives
    (-666, -2), count 1 gives (x, -1), count 2 gives (mean, half the difference).  With
    ``want_scale=False`` the scale sums are skipped and the scale is None.
    """
    off = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1, 2)
    cdef const long long[:, ::1] ov = off
    cdef Py_ssize_t k = ov.shape[0]
    cdef Py_ssize_t nrow = img.shape[0], ncol = img.shape[1]
    if row_hi < 0 or row_hi > nrow:
        row_hi = nrow
    if col_hi < 0 or col_hi > ncol:
        col_hi = ncol
    row_lo = max(row_lo, 0)
    col_lo = max(col_lo, 0)
    loc_arr = np.full((nrow, ncol), np.nan, dtype=np.float32)
    scale_arr = np.full((nrow, ncol), np.nan, dtype=np.float32)
    cnt_arr = np.zeros((nrow, ncol), dtype=np.int16)
    if k == 0 or row_hi <= row_lo or col_hi <= col_lo:
        return loc_arr, scale_arr, cnt_arr
    cdef float[:, ::1] loc = loc_arr
    cdef float[:, ::1] scale = scale_arr
    cdef short[:, ::1] cnto = cnt_arr
    net_arr = sorting_network(k)
    cdef const int[:, ::1] netv = net_arr
    cdef Py_ssize_t nnet = netv.shape[0]
    cdef const int* net = &netv[0, 0] if nnet > 0 else NULL
    cdef Py_ssize_t r, j0, c, q, rr, cc, nfull
    cdef long long dr, dc
    cdef bint unit = img.strides[1] == sizeof(float)
    cdef int cnts[2][L]
    cdef Py_ssize_t outs[2][L]
    cdef int nls[2]
    cdef int p = 0
    cdef int* cnt
    cdef float* tile
    cdef float buf[L]
    cdef float* locp = &loc[0, 0]
    cdef float* scalep = &scale[0, 0]
    cdef Py_ssize_t tsize = (k + 1) * L
    cdef float* tiles = <float*>malloc(2 * tsize * sizeof(float))
    cdef float* dev = <float*>malloc(tsize * sizeof(float))
    if tiles == NULL or dev == NULL:
        free(tiles)
        free(dev)
        raise MemoryError()
    with nogil:
        for r in range(row_lo, row_hi):
            j0 = col_lo
            while j0 < col_hi:
                nfull = L if j0 + L <= col_hi else col_hi - j0
                tile = tiles + p * tsize
                cnt = cnts[p]
                nls[p] = <int>nfull
                for c in range(L):
                    cnt[c] = 0
                    outs[p][c] = r * ncol + j0 + c
                for q in range(k):
                    dr = ov[q, 0]
                    dc = ov[q, 1]
                    rr = r + dr
                    if rr < 0 or rr >= nrow:
                        for c in range(L):
                            tile[q * L + c] = _INF
                    elif unit and nfull == L and j0 + dc >= 0 and j0 + dc + L <= ncol:
                        hr_fill8(&img[rr, j0 + dc], tile + q * L, skip_zero, cnt)
                    else:
                        for c in range(L):
                            cc = j0 + c + dc
                            buf[c] = img[rr, cc] if c < nfull and 0 <= cc < ncol else _INF
                        hr_fill8(buf, tile + q * L, skip_zero, cnt)
                for c in range(nfull, L):
                    cnt[c] = 0
                for c in range(nfull):
                    cnto[r, j0 + c] = <short>cnt[c]
                if p == 1:
                    hr_group_pair(tiles, cnts[0], outs[0], nls[0], tiles + tsize, cnts[1], outs[1],
                                  nls[1], dev, k, net, nnet, locp, scalep, want_scale)
                    p = 0
                else:
                    p = 1
                j0 += L
        if p == 1:
            hr_group_lockstep(tiles, dev, k, cnts[0], net, nnet, outs[0], nls[0], locp, scalep,
                              want_scale)
    free(tiles)
    free(dev)
    return loc_arr, (scale_arr if want_scale else None), cnt_arr


def trap_hits(img, Py_ssize_t half=9, float tcut=10.0,
              Py_ssize_t row_lo=9, Py_ssize_t row_hi=-1, Py_ssize_t col_lo=9, Py_ssize_t col_hi=-1,
              float screen=2.0):
    """imgetctrap's per-pixel test: is a pixel more than ``tcut`` biweight sigma above the
    biweight of the ``2*half`` pixels around it in its row (itself left out)?

    Computes ``(x - xb) / xs > tcut`` in float32 (Karl's ``xin2 > tcut``; xs = 0 gives +-inf or
    NaN as in the Fortran) for rows [row_lo, row_hi) and columns [col_lo, col_hi) (defaults:
    imgetctrap's rows 10..nrow and columns 10..ncol-10, 1-based); neighbours outside the image
    or not finite are left out.  ``screen`` > 0 skips the biweight iteration where
    x <= median + screen * MAD of the neighbours: such a pixel cannot pass the test unless the
    biweight location plus ten scales lies below median + screen * MAD (see
    docs/stages/bias.md for why that does not happen); ``screen=0`` computes every pixel.
    Returns a uint8 array of the image's shape (1 = hit).
    """
    arr = np.ascontiguousarray(img, dtype=np.float32)
    cdef const float[:, ::1] im = arr
    cdef Py_ssize_t nrow = im.shape[0], ncol = im.shape[1]
    if row_hi < 0 or row_hi > nrow:
        row_hi = nrow
    if col_hi < 0:
        col_hi = ncol - 10
    col_hi = min(col_hi, ncol)
    row_lo = max(row_lo, 0)
    col_lo = max(col_lo, 0)
    hits_arr = np.zeros((nrow, ncol), dtype=np.uint8)
    offs = [d for d in range(-half, half + 1) if d != 0]
    cdef Py_ssize_t k = len(offs)
    if k == 0 or row_hi <= row_lo or col_hi <= col_lo:
        return hits_arr
    dcs_arr = np.asarray(offs, dtype=np.int64)
    cdef const long long[::1] dcs = dcs_arr
    cdef unsigned char[:, ::1] hits = hits_arr
    net_arr = sorting_network(k)
    cdef const int[:, ::1] netv = net_arr
    cdef Py_ssize_t nnet = netv.shape[0]
    cdef const int* net = &netv[0, 0] if nnet > 0 else NULL
    cdef float* tile = <float*>malloc((k + 1) * L * sizeof(float))
    cdef float* dev = <float*>malloc((k + 1) * L * sizeof(float))
    cdef float* qbuf = <float*>malloc((k + 1) * L * sizeof(float))
    if tile == NULL or dev == NULL or qbuf == NULL:
        free(tile)
        free(dev)
        free(qbuf)
        raise MemoryError()
    with nogil:
        hr_trap_hits(&im[0, 0], nrow, ncol, row_lo, row_hi, col_lo, col_hi, &dcs[0], k, net, nnet,
                     tcut, screen, tile, dev, qbuf, &hits[0, 0])
    free(tile)
    free(dev)
    free(qbuf)
    return hits_arr


def biweight_uint16(const unsigned short[:, :] a, float offset=0.0):
    """Karl's biweight (location, scale) of ``float32(a) - offset`` over a uint16 region.

    The values are integers less a constant, so the sample is held as a histogram: the median
    and MAD come from cumulative counts and each iteration sums count x term over the distinct
    values.  The terms are Karl's (float32 differences, float64 sums); only the grouping of the
    sums differs from ``biwgt``, so results agree to float32 rounding.  Returns two floats.
    """
    cdef Py_ssize_t nr = a.shape[0], nc = a.shape[1], i, j, nb = 0, b0, b1, lo_i, hi_i
    cdef long long n = nr * nc, need, cum, r1, r2
    cdef unsigned short kmin = 65535, kmax = 0, u
    cdef long long* hist = <long long*>calloc(65536, sizeof(long long))
    if hist == NULL:
        raise MemoryError()
    cdef float xmed, xmad, xbl, delta, cmad, d1 = 0, d2 = 0, dlo, dhi, v1, v2
    cdef double s1, s2, t0, t1, w, cm, cmsq
    cdef int icnt
    with nogil:
        for i in range(nr):
            for j in range(nc):
                u = a[i, j]
                hist[u] += 1
                if u < kmin:
                    kmin = u
                if u > kmax:
                    kmax = u
    if n == 0:
        free(hist)
        return -666.0, -2.0
    if n < 3:
        small = np.asarray(a, dtype=np.float32).ravel() - np.float32(offset)
        free(hist)
        from hetred._ext.reference import biweight_scalar_reference
        return biweight_scalar_reference(small)
    # distinct values, ascending
    nbins = int(kmax) - int(kmin) + 1
    vals_arr = np.empty(nbins, dtype=np.float32)
    cnts_arr = np.empty(nbins, dtype=np.int64)
    cdef float[::1] vals = vals_arr
    cdef long long[::1] cnts = cnts_arr
    with nogil:
        for i in range(kmin, kmax + 1):
            if hist[i] > 0:
                vals[nb] = <float>i - offset
                cnts[nb] = hist[i]
                nb += 1
    free(hist)
    with nogil:
        # median: 0-based ranks n2 (odd) or n2-1 and n2 (even)
        r2 = n // 2
        r1 = r2 - 1 if n % 2 == 0 else r2
        cum = 0
        v1 = vals[0]
        v2 = vals[0]
        for i in range(nb):
            if cum <= r1 < cum + cnts[i]:
                v1 = vals[i]
            if cum <= r2 < cum + cnts[i]:
                v2 = vals[i]
                break
            cum += cnts[i]
        xmed = <float>0.5 * (v1 + v2) if n % 2 == 0 else v2
        # MAD: merge the deviations below and above the median, smallest first
        lo_i = -1
        for i in range(nb):
            if vals[i] <= xmed:
                lo_i = i
        hi_i = lo_i + 1
        cum = 0
        while True:
            dlo = xmed - vals[lo_i] if lo_i >= 0 else _INF
            dhi = vals[hi_i] - xmed if hi_i < nb else _INF
            if dlo <= dhi:
                need = cnts[lo_i]
                lo_i -= 1
                v1 = dlo
            else:
                need = cnts[hi_i]
                hi_i += 1
                v1 = dhi
            if cum <= r1 < cum + need:
                d1 = v1
            if cum <= r2 < cum + need:
                d2 = v1
                break
            cum += need
        xmad = <float>0.5 * (d1 + d2) if n % 2 == 0 else d2
    if xmad < <float>1.0e-6 * (<float>1.0 if fabsf(xmed) < <float>1.0 else fabsf(xmed)):
        return float(xmed), float(xmad)
    with nogil:
        xbl = xmed
        delta = <float>2.0e-5 if fabsf(xmed) < <float>2.0e-5 else fabsf(xmed)
        cmad = <float>6.0 * xmad
        cm = cmad
        cmsq = cmad * cmad
        icnt = 0
        while fabsf(delta) >= <float>1.0e-4 * xmad and icnt < 20:
            icnt += 1
            s1 = 0.0
            s2 = 0.0
            for i in range(nb):
                t0 = <double>(vals[i] - xbl)
                if fabs(t0) < cm:
                    t1 = cmsq - t0 * t0
                    t1 = t1 * t1
                    w = <double>cnts[i]
                    s1 = s1 + w * (t0 * t1)
                    s2 = s2 + w * t1
            delta = <float>(s1 / s2)
            xbl = xbl + delta
        cmad = <float>9.0 * xmad
        cm = cmad
        cmsq = cmad * cmad
        s1 = 0.0
        s2 = 0.0
        for i in range(nb):
            t0 = <double>(vals[i] - xbl)
            if fabs(t0) < cm:
                t0 = t0 * t0
                t1 = cmsq - t0
                w = <double>cnts[i]
                s1 = s1 + w * (t0 * t1 * t1 * t1 * t1)
                s2 = s2 + w * (t1 * (cmsq - 5.0 * t0))
    return float(xbl), float(<float>(n * sqrt(s1 / <double>(<float>(n - 1.0))) / fabs(s2)))
