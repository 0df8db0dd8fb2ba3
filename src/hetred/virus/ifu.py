"""The 448-fiber VIRUS IFU: fiber positions and the fiber <-> amp mapping.

Positions are generated in code (IFUcen_HETDEX.txt, the survey IFU): a hexagonal pack of 23
rows from y = -24.24 to +24.24 arcsec (pitch 48.48/22 = 2.2036"), even rows (0, 2, ..., 22) of 19
fibers at x = k * 2.5421" (k = -9..9) and odd rows of 20 fibers at x = (k + 0.5) * 2.5421"
(k = -10..9); fiber IDs 1..448 run along each row in increasing x, row by row upward.
IDs 1-224 feed the left unit spectrograph (L), 225-448 the right (R).

Fiber order on the amps (karlspipe vred.f getifupos, Remedy get_ifucenfile): IDs 1-112 LU,
113-224 LL, 225-336 RL, 337-448 RU, reversed within the amp: multi-file fiber ``np`` (1..112)
is IFU fiber ``start + 112 - np`` with start = 1, 113, 225, 337.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

N_FIBERS = 448
N_ROWS = 23
ROW_Y_MAX = 24.24                 #: arcsec
ROW_PITCH = 2 * ROW_Y_MAX / 22    #: arcsec between rows (2.2036)
X_PITCH = 2 * 24.15 / 19          #: arcsec between fibers along a row (2.5421)
FIBER_DIAMETER = 1.5              #: arcsec

#: first IFU fiber ID (1-based) of each amp's block of 112
AMP_START: dict[str, int] = {"LU": 1, "LL": 113, "RL": 225, "RU": 337}

#: pairs of swapped fibers (1-based IFU IDs) for particular IFUIDs (vred.f, Remedy)
FIBER_SWAPS: dict[str, tuple[int, int]] = {
    "007": (38, 39), "025": (209, 214), "030": (446, 447), "038": (303, 304), "041": (252, 253),
}


def ifu_positions() -> np.ndarray:
    """Fiber positions of the survey IFU: (448, 2) float64 arcsec (x, y), row i = fiber ID i+1."""
    out = []
    for row in range(N_ROWS):
        y = -ROW_Y_MAX + row * ROW_PITCH
        ks = np.arange(-9, 10) if row % 2 == 0 else np.arange(-10, 10) + 0.5
        out.extend((k * X_PITCH, y) for k in ks)
    pos = np.array(out)
    assert pos.shape == (N_FIBERS, 2)
    return pos


def ifu_unit(fiber_ids: np.ndarray) -> np.ndarray:
    """'L' or 'R' (unit spectrograph) for 1-based IFU fiber IDs."""
    return np.where(np.asarray(fiber_ids) <= 224, "L", "R")


def read_ifucen(path: str | Path) -> np.ndarray:
    """Read an IFUcen file: (448, 2) arcsec positions ordered by fiber ID.

    Data rows are ``ID x y unit specfib throughput``; '#' lines and the two short
    parameter lines (FIBERD/FIBERSEP, NFIBX/NFIBY) are skipped.
    """
    ids, xy = [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#") or len(parts) < 5:
            continue
        ids.append(int(parts[0]))
        xy.append((float(parts[1]), float(parts[2])))
    order = np.argsort(ids)
    return np.asarray(xy)[order]


def amp_fiber_ids(amp: str, ifuid: str | None = None) -> np.ndarray:
    """1-based IFU fiber IDs of multi-file fibers 1..112 of ``amp`` (shape (112,)).

    Applies the documented fiber swaps of special IFUIDs.
    """
    start = AMP_START[amp]
    ids = start + 112 - np.arange(1, 113)
    if ifuid is not None and ifuid in FIBER_SWAPS:
        a, b = FIBER_SWAPS[ifuid]
        ia, ib = np.nonzero(ids == a)[0], np.nonzero(ids == b)[0]
        if ia.size and ib.size:
            ids[ia[0]], ids[ib[0]] = b, a
    return ids


def amp_of_fiber(fiber_id: int) -> tuple[str, int]:
    """IFU fiber ID (1..448) -> (amp, multi-file fiber number 1..112)."""
    if not 1 <= fiber_id <= N_FIBERS:
        raise ValueError(f"fiber ID {fiber_id} outside 1..448")
    for amp, start in AMP_START.items():
        if start <= fiber_id < start + 112:
            return amp, start + 112 - fiber_id
    raise AssertionError("unreachable")


def amp_positions(amp: str, ifuid: str | None = None,
                  positions: np.ndarray | None = None) -> np.ndarray:
    """(112, 2) arcsec positions of an amp's fibers in multi-file order (Karl's ``ifupos``)."""
    pos = ifu_positions() if positions is None else positions
    return pos[amp_fiber_ids(amp, ifuid) - 1]
