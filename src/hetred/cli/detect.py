"""``hetred detect (MONTH | --shot DATEvOBS)``: step 14, the line search (docs/stages/detect.md)."""
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
  hetred detect 201801                              # every IFU of every science shot of the month
  hetred detect --shot 20180110v007                 # one shot, all its IFUs
  hetred detect --shot 20180110v007 --ifuslot 053   # one unit: 20180110v007_053
  hetred detect --shot 20180110v007 --mode negate   # the negated data (false-positive run, mode 112)
  hetred detect --shot 20180110v007 --ifuslot 053 --mode inject --sources fake.in
  hetred detect 201801 --profile fixed --jobs 2     # Karl's quirks corrected, two units at a time
  hetred detect 201801 --dry-run                    # the units and the files they would write
\b
Needs the multi files (hetred sci) and the shot's astrometry (hetred astrom:
dithall.use, norm.dat, radec2_final.dat). Uses, when they exist, the seeing
FWHM and response curve of hetred throughput, the amp-to-amp factors of the
calibration library, the residual and error-ratio maps and the full-sky
wavelength shifts; each missing one falls back as Karl's fitradecsp does and
the fallback is listed in the done marker. Writes DATEvOBS_SSS_III_UUU.mc,
.list, .spec under detect/MONTH/DATEvOBS/MODE/. [stages.detect] sets profile
(hdr2.1 or fixed) and every parameter (docs/stages/detect.md).
"""


def _job(layout, unit, settings, overwrite, sources):
    from hetred.detect.run import STAGE, run_detect
    return run_unit(layout, STAGE, unit.unit, lambda: run_detect(layout, unit, settings, sources), overwrite=overwrite)


@click.command("detect", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--ifuslot", "ifuslots", multiple=True, metavar="SLOT", help="IFU slot (repeatable).")
@click.option("--mode", type=click.Choice(["search", "negate", "inject"]), default="search", show_default=True,
              help="search (mode 104), negate (112: the negated data) or inject (111: sources added first).")
@click.option("--sources", type=click.Path(dir_okay=False), help="inject: ra dec wave flux [sigma] per line.")
@click.option("--profile", help="hdr2.1 (Karl's, the default) or fixed (his quirks corrected).")
@click.option("--fwhm", type=float, help="Seeing FWHM (arcsec at 4550 A) instead of the throughput stage's.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Units run in parallel.")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str | None, shot: str | None, ifuslots: tuple[str, ...], mode: str,
            sources: str | None, profile: str | None, fwhm: float | None, jobs: int, overwrite: bool,
            dry_run: bool) -> None:
    """Line detection of MONTH (YYYYMM) or of one --shot: Karl's fitradecsp mode 104.

    One unit per IFU of a shot (its fibers of all exposures within 35" of the IFU centre): every
    fiber's spectrum calibrated on the 2-A grid with Karl's error model; at a 3x3 raster around
    every fiber the PSF-weighted spectrum is scanned for Gaussian lines (sigma 3 A, windows every
    8 A); maxima merged (3"/4 A, 3.5"/2.5 A) and searched again on a 5x5 raster 0.15" apart; each
    detection with S/N > 4.5 fitted with sigma free and 100 Monte-Carlo realisations. Finished
    units are skipped unless --overwrite; a unit that cannot run fails with one line.
    """
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
    if sources and mode != "inject":
        raise HetredError("--sources goes with --mode inject")
    from hetred.detect.run import STAGE, detect_units

    layout = cfg.layout
    the_month = month or (shot or "")[:6]
    entries = stage_entries(layout, the_month, dry_run) if the_month.isdigit() else None
    slots = sorted({parse_slot(s) for s in ifuslots})
    units = detect_units(layout, month=month, shot=shot, ifuslots=slots or None, mode=mode, entries=entries)
    if not units:
        console.print(f"no science IFU for {shot or month} in the tarlist: nothing to do", highlight=False)
        return
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE, u.unit, overwrite)
            click.echo(f"{u.unit}: {state}; needs {layout.path('dithall', datevobs=u.datevobs)}")
            click.echo(f"  would write {layout.path('detect_dir', month=u.month, datevobs=u.datevobs)}/{mode}/"
                       f"{u.datevobs}_SSS_{u.ifuslot:03d}_UUU.{{mc,list,spec}}")
        click.echo("dry run: nothing written")
        return
    # in-process when jobs <= 1; else a worker pool where a dead worker fails only its unit
    job = partial(_job, layout, settings=settings, overwrite=overwrite, sources=sources)
    results = run_parallel(layout, STAGE, job, units, lambda u: u.unit, jobs, "detect", quiet)
    for r in results:
        if r.status != "done":
            report_unit(r, quiet=quiet)
    if not quiet:
        _summary(layout, results)
    report_notes(STAGE, results, layout, quiet)
    exit_on_failures(ctx, results)


def _summary(layout, results) -> None:
    table = Table(title="hetred detect")
    for col in ("unit", "fibers", "positions", "candidates", "detections", "s", "status"):
        table.add_column(col, justify="left" if col in ("unit", "status") else "right")
    for r in results:
        c, seconds = unit_counts(layout, r)
        row = ["-"] * 4
        if c and "detections" in c:
            row = [str(c["fibers"]), "/".join(str(v) for v in c["positions"]), str(c["candidates"]),
                   str(c["detections"])]
        table.add_row(r.unit, *row, f"{seconds:.0f}", status_cell(r.status))
    console.print(table)
