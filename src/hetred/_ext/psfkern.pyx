# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Kernels of the star fits of ``hetred throughput``: the Moffat light in a fiber, tabulated, and
the chi^2 of a point source at many trial positions and FWHMs (fitradecsp modes 107 and 108).

``moffat_fiber_table`` -- fraction of a unit-flux circular Moffat

    I(r) = (beta - 1) / (pi a^2) (1 + (r / a)^2)^-beta,   a = FWHM / (2 sqrt(2^(1/beta) - 1)),

(Karl's fitradecsp form 4 (2^(1/beta) - 1)(beta - 1) / (pi F^2) [1 + 4 (2^(1/beta) - 1)(r/F)^2]^-beta)
falling in a fiber disk of radius ``rfib`` whose centre is at distance d from the source, for every
(FWHM, d) of two regular grids: Gauss-Legendre in radius (nrad nodes) times the midpoint rule in
angle (nang nodes, spectral for a periodic integrand) over the disk.

``chi2_trials`` -- for every trial (x, y, FWHM) the least-squares amplitude of the fiber fractions
p_i (bilinear in the table) against the fiber fluxes f_i with errors s_i,

    A = sum(p f / s^2) / sum(p^2 / s^2),    chi^2 = sum((f - A p)^2 / s^2),

over the fibers with s_i > 0 (Karl's fitradecsp ``getchifib2`` minimises the same chi^2 over a
grid of 2 x 1000 amplitudes; here the minimum is exact). NumPy references:
:func:`hetred._ext.reference.moffat_fiber_table_reference`, :func:`~hetred._ext.reference.chi2_trials_reference`.
"""
import numpy as np

from libc.math cimport sqrt, pow, cos, sin, M_PI


def moffat_fiber_table(const double[::1] d, const double[::1] fwhm, double beta, double rfib,
                       const double[::1] rnodes, const double[::1] rweights, int nang):
    """(n_fwhm, n_d) float64 table of the Moffat flux fraction in a fiber.

    d: (n_d,) arcsec, fiber-source distances; fwhm: (n_fwhm,) arcsec; beta: Moffat index;
    rfib: fiber radius arcsec; rnodes, rweights: Gauss-Legendre nodes and weights on [-1, 1]
    (the radial rule); nang: angular nodes.
    """
    cdef Py_ssize_t nd = d.shape[0], nf = fwhm.shape[0], nr = rnodes.shape[0]
    cdef Py_ssize_t i, j, k, m, half = (nang + 1) // 2, nq = nr * half
    out_a = np.zeros((nf, nd), dtype=np.float64)
    cdef double[:, ::1] out = out_a
    qx_a = np.empty(nq, dtype=np.float64)
    qy_a = np.empty(nq, dtype=np.float64)
    qw_a = np.empty(nq, dtype=np.float64)
    cdef double[::1] qx = qx_a, qy = qy_a, qw = qw_a
    cdef double r, wr, th, a, a2, norm, s, dx, rr
    # the angular nodes (m + 1/2) 2 pi / nang come in mirror pairs (theta, 2 pi - theta) with the
    # same x and y^2: one of each pair, weight doubled (an odd nang's middle node is its own mirror)
    for k in range(nr):
        r = rfib * (rnodes[k] + 1.0) / 2.0
        wr = rweights[k] * rfib / 2.0 * r * (2.0 * M_PI / nang)
        for m in range(half):
            th = (m + 0.5) * 2.0 * M_PI / nang
            qx[k * half + m] = r * cos(th)
            qy[k * half + m] = r * sin(th)
            qw[k * half + m] = wr if (nang % 2 == 1 and m == half - 1) else 2.0 * wr
    for j in range(nf):
        a = fwhm[j] / (2.0 * sqrt(pow(2.0, 1.0 / beta) - 1.0))
        a2 = a * a
        norm = (beta - 1.0) / (M_PI * a2)
        for i in range(nd):
            s = 0.0
            for k in range(nq):
                dx = d[i] + qx[k]
                rr = (dx * dx + qy[k] * qy[k]) / a2
                s += qw[k] * pow(1.0 + rr, -beta)
            out[j, i] = norm * s
    return out_a


cdef inline double _interp(const double[:, ::1] table, double d, double fi, double inv_dd,
                           Py_ssize_t nd, Py_ssize_t nf) nogil:
    """Bilinear value of table at distance d (grid from 0, step 1/inv_dd) and fractional FWHM
    row fi (already clamped to [0, nf - 1]); 0 beyond the last distance."""
    cdef double u = d * inv_dd
    cdef Py_ssize_t i0, j0
    cdef double tu, tf
    if u >= nd - 1:
        return 0.0
    i0 = <Py_ssize_t> u
    tu = u - i0
    j0 = <Py_ssize_t> fi
    if j0 >= nf - 1:
        j0 = nf - 2
    tf = fi - j0
    return ((1.0 - tf) * ((1.0 - tu) * table[j0, i0] + tu * table[j0, i0 + 1])
            + tf * ((1.0 - tu) * table[j0 + 1, i0] + tu * table[j0 + 1, i0 + 1]))


def chi2_trials(const double[::1] fx, const double[::1] fy, const double[::1] flux,
                const double[::1] err, const double[::1] tx, const double[::1] ty,
                const double[::1] tfwhm, const double[:, ::1] table, double d_step,
                double fwhm0, double fwhm_step):
    """chi^2 and amplitude of a point source at each trial.

    fx, fy: (n,) fiber centres arcsec; flux, err: (n,) fiber values and 1-sigma errors (fibers
    with err <= 0 are left out); tx, ty, tfwhm: (m,) trial position (arcsec, the frame of fx, fy)
    and FWHM (arcsec); table: (n_fwhm, n_d) from :func:`moffat_fiber_table` on d = 0, d_step, ...
    and FWHM = fwhm0 + j fwhm_step (FWHM clamped to the table).

    Returns (chi2, amp), each (m,) float64; chi2 = inf where no fiber has light.
    """
    cdef Py_ssize_t n = fx.shape[0], m = tx.shape[0], t, i
    cdef Py_ssize_t nf = table.shape[0], nd = table.shape[1]
    chi_a = np.empty(m, dtype=np.float64)
    amp_a = np.empty(m, dtype=np.float64)
    cdef double[::1] chi = chi_a, amp = amp_a
    cdef double inv_dd = 1.0 / d_step, fi, dx, dy, p, w, spp, spf, sff, A
    with nogil:
        for t in range(m):
            fi = (tfwhm[t] - fwhm0) / fwhm_step
            if fi < 0:
                fi = 0
            if fi > nf - 1:
                fi = nf - 1
            spp = 0.0
            spf = 0.0
            sff = 0.0
            for i in range(n):
                if err[i] <= 0:
                    continue
                dx = fx[i] - tx[t]
                dy = fy[i] - ty[t]
                p = _interp(table, sqrt(dx * dx + dy * dy), fi, inv_dd, nd, nf)
                w = 1.0 / (err[i] * err[i])
                spp += p * p * w
                spf += p * flux[i] * w
                sff += flux[i] * flux[i] * w
            if spp > 0:
                A = spf / spp
                amp[t] = A
                chi[t] = sff - A * spf
                if chi[t] < 0:
                    chi[t] = 0.0
            else:
                amp[t] = 0.0
                chi[t] = 1e300
    return chi_a, amp_a


def fiber_fractions(const double[::1] d, const double[::1] fwhm, const double[:, ::1] table,
                    double d_step, double fwhm0, double fwhm_step):
    """Table value (bilinear) at each (d[i], fwhm[i]); (n,) float64, 0 beyond the table's d."""
    cdef Py_ssize_t n = d.shape[0], i, nf = table.shape[0], nd = table.shape[1]
    out_a = np.empty(n, dtype=np.float64)
    cdef double[::1] out = out_a
    cdef double inv_dd = 1.0 / d_step, fi
    with nogil:
        for i in range(n):
            fi = (fwhm[i] - fwhm0) / fwhm_step
            if fi < 0:
                fi = 0
            if fi > nf - 1:
                fi = nf - 1
            out[i] = _interp(table, d[i], fi, inv_dd, nd, nf)
    return out_a
