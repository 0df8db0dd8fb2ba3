"""Helpers of the throughput and calfib stage tests (tests may read the truth; the reduction never
does).

:func:`write_truth_astrometry` stands in for ``hetred astrom`` (issue 12, another branch): the
files a perfect astrometry of a simulated shot would write, in vdrp's formats --
``dithall.use`` (every fiber of every exposure at its true RA/Dec: the true pointing, angoff 0,
the simulator's dithers), ``norm.dat`` (the true transparencies over their mean),
``radec2_final.dat`` (true centre and PA) and ``shout.ifustars`` (the catalogue, shuffle's format).
:func:`reduce_shot` simulates a shot of N IFUs and reduces it up to the rectified spectra
(biases and sci background models by their stages, libraries and pixel flats from the truth).
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

AMPS = ("LL", "LU", "RL", "RU")


def format_dithall(rows: list[tuple]) -> str:
    """vdrp's dithall.use: astropy fixed_width (delimiter "") with its header line."""
    names = ("ra", "dec", "ifuslot", "XS", "YS", "xfplane", "yfplane", "multifits", "timestamp", "exposure")
    cells = [[f"{r[0]:.7f}", f"{r[1]:.7f}", r[2], f"{r[3]:.3f}", f"{r[4]:.3f}", f"{r[5]:.3f}", f"{r[6]:.3f}",
              r[7], r[8], r[9]] for r in rows]
    widths = [max([len(n)] + [len(c[k]) for c in cells]) for k, n in enumerate(names)]
    lines = ["".join(f" {n:>{w}s} " for n, w in zip(names, widths))]
    lines += ["".join(f" {v:>{w}s} " for v, w in zip(c, widths)) for c in cells]
    return "\n".join(lines) + "\n"


def write_truth_astrometry(layout, night: str, datevobs: str, ifuslots=None) -> None:
    """The products of a perfect ``hetred astrom`` of a simulated shot (module docstring)."""
    from hetred.io.atomic import write_text_atomic
    from hetred.virus.coords import DITHERS, fiber_radec
    from hetred.virus.fplane import read_fplane
    from hetred.virus.ifu import amp_positions

    truth = json.loads(layout.path("truth_shot", night=night, datevobs=datevobs).read_text())
    fplane = read_fplane(layout.path("truth_fplane"))
    p = truth["pointing"]["true"]
    stamps = {e["exp"]: e["stamp"] for e in truth["exposures"]}
    slots = sorted(ifuslots or {s["ifuslot"] for s in truth["stars"]} | {int(k) for k in fplane if fplane[k].is_ifu})
    rows = []
    for exp in sorted(stamps):
        for slot in slots:
            e = fplane.get(slot)
            if e is None or not e.is_ifu:
                continue
            for amp in AMPS:
                xy = amp_positions(amp, e.ifuid)
                ra, dec = fiber_radec(e, xy, exp, p["ra"], p["dec"], p["pa"])
                dx, dy = DITHERS[exp - 1]
                for i in range(len(xy)):
                    rows.append((ra[i], dec[i], f"ifu{slot:03d}", xy[i, 0], xy[i, 1], xy[i, 0] + e.y_fp + dx,
                                 xy[i, 1] + e.x_fp + dy, f"multi_{e.specid:03d}_{slot:03d}_{e.ifuid}_{amp}_{i + 1:03d}.ixy",
                                 stamps[exp][:17], f"exp{exp:02d}"))
    write_text_atomic(layout.path("dithall", datevobs=datevobs), format_dithall(rows))
    t = np.array(truth["transparency"], dtype=float)
    write_text_atomic(layout.path("astrom_norm", datevobs=datevobs), " ".join(f"{v:10.8f}" for v in t / t.mean()) + "\n")
    write_text_atomic(layout.path("radec_final", datevobs=datevobs), f"{p['ra']:.6f} {p['dec']:.6f} {p['pa']:.6f}\n")
    head = ["# 2018-01-01 00:00:00.000000"] + [f"#col {k:2d}: {n} " for k, n in enumerate(
        ("SHOTID", "ID", "RA", "DEC", "u", "g", "r", "i", "z"), 1)]
    body = [f"000001 {s['id']:019d} {s['ra']:11.6f} {s['dec']:11.6f} "
            + " ".join(f"{s[b + '_cat']:7.2f}" for b in "ugriz") for s in truth["stars"]]
    write_text_atomic(layout.path("astrom_catalog", datevobs=datevobs), "\n".join(head + body) + "\n")


def reduce_shot(root, slots, seed: int, zro: int = 10, month: str = "201801", night: str = "20180110"):
    """Simulate one shot of ``slots`` and reduce it to the rectified spectra; write the truth
    astrometry. Returns a namespace (layout, datevobs, night, month, slots, summary)."""
    from hetred.background.run import run_bgmodel
    from hetred.bias.run import run_bias
    from hetred.jobs.units import run_unit
    from hetred.layout import Layout
    from hetred.lists.tarlist import run_tarlist
    from hetred.sci.run import STAGE, run_sci, sci_units
    from hetred.sim import FrameCounts, simulate_archive
    from tests.stages.sci_support import write_truth_library, write_truth_pixelflat

    layout = Layout(root / "raw", root / "red", root / "truth")
    summary = simulate_archive(layout, nights=night, ifuslots=list(slots), seed=seed,
                               frames=FrameCounts(zro=zro, drk=0, flt=0, hg=0, cd=0, twi=0, shots=1))
    run_tarlist(layout, month)
    for slot in slots:
        for amp in AMPS:
            run_bias(layout, month, slot, amp)
            run_bgmodel(layout, month, slot, amp, "sci")
            write_truth_library(layout, month, night, slot, amp)
            write_truth_pixelflat(layout, night, slot, amp)
    for u in sci_units(layout, month=month):
        r = run_unit(layout, STAGE, u.unit, lambda u=u: run_sci(layout, u))
        assert r.status == "done", r.message
    dvo = summary.shots[0]
    write_truth_astrometry(layout, night, dvo, list(slots))
    return SimpleNamespace(layout=layout, datevobs=dvo, night=night, month=month, slots=tuple(slots),
                           summary=summary)
