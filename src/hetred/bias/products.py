"""Files written by the bias stage: the master bias, its unsmoothed combination, the trap list,
the per-frame table (Karl's norm*.dat) and the QA PNG.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
from astropy.io import fits

from hetred._version import __version__
from hetred.bias.frames import FrameRecord
from hetred.bias.settings import CENTER_COLS, CENTER_ROWS, STAGE, BiasSettings
from hetred.io.atomic import atomic_path, write_fits_atomic, write_text_atomic
from hetred.layout import Layout
from hetred.virus import amp as ampgeom


def _fmt(v: float | None) -> str:
    return f"{v:10.3f}" if v is not None else f"{'-':>10}"


def write_frames_table(layout: Layout, month: str, ifuslot: int, amp: str,
                       records: Sequence[FrameRecord], settings: BiasSettings) -> Path:
    """The per-frame table (Karl's norm*.dat, one line per frame, with the verdict)."""
    path = layout.path("bias_frames", month=month, ifuslot=ifuslot, amp=amp)
    lines = [
        f"# hetred {__version__} bias: zro frames of IFU slot {ifuslot:03d} amp {amp}, month {month}",
        "# overscan: biweight of raw columns 1034-1060, rows 10-1032; level, scale: biweight of",
        f"# columns/rows {CENTER_COLS[0]}-{CENTER_COLS[1]} x {CENTER_ROWS[0]}-{CENTER_ROWS[1]} "
        f"after overscan subtraction (ADU). used: {settings.scale_lo:g} < scale < {settings.scale_hi:g}",
        "# member contid specid overscan level scale verdict note",
    ]
    for r in records:
        s = r.stats
        lines.append(" ".join([r.member, r.contid or "-", f"{r.specid:03d}" if r.specid >= 0 else "-",
                               _fmt(s.overscan if s else None), _fmt(s.level if s else None),
                               _fmt(s.scale if s else None), r.verdict, r.note or "-"]))
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _header(month: str, ifuslot: int, amp: str, specid: int, contid: str,
            recs: Sequence[FrameRecord], nreject: int, settings: BiasSettings, what: str) -> fits.Header:
    h = fits.Header()
    members = sorted(r.member for r in recs)
    digest = hashlib.sha1("\n".join(members).encode()).hexdigest()
    for key, value, comment in [
        ("OBJECT", what, "hetred bias stage product"),
        ("BUNIT", "adu", "overscan-subtracted ADU"),
        ("MONTH", month, "month of the zro frames"),
        ("IFUSLOT", f"{ifuslot:03d}", ""),
        ("SPECID", f"{specid:03d}", ""),
        ("CONTID", f"S/N {contid}", "controller"),
        ("AMP", amp, "CCDPOS + CCDHALF"),
        ("ORIENT", "RAW", "readout orientation, not flipped (as Karl)"),
        ("TRIMSEC", ampgeom.TRIMSEC, "of the raw frame; overscan removed"),
        ("NFRAMES", len(recs), "zro frames combined"),
        ("NREJECT", nreject, "zro frames of the unit rejected"),
        ("SCALELO", settings.scale_lo, "frames kept if SCALELO < scale < SCALEHI"),
        ("SCALEHI", settings.scale_hi, ""),
        ("COMBINE", "biweight", "per-pixel Karl biwgt (imcmb)"),
        ("INPHASH", digest, "sha1 of sorted inputs"),
        ("HETREDV", __version__, "hetred version"),
    ]:
        h[key] = (value, comment)
    for m in members:
        h.add_history(f"input {m}")
    return h


def write_products(layout: Layout, month: str, ifuslot: int, amp: str, specid: int, contid: str,
                   unsmoothed: np.ndarray, master: np.ndarray, traps: Sequence[tuple[int, int]],
                   recs: Sequence[FrameRecord], nreject: int, settings: BiasSettings) -> list[Path]:
    """Write the master, the unsmoothed combination and the trap list; returns their paths."""
    f = dict(month=month, specid=specid, contid=contid, amp=amp)
    p_master = layout.path("masterbias", **f)
    p_unsm = layout.path("masterbias_unsmoothed", **f)
    p_traps = layout.path("masterbias_traps", **f)

    h = _header(month, ifuslot, amp, specid, contid, recs, nreject, settings, "masterbias")
    h["BOX"] = (f"{settings.box_cols} {settings.box_rows}", "imbox2 box x y, biweight")
    h["BOXRAD"] = (settings.box_radius, "inner radius left out (centre pixel)")
    h["NTRAPS"] = (len(traps), "charge-trap columns zeroed (imgetctrap)")
    h["TRAPSIG"] = (settings.trap_sigma, "trap hit: > TRAPSIG biweight sigma")
    write_fits_atomic(p_master, fits.HDUList([fits.PrimaryHDU(np.asarray(master, np.float32), h)]))

    hu = _header(month, ifuslot, amp, specid, contid, recs, nreject, settings, "masterbias_unsmoothed")
    write_fits_atomic(p_unsm, fits.HDUList([fits.PrimaryHDU(np.asarray(unsmoothed, np.float32), hu)]))

    lines = [f"# hetred {__version__} charge traps of masterbias_{specid:03d}_{contid}_{amp} ({month})",
             "# column first_row (1-based, raw orientation; zeroed from first_row to the last row)"]
    lines += [f"{c:6d} {r:6d}" for c, r in traps]
    write_text_atomic(p_traps, "\n".join(lines) + "\n")
    return [p_master, p_unsm, p_traps]


def write_qa(layout: Layout, unit: str, products: Sequence[dict]) -> Path:
    """QA PNG of a unit: each master bias (raw orientation) with its trap columns marked."""
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas, no global backend

    path = layout.path("qa", stage=STAGE, name=f"{unit}.png")
    n = max(1, len(products))
    fig = Figure(figsize=(5.0 * n, 5.2), dpi=80)
    for k, p in enumerate(products):
        ax = fig.add_subplot(1, n, k + 1)
        img = p["_image"]
        shown = img[::2, ::2]
        good = shown[shown != 0]
        lo, hi = (np.percentile(good, [1, 99]) if good.size else (0.0, 1.0))
        ax.imshow(shown, origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
                  extent=(0.5, img.shape[1] + 0.5, 0.5, img.shape[0] + 0.5))
        for col, row in p["traps"]:
            ax.plot([col, col], [row, img.shape[0]], color="red", lw=0.8)
        ax.set_title(f"{unit} CONTID {p['contid']}\n{p['nframes']} frames, {p['ntraps']} traps "
                     f"[{lo:.2f}, {hi:.2f}] ADU", fontsize=8)
        ax.set_xlabel("column (raw)", fontsize=7)
        ax.set_ylabel("row (raw)", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.subplots_adjust(left=0.16 / n, right=1 - 0.03 / n, bottom=0.11, top=0.88, wspace=0.35)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
