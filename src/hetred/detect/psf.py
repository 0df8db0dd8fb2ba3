"""Karl's point-source model in the fibers: fitradecsp ``fit2d``, ``getchifib2``, ``adcor``
(karlspipe hdr2.1/progs/fitradecsp.f; shared/reference/detect_fullsky.md §1.5).

* PSF: Moffat, ``P(r) = 4 (2^(1/b) - 1)(b - 1) / (pi F^2) [1 + 4 (2^(1/b) - 1)(r/F)^2]^-b``,
  b = 3.9, unit flux (:func:`hetred.moffat.profile`);
* a fiber (radius 0.75") collects the integral of P over its disk: g(d), d the fiber-source
  distance. Karl averages P over the ~60 points of a 10 x 10 lattice inside the disk, which is
  +2 % (centred) to -3 % (2" away) off the integral at FWHM 1.3" (< 1.5 % at 1.8"); hetred
  integrates exactly (Gauss-Legendre in radius, midpoint in angle) and tabulates g(d) every
  0.01" (linear in between, < 1e-4 relative);
* ADR: at 3500, 4000, 4500, 5000, 5500 Å the fiber is shifted by ``adr (sin az, cos az)``
  (east, north) and the FWHM is F (lambda / 4550)^-0.2; ``fadc`` is the fiber fraction there,
  ``fadcw = fadc / fadc(4500 Å)``, ``sumrata`` the sum of ``fadc`` over the fibers used (the
  aperture correction, apcor); both are interpolated linearly over the five wavelengths
  (constant outside 3500-5500 Å).

Positions are arcsec on the tangent plane of the IFU centre, x east, y north (:func:`tangent`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import hetred.moffat as moffat
from hetred.detect.settings import ADR_WAVE, DetectSettings

D_STEP = 0.01          #: arcsec, table step
D_MAX = 12.0           #: arcsec, table end (fiber fractions beyond are 0)
N_RAD, N_ANG = 16, 32  #: quadrature nodes over the fiber disk


@lru_cache(maxsize=64)
def fiber_table(fwhm: float, beta: float, rfib: float) -> np.ndarray:
    """(n,) fraction of a unit point source in a fiber at distance ``i * D_STEP``."""
    d = np.arange(0.0, D_MAX + D_STEP / 2, D_STEP)
    out = moffat.fiber_fractions(d, fwhm, beta, rfib, N_RAD, N_ANG)
    out.setflags(write=False)
    return out


def lookup(table: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Linear interpolation of a :func:`fiber_table` at distances ``d`` (0 beyond its end)."""
    u = np.asarray(d, dtype=np.float64) / D_STEP
    i = np.clip(u.astype(np.int64), 0, table.size - 2)
    f = u - i
    v = table[i] * (1.0 - f) + table[i + 1] * f
    return np.where(u < table.size - 1, v, 0.0)


@dataclass(frozen=True)
class PsfModel:
    """The tables of a shot: row 0 at the FWHM (weights g), rows 1-5 at the five ADR wavelengths."""

    fwhm: float
    beta: float
    rfib: float
    adr: tuple[float, ...]
    tables: np.ndarray             #: (6, n) float64

    @classmethod
    def make(cls, fwhm: float, settings: DetectSettings) -> PsfModel:
        rows = [fiber_table(round(fwhm, 6), settings.moffat_beta, settings.fiber_radius)]
        for w in ADR_WAVE:
            rows.append(fiber_table(round(fwhm / (w / 4550.0) ** 0.2, 6), settings.moffat_beta,
                                    settings.fiber_radius))
        return cls(fwhm, settings.moffat_beta, settings.fiber_radius, tuple(settings.adr_offset), np.vstack(rows))

    def weights(self, dx: np.ndarray, dy: np.ndarray, ux: np.ndarray, uy: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """fit2d + adcor for fibers at (dx, dy) from the position (arcsec, (m,)) whose ADR shift
        points along (ux, uy): g (m,), fadc (m, 5), fadcw (m, 5)."""
        g = lookup(self.tables[0], np.hypot(dx, dy))
        adr = np.asarray(self.adr)
        ddx = dx[:, None] + adr[None, :] * ux[:, None]
        ddy = dy[:, None] + adr[None, :] * uy[:, None]
        fadc = np.column_stack([lookup(self.tables[1 + n], np.hypot(ddx[:, n], ddy[:, n])) for n in range(5)])
        with np.errstate(divide="ignore", invalid="ignore"):
            fadcw = np.where(fadc[:, 2:3] > 0, fadc / fadc[:, 2:3], 1.0)
        return g, fadc, fadcw


@lru_cache(maxsize=1)
def node_hats(n: int = 1036) -> tuple[np.ndarray, np.ndarray]:
    """For each grid pixel the lower ADR node (0..3) and the weight of the upper one: Karl's
    ``xlinint`` over (3500, ..., 5500) Å, constant outside (at exactly 5500 Å Karl's routine
    returns a stale value; here the 5500-Å one)."""
    grid = 3470.0 + 2.0 * np.arange(n)
    nodes = np.asarray(ADR_WAVE)
    lo = np.clip(np.searchsorted(nodes, grid, side="right") - 1, 0, 3)
    w = (grid - nodes[lo]) / (nodes[lo + 1] - nodes[lo])
    w = np.clip(w, 0.0, 1.0)
    lo.setflags(write=False)
    w.setflags(write=False)
    return lo.astype(np.int64), w


def node_interp(values: np.ndarray) -> np.ndarray:
    """(..., 5) node values -> (..., 1036) on the grid (:func:`node_hats`)."""
    lo, w = node_hats()
    v = np.asarray(values, dtype=np.float64)
    return v[..., lo] * (1.0 - w) + v[..., lo + 1] * w


def tangent(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection about (ra0, dec0): (x east, y north) arcsec."""
    a = np.radians(np.asarray(ra, dtype=np.float64) - ra0)
    d = np.radians(np.asarray(dec, dtype=np.float64))
    d0 = np.radians(dec0)
    cosc = np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(a)
    x = np.cos(d) * np.sin(a) / cosc
    y = (np.sin(d) * np.cos(d0) - np.cos(d) * np.sin(d0) * np.cos(a)) / cosc
    return np.degrees(x) * 3600.0, np.degrees(y) * 3600.0


def untangent(x: np.ndarray, y: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`tangent`: (ra, dec) deg."""
    xi = np.radians(np.asarray(x, dtype=np.float64) / 3600.0)
    eta = np.radians(np.asarray(y, dtype=np.float64) / 3600.0)
    d0 = np.radians(dec0)
    den = np.cos(d0) - eta * np.sin(d0)
    ra = (ra0 + np.degrees(np.arctan2(xi, den))) % 360.0
    dec = np.degrees(np.arctan2(eta * np.cos(d0) + np.sin(d0), np.hypot(xi, den)))
    return ra, dec


def adr_directions(az: np.ndarray, pa: float | None, settings: DetectSettings) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (east, north) along which each fiber is shifted by the ADR offsets.

    ``structaz`` (Karl): (sin az, cos az) of each fiber's STRUCTAZ. ``parangle`` (hetdex_api): the
    source moves by +offset along the IFU x axis, which lies at position angle PA on the sky, so
    the fiber moves the opposite way: az = PA + 180.
    """
    az = np.asarray(az, dtype=np.float64)
    if settings.adr_direction == "parangle" and pa is not None:
        az = np.full_like(az, pa + 180.0)
    a = np.radians(az)
    return np.sin(a), np.cos(a)


def amplitude_grid(sgg: float, sgf: float, start: float = 1.0, end: float = 2.0e5, n: int = 1000) -> float:
    """getchifib2's amplitude: chi^2(a) = a^2 Sgg - 2 a Sgf + const is least at a* = Sgf/Sgg; Karl
    takes the best of ``n`` values from ``start`` to ``end`` (x10 while it hits the end), then of
    ``n`` values within +-40 % of it -- i.e. the grid point nearest a* each time."""
    a_star = sgf / sgg if sgg > 0 else start

    def best(lo: float, hi: float) -> float:
        step = (hi - lo) / (n - 1)
        k = np.clip(np.rint((a_star - lo) / step), 0, n - 1)
        return lo + k * step

    amp = best(start, end)
    while amp >= end:
        end *= 10.0
        amp = best(start, end)
    return float(best(0.6 * amp, 1.4 * amp))
