"""The rotation offset from the trials and the shot centre from the exposures.

* :func:`optimal_angle` -- vdrp ``compute_optimal_ang_off`` (HETDEX/vdrp src/vdrp/astrometry.py;
  shared/reference/astrom_throughput.md §1.9): per exposure with more than 3 trials, smoothing
  splines (scipy ``UnivariateSpline``, s = 0.05) of the pair rms sqrt(s_ra^2 + s_dec^2) and of the
  pair count against the trial angle, evaluated on ``arange(min, max, 0.01)`` over all trials; the
  exposure's optimum is the grid angle of least rms and its weight the count spline there,
  truncated to an integer (vdrp stores it in an integer table column); the shot's angle is the
  weighted mean.
* :func:`combine_radec` -- vdrp ``combine_radec`` (§1.10): each exposure's fitted centre moved
  back by its dither, (ra, dec) = TangentPlane(ra_e, dec_e, 360 - (pa_e + 90)).xy2raDec(-dx, -dy),
  averaged; PA of the first exposure.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hetred.virus.coords import rotation_angle, tangent_to_radec


@dataclass(frozen=True)
class Trial:
    """One exposure at one trial rotation offset: pair rms (arcsec) and number of pairs."""

    exposure: int
    angle: float
    rms: float
    n: int


@dataclass(frozen=True)
class ExposureOptimum:
    """Per exposure: the grid angle of least smoothed rms, the smoothed rms and pair count there."""

    exposure: int
    angle: float
    rms: float
    n: int


def optimal_angle(trials: Sequence[Trial], smoothing: float = 0.05, step: float = 0.01
                  ) -> tuple[float, list[ExposureOptimum]]:
    """The star-count weighted optimal rotation offset (deg) and the per-exposure optima.

    Returns (nan, []) when no exposure has more than 3 trials or the counts sum to zero.
    """
    from scipy.interpolate import UnivariateSpline

    if not trials:
        return float("nan"), []
    angles = np.array([t.angle for t in trials])
    grid = np.arange(angles.min(), angles.max(), step)
    optima = []
    for exp in sorted({t.exposure for t in trials}):
        rows = sorted((t for t in trials if t.exposure == exp and np.isfinite(t.rms)), key=lambda t: t.angle)
        if len(rows) <= 3 or len(grid) == 0:
            continue
        x = np.array([t.angle for t in rows])
        f = UnivariateSpline(x, np.array([t.rms for t in rows]), s=smoothing)
        fn = UnivariateSpline(x, np.array([t.n for t in rows], dtype=float), s=smoothing)
        values = f(grid)
        if not np.any(np.isfinite(values)):
            continue
        k = int(np.nanargmin(values))
        optima.append(ExposureOptimum(exp, float(grid[k]), float(values[k]), int(fn(grid[k]))))
    weight = sum(o.n for o in optima)
    if not optima or weight <= 0:
        return float("nan"), optima
    return sum(o.angle * o.n for o in optima) / weight, optima


def refine_angle(trials: Sequence[Trial], angles: Sequence[float]) -> tuple[float, list[ExposureOptimum]]:
    """hetred's second step (``angoff_refine``): per exposure, a parabola fitted to rms² of the
    trials at ``angles`` (a few angles around the first optimum) and its vertex. For a rotation
    error dθ the pair residuals grow as dθ times the distance from the centre, so rms² = a² +
    k² (θ - θ0)² is a parabola in θ, while rms itself turns from a parabola into a V as k grows
    (many IFUs): vdrp's smoothing spline (s = 0.05 arcsec²) rounds the V's bottom off and moves
    its minimum towards the side with fewer trials (by ~0.008 deg on 78 simulated IFUs). The
    shot's angle is the pair-weighted mean of the vertices; an exposure whose parabola is not
    convex or whose vertex lies outside ``angles`` keeps no vote. Returns (nan, []) without any."""
    lo, hi = min(angles), max(angles)
    optima = []
    for exp in sorted({t.exposure for t in trials}):
        rows = [t for t in trials if t.exposure == exp and any(abs(t.angle - a) < 1e-9 for a in angles)
                and np.isfinite(t.rms)]
        if len(rows) < 3:
            continue
        x = np.array([t.angle for t in rows]) - np.mean(angles)
        y = np.array([t.rms for t in rows]) ** 2
        c2, c1, c0 = np.polyfit(x, y, 2)
        if c2 <= 0:
            continue
        v = -c1 / (2 * c2) + np.mean(angles)
        if not lo <= v <= hi:
            continue
        n = round(float(np.mean([t.n for t in rows])))
        optima.append(ExposureOptimum(exp, float(v), float(np.sqrt(max(c0 - c1 * c1 / (4 * c2), 0.0))), n))
    weight = sum(o.n for o in optima)
    if not optima or weight <= 0:
        return float("nan"), optima
    return sum(o.angle * o.n for o in optima) / weight, optima


def combine_radec(solutions: Sequence[tuple[float, float, float]],
                  dithers: Sequence[tuple[float, float]]) -> tuple[float, float, float, float, float]:
    """Shot centre from per-exposure (ra, dec, pa) (deg) and dithers (dx, dy) (arcsec).

    Returns (ra, dec, pa, scatter_ra, scatter_dec): the mean of the de-dithered centres, the first
    exposure's pa, and the standard deviations of the centres in arcsec (RA times cos dec).
    """
    if len(solutions) == 0:
        raise ValueError("combine_radec needs at least one exposure")
    if len(dithers) < len(solutions):
        raise ValueError(f"{len(solutions)} exposures but only {len(dithers)} dither offsets")
    centres = []
    for (ra, dec, pa), (dx, dy) in zip(solutions, dithers):
        r, d = tangent_to_radec(np.array([-dx]), np.array([-dy]), ra, dec, rotation_angle(pa))
        centres.append((float(r[0]), float(d[0])))
    c = np.array(centres)
    ra, dec = float(np.mean(c[:, 0])), float(np.mean(c[:, 1]))
    cosd = np.cos(np.radians(solutions[0][1]))
    return (ra, dec, float(solutions[0][2]), float(np.std(c[:, 0]) * cosd * 3600.0),
            float(np.std(c[:, 1]) * 3600.0))
