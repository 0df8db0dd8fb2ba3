"""``hetred fullsky (MONTH | --shot DATEvOBS) [--exp N]``: step 20, the full-field sky
(docs/stages/fullsky.md)."""
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
    track,
    unit_counts,
)
from hetred.errors import HetredError
from hetred.jobs.units import UnitResult, run_unit

EXAMPLES = """
\b
Examples:
  hetred fullsky 201801                         # every science exposure of the month, then the _cal.fits
  hetred fullsky --shot 20180110v007            # one shot: its exposures, then its _cal.fits
  hetred fullsky --shot 20180110v007 --exp 2    # one unit: 20180110v007_exp02
  hetred fullsky --shot 20180110v007 --step addsky   # only the fullsky HDU of the _cal.fits
  hetred fullsky 201801 --jobs 2 --overwrite
  hetred fullsky 201801 --dry-run
\b
Needs the multi files of hetred sci, the calibration library (fiber-to-fiber,
amp-to-amp) of hetred twical, the residual maps of hetred resmap (res = 0
without one) and, for the fullsky HDU, the _cal.fits of hetred calfib.
Writes fullsky/MONTH/dDATEsOBSexpNN{amp.dat,sky.dat,sub.fits,ds9.reg} and a
PNG per exposure; appends HDU 4 "fullsky" to each _cal.fits of the shot.
Settings: [stages.fullsky] (profile = "karl" for vred3 exactly; run_full,
run_amp, continuum_sigma, w0_half, w0_steps, w1_half, w1_steps, hg_weight,
search_points, passes, refine, back_fibers, ... see the docs page).
"""


def _sky_job(layout, unit, settings, overwrite):
    from hetred.fullsky.run import STAGE, run_fullsky
    return run_unit(layout, STAGE, unit.unit, lambda: run_fullsky(layout, unit, settings), overwrite=overwrite)


def _addsky_job(layout, unit, overwrite):
    from hetred.fullsky.run import STAGE_ADDSKY, run_addsky
    return run_unit(layout, STAGE_ADDSKY, unit.unit, lambda: run_addsky(layout, unit), overwrite=overwrite)


@click.command("fullsky", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--exp", "exp", type=click.IntRange(1), help="One exposure of the shot (with --shot).")
@click.option("--step", type=click.Choice(["all", "sky", "addsky"]), default="all", show_default=True,
              help="sky: the exposures (vred3); addsky: the fullsky HDU of the _cal.fits (imaddsky).")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Units run in parallel.")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str | None, shot: str | None, exp: int | None, step: str, jobs: int,
            overwrite: bool, dry_run: bool) -> None:
    """Full-field sky of MONTH (YYYYMM) or of one --shot: Karl's vred3 on every exposure, then
    its rows in the calibrated-fiber files.

    One unit per exposure (all IFUs): the exposure's master sky from every fiber, per amp the
    continuum fibers, the Factor, the wavelength offset W0/W1 against the master, the
    subtraction and a residual background; amp.dat, sky.dat, sub.fits and ds9.reg. Then one unit
    per shot appends the full-field-sky-subtracted fibers, flux-calibrated as calib, to each
    _cal.fits (HDU fullsky), rows placed by amp name. Amps that cannot be reduced are flagged
    in amp.dat and the others finish.
    """
    from hetred.fullsky.run import STAGE, STAGE_ADDSKY, addsky_units, fullsky_units
    from hetred.fullsky.settings import FullskySettings

    cfg = get_config(ctx)
    quiet = cfg.verbosity < 0
    settings = FullskySettings.from_config(cfg.stage("fullsky"))
    if (month is None) == (shot is None):
        raise HetredError("give either MONTH or --shot DATEvOBS")
    if exp is not None and shot is None:
        raise HetredError("--exp goes with --shot")
    if month is not None:
        check_month(month)
    layout = cfg.layout
    the_month = month or (shot or "")[:6]
    entries = stage_entries(layout, the_month, dry_run) if the_month.isdigit() else None
    sky = fullsky_units(layout, month=month, shot=shot, exp=exp, entries=entries) if step in ("all", "sky") else []
    add = addsky_units(layout, month=month, shot=shot, entries=entries) if step in ("all", "addsky") else []
    if not sky and not add:
        console.print(f"no science exposure for {shot or month} in the tarlist: nothing to do", highlight=False)
        return
    if dry_run:
        for u in sky:
            state = dry_run_state(layout, STAGE, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}; would write {layout.path('fullsky_amp', **u.keys())} (+ sky.dat, "
                       "sub.fits, ds9.reg, PNG)")
        for a in add:
            state = dry_run_state(layout, STAGE_ADDSKY, a.unit, overwrite)
            click.echo(f"{a.unit}: addsky {state}; would append HDU fullsky to calfib/{a.month}/{a.datevobs}_*_cal.fits")
        click.echo("dry run: nothing written")
        return
    results: list[UnitResult] = []
    if jobs > 1 and len(sky) > 1:       # a dead worker fails only its unit (hetred.jobs.pool)
        job = partial(_sky_job, layout, settings=settings, overwrite=overwrite)
        results = run_parallel(layout, STAGE, job, sky, lambda u: u.unit, jobs, "fullsky", quiet)
    else:
        for u in track(sky, "fullsky", total=len(sky), quiet=quiet):
            results.append(_sky_job(layout, u, settings, overwrite))
    add_results = [_addsky_job(layout, a, overwrite) for a in add]
    for r in results + add_results:
        if r.status in ("skipped", "running", "empty"):
            report_unit(r, quiet=quiet)
    if not quiet:
        _summary(layout, results, add_results)
    report_notes(STAGE, results + add_results, layout, quiet=quiet)
    exit_on_failures(ctx, results + add_results)


def _summary(layout, results, add_results) -> None:
    if results:
        table = Table(title="hetred fullsky")
        for col, just in (("exposure", "left"), ("amps", "right"), ("flagged", "right"), ("red", "right"),
                          ("Factor", "right"), ("W0 (Å)", "right"), ("Scale", "right"), ("N_c", "right"),
                          ("s", "right"), ("status", "left")):
            table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        for r in results:
            c, seconds = unit_counts(layout, r)
            row = ["-"] * 7
            if c and "amps" in c:
                rng = lambda v, f: f"{v[0]:{f}}..{v[1]:{f}}" if v else "-"
                row = [str(c["amps"]), str(len(c["flagged"])), str(c["red"]), rng(c["factor"], ".3f"),
                       rng(c["w0"], ".2f"), rng(c["scale"], ".1f"), str(c["ncont"])]
            table.add_row(r.unit, *row, f"{seconds:.0f}", status_cell(r.status))
        console.print(table)
    if add_results:
        table = Table(title="hetred fullsky: fullsky HDU of the _cal.fits")
        for col in ("shot", "files", "s", "status"):
            table.add_column(col)
        for r in add_results:
            c, seconds = unit_counts(layout, r)
            table.add_row(r.unit, str((c or {}).get("files", "-")), f"{seconds:.0f}", status_cell(r.status))
        console.print(table)
