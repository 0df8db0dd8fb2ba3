"""The scattered-light background model: the ``model`` method of ``hetred bgmodel`` (the default).

Physical model (hetdex_numbers.md §4; Remedy README "Scattered Light - Spectrograph": "roughly
3-4% of the incident fiber light is scattered", intensity "proportional to 1 / pixel distance"):
a small fraction of every fiber's light is spread along the rows with a kernel that falls off as
1/distance, on top of the dark current. Per column x of the combined frame C (raw orientation,
fibers along the rows, the column's fiber light profile along the rows y):

    B(y, x) = d(x) + a(x) * (K * L)(y, x),    L = C - B  (the column's fiber light)

with K a normalised kernel along the rows in Remedy's ``power_law`` form,
K(s) ~ 1 / (1 + (|s|/s0)^p) for |s| <= smax (c1/(0.5 + c3 |s/sigma|^c4) with
s0 = sigma (0.5/c3)^(1/c4), p = c4), and (d, a) fitted by robust weighted least squares, in bins
of ``bin_cols`` columns, on the pixels far from any fiber: the centres of the two inter-block gaps
(+-``gap_half`` rows) and the rows below the first and above the last fiber (``edge_margin`` rows
away from their centres, the first ``ramp_rows`` rows left out). L starts as C minus a constant and
is updated ``niter`` times; d and a are smoothed along the columns (biweight over ``smooth_bins``
bins, linear interpolation between bin centres) and the model is made at full resolution
(one FFT convolution of every column). Where the fiber light is too faint for a per-bin amplitude
(sci frames) one amplitude is fitted for the whole amp; where even that is insignificant, the model
is a constant per column from the gap and edge rows (docs/stages/bgmodel.md, "The `model`
method").

Rows and columns here are 0-based (pixel centres at integers).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from hetred.errors import HetredError
from hetred.stats import biweight

F32 = np.float32
NSLOTS_GAP = (37, 76)     #: fiber slots of the two missing fibers (blocks of 37/38/37, 114 slots)
GAP_SEARCH = (0.2, 0.5, 0.8)   #: the gaps are searched in rows 0.2-0.5 and 0.5-0.8 of the frame
GAP_SUM = 7               #: rows in the running sum whose minimum finds a gap
GAP_DEGREE = 3            #: degree of the polynomial along the columns through the gap centres
PITCH_RANGE = (6.0, 12.0)  #: a fiber pitch outside this (px) means no fiber pattern in that bin
TUKEY_C = 6.0             #: robust weights: Tukey biweight with c = 6 MAD-sigma


@dataclass(frozen=True)
class ScatterParams:
    """Parameters of the scattered-light model (``[stages.bgmodel]`` sets the kernel's)."""

    kernel_core: float = 4.0      #: s0 (rows): the kernel is flat inside, ~1/|s| outside
    kernel_power: float = 1.0     #: p: 1/distance (Remedy README)
    kernel_extent: float = 400.0  #: smax (rows): the kernel is 0 beyond
    bin_cols: int = 32            #: columns per fit bin
    niter: int = 3                #: fits of (d, a) with L = C - B updated in between
    niter_full: int = 2           #: full-resolution updates of L = C - B at the end
    ramp_rows: int = 8            #: the first rows read out (ramp after the reset) are never fitted
    edge_margin: float = 9.0      #: edge rows are at least this far from the first/last fiber centre
    gap_half: float = 1.2         #: gap rows: within this of the gap centre (the wings are < 2 %)
    smooth_bins: int = 3          #: bins in the biweight smoothing of d and a along the columns
    smooth_bins_faint: int = 7    #: ... when a is one value for the amp or 0 (noisier d)
    min_snr: float = 5.0          #: median a / sigma_a of the bins below this: one a for the amp
    global_snr: float = 5.0       #: the amp's a / sigma_a below this: constant per column (a = 0)
    clip_width: int = 5           #: columns of the running median that cleans column defects
    clip_sigma: float = 5.0       #: ... a pixel is replaced when above it by clip_sigma sigma
    clip_frac: float = 0.5        #: ... plus clip_frac of the median (fiber light, sky lines kept)

    def kernel(self) -> np.ndarray:
        """K(s) for s = -smax..smax (rows), normalised to sum 1."""
        smax = int(round(self.kernel_extent))
        s = np.abs(np.arange(-smax, smax + 1, dtype=np.float64))
        k = 1.0 / (1.0 + (s / self.kernel_core) ** self.kernel_power)
        return k / k.sum()

    def check(self) -> None:
        if not (self.kernel_core > 0 and self.kernel_power > 0 and 1 <= self.kernel_extent <= 10000):
            raise HetredError("[stages.bgmodel]: need kernel_core > 0, kernel_power > 0 and "
                              f"1 <= kernel_extent <= 10000, got {self.kernel_core}, "
                              f"{self.kernel_power}, {self.kernel_extent}")


@dataclass
class ScatterResult:
    """What the fit found (0-based rows; per bin unless per column)."""

    mode: str                  #: "bins" (a per bin), "amp" (one a), "constant" (a = 0)
    kernel: tuple[float, float, int]   #: (s0, p, smax)
    edges: np.ndarray          #: (nbin + 1,) first column of each bin, then ncol
    centres: np.ndarray        #: (nbin,) bin centres (columns)
    gap1: np.ndarray           #: gap centres
    gap2: np.ndarray
    first: np.ndarray          #: first and last fiber centres (from the gaps: 37 pitches out)
    last: np.ndarray
    nfit: np.ndarray           #: (nbin, 4) rows fitted below, in gap 1, gap 2, above
    bin_dark: np.ndarray       #: fitted d and a per bin (last iteration, before smoothing)
    bin_amp: np.ndarray
    bin_snr: np.ndarray        #: a / sigma_a per bin (first iteration)
    amp_snr: float             #: a / sigma_a of the amp-wide fit (first iteration)
    dark: np.ndarray           #: (ncol,) smoothed d per column
    amp: np.ndarray            #: (ncol,) smoothed a per column

    def per_column(self, values: np.ndarray) -> np.ndarray:
        """Per-bin values linearly interpolated at every column (constant beyond the ends)."""
        return np.interp(np.arange(self.edges[-1]), self.centres, values)


# ------------------------------------------------------------------------------------------
# pieces

def clean_columns(c: np.ndarray, p: ScatterParams) -> np.ndarray:
    """The frame with single-column excesses (traps, hot pixels, cosmic rays) replaced by the
    running median along the row: only pixels above it by clip_sigma robust sigma + clip_frac of
    the median (fiber profiles, twilight absorption and sky emission lines are kept)."""
    # "mirror" (c b | a b c): the running median of an edge column does not count the column's
    # own value three times, so a hot pixel in the first or last column is cleaned too (demo
    # seed 1: one in raw column 0 of a gap row put +2 ADU into the dark of the first bins)
    med = ndimage.median_filter(c, size=(1, p.clip_width), mode="mirror")
    diff = c - med
    sig = 1.4826 * float(np.median(np.abs(diff[::3, ::3])))
    return np.where(diff > p.clip_sigma * sig + p.clip_frac * np.abs(med), med, c).astype(F32)


def bin_edges(ncol: int, width: int) -> np.ndarray:
    nbin = max(1, int(round(ncol / width)))
    return np.linspace(0, ncol, nbin + 1).round().astype(np.int64)


def bin_means(c: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(nbin, nrow) float64 mean profile of each column bin."""
    sums = np.add.reduceat(c.astype(np.float64), edges[:-1], axis=1)
    return (sums / np.diff(edges)[None, :]).T


def _running_sum(prof: np.ndarray, width: int) -> np.ndarray:
    """Sum over rows j - width//2 .. j + width//2 along the last axis; inf where incomplete."""
    c = np.cumsum(np.pad(prof, ((0, 0), (1, 0))), axis=1)
    h = width // 2
    out = np.full(prof.shape, np.inf)
    out[:, h:prof.shape[1] - h] = c[:, width:] - c[:, :-width]
    return out


def find_gaps(prof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (0-based rows, sub-pixel) of the two inter-block gaps in bin profiles (nbin, nrow).

    The minimum 7-row sum in rows 0.2-0.5 and 0.5-0.8 of the frame (the gap is darker than any
    dead fiber's place, which still has its own and its neighbours' light), refined to the minimum
    3-row sum within 3 rows and a parabola through it; then a robust polynomial of degree 3 in the
    column through the bins' centres (traces are smooth; a bin's own minimum is biased towards its
    noise, which matters in faint sci frames)."""
    nbin, nrow = prof.shape
    s7, s3 = _running_sum(prof, GAP_SUM), _running_sum(prof, 3)
    out = []
    for lo, hi in ((GAP_SEARCH[0], GAP_SEARCH[1]), (GAP_SEARCH[1], GAP_SEARCH[2])):
        r0, r1 = int(lo * nrow), int(hi * nrow)
        g = r0 + np.argmin(s7[:, r0:r1], axis=1)
        win = np.clip(g[:, None] + np.arange(-3, 4)[None, :], 1, nrow - 2)
        k = np.take_along_axis(win, np.argmin(np.take_along_axis(s3, win, 1), axis=1)[:, None], 1)[:, 0]
        y0, y1, y2 = (np.take_along_axis(s3, (k + j)[:, None], 1)[:, 0] for j in (-1, 0, 1))
        den = y0 - 2 * y1 + y2
        with np.errstate(all="ignore"):
            off = np.where(np.isfinite(den) & (den > 0), 0.5 * (y0 - y2) / den, 0.0)
        out.append(smooth_trace(k + np.clip(off, -0.5, 0.5)))
    return out[0], out[1]


def smooth_trace(g: np.ndarray, degree: int = GAP_DEGREE, nclip: int = 3) -> np.ndarray:
    """A robust polynomial through per-bin rows: fitted, points beyond 3 MAD-sigma (at least 0.3
    rows) dropped, refitted; evaluated at every bin."""
    n = g.size
    if n <= degree + 2:
        return np.full(n, np.median(g))
    x = np.linspace(-1.0, 1.0, n)
    keep = np.ones(n, bool)
    for _ in range(nclip + 1):
        coef = np.polynomial.polynomial.polyfit(x[keep], g[keep], degree)
        res = g - np.polynomial.polynomial.polyval(x, coef)
        lim = max(3 * 1.4826 * float(np.median(np.abs(res[keep]))), 0.3)
        new = np.abs(res) <= lim
        if new.sum() <= degree + 2 or (new == keep).all():
            break
        keep = new
    return np.polynomial.polynomial.polyval(x, coef)


def fiber_span(gap1: np.ndarray, gap2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, last, ok): fiber centres 37 pitches outside the gaps, pitch = gap distance / 39
    (slots 37 and 76 of 114 are empty); ok where the pitch is plausible."""
    pitch = (gap2 - gap1) / float(NSLOTS_GAP[1] - NSLOTS_GAP[0])
    ok = (pitch > PITCH_RANGE[0]) & (pitch < PITCH_RANGE[1])
    return gap1 - NSLOTS_GAP[0] * pitch, gap2 + NSLOTS_GAP[0] * pitch, ok


def fit_regions(gap1, gap2, first, last, ok, nrow: int, p: ScatterParams) -> list[np.ndarray]:
    """Boolean (nbin, nrow) masks of the fitted rows: below, gap 1, gap 2, above."""
    r = np.arange(nrow)[None, :]
    g1, g2 = gap1[:, None], gap2[:, None]
    below = (r >= p.ramp_rows) & (r <= first[:, None] - p.edge_margin) & ok[:, None]
    above = (r >= last[:, None] + p.edge_margin) & ok[:, None]
    return [below, np.abs(r - g1) <= p.gap_half, np.abs(r - g2) <= p.gap_half, above]


def region_weights(regions: list[np.ndarray]) -> np.ndarray:
    """(nbin, nrow) weights: each non-empty region of a bin weighs 1 in total."""
    w = np.zeros(regions[0].shape)
    for m in regions:
        n = m.sum(axis=1, keepdims=True)
        w += np.where(m, 1.0 / np.maximum(n, 1), 0.0)
    return w


def compact(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights), both (nbin, nmax): the rows with weight > 0 of each bin, padded with row 0
    at weight 0 (the fits work on these few rows only)."""
    n = (w > 0).sum(axis=1)
    order = np.argsort(w <= 0, axis=1, kind="stable")[:, :max(1, int(n.max()))]
    wc = np.take_along_axis(w, order, axis=1)
    return np.where(wc > 0, order, 0), np.where(wc > 0, wc, 0.0)


def convolve_rows(light: np.ndarray, p: ScatterParams) -> np.ndarray:
    """K * light along the last axis (rows), zero beyond the frame (light off the amp is lost);
    float32 in, float32 out (one real FFT per row of ``light``)."""
    nrow = light.shape[-1]
    k = p.kernel()
    smax = (k.size - 1) // 2
    nfft = sfft.next_fast_len(nrow + smax + 1, real=True)
    circ = np.zeros(nfft, np.float64)
    circ[:smax + 1] = k[smax:]
    circ[nfft - smax:] = k[:smax]
    kf = sfft.rfft(circ)
    dtype = light.dtype if light.dtype in (np.float32, np.float64) else np.float64
    spec = sfft.rfft(light.astype(dtype, copy=False), nfft, axis=-1)
    spec *= kf.astype(spec.dtype)
    return sfft.irfft(spec, nfft, axis=-1)[..., :nrow].astype(dtype, copy=False)


def _tukey(res: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Tukey biweights of residuals (nbin, nrow) from each bin's MAD over its fitted rows."""
    absres = np.where(w > 0, np.abs(res), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)        # bins without fitted rows
        scale = np.nan_to_num(np.nanmedian(absres, axis=1))
    scale = np.maximum(1.4826 * scale, 1e-12)[:, None]
    u = res / (TUKEY_C * scale)
    return np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)


def _moments(w, c, y):
    """Weighted means of c and y per bin and the deviations from them."""
    sw = np.maximum(w.sum(axis=1), 1e-300)
    cm, ym = (w * c).sum(axis=1) / sw, (w * y).sum(axis=1) / sw
    return cm, ym, c - cm[:, None], y - ym[:, None]


def _sandwich(w, dc, res, per_bin: bool):
    """sigma of the slope from the residual scatter (weights need not be inverse variances)."""
    sxx = (w * dc * dc).sum(axis=1)
    v = (w * w * dc * dc * res * res).sum(axis=1)
    if not per_bin:
        sxx, v = sxx.sum(), v.sum()
    with np.errstate(all="ignore"):
        return np.sqrt(v) / sxx


def fit_const(y: np.ndarray, w0: np.ndarray, nrobust: int = 2) -> np.ndarray:
    """Per bin, the weighted mean of y with Tukey reweighting (the ``constant`` mode's d, and
    the first background of the others): a hot pixel or a cosmic-ray residual in a fitted row
    does not move it."""
    w = w0
    for k in range(nrobust + 1):
        sw = w.sum(axis=1)
        d = np.where(sw > 0, (w * y).sum(axis=1) / np.where(sw > 0, sw, 1.0), 0.0)
        if k < nrobust:
            w = w0 * _tukey(y - d[:, None], w0)
    return d


def fit_bins(y: np.ndarray, c: np.ndarray, w0: np.ndarray, nrobust: int = 2):
    """Per bin, y = d + a c by weighted least squares with Tukey reweighting: (d, a, sigma_a)."""
    w = w0
    for k in range(nrobust + 1):
        cm, ym, dc, dy = _moments(w, c, y)
        sxx = (w * dc * dc).sum(axis=1)
        a = np.where(sxx > 0, (w * dc * dy).sum(axis=1) / np.where(sxx > 0, sxx, 1.0), 0.0)
        d = ym - a * cm
        res = y - d[:, None] - a[:, None] * c
        if k < nrobust:
            w = w0 * _tukey(res, w0)
    return d, a, _sandwich(w, dc, res, True)


def fit_amp(y: np.ndarray, c: np.ndarray, w0: np.ndarray, nrobust: int = 2):
    """One slope for all bins, an offset per bin: (d per bin, a, sigma_a)."""
    w = w0
    for k in range(nrobust + 1):
        cm, ym, dc, dy = _moments(w, c, y)
        sxx = (w * dc * dc).sum()
        a = float((w * dc * dy).sum() / sxx) if sxx > 0 else 0.0
        d = ym - a * cm
        res = y - d[:, None] - a * c
        if k < nrobust:
            w = w0 * _tukey(res, w0)
    return d, a, float(_sandwich(w, dc, res, False))


def smooth_bins(values: np.ndarray, n: int) -> np.ndarray:
    """Biweight (Karl's) over n neighbouring bins, edge values repeated at the ends."""
    if n <= 1 or values.size < 2:
        return values.astype(np.float64)
    h = n // 2
    win = np.lib.stride_tricks.sliding_window_view(np.pad(values, h, mode="edge"), 2 * h + 1)
    return biweight(np.ascontiguousarray(win.T, dtype=F32), axis=0)[0].astype(np.float64)


# ------------------------------------------------------------------------------------------
# the model

def scattered_light_model(xd: np.ndarray, params: ScatterParams | None = None
                          ) -> tuple[np.ndarray, ScatterResult]:
    """The background model (float32, shape of ``xd``) of a combined, normalised frame in the raw
    orientation (fibers along the rows, 112 fibers in blocks of 37/38/37): dark + scattered light,
    in the units of ``xd`` (module docstring)."""
    p = params or ScatterParams()
    p.check()
    xd = np.ascontiguousarray(xd, dtype=F32)
    nrow, ncol = xd.shape
    if nrow < 200 or ncol < 2 * p.bin_cols:
        raise HetredError(f"the scattered-light model needs at least 200 rows and {2 * p.bin_cols} "
                          f"columns, got {xd.shape}")
    clean = clean_columns(xd, p)
    edges = bin_edges(ncol, p.bin_cols)
    centres = 0.5 * (edges[:-1] + edges[1:] - 1)
    prof = bin_means(clean, edges)
    gap1, gap2 = find_gaps(prof)
    first, last, ok = fiber_span(gap1, gap2)
    regions = fit_regions(gap1, gap2, first, last, ok, nrow, p)
    w0 = region_weights(regions)
    nfit = np.stack([m.sum(axis=1) for m in regions], axis=1)
    idx, wc = compact(w0)
    has = wc.sum(axis=1) > 0
    yc = np.take_along_axis(prof, idx, axis=1)
    const = np.where(has, fit_const(yc, wc), np.median(prof, axis=1))   # robust mean of the far rows
    back = const[:, None] + np.zeros((1, nrow))
    mode, bin_snr, amp_snr = "constant", np.zeros(len(centres)), 0.0
    d, a = const.copy(), np.zeros(len(centres))
    far = w0 > 0
    for it in range(max(1, p.niter)):
        # the fitted rows hold no fiber light: their L is 0, not their noise (which K would
        # correlate with their own values and turn into a spurious amplitude in faint frames)
        conv = convolve_rows(np.where(far, 0.0, prof - back), p)
        cc = np.take_along_axis(conv, idx, axis=1)
        if it == 0:
            _, a_b, s_b = fit_bins(yc, cc, wc)
            with np.errstate(all="ignore"):
                bin_snr = np.where(s_b > 0, a_b / s_b, 0.0)
            _, a_a, s_a = fit_amp(yc, cc, wc)
            amp_snr = a_a / s_a if s_a > 0 else 0.0
            if np.median(bin_snr) >= p.min_snr:
                mode = "bins"
            elif amp_snr >= p.global_snr and a_a > 0:
                mode = "amp"
        if mode == "bins":
            d, a, _ = fit_bins(yc, cc, wc)
            a = np.maximum(a, 0.0)
        elif mode == "amp":
            d, a, _ = fit_amp(yc, cc, wc)
            a = np.full(len(centres), a)
        else:                                   # too little light: a constant per bin
            break
        back = d[:, None] + a[:, None] * conv
    nsm = p.smooth_bins if mode == "bins" else p.smooth_bins_faint
    ds, as_ = smooth_bins(d, nsm), smooth_bins(a, nsm)
    cols = np.arange(ncol)
    dark, amp = np.interp(cols, centres, ds), np.interp(cols, centres, as_)
    model = np.broadcast_to(dark.astype(F32), (nrow, ncol)).copy()
    if mode != "constant":
        # full resolution, per column: L = clean frame - background, with first the bins'
        # background interpolated along the columns, then the full-resolution model itself
        back_b = ds[:, None] + as_[:, None] * convolve_rows(np.where(far, 0.0, prof - back), p)
        if len(centres) > 1:
            j = np.clip(np.searchsorted(centres, cols) - 1, 0, len(centres) - 2)
            f = np.clip((cols - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0)[:, None]
            back_t = (back_b[j] * (1 - f) + back_b[j + 1] * f).astype(F32)
        else:
            back_t = np.repeat(back_b, ncol, axis=0).astype(F32)
        clean_t = np.ascontiguousarray(clean.T)
        dark_t, amp_t = dark.astype(F32)[:, None], amp.astype(F32)[:, None]
        for _ in range(max(1, p.niter_full)):
            back_t = dark_t + amp_t * convolve_rows(clean_t - back_t, p)
        model = back_t.T
    res = ScatterResult(mode=mode, kernel=(p.kernel_core, p.kernel_power, int(round(p.kernel_extent))),
                        edges=edges, centres=centres, gap1=gap1, gap2=gap2, first=first, last=last,
                        nfit=nfit, bin_dark=d, bin_amp=a, bin_snr=bin_snr, amp_snr=float(amp_snr),
                        dark=dark, amp=amp)
    return np.ascontiguousarray(model, dtype=F32), res
