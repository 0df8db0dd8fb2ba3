"""Fiber-to-fiber from a twilight (docs/stages/twical.md; Karl's ``getmaster`` ftf part of vred.f).

Input: extracted spectra (112, 1032) electrons per oriented column and their wavelengths
(112, 1032) Å. Steps (:func:`fiber_to_fiber`):

1. flux density: counts / (dλ/dx) per fiber (the dispersion differs between fibers);
2. every fiber interpolated onto one grid (``grid_step`` Å) by its own wavelengths;
3. master = biweight over the live fibers at each grid point (dead and empty fibers left out,
   two passes: the first pass finds the dead fibers);
4. ratio fiber / master, smoothed along the wavelength by biweights in ``bin_width`` Å bins
   and linear interpolation between the bin centres (ends held flat);
5. evaluated back at each fiber's own wavelengths -> ftf (112, 1032); a fiber whose median
   ftf over ``norm_range`` is below ``dead_level`` (0.5) is flagged dead.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from hetred.stats import biweight

NFIB, NCOL = 112, 1032
GRID = (3470.0, 5540.0, 2.0)     #: Karl's output grid 3470 + 2 (i-1) Å
NORM_RANGE = (3700.0, 5400.0)    #: Å: the range the acceptance and the dead test use
DEAD_LEVEL = 0.5                 #: a fiber with ftf below this is dead


def nan_biweight(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Biweight location and scale ignoring NaN, NaN where no finite value (or Karl's -666)."""
    arr = np.asarray(a, dtype=np.float32)
    loc, scl = biweight(arr, axis=axis)
    loc = np.asarray(loc, dtype=np.float64)
    scl = np.asarray(scl, dtype=np.float64)
    empty = ~np.isfinite(arr).any(axis=axis)
    n = np.isfinite(arr).sum(axis=axis)
    loc = np.where(empty, np.nan, loc)
    scl = np.where(empty | (n < 2), np.nan, np.where(scl < 0, 0.0, scl))
    if n.ndim == 0 or n.size:
        one = n == 1
        if np.any(one):
            with warnings.catch_warnings():    # all-NaN slices are already NaN (empty)
                warnings.simplefilter("ignore", RuntimeWarning)
                loc = np.where(one, np.nanmean(np.where(np.isfinite(arr), arr, np.nan), axis=axis), loc)
    return loc, scl


def wave_grid(grid: tuple[float, float, float] = GRID) -> np.ndarray:
    lo, hi, step = grid
    return np.arange(lo, hi + 0.5 * step, step)


def flux_density(spectra: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """Counts per Å: spectra / (dλ/dx); zeros and non-finite values become NaN."""
    s = np.asarray(spectra, dtype=np.float64)
    disp = np.gradient(np.asarray(wave, dtype=np.float64), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((s != 0) & np.isfinite(s) & (disp > 0), s / disp, np.nan)
    return out


def to_grid(values: np.ndarray, wave: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each fiber interpolated onto ``grid`` by its own wavelengths (NaN outside / at gaps)."""
    out = np.full((values.shape[0], grid.size), np.nan)
    for i in range(values.shape[0]):
        w, v = np.asarray(wave[i], float), values[i]
        ok = np.isfinite(v)
        if ok.sum() < 10:
            continue
        g = np.interp(grid, w[ok], v[ok], left=np.nan, right=np.nan)
        # a grid point is only good when both neighbouring columns were good
        idx = np.clip(np.searchsorted(w, grid), 1, w.size - 1)
        g[~(ok[idx] & ok[idx - 1])] = np.nan
        out[i] = g
    return out


def smooth_ratio(ratio: np.ndarray, grid: np.ndarray, bin_width: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """Biweight per fiber in ``bin_width`` Å bins: (bin centres (nb,), values (nfib, nb))."""
    edges = np.arange(grid[0], grid[-1] + bin_width, bin_width)
    nb = edges.size - 1
    centres = np.full(nb, np.nan)
    vals = np.full((ratio.shape[0], nb), np.nan)
    for b in range(nb):
        sel = (grid >= edges[b]) & (grid < edges[b + 1])
        if sel.sum() < 3:
            continue
        centres[b] = grid[sel].mean()
        vals[:, b] = nan_biweight(ratio[:, sel], axis=1)[0]
    good = np.isfinite(centres)
    return centres[good], vals[:, good]


def evaluate(centres: np.ndarray, vals: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """Binned values back at each fiber's own wavelengths (linear, ends flat)."""
    out = np.full(wave.shape, np.nan)
    for i in range(vals.shape[0]):
        ok = np.isfinite(vals[i])
        if ok.sum() >= 2:
            out[i] = np.interp(wave[i], centres[ok], vals[i, ok])
        elif ok.sum() == 1:
            out[i] = vals[i, ok][0]
    return out


@dataclass
class FiberToFiber:
    """Result of :func:`fiber_to_fiber`."""

    ftf: np.ndarray          #: (112, 1032) float32 relative throughput at the fiber's own wavelengths
    dead: np.ndarray         #: (112,) bool: median ftf over NORM_RANGE < DEAD_LEVEL (or no light)
    grid: np.ndarray         #: (ng,) Å
    master: np.ndarray       #: (ng,) counts per Å, biweight of the live fibers
    level: np.ndarray        #: (112,) median ftf over NORM_RANGE


def fiber_to_fiber(spectra: np.ndarray, wave: np.ndarray, *, exclude: np.ndarray | None = None,
                   bin_width: float = 50.0, grid: tuple[float, float, float] = GRID,
                   dead_level: float = DEAD_LEVEL,
                   norm_range: tuple[float, float] = NORM_RANGE) -> FiberToFiber:
    """Fiber-to-fiber of one amp from one twilight (see the module docstring).

    exclude: (112,) bool fibers known to be dead (left out of the master from the start).
    """
    g = wave_grid(grid)
    dens = to_grid(flux_density(spectra, wave), wave, g)
    nfib = dens.shape[0]
    use = np.ones(nfib, bool) if exclude is None else ~np.asarray(exclude, bool)
    lo, hi = norm_range
    sel = (g >= lo) & (g <= hi)
    for _ in range(2):
        master = nan_biweight(dens[use], axis=0)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = dens / np.where(master > 0, master, np.nan)[None, :]
        level = np.array([np.nanmedian(r[sel]) if np.isfinite(r[sel]).any() else 0.0 for r in ratio])
        use = level >= dead_level
        if exclude is not None:
            use &= ~np.asarray(exclude, bool)
    centres, vals = smooth_ratio(ratio, g, bin_width)
    ftf = evaluate(centres, vals, np.asarray(wave, float))
    dead = ~(level >= dead_level)
    ftf = np.where(np.isfinite(ftf), ftf, 0.0)
    return FiberToFiber(ftf.astype(np.float32), dead, g, master, level)


def combine_ftf(ftfs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Biweight per pixel of several exposures' ftf: (ftf float32, scatter float32)."""
    stack = np.stack([np.asarray(f, np.float32) for f in ftfs])
    if len(ftfs) == 1:
        return stack[0].copy(), np.zeros_like(stack[0])
    loc, scl = nan_biweight(stack, axis=0)
    return np.nan_to_num(loc).astype(np.float32), np.nan_to_num(scl).astype(np.float32)
