"""``hetred bgmodel``: imgetgap against a literal restatement and known synthetic frames, the
scattered-light model on synthetic frames with known traces, kernel and dark, the kinds' cuts,
and a simulated month end to end (tarlist -> bias -> bgmodel) checked against the simulator's
truth background (scattered light + dark current) for both methods.

:func:`imgetgap_literal` restates karlspipe hdr2.1/progs/imgetgap.f loop by loop (one column at
a time, Karl's 1-based rows, scalar biweights) so that the vectorised
:func:`hetred.background.imgetgap.background_model` can be checked against it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from hetred.background import frames as bg_frames
from hetred.background import imgetgap as ig
from hetred.background import run as bg
from hetred.background import scattered as sc
from hetred.background import settings as bg_settings
from hetred.cli import cli
from hetred.stats import biweight

F32 = np.float32
MONTH = "201801"
NIGHTS = "20180101-20180103"
SLOT = 53
SEED = 5
AMPS = ("LL", "LU", "RL", "RU")


# ------------------------------------------------------------------------------------------
# Karl's imgetgap, loop by loop

def _bws(values):
    return biweight(np.asarray(values, dtype=F32))


def _xlinint(xp, x, y, prev, power_seg=None):
    """Karl's xlinint / xlinint2 (power_seg = 2, 1-based, for xlinint2); prev: the value yp
    keeps when nothing is assigned."""
    n = len(x)
    xp = F32(xp)
    for j in range(n - 1):
        if xp >= x[j] and xp < x[j + 1]:
            if power_seg is not None and j + 1 == power_seg:
                fac = F32((xp - x[j]) / (x[j + 1] - x[j])) ** F32(0.3)
                return F32(y[j] + (y[j + 1] - y[j]) * fac)
            return F32(y[j] + ((y[j + 1] - y[j]) * (xp - x[j])) / (x[j + 1] - x[j]))
    yp = prev
    if xp < x[0]:
        yp = y[0]
    if xp > x[n - 1]:
        yp = y[n - 1]
    return F32(yp)


def _smxin_literal(x, ibin):
    n = len(x)
    x2 = [F32(v) for v in x if v != -666]
    xi2 = [F32(i + 1) for i, v in enumerate(x) if v != -666]
    n2 = len(x2)
    ib1 = (ibin - 1) // 2
    xn, yn = [], []
    for j in range(1, n2 + 1, ibin):
        istart = max(1, j - ib1)
        iend = istart + ibin - 1
        if iend > n2:
            iend, istart = n2, n2 - ibin + 1
        yn.append(F32(_bws(x2[istart - 1:iend])[0]))
        xn.append(F32(_bws(xi2[istart - 1:iend])[0]))
    out, prev = [], F32(0)
    for i in range(1, n + 1):
        prev = _xlinint(i, xn, yn, prev)
        out.append(prev)
    return np.asarray(out, F32)


def _nint(v):
    return int(np.floor(v + 0.5)) if v >= 0 else int(np.ceil(v - 0.5))


def imgetgap_literal(img, image_cols=(1, 2, 300, 516, 517, 1031, 1032)):
    """imgetgap.f restated with its loops. Returns (ixl, ixu, ixm1, ixm2, isingle, ynodes,
    xnodes, {column: model column}) with 1-based rows; the final image only for image_cols."""
    a = np.asarray(img, F32)
    nrow, ncol = a.shape

    def xd(i, j):
        return a[j - 1, i - 1]

    def edge(rows):
        xrow = np.zeros(ncol + 1, F32)
        for i in range(1, ncol + 1):
            xin, hit = [], None
            for j in rows:
                xin.append(xd(i, j))
                if len(xin) > 4:
                    xb, xs = _bws(xin)
                    with np.errstate(all="ignore"):
                        if (xd(i, j) - F32(xb)) / F32(xs) > F32(6):
                            hit = j
                            break
            yield i, hit

    def smooth(xrow, shift):
        out = np.zeros(ncol + 1, np.int64)
        for i in range(1, ncol + 1):
            ibs = max(1, i - 5)
            if ibs + 8 > ncol:
                ibs = ncol - 8
            out[i] = _nint(F32(_bws(xrow[ibs:ibs + 9])[0]) + F32(shift))
        return out

    xrow = np.zeros(ncol + 1, F32)
    for i, hit in edge(range(1, 36)):
        if hit is not None:
            xrow[i] = hit
        elif i > 1:
            xrow[i] = xrow[i - 1]
    ixl = smooth(xrow, -1)
    for i, hit in edge(range(nrow, nrow - 36, -1)):
        if hit is not None:
            xrow[i] = hit
        elif i > 1:
            xrow[i] = nrow
    ixu = smooth(xrow, +1)

    nhalf = ncol // 2
    ixm1, ixm2 = np.zeros(ncol + 1, np.int64), np.zeros(ncol + 1, np.int64)
    jmin = nhalf
    for i in range(1, ncol + 1):
        c = a[:, i - 1]
        sums = F32(0) + c[0:nrow - 8]               # sum(j) = xd(j-4) + ... + xd(j+4), in order,
        for k in range(1, 9):                       # float32: the same bits as Karl's loop
            sums = sums + c[k:nrow - 8 + k]
        sums = sums.tolist()
        for lo, hi, dest in ((ixl[i] + 40, nhalf, ixm1), (nhalf, ixu[i] - 40, ixm2)):
            smin = 1e10
            for j in range(lo, hi + 1):
                if sums[j - 5] < smin:
                    smin, jmin = sums[j - 5], j
            dest[i] = jmin

    X, Y = np.zeros((5, ncol + 1), F32), np.zeros((5, ncol + 1), F32)
    for i in range(1, ncol + 1):
        js = 6 if ixl[i] >= 11 else 1
        vals = [xd(i, j) for j in range(js, ixl[i] + 1)]
        xb = [F32(_bws(vals)[0]), 0, 0, 0]
        yb = [F32(ixl[i] + 1) / F32(2), F32(ixm1[i]), F32(ixm2[i]), F32(ixu[i] + nrow) / F32(2)]
        if len(vals) < 5:
            xb[0], yb[0] = F32(0), F32(1)
        xb[1] = F32(_bws([xd(i, j) for j in range(ixm1[i] - 4, ixm1[i] + 5)])[0])
        xb[2] = F32(_bws([xd(i, j) for j in range(ixm2[i] - 4, ixm2[i] + 5)])[0])
        vals = [xd(i, j) for j in range(ixu[i], nrow + 1)]
        xb[3] = F32(_bws(vals)[0])
        if len(vals) < 5:
            xb[3], yb[3] = F32(0), F32(nrow)
        if xb[0] == 0:
            xb[0] = xb[1]
        if xb[3] == 0:
            xb[3] = xb[2]
        ybnew = F32(yb[0] + F32(0.1) * (yb[1] - yb[0]))
        xbnew = F32(F32(0.9) * xb[1] + F32(0.1) * xb[0])
        X[:, i] = [xb[0], xbnew, xb[1], xb[2], xb[3]]
        Y[:, i] = [yb[0], ybnew, yb[1], yb[2], yb[3]]
    isingle = 17 if ixl[500] > 20 else max(2, ixl[500] - 3)
    xsing = np.zeros(isingle + 1, F32)
    for j in range(1, isingle + 1):
        xb = F32(_bws([xd(i, j) for i in range(400, 601)])[0])
        xsing[j] = F32(0) if xb < -10 else xb
    Y[1, 1:], X[1, 1:] = isingle, xsing[isingle]
    for j in (2, 3, 4):
        if _bws(X[j, 1:])[0] > 10:
            X[j, 1:] = X[j - 1, 1:]
    for j in range(5):
        xb, xs = _bws(X[j, 1:])
        v = X[j, 1:].copy()
        with np.errstate(all="ignore"):
            for i in range(ncol):
                if (v[i] - F32(xb)) / F32(xs) > F32(5):
                    v[i] = -666
        X[j, 1:] = _smxin_literal(v, 13)
    cols, prev = {}, F32(0)
    for i in range(1, ncol + 1):
        if i not in image_cols:
            continue
        col = []
        for j in range(1, nrow + 1):
            prev = _xlinint(j, Y[:, i], X[:, i], prev, power_seg=2)
            col.append(prev)
        col = np.asarray(col, F32)
        col[:isingle] = xsing[1:]
        cols[i] = col
    return ixl[1:], ixu[1:], ixm1[1:], ixm2[1:], isingle, Y[:, 1:], X[:, 1:], cols


# ------------------------------------------------------------------------------------------
# synthetic frames

PITCH, Y0 = 8.7, 20.0


def fiber_rows(pitch=PITCH, y0=Y0):
    """0-based centres of 112 fibers in blocks of 37/38/37 with one missing fiber between blocks."""
    k = np.arange(112) + (np.arange(112) >= 37) + (np.arange(112) >= 75)
    return y0 + pitch * k


def smooth_background(nrow=1032, ncol=1032):
    r = np.arange(nrow)[:, None] / nrow
    c = np.arange(ncol)[None, :] / ncol
    return (2.0 + 1.5 * r - 1.0 * r ** 2 + 0.4 * np.sin(3 * c) + 0.3 * c).astype(F32)


def synthetic_frame(seed=0, noise=0.05, sigma=1.0, amp=40.0, blank_cols=(700, 701, 702)):
    """Narrow Gaussian fibers (no wings in the gaps) on :func:`smooth_background`, 0-based
    columns ``blank_cols`` without fibers (the fiber edges are not found there)."""
    rng = np.random.default_rng(seed)
    rows = np.arange(1032)[:, None]
    light = np.zeros((1032, 1), np.float64)
    for y in fiber_rows():
        light += np.exp(-0.5 * ((rows - y) / sigma) ** 2)
    img = smooth_background() + (amp * light).astype(F32)
    img[:, list(blank_cols)] = smooth_background()[:, list(blank_cols)]
    return (img + noise * rng.standard_normal(img.shape)).astype(F32)


@pytest.fixture(scope="module")
def synth():
    img = synthetic_frame()
    model, gaps = ig.background_model(img)
    return img, model, gaps


def test_gap_finder_on_synthetic_frame(synth):
    img, model, g = synth
    y = fiber_rows() + 1                                  # 1-based
    gap1 = 0.5 * (y[36] + y[37])
    gap2 = 0.5 * (y[74] + y[75])
    cols = np.r_[20:690, 720:1012]                        # away from the edges and the blank band
    # the first fiber: 6 sigma above the noise on its rising flank, then one row lower
    assert np.all((g.ixl[cols] >= y[0] - 5) & (g.ixl[cols] <= y[0] - 1)), np.unique(g.ixl[cols])
    assert np.all((g.ixu[cols] >= y[-1] + 1) & (g.ixu[cols] <= y[-1] + 5)), np.unique(g.ixu[cols])
    assert np.all(np.abs(g.ixm1[cols] - gap1) <= 2) and np.all(np.abs(g.ixm2[cols] - gap2) <= 2)
    truth = smooth_background()
    # the model at the gap centres and above the last fiber is the smooth background
    for rows in (g.ixm1, g.ixm2):
        m = model[rows[cols] - 1, cols]
        t = truth[rows[cols] - 1, cols]
        assert np.max(np.abs(m / t - 1)) < 0.02
    # bottom rows: each the biweight of its row over columns 400-600
    assert g.isingle == max(2, int(g.ixl[499]) - 3)
    for j in range(g.isingle):
        assert model[j, 0] == model[j, 1031] == pytest.approx(np.median(truth[j, 399:600]), abs=0.02)
    # rows between isingle and the first gap rise with Karl's fac ** 0.3 from node 2 to node 3
    c = 300
    j = (g.isingle + int(g.ixm1[c])) // 2
    fac = ((j - g.isingle) / (g.ixm1[c] - g.isingle)) ** 0.3
    expect = g.xnodes[1, c] + (g.xnodes[2, c] - g.xnodes[1, c]) * fac
    assert model[j - 1, c] == pytest.approx(expect, rel=1e-5)


def test_vectorised_imgetgap_equals_literal_restatement(synth):
    img, model, g = synth
    cols = (1, 2, 300, 516, 701, 702, 1031, 1032)
    ixl, ixu, m1, m2, isingle, Y, X, image = imgetgap_literal(img, cols)
    np.testing.assert_array_equal(g.ixl, ixl)
    np.testing.assert_array_equal(g.ixu, ixu)
    np.testing.assert_array_equal(g.ixm1, m1)
    np.testing.assert_array_equal(g.ixm2, m2)
    assert g.isingle == isingle
    np.testing.assert_allclose(g.ynodes, Y, rtol=0, atol=1e-4)
    np.testing.assert_allclose(g.xnodes, X, rtol=1e-5, atol=1e-6)
    for c, col in image.items():
        np.testing.assert_allclose(model[:, c - 1], col, rtol=1e-5, atol=1e-6)
    # the blank columns (no fibers): the bottom search keeps the previous column's row and the
    # top search gives nrow, before the 9-column smoothing
    pos, found = ig._first_jump(img[:35])
    assert not found[700:703].any() and found[699]


def test_lin_interp_follows_xlinint():
    x = np.array([1.0, 3.0, 5.0], F32)
    y = np.array([0.0, 2.0, 4.0], F32)
    xp = np.array([0.0, 1.0, 2.0, 4.5, 5.0, 6.0], F32)
    got = ig.lin_interp(xp, x, y)
    prev = F32(0)
    want = []
    for p in xp:
        prev = _xlinint(p, x, y, prev)
        want.append(prev)
    np.testing.assert_allclose(got, want)
    assert got[4] == got[3]                    # xp == x[-1]: the previous value is kept
    # unsorted nodes: the first matching segment wins; xp < x(1) and > x(n) both: y(n)
    x2 = np.array([4.0, 2.0, 6.0], F32)
    y2 = np.array([1.0, 5.0, 9.0], F32)
    xp2 = np.array([1.0, 3.0, 5.0, 7.0], F32)
    prev, want = F32(0), []
    for p in xp2:
        prev = _xlinint(p, x2, y2, prev)
        want.append(prev)
    np.testing.assert_allclose(ig.lin_interp(xp2, x2, y2), want)
    # the power segment (xlinint2's segment 2)
    np.testing.assert_allclose(ig.lin_interp(np.array([2.0], F32), x, y, power_segment=0),
                               [2.0 * 0.5 ** 0.3], rtol=1e-6)


def test_smooth_nodes_equals_smxin():
    rng = np.random.default_rng(3)
    v = (1.0 + 0.01 * np.arange(1032) + 0.1 * rng.standard_normal(1032)).astype(F32)
    v[[5, 400, 401, 1031]] = -666
    np.testing.assert_allclose(ig.smooth_nodes(v, 13), _smxin_literal(v, 13), rtol=1e-6, atol=1e-6)


def test_frame_level_and_normalise():
    rng = np.random.default_rng(1)
    bias = (0.5 * rng.standard_normal((1032, 1032))).astype(F32)
    light = np.full((1032, 1032), 30.0, F32)
    raw = np.empty((1032, 1064), F32)
    raw[:, :1032] = 1500 + bias + light
    raw[:, 1032:] = 1500
    raw = np.rint(raw + 0.01 * rng.standard_normal(raw.shape)).astype(np.uint16)
    ov, central = bg_frames.frame_level(raw, bias)
    assert ov == pytest.approx(1500, abs=0.01)
    assert central == pytest.approx(30.0, abs=0.05)
    frame = raw[:, :1032].astype(F32) - F32(ov) - bias
    scaled = bg_frames.normalise(frame, central)
    assert float(np.median(scaled)) == pytest.approx(25.0, abs=0.05)
    assert not bg_frames.normalise(frame, 0.9).any()          # improcn zeroes frames with xb <= 1


def test_cuts_follow_karls_scripts():
    s = bg_settings.BgSettings()
    assert [s.passes("sci", v) for v in (0.2, 0.21, 2.99, 3.0)] == [False, True, True, False]
    assert [s.passes("bri", v) for v in (2.0, 2.01, 14.9, 15.0)] == [False, True, True, False]
    assert [s.passes("twi", v) for v in (100.0, 100.01, 5000.0)] == [False, True, True]
    assert s.cut_text("twi") == "level > 100" and s.cut_text("sci") == "0.2 < level < 3"
    assert bg_settings.BgSettings.from_config({"twi_lo": 50, "qa": False}).cut("twi") == (50.0, None)
    with pytest.raises(Exception, match="unknown setting"):
        bg_settings.BgSettings.from_config({"sci_low": 1})
    with pytest.raises(Exception, match="sci_lo"):
        bg_settings.BgSettings.from_config({"sci_lo": 4.0})


def test_method_settings():
    assert bg_settings.BgSettings().method == "model"
    s = bg_settings.BgSettings.from_config({"method": "karl", "kernel_core": 2, "kernel_extent": 300})
    assert s.method == "karl" and s.scatter_params() == sc.ScatterParams(kernel_core=2.0, kernel_extent=300.0)
    with pytest.raises(Exception, match="method must be one of model, karl"):
        bg_settings.BgSettings.from_config({"method": "remedy"})
    with pytest.raises(Exception, match="kernel_core > 0"):
        bg_settings.BgSettings.from_config({"kernel_core": 0})


# ------------------------------------------------------------------------------------------
# the scattered-light model on synthetic frames with known traces, kernel and dark

HALO_AMP, DARK = 0.035, 2.0


def trace_rows(cols):
    """(112, len(cols)) 0-based centres: :func:`fiber_rows` bent by up to 2 rows along the columns."""
    cols = np.asarray(cols, float)
    return fiber_rows()[:, None] + 2.0 * ((cols[None, :] - 516) / 516.0) ** 2


def scatter_frame(seed=0, amp=HALO_AMP, dark=DARK, peak=1000.0, noise=0.05, dead=60, flip=False):
    """Fibers on :func:`trace_rows` with the simulator's profile exp(-1/2 |y/2.5|^2.5), throughputs
    0.9-1.1 and one nearly dead fiber (0.05), a spectrum with a deep absorption line at column 300;
    background = dark + amp x (K * fiber light) with the model's default kernel; Gaussian noise.
    ``flip`` turns the rows over (raw orientation of LU and RL). Returns (frame, background)."""
    rng = np.random.default_rng(seed)
    x = np.arange(1032)
    spec = peak * (1 + 0.4 * np.sin(x / 150.0)) * (1 - 0.7 * np.exp(-0.5 * ((x - 300) / 4.0) ** 2))
    ys = trace_rows(x)
    tp = rng.uniform(0.9, 1.1, ys.shape[0])
    tp[dead] = 0.05
    light = np.zeros((1032, 1032))
    for f in range(ys.shape[0]):
        rows = np.arange(int(ys[f].min()) - 12, int(ys[f].min()) + 16)
        prof = np.exp(-0.5 * np.abs((rows[:, None] - ys[f][None, :]) / 2.5) ** 2.5)
        light[rows] += prof * (tp[f] * spec / prof.sum(axis=0))
    if flip:
        light = light[::-1]
    truth = dark + amp * sc.convolve_rows(np.ascontiguousarray(light.T), sc.ScatterParams()).T
    img = light + truth + noise * rng.standard_normal(light.shape)
    return img.astype(F32), truth.astype(F32)


@pytest.fixture(scope="module")
def scatter():
    img, truth = scatter_frame()
    return (img, truth) + sc.scattered_light_model(img)


def test_scattered_light_fit_recovers_known_background(scatter):
    img, truth, model, r = scatter
    assert model.shape == img.shape and model.dtype == np.float32
    assert r.mode == "bins" and np.median(r.bin_snr) > 50
    assert np.median(r.amp) == pytest.approx(HALO_AMP, rel=0.02)
    assert np.median(r.dark) == pytest.approx(DARK, abs=0.05)
    # every pixel (the first ramp rows included), the absorption line's columns too
    rel = np.abs(model - truth) / truth
    assert rel.max() < 0.015 and np.median(rel) < 0.005
    assert np.abs(model[:, 296:305] - truth[:, 296:305]).max() < 0.01 * truth[:, 296:305].min()
    # the gaps and the span of the fibers, from the layout
    ys = trace_rows(r.centres)
    np.testing.assert_allclose(r.gap1, 0.5 * (ys[36] + ys[37]), atol=0.3)
    np.testing.assert_allclose(r.gap2, 0.5 * (ys[74] + ys[75]), atol=0.3)
    np.testing.assert_allclose(r.first, ys[0], atol=0.5)
    np.testing.assert_allclose(r.last, ys[-1], atol=0.5)
    # fitted rows: below the first fiber from row 8, +-1 around the gaps, above the last fiber
    below, g1, g2, above = np.median(r.nfit, axis=0)       # first fiber at 20-22, last at 1003-1005
    assert 2 <= below <= 5 and g1 in (2, 3) and g2 in (2, 3) and 16 <= above <= 19


def test_scattered_light_flipped_frame():
    img, truth = scatter_frame(seed=1, flip=True)
    model, r = sc.scattered_light_model(img)
    assert r.mode == "bins" and np.median(r.amp) == pytest.approx(HALO_AMP, rel=0.02)
    assert np.max(np.abs(model - truth) / truth) < 0.015
    np.testing.assert_allclose(r.gap1, 1031 - 0.5 * (trace_rows(r.centres)[74] + trace_rows(r.centres)[75]),
                               atol=0.3)


def test_scattered_light_faint_and_empty_frames():
    # faint fibers, noisy pixels: a per bin is not significant, one a for the amp is
    img, truth = scatter_frame(seed=2, peak=100.0, noise=1.0)
    model, r = sc.scattered_light_model(img)
    assert r.mode == "amp" and np.median(r.bin_snr) < 5 <= r.amp_snr
    assert np.median(r.amp) == pytest.approx(HALO_AMP, rel=0.1)
    assert np.all(r.amp == r.amp[0])
    assert np.max(np.abs(model - truth) / truth) < 0.06
    # no fibers at all: a constant per column (dark), not an amplitude fitted to the noise
    rng = np.random.default_rng(3)
    img = (DARK + 0.5 * rng.standard_normal((1032, 1032))).astype(F32)
    model, r = sc.scattered_light_model(img)
    assert r.mode == "constant" and not r.amp.any()
    assert np.all(model == model[0]) and np.max(np.abs(model / DARK - 1)) < 0.03


def test_hot_pixels_in_the_edge_columns_do_not_move_the_dark():
    """A hot pixel in the first or last column of a fitted row (demo seed 1: raw column 0 of a
    gap row, ~250 x the dark of a sci combination) is cleaned like any other (the running median
    of an edge column must not count the column itself three times), and the constant mode's
    dark is a robust mean of the fitted rows."""
    rng = np.random.default_rng(4)
    img = (DARK + 0.5 * rng.standard_normal((1032, 1032))).astype(F32)
    img[::7, 0] = 250 * DARK
    img[3::7, -1] = 250 * DARK
    model, r = sc.scattered_light_model(img)
    assert r.mode == "constant"
    assert np.max(np.abs(model / DARK - 1)) < 0.03
    clean = sc.clean_columns(img, sc.ScatterParams())
    assert clean[:, [0, -1]].max() < 2 * DARK


def test_scattered_light_kernel_and_convolution():
    p = sc.ScatterParams()
    k = p.kernel()
    assert k.size == 801 and k.sum() == pytest.approx(1.0) and np.allclose(k, k[::-1])
    s = np.arange(-400, 401)
    np.testing.assert_allclose(k / k[400], 4.0 / (4.0 + np.abs(s)))      # 1/(4 + |s|)
    rng = np.random.default_rng(4)
    light = rng.uniform(0, 10, (3, 1032))
    want = np.stack([np.convolve(v, k, mode="same") for v in light])       # zero beyond the frame
    np.testing.assert_allclose(sc.convolve_rows(light, p), want, rtol=1e-9, atol=1e-12)
    got32 = sc.convolve_rows(light.astype(F32), p)
    assert got32.dtype == np.float32 and np.allclose(got32, want, rtol=1e-4, atol=1e-4)
    # Remedy's power_law c1/(0.5 + c3 |s/sigma|^c4) with c3 = 2, sigma = 1.5, c4 = 1: core 0.375
    remedy = sc.ScatterParams(kernel_core=1.5 * 0.5 / 2, kernel_power=1.0).kernel()
    np.testing.assert_allclose(remedy / remedy[400], 0.5 / (0.5 + 2 * np.abs(s / 1.5)))


def test_trap_columns_do_not_leak_into_the_model(scatter):
    img, truth, model0, _ = scatter
    bad = img.copy()
    bad[400:, 700] += 300.0                       # a charge trap: +300 from row 400 to the end
    bad[500, 100] += 5000.0                       # a hot pixel
    clean = sc.clean_columns(bad, sc.ScatterParams())
    changed = np.argwhere(clean != bad)
    assert set(map(tuple, changed)) <= {(r, 700) for r in range(400, 1032)} | {(500, 100)}
    assert np.abs(clean[400:, 700] - img[400:, 700]).max() < 0.5 * img[400:, 700].max()
    model, r = sc.scattered_light_model(bad)
    assert r.mode == "bins"
    assert np.max(np.abs(model - truth) / truth) < 0.015


# ------------------------------------------------------------------------------------------
# a simulated month

@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """3 nights x IFU slot 053: 3 zro, 2 twi and one science shot (3 exposures) a night, reduced
    with tarlist, bias and bgmodel (every kind, through the CLI)."""
    import time

    from hetred.bias.run import run_bias
    from hetred.bias.settings import BiasSettings
    from hetred.layout import Layout
    from hetred.lists.tarlist import run_tarlist
    from hetred.sim import FrameCounts, simulate_archive

    root = tmp_path_factory.mktemp("bgmonth")
    lay = Layout(root / "raw", root / "red", root / "truth")
    counts = FrameCounts(zro=3, drk=0, flt=0, hg=0, cd=0, twi=2, shots=1)
    simulate_archive(lay, nights=NIGHTS, ifuslots=[SLOT], frames=counts, seed=SEED)
    run_tarlist(lay, MONTH)
    for amp in AMPS:
        run_bias(lay, MONTH, SLOT, amp, BiasSettings(qa=False))
    t0 = time.perf_counter()
    res = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "bgmodel", MONTH])
    return {"layout": lay, "counts": counts, "result": res, "seconds": time.perf_counter() - t0}


def _marker(lay, amp, kind):
    return json.loads(lay.path("marker_done", stage="bgmodel",
                               unit=bg.unit_id(MONTH, SLOT, amp, kind)).read_text())


def _products(lay, amp, kind, specid):
    f = dict(month=MONTH, bgkind=kind, specid=specid, ifuslot=SLOT, amp=amp)
    return lay.path("bgmodel", **f), lay.path("bgcombined", **f)


def test_month_runs_and_bri_is_empty_in_a_dark_month(month):
    """The simulator's sky is dark time (it has no moon: every science frame's level is 0.5-0.8,
    below the bri cut 2 < level < 15), so a simulated month is a dark month: its bri units have
    nothing to do. They are *empty*, not failed: shown as such, an empty marker with the levels
    seen, and exit 0 (issue 11 point 2)."""
    res, lay = month["result"], month["layout"]
    assert res.exit_code == 0, res.output
    assert not [ln for ln in res.output.splitlines() if ln.startswith("hetred: error:")]
    assert "4 empty unit(s): nothing to do in the data, not a failure" in res.output
    rows = [ln for ln in res.output.splitlines() if "_bri" in ln and "│" in ln]
    assert len(rows) == 4 and all(ln.rstrip(" │").endswith("empty") for ln in rows), res.output
    for amp in AMPS:
        uid = bg.unit_id(MONTH, SLOT, amp, "bri")
        assert not lay.path("marker_failed", stage="bgmodel", unit=uid).exists()
        assert not lay.path("marker_done", stage="bgmodel", unit=uid).exists()
        empty = json.loads(lay.path("marker_empty", stage="bgmodel", unit=uid).read_text())
        assert empty["status"] == "empty"
        assert empty["reason"].startswith(f"no bri frames with 2 < level < 15 for 053{amp} in 201801 (9 read, levels 0.")
        c = empty["counts"]
        assert c["read"] == 9 and c["used"] == 0 and 0.3 < c["levels"][0] <= c["levels"][1] < 2
        assert len(c["frames"]) == 9
        # a rerun re-evaluates it when its inputs change: the tarlist and the master biases
        assert str(lay.path("tarlist", month=MONTH)) in empty["depends"]
        assert any("masterbias_" in p for p in empty["depends"])
        for kind in ("sci", "twi"):
            m = _marker(lay, amp, kind)
            assert m["counts"]["used"] >= 3
            model_p, cmb_p = _products(lay, amp, kind, m["counts"]["specid"])
            for p in (model_p, cmb_p):
                with fits.open(p) as hdul:
                    h, data = hdul[0].header, hdul[0].data
                    assert data.shape == (1032, 1032) and data.dtype == np.dtype(">f4")
                    assert h["NFRAMES"] == m["counts"]["used"] and h["BGKIND"] == kind
                    assert h["ORIENT"] == "RAW" and h["XNORM"] == 25 and h["HETREDV"]
                    assert sum("input " in str(c) for c in h["HISTORY"]) == h["NFRAMES"]
            qa = lay.path("qa", stage="bgmodel", name=f"{bg.unit_id(MONTH, SLOT, amp, kind)}.png")
            assert qa.read_bytes()[:4] == b"\x89PNG"
            # the default method: the scattered-light model
            h = fits.getheader(model_p)
            sm = m["counts"]["scatter"]
            assert h["BGMETHOD"] == m["counts"]["method"] == "model"
            assert h["BGFIT"] == sm["mode"] == ("bins" if kind == "twi" else "amp")
            assert h["KCORE"] == 4 and h["KPOWER"] == 1 and h["KEXTENT"] == 400
            assert 0.02 < h["SLAMP"] == sm["amp_median"] < 0.05       # the simulator's 3-4 %
            assert 300 < h["ROWGAP1"] < h["ROWGAP2"] < 750 and "ISINGLE" not in h
    twi = _marker(lay, "LL", "twi")["counts"]
    assert all(f["level"] > 100 for f in twi["frames"] if f["verdict"] == "used")
    assert all(f["level"] <= 100 for f in twi["frames"] if f["verdict"] == "outside_cut")


@pytest.fixture(scope="module")
def recovery(month):
    from hetred.sim import plan_archive
    from hetred.sim.bgtruth import BackgroundTruth
    from hetred.sim.bgtruth import recovery as _recovery

    lay = month["layout"]
    bgt = BackgroundTruth(plan_archive(nights=NIGHTS, ifuslots=[SLOT], frames=month["counts"], seed=SEED))
    night = json.loads(lay.path("truth_night", night=NIGHTS[:8]).read_text())
    table = {}
    for amp in AMPS:
        gain = night["amps"][f"{SLOT:03d}{amp}"]["gain_true"]
        for kind in ("sci", "twi"):
            counts = _marker(lay, amp, kind)["counts"]
            model_p, cmb_p = _products(lay, amp, kind, counts["specid"])
            model, cmb = fits.getdata(model_p).astype(F32), fits.getdata(cmb_p).astype(F32)
            karl, g = ig.background_model(cmb)
            truth = bgt.combined(SLOT, amp, counts["frames"])
            level = float(np.median([f["level"] for f in counts["frames"] if f["verdict"] == "used"]))
            one_e = 1.0 / gain / level               # 1 e- in ADU at level 25
            table[(amp, kind)] = {"one_e": one_e, "model": _recovery(model, truth, g, one_e),
                                  "karl": _recovery(karl, truth, g, one_e)}
    for method in ("model", "karl"):
        lines = ["amp kind   1e-  | region: truth median_rel max|rel| within(10%,1e-)"]
        for (amp, kind), v in table.items():
            regs = "  ".join(f"{n} {r['truth']:.2f} {r['median_rel']:+.3f} {r['max_abs_rel']:.3f} "
                             f"{r['within']:.2f}" for n, r in v[method].items())
            lines.append(f"{amp} {kind} {v['one_e']:.3f} | {regs}")
        print(f"\nbgmodel recovery of the simulated background, method {method}\n" + "\n".join(lines))
    return table


def test_recovery_of_the_simulated_background(recovery):
    """What Karl's algorithm (``method="karl"``, imgetgap on the same combined frames) achieves on
    the simulator (docs/stages/bgmodel.md, "Accuracy").

    sci: the background is ~1 e- a pixel, so the 1 e- floor applies: every region within
    max(10 %, 1 e-) in >= 90 % of the column bins. twi (~100 e-): above the last fiber within
    10 %; the 9-row gap windows take in the wings of the fibers next to the gap (the simulated
    profile, Panacea's exp(-|y/2.5|^2.5 / 2), is at 9 % of its peak 4.7 px from the centre),
    so the gap levels and the model between them come out high; the top block, interpolated
    down to the level above the last fiber, comes out low.
    """
    for (amp, kind), v in recovery.items():
        r = v["karl"]
        if kind == "sci":
            for name, x in r.items():
                assert x["within"] >= 0.9, (amp, kind, name, x)
            continue
        assert abs(r["above"]["median_rel"]) < 0.05 and r["above"]["within"] >= 0.9, (amp, r["above"])
        for name in ("gap1", "gap2"):
            assert 0.0 < r[name]["median_rel"] < 0.6, (amp, name, r[name])
        for name in ("block1", "block2"):
            assert abs(r[name]["median_rel"]) < 0.25, (amp, name, r[name])
        assert -0.4 < r["block3"]["median_rel"] < 0.0, (amp, r["block3"])
        assert 0.0 < r["below"]["median_rel"] < 0.35, (amp, r["below"])


def test_recovery_within_ten_percent_everywhere(recovery):
    """The acceptance target, met by the default method (the scattered-light model written by the
    month's run): every region of every amp and kind within max(10 %, 1 e-) in every column bin.
    (Karl's method misses it on the twilights: test_recovery_of_the_simulated_background.)"""
    for (amp, kind), v in recovery.items():
        for name, x in v["model"].items():
            assert x["within"] == 1.0, (amp, kind, name, x)
        if kind == "twi":                 # ~100 e- of background: 10 % itself, no 1 e- floor
            for name, x in v["model"].items():
                assert x["max_abs_rel"] < 0.1 and abs(x["median_rel"]) < 0.05, (amp, kind, name, x)


def test_empty_unit_is_kept_until_its_inputs_change(month, tmp_path):
    """A rerun keeps an empty unit (not re-read, exit 0) while the tarlist and master biases are
    unchanged, and re-evaluates it when one of them changes."""
    import os
    import shutil

    from hetred.layout import Layout

    lay0 = month["layout"]
    shutil.copytree(lay0.red, tmp_path / "red", ignore=shutil.ignore_patterns("*.png", "*.fits"))
    for p in lay0.red.rglob("masterbias_*.fits"):       # the master biases only (not the models)
        q = tmp_path / "red" / p.relative_to(lay0.red)
        shutil.copy2(p, q)
    lay = Layout(lay0.raw, tmp_path / "red")
    # the copied markers name the fixture's files: rewrite their paths into this tree
    for m in lay.red.rglob("*.json"):
        m.write_text(m.read_text().replace(str(lay0.red), str(lay.red)))
    marker = lay.path("marker_empty", stage="bgmodel", unit=bg.unit_id(MONTH, SLOT, "LL", "bri"))
    args = ["--raw", str(lay.raw), "--red", str(lay.red), "bgmodel", MONTH, "--amp", "LL", "--kind", "bri"]
    before = marker.stat().st_mtime_ns
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and "empty" in res.output, res.output
    assert marker.stat().st_mtime_ns == before                 # kept: nothing re-read
    tarlist = lay.path("tarlist", month=MONTH)
    st = tarlist.stat()
    os.utime(tarlist, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))   # the tarlist rewritten
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and "empty" in res.output, res.output
    assert marker.stat().st_mtime_ns != before                 # re-evaluated: still empty
    assert json.loads(marker.read_text())["depends"][str(tarlist)] == [st.st_size, st.st_mtime_ns + 10**9]


def test_rerun_is_idempotent_and_overwrite_redoes(month):
    lay = month["layout"]
    args = ["--raw", str(lay.raw), "--red", str(lay.red), "bgmodel", MONTH, "--amp", "RL", "--kind", "sci"]
    model_p, _ = _products(lay, "RL", "sci", _marker(lay, "RL", "sci")["counts"]["specid"])
    mtime, data = model_p.stat().st_mtime_ns, fits.getdata(model_p)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and "already done" in res.output and "skipped" in res.output
    assert model_p.stat().st_mtime_ns == mtime
    res = CliRunner().invoke(cli, ["-q"] + args + ["--overwrite"])
    assert res.exit_code == 0, res.output
    assert model_p.stat().st_mtime_ns != mtime
    np.testing.assert_array_equal(fits.getdata(model_p), data)


def test_banding_does_not_matter(month):
    from hetred.io.framestack import FrameStack

    lay = month["layout"]
    entries = bg_frames.month_index(lay, MONTH)[(SLOT, "LU", "twi")]
    s_small, s_big = bg_settings.BgSettings(band_mib=0.05), bg_settings.BgSettings(band_mib=512)
    with FrameStack() as st:
        recs, biases = bg_frames.read_frames(lay, MONTH, "LU", "twi", entries, st, s_small)
        used = [r for r in recs if r.verdict == "used"]
        a = bg_frames.combine_frames(st, used, biases, s_small)
        b = bg_frames.combine_frames(st, used, biases, s_big)
    np.testing.assert_array_equal(a, b)
    _, cmb_p = _products(lay, "LU", "twi", used[0].specid)
    np.testing.assert_array_equal(fits.getdata(cmb_p), a)


def test_missing_master_bias_fails_with_one_line(month, tmp_path):
    from hetred.layout import Layout

    lay = Layout(month["layout"].raw, tmp_path / "red")
    res = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "bgmodel", MONTH,
                                   "--amp", "LL", "--kind", "twi"])
    assert res.exit_code == 1
    errors = [ln for ln in res.output.splitlines() if ln.startswith("hetred: error:")]
    assert len(errors) == 1
    assert "no twi frames with level > 100 for 053LL in 201801" in errors[0]
    assert "6 no_masterbias" in errors[0] and "run hetred bias 201801" in errors[0]


def test_dry_run_writes_nothing(month, tmp_path):
    lay = month["layout"]
    red = tmp_path / "red"
    red.mkdir()
    (red / "tarlists").mkdir()
    (red / "tarlists" / f"{MONTH}tarlist").write_text(lay.path("tarlist", month=MONTH).read_text())
    before = sorted(p for p in red.rglob("*"))
    res = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(red), "bgmodel", MONTH, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "201801_053_RU_twi: 6 twi frames, keep level > 100, method model, to do" in res.output
    assert "back_" in res.output and "would write" in res.output
    assert sorted(p for p in red.rglob("*")) == before


def test_karl_method_from_cli_and_config(month, tmp_path):
    """--method karl and [stages.bgmodel] method = "karl" write Karl's imgetgap model under the
    same product names; a unit done with the other method is redone, one done with the same is
    skipped; the command line wins over the config file."""
    import shutil

    from hetred.layout import Layout

    lay0 = month["layout"]
    shutil.copytree(lay0.red, tmp_path / "red", ignore=shutil.ignore_patterns("*.png"))
    lay = Layout(lay0.raw, tmp_path / "red")
    base = ["--raw", str(lay.raw), "--red", str(lay.red)]
    one = ["bgmodel", MONTH, "--amp", "LL", "--kind", "twi"]
    res = CliRunner().invoke(cli, base + one + ["--method", "karl"])
    assert res.exit_code == 0, res.output
    assert "201801_053_LL_twi: done with method model, redoing with karl" in res.output
    m = _marker(lay, "LL", "twi")
    assert m["counts"]["method"] == "karl" and len(m["counts"]["node_medians"]) == 5
    model_p, cmb_p = _products(lay, "LL", "twi", m["counts"]["specid"])
    h = fits.getheader(model_p)
    assert h["BGMETHOD"] == "karl" and "ISINGLE" in h and "KCORE" not in h
    np.testing.assert_array_equal(fits.getdata(model_p), ig.background_model(fits.getdata(cmb_p))[0])
    res = CliRunner().invoke(cli, base + one + ["--method", "karl"])
    assert res.exit_code == 0 and "already done" in res.output and "redoing" not in res.output
    res = CliRunner().invoke(cli, base + one + ["--dry-run"])
    assert "method model, done with method karl (would redo)" in res.output
    # the config file's method; --method overrides it
    cfg = tmp_path / "hetred.toml"
    cfg.write_text('[stages.bgmodel]\nmethod = "karl"\nqa = false\n')
    lu = ["bgmodel", MONTH, "--amp", "LU", "--kind", "twi"]
    res = CliRunner().invoke(cli, ["--config", str(cfg)] + base + lu)
    assert res.exit_code == 0, res.output
    model_p, _ = _products(lay, "LU", "twi", _marker(lay, "LU", "twi")["counts"]["specid"])
    assert fits.getheader(model_p)["BGMETHOD"] == "karl"
    res = CliRunner().invoke(cli, ["--config", str(cfg)] + base + lu + ["--method", "model"])
    assert res.exit_code == 0, res.output
    assert fits.getheader(model_p)["BGMETHOD"] == "model"
    orig_p, _ = _products(lay0, "LU", "twi", _marker(lay0, "LU", "twi")["counts"]["specid"])
    np.testing.assert_array_equal(fits.getdata(model_p), fits.getdata(orig_p))
    cfg.write_text('[stages.bgmodel]\nmethod = "imgetgap"\n')
    res = CliRunner().invoke(cli, ["--config", str(cfg)] + base + lu)
    assert res.exit_code != 0 and "method must be one of model, karl" in str(res.exception)


def test_timing_per_unit(month):
    lay = month["layout"]
    secs = {(a, k): _marker(lay, a, k)["seconds"] for a in AMPS for k in ("sci", "twi")}
    model = {(a, k): _marker(lay, a, k)["counts"]["timings"]["model"] for a in AMPS for k in ("sci", "twi")}
    print("\nbgmodel seconds per unit: " + ", ".join(f"{a}_{k} {s:.2f}" for (a, k), s in secs.items())
          + f"; whole month (12 units, CLI) {month['seconds']:.1f} s"
          + "\n  of which the scattered-light model: "
          + ", ".join(f"{a}_{k} {s:.2f}" for (a, k), s in model.items()))
    assert all(s > 0 for s in secs.values())     # timings are reported, never asserted (rule 8)


def test_qa_plot_has_readable_ticks_and_the_model_in_view():
    """The QA figure of a sci-like unit (fiber light ~10x the background): every panel has at
    least 4 labelled ticks inside its range, and the zoomed panels show the model inside the
    middle of their height (it was on the bottom edge of a symlog axis with one tick)."""
    from hetred.background.model import ModelInfo
    from hetred.background.products import qa_figure

    rows = np.arange(1032, dtype=np.float32)[:, None]
    model = np.broadcast_to(1.2 + 0.4 * np.sin(np.pi * rows / 1032), (1032, 1032)).astype(np.float32)
    fibers = 18.0 * (0.5 + 0.5 * np.cos(2 * np.pi * rows / 8.6)) ** 4
    fibers[(rows[:, 0] < 15) | (np.abs(rows[:, 0] - 340) < 6) | (np.abs(rows[:, 0] - 680) < 6)
           | (rows[:, 0] > 1015)] = 0.0
    rng = np.random.default_rng(3)
    combined = (model + fibers + rng.normal(0, 0.8, (1032, 1032))).astype(np.float32)
    marks = np.array([[15], [340], [680], [1015]]) * np.ones((1, 1032), int)
    info = ModelInfo("model", [], marks, "dotted: first fiber, gaps, last fiber", {}, None)
    fig = qa_figure("201801_053_LL_sci", combined, model, info, "3 sci frames")
    axes = fig.get_axes()
    assert len(axes) == 6
    for ax in axes:
        y0, y1 = ax.get_ylim()
        ticks = [t for t in ax.get_yticks() if y0 <= t <= y1]
        assert len(ticks) >= 4, (ax.get_title(), ticks, (y0, y1))
        assert ax.get_yscale() == "linear"
    for ax in axes[1::2]:                     # the zoomed panels (bottom row)
        y0, y1 = ax.get_ylim()
        line = next(ln for ln in ax.get_lines() if ln.get_color() == "red")
        y = np.asarray(line.get_ydata())
        assert y0 + 0.2 * (y1 - y0) < y.min() and y.max() < y1 - 0.1 * (y1 - y0)
