"""The reports (``hetred report``) in the demo: a report per detection with S/N >= 5 of the demo
shot in its sqlite database, the month's database, and the night's folder of static HTML.

``check_report``: the database holds one report per detection of the detect file with S/N >=
min_sn (counted here from the detect file itself), each a PNG that reads back; every link and
image of the night's pages resolves to a file in the folder (and none points outside it); no unit
the night page shows is stale (every stage ran after the stages it reads: detect after fullsky);
the page weight of index.html is given as information.
"""
from __future__ import annotations

import io
import sqlite3
from typing import TYPE_CHECKING

import numpy as np

from hetred.demo.result import Check
from hetred.errors import HetredError

if TYPE_CHECKING:
    from hetred.demo.result import DemoResult


def _run(res: DemoResult, stage: str, unit: str, fn):
    from hetred.jobs.units import run_unit

    r = run_unit(res.layout, stage, unit, fn, overwrite=True)
    if r.status == "failed":
        raise HetredError(f"{stage} {unit}: {r.message}")
    return r


def stage_report(res: DemoResult) -> list[str]:
    from hetred.jobs.registry import night_plan
    from hetred.report import run as R
    from hetred.report.settings import ReportSettings

    assert res.summary is not None
    st = ReportSettings()
    lay = res.layout
    out: list[str] = []
    made = 0
    for dvo in res.summary.shots:
        r = _run(res, R.STAGE_DETECTIONS, dvo, lambda d=dvo: R.run_report_detections(lay, d, st, remake=True))
        if r.outcome is not None:
            out += r.outcome.outputs[:1]
            made += int(r.outcome.counts.get("made", 0))
    r = _run(res, R.STAGE_MERGE, res.month, lambda: R.run_report_merge(lay, res.month))
    out += r.outcome.outputs if r.outcome is not None else []
    for night in res.summary.nights:
        order, expected, shots = night_plan(lay, night)
        r = _run(res, R.STAGE_NIGHT, night, lambda n=night, o=order, e=expected, s=shots:
                 R.run_report_night(lay, n, st, o, e, s))
        if r.outcome is not None:
            out += r.outcome.outputs
            res.extra.setdefault("report", {})[night] = dict(r.outcome.counts)
    res.extra.setdefault("report_made", made)
    return out


def check_report(res: DemoResult) -> list[Check]:
    import tables as tb
    from PIL import Image

    from hetred.report.html import broken_links, page_weight, references
    from hetred.report.settings import ReportSettings
    from hetred.virus.ids import shotid

    assert res.summary is not None
    st = ReportSettings()
    lay = res.layout
    rows = []
    want = got = unreadable = 0
    with tb.open_file(str(lay.path("h5_detect", name=st.release_name)), "r") as f:
        det = f.root.Detections.read()
    for dvo in res.summary.shots:
        sid = shotid(dvo[:8], int(dvo[9:]))
        ids = set(det["detectid"][(det["shotid"] == sid) & (det["sn"] >= st.min_sn)].tolist())
        want += len(ids)
        con = sqlite3.connect(str(lay.path("report_db", month=dvo[:6], datevobs=dvo)))
        try:
            blobs = dict(con.execute("SELECT detectid, image FROM report"))
        finally:
            con.close()
        got += len(set(blobs) & ids) - len(set(blobs) - ids)
        for blob in blobs.values():
            try:
                with Image.open(io.BytesIO(blob)) as im:
                    im.verify()
            except (OSError, SyntaxError):
                unreadable += 1
    rows.append(Check("report", f"reports in the shot databases = detections with S/N >= {st.min_sn:g} "
                                f"({want}; {res.extra.get('report_made', 0)} made)", got, f"= {want}", got == want))
    rows.append(Check("report", "report PNGs that do not read back from the database (PIL)", unreadable, "0",
                      unreadable == 0))
    for night in res.summary.nights:
        folder = lay.path("web_dir", night=night)
        bad = broken_links(folder)
        n_refs = sum(len(references(p)) for p in folder.glob("*.html"))
        rows.append(Check("report", f"night {night}: links and images of its {len(list(folder.glob('*.html')))} "
                                    f"pages that do not resolve (of {n_refs})", len(bad), "0", not bad,
                          "links"))
        stale = _stale_units(res, night)
        rows.append(Check("report", f"night {night}: units the page shows stale (done before an input they read "
                                    f"changed: a stage run before one it reads){': ' + ', '.join(stale) if stale else ''}",
                          len(stale), "0", not stale, "units"))
        index = lay.path("web_page", night=night, name="index.html")
        weight = page_weight(index) / 1e6
        rows.append(Check("report", "night page weight (index.html and its images)", weight,
                          "information", bool(np.isfinite(weight)), "MB"))
    return rows


def _stale_units(res: DemoResult, night: str) -> list[str]:
    """``stage unit`` of every unit the night page shows stale (its status table; the page's own
    stages left out as the page leaves them): none when the stages ran in the registry's order."""
    from hetred.jobs.registry import night_plan
    from hetred.report.run import STAGE_NIGHT, STAGE_SHOT
    from hetred.report.status import stage_status

    order, expected, _ = night_plan(res.layout, night)
    return [f"{st.stage} {r.uid}" for st in stage_status(res.layout, night, order, expected,
                                                         skip=(STAGE_NIGHT, STAGE_SHOT))
            for r in st.rows if r.status == "stale"]
