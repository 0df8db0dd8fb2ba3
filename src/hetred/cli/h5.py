"""``hetred h5 shot|survey|fiberindex|detect``: steps 17 and 19, the HDF5 files hetdex_api
reads (docs/stages/h5.md)."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import click
from rich.table import Table

from hetred.cli.common import (
    check_month,
    console,
    dry_run_state,
    err_console,
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
  hetred h5 shot 201801                      # a shot file per science shot of the month
  hetred h5 shot --shot 20180110v007         # one shot (one unit)
  hetred h5 shot --shot 20180110v007 --schema head --no-compress
  hetred h5 survey                           # survey file + flux_limits_all.txt of every shot file
  hetred h5 fiberindex                       # fiber index (healpix) + fiber mask
  hetred h5 detect 201801                    # the month's detections (.mc/.list/.spec)
  hetred h5 detect --merge                   # every month into detect_hdr2.1.h5
\b
Files go to RED/h5/RELEASE/ in the tree hetdex_api's HDRconfig builds, so
  cd RED/h5 && python -c "from hetdex_api.survey import Survey; Survey('hdr2.1')"
reads them (hetdex_api 0.8.7; docs/stages/h5.md). Settings: [stages.h5] (schema,
compress, release, mask_file, detectid_base, sn_min, linewidth_min, chi2fib_max,
flim_wave, flim_radius, flim_beta, flim_fwhm, spec2d_width, spec2d_height).
"""


def _settings(ctx: click.Context, **override):
    from hetred.h5.settings import H5Settings

    return H5Settings.from_config(get_config(ctx).stage("h5"), **override)


def _common(f: Callable) -> Callable:
    f = click.option("--release", help="Release name in the file names and folders [hdr2.1].")(f)
    f = click.option("--schema", type=click.Choice(["0.8.7", "head"]),
                     help="Column names of hetdex_api 0.8.7 (default) or of today's h5tools.")(f)
    f = click.option("--compress", type=click.Choice(["auto", "zlib", "none"]),
                     help="zlib + shuffle: auto (every table but Fibers/Images, the default), zlib (all), none.")(f)
    f = click.option("--no-compress", is_flag=True, help="No filters at all (h5tools' layout); = --compress none.")(f)
    f = click.option("--overwrite", is_flag=True, help="Redo units that are already done.")(f)
    f = click.option("--dry-run", is_flag=True, help="List the units and their products; write nothing.")(f)
    return f


def _override(release, schema, compress, no_compress) -> dict:
    if no_compress and compress not in (None, "none"):
        raise HetredError("--no-compress and --compress disagree")
    return {"release": release, "schema": schema, "compress": "none" if no_compress else compress}


@click.group("h5", epilog=EXAMPLES)
def command() -> None:
    """Package a release in the HDF5 files hetdex_api reads: shot files, survey, fiber index,
    detections (h5tools' create_shot_hdf5 --tar + append_calfib + create_astrometry_hdf5 +
    create_cal_hdf5, create_survey_hdf5, create_fiber_index_hdf5, create_detect_hdf5)."""


def _run_one(ctx: click.Context, stage: str, unit: str, fn, overwrite: bool, dry_run: bool, what: str,
             title: str, cols: tuple[str, ...]) -> None:
    cfg = get_config(ctx)
    layout = cfg.layout
    if dry_run:
        state = dry_run_state(layout, stage, unit, overwrite)
        click.echo(f"{unit}: {state} ({stage}); would write {what}")
        click.echo("dry run: nothing written")
        return
    r = run_unit(layout, stage, unit, fn, overwrite=overwrite)
    _finish(ctx, [r], title, cols)


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
            table.add_column(c, justify="right")
        table.add_column("s", justify="right")
        table.add_column("status")
        for r in results:
            counts, seconds = unit_counts(cfg.layout, r)
            cells = [_cell((counts or {}).get(c)) for c in cols]
            table.add_row(r.unit, *cells, f"{seconds:.0f}", status_cell(r.status))
        console.print(table)
        for r in results:
            if r.status == "done":
                for w in ((unit_counts(cfg.layout, r)[0] or {}).get("warnings", [])):
                    err_console.print(f"[yellow]{r.unit}:[/yellow] {w}", highlight=False, soft_wrap=True)
        report_notes(title, results, cfg.layout, quiet)
    exit_on_failures(ctx, results)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _shot_job(layout, datevobs, settings, overwrite):
    from hetred.h5.run import STAGE_SHOT, run_h5_shot

    return run_unit(layout, STAGE_SHOT, datevobs, lambda: run_h5_shot(layout, datevobs, settings), overwrite=overwrite)


def _shot_job_of(layout, settings, overwrite, datevobs):
    return _shot_job(layout, datevobs, settings, overwrite)


@command.command("shot", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Shots written in parallel.")
@_common
@click.pass_context
def shot_cmd(ctx: click.Context, month: str | None, shot: str | None, jobs: int, release, schema, compress,
             no_compress, overwrite: bool, dry_run: bool) -> None:
    """Shot files DATEvOBS.h5 of MONTH (YYYYMM) or of one --shot: /Shot, /Data/Fibers, /Data/FiberIndex,
    /Data/Images, /Astrometry, /Calibration/Throughput.

    One unit per shot, written amp by amp into a temporary file renamed when complete. Every
    product but the multi files is optional: a missing one (fiber RA/Dec, calibrated fibers,
    throughput, full-field sky) leaves its columns NaN or 0 with a warning, as h5tools does, and
    the unit is redone by the next run once the product appears.
    """
    from hetred.h5.run import STAGE_SHOT, shot_units

    st = _settings(ctx, **_override(release, schema, compress, no_compress))
    if (month is None) == (shot is None):
        raise HetredError("give either MONTH or --shot DATEvOBS")
    if month is not None:
        check_month(month)
    cfg = get_config(ctx)
    layout = cfg.layout
    entries = stage_entries(layout, month, dry_run) if month is not None else None
    units = shot_units(layout, month=month, shot=shot, entries=entries)
    if not units:
        console.print(f"no science shot for {month} in the tarlist: nothing to do", highlight=False)
        return
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE_SHOT, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}; would write {layout.path('h5_shot', name=st.release, datevobs=u.unit)}")
        click.echo("dry run: nothing written")
        return
    quiet = cfg.verbosity < 0
    # in-process when jobs <= 1; else a worker pool where a dead worker fails only its unit
    job = partial(_shot_job_of, layout, st, overwrite)
    results = run_parallel(layout, STAGE_SHOT, job, [u.unit for u in units], lambda d: d, jobs, "h5 shot", quiet)
    _finish(ctx, results, "hetred h5 shot", ("ifus", "fibers", "fluxlimit_4540", "bytes"))


@command.command("survey", epilog=EXAMPLES)
@_common
@click.pass_context
def survey_cmd(ctx: click.Context, release, schema, compress, no_compress, overwrite: bool, dry_run: bool) -> None:
    """The survey file survey_RELEASE.h5 (every shot file's /Shot row) and flux_limits_all.txt."""
    from hetred.h5.run import STAGE_SURVEY, run_h5_survey

    st = _settings(ctx, **_override(release, schema, compress, no_compress))
    layout = get_config(ctx).layout
    _run_one(ctx, STAGE_SURVEY, st.release, lambda: run_h5_survey(layout, st), overwrite, dry_run,
             str(layout.path("h5_survey", name=st.release)), "hetred h5 survey", ("shots",))


@command.command("fiberindex", epilog=EXAMPLES)
@_common
@click.pass_context
def fiberindex_cmd(ctx: click.Context, release, schema, compress, no_compress, overwrite: bool,
                   dry_run: bool) -> None:
    """The fiber index fiber_index_RELEASE.h5 (healpix Nside 2^15, RING) and the fiber mask."""
    from hetred.h5.run import STAGE_FIBERINDEX, run_h5_fiberindex

    st = _settings(ctx, **_override(release, schema, compress, no_compress))
    layout = get_config(ctx).layout
    _run_one(ctx, STAGE_FIBERINDEX, st.release, lambda: run_h5_fiberindex(layout, st), overwrite, dry_run,
             str(layout.path("h5_fiberindex", name=st.release)), "hetred h5 fiberindex", ("shots", "fibers"))


@command.command("detect", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--merge", is_flag=True, help="Merge every monthly file into detect_RELEASE.h5 (renumbered).")
@_common
@click.pass_context
def detect_cmd(ctx: click.Context, month: str | None, merge: bool, release, schema, compress, no_compress,
               overwrite: bool, dry_run: bool) -> None:
    """The line detections of MONTH (detect_MONTH.h5 from the .mc/.list/.spec files), or --merge."""
    from hetred.h5.run import STAGE_DETECT, STAGE_DETECT_MERGE, run_h5_detect, run_h5_detect_merge

    st = _settings(ctx, **_override(release, schema, compress, no_compress))
    layout = get_config(ctx).layout
    if merge == (month is not None):
        raise HetredError("give either MONTH or --merge")
    if merge:
        _run_one(ctx, STAGE_DETECT_MERGE, st.release, lambda: run_h5_detect_merge(layout, st), overwrite, dry_run,
                 str(layout.path("h5_detect", name=st.release)), "hetred h5 detect --merge",
                 ("months", "detections", "fibers"))
        return
    check_month(month)
    _run_one(ctx, STAGE_DETECT, month, lambda: run_h5_detect(layout, month, st), overwrite, dry_run,
             str(layout.path("h5_detect_month", name=st.release, month=month)), "hetred h5 detect",
             ("ifus", "candidates", "detections", "fibers"))
