"""Pure-NumPy / pure-Python reference implementations of the Cython kernels.

Used by the unit tests and the benchmarks only; production code calls the
compiled kernels (see :mod:`hetred.stats`).  Nothing here is fast.

Biweight (Karl Gebhardt's ``biwgt``, HETDEX/karlspipe hdr2.1/progs/biwt.f):

* :func:`biweight_scalar_reference` is a literal, line-by-line restatement of
  the Fortran for one small sample, including the MAD walk and the Fortran
  precision (``real`` = float32, ``real*8`` = float64).  The Cython kernel
  should agree with it bit for bit.
* :func:`biweight_reference` is a vectorised NumPy restatement over an axis.
  Its MAD is the true median absolute deviation (``np.nanmedian``), which
  Karl's walk equals except in rare even-n tie cases where one side of the
  walk runs out (those only arise when the values next to the median are tied
  to within float32 rounding).  Its sums run in data order rather than sorted
  order, so it agrees with the kernel to float32 rounding, not bit for bit.

Non-finite values (NaN, +/-inf) are excluded; n is the number of finite values.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

f32 = np.float32


def _ieee_div(a: float, b: float) -> float:
    """a / b with IEEE semantics (inf / nan instead of ZeroDivisionError)."""
    with np.errstate(all="ignore"):
        return float(np.float64(a) / np.float64(b))


def _medmad_walk(x: list, n: int) -> tuple:
    """Karl's ``medmad`` on an already sorted list ``x`` of float32, n >= 3."""
    even = n % 2 == 0
    n2 = n // 2

    def X(k):  # Fortran 1-based x(k); k outside 1..n only when n == 3 (unused)
        return x[k - 1] if 1 <= k <= n else f32(0.0)

    xmed = f32(0.5) * (X(n2) + X(n2 + 1)) if even else X(n2 + 1)
    i = n2
    j = n2 + 1 if even else n2 + 2
    xi = xmed - X(i)
    xj = X(j) - xmed
    xmad = f32(0.0)
    for _ in range(n2):
        if xi < xj:
            xmad = xi
            if i > 1:
                i -= 1
                xi = xmed - X(i)
            else:
                j += 1
                xj = X(j) - xmed
        else:
            xmad = xj
            if j < n:
                j += 1
                xj = X(j) - xmed
            else:
                i -= 1
                xi = xmed - X(i)
    if even:
        xmad = f32(0.5) * (xmad + xi) if xi < xj else f32(0.5) * (xmad + xj)
    return f32(xmed), f32(xmad)


def biweight_scalar_reference(values) -> tuple[float, float]:
    """Literal restatement of Karl's ``biwgt`` for one sample.

    Returns (location, scale) as Python floats holding float32 values, in the
    units of ``values``.  Intended for small samples (plain Python loops).
    """
    with np.errstate(all="ignore"):
        a = np.asarray(values, dtype=np.float32).ravel()
        x = [f32(v) for v in a if np.isfinite(v)]
        n = len(x)
        if n < 1:
            return -666.0, -2.0
        if n == 1:
            return float(x[0]), -1.0
        x.sort()
        if n == 2:
            xbl = (x[0] + x[1]) / f32(2.0)
            return float(xbl), float(abs(x[0] - xbl))

        xmed, xmad = _medmad_walk(x, n)
        if xmad < f32(1.0e-6) * max(f32(1.0), abs(xmed)):
            return float(xmed), float(xmad)

        xbl = xmed
        delta = max(f32(2.0e-5), abs(xmed))
        cmad = f32(6.0) * xmad
        cmadsq = cmad * cmad
        icnt = 0
        while abs(delta) >= f32(1.0e-4) * xmad and icnt < 20:
            icnt += 1
            sum1 = 0.0
            sum2 = 0.0
            for xi in x:
                t0 = float(xi - xbl)  # float32 subtraction, stored to real*8
                if abs(t0) < float(cmad):
                    t1 = float(cmadsq) - t0 * t0
                    t1 = t1 * t1
                    sum1 = sum1 + t0 * t1
                    sum2 = sum2 + t1
            delta = f32(_ieee_div(sum1, sum2))
            xbl = xbl + delta

        sum1 = 0.0
        sum2 = 0.0
        cmad = f32(9.0) * xmad
        cmadsq = cmad * cmad
        for xi in x:
            t0 = float(xi - xbl)
            if abs(t0) < float(cmad):
                t0 = t0 * t0
                t1 = float(cmadsq) - t0
                sum1 = sum1 + t0 * t1 * t1 * t1 * t1
                sum2 = sum2 + t1 * (float(cmadsq) - 5.0 * t0)
        xbs = _ieee_div(n * math.sqrt(sum1 / float(f32(n - 1.0))), abs(sum2))
        return float(xbl), float(f32(xbs))


def biweight_reference(a, axis: int | None = None):
    """Vectorised NumPy biweight (location, scale) over ``axis`` (None: all).

    Same algorithm and special cases as Karl's ``biwgt``; float32 results with
    the reduced axis removed (Python floats for ``axis=None``).
    """
    arr = np.asarray(a, dtype=np.float32)
    if axis is None:
        x = arr.reshape(-1, 1)
        out_shape = None
    else:
        moved = np.moveaxis(arr, axis, 0)
        out_shape = moved.shape[1:]
        x = moved.reshape(moved.shape[0], int(np.prod(out_shape, dtype=np.int64)))
    x = np.where(np.isfinite(x), x, np.float32(np.nan))
    nrow, ncol = x.shape
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        n = np.sum(np.isfinite(x), axis=0)
        loc = np.full(ncol, -666.0, dtype=np.float32)
        scale = np.full(ncol, -2.0, dtype=np.float32)

        one = n == 1
        if one.any():
            loc[one] = np.nanmax(x[:, one], axis=0)
            scale[one] = -1.0
        two = n == 2
        if two.any():
            lo, hi = np.nanmin(x[:, two], axis=0), np.nanmax(x[:, two], axis=0)
            mean = (lo + hi) / np.float32(2.0)
            loc[two], scale[two] = mean, np.abs(lo - mean)

        med = np.nanmedian(x, axis=0).astype(np.float32) if nrow else loc.copy()
        mad = (np.nanmedian(np.abs(x - med), axis=0).astype(np.float32)
               if nrow else loc.copy())
        many = n >= 3
        early = many & (mad < np.float32(1.0e-6) * np.maximum(np.float32(1.0), np.abs(med)))
        loc[early], scale[early] = med[early], mad[early]
        reg = many & ~early

        xbl = med.copy()
        delta = np.maximum(np.float32(2.0e-5), np.abs(med))
        cmad = np.float32(6.0) * mad
        cmadsq = (cmad * cmad).astype(np.float64)
        cmad = cmad.astype(np.float64)
        active = reg & (np.abs(delta) >= np.float32(1.0e-4) * mad)
        icnt = 0
        while active.any() and icnt < 20:
            icnt += 1
            t0 = (x - xbl).astype(np.float64)  # float32 subtraction, widened
            inside = np.abs(t0) < cmad
            t1 = np.where(inside, (cmadsq - t0 * t0) ** 2, 0.0)
            sum1 = np.sum(np.where(inside, t0 * t1, 0.0), axis=0)
            sum2 = np.sum(t1, axis=0)
            step = (sum1 / sum2).astype(np.float32)
            delta = np.where(active, step, delta)
            xbl = np.where(active, xbl + step, xbl)
            active &= np.abs(delta) >= np.float32(1.0e-4) * mad

        cmad = np.float32(9.0) * mad
        cmadsq = (cmad * cmad).astype(np.float64)
        cmad = cmad.astype(np.float64)
        t0 = (x - xbl).astype(np.float64)
        inside = np.abs(t0) < cmad
        u = np.where(inside, t0 * t0, 0.0)
        t1 = cmadsq - u
        sum1 = np.sum(np.where(inside, u * t1 * t1 * t1 * t1, 0.0), axis=0)
        sum2 = np.sum(np.where(inside, t1 * (cmadsq - 5.0 * u), 0.0), axis=0)
        nf = n.astype(np.float64)
        xbs = nf * np.sqrt(sum1 / (nf - 1.0)) / np.abs(sum2)
        loc[reg], scale[reg] = xbl[reg], xbs[reg].astype(np.float32)

    if out_shape is None:
        return float(loc[0]), float(scale[0])
    return loc.reshape(out_shape), scale.reshape(out_shape)



# ---------------------------------------------------------------------------
# Bias stage kernels (hetred._ext.boxfilter): NumPy restatements of Karl's imcmb, imbox2 and
# imgetctrap (HETDEX/karlspipe hdr2.1/progs).  Every biweight is biweight_reference above.

def stack_biweight_reference(stack):
    """imcmb: per-pixel biweight (location, scale) over axis 0 of an (n, ...) float32 stack."""
    return biweight_reference(np.asarray(stack, dtype=np.float32), axis=0)


def neighbour_biweight_reference(img, offsets, skip_zero: bool = False):
    """For each pixel, the biweight of ``img`` at the (row, column) ``offsets`` from it.

    Neighbours outside the image and non-finite ones are left out; with ``skip_zero`` so are
    neighbours exactly 0.  Returns (location, scale, count) arrays of the image's shape.
    """
    img = np.asarray(img, dtype=np.float32)
    nrow, ncol = img.shape
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    stack = np.full((len(offs), nrow, ncol), np.nan, dtype=np.float32)
    for k, (dr, dc) in enumerate(offs):
        r0, r1 = max(0, -dr), min(nrow, nrow - dr)
        c0, c1 = max(0, -dc), min(ncol, ncol - dc)
        if r1 > r0 and c1 > c0:
            stack[k, r0:r1, c0:c1] = img[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
    bad = ~np.isfinite(stack)
    if skip_zero:
        bad |= stack == 0
    stack[bad] = np.nan
    count = np.sum(~bad, axis=0)
    loc, scale = biweight_reference(stack, axis=0)
    return loc, scale, count


def box_offsets_reference(box_rows: int = 7, box_cols: int = 1, radius: float = 0.0):
    """imbox2's window: (row, column) offsets of the box farther than ``radius`` from its centre."""
    hr, hc = (box_rows - 1) // 2, (box_cols - 1) // 2
    return [(dr, dc) for dr in range(-hr, hr + 1) for dc in range(-hc, hc + 1)
            if math.sqrt(float(dr * dr + dc * dc)) > radius]


def box_filter_reference(img, box_rows: int = 7, box_cols: int = 1, radius: float = 0.0):
    """imbox2 with biweight: biweight of the box neighbours (centre left out at radius 0),
    zeros skipped, window cut at the edges; 0 where no neighbour is usable.  float32."""
    loc, _, count = neighbour_biweight_reference(
        img, box_offsets_reference(box_rows, box_cols, radius), skip_zero=True)
    return np.where(count > 0, loc, np.float32(0.0)).astype(np.float32)


def trap_hits_reference(img, half: int = 9, tcut: float = 10.0, row_lo: int = 9,
                        col_lo: int = 9, col_hi: int | None = None, chunk: int = 96):
    """imgetctrap's per-pixel test for every pixel of rows [row_lo, nrow) and columns
    [col_lo, col_hi) (default ncol - 10): ``(x - xb) / xs > tcut`` in float32, with (xb, xs)
    the biweight of the ``half`` pixels on each side in the row.  uint8 hit map."""
    img = np.asarray(img, dtype=np.float32)
    nrow, ncol = img.shape
    col_hi = ncol - 10 if col_hi is None else col_hi
    offs = [(0, d) for d in range(-half, half + 1) if d != 0]
    hits = np.zeros((nrow, ncol), dtype=np.uint8)
    for r0 in range(row_lo, nrow, chunk):
        r1 = min(nrow, r0 + chunk)
        loc, scale, _ = neighbour_biweight_reference(img[r0:r1], offs)
        with np.errstate(all="ignore"):
            test = (img[r0:r1] - loc) / scale > np.float32(tcut)
        hits[r0:r1, col_lo:col_hi] = test[:, col_lo:col_hi]
    return hits


def biweight_uint16_reference(a, offset: float = 0.0):
    """Biweight (location, scale) of ``float32(a) - float32(offset)`` for integer data."""
    vals = np.asarray(a, dtype=np.float32) - np.float32(offset)
    return biweight_reference(vals)


# ---------------------------------------------------------------------------
# Extraction kernels (hetred._ext.extract): a plain NumPy restatement of the simultaneous
# weighted least-squares fit of all fibers in a column, and of the 2-D model.  Dense 112 x 112
# normal matrices solved with numpy.linalg; the kernel uses a banded L D L^T instead.

def extract_reference(image, variance, mask, r0, w, trace, core_half: float):
    """Reference of :func:`hetred._ext.extract.extract_columns` in the NATURAL orientation.

    image, variance, mask: (nrow, ncol) e-, e-^2, nonzero = bad; r0: (nfib, ncol) int first
    window row; w: (nfib, ncol, nwin) weights; trace: (nfib, ncol) rows.  Per column the
    fluxes minimise sum (d - sum_f s_f w_f)^2 / var over usable pixels (unmasked, var > 0, on
    the frame); couplings are kept only between fibers at most two apart, as in the kernel.
    Returns (spec, err, chi2, ncore) of shape (nfib, ncol): flux (e-), sqrt((A^-1)_ff), reduced
    chi^2 of the pixels within ``core_half`` of the trace against the full model, divided by
    (n_core - sum_core w^2/var (A^-1)_ff), and n_core.  Fibers without pixels: all zero.
    """
    image = np.asarray(image, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    r0 = np.asarray(r0, dtype=np.int64)
    w = np.asarray(w, dtype=np.float64)
    trace = np.asarray(trace, dtype=np.float64)
    nrow, ncol = image.shape
    nfib, _, nwin = w.shape
    spec = np.zeros((nfib, ncol))
    err = np.zeros((nfib, ncol))
    chi2 = np.zeros((nfib, ncol))
    ncore = np.zeros((nfib, ncol), dtype=np.int16)
    k = np.arange(nwin)
    band = np.abs(np.arange(nfib)[:, None] - np.arange(nfib)[None, :]) <= 2
    for x in range(ncol):
        rows = r0[:, x][:, None] + k[None, :]                       # (nfib, nwin)
        inside = (rows >= 0) & (rows < nrow)
        rc = np.clip(rows, 0, nrow - 1)
        var = variance[rc, x]
        ok = inside & ~mask[rc, x] & (var > 0)
        design = np.zeros((nrow, nfib))
        for f in range(nfib):
            design[rc[f][inside[f]], f] += w[f, x][inside[f]]
        use = np.zeros(nrow, dtype=bool)
        use[rc[ok]] = True
        iv = np.zeros(nrow)
        iv[use] = 1.0 / variance[use, x]
        a = (design * iv[:, None]).T @ design
        a = np.where(band, a, 0.0)
        b = design.T @ (iv * image[:, x])
        empty = np.diag(a) <= 0
        a[empty, :] = 0.0
        a[:, empty] = 0.0
        a[empty, empty] = 1.0
        b[empty] = 0.0
        s = np.linalg.solve(a, b)
        z = np.diag(np.linalg.inv(a))
        model = design @ s
        res2 = (image[:, x] - model) ** 2 * iv
        for f in range(nfib):
            if empty[f]:
                continue
            spec[f, x] = s[f]
            err[f, x] = np.sqrt(z[f]) if z[f] > 0 else 0.0
            core = ok[f] & (np.abs(rows[f] - trace[f, x]) <= core_half)
            n = int(core.sum())
            lev = float(np.sum(w[f, x][core] ** 2 * iv[rc[f][core]]) * z[f])
            ncore[f, x] = n
            if n - lev > 0.5:
                chi2[f, x] = res2[rc[f][core]].sum() / (n - lev)
    return spec.astype(np.float32), err.astype(np.float32), chi2.astype(np.float32), ncore


def model_reference(r0, w, spec, nrow: int):
    """Reference of the 2-D model: (nrow, ncol) image, sum_f spec[f, x] w[f, x, k] at row
    r0[f, x] + k (natural orientation; r0 (nfib, ncol), w (nfib, ncol, nwin), spec (nfib, ncol))."""
    r0 = np.asarray(r0, dtype=np.int64)
    w = np.asarray(w, dtype=np.float64)
    spec = np.asarray(spec, dtype=np.float64)
    nfib, ncol, nwin = w.shape
    out = np.zeros((nrow, ncol))
    rows = r0[:, :, None] + np.arange(nwin)[None, None, :]
    cols = np.broadcast_to(np.arange(ncol)[None, :, None], rows.shape)
    ok = (rows >= 0) & (rows < nrow)
    np.add.at(out, (rows[ok], cols[ok]), (spec[:, :, None] * w)[ok])
    return out.astype(np.float32)


def profile_weights_reference(values, knot_columns, node0: float, step: float, trace, half: int = 7,
                              derivative: bool = False):
    """Reference of :func:`hetred._ext.extract.profile_weights` (float64 NumPy).

    values: (nfib, nknot, nnode) node values on node0 + i*step; knot_columns: (nknot,) increasing;
    trace: (nfib, ncol).  Window rows r0 = floor(trace + 0.5) - half .. r0 + 2*half; the curve is
    the Catmull-Rom cubic through the nodes (zero outside the grid), linear in column between
    knots, clipped at 0 and normalised to unit sum over the window.  Returns (r0, w) or
    (r0, w, dw/dtrace).
    """
    tr = np.asarray(trace, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    nfib, ncol = tr.shape
    nkn, nn = v.shape[1], v.shape[2]
    nwin = 2 * half + 1
    r0 = (np.floor(tr + 0.5) - half).astype(np.int32)
    d = r0[:, :, None] + np.arange(nwin)[None, None, :] - tr[:, :, None]
    u = (d - node0) / step
    inside = (u >= 0) & (u <= nn - 1)
    i = np.minimum(np.floor(np.clip(u, 0, nn - 1)).astype(np.int64), nn - 2)
    t = u - i
    kc = np.asarray(knot_columns, dtype=np.float64)
    cols = np.arange(ncol, dtype=np.float64)
    j = np.clip(np.searchsorted(kc, cols) - 1, 0, nkn - 2)
    fc = np.clip((cols - kc[j]) / (kc[j + 1] - kc[j]), 0.0, 1.0)[None, :, None]
    flat = np.pad(v, ((0, 0), (0, 0), (2, 2))).reshape(-1)
    base = ((np.arange(nfib)[:, None] * nkn + j[None, :]) * (nn + 4))[:, :, None] + i
    val = np.zeros(d.shape)
    der = np.zeros(d.shape)
    for shift, wt in ((0, 1.0 - fc), (nn + 4, fc)):
        p0, p1, p2, p3 = (flat[base + shift + m] for m in (1, 2, 3, 4))
        a, b = 2 * p0 - 5 * p1 + 4 * p2 - p3, -p0 + 3 * p1 - 3 * p2 + p3
        val += wt * 0.5 * (2 * p1 + (p2 - p0) * t + a * t * t + b * t * t * t)
        der += wt * 0.5 * ((p2 - p0) + 2 * a * t + 3 * b * t * t)
    pos = inside & (val > 0)
    p = np.where(pos, val, 0.0)
    dp = np.where(pos, der, 0.0) / step
    s = p.sum(axis=2, keepdims=True)
    s[s <= 0] = 1.0
    w = (p / s).astype(np.float32)
    if not derivative:
        return r0, w
    dw = ((-dp + p * dp.sum(axis=2, keepdims=True) / s) / s).astype(np.float32)
    return r0, w, dw


# --- flux-conserving rebinning (rebin.pyx) ----------------------------------------------------
def rebin_reference(counts, var, bad, wave, out_edges, eps: float = 1e-6):
    """NumPy restatement of :func:`hetred._ext.rebin.rebin_fibers` (same arguments and returns).

    Vectorised per fiber: the pixels overlapping each output bin are found with
    ``searchsorted`` on the pixel edges; the whole pixels strictly inside a bin come from
    cumulative sums of counts, variances and bad flags, the (at most two) partial pixels at the
    bin edges are added with their fractions.
    """
    counts = np.asarray(counts, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    bad = np.asarray(bad, dtype=bool)
    wave = np.asarray(wave, dtype=np.float64)
    out_edges = np.asarray(out_edges, dtype=np.float64)
    nfib, npix = counts.shape
    lo, hi = out_edges[:-1], out_edges[1:]
    flux = np.zeros((nfib, lo.size), dtype=np.float32)
    err = np.zeros((nfib, lo.size), dtype=np.float32)
    for f in range(nfib):
        w = wave[f]
        if not (np.all(np.isfinite(w)) and np.all(np.diff(w) > 0)):
            continue
        e = np.empty(npix + 1)
        e[1:-1] = 0.5 * (w[1:] + w[:-1])
        e[0] = w[0] - 0.5 * (w[1] - w[0])
        e[-1] = w[-1] + 0.5 * (w[-1] - w[-2])
        width = np.diff(e)
        a = np.searchsorted(e[1:] - eps * width, lo, side="right")    # first contributing pixel
        b = np.searchsorted(e[:-1] + eps * width, hi, side="left") - 1  # last contributing pixel
        covered = (lo >= e[0] - eps * width[0]) & (hi <= e[-1] + eps * width[-1]) & (b >= a)
        ac, bc = np.clip(a, 0, npix - 1), np.clip(b, 0, npix - 1)
        c = np.where(bad[f], 0.0, counts[f])
        v = np.where(bad[f], 0.0, var[f])
        C = np.concatenate([[0.0], np.cumsum(c)])
        V = np.concatenate([[0.0], np.cumsum(v)])
        M = np.concatenate([[0], np.cumsum(bad[f])])
        fa = (np.minimum(e[ac + 1], hi) - np.maximum(e[ac], lo)) / width[ac]
        fb = (np.minimum(e[bc + 1], hi) - np.maximum(e[bc], lo)) / width[bc]
        single = bc == ac
        inner_c = np.where(bc > ac + 1, C[bc] - C[np.minimum(ac + 1, npix)], 0.0)
        inner_v = np.where(bc > ac + 1, V[bc] - V[np.minimum(ac + 1, npix)], 0.0)
        fl = np.where(single, fa * c[ac], fa * c[ac] + inner_c + fb * c[bc])
        vv = np.where(single, fa * fa * v[ac], fa * fa * v[ac] + inner_v + fb * fb * v[bc])
        good = covered & (M[bc + 1] - M[ac] == 0)
        flux[f] = np.where(good, fl, 0.0)
        err[f] = np.where(good, np.sqrt(np.maximum(vv, 0.0)), 0.0)
    return flux, err


# --- science reduction kernels (scikern.pyx) --------------------------------------------------
def shift_moments_reference(img, trace, s: float, half: float):
    """NumPy restatement of :func:`hetred._ext.scikern.shift_moments` (same arguments and
    returns): the vectorised block of :func:`hetred.fibers.trace.measure_trace_shift`."""
    img = np.asarray(img, dtype=np.float64)
    tr = np.asarray(trace, dtype=np.float64)
    nrow, ncol = img.shape
    k = np.arange(-int(half) - 2, int(half) + 3)
    c = tr + s
    rows = np.floor(c + 0.5).astype(np.int64)[:, :, None] + k
    ok = (rows >= 0) & (rows < nrow)
    v = np.where(ok, img[np.clip(rows, 0, nrow - 1), np.arange(ncol)[None, :, None]], 0.0)
    wgt = np.clip(half + 0.5 - np.abs(rows - c[:, :, None]), 0.0, 1.0) * v
    return wgt.sum(axis=(1, 2)), (wgt * (rows - tr[:, :, None])).sum(axis=(1, 2))


def window_rms_reference(resid, trace, half: int):
    """NumPy restatement of :func:`hetred._ext.scikern.window_rms` (same arguments and returns)."""
    resid = np.asarray(resid, dtype=np.float64)
    nrow, ncol = resid.shape
    rows = np.floor(np.asarray(trace, np.float64) + 0.5).astype(np.int64)[:, :, None] + np.arange(-half, half + 1)
    ok = (rows >= 0) & (rows < nrow)
    v = np.where(ok, resid[np.clip(rows, 0, nrow - 1), np.arange(ncol)[None, :, None]], 0.0)
    n = ok.sum(axis=2)
    out = np.sqrt((v * v).sum(axis=2) / np.maximum(n, 1))
    return np.where(n > 0, out, 0.0).astype(np.float32)


# --- throughput star-fit kernels (psfkern.pyx) -------------------------------------------------
def moffat_fiber_table_reference(d, fwhm, beta: float, rfib: float, rnodes, rweights, nang: int):
    """NumPy restatement of :func:`hetred._ext.psfkern.moffat_fiber_table` (same arguments and
    returns): the same quadrature nodes, summed with array operations."""
    d = np.asarray(d, dtype=np.float64)
    r = rfib * (np.asarray(rnodes, np.float64) + 1.0) / 2.0
    wr = np.asarray(rweights, np.float64) * rfib / 2.0 * r * (2.0 * np.pi / nang)
    th = (np.arange(nang) + 0.5) * 2.0 * np.pi / nang
    qx = (r[:, None] * np.cos(th)[None, :]).ravel()
    qy = (r[:, None] * np.sin(th)[None, :]).ravel()
    qw = np.repeat(wr, nang)
    out = np.zeros((len(fwhm), d.size))
    for j, f in enumerate(np.asarray(fwhm, np.float64)):
        a2 = (f / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))) ** 2
        rr = ((d[:, None] + qx[None, :]) ** 2 + qy[None, :] ** 2) / a2
        out[j] = (beta - 1.0) / (np.pi * a2) * ((1.0 + rr) ** -beta @ qw)
    return out


def table_interp_reference(table, d, fwhm, d_step: float, fwhm0: float, fwhm_step: float):
    """NumPy restatement of :func:`hetred._ext.psfkern.fiber_fractions` (bilinear in the table,
    FWHM clamped to its rows, 0 at or beyond the last distance)."""
    table = np.asarray(table, np.float64)
    nf, nd = table.shape
    d = np.asarray(d, np.float64)
    u = d / d_step
    fi = np.clip((np.asarray(fwhm, np.float64) - fwhm0) / fwhm_step, 0, nf - 1)
    i0 = np.clip(np.floor(u).astype(np.int64), 0, nd - 2)
    j0 = np.minimum(np.floor(fi).astype(np.int64), nf - 2)
    tu, tf = u - i0, fi - j0
    v = ((1 - tf) * ((1 - tu) * table[j0, i0] + tu * table[j0, i0 + 1])
         + tf * ((1 - tu) * table[j0 + 1, i0] + tu * table[j0 + 1, i0 + 1]))
    return np.where(u >= nd - 1, 0.0, v)


def chi2_trials_reference(fx, fy, flux, err, tx, ty, tfwhm, table, d_step: float, fwhm0: float,
                          fwhm_step: float):
    """NumPy restatement of :func:`hetred._ext.psfkern.chi2_trials` (same arguments and returns)."""
    fx, fy, flux, err = (np.asarray(a, np.float64) for a in (fx, fy, flux, err))
    use = err > 0
    fx, fy, flux, err = fx[use], fy[use], flux[use], err[use]
    tx, ty, tf = (np.asarray(a, np.float64) for a in (tx, ty, tfwhm))
    d = np.hypot(fx[None, :] - tx[:, None], fy[None, :] - ty[:, None])
    p = table_interp_reference(table, d, np.broadcast_to(tf[:, None], d.shape), d_step, fwhm0, fwhm_step)
    w = 1.0 / err**2
    spp, spf, sff = (p * p * w).sum(1), (p * flux * w).sum(1), np.full(tx.size, (flux * flux * w).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = np.where(spp > 0, spf / spp, 0.0)
    chi = np.where(spp > 0, np.maximum(sff - amp * spf, 0.0), 1e300)
    return chi, amp
