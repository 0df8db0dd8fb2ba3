"""The per-exposure focal-plane picture of all reconstructed IFU images (Karl's ``1de.png``).

Issue 6 step 8. Karl's sci/run1s runs Panacea's ``cofes_vis.py Co --output
d{date}s{obs}{exp}1de.png --vmin -20 --vmax 30`` on the exposure's CoFeS files: a 10 x 10 grid
of panels, IFU slot ``CCR`` in column CC (01..10, left to right) and row R (0..9, top to bottom),
each image drawn as stored (``origin='lower'``) with matplotlib's ``Greys`` map from vmin
(white) to vmax (black; the script's docstring says the opposite, its code does this), in
electrons per column.

hetred draws the same picture from the fplane instead of the slot-number grid: each image is
placed with its centre at (X_FP, Y_FP) arcsec (X_FP to the right, Y_FP up -- the slot grid of
cofes_vis, since the slot's first two digits grow with X_FP and its last digit falls with
Y_FP), at its true 51" size on the 100" IFU pitch, so any fplane (also a simulated one with few
slots, or one whose slots sit off the nominal grid) is drawn where it is. Slots of the fplane
without an image are outlined, and every panel carries its slot number. As in cofes_vis the
images are not rotated into the focal-plane frame (where IFU x runs along Y_FP): the picture is
a quick look for dead amps, bad sky subtraction and bright stars, not a sky mosaic.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from hetred.io.atomic import atomic_path
from hetred.layout import Layout
from hetred.sci.cofes import NPIX, PIXEL, X0, Y0
from hetred.virus.fplane import FplaneEntry

VMIN = -20.0   #: electrons per column, white (Karl's run1s --vmin)
VMAX = 30.0    #: electrons per column, black (Karl's run1s --vmax)


def _extent(e: FplaneEntry) -> tuple[float, float, float, float]:
    half = PIXEL / 2
    return (e.x_fp + X0 - half, e.x_fp + X0 + NPIX * PIXEL - half,
            e.y_fp + Y0 - half, e.y_fp + Y0 + NPIX * PIXEL - half)


def render_fplane_png(path: str | Path, images: Mapping[int, np.ndarray],
                      fplane: Mapping[int, FplaneEntry], *, title: str = "",
                      vmin: float = VMIN, vmax: float = VMAX) -> Path:
    """Draw ``images`` ({ifuslot: (51, 51)}) on the focal plane ``fplane`` ({ifuslot: entry})
    and write the PNG atomically to ``path``. Images of slots missing from the fplane are
    skipped. Returns ``path``."""
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas, no global backend
    from matplotlib.patches import Rectangle

    slots = {s: e for s, e in fplane.items() if e.is_ifu}
    boxes = np.array([_extent(e) for e in slots.values()]).reshape(-1, 4)
    pad = 10.0
    xlim = (boxes[:, 0].min() - pad, boxes[:, 1].max() + pad) if len(boxes) else (-60.0, 60.0)
    ylim = (boxes[:, 2].min() - pad, boxes[:, 3].max() + pad) if len(boxes) else (-60.0, 60.0)
    # 8" wide like cofes_vis; the height follows the focal plane's aspect (at least 3")
    height = float(np.clip(7.2 * (ylim[1] - ylim[0]) / (xlim[1] - xlim[0]), 2.2, 7.2)) + 0.8
    fig = Figure(figsize=(8.0, height), dpi=100)
    ax = fig.add_axes((0.07, 0.45 / height, 0.9, 1 - 0.8 / height))
    ax.set_facecolor("0.85")
    for slot, e in sorted(slots.items()):
        x0, x1, y0, y1 = _extent(e)
        img = images.get(slot)
        if img is not None:
            ax.imshow(np.asarray(img, dtype=np.float32), origin="lower", cmap="Greys",
                      vmin=vmin, vmax=vmax, interpolation="nearest", extent=(x0, x1, y0, y1))
        else:
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.6, ec="0.4",
                                   ls="--"))
        ax.text(x0 + 1.0, y1 - 1.0, f"{slot:03d}", fontsize=5, va="top", ha="left",
                color="tab:red" if img is not None else "0.3")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel('X_FP (")', fontsize=7)
    ax.set_ylabel('Y_FP (")', fontsize=7)
    ax.tick_params(labelsize=6)
    n_img = sum(1 for s in slots if s in images)
    ax.set_title(f"{title}  {n_img}/{len(slots)} IFUs, grey scale [{vmin:g}, {vmax:g}] e-/column",
                 fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def write_fplane_png(layout: Layout, *, night: str, obs: int, exp: int,
                     images: Mapping[int, np.ndarray], fplane: Mapping[int, FplaneEntry],
                     vmin: float = VMIN, vmax: float = VMAX) -> Path:
    """Write the exposure's ``d{night}s{obs:03d}exp{exp:02d}1de.png`` (layout key
    ``sci_fplane_png``); returns its path."""
    path = layout.path("sci_fplane_png", night=night, obs=obs, obs3=f"{obs:03d}", exp=exp)
    return render_fplane_png(path, images, fplane, vmin=vmin, vmax=vmax,
                             title=f"d{night}s{obs:03d}exp{exp:02d}")


def exposure_cofes(layout: Layout, *, night: str, obs: int, exp: int) -> dict[int, Path]:
    """{ifuslot: path} of the CoFeS files written for one exposure."""
    from hetred.layout import parse

    out: dict[int, Path] = {}
    for p in layout.glob("cofes", night=night, obs=obs, exp=exp):
        fields = parse("cofes", p.relative_to(layout.red).as_posix())
        if fields is not None:
            out[int(fields["ifuslot"])] = p
    return out


def write_exposure_png(layout: Layout, *, night: str, obs: int, exp: int,
                       fplane: Mapping[int, FplaneEntry] | None = None) -> Path | None:
    """The exposure's 1de.png from the CoFeS files on disk (call once the exposure's units are
    done). ``fplane``: the night's focal plane (read from the layout's ``fplane`` file when None).
    Returns the path, or None when the exposure has no CoFeS file.

    Raises HetredError naming the fplane file when it is needed and missing.
    """
    from hetred.errors import HetredError
    from hetred.sci.cofes import read_cofes
    from hetred.virus.fplane import read_fplane

    files = exposure_cofes(layout, night=night, obs=obs, exp=exp)
    if not files:
        return None
    if fplane is None:
        fp_path = layout.path("fplane", night=night)
        if not fp_path.exists():
            raise HetredError(f"{fp_path}: focal-plane file missing (run hetred tarlist first)")
        fplane = read_fplane(fp_path)
    images = {slot: read_cofes(p)[0] for slot, p in files.items()}
    return write_fplane_png(layout, night=night, obs=obs, exp=exp, images=images, fplane=fplane)
