"""The plots the pages make themselves (matplotlib, Agg, PNG bytes): the month's calibration
numbers per IFU slot and amp against their usual ranges, the night's response curves, and a
shot's detections (S/N and wavelength). The stages' own QA plots are linked as they are.
"""
from __future__ import annotations

import io

import numpy as np

from hetred.report.calib import AMPS, NUMBERS, CalibData
from hetred.report.settings import ReportSettings

_AMP_STYLE = {"LL": ("tab:blue", -0.27), "LU": ("tab:orange", -0.09), "RL": ("tab:green", 0.09),
              "RU": ("tab:purple", 0.27)}


def _figure(w: float, h: float, dpi: int = 80):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": "hetred"})
    return buf.getvalue()


def calib_png(c: CalibData, st: ReportSettings) -> bytes | None:
    """One panel per calibration number with a usual range: every amp (colour) of every IFU slot
    (x), the range shaded, values outside it ringed red. None when there is no number."""
    keys = [(k, lab, unit, rng) for k, lab, unit, rng in NUMBERS if rng
            and any(k in v for v in c.numbers.values())]
    if not keys:
        return None
    slots = c.slots()
    x_of = {s: i for i, s in enumerate(slots)}
    ncol = 2
    nrow = (len(keys) + 1) // 2
    width = min(16.0, max(8.0, 0.12 * len(slots) * ncol + 4))
    fig = _figure(width, 1.9 * nrow + 0.5)
    for i, (k, lab, unit, rng) in enumerate(keys):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        lo, hi = st.range(rng)
        vals = []
        for amp in AMPS:
            color, dx = _AMP_STYLE[amp]
            pts = [(x_of[s] + dx, v[k]) for (s, a), v in c.numbers.items() if a == amp and k in v and s in x_of]
            if not pts:
                continue
            xs, ys = np.array(pts).T
            vals += list(ys)
            ax.plot(xs, ys, "o", ms=3, color=color, label=amp)
            bad = (ys < lo) | (ys > hi)
            if bad.any():
                ax.plot(xs[bad], ys[bad], "o", ms=7, mfc="none", mec="red", mew=1.2)
        if vals:
            vmin, vmax = min(vals), max(vals)
            pad = 0.12 * (vmax - vmin) if vmax > vmin else 0.05 * max(abs(vmax), 1e-3)
            ax.set_ylim(vmin - pad, vmax + pad)
            ax.axhspan(lo, hi if np.isfinite(hi) else vmax + 10 * pad, color="tab:green", alpha=0.10, lw=0)
        ax.set_title(f"{lab}" + (f" ({unit})" if unit else "") + f"   usual {lo:g}–{hi:g}", fontsize=9, pad=2)
        ax.set_xlim(-0.6, len(slots) - 0.4)
        step = max(1, len(slots) // 26)
        ax.set_xticks(range(0, len(slots), step))
        if i >= len(keys) - ncol:                  # slot labels on the bottom panels only (text is slow)
            ax.set_xticklabels([f"{s:03d}" for s in slots[::step]], fontsize=7,
                               rotation=90 if len(slots) > 12 else 0)
        else:
            ax.set_xticklabels([])
        ax.tick_params(axis="y", labelsize=7)
        if i == 0:
            ax.legend(fontsize=7, ncol=4, loc="best", frameon=False, handletextpad=0.1)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.95, bottom=0.08, hspace=0.75, wspace=0.18)
    fig.text(0.5, 0.005, "IFU slot", ha="center", va="bottom", fontsize=8)
    return _png(fig)


def response_png(curves: dict[str, np.ndarray], at4540: dict[str, float]) -> bytes | None:
    """The response curves (wavelength, throughput) of the shots, response_4540 marked."""
    if not curves:
        return None
    fig = _figure(7.0, 3.6)
    ax = fig.add_axes((0.1, 0.14, 0.86, 0.76))
    for name, cv in sorted(curves.items()):
        (line,) = ax.plot(cv[:, 0], cv[:, 1], "-", lw=1.2, label=name)
        if name in at4540:
            ax.plot([4540.0], [at4540[name]], "o", color=line.get_color(), ms=5)
    ax.axvline(4540.0, color="0.6", lw=0.6, ls=":")
    ax.set_xlabel("wavelength (Å)", fontsize=9)
    ax.set_ylabel("throughput", fontsize=9)
    ax.set_title("response curves (sedtp_f.dat); dot: response_4540", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return _png(fig)


def detections_png(reports: list[dict], min_sn: float) -> bytes | None:
    """A shot's reported detections: S/N against wavelength, and their S/N histogram."""
    if not reports:
        return None
    wave = np.array([r["wave"] for r in reports], dtype=float)
    sn = np.array([r["sn"] for r in reports], dtype=float)
    fig = _figure(8.0, 2.8)
    a1 = fig.add_axes((0.07, 0.17, 0.55, 0.72))
    a1.semilogy(wave, sn, "o", ms=3, color="k")
    a1.axhline(min_sn, color="tab:red", lw=0.7, ls=":")
    a1.set_xlabel("wavelength (Å)", fontsize=8)
    a1.set_ylabel("S/N", fontsize=8)
    a1.set_title(f"{len(sn)} detections with S/N >= {min_sn:g}", fontsize=9)
    a2 = fig.add_axes((0.70, 0.17, 0.28, 0.72))
    a2.hist(np.log10(np.maximum(sn, 1e-3)), bins=20, color="0.4")
    a2.set_xlabel("log10 S/N", fontsize=8)
    for a in (a1, a2):
        a.tick_params(labelsize=7)
    return _png(fig)
