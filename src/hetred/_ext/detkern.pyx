# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The line search of ``hetred detect`` (fitradecsp mode 104 with sigma fixed) at many positions.

Same algorithm, inputs and outputs as :func:`hetred._ext.detect_reference.search_positions_reference`
(its module docstring describes every step); the tests compare the two. The profile-likelihood
scan uses a template tabulated at the ``2 / scan_step`` phases of the line centre between pixels,
so ``scan_step`` must divide the 2-Å pixel.
"""
import numpy as np

from libc.math cimport sqrt, exp, floor, ceil, fabs, INFINITY, M_PI
from libc.stdlib cimport malloc, realloc, free

cdef enum:
    P_RADIUS = 0
    P_SIGMA = 1
    P_SCAN = 2
    P_HALF = 3
    P_SHIFT = 4
    P_EDGE = 5
    P_SNCUT = 6
    P_SNHI = 7
    P_CHICUT = 8
    P_CONMAX = 9
    P_WD = 10
    P_NWIN = 11
    P_XNP = 12
    P_NFITHALF = 13
    P_NFITMIN = 14
    P_DSTEP = 15
    OPT_MULTIPLY = 0
    OPT_MASK = 1
    OPT_PROPAGATE = 2
    OPT_COMPRESSED = 3
    OPT_MAXFITS = 4
    NG = 1036

cdef double GRID0 = 3470.0
#: windows whose best grid point has S/N below this x sncut are not refined (the refinement moves
#: the line centre by <= half a grid step: A changes by < 1 %, the noise window by one pixel)
cdef double PRESCREEN = 0.8
#: the template is summed over +-5 sigma (a line's wings beyond hold < 6e-7 of its flux)
cdef double TEMPLATE_SIGMAS = 5.0
cdef double DGRID = 2.0


cdef inline double _lookup(const double[:, ::1] tab, Py_ssize_t row, double d, double step) noexcept nogil:
    cdef double u = d / step
    cdef Py_ssize_t n = tab.shape[1], i
    cdef double f
    if u >= n - 1:
        return 0.0
    i = <Py_ssize_t>u
    f = u - i
    return tab[row, i] * (1.0 - f) + tab[row, i + 1] * f


cdef struct Fits:
    Py_ssize_t n
    Py_ssize_t cap
    long long* pos
    double* val      # 6 values per fit: wave, flux, sigma, con, sn, chi


cdef int _push(Fits* F, long long p, double w, double fl, double sg, double c, double sn, double chi) noexcept nogil:
    cdef Py_ssize_t ncap
    cdef long long* np_
    cdef double* nv
    if F.n >= F.cap:
        ncap = F.cap * 2 + 1024
        np_ = <long long*>realloc(F.pos, ncap * sizeof(long long))
        if np_ == NULL:
            return -1
        F.pos = np_
        nv = <double*>realloc(F.val, ncap * 6 * sizeof(double))
        if nv == NULL:
            return -1
        F.val = nv
        F.cap = ncap
    F.pos[F.n] = p
    F.val[6 * F.n + 0] = w
    F.val[6 * F.n + 1] = fl
    F.val[6 * F.n + 2] = sg
    F.val[6 * F.n + 3] = c
    F.val[6 * F.n + 4] = sn
    F.val[6 * F.n + 5] = chi
    F.n += 1
    return 0


def search_positions(const float[:, ::1] flux, const float[:, ::1] ferr, const unsigned char[:, ::1] pixgood,
                     const double[::1] fx, const double[::1] fy, const double[::1] ux, const double[::1] uy,
                     const signed char[::1] iflag, const double[::1] px, const double[::1] py,
                     const double[:, ::1] tables, const double[::1] adr, const long long[::1] hat_lo,
                     const double[::1] hat_w, const double[::1] par, const long long[::1] opt):
    """The search at every position ``(px[p], py[p])``; returns (pos, wave, flux, sigma, con,
    sn, chi) as in the NumPy reference (arrays of the kept fits, in position order)."""
    cdef Py_ssize_t nf = fx.shape[0], npos = px.shape[0]
    cdef Py_ssize_t p, i, k, j, n, m, b, nu, j0, j1, jlo, jhi, nwin, half_t, q, nmu, kk, m0, m1, nfit, nkept
    cdef Py_ssize_t best, ii, jj
    cdef double x0, y0, d, dx, dy, vx, vy, gg, f, ww, G, w2, rad, step, sig, norm_t, xx, mu, w0, lo, hi
    cdef double Sw, Sy, Syy, det, A, con, chi, t, t1, t2, ty, mlo, mhi, x1, xn, den, delta, sn, noise2, chim
    cdef double cm, c0, cp, apc, h
    cdef bint multiply = opt[OPT_MULTIPLY] != 0, mask = opt[OPT_MASK] != 0
    cdef bint propagate = opt[OPT_PROPAGATE] != 0, compressed = opt[OPT_COMPRESSED] != 0
    cdef long long maxfits = opt[OPT_MAXFITS]
    cdef double dstep = par[P_DSTEP]
    rad = par[P_RADIUS]
    sig = par[P_SIGMA]
    step = par[P_SCAN]
    nwin = <Py_ssize_t>par[P_NWIN]
    q = <Py_ssize_t>(DGRID / step + 0.5)
    if fabs(q * step - DGRID) > 1e-9:
        raise ValueError("scan_step must divide the 2-A pixel")
    half_t = <Py_ssize_t>ceil(TEMPLATE_SIGMAS * sig / DGRID)
    nmu = <Py_ssize_t>((NG - 1) * DGRID / step + 0.5) + 1
    norm_t = 1.0 / sqrt(2.0 * M_PI * sig * sig)

    # template at every phase: tpl[b * nk + (k + half_t)] = N(2 k - b step), k in [-half_t, half_t+1]
    cdef Py_ssize_t nk = 2 * half_t + 2
    tpl_a = np.empty(q * nk, dtype=np.float64)
    cdef double[::1] tpl = tpl_a
    for b in range(q):
        for k in range(nk):
            xx = DGRID * (k - half_t) - b * step
            tpl[b * nk + k] = exp(-0.5 * (xx / sig) * (xx / sig)) * norm_t
    tpl[nk - 1] = 0.0      # at phase 0 the reach is +-half_t pixels (as the reference's floor/ceil)

    cdef Fits F
    F.n = 0
    F.cap = 0
    F.pos = NULL
    F.val = NULL
    cdef int* use = <int*>malloc(nf * sizeof(int))
    cdef double* g = <double*>malloc(nf * sizeof(double))
    cdef double* fw = <double*>malloc(nf * 5 * sizeof(double))
    cdef double* sumr = <double*>malloc(5 * sizeof(double))
    cdef double* gnode = <double*>malloc(5 * sizeof(double))
    cdef double* S3f = <double*>malloc(NG * sizeof(double))
    cdef double* S5f = <double*>malloc(NG * sizeof(double))
    cdef double* W2f = <double*>malloc(NG * sizeof(double))
    cdef double* invG = <double*>malloc(NG * sizeof(double))
    cdef double* fj = <double*>malloc(NG * sizeof(double))
    cdef double* wwf = <double*>malloc(NG * sizeof(double))
    cdef double* hwf = <double*>malloc(NG * sizeof(double))
    cdef Py_ssize_t seg0[5]
    cdef Py_ssize_t sgm
    cdef double af, bf
    cdef double* yv = <double*>malloc(NG * sizeof(double))
    cdef double* e2 = <double*>malloc(NG * sizeof(double))
    cdef double* wt = <double*>malloc(NG * sizeof(double))
    cdef double* cw = <double*>malloc((NG + 1) * sizeof(double))
    cdef double* cy = <double*>malloc((NG + 1) * sizeof(double))
    cdef double* cyy = <double*>malloc((NG + 1) * sizeof(double))
    cdef int* cn = <int*>malloc((NG + 1) * sizeof(int))
    cdef int* nextv = <int*>malloc((NG + 1) * sizeof(int))
    cdef int* prevv = <int*>malloc((NG + 1) * sizeof(int))
    cdef double* T1 = <double*>malloc(q * NG * sizeof(double))
    cdef double* T2 = <double*>malloc(q * NG * sizeof(double))
    cdef double* TY = <double*>malloc(q * NG * sizeof(double))
    cdef double* wy = <double*>malloc(NG * sizeof(double))
    cdef double* M1 = <double*>malloc(nmu * sizeof(double))
    cdef double* M2 = <double*>malloc(nmu * sizeof(double))
    cdef double* MY = <double*>malloc(nmu * sizeof(double))
    cdef double* QV = <double*>malloc(nmu * sizeof(double))
    cdef double* ce2 = <double*>malloc((NG + 1) * sizeof(double))
    cdef Py_ssize_t kt, o
    cdef double tt2, num, qv, qbest, cstat
    cdef double* kept = <double*>malloc((nwin + 1) * 5 * sizeof(double))
    cdef char* taken = <char*>malloc(nwin + 1)
    cdef double fadc[5]
    cdef double xg
    cdef int err = 0
    if (use == NULL or g == NULL or fw == NULL or sumr == NULL or gnode == NULL or S3f == NULL or S5f == NULL
            or W2f == NULL or invG == NULL or fj == NULL or wwf == NULL or hwf == NULL or yv == NULL or e2 == NULL or wt == NULL or cw == NULL or cy == NULL or cyy == NULL
            or cn == NULL or nextv == NULL or prevv == NULL or T1 == NULL or T2 == NULL or TY == NULL
            or kept == NULL or taken == NULL or wy == NULL or ce2 == NULL or M1 == NULL or M2 == NULL or MY == NULL or QV == NULL):
        err = 1
    try:
        if err:
            raise MemoryError()
        # the grid pixels of each ADR node segment (hat_lo is non-decreasing, 0..3)
        for sgm in range(5):
            seg0[sgm] = NG
        for j in range(NG - 1, -1, -1):
            seg0[hat_lo[j]] = j
            hwf[j] = hat_w[j]
        seg0[0] = 0
        for sgm in range(3, -1, -1):
            if seg0[sgm] > seg0[sgm + 1]:
                seg0[sgm] = seg0[sgm + 1]
        with nogil:
            for p in range(npos):
                if F.n >= maxfits:
                    break
                x0 = px[p]
                y0 = py[p]
                # --- step 1: fibers, weights, ADR fractions
                nu = 0
                for i in range(nf):
                    dx = fx[i] - x0
                    dy = fy[i] - y0
                    if dx * dx + dy * dy < rad * rad:
                        use[nu] = <int>i
                        nu += 1
                for n in range(5):
                    sumr[n] = 0.0
                    gnode[n] = 0.0
                if nu == 0:
                    continue
                for k in range(nu):
                    i = use[k]
                    dx = fx[i] - x0
                    dy = fy[i] - y0
                    g[k] = _lookup(tables, 0, sqrt(dx * dx + dy * dy), dstep)
                    if compressed:
                        vx = ux[k]
                        vy = uy[k]
                    else:
                        vx = ux[i]
                        vy = uy[i]
                    for n in range(5):
                        fadc[n] = _lookup(tables, 1 + n, sqrt((dx + adr[n] * vx) ** 2 + (dy + adr[n] * vy) ** 2),
                                          dstep)
                        sumr[n] += fadc[n]
                    for n in range(5):
                        fw[5 * k + n] = fadc[n] / fadc[2] if fadc[2] > 0 else 1.0
                    if iflag[i] == 0:
                        for n in range(5):
                            gnode[n] += g[k] * fw[5 * k + n]
                # --- step 2: the weighted flux spectrum (float32 sums over the fibers)
                for j in range(NG):
                    S3f[j] = 0.0
                    S5f[j] = 0.0
                    W2f[j] = 0.0
                    b = hat_lo[j]
                    h = hat_w[j]
                    G = gnode[b] * (1.0 - h) + gnode[b + 1] * h
                    invG[j] = 1.0 / G if G > 0 else 0.0
                for k in range(nu):
                    i = use[k]
                    if iflag[i] != 0:
                        continue
                    gg = g[k]
                    for sgm in range(4):
                        af = fw[5 * k + sgm]
                        bf = fw[5 * k + sgm + 1] - fw[5 * k + sgm]
                        for j in range(seg0[sgm], seg0[sgm + 1]):
                            fj[j] = af + bf * hwf[j]
                    if multiply:
                        for j in range(NG):
                            wwf[j] = gg * fj[j] * invG[j]
                    else:
                        for j in range(NG):
                            wwf[j] = gg * invG[j] / fj[j]
                    if mask:
                        for j in range(NG):
                            wwf[j] = wwf[j] * pixgood[i, j]
                    if propagate:
                        for j in range(NG):
                            S3f[j] += flux[i, j] * wwf[j]
                            S5f[j] += ferr[i, j] * ferr[i, j] * wwf[j] * wwf[j]
                            W2f[j] += wwf[j] * wwf[j]
                    else:
                        for j in range(NG):
                            S3f[j] += flux[i, j] * wwf[j]
                            S5f[j] += ferr[i, j] * ferr[i, j] * wwf[j]
                            W2f[j] += wwf[j] * wwf[j]
                cw[0] = 0.0
                cy[0] = 0.0
                cyy[0] = 0.0
                cn[0] = 0
                for j in range(NG):
                    b = hat_lo[j]
                    h = hat_w[j]
                    apc = sumr[b] * (1.0 - h) + sumr[b + 1] * h
                    yv[j] = 0.0
                    e2[j] = 0.0
                    wt[j] = 0.0
                    if W2f[j] > 0 and apc > 0:
                        xg = S3f[j] / W2f[j] / apc
                        if propagate:
                            f = sqrt(S5f[j]) / W2f[j] / apc
                        else:
                            f = sqrt(fabs(S5f[j] / W2f[j])) / apc
                        if xg != 0 and f > 0:
                            yv[j] = xg
                            e2[j] = f * f
                            wt[j] = 1.0 / (f * f)
                    cw[j + 1] = cw[j] + wt[j]
                    cy[j + 1] = cy[j] + wt[j] * yv[j]
                    cyy[j + 1] = cyy[j] + wt[j] * yv[j] * yv[j]
                    cn[j + 1] = cn[j] + (1 if wt[j] > 0 else 0)
                if cn[NG] < 3:
                    continue
                # next / previous valid pixel
                nextv[NG] = NG
                for j in range(NG - 1, -1, -1):
                    nextv[j] = j if wt[j] > 0 else nextv[j + 1]
                kk = -1
                for j in range(NG):
                    if wt[j] > 0:
                        kk = j
                    prevv[j] = <int>kk
                # --- step 3: template sums on the mu grid, per phase b: TQ[b * NG + kk] at mu = 3470 + 2 kk + b step
                for j in range(q * NG):
                    T1[j] = 0.0
                    T2[j] = 0.0
                    TY[j] = 0.0
                for j in range(NG):
                    wy[j] = wt[j] * yv[j]
                for b in range(q):
                    for kt in range(nk):
                        o = kt - half_t
                        t = tpl[b * nk + kt]
                        tt2 = t * t
                        j0 = -o if o < 0 else 0
                        j1 = NG - o if o > 0 else NG
                        for kk in range(j0, j1):
                            T1[b * NG + kk] += wt[kk + o] * t
                            T2[b * NG + kk] += wt[kk + o] * tt2
                            TY[b * NG + kk] += wy[kk + o] * t
                for b in range(q):
                    for kk in range(NG):
                        m = kk * q + b
                        if m < nmu:
                            M1[m] = T1[b * NG + kk]
                            M2[m] = T2[b * NG + kk]
                            MY[m] = TY[b * NG + kk]
                ce2[0] = 0.0
                for j in range(NG):
                    ce2[j + 1] = ce2[j] + e2[j]
                # --- windows
                nkept = 0
                cstat = 0.0
                for k in range(nwin):
                    w0 = GRID0 + k * ((NG - 1) * DGRID) / (nwin - 1)
                    lo = w0 - par[P_HALF]
                    hi = w0 + par[P_HALF]
                    jlo = <Py_ssize_t>floor((lo - GRID0) / DGRID) + 1
                    if jlo < 0:
                        jlo = 0
                    jhi = <Py_ssize_t>ceil((hi - GRID0) / DGRID) - 1
                    if jhi > NG - 1:
                        jhi = NG - 1
                    if jhi < jlo:
                        continue
                    nfit = cn[jhi + 1] - cn[jlo]
                    if nfit < 3:
                        continue
                    x1 = GRID0 + DGRID * nextv[jlo]
                    xn = GRID0 + DGRID * prevv[jhi]
                    Sw = cw[jhi + 1] - cw[jlo]
                    Sy = cy[jhi + 1] - cy[jlo]
                    Syy = cyy[jhi + 1] - cyy[jlo]
                    mlo = w0 - par[P_SHIFT]
                    if x1 + par[P_EDGE] > mlo:
                        mlo = x1 + par[P_EDGE]
                    mhi = w0 + par[P_SHIFT]
                    if xn - par[P_EDGE] < mhi:
                        mhi = xn - par[P_EDGE]
                    m0 = <Py_ssize_t>ceil((mlo - GRID0) / step - 1e-9)
                    m1 = <Py_ssize_t>floor((mhi - GRID0) / step + 1e-9)
                    if m1 < m0:
                        continue
                    # Q = (chi^2 of the continuum alone - chi^2) Sw, valid where det > 0 and A > 0
                    for m in range(m0, m1 + 1):
                        det = Sw * M2[m] - M1[m] * M1[m]
                        num = Sw * MY[m] - M1[m] * Sy
                        QV[m] = num * num / det if (det > 0 and num > 0) else -1.0
                    best = -1
                    qbest = 0.0
                    for m in range(m0, m1 + 1):
                        if QV[m] > qbest:
                            qbest = QV[m]
                            best = m
                    # a least chi^2 at the end of the range means the line lies beyond it: Karl's
                    # fit would move past max_shift (or the edge margin) and be rejected
                    if best < 0 or best == m0 or best == m1:
                        continue
                    mu = GRID0 + step * best
                    # S/N at the grid point: windows far below the cut need no refinement
                    A = (Sw * MY[best] - M1[best] * Sy) / (Sw * M2[best] - M1[best] * M1[best])
                    j0 = <Py_ssize_t>ceil((mu - par[P_XNP] - GRID0) / DGRID - 1e-9)
                    j1 = <Py_ssize_t>floor((mu + par[P_XNP] - GRID0) / DGRID + 1e-9)
                    if j0 < 0:
                        j0 = 0
                    if j1 > NG - 1:
                        j1 = NG - 1
                    noise2 = ce2[j1 + 1] - ce2[j0] if j1 >= j0 else 0.0
                    if noise2 <= 0 or 0.95 * A / sqrt(noise2) / 2.0 < PRESCREEN * par[P_SNCUT]:
                        continue
                    cstat = Syy - Sy * Sy / Sw
                    # parabola through the neighbours (both with A > 0)
                    c0 = cstat - qbest / Sw
                    cm = INFINITY
                    cp = INFINITY
                    if QV[best - 1] > 0:
                        cm = cstat - QV[best - 1] / Sw
                    if QV[best + 1] > 0:
                        cp = cstat - QV[best + 1] / Sw
                    if cm < INFINITY and cp < INFINITY:
                        den = cm - 2.0 * c0 + cp
                        if den > 0:
                            delta = 0.5 * (cm - cp) / den
                            if delta > 0.5:
                                delta = 0.5
                            if delta < -0.5:
                                delta = -0.5
                            mu += step * delta
                    # exact evaluation at mu
                    j0 = <Py_ssize_t>floor((mu - GRID0) / DGRID) - half_t
                    if j0 < jlo:
                        j0 = jlo
                    j1 = <Py_ssize_t>ceil((mu - GRID0) / DGRID) + half_t
                    if j1 > jhi:
                        j1 = jhi
                    t1 = 0.0
                    t2 = 0.0
                    ty = 0.0
                    for j in range(j0, j1 + 1):
                        if wt[j] > 0:
                            xx = (GRID0 + DGRID * j - mu) / sig
                            t = exp(-0.5 * xx * xx) * norm_t
                            t1 += wt[j] * t
                            t2 += wt[j] * t * t
                            ty += wt[j] * yv[j] * t
                    det = Sw * t2 - t1 * t1
                    if det <= 0:
                        continue
                    A = (Sw * ty - t1 * Sy) / det
                    con = (Sy - A * t1) / Sw
                    chi = (Syy - con * Sy - A * ty) / nfit
                    if A <= 0 or con > par[P_CONMAX] or chi > par[P_CHICUT]:
                        continue
                    if mu < mlo - 1e-9 or mu > mhi + 1e-9:
                        continue
                    # pixels within +-6 A and the S/N noise
                    ii = 0
                    noise2 = 0.0
                    j0 = <Py_ssize_t>floor((mu - par[P_NFITHALF] - GRID0) / DGRID)
                    if j0 < 0:
                        j0 = 0
                    j1 = <Py_ssize_t>ceil((mu + par[P_NFITHALF] - GRID0) / DGRID)
                    if j1 > NG - 1:
                        j1 = NG - 1
                    for j in range(j0, j1 + 1):
                        if wt[j] > 0 and fabs(GRID0 + DGRID * j - mu) < par[P_NFITHALF]:
                            ii += 1
                    if ii < par[P_NFITMIN]:
                        continue
                    j0 = <Py_ssize_t>floor((mu - par[P_XNP] - GRID0) / DGRID)
                    if j0 < 0:
                        j0 = 0
                    j1 = <Py_ssize_t>ceil((mu + par[P_XNP] - GRID0) / DGRID)
                    if j1 > NG - 1:
                        j1 = NG - 1
                    for j in range(j0, j1 + 1):
                        if wt[j] > 0 and fabs(GRID0 + DGRID * j - mu) <= par[P_XNP]:
                            noise2 += e2[j]
                    if noise2 <= 0:
                        continue
                    sn = 0.95 * A / sqrt(noise2) / 2.0
                    if sn < par[P_SNCUT] or sn > par[P_SNHI]:
                        continue
                    kept[5 * nkept + 0] = mu
                    kept[5 * nkept + 1] = A / 2.0
                    kept[5 * nkept + 2] = con
                    kept[5 * nkept + 3] = sn
                    kept[5 * nkept + 4] = chi
                    taken[nkept] = 0
                    nkept += 1
                # --- step 4: getbestw
                while True:
                    best = -1
                    sn = -INFINITY
                    for ii in range(nkept):
                        if taken[ii] == 0 and kept[5 * ii + 3] > sn:
                            sn = kept[5 * ii + 3]
                            best = ii
                    if best < 0:
                        break
                    if F.n < maxfits:
                        if _push(&F, p, kept[5 * best], kept[5 * best + 1], sig, kept[5 * best + 2],
                                 kept[5 * best + 3], kept[5 * best + 4]) != 0:
                            err = 1
                            break
                    for jj in range(nkept):
                        if fabs(kept[5 * jj] - kept[5 * best]) < par[P_WD]:
                            taken[jj] = 1
                if err:
                    break
        if err:
            raise MemoryError()
        nout = F.n
        pos_a = np.empty(nout, dtype=np.int64)
        vals = np.empty((nout, 6), dtype=np.float64)
        for i in range(nout):
            pos_a[i] = F.pos[i]
            for k in range(6):
                vals[i, k] = F.val[6 * i + k]
        return (pos_a, vals[:, 0].copy(), vals[:, 1].copy(), vals[:, 2].copy(), vals[:, 3].copy(),
                vals[:, 4].copy(), vals[:, 5].copy())
    finally:
        free(use); free(g); free(fw); free(sumr); free(gnode); free(S3f); free(S5f); free(W2f); free(invG); free(fj); free(wwf); free(hwf); free(yv)
        free(e2); free(wt); free(cw); free(cy); free(cyy); free(cn); free(nextv); free(prevv)
        free(T1); free(T2); free(TY); free(wy); free(ce2); free(M1); free(M2); free(MY); free(QV); free(kept); free(taken); free(F.pos); free(F.val)
