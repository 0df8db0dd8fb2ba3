"""Units of ``hetred sci``: shot x exposure x IFU (its four amps), and ``run_sci``.

:func:`sci_units` enumerates the units from the month's tarlist (what ``hetred sci``, the demo
and slurm-gen use); :func:`run_sci` reduces one unit: each amp's raw member (read straight from
the observation's tar, opened once) goes through :func:`reduce_amp` (detector steps, extraction,
sky, the 17-HDU multi file and the rectified spectra), then the IFU's reconstructed image is
written. The header values the reduction needs (GAIN, RDNOISE, IFUID) and every calibration of
the four amps are looked up before any work, so a missing one fails the unit at once with one
line naming it (and the file and key).
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hetred.ccd import reduce as ccd
from hetred.ccd.reduce import ReducedAmp
from hetred.errors import HetredError
from hetred.io.raw import RawAmp, header_value, open_tar, read_member_from
from hetred.jobs.units import UnitOutcome, merge_notes
from hetred.layout import Layout
from hetred.lists.tarlist import TarEntry, month_entries
from hetred.sci import reduce as R
from hetred.sci.calibration import AmpCalibration, find_calibration, parse_overrides
from hetred.sci.multi import primary_header, write_multi
from hetred.sci.settings import STAGE, SciSettings
from hetred.sci.sky import subtract_sky
from hetred.virus.ids import parse_datevobs
from hetred.virus.ifu import amp_positions

F32 = np.float32
AMP_ORDER = ("LL", "LU", "RL", "RU")
#: the multi file's trace is Karl's 1-based row (vred's Fortran arrays); hetred works 0-based
TRACE_BASE = 1.0
#: the arrays an amp hands to the IFU products (CoFeS) after its multi file is written
KEEP = ("ifupos", "sky_subtracted", "error1d", "wavelength")
#: multi-header cards copied into the rectified product (identity, exposure, pointing, provenance)
RECT_KEYS = ("NAME0", "DATE-OBS", "UT", "MJD", "OBJECT", "OBSID", "EXPTIME", "DARKTIME", "TRAJCRA",
             "TRAJCDEC", "PARANGLE", "CONTID", "GAIN", "RDNOISE", "CALMONTH", "CALFILE", "MBIAS",
             "PFLAT", "BACKMOD", "TRSHIFT", "WZPOFF")


@dataclass(frozen=True)
class SciUnit:
    """One science exposure of one IFU slot: its amp members in the tarlist."""

    night: str
    obs: int
    exp: int
    ifuslot: int
    stamp: str
    entries: tuple[TarEntry, ...]

    @property
    def datevobs(self) -> str:
        return f"{self.night}v{self.obs:03d}"

    @property
    def unit(self) -> str:
        return f"{self.datevobs}_exp{self.exp:02d}_{self.ifuslot:03d}"

    @property
    def month(self) -> str:
        return self.night[:6]

    @property
    def amps(self) -> tuple[str, ...]:
        return tuple(e.amp for e in self.entries)


def sci_units(layout: Layout, month: str | None = None, shot: str | None = None, exp: int | None = None,
              ifuslots: list[int] | tuple[int, ...] | None = None) -> list[SciUnit]:
    """The science units of a month (or of one shot ``DATEvOBS``), optionally one exposure and
    some IFU slots, from the month's tarlist (made first when missing), sorted by shot,
    exposure and slot."""
    night = obs = None
    if shot is not None:
        try:
            night, obs = parse_datevobs(shot)
        except ValueError:
            raise HetredError(f"--shot must be DATEvOBS like 20180110v007, got {shot!r}") from None
        if month is not None and month != night[:6]:
            raise HetredError(f"shot {shot} is not in month {month}")
        month = night[:6]
    if month is None:
        raise HetredError("give a MONTH or --shot DATEvOBS")
    groups: dict[tuple, list[TarEntry]] = defaultdict(list)
    for e in month_entries(layout, month):
        if e.kind != "sci" or (night is not None and (e.night, e.obs) != (night, obs)):
            continue
        if (exp is not None and e.exp != exp) or (ifuslots and e.ifuslot not in ifuslots):
            continue
        groups[(e.night, e.obs, e.exp, e.ifuslot, e.stamp)].append(e)
    units = []
    for (n, o, x, s, st), ents in sorted(groups.items()):
        ents = sorted(ents, key=lambda e: AMP_ORDER.index(e.amp) if e.amp in AMP_ORDER else 9)
        units.append(SciUnit(n, o, x, s, st, tuple(ents)))
    return units


def read_pixmask_boxes(layout: Layout) -> dict[str, list]:
    """The boxes of ``pix_mask.tab`` by ``{ifuslot:03d}{amp}`` (empty without the table)."""
    path = layout.path("pixmask")
    if not path.exists():
        return {}
    from hetred.io.pixmask import read_pixmask

    out: dict[str, list] = defaultdict(list)
    for name, box in read_pixmask(path):
        out[name].append(box)
    return dict(out)


def _read_members(layout: Layout, unit: SciUnit) -> list[RawAmp]:
    tar = layout.path("raw_tar", night=unit.night, obs=unit.obs)
    if not tar.exists():
        untarred = [layout.path("raw_untarred", **e.__dict__) for e in unit.entries]
        if all(p.exists() for p in untarred):
            from hetred.io.raw import read_raw_file
            return [read_raw_file(p) for p in untarred]
        raise HetredError(f"raw tar {tar} does not exist")
    with open_tar(tar) as tf:
        return [read_member_from(tf, tar, e.member) for e in unit.entries]


class Stopwatch:
    """Wall and process CPU time of consecutive laps (s)."""

    def __init__(self) -> None:
        self._w, self._c = time.perf_counter(), time.process_time()
        self.laps: dict[str, tuple[float, float]] = {}

    def lap(self, name: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self.laps[name] = (w - self._w, c - self._c)
        self._w, self._c = w, c

    def wall(self) -> dict[str, float]:
        return {k: round(v[0], 4) for k, v in self.laps.items()}

    def cpu(self) -> dict[str, float]:
        return {k: round(v[1], 4) for k, v in self.laps.items()}


@dataclass
class AmpResult:
    """What :func:`reduce_amp` made of one amp."""

    amp: str
    multi: Path
    arrays: dict                      #: the multi file's arrays (kept for the IFU products)
    counts: dict
    outputs: list
    depends: list = field(default_factory=list)     #: calibration files looked for
    notes: dict = field(default_factory=dict)       #: missing calibrations (ccd.reduce.missing_notes)


def provenance(red: ReducedAmp, cal: AmpCalibration, ext: R.AmpExtraction, sky, settings: SciSettings,
               raw: RawAmp) -> dict[str, Any]:
    """Header cards recording what made the multi file."""
    zp = sky.zero_point.get("offset")
    prov: dict[str, Any] = {
        "CALMONTH": (cal.month, "calibration month (library, bias, background)"),
        "CALFILE": (cal.path.name, "calibration library"),
        "CALNEXP": (cal.nexp, "twilight exposures in the library"),
        "MBIAS": (red.notes.get("masterbias", ""), "master bias"),
        "PFLAT": (red.notes.get("pixelflat", ""), "pixel flat (none: 1)"),
        "BACKMOD": (red.notes.get("background", ""), "background models: kind:weight"),
        "BACKWANT": (red.notes.get("background_wanted", ""), "background models the level asks for"),
        "BACKMISS": (red.notes.get("background_missing", "") or "none", "background models missing"),
        "XBN": (round(red.level, 5), "frame level: central biweight / 25 (ADU)"),
        "OVERSCAN": (round(red.overscan, 3), "ADU, biweight of cols 1034-1060, rows 10-1032"),
        "TRSHIFT": (round(ext.shift, 4), "px, trace shift measured against the library"),
        "NCHI2": (ext.n_chi2, "fiber columns with chi2 above CHI2CUT"),
        "NREJPIX": (ext.n_rejected, "pixels rejected above REJSIG"),
        "NSKYFIB": (sky.master.nfibers, "fibers in the master sky"),
        "WZPOFF": (round(zp, 4) if zp is not None else "none", "A, sky-line zero point (measured-lab)"),
        "WZPFLAG": (bool(zp is not None and abs(zp) > settings.zero_point_tolerance), "zero point off"),
        "WZPAPPL": (bool(settings.apply_zero_point and zp is not None), "zero point applied"),
        "RAWSRC": (Path(raw.source.split("::")[0]).name, "raw tar (or file)"),
    }
    if cal.rule:
        prov["CALRULE"] = (cal.rule, "calibration override rule")
    for k, v in settings.as_header().items():
        prov[k] = v
    return prov


def reduce_amp(layout: Layout, unit: SciUnit, raw: RawAmp, cal: AmpCalibration, settings: SciSettings,
               boxes=()) -> AmpResult:
    """One amp of a science exposure: products written, arrays returned (see the module docstring)."""
    sw = Stopwatch()
    if raw.is_saturated():
        raise HetredError(f"{raw.source}: saturated frame (more than half of its pixels at 65535)")
    red = ccd.reduce_amp(layout, cal.month, raw, flat_min=settings.flat_min, boxes=boxes)
    sw.lap("reduce")
    try:
        ext = R.extract_amp(red, cal, settings)
        sw.lap("extract")
        wave = np.asarray(cal.wavelength, F32)
        sky = subtract_sky(ext.spectra, ext.masked, wave, cal.fiber_to_fiber, cal.dead,
                           block=settings.master_block, iterations=settings.master_iter,
                           nsigma=settings.continuum_sigma, cap=settings.continuum_scale_cap,
                           grow=settings.continuum_grow, residual=settings.residual_background,
                           lines=settings.zero_point_lines)
    except HetredError as err:
        raise HetredError(f"{raw.source}: {err}") from None
    zp = sky.zero_point.get("offset")
    if settings.apply_zero_point and zp is not None:
        wave = (wave - F32(zp)).astype(F32)
    sw.lap("sky")
    model2d = R.project(ext, sky.sky)
    errimg = R.error_frame(ext.model, red.background, red.flat, red.read_noise, ext.pixel_mask)
    clean = np.where(ext.pixel_mask, F32(0.0), red.image - model2d).astype(F32)
    ftf = np.asarray(cal.fiber_to_fiber, F32)
    ftf = np.where((ftf > 0) & (ftf < 2), ftf, F32(1.0)).astype(F32)
    err1d = np.where(ext.masked, F32(0.0), np.sqrt(ext.error ** 2 + sky.sky_error ** 2)).astype(F32)
    arrays = {"processed": red.image, "error": errimg, "clean_image": clean, "model2d": model2d,
              "flat": red.flat, "flat_orig": red.flat_orig,
              "ifupos": amp_positions(raw.amp, raw.ifuid).astype(F32), "chi2": ext.chi2, "rms": ext.rms,
              "spectrum": ext.spectra, "wavelength": wave, "trace": ext.trace + F32(TRACE_BASE), "fiber_to_fiber": ftf,
              "error1d": err1d, "sky_subtracted": sky.sky_subtracted, "sky_spectrum": sky.sky}
    nerr = int(np.count_nonzero(errimg == 0))
    nbtrace = 0
    karl = {"Ncut": sky.ncut, "Nerr": nerr, "Nbtrace": nbtrace, "Nback": 0, "Nbackb": 0}
    name0 = Path(raw.source.split("::")[-1]).name
    header = primary_header(raw.header, name0, karl, provenance(red, cal, ext, sky, settings, raw))
    path = layout.path("multi", night=unit.night, obs=unit.obs, exp=unit.exp, specid=raw.specid,
                       ifuslot=raw.ifuslot, ifuid=raw.ifuid, amp=raw.amp)
    sw.lap("products")
    write_multi(path, arrays, header, limited=settings.limited_output)
    outputs = [str(path)]
    arrays = {k: arrays[k] for k in KEEP}
    sw.lap("write_multi")
    if settings.rectified:
        from hetred.sci.rectify import rectify, write_rectified
        flux, ferr = rectify(sky.sky_subtracted, err1d, wave, ext.masked)
        rp = write_rectified(layout, night=unit.night, obs=unit.obs, exp=unit.exp, specid=raw.specid,
                             ifuslot=raw.ifuslot, ifuid=raw.ifuid, amp=raw.amp, flux=flux, error=ferr,
                             header=fits.Header([c for c in header.cards if c.keyword in RECT_KEYS]),
                             inputs=[path.name])
        outputs.append(str(rp))
        arrays["rect_flux"], arrays["rect_error"] = flux, ferr
        sw.lap("rectify")
    counts = {"shift": round(ext.shift, 4), "xbn": round(red.level, 4), "background": red.notes.get("background"),
              "background_missing": red.notes.get("background_missing", ""),
              "ncut": sky.ncut, "nchi2": ext.n_chi2, "nrejected": ext.n_rejected,
              "masked_columns": int(np.count_nonzero(ext.masked & ~np.asarray(cal.dead)[:, None])),
              "nerr": nerr, "zero_point": sky.zero_point.get("offset"), "calmonth": cal.month,
              "timings": sw.wall(), "cpu": sw.cpu()}
    return AmpResult(raw.amp, path, arrays, counts, outputs, red.depends,
                     ccd.missing_notes(red, f"{raw.ifuslot:03d}{raw.amp}"))


def run_sci(layout: Layout, unit: SciUnit, settings: SciSettings | None = None) -> UnitOutcome:
    """Reduce one unit (module docstring); the outcome lists every product written."""
    settings = settings or SciSettings()
    t0 = time.perf_counter()
    rules = parse_overrides(settings.calibration_overrides)
    raws = _read_members(layout, unit)
    for raw in raws:          # the header values the reduction needs, before any work (one line each)
        for key in ("GAIN", "RDNOISE"):
            header_value(raw, key)
    t_read = time.perf_counter() - t0
    cals, missing = {}, []
    for raw in raws:
        try:
            cals[raw.amp] = find_calibration(layout, unit.night, raw.specid, raw.ifuslot, raw.ifuid, raw.amp, rules)
        except HetredError as err:
            missing.append(str(err))
    if missing:
        more = f" (and {len(missing) - 1} more amp(s))" if len(missing) > 1 else ""
        raise HetredError(missing[0] + more)
    boxes = read_pixmask_boxes(layout)
    results = []
    for raw in raws:
        results.append(reduce_amp(layout, unit, raw, cals[raw.amp], settings,
                                  boxes.get(f"{raw.ifuslot:03d}{raw.amp}", ())))
    outputs = [p for r in results for p in r.outputs]
    if settings.cofes:
        outputs += write_ifu_products(layout, unit, raws, results)
    counts: dict[str, Any] = {"amps": {r.amp: r.counts for r in results}, "read_seconds": round(t_read, 4),
                              "calmonth": sorted({c.month for c in cals.values()})}
    inputs = sorted({raw.source for raw in raws} | {str(c.path) for c in cals.values()})
    depends = [str(c.path) for c in cals.values()] + [p for r in results for p in r.depends]
    depends.append(str(layout.path("pixmask")))
    return UnitOutcome(outputs=outputs, inputs=inputs, counts=counts, depends=depends,
                       notes=merge_notes(r.notes for r in results))


def write_ifu_products(layout: Layout, unit: SciUnit, raws: list[RawAmp], results: list[AmpResult]) -> list[str]:
    """The IFU's reconstructed image (CoFeS, :func:`hetred.sci.cofes.write_unit_cofes`)."""
    from hetred.sci.cofes import write_unit_cofes

    path = write_unit_cofes(layout, unit, raws, results)
    return [str(path)] if path else []


def write_exposure_pngs(layout: Layout, units: list[SciUnit]) -> list[str]:
    """The focal-plane PNG (:func:`hetred.sci.fplane_png.write_exposure_png`) of every exposure
    of ``units`` whose units are all done (per the tarlist), so that the last unit of an
    exposure, however the units were run, draws the complete picture."""
    from hetred.jobs.units import is_done
    from hetred.sci.fplane_png import write_exposure_png

    out = []
    for night, obs, exp in sorted({(u.night, u.obs, u.exp) for u in units}):
        every = sci_units(layout, shot=f"{night}v{obs:03d}", exp=exp)
        if every and all(is_done(layout, STAGE, u.unit) for u in every):
            fplane = None
            if not layout.path("fplane", night=night).exists():
                fplane = nominal_fplane(u.ifuslot for u in every)
            p = write_exposure_png(layout, night=night, obs=obs, exp=exp, fplane=fplane)
            if p is not None:
                out.append(str(p))
    return out


def nominal_fplane(ifuslots) -> dict:
    """Focal-plane entries at the nominal positions of IFU slots (X_FP = (xid - 5.5) x 100",
    Y_FP = (4.5 - yid) x 100", slot = xid yid; hetdex_formats.md §2.4), for the focal-plane PNG
    of a night whose fplane file is missing (SPECID and IFUID unknown: 0 and '000')."""
    from hetred.virus.fplane import FplaneEntry

    out = {}
    for s in sorted(set(int(x) for x in ifuslots)):
        xid, yid = s // 10, s % 10
        out[s] = FplaneEntry(s, (xid - 5.5) * 100.0, (4.5 - yid) * 100.0, 0, 0, "000")
    return out


__all__ = ["STAGE", "SciUnit", "sci_units", "run_sci", "reduce_amp", "write_exposure_pngs"]
