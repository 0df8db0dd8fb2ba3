"""Files written by the bgmodel stage: the model, the combined frame (raw orientation) and the QA PNG.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
from astropy.io import fits

from hetred._version import __version__
from hetred.background.frames import FrameRecord
from hetred.background.model import ModelInfo
from hetred.background.settings import F32, RAWTYPE, XNORM, BgSettings
from hetred.io.atomic import atomic_path, write_fits_atomic
from hetred.layout import Layout
from hetred.virus import amp as ampgeom


def write_products(layout: Layout, f: dict, kind: str, used: Sequence[FrameRecord], nread: int,
                   combined: np.ndarray, model: np.ndarray, info: ModelInfo, s: BgSettings) -> list[Path]:
    """Write ``bgmodel`` and ``bgcombined`` (float32, headers with the inputs); their paths."""

    lo, hi = s.cut(kind)
    members = sorted(r.member for r in used)
    common = [
        ("BUNIT", "adu", "ADU of frames scaled to level 25 (improcn)"),
        ("MONTH", f["month"], ""), ("IFUSLOT", f"{f['ifuslot']:03d}", ""),
        ("SPECID", f"{f['specid']:03d}", ""), ("AMP", f["amp"], "CCDPOS + CCDHALF"),
        ("BGKIND", kind, "sci, bri or twi"), ("RAWTYPE", RAWTYPE[kind], "raw frame type combined"),
        ("LEVLO", lo, "keep if LEVLO < level"), ("LEVHI", "none" if hi is None else hi, "... < LEVHI"),
        ("XNORM", XNORM, "level = central biweight / XNORM"),
        ("ORIENT", "RAW", "readout orientation, not flipped (as Karl)"),
        ("TRIMSEC", ampgeom.TRIMSEC, "overscan and master bias removed"),
        ("NFRAMES", len(used), "frames combined"), ("NREAD", nread, "frames of the unit read"),
        ("COMBINE", "biweight", "per-pixel Karl biwgt (imcmb)"),
        ("INPHASH", hashlib.sha1("\n".join(members).encode()).hexdigest(), "sha1 of sorted inputs"),
        ("HETREDV", __version__, "hetred version")]
    paths = []
    for key, image, extra in (("bgmodel", model, info.cards), ("bgcombined", combined, [])):
        h = fits.Header()
        for card in [("OBJECT", key, "hetred bgmodel product")] + common + extra:
            h[card[0]] = card[1:]
        for c in sorted({(r.specid, r.contid) for r in used}):
            h.add_history(f"masterbias masterbias_{c[0]:03d}_{c[1]}_{f['amp']}.fits")
        for m in members:
            h.add_history(f"input {m}")
        paths.append(layout.path(key, **f))
        write_fits_atomic(paths[-1], fits.HDUList([fits.PrimaryHDU(np.asarray(image, F32), h)]))
    return paths


def write_qa(path: Path, unit: str, combined: np.ndarray, model: np.ndarray, info: ModelInfo,
             title: str) -> Path:
    """QA PNG: the model's profile across rows over the combined frame's, at three columns."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6), dpi=80)
    rows = np.arange(1, combined.shape[0] + 1)
    for k, c in enumerate((200, combined.shape[1] // 2, combined.shape[1] - 200)):
        ax = fig.add_subplot(1, 3, k + 1)
        m = model[:, c - 1]
        span = float(m.max() - m.min()) + 0.05 * abs(float(m.max())) + 1e-3
        ax.plot(rows, combined[:, c - 1], color="0.6", lw=0.5, label="combined")
        ax.plot(rows, m, color="red", lw=1.2, label=f"model ({info.method})")
        for r in info.marks[:, c - 1]:
            ax.axvline(r, color="tab:blue", lw=0.6, ls=":")
        top = max(float(np.percentile(combined[:, c - 1], 99.5)), float(m.max()) + 4 * span)
        ax.set_yscale("symlog", linthresh=max(2.0 * float(np.abs(m).max()), 1e-3), linscale=2.0)
        ax.set_ylim(float(m.min()) - 1.5 * span, top)
        ax.set_title(f"column {c} (raw); {info.marks_text}", fontsize=8)
        ax.set_xlabel("row (raw)", fontsize=7)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.set_ylabel("ADU at level 25", fontsize=7)
            ax.legend(fontsize=6, loc="upper right")
    fig.suptitle(f"{unit}: {title}", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.85, wspace=0.25)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
