"""The exposure's QA picture of ``hetred fullsky``: the master sky, and each amp's Factor, Scale
and W0 across the focal plane (what Karl looked at in ds9 on sub.fits with the red labels).

Top: the exposure's master sky (sky.dat) against wavelength. Below, three focal-plane panels:
every amp a square at its IFU's position (the night's fplane ``fplane/fp{night}.txt``; nominal
positions from the slot number when it is missing), the four amps of an IFU in the quadrants
LL lower left, LU upper left, RL lower right, RU upper right, coloured by Factor (0.9-1.1),
Scale and W0 (-1..1 Å); flagged amps (not reduced) grey, amps red by vred3's rules outlined red.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hetred.io.atomic import atomic_path
from hetred.layout import Layout

QUADRANT = {"LL": (-1, -1), "LU": (-1, 1), "RL": (1, -1), "RU": (1, 1)}


def slot_positions(layout: Layout, night: str, slots: set[int]) -> dict[int, tuple[float, float]]:
    """{ifuslot: (X_FP, Y_FP) arcsec} from the night's fplane, else nominal (X = (xid - 5.5) 100",
    Y = (4.5 - yid) 100", slot = xid yid; hetdex_formats.md §2.4)."""
    out: dict[int, tuple[float, float]] = {}
    fp = layout.path("fplane", night=night)
    if fp.exists():
        from hetred.virus.fplane import read_fplane

        out = {s: (e.x_fp, e.y_fp) for s, e in read_fplane(fp).items() if s in slots}
    for s in slots - set(out):
        out[s] = ((s // 10 - 5.5) * 100.0, (4.5 - s % 10) * 100.0)
    return out


def render(path: Path, title: str, master_wave: np.ndarray, master_sky: np.ndarray, rows: list,
           red: list[bool], positions: dict[int, tuple[float, float]]) -> Path:
    """Draw the picture (module docstring) into ``path`` atomically."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(12.0, 8.0), dpi=80)
    ax = fig.add_axes((0.06, 0.62, 0.9, 0.32))
    if len(master_wave):
        ax.plot(master_wave, master_sky, lw=0.6, color="k")
    ax.set_xlabel("wavelength (Å)")
    ax.set_ylabel("master sky (e- per 2 Å / ftf)")
    ax.set_title(title)
    scale = np.array([r.scale for r in rows if not r.why]) if rows else np.zeros(0)
    smax = float(np.nanpercentile(scale, 98)) if scale.size else 20.0
    panels = (("Factor", lambda r: r.factor, (0.9, 1.1)), ("Scale", lambda r: r.scale, (0.0, max(smax, 1.0))),
              ("W0 (Å)", lambda r: r.w0, (-1.0, 1.0)))
    cmap = colormaps["viridis"]
    xs = [p[0] for p in positions.values()] or [0.0]
    ys = [p[1] for p in positions.values()] or [0.0]
    for i, (label, get, lim) in enumerate(panels):
        pax = fig.add_axes((0.05 + 0.32 * i, 0.06, 0.26, 0.46))
        norm = Normalize(*lim)
        for r, bad in zip(rows, red):
            slot = int(r.name.split("_")[1])
            if slot not in positions:
                continue
            qx, qy = QUADRANT.get(r.name[-2:], (0, 0))
            x0, y0 = positions[slot][0] + 12.5 * qx - 12.5, positions[slot][1] + 12.5 * qy - 12.5
            face = "0.7" if r.why else cmap(norm(get(r)))
            pax.add_patch(Rectangle((x0, y0), 25.0, 25.0, facecolor=face,
                                    edgecolor="red" if (bad or r.why) else "none", lw=1.2))
        pax.set_xlim(min(xs) - 60, max(xs) + 60)
        pax.set_ylim(min(ys) - 60, max(ys) + 60)
        pax.set_aspect("equal")
        pax.set_title(label)
        pax.set_xlabel("X_FP (\")")
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=pax, fraction=0.046, pad=0.02)
    with atomic_path(path) as tmp:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        fig.savefig(tmp, format="png")
    return path


def write_exposure_png(layout: Layout, u, res, red: list[bool]) -> Path:
    """The PNG of one exposure unit (``layout`` key ``fullsky_png``)."""
    path = layout.path("fullsky_png", **u.keys())
    slots = {int(r.name.split("_")[1]) for r in res.amps}
    ok = [r for r in res.amps if not r.why]
    title = (f"{u.unit}: {len(ok)}/{len(res.amps)} amps reduced, {sum(red)} red; "
             f"Factor {min((r.factor for r in ok), default=0):.3f}-{max((r.factor for r in ok), default=0):.3f}")
    return render(path, title, res.master_wave, res.master_sky, res.amps, red,
                  slot_positions(layout, u.night, slots))
