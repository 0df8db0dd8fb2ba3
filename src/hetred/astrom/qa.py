"""QA pictures of the astrometry (Karl's match plots and vdrp's ``ang_off.pdf``), as PNG.

* :func:`match_png`, per exposure: the focal plane (arcsec; IFU outlines from the fplane, x =
  IFU x + Y_FP as the detections are placed), the detected stars (red +), the catalogue stars
  projected with the exposure's fitted pointing (green x) and, for the pairs of the last matching
  radius, the offset detection - catalogue magnified 50 times (blue arrows), with the numbers of
  the fit in the title;
* :func:`angoff_png`: the pair rms against the trial rotation offset per exposure, the smoothing
  spline, each exposure's optimum and the weighted one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hetred.astrom.solve import ShotSolution
from hetred.io.atomic import atomic_path
from hetred.virus.coords import radec_to_tangent, rotation_angle

ARROW = 50.0     #: magnification of the offsets
COLORS = ("tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def match_png(sol: ShotSolution, k: int, path: str | Path) -> Path:
    """The match picture of exposure ``k`` (0-based index into the shot's exposures)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    inp, fit, placed = sol.input, sol.fits[k], sol.placed[k]
    e = inp.exposures[k]
    fig = Figure(figsize=(8, 8), dpi=100)
    ax = fig.add_subplot(111)
    for slot, ent in inp.fplane.items():
        if not ent.is_ifu:
            continue
        ax.add_patch(Rectangle((ent.y_fp - 25, ent.x_fp - 25), 50, 50, fill=False, lw=0.5, color="0.6"))
        ax.text(ent.y_fp - 24, ent.x_fp - 24, f"{slot:03d}", fontsize=5, color="0.4")
    ax.plot(placed.xfp, placed.yfp, "+", color="tab:red", ms=5, label=f"detected ({len(placed)})")
    cx, cy = radec_to_tangent(inp.catalog["ra"], inp.catalog["dec"], fit.ra, fit.dec, rotation_angle(fit.pa))
    ax.plot(cx, cy, "x", color="tab:green", ms=5, label=f"catalogue ({len(cx)})")
    g = fit.last
    if g.n:
        dx = placed.xfp[g.det] - cx[g.cat]
        dy = placed.yfp[g.det] - cy[g.cat]
        ax.quiver(cx[g.cat], cy[g.cat], dx * ARROW, dy * ARROW, angles="xy", scale_units="xy", scale=1,
                  color="tab:blue", width=0.003, label=f"pairs ({g.n}), offset x{ARROW:g}")
    ax.set_xlim(-300, 300) if not len(placed) else ax.set_xlim(min(-300, placed.xfp.min() - 30),
                                                                max(300, placed.xfp.max() + 30))
    ax.set_ylim(-300, 300) if not len(placed) else ax.set_ylim(min(-300, placed.yfp.min() - 30),
                                                                max(300, placed.yfp.max() + 30))
    ax.set_aspect("equal")
    ax.set_xlabel("focal plane x = IFU x + Y_FP (arcsec)")
    ax.set_ylabel("focal plane y = IFU y + X_FP (arcsec)")
    ax.set_title(f"{inp.name} exp{e.index:02d}: ra {fit.ra:.6f} dec {fit.dec:.6f} pa {fit.pa:.4f}\n"
                 f"{g.n} pairs within {sol.settings.radii[-1]:g}\", rms {g.s_ra:.2f}\" (RA) {g.s_dec:.2f}\" (Dec)",
                 fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    return _save(fig, Path(path))


def angoff_png(sol: ShotSolution, path: str | Path) -> Path:
    """Pair rms against the trial rotation offset (vdrp ``ang_off.pdf``)."""
    from matplotlib.figure import Figure
    from scipy.interpolate import UnivariateSpline

    fig = Figure(figsize=(7, 5), dpi=100)
    ax = fig.add_subplot(111)
    angles = sorted(a for a in sol.trials if a in sol.settings.angoff_trials or a == sol.settings.angoff)
    for k, e in enumerate(sol.input.exposures):
        a = np.array([x for x in angles if sol.trials[x][k].last.n > 0])
        r = np.array([sol.trials[x][k].last.rms for x in a])
        c = COLORS[k % len(COLORS)]
        ax.plot(a, r, "o", color=c, label=f"exp{e.index:02d}")
        if len(a) > 3:
            grid = np.linspace(a.min(), a.max(), 200)
            ax.plot(grid, UnivariateSpline(a, r, s=sol.settings.smoothing)(grid), "-", color=c)
    for o in sol.optima:
        ax.axvline(o.angle, color=COLORS[(o.exposure - 1) % len(COLORS)], lw=0.8, ls=":")
    if np.isfinite(sol.optimum):
        ax.axvline(sol.optimum, color="k", lw=1.2, label=f"optimum {sol.optimum:.4f} deg")
    ax.axvline(sol.angle, color="0.5", lw=0.8, ls="--", label=f"used {sol.angle:.4f} deg")
    ax.set_xlabel("rotation offset added to PARANGLE (deg)")
    ax.set_ylabel("pair rms sqrt(s_ra^2 + s_dec^2) (arcsec)")
    ax.set_title(f"{sol.input.name}: rotation trials", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))
