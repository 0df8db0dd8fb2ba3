"""Detections on the sky, catalogue pairs and the iterated offsets (vdrp ``compute_offset``).

Follows HETDEX/vdrp ``src/vdrp/astrometry.py`` (``add_ra_dec``, ``compute_offset``) and the
Fortran ``src/fortran/getoff2.f`` (shared/reference/astrom_throughput.md §1.3, §1.4, §1.7, §1.8):

1. a detection at DAOPHOT pixel (X, Y) of IFU slot s sits at IFU (x, y) = (X + xoff, Y + yoff)
   arcsec and on the focal plane at ``xfp = x + Y_FP(s)``, ``yfp = y + X_FP(s)`` (the axis swap);
2. its sky position comes from the HETDEX tangent plane about the trial centre with rotation
   ``360 - (pa + 90)``, ``pa = PARANGLE + angoff`` (:func:`hetred.virus.coords.tangent_to_radec`);
3. getoff2: every detection-catalogue pair closer than R arcsec (``dra = (ra_det - ra_cat)*3600``
   without cos(dec), ``ddec`` alike; a detection may pair with several stars) enters Karl's
   float32 biweight (:func:`hetred.stats.biweight`); the increments ``-loc/3600`` deg are rounded
   to 5 decimals as getoff2.out prints them (no pair: increments 0, scales 666);
4. the rounded increments accumulate over the radii (vdrp 11, 5, 3"; Karl 17, 8, 3").

Differences from vdrp: the Fortran read at most 1000 detections and 1000 catalogue stars; hetred
has no limit. Detections are ordered by IFU slot and then as in their table (vdrp: file-system
order of the .als files), which changes only the line order of getoff.out and tmp_expNN.csv.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hetred.astrom.formats import ALS_DTYPE
from hetred.stats import biweight
from hetred.virus.coords import radec_to_tangent, rotation_angle, tangent_to_radec
from hetred.virus.fplane import FplaneEntry

F32 = np.float32
NO_PAIR_SCALE = 666.0        #: getoff2's scale when no pair is found


@dataclass
class Placed:
    """The detections of one exposure on the focal plane (all IFUs, concatenated).

    ``als``: (n,) :data:`~hetred.astrom.formats.ALS_DTYPE` rows as measured; ``ifuslot`` (n,);
    ``xfp``, ``yfp`` (n,) focal-plane arcsec (IFU position + pixel offset + fplane, axes swapped).
    """

    als: np.ndarray
    ifuslot: np.ndarray
    xfp: np.ndarray
    yfp: np.ndarray

    def __len__(self) -> int:
        return len(self.als)


def place(tables: Mapping[int, np.ndarray], fplane: Mapping[int, FplaneEntry], xoff: float,
          yoff: float) -> Placed:
    """Put the ``.als`` tables of one exposure ({ifuslot: table}) on the focal plane.

    Slots missing from ``fplane`` are left out (vdrp ``get_als_files`` warns and skips them; the
    caller reports them). x_ifu = X + xoff, y_ifu = Y + yoff (pyhetdex ``read_daophot``);
    xfp = x_ifu + Y_FP, yfp = y_ifu + X_FP (vdrp ``add_ra_dec``: "remember to flip x,y").
    """
    parts, slots, xs, ys = [], [], [], []
    for slot in sorted(tables):
        t = np.asarray(tables[slot], dtype=ALS_DTYPE)
        if slot not in fplane or len(t) == 0:
            continue
        e = fplane[slot]
        parts.append(t)
        slots.append(np.full(len(t), slot, dtype=np.int64))
        xs.append(t["x"] + xoff + e.y_fp)
        ys.append(t["y"] + yoff + e.x_fp)
    if not parts:
        return Placed(np.zeros(0, ALS_DTYPE), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    return Placed(np.concatenate(parts), np.concatenate(slots), np.concatenate(xs), np.concatenate(ys))


def project(placed: Placed, ra: float, dec: float, pa: float) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) deg of the detections for the centre (ra, dec) deg and ``pa`` (PARANGLE + angoff)."""
    return tangent_to_radec(placed.xfp, placed.yfp, ra, dec, rotation_angle(pa))


def round5(value: float) -> float:
    """A value as getoff2.out prints it (Fortran ``f8.5``) and vdrp reads it back."""
    return float(f"{value:8.5f}")


@dataclass
class Getoff:
    """One getoff2 call: the pairs (getoff.out) and the fit (getoff2.out).

    ``pairs``: indices (det, cat) of every pair closer than the radius, detection-major;
    ``dra``, ``ddec`` arcsec (det - cat, no cos(dec)); ``inc_ra``, ``inc_dec`` deg (rounded to
    1e-5 as printed); ``s_ra``, ``s_dec`` arcsec (biweight scales; s_ra in RA-arcsec).
    """

    det: np.ndarray
    cat: np.ndarray
    dra: np.ndarray
    ddec: np.ndarray
    inc_ra: float
    inc_dec: float
    s_ra: float
    s_dec: float

    @property
    def n(self) -> int:
        return len(self.det)

    @property
    def rms(self) -> float:
        """sqrt(s_ra^2 + s_dec^2) of the printed scales (vdrp compute_optimal_ang_off)."""
        return float(np.hypot(round5(self.s_ra), round5(self.s_dec)))


def getoff2(ra_det: np.ndarray, dec_det: np.ndarray, ra_cat: np.ndarray, dec_cat: np.ndarray,
            radius: float) -> Getoff:
    """Karl's getoff2: pairs within ``radius`` arcsec and the biweight offset (module docstring)."""
    ra_det, dec_det = np.asarray(ra_det, float), np.asarray(dec_det, float)
    ra_cat, dec_cat = np.asarray(ra_cat, float), np.asarray(dec_cat, float)
    dx = (ra_det[:, None] - ra_cat[None, :]) * 3600.0
    dy = (dec_det[:, None] - dec_cat[None, :]) * 3600.0
    i, j = np.nonzero(np.sqrt(dx * dx + dy * dy) < radius)
    dra, ddec = dx[i, j], dy[i, j]
    if len(i) == 0:
        return Getoff(i, j, dra, ddec, 0.0, 0.0, NO_PAIR_SCALE, NO_PAIR_SCALE)
    bx, sx = biweight(dra.astype(F32))
    by, sy = biweight(ddec.astype(F32))
    inc_ra = round5(float(-F32(bx) / F32(3600.0)))
    inc_dec = round5(float(-F32(by) / F32(3600.0)))
    return Getoff(i, j, dra, ddec, inc_ra, inc_dec, float(sx), float(sy))


@dataclass
class ExposureFit:
    """The offset fit of one exposure at one rotation offset (vdrp compute_offset).

    ``ra0``, ``dec0``: the starting centre (deg); ``ra``, ``dec``: the fitted one (start plus the
    rounded increments); ``pa``: PARANGLE + angoff; ``last``: the getoff2 call of the last radius
    with ``ra_det``, ``dec_det``: the projection it used (tmp_expNN.csv); ``history``: per radius
    (radius, inc_ra, inc_dec, s_ra, s_dec, n).
    """

    angoff: float
    ra0: float
    dec0: float
    pa: float
    ra: float
    dec: float
    last: Getoff
    ra_det: np.ndarray
    dec_det: np.ndarray
    history: list[tuple[float, float, float, float, float, int]] = field(default_factory=list)


def fit_exposure(placed: Placed, ra_cat: np.ndarray, dec_cat: np.ndarray, ra0: float, dec0: float,
                 parangle: float, angoff: float, radii: Sequence[float]) -> ExposureFit:
    """Iterate getoff2 over ``radii`` (arcsec) for one exposure; ``ra0`` in degrees."""
    if not radii:
        raise ValueError("getoff2 needs at least one matching radius")
    dra = ddec = 0.0
    pa = parangle + angoff
    history = []
    g = None
    ra_det = dec_det = np.zeros(0)
    for radius in radii:
        ra_det, dec_det = project(placed, ra0 + dra, dec0 + ddec, pa)
        g = getoff2(ra_det, dec_det, ra_cat, dec_cat, radius)
        dra, ddec = dra + g.inc_ra, ddec + g.inc_dec
        history.append((float(radius), g.inc_ra, g.inc_dec, g.s_ra, g.s_dec, g.n))
    assert g is not None
    return ExposureFit(angoff, ra0, dec0, pa, ra0 + dra, dec0 + ddec, g, ra_det, dec_det, history)


def ifu_xy(ra: np.ndarray, dec: np.ndarray, fplane: Mapping[int, FplaneEntry], ra0: float,
           dec0: float, pa: float, reach: float = 30.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IFU (x, y) arcsec and slot of sky positions for the solution (ra0, dec0, pa) (pyhetdex
    ``ra_dec_to_xy``, used by vdrp ``add_ifu_xy``): the nearest IFU whose centre is within
    ``reach`` arcsec on both focal-plane axes, else slot 999 and x = y = 999."""
    xfp, yfp = radec_to_tangent(np.asarray(ra, float), np.asarray(dec, float), ra0, dec0, rotation_angle(pa))
    entries = [e for e in fplane.values() if e.is_ifu]
    x_out = np.full(len(xfp), 999.0)
    y_out = np.full(len(xfp), 999.0)
    slot = np.full(len(xfp), 999, dtype=np.int64)
    if not entries or len(xfp) == 0:
        return x_out, y_out, slot
    cx = np.array([e.y_fp for e in entries])
    cy = np.array([e.x_fp for e in entries])
    dx, dy = xfp[:, None] - cx[None, :], yfp[:, None] - cy[None, :]
    inside = (np.abs(dx) < reach) & (np.abs(dy) < reach)
    d2 = np.where(inside, dx * dx + dy * dy, np.inf)
    best = np.argmin(d2, axis=1)
    ok = np.isfinite(d2[np.arange(len(xfp)), best])
    x_out[ok] = dx[ok, best[ok]]
    y_out[ok] = dy[ok, best[ok]]
    slot[ok] = np.array([entries[k].ifuslot for k in best[ok]])
    return x_out, y_out, slot
