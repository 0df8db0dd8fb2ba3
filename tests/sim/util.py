"""Small measurement helpers for the simulator tests (independent of the simulator's code)."""
from __future__ import annotations

import numpy as np


def refine_centroid(prof: np.ndarray, y: float, half: float = 2.5, iterations: int = 12) -> float:
    """Centroid of ``prof`` in a window of +-half around y (fractional edge pixels), iterated."""
    rows = np.arange(prof.size, dtype=float)
    for _ in range(iterations):
        w = np.clip(np.minimum(rows + 0.5, y + half) - np.maximum(rows - 0.5, y - half), 0.0, 1.0)
        y = float((w * prof * rows).sum() / (w * prof).sum())
    return y


def find_peaks(prof: np.ndarray, frac: float = 0.2) -> np.ndarray:
    """Local maxima above frac x the 99th percentile, each refined by :func:`refine_centroid`."""
    thresh = frac * np.percentile(prof, 99)
    i = np.nonzero((prof[1:-1] > prof[:-2]) & (prof[1:-1] >= prof[2:]) & (prof[1:-1] > thresh))[0] + 1
    return np.array([refine_centroid(prof, float(y)) for y in i])


def extract(img: np.ndarray, trace: np.ndarray, half: float = 4.0) -> np.ndarray:
    """(112, ncols) sums of ``img`` rows within +-half of each fiber's trace (fractional edges)."""
    out = np.zeros(trace.shape)
    for f, t in enumerate(trace):
        lo = max(int(np.floor(t.min() - half)) - 1, 0)
        hi = min(int(np.ceil(t.max() + half)) + 2, img.shape[0])
        rows = np.arange(lo, hi, dtype=float)[:, None]
        w = np.clip(np.minimum(rows + 0.5, t + half) - np.maximum(rows - 0.5, t - half), 0.0, 1.0)
        out[f] = (w * img[lo:hi]).sum(axis=0)
    return out
