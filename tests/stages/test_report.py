"""``hetred report`` on two shots simulated at the level ``hetred h5`` reads (:mod:`hetred.sim.h5_shot`,
two nights of one month): the detection reports (one per detection with S/N >= min_sn, read back
from sqlite with the snippet of docs/stages/report.md), reruns that make only the missing reports
(after a kill too), the month's database, the night and shot pages (every link and image
resolves; numbers outside their usual range marked) and the night page in a headless Chromium
(skipped, with the reason, where it is not installed; the screenshot is kept as an artifact).

The calibration part of the night page reads the calibration stages' done markers: written here
with the counts and files those stages write (the demo checks the page on real ones).
"""
from __future__ import annotations

import io
import json
import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tables as tb
from click.testing import CliRunner

from hetred.cli import cli
from hetred.h5 import run as h5run
from hetred.h5.settings import H5Settings
from hetred.jobs.units import UnitOutcome, run_unit
from hetred.layout import Layout
from hetred.report import run as R
from hetred.report.html import broken_links, page_weight
from hetred.report.settings import ReportSettings
from hetred.sim.focalplane import slot_entry
from hetred.sim.h5_shot import simulate_h5_shot

MONTH = "201801"
#: ingest the faint candidate too (S/N 3.1): two detections per shot
H5 = H5Settings(sn_min=3.0)
ST = ReportSettings(min_sn=3.0)


def _png(path: Path) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (200, 220, 240)).save(path)
    return str(path)


def _calibration(lay: Layout) -> None:
    """Done markers of the month's calibration units of slot 053 (counts as the stages write them),
    their QA plots, bias frame tables and amp_to_amp.txt. Amp RU's bias noise is out of range."""
    for amp in ("LL", "LU", "RL", "RU"):
        uid = f"{MONTH}_053_{amp}"
        noise = 14.0 if amp == "RU" else 3.5
        frames = lay.path("bias_frames", month=MONTH, ifuslot=53, amp=amp)
        frames.parent.mkdir(parents=True, exist_ok=True)
        frames.write_text("# member contid specid overscan level scale verdict note\n" + "".join(
            f"20180110/virus/virus0000001/exp{k:02d}/virus/x_053{amp}_zro.fits 0059 320 {1700.0 + k:10.3f} "
            f"{-0.5:10.3f} {noise:10.3f} used -\n" for k in range(1, 6)))
        qa = _png(lay.path("qa", stage="bias", name=f"{uid}.png"))
        run_unit(lay, "bias", uid, lambda q=qa, f=frames: UnitOutcome(outputs=[str(f), q], counts={
            "frames": 5, "used": 5, "ntraps": 1}))
        run_unit(lay, "twical-combine", uid, lambda: UnitOutcome(counts={
            "dead_fibers": [16], "ftf_scatter_median": 0.0007, "nexp": 3, "trace_scatter_median": 0.001,
            "wave_scatter_median": 0.01}))
        run_unit(lay, "twical-reduce", f"20180110v001_exp01_053_{amp}", lambda: UnitOutcome(counts={
            "dead_fibers": [16], "wave_rms_median": 0.006}))
        qa = _png(lay.path("qa", stage="flat", name=f"cam320_{amp}.png"))
        run_unit(lay, "flat", f"cam320_{amp}", lambda q=qa: UnitOutcome(outputs=[q], counts={
            "ifuslot": 53, "mask_sigma": 0.0103, "nboxes": 2, "used": 16}))
    a2a = lay.path("amp_to_amp", month=MONTH)
    a2a.parent.mkdir(parents=True, exist_ok=True)
    a2a.write_text("# ifuslot amp a2a scatter nexp\n053 LL 0.95 0 3\n053 LU 0.98 0 3\n053 RL 1.02 0 3\n"
                   "053 RU 1.05 0 3\n")
    _png(lay.path("qa", stage="twical", name=f"{MONTH}_053.png"))
    run_unit(lay, "twical-a2a", MONTH, lambda: UnitOutcome(outputs=[str(a2a)], counts={"amps": 4}))
    run_unit(lay, "bgmodel", f"{MONTH}_053_LL_bri", lambda: (_ for _ in ()).throw(__import__(
        "hetred.errors", fromlist=["EmptyUnit"]).EmptyUnit("no bri frames with 2 < level < 15")))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    lay = Layout(root / "raw", root / "red")
    a = simulate_h5_shot(lay, [slot_entry(53)], seed=3)
    b = simulate_h5_shot(lay, [slot_entry(53)], seed=5, night="20180111", obs=3, line_wave=5010.0)
    for s in (a, b):
        assert run_unit(lay, h5run.STAGE_SHOT, s.datevobs, lambda d=s.datevobs: h5run.run_h5_shot(lay, d, H5)
                        ).status == "done"
    assert run_unit(lay, h5run.STAGE_DETECT, MONTH, lambda: h5run.run_h5_detect(lay, MONTH, H5)).status == "done"
    assert run_unit(lay, h5run.STAGE_DETECT_MERGE, "hdr2.1", lambda: h5run.run_h5_detect_merge(lay, H5)
                    ).status == "done"
    for s in (a, b):
        assert run_unit(lay, "spec2d", s.datevobs, lambda d=s.datevobs: h5run.run_spec2d(lay, d, H5)).status == "done"
    _calibration(lay)
    r = run_unit(lay, R.STAGE_DETECTIONS, a.datevobs, lambda: R.run_report_detections(lay, a.datevobs, ST))
    assert r.status == "done", r.message
    return SimpleNamespace(layout=lay, a=a, b=b, first=r)


def _detections(lay: Layout, shotid: int, min_sn: float) -> set[int]:
    with tb.open_file(str(lay.path("h5_detect", name="hdr2.1"))) as f:
        d = f.root.Detections.read_where("shotid == sid", condvars={"sid": np.int64(shotid)})
    return set(d["detectid"][d["sn"] >= min_sn].tolist())


def test_one_report_per_detection_read_back_from_sqlite(tree):
    lay, a = tree.layout, tree.a
    want = _detections(lay, a.shotid, ST.min_sn)
    assert len(want) == 2
    c = tree.first.outcome.counts
    assert c["reports"] == c["made"] == 2 and c["kept"] == 0 and c["detections"] == 2
    db = lay.path("report_db", month=MONTH, datevobs=a.datevobs)
    # the docs' snippet
    from PIL import Image
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT detectid, image FROM report"))
    png, = con.execute("SELECT image FROM report WHERE detectid = ?", (min(want),)).fetchone()
    det = con.execute("SELECT detectid, wave, sn, inputid FROM detections ORDER BY detectid").fetchall()
    meta = dict(con.execute("SELECT key, value FROM meta"))
    con.close()
    im = Image.open(io.BytesIO(png))
    assert im.size == (960, 576) and im.format == "PNG"
    assert set(rows) == want and [d[0] for d in det] == sorted(want)
    assert det[0][3] == "20180110v007_320_053_020_001" and abs(det[0][1] - a.truth["lines"][0]["wave"]) < 1
    assert meta["min_sn"] == "3" and meta["datevobs"] == a.datevobs
    for did in want:
        p = lay.path("report_png", month=MONTH, datevobs=a.datevobs, detectid=did)
        assert p.read_bytes() == rows[did]
        thumb = Image.open(lay.path("report_thumb", month=MONTH, datevobs=a.datevobs, detectid=did))
        assert thumb.format == "JPEG" and thumb.size[0] == ST.thumb_width
    # hetdex_api's ELiXer reader (sqlite_utils.fetch_elixer_report_image) asks exactly this
    con = sqlite3.connect(db)
    assert con.execute("SELECT image from report where detectid = ?", (str(min(want)),)).fetchall()[0][0] == png
    con.close()


def test_rerun_and_resume_make_only_the_missing_reports(tree):
    lay, dv = tree.layout, tree.a.datevobs
    r = run_unit(lay, R.STAGE_DETECTIONS, dv, lambda: R.run_report_detections(lay, dv, ST))
    assert r.status == "skipped"
    ids = sorted(_detections(lay, tree.a.shotid, ST.min_sn))
    gone = lay.path("report_png", month=MONTH, datevobs=dv, detectid=ids[1])
    gone.unlink()                                  # an output gone: the unit is stale, and redone
    r = run_unit(lay, R.STAGE_DETECTIONS, dv, lambda: R.run_report_detections(lay, dv, ST))
    assert r.status == "done" and r.outcome.counts["made"] == 1 and r.outcome.counts["kept"] == 1 and gone.exists()

    # a run killed after its first report (both were missing): the rerun makes the other one only
    def killed(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt
    for did in ids:
        lay.path("report_png", month=MONTH, datevobs=dv, detectid=did).unlink()
    with pytest.raises(KeyboardInterrupt):
        run_unit(lay, R.STAGE_DETECTIONS, dv, lambda: R.run_report_detections(lay, dv, ST, progress=killed))
    assert "interrupted" in json.loads(lay.path("marker_failed", stage=R.STAGE_DETECTIONS, unit=dv).read_text())[
        "reason"]
    r = run_unit(lay, R.STAGE_DETECTIONS, dv, lambda: R.run_report_detections(lay, dv, ST))
    assert r.status == "done" and (r.outcome.counts["made"], r.outcome.counts["kept"]) == (1, 1)
    # a report of another detection under a detectid (the months were merged again): made again
    other = lay.path("report_png", month=MONTH, datevobs=dv, detectid=ids[0])
    other.write_bytes(lay.path("report_png", month=MONTH, datevobs=dv, detectid=ids[1]).read_bytes())
    r = run_unit(lay, R.STAGE_DETECTIONS, dv, lambda: R.run_report_detections(lay, dv, ST), overwrite=True)
    assert (r.outcome.counts["made"], r.outcome.counts["kept"]) == (1, 1)


def test_cli_pdf_merge_and_empty(tree):
    lay, b = tree.layout, tree.b
    args = ["--raw", str(lay.raw), "--red", str(lay.red), "report"]
    r = CliRunner().invoke(cli, args + ["detections", "--shot", b.datevobs, "--min-sn", "3", "--pdf", "--merge"])
    assert r.exit_code == 0, r.output
    db = lay.path("report_db", month=MONTH, datevobs=b.datevobs)
    con = sqlite3.connect(db)
    n_pdf, = con.execute("SELECT count(*) FROM report_pdf").fetchone()
    pdf, = con.execute("SELECT pdf FROM report_pdf LIMIT 1").fetchone()
    con.close()
    assert n_pdf == 2 and pdf[:5] == b"%PDF-"
    con = sqlite3.connect(lay.path("report_db_month", month=MONTH))
    ids = [x for (x,) in con.execute("SELECT detectid FROM report ORDER BY detectid")]
    con.close()
    assert set(ids) == _detections(lay, tree.a.shotid, 3.0) | _detections(lay, b.shotid, 3.0)
    r = CliRunner().invoke(cli, args + ["detections", "--shot", b.datevobs, "--dry-run"])
    assert r.exit_code == 0 and "done (would skip)" in r.output
    # nothing above the cut: an empty unit, not a failure
    st = ReportSettings(min_sn=1000.0)
    r = run_unit(lay, R.STAGE_DETECTIONS, "20180111v003x", lambda: R.run_report_detections(lay, b.datevobs, st))
    assert r.status == "empty" and "S/N >= 1000" in r.message
    r = CliRunner().invoke(cli, args + ["detections", "--shot", "2018v1"])
    assert r.exit_code != 0 and "DATEvOBS" in str(r.exception) + r.output


def test_night_page_every_link_resolves(tree):
    lay = tree.layout
    args = ["--raw", str(lay.raw), "--red", str(lay.red), "report"]
    r = CliRunner().invoke(cli, args + ["night", "20180110"])
    assert r.exit_code == 0, r.output
    folder = lay.path("web_dir", night="20180110")
    index = lay.path("web_page", night="20180110", name="index.html")
    assert f"night page: {index}" in r.output.replace("\n", "")
    assert sorted(p.name for p in folder.glob("*.html")) == ["20180110v007.html", "calib.html", "index.html"]
    assert broken_links(folder) == []
    assert 10_000 < page_weight(index) < 2_000_000
    text = index.read_text()
    # every stage with units, the failed and empty ones with their reasons
    for stage in ("h5-shot", "spec2d", "bias", "twical-combine", "report-detections"):
        assert f">{stage}<" in text, stage
    assert "no bri frames with 2 &lt; level &lt; 15" in text and "interrupted" not in text
    calib = (folder / "calib.html").read_text()
    assert calib.count('class="bad"') == 1 and 'title="usual range 2–10"' in calib   # RU's bias noise
    shot = (folder / "20180110v007.html").read_text()
    ids = sorted(_detections(lay, tree.a.shotid, ST.min_sn))
    assert f'files/reports/{ids[0]}.png' in shot and f'files/thumbs/{ids[0]}.jpg' in shot
    assert "response_4540" in shot and "no amp.dat (hetred fullsky)" in shot
    assert not any(x in p.read_text() for p in folder.glob("*.html") for x in ('src="http', 'href="http', '="//'))
    # the shot page alone
    r = CliRunner().invoke(cli, args + ["shot", tree.b.datevobs])
    assert r.exit_code == 0, r.output
    assert broken_links(lay.path("web_dir", night="20180111")) == []


def _artifacts(tmp_path_factory) -> Path:
    d = Path(os.environ.get("HETRED_TEST_ARTIFACTS") or tmp_path_factory.getbasetemp() / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_night_page_in_a_headless_browser(tree, tmp_path_factory):
    from tests.report.cdp import find_chromium, load_page

    exe = find_chromium()
    if exe is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it where it can)")
    lay = tree.layout
    index = lay.path("web_page", night="20180110", name="index.html")
    if not index.exists():
        r = CliRunner().invoke(cli, ["--raw", str(lay.raw), "--red", str(lay.red), "report", "night", "20180110"])
        assert r.exit_code == 0, r.output
    out = _artifacts(tmp_path_factory)
    for name in ("index.html", "20180110v007.html", "calib.html"):
        page = lay.path("web_page", night="20180110", name=name)
        got = load_page(exe, page)
        assert got.failed == [], (name, got.failed)
        assert got.requests >= 2 and got.bytes > 0 and got.height > 500
        shot = out / f"report_night_{name.replace('.html', '')}.png"
        shot.write_bytes(got.screenshot)
        print(f"{name}: {got.requests} requests, {got.bytes} bytes loaded, page {got.width}x{got.height}; "
              f"screenshot {shot}")
    # a broken image is seen by the browser too
    bad = index.with_name("broken.html")
    bad.write_text('<!DOCTYPE html><html><body><img src="img/nothing.png"></body></html>')
    try:
        got = load_page(exe, bad, quiet=0.5)
        assert any("nothing.png" in f for f in got.failed), got.failed
    finally:
        bad.unlink()


def test_given_pages_in_a_headless_browser(tmp_path_factory):
    """The pages of a reduction made elsewhere (``.ci/run`` sets HETRED_REPORT_PAGES to the demo's
    ``red/web`` after ``hetred demo``): every link resolves and Chromium loads every page cleanly."""
    from tests.report.cdp import find_chromium, load_page

    where = os.environ.get("HETRED_REPORT_PAGES")
    if not where:
        pytest.skip("HETRED_REPORT_PAGES not set (.ci/run sets it to the demo's red/web)")
    pages = sorted(Path(where).rglob("*.html"))
    assert pages, f"no pages under {where}"
    for folder in sorted({p.parent for p in pages}):
        assert broken_links(folder) == [], folder
    exe = find_chromium()
    if exe is None:
        pytest.skip("links checked; no chromium on PATH for the browser part")
    out = _artifacts(tmp_path_factory)
    for page in pages:
        got = load_page(exe, page)
        assert got.failed == [], (page, got.failed)
        if page.name == "index.html":
            (out / f"report_demo_{page.parent.name}.png").write_bytes(got.screenshot)
            print(f"{page}: {page_weight(page)} bytes, {got.requests} requests; screenshot in {out}")
