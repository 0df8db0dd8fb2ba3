"""Twilight calibration, ``hetred twical MONTH`` (docs/stages/twical.md).

Replaces karlspipe hdr2.1 ``twical/run1t`` + ``rgetcal0-2`` (vred.f on every twilight:
traces, profile, wavelength, fiber-to-fiber), ``rgetcmb`` (imcmbbs / getxtr / getwavo: the
monthly combination) and ``rgetata`` / ``rtara`` (getata: amp-to-amp), ``plotcaliball`` (QA).

Units:

* ``twical-reduce``: one twilight exposure x amp, ``20180110v001_exp01_053_LL``: the frame
  and the night's Hg + Cd arcs of that amp are reduced (overscan, master bias, background
  model when the month has one, orientation, gain), traced, profiled and extracted
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
from hetred.virus import amp as ampgeom

STAGE_REDUCE, STAGE_COMBINE, STAGE_A2A = "twical-reduce", "twical-combine", "twical-a2a"


LAMPS = ("hg", "cd-a")


FLAT_MIN = np.float32(0.666)   #: vred: pixels whose pixel flat is at or below this are masked


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


def _orient(raw: RawAmp, img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ampgeom.orient(img, raw.amp, raw.ampname))


def master_bias_path(layout: Layout, month: str, raw: RawAmp) -> Path:
    return layout.path("masterbias", month=month, specid=raw.specid, contid=raw.contid or "0666",
                       amp=raw.amp)


def reduce_frame(layout: Layout, month: str, raw: RawAmp, bgkind: str | None = "twi",
                 use_flat: bool = True):
    """(image e- oriented, mask, read noise e-, notes): overscan, master bias, background model
    (``bgkind``, scaled by the frame level when the month has one), orientation, gain, and the
    camera's pixel flat when ``use_flat`` and ``lib_pflat`` has one (pixels with flat <= 0.666
    masked, as vred). Raises HetredError naming a missing master bias."""
    mb_path = master_bias_path(layout, month, raw)
    if not mb_path.exists():
        raise HetredError(f"no master bias {mb_path.name} for {raw.source} (run hetred bias {month})")
    mb = np.asarray(fits.getdata(mb_path), dtype=np.float32)
    level = raw.overscan_level()
    trimmed = ampgeom.trim(raw.data).astype(np.float32) - np.float32(level) - mb
    notes = {"overscan": round(float(level), 3), "background": "none"}
    if bgkind is not None:
        bg = layout.path("bgmodel", month=month, bgkind=bgkind, specid=raw.specid,
                         ifuslot=raw.ifuslot, amp=raw.amp)
        if bg.exists():
            try:   # the model is scaled to frame level 25 (xbn = central biweight / 25)
                from hetred.background import frames as B_frames
                _, lev = B_frames.frame_level(raw.data, mb)
                trimmed = trimmed - np.asarray(fits.getdata(bg), np.float32) * np.float32(lev / 25.0)
                notes["background"] = bg.name
            except Exception as err:  # the background module is optional here
                notes["background"] = f"skipped ({err.__class__.__name__})"
    gain = np.float32(raw.header.get("GAIN", 1.0))
    img = _orient(raw, trimmed) * gain
    mask = _orient(raw, (mb == 0).astype(np.uint8)).astype(bool)   # zeroed trap columns
    notes["pixelflat"] = "none"
    pf_path = layout.path("pixelflat", specid=raw.specid, amp=raw.amp)
    if use_flat and pf_path.exists():     # oriented; vred masks pixels with flat <= 0.666
        flat = np.asarray(fits.getdata(pf_path), np.float32)
        good = flat > FLAT_MIN
        img = np.where(good, img / np.where(good, flat, np.float32(1.0)), np.float32(0.0)).astype(np.float32)
        mask = mask | ~good
        notes["pixelflat"] = pf_path.name
    return img, mask, float(raw.header.get("RDNOISE", 3.0)), notes


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
    img, mask, rn, notes = reduce_frame(layout, month, raw, "twi")
    tim["read_reduce"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    cal = calibrate_frame(img, None, read_noise=rn, mask=mask)
    tim["trace_profile_extract"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    arcs: dict[str, list[np.ndarray]] = {}
    inputs = [raw.source]
    for e in expo.arcs:
        araw = _read(layout, e)
        aimg, amask, arn, _ = reduce_frame(layout, month, araw, None)
        ext = extract(aimg, cal.trace.trace, cal.profile, read_noise=arn, mask=amask)
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
                 ("CONTID", raw.contid), ("AMP", raw.amp), ("GAIN", float(raw.header.get("GAIN", 1.0))),
                 ("RDNOISE", rn), ("OVERSCAN", notes["overscan"]), ("BACKGRND", str(notes["background"])[:60]),
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
        "timings": {k: round(v, 3) for k, v in tim.items()},
    }
    return UnitOutcome(outputs=[str(out)], inputs=inputs, counts=counts)


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
    return UnitOutcome(outputs=[str(out)], inputs=[str(p) for p in files], counts=counts)


def unit_combine(month: str, ifuslot: int, amp: str) -> str:
    return f"{month}_{ifuslot:03d}_{amp}"
