"""Fiber traces: the row centre of each of the 112 fibers of an amp at every column.

Replaces ``getfloc`` (start from the Fiber_Locations reference, centroid, step along columns,
smooth, fill dead fibers), the trace half of the ``getfprof``/``getfloc2`` iteration and the
"N bad trace" check of karlspipe hdr2.1 ``progs/vred.f``; see docs/stages/twical_trace.md.

Conventions: the ORIENTED frame (rows = cross-dispersion, columns = wavelength increasing),
0-based rows and columns with pixel centres at integers; image (1032, 1032) in electrons,
background-subtracted (a constant residual does not bias the centroids, only slows them);
traces (112, 1032) float32 rows, fiber i of the arrays = fiber i+1 of the multi file.

* :func:`find_traces` -- from a bright frame (twilight / lamp flat) and a trace reference
  (Fiber_Locations file, rows at a reference column, or a previous trace) or none (automatic:
  peaks at the reference column matched to the 37/38/37 block pattern);
* :func:`refine_traces` -- one Gauss-Newton step of every fiber's position against the
  empirical profile (Karl's ``getfloc2`` without his grid of offsets), then the smooth fit;
* :func:`measure_trace_shift` -- one cross-dispersion shift of a frame against a trace;
* :func:`combine_traces`, :func:`read_fiber_locations`, :class:`TraceSolution` (FITS I/O).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.polynomial import legendre

from hetred.stats import biweight

F32 = np.float32
NFIB = 112
BLOCKS = (37, 38, 37)
PITCH = 8.7               #: px, nominal fiber pitch (Fiber_Locations medians 8.70-8.76)
REF_FRACTION = 0.470      #: reference column as a fraction of the width (Fiber_Locations, Panacea)
BIN_WIDTH = 24            #: columns per bin when following the peaks
ORDER = 4                 #: Legendre order of the per-fiber fit along the columns
CENTROID_HALF = 3.5       #: px half-width of the windowed centroid
DEAD_RATIO = 0.4          #: a fiber below this fraction of its neighbours' peak is dead
BAD_SPACING = 1.5         #: px: spacing deviation that flags a trace as bad (vred.f xdiff0)
GN_CORE = 3.0             #: px: only pixels this close to the trace enter the profile fit
MAX_SHIFT = 6.0           #: px: largest shift searched between a reference and the frame


def slot_index(nfib: int = NFIB) -> np.ndarray:
    """Pitch slot of every fiber: blocks 37/38/37 with one empty slot between blocks."""
    i = np.arange(nfib)
    return i + (i >= BLOCKS[0]) + (i >= BLOCKS[0] + BLOCKS[1])


@dataclass
class FiberLocations:
    """A Fiber_Locations-style reference: rows (112,) at ``ref_fraction`` of the width and
    dead flags (112,) bool.  Rows are taken as 0-based oriented rows."""

    rows: np.ndarray
    dead: np.ndarray
    ref_fraction: float = REF_FRACTION


def read_fiber_locations(path: str | Path) -> FiberLocations:
    """Parse ``fiber_loc_SSS_III_UUU_AA.txt``: first line ``# 0.470``, then 112 lines ``row flag``."""
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    frac = REF_FRACTION
    if lines and lines[0][0] == "#":
        frac = float(lines[0][1])
        lines = lines[1:]
    vals = np.array([[float(a[0]), int(float(a[1])) if len(a) > 1 else 0] for a in lines[:NFIB]])
    if len(vals) != NFIB:
        raise ValueError(f"{path}: {len(vals)} fiber lines, expected {NFIB}")
    return FiberLocations(vals[:, 0], vals[:, 1].astype(bool), frac)


@dataclass
class TraceSolution:
    """Traces of one amp.

    trace: (112, 1032) float32 rows; dead: (112,) bool; bad: (112, 1032) bool (local spacing
    off by > 1.5 px, or the fiber's mean spacing off the pattern); ref_column: column of the
    reference; ref_rows: (112,) rows found there; bin_columns (nbin,) and bin_rows (112, nbin)
    the measured positions the smooth fit went through (NaN where not measured).
    """

    trace: np.ndarray
    dead: np.ndarray
    bad: np.ndarray
    ref_column: int
    ref_rows: np.ndarray
    bin_columns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bin_rows: np.ndarray = field(default_factory=lambda: np.zeros((NFIB, 0)))

    def to_hdus(self, name: str = "TRACE") -> list[fits.ImageHDU]:
        """``name`` (trace rows) and ``name_FLAGS`` (uint8: 1 dead, 2 bad) image extensions."""
        h = fits.ImageHDU(np.asarray(self.trace, dtype=F32), name=name)
        h.header["REFCOL"] = (int(self.ref_column), "0-based reference column")
        h.header["COMMENT"] = "0-based row of each fiber centre at each oriented column"
        flags = (self.dead[:, None] * 1 + self.bad * 2).astype(np.uint8)
        return [h, fits.ImageHDU(flags, name=f"{name}_FLAGS")]

    @classmethod
    def from_hdus(cls, hdul: fits.HDUList, name: str = "TRACE") -> "TraceSolution":
        tr = np.asarray(hdul[name].data, dtype=F32)
        flags = np.asarray(hdul[f"{name}_FLAGS"].data)
        rc = int(hdul[name].header.get("REFCOL", round(REF_FRACTION * tr.shape[1])))
        return cls(tr, (flags & 1).any(axis=1), (flags & 2) > 0, rc, tr[:, rc].copy())


# ---------------------------------------------------------------------------------- helpers

def column_bins(image: np.ndarray, mask: np.ndarray | None = None, width: int = BIN_WIDTH):
    """Biweight over bins of ``width`` columns: (centres (nbin,), profiles (nbin, nrow) float32)."""
    img = np.asarray(image, dtype=F32)
    if mask is not None:
        img = np.where(np.asarray(mask).astype(bool), F32(np.nan), img)
    nrow, ncol = img.shape
    nbin = ncol // width
    cut = img[:, :nbin * width].reshape(nrow, nbin, width)
    loc, _ = biweight(np.moveaxis(cut, 2, 0), axis=0)           # (nrow, nbin)
    loc = np.where(loc == -666, np.nan, loc).T
    centres = np.arange(nbin) * width + (width - 1) / 2.0
    return centres, np.ascontiguousarray(loc, dtype=F32)


def windowed_centroid(prof: np.ndarray, guess: np.ndarray, half: float = CENTROID_HALF,
                      n_iter: int = 5, max_move: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Iterated light centroid of 1-D ``prof`` (nrow,) in windows [c-half, c+half] (pixels
    weighted by their overlap with the window), starting at ``guess`` (nfib,) and kept within
    ``max_move`` px of it (a faint fiber is not dragged onto a bright neighbour).  Returns
    (centres, the profile at the nearest row); NaN where the window has no positive light."""
    p = np.nan_to_num(np.asarray(prof, dtype=np.float64))
    nrow = len(p)
    g0 = np.asarray(guess, dtype=np.float64)
    c = g0.copy()
    k = np.arange(-int(half) - 2, int(half) + 3)
    s = np.ones(len(c))
    for _ in range(n_iter):
        rows = np.floor(c + 0.5).astype(np.int64)[:, None] + k[None, :]
        ok = (rows >= 0) & (rows < nrow)
        v = np.where(ok, p[np.clip(rows, 0, nrow - 1)], 0.0)
        wgt = np.clip(half + 0.5 - np.abs(rows - c[:, None]), 0.0, 1.0)
        s = (wgt * v).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            new = (wgt * v * rows).sum(axis=1) / s
        c = np.where(s > 0, np.clip(np.nan_to_num(new, nan=0.0), g0 - max_move, g0 + max_move), g0)
    c = np.where(s > 0, c, np.nan)
    peak = np.full(len(c), np.nan)
    fin = np.isfinite(c)
    peak[fin] = p[np.clip(np.floor(c[fin] + 0.5).astype(np.int64), 0, nrow - 1)]
    return c, peak


def find_peaks(prof: np.ndarray, threshold: float = 0.05, edge: int = 3) -> np.ndarray:
    """Rows of local maxima of ``prof`` above ``threshold`` x its 99th percentile that are the
    maximum within +-3 rows (float64 sub-pixel centroids)."""
    p = np.nan_to_num(np.asarray(prof, dtype=np.float64))
    top = np.percentile(p, 99)
    n = len(p)
    win = np.lib.stride_tricks.sliding_window_view(np.pad(p, 3, constant_values=-np.inf), 7)
    is_max = (p >= win.max(axis=1)) & (p > threshold * top)
    is_max[:edge] = is_max[n - edge:] = False
    rows = np.nonzero(is_max)[0]
    return windowed_centroid(p, rows.astype(float), half=2.5, max_move=0.75)[0]


def match_pattern(peaks: np.ndarray, pitch: float = PITCH, nfib: int = NFIB) -> tuple[np.ndarray, np.ndarray]:
    """Assign peaks (rows, increasing) to fibers of the 37/38/37 pattern.

    Consecutive peaks are ``round(spacing / pitch)`` slots apart (the pitch measured as the
    median spacing near ``pitch``); the slot offset is the one that puts the most peaks on
    fiber slots and none on the gaps.  Returns (rows (nfib,) with NaN for fibers without a peak,
    found (nfib,) bool).
    """
    peaks = np.sort(np.asarray(peaks, dtype=np.float64))
    d = np.diff(peaks)
    near = d[(d > 0.8 * pitch) & (d < 1.2 * pitch)]
    p = float(np.median(near)) if len(near) else pitch
    keep = np.concatenate([[True], d > 0.5 * p])          # drop double detections
    peaks = peaks[keep]
    n = np.concatenate([[0], np.cumsum(np.rint(np.diff(peaks) / p).astype(int))])
    slots = slot_index(nfib)
    best, best_o = None, 0
    for o in range(-n.max() - 2, slots.max() + 3):
        on = np.isin(n + o, slots)
        score = on.sum() - 3 * (~on).sum()
        if best is None or score > best:
            best, best_o = score, o
    rows = np.full(nfib, np.nan)
    idx = np.searchsorted(slots, n + best_o)
    ok = (idx < nfib) & (slots[np.minimum(idx, nfib - 1)] == n + best_o)
    rows[idx[ok]] = peaks[ok]
    return rows, np.isfinite(rows)


def fill_from_neighbours(rows: np.ndarray, missing: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Fill ``rows`` (nfib, ...) where ``missing`` (nfib,) from the nearest good fibers on each
    side, spaced as in ``ref`` (nfib,) (the reference rows or the pitch pattern)."""
    out = np.array(rows, dtype=np.float64)
    good = np.nonzero(~missing)[0]
    if len(good) == 0:
        return out
    for i in np.nonzero(missing)[0]:
        lo, hi = good[good < i], good[good > i]
        if len(lo) and len(hi):
            a, b = lo[-1], hi[0]
            f = (ref[i] - ref[a]) / (ref[b] - ref[a])
            out[i] = out[a] + (out[b] - out[a]) * f
        else:
            a = lo[-1] if len(lo) else hi[0]
            out[i] = out[a] + (ref[i] - ref[a])
    return out


def fit_smooth(columns: np.ndarray, rows: np.ndarray, ncol: int, order: int = ORDER,
               clip: float = 3.0, floor: float = 0.05) -> np.ndarray:
    """Per-fiber Legendre fit of ``rows`` (nfib, nbin; NaN = not measured) at ``columns`` with
    iterative clipping (``clip`` x the robust scatter, at least ``floor`` px); evaluated at
    every column -> (nfib, ncol) float64 (NaN for a fiber with too few points)."""
    x = (np.asarray(columns, dtype=np.float64) - (ncol - 1) / 2) / ((ncol - 1) / 2)
    xo = (np.arange(ncol) - (ncol - 1) / 2) / ((ncol - 1) / 2)
    out = np.full((rows.shape[0], ncol), np.nan)
    for f in range(rows.shape[0]):
        y = rows[f]
        use = np.isfinite(y)
        deg = min(order, int(use.sum()) - 2)
        if deg < 0:
            continue
        for _ in range(5):
            c = legendre.legfit(x[use], y[use], deg)
            r = y - legendre.legval(x, c)
            s = max(floor, 1.4826 * np.median(np.abs(r[use])))
            new = np.isfinite(y) & (np.abs(np.nan_to_num(r, nan=np.inf)) < clip * s)
            if new.sum() < deg + 2 or (new == use).all():
                break
            use = new
        out[f] = legendre.legval(xo, c)
    return out


def bad_traces(trace: np.ndarray, dead: np.ndarray, limit: float = BAD_SPACING, pitch: float = PITCH) -> np.ndarray:
    """(nfib, ncol) bool: vred.f's check -- for each pair of adjacent live fibers, columns where
    their spacing is more than ``limit`` px from its biweight over the columns flag both -- plus
    whole fibers whose median spacing to a live neighbour is more than ``limit`` px off the
    pattern (pitch times the slot difference, the pitch measured as the median)."""
    tr = np.asarray(trace, dtype=np.float64)
    nfib = tr.shape[0]
    bad = np.zeros(tr.shape, dtype=bool)
    slots = slot_index(nfib)
    sp = np.diff(tr, axis=0)
    pair = ~dead[:-1] & ~dead[1:]
    dslot = np.diff(slots)
    med = np.median(sp, axis=1)
    p = float(np.median((med / dslot)[pair])) if pair.any() else pitch
    for j in np.nonzero(pair)[0]:
        loc = biweight(sp[j].astype(F32))[0]
        off = np.abs(sp[j] - loc) > limit
        if abs(med[j] - p * dslot[j]) > limit:
            off[:] = True
        bad[j] |= off
        bad[j + 1] |= off
    return bad


def _reference_rows(reference, ncol: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(rows (112,), dead (112,), reference column) from any accepted reference, or None."""
    if reference is None:
        return None
    if isinstance(reference, (str, Path)):
        reference = read_fiber_locations(reference)
    if isinstance(reference, FiberLocations):
        return (np.asarray(reference.rows, float), np.asarray(reference.dead, bool),
                int(round(reference.ref_fraction * ncol)))
    if isinstance(reference, TraceSolution):
        rc = int(reference.ref_column)
        return np.asarray(reference.trace[:, rc], float), np.asarray(reference.dead, bool), rc
    arr = np.asarray(reference, dtype=np.float64)
    rc = int(round(REF_FRACTION * ncol))
    if arr.ndim == 2:
        return arr[:, rc].copy(), np.zeros(arr.shape[0], bool), rc
    return arr.copy(), np.zeros(len(arr), bool), rc


# ---------------------------------------------------------------------------------- main steps

def find_traces(image: np.ndarray, reference=None, *, mask: np.ndarray | None = None,
                bin_width: int = BIN_WIDTH, order: int = ORDER, dead_ratio: float = DEAD_RATIO,
                max_shift: float = MAX_SHIFT) -> TraceSolution:
    """Traces of all 112 fibers from a bright frame.

    image: (1032, 1032) e- (oriented, background-subtracted); reference: a
    :class:`FiberLocations` (or its path), a previous :class:`TraceSolution`, rows (112,) at
    column round(0.47 * ncol), a previous trace (112, ncol), or None for automatic finding.
    mask: (1032, 1032) nonzero = bad.  Returns a :class:`TraceSolution`.

    1. biweight over bins of ``bin_width`` columns;
    2. at the reference bin: with a reference, the best common shift (|s| <= ``max_shift``)
       of the reference rows on the binned profile, then a windowed centroid per fiber; without
       one, peak finding and :func:`match_pattern`;
    3. dead fibers: peak < ``dead_ratio`` of the running median of their neighbours' peaks
       (and those flagged in the reference);
    4. the live fibers followed bin by bin outwards from the reference bin (windowed centroid
       started at the previous bin's position; a jump > 1 px or a faint peak is not kept);
    5. a clipped Legendre fit of order ``order`` per fiber; dead fibers filled from their
       neighbours with the reference spacing; :func:`bad_traces`.
    """
    img = np.asarray(image, dtype=F32)
    nrow, ncol = img.shape
    centres, prof = column_bins(img, mask, bin_width)
    nbin = len(centres)
    ref = _reference_rows(reference, ncol)
    rc = ref[2] if ref is not None else int(round(REF_FRACTION * ncol))
    b0 = int(np.clip(np.argmin(np.abs(centres - rc)), 0, nbin - 1))
    p0 = np.nan_to_num(prof[b0])
    if ref is not None:
        rrows, rdead = ref[0], ref[1]
        shifts = np.arange(-max_shift, max_shift + 1e-9, 0.1)
        live = ~rdead
        score = [np.interp(rrows[live] + s, np.arange(nrow), p0).sum() for s in shifts]
        s0 = float(shifts[int(np.argmax(score))])
        rows0, _ = windowed_centroid(p0, rrows + s0)
        peak = p0[np.clip(np.floor(rrows + s0 + 0.5).astype(np.int64), 0, nrow - 1)]
        pattern = rrows
    else:
        rdead = np.zeros(NFIB, bool)
        rows0, found = match_pattern(find_peaks(p0))
        fslots = slot_index()[found]
        cfit = np.polyfit(fslots, rows0[found], 1) if found.sum() >= 2 else (PITCH, 0.0)
        pattern = np.polyval(cfit, slot_index())
        rows0 = np.where(found, rows0, pattern)
        peak = np.where(found, p0[np.clip(np.floor(rows0 + 0.5).astype(np.int64), 0, nrow - 1)], 0.0)
        rows0, _ = windowed_centroid(p0, rows0)
    # dead fibers
    pk = np.nan_to_num(peak)
    dead = rdead | ~np.isfinite(rows0)
    for _ in range(2):          # the level of the live neighbours (+-6 fibers), twice
        lvl = np.array([np.median(pk[max(0, i - 6):i + 7][~dead[max(0, i - 6):i + 7]])
                        if (~dead[max(0, i - 6):i + 7]).any() else 0.0 for i in range(NFIB)])
        dead = rdead | (pk < dead_ratio * lvl) | ~np.isfinite(rows0)
    rows0 = fill_from_neighbours(np.nan_to_num(rows0), dead, pattern)
    # follow the live fibers across the bins
    pos = np.full((NFIB, nbin), np.nan)
    pos[:, b0] = np.where(dead, np.nan, rows0)
    ref_peak = np.where(dead, np.nan, pk)
    for direction in (1, -1):
        guess = rows0.copy()
        b = b0 + direction
        while 0 <= b < nbin:
            c, pkb = windowed_centroid(prof[b], guess)
            med = np.nanmedian(np.where(dead, np.nan, pkb / np.where(ref_peak > 0, ref_peak, np.nan)))
            good = (~dead & np.isfinite(c) & (np.abs(c - guess) < 1.0)
                    & (pkb > 0.3 * np.nan_to_num(med) * np.nan_to_num(ref_peak)))
            pos[good, b] = c[good]
            guess = np.where(good, c, guess)
            b += direction
    trace = fit_smooth(centres, pos, ncol, order)
    missing = dead | ~np.isfinite(trace).all(axis=1)
    trace = fill_from_neighbours(np.nan_to_num(trace), missing, rows0 if ref is None else pattern)
    trace = trace.astype(F32)
    return TraceSolution(trace, dead, bad_traces(trace, dead), rc, rows0.astype(F32), centres, pos)


def refine_traces(image: np.ndarray, solution: TraceSolution, profile, *, read_noise: float = 3.0,
                  mask: np.ndarray | None = None, flat: np.ndarray | None = None,
                  spectra: np.ndarray | None = None, bin_width: int = BIN_WIDTH,
                  order: int = ORDER, core_half: float = GN_CORE) -> TraceSolution:
    """Improve the traces by fitting the empirical profile (linearised, one step).

    For every fiber and column the change of trace that best fits the pixels, given the model of
    all fibers, is sum(r g / var) / sum(g^2 / var) with r the residual and g = flux x dw/dtrace;
    numerators and denominators are summed over bins of ``bin_width`` columns, the binned
    positions refitted with :func:`fit_smooth`, dead fibers re-filled from their neighbours.
    ``spectra`` (112, ncol) e-, if already extracted with this profile and trace, saves a pass.
    """
    from hetred.fibers.extract import extract, model_from_weights, pixel_variance

    img = np.asarray(image, dtype=F32)
    nrow, ncol = img.shape
    tr = np.asarray(solution.trace, dtype=np.float64)
    bad = ~np.isfinite(img) if mask is None else (np.asarray(mask).astype(bool) | ~np.isfinite(img))
    if spectra is None:
        spectra = extract(img, tr, profile, read_noise=read_noise, mask=bad, flat=flat).spectra
    r0, w, dw = profile.weights(tr, derivative=True)
    model = model_from_weights(spectra, r0, w, nrow)
    var = pixel_variance(model, read_noise, flat)
    k = np.arange(w.shape[2])
    rows = r0[:, :, None] + k[None, None, :]
    rcl = np.clip(rows, 0, nrow - 1)
    cols = np.broadcast_to(np.arange(ncol)[None, :, None], rows.shape)
    use = ((rows >= 0) & (rows < nrow) & ~bad[rcl, cols] & (var[rcl, cols] > 0)
           & (np.abs(rows - tr[:, :, None]) <= core_half))
    with np.errstate(divide="ignore", invalid="ignore"):
        iv = np.where(use, 1.0 / var[rcl, cols], 0.0)
        g = dw * np.asarray(spectra, dtype=np.float64)[:, :, None]
        num = (np.where(use, img[rcl, cols] - model[rcl, cols], 0.0) * g * iv).sum(axis=2)
        den = (g * g * iv).sum(axis=2)
    nbin = ncol // bin_width
    sl = slice(0, nbin * bin_width)
    nb = num[:, sl].reshape(NFIB, nbin, bin_width).sum(axis=2)
    db = den[:, sl].reshape(NFIB, nbin, bin_width).sum(axis=2)
    centres = np.arange(nbin) * bin_width + (bin_width - 1) / 2.0
    base = tr[:, sl].reshape(NFIB, nbin, bin_width).mean(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(db > 0, nb / db, np.nan)
    pos = np.where(np.abs(step) < 1.0, base + step, np.nan)
    pos[solution.dead] = np.nan
    new = fit_smooth(centres, pos, ncol, order)
    missing = solution.dead | ~np.isfinite(new).all(axis=1)
    ref = np.asarray(solution.ref_rows, dtype=np.float64)
    new = fill_from_neighbours(np.nan_to_num(new), missing, ref).astype(F32)
    return replace(solution, trace=new, bad=bad_traces(new, solution.dead), bin_columns=centres, bin_rows=pos)


def measure_trace_shift(image: np.ndarray, trace: np.ndarray, *, mask: np.ndarray | None = None,
                        exclude: np.ndarray | None = None, half: float = CENTROID_HALF,
                        n_iter: int = 6) -> float:
    """One cross-dispersion shift (px, frame minus trace) of a frame against ``trace``.

    image: (1032, 1032) e- (background-subtracted); trace: (112, 1032) rows; exclude: (112,)
    bool fibers to leave out (dead).  For each fiber the light centroid of its pixels within
    +-``half`` px of trace + s (edge pixels weighted by their overlap), relative to the trace,
    summed over all columns; s is the biweight of the fibers' centroids, iterated so that the
    windows are centred on the shifted traces (the fixed point is unbiased for a symmetric
    profile).  Works on faint frames (sky) because every fiber and column contributes.
    """
    img = np.asarray(image, dtype=np.float64)
    if mask is not None:
        img = np.where(np.asarray(mask).astype(bool), 0.0, img)
    img = np.nan_to_num(img)
    nrow, ncol = img.shape
    tr = np.asarray(trace, dtype=np.float64)
    keep = np.ones(tr.shape[0], bool) if exclude is None else ~np.asarray(exclude, bool)
    k = np.arange(-int(half) - 2, int(half) + 3)
    cols = np.arange(ncol)[None, :, None]
    s = 0.0
    for _ in range(n_iter):
        c = tr + s
        rows = np.floor(c + 0.5).astype(np.int64)[:, :, None] + k
        ok = (rows >= 0) & (rows < nrow)
        v = np.where(ok, img[np.clip(rows, 0, nrow - 1), cols], 0.0)
        wgt = np.clip(half + 0.5 - np.abs(rows - c[:, :, None]), 0.0, 1.0) * v
        tot = wgt.sum(axis=(1, 2))
        good = keep & (tot > 0)
        if not good.any():
            return 0.0
        cen = (wgt * (rows - tr[:, :, None])).sum(axis=(1, 2))[good] / tot[good]
        s_new = float(biweight(cen.astype(F32))[0])
        if abs(s_new - s) < 1e-4:
            s = s_new
            break
        s = s_new
    return s


def combine_traces(solutions: list[TraceSolution]) -> TraceSolution:
    """Biweight per fiber and column of several frames' traces (the monthly trace); a fiber is
    dead when it is dead in at least half of them."""
    stack = np.stack([np.asarray(s.trace, dtype=F32) for s in solutions])
    tr = stack[0] if len(solutions) == 1 else np.asarray(biweight(stack, axis=0)[0], dtype=F32)
    dead = np.mean([s.dead for s in solutions], axis=0) >= 0.5
    first = solutions[0]
    return TraceSolution(tr, dead, bad_traces(tr, dead), first.ref_column, tr[:, first.ref_column].copy())
