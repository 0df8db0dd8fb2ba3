"""``hetred continuum (MONTH | --shot DATEvOBS)``: step 15, continuum sources (docs/stages/detect.md)."""
from __future__ import annotations

from functools import partial

import click
from rich.table import Table

from hetred.cli.common import (
    check_month,
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
from hetred.jobs.units import run_unit

EXAMPLES = """
\b
Examples:
  hetred continuum 201801                     # every science shot of the month
  hetred continuum --shot 20180110v007        # one shot (one unit)
  hetred continuum 201801 --dry-run           # the units and their products
\b
Needs the multi files (hetred sci) and the astrometry (hetred astrom). Writes
continuum/MONTH/DATEvOBS/: DATEvOBS.cs (bright fibers merged within 6.5"),
fitres/DATEvOBS_s.res (PSF-fitted positions), spec/DATEvOBS_s.spec and .list
(extracted spectra) and DATEvOBS.rcs (the sources after de-duplication within
4", as hetdex_api's create_cont_hdf5.py reads them). [stages.detect] sets
cont_cut, cont_merge, cont_radius, cont_fit_radius, cont_step, cont_nstep,
cont_dedupe and the PSF settings.
"""


def _job(layout, unit, settings, overwrite):
    from hetred.detect.continuum import STAGE_CONTINUUM, run_continuum
    return run_unit(layout, STAGE_CONTINUUM, unit.unit, lambda: run_continuum(layout, unit, settings),
                    overwrite=overwrite)


@click.command("continuum", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--profile", help="hdr2.1 (Karl's, the default) or fixed.")
@click.option("--fwhm", type=float, help="Seeing FWHM (arcsec at 4550 A) instead of the throughput stage's.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Shots run in parallel.")
@click.option("--overwrite", is_flag=True, help="Redo shots that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str | None, shot: str | None, profile: str | None, fwhm: float | None,
            jobs: int, overwrite: bool, dry_run: bool) -> None:
    """Continuum sources of MONTH (YYYYMM) or of one --shot (Karl's cs/ scripts).

    One unit per shot: exp01 fibers above 50 e- per column in native columns 100-200 or 800-900,
    merged within 6.5"; each source's position fitted by the PSF on a 19 x 19 raster 0.15" apart,
    its spectrum extracted there; sources closer than 4" de-duplicated.
    """
    from hetred.detect.continuum import STAGE_CONTINUUM, ContinuumUnit
    from hetred.detect.run import detect_units
    from hetred.detect.settings import DetectSettings

    cfg = get_config(ctx)
    quiet = cfg.verbosity < 0
    table = dict(cfg.stage("detect") or {})
    if fwhm is not None:
        table["fwhm"] = fwhm
    settings = DetectSettings.from_config(table, profile=profile)
    if (month is None) == (shot is None):
        raise HetredError("give either MONTH or --shot DATEvOBS")
    if month is not None:
        check_month(month)
    layout = cfg.layout
    the_month = month or (shot or "")[:6]
    entries = stage_entries(layout, the_month, dry_run) if the_month.isdigit() else None
    shots = sorted({u.datevobs for u in detect_units(layout, month=month, shot=shot, entries=entries)})
    units = [ContinuumUnit(s) for s in shots]
    if not units:
        console.print(f"no science shot for {shot or month} in the tarlist: nothing to do", highlight=False)
        return
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE_CONTINUUM, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}; would write "
                       f"{layout.path('continuum_rcs', month=u.datevobs[:6], datevobs=u.datevobs)} and the spectra")
        click.echo("dry run: nothing written")
        return
    # in-process when jobs <= 1; else a worker pool where a dead worker fails only its unit
    job = partial(_job, layout, settings=settings, overwrite=overwrite)
    results = run_parallel(layout, STAGE_CONTINUUM, job, units, lambda u: u.unit, jobs, "continuum", quiet)
    for r in results:
        if r.status != "done":
            report_unit(r, quiet=quiet)
    if not quiet:
        table_ = Table(title="hetred continuum")
        for col in ("shot", "bright fibers", "merged", "sources", "s", "status"):
            table_.add_column(col, justify="left" if col in ("shot", "status") else "right")
        for r in results:
            c, seconds = unit_counts(layout, r)
            row = [str((c or {}).get(k, "-")) for k in ("bright_fibers", "merged", "sources")]
            table_.add_row(r.unit, *row, f"{seconds:.0f}", status_cell(r.status))
        console.print(table_)
    report_notes(STAGE_CONTINUUM, results, layout, quiet)
    exit_on_failures(ctx, results)
