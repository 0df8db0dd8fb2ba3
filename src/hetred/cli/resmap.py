"""``hetred resmap MONTH [--specid S ...]``: steps 14c-14d, the residual and chi^2 maps
(docs/stages/resmap.md)."""
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
from hetred.jobs.units import run_unit
from hetred.virus.amp import AMPS

EXAMPLES = """
\b
Examples:
  hetred resmap 201801                          # every camera amp of the month's science data
  hetred resmap 201801 --specid 320 --amp LU    # one unit: 201801_320LU
  hetred resmap 201801 --jobs 2 --dry-run
\b
Needs the multi files of hetred sci (sky_subtracted, sky_spectrum, error1d,
chi2). Writes lib_calib/MONTH/reschi/{res,sres,rres,chi}SSSAA.fits and a PNG
per amp; hetred fullsky (and detect) use res/rres when present. Settings:
[stages.resmap] (max_files, use_fraction, norm_columns, norm_rows, norm_min,
chi_missing, rres_flag, memory_mb, qa).
"""


def _job(layout, unit, settings, overwrite):
    from hetred.resmap.run import STAGE, run_resmap
    return run_unit(layout, STAGE, unit.unit, lambda: run_resmap(layout, unit, settings), overwrite=overwrite)


@click.command("resmap", epilog=EXAMPLES)
@click.argument("month")
@click.option("--specid", "specids", multiple=True, type=click.IntRange(0, 999), help="Camera(s) (SPECID); repeatable.")
@click.option("--amp", "amps", multiple=True, type=click.Choice(AMPS), help="Amp(s); repeatable.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Units run in parallel.")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str, specids: tuple[int, ...], amps: tuple[str, ...], jobs: int,
            overwrite: bool, dry_run: bool) -> None:
    """Per-pixel maps of each camera amp over MONTH (YYYYMM): the fractional sky residual
    (res, sres), the measured / expected noise (rres) and the extraction chi^2 (chi).

    One unit per SPECID and amp: its multi files of the month's science exposures are
    streamed a block of fiber rows at a time (memory independent of their number) through
    Karl's imcmbext and imcmbchi.
    """
    from hetred.resmap.run import STAGE, resmap_units
    from hetred.resmap.settings import ResmapSettings

    cfg = get_config(ctx)
    quiet = cfg.verbosity < 0
    settings = ResmapSettings.from_config(cfg.stage("resmap"))
    check_month(month)
    layout = cfg.layout
    entries = stage_entries(layout, month, dry_run)
    units = resmap_units(layout, month, list(specids) or None, list(amps) or None, entries=entries)
    if not units:
        console.print(f"no science camera amp in {month}: nothing to do", highlight=False)
        return
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}; would write "
                       f"{layout.path('resmap_res', month=month, specid=u.specid, amp=u.amp)} (+ sres, rres, chi, PNG)")
        click.echo("dry run: nothing written")
        return
    # in-process when jobs <= 1; else a worker pool where a dead worker fails only its unit
    job = partial(_job, layout, settings=settings, overwrite=overwrite)
    results = run_parallel(layout, STAGE, job, units, lambda u: u.unit, jobs, "resmap", quiet)
    for r in results:
        if r.status in ("skipped", "running", "empty"):
            report_unit(r, quiet=quiet)
    if not quiet:
        table = Table(title="hetred resmap")
        for col in ("amp", "files", "rres norm", "flag", "s", "status"):
            table.add_column(col)
        for r in results:
            c, seconds = unit_counts(layout, r)
            c = c or {}
            table.add_row(r.unit, str(c.get("files", "-")), f"{c['norm']:.3f}" if "norm" in c else "-",
                          "errors off" if c.get("rres_flag") else "", f"{seconds:.0f}", status_cell(r.status))
        console.print(table)
    report_notes(STAGE, results, layout, quiet=quiet)
    exit_on_failures(ctx, results)
