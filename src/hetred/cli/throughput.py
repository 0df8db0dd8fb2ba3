"""``hetred throughput (MONTH | --shot DATEvOBS)``: steps 9-13, the stars of a shot, its FWHM and
response curve (docs/stages/throughput.md)."""
from __future__ import annotations

import click
from rich.table import Table

from hetred.cli.common import (
    check_month,
    console,
    dry_run_state,
    err_console,
    exit_on_failures,
    get_config,
    report_unit,
    track,
    unit_counts,
)
from hetred.errors import HetredError
from hetred.jobs.units import UnitResult, run_unit

EXAMPLES = """
\b
Examples:
  hetred throughput 201801                  # every science shot of the month
  hetred throughput --shot 20180110v007     # one shot (the unit)
  hetred throughput 201801 --overwrite      # redo finished shots
  hetred throughput 201801 --dry-run        # list the shots and their products
\b
Needs hetred astrom (dithall.use, norm.dat, radec2_final.dat, shout.ifustars)
and hetred sci (rectified spectra, multi files) of the shot. [stages.throughput]
in the config file sets mag_limit, beta, fit_radius, extract_radius, band,
fwhm_start, raster_steps, raster_n, fwhm_grid, fwhm_default, fwhm_min_amp,
fwhm_min_snr, blend_max_light, min_fibers, adr_direction (parangle or
structaz), adr_wave, adr_offset, ebv, g_convention, sigcut, rmscut, reference,
fallback (month-median or none) and qa.
"""


def _job(layout, unit, settings, overwrite):
    from hetred.throughput.run import STAGE, run_throughput
    return run_unit(layout, STAGE, unit.unit, lambda: run_throughput(layout, unit, settings), overwrite=overwrite)


@click.command("throughput", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--overwrite", is_flag=True, help="Redo shots that are already done.")
@click.option("--dry-run", is_flag=True, help="List the shots and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str | None, shot: str | None, overwrite: bool, dry_run: bool) -> None:
    """Stars, FWHM and response curve of the shots of MONTH (YYYYMM) or of one --shot.

    One unit per shot (karlspipe rallcal + rfitpoly): every catalogue star with g < 22.5 in
    the fibers of the three exposures is fitted with Karl's model (Moffat beta 3.9 in the
    fibers, FWHM(lambda), refraction), its position on a 0.2" then 0.05" raster, its FWHM on
    1.2-3.2"; the shot's FWHM is the biweight over the stars (fwhm.out, fwhm.all); the
    stars' spectra divided by their SEDs (offline stellarSEDfits with the real templates)
    give throughput curves, kept by combsed (0.2, 0.02), combined and fitted with
    P(lambda)(c1 + c2(lambda - 4500)/2000) (DATEvOBSsedtp_f.dat, response_4540). A shot
    without accepted stars takes the month's median curve, and says so.
    """
    from hetred.throughput.run import STAGE, throughput_units
    from hetred.throughput.settings import ThroughputSettings

    if (month is None) == (shot is None):
        raise HetredError("give either MONTH or --shot DATEvOBS")
    if month is not None:
        check_month(month)
    cfg = get_config(ctx)
    layout, quiet = cfg.layout, cfg.verbosity < 0
    settings = ThroughputSettings.from_config(cfg.stage(STAGE))
    units = throughput_units(layout, month=month, shot=shot)
    if not units:
        raise HetredError(f"no science shots in {month} (tarlist): nothing to do")
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}")
            click.echo(f"  would write {layout.path('throughput', month=u.month, datevobs=u.datevobs)}")
            click.echo(f"  would write {layout.path('tp_fwhm', month=u.month, datevobs=u.datevobs)} and the "
                       "month's fwhm.all")
        click.echo("dry run: nothing written")
        return
    # a shot without stars takes the month's median curve: when its month had none yet, it is
    # retried after the other shots
    results: list[UnitResult] = []
    for u in track(units, "throughput", total=len(units), quiet=quiet):
        results.append(_job(layout, u, settings, overwrite))
    retry = [r for r in results if r.status == "failed" and "no other shot" in r.message]
    if retry and len(retry) < len(results):
        again = {r.unit for r in retry}
        results = [r for r in results if r.unit not in again] + \
            [_job(layout, u, settings, overwrite) for u in units if u.unit in again]
    for r in results:
        if r.status == "skipped":
            report_unit(r, quiet=quiet)
        counts, _ = unit_counts(layout, r)
        if counts and str(counts.get("source", "")).startswith("fallback"):
            err_console.print(f"[yellow]throughput {r.unit}: {counts['source']}[/yellow]", highlight=False)
    if not quiet:
        _summary(layout, results, STAGE)
    exit_on_failures(ctx, results)


def _summary(layout, results, stage: str) -> None:
    table = Table(title="hetred throughput")
    for col, just in (("shot", "left"), ("stars", "right"), ("used", "right"), ("FWHM\"", "right"),
                      ("response_4540", "right"), ("source", "left"), ("time s", "right"), ("status", "left")):
        table.add_column(col, justify=just, no_wrap=col == "shot")
    for r in results:
        counts, seconds = unit_counts(layout, r)
        c = counts or {}
        style = {"done": "green", "skipped": "dim", "failed": "red"}[r.status]
        table.add_row(r.unit, str(c.get("stars", "-")), str(c.get("used", "-")),
                      f"{c['fwhm']:.2f}" if "fwhm" in c else "-",
                      f"{c['response_4540']:.4f}" if "response_4540" in c else "-",
                      str(c.get("source", "-")).split(":")[0], f"{seconds:.1f}", f"[{style}]{r.status}[/{style}]")
    console.print(table)
