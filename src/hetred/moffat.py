"""The Moffat point-spread function, as every stage and the simulator use it (shared numerics).

P(r) = (beta - 1) / (pi alpha^2) [1 + (r / alpha)^2]^-beta, alpha = F / (2 sqrt(2^(1/beta) - 1)),
unit flux (1/arcsec^2), F the FWHM in arcsec. Karl's fitradecsp writes the same profile as
4 (2^(1/b) - 1)(b - 1) / (pi F^2) [1 + 4 (2^(1/b) - 1)(r/F)^2]^-b (karlspipe hdr2.1
progs/fitradecsp.f, shared/reference/detect_fullsky.md §1.5). Users: ``hetred.detect.psf`` (the
fiber fractions of the line search), ``hetred.throughput.shot`` (the blend flag),
``hetred.h5.fluxlimit`` and ``hetred.h5.readback`` (flux limits, PSF-weighted spectra) and the
simulator (``hetred.sim.sky``). The Cython kernel ``hetred._ext.psfkern.moffat_fiber_table`` and
its NumPy reference evaluate the same profile in their own loops.
"""
from __future__ import annotations

import numpy as np


def alpha(fwhm: float, beta: float) -> float:
    """Core radius alpha (arcsec) of a Moffat of FWHM ``fwhm`` (arcsec) and index ``beta``."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def profile(r: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    """Surface density (1/arcsec^2, integrates to 1) at radius ``r`` (arcsec, any shape)."""
    a2 = alpha(fwhm, beta) ** 2
    return (beta - 1.0) / (np.pi * a2) * (1.0 + np.square(np.asarray(r, dtype=np.float64)) / a2) ** -beta


def enclosed(radius: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    """Fraction of the flux within ``radius`` arcsec of the centre (analytic; any shape)."""
    a2 = alpha(fwhm, beta) ** 2
    return 1.0 - (1.0 + np.square(np.asarray(radius, dtype=np.float64)) / a2) ** (1.0 - beta)


def disc_fraction(d: np.ndarray, radius: float, fwhm: float, beta: float, n_r: int = 96,
                  n_phi: int = 96) -> np.ndarray:
    """Fraction of the light of sources at distances ``d`` (arcsec, any shape) that falls inside a
    disc of ``radius`` arcsec: a midpoint rule in r^2 and angle (n_r x n_phi cells of equal area),
    good to ~1e-3 of the source's light."""
    r = radius * np.sqrt((np.arange(n_r) + 0.5) / n_r)
    phi = 2.0 * np.pi * (np.arange(n_phi) + 0.5) / n_phi
    px, py = (r[:, None] * np.cos(phi)).ravel(), (r[:, None] * np.sin(phi)).ravel()
    dd = np.asarray(d, dtype=np.float64).reshape(-1, 1)
    dens = profile(np.hypot(px - dd, py), fwhm, beta)
    return (dens.mean(axis=1) * np.pi * radius**2).reshape(np.shape(d))


def fiber_fractions(d: np.ndarray, fwhm: float, beta: float, rfib: float, n_rad: int = 16,
                    n_ang: int = 32) -> np.ndarray:
    """Fraction of a unit-flux Moffat on a fiber disc of radius ``rfib`` arcsec whose centre is ``d``
    arcsec (any shape) from the source: Gauss-Legendre in radius (``n_rad`` nodes) and the midpoint
    rule in angle (``n_ang``); 16 x 32 nodes reach 1e-6 of the flux, 12 x 32 1e-4. float64."""
    xr, wr = np.polynomial.legendre.leggauss(n_rad)
    r = rfib * (xr + 1.0) / 2.0
    w = wr * rfib / 2.0 * r * (2.0 * np.pi / n_ang)
    th = (np.arange(n_ang) + 0.5) * (2.0 * np.pi / n_ang)
    qx = (r[:, None] * np.cos(th)[None, :]).ravel()
    qy = (r[:, None] * np.sin(th)[None, :]).ravel()
    qw = np.repeat(w, n_ang)
    dist = np.asarray(d, dtype=np.float64).ravel()
    out = np.empty(dist.size)
    for lo in range(0, dist.size, 256):          # 256 distances x the nodes at a time
        dd = dist[lo:lo + 256]
        out[lo:lo + 256] = profile(np.hypot(dd[:, None] + qx[None, :], qy[None, :]), fwhm, beta) @ qw
    return out.reshape(np.shape(d))
