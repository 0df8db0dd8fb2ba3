"""The demo's calibration stages, ``flat`` and ``twical``, and their checks against the truth.

The demo night (20180110, IFU slots 053 and 063) has 16 lamp flats and 3 twilights per amp, and
2 Hg + 2 Cd arcs: the pixel flats are made from the 16 lamp flats of each camera (as
``hetred flat SPECID --night`` with ``[stages.flat] kinds = "flt"``: the three fainter twilights
would only add noise to the per-pixel biweight), then the twilight calibration runs with them
and the twi background models (as ``hetred twical MONTH``). Units run in 2 worker processes.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

import numpy as np

from hetred.demo.result import Check
from hetred.errors import HetredError
from hetred.jobs.units import UnitResult, run_unit
from hetred.layout import Layout

if TYPE_CHECKING:
    from hetred.demo.result import DemoResult

AMPS = ("LL", "LU", "RL", "RU")


def _jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _pool_map(fn: Callable, args: list[tuple]) -> list[UnitResult]:
    """Run ``fn(*a)`` for every ``a`` in worker processes (order kept)."""
    if _jobs() == 1 or len(args) < 2:
        return [fn(*a) for a in args]
    from hetred.jobs.workers import process_pool

    with process_pool(_jobs()) as pool:
        return list(pool.map(fn, *zip(*args)))


def _collect(results: list[UnitResult]) -> list[str]:
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise HetredError(f"{len(failed)} unit(s) failed, first: {failed[0].unit}: {failed[0].message}")
    return [p for r in results if r.outcome is not None for p in r.outcome.outputs]


# --- flat -------------------------------------------------------------------------------------
FLAT_KINDS = "flt"


def _flat_unit(layout: Layout, specid: int, amp: str, frames: list) -> UnitResult:
    from hetred.flat import run as flat_run
    from hetred.flat import settings as flat_settings

    s = flat_settings.FlatSettings(kinds=FLAT_KINDS)
    return run_unit(layout, flat_settings.STAGE, flat_run.unit_id(specid, amp),
                    lambda: flat_run.run_pixelflat(layout, specid, amp, frames, s), overwrite=True)


def _frames(res: DemoResult) -> list:
    from hetred.flat import run as flat_run

    assert res.summary is not None
    return flat_run.find_frames(res.layout, [res.summary.nights[0]], kinds=(FLAT_KINDS,))


def _cameras(frames: list) -> dict[int, int]:
    """{specid: ifuslot} of the frames (SPECID from their raw headers)."""
    return {f.specid: f.ifuslot for f in frames}


def stage_flat(res: DemoResult) -> list[str]:
    from hetred.flat import run as flat_run

    frames = _frames(res)
    args = []
    for specid in sorted(_cameras(frames)):
        mine = [f for f in frames if f.specid == specid]
        args += [(res.layout, specid, amp, mine) for amp in AMPS]
    out = _collect(_pool_map(_flat_unit, args))
    table, _ = flat_run.write_pixmask_table(res.layout)
    return out + [str(table)]


def check_flat(res: DemoResult) -> list[Check]:
    """Pixel flat vs truth within 3 px of the traces; truth defects masked; no spurious big box."""
    from astropy.io import fits

    from hetred.io import pixmask
    from hetred.sim.calibtruth import defect_boxes, pixelflat_errors

    assert res.summary is not None
    night = res.summary.nights[0]
    worst, nframes, missed, spurious, n_def = 0.0, 10 ** 6, 0, 0, 0
    rows = pixmask.read_pixmask(res.layout.path("pixmask"))
    for specid, slot in sorted(_cameras(_frames(res)).items()):
        for amp in AMPS:
            with fits.open(res.layout.path("pixelflat", specid=specid, amp=amp)) as h:
                flat = h[0].data.astype(np.float64)
                nframes = min(nframes, int(h[0].header["NFRAMES"]))
            tpath = res.layout.path("truth_amp", night=night, ifuslot=slot, amp=amp)
            err, _ = pixelflat_errors(flat, tpath)
            worst = max(worst, float(np.std(err)))
            mask = pixmask.mask_image([b for n, b in rows if n == f"{slot:03d}{amp}"])
            bad = np.zeros(mask.shape, bool)
            for x1, x2, y1, y2 in defect_boxes(tpath):
                n_def += 1
                bad[y1:y2 + 1, x1:x2 + 1] = True
                measured = flat[y1:y2 + 1, x1:x2 + 1] != 1.0   # pixels near a trace
                if measured.any() and mask[y1:y2 + 1, x1:x2 + 1][measured].mean() < 0.95:
                    missed += 1
            for n, b in rows:
                if n == f"{slot:03d}{amp}" and b.area > 0.05 * 1032 ** 2 and not bad[b.slices()].any():
                    spurious += 1
    return [Check("flat", f"pixel flat - truth, rms within 3 px of traces (worst amp, {nframes} frames)",
                  worst, "<= 0.003", worst <= 0.003),
            Check("flat", f"injected defects not in pix_mask.tab (of {n_def})", missed, "0", missed == 0),
            Check("flat", "boxes > 5 % of an amp without a real defect", spurious, "0", spurious == 0)]


# --- twical -----------------------------------------------------------------------------------
def _twical_reduce(layout: Layout, month: str, expo) -> UnitResult:
    from hetred.twical.run import STAGE_REDUCE, run_reduce

    return run_unit(layout, STAGE_REDUCE, expo.unit, lambda: run_reduce(layout, month, expo), overwrite=True)


def _twical_combine(layout: Layout, month: str, slot: int, amp: str) -> UnitResult:
    from hetred.twical import run as twical_run

    return run_unit(layout, twical_run.STAGE_COMBINE, twical_run.unit_combine(month, slot, amp),
                    lambda: twical_run.run_combine(layout, month, slot, amp), overwrite=True)


def stage_twical(res: DemoResult) -> list[str]:
    from hetred.twical import run as twical_run
    from hetred.twical.amp_to_amp import run_a2a
    from hetred.twical.qa import write_qa

    lay, month = res.layout, res.month
    expos = twical_run.month_exposures(lay, month)
    out = _collect(_pool_map(_twical_reduce, [(lay, month, e) for e in expos]))
    amps = sorted({(e.twi.ifuslot, e.twi.amp) for e in expos})
    out += _collect(_pool_map(_twical_combine, [(lay, month, s, a) for s, a in amps]))
    out += _collect([run_unit(lay, twical_run.STAGE_A2A, month, lambda: run_a2a(lay, month), overwrite=True)])
    for slot in sorted({s for s, _ in amps}):
        out.append(str(write_qa(lay, month, slot)))
    return out


def _core_chi2(res: DemoResult, slot: int, amp: str) -> float:
    """Mean reduced chi^2 over the live fiber cores of the first twilight of an amp, extracted with
    that exposure's own traces and profile (the 2-D model of the frame)."""
    from hetred.ccd.reduce import reduce_amp
    from hetred.fibers.extract import extract
    from hetred.twical import calwork
    from hetred.twical import run as twical_run

    expo = next(e for e in twical_run.month_exposures(res.layout, res.month)
                if e.twi.ifuslot == slot and e.twi.amp == amp)
    raw = twical_run._read(res.layout, expo.twi)
    red = reduce_amp(res.layout, res.month, raw)
    img, mask, rn = red.image, red.mask, red.read_noise
    work = calwork.read_calwork(res.layout.path("calwork", month=res.month, datevobs=expo.datevobs,
                                           exp=expo.twi.exp, specid=raw.specid, ifuslot=slot,
                                           ifuid=raw.ifuid, amp=amp))
    ext = extract(img, work["trace"].trace, work["profile"], read_noise=rn, mask=mask)
    live = ~work["dead"]
    chi = ext.chi2[live][ext.ncore[live] > 0]
    return float(np.mean(chi))


def check_twical(res: DemoResult) -> list[Check]:
    """The month library of every amp vs the night's truth (hetred.sim.calibtruth)."""
    from hetred.sim.calibtruth import library_metrics

    assert res.summary is not None
    amps = [(s, a) for s in res.summary.ifuslots for a in AMPS]
    m = library_metrics(res.layout, res.month, [res.summary.nights[0]], amps)
    n = len(amps)

    def worst(key: str, absval: bool = False) -> float:
        return max(abs(v[key]) if absval else v[key] for v in m.values())

    kmax = max(m, key=lambda k: m[k]["wave_max"])
    wmax = (*kmax, m[kmax]["wave_fiber_max"])
    kedge = max(m, key=lambda k: m[k]["wave_edge"])
    wedge = (*kedge, m[kedge]["wave_edge_fiber"])
    dead_bad = sum(not v["dead_ok"] for v in m.values())
    n_dead = sum(v["n_dead"] for v in m.values())
    chi = _core_chi2(res, amps[0][0], amps[0][1])
    return [
        Check("twical", f"trace - truth, rms over fibers and columns (worst of {n} amps)", worst("trace_rms"),
              "<= 0.03 px", worst("trace_rms") <= 0.03, "px"),
        Check("twical", "wavelength - truth, per-fiber rms: median over fibers (worst amp)", worst("wave_med"),
              "<= 0.05 Å", worst("wave_med") <= 0.05, "Å"),
        Check("twical", "wavelength - truth, per-fiber rms: worst 1 % of fibers (worst amp)", worst("wave_99"),
              "<= 0.1 Å", worst("wave_99") <= 0.1, "Å"),
        Check("twical", f"wavelength - truth, per-fiber rms: every live fiber (worst: {wmax[0]:03d}{wmax[1]} "
              f"k={wmax[2]})", m[wmax[:2]]["wave_max"], "<= 0.05 Å", m[wmax[:2]]["wave_max"] <= 0.05, "Å"),
        Check("twical", f"wavelength - truth, per-fiber rms: worst slit-edge fiber, k 0-3 and 108-111 "
              f"({wedge[0]:03d}{wedge[1]} k={wedge[2]})", m[wedge[:2]]["wave_edge"], "<= 0.05 Å",
              m[wedge[:2]]["wave_edge"] <= 0.05, "Å"),
        Check("twical", "fiber_to_fiber / truth - 1, rms 3700-5400 Å (worst amp)", worst("ftf_rms"),
              "<= 0.005", worst("ftf_rms") <= 0.005),
        Check("twical", f"amps whose dead fibers differ from truth ({n_dead} dead injected)", dead_bad,
              "0", dead_bad == 0, "amps"),
        Check("twical", "amp_to_amp / truth - 1 (worst amp)", worst("a2a_err", True), "<= 0.005",
              worst("a2a_err", True) <= 0.005),
        Check("twical", f"profile model: reduced chi2 in fiber cores ({amps[0][0]:03d}{amps[0][1]} twilight)",
              chi, "0.9-1.2", 0.9 <= chi <= 1.2),
    ]
