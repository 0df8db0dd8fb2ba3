"""A shot's flux limit ``fluxlimit_4540``: the 1-sigma flux (erg s^-1 cm^-2) of an emission line
of a point source at 4540 Å, PSF-weighted over the fibers of the three dithers (the quantity of
hetdex_api's hetdex_tools/compute_average_one_sigma.py, the biweight of 1e-17 / sensitivity-cube
values, which Survey('hdr2.1') reads from flux_limits_all.txt).

Per fiber the line noise is ``s_i = sqrt(sum calfibe^2)`` over the 7 pixels (14 Å) around 4540 Å
(Karl's fitradecsp mode 105 sums ±3 px; hetdex_numbers.md "Line window in flux limits"), in the
calfib unit 1e-17 erg s^-1 cm^-2. An optimal PSF-weighted estimate of a point source's flux from
fibers with light fractions ``w_i`` has error ``1 / sqrt(sum w_i^2 / s_i^2)``; with the shot's
typical fiber noise ``s`` (biweight over its fibers) that is ``s / sqrt(S)`` with ``S = sum w_i^2``
averaged over source positions inside an IFU (fibers within ``radius`` of the source, the three
dithers, a Moffat PSF of the shot's FWHM and beta 3.5 integrated over the 1.5" fibers).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

import hetred.moffat as moffat
from hetred.stats import biweight_location
from hetred.virus.coords import DITHERS

WINDOW = 3                   #: pixels each side of the line centre
FIBER_RADIUS = 0.75          #: arcsec


def line_noise(calfibe: np.ndarray, wave: float) -> np.ndarray:
    """Per fiber ``sqrt(sum calfibe^2)`` over 2 WINDOW + 1 pixels around ``wave``; NaN where any
    pixel has no error (masked). calfibe: (n, 1036) on 3470 + 2 i Å."""
    k = round((wave - 3470.0) / 2.0)
    seg = np.asarray(calfibe, dtype=np.float64)[:, max(0, k - WINDOW):k + WINDOW + 1]
    out = np.sqrt(np.sum(seg ** 2, axis=1))
    out[~np.all(seg > 0, axis=1)] = np.nan
    return out


def moffat_fraction(dx: np.ndarray, dy: np.ndarray, fwhm: float, beta: float = 3.5) -> np.ndarray:
    """Fraction of a Moffat PSF's light entering fibers (radius 0.75") whose centres are at
    (dx, dy) arcsec from the source: the PSF averaged over 61 points of the fiber disk x its area."""
    g = np.linspace(-1, 1, 9)
    gx, gy = np.meshgrid(g, g)
    inside = gx ** 2 + gy ** 2 <= 1.0
    px, py = gx[inside] * FIBER_RADIUS, gy[inside] * FIBER_RADIUS
    psf = moffat.profile(np.hypot(np.asarray(dx)[..., None] + px, np.asarray(dy)[..., None] + py), fwhm, beta)
    return psf.mean(axis=-1) * np.pi * FIBER_RADIUS ** 2


@lru_cache(maxsize=64)
def _weight_sum(fwhm: float, beta: float, radius: float, key: bytes) -> float:
    xy = np.frombuffer(key, dtype=np.float64).reshape(-1, 2)
    fib = np.concatenate([xy + np.array(d) for d in DITHERS])
    rng = np.random.default_rng(0)
    pts = rng.uniform(-8.0, 8.0, size=(200, 2))          # source positions well inside the IFU
    s = []
    for p in pts:
        d = fib - p
        near = np.hypot(d[:, 0], d[:, 1]) < radius
        s.append(np.sum(moffat_fraction(d[near, 0], d[near, 1], fwhm, beta) ** 2))
    return float(np.mean(s))


def weight_sum(ifu_xy: np.ndarray, fwhm: float, beta: float = 3.5, radius: float = 3.5) -> float:
    """``S = sum w_i^2`` averaged over source positions inside an IFU whose (448, 2) fiber
    positions (arcsec, undithered) are ``ifu_xy``."""
    xy = np.ascontiguousarray(np.asarray(ifu_xy, dtype=np.float64))
    return _weight_sum(round(float(fwhm), 3), float(beta), float(radius), xy.tobytes())


def flux_limit(noise: np.ndarray, ifu_xy: np.ndarray, fwhm: float, beta: float = 3.5,
               radius: float = 3.5) -> float:
    """The shot's 1-sigma line flux limit (erg s^-1 cm^-2) from the fibers' line noise
    (1e-17 units; NaN = masked): module docstring. NaN without any good fiber."""
    good = np.asarray(noise, dtype=np.float64)
    good = good[np.isfinite(good) & (good > 0)]
    if good.size == 0 or not np.isfinite(fwhm) or fwhm <= 0:
        return float("nan")
    s = biweight_location(good.astype(np.float32), axis=None)
    return float(1e-17 * float(s) / np.sqrt(weight_sum(ifu_xy, fwhm, beta, radius)))
