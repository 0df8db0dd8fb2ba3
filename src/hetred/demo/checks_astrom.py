"""The astrometry (``hetred astrom``) in the demo, against the simulator's truth.

Two shots:

* the demo night's science shot, reduced by every stage before (its 2 IFUs): ``hetred astrom``
  inside the layout, checked against the truth pointing, rotation and transparency;
* a shot of 20 IFUs spread over the focal plane at the level of the reconstructed images
  (:func:`hetred.sim.cofes_shot.simulate_cofes_shot`; stars g 16.5-21.5 over the whole IFU), run
  outside the layout (``hetred astrom --images``): with 20 IFUs the rotation is measured, and the
  checks are the issue's acceptance: every fiber's RA/Dec within 0.1" rms of the truth, PA within
  0.01 deg, norm.dat within 0.5 % of the injected transparency ratios.

The simulated telescope dithers by :data:`hetred.virus.coords.DITHERS` (vdrp's 1.27, -/+0.73);
the demo tells ``hetred astrom`` so through its ``dithers`` setting (Karl's production values
1.215, -/+0.70 are the default).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from hetred.demo.result import Check
from hetred.errors import HetredError

if TYPE_CHECKING:
    from hetred.demo.result import DemoResult

#: the 20 IFU slots of the rotation shot: corners, edges and centre of the focal plane
WIDE_SLOTS = (15, 22, 27, 33, 36, 42, 44, 47, 52, 53, 63, 72, 75, 82, 85, 86, 93, 96, 103, 106)
AMPS = ("LL", "LU", "RL", "RU")


def _settings():
    from hetred.astrom.settings import AstromSettings
    from hetred.virus.coords import DITHERS

    return AstromSettings.from_config({"dithers": [v for d in DITHERS for v in d]})


def stage_astrom(res: DemoResult) -> list[str]:
    """Both shots (module docstring); the wide shot's truth pointing goes to its own folder."""
    from hetred.astrom.run import STAGE, AstromUnit, run_astrom, run_folder
    from hetred.jobs.units import run_unit
    from hetred.sim.cofes_shot import simulate_cofes_shot
    from hetred.sim.focalplane import slot_entry
    from hetred.virus.ids import parse_datevobs

    assert res.summary is not None
    settings = _settings()
    outputs: list[str] = []
    for dvo in res.summary.shots:
        night, obs = parse_datevobs(dvo)
        unit = AstromUnit(night, obs)
        r = run_unit(res.layout, STAGE, unit.unit, lambda u=unit: run_astrom(res.layout, u, settings), overwrite=True)
        if r.status == "failed":
            raise HetredError(f"astrom {dvo}: {r.message}")
        assert r.outcome is not None
        outputs += r.outcome.outputs
    wide = res.root / "astrom_wide"
    shot = simulate_cofes_shot(wide / "in", [slot_entry(s) for s in WIDE_SLOTS], seed=res.summary.seed)
    sc = shot.scene
    (wide / "truth.json").write_text(json.dumps({
        "ra0": sc.ra0, "dec0": sc.dec0, "pa": sc.pa, "angoff": sc.angoff,
        "transparency": [float(t) for t in sc.transparency], "slots": list(WIDE_SLOTS)}))
    _, written = run_folder(wide / "out", settings, radec=wide / "in" / "radec.orig", fplane=wide / "in" / "fplane.txt",
                            catalog=wide / "in" / "shout.ifustars", images=wide / "in", name="wide")
    return outputs + written


def fiber_errors(dith: dict, fplane: dict, ra0: float, dec0: float, pa: float) -> np.ndarray:
    """Per fiber of a dithall table, the distance (arcsec) between its RA/Dec and the truth (the
    simulator's placement: hetred.virus.coords.fiber_radec with the true pointing and pa)."""
    from hetred.virus.coords import fiber_radec
    from hetred.virus.ifu import amp_positions

    out = np.zeros(len(dith["ra"]))
    cache: dict = {}
    for k, (ra, dec, mf, ex) in enumerate(zip(dith["ra"], dith["dec"], dith["multifits"], dith["exposure"])):
        p = mf.split("_")
        slot, amp, fib, exp = int(p[2]), p[4], int(p[5][:3]), int(ex[3:])
        key = (slot, amp, exp)
        if key not in cache:
            cache[key] = fiber_radec(fplane[slot], amp_positions(amp, fplane[slot].ifuid), exp, ra0, dec0, pa)
        tr, td = cache[key][0][fib - 1], cache[key][1][fib - 1]
        out[k] = np.hypot((ra - tr) * np.cos(np.radians(td)), dec - td) * 3600.0
    return out


def _rows(label: str, dith: dict, fplane: dict, final: tuple[float, float, float], norm: list[float],
          truth: dict, tol_fib: float, tol_pa: float, tol_norm: float) -> list[Check]:
    err = fiber_errors(dith, fplane, truth["ra0"], truth["dec0"], truth["pa"])
    rms = float(np.sqrt(np.mean(err ** 2)))
    dpa = abs((final[2] - truth["pa"] + 180.0) % 360.0 - 180.0)
    t = np.asarray(truth["transparency"], float)
    dn = float(np.max(np.abs(np.asarray(norm) / (t / t.mean()) - 1.0)) * 100.0)
    return [Check("astrom", f"{label}: fiber RA/Dec - truth, rms over {len(err)} fibers", rms,
                  f'<= {tol_fib:g}"', rms <= tol_fib, '"'),
            Check("astrom", f"{label}: PA - truth (PARANGLE + fitted rotation)", dpa, f"<= {tol_pa:g} deg",
                  dpa <= tol_pa, "deg"),
            Check("astrom", f"{label}: norm.dat / injected transparency ratio - 1 (worst exposure)", dn,
                  f"<= {tol_norm:g} %", dn <= tol_norm, "%")]


def check_astrom(res: DemoResult) -> list[Check]:
    """Fiber positions, PA and norm.dat of both shots against the truth."""
    from hetred.astrom import formats as F
    from hetred.astrom.fibers import read_dith
    from hetred.sim.focalplane import slot_entry
    from hetred.virus.fplane import read_fplane

    assert res.summary is not None
    lay = res.layout
    rows: list[Check] = []
    fplane = read_fplane(lay.path("truth_fplane"))
    for dvo in res.summary.shots:
        night = dvo[:8]
        shot = json.loads(lay.path("truth_shot", night=night, datevobs=dvo).read_text())
        true = shot["pointing"]["true"]
        truth = {"ra0": true["ra"], "dec0": true["dec"], "pa": true["pa"], "transparency": shot["transparency"]}
        rows += _rows(f"{dvo} ({len(fplane)} IFUs, reduced from raw)",
                      read_dith(lay.path("dithall", datevobs=dvo)), fplane,
                      F.read_radec(lay.path("radec_final", datevobs=dvo)),
                      F.read_norm(lay.path("astrom_norm", datevobs=dvo)), truth,
                      TOL_CHAIN_FIBER, TOL_CHAIN_PA, TOL_CHAIN_NORM)
    wide = res.root / "astrom_wide"
    truth = json.loads((wide / "truth.json").read_text())
    wfp = {s: slot_entry(s) for s in truth["slots"]}
    rows += _rows(f"wide shot ({len(wfp)} IFUs, simulated images)", read_dith(wide / "out" / "dithall.use"), wfp,
                  F.read_radec(wide / "out" / "radec2_final.dat"), F.read_norm(wide / "out" / "norm.dat"), truth,
                  0.1, 0.01, 0.5)
    return rows


#: the demo night's shot has 2 IFUs 100" apart and a few stars: the rotation is measured poorly
#: (0.1 deg moves fibers 150" from the centre by 0.26"); its tolerances say so
TOL_CHAIN_FIBER = 0.5
TOL_CHAIN_PA = 0.2
TOL_CHAIN_NORM = 5.0
