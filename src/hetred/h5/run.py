"""The units of ``hetred h5`` (steps 17 and 19 of Karl's process; docs/stages/h5.md).

* ``h5-shot``, one per shot (``DATEvOBS``): the shot file (:mod:`hetred.h5.shot`);
* ``h5-survey``, one per release: the survey file and flux_limits_all.txt of every shot file;
* ``h5-fiberindex``, one per release: the fiber index and the fiber mask;
* ``h5-detect``, one per month: the month's detections (:mod:`hetred.h5.detect`);
* ``h5-detect-merge``, one per release: the months merged into the release's detect file.

Everything is written under ``h5/RELEASE/`` in the tree hetdex_api's HDRconfig builds
(``reduction/data``, ``survey``, ``detect``), so that ``cd RED/h5`` and ``survey="hdr2.1"`` read
the files with no staging.
"""
from __future__ import annotations

from pathlib import Path

from hetred.errors import HetredError
from hetred.h5 import inputs
from hetred.h5.settings import (
    STAGE_DETECT,
    STAGE_DETECT_MERGE,
    STAGE_FIBERINDEX,
    STAGE_SHOT,
    STAGE_SURVEY,
    H5Settings,
)
from hetred.jobs.units import ShotUnit, UnitOutcome, science_shots
from hetred.layout import Layout, parse
from hetred.virus.ids import month_of, parse_datevobs

__all__ = [
    "STAGE_DETECT",
    "STAGE_DETECT_MERGE",
    "STAGE_FIBERINDEX",
    "STAGE_SHOT",
    "STAGE_SURVEY",
    "ShotUnit",
    "detect_ifus",
    "run_h5_detect",
    "run_h5_detect_merge",
    "run_h5_fiberindex",
    "run_h5_shot",
    "run_h5_survey",
    "run_spec2d",
    "run_spec2d_merge",
    "shot_files",
    "shot_units",
]


def shot_units(layout: Layout, month: str | None = None, shot: str | None = None,
               entries: list | None = None) -> list[ShotUnit]:
    """The science shots of a month's tarlist (``entries``: its entries, read when None) or one shot."""
    if shot is not None:
        try:
            parse_datevobs(shot)
        except ValueError as err:
            raise HetredError(str(err)) from None
        return [ShotUnit(shot)]
    if month is None:
        raise HetredError("give a MONTH or --shot DATEvOBS")
    if entries is None:
        from hetred.lists.tarlist import month_entries

        entries = month_entries(layout, month)
    return science_shots(entries)


def _outcome(path: Path, warnings: list[str], counts: dict, used: list[str], extra: list[Path] = (),
             depends: list[str] | None = None, notes: dict[str, list[str]] | None = None) -> UnitOutcome:
    c = dict(counts)
    c["warnings"] = list(warnings)
    return UnitOutcome(outputs=[str(path)] + [str(p) for p in extra], inputs=used, counts=c,
                       depends=list(depends if depends is not None else used), notes=dict(notes or {}))


def run_h5_shot(layout: Layout, datevobs: str, settings: H5Settings | None = None) -> UnitOutcome:
    """The shot file of one shot."""
    from hetred.h5.shot import write_shot

    st = settings or H5Settings()
    res = write_shot(layout, datevobs, st, out=layout.path("h5_shot", name=st.release, datevobs=datevobs))
    return _outcome(res.path, res.warnings, res.counts, res.inputs, depends=res.depends, notes=res.notes)


def _shot_dir(layout: Layout, st: H5Settings) -> Path:
    """The folder of the release's shot files (its mtime changes when a shot file appears)."""
    return layout.path("h5_shot", name=st.release, datevobs="00000000v000").parent


def shot_files(layout: Layout, settings: H5Settings) -> list[Path]:
    """The release's shot files, by DATEvOBS."""
    return sorted(layout.glob("h5_shot", name=settings.release), key=lambda p: p.stem)


def run_h5_survey(layout: Layout, settings: H5Settings | None = None) -> UnitOutcome:
    """The survey file and flux_limits_all.txt of every shot file of the release."""
    from hetred.h5.survey import write_survey

    st = settings or H5Settings()
    files = shot_files(layout, st)
    res = write_survey(files, layout.path("h5_survey", name=st.release),
                       layout.path("h5_flux_limits", name=st.release), st)
    return _outcome(res.path, res.warnings, {"shots": len(res.shots)}, [str(p) for p in files], [res.flim_path],
                    depends=[str(p) for p in files] + [str(_shot_dir(layout, st))])


def run_h5_fiberindex(layout: Layout, settings: H5Settings | None = None) -> UnitOutcome:
    """The fiber index and fiber mask of every shot file of the release."""
    from hetred.h5.fiberindex import write_fiber_index

    st = settings or H5Settings()
    files = shot_files(layout, st)
    res = write_fiber_index(files, layout.path("h5_fiberindex", name=st.release),
                            layout.path("h5_fibermask", name=st.release, mask=st.mask_file), st)
    warn = [f"{res.no_radec} fibers without RA/Dec (healpix 0, flag false)"] if res.no_radec else []
    return _outcome(res.path, warn, {"shots": len(res.shots), "fibers": res.rows}, [str(p) for p in files],
                    [res.mask_path], depends=[str(p) for p in files] + [str(_shot_dir(layout, st))])


def detect_ifus(layout: Layout, month: str) -> list:
    """The month's IFU detection files (.mc with its .list and .spec), by name."""
    from hetred.h5.detect import IfuFiles

    out = []
    for mc in inputs.glob_optional(layout, "detect_mc", month=month, run="search"):
        f = parse("detect_mc", str(mc.relative_to(layout.red)))
        if f is None:
            continue
        keys = {k: f[k] for k in ("month", "datevobs", "run", "specid", "ifuslot", "ifuid")}
        lst, spec = layout.path("detect_list", **keys), layout.path("detect_spec", **keys)
        out.append(IfuFiles(mc.stem, mc, lst, spec))
    missing = [p for x in out for p in (x.list, x.spec) if not p.exists()]
    if missing:
        raise HetredError(f"{missing[0]} does not exist (its .mc does; rerun hetred detect)")
    return sorted(out, key=lambda x: x.stem)


def run_h5_detect(layout: Layout, month: str, settings: H5Settings | None = None) -> UnitOutcome:
    """The detections of one month."""
    from hetred.h5.detect import write_detect
    from hetred.io.atomic import write_text_atomic

    st = settings or H5Settings()
    ifus = detect_ifus(layout, month)
    warnings = [] if ifus else [f"no detection files (.mc) of {month}: the detect file is empty"]
    path = layout.path("h5_detect_month", name=st.release, month=month)
    res = write_detect(ifus, path, st, title=_title(st))
    stat = layout.path("h5_ifustat", name=st.release, month=month)
    write_text_atomic(stat, "ampid ndet ndetsel\n" + "".join(f"{a} {n} {k}\n" for a, n, k in res.ifustat))
    used = [str(p) for x in ifus for p in (x.mc, x.list, x.spec)]
    month_dir = layout.path("detect_dir", month=month, datevobs="00000000v000").parent
    return _outcome(path, warnings + res.warnings, {"detections": res.detections, "candidates": res.candidates,
                                                     "fibers": res.fibers, "ifus": len(ifus)}, used, [stat],
                    depends=used + [str(month_dir)] + sorted({str(x.mc.parent) for x in ifus}))


def run_h5_detect_merge(layout: Layout, settings: H5Settings | None = None) -> UnitOutcome:
    """Every monthly detect file of the release merged, detectids renumbered from the base."""
    from hetred.h5.detect import merge_detect

    st = settings or H5Settings()
    files = sorted(layout.glob("h5_detect_month", name=st.release), key=lambda p: p.name)
    res = merge_detect(files, layout.path("h5_detect", name=st.release), st, title=_title(st))
    months = layout.path("h5_detect_month", name=st.release, month="000000").parent
    return _outcome(res.path, res.warnings, {"detections": res.detections, "fibers": res.fibers,
                                             "months": len(files)}, [str(p) for p in files],
                    depends=[str(p) for p in files] + [str(months)])


def _title(st: H5Settings) -> str:
    return f"{st.release.upper()} Detections Database"


def month_of_shot(datevobs: str) -> str:
    return month_of(parse_datevobs(datevobs)[0])


def detect_file_for(layout: Layout, datevobs: str, settings: H5Settings) -> Path:
    """The detect file spec2d reads for a shot: the release's merged file, else its month's."""
    merged = layout.path("h5_detect", name=settings.release)
    if merged.exists():
        return merged
    month = layout.path("h5_detect_month", name=settings.release, month=month_of_shot(datevobs))
    if month.exists():
        return month
    raise HetredError(f"no detect file for {datevobs}: neither {merged} nor {month} (run hetred h5 detect)")


def run_spec2d(layout: Layout, datevobs: str, settings: H5Settings | None = None) -> UnitOutcome:
    """get_spec2D's products for the detections of one shot."""
    from hetred.h5.spec2d import write_spec2d
    from hetred.virus.ids import shotid

    st = settings or H5Settings()
    night, obs = parse_datevobs(datevobs)
    shot = layout.path("h5_shot", name=st.release, datevobs=datevobs)
    if not shot.exists():
        raise HetredError(f"no shot file {shot} (run hetred h5 shot --shot {datevobs})")
    det = detect_file_for(layout, datevobs, st)
    sid = shotid(night, obs)
    res = write_spec2d(shot, det, sid, layout.path("spec2d", name=st.release, shotid=sid), st.spec2d_width,
                       st.spec2d_height, st)
    return _outcome(res.path, res.warnings, {"detections": res.detections, "width": st.spec2d_width,
                                             "height": st.spec2d_height}, [str(shot), str(det)])


def run_spec2d_merge(layout: Layout, settings: H5Settings | None = None) -> UnitOutcome:
    """Every shot's im2D file of the release, merged."""
    from hetred.h5.spec2d import merge_spec2d

    st = settings or H5Settings()
    files = sorted(layout.glob("spec2d", name=st.release), key=lambda p: p.name)
    res = merge_spec2d(files, layout.path("spec2d_merged", name=st.release), st)
    return _outcome(res.path, res.warnings, {"detections": res.detections, "shots": len(files)},
                    [str(p) for p in files])
