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

The boxes are found by the flat stage (:mod:`hetred.flat.defects`); this module is the file format.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np


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
