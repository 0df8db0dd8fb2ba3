"""``hetred astrom (MONTH | --shot DATEvOBS)``: step 8, astrometry (docs/stages/astrom.md)."""
from __future__ import annotations

from functools import partial
from pathlib import Path

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
  hetred astrom 201801                         # every science shot of the month
  hetred astrom --shot 20180110v007            # one shot (one unit)
  hetred astrom --shot 20180110v007 --catalog my.ifustars --fplane fplane.txt
  hetred astrom 201801 --dry-run               # the units, their inputs and products
  hetred astrom --images reductions/20180611/virus/virus0000017 --radec radec.orig \\
      --fplane fplane.txt --catalog shout.ifustars --out 20180611v017 --profile vdrp-test
  hetred astrom --als fiducial/ --radec radec.orig --fplane fplane.txt \\
      --catalog shout.ifustars --out out/ --profile vdrp-test   # from DAOPHOT .als files
\b
Needs the CoFeS images and multi files of hetred sci, the night's fplane
(reduction tree fplane/fpNIGHT.txt, else raw tree fplane/fplane_NIGHT.txt,
else the nominal slot grid with a warning) and the shot's star catalogue in
shuffle's shout.ifustars format (raw tree catalogs/DATEvOBS.ifustars). Settings:
[stages.astrom] (profile, radii, angoff, angoff_trials, smoothing,
angle_grid_step, angoff_refine, apply_optimal_angle, dithers, mktot_magmin,
mktot_magmax, fluxnorm_mag_max, norm_method, norm_beta, pixel_offset,
find_sigma, find_fwhm, find_separation, psf_beta, psf_fwhm, psf_xy,
fit_radius, sky_clear, edge, mag_zero_point, qa); Karl's production
values are the defaults, --profile vdrp-test those of vdrp's test of 20180611v017.
"""


def _job(layout, unit, settings, overwrite, catalog, fplane):
    from hetred.astrom.run import STAGE, run_astrom
    return run_unit(layout, STAGE, unit.unit, lambda: run_astrom(layout, unit, settings, catalog, fplane),
                    overwrite=overwrite)


@click.command("astrom", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--shot", metavar="DATEvOBS", help="One shot, e.g. 20180110v007 (instead of MONTH).")
@click.option("--catalog", type=click.Path(dir_okay=False), help="Star catalogue (shout.ifustars format).")
@click.option("--fplane", type=click.Path(dir_okay=False), help="Focal plane file (IFUSLOT X_FP Y_FP ...).")
@click.option("--profile", help="Named settings: karl (the defaults) or vdrp-test.")
@click.option("--images", type=click.Path(file_okay=False), help="Outside the layout: a folder of CoFeS images.")
@click.option("--als", type=click.Path(file_okay=False), help="Outside the layout: a folder of DAOPHOT .als files.")
@click.option("--radec", type=click.Path(dir_okay=False), help="Outside the layout: radec.orig (TRAJRA[h] TRAJDEC PARANGLE).")
@click.option("--out", type=click.Path(file_okay=False), help="Outside the layout: the output folder.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Shots run in parallel.")
@click.option("--overwrite", is_flag=True, help="Redo shots that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str | None, shot: str | None, catalog: str | None, fplane: str | None,
            profile: str | None, images: str | None, als: str | None, radec: str | None, out: str | None,
            jobs: int, overwrite: bool, dry_run: bool) -> None:
    """Astrometry of MONTH (YYYYMM) or of one --shot: shot RA/Dec/PA, norm.dat, fiber RA/Dec.

    One unit per shot (all IFUs, its three exposures): stars found and measured on every CoFeS
    image (PSF photometry), the exposures registered (all.mch, all.raw) and their relative flux
    (norm.dat); per exposure the iterated biweight offset of all detection-catalogue pairs within
    the matching radii, at every trial rotation offset; the rotation of least pair rms (smoothing
    spline, weighted by the pairs); the shot centre from the de-dithered exposures (radec2_final.dat)
    and every fiber's RA/Dec (dith_expNN.all, dithall.use), as vdrp's astrometry does. Finished
    shots are skipped unless --overwrite; a shot that cannot be solved fails with one line.
    """
    from hetred.astrom.settings import AstromSettings

    cfg = get_config(ctx)
    quiet = cfg.verbosity < 0
    settings = AstromSettings.from_config(cfg.stage("astrom"), profile=profile)
    if images or als:
        if month or shot:
            raise HetredError("--images/--als run outside the layout: give no MONTH or --shot")
        missing = [n for n, v in (("--radec", radec), ("--fplane", fplane), ("--catalog", catalog), ("--out", out))
                   if not v]
        if missing:
            raise HetredError(f"--images/--als need {', '.join(missing)}")
        _outside(settings, images, als, radec, fplane, catalog, out, quiet, dry_run)
        return
    if radec or out:
        raise HetredError("--radec and --out go with --images or --als (outside the layout)")
    if (month is None) == (shot is None):
        raise HetredError("give either MONTH or --shot DATEvOBS (or --images/--als DIR outside the layout)")
    if month is not None:
        check_month(month)
    from hetred.astrom.run import STAGE, astrom_units

    layout = cfg.layout
    the_month = month or (shot or "")[:6]
    entries = stage_entries(layout, the_month, dry_run) if the_month.isdigit() else None
    units = astrom_units(layout, month=month, shot=shot, entries=entries)
    if not units:
        console.print(f"no science shot for {shot or month} in the tarlist: nothing to do", highlight=False)
        return
    if dry_run:
        for u in units:
            state = dry_run_state(layout, STAGE, u.unit, overwrite)
            cat = catalog or layout.path("star_catalog", datevobs=u.datevobs)
            click.echo(f"{u.unit}: {state}; catalogue {cat}")
            click.echo(f"  would write {layout.path('astrom_dir', datevobs=u.datevobs)}/"
                       "{radec2_final.dat, norm.dat, dithall.use, ...}")
        click.echo("dry run: nothing written")
        return
    # in-process when jobs <= 1; else a worker pool where a dead worker fails only its unit
    job = partial(_job, layout, settings=settings, overwrite=overwrite, catalog=catalog, fplane=fplane)
    results = run_parallel(layout, STAGE, job, units, lambda u: u.unit, jobs, "astrom", quiet)
    for r in results:
        if r.status in ("skipped", "running"):
            report_unit(r, quiet=quiet)
    if not quiet:
        _summary(layout, results)
    exit_on_failures(ctx, results)


def _outside(settings, images, als, radec, fplane, catalog, out, quiet: bool, dry_run: bool) -> None:
    from hetred.astrom.run import run_folder

    if dry_run:
        click.echo(f"would solve the shot of {images or als} into {out}; dry run: nothing written")
        return
    sol, written = run_folder(out, settings, radec=radec, fplane=fplane, catalog=catalog, images=images, als=als)
    for w in sol.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {w}", highlight=False, soft_wrap=True)
    if not quiet:
        c = sol.counts()
        console.print(f"{Path(out).name}: ra {c['ra']:.6f} dec {c['dec']:.6f} pa {c['pa']:.6f} "
                      f"(rotation offset {c['angoff']:.4f}), pairs {c['pairs']}, norm {c['norm']}; "
                      f"{len(written)} files in {out}", highlight=False)


def _summary(layout, results) -> None:
    table = Table(title="hetred astrom")
    for col, just in (("shot", "left"), ("ra dec pa", "right"), ("pairs", "right"), ("norm", "right"),
                      ("s", "right"), ("status", "left")):
        table.add_column(col, justify=just, no_wrap=col in ("shot", "ra dec pa"))  # type: ignore[arg-type]
    for r in results:
        counts, seconds = unit_counts(layout, r)
        row = ["-"] * 3
        if counts and "ra" in counts:
            row = [f"{counts['ra']:.6f} {counts['dec']:.6f} {counts['pa']:.4f}",
                   "/".join(str(n) for n in counts["pairs"]), " ".join(f"{v:.3f}" for v in counts["norm"])]
        table.add_row(r.unit, *row, f"{seconds:.0f}", status_cell(r.status))
    console.print(table)
    for r in results:
        counts, _ = unit_counts(layout, r)
        for w in (counts or {}).get("warnings", []):
            err_console.print(f"[yellow]{r.unit}:[/yellow] {w}", highlight=False, soft_wrap=True)
