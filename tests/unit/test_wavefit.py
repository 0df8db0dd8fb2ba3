"""The wavelength model fitted to arc lines (hetred.twical.wavefit) and its edge behaviour (issue 11).

Synthetic lines: every fiber's true solution is a quadratic in the column whose zero point, tilt
and curvature steepen toward one slit edge (exponential over 3 fibers) -- what a global
polynomial across the slit cannot follow and what pulled hetred's edge fibers by up to 0.7 Å.
"""
from __future__ import annotations

import numpy as np
import pytest

from hetred.twical import wavefit as WF
from hetred.twical.arclines import ALL_LINES

NFIB = 112
COLS = np.arange(1032, dtype=float)
LINES = np.array(ALL_LINES)


def edge_truth() -> np.ndarray:
    """(112, 3) polynomial coefficients c0 + c1 x + c2 x^2 steepening toward fiber 111."""
    s = np.linspace(-1, 1, NFIB)
    edge = np.exp(-(1 - s) / (3 * 2 / 111))
    c0 = 3492.0 + 1.5 * s + 2.0 * edge
    c1 = 2.025 * (1 + 0.001 * s - 0.003 * edge)
    c2 = -6.46e-5 * (1 + 0.01 * edge)
    return np.stack([c0, c1, c2], 1)


def line_columns(coef: np.ndarray) -> np.ndarray:
    out = np.empty((coef.shape[0], LINES.size))
    for f, (c0, c1, c2) in enumerate(coef):
        for j, lam in enumerate(LINES):
            out[f, j] = (-c1 + np.sqrt(c1 * c1 - 4 * c2 * (c0 - lam))) / (2 * c2)
    return out


def truth_wave(coef: np.ndarray) -> np.ndarray:
    return coef[:, :1] + coef[:, 1:2] * COLS + coef[:, 2:3] * COLS ** 2


def fit(x, cand=None, err=None, **kw):
    cand = np.ones(x.shape, bool) if cand is None else cand
    err = np.full(x.shape, 0.005) if err is None else err
    return WF.fit_lines(x, LINES, err, cand, np.ones(NFIB, bool), WF.fiber_coord(None, NFIB), **kw)


def test_edge_fibers_follow_their_own_lines():
    coef = edge_truth()
    x = line_columns(coef)
    res = fit(x)
    err = np.abs(res.evaluate() - truth_wave(coef)).max(axis=1)
    assert err.max() < 1e-6                        # exact data, exact model: every fiber exact
    assert np.all(res.order == 2)
    # a global cubic across the slit (the former shape) cannot follow the edge
    s = WF.fiber_coord(None, NFIB)
    old = np.polynomial.legendre.legval(s, np.polynomial.legendre.legfit(s, coef[:, 1], 3))
    assert np.abs(old - coef[:, 1])[-4:].max() * 516 > 0.05


def test_noise_does_not_pull_the_edges():
    rng = np.random.default_rng(4)
    coef = edge_truth()
    x = line_columns(coef) + rng.normal(0, 0.005, (NFIB, LINES.size))     # 0.005 px ~ 0.01 Å
    res = fit(x, err=np.full(x.shape, 0.01))
    rms = np.sqrt(np.mean((res.evaluate() - truth_wave(coef)) ** 2, axis=1))
    assert np.median(rms) < 0.012 and rms.max() < 0.03
    assert rms[-4:].max() < 0.03 and rms[:4].max() < 0.03


def test_few_lines_take_the_local_trend():
    coef = edge_truth()
    x = line_columns(coef)
    cand = np.ones(x.shape, bool)
    cand[109, [0, 1, 6, 7]] = False        # 4 lines in the middle: zero point and tilt only
    cand[60, 2:] = False                   # 2 lines: zero point from the neighbours
    res = fit(x, cand=cand)
    assert res.order[109] == 1 and res.order[60] == -1 and res.order[108] == 2
    err = np.sqrt(np.mean((res.evaluate() - truth_wave(coef)) ** 2, axis=1))
    assert err[109] < 0.02                 # curvature extrapolated along the edge trend
    assert err[60] < 0.01


def test_bad_line_is_clipped():
    coef = edge_truth()
    x = line_columns(coef)
    x[110, 3] += 0.5                       # a line 1 Å off on an edge fiber
    res = fit(x, err=np.full(x.shape, 0.005))
    assert not res.used[110, 3] and res.used.sum() == x.size - 1
    assert np.abs(res.evaluate()[110] - truth_wave(coef)[110]).max() < 1e-4


@pytest.mark.parametrize("width", [2.0, 5.0])
def test_local_trend_extrapolates_edges(width):
    f = np.arange(NFIB, dtype=float)
    v = 0.1 * f / 111 + 0.4 * np.exp(-(111 - f) / width)
    have = np.ones(NFIB, bool)
    have[-1] = False                       # the last fiber is extrapolated from its neighbours
    t = WF.local_trend(f, v, have, k=4)
    running = np.array([v[max(0, i - 6):i + 7][have[max(0, i - 6):i + 7]].mean() for i in range(NFIB)])
    assert abs(t[-1] - v[-1]) < 0.5 * abs(running[-1] - v[-1])
    assert np.abs(t[:60] - v[:60]).max() < 1e-4


def test_odd_end_line_found_through_the_neighbours():
    """An end line 0.1 Å off is half absorbed by the fiber's own curvature (its residual is no
    larger than its neighbour's); the neighbours' curvature shows which line it is."""
    rng = np.random.default_rng(8)
    coef = edge_truth()
    x = line_columns(coef) + rng.normal(0, 0.007, (NFIB, LINES.size))
    x[40, 0] -= 0.047                                  # 3610 Å, 0.094 Å
    res = fit(x, err=np.full(x.shape, 0.04))            # errors 10x overestimated, as sys_px does
    assert not res.used[40, 0] and res.used[40, 1:].all()
    rms = np.sqrt(np.mean((res.evaluate() - truth_wave(coef)) ** 2, axis=1))
    assert rms[40] < 0.02
    assert res.used[np.arange(NFIB) != 40].all()       # nothing else dropped, edges included
