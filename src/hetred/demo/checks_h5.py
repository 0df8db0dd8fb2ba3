"""The HDF5 packaging (``hetred h5``, ``hetred spec2d``) in the demo, against the truth.

``stage_h5`` writes the demo shot's shot file, the survey file and flux_limits_all.txt, the fiber
index and mask, the month's detect file and the merged one, through the same units as the CLI.
``check_h5`` reads them back with PyTables: the shot file holds every fiber of every exposure
with the h5tools 0.8.7 columns, FiberIndex in the row order of Fibers; the brightest star's fibers
(by their RA/Dec, hetdex_api's 3.5" query) are those the simulator lit; and its spectrum is read
back from calfib (:mod:`hetred.h5.readback`, hetdex_api's Extract in PyTables) and compared with
its true spectrum over 4000-5400 Å -- when the calibrated fibers exist (``hetred calfib``), else
the row says what is missing. ``stage_spec2d``/``check_spec2d``: the cut-outs of every detection.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from hetred.demo.result import Check
from hetred.errors import HetredError

if TYPE_CHECKING:
    from hetred.demo.result import DemoResult


def _run(res: DemoResult, stage: str, unit: str, fn) -> list[str]:
    from hetred.jobs.units import run_unit

    r = run_unit(res.layout, stage, unit, fn, overwrite=True)
    if r.status == "failed":
        raise HetredError(f"{stage} {unit}: {r.message}")
    return r.outcome.outputs if r.outcome is not None else []


def stage_h5(res: DemoResult) -> list[str]:
    from hetred.h5 import run
    from hetred.h5.settings import H5Settings

    assert res.summary is not None
    st = H5Settings()
    out: list[str] = []
    for dvo in res.summary.shots:
        out += _run(res, run.STAGE_SHOT, dvo, lambda d=dvo: run.run_h5_shot(res.layout, d, st))
    out += _run(res, run.STAGE_SURVEY, st.release, lambda: run.run_h5_survey(res.layout, st))
    out += _run(res, run.STAGE_FIBERINDEX, st.release, lambda: run.run_h5_fiberindex(res.layout, st))
    out += _run(res, run.STAGE_DETECT, res.month, lambda: run.run_h5_detect(res.layout, res.month, st))
    out += _run(res, run.STAGE_DETECT_MERGE, st.release, lambda: run.run_h5_detect_merge(res.layout, st))
    return out


def _shot_problems(path, n_amps: int) -> int:
    import tables as tb

    from hetred.h5.schema import columns, dtype

    bad = 0
    with tb.open_file(str(path), "r") as f:
        fib, idx = f.root.Data.Fibers, f.root.Data.FiberIndex
        bad += fib.nrows != n_amps * 112
        bad += fib.dtype != dtype(columns("fibers")) or idx.dtype != dtype(columns("shot_fiberindex"))
        bad += f.root.Data.Images.nrows != n_amps
        bad += int(np.sum(fib.cols.fiber_id[:] != idx.cols.fiber_id[:]))
        bad += int(np.sum([len(s) != 38 for s in idx.cols.fiber_id[:]]))
    return int(bad)


def true_flam(star: dict, shot: dict, wave: np.ndarray) -> np.ndarray:
    """A truth star's f_lambda (1e-17 erg/s/cm^2/Å) at ``wave``: its stellar template (``model``,
    with the shot's E(B-V)) when the simulator drew one, else the analytic SED of its Teff."""
    if "model" in star:
        from hetred.sim import stars as sim_stars

        lib = sim_stars.templates()
        m = int(np.nonzero(lib.rows == star["model"])[0][0])
        return np.interp(wave, lib.wave, sim_stars.star_sed(m, star["g"], shot.get("ebv", 0.0))) * 1e17
    from hetred.sim.photometry import stellar_sed

    return stellar_sed(star["teff"], star["g"], wave) * 1e17


def _curve_stars(res: DemoResult, dvo: str) -> set[str]:
    """Ids of the stars in the shot's response curve (stars.dat without a reason)."""
    from hetred.throughput.products import read_stars

    p = res.layout.path("tp_stars", month=res.month, datevobs=dvo)
    return {s["id"] for s in read_stars(p) if not s["reason"]} if p.exists() else set()


def _curve_error(res: DemoResult, dvo: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(wavelength Å, the shot's sedtp_f / truth) over 3700-5400 Å, or None without a curve."""
    from hetred.demo.checks_tp import read_truth, throughput_ratio

    if not res.layout.path("throughput", month=res.month, datevobs=dvo).exists():
        return None
    r = throughput_ratio(res.layout, res.month, dvo, read_truth(res.layout, dvo[:8], dvo, res.month))
    return r["wave"], r["fit"]


def check_h5(res: DemoResult) -> list[Check]:
    from hetred.h5.readback import extract, fibers_near
    from hetred.h5.settings import H5Settings

    assert res.summary is not None
    st = H5Settings()
    rows = []
    dvo = res.summary.shots[0]
    night = dvo[:8]
    truth = json.loads(res.layout.path("truth_shot", night=night, datevobs=dvo).read_text())
    path = res.layout.path("h5_shot", name=st.release, datevobs=dvo)
    n_amps = 3 * 4 * len(res.summary.ifuslots)
    bad = _shot_problems(path, n_amps)
    rows.append(Check("h5", f"shot file: {n_amps * 112} fibers, FiberIndex = Fibers order, 0.8.7 columns, "
                            "38-char fiber_id (problems)", bad, "0", bad == 0))
    stars = sorted(truth["stars"], key=lambda s: s["g"])
    if not stars:
        return rows
    used = _curve_stars(res, dvo)        # stars of the response curve: not blended, measured
    if used:
        stars = [s for s in stars if f"{s['id']:019d}" in used] or stars
    star = stars[0]
    lit = {f"{s['multiframe']}_{int(s['fiber']):03d}_{e}" for e, fl in star["fibers"].items() for s in fl
           if s["fraction"] > 0.05}
    _, found = fibers_near(path, star["ra"], star["dec"], 3.5)
    got = set() if found is None else {f"{r['multiframe'].decode()}_{r['fibnum']:03d}_{r['expnum']}" for r in found}
    frac = len(lit & got) / max(1, len(lit))
    rows.append(Check("h5", f"brightest star (g {star['g']:.1f}): its fibers with > 5 % of its light found "
                            "within 3.5\" by RA/Dec", frac, ">= 0.95", frac >= 0.95))
    with __import__("tables").open_file(str(path), "r") as f:
        has_cal = bool(np.any(f.root.Data.Fibers.cols.calfibe[:448] > 0))   # the first row may be dead
    if not has_cal:
        rows.append(Check("h5", "star spectrum from calfib: no calibrated fibers (hetred calfib not run)",
                          float("nan"), "needs calfib", True))
        return rows
    ex = extract(path, star["ra"], star["dec"], truth["fwhm"])
    true = true_flam(star, truth, ex.wave)
    curve = _curve_error(res, dvo)
    worst = worst_own = 0.0
    for lo in range(4000, 5400, 100):
        sel = (ex.wave >= lo) & (ex.wave < lo + 100)
        r = float(np.nanmean(ex.flam[sel] / true[sel]))
        worst = max(worst, abs(r - 1.0))
        if curve is not None:
            worst_own = max(worst_own, abs(r * float(np.interp(lo + 50.0, *curve)) - 1.0))
    n_ifu = len(res.summary.ifuslots)
    if curve is None or n_ifu >= 15:
        rows.append(Check("h5", f"star (g {star['g']:.1f}) spectrum read back (calfib, PSF-weighted) / truth - 1, "
                                "worst 100-A bin 4000-5400 A", worst, "<= 0.05", worst <= 0.05))
    else:
        # a 2-IFU shot's response curve is good to ~2-3 % only (throughput rows: information below
        # 15 IFUs): the absolute number carries it; the read-back is judged with it taken out
        rows.append(Check("h5", f"star (g {star['g']:.1f}) spectrum read back (calfib, PSF-weighted) / truth - 1, "
                                "worst 100-A bin 4000-5400 A", worst,
                          f"info ({n_ifu} IFUs: the curve's error)", True))
        rows.append(Check("h5", "the same with the shot's curve error (sedtp_f / truth) taken out", worst_own,
                          "<= 0.05", worst_own <= 0.05))
    return rows


def stage_spec2d(res: DemoResult) -> list[str]:
    from hetred.h5 import run
    from hetred.h5.settings import H5Settings
    from hetred.h5.spec2d import STAGE, STAGE_MERGE

    assert res.summary is not None
    st = H5Settings()
    out: list[str] = []
    for dvo in res.summary.shots:
        out += _run(res, STAGE, dvo, lambda d=dvo: run.run_spec2d(res.layout, d, st))
    out += _run(res, STAGE_MERGE, st.release, lambda: run.run_spec2d_merge(res.layout, st))
    return out


def check_spec2d(res: DemoResult) -> list[Check]:
    import tables as tb

    from hetred.h5.settings import H5Settings

    st = H5Settings()
    with tb.open_file(str(res.layout.path("h5_detect", name=st.release)), "r") as f:
        n_det = f.root.Detections.nrows
    with tb.open_file(str(res.layout.path("spec2d_merged", name=st.release)), "r") as f:
        n_img = f.root.FiberImages.nrows
        n_spec = f.root.Spec1D.nrows
    bad = abs(n_img - n_det) + abs(n_spec - n_det)
    return [Check("spec2d", f"cut-outs and spectra for every detection ({n_det})", bad, "0 missing", bad == 0)]
