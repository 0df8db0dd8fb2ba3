"""Defect boxes found on a pixel flat (the boxes of ``pix_mask.tab``, :mod:`hetred.io.pixmask`).

Algorithm (:func:`find_defect_boxes`): deviation ``dev = flat - smooth(flat)`` with a wide
separable median (``smooth_size`` along rows, then along columns) over the measured pixels; a
robust sigma of ``dev`` (biweight scale of the measured pixels); a vertical median of ``dev``
over the measured pixels among ``vertical`` rows (:func:`vertical_median`: keeps bad columns,
which are 1 px wide and run along y, and boxes; removes isolated noisy pixels; the unmeasured
rows between the fibers' bands do not count, so the rows of a box inside a band are not diluted
by them); pixels with ``|dev| > max(nsigma * sigma, min_dev)`` are flagged, dilated by ``join``
px so the per-fiber stripes of one defect (the flat is 1 between fibers) join, labelled
(8-connected); each component's bounding box of flagged pixels is grown (:func:`grow_box`)
over the whole rows and columns next to it whose median deviation has the component's sign and
at least half the threshold (a box edge that covers only a row or two of a fiber's band, or
lies next to a dead fiber's unmeasured band, is not flagged pixel by pixel), then padded by
``pad`` px; boxes that overlap or lie within ``2 pad`` px of each other are merged (a bad column
broken by the unmeasured gaps between fiber blocks becomes one box), and everything is clipped
to the frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import ndimage

from hetred.io.pixmask import Box
from hetred.stats import biweight


@dataclass(frozen=True)
class MaskSettings:
    """Parameters of :func:`find_defect_boxes`."""

    nsigma: float = 8.0          #: flag |dev| beyond nsigma robust sigma ...
    min_dev: float = 0.05        #: ... and beyond this fraction in any case
    smooth_size: int = 51        #: px: the median that defines the smooth flat
    vertical: int = 5            #: rows of the vertical median applied to dev
    join: int = 3                #: px dilation before labelling (joins per-fiber stripes)
    pad: int = 3                 #: px added on each side of a box (> the 1.7 px gap between fibers' bands)
    min_pixels: int = 4          #: a component needs this many flagged pixels
    grow_gap: int = 12           #: px of unmeasured rows/columns a box may grow across (a dead fiber's band)


def merge_boxes(boxes: Iterable[Box], gap: int = 0) -> list[Box]:
    """Merge boxes that overlap (or are within ``gap`` px) until none do; sorted."""
    out = list(boxes)
    changed = True
    while changed:
        changed = False
        res: list[Box] = []
        for b in out:
            for k, r in enumerate(res):
                if r.overlaps(b, gap):
                    res[k] = r.union(b)
                    changed = True
                    break
            else:
                res.append(b)
        out = res
    return sorted(out, key=lambda b: (b.y1, b.x1))


def vertical_median(dev: np.ndarray, measured: np.ndarray, size: int) -> np.ndarray:
    """Median of ``dev`` over the measured pixels among the ``size`` rows centred on each pixel
    (same column); 0 where the pixel is not measured."""
    h = size // 2
    nrow = dev.shape[0]
    pad = np.full((nrow + 2 * h,) + dev.shape[1:], np.inf, dtype=np.float32)
    pad[h:h + nrow] = np.where(measured, dev, np.inf)
    stack = np.sort(np.stack([pad[k:k + nrow] for k in range(size)]), axis=0)   # unmeasured last
    n = np.isfinite(stack).sum(axis=0)
    lo = np.take_along_axis(stack, np.maximum(n - 1, 0)[None] // 2, axis=0)[0]
    hi = np.take_along_axis(stack, (n // 2)[None], axis=0)[0]
    with np.errstate(invalid="ignore"):
        med = np.float32(0.5) * (lo + hi)
    return np.where(measured & (n > 0), med, np.float32(0.0)).astype(np.float32)


def grow_box(dev: np.ndarray, measured: np.ndarray, box: tuple[int, int, int, int], sign: float,
             level: float, gap: int) -> tuple[int, int, int, int]:
    """Grow a defect's bounds ``box`` = (y1, y2, x1, x2), 0-based inclusive, one row or column
    at a time while the median of ``sign * dev`` over the measured pixels of the next row
    (within x1..x2) or column (within y1..y2) exceeds ``level``; rows or columns with fewer
    measured pixels than half the span are stepped over, at most ``gap`` of them in a row."""
    y1, y2, x1, x2 = box
    nrow, ncol = dev.shape

    def line(k: int, axis: int) -> float | None:
        if axis == 0:
            v, m = dev[k, x1:x2 + 1], measured[k, x1:x2 + 1]
        else:
            v, m = dev[y1:y2 + 1, k], measured[y1:y2 + 1, k]
        if m.sum() < max(1, (m.size + 1) // 2):
            return None
        return float(np.median(sign * v[m]))

    def reach(edge: int, step: int, axis: int, stop: int) -> int:
        k, skipped = edge + step, 0
        while 0 <= k < stop and skipped <= gap:
            val = line(k, axis)
            if val is None:
                skipped += 1
            elif val > level:
                edge, skipped = k, 0
            else:
                break
            k += step
        return edge

    while True:
        old = (y1, y2, x1, x2)
        y1 = reach(y1, -1, 0, nrow)
        y2 = reach(y2, 1, 0, nrow)
        x1 = reach(x1, -1, 1, ncol)
        x2 = reach(x2, 1, 1, ncol)
        if (y1, y2, x1, x2) == old:
            return y1, y2, x1, x2


def find_defect_boxes(flat: np.ndarray, measured: np.ndarray | None = None,
                      settings: MaskSettings | None = None) -> tuple[list[Box], dict]:
    """Boxes around the regions where ``flat`` deviates strongly from its smooth version.

    flat: (nrow, ncol) oriented pixel flat (1 where not measured); measured: bool, pixels the
    flat measured (default: flat != 1).  Returns (boxes, info) with info sigma, threshold and
    the flagged-pixel map ``flagged`` (bool).
    """
    s = settings or MaskSettings()
    f = np.asarray(flat, dtype=np.float32)
    nrow, ncol = f.shape
    meas = (f != 1.0) if measured is None else np.asarray(measured, dtype=bool)
    meas = meas & np.isfinite(f)
    # the smooth flat: wide median, unmeasured pixels set to the median of the measured ones
    base = np.where(meas, f, np.float32(np.median(f[meas]) if meas.any() else 1.0))
    # separable (1 x n then n x 1) median: ~50x faster than the n x n one, same for defects < n/2
    smooth = ndimage.median_filter(base, size=(1, s.smooth_size), mode="nearest")
    smooth = ndimage.median_filter(smooth, size=(s.smooth_size, 1), mode="nearest")
    dev = np.where(meas, f - smooth, np.float32(0.0))
    sigma = float(biweight(dev[meas])[1]) if meas.sum() > 10 else 0.0
    thresh = max(s.nsigma * sigma, s.min_dev)
    vert = vertical_median(dev, meas, s.vertical)
    flagged = (np.abs(vert) > thresh) & meas
    boxes: list[Box] = []
    if flagged.any():
        grown = ndimage.binary_dilation(flagged, structure=np.ones((2 * s.join + 1, 2 * s.join + 1), bool))
        labels, n = ndimage.label(grown, structure=np.ones((3, 3), bool))
        for k, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            sub = flagged[sl] & (labels[sl] == k)
            if sub.sum() < s.min_pixels:
                continue
            rr, cc = np.nonzero(sub)
            sign = 1.0 if np.median(vert[sl][sub]) > 0 else -1.0
            core = (sl[0].start + int(rr.min()), sl[0].start + int(rr.max()),
                    sl[1].start + int(cc.min()), sl[1].start + int(cc.max()))
            y1, y2, x1, x2 = grow_box(dev, meas, core, sign, 0.5 * thresh, s.grow_gap)
            boxes.append(Box(int(max(1, x1 + 1 - s.pad)), int(min(ncol, x2 + 1 + s.pad)),
                             int(max(1, y1 + 1 - s.pad)), int(min(nrow, y2 + 1 + s.pad))))
    boxes = merge_boxes(boxes, gap=2 * s.pad)
    return boxes, {"sigma": sigma, "threshold": thresh, "flagged": flagged}
