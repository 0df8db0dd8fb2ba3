"""QA picture of one camera amp's residual maps (``hetred resmap``): res, sres, rres and chi as
images (fiber row against CCD column), with their ranges, the number of files and the rres
normalisation in the title."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hetred.io.atomic import atomic_path
from hetred.layout import Layout


def write_png(layout: Layout, u, maps: dict[str, np.ndarray], norm: float, nfiles: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = layout.path("resmap_png", month=u.month, specid=u.specid, amp=u.amp)
    fig = Figure(figsize=(12.0, 7.0), dpi=80)
    fig.suptitle(f"{u.month} {u.specid:03d}{u.amp}: {nfiles} multi files, rres normalisation {norm:.3f}")
    lims = {"res": (-0.02, 0.02), "sres": None, "rres": (0.8, 1.2), "chi": None}
    for k, kind in enumerate(("res", "sres", "rres", "chi")):
        ax = fig.add_subplot(2, 2, k + 1)
        m = maps[kind]
        lim = lims[kind]
        if lim is None:
            finite = m[np.isfinite(m) & (m != 0)]
            lim = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0.0, 1.0)
        im = ax.imshow(m, origin="lower", aspect="auto", vmin=lim[0], vmax=lim[1], cmap="viridis",
                       interpolation="nearest")
        ax.set_title(kind)
        ax.set_xlabel("CCD column")
        ax.set_ylabel("fiber row")
        fig.colorbar(im, ax=ax, fraction=0.04)
    with atomic_path(path) as tmp:
        FigureCanvasAgg(fig)
        fig.savefig(tmp, format="png")
    return path
