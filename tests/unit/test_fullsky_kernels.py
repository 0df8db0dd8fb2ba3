"""The kernels of ``hetred fullsky`` (hetred._ext.fullsky) against their NumPy references."""
from __future__ import annotations

import numpy as np
import pytest

from hetred._ext import reference_fullsky as R
from hetred._ext.fullsky import grid_chi2, master_runs, segment_biweights, sort_by_wave


@pytest.mark.parametrize("n,ns", [(0, 5), (1, 3), (2, 21), (21, 21), (22, 21), (23, 21), (5000, 21), (999, 1000),
                                  (1000, 1000), (1001, 1000), (2002, 1000), (20003, 1000)])
def test_master_runs_equals_reference(n, ns):
    rng = np.random.default_rng(n + ns)
    w = np.sort(rng.uniform(3500, 5500, n)).astype(np.float32)
    v = (100 + 20 * np.sin(w / 7.0) + rng.normal(0, 5, n)).astype(np.float32)
    v[::13] = np.round(v[::13])                 # ties
    wm, xm = master_runs(w, v, ns)
    rw, rx = R.master_runs_reference(w, v, ns)
    assert len(wm) == (n + ns - 1) // ns if n else len(wm) == 0
    np.testing.assert_array_equal(xm, rx)      # Karl's biweight, the same bits
    np.testing.assert_allclose(wm, rw, rtol=0, atol=1e-9)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 115_584, 300_001])
def test_sort_by_wave_equals_numpys_stable_argsort(n):
    """sort2: the radix sort gives NumPy's stable order, ties in input order; negative wavelengths,
    +-0.0, infinities and NaN (last) sorted as NumPy does."""
    rng = np.random.default_rng(n)
    w = rng.uniform(3500, 5500, n).astype(np.float32)
    if n > 20:
        w[rng.integers(0, n, n // 10)] = np.float32(4358.25)     # ties
        w[rng.integers(0, n, n // 10)] = np.round(w[rng.integers(0, n, n // 10)])
        w[:7] = [-1.0, -0.0, 0.0, np.nan, np.inf, -np.inf, 1e-30]
    v = rng.normal(size=n).astype(np.float32)
    ws, vs, order = sort_by_wave(w, v, True)
    rw, rv, ro = R.sort_by_wave_reference(w, v)
    np.testing.assert_array_equal(order, ro)
    np.testing.assert_array_equal(vs, rv)
    np.testing.assert_array_equal(ws, rw)                           # NaN == NaN here
    w2, v2, o2 = sort_by_wave(w, v)
    assert o2 is None and np.array_equal(w2, ws, equal_nan=True) and np.array_equal(v2, vs)


def test_master_runs_share_one_point():
    """smooth3: run k holds points k ns .. k ns + ns (ns + 1 points), the last run what is left."""
    w = np.arange(10, dtype=np.float32)
    wm, _ = master_runs(w, np.ones(10, np.float32), 3)
    np.testing.assert_allclose(wm, [1.5, 4.5, 7.5, 9.0])


def test_grid_chi2_equals_reference_and_finds_a_shift():
    rng = np.random.default_rng(3)
    wm = np.linspace(3480, 5530, 20000)
    line = lambda x, c, s, a: a * np.exp(-0.5 * ((x - c) / s) ** 2)
    sky = lambda x: 100 + line(x, 4358.3, 2.3, 80) + line(x, 5460.7, 2.3, 150) + line(x, 4046.6, 2.3, 30)
    xm = sky(wm).astype(np.float32)
    x2 = np.sort(rng.uniform(3500, 5500, 5000))
    w0, w1 = 0.3, 0.2e-3
    y2 = (1.02 * sky(x2 + w0 + w1 * (4500 - x2)) + rng.normal(0, 1, x2.size)).astype(np.float32)
    w0s, w1s = np.linspace(-1, 1, 25), np.linspace(-0.4e-3, 0.4e-3, 11)
    got = grid_chi2(x2, y2, wm, xm, 1.02, w0s, w1s, 4500.0, 5455.0, 5472.0, 5.0)
    ref = R.grid_chi2_reference(x2, y2, wm, xm, 1.02, w0s, w1s, 4500.0, 5455.0, 5472.0, 5.0)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    a, b = np.unravel_index(np.argmin(got), got.shape)
    assert abs(w0s[b] - w0) <= 0.05 and abs(w1s[a] - w1) <= 0.05e-3
    # points beyond the master's ends meet 0 (xlinint2)
    far = grid_chi2(np.array([6000.0]), np.array([7.0], np.float32), wm, xm, 1.0, np.zeros(1), np.zeros(1),
                    4500.0, 5455.0, 5472.0, 5.0)
    assert far[0, 0] == pytest.approx(49.0)


def test_segment_biweights_equals_reference():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 10, (112, 1032)).astype(np.float32)
    x[5, 200:300] = 0
    x[:, 10] = 0
    use = rng.random(112) > 0.15
    use[:7] = False
    segs = [x[:, 99:400], x[:, 399:700], x[:, 699:1000]]
    srt = np.stack([np.sort(s, axis=1) for s in segs])
    loc, have = segment_biweights(srt, np.array([301] * 3, np.int64), use.astype(np.uint8), 3)
    rloc, rhave = R.segment_biweights_reference(segs, use, 3)
    np.testing.assert_array_equal(have, rhave)
    np.testing.assert_array_equal(loc[:, have], rloc[:, rhave])
    assert not have[:3].any()                  # fibers 0-2: neighbours 0-6 not in use
