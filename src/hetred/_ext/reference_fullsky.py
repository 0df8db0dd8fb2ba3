"""NumPy references of the ``hetred._ext.fullsky`` kernels (tests compare; benchmarks time both).

Written for clarity, one run / one grid point at a time, following karlspipe hdr2.1 vred3.f:
``smooth3`` (runs of ns + 1 points, biweight) and the W0/W1 search with ``xlinint2`` (linear
interpolation, 0 outside the master's wavelengths).
"""
from __future__ import annotations

import numpy as np

from hetred.stats import biweight


def sort_by_wave_reference(wave: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wavelengths, values, order): NumPy's stable argsort of the wavelengths (vred3's ``sort2``)."""
    w = np.asarray(wave, np.float32)
    order = np.argsort(w, kind="stable")
    return w[order], np.asarray(value, np.float32)[order], order


def master_runs_reference(wave: np.ndarray, value: np.ndarray, ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean wavelength float64, biweight float32) of runs i .. min(n - 1, i + ns), i = 0, ns, ..."""
    w = np.asarray(wave, np.float32)
    v = np.asarray(value, np.float32)
    n = w.size
    wm, xm = [], []
    for i in range(0, n, ns):
        j = min(n - 1, i + ns)
        wm.append(float(np.mean(w[i:j + 1].astype(np.float64))))
        xm.append(biweight(v[i:j + 1])[0])
    return np.asarray(wm, np.float64), np.asarray(xm, np.float32)


def interp0(xq: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``xlinint2``: y at xq, linear between the points (x increasing), 0 outside [x[0], x[-1]]."""
    if len(x) < 2:
        return np.zeros(np.shape(xq))
    return np.interp(xq, x, np.asarray(y, np.float64), left=0.0, right=0.0)


def grid_chi2_reference(x2, y2, wm, xm, xb, w0s, w1s, pivot, hg_lo, hg_hi, hg_weight) -> np.ndarray:
    """(len(w1s), len(w0s)): sum of (y2 - xb master(lambda'))^2 + hg_weight x the same inside
    (hg_lo, hg_hi), lambda' = x2 + W0 + W1 (pivot - x2)."""
    x2 = np.asarray(x2, np.float64)
    y2 = np.asarray(y2, np.float64)
    out = np.zeros((len(w1s), len(w0s)))
    for a, w1 in enumerate(w1s):
        for b, w0 in enumerate(w0s):
            wt = x2 + w0
            wt = wt + w1 * (pivot - x2)
            d = (y2 - interp0(wt, wm, xm) * xb) ** 2
            out[a, b] = d.sum() + hg_weight * d[(wt > hg_lo) & (wt < hg_hi)].sum()
    return out


def segment_biweights_reference(segs: list[np.ndarray], use: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """``getback``'s biweights: segs[q] is (nfib, width_q); for fiber j the biweight of the rows t
    with 0 < |t - j| <= half and use[t], all values of segment q together."""
    nfib = segs[0].shape[0]
    loc = np.full((len(segs), nfib), -666.0, np.float32)
    have = np.zeros(nfib, bool)
    for j in range(nfib):
        nb = [t for t in range(max(0, j - half), min(nfib, j + half + 1)) if t != j and use[t]]
        if not nb:
            continue
        have[j] = True
        for q, seg in enumerate(segs):
            loc[q, j] = biweight(np.asarray(seg[nb], np.float32).ravel())[0]
    return loc, have
