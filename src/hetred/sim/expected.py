"""Expected errors of noise-limited products, for truth checks (tests and ``hetred demo``).

A product made from a few noisy frames differs from the truth by at least its noise; a check
with a fixed tolerance near that noise passes or fails with the seed. These functions compute
what a product's error should be from the truth and the noise the simulator put in, so a check
can compare the measured error with it. Reduction code never imports this module.

* :func:`masterbias_expected_rms`: the master bias (Karl's per-pixel biweight of n zero frames,
  then imbox2's 1 x 7 biweight box) against the truth bias structure. The chain is run on
  Monte Carlo stacks of the truth structure plus Gaussian read noise (every ``column_step``-th
  column: the box runs along the rows only, so columns are independent); the error per row is
  the rms over those columns and realisations. It holds the noise (0.108 x read noise for 20
  frames) and what the 1 x 7 box does to the readout ramp of the first rows (1-2 ADU rms over
  rows 1-9, Karl's algorithm: his overscan region starts at row 10).
"""
from __future__ import annotations

import numpy as np

QUANTISATION_VAR = 1.0 / 12.0     #: ADU^2: rounding to integer ADU


def masterbias_expected_rms(structure: np.ndarray, sigma_adu: float, nframes: int,
                            good: np.ndarray | None = None, realisations: int = 4,
                            column_step: int = 8, seed: int = 0) -> float:
    """Expected rms (ADU) of master bias - ``structure`` over the ``good`` pixels.

    structure: (nrow, ncol) truth bias structure of the trimmed frame (ADU, overscan level
    removed); sigma_adu: read noise per frame (ADU, true read noise / true gain; the rounding
    to integer ADU is added); nframes: zero frames combined; good: bool (nrow, ncol), pixels
    compared (default all). Deterministic for a given ``seed``.
    """
    from hetred.bias.masterbias import box_filter_1x7, combine_bias

    s = np.asarray(structure, dtype=np.float32)
    nrow, ncol = s.shape
    cols = np.arange(0, ncol, column_step)
    sub = s[:, cols]
    sig = float(np.sqrt(sigma_adu ** 2 + QUANTISATION_VAR))
    rng = np.random.default_rng(seed)
    sq = np.zeros(nrow)
    for _ in range(realisations):
        frames = sub[None] + np.float32(sig) * rng.standard_normal((nframes,) + sub.shape, dtype=np.float32)
        err = box_filter_1x7(combine_bias(frames)).astype(np.float64) - sub
        sq += np.mean(err ** 2, axis=1)
    row_ms = sq / realisations
    weights = np.ones(nrow) * ncol if good is None else np.asarray(good, bool).sum(axis=1)
    return float(np.sqrt(np.sum(row_ms * weights) / max(1, weights.sum())))
