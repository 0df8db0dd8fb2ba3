# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Kernels of ``hetred fullsky`` (karlspipe hdr2.1 progs/vred3.f): the master sky's runs and the
W0/W1 grid. NumPy references: :mod:`hetred._ext.reference_fullsky` (tests compare both).

* :func:`master_runs` -- vred3's ``smooth3``: points sorted by wavelength, runs starting every
  ``ns`` points and holding points i .. min(n - 1, i + ns) (ns + 1 points; neighbours share one):
  per run the mean wavelength (float64) and Karl's biweight of the values (``biwgt``, the same
  bits as :func:`hetred.stats.biweight`).
* :func:`grid_chi2` -- vred3's wavelength search: for every (W1, W0) of the grid the sum over
  an amp's master points of (y - xb master(lambda'))^2, plus ``hg_weight`` times the same sum over
  the points whose lambda' lies inside ``hg_window`` (exclusive), lambda' = lambda + W0 +
  W1 (pivot - lambda); master(lambda') linear between its points and 0 outside them (vred3's
  ``xlinint2``). Sums in float64 (Karl: float32).
* :func:`segment_biweights` -- vred3's ``getback``: per fiber the biweight of its neighbours'
  values in each column segment, from rows sorted once and merged (no sort per biweight).
* :func:`sort_by_wave` -- vred3's ``sort2`` before ``smooth3``: samples (wavelength, value) in
  wavelength order, stable (ties keep their input order), by a least-significant-digit radix sort
  of the wavelengths' float32 bits (4 passes of 8 bits) that carries the values along: the same
  order as NumPy's stable argsort, in O(n), without the gathers of a permutation.
"""
import numpy as np

from libc.stdlib cimport malloc, free
from libc.stdint cimport uint32_t
from hetred._ext.biweight cimport biwgt, biwgt_sorted
from hetred._ext.biweight import biweight_columns


def master_runs(const float[::1] wave, const float[::1] value, Py_ssize_t ns):
    """(mean wavelength (m,) float64, biweight (m,) float32) of the runs of ``ns`` + 1 points of
    ``wave``/``value`` (sorted by wavelength; values finite), runs starting at 0, ns, 2 ns, ...
    (module docstring). The runs holding all ns + 1 points go, as a strided (ns + 1, m) view, to
    the biweight kernel's column driver (:func:`hetred._ext.biweight.biweight_columns`: eight runs
    at a time in SIMD lanes, NumPy's sort first for long runs); the short last run(s) to
    ``biwgt``; the mean wavelengths are summed here in float64."""
    cdef Py_ssize_t n = wave.shape[0]
    if value.shape[0] != n:
        raise ValueError("wave and value differ in length")
    if ns < 1:
        raise ValueError("ns must be >= 1")
    cdef Py_ssize_t m = (n + ns - 1) // ns if n > 0 else 0
    wm_arr = np.empty(m, dtype=np.float64)
    xm_arr = np.empty(m, dtype=np.float32)
    if m == 0:
        return wm_arr, xm_arr
    cdef double[::1] wm = wm_arr
    cdef float[::1] xm = xm_arr
    # runs with all ns + 1 points: k < full (the run k covers k ns .. k ns + ns <= n - 1)
    cdef Py_ssize_t full = (n - 1) // ns if n > ns else 0
    if full:
        v = np.asarray(value)
        runs = np.lib.stride_tricks.as_strided(v, shape=(ns + 1, full), strides=(4, 4 * ns), writeable=False)
        xm_arr[:full] = biweight_columns(runs)[0]
    cdef float* buf = <float*>malloc((ns + 2) * sizeof(float))
    if buf == NULL:
        raise MemoryError()
    cdef Py_ssize_t k, i, j, jmax, cnt
    cdef double sw
    cdef float loc, scale
    try:
        with nogil:
            for k in range(m):
                i = k * ns
                jmax = i + ns
                if jmax > n - 1:
                    jmax = n - 1
                sw = 0.0
                for j in range(i, jmax + 1):
                    sw = sw + wave[j]
                wm[k] = sw / (jmax - i + 1)
                if k >= full:
                    cnt = jmax - i + 1
                    for j in range(cnt):
                        buf[j] = value[i + j]
                    biwgt(buf, cnt, &loc, &scale)
                    xm[k] = loc
    finally:
        free(buf)
    return wm_arr, xm_arr


cdef inline double _interp0(double xp, const double* x, const float* y, Py_ssize_t n,
                            Py_ssize_t* j) noexcept nogil:
    """y at xp, linear between the points of x (increasing), 0 outside [x[0], x[n-1]];
    j[0] is a hint (the segment of the previous, smaller xp) and is updated."""
    cdef Py_ssize_t lo, hi, mid, k
    if n < 2 or xp < x[0] or xp > x[n - 1] or xp != xp:
        return 0.0
    k = j[0]
    if k < 0 or k > n - 2 or xp < x[k]:
        lo = 0
        hi = n - 1
        while hi - lo > 1:            # x[lo] <= xp <= x[hi]
            mid = (lo + hi) // 2
            if x[mid] <= xp:
                lo = mid
            else:
                hi = mid
        k = lo
    while k < n - 2 and xp > x[k + 1]:
        k = k + 1
    j[0] = k
    if x[k + 1] == x[k]:
        return y[k]
    return y[k] + (y[k + 1] - y[k]) * (xp - x[k]) / (x[k + 1] - x[k])


def grid_chi2(const double[::1] x2, const float[::1] y2, const double[::1] wm, const float[::1] xm,
              double xb, const double[::1] w0s, const double[::1] w1s, double pivot,
              double hg_lo, double hg_hi, double hg_weight):
    """(len(w1s), len(w0s)) float64: vred3's sum for each W1 (rows) and W0 (columns) of the grid
    (module docstring). x2, y2: the amp's master (increasing wavelengths); wm, xm: the exposure's."""
    cdef Py_ssize_t n2 = x2.shape[0], nm = wm.shape[0], a, b, i, jh
    if y2.shape[0] != n2 or xm.shape[0] != nm:
        raise ValueError("x2/y2 or wm/xm differ in length")
    out_arr = np.zeros((w1s.shape[0], w0s.shape[0]), dtype=np.float64)
    cdef double[:, ::1] out = out_arr
    cdef double w0, w1, wtry, d, s, s2
    cdef const double* xp = &wm[0] if nm > 0 else NULL
    cdef const float* yp = &xm[0] if nm > 0 else NULL
    with nogil:
        for a in range(w1s.shape[0]):
            w1 = w1s[a]
            for b in range(w0s.shape[0]):
                w0 = w0s[b]
                jh = -1
                s = 0.0
                s2 = 0.0
                for i in range(n2):
                    wtry = x2[i] + w0
                    wtry = wtry + w1 * (pivot - x2[i])
                    d = y2[i] - _interp0(wtry, xp, yp, nm, &jh) * xb
                    d = d * d
                    s = s + d
                    if wtry > hg_lo and wtry < hg_hi:
                        s2 = s2 + d
                out[a, b] = s + hg_weight * s2
    return out_arr


def segment_biweights(const float[:, :, ::1] sorted_segs, const long[::1] widths,
                      const unsigned char[::1] use, Py_ssize_t half):
    """vred3 ``getback``'s biweights: for every segment q and fiber j, Karl's biweight of the
    values of segment q of the fibers t with 0 < |t - j| <= ``half`` and ``use[t]`` (the
    non-continuum fibers), i.e. of the union of their rows.

    sorted_segs: (nseg, nfib, wmax) float32, row t of segment q sorted ascending in its first
    widths[q] entries (finite). Returns (loc (nseg, nfib) float32, have (nfib,) bool: j has at
    least one such neighbour). The rows are merged in sorted order (a k-way merge), then
    ``biwgt`` runs on the sorted union without sorting again."""
    cdef Py_ssize_t nseg = sorted_segs.shape[0], nfib = sorted_segs.shape[1], wmax = sorted_segs.shape[2]
    if widths.shape[0] != nseg or use.shape[0] != nfib:
        raise ValueError("widths or use do not match sorted_segs")
    loc_arr = np.full((nseg, nfib), -666.0, dtype=np.float32)
    have_arr = np.zeros(nfib, dtype=bool)
    cdef float[:, ::1] loc = loc_arr
    cdef unsigned char[::1] have = have_arr.view(np.uint8)
    cdef Py_ssize_t maxk = 2 * half + 1
    cdef float* buf = <float*>malloc((maxk * wmax + 1) * sizeof(float))
    cdef Py_ssize_t* rows = <Py_ssize_t*>malloc(maxk * sizeof(Py_ssize_t))
    cdef Py_ssize_t* pos = <Py_ssize_t*>malloc(maxk * sizeof(Py_ssize_t))
    if buf == NULL or rows == NULL or pos == NULL:
        free(buf); free(rows); free(pos)
        raise MemoryError()
    cdef Py_ssize_t q, j, t, k, nk, n, best, w
    cdef float v, bv, scale
    try:
        with nogil:
            for j in range(nfib):
                nk = 0
                for t in range(j - half, j + half + 1):
                    if t >= 0 and t < nfib and t != j and use[t]:
                        rows[nk] = t
                        nk = nk + 1
                if nk == 0:
                    continue
                have[j] = 1
                for q in range(nseg):
                    w = widths[q]
                    for k in range(nk):
                        pos[k] = 0
                    for n in range(nk * w):          # k-way merge (k <= 2 half)
                        best = -1
                        for k in range(nk):
                            if pos[k] < w:
                                v = sorted_segs[q, rows[k], pos[k]]
                                if best < 0 or v < bv:
                                    best = k
                                    bv = v
                        buf[n] = bv
                        pos[best] = pos[best] + 1
                    biwgt_sorted(buf, nk * w, &loc[q, j], &scale)
    finally:
        free(buf); free(rows); free(pos)
    return loc_arr, have_arr


cdef inline uint32_t _fkey(float x) noexcept nogil:
    """float32 -> uint32 in numeric order (NumPy's: -0.0 equals +0.0, NaN last)."""
    cdef uint32_t b
    if x != x:
        return 0xFFFFFFFFu
    if x == 0:
        return 0x80000000u
    b = (<uint32_t*>&x)[0]
    if b & 0x80000000u:
        return ~b
    return b | 0x80000000u


cdef inline float _fval(uint32_t k) noexcept nogil:
    """The inverse of :func:`_fkey` (a NaN comes back as a NaN, -0.0 as +0.0)."""
    cdef uint32_t b
    if k & 0x80000000u:
        b = k & 0x7FFFFFFFu
    else:
        b = ~k
    return (<float*>&b)[0]


def sort_by_wave(const float[::1] wave, const float[::1] value, bint with_order=False):
    """(wavelengths (n,) float32, values (n,) float32, order (n,) int64 or None): the samples in
    wavelength order, ties in input order (the same as ``np.argsort(wave, kind="stable")``; NaN
    last, -0.0 as +0.0); ``order`` the input index of each sorted sample when ``with_order``.
    Radix sort of the float32 bits, 4 passes of 8 bits (a pass whose digit is the same for every
    sample is skipped: wavelengths of 2048-8192 A share the top byte), ping-pong buffers."""
    cdef Py_ssize_t n = wave.shape[0]
    if value.shape[0] != n:
        raise ValueError("wave and value differ in length")
    k_a = np.empty(n, dtype=np.uint32)
    k_b = np.empty(n, dtype=np.uint32)
    v_a = np.empty(n, dtype=np.float32)
    v_b = np.empty(n, dtype=np.float32)
    i_a = np.empty(n if with_order else 0, dtype=np.uint32)
    i_b = np.empty(n if with_order else 0, dtype=np.uint32)
    cdef uint32_t[::1] ks = k_a, kd = k_b, is_ = i_a, id_ = i_b
    cdef float[::1] vs = v_a, vd = v_b
    cdef Py_ssize_t hist[4][256]
    cdef Py_ssize_t i, p, d, tot, c, npass = 0
    cdef uint32_t k
    cdef int shift
    cdef bint skip
    with nogil:
        for p in range(4):
            for d in range(256):
                hist[p][d] = 0
        for i in range(n):
            k = _fkey(wave[i])
            ks[i] = k
            vs[i] = value[i]
            if with_order:
                is_[i] = <uint32_t>i
            hist[0][k & 0xFFu] += 1
            hist[1][(k >> 8) & 0xFFu] += 1
            hist[2][(k >> 16) & 0xFFu] += 1
            hist[3][k >> 24] += 1
        for p in range(4):
            shift = 8 * p
            skip = False
            for d in range(256):
                if hist[p][d] == n:
                    skip = True
                    break
            if skip:
                continue
            tot = 0
            for d in range(256):
                c = hist[p][d]
                hist[p][d] = tot
                tot = tot + c
            for i in range(n):
                k = ks[i]
                d = (k >> shift) & 0xFFu
                c = hist[p][d]
                hist[p][d] = c + 1
                kd[c] = k
                vd[c] = vs[i]
                if with_order:
                    id_[c] = is_[i]
            ks, kd = kd, ks
            vs, vd = vd, vs
            if with_order:
                is_, id_ = id_, is_
            npass += 1
        for i in range(n):
            vd[i] = _fval(ks[i])         # the wavelengths, back in float32, into the free buffer
    w_out = np.asarray(vd)
    v_out = np.asarray(vs)
    order = np.asarray(is_).astype(np.int64) if with_order else None
    return w_out, v_out, order
