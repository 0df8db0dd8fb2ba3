"""Star fluxes from the CoFeS images through a model of the fibers (for ``norm.dat``).

A reconstructed image is not a sky image: each fiber (1.5" diameter, 1/3 of the IFU area per
exposure) catches the part of a star's light that falls on it, and the image is those fiber values
spread with Karl's Gaussian kernel (vrecon: FWHM 4", cut at 6"; hetred.sci.cofes). How much of a
star's light the fibers catch depends on where the star sits on the fiber pattern, by ~10 % (rms)
from star to star and exposure to exposure at 2" seeing, so flux ratios of a fixed image PSF (vdrp's
DAOPHOT photometry) carry that scatter into ``norm.dat``.

This module fits each star with the image its light makes through the fibers: a Moffat seeing disk
(beta ``beta``, FWHM fitted per exposure) integrated over every fiber disk at the fiber positions
(the multi files' ``ifupos``), spread on the image's grid with the reconstruction kernel
(parameters from the CoFeS header, ``IFUX0/IFUY0/PIXSCALE/RECONFW/RECONRAD``, else the real files'
``CRPIX1/CRPIX2`` and vrecon's 4"/6"). The fitted flux is the star's total flux (in image units
up to one constant), independent of the sampling. Used by :func:`hetred.astrom.solve.solve` when
``norm_method = "fiber"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import hetred.moffat as moffat

FIBER_RADIUS = 0.75        #: arcsec (VIRUS fibers are 1.5" across)
REACH = 8.0                #: arcsec: fibers farther than this from a star get none of its light


@dataclass(frozen=True)
class Recon:
    """The reconstruction of a CoFeS image: pixel (i, j) (0-based) at IFU (x0 + i p, y0 + j p)
    arcsec; a fiber value v spreads v exp(-r²/2s²) (s = fwhm/2.35, r < rmax) onto the pixels."""

    x0: float = -25.15
    y0: float = -25.24
    pixel: float = 1.0
    fwhm: float = 4.0
    rmax: float = 6.0

    @classmethod
    def from_header(cls, header) -> Recon:
        """hetred's CoFeS keywords, else the real files' CRPIX1/CRPIX2 (IFU x, y of pixel 1)."""
        d = cls()
        x0 = header.get("IFUX0", header.get("CRPIX1", d.x0))
        y0 = header.get("IFUY0", header.get("CRPIX2", d.y0))
        return cls(float(x0), float(y0), float(header.get("PIXSCALE", d.pixel)),
                   float(header.get("RECONFW", d.fwhm)), float(header.get("RECONRAD", d.rmax)))


FWHM_STEP = 0.05      #: arcsec between the tabulated seeing values (linear in between)


def _table(fwhm: float, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_fraction_table` at ``fwhm``: linear between the tables of the neighbouring multiples
    of :data:`FWHM_STEP` (tables are reused while a fit searches the seeing; the interpolation
    changes a fiber's fraction by < 0.1 %)."""
    k = int(np.floor(float(fwhm) / FWHM_STEP))
    t = float(fwhm) / FWHM_STEP - k
    d, f0, g0 = _fraction_table(round(k * FWHM_STEP, 6), float(beta))
    if t < 1e-9:
        return d, f0, g0
    _, f1, g1 = _fraction_table(round((k + 1) * FWHM_STEP, 6), float(beta))
    return d, (1.0 - t) * f0 + t * f1, (1.0 - t) * g0 + t * g1


@lru_cache(maxsize=512)
def _fraction_table(fwhm: float, beta: float, step: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, fraction, d fraction / d d): a unit-flux Moffat's flux on a fiber disk whose centre is
    d arcsec away (Gauss-Legendre, 12 radial x 32 angular nodes: 1e-4 of the flux)."""
    d = np.arange(0.0, REACH + 1.0, step)
    frac = moffat.fiber_fractions(d, fwhm, beta, FIBER_RADIUS, 12, 32)
    return d, frac, np.gradient(frac, step)


def fiber_fraction(d: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    """Fraction of a star's light on fibers at distances ``d`` arcsec (0 beyond :data:`REACH`)."""
    dt, ft, _ = _table(fwhm, beta)
    d = np.asarray(d, dtype=float)
    return np.where(d <= REACH, np.interp(d, dt, ft), 0.0)


class StarModel:
    """The image of a unit-flux star near IFU position (x, y) through the fibers of one IFU,
    on the pixel window within ``radius`` arcsec of the first guess."""

    def __init__(self, recon: Recon, fibers: np.ndarray, image: np.ndarray, x: float, y: float,
                 radius: float) -> None:
        self.recon = recon
        ny, nx = image.shape
        i = recon.x0 + recon.pixel * np.arange(nx)
        j = recon.y0 + recon.pixel * np.arange(ny)
        cols = np.nonzero(np.abs(i - x) <= radius)[0]
        rows = np.nonzero(np.abs(j - y) <= radius)[0]
        px, py = np.meshgrid(i[cols], j[rows])
        inside = (px - x) ** 2 + (py - y) ** 2 <= radius * radius
        data = image[np.ix_(rows, cols)]
        self.use = inside & np.isfinite(data)
        self.data = data[self.use]
        self.px, self.py = px[self.use], py[self.use]
        f = np.asarray(fibers, dtype=float)
        near = np.hypot(f[:, 0] - x, f[:, 1] - y) < REACH + radius + recon.rmax
        self.fibers = f[near]
        s = recon.fwhm / 2.35
        dx = self.px[:, None] - self.fibers[None, :, 0]
        dy = self.py[:, None] - self.fibers[None, :, 1]
        r2 = dx * dx + dy * dy
        self.kernel = np.where(r2 < recon.rmax ** 2, np.exp(-0.5 * r2 / (s * s)), 0.0)   # (npix, nfib)

    def unit(self, x: float, y: float, fwhm: float, beta: float) -> np.ndarray:
        """The model of a unit-flux star at (x, y) on the window's pixels (npix,)."""
        v = fiber_fraction(np.hypot(self.fibers[:, 0] - x, self.fibers[:, 1] - y), fwhm, beta)
        return self.kernel @ v

    def unit_and_gradient(self, x: float, y: float, fwhm: float, beta: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The unit-flux model and its derivatives with respect to the star's x and y."""
        dt, ft, gt = _table(fwhm, beta)
        dx, dy = self.fibers[:, 0] - x, self.fibers[:, 1] - y
        d = np.hypot(dx, dy)
        inside = d <= REACH
        v = np.where(inside, np.interp(d, dt, ft), 0.0)
        g = np.where(inside, np.interp(d, dt, gt), 0.0) / np.maximum(d, 1e-9)
        return self.kernel @ v, self.kernel @ (-g * dx), self.kernel @ (-g * dy)


def fit_star(model: StarModel, x: float, y: float, fwhm: float, beta: float, free: bool = True
             ) -> tuple[float, float, float, float]:
    """(flux, x, y, chi) of one star: flux and a constant by linear least squares, the position
    (when ``free``) by Gauss-Newton (steps limited to 0.5")."""
    data = model.data
    n = float(data.size)
    sd = float(np.sum(data))

    def solve(xx: float, yy: float) -> tuple[float, float, np.ndarray]:
        u = model.unit(xx, yy, fwhm, beta)     # flux and constant: 2 x 2 normal equations
        su, suu, sud = float(np.sum(u)), float(u @ u), float(u @ data)
        det = suu * n - su * su
        if det <= 0:
            return float("nan"), 0.0, data.copy()
        f = (sud * n - su * sd) / det
        b = (suu * sd - su * sud) / det
        return f, b, data - f * u - b

    if model.data.size < 5:
        return float("nan"), x, y, float("inf")
    flux, _, res = solve(x, y)
    if free:
        for _ in range(10):       # Gauss-Newton on (x, y, flux, constant) together
            u, gx, gy = model.unit_and_gradient(x, y, fwhm, beta)
            jac = np.column_stack([gx * flux, gy * flux, u, np.ones_like(u)])
            try:
                step = np.linalg.solve(jac.T @ jac, jac.T @ res)
            except np.linalg.LinAlgError:
                break
            step = np.clip(step[:2], -0.5, 0.5)
            x, y = x + float(step[0]), y + float(step[1])
            flux, _, res = solve(x, y)
            if np.hypot(*step) < 1e-3:
                break
    return flux, x, y, float(np.sum(res * res))


#: a seeing star whose fitted position moves farther than this (arcsec) from its detection is not
#: the star that was found (a noise peak, a blend): it does not set the seeing
SEEING_MAX_SHIFT = 1.5
#: a seeing star whose fitted position is within this (arcsec) of a brighter one's is its double
#: detection (the CoFeS finder can split a star sampled by the fibers into two peaks)
SEEING_DUPLICATE = 1.5


def fit_seeing(models: list[tuple[StarModel, float, float]], beta: float,
               bounds: tuple[float, float] = (0.8, 4.0)) -> float:
    """The seeing FWHM (arcsec) of a set of stars, brightest first.

    Per star the FWHM of least squared residual (flux, constant and position fitted at every trial
    FWHM, as the position that fits best depends on the seeing; Brent's bounded method to 0.01").
    Stars that are not stars of the image are dropped: a non-positive flux, a fitted position more
    than :data:`SEEING_MAX_SHIFT` from the detection, a FWHM at a bound, or a second detection of a
    brighter star (:data:`SEEING_DUPLICATE`). The kept stars are then fitted together: the FWHM
    minimising sum_k chi2_k(FWHM) / s2_k, where s2_k is star k's residual variance per fiber at its
    own best FWHM -- a maximum-likelihood joint fit in which each star weighs by its information
    (a faint star, whose chi2 hardly changes with the FWHM, cannot pull the seeing; the biweight
    of per-star values did let two faint detections of 4 set a 2.45" seeing for a true 1.56").
    Default 2.0" without a usable star."""
    from scipy.optimize import minimize_scalar

    def best(m: StarModel, x: float, y: float) -> tuple[float, float, float, float, float]:
        p = [x, y]

        def chi(fw: float) -> float:
            _, p[0], p[1], c = fit_star(m, p[0], p[1], fw, beta)
            return c

        res = minimize_scalar(chi, bounds=bounds, method="bounded", options={"xatol": 0.01})
        flux, fx, fy, c = fit_star(m, x, y, float(res.x), beta)
        return float(res.x), flux, fx, fy, c

    kept: list[tuple[StarModel, float, float, float]] = []     # model, fitted x, y, residual variance
    for m, x, y in models:
        fw, flux, fx, fy, c = best(m, x, y)
        if not (np.isfinite(flux) and flux > 0 and bounds[0] + 0.01 < fw < bounds[1] - 0.01):
            continue
        if np.hypot(fx - x, fy - y) > SEEING_MAX_SHIFT:
            continue
        if any(np.hypot(fx - kx, fy - ky) < SEEING_DUPLICATE for _, kx, ky, _ in kept):
            continue
        dof = max(m.data.size - 4, 1)
        kept.append((m, fx, fy, max(c / dof, 1e-30)))
    if not kept:
        return 2.0

    def total(fw: float) -> float:
        return sum(fit_star(m, x, y, fw, beta)[3] / s2 for m, x, y, s2 in kept)

    res = minimize_scalar(total, bounds=bounds, method="bounded", options={"xatol": 0.01})
    return float(res.x)
