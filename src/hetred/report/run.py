"""The units of ``hetred report`` (step 18 of Karl's process and the QA pages; docs/stages/report.md).

* ``report-detections``, one per shot (``DATEvOBS``): a report (PNG, optionally PDF, and a
  thumbnail) of every detection of the shot with S/N >= ``min_sn`` in the release's detect file,
  then the shot's sqlite database of them (:mod:`hetred.report.db`). A report whose PNG exists
  and names the same detection (its ``hetred-key``) is kept: a rerun, or a killed run resumed,
  makes only the missing reports (``--overwrite`` remakes them all). Reports of detectids no
  longer in the detect file are removed.
* ``report-merge``, one per month: the month's shot databases in one (``--merge``).
* ``report-night``, one per night: the night's folder of static HTML (:mod:`hetred.report.pages`).
* ``report-shot``, one per shot: the shot's page alone (in its night's folder).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hetred.errors import EmptyUnit, HetredError
from hetred.io.atomic import atomic_path
from hetred.jobs.units import ShotUnit, UnitOutcome, science_shots
from hetred.layout import Layout, parse
from hetred.report import db as rdb
from hetred.report import detinputs as I
from hetred.report.settings import STAGE_DETECTIONS, STAGE_MERGE, STAGE_NIGHT, STAGE_SHOT, ReportSettings
from hetred.virus.ids import parse_datevobs

__all__ = ["STAGE_DETECTIONS", "STAGE_MERGE", "STAGE_NIGHT", "STAGE_SHOT", "ShotUnit", "run_report_detections",
           "run_report_merge", "run_report_night", "run_report_shot", "shot_units"]


def shot_units(entries: list, shot: str | None = None, night: str | None = None) -> list[ShotUnit]:
    """The science shots of tarlist ``entries`` (narrowed to a night), or the one ``shot``."""
    if shot is not None:
        try:
            parse_datevobs(shot)
        except ValueError:
            raise HetredError(f"--shot {shot!r} is not a DATEvOBS like 20180110v007") from None
        return [ShotUnit(shot)]
    return [u for u in science_shots(entries) if night is None or u.night == night]


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _key_of(row: np.void) -> str:
    """:func:`hetred.report.detplot.report_key` from a /Detections row."""
    return f"{I._s(row['inputid'])} {float(row['wave']):.2f} {float(row['flux']):.2f} {float(row['sn']):.2f}"


def _db_row(row: np.void, datevobs: str) -> tuple:
    inputid = I._s(row["inputid"])
    return (int(row["detectid"]), int(row["shotid"]), datevobs, inputid, *(float(row[k]) for k in (
        "wave", "flux", "sn", "linewidth", "chi2", "ra", "dec")))


def run_report_detections(layout: Layout, datevobs: str, settings: ReportSettings | None = None,
                          remake: bool = False, progress: Callable[[int, int], None] | None = None) -> UnitOutcome:
    """The detection reports of one shot and their database (module docstring).

    ``remake``: make every report again (``--overwrite``); ``progress(done, total)`` after each."""
    from hetred.report.detplot import ReportFigure, png_key

    st = settings or ReportSettings()
    rel = st.release_name
    month, sid = I.month_of(datevobs), I.shotid_of(datevobs)
    det_path = I.detect_file(layout, datevobs, rel)
    cut_path = layout.path("spec2d", name=rel, shotid=sid)
    shot_path = layout.path("h5_shot", name=rel, datevobs=datevobs)
    depends = [str(det_path), str(cut_path), str(shot_path)]
    sd = I.read_detections(det_path, sid, st.min_sn)
    db_path = layout.path("report_db", month=month, datevobs=datevobs)
    if not len(sd.rows):
        raise EmptyUnit(f"no detection of {datevobs} with S/N >= {st.min_sn:g} in {det_path} "
                        f"({sd.total} below)", counts={"detections": sd.total, "reports": 0}, depends=depends)
    rows = sorted(sd.rows, key=lambda r: (bytes(r["ifuslot"]), int(r["detectid"])))    # IFU by IFU: one read each
    formats = ("png", "pdf") if st.pdf else ("png",)
    cut = fib = fig = None
    made, kept, seconds = 0, 0, 0.0
    entries, outputs = [], []
    notes: dict[str, list[str]] = {}
    try:
        for n, r in enumerate(rows, 1):
            did = int(r["detectid"])
            paths = {"png": layout.path("report_png", month=month, datevobs=datevobs, detectid=did),
                     "pdf": layout.path("report_pdf", month=month, datevobs=datevobs, detectid=did),
                     "thumb": layout.path("report_thumb", month=month, datevobs=datevobs, detectid=did)}
            wanted = [*formats, "thumb"] if st.thumb_width > 0 else list(formats)
            fresh = (not remake and paths["png"].exists() and all(paths[k].exists() for k in wanted)
                     and png_key(paths["png"]) == _key_of(r))
            if fresh:
                kept += 1
            else:
                t0 = time.perf_counter()
                if fig is None:
                    cut = I.Cutouts(cut_path if cut_path.exists() else None)
                    fib = I.ShotFibers(shot_path if shot_path.exists() else None)
                    fig = ReportFigure(st.dpi)
                d = I.detection_data(r, sd.spectra.get(did), sd.fibers.get(did, sd.rows[:0]), cut.get(did),
                                     fib.ifu(I._s(r["ifuslot"])), datevobs)
                for note in d.notes:
                    notes.setdefault(note, []).append(str(did))
                out = fig.render(d, formats, st.thumb_width)
                for k, data in out.items():
                    _write_bytes(paths[k], data)
                made += 1
                seconds += time.perf_counter() - t0
            entries.append(rdb.Entry(_db_row(r, datevobs), paths["png"], paths["pdf"] if st.pdf else None))
            outputs += [str(paths[k]) for k in wanted]
            if progress is not None:
                progress(n, len(rows))
    finally:
        if fib is not None:
            fib.close()
    removed = _remove_others(layout, month, datevobs, {int(r["detectid"]) for r in rows})
    n_db = rdb.write_db(db_path, sorted(entries, key=lambda e: e.row[0]),
                        {"datevobs": datevobs, "release": rel, "min_sn": f"{st.min_sn:g}", "detect_file": str(det_path)})
    if not cut_path.exists():
        notes.setdefault(f"no im2D file {cut_path} (hetred spec2d): reports without 2-D cut-outs", [])
    return UnitOutcome(outputs=[str(db_path)] + outputs, inputs=[p for p in depends if Path(p).exists()],
                       depends=depends, notes={k: v[:20] for k, v in notes.items()},
                       counts={"reports": n_db, "made": made, "kept": kept, "removed": removed,
                               "detections": sd.total, "min_sn": st.min_sn, "pdf": st.pdf,
                               "seconds_per_report": round(seconds / made, 4) if made else None})


def _remove_others(layout: Layout, month: str, datevobs: str, keep: set[int]) -> int:
    """Remove the shot's reports of detectids not in ``keep`` (renumbered or cut since)."""
    n = 0
    for key in ("report_png", "report_pdf", "report_thumb"):
        for p in layout.glob(key, month=month, datevobs=datevobs):
            f = parse(key, p.relative_to(layout.red).as_posix())
            if f is not None and f["detectid"] not in keep:
                p.unlink(missing_ok=True)
                n += key == "report_png"
    return n


def run_report_merge(layout: Layout, month: str) -> UnitOutcome:
    """The month's shot report databases merged into ``report_db_month``."""
    files = sorted(layout.glob("report_db", month=month), key=lambda p: p.name)
    out = layout.path("report_db_month", month=month)
    folder = out.parent
    if not files:
        raise EmptyUnit(f"no shot report database of {month} (no detection above the cut, or hetred report "
                        "detections not run)", counts={"reports": 0, "shots": 0}, depends=[str(folder)])
    n = rdb.merge_dbs(files, out, {"month": month})
    return UnitOutcome(outputs=[str(out)], inputs=[str(p) for p in files], counts={"reports": n, "shots": len(files)},
                       depends=[str(p) for p in files] + [str(folder)])


def run_report_night(layout: Layout, night: str, settings: ReportSettings | None = None,
                     order: list[str] | None = None, expected: dict[str, list[str]] | None = None,
                     shots: list[str] | None = None) -> UnitOutcome:
    """The night's folder of static HTML: index.html, calib.html and a page per shot."""
    from hetred.report.pages import write_night

    res = write_night(layout, night, settings or ReportSettings(), order, expected, shots)
    return UnitOutcome(outputs=[str(p) for p in res.pages], inputs=[], depends=res.depends,
                       counts={"pages": len(res.pages), "shots": len(res.shots), "files": res.files,
                               "bytes": res.bytes, "page_weight": res.weight, "broken_links": len(res.broken),
                               "marked": res.marked},
                       notes={"broken links": res.broken[:20]} if res.broken else {})


def run_report_shot(layout: Layout, datevobs: str, settings: ReportSettings | None = None) -> UnitOutcome:
    """One shot's page (``web_page`` DATEvOBS.html of its night's folder)."""
    from hetred.report.pages import write_shot_only

    res = write_shot_only(layout, datevobs, settings or ReportSettings())
    return UnitOutcome(outputs=[str(p) for p in res.pages], depends=res.depends,
                       counts={"pages": len(res.pages), "files": res.files, "bytes": res.bytes,
                               "page_weight": res.weight, "broken_links": len(res.broken), "marked": res.marked},
                       notes={"broken links": res.broken[:20]} if res.broken else {})
