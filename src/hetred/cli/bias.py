"""``hetred bias MONTH``: step 4, the master bias library (docs/stages/bias.md)."""
from __future__ import annotations

import click
from rich.table import Table

from hetred.cli.common import (
    check_month,
    console,
    get_config,
    parse_slot,
    report_unit,
    stage_entries,
    status_cell,
    track,
    unit_counts,
)
from hetred.errors import RawReadError
from hetred.jobs.units import UnitResult, run_unit
from hetred.virus.amp import AMPS

EXAMPLES = """
\b
Examples:
  hetred bias 202008                           # every IFU slot with zro frames, all four amps
  hetred bias 202008 --ifuslot 053 --amp LL    # one unit: 202008_053_LL
  hetred bias 202008 --ifuslot 53 --ifuslot 74 --dry-run
  hetred --config hetred.toml bias 201701 --overwrite
\b
[stages.bias] in the config file sets scale_lo / scale_hi (frames kept when
scale_lo < central biweight scale < scale_hi ADU, default 2 and 10), trap_sigma,
trap_min_hits, band_mib, tmpdir, qa = false, ...
"""


@click.command("bias", epilog=EXAMPLES)
@click.argument("month")
@click.option("--ifuslot", "ifuslots", multiple=True, metavar="SLOT",
              help="IFU slot (repeatable); default: every slot with zro frames in the tarlist.")
@click.option("--amp", "amps", multiple=True, type=click.Choice(AMPS),
              help="Amp (repeatable); default: all four.")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True,
              help="List the units and the products they would write; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str, ifuslots: tuple[str, ...], amps: tuple[str, ...],
            overwrite: bool, dry_run: bool) -> None:
    """Build the master bias library of MONTH (YYYYMM) from its zro frames.

    One unit per IFU slot and amp: the unit's zro frames (from the month's tarlist, made first
    when missing) are measured, the good ones combined per controller with Karl's biweight,
    smoothed with a 1x7 biweight box and cleaned of charge traps. Products go to
    lib_calib/lib_mbias/MONTH/ (raw orientation); finished units are skipped unless --overwrite.
    A slot and amp without zro frames in the month is empty (nothing to do, exit 0; the stages
    that need its master bias fail and name it); a unit none of whose frames is usable fails.
    """
    from hetred.bias.frames import index_zro
    from hetred.bias.run import run_bias, unit_id
    from hetred.bias.settings import STAGE, BiasSettings

    check_month(month)
    cfg = get_config(ctx)
    layout = cfg.layout
    quiet = cfg.verbosity < 0
    settings = BiasSettings.from_config(cfg.stage("bias"))
    amp_list = list(dict.fromkeys(amps)) or list(AMPS)

    index = index_zro(stage_entries(layout, month, dry_run))
    slots = sorted({parse_slot(s) for s in ifuslots}) or sorted({k[0] for k in index})
    units = [(s, a) for s in slots for a in amp_list]
    if not units:
        console.print(f"no zro frames in the {month} tarlist: nothing to do", highlight=False)
        return

    if dry_run:
        _dry_run(layout, month, units, index, unit_id, overwrite)
        return

    results: list[tuple[UnitResult, tuple[int, str]]] = []
    for slot, amp in track(units, f"bias {month}", total=len(units), quiet=quiet):
        uid = unit_id(month, slot, amp)
        result = run_unit(layout, STAGE, uid,
                          lambda s=slot, a=amp: run_bias(layout, month, s, a, settings),
                          overwrite=overwrite)
        if result.status in ("skipped", "empty", "running"):
            report_unit(result, quiet=quiet)
        results.append((result, (slot, amp)))
    if not quiet:
        _summary(layout, month, results, STAGE)
    failed = [r for r, _ in results if r.status == "failed"]
    for r in failed:
        click.echo(f"hetred: error: bias {r.unit}: {r.message}", err=True)
    if failed:
        ctx.exit(1)


def _dry_run(layout, month, units, index, unit_id, overwrite) -> None:
    from hetred.io.raw import contid_number, open_tar, read_member_header
    from hetred.jobs.units import is_done

    for slot, amp in units:
        uid = unit_id(month, slot, amp)
        entries = index.get((slot, amp), [])
        if not entries:
            click.echo(f"{uid}: no zro frames (empty: nothing to do)")
            continue
        done = is_done(layout, "bias", uid) and not overwrite
        click.echo(f"{uid}: {len(entries)} zro frames, {'done (would skip)' if done else 'to do'}")
        products = [layout.path("bias_frames", month=month, ifuslot=slot, amp=amp)]
        e = entries[0]
        tar = layout.path("raw_tar", night=e.night, obs=e.obs)
        try:
            with open_tar(tar) as tf:
                h = read_member_header(tf, tar, e.member)
            f = dict(month=month, specid=int(h["SPECID"]), amp=amp,
                     contid=contid_number(h.get("CONTID", "")) or "0666")
            products += [layout.path(k, **f) for k in ("masterbias", "masterbias_unsmoothed",
                                                       "masterbias_traps")]
        except (RawReadError, KeyError, ValueError):
            products.append(f"masterbias_SPECID_CONTID_{amp}.fits and its companions "
                            "(the first frame's header is unreadable)")
        products.append(layout.path("qa", stage="bias", name=f"{uid}.png"))
        for p in products:
            click.echo(f"  would write {p}")
    click.echo("dry run: nothing written (products per CONTID; the first frame's CONTID shown)")


def _summary(layout, month: str, results, stage: str) -> None:
    table = Table(title=f"hetred bias {month}")
    for col, just in (("unit", "left"), ("used", "right"), ("rejected", "right"), ("traps", "right"),
                      ("time s", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for r, _ in results:
        counts, seconds = unit_counts(layout, r)
        used = rej = traps = "-"
        if counts:
            used = str(counts.get("used", "-"))
            rejected = counts.get("rejected", {})
            rej = str(sum(rejected.values())) if isinstance(rejected, dict) else "-"
            traps = str(counts.get("ntraps", "-"))
        table.add_row(r.unit, used, rej, traps, f"{seconds:.2f}", status_cell(r.status))
    console.print(table)
