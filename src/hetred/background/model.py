"""The model made from a combined background frame: the scattered-light model (default,
:mod:`hetred.background.scattered`) or Karl's imgetgap (:mod:`hetred.background.imgetgap`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred.background.imgetgap import ISMOOTH, GapResult, background_model
from hetred.background.scattered import ScatterResult, scattered_light_model
from hetred.background.settings import BgSettings


@dataclass
class ModelInfo:
    """What a method reports: header cards of ``bgmodel``, rows marked on the QA plot (1-based,
    (k, ncol)), the done marker's counts, and the method's own result."""

    method: str
    cards: list[tuple]
    marks: np.ndarray
    marks_text: str
    counts: dict
    result: GapResult | ScatterResult


def build_model(combined: np.ndarray, s: BgSettings) -> tuple[np.ndarray, ModelInfo]:
    """The background model of a combined frame with the settings' method."""
    if s.method == "karl":
        model, g = background_model(combined)
        rows = {"first": g.ixl, "gap1": g.ixm1, "gap2": g.ixm2, "last": g.ixu}
        cards = [("BGMETHOD", "karl", "Karl's imgetgap, ported exactly"),
                 ("ISINGLE", g.isingle, "bottom rows modelled one by one"),
                 ("ROWFIRST", int(np.median(g.ixl)), "median last row below fiber 1"),
                 ("ROWGAP1", int(np.median(g.ixm1)), "median lower gap row"),
                 ("ROWGAP2", int(np.median(g.ixm2)), "median upper gap row"),
                 ("ROWLAST", int(np.median(g.ixu)), "median first row above the last fiber"),
                 ("ISMOOTH", ISMOOTH, "columns per node-smoothing bin")]
        counts = {"gaps": {"isingle": g.isingle, **{k: int(np.median(v)) for k, v in rows.items()}},
                  "node_medians": [round(float(np.median(x)), 4) for x in g.xnodes]}
        return model, ModelInfo("karl", cards, np.stack(list(rows.values())),
                                "dotted: fiber edges and gaps", counts, g)
    p = s.scatter_params()
    model, r = scattered_light_model(combined, p)
    rows = {k: 1.0 + r.per_column(getattr(r, k)) for k in ("first", "gap1", "gap2", "last")}
    a, d = float(np.median(r.amp)), float(np.median(r.dark))
    cards = [("BGMETHOD", "model", "dark + scattered light (background.scattered)"),
             ("BGFIT", r.mode, "bins: a per column bin; amp: one a; constant"),
             ("KCORE", p.kernel_core, "kernel 1/(1 + (|d|/KCORE)**KPOWER), rows"),
             ("KPOWER", p.kernel_power, "kernel power"),
             ("KEXTENT", r.kernel[2], "kernel is 0 beyond KEXTENT rows"),
             ("NBINCOL", p.bin_cols, "columns per fit bin"),
             ("SLAMP", round(a, 6), "median amplitude a of the scattered light"),
             ("SLDARK", round(d, 5), "median constant d (dark), ADU"),
             ("ROWFIRST", round(float(np.median(rows["first"])), 2), "median first fiber centre row"),
             ("ROWGAP1", round(float(np.median(rows["gap1"])), 2), "median lower gap centre row"),
             ("ROWGAP2", round(float(np.median(rows["gap2"])), 2), "median upper gap centre row"),
             ("ROWLAST", round(float(np.median(rows["last"])), 2), "median last fiber centre row")]
    counts = {"gaps": {k: round(float(np.median(v)), 2) for k, v in rows.items()},
              "scatter": {"mode": r.mode, "amp_median": round(a, 6), "dark_median": round(d, 5),
                          "bin_snr_median": round(float(np.nan_to_num(np.median(r.bin_snr))), 2),
                          "amp_snr": round(float(np.nan_to_num(r.amp_snr)), 2),
                          "kernel": list(r.kernel), "rows_fitted": np.median(r.nfit, axis=0).tolist()}}
    return model, ModelInfo("model", cards, np.stack(list(rows.values())),
                            "dotted: first fiber, gaps, last fiber", counts, r)
