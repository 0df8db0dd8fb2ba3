"""The night's folder of static HTML (``web_dir``): ``index.html`` (the night at a glance),
``calib.html`` (the month's calibration numbers and QA plots) and one page per shot
(``DATEvOBS.html``). Every plot and product a page shows or links is hard-linked (else copied)
into the folder's ``files/`` and ``img/``: the folder opens from disk or from any web directory
on its own, with no server and nothing fetched from elsewhere.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hetred._version import __version__
from hetred.errors import WriteError
from hetred.io.atomic import atomic_path, write_text_atomic
from hetred.layout import Layout
from hetred.report import html as H
from hetred.report import qaplots
from hetred.report.calib import AMPS, NUMBERS, CalibData, calib_data
from hetred.report.settings import STAGE_NIGHT, STAGE_SHOT, ReportSettings
from hetred.report.shotdata import ShotData, shot_data
from hetred.report.status import STATES, StageStatus, marker_dirs, stage_status


@dataclass
class PagesResult:
    pages: list[Path] = field(default_factory=list)
    shots: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    weight: int = 0                 #: bytes a browser loads for the first page written
    broken: list[str] = field(default_factory=list)
    marked: int = 0                 #: numbers outside their usual range
    depends: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class Folder:
    """Where a night's pages, plots and linked products go (all through the layout)."""

    def __init__(self, layout: Layout, night: str) -> None:
        self.layout, self.night = layout, night
        self.dir = layout.path("web_dir", night=night)
        self.res = PagesResult()

    def link(self, src: Path, stage: str, name: str | None = None) -> Path:
        """``src`` in the folder (a hard link, else a copy), replacing an older one: kept when it
        is the same file (a link) or a copy made since ``src`` last changed, of its size."""
        dest = self.layout.path("web_file", night=self.night, stage=stage, name=name or src.name)
        try:
            d, s = os.stat(dest), os.stat(src)
            if (d.st_ino, d.st_dev) == (s.st_ino, s.st_dev) or (d.st_size == s.st_size
                                                                 and d.st_mtime_ns >= s.st_mtime_ns):
                self.res.files += 1
                return dest
        except OSError:
            pass
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            try:
                os.link(src, tmp)
            except OSError:                 # another file system, or links not allowed: a copy
                shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise WriteError(dest, err) from None
        self.res.files += 1
        self.res.bytes += dest.stat().st_size
        return dest

    def image(self, name: str, data: bytes) -> Path:
        path = self.layout.path("web_img", night=self.night, name=name)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        self.res.files += 1
        self.res.bytes += len(data)
        return path

    def page(self, name: str, text: str) -> Path:
        path = self.layout.path("web_page", night=self.night, name=name)
        write_text_atomic(path, text)
        self.res.pages.append(path)
        self.res.bytes += len(text.encode())
        return path

    def url(self, path: Path) -> str:
        return H.href(path, self.dir)


def night_shots(layout: Layout, night: str) -> list[str]:
    """The night's shots seen in the products (astrometry folders, science markers, reports)."""
    found = set()
    for p in layout.glob("astrom_dir"):
        if p.name.startswith(night):
            found.add(p.name)
    for p in layout.glob("marker_done", stage="sci"):
        m = re.match(rf"({night}v\d{{3}})_", p.name)
        if m:
            found.add(m.group(1))
    for p in layout.glob("report_db", month=night[:6]):
        if p.parent.name.startswith(night):
            found.add(p.parent.name)
    return sorted(found)


def _nav(f: Folder, shots: list[str], index: bool = True) -> list[tuple[str, str]]:
    nav = [("index.html", f"night {f.night}"), ("calib.html", "calibration")] if index else []
    return nav + [(f"{s}.html", s) for s in shots]


def _generated() -> str:
    return (f"hetred {__version__}, written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")


# ------------------------------------------------------------------------------------------------
# the night

def _status_html(stages: list[StageStatus]) -> str:
    rows, rcls = [], []
    for s in stages:
        c = s.counts
        rows.append([H.Cell(s.stage, "l"), H.Cell(str(s.total))] + [
            H.Cell(str(c[k]), "bad" if k in ("failed", "stale", "missing") and c[k] else "") for k in STATES]
            + [H.Cell(f"{s.seconds:.0f}")])
        rcls.append("" if s.ok else "red")
    out = [H.table(["stage", "units", *STATES, "unit seconds"], rows, row_cls=rcls)]
    for s in stages:
        if not s.rows:
            continue
        shown = s.rows[:200]
        more = f" (first 200 of {len(s.rows)})" if len(s.rows) > 200 else ""
        t = H.table(["unit", "state", "why"], [[H.Cell(r.uid, "l"), H.Cell(r.status, "bad" if r.status in (
            "failed", "stale", "missing") else "warn"), H.Cell(r.why, "l")] for r in shown], cls="small")
        out.append(f"<details><summary>{H.esc(s.stage)}: {len(s.rows)} unit(s) not done{more}</summary>{t}</details>")
    return "\n".join(out)


def _shot_row(s: ShotData, st: ReportSettings) -> tuple[list[H.Cell], int]:
    off = s.offset_arcsec
    rms = [max(e.rms) for e in s.exposures if e.rms is not None]
    stars = [e.stars for e in s.exposures if e.stars is not None]
    norms = [e.norm for e in s.exposures if e.norm is not None]
    ndet = sum(int(c.get("detections", 0) or 0) for c in s.detect.values())
    cells = [H.Cell(f'<a href="{s.datevobs}.html">{s.datevobs}</a>', "l", raw=True),
             H.Cell(str(len(s.exposures))),
             H.num(s.tp.get("fwhm"), st.range("fwhm"), ".2f"),
             H.num(s.tp.get("response_4540"), st.range("response"), ".4f"),
             H.num(s.tp.get("nstars_used"), st.range("tp_stars"), "d"),
             H.num(None if off is None else (off[0] ** 2 + off[1] ** 2) ** 0.5, st.range("astrom_offset"), ".2f"),
             H.num(max(rms) if rms else None, st.range("astrom_rms"), ".3f"),
             H.num(min(stars) if stars else None, st.range("astrom_stars"), "d"),
             H.num(min(norms) if norms else None, st.range("norm"), ".3f"),
             H.Cell(str(s.n_red), "bad" if s.n_red else ""),
             H.Cell(str(ndet)), H.Cell(str(len(s.reports)))]
    return cells, sum(c.cls == "bad" for c in cells)


SHOT_HEADERS = ["shot", "exp", "FWHM (″)", "response_4540", "tp stars", "pointing offset (″)", "astrom rms (″, max)",
                "stars (min)", "norm (min)", "red amps", "detections", "reports"]


def _calib_html(f: Folder, c: CalibData, st: ReportSettings) -> tuple[str, int]:
    """The calibration page's body and the count of marked numbers."""
    out = []
    png = qaplots.calib_png(c, st)
    if png is not None:
        p = f.image("calib_numbers.png", png)
        out.append(H.figure(f.url(p), "calibration numbers per IFU slot and amp (shaded: usual range)"))
    rows, marked = [], 0
    plot_labels = sorted({k for v in c.plots.values() for k in v})
    for slot in c.slots():
        sp, ifuid = c.ifus.get(slot, (None, None))
        for amp in AMPS:
            v = c.numbers.get((slot, amp), {})
            cells = [H.Cell(f"{slot:03d}", "l"), H.Cell(f"{sp:03d}" if sp is not None else "–"),
                     H.Cell(ifuid or "–"), H.Cell(amp)]
            for k, _, _, rng in NUMBERS:
                spec = ".4g" if k not in ("bias_frames", "traps", "dead_fibers") else ".0f"
                cell = H.num(v.get(k), st.range(rng) if rng else None, spec)
                marked += cell.cls == "bad"
                cells.append(cell)
            links = []
            for lab in plot_labels:
                p = c.plots.get((slot, amp), {}).get(lab)
                if p is not None and p.exists():
                    links.append(H.link(f.url(f.link(p, "qa-" + re.sub(r"[^a-z0-9]+", "-", lab.lower()))), lab))
            sp_png = c.slot_plots.get(slot, {}).get("twical")
            if amp == "LL" and sp_png is not None and sp_png.exists():
                links.append(H.link(f.url(f.link(sp_png, "qa-twical")), "twical"))
            cells.append(H.Cell(" ".join(links), "l", raw=True))
            rows.append(cells)
    heads = ["slot", "specid", "ifuid", "amp"] + [f"{lab} ({u})" if u else lab for _, lab, u, _ in NUMBERS] + ["QA plots"]
    out.append(f"<p class=\"note\">{marked} number(s) outside their usual range (red; the range in the tooltip; "
               "[stages.report] *_range settings).</p>")
    out.append(H.table(heads, rows, cls="small"))
    for p in c.files:
        out.append("<p>" + H.link(f.url(f.link(p, "calib")), p.name) + "</p>")
    if not rows:
        out.append('<p class="miss">no calibration markers of this month (hetred bias, twical, flat)</p>')
    return "\n".join(out), marked


def write_night(layout: Layout, night: str, st: ReportSettings, order: list[str] | None = None,
                expected: dict[str, list[str]] | None = None, shots: list[str] | None = None) -> PagesResult:
    """index.html, calib.html and every shot page of ``night`` (module docstring)."""
    f = Folder(layout, night)
    t0 = time.perf_counter()
    shots = sorted(set(shots or []) | set(night_shots(layout, night)))
    f.res.shots = shots
    stages = stage_status(layout, night, order, expected, skip=(STAGE_NIGHT, STAGE_SHOT))
    f.res.seconds["status"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = calib_data(layout, night)
    calib_body, calib_marked = _calib_html(f, c, st)
    f.res.seconds["calib"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    datas = [shot_data(layout, s) for s in shots]
    shot_rows, marked = [], calib_marked
    for s in datas:
        _write_shot_page(f, s, st, shots, index=True)
        cells, bad = _shot_row(s, st)
        shot_rows.append(cells)
        marked += bad
    f.res.seconds["shots"] = time.perf_counter() - t0
    f.page("calib.html", H.page(f"calibration {c.month} (night {night})", calib_body, _nav(f, shots),
                                _generated()))
    body = [_summary(f, stages, datas, marked), "<h2>Stages</h2>", _status_html(stages), "<h2>Shots</h2>"]
    if shot_rows:
        body.append(H.table(SHOT_HEADERS, shot_rows))
        curves = {s.datevobs: s.curve for s in datas if s.curve is not None}
        png = qaplots.response_png(curves, {s.datevobs: float(s.tp["response_4540"]) for s in datas
                                            if s.tp.get("response_4540") is not None})
        if png is not None:
            body.append(H.figure(f.url(f.image("response.png", png)), "response curves of the night's shots"))
        for s in datas:
            pngs = [e.fplane_png for e in s.exposures if e.fplane_png is not None]
            if pngs:
                body.append(f"<h3>{H.link(s.datevobs + '.html', s.datevobs)}: focal plane, exposure 1</h3>")
                body.append(H.figure(f.url(f.link(pngs[0], "fplane")), pngs[0].name, width=420))
    else:
        body.append('<p class="miss">no science shot this night</p>')
    body += ["<h2>Calibration</h2>", (f'<p>{H.link("calib.html", "the calibration page")}: {calib_marked} '
                                       "number(s) outside their usual range.</p>")]
    cal_img = layout.path("web_img", night=night, name="calib_numbers.png")
    if cal_img.exists():
        body.append(H.figure(f.url(cal_img), "calibration numbers", width=700, target="calib.html"))
    index = f.page("index.html", H.page(f"hetred night {night}", "\n".join(body), _nav(f, shots), _generated()))
    f.res.pages.remove(index)
    f.res.pages.insert(0, index)
    return _finish(f, layout, index, marked, shots)


def _summary(f: Folder, stages: list[StageStatus], datas: list[ShotData], marked: int) -> str:
    failed = sum(s.counts["failed"] for s in stages)
    missing = sum(s.counts["missing"] + s.counts["stale"] for s in stages)
    rows = [["reduction tree", H.Cell(str(f.layout.red), "l")],
            ["stages", f"{len(stages)} ({sum(s.ok for s in stages)} with every unit done or empty)"],
            ["units failed", H.Cell(str(failed), "bad" if failed else "ok")],
            ["units missing or stale", H.Cell(str(missing), "bad" if missing else "ok")],
            ["shots", str(len(datas))],
            ["numbers outside their usual range", H.Cell(str(marked), "bad" if marked else "ok")],
            ["detections reported", str(sum(len(s.reports) for s in datas))]]
    return "<h2>Summary</h2>" + H.table([], [[H.Cell(a, "l") if isinstance(a, str) else a,
                                                    b if isinstance(b, H.Cell) else H.Cell(b, "l")]
                                                   for a, b in rows], cls="kv")


def _finish(f: Folder, layout: Layout, first: Path, marked: int, shots: list[str]) -> PagesResult:
    f.res.broken = H.broken_links(f.dir, fast=True)
    f.res.weight = H.page_weight(first)
    f.res.marked = marked
    f.res.depends = [str(p) for p in marker_dirs(layout)] + [
        str(layout.path("report_db", month=s[:6], datevobs=s)) for s in shots]
    return f.res


def write_shot_only(layout: Layout, datevobs: str, st: ReportSettings) -> PagesResult:
    """The page of one shot in its night's folder (linked from the night page once that exists)."""
    f = Folder(layout, datevobs[:8])
    has_index = layout.path("web_page", night=f.night, name="index.html").exists()
    s = shot_data(layout, datevobs)
    page = _write_shot_page(f, s, st, [datevobs], index=has_index)
    f.res.shots = [datevobs]
    _, bad = _shot_row(s, st)
    return _finish(f, layout, page, bad, [datevobs])


# ------------------------------------------------------------------------------------------------
# a shot

def _write_shot_page(f: Folder, s: ShotData, st: ReportSettings, shots: list[str], index: bool) -> Path:
    from hetred.report.shotpage import shot_body

    body = shot_body(f, s, st)
    return f.page(f"{s.datevobs}.html", H.page(f"shot {s.datevobs}", body, _nav(f, shots, index), _generated()))
