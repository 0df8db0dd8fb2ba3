"""Truth of the background models (for tests and ``hetred demo``; reduction code never imports it).

The stage ``hetred bgmodel`` combines frames scaled to level 25; its truth is the biweight, over
the same kept frames, of the simulator's noiseless background (halo x pixel flat + dark, ADU,
raw orientation) divided by each frame's measured level.
"""
from __future__ import annotations

import warnings

import numpy as np

from hetred.sim import almanac
from hetred.sim.archive import ArchivePlan
from hetred.sim.frame import AmpModel, background_adu, night_contexts
from hetred.stats import biweight


class BackgroundTruth:
    """Caches amp models and exposure contexts of one simulated archive plan."""

    def __init__(self, plan: ArchivePlan) -> None:
        self.plan = plan
        self._ctx = {c.exposure.stamp: (n.night, c) for n in plan.nights
                     for c in night_contexts(plan.seed, n, plan.slots)}
        self._models: dict[tuple[str, int, str], AmpModel] = {}

    def combined(self, ifuslot: int, amp: str, frames: list[dict]) -> np.ndarray:
        """(1032, 1032) float32: truth of a unit's combined frame from its marker's frame records
        (dicts with ``member``, ``level`` and ``verdict``; only ``used`` frames count)."""
        slot = next(s for s in self.plan.slots if s.ifuslot == ifuslot)
        out = []
        for f in frames:
            if f["verdict"] != "used":
                continue
            night, ctx = self._ctx[f["member"].rsplit("/", 1)[1].split("_")[0]]
            key = (night, ifuslot, amp)
            if key not in self._models:
                self._models[key] = AmpModel(self.plan.seed, night, slot, amp, almanac.night_start(night),
                                               self.plan.optics_family)
            out.append(background_adu(self._models[key], ctx) / np.float32(f["level"]))
        return biweight(np.asarray(out, np.float32), axis=0)[0]


def regions(g, nrow: int = 1032) -> dict[str, np.ndarray]:
    """Karl's regions per column (1-based rows) from imgetgap's fiber edges and gaps ``g``: below
    the first fiber, the two 9-row gap windows, above the last fiber, and the three fiber blocks."""
    r = np.arange(1, nrow + 1)[:, None]
    return {
        "below": (r >= np.where(g.ixl >= 11, 6, 1)) & (r <= g.ixl),
        "gap1": np.abs(r - g.ixm1) <= 4, "gap2": np.abs(r - g.ixm2) <= 4, "above": r >= g.ixu,
        "block1": (r > g.ixl) & (r < g.ixm1 - 4), "block2": (r > g.ixm1 + 4) & (r < g.ixm2 - 4),
        "block3": (r > g.ixm2 + 4) & (r < g.ixu),
    }


def recovery(model: np.ndarray, truth: np.ndarray, g, tol_floor: float, nbin: int = 16) -> dict[str, dict]:
    """Per region: model and truth averaged over the region's rows in each column, medians over
    bins of ``nbin`` columns; relative errors of the bins and the fraction of bins within
    max(10 %, ``tol_floor``). A region without any row in the frame is left out."""
    out = {}
    ncol = model.shape[1] // nbin * nbin
    for name, mask in regions(g).items():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)        # all-NaN columns and bins
            t = np.nanmean(np.where(mask, truth, np.nan), axis=0)[:ncol].reshape(-1, nbin)
            m = np.nanmean(np.where(mask, model, np.nan), axis=0)[:ncol].reshape(-1, nbin)
            t, m = np.nanmedian(t, axis=1), np.nanmedian(m, axis=1)
        ok = np.isfinite(t) & np.isfinite(m)
        if not ok.any():          # Karl's rows leave no row in this region (e.g. no row above
            continue              # the last fiber in a faint sci combination): nothing to compare
        t, m = t[ok], m[ok]
        rel = (m - t) / t
        within = np.abs(m - t) <= np.maximum(0.1 * np.abs(t), tol_floor)
        out[name] = {"truth": float(np.median(t)), "median_rel": float(np.median(rel)),
                     "max_abs_rel": float(np.max(np.abs(rel))), "within": float(within.mean()),
                     "bins": int(t.size)}
    return out
