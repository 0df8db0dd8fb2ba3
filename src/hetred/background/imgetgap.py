"""imgetgap: Karl Gebhardt's background model (karlspipe hdr2.1 ``progs/imgetgap.f``), ported exactly.

The ``karl`` method of ``hetred bgmodel`` (docs/stages/bgmodel.md, "Algorithm"): fiber edges from
a 6-sigma jump in the first and last 35 rows, the two inter-block gaps from the minimum 9-row sum,
five nodes per column (below the first fiber, the gaps, above the last fiber, and the bottom rows
one by one), smoothed along the columns in 13-column bins and interpolated across the rows.

Rows and columns below are Karl's 1-based numbers unless a name ends in ``0``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred.errors import HetredError
from hetred.stats import biweight

F32 = np.float32

# imgetgap parameters
NRCHECK = 35          #: rows searched for the first / last fiber
JUMP_SIGMA = 6.0      #: a fiber starts where a row is > 6 biweight sigma above the rows before it
IBIN = 9              #: columns in the biweight smoothing of the fiber edges
GAP_OFFSET = 40       #: gap search from first fiber + 40 to the middle, middle to last fiber - 40
GAP_HALF = 4          #: 9-row windows (j-4..j+4) for the gap search and the gap levels
FRAC = 0.1            #: Karl's extra node 10% of the way to the first gap (replaced, see docs)
ISUB, ISINGLE_MAX = 3, 17   #: bottom rows modelled one by one: up to first fiber - 3, at most 17
SINGLE_COLS = (400, 600)    #: columns of the per-row biweight of the bottom rows
REF_COL = 500               #: column whose first-fiber row sets the number of single rows
HIGH_NODE = 10.0            #: a node (gap/top) whose biweight over columns is above this is replaced
CLIP_SIGMA = 5.0            #: node values > 5 sigma above the biweight are left out of the smoothing
ISMOOTH = 13                #: columns per bin of the node smoothing (smxin)
POWER = 0.3                 #: rows between the single rows and the first gap: fac ** 0.3


def _bw(a, axis=0):
    return biweight(np.ascontiguousarray(a, dtype=F32), axis=axis)


def _nint(x) -> np.ndarray:
    """Fortran NINT: round half away from zero."""
    x = np.asarray(x, dtype=np.float64)                 # exact for float32 input: no rounding in x + 0.5
    return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5)).astype(np.int64)


def _first_jump(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the first k (0-based, k >= 4) with seq[k] more than 6 biweight sigma above
    the biweight of seq[0..k] (itself included); and whether one was found."""
    ncol = seq.shape[1]
    pos = np.zeros(ncol, np.int64)
    found = np.zeros(ncol, bool)
    with np.errstate(all="ignore"):
        for k in range(4, seq.shape[0]):
            loc, sc = _bw(seq[:k + 1])
            hit = ((seq[k] - loc) / sc > F32(JUMP_SIGMA)) & ~found
            pos[hit] = k
            found |= hit
    return pos, found


def _smooth_rows(xrow: np.ndarray) -> np.ndarray:
    """Biweight of xrow over columns i-5..i+3 (Karl's window: ihalf = nint(10/2), cut at the ends)."""
    ncol = xrow.size
    ihalf = 5
    i = np.arange(1, ncol + 1)
    ibs = np.maximum(1, i - ihalf)
    ibs = np.where(ibs + IBIN - 1 > ncol, ncol - IBIN + 1, ibs)
    idx = (ibs[None, :] - 1) + np.arange(IBIN)[:, None]
    return _bw(xrow[idx])[0]


def fiber_edges(xd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ixl, ixu) per column, 1-based: the last row below the first fiber and the first row
    above the last one, from a 6-sigma jump in the first 35 rows (last 36 rows from the top),
    biweight-smoothed over 9 columns: ixl = nint(xb - 1), ixu = nint(xb + 1)."""
    nrow, ncol = xd.shape
    pos, found = _first_jump(xd[:NRCHECK])
    xrow = np.zeros(ncol, F32)               # Karl's xrow(1) starts at 0 (static storage)
    for i in range(ncol):
        if found[i]:
            xrow[i] = pos[i] + 1
        elif i > 0:
            xrow[i] = xrow[i - 1]            # not found: the previous column's row
    ixl = _nint(_smooth_rows(xrow) - F32(1))
    pos, found = _first_jump(xd[::-1][:NRCHECK + 1])
    top = np.where(found, nrow - pos, nrow).astype(F32)
    if not found[0]:
        top[0] = xrow[0]                     # column 1 keeps the bottom search's value
    ixu = _nint(_smooth_rows(top) + F32(1))
    return ixl, ixu


def gap_rows(xd: np.ndarray, ixl: np.ndarray, ixu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ixm1, ixm2) per column, 1-based: centres of the minimum 9-row sum (float32, summed in row
    order) over rows ixl+40..ncol/2 and ncol/2..ixu-40; first minimum wins; an empty range keeps
    the previous search's row (Karl's jmin)."""
    nrow, ncol = xd.shape
    nhalf = ncol // 2
    sums = xd[0:nrow - 2 * GAP_HALF].astype(F32)
    for k in range(1, 2 * GAP_HALF + 1):
        sums = sums + xd[k:nrow - 2 * GAP_HALF + k]
    centre = np.arange(GAP_HALF + 1, nrow - GAP_HALF + 1)[:, None]     # 1-based row of sums[t]
    out = []
    for lo, hi in ((ixl + GAP_OFFSET, np.full(ncol, nhalf)), (np.full(ncol, nhalf), ixu - GAP_OFFSET)):
        ok = (centre >= lo[None, :]) & (centre <= hi[None, :])
        masked = np.where(ok, sums, np.inf)
        out.append((np.argmin(masked, axis=0) + GAP_HALF + 1, ok.any(axis=0)))
    (m1, ok1), (m2, ok2) = out
    jmin = nhalf
    for i in range(ncol):                    # Karl's jmin carries over empty searches
        jmin = m1[i] = m1[i] if ok1[i] else jmin
        jmin = m2[i] = m2[i] if ok2[i] else jmin
    return m1, m2


def _masked_rows_bw(xd: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, biweight of rows lo..hi (1-based, inclusive) and the number of rows."""
    n = np.maximum(hi - lo + 1, 0)
    r0, r1 = max(1, int(lo.min())), min(xd.shape[0], int(hi.max()))
    if r1 < r0:
        return np.full(xd.shape[1], -666.0, F32), n
    rows = np.arange(r0, r1 + 1)[:, None]
    sub = np.where((rows >= lo[None, :]) & (rows <= hi[None, :]), xd[r0 - 1:r1], np.nan)
    return _bw(sub)[0], n


def _window_bw(xd: np.ndarray, centre: np.ndarray) -> np.ndarray:
    idx = np.clip(centre[None, :] - 1 + np.arange(-GAP_HALF, GAP_HALF + 1)[:, None], 0, xd.shape[0] - 1)
    return _bw(np.take_along_axis(xd, idx, axis=0))[0]


def lin_interp(xp: np.ndarray, x: np.ndarray, y: np.ndarray, power_segment: int | None = None) -> np.ndarray:
    """Karl's xlinint / xlinint2 at points xp (float32), for nodes x, y of shape (n,) or (n, m).

    The first segment j with x[j] <= xp < x[j+1] is used (linear, or fac ** 0.3 in segment
    ``power_segment``, 0-based); xp < x[0] gives y[0], xp > x[-1] gives y[-1]; any other point
    (xp == x[-1], or in no segment of unsorted nodes) keeps the previous point's value, in the
    order of xp along axis 0 then the columns, 0 for the very first.
    """
    xp = np.asarray(xp, F32)
    shape = np.broadcast_shapes(xp.shape, (1,) + x.shape[1:])
    out = np.zeros(shape, F32)
    done = np.zeros(shape, bool)
    with np.errstate(all="ignore"):
        for j in range(x.shape[0] - 2, -1, -1):       # descending: the first matching segment wins
            m = (xp >= x[j]) & (xp < x[j + 1])
            dx, dy = x[j + 1] - x[j], y[j + 1] - y[j]
            if j == power_segment:
                val = y[j] + dy * ((xp - x[j]) / dx) ** F32(POWER)
            else:
                val = y[j] + (dy * (xp - x[j])) / dx
            out = np.where(m, val, out)
            done |= m
        below, above = ~done & (xp < x[0]), ~done & (xp > x[-1])
        out = np.where(above, y[-1], np.where(below, y[0], out)).astype(F32)   # Fortran: y(n) last
    done |= below | above
    if not done.all():                                  # carry the previous value (Fortran)
        o, d = out.T.ravel().copy(), done.T.ravel().copy()
        if not d[0]:
            o[0], d[0] = 0.0, True
        idx = np.maximum.accumulate(np.where(d, np.arange(d.size), 0))
        out = o[idx].reshape(out.T.shape).T
    return np.ascontiguousarray(out, dtype=F32)


def smooth_nodes(x: np.ndarray, ibin: int = ISMOOTH) -> np.ndarray:
    """Karl's smxin: the values other than -666 in bins of ``ibin`` (bin k, 0-based, starts at
    value max(1, k*ibin + 1 - (ibin-1)/2); the last bin ends at the last value); biweight of each
    bin's values and of their 1-based positions; linear interpolation (xlinint) at every position."""
    x = np.asarray(x, F32)
    keep = np.nonzero(x != F32(-666))[0]
    n2 = keep.size
    if n2 == 0:
        return x.copy()
    x2, xi2 = x[keep], (keep + 1).astype(F32)
    ib1 = (ibin - 1) // 2
    starts = []
    for j in range(1, n2 + 1, ibin):
        istart = max(1, j - ib1)
        if istart + ibin - 1 > n2:
            istart = max(1, n2 - ibin + 1)
        starts.append(istart)
    idx = np.asarray(starts)[None, :] - 1 + np.arange(min(ibin, n2))[:, None]
    yn, xn = _bw(x2[idx])[0], _bw(xi2[idx])[0]
    return lin_interp(np.arange(1, x.size + 1, dtype=F32), xn, yn)


@dataclass
class GapResult:
    """imgetgap's intermediate results (1-based rows, per column)."""

    ixl: np.ndarray        #: last row below the first fiber
    ixu: np.ndarray        #: first row above the last fiber
    ixm1: np.ndarray       #: centre of the lower inter-block gap
    ixm2: np.ndarray       #: centre of the upper inter-block gap
    isingle: int           #: bottom rows 1..isingle replaced by their own biweight
    xsing: np.ndarray      #: (isingle,) those values
    ynodes: np.ndarray     #: (5, ncol) node rows
    xnodes: np.ndarray     #: (5, ncol) node levels after smoothing
    raw_nodes: np.ndarray  #: (5, ncol) node levels before the 10%-node replacement and smoothing


def background_model(xd: np.ndarray) -> tuple[np.ndarray, GapResult]:
    """imgetgap: the background model (float32, shape of ``xd``) of a combined, normalised frame
    in Karl's orientation (fibers along the rows, first fiber within 35 rows of row 1)."""
    xd = np.ascontiguousarray(xd, dtype=F32)
    nrow, ncol = xd.shape
    if nrow < 2 * GAP_OFFSET + 2 * NRCHECK or ncol < SINGLE_COLS[1]:
        raise HetredError(f"imgetgap needs at least {SINGLE_COLS[1]} columns and "
                          f"{2 * GAP_OFFSET + 2 * NRCHECK} rows, got {xd.shape}")
    ixl, ixu = fiber_edges(xd)
    ixm1, ixm2 = gap_rows(xd, ixl, ixu)
    # node levels and rows (xback, yback)
    js = np.where(ixl >= 11, 6, 1)
    b1, n1 = _masked_rows_bw(xd, js, ixl)
    y1 = (ixl + 1).astype(F32) / F32(2)
    b1, y1 = np.where(n1 < 5, F32(0), b1), np.where(n1 < 5, F32(1), y1)
    b2, b3 = _window_bw(xd, ixm1), _window_bw(xd, ixm2)
    b4, n4 = _masked_rows_bw(xd, ixu, np.full(ncol, nrow))
    y4 = (ixu + nrow).astype(F32) / F32(2)
    b4, y4 = np.where(n4 < 5, F32(0), b4), np.where(n4 < 5, F32(nrow), y4)
    b1 = np.where(b1 == 0, b2, b1)
    b4 = np.where(b4 == 0, b3, b4)
    ynew = y1 + F32(FRAC) * (ixm1.astype(F32) - y1)      # Karl's 10% node ...
    bnew = F32(1 - FRAC) * b2 + F32(FRAC) * b1
    X = np.stack([b1, bnew, b2, b3, b4]).astype(F32)
    Y = np.stack([y1, ynew, ixm1, ixm2, y4]).astype(F32)
    raw_nodes = X.copy()
    # ... replaced by the bottom rows, each the biweight of columns 400-600 of its row
    isingle = ISINGLE_MAX if ixl[REF_COL - 1] > 20 else max(2, int(ixl[REF_COL - 1]) - ISUB)
    xsing = _bw(xd[:isingle, SINGLE_COLS[0] - 1:SINGLE_COLS[1]], axis=1)[0]
    xsing = np.where(xsing < -10, F32(0), xsing).astype(F32)
    Y[1], X[1] = F32(isingle), xsing[isingle - 1]
    for j in (2, 3, 4):                                  # nodes 3-5 above 10: the node below
        if _bw(X[j], None)[0] > HIGH_NODE:
            X[j] = X[j - 1]
    with np.errstate(all="ignore"):
        for j in range(5):
            xb, xs = _bw(X[j], None)
            v = X[j].copy()
            v[(v - F32(xb)) / F32(xs) > F32(CLIP_SIGMA)] = -666
            X[j] = smooth_nodes(v, ISMOOTH)
    rows = np.arange(1, nrow + 1, dtype=F32)[:, None]
    model = lin_interp(rows, Y, X, power_segment=1)
    model[:isingle] = xsing[:, None]
    return model, GapResult(ixl, ixu, ixm1, ixm2, isingle, xsing, Y, X, raw_nodes)
