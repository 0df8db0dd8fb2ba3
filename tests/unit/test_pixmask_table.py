"""pix_mask.tab is rebuilt by every flat unit under a lock: units ending together keep all boxes."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np

from hetred.flat import run as P
from hetred.flat import settings as P_settings
from hetred.io import pixmask as M
from hetred.layout import Layout

AMPS = ("LL", "LU", "RL", "RU")


def _unit(root: str, k: int) -> int:
    """One 'flat unit': write its flat with one box, then rebuild the table."""
    lay = Layout(f"{root}/raw", f"{root}/red")
    box = M.Box(10 + k, 20 + k, 30, 40)
    P.write_pixelflat(lay, 320, AMPS[k], 53, np.ones((8, 8), np.float32), ["x"], {}, [box],
                      {"sigma": 0.01, "threshold": 0.05}, P_settings.FlatSettings())
    return P.write_pixmask_table(lay)[1]


def test_units_ending_together_keep_every_box(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_unit, [str(tmp_path)] * 4, range(4)))
    lay = Layout(tmp_path / "raw", tmp_path / "red")
    rows = M.read_pixmask(lay.path("pixmask"))
    assert sorted(n for n, _ in rows) == sorted(f"053{a}" for a in AMPS)
    assert lay.path("pixmask_lock").exists()
