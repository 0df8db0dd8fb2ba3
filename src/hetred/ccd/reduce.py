"""The one per-amp reduction of a raw frame: Karl's vred.f detector steps, for every frame type.

vred reduces twilights, arcs and science frames with the same code; so does hetred: the twilight
calibration (``hetred twical``) and the science reduction (``hetred sci``) both call
:func:`reduce_amp`. Step by step (rows/columns 1-based in Karl's words):

1. overscan = biweight of raw columns 1034-1060, rows 10-1032; frame = raw - overscan - the
   month's master bias of the controller (raw orientation). A missing master bias fails.
2. divided by the camera's pixel flat where it is above ``flat_min`` (0.666), else 0 and masked
   (``use_flat``; a missing pixel flat is recorded as ``pixelflat: none``).
3. level ``xbn`` = biweight of rows/columns 300-700 of the flat-divided frame / 25; the month's
   background models (sci, bri, twi, made at levels 1, 5, 25) blended by linear interpolation of
   ``xbn`` in (1, 5, 25) (``xlinint``: below 1 the sci model alone, above 25 the twi model alone),
   and ``xbn x`` the blend subtracted from every unmasked pixel (``background``). A model the month
   does not have gives its weight to the ones it has, and the notes say which were used and which
   were wanted; with none at all the frame is reduced without one and the notes say so.
4. x GAIN (header) -> electrons; oriented (LU, RL rotated; AMPNAME LR/UL mirrored). GAIN and
   RDNOISE must be in the header and positive: a frame without them fails with one line naming
   the file and the key (never a silent default).
5. masked: zero pixels of the master bias (charge traps), saturated raw pixels, pixels with flat
   <= ``flat_min`` and the boxes of ``pix_mask.tab`` for the amp (Karl's getpdefect).

Arrays: oriented frame (1032, 1032) rows x columns, electrons; the background is returned too
(electrons, oriented) because the extraction's variance needs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
from astropy.io import fits

from hetred._ext import boxfilter as BF
from hetred.errors import HetredError
from hetred.io.pixmask import Box
from hetred.io.raw import RawAmp, header_value
from hetred.layout import Layout
from hetred.stats import biweight
from hetred.virus import amp as ampgeom
from hetred.virus.ids import NO_CONTID

F32 = np.float32
XNORM = 25.0                                  #: vred: xnorm
BACK_LEVELS = (1.0, 5.0, 25.0)                #: vred: xback, levels of the sci, bri, twi models
BACK_KINDS = ("sci", "bri", "twi")
LEVEL_REGION = slice(299, 700)                #: vred: rows and columns 300-700 (1-based)
SATURATED = 65535
FLAT_MIN = 0.666                              #: vred: pixels whose pixel flat is at or below this are masked


@lru_cache(maxsize=48)
def _read_image(path: str, mtime_ns: int) -> np.ndarray:
    try:
        data = np.ascontiguousarray(fits.getdata(path, memmap=False), dtype=F32)
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise HetredError(f"{path} is unreadable ({err.__class__.__name__}: {err})") from None
    if data.shape != (ampgeom.NROWS, ampgeom.NCOLS):
        raise HetredError(f"{path}: image shape {data.shape}, expected (1032, 1032)")
    data.setflags(write=False)
    return data


def read_image(path: Path) -> np.ndarray:
    """A 1032 x 1032 calibration image (read once per process and file version), read-only."""
    return _read_image(str(path), path.stat().st_mtime_ns)


def master_bias_path(layout: Layout, month: str, raw: RawAmp) -> Path:
    """The month's master bias of the frame's spectrograph, controller and amp."""
    return layout.path("masterbias", month=month, specid=raw.specid, contid=raw.contid or NO_CONTID,
                       amp=raw.amp)


def background_weights(xbn: float) -> tuple[float, float, float]:
    """vred's blend of the (sci, bri, twi) models for a frame of level ``xbn`` (xlinint of xbn
    in (1, 5, 25) onto (1, 2, 3), clamped at both ends)."""
    x, y = BACK_LEVELS, (1.0, 2.0, 3.0)
    xib = y[0] if xbn < x[0] else y[-1]
    for j in range(2):
        if x[j] <= xbn < x[j + 1]:
            xib = y[j] + (y[j + 1] - y[j]) * (xbn - x[j]) / (x[j + 1] - x[j])
    if 1.0 <= xib < 2.0:
        return 2.0 - xib, xib - 1.0, 0.0
    return 0.0, 3.0 - xib, xib - 2.0


@dataclass
class ReducedAmp:
    """Result of :func:`reduce_amp` (oriented arrays)."""

    image: np.ndarray            #: (1032, 1032) float32 e-, 0 where masked
    mask: np.ndarray             #: (1032, 1032) bool, True = masked pixel
    flat: np.ndarray             #: (1032, 1032) float32 pixel flat, oriented (1 without one)
    flat_orig: np.ndarray        #: (1032, 1032) float32 the same in the raw orientation
    background: np.ndarray       #: (1032, 1032) float32 e-, the background subtracted
    gain: float                  #: e-/ADU (header GAIN)
    read_noise: float            #: e- (header RDNOISE)
    overscan: float              #: ADU
    level: float                 #: vred xbn = central biweight / 25 (ADU, flat-divided)
    notes: dict = field(default_factory=dict)   #: provenance: files used, weights
    #: the calibration files looked for (master bias, pixel flat, background models), present or
    #: not: a unit's ``depends`` (hetred.jobs.units), so it is redone when one appears or changes
    depends: list[str] = field(default_factory=list)


def missing_notes(red: ReducedAmp, name: str) -> dict[str, list[str]]:
    """What a user should hear about the calibrations of one reduced amp (``name``, e.g.
    ``053LL``), for a unit's notes: background models the month lacks (their weight went to the
    others, or the frame was reduced without one) and a missing pixel flat."""
    out: dict[str, list[str]] = {}
    n = red.notes
    if n.get("background") == "none":
        out["no background model (reduced without one)"] = [f"{name}: {n.get('background_missing', '')}"]
    elif n.get("background_missing"):
        out["background models missing (weights given to the others)"] = [f"{name}: {n['background_missing']}"]
    if n.get("pixelflat") == "none":
        out["no pixel flat (flat = 1)"] = [name]
    return out


def _background(layout: Layout, month: str, raw: RawAmp, xbn: float, notes: dict,
                depends: list[str]) -> np.ndarray | None:
    """vred's level-weighted blend of the month's models (raw orientation, ADU per unit level),
    times ``xbn``; None when the month has none of the models the level asks for."""
    wts = dict(zip(BACK_KINDS, background_weights(xbn)))
    models = {}
    for kind, wt in wts.items():
        if wt > 0:
            p = layout.path("bgmodel", month=month, bgkind=kind, specid=raw.specid, ifuslot=raw.ifuslot,
                            amp=raw.amp)
            depends.append(str(p))
            if p.exists():
                models[kind] = (wt, read_image(p))
    notes["background_wanted"] = ",".join(f"{k}:{w:.3f}" for k, w in wts.items() if w > 0)
    total = sum(w for w, _ in models.values())
    if not models:
        notes["background"] = "none"
        notes["background_missing"] = ",".join(k for k, w in wts.items() if w > 0)
        return None
    back = np.zeros((ampgeom.NROWS, ampgeom.NCOLS), F32)
    for kind, (wt, m) in models.items():      # weights of missing models go to the others
        back += F32(xbn * wt / total) * m
    notes["background"] = ",".join(f"{k}:{w / total:.3f}" for k, (w, _) in models.items())
    missing = [k for k, w in wts.items() if w > 0 and k not in models]
    if missing:
        notes["background_missing"] = ",".join(missing)
    return back


def reduce_amp(layout: Layout, month: str, raw: RawAmp, *, use_flat: bool = True, background: bool = True,
               flat_min: float = FLAT_MIN, boxes: Iterable[Box] = ()) -> ReducedAmp:
    """Steps 1-5 of the module docstring for one raw amp frame.

    ``month``: the calibration month (master bias, background models). ``use_flat``: divide by the
    camera's pixel flat when ``lib_pflat`` has one. ``background``: subtract the level-weighted
    background models (off for arcs). ``boxes``: :class:`hetred.io.pixmask.Box` of this amp
    (oriented, 1-based inclusive). Raises :class:`HetredError` naming a missing master bias or a
    missing header value.
    """
    amp, ampname = raw.amp, raw.ampname
    gain = header_value(raw, "GAIN")
    read_noise = header_value(raw, "RDNOISE")
    mb_path = master_bias_path(layout, month, raw)
    depends = [str(mb_path)]
    if not mb_path.exists():
        raise HetredError(f"no master bias {mb_path.relative_to(layout.red)} for {raw.source} "
                          f"(run hetred bias {month})")
    mbias = read_image(mb_path)
    notes: dict = {"masterbias": mb_path.name}
    overscan = float(BF.biweight_uint16(np.ascontiguousarray(ampgeom.overscan_region(raw.data)), 0.0)[0])
    notes["overscan"] = round(overscan, 3)
    data = ampgeom.trim(raw.data)
    arr = data.astype(F32)
    arr -= F32(overscan)
    arr -= mbias
    fl_path = layout.path("pixelflat", specid=raw.specid, amp=amp)
    if use_flat:
        depends.append(str(fl_path))
    if use_flat and fl_path.exists():
        flat = read_image(fl_path)
        notes["pixelflat"] = fl_path.name
    else:
        flat = np.ones((ampgeom.NROWS, ampgeom.NCOLS), F32)
        notes["pixelflat"] = "none" if use_flat else "not used"
    flat_raw = ampgeom.deorient(flat, amp, ampname)
    good = flat_raw > F32(flat_min)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(arr, flat_raw, out=arr, where=good)
    arr[~good] = 0.0
    xbn = float(biweight(arr[LEVEL_REGION, LEVEL_REGION])[0]) / XNORM
    back = _background(layout, month, raw, xbn, notes, depends) if background else None
    if back is None:
        back = np.zeros_like(arr)
        if not background:
            notes["background"] = "not used"
    nonzero = arr != 0
    arr -= back
    arr *= F32(gain)
    arr[~nonzero] = 0.0
    mask = ~good | (mbias == 0) | (data == SATURATED)
    image = np.ascontiguousarray(ampgeom.orient(arr, amp, ampname))
    mask_o = np.ascontiguousarray(ampgeom.orient(mask, amp, ampname))
    for b in boxes:
        mask_o[b.slices()] = True
    image[mask_o] = 0.0
    back *= F32(gain)
    return ReducedAmp(image, mask_o, np.asarray(flat), np.asarray(flat_raw),
                      np.ascontiguousarray(ampgeom.orient(back, amp, ampname)), gain, read_noise,
                      overscan, xbn, notes, depends)
