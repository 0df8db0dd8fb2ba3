"""The empirical cross-dispersion fiber profile, measured from bright frames given the trace.

Replaces ``getfbin``/``getfprof`` (and the profile half of the ``getfprof``/``getfloc2``
iteration) of karlspipe hdr2.1 ``progs/vred.f``; see docs/stages/twical_trace.md.

Representation: the profile is measured and stored directly in PIXEL-OFFSET space.  P(d) is the
fraction of a fiber's light (in one column) that falls in a pixel whose CENTRE lies d px from
the trace, i.e. the true profile already integrated over a pixel.  Every pixel of a bright frame
is one sample of P at its own offset, so binning the normalised pixels by offset measures P
without assuming a shape and without deconvolving the pixel; evaluating the weight of pixel row
r is then just P(r - trace), exact at any sub-pixel phase (no integration step, no pixel-phase
error).  P is tabulated on 61 nodes every 0.25 px over +-7.5 px (Karl: 15 nodes within +-4.5 px)
so that the simultaneous extraction can model the overlap with the neighbouring fibers (at +-4.35
px the profile is still ~13 % of its peak), and interpolated with a Catmull-Rom cubic.

Variation: nodes are measured per cell of 7 fibers x 129 columns (16 x 8 cells), each cell is
normalised to unit integral and centred (its light centroid within +-3 px set to 0, which makes
the trace the centroid of the fiber's core light) with symmetric wings beyond 3.5 px (see
:func:`_normalise_and_centre`), then every node is smoothed over the cells with a
weighted, clipped Legendre polynomial of degree (3, 3) in (fiber, column) and stored for every
fiber at 17 knot columns (linear interpolation between them).

Start: the shape that the data cannot fix (how the overlap between two neighbours splits
between them) comes from :func:`analytic_start`, a generalised Gaussian fitted to the measured
core; see docs/stages/twical_trace.md.

Units: offsets px; columns 0-based oriented columns; values: fraction of the fiber's light per
pixel (unit integral over the offset, hence ~unit sum over a window of whole pixels).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.polynomial import legendre

from hetred._ext import extract as K
from hetred.fibers.extract import Extraction, extract, model_from_weights
from hetred.stats import biweight

F32 = np.float32
NFIB = 112
NCOL = 1032
NODE_STEP = 0.25          #: px between nodes
NODE_HALF = 7.5           #: nodes cover -7.5 .. +7.5 px
HALF_WIN = 7              #: a fiber's window: its nearest row +- 7 rows
NWIN = 2 * HALF_WIN + 1
FIBER_GROUP = 7           #: fibers per measurement cell
NCBIN = 8                 #: column bins of the measurement
NKNOT = 17                #: stored knot columns
SMOOTH_DEG = (3, 3)       #: Legendre degree across fibers, along columns
CENTROID_HALF = 3.0       #: px: the centroid that defines the centre uses |d| <= 3
SYM_INNER, SYM_OUTER = 2.5, 3.5   #: px: wings symmetric beyond 3.5, blended from 2.5


def node_offsets(step: float = NODE_STEP, half: float = NODE_HALF) -> np.ndarray:
    """The regular node grid (px), float64."""
    n = int(round(2 * half / step)) + 1
    return -half + step * np.arange(n)


def window_start(trace: np.ndarray) -> np.ndarray:
    """First row of each fiber window: nearest row - HALF_WIN, int32 (same shape as trace)."""
    return (np.floor(np.asarray(trace, dtype=np.float64) + 0.5) - HALF_WIN).astype(np.int32)


def catmull_rom(values: np.ndarray, u: np.ndarray, derivative: bool = False):
    """Catmull-Rom cubic through ``values`` (..., nnode) at node coordinates ``u`` (..., m)
    (0 .. nnode-1); zero outside.  With ``derivative`` also d/du.  float64."""
    v = np.asarray(values, dtype=np.float64)
    nn = v.shape[-1]
    vp = np.concatenate([np.zeros(v.shape[:-1] + (2,)), v, np.zeros(v.shape[:-1] + (2,))], axis=-1)
    u = np.asarray(u, dtype=np.float64)
    inside = (u >= 0) & (u <= nn - 1)
    uc = np.clip(u, 0, nn - 1 - 1e-9)
    i = np.floor(uc).astype(np.int64)
    t = uc - i
    p0, p1, p2, p3 = (np.take_along_axis(vp, i + j, axis=-1) for j in (1, 2, 3, 4))
    a, b = 2 * p0 - 5 * p1 + 4 * p2 - p3, -p0 + 3 * p1 - 3 * p2 + p3
    val = np.where(inside, 0.5 * (2 * p1 + (p2 - p0) * t + a * t * t + b * t * t * t), 0.0)
    if not derivative:
        return val
    der = np.where(inside, 0.5 * ((p2 - p0) + 2 * a * t + 3 * b * t * t), 0.0)
    return val, der


def catmull_rom_rows(table: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Catmull-Rom of curve ``table[rows[i]]`` (table (R, nnode)) at node coordinate ``u[i]``."""
    nn = table.shape[1]
    vp = np.pad(np.asarray(table, dtype=np.float64), ((0, 0), (2, 2)))
    u = np.asarray(u, dtype=np.float64)
    inside = (u >= 0) & (u <= nn - 1)
    uc = np.clip(u, 0, nn - 1 - 1e-9)
    i = np.floor(uc).astype(np.int64)
    t = uc - i
    p0, p1, p2, p3 = (vp[rows, i + j] for j in (1, 2, 3, 4))
    val = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t
                 + (-p0 + 3 * p1 - 3 * p2 + p3) * t * t * t)
    return np.where(inside, val, 0.0)


@dataclass
class FiberProfile:
    """Pixel-offset profile of every fiber.

    offsets: (nnode,) px, regular grid of pixel-centre offsets from the trace.
    columns: (nknot,) oriented columns where the node values are given (increasing).
    values: (nfib, nknot, nnode) float32, P at the nodes (unit integral over offset).
    """

    offsets: np.ndarray
    columns: np.ndarray
    values: np.ndarray

    @property
    def step(self) -> float:
        return float(self.offsets[1] - self.offsets[0])

    # ------------------------------------------------------------------ evaluation
    def node_values(self, fiber: int, ncol: int = NCOL) -> np.ndarray:
        """(ncol, nnode) node values of one fiber at every column (linear between knots)."""
        cols = np.arange(ncol, dtype=np.float64)
        kc = np.asarray(self.columns, dtype=np.float64)
        j = np.clip(np.searchsorted(kc, cols) - 1, 0, len(kc) - 2)
        f = np.clip((cols - kc[j]) / (kc[j + 1] - kc[j]), 0.0, 1.0)[:, None]
        v = np.asarray(self.values[fiber], dtype=np.float64)
        return v[j] * (1 - f) + v[j + 1] * f

    def knot_fractions(self, ncol: int = NCOL) -> tuple[np.ndarray, np.ndarray]:
        """For every column the knot below it (int64) and the linear fraction to the next."""
        kc = np.asarray(self.columns, dtype=np.float64)
        cols = np.arange(ncol, dtype=np.float64)
        j = np.clip(np.searchsorted(kc, cols) - 1, 0, len(kc) - 2)
        return j.astype(np.int64), np.clip((cols - kc[j]) / (kc[j + 1] - kc[j]), 0.0, 1.0)

    def weights(self, trace: np.ndarray, derivative: bool = False):
        """Pixel weights of every fiber at every column.

        trace: (nfib, ncol) rows.  Returns r0 (nfib, ncol) int32, the first row of each window,
        and w (nfib, ncol, NWIN) float32, the fraction of the fiber's light in rows r0 .. r0+14
        (normalised to unit sum over the window, rows off the frame included in the sum).  With
        ``derivative`` also dw/dtrace (nfib, ncol, NWIN) float32 (1/px).  The node curve is the
        Catmull-Rom cubic through the nodes, linear in column between the knots (Cython kernel
        :func:`hetred._ext.extract.profile_weights`).
        """
        tr = np.ascontiguousarray(trace, dtype=np.float64)
        j, fc = self.knot_fractions(tr.shape[1])
        r0, w, dw = K.profile_weights(np.ascontiguousarray(self.values, dtype=F32), j, fc,
                                      float(self.offsets[0]), self.step, tr, HALF_WIN, derivative)
        return (r0, w, dw) if derivative else (r0, w)

    # ------------------------------------------------------------------ I/O
    def to_hdus(self, name: str = "PROFILE") -> list[fits.ImageHDU]:
        """Two image extensions: ``name`` (values, FITS axes nnode x nknot x nfib) and
        ``name_COLS`` (knot columns)."""
        h = fits.ImageHDU(np.asarray(self.values, dtype=F32), name=name)
        h.header["NODE0"] = (float(self.offsets[0]), "px offset of the first node")
        h.header["NODESTEP"] = (self.step, "px between nodes")
        h.header["NNODE"] = (len(self.offsets), "nodes per profile")
        h.header["COMMENT"] = "Fraction of fiber light in a pixel whose centre is NODE0+i*NODESTEP px from the trace"
        c = fits.ImageHDU(np.asarray(self.columns, dtype=F32), name=f"{name}_COLS")
        c.header["COMMENT"] = "oriented 0-based columns of the profile knots"
        return [h, c]

    @classmethod
    def from_hdus(cls, hdul: fits.HDUList, name: str = "PROFILE") -> "FiberProfile":
        h = hdul[name]
        n0, st, nn = float(h.header["NODE0"]), float(h.header["NODESTEP"]), int(h.header["NNODE"])
        return cls(n0 + st * np.arange(nn), np.asarray(hdul[f"{name}_COLS"].data, dtype=np.float64),
                   np.asarray(h.data, dtype=F32))

    def write(self, path: str | Path) -> None:
        from hetred.io.atomic import write_fits_atomic

        write_fits_atomic(path, fits.HDUList([fits.PrimaryHDU(), *self.to_hdus()]))

    @classmethod
    def read(cls, path: str | Path) -> "FiberProfile":
        with fits.open(path, memmap=False) as hdul:
            return cls.from_hdus(hdul)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def analytic(cls, sigma: float = 2.5, power: float = 2.5, nfib: int = NFIB,
                 ncol: int = NCOL, nknot: int = NKNOT) -> "FiberProfile":
        """exp(-1/2 |y/sigma|^power) integrated over a pixel: only the STARTING point of
        :func:`measure_profile` (Panacea's default sigma = power = 2.5)."""
        off = node_offsets()
        sub = (np.arange(200) + 0.5) / 200 - 0.5
        y = off[:, None] + sub[None, :]
        p = np.exp(-0.5 * np.abs(y / sigma) ** power).mean(axis=1)
        p /= p.sum() * NODE_STEP
        vals = np.broadcast_to(p.astype(F32), (nfib, nknot, len(off))).copy()
        return cls(off, np.linspace(0, ncol - 1, nknot), vals)


def _binned_biweight(keys: np.ndarray, y: np.ndarray, nbins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Biweight location, scale and count of ``y`` in each of ``nbins`` integer bins."""
    order = np.argsort(keys, kind="stable")
    ks, ys = keys[order], y[order]
    count = np.bincount(ks, minlength=nbins)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    pos = np.arange(len(ks)) - start[ks]
    pad = np.full((max(1, int(count.max())), nbins), np.nan, dtype=F32)
    pad[pos, ks] = ys
    loc, scale = biweight(pad, axis=0)
    ok = count >= 5
    return np.where(ok, loc, np.nan), np.where(ok, scale, np.nan), count


def _legendre_design(xf: np.ndarray, xc: np.ndarray, deg: tuple[int, int]) -> np.ndarray:
    return legendre.legvander2d(xf, xc, deg)


def _norm_f(f):
    return (np.asarray(f, dtype=np.float64) - (NFIB - 1) / 2) / ((NFIB - 1) / 2)


def _norm_c(c):
    return (np.asarray(c, dtype=np.float64) - (NCOL - 1) / 2) / ((NCOL - 1) / 2)


def measure_profile(image: np.ndarray, trace: np.ndarray, spectra: np.ndarray, previous: FiberProfile,
                    *, mask: np.ndarray | None = None, exclude: np.ndarray | None = None,
                    min_flux_frac: float = 0.2, fiber_group: int = FIBER_GROUP, ncbin: int = NCBIN,
                    nknot: int = NKNOT, deg: tuple[int, int] = SMOOTH_DEG) -> FiberProfile:
    """Measure the profile from a bright frame.

    image: (1032, 1032) e-, background-subtracted and flat-fielded; trace: (112, 1032) rows;
    spectra: (112, 1032) e- extracted with ``previous`` (the neighbours' light is removed with
    them: each sample is w_prev + share * (image - model) / flux, where share is this fiber's
    part of the pixel's model, so that a residual in the overlap of two fibers is split between
    them instead of being given to both, which would make the iteration oscillate); mask:
    (1032, 1032) nonzero = bad; exclude: (112,) bool, fibers left out (dead, bad traces).
    Columns where a fiber has less than ``min_flux_frac`` of its median flux are left out.  One biweight per (cell, node) bin of 0.25 px, moved along the
    curve's slope from the bin's mean offset to the node.  Returns a new :class:`FiberProfile`.
    """
    img = np.asarray(image, dtype=F32)
    nrow, ncol = img.shape
    tr = np.asarray(trace, dtype=np.float64)
    spec = np.asarray(spectra, dtype=np.float64)
    nfib = tr.shape[0]
    r0, w = previous.weights(tr)
    model = model_from_weights(spectra, r0, w, nrow)
    resid = img - model
    bad = ~np.isfinite(resid)
    if mask is not None:
        bad |= np.asarray(mask).astype(bool)
    off = node_offsets()
    nn = len(off)
    ngrp = max(1, nfib // fiber_group)
    k = np.arange(NWIN)
    rows = r0[:, :, None] + k[None, None, :]
    d = rows - tr[:, :, None]
    inside = (rows >= 0) & (rows < nrow)
    rc = np.clip(rows, 0, nrow - 1)
    cols = np.broadcast_to(np.arange(ncol)[None, :, None], rows.shape)
    med = np.median(spec, axis=1, keepdims=True)
    good_col = (spec > min_flux_frac * np.maximum(med, 1e-30)) & (spec > 0)
    if exclude is not None:
        good_col &= ~np.asarray(exclude, dtype=bool)[:, None]
    ok = inside & ~bad[rc, cols] & good_col[:, :, None] & (np.abs(d) <= NODE_HALF)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = w * spec[:, :, None]                                  # this fiber's model (e-)
        share = own / np.maximum(np.maximum(model[rc, cols], own), 1e-30)
        y = w + share * resid[rc, cols] / spec[:, :, None]
    fidx = np.minimum(np.arange(nfib) // fiber_group, ngrp - 1)
    cidx = np.minimum(np.arange(ncol) * ncbin // ncol, ncbin - 1)
    cell = (fidx[:, None] * ncbin + cidx[None, :])[:, :, None]
    ncell = ngrp * ncbin
    node = np.clip(np.rint((d - off[0]) / NODE_STEP).astype(np.int64), 0, nn - 1)
    keys = (np.broadcast_to(cell, d.shape) * nn + node)[ok]
    ys, ds = y[ok].astype(F32), d[ok]
    loc, scale, cnt = _binned_biweight(keys, ys, ncell * nn)
    # the samples of a bin are not exactly centred on its node: move each bin's value along the
    # local slope of the curve from the bin's mean offset to the node
    mean_off = np.bincount(keys, weights=ds, minlength=ncell * nn) / np.maximum(cnt, 1)
    grid = loc.reshape(ncell, nn)
    slope = np.gradient(np.nan_to_num(grid), NODE_STEP, axis=1)
    grid = np.nan_to_num(grid + slope * (off[None, :] - mean_off.reshape(ncell, nn)))
    err = (scale / np.sqrt(np.maximum(cnt, 1))).reshape(ncell, nn)
    valid = np.isfinite(loc.reshape(ncell, nn)).all(axis=1)
    grid = _normalise_and_centre(grid, off)
    # smooth every node over the cells
    fc = np.array([np.mean(np.nonzero(fidx == g)[0]) for g in range(ngrp)])
    cc = np.array([np.mean(np.nonzero(cidx == c)[0]) for c in range(ncbin)])
    xf = np.repeat(_norm_f(fc), ncbin)
    xc = np.tile(_norm_c(cc), ngrp)
    knots = np.linspace(0, ncol - 1, nknot)
    deg_eff = (min(deg[0], max(0, ngrp - 2)), min(deg[1], max(0, ncbin - 2)))
    a_cells = _legendre_design(xf, xc, deg_eff)
    a_out = _legendre_design(np.repeat(_norm_f(np.arange(nfib)), nknot),
                             np.tile(_norm_c(knots), nfib), deg_eff)
    out = np.empty((nfib * nknot, nn))
    # one weight per cell for every node (the inverse median node error of the cell's core), so
    # that the smoothing is the same linear operation for every node
    core = np.abs(off) <= 2.0
    with warnings.catch_warnings():    # a cell without any finite error has no weight
        warnings.simplefilter("ignore", RuntimeWarning)
        cell_err = np.nanmedian(np.where(np.isfinite(err[:, core]), err[:, core], np.nan), axis=1)
    cell_wt = np.where(valid & np.isfinite(cell_err) & (cell_err > 0), 1.0 / np.maximum(cell_err, 1e-12), 0.0)
    for j in range(nn):
        wt = cell_wt
        use = wt > 0
        coef = None
        for _ in range(3):
            if use.sum() < a_cells.shape[1]:
                break
            coef = np.linalg.lstsq(a_cells[use] * wt[use, None], grid[use, j] * wt[use], rcond=None)[0]
            z = (grid[:, j] - a_cells @ coef) * wt
            s = 1.4826 * np.median(np.abs(z[use])) + 1e-30
            new = (wt > 0) & (np.abs(z) < 4 * s)
            if (new == use).all():
                break
            use = new
        out[:, j] = a_out @ coef if coef is not None else np.nanmedian(grid[valid, j]) if valid.any() else 0.0
    out[:, 0] = out[:, -1] = 0.0
    vals = _normalise_and_centre(out, off).reshape(nfib, nknot, nn)
    return FiberProfile(off, knots, vals.astype(F32))


def _normalise_and_centre(grid: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Every row of ``grid`` (node values on the symmetric grid ``off``): light centroid within
    |d| <= CENTROID_HALF moved to 0, wings made symmetric (fully beyond SYM_OUTER, blended from
    SYM_INNER), unit integral.

    Why the wings: between two fibers the data fix only the SUM of one fiber's right wing and
    the next one's left wing, so a wing asymmetry is invisible when neighbours have similar
    fluxes; left free it wanders during the trace/profile iteration and, through the centre,
    drags the traces.  Making the wings symmetric removes that degeneracy; the core (where the
    fiber's own light dominates) keeps any real asymmetry.
    """
    g = np.maximum(grid, 0.0)
    sel = np.abs(off) <= CENTROID_HALF
    b = np.clip((np.abs(off) - SYM_INNER) / (SYM_OUTER - SYM_INNER), 0.0, 1.0)[None, :]
    for _ in range(3):
        cen = (g[:, sel] * off[sel]).sum(axis=1) / np.maximum(g[:, sel].sum(axis=1), 1e-30)
        u = (off[None, :] + cen[:, None] - off[0]) / NODE_STEP
        g = np.maximum(catmull_rom(g, u), 0.0)
        g = (1 - b / 2) * g + (b / 2) * g[:, ::-1]
    s = g.sum(axis=1, keepdims=True) * NODE_STEP
    return g / np.where(s > 0, s, 1.0)


def _gg_templates(off: np.ndarray, sigmas: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """Pixel-integrated exp(-1/2 |y/sigma|^p) on ``off`` for every (sigma, power): (ns*np, nnode),
    unit integral."""
    sub = (np.arange(40) + 0.5) / 40 - 0.5
    y = np.abs(off[:, None] + sub[None, :])                       # (nnode, 40)
    s = sigmas.repeat(len(powers))[:, None, None]
    pw = np.tile(powers, len(sigmas))[:, None, None]
    t = np.exp(-0.5 * (y[None] / s) ** pw).mean(axis=2)
    return t / (t.sum(axis=1, keepdims=True) * (off[1] - off[0]))


def analytic_start(profile: FiberProfile, core: float = 3.0) -> FiberProfile:
    """The generalised Gaussian exp(-1/2 |y/sigma|^p), pixel-integrated, whose CORE (|d| <=
    ``core``) best matches ``profile`` at every fiber and knot (sigma 1.8-3.4 px, p 1.6-3.4).

    Used only as the starting point of :func:`measure_profile`: between two fibers the data fix
    the sum of the two facing wings but hardly their split (see :func:`_normalise_and_centre`),
    so the iteration keeps the split of its starting point; starting from a shape fitted to the
    well-measured core gives a sensible split instead of that of a fixed default."""
    off = profile.offsets
    sel = np.abs(off) <= core
    sig, pw = np.arange(1.8, 3.4001, 0.02), np.arange(1.6, 3.4001, 0.025)
    tmpl = _gg_templates(off, sig, pw)
    tc = tmpl[:, sel] / tmpl[:, sel].sum(axis=1, keepdims=True)
    v = np.asarray(profile.values, dtype=np.float64).reshape(-1, len(off))
    vc = v[:, sel] / np.maximum(v[:, sel].sum(axis=1, keepdims=True), 1e-30)
    sse = (tc * tc).sum(axis=1)[None, :] - 2.0 * vc @ tc.T
    best = np.argmin(sse, axis=1)
    vals = tmpl[best].reshape(profile.values.shape)
    return FiberProfile(off.copy(), np.asarray(profile.columns).copy(), vals.astype(F32))


def combine_profiles(profiles: list[FiberProfile]) -> FiberProfile:
    """Biweight, node by node, of several frames' profiles (same grids), renormalised."""
    vals = np.stack([p.values for p in profiles]).astype(F32)
    loc = vals[0] if len(profiles) == 1 else biweight(vals, axis=0)[0]
    loc = np.maximum(np.asarray(loc, dtype=np.float64), 0.0)
    loc /= loc.sum(axis=-1, keepdims=True) * profiles[0].step
    return FiberProfile(profiles[0].offsets.copy(), profiles[0].columns.copy(), loc.astype(F32))


@dataclass
class FrameCalibration:
    """Trace, profile and extraction of one bright frame (see :func:`calibrate_frame`)."""

    trace: object                 #: hetred.fibers.trace.TraceSolution
    profile: FiberProfile
    extraction: Extraction
    iterations: int               #: trace refinement steps taken


def calibrate_frame(image: np.ndarray, reference=None, *, read_noise: float = 3.0,
                    mask: np.ndarray | None = None, flat: np.ndarray | None = None,
                    n_profile: int = 2, max_refine: int = 4, tol: float = 0.002,
                    initial_profile: FiberProfile | None = None) -> FrameCalibration:
    """Traces, profile and extraction of one bright frame (Karl's ``getfloc``, the
    ``getfprof``/``getfloc2`` iteration and ``extract``).

    image: (1032, 1032) e-, background-subtracted, flat-fielded twilight or lamp flat;
    reference: trace reference for :func:`hetred.fibers.trace.find_traces` or None; read_noise
    e-; mask (1032, 1032) nonzero = bad; flat: the pixel flat the image was divided by.

    1. :func:`~hetred.fibers.trace.find_traces`;
    2. ``n_profile`` rounds of extraction + :func:`measure_profile`, from ``initial_profile``
       (e.g. last month's) or else from the default shape, replaced after the first round by
       :func:`analytic_start` of the measured profile;
    3. :func:`~hetred.fibers.trace.refine_traces` with that profile FIXED until the rms change of
       the live traces is below ``tol`` px (at most ``max_refine`` steps).  Re-measuring the
       profile inside this loop (Karl iterates both up to 10 times) lets the two trade a slow
       drift, so the profile is held fixed while the traces converge;
    4. the profile measured once more at the final traces, and the final extraction.
    """
    from hetred.fibers import trace as T

    kw = dict(read_noise=read_noise, mask=mask, flat=flat)
    sol = T.find_traces(image, reference, mask=mask)
    prof = initial_profile or FiberProfile.analytic()
    for i in range(n_profile):
        ext = extract(image, sol.trace, prof, **kw)
        prof = measure_profile(image, sol.trace, ext.spectra, prof, mask=ext.mask,
                               exclude=sol.dead | sol.bad.any(axis=1))
        if i == 0 and initial_profile is None:
            prof = analytic_start(prof)
    steps = 0
    live = ~sol.dead
    for steps in range(1, max_refine + 1):
        new = T.refine_traces(image, sol, prof, **kw)
        change = float(np.sqrt(np.mean((new.trace[live] - sol.trace[live]) ** 2)))
        sol = new
        if change < tol:
            break
    ext = extract(image, sol.trace, prof, **kw)
    prof = measure_profile(image, sol.trace, ext.spectra, prof, mask=ext.mask,
                           exclude=sol.dead | sol.bad.any(axis=1))
    ext = extract(image, sol.trace, prof, **kw)
    return FrameCalibration(sol, prof, ext, steps)
