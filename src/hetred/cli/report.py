"""``hetred report detections|merge|night|shot``: step 18, a report per detection in sqlite
databases, and the static HTML pages of a night and its shots (docs/stages/report.md)."""
from __future__ import annotations

from functools import partial

import click
from rich.table import Table

from hetred.cli.common import (
    check_month,
    check_night,
    console,
    dry_run_state,
    exit_on_failures,
    get_config,
    report_notes,
    report_unit,
    run_parallel,
    stage_entries,
    status_cell,
    unit_counts,
)
from hetred.errors import HetredError
from hetred.jobs.units import UnitResult, run_unit

EXAMPLES = """
\b
Examples:
  hetred report detections --shot 20180110v007      # a report per detection with S/N >= 5
  hetred report detections 201801 --jobs 2 --merge  # every shot of the month, then reports_201801.db
  hetred report detections 201801 --min-sn 6 --pdf  # PDFs too
  hetred report merge 201801                        # only the month's database
  hetred report night 20180110                      # RED/web/20180110/index.html
  hetred report shot 20180110v007                   # RED/web/20180110/20180110v007.html alone
\b
Reports read the release's detect file (hetred h5 detect), the shot's im2D file
(hetred spec2d) and shot file (hetred h5 shot). A rerun makes only the missing
reports (--overwrite: all). The pages open from disk (no server, nothing
fetched from elsewhere). [stages.report]: min_sn, pdf, dpi, thumb_width,
thumbnails_max, release and the usual ranges *_range (docs/stages/report.md).
"""


def _settings(ctx: click.Context, **override):
    from hetred.report.settings import ReportSettings

    cfg = get_config(ctx)
    return ReportSettings.from_config(cfg.stage("report"), cfg.stage("h5"), **override)


@click.group("report", epilog=EXAMPLES)
def command() -> None:
    """Reports: a page per line detection (PNG, optionally PDF) gathered in sqlite databases, and
    a folder of static HTML per night (every stage's units, calibration QA, each shot's
    astrometry, throughput, full-field sky and detections)."""


def _det_job(layout, settings, overwrite, datevobs: str) -> UnitResult:
    from hetred.report.run import STAGE_DETECTIONS, run_report_detections

    return run_unit(layout, STAGE_DETECTIONS, datevobs,
                    lambda: run_report_detections(layout, datevobs, settings, remake=overwrite), overwrite=overwrite)


def _merge(ctx: click.Context, month: str, overwrite: bool, dry_run: bool) -> UnitResult | None:
    from hetred.report.run import STAGE_MERGE, run_report_merge

    layout = get_config(ctx).layout
    if dry_run:
        state = dry_run_state(layout, STAGE_MERGE, month, overwrite)
        click.echo(f"{month}: {state} ({STAGE_MERGE}); would write {layout.path('report_db_month', month=month)}")
        return None
    return run_unit(layout, STAGE_MERGE, month, lambda: run_report_merge(layout, month), overwrite=overwrite)


@command.command("detections", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--min-sn", type=click.FloatRange(0), help="Reports of the detections with S/N >= this [5].")
@click.option("--pdf", is_flag=True, default=None, help="A PDF of each report too.")
@click.option("--merge", is_flag=True, help="Then merge the month's shot databases into reports_MONTH.db.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Shots in parallel.")
@click.option("--overwrite", is_flag=True, help="Make every report again (default: only the missing ones).")
@click.option("--dry-run", is_flag=True, help="List the shots and what they would write; write nothing.")
@click.pass_context
def detections_cmd(ctx: click.Context, month: str | None, shot: str | None, min_sn: float | None, pdf: bool | None,
                   merge: bool, jobs: int, overwrite: bool, dry_run: bool) -> None:
    """A report (PNG) per detection of MONTH (YYYYMM) or of one --shot with S/N >= --min-sn, and a
    sqlite database per shot (ELiXer's report table: detectid -> PNG).

    A report shows the calibrated 1-D spectrum with its errors and the fitted line, a zoom on
    the line, the 2-D cut-outs of the highest-weight fibers, the IFU's fibers as a line image
    with the contributing ones ringed and the detection marked, and the .mc values.
    """
    from hetred.report.run import STAGE_DETECTIONS, shot_units

    if (month is None) == (shot is None):
        raise HetredError("give either MONTH or --shot DATEvOBS")
    if month is not None:
        check_month(month)
    cfg = get_config(ctx)
    layout, quiet = cfg.layout, cfg.verbosity < 0
    st = _settings(ctx, min_sn=min_sn, pdf=pdf)
    units = shot_units(stage_entries(layout, month, dry_run) if month is not None else [], shot=shot)
    if not units:
        raise HetredError(f"no science shot in {month} (tarlist): nothing to do")
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE_DETECTIONS, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}; would write {layout.path('report_db', month=u.month, datevobs=u.unit)} "
                       f"and a report per detection with S/N >= {st.min_sn:g}")
        if merge:
            _merge(ctx, units[0].month, overwrite, dry_run)
        click.echo("dry run: nothing written")
        return
    job = partial(_det_job, layout, st, overwrite)
    results = run_parallel(layout, STAGE_DETECTIONS, job, [u.unit for u in units], lambda d: d, jobs,
                           "report detections", quiet)
    if merge:
        for m in sorted({u.month for u in units}):
            r = _merge(ctx, m, overwrite or any(x.status == "done" for x in results), False)
            if r is not None:
                results.append(r)
    _finish(ctx, results, "hetred report detections", ("reports", "made", "kept", "detections",
                                                         "seconds_per_report", "shots"))


@command.command("merge", epilog=EXAMPLES)
@click.argument("month")
@click.option("--overwrite", is_flag=True, help="Merge again even when done.")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
@click.pass_context
def merge_cmd(ctx: click.Context, month: str, overwrite: bool, dry_run: bool) -> None:
    """The month's shot report databases in one: reports_MONTH.db."""
    check_month(month)
    r = _merge(ctx, month, overwrite, dry_run)
    if r is None:
        click.echo("dry run: nothing written")
        return
    _finish(ctx, [r], "hetred report merge", ("reports", "shots"))


@command.command("night", epilog=EXAMPLES)
@click.argument("night")
@click.option("--overwrite", is_flag=True, help="Write the pages even when nothing changed since.")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
@click.pass_context
def night_cmd(ctx: click.Context, night: str, overwrite: bool, dry_run: bool) -> None:
    """The static HTML of NIGHT (YYYYMMDD): RED/web/NIGHT/index.html, calib.html, DATEvOBS.html."""
    from hetred.jobs.registry import night_plan
    from hetred.report.run import STAGE_NIGHT, run_report_night

    check_night(night, "NIGHT")
    cfg = get_config(ctx)
    layout = cfg.layout
    st = _settings(ctx)
    page = layout.path("web_page", night=night, name="index.html")
    if dry_run:
        state = dry_run_state(layout, STAGE_NIGHT, night, overwrite)
        click.echo(f"{night}: {state}; would write {page}")
        click.echo("dry run: nothing written")
        return
    order, expected, shots = night_plan(layout, night, cfg.stages)
    r = run_unit(layout, STAGE_NIGHT, night, lambda: run_report_night(layout, night, st, order, expected, shots),
                 overwrite=overwrite)
    _finish(ctx, [r], "hetred report night", ("pages", "shots", "files", "page_weight", "broken_links", "marked"))
    if r.status in ("done", "skipped"):
        console.print(f"night page: {page}", highlight=False, soft_wrap=True)


@command.command("shot", epilog=EXAMPLES)
@click.argument("datevobs", metavar="DATEvOBS")
@click.option("--overwrite", is_flag=True, help="Write the page even when nothing changed since.")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
@click.pass_context
def shot_cmd(ctx: click.Context, datevobs: str, overwrite: bool, dry_run: bool) -> None:
    """The page of one shot: RED/web/NIGHT/DATEvOBS.html (and the files it shows)."""
    from hetred.report.run import STAGE_SHOT, run_report_shot, shot_units

    shot_units([], shot=datevobs)             # checks DATEvOBS
    cfg = get_config(ctx)
    layout = cfg.layout
    st = _settings(ctx)
    page = layout.path("web_page", night=datevobs[:8], name=f"{datevobs}.html")
    if dry_run:
        state = dry_run_state(layout, STAGE_SHOT, datevobs, overwrite)
        click.echo(f"{datevobs}: {state}; would write {page}")
        click.echo("dry run: nothing written")
        return
    r = run_unit(layout, STAGE_SHOT, datevobs, lambda: run_report_shot(layout, datevobs, st), overwrite=overwrite)
    _finish(ctx, [r], "hetred report shot", ("pages", "files", "page_weight", "broken_links", "marked"))
    if r.status in ("done", "skipped"):
        console.print(f"shot page: {page}", highlight=False, soft_wrap=True)


def _finish(ctx: click.Context, results: list[UnitResult], title: str, cols: tuple[str, ...]) -> None:
    cfg = get_config(ctx)
    quiet = cfg.verbosity < 0
    for r in results:
        if r.status in ("skipped", "running", "empty"):
            report_unit(r, quiet=quiet)
    if not quiet:
        table = Table(title=title)
        table.add_column("unit", no_wrap=True)
        for c in cols:
            table.add_column(_LABELS.get(c, c.replace("_", " ")), justify="right")
        table.add_column("s", justify="right")
        table.add_column("status")
        for r in results:
            counts, seconds = unit_counts(cfg.layout, r)
            cells = [_cell((counts or {}).get(c)) for c in cols]
            table.add_row(r.unit, *cells, f"{seconds:.1f}", status_cell(r.status))
        console.print(table)
        report_notes(title, results, cfg.layout, quiet)
    exit_on_failures(ctx, results)


_LABELS = {"detections": "dets", "seconds_per_report": "s/report", "page_weight": "weight B",
           "broken_links": "broken"}


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
