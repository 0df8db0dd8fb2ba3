# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Biweight location and scale, reproducing Karl Gebhardt's Fortran ``biwgt``.

The reference is ``biwgt`` / ``medmad`` in HETDEX/karlspipe hdr2.1/progs/biwt.f.
This is an independent C-level restatement of that algorithm that keeps the
Fortran's precision: data, location, median, MAD and step are float32
(Fortran ``real``); the sums and the per-sample terms are float64
(``real*8``).  Consequences that matter for bit-for-bit agreement:

* ``t0 = x(i) - xbl`` is a float32 subtraction, then widened to float64;
* the step ``delta = sum1/sum2`` is rounded to float32 before ``xbl += delta``;
* the sums run over the *sorted* sample (``medmad`` sorts in place);
* the MAD is what Karl's walk outward from the median gives, including its
  handling of ties and of an exhausted side (not always the true MAD);
* ``delta`` starts as ``max(2e-5, |median|)``, so when that is below
  ``1e-4 * MAD`` no step is taken and the median is returned.

Special cases: n < 1 gives (-666, -2), n == 1 gives (x, -1), n == 2 gives
(mean, |x_min - mean|); MAD < 1e-6 * max(1, |median|) gives (median, MAD).
"""
import numpy as np

from libc.math cimport fabs, fabsf, sqrt, isfinite, NAN, INFINITY
from libc.stdlib cimport malloc, free, qsort
from libc.string cimport memcpy

cdef int _cmp_float(const void* a, const void* b) noexcept nogil:
    cdef float u = (<const float*>a)[0], w = (<const float*>b)[0]
    return (u > w) - (u < w)


cdef void _sort(float* a, Py_ssize_t n) noexcept nogil:
    """Sort a[0:n] ascending (no NaNs): insertion sort for n <= 32, else
    libc qsort.  (Karl uses a heapsort; only the sorted values matter.)"""
    cdef Py_ssize_t i, j
    cdef float v
    if n > 32:
        qsort(a, n, sizeof(float), _cmp_float)
        return
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


cdef void _medmad(const float* x, Py_ssize_t n, Py_ssize_t s, float* med,
                  float* mad) noexcept nogil:
    """Median and MAD of sorted x[0], x[s], .. x[(n-1)s] (n >= 3) as ``medmad``.

    Karl's walk merges, outward from the median, the deviations below it,
    L_a = xmed - x(m+1-a), and above it, R_b = x(r+b) - xmed (m = n/2,
    r = m+1 for odd n, m for even n; a, b = 1..m; Fortran 1-based x), taking
    the smaller (ties: R) m times; xmad is the last taken.  It never exhausts
    a side before the last pick, so for odd n xmad is the m-th smallest of
    L u R.  For even n the walk then averages with the next candidate:
    0.5*(m-th + (m+1)-th smallest), except when all m picks came from one
    side, where its pointer logic re-uses the last value: L_m < R_1 gives
    0.5*(L_m + L_m), R_m <= L_1 gives 0.5*(R_m + R_m).  Same float32
    operations as the walk, so the same bits; the m-th smallest is found by
    bisection on how many come from L.  (The literal walk is
    ``hetred._ext.reference.biweight_scalar_reference``; tests compare.)
    """
    cdef Py_ssize_t m = n // 2, r, lo, hi, mid
    cdef bint even = (n % 2) == 0
    cdef float xmed, kth, l_next, r_next
    xmed = <float>0.5 * (x[(m - 1) * s] + x[m * s]) if even else x[m * s]
    med[0] = xmed
    r = m if even else m + 1
    # L(a) = xmed - x[(m - a) * s], R(b) = x[(r + b - 1) * s] - xmed (1-based a, b)
    if even:
        if xmed - x[0] < x[r * s] - xmed:                      # L_m < R_1
            kth = xmed - x[0]
            mad[0] = <float>0.5 * (kth + kth)
            return
        if x[(n - 1) * s] - xmed <= xmed - x[(m - 1) * s]:    # R_m <= L_1
            kth = x[(n - 1) * s] - xmed
            mad[0] = <float>0.5 * (kth + kth)
            return
    lo = 0
    hi = m
    while lo < hi:            # first a with not L(a+1) < R(m-a)
        mid = (lo + hi) // 2
        if xmed - x[(m - mid - 1) * s] < x[(r + m - mid - 1) * s] - xmed:
            lo = mid + 1
        else:
            hi = mid
    # a = lo from L, b = m - lo from R; kth = max(L(a), R(b)), absent = -inf
    kth = -INFINITY
    if lo > 0:
        kth = xmed - x[(m - lo) * s]
    if lo < m and x[(r + m - lo - 1) * s] - xmed > kth:
        kth = x[(r + m - lo - 1) * s] - xmed
    if not even:
        mad[0] = kth
        return
    l_next = xmed - x[(m - lo - 1) * s] if lo < m else INFINITY
    r_next = x[(r + m - lo) * s] - xmed if lo > 0 else INFINITY
    mad[0] = <float>0.5 * (kth + (l_next if l_next < r_next else r_next))


cdef void biwgt(float* x, Py_ssize_t n, float* loc, float* scale) noexcept nogil:
    """Karl's ``biwgt`` on ``x[0:n]`` (finite values); sorts x in place."""
    if n >= 3:
        _sort(x, n)
    biwgt_sorted(x, n, loc, scale)


cdef void biwgt_sorted(const float* x, Py_ssize_t n, float* loc, float* scale) noexcept nogil:
    """:func:`biwgt` on ``x[0:n]`` already sorted ascending (finite values)."""
    cdef float xbl, xmed, xmad, cmad, cmadsq, delta, lo, hi
    cdef double sum1, sum2, t0, t1, cmad_d, cmadsq_d
    cdef Py_ssize_t i, icnt
    if n < 1:
        loc[0] = -666.0
        scale[0] = -2.0
        return
    if n == 1:
        loc[0] = x[0]
        scale[0] = -1.0
        return
    if n == 2:
        lo = x[0] if x[0] <= x[1] else x[1]
        hi = x[1] if x[0] <= x[1] else x[0]
        xbl = (lo + hi) / <float>2.0
        loc[0] = xbl
        scale[0] = fabsf(lo - xbl)
        return

    _medmad(x, n, 1, &xmed, &xmad)
    if xmad < <float>1.0e-6 * (<float>1.0 if fabsf(xmed) < <float>1.0 else fabsf(xmed)):
        loc[0] = xmed
        scale[0] = xmad
        return

    xbl = xmed
    delta = <float>2.0e-5 if fabsf(xmed) < <float>2.0e-5 else fabsf(xmed)
    cmad = <float>6.0 * xmad
    cmadsq = cmad * cmad
    cmad_d = cmad
    cmadsq_d = cmadsq
    icnt = 0
    while fabsf(delta) >= <float>1.0e-4 * xmad and icnt < 20:
        icnt += 1
        sum1 = 0.0
        sum2 = 0.0
        for i in range(n):
            t0 = <double>(x[i] - xbl)
            if fabs(t0) < cmad_d:
                t1 = cmadsq_d - t0 * t0
                t1 = t1 * t1
                sum1 = sum1 + t0 * t1
                sum2 = sum2 + t1
        delta = <float>(sum1 / sum2)
        xbl = xbl + delta

    sum1 = 0.0
    sum2 = 0.0
    cmad = <float>9.0 * xmad
    cmadsq = cmad * cmad
    cmad_d = cmad
    cmadsq_d = cmadsq
    for i in range(n):
        t0 = <double>(x[i] - xbl)
        if fabs(t0) < cmad_d:
            t0 = t0 * t0
            t1 = cmadsq_d - t0
            sum1 = sum1 + t0 * t1 * t1 * t1 * t1
            sum2 = sum2 + t1 * (cmadsq_d - 5.0 * t0)
    loc[0] = xbl
    scale[0] = <float>(n * sqrt(sum1 / <double>(<float>(n - 1.0))) / fabs(sum2))


# ---------------------------------------------------------------------------
# Column driver: groups of _LANES columns share a tile, row i of which holds
# value i of each column (non-finite values as +inf).  A sorting network sorts
# all lanes at once; median, MAD and the special cases are per lane; the
# location iteration and the scale sums run in lockstep over the lanes with
# GCC/Clang vector extensions (SSE2/NEON; an AVX2 clone on x86-64).  Each lane
# does the operations of ``biwgt`` above in the same order (sorted-order,
# sequential sums), so the results are the same bits.  A +inf row fails
# |t0| < cmad, and a masked-out term is +0.0, which leaves a sum unchanged.

cdef extern from *:
    """
    /* No fused multiply-add: the sums must round like Karl's Fortran. */
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    #define BW_LANES 8

    /* Per-lane sums over rows of tile[i*BW_LANES + lane] (see _group), W
       lanes per vector of VD (double) / VF (float) / VL (int64 mask).
       kind 0: location, sum t0*(c^2-t0^2)^2 and (c^2-t0^2)^2;
       kind 1: scale, sum t0^2*(c^2-t0^2)^4 and (c^2-t0^2)*(c^2-5*t0^2). */
    #define BW_LANE_SUMS_BODY(VF, VD, VL, W)                                    \
        enum { NV = BW_LANES / W };                                             \
        VF xb[NV], r;                                                           \
        VD c[NV], csq[NV], s1[NV], s2[NV], t0, t1, u, a, b;                     \
        VL in, absmask = (VL){0} + 0x7fffffffffffffffLL;                        \
        int k;                                                                  \
        for (k = 0; k < NV; k++) {                                              \
            memcpy(&xb[k], xbl + W * k, sizeof r);                              \
            memcpy(&c[k], cm + W * k, sizeof t0);                               \
            memcpy(&csq[k], cmsq + W * k, sizeof t0);                           \
            s1[k] = (VD){0};                                                    \
            s2[k] = (VD){0};                                                    \
        }                                                                       \
        for (Py_ssize_t i = 0; i < rows; i++) {                                 \
            for (k = 0; k < NV; k++) {                                          \
                memcpy(&r, tile + i * BW_LANES + W * k, sizeof r);              \
                t0 = __builtin_convertvector(r - xb[k], VD); /* f32 subtract */ \
                in = (VL)((VD)((VL)t0 & absmask) < c[k]);    /* |t0| < cmad */  \
                if (kind == 0) {                                                \
                    t1 = csq[k] - t0 * t0;                                      \
                    t1 = t1 * t1;                                               \
                    a = t0 * t1;                                                \
                    b = t1;                                                     \
                } else {                                                        \
                    u = t0 * t0;                                                \
                    t1 = csq[k] - u;                                            \
                    a = u * t1 * t1 * t1 * t1;                                  \
                    b = t1 * (csq[k] - 5.0 * u);                                \
                }                                                               \
                s1[k] = s1[k] + (VD)((VL)a & in);  /* masked term is +0.0 */    \
                s2[k] = s2[k] + (VD)((VL)b & in);                               \
            }                                                                   \
        }                                                                       \
        memcpy(s1out, s1, sizeof s1);                                           \
        memcpy(s2out, s2, sizeof s2);

    #define BW_LANE_SUMS_ARGS const float *tile, Py_ssize_t rows, const float *xbl, \
        const double *cm, const double *cmsq, int kind, double *s1out, double *s2out

    typedef float bw_v2f __attribute__((vector_size(8)));
    typedef double bw_v2d __attribute__((vector_size(16)));
    typedef long long bw_v2l __attribute__((vector_size(16)));
    typedef float bw_v4f __attribute__((vector_size(16)));
    typedef double bw_v4d __attribute__((vector_size(32)));
    typedef long long bw_v4l __attribute__((vector_size(32)));

    /* Portable build: 16-byte vectors (SSE2 on x86-64, NEON on arm64). */
    static void bw_lane_sums_v2(BW_LANE_SUMS_ARGS) { BW_LANE_SUMS_BODY(bw_v2f, bw_v2d, bw_v2l, 2) }

    #if defined(__x86_64__) && defined(__GNUC__) && !defined(__AVX2__)
    /* x86-64 built for the baseline ISA: 32-byte AVX2 clone picked at run time
       (AVX2 without FMA, so the arithmetic is unchanged). */
    __attribute__((target("avx2")))
    static void bw_lane_sums_v4(BW_LANE_SUMS_ARGS) { BW_LANE_SUMS_BODY(bw_v4f, bw_v4d, bw_v4l, 4) }
    static int bw_have_avx2 = -1;
    static void bw_lane_sums(BW_LANE_SUMS_ARGS)
    {
        if (bw_have_avx2 < 0)
            bw_have_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
        if (bw_have_avx2)
            bw_lane_sums_v4(tile, rows, xbl, cm, cmsq, kind, s1out, s2out);
        else
            bw_lane_sums_v2(tile, rows, xbl, cm, cmsq, kind, s1out, s2out);
    }
    #elif defined(__AVX2__)
    static void bw_lane_sums(BW_LANE_SUMS_ARGS) { BW_LANE_SUMS_BODY(bw_v4f, bw_v4d, bw_v4l, 4) }
    #else
    #define bw_lane_sums bw_lane_sums_v2
    #endif

    /* Sorting network on all lanes at once: compare-exchange row pairs[2p]
       with row pairs[2p+1]; equal values never swap. */
    typedef int bw_v4i __attribute__((vector_size(16)));
    static void bw_network_sort(float *tile, const int *pairs, Py_ssize_t npairs)
    {
        for (Py_ssize_t p = 0; p < npairs; p++) {
            float *ra = tile + (Py_ssize_t)pairs[2 * p] * BW_LANES;
            float *rb = tile + (Py_ssize_t)pairs[2 * p + 1] * BW_LANES;
            for (int h = 0; h < BW_LANES; h += 4) {
                bw_v4f u, w;
                bw_v4i t;
                memcpy(&u, ra + h, sizeof u);
                memcpy(&w, rb + h, sizeof w);
                t = ((bw_v4i)u ^ (bw_v4i)w) & (w < u);    /* swap where w < u */
                u = (bw_v4f)((bw_v4i)u ^ t);
                w = (bw_v4f)((bw_v4i)w ^ t);
                memcpy(ra + h, &u, sizeof u);
                memcpy(rb + h, &w, sizeof w);
            }
        }
    }
    """
    void bw_lane_sums(const float* tile, Py_ssize_t rows, const float* xbl,
                      const double* cm, const double* cmsq, int kind,
                      double* s1, double* s2) noexcept nogil
    void bw_network_sort(float* tile, const int* pairs, Py_ssize_t npairs) noexcept nogil

cdef enum:
    _LANES = 8      # must equal BW_LANES above


cdef void _group(const float* tile, Py_ssize_t rows, const Py_ssize_t* cnt,
                 const bint* reg, const float* xmed, const float* xmad,
                 float* loc, float* scale) noexcept nogil:
    """Location iteration and scale of ``biwgt``, in lockstep over the lanes.

    tile[i * _LANES + c] is the i-th smallest value of lane c (+inf past its
    count cnt[c]); rows is the largest count.  Writes loc[c], scale[c] for
    the lanes with reg[c] set (n >= 3 and MAD above the early-return limit).
    """
    cdef float xbl[_LANES]
    cdef float delta[_LANES]
    cdef double cm[_LANES]
    cdef double cmsq[_LANES]
    cdef double s1[_LANES]
    cdef double s2[_LANES]
    cdef bint active[_LANES]
    cdef bint any_active = False
    cdef float cmad
    cdef Py_ssize_t c, icnt = 0

    for c in range(_LANES):
        xbl[c] = xmed[c] if reg[c] else <float>0.0
        delta[c] = <float>2.0e-5 if fabsf(xbl[c]) < <float>2.0e-5 else fabsf(xbl[c])
        cmad = <float>6.0 * xmad[c] if reg[c] else <float>0.0
        cm[c] = cmad
        cmsq[c] = cmad * cmad
        active[c] = reg[c] and fabsf(delta[c]) >= <float>1.0e-4 * xmad[c]
        any_active = any_active or active[c]
    # A lane that stops never restarts, so every active lane has done icnt steps.
    while any_active and icnt < 20:
        icnt += 1
        bw_lane_sums(tile, rows, xbl, cm, cmsq, 0, s1, s2)
        any_active = False
        for c in range(_LANES):
            if active[c]:
                delta[c] = <float>(s1[c] / s2[c])
                xbl[c] = xbl[c] + delta[c]
                active[c] = fabsf(delta[c]) >= <float>1.0e-4 * xmad[c]
                any_active = any_active or active[c]

    for c in range(_LANES):
        cmad = <float>9.0 * xmad[c] if reg[c] else <float>0.0
        cm[c] = cmad
        cmsq[c] = cmad * cmad
    bw_lane_sums(tile, rows, xbl, cm, cmsq, 1, s1, s2)
    for c in range(_LANES):
        if reg[c]:
            loc[c] = xbl[c]
            scale[c] = <float>(cnt[c] * sqrt(s1[c] / <double>(<float>(cnt[c] - 1.0)))
                               / fabs(s2[c]))


def _batcher_pairs(Py_ssize_t n):
    """Batcher's odd-even merge sorting network for n wires, as int32 pairs.

    The power-of-two network restricted to the first n wires: wires >= n
    would hold +inf, which no comparator moves, so dropping them is exact.
    """
    pairs = []
    cdef Py_ssize_t p = 1, k, j, i
    while p < n:
        k = p
        while k >= 1:
            j = k % p
            while j + k < n:
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
                j += 2 * k
            k //= 2
        p *= 2
    return np.asarray(pairs, dtype=np.int32).reshape(-1, 2)


cdef Py_ssize_t _NETWORK_MAX = 256   # larger n: sort with NumPy first instead


def biweight_columns(const float[:, :] x):
    """Biweight (location, scale) of each column of a float32 (n, M) array.

    Each of the M columns is reduced over its n values with Karl Gebhardt's
    ``biwgt``; non-finite values (NaN, +/-inf) are skipped, so n per column is
    the number of finite values.  Any strides are accepted.  Returns two
    float32 arrays of length M, in the units of ``x``.
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1]
    cdef Py_ssize_t i, j, j0, g, k, c, rows, npairs = 0
    cdef float v
    cdef float xmed[_LANES]
    cdef float xmad[_LANES]
    cdef float gloc[_LANES]
    cdef float gscale[_LANES]
    cdef bint reg[_LANES]
    cdef Py_ssize_t cnt[_LANES]
    cdef bint network = n <= _NETWORK_MAX, full, ok
    if not network:      # NaN sort last; -inf first, so compact finite values below
        x = np.sort(np.asarray(x), axis=0)
    loc_arr = np.empty(m, dtype=np.float32)
    scale_arr = np.empty(m, dtype=np.float32)
    cdef float[::1] loc = loc_arr
    cdef float[::1] scale = scale_arr
    pairs_arr = _batcher_pairs(n if network else 0)
    cdef const int[:, ::1] pairs = pairs_arr
    cdef const int* pp = &pairs[0, 0] if pairs.shape[0] else NULL
    npairs = pairs.shape[0]
    cdef float* buf = <float*>malloc((n + 1) * sizeof(float))
    cdef float* tile = <float*>malloc((n + 1) * _LANES * sizeof(float))
    if buf == NULL or tile == NULL:
        free(buf)
        free(tile)
        raise MemoryError()
    with nogil:
        for g in range((m + _LANES - 1) // _LANES):
            j0 = g * _LANES
            full = j0 + _LANES <= m
            # Gather the group into the tile, sorted, with non-finite values as
            # +inf after the cnt[c] finite ones.
            for c in range(_LANES):
                cnt[c] = 0
            if network:
                for i in range(n):
                    for c in range(_LANES):
                        v = x[i, j0 + c] if full or j0 + c < m else NAN
                        ok = isfinite(v)
                        cnt[c] += ok
                        tile[i * _LANES + c] = v if ok else INFINITY
                bw_network_sort(tile, pp, npairs)   # every lane at once
            else:
                for c in range(_LANES):
                    for i in range(n):
                        v = x[i, j0 + c] if j0 + c < m else NAN
                        if isfinite(v):
                            tile[cnt[c] * _LANES + c] = v
                            cnt[c] += 1
                    for i in range(cnt[c], n):
                        tile[i * _LANES + c] = INFINITY
            # Per lane: special cases, median and MAD, early return.
            rows = 0
            for c in range(_LANES):
                reg[c] = False
                j = j0 + c
                k = cnt[c]
                if j >= m:
                    continue
                if k < 3:
                    for i in range(k):
                        buf[i] = tile[i * _LANES + c]
                    biwgt(buf, k, &loc[j], &scale[j])
                    continue
                _medmad(tile + c, k, _LANES, &xmed[c], &xmad[c])
                if xmad[c] < <float>1.0e-6 * (<float>1.0 if fabsf(xmed[c]) < <float>1.0
                                              else fabsf(xmed[c])):
                    loc[j] = xmed[c]
                    scale[j] = xmad[c]
                    continue
                reg[c] = True
                if k > rows:
                    rows = k
            if rows > 0:
                _group(tile, rows, cnt, reg, xmed, xmad, gloc, gscale)
                for c in range(_LANES):
                    if reg[c]:
                        loc[j0 + c] = gloc[c]
                        scale[j0 + c] = gscale[c]
    free(buf)
    free(tile)
    return loc_arr, scale_arr


def biweight_1d(const float[:] x):
    """Biweight (location, scale) of a 1-D float32 array with the scalar
    ``biwgt`` routine (non-finite values skipped); returns two Python floats."""
    cdef Py_ssize_t n = x.shape[0], i, k = 0
    cdef float loc, scale
    cdef float* buf = <float*>malloc((n + 1) * sizeof(float))
    if buf == NULL:
        raise MemoryError()
    with nogil:
        for i in range(n):
            if isfinite(x[i]):
                buf[k] = x[i]
                k += 1
        biwgt(buf, k, &loc, &scale)
    free(buf)
    return float(loc), float(scale)
