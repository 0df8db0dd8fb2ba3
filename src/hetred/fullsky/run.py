"""Units of ``hetred fullsky`` (karlspipe hdr2.1 step 20: fullsky/rfft + vred3, raddsky + imaddsky).

* :func:`run_fullsky` -- one **exposure** (all IFUs; unit ``DATEvOBS_expNN``, rfft's unit):
  reads every amp (:mod:`hetred.fullsky.inputs`), runs vred3 (:mod:`hetred.fullsky.vred3`) and
  writes ``dDATEsOBSexpNN{amp.dat,sky.dat,sub.fits,ds9.reg}`` (:mod:`hetred.fullsky.formats`)
  and the QA PNG (:mod:`hetred.fullsky.qa`), atomically.
* :func:`run_addsky` -- one **shot** (unit ``DATEvOBS``, raddsky's per IFU, all IFUs at once):
  appends the ``fullsky`` HDU to each ``_cal.fits`` of ``hetred calfib`` once every exposure of
  the shot has its sub.fits (:mod:`hetred.fullsky.addsky`). A separate unit, so that the
  ``_cal.fits`` it rewrites is an input of nothing else in this stage: it depends on the
  exposures' products and on the ``_cal.fits`` (stamped after the append), so a calfib or
  fullsky rerun makes it stale and the next run appends again.

Amps that cannot be reduced (missing multi file, library, amp-to-amp; no data) are flagged in
amp.dat (Factor 0, Scale 0, Nlow -1: red in ds9.reg) and listed in the done marker's counts;
an exposure with no usable amp at all fails with one line.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.fullsky import formats as F
from hetred.fullsky.inputs import read_exposure
from hetred.fullsky.settings import STAGE, FullskySettings
from hetred.fullsky.vred3 import reduce_exposure
from hetred.io.ampdat import parse_amp_dat
from hetred.io.atomic import write_text_atomic
from hetred.io.fastfits import write_images
from hetred.jobs.units import UnitOutcome
from hetred.layout import Layout
from hetred.virus.ids import month_of, parse_datevobs

STAGE_ADDSKY = "fullsky-addsky"

__all__ = [
    "STAGE",
    "STAGE_ADDSKY",
    "AddskyUnit",
    "FullskyUnit",
    "addsky_units",
    "fullsky_units",
    "run_addsky",
    "run_fullsky",
]


@dataclass(frozen=True)
class FullskyUnit:
    """One science exposure (all IFUs)."""

    night: str
    obs: int
    exp: int

    @property
    def datevobs(self) -> str:
        return f"{self.night}v{self.obs:03d}"

    @property
    def unit(self) -> str:
        return f"{self.datevobs}_exp{self.exp:02d}"

    @property
    def month(self) -> str:
        return month_of(self.night)

    def keys(self) -> dict:
        return {"month": self.month, "night": self.night, "obs3": f"{self.obs:03d}", "exp": self.exp}


@dataclass(frozen=True)
class AddskyUnit:
    """One science shot: its exposures in the tarlist."""

    night: str
    obs: int
    exps: tuple[int, ...]

    @property
    def datevobs(self) -> str:
        return f"{self.night}v{self.obs:03d}"

    @property
    def unit(self) -> str:
        return self.datevobs

    @property
    def month(self) -> str:
        return month_of(self.night)


def _selection(layout: Layout, month: str | None, shot: str | None, entries) -> tuple[list, str | None, int | None]:
    from hetred.lists.tarlist import month_entries

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
    rows = month_entries(layout, month) if entries is None else entries
    return [e for e in rows if e.kind == "sci" and (night is None or (e.night, e.obs) == (night, obs))], night, obs


def fullsky_units(layout: Layout, month: str | None = None, shot: str | None = None, exp: int | None = None,
                  entries=None) -> list[FullskyUnit]:
    """The science exposures of a month (or of one shot, optionally one exposure) in the tarlist
    (made first when missing; or ``entries``), sorted."""
    rows, _, _ = _selection(layout, month, shot, entries)
    keys = {(e.night, e.obs, e.exp) for e in rows if exp is None or e.exp == exp}
    return [FullskyUnit(n, o, x) for n, o, x in sorted(keys)]


def addsky_units(layout: Layout, month: str | None = None, shot: str | None = None, entries=None) -> list[AddskyUnit]:
    """The science shots of a month (or one shot) with their exposures, sorted."""
    rows, _, _ = _selection(layout, month, shot, entries)
    shots: dict[tuple[str, int], set[int]] = {}
    for e in rows:
        shots.setdefault((e.night, e.obs), set()).add(e.exp)
    return [AddskyUnit(n, o, tuple(sorted(x))) for (n, o), x in sorted(shots.items())]


def _provenance(u: FullskyUnit, st: FullskySettings) -> list[tuple[str, object, str]]:
    return [("PRODUCT", "fullsky sub", "vred3 out.fits: sky-subtracted fibers"),
            ("HETRED", __version__, "hetred version"), ("STAGE", STAGE, "hetred stage"),
            ("DATEVOBS", u.datevobs, "shot"), ("EXP", u.exp, "exposure"),
            ("ROWS", "112 per amp.dat row", "multi-file fibers 1-112, amps in amp.dat order"),
            ("BUNIT", "electron per 2 A / (ftf a2a)", "calibrated counts per 2 Angstrom"),
            ("CRVAL1", float(st.wave0), "Angstrom"), ("CDELT1", float(st.dwave), "Angstrom"),
            ("CRPIX1", 1.0, ""), ("CTYPE1", "WAVE", ""),
            ("FFPROF", st.profile, "settings profile"), ("FFPASSES", st.passes, "master passes"),
            ("FFPOINTS", st.search_points, "W0/W1 sum: inside or all"), ("FFREFINE", bool(st.refine), "grid refined"),
            ("FFSMOOTH", float(st.search_smooth), "Angstrom: master mean for the W0/W1 search"),
            ("FFNEWTON", bool(st.newton), "W0/W1 Gauss-Newton least squares")]


def run_fullsky(layout: Layout, u: FullskyUnit, settings: FullskySettings | None = None,
                entries=None) -> UnitOutcome:
    """One exposure (module docstring)."""
    from hetred.lists.tarlist import month_entries

    st = settings or FullskySettings()
    rows = month_entries(layout, u.month) if entries is None else entries
    ex = read_exposure(layout, u.night, u.obs, u.exp, rows, st)
    if not ex.amps:
        if not any(e.kind == "sci" and (e.night, e.obs) == (u.night, u.obs) for e in rows):
            raise HetredError(f"{u.unit}: no science amp of shot {u.datevobs} in the tarlist {u.month}")
        raise HetredError(f"{u.unit}: no multi file (nor fplane) names the IFUs of shot {u.datevobs} "
                          f"(run hetred sci --shot {u.datevobs})")
    if all(a.why for a in ex.amps):
        reasons = sorted({a.why for a in ex.amps})
        raise HetredError(f"{u.unit}: no usable amp ({len(ex.amps)} amps; first: {ex.amps[0].name}: {reasons[0]}) "
                          f"(run hetred sci --shot {u.datevobs} --exp {u.exp})")
    res = reduce_exposure(ex.amps, st)
    k = u.keys()
    paths = {name: layout.path(key, **k) for name, key in
             (("amp", "fullsky_amp"), ("sky", "fullsky_sky"), ("sub", "fullsky"), ("ds9", "fullsky_ds9"))}
    write_images(paths["sub"], [(res.sub, _provenance(u, st))])
    write_text_atomic(paths["sky"], F.format_sky_dat(res.master_wave, res.master_sky))
    red = [F.is_red(r.factor, r.scale, r.w0, st) for r in res.amps]
    write_text_atomic(paths["ds9"], F.format_ds9([r.name for r in res.amps], red))
    write_text_atomic(paths["amp"], F.format_amp_dat(res.amps))      # last: the addsky step reads it
    outputs = [str(paths[n]) for n in ("sub", "sky", "ds9", "amp")]
    if st.qa:
        from hetred.fullsky.qa import write_exposure_png

        outputs.append(str(write_exposure_png(layout, u, res, red)))
    flagged = {r.name: r.why for r in res.amps if r.why}
    good = [r for r in res.amps if not r.why]
    counts = {
        "amps": len(res.amps), "reduced": len(good), "flagged": flagged, "red": int(sum(red)),
        "factor": _range([r.factor for r in good]), "w0": _range([r.w0 for r in good]),
        "w1x1000": _range([1000 * r.w1 for r in good]), "scale": _range([r.scale for r in good]),
        "ncont": int(sum(r.ncont for r in good)), "recentred": int(sum(r.recentred > 0 for r in good)),
        "resmaps": sorted(set(ex.resmaps.values())) if ex.resmaps else ["not used"],
        "master_points": len(res.master_wave), "profile": st.profile,
    }
    notes = {}
    if flagged:
        notes["amps flagged in amp.dat (not reduced)"] = [f"{u.unit} {n}: {w}" for n, w in sorted(flagged.items())]
    if ex.warnings:
        notes["IFU slots left out"] = [f"{u.unit}: {w}" for w in ex.warnings]
    depends = list(ex.inputs) + [str(layout.path("tarlist", month=u.month))]
    return UnitOutcome(outputs=outputs, inputs=ex.inputs, counts=counts, depends=depends, notes=notes)


def _range(values: list[float]) -> list[float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return [round(float(v.min()), 4), round(float(v.max()), 4)] if v.size else []


def run_addsky(layout: Layout, u: AddskyUnit) -> UnitOutcome:
    """The fullsky HDU of every ``_cal.fits`` of one shot (module docstring)."""
    from hetred.errors import EmptyUnit
    from hetred.fullsky.addsky import addsky_shot

    waiting = []
    depends = [str(layout.path("tarlist", month=u.month))]
    for exp in u.exps:
        k = FullskyUnit(u.night, u.obs, exp).keys()
        for key in ("fullsky_amp", "fullsky"):
            p = layout.path(key, **k)
            depends.append(str(p))
            if not p.exists():
                waiting.append(p.name)
    cal = list(layout.glob("calfib", month=u.month, datevobs=u.datevobs))
    if waiting:
        raise HetredError(f"{u.unit}: the full-field sky of every exposure is needed first; missing "
                          f"{', '.join(waiting[:3])} (run hetred fullsky --shot {u.datevobs})")
    if not cal:
        # the files calfib would write, absent now: their appearance makes the unit stale
        expect = []
        for exp in u.exps[:1]:
            for r in parse_amp_dat(layout.path("fullsky_amp", **FullskyUnit(u.night, u.obs, exp).keys()).read_text()):
                sp, slot, ifuid = r.ifu.split("_")
                expect.append(str(layout.path("calfib", month=u.month, datevobs=u.datevobs, specid=int(sp),
                                              ifuslot=int(slot), ifuid=ifuid)))
        raise EmptyUnit(f"{u.unit}: no calibrated-fiber file (_cal.fits) of the shot: nothing to append "
                        f"(run hetred calfib --shot {u.datevobs} first)", depends=depends + sorted(set(expect)))
    out = addsky_shot(layout, u.night, u.obs, list(u.exps), u.month)
    notes = {}
    if out["missing"]:
        notes["_cal.fits rows without full-field sky (0)"] = [f"{n}: {' '.join(m)}" for n, m in out["missing"].items()]
    return UnitOutcome(outputs=out["written"], inputs=depends[1:], depends=depends + out["written"],
                       counts={"files": len(out["written"]), "missing": out["missing"]}, notes=notes)
