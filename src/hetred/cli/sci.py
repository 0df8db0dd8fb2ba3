"""``hetred sci (MONTH | --shot DATEvOBS)``: step 7, science reductions (docs/stages/sci.md)."""
from __future__ import annotations

from functools import partial

import click
from rich.table import Table

from hetred.cli.common import (
    after_units,
    check_month,
    console,
    dry_run_state,
    exit_on_failures,
    get_config,
    parse_slot,
    report_notes,
    report_unit,
    run_parallel,
    status_cell,
    unit_counts,
)
from hetred.errors import HetredError
from hetred.jobs.units import run_unit

EXAMPLES = """
\b
Examples:
  hetred sci 201801                                  # every science exposure and IFU of the month
  hetred sci --shot 20180110v007                     # one shot, its three exposures
  hetred sci --shot 20180110v007 --exp 1 --ifuslot 053   # one unit: 20180110v007_exp01_053
  hetred sci 201801 --jobs 2 --overwrite             # two units at a time, redo finished ones
  hetred sci 201801 --dry-run                        # list the units and their products
\b
Needs the month's master biases (hetred bias), background models (hetred
bgmodel), calibration library (hetred twical) and, when there are any, pixel
flats (hetred flat). [stages.sci] in the config file sets flat_min, chi2_cut,
chi2_grow, reject_sigma, master_block, continuum_sigma, residual_background,
zero_point_lines, apply_zero_point, limited_output, rectified, cofes,
fplane_png and calibration_overrides (another month's library for some IFU
slots and nights, e.g. "092" = [{last = "20190912", month = "201908"}]).
"""


def _job(layout, unit, settings=None, overwrite=False):
    from hetred.sci.run import STAGE, run_sci
    return run_unit(layout, STAGE, unit.unit, lambda: run_sci(layout, unit, settings), overwrite=overwrite)


@click.command("sci", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--exp", "exp", type=click.IntRange(1, 99), help="Only this exposure (1-3).")
@click.option("--ifuslot", "ifuslots", multiple=True, metavar="SLOT", help="IFU slot (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Units run in parallel.")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str | None, shot: str | None, exp: int | None,
            ifuslots: tuple[str, ...], jobs: int, overwrite: bool, dry_run: bool) -> None:
    """Science reductions of MONTH (YYYYMM) or of one --shot: the multi files.

    One unit per shot, exposure and IFU slot (its four amps, read from the raw tar): overscan,
    master bias, pixel flat, background model, gain and orientation; the library's trace moved
    by the shift measured on the frame, extraction with the library profiles, chi^2 masking of
    cosmic rays; a master sky per amp from its fibers, subtracted through the fiber-to-fiber;
    Karl's 17-HDU multi file per amp, the rectified spectra (3470-5540 A, 2 A) and the IFU's
    reconstructed image (CoFeS); when every IFU of an exposure is done, its focal-plane PNG.
    Finished units are skipped unless --overwrite; a unit whose calibration is missing fails
    with one line and the others go on.
    """
    from hetred.sci.run import STAGE, sci_units
    from hetred.sci.settings import SciSettings

    if (month is None) == (shot is None):
        raise HetredError("give either MONTH or --shot DATEvOBS")
    if month is not None:
        check_month(month)
    cfg = get_config(ctx)
    layout, quiet = cfg.layout, cfg.verbosity < 0
    settings = SciSettings.from_config(cfg.stage(STAGE))
    slots = sorted({parse_slot(s) for s in ifuslots})
    if dry_run and month is not None and not layout.path("tarlist", month=month).exists():
        raise HetredError(f"no tarlist for {month} yet (run hetred tarlist {month}); nothing written")
    units = sci_units(layout, month=month, shot=shot, exp=exp, ifuslots=slots or None)
    if not units:
        what = shot or month
        if shot is not None and not _shot_listed(layout, shot):
            raise HetredError(f"shot {shot} is not in the {shot[:6]} tarlist "
                              f"({layout.path('tarlist', month=shot[:6])})")
        console.print(f"no science exposures for {what}"
                      + (f" exposure {exp}" if exp else "") + (f" IFU slot(s) {slots}" if slots else "")
                      + " in the tarlist: nothing to do", highlight=False)
        return
    if dry_run:
        _dry_run(layout, units, overwrite, STAGE)
        return
    # in-process when jobs <= 1; else a worker pool where a dead worker fails only its unit
    job = partial(_job, layout, settings=settings, overwrite=overwrite)
    results = run_parallel(layout, STAGE, job, units, lambda u: u.unit, jobs, "sci", quiet)
    pngs: list[str] = []
    if settings.fplane_png:
        from hetred.sci.run import write_exposure_pngs
        got, bad = after_units("sci-fplane-png", "(focal-plane PNGs)", lambda: write_exposure_pngs(layout, units))
        pngs = got or []
        if bad is not None:
            results.append(bad)
    for r in results:
        if r.status in ("skipped", "running"):
            report_unit(r, quiet=quiet)
    if not quiet:
        _summary(layout, results, STAGE)
        for p in pngs:
            console.print(f"focal-plane PNG: {p}", highlight=False)
    report_notes(STAGE, results, layout, quiet)
    exit_on_failures(ctx, results)


def _shot_listed(layout, shot: str) -> bool:
    """Whether the month's tarlist has any frame of the shot (of any type)."""
    from hetred.lists.tarlist import month_entries
    from hetred.virus.ids import parse_datevobs

    night, obs = parse_datevobs(shot)
    return any((e.night, e.obs) == (night, obs) for e in month_entries(layout, night[:6]))


def _dry_run(layout, units, overwrite: bool, stage: str) -> None:
    for u in units:
        state = dry_run_state(layout, stage, u.unit, overwrite)
        click.echo(f"{u.unit}: amps {' '.join(u.amps)}, {state}")
        cofes = layout.path("cofes", night=u.night, obs=u.obs, exp=u.exp, stamp=u.stamp, ifuslot=u.ifuslot)
        for e in u.entries:
            name = f"SSS_{u.ifuslot:03d}_UUU_{e.amp}.fits"
            click.echo(f"  would write {cofes.parent}/multi_{name} and rect_{name}")
        click.echo(f"  would write {cofes}")
    click.echo("dry run: nothing written (SSS/UUU: SPECID and IFUID from the raw headers)")


def _summary(layout, results, stage: str) -> None:
    table = Table(title="hetred sci")
    for col, just in (("unit", "left"), ("amps", "right"), ("shift px", "right"), ("cont. fibers", "right"),
                      ("masked cols", "right"), ("time s", "right"), ("status", "left")):
        table.add_column(col, justify=just, no_wrap=col == "unit")
    for r in results:
        counts, seconds = unit_counts(layout, r)
        amps = shift = ncut = masked = "-"
        if counts and counts.get("amps"):
            a = counts["amps"]
            amps = str(len(a))
            sh = [v["shift"] for v in a.values()]
            shift = f"{min(sh):+.3f}..{max(sh):+.3f}"
            ncut = str(sum(v.get("ncut", 0) for v in a.values()))
            masked = str(sum(v.get("masked_columns", 0) for v in a.values()))
        table.add_row(r.unit, amps, shift, ncut, masked, f"{seconds:.2f}", status_cell(r.status))
    console.print(table)
