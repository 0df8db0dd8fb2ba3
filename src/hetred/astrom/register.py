"""Exposure registration (DAOMASTER's ``all.mch``, ``all.raw``) and ``norm.dat``.

vdrp (HETDEX/vdrp src/vdrp/astrometry.py ``mktot``, ``rmaster``, ``getNorm``, ``flux_norm``;
shared/reference/astrom_throughput.md §1.5) puts each exposure's ``.als`` stars with
``magmin < MAG < magmax`` and ``0 < X, Y < 50`` on one mosaic (``*tot.als``), lets DAOMASTER match
the three exposures (shifts only, match-up radii 3 px x 14, 2 px x 10, 1 px x 6, stars in at least
2 frames) and computes from its ``all.raw`` the relative flux of each exposure: for the stars
brighter than ``fluxnorm_mag_max`` in every exposure, f_k = 10^((25 - m_k)/2.5) and
n_k = astropy ``biweight_location(f_k / mean_k f_k)``.

hetred's registration (:func:`register`) is its own DAOMASTER-like matcher, not a port:

* frame coordinates are focal-plane arcsec of the DAOPHOT pixels, x = X + Y_FP, y = Y + X_FP (1"
  pixels; vdrp used a 100-px grid from ``ifu_grid.txt``, whose slots 062/063 even overlap), so a
  dither (dx, dy) moves a star by -(dx, dy) and the frame-to-master shift starts at (dx, dy);
* per radius of the sequence, each star of a frame is paired with the nearest master star within
  the radius (one-to-one, nearest first), the shift is the mean of the pair differences and the
  master positions are the mean over the frames that saw the star; exposure 1 is the reference;
* ``all.mch`` gets the fitted shifts, the median magnitude difference to exposure 1 (master minus
  frame) and the rms of the pair residuals (px); ``all.raw`` the master stars found in at least
  ``min_frames`` exposures with each exposure's magnitude and error (99.9999 9.9999 when missing).

:func:`flux_norm` is vdrp's ``getNorm`` and reproduces the real ``norm.dat`` from the real
``all.raw`` to the printed digit.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hetred.astrom.formats import ALS_DTYPE, MISSING_ERR, MISSING_MAG
from hetred.virus.fplane import FplaneEntry

#: DAOMASTER's match-up radii as vdrp answers its prompts (px)
MATCH_RADII: tuple[float, ...] = (3.0,) * 14 + (2.0,) * 10 + (1.0,) * 6


@dataclass
class FrameStars:
    """The registration stars of one exposure: ids, slot, frame x, y (arcsec), mag, merr."""

    ids: np.ndarray
    ifuslot: np.ndarray
    x: np.ndarray
    y: np.ndarray
    mag: np.ndarray
    merr: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def frame_stars(tables: Mapping[int, np.ndarray], fplane: Mapping[int, FplaneEntry], magmin: float,
                magmax: float, xlim: tuple[float, float] = (0.0, 50.0),
                ylim: tuple[float, float] = (0.0, 50.0)) -> FrameStars:
    """vdrp ``mktot``'s selection of one exposure (``magmin < MAG < magmax``, ``xlim``/``ylim``
    open intervals on the DAOPHOT X, Y) on the focal plane (slots missing from ``fplane`` left out)."""
    cols: dict[str, list] = {k: [] for k in ("ids", "ifuslot", "x", "y", "mag", "merr")}
    for slot in sorted(tables):
        t = np.asarray(tables[slot], dtype=ALS_DTYPE)
        if slot not in fplane or len(t) == 0:
            continue
        m = ((t["mag"] > magmin) & (t["mag"] < magmax) & (t["x"] > xlim[0]) & (t["x"] < xlim[1])
             & (t["y"] > ylim[0]) & (t["y"] < ylim[1]))
        t = t[m]
        cols["ids"].append(t["id"])
        cols["ifuslot"].append(np.full(len(t), slot))
        cols["x"].append(t["x"] + fplane[slot].y_fp)
        cols["y"].append(t["y"] + fplane[slot].x_fp)
        cols["mag"].append(t["mag"])
        cols["merr"].append(t["merr"])
    return FrameStars(**{k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()})


@dataclass
class Registration:
    """DAOMASTER-like result: per-frame shifts, magnitude offsets and residual rms; the matched
    star table (master x, y in the frame of exposure 1; (n, nframes) mags and errors, NaN missing)."""

    dx: np.ndarray
    dy: np.ndarray
    dmag: np.ndarray
    sigma: np.ndarray
    x: np.ndarray
    y: np.ndarray
    mags: np.ndarray
    errs: np.ndarray
    ids: np.ndarray
    index: np.ndarray            #: (n, nframes) index of the star in each frame's FrameStars, -1 missing

    @property
    def nframes(self) -> np.ndarray:
        """Number of frames each master star was found in, (n,)."""
        return np.sum(np.isfinite(self.mags), axis=1)


def _pairs(xm: np.ndarray, ym: np.ndarray, xf: np.ndarray, yf: np.ndarray, radius: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (master index, frame index) closer than ``radius``, nearest first."""
    if len(xm) == 0 or len(xf) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([xm, ym]))
    d, i = tree.query(np.column_stack([xf, yf]), distance_upper_bound=radius)
    cand = np.nonzero(np.isfinite(d) & (d < radius))[0]
    order = cand[np.argsort(d[cand], kind="stable")]
    used_m: set[int] = set()
    mi, fi = [], []
    for f in order:
        if int(i[f]) in used_m:
            continue
        used_m.add(int(i[f]))
        mi.append(int(i[f]))
        fi.append(int(f))
    return np.array(mi, dtype=int), np.array(fi, dtype=int)


def _master(frames: Sequence[FrameStars], assign: list[np.ndarray], dx: np.ndarray, dy: np.ndarray,
            n: int, exclude: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Master positions of the first ``n`` stars: the mean of the shifted positions of the frames
    that see them, leaving out frame ``exclude``; (x, y, seen)."""
    sx, sy, cnt = np.zeros(n), np.zeros(n), np.zeros(n)
    for k, f in enumerate(frames):
        if k == exclude:
            continue
        a = assign[k]
        ok = (a >= 0) & (a < n)
        np.add.at(sx, a[ok], f.x[ok] + dx[k])
        np.add.at(sy, a[ok], f.y[ok] + dy[k])
        np.add.at(cnt, a[ok], 1.0)
    seen = cnt > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen, sx / cnt, np.nan), np.where(seen, sy / cnt, np.nan), seen


def register(frames: Sequence[FrameStars], dithers: Sequence[tuple[float, float]],
             radii: Sequence[float] = MATCH_RADII) -> Registration:
    """Match the frames' stars (module docstring); frame 0 is the reference (shift 0)."""
    nf = len(frames)
    if nf == 0:
        raise ValueError("register needs at least one frame")
    dx = np.array([float(dithers[k][0] - dithers[0][0]) for k in range(nf)])
    dy = np.array([float(dithers[k][1] - dithers[0][1]) for k in range(nf)])
    ref = frames[0]
    mx, my = ref.x.astype(float).copy(), ref.y.astype(float).copy()
    assign: list[np.ndarray] = [np.arange(len(ref))] + [np.full(len(f), -1) for f in frames[1:]]
    for radius in radii:
        for k in range(1, nf):
            # the master position of a star for frame k: the mean over the OTHER frames that see it
            # (a frame never pulls the master list towards itself; a static artefact that does not
            # move with the dither stays unmatched)
            mx, my, seen = _master(frames, assign, dx, dy, len(ref), exclude=k)
            f = frames[k]
            use = np.nonzero(seen)[0]
            mi, fi = _pairs(mx[use], my[use], f.x + dx[k], f.y + dy[k], radius)
            mi = use[mi]
            assign[k][:] = -1
            assign[k][fi] = mi
            if len(mi):
                dx[k] += float(np.mean(mx[mi] - (f.x[fi] + dx[k])))
                dy[k] += float(np.mean(my[mi] - (f.y[fi] + dy[k])))
    mx, my, _ = _master(frames, assign, dx, dy, len(ref), exclude=None)
    # stars of later frames never matched join the master list (DAOMASTER numbers them 200001..)
    ids = list(ref.ids.astype(int))
    for k in range(1, nf):
        f, a = frames[k], assign[k]
        new = np.nonzero(a < 0)[0]
        start = len(mx)
        mx = np.concatenate([mx, f.x[new] + dx[k]])
        my = np.concatenate([my, f.y[new] + dy[k]])
        a[new] = start + np.arange(len(new))
        ids += [200000 + len(ids) - len(ref) + 1 + j for j in range(len(new))]
        for q in range(k + 1, nf):       # pair the new stars with the later frames' unpaired ones
            g, b = frames[q], assign[q]
            free = np.nonzero(b < 0)[0]
            mi, fi = _pairs(mx[start:], my[start:], g.x[free] + dx[q], g.y[free] + dy[q], radii[-1])
            b[free[fi]] = start + mi
    n = len(mx)
    mags = np.full((n, nf), np.nan)
    errs = np.full((n, nf), np.nan)
    index = np.full((n, nf), -1, dtype=int)
    for k in range(nf):
        a = assign[k]
        ok = a >= 0
        mags[a[ok], k] = frames[k].mag[ok]
        errs[a[ok], k] = frames[k].merr[ok]
        index[a[ok], k] = np.nonzero(ok)[0]
    dmag = np.zeros(nf)
    sigma = np.zeros(nf)
    for k in range(nf):
        a = assign[k]
        ok = a >= 0
        if not np.any(ok):
            continue
        rx = frames[k].x[ok] + dx[k] - mx[a[ok]]
        ry = frames[k].y[ok] + dy[k] - my[a[ok]]
        sigma[k] = float(np.sqrt(np.mean(rx * rx + ry * ry)))
        both = np.isfinite(mags[:, 0]) & np.isfinite(mags[:, k])
        if k > 0 and np.any(both):
            dmag[k] = float(np.median(mags[both, 0] - mags[both, k]))
    return Registration(dx, dy, dmag, sigma, mx, my, mags, errs, np.array(ids, dtype=int), index)


def all_raw_table(reg: Registration, min_frames: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                   np.ndarray, np.ndarray]:
    """(ids, x, y, mags, errs) of the master stars in at least ``min_frames`` frames, sorted by y
    (DAOMASTER's order), missing values as 99.9999 / 9.9999."""
    keep = np.nonzero(reg.nframes >= min_frames)[0]
    keep = keep[np.argsort(reg.y[keep], kind="stable")]
    mags = np.where(np.isfinite(reg.mags[keep]), reg.mags[keep], MISSING_MAG)
    errs = np.where(np.isfinite(reg.mags[keep]), np.nan_to_num(reg.errs[keep]), MISSING_ERR)
    return reg.ids[keep], reg.x[keep], reg.y[keep], mags, errs


def flux_norm(mags: np.ndarray, mag_max: float) -> np.ndarray | None:
    """vdrp ``getNorm``: relative flux of each exposure from stars brighter than ``mag_max`` in all.

    mags: (n, nframes) magnitudes (25 - 2.5 log10 flux; 99.9999 or NaN = missing). Returns
    (nframes,) astropy ``biweight_location`` of f_k / mean(f), or None without such a star.
    """
    from astropy.stats import biweight_location

    m = np.asarray(mags, dtype=float)
    if m.ndim != 2 or m.shape[0] == 0:
        return None
    use = np.all(np.isfinite(m) & (m < mag_max), axis=1)
    if not np.any(use):
        return None
    f = 10.0 ** ((25.0 - m[use]) / 2.5)
    favg = np.sum(f, axis=1) / f.shape[1]
    return np.array([biweight_location(f[:, k] / favg) for k in range(f.shape[1])])
