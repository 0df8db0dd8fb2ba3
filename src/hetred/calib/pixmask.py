"""The bad-pixel mask from a pixel flat: boxes ``amp x1 x2 y1 y2`` (docs/stages/flat.md).

Replaces Chenxu Liu's hand-made ``Pixel_flat_masks.ipynb`` (HDR3), which wrote
``pix_mask.tab``::

    amp x1 x2 y1 y2
    311RU 538 556 755 737

``amp`` is the 3-digit IFU slot followed by the amp (LL, LU, RL, RU).

Coordinate convention (hetred): x = column, y = row of the ORIENTED frame (the frame the
pixel flat FITS is written in, wavelength increasing with x, fibers stacked along y), 1-based
pixel centres, both bounds inclusive, written with x1 <= x2 and y1 <= y2.  Oriented because the
boxes are found on, drawn over and applied to the oriented pixel flat, and every hetred stage
after the bias works in that frame; 1-based and inclusive like FITS/ds9 pixel numbers, which is
what a notebook reading the flat image off a display gives.  karlspipe hdr2.1 has no reader of
``pix_mask.tab`` (vred.f there predates it), so there is no Fortran convention to follow; the
seed example has y1 > y2, so :func:`read_pixmask` accepts either order and normalises it.

Algorithm (:func:`find_defect_boxes`): deviation ``dev = flat - smooth(flat)`` with a wide
separable median (``smooth_size`` along rows, then along columns) over the measured pixels; a robust sigma of ``dev`` (biweight scale of
the measured pixels); a vertical 5 x 1 median of ``dev`` (keeps bad columns, which are 1 px
wide and run along rows, and boxes; removes isolated noisy pixels); pixels with
``|dev| > max(nsigma * sigma, min_dev)`` are flagged, dilated by ``join`` px so the per-fiber
stripes of one defect (the flat is 1 between fibers) join, labelled (8-connected); each
component's bounding box of flagged pixels is padded by ``pad`` px, boxes that overlap or lie
within ``2 pad`` px of each other are merged (a bad column broken by the unmeasured gaps
between fiber blocks becomes one box), and everything is clipped to the frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from scipy import ndimage

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


@dataclass(frozen=True)
class Box:
    """One mask box: 1-based inclusive oriented bounds, x = column, y = row."""

    x1: int
    x2: int
    y1: int
    y2: int

    @property
    def area(self) -> int:
        return (self.x2 - self.x1 + 1) * (self.y2 - self.y1 + 1)

    def overlaps(self, o: "Box", gap: int = 0) -> bool:
        return not (self.x2 + gap < o.x1 or o.x2 + gap < self.x1
                    or self.y2 + gap < o.y1 or o.y2 + gap < self.y1)

    def union(self, o: "Box") -> "Box":
        return Box(min(self.x1, o.x1), max(self.x2, o.x2), min(self.y1, o.y1), max(self.y2, o.y2))

    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) slices of the 0-based array."""
        return slice(self.y1 - 1, self.y2), slice(self.x1 - 1, self.x2)


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
    vert = ndimage.median_filter(dev, size=(s.vertical, 1), mode="nearest")
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
            y1, y2 = sl[0].start + rr.min(), sl[0].start + rr.max()
            x1, x2 = sl[1].start + cc.min(), sl[1].start + cc.max()
            boxes.append(Box(int(max(1, x1 + 1 - s.pad)), int(min(ncol, x2 + 1 + s.pad)),
                             int(max(1, y1 + 1 - s.pad)), int(min(nrow, y2 + 1 + s.pad))))
    boxes = merge_boxes(boxes, gap=2 * s.pad)
    return boxes, {"sigma": sigma, "threshold": thresh, "flagged": flagged}


# --------------------------------------------------------------------------------------------
# the table

HEADER = "amp x1 x2 y1 y2"


def format_pixmask(rows: Iterable[tuple[str, Box]], comments: Iterable[str] = ()) -> str:
    """The text of ``pix_mask.tab``: comment lines (``#``), the header line, one line per box."""
    lines = [f"# {c}" for c in comments]
    lines.append(HEADER)
    lines += [f"{name} {b.x1} {b.x2} {b.y1} {b.y2}" for name, b in rows]
    return "\n".join(lines) + "\n"


def read_pixmask(path: str | Path) -> list[tuple[str, Box]]:
    """Parse a ``pix_mask.tab`` (ours or the HDR3 one): [(ifuslot+amp, Box)], bounds sorted."""
    out = []
    for ln in Path(path).read_text().splitlines():
        a = ln.split()
        if not a or a[0].startswith("#") or a[0] == "amp":
            continue
        x1, x2, y1, y2 = (int(float(v)) for v in a[1:5])
        out.append((a[0], Box(min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2))))
    return out


def mask_image(boxes: Iterable[Box], shape: tuple[int, int] = (1032, 1032)) -> np.ndarray:
    """Bool image (oriented), True inside any box."""
    m = np.zeros(shape, dtype=bool)
    for b in boxes:
        m[b.slices()] = True
    return m
