"""``hetred calfib (MONTH | --shot DATEvOBS)``: step 16, the calibrated fibers of every IFU
(docs/stages/calfib.md)."""
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
    parse_slot,
    report_unit,
    run_parallel,
    unit_counts,
)
from hetred.errors import HetredError
from hetred.jobs.units import run_unit

EXAMPLES = """
\b
Examples:
  hetred calfib 201801                               # every IFU of every shot of the month
  hetred calfib --shot 20180110v007                  # the IFUs of one shot
  hetred calfib --shot 20180110v007 --ifuslot 053    # one unit: 20180110v007_053
  hetred calfib 201801 --jobs 2 --dry-run
\b
Needs hetred throughput (DATEvOBSsedtp_f.dat), hetred astrom (norm.dat) and
hetred sci (rectified spectra, multi files) of the shot. [stages.calfib] in the
config file sets error_model (propagated or karl), n_exposures, read_noise and
error_frac (the karl model's).
"""


def _job(layout, unit, settings, overwrite):
    from hetred.calfib.run import STAGE, run_calfib
    return run_unit(layout, STAGE, unit.unit, lambda: run_calfib(layout, unit, settings), overwrite=overwrite)


@click.command("calfib", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--ifuslot", "ifuslots", multiple=True, metavar="SLOT", help="IFU slot (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Units run in parallel.")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str | None, shot: str | None, ifuslots: tuple[str, ...], jobs: int,
            overwrite: bool, dry_run: bool) -> None:
    """Calibrated fibers (_cal.fits) of MONTH (YYYYMM) or of one --shot, one unit per IFU.

    Karl's step 16 (rcal_all, fitradecsp mode 106): every fiber of the IFU's three exposures,
    sky-subtracted counts per 2 A on 3470-5540 A divided by its fiber-to-fiber, the amp-to-amp
    factor, norm.dat and the shot's throughput -> calib, calibe (1e-17 erg/s/cm2 per 2 A),
    calib_c, calibe_c (counts), rows exposure > amp LL LU RL RU > fiber (1344 x 1036); a
    missing amp leaves its rows 0. Errors: the propagated ones (or Karl's model).
    """
    from hetred.calfib.run import STAGE, calfib_units
    from hetred.calfib.settings import CalfibSettings

    if (month is None) == (shot is None):
        raise HetredError("give either MONTH or --shot DATEvOBS")
    if month is not None:
        check_month(month)
    cfg = get_config(ctx)
    layout, quiet = cfg.layout, cfg.verbosity < 0
    settings = CalfibSettings.from_config(cfg.stage(STAGE))
    slots = sorted({parse_slot(s) for s in ifuslots})
    units = calfib_units(layout, month=month, shot=shot, ifuslots=slots or None)
    if not units:
        raise HetredError(f"no science exposures for {shot or month}" + (f" IFU slot(s) {slots}" if slots else "")
                          + " in the tarlist: nothing to do")
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}; would write calfib/{u.month}/{u.datevobs}_SSS_{u.ifuslot:03d}_UUU_cal.fits")
        click.echo("dry run: nothing written (SSS/UUU: SPECID and IFUID of the rectified spectra)")
        return
    # in-process when jobs <= 1; else a worker pool where a dead worker fails only its unit
    job = partial(_job, layout, settings=settings, overwrite=overwrite)
    results = run_parallel(layout, STAGE, job, units, lambda u: u.unit, jobs, "calfib", quiet)
    for r in results:
        if r.status == "skipped":
            report_unit(r, quiet=quiet)
    if not quiet:
        table = Table(title="hetred calfib")
        for col in ("unit", "amp-exposures", "missing", "time s", "status"):
            table.add_column(col)
        for r in results:
            c, seconds = unit_counts(layout, r)
            c = c or {}
            style = {"done": "green", "skipped": "dim", "failed": "red"}[r.status]
            table.add_row(r.unit, str(c.get("amps", "-")), " ".join(c.get("missing", [])) or "-",
                          f"{seconds:.2f}", f"[{style}]{r.status}[/{style}]")
        console.print(table)
    exit_on_failures(ctx, results)
