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


def qa_figure(unit: str, combined: np.ndarray, model: np.ndarray, info: ModelInfo, title: str):
    """The QA figure: at columns 200, 516 and 832, the combined frame's profile across rows and
    the model's (top row: the whole range; bottom row: zoomed on the model, where the combined
    frame's minima between the fibers and in the gaps should meet it). Linear axes with several
    ticks each; the rows found by the method dotted."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 6.4), dpi=80)
    rows = np.arange(1, combined.shape[0] + 1)
    for k, c in enumerate((200, combined.shape[1] // 2, combined.shape[1] - 200)):
        prof, m = combined[:, c - 1], model[:, c - 1]
        top_ax = fig.add_subplot(2, 3, k + 1)
        zoom = fig.add_subplot(2, 3, k + 4, sharex=top_ax)
        finite = prof[np.isfinite(prof)]
        lo_all = min(float(np.percentile(finite, 0.5)), float(m.min())) if finite.size else float(m.min())
        hi_all = max(float(np.percentile(finite, 99.8)), float(m.max())) if finite.size else float(m.max())
        pad = 0.05 * (hi_all - lo_all) + 1e-3
        # the zoom: the model between about a quarter and three quarters of the height
        ref = max(float(np.abs(m).max()), 1e-3)
        base = min(float(m.min()), 0.0)
        limits = ((top_ax, (lo_all - pad, hi_all + pad)), (zoom, (base - 0.6 * ref, float(m.max()) + 0.8 * ref)))
        for ax, (y0, y1) in limits:
            ax.plot(rows, prof, color="0.55", lw=0.5, label="combined")
            ax.plot(rows, m, color="red", lw=1.3, label=f"model ({info.method})")
            for r in info.marks[:, c - 1]:
                ax.axvline(r, color="tab:blue", lw=0.6, ls=":")
            ax.set_ylim(y0, y1)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6, min_n_ticks=4))
            ax.tick_params(labelsize=6)
            ax.grid(True, axis="y", color="0.9", lw=0.5)
        top_ax.set_title(f"column {c} (raw); {info.marks_text}", fontsize=8)
        top_ax.tick_params(labelbottom=False)
        zoom.set_title("zoom on the model", fontsize=7)
        zoom.set_xlabel("row (raw)", fontsize=7)
        if k == 0:
            top_ax.set_ylabel("ADU at level 25", fontsize=7)
            zoom.set_ylabel("ADU at level 25", fontsize=7)
            top_ax.legend(fontsize=6, loc="upper right")
    fig.suptitle(f"{unit}: {title}", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.08, top=0.9, wspace=0.25, hspace=0.25)
    return fig


def write_qa(path: Path, unit: str, combined: np.ndarray, model: np.ndarray, info: ModelInfo,
             title: str) -> Path:
    """QA PNG of :func:`qa_figure`."""
    fig = qa_figure(unit, combined, model, info, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
