"""Twilight calibration, ``hetred twical MONTH`` (docs/stages/twical.md).

Replaces karlspipe hdr2.1 ``twical/run1t`` + ``rgetcal0-2`` (vred.f on every twilight:
traces, profile, wavelength, fiber-to-fiber), ``rgetcmb`` (imcmbbs / getxtr / getwavo: the
monthly combination) and ``rgetata`` / ``rtara`` (getata: amp-to-amp), ``plotcaliball`` (QA).

Units:

* ``twical-reduce``: one twilight exposure x amp, ``20180110v001_exp01_053_LL``: the frame
  and the night's Hg + Cd arcs of that amp are reduced by the one per-amp reduction that the
  science frames go through too (:func:`hetred.ccd.reduce.reduce_amp`: overscan, master bias,
  pixel flat, the month's background models blended by the frame's level (none for arcs),
  gain, orientation, masks), traced, profiled and extracted
  (:func:`hetred.fibers.profile.calibrate_frame`), the arcs solved (:func:`solve_arcs`), refined
  by the solar comparison when a template is given, and the fiber-to-fiber measured;
  written to ``calwork``.
* ``twical-combine``: month x IFU slot x amp: biweight of the exposures -> ``callib``.
* ``twical-a2a``: the month: amp-to-amp per exposure over the field, biweight over the month,
  written into every ``callib`` file and the ``amp_to_amp`` table; then the QA PNG per IFU.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred._version import __version__
from hetred.ccd.reduce import missing_notes, reduce_amp
from hetred.errors import HetredError
from hetred.fibers.extract import extract
from hetred.fibers.library import library_hdul
from hetred.fibers.profile import calibrate_frame, combine_profiles
from hetred.fibers.trace import combine_traces
from hetred.io.atomic import write_fits_atomic
from hetred.io.raw import RawAmp, read_raw_member
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout, format_relative
from hetred.lists.tarlist import TarEntry, month_entries
from hetred.twical import fiber_to_fiber as F
from hetred.twical.calwork import read_calwork
from hetred.twical.wavelength import WaveFlag, combine_solutions, solve_arcs

STAGE_REDUCE, STAGE_COMBINE, STAGE_A2A = "twical-reduce", "twical-combine", "twical-a2a"


LAMPS = ("hg", "cd-a")




@dataclass(frozen=True)
class Exposure:
    """One twilight exposure of one amp, with the night's arcs of that amp."""

    twi: TarEntry
    arcs: tuple[TarEntry, ...]

    @property
    def datevobs(self) -> str:
        return f"{self.twi.night}v{self.twi.obs:03d}"

    @property
    def unit(self) -> str:
        return f"{self.datevobs}_exp{self.twi.exp:02d}_{self.twi.ifuslot:03d}_{self.twi.amp}"


def month_exposures(layout: Layout, month: str) -> list[Exposure]:
    """Every twi amp file of the month's tarlist, with its night's cmp files of the same amp."""
    twi, cmp = [], {}
    for e in month_entries(layout, month):
        if e.kind == "twi":
            twi.append(e)
        elif e.kind == "cmp":
            cmp.setdefault((e.night, e.ifuslot, e.amp), []).append(e)
    return [Exposure(t, tuple(cmp.get((t.night, t.ifuslot, t.amp), ()))) for t in twi]


def _read(layout: Layout, e: TarEntry) -> RawAmp:
    member = format_relative("raw_member", obs=e.obs, exp=e.exp, stamp=e.stamp, ifuslot=e.ifuslot,
                             amp=e.amp, kind=e.kind)
    return read_raw_member(layout.path("raw_tar", night=e.night, obs=e.obs), member)


def _lamp(raw: RawAmp) -> str:
    obj = str(raw.header.get("OBJECT", "")).strip().lower()
    if "hg" in obj:
        return "hg"
    if "cd" in obj:
        return "cd-a"
    return obj or "arc"


def run_reduce(layout: Layout, month: str, expo: Exposure, solar=None) -> UnitOutcome:
    """Reduce one twilight exposure x amp (see the module docstring)."""

    t0 = time.perf_counter()
    tim: dict[str, float] = {}
    if not expo.arcs:
        raise HetredError(f"no arc (cmp) exposure of IFU slot {expo.twi.ifuslot:03d} amp {expo.twi.amp} "
                          f"on night {expo.twi.night}")
    raw = _read(layout, expo.twi)
    red = reduce_amp(layout, month, raw)          # vred's detector steps, as for science frames
    img, mask, rn, notes = red.image, red.mask, red.read_noise, red.notes
    tim["read_reduce"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    cal = calibrate_frame(img, None, read_noise=rn, mask=mask)
    tim["trace_profile_extract"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    arcs: dict[str, list[np.ndarray]] = {}
    inputs = [raw.source]
    depends = list(red.depends)
    for e in expo.arcs:
        araw = _read(layout, e)
        ared = reduce_amp(layout, month, araw, background=False)      # arcs: no background model
        depends += ared.depends
        ext = extract(ared.image, cal.trace.trace, cal.profile, read_noise=ared.read_noise, mask=ared.mask)
        arcs.setdefault(_lamp(araw), []).append(ext.spectra)
        inputs.append(araw.source)
    tim["arcs_extract"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    dead_tr = np.asarray(cal.trace.dead, bool)
    sol = solve_arcs({k: (v[0] if len(v) == 1 else np.stack(v)) for k, v in arcs.items()},
                     fiber_mask=dead_tr, fiber_coord=cal.trace.trace[:, cal.trace.trace.shape[1] // 2])
    twishift = None
    if solar is not None:
        from hetred.twical.solar_shift import apply_twilight
        sol, ts = apply_twilight(sol, cal.extraction.spectra, solar)
        twishift = ts
    tim["wavelength"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    ff = F.fiber_to_fiber(cal.extraction.spectra, sol.wavelength, exclude=dead_tr)
    tim["fiber_to_fiber"] = time.perf_counter() - t1
    dead = ff.dead | dead_tr

    fields = dict(month=month, datevobs=expo.datevobs, exp=expo.twi.exp, specid=raw.specid,
                  ifuslot=raw.ifuslot, ifuid=raw.ifuid, amp=raw.amp)
    out = layout.path("calwork", **fields)
    ph = fits.PrimaryHDU()
    h = ph.header
    for k, v in (("HETRED", __version__), ("STAGE", STAGE_REDUCE), ("MONTH", month),
                 ("NIGHT", expo.twi.night), ("OBS", expo.twi.obs), ("EXPN", expo.twi.exp),
                 ("SPECID", raw.specid), ("IFUSLOT", raw.ifuslot), ("IFUID", raw.ifuid),
                 ("CONTID", raw.contid), ("AMP", raw.amp), ("GAIN", red.gain),
                 ("RDNOISE", rn), ("OVERSCAN", notes["overscan"]), ("BACKGRND", str(notes["background"])[:60]),
                 ("BACKWANT", str(notes.get("background_wanted", ""))[:60]),
                 ("BACKMISS", str(notes.get("background_missing", "")) or "none"),
                 ("PIXFLAT", str(notes["pixelflat"])[:60]), ("SOLAR", solar is not None),
                 ("ORIENT", "oriented")):
        h[k] = v
    hdus = [ph, *cal.trace.to_hdus("TRACE"), *cal.profile.to_hdus("PROFILE"),
            fits.ImageHDU(cal.extraction.spectra.astype(np.float32), name="SPECTRA"),
            fits.ImageHDU(cal.extraction.error.astype(np.float32), name="ERROR")]
    hdus += [x for x in sol.to_hdulist()[1:]]
    hdus.append(fits.ImageHDU(ff.ftf, name="FIBER_TO_FIBER"))
    hdus.append(fits.ImageHDU(dead.astype(np.uint8), name="DEAD"))
    write_fits_atomic(out, fits.HDUList(hdus))
    tim["total"] = time.perf_counter() - t0
    live = ~dead
    counts = {
        "dead_fibers": [int(i) + 1 for i in np.nonzero(dead)[0]],
        "wave_rms_median": round(float(np.nanmedian(sol.rms[live])), 4) if live.any() else None,
        "twilight_shift_median": (round(float(np.median(twishift.applied)), 4) if twishift is not None else None),
        "wave_flags": int(np.count_nonzero(sol.flags & ~int(WaveFlag.DEAD))),
        "background": notes.get("background"), "background_wanted": notes.get("background_wanted"),
        "background_missing": notes.get("background_missing", ""), "pixelflat": notes.get("pixelflat"),
        "timings": {k: round(v, 3) for k, v in tim.items()},
    }
    return UnitOutcome(outputs=[str(out)], inputs=inputs, counts=counts, depends=depends,
                       notes=missing_notes(red, f"{raw.ifuslot:03d}{raw.amp}"))


def calwork_files(layout: Layout, month: str, ifuslot: int, amp: str) -> list[Path]:
    return [p for p in layout.glob("calwork", month=month, ifuslot=ifuslot, amp=amp)]


def run_combine(layout: Layout, month: str, ifuslot: int, amp: str) -> UnitOutcome:
    """Biweight of the month's per-exposure products of one amp -> the callib file."""

    files = calwork_files(layout, month, ifuslot, amp)
    if not files:
        raise HetredError(f"no reduced twilight of IFU slot {ifuslot:03d} amp {amp} in {month} "
                          f"(run hetred twical {month} --step reduce)")
    items = [read_calwork(p) for p in files]
    h0 = items[0]["header"]
    tr = combine_traces([it["trace"] for it in items])
    tr_stack = np.stack([it["trace"].trace for it in items]).astype(np.float32)
    tr_scatter = F.nan_biweight(tr_stack, 0)[1] if len(items) > 1 else np.zeros_like(tr_stack[0])
    prof = combine_profiles([it["profile"] for it in items])
    wave = combine_solutions([it["wave"] for it in items])
    ftf, ftf_scatter = F.combine_ftf([it["ftf"] for it in items])
    dead_votes = np.sum([it["dead"] for it in items], axis=0)
    dead = 2 * dead_votes >= len(items)
    fields = dict(month=month, specid=int(h0["SPECID"]), ifuslot=ifuslot, ifuid=h0["IFUID"], amp=amp)
    out = layout.path("callib", **fields)
    hdul = library_hdul(month, h0, tr.trace, wave.wavelength, ftf, dead, prof,
                        np.nan_to_num(tr_scatter).astype(np.float32), wave.scatter, ftf_scatter,
                        tr.dead, [str(p) for p in files])
    # keep the per-fiber wavelength table and the first exposure's line residuals for the QA
    hdul.append(fits.BinTableHDU(items[0]["wave"].to_hdulist()["FIBERS"].data, name="WAVE_FIBERS"))
    res = np.stack([it["wave"].line_resid for it in items]).astype(np.float32)
    used = np.stack([it["wave"].line_used for it in items])
    lr = fits.ImageHDU(np.where(used, res, np.nan).astype(np.float32), name="LINE_RESID")
    for j, lam in enumerate(items[0]["wave"].lines):
        lr.header[f"LINE{j + 1}"] = float(lam)
    hdul.append(lr)
    write_fits_atomic(out, hdul)
    counts = {"nexp": len(items), "dead_fibers": [int(i) + 1 for i in np.nonzero(dead)[0]],
              "trace_scatter_median": round(float(np.nanmedian(tr_scatter)), 4),
              "wave_scatter_median": round(float(np.nanmedian(wave.scatter)), 4),
              "ftf_scatter_median": round(float(np.nanmedian(ftf_scatter)), 5)}
    return UnitOutcome(outputs=[str(out)], inputs=[str(p) for p in files], counts=counts,
                       depends=[str(p) for p in files])


def unit_combine(month: str, ifuslot: int, amp: str) -> str:
    return f"{month}_{ifuslot:03d}_{amp}"
