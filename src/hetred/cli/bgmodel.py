"""``hetred bgmodel MONTH``: step 5, the background models (docs/stages/bgmodel.md)."""
from __future__ import annotations

from dataclasses import replace

import click
from rich.table import Table

from hetred.cli.common import (
    check_month,
    console,
    exit_on_failures,
    get_config,
    parse_slot,
    report_unit,
    stage_entries,
    status_cell,
    track,
    unit_counts,
)
from hetred.jobs.units import UnitResult, is_done, read_marker, run_unit
from hetred.virus.amp import AMPS

KIND_CHOICES = ("sci", "bri", "twi")

EXAMPLES = """
\b
Examples:
  hetred bgmodel 201801                          # every IFU slot, all four amps, sci bri twi
  hetred bgmodel 201801 --ifuslot 053 --amp LL --kind sci   # one unit: 201801_053_LL_sci
  hetred bgmodel 201801 --kind twi --ifuslot 53 --ifuslot 74 --dry-run
  hetred bgmodel 201801 --method karl            # Karl's imgetgap instead of the model
  hetred --config hetred.toml bgmodel 201801 --overwrite
\b
Kinds (frames kept by their level = central biweight / 25 after overscan
and master bias): sci = sci frames with 0.2 < level < 3, bri = sci frames
with 2 < level < 15, twi = twi frames with level > 100. Run hetred bias
MONTH first: every frame needs its controller's master bias.
Methods: model (default) = dark + a fitted fraction of the fiber light
spread along the rows with a 1/distance kernel; karl = Karl's imgetgap.
A unit done with the other method is redone.
[stages.bgmodel] in the config file sets sci_lo, sci_hi, bri_lo, bri_hi,
twi_lo, band_mib, tmpdir, qa = false, method, kernel_core, kernel_power,
kernel_extent.
"""


@click.command("bgmodel", epilog=EXAMPLES)
@click.argument("month")
@click.option("--ifuslot", "ifuslots", multiple=True, metavar="SLOT",
              help="IFU slot (repeatable); default: every slot with sci or twi frames in the tarlist.")
@click.option("--amp", "amps", multiple=True, type=click.Choice(AMPS), help="Amp (repeatable); default: all four.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KIND_CHOICES),
              help="Model kind (repeatable); default: sci, bri and twi.")
@click.option("--method", type=click.Choice(("model", "karl")), default=None,
              help="Background method: model (scattered light + dark) or karl (imgetgap); "
                   "default: [stages.bgmodel] method, else model.")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the units and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str, ifuslots: tuple[str, ...], amps: tuple[str, ...],
            kinds: tuple[str, ...], method: str | None, overwrite: bool, dry_run: bool) -> None:
    """Build the background models of MONTH (YYYYMM), Karl's step 5.

    One unit per IFU slot, amp and kind: the unit's frames (from the month's tarlist, made
    first when missing) get overscan and master bias removed and are scaled to level 25; those
    passing the kind's level cut are combined per pixel with Karl's biweight, and the model is
    made from the combination: dark + the fiber light's scattered halo (--method model, the
    default) or Karl's imgetgap nodes below, between and above the fiber blocks (--method karl);
    a unit done with the other method is redone.
    Products go to lib_calib/lib_back/MONTH/KIND/ (raw orientation) with a QA plot; finished
    units are skipped unless --overwrite. A unit with no frame inside its cut (the bri units of
    a dark month) is empty: nothing to do, not a failure; a unit whose frames cannot be used
    (no master bias, unreadable) fails with one line and the others go on. The exit status is 0
    when every unit is done or empty.
    """
    from hetred.background import run as bg
    from hetred.background.frames import index_frames
    from hetred.background.settings import STAGE, BgSettings

    check_month(month)
    cfg = get_config(ctx)
    layout = cfg.layout
    quiet = cfg.verbosity < 0
    settings = BgSettings.from_config(cfg.stage(STAGE))
    if method is not None:
        settings = replace(settings, method=method)
    amp_list = list(dict.fromkeys(amps)) or list(AMPS)
    kind_list = list(dict.fromkeys(kinds)) or list(KIND_CHOICES)

    index = index_frames(stage_entries(layout, month, dry_run))
    slots = sorted({parse_slot(s) for s in ifuslots}) or sorted({k[0] for k in index})
    units = [(s, a, k) for s in slots for a in amp_list for k in kind_list]
    if not units:
        console.print(f"no sci or twi frames in the {month} tarlist: nothing to do", highlight=False)
        return

    if dry_run:
        _dry_run(layout, month, units, index, overwrite, bg, settings)
        return

    results: list[UnitResult] = []
    for slot, amp, kind in track(units, f"bgmodel {month}", total=len(units), quiet=quiet):
        uid = bg.unit_id(month, slot, amp, kind)
        redo = overwrite or _other_method(layout, STAGE, uid, settings.method, quiet)
        result = run_unit(layout, STAGE, uid,
                          lambda s=slot, a=amp, k=kind: bg.run_bgmodel(layout, month, s, a, k, settings),
                          overwrite=redo)
        if result.status in ("skipped", "running"):
            report_unit(result, quiet=quiet)
        results.append(result)
    if not quiet:
        _summary(layout, month, results, STAGE)
    exit_on_failures(ctx, results)


def _marker_method(layout, stage: str, uid: str) -> str | None:
    """The method of a done unit (markers without one are from Karl's method, the only one then)."""
    if not is_done(layout, stage, uid):
        return None
    counts = (read_marker(layout, stage, uid) or {}).get("counts") or {}
    return counts.get("method", "karl")


def _other_method(layout, stage: str, uid: str, method: str, quiet: bool) -> bool:
    done = _marker_method(layout, stage, uid)
    if done is None or done == method:
        return False
    if not quiet:
        console.print(f"{uid}: done with method {done}, redoing with {method}", highlight=False)
    return True


def _dry_run(layout, month, units, index, overwrite, bg, settings) -> None:
    from hetred.background.settings import RAWTYPE, STAGE
    from hetred.errors import RawReadError
    from hetred.io.raw import open_tar, read_member_header

    specids: dict[int, int | None] = {}
    for slot, amp, kind in units:
        uid = bg.unit_id(month, slot, amp, kind)
        entries = index.get((slot, amp, RAWTYPE[kind]), [])
        if not entries:
            click.echo(f"{uid}: no {RAWTYPE[kind]} frames (empty: nothing to do)")
            continue
        done = _marker_method(layout, STAGE, uid)
        state = ("to do" if done is None or overwrite else "done (would skip)" if done == settings.method
                 else f"done with method {done} (would redo)")
        click.echo(f"{uid}: {len(entries)} {RAWTYPE[kind]} frames, keep {settings.cut_text(kind)}, "
                   f"method {settings.method}, {state}")
        if slot not in specids:
            e = entries[0]
            tar = layout.path("raw_tar", night=e.night, obs=e.obs)
            try:
                with open_tar(tar) as tf:
                    specids[slot] = int(read_member_header(tf, tar, e.member)["SPECID"])
            except (RawReadError, KeyError, ValueError):
                specids[slot] = None
        f = dict(month=month, bgkind=kind, ifuslot=slot, amp=amp)
        for key in ("bgmodel", "bgcombined"):
            if specids[slot] is None:
                click.echo(f"  would write {key} of SPECID ?, IFU slot {slot:03d}, amp {amp} "
                           "(the first frame's header is unreadable)")
            else:
                click.echo(f"  would write {layout.path(key, specid=specids[slot], **f)}")
        click.echo(f"  would write {layout.path('qa', stage=STAGE, name=uid + '.png')}")
    click.echo("dry run: nothing written (SPECID from the first frame's header)")


def _summary(layout, month: str, results, stage: str) -> None:
    table = Table(title=f"hetred bgmodel {month}",
                  caption="empty: no frame of the kind in the month, or none inside its level cut")
    for col, just in (("unit", "left"), ("read", "right"), ("used", "right"), ("levels", "right"),
                      ("time s", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for r in results:
        counts, seconds = unit_counts(layout, r)
        read = used = levels = "-"
        if counts:
            read, used = str(counts.get("read", "-")), str(counts.get("used", "-"))
            lv = counts.get("levels")
            if lv:
                levels = f"{lv[0]:.3g}-{lv[1]:.3g}"
        table.add_row(r.unit, read, used, levels, f"{seconds:.2f}", status_cell(r.status))
    console.print(table)
    empty = [r for r in results if r.status == "empty"]
    if empty:
        console.print(f"{len(empty)} empty unit(s): nothing to do in the data, not a failure "
                      f"(first: {empty[0].unit}: {empty[0].message})", highlight=False, soft_wrap=True)
