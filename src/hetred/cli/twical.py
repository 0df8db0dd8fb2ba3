"""``hetred twical MONTH``: step 6, the twilight calibration library (docs/stages/twical.md)."""
from __future__ import annotations

import click
from rich.table import Table

from hetred.cli.common import (
    after_units,
    check_month,
    console,
    dry_run_state,
    exit_on_failures,
    get_config,
    report_notes,
    report_unit,
    run_parallel,
    status_cell,
    track,
)
from hetred.errors import HetredError
from hetred.jobs.units import run_unit

EXAMPLES = """
\b
Examples:
  hetred twical 201801                              # reduce, combine, a2a and QA for every IFU
  hetred twical 201801 --ifuslot 053 --step reduce  # only the per-exposure reductions of one IFU
  hetred twical 201801 --step combine --overwrite   # redo the monthly libraries
  hetred twical 201801 --solar sun_use.dat --jobs 4 # twilight zero point from the solar template
  hetred twical 201801 --dry-run                    # list the units, write nothing
"""


def _reduce_job(layout, month, expo, solar=None, overwrite=False):
    from hetred.twical.run import STAGE_REDUCE, run_reduce
    return run_unit(layout, STAGE_REDUCE, expo.unit, lambda: run_reduce(layout, month, expo, solar),
                    overwrite=overwrite)


@click.command("twical", epilog=EXAMPLES)
@click.argument("month")
@click.option("--ifuslot", "ifuslots", multiple=True, metavar="SLOT", help="IFU slot (repeatable).")
@click.option("--amp", "amp_sel", multiple=True, type=click.Choice(("LL", "LU", "RL", "RU")),
              help="Amp (repeatable); default: all.")
@click.option("--exposure", "exp_sel", multiple=True, metavar="DATEvOBS_expNN",
              help="Only this twilight exposure, e.g. 20180110v001_exp01 (repeatable).")
@click.option("--step", type=click.Choice(("reduce", "combine", "a2a", "all")), default="all",
              show_default=True, help="Which step to run.")
@click.option("--solar", type=click.Path(dir_okay=False, exists=True),
              help="Solar template (two columns: Å, flux) for the twilight wavelength zero point.")
@click.option("--solar-fwhm", type=float, default=5.5, show_default=True,
              help="Resolution (Å FWHM) of the solar template.")
@click.option("--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Parallel reduce units.")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units; write nothing.")
@click.pass_context
def command(ctx, month, ifuslots, amp_sel, exp_sel, step, solar, solar_fwhm, jobs, overwrite,
            dry_run) -> None:
    """Twilight calibration of MONTH (YYYYMM): traces, profile, wavelength, fiber-to-fiber per
    twilight exposure and amp (reduce), their monthly biweight per amp (combine -> lib_calib/MONTH),
    and the amp-to-amp normalisation over the field (a2a) with a QA PNG per IFU."""
    from hetred.twical import run as twical_run

    check_month(month)
    cfg = get_config(ctx)
    layout, quiet = cfg.layout, cfg.verbosity < 0
    try:
        slots = sorted({int(s) for s in ifuslots})
    except ValueError:
        raise HetredError("--ifuslot must be a number like 053") from None
    expos = [e for e in twical_run.month_exposures(layout, month) if (not slots or e.twi.ifuslot in slots)
             and (not amp_sel or e.twi.amp in amp_sel)
             and (not exp_sel or f"{e.datevobs}_exp{e.twi.exp:02d}" in exp_sel)]
    if not expos:
        console.print(f"no twilight exposures in the {month} tarlist"
                      + (" for the slots/amps/exposures asked for" if slots or amp_sel or exp_sel else "")
                      + ": nothing to do", highlight=False)
        return
    amps = sorted({(e.twi.ifuslot, e.twi.amp) for e in expos})
    template = None
    if solar and not dry_run:
        from hetred.twical.solar_shift import load_solar_template
        template = load_solar_template(solar, fwhm=solar_fwhm)
    if dry_run:
        for e in expos if step in ("reduce", "all") else []:
            st = dry_run_state(layout, twical_run.STAGE_REDUCE, e.unit, overwrite)
            click.echo(f"reduce {e.unit}: {len(e.arcs)} arcs, {st}")
        for s, a in amps if step in ("combine", "all") else []:
            click.echo(f"combine {twical_run.unit_combine(month, s, a)} -> lib_calib/{month}/cal_*_{s:03d}_*_{a}.fits")
        if step in ("a2a", "all"):
            click.echo(f"a2a {month} -> {layout.path('amp_to_amp', month=month)}")
        click.echo("dry run: nothing written")
        return
    results = []
    if step in ("reduce", "all"):
        if jobs > 1 and len(expos) > 1:
            from functools import partial
            job = partial(_reduce_job, layout, month, solar=template, overwrite=overwrite)
            results += run_parallel(layout, twical_run.STAGE_REDUCE, job, expos, lambda e: e.unit, jobs,
                                    f"twical reduce {month}", quiet)
        else:
            for e in track(expos, f"twical reduce {month}", total=len(expos), quiet=quiet):
                results.append(_reduce_job(layout, month, e, template, overwrite))
    if step in ("combine", "all"):
        for s, a in track(amps, f"twical combine {month}", total=len(amps), quiet=quiet):
            results.append(run_unit(layout, twical_run.STAGE_COMBINE, twical_run.unit_combine(month, s, a),
                                    lambda s=s, a=a: twical_run.run_combine(layout, month, s, a), overwrite=overwrite))
    if step in ("a2a", "all"):
        from hetred.twical.amp_to_amp import run_a2a
        from hetred.twical.qa import write_qa
        uid = month if not slots else f"{month}_" + "_".join(f"{s:03d}" for s in slots)
        # a2a combines the units above: redone when one of them was done now (else its own depends,
        # the reduced twilights and libraries, say whether it is up to date)
        redo = overwrite or any(r.status == "done" for r in results)
        r = run_unit(layout, twical_run.STAGE_A2A, uid, lambda: run_a2a(layout, month, slots or None),
                     overwrite=redo)
        results.append(r)
        for s in sorted({s for s, _ in amps}):
            _, bad = after_units("twical-qa", f"{month}_{s:03d}", lambda s=s: write_qa(layout, month, s))
            if bad is not None:
                results.append(bad)
    for r in results:
        if r.status != "done":
            report_unit(r, quiet=quiet)
    if not quiet:
        table = Table(title=f"hetred twical {month}")
        for col in ("stage", "unit", "time s", "notes", "status"):
            table.add_column(col)
        for r in results:
            c = r.outcome.counts if r.outcome else {}
            note = ""
            if "dead_fibers" in c:
                note = f"dead {c['dead_fibers']}"
            if "a2a" in c:
                note = " ".join(f"{k}:{v:.4f}" for k, v in c["a2a"].items())
            table.add_row(r.stage, r.unit, f"{r.seconds:.1f}", note, status_cell(r.status))
        console.print(table)
    report_notes("twical", results, layout, quiet)
    exit_on_failures(ctx, results)
