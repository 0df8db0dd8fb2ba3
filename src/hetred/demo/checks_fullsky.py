"""``hetred resmap`` and ``hetred fullsky`` in the demo and their measures against the truth
(shared with tests/stages/test_fullsky.py and test_resmap.py).

Definitions (docs/stages/fullsky.md, resmap.md):

* **Factor, W0, W1**: vred3 measures them against the exposure's master sky, whose level and
  wavelength frame are those of the amps together, so the truth is compared up to one common
  scale (Factor: the median of recovered / truth) and one common offset (W0, W1: the median of
  recovered - truth) per exposure. Reported: the largest and the rms deviation over the amps.
  With a library whose throughput is not the truth's (the demo night: twical's), the truth factor
  is divided by the library's throughput error of the amp (:func:`calibration_ratio`).
* **N_c**: continuum fibers found vs injected, on amps that no star of the scene reaches.
* **residual** of blank fibers (no source, not dead, ftf >= 0.3) over 3700-5400 Å in sub.fits:
  mean / mean sky (both in sub.fits' units), and the biweight scale of sub / (its expected noise:
  the input error1d in the same units through the linear interpolation onto the grid, weights
  (1 - t) and t), per amp.
* **resmap**: the amplitude of the injected pattern in res (least squares: sum res p / sum p^2)
  and rres's normalisation (NORM) for right errors and for errors wrong by 20 %.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hetred.demo.result import Check

if TYPE_CHECKING:
    from hetred.demo.result import DemoResult

BAND = (3700.0, 5400.0)
#: the demo's wide exposure: IFU slots simulated at the level of the extracted fibers
WIDE_IFUS = 78
RESMAP_SHOTS = 34          #: 102 files per amp


@dataclass
class AmpTruth:
    name: str
    factor: float
    w0: float
    w1: float
    ncont: int


def compare(rec: dict[str, tuple[float, float, float, int]], truth: dict[str, AmpTruth],
            calib: dict[str, float] | None = None) -> dict:
    """Deviations of recovered (Factor, W0, W1 per Å, N_c) from the truth per amp name, up to a
    common scale / offset (module docstring). ``calib``: the library's throughput error per amp."""
    names = [n for n in rec if n in truth]
    f = np.array([rec[n][0] for n in names])
    ft = np.array([truth[n].factor / (calib or {}).get(n, 1.0) for n in names])
    w0 = np.array([rec[n][1] for n in names])
    w0t = np.array([truth[n].w0 for n in names])
    w1 = np.array([rec[n][2] for n in names]) * 1e3
    w1t = np.array([truth[n].w1 for n in names]) * 1e3
    nc = np.array([rec[n][3] for n in names])
    nct = np.array([truth[n].ncont for n in names])
    if not names:
        return {"n": 0}
    c = float(np.median(f / ft))
    ef = np.abs(f - c * ft)
    e0 = np.abs(w0 - w0t - np.median(w0 - w0t))
    e1 = np.abs(w1 - w1t - np.median(w1 - w1t))
    return {"n": len(names), "factor_max": float(ef.max()), "factor_rms": float(np.sqrt(np.mean(ef ** 2))),
            "w0_max": float(e0.max()), "w0_rms": float(np.sqrt(np.mean(e0 ** 2))),
            "w1_max": float(e1.max()), "w1_rms": float(np.sqrt(np.mean(e1 ** 2))),
            "w0_over": int(np.sum(e0 > 0.05)), "w1_over": int(np.sum(e1 > 0.05)),
            "nc_bad": int(np.sum(nc != nct)), "nc_total": int(nct.sum()), "names": names}


def residual_metrics(sub: np.ndarray, wave: np.ndarray, w0: float, w1: float, ftf: np.ndarray, a2a: float,
                     error: np.ndarray, sky: np.ndarray, blank: np.ndarray, st) -> tuple[float, float]:
    """(mean residual / mean sky, biweight scale of residual / expected noise) over the blank
    fibers' bins in ``BAND`` of one amp (module docstring). sub: (112, nwave) sub.fits rows;
    wave, ftf, error, sky: (112, 1032) multi-file arrays (e-); blank: (112,) bool."""
    from hetred.stats import biweight

    grid = st.grid
    sel = (grid >= BAND[0]) & (grid <= BAND[1])
    num = den = 0.0
    ratios = []
    for j in np.nonzero(blank)[0]:
        w = np.asarray(wave[j], np.float64)
        disp = np.gradient(w)
        unit = st.dwave / disp / np.where(ftf[j] > 0, ftf[j], np.nan) / a2a
        win = w + w0 + w1 * (st.w1_pivot - w)
        i = np.searchsorted(win, grid[sel]) - 1
        ok = (i >= 0) & (i < w.size - 1)
        i = np.clip(i, 0, w.size - 2)
        t = (grid[sel] - win[i]) / (win[i + 1] - win[i])
        e_a, e_b = error[j][i] * unit[i], error[j][i + 1] * unit[i + 1]
        ok &= (error[j][i] > 0) & (error[j][i + 1] > 0) & np.isfinite(e_a) & np.isfinite(e_b)
        sig = np.sqrt((1 - t) ** 2 * e_a ** 2 + t ** 2 * e_b ** 2)
        s_sky = ((1 - t) * sky[j][i] * unit[i] + t * sky[j][i + 1] * unit[i + 1])
        val = sub[j][sel]
        ok &= val != 0
        num += float(val[ok].sum())
        den += float(s_sky[ok].sum())
        ratios.append(val[ok] / sig[ok])
    if not ratios or den <= 0:
        return float("nan"), float("nan")
    r = np.concatenate(ratios)
    return num / den, float(biweight(r.astype(np.float32))[1])


# ------------------------------------------------------------------------------------------------
# the wide exposure at the level of the extracted fibers (hetred.sim.fullsky_exposure)

def fiber_exposure_metrics(ex, result, st) -> dict:
    """:func:`compare` and :func:`residual_metrics` for a simulated fiber-level exposure ``ex``
    reduced in memory into ``result`` (:class:`hetred.fullsky.vred3.ExposureResult`)."""
    rec = {r.name: (r.factor, r.w0, r.w1, r.ncont) for r in result.amps if r.reduced}
    truth = {a.name: AmpTruth(a.name, a.truth.factor, a.truth.w0, a.truth.w1, len(a.truth.fibers)) for a in ex.amps}
    out = compare(rec, truth)
    by = {r.name: r for r in result.amps}
    means, scales = [], []
    for a in ex.amps:
        r = by.get(a.name)
        if r is None or not r.reduced:
            continue
        blank = np.ones(112, bool)
        blank[list(a.truth.fibers)] = False
        blank[[d - 1 for d in a.dead]] = False
        blank &= np.median(a.ftf, axis=1) >= st.ftf_min
        m, s = residual_metrics(r.sub, a.wave, r.w0, r.w1, a.ftf, a.a2a, a.error, a.sky, blank, st)
        means.append(m)
        scales.append(s)
    out["resid_mean_max"] = float(np.nanmax(np.abs(means))) if means else float("nan")
    out["resid_scale"] = (float(np.nanmin(scales)), float(np.nanmax(scales))) if scales else (np.nan, np.nan)
    out["flagged"] = sum(1 for r in result.amps if not r.reduced)
    return out


def stage_fullsky_wide(res: "DemoResult") -> list[str]:
    """Simulate the wide exposure (``WIDE_IFUS`` IFUs) at the fiber level and reduce it in memory."""
    from hetred.fullsky.settings import FullskySettings
    from hetred.fullsky.vred3 import AmpInput, reduce_exposure
    from hetred.sim.focalplane import choose_slots
    from hetred.sim.fullsky_exposure import simulate_fiber_exposure

    t0 = time.perf_counter()
    ex = simulate_fiber_exposure(choose_slots(None, WIDE_IFUS), seed=res.summary.seed if res.summary else 0)
    t1 = time.perf_counter()
    st = FullskySettings()
    amps = sorted(ex.amps, key=lambda a: a.name)
    c0 = time.process_time()
    result = reduce_exposure([AmpInput(a.name, a.spectrum, a.wave, a.ftf, a.a2a) for a in amps], st)
    cpu = time.process_time() - c0
    res.extra["fullsky_wide"] = {"metrics": fiber_exposure_metrics(ex, result, st), "cpu": cpu,
                                 "sim_seconds": t1 - t0, "amps": len(amps)}
    return []


# ------------------------------------------------------------------------------------------------
# the demo night (raw frames through every stage)

def shot_truth(layout, night: str, datevobs: str) -> tuple[dict[tuple[int, str], AmpTruth], set[str]]:
    """({(exp, amp name): truth}, amp names a star of the scene reaches) from the shot truth."""
    import json

    t = json.loads(layout.path("truth_shot", night=night, datevobs=datevobs).read_text())
    out = {}
    for r in t.get("sky_variation", {}).get("amps", []):
        name = r["multiframe"][6:]
        out[(r["exp"], name)] = AmpTruth(name, r["factor"], r["w0"], r["w1"], len(r["continuum_fibers"]))
    starred = {f["multiframe"][6:] for s in t.get("stars", []) for e in s["fibers"].values() for f in e}
    return out, starred


def calibration_ratio(layout, month: str, night: str, name: str) -> float:
    """The library's throughput of an amp over the truth's: the median over live fibers and
    3700-5400 Å of (library ftf x a2a) / (truth FIBER_TO_FIBER x (1 - HALOFRAC) x GAIN_HDR /
    GAIN_TRU) -- what a sky-level factor measured against the library carries from the
    calibration."""
    from astropy.io import fits

    from hetred.fibers.library import read_library

    sp, slot, ifuid, amp = name.split("_")
    lib = read_library(layout.path("callib", month=month, specid=int(sp), ifuslot=int(slot), ifuid=ifuid, amp=amp))
    with fits.open(layout.path("truth_amp", night=night, ifuslot=int(slot), amp=amp)) as t:
        h = t[0].header
        true = t["FIBER_TO_FIBER"].data * (1 - float(h["HALOFRAC"])) * float(h["GAIN_HDR"]) / float(h["GAIN_TRU"])
        wave = t["WAVELENGTH"].data
    live = ~lib["dead"]
    sel = (wave >= BAND[0]) & (wave <= BAND[1]) & live[:, None] & (true > 0)
    return float(np.median((lib["fiber_to_fiber"] * lib["amp_to_amp"])[sel] / true[sel]))
