"""Fiber sky coordinates: dithers and the HETDEX tangent plane.

The tangent plane (pyhetdex TangentPlane, used by vdrp and Remedy): a gnomonic (TAN) projection
about (ra0, dec0) with CDELT = (-1/3600, +1/3600) deg per arcsec (positive x points east) and
PC = [[cos r, sin r], [-sin r, cos r]]. A fiber's focal-plane position swaps the axes: the
IFU x position gets the fplane Y_FP and the IFU y position the X_FP (vdrp get_fiber_coords)::

    rot = 360 - (pa + 90)            pa = PARANGLE + angoff (deg)
    xfp = x_ifu + Y_FP + dx          (dx, dy) = dither offset of the exposure (arcsec)
    yfp = y_ifu + X_FP + dy
"""
from __future__ import annotations

import numpy as np

from hetred.virus.fplane import FplaneEntry

#: HETDEX dither offsets (IFU x, y) in arcsec for exposures 1, 2, 3 (vdrp, hetdex_api, Karl all.mch)
DITHERS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1.27, -0.73), (1.27, 0.73))


def dither_offset(exp: int) -> tuple[float, float]:
    """(dx, dy) arcsec of exposure ``exp`` (1, 2 or 3)."""
    if not 1 <= exp <= len(DITHERS):
        raise ValueError(f"exposure {exp} has no dither offset (1..{len(DITHERS)})")
    return DITHERS[exp - 1]


def rotation_angle(pa: float) -> float:
    """Tangent-plane rotation r = 360 - (pa + 90) in degrees."""
    return 360.0 - (pa + 90.0)


def tangent_to_radec(x: np.ndarray, y: np.ndarray, ra0: float, dec0: float,
                     rot: float) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane (x, y) arcsec -> (ra, dec) deg; equal to astropy WCS pix2world(x, y, 1)."""
    r = np.radians(rot)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xi = np.radians(-(np.cos(r) * x + np.sin(r) * y) / 3600.0)
    eta = np.radians((-np.sin(r) * x + np.cos(r) * y) / 3600.0)
    d0 = np.radians(dec0)
    den = np.cos(d0) - eta * np.sin(d0)
    ra = np.degrees(np.radians(ra0) + np.arctan2(xi, den)) % 360.0
    dec = np.degrees(np.arctan2(eta * np.cos(d0) + np.sin(d0), np.hypot(xi, den)))
    return ra, dec


def radec_to_tangent(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float,
                     rot: float) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) deg -> tangent-plane (x, y) arcsec; the inverse of :func:`tangent_to_radec`."""
    a = np.radians(np.asarray(ra, dtype=float) - ra0)
    d = np.radians(np.asarray(dec, dtype=float))
    d0 = np.radians(dec0)
    cosc = np.sin(d) * np.sin(d0) + np.cos(d) * np.cos(d0) * np.cos(a)
    xi = np.degrees(np.cos(d) * np.sin(a) / cosc) * 3600.0
    eta = np.degrees((np.sin(d) * np.cos(d0) - np.cos(d) * np.sin(d0) * np.cos(a)) / cosc) * 3600.0
    r = np.radians(rot)
    u, v = -xi, eta
    return np.cos(r) * u - np.sin(r) * v, np.sin(r) * u + np.cos(r) * v


def fiber_radec(slot: FplaneEntry, ifu_xy: np.ndarray, exp: int, ra0: float, dec0: float,
                pa: float, angoff: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions (deg) of fibers at IFU positions ``ifu_xy`` ((N, 2) arcsec) in exposure ``exp``.

    ``pa`` is the shot's parallactic angle (PARANGLE, deg); ``angoff`` the empirical rotation
    between PARANGLE and the focal plane that the astrometry fits.
    """
    dx, dy = dither_offset(exp)
    xy = np.asarray(ifu_xy, dtype=float)
    xfp = xy[:, 0] + slot.y_fp + dx
    yfp = xy[:, 1] + slot.x_fp + dy
    return tangent_to_radec(xfp, yfp, ra0, dec0, rotation_angle(pa + angoff))


def radec_to_ifu(slot: FplaneEntry, ra: np.ndarray, dec: np.ndarray, exp: int, ra0: float,
                 dec0: float, pa: float, angoff: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`fiber_radec`: IFU (x, y) arcsec of sky positions in exposure ``exp``."""
    dx, dy = dither_offset(exp)
    xfp, yfp = radec_to_tangent(ra, dec, ra0, dec0, rotation_angle(pa + angoff))
    return xfp - slot.y_fp - dx, yfp - slot.x_fp - dy
