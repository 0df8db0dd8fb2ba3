"""``hetred flat SPECID``: pixel flats and the bad-pixel mask (docs/stages/flat.md)."""
from __future__ import annotations

import click
from rich.table import Table

from hetred.cli.common import (
    after_units,
    check_month,
    check_night,
    console,
    dry_run_state,
    exit_on_failures,
    get_config,
    report_unit,
    status_cell,
    track,
    unit_counts,
)
from hetred.errors import HetredError
from hetred.jobs.units import UnitResult, run_unit
from hetred.virus.amp import AMPS

EXAMPLES = """
\b
Examples:
  hetred flat 320 --night 20180110                  # camera 320, all four amps
  hetred flat 409 --night 20210122 --min-level 7000 # as rsetflat 409 016 20210122 7000
  hetred flat 409 --ifuslot 016 --month 202101 --amp LL --overwrite
  hetred flat 320 --month 201801 --dry-run
\b
[stages.flat] in the config file sets min_level, kinds ("flt,twi"), rcut, smooth_cols, trend_cols,
band_mib, tmpdir, mask_nsigma, mask_min_dev, mask_pad, row_norm, row_clip,
qa = false.
"""


@click.command("flat", epilog=EXAMPLES)
@click.argument("specid", type=int)
@click.option("--ifuslot", "ifuslots", multiple=True, type=int, metavar="SLOT",
              help="Only frames of this IFU slot (repeatable).")
@click.option("--night", "nights", multiple=True, metavar="YYYYMMDD", help="Night (repeatable).")
@click.option("--month", metavar="YYYYMM", help="Every night of the month in the raw archive.")
@click.option("--amp", "amps", multiple=True, type=click.Choice(AMPS), help="Amp (repeatable); default all four.")
@click.option("--min-level", type=float, default=None,
              help="Drop frames whose median (ADU, overscan removed) is below this (rsetflat: 7000).")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units, their frames and products; write nothing.")
@click.pass_context
def command(ctx: click.Context, specid: int, ifuslots: tuple[int, ...], nights: tuple[str, ...],
            month: str | None, amps: tuple[str, ...], min_level: float | None, overwrite: bool,
            dry_run: bool) -> None:
    """Build the pixel flats of camera SPECID from its lamp flats and twilights.

    One unit per amp (cam{SPECID}_{amp}): every flt/twi frame of the nights is reduced, traced,
    extracted and divided by its fiber model (1 beyond 3.5 px of a trace), and the frames are
    combined with Karl's biweight per pixel. Writes lib_calib/lib_pflat/pixelflat_cam*_*.fits
    (oriented) and then rebuilds lib_calib/lib_pflat/pix_mask.tab from every flat's mask boxes.
    An amp with no frames, or whose frames are all too faint or saturated, is empty (nothing to
    do in the data: no flat, exit 0); unreadable frames or frames without traces fail the unit.
    """
    from dataclasses import replace

    from hetred.flat import run as flat_run
    from hetred.flat import settings as flat_settings

    cfg = get_config(ctx)
    layout = cfg.layout
    quiet = cfg.verbosity < 0
    s = flat_settings.FlatSettings.from_config(cfg.stage("flat"))
    if min_level is not None:
        s = replace(s, min_level=min_level)
    night_list = list(dict.fromkeys(nights))
    if month:
        check_month(month, "--month")
        night_list += [n for n in layout.nights_of_month(month) if n not in night_list]
    for n in night_list:
        check_night(n)
    if not night_list:
        raise HetredError("give --night or --month (no nights found)")
    amp_list = list(dict.fromkeys(amps)) or list(AMPS)
    frames = flat_run.find_frames(layout, night_list, specid, list(ifuslots) or None, s.kind_list)
    if not frames and not quiet:     # every unit is empty: nothing to do in the data
        console.print(f"no {'/'.join(s.kind_list)} frames of camera {specid:03d} in "
                      f"{', '.join(night_list)}", highlight=False)
    if dry_run:
        for amp in amp_list:
            uid = flat_run.unit_id(specid, amp)
            mine = [f for f in frames if f.amp == amp]
            state = dry_run_state(layout, flat_settings.STAGE, uid, overwrite)
            click.echo(f"{uid}: {len(mine)} frames, {state}")
            click.echo(f"  would write {layout.path('pixelflat', specid=specid, amp=amp)}")
            click.echo(f"  would write {layout.path('qa', stage=flat_settings.STAGE, name=uid + '.png')}")
        click.echo(f"  would write {layout.path('pixmask')}")
        click.echo("dry run: nothing written")
        return
    results: list[UnitResult] = []
    for amp in track(amp_list, f"flat cam{specid:03d}", total=len(amp_list), quiet=quiet):
        r = run_unit(layout, flat_settings.STAGE, flat_run.unit_id(specid, amp),
                     lambda a=amp: flat_run.run_pixelflat(layout, specid, a, frames, s), overwrite=overwrite)
        if r.status != "done":
            report_unit(r, quiet=quiet)
        results.append(r)
    table_written, bad = after_units(flat_settings.STAGE, "(pix_mask.tab)", lambda: flat_run.write_pixmask_table(layout))
    if not quiet:
        table = Table(title=f"hetred flat {specid:03d}")
        for col in ("unit", "frames", "dropped", "boxes", "time s", "status"):
            table.add_column(col)
        for r in results:
            counts, _ = unit_counts(layout, r)
            c = counts or {}
            drop = c.get("dropped", {})
            table.add_row(r.unit, str(c.get("used", "-")), str(sum(drop.values())) if drop else "0",
                          str(c.get("nboxes", "-")), f"{r.seconds:.1f}", status_cell(r.status))
        console.print(table)
        if table_written is not None:
            console.print(f"{table_written[0]}: {table_written[1]} boxes", highlight=False)
    exit_on_failures(ctx, results + ([bad] if bad is not None else []))
