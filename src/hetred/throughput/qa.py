"""QA of ``hetred throughput``: Karl's ``DATEvOBSsedtpa.png`` (plotseda), redrawn -- the accepted
stars' throughput curves, the rejected ones, the combined curve with its error band, the fit,
and the ratio of the combined curve to the fit."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hetred.io.atomic import atomic_path
from hetred.throughput.sedfit import SED_WAVE
from hetred.throughput.shot import ShotResult


def write_png(path: Path, datevobs: str, res: ShotResult, tp: dict, source: str) -> Path:
    """Draw the QA figure to ``path`` (atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 7.0), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.1, 0.36, 0.85, 0.56])
    ar = fig.add_axes([0.1, 0.08, 0.85, 0.22], sharex=ax)
    used = [s for s in res.stars if not s.reason]
    rejected = [s for s in res.stars if s.reason and np.any(np.isfinite(s.tp))]
    for s in used:
        ax.plot(SED_WAVE, s.tp, color="0.55", lw=0.8)
    for s in rejected:
        ax.plot(SED_WAVE, s.tp, color="tab:red", lw=0.7, ls="--")
    if res.combined is not None and res.combined.n > 0:
        c = res.combined
        ax.fill_between(SED_WAVE, c.tp_low, c.tp_high, color="k", alpha=0.25, lw=0)
        ax.plot(SED_WAVE, c.tp, "k-", lw=2, label=f"combined ({c.n} stars)")
    ax.plot(tp["wavelength"], tp["throughput"], "-", color="tab:blue", lw=2,
            label="fit P(λ)(c1 + c2(λ-4500)/2000)" if source.startswith("stars") else "fallback curve")
    ax.plot([], [], color="0.55", lw=0.8, label=f"accepted stars ({len(used)})")
    ax.plot([], [], color="tab:red", lw=0.7, ls="--", label=f"rejected stars ({len(rejected)})")
    top = max(0.05, float(np.nanmax(tp["throughput"])) * 1.6)
    ax.set_ylim(0, top)
    ax.set_ylabel("throughput (360 s, 5e5 cm²)")
    ax.set_title(f"{datevobs}: response_4540 {tp['response_4540']:.4f}, FWHM {res.fwhm_used:.2f}\" "
                 f"({res.fwhm_n} stars); {source}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    if res.combined is not None and res.combined.n > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            ar.plot(SED_WAVE, res.combined.tp / np.interp(SED_WAVE, tp["wavelength"], tp["throughput"]), "k.-")
    ar.axhline(1.0, color="tab:blue", lw=1)
    ar.set_ylim(0.85, 1.15)
    ar.set_xlabel("wavelength (Å)")
    ar.set_ylabel("combined / fit")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
