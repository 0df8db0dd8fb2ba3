"""The residual maps of ``hetred resmap`` as the later stages read them (karlspipe readcal2 in
vred3.f and getmulti in fitradecsp.f), with Karl's fallbacks when a map is missing.

``lib_calib/{month}/reschi/{res,sres,rres,chi}{SSS}{AA}.fits`` (layout keys ``resmap_*``): one
(112, 1032) float32 image each, primary HDU, rows = multi-file fibers, columns = CCD columns.
:func:`read_map` returns the map and its path, or the fallback and None: res 0 (vred3 and
fitradecsp leave s unchanged), rres 1.04 (fitradecsp's value without a map), sres 0, chi 0.
The stages record the path (or "none") in their products' provenance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hetred.layout import Layout

KINDS = ("res", "sres", "rres", "chi")
FALLBACK = {"res": 0.0, "sres": 0.0, "rres": 1.04, "chi": 0.0}
SHAPE = (112, 1032)


def map_path(layout: Layout, kind: str, month: str, specid: int, amp: str) -> Path:
    """The layout path of one map."""
    if kind not in KINDS:
        raise ValueError(f"residual map kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return layout.path(f"resmap_{kind}", month=month, specid=int(specid), amp=amp)


def read_map(layout: Layout, kind: str, month: str, specid: int, amp: str) -> tuple[np.ndarray, Path | None]:
    """(map (112, 1032) float32, its path), or (the fallback array, None) when there is no file.
    A file that is not a (112, 1032) image raises HetredError naming it."""
    from hetred.errors import HetredError
    from hetred.io.fastfits import read_images

    p = map_path(layout, kind, month, specid, amp)
    if not p.exists():
        return np.full(SHAPE, FALLBACK[kind], np.float32), None
    try:
        arr = read_images(p, ("primary",))[0]["primary"]
    except (OSError, ValueError, KeyError) as err:
        raise HetredError(f"{p}: not a readable residual map ({err})") from None
    if arr.shape != SHAPE:
        raise HetredError(f"{p}: residual map of shape {arr.shape}, expected {SHAPE}")
    return np.asarray(arr, np.float32), p
