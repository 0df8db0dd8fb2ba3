"""``hetred tarlist MONTH``: steps 1-2, the month's lists of raw files."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from hetred.cli.common import check_month, console, get_config, report_unit
from hetred.errors import HetredError
from hetred.jobs.units import run_unit
from hetred.lists.tarlist import KINDS, run_tarlist

EXAMPLES = """
\b
Examples:
  hetred tarlist 201701                      # scan RAW/201701??/virus/*.tar
  hetred --raw /work/03946/hetdex/maverick tarlist 202008
  hetred tarlist 201701 --from-list 201701tarlist --dry-run
"""


@click.command("tarlist", epilog=EXAMPLES)
@click.argument("month")
@click.option("--from-list", "from_list", type=click.Path(dir_okay=False, path_type=Path),
              help="Build the inventory from an existing tarlist instead of scanning tars.")
@click.option("--overwrite", is_flag=True, help="Redo the month even if it is done.")
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str, from_list: Path | None, overwrite: bool,
            dry_run: bool) -> None:
    """Write the month's tarlist, repeats report, science list and calibration inventory.

    MONTH is YYYYMM; the scan covers nights YYYYMM01-31 of the raw archive.
    """
    check_month(month)
    cfg = get_config(ctx)
    layout = cfg.layout
    if dry_run:
        for key in ("tarlist", "tarlist_repeats", "tarlist_broken", "scilist", "callist"):
            console.print(f"would write {layout.path(key, month=month)}")
        return
    if from_list is None and not layout.raw.is_dir():
        raise HetredError(f"raw archive root {layout.raw} does not exist (set --raw or HETRED_RAW)")
    result = run_unit(layout, "tarlist", month, lambda: run_tarlist(layout, month, from_list),
                      overwrite=overwrite)
    if result.status == "failed":
        raise HetredError(result.message)
    report_unit(result, quiet=cfg.verbosity < 0)
    if result.outcome is not None and cfg.verbosity >= 0:
        _summary(month, result.outcome.counts, result.outcome.outputs)
    if result.outcome is not None:
        _warn_broken(layout, month, result.outcome.counts.get("broken_tars", []))


def _warn_broken(layout, month: str, broken: list[dict]) -> None:
    """One warning line per raw tar read only in part (on stderr, also with -q)."""
    for b in broken:
        lost = f"; {len(b['lost'])} member(s) known lost" if b["lost"] else ""
        click.echo(f"hetred: warning: {b['tar']}: {b['listed']} members listed{lost}; {b['damage']}", err=True)
    if broken:
        click.echo(f"hetred: warning: {len(broken)} raw tar(s) read only in part: "
                   f"see {layout.path('tarlist_broken', month=month)}", err=True)


def _summary(month: str, counts: dict, outputs: list[str]) -> None:
    table = Table(title=f"hetred tarlist {month}")
    table.add_column("type")
    table.add_column("as read", justify="right")
    table.add_column("written", justify="right")
    for kind in sorted(set(KINDS) | set(counts["as_read"])):
        table.add_row(kind, str(counts["as_read"].get(kind, 0)), str(counts["written"].get(kind, 0)))
    table.add_row("all", str(sum(counts["as_read"].values())), str(sum(counts["written"].values())),
                  end_section=True)
    for label, key in (("nights", "nights"), ("science shots", "sci_shots"),
                       ("science exposures", "sci_exposures"), ("IFU slots", "ifuslots"),
                       ("IFU slots with zro", "ifuslots_zro"), ("unparsed lines", "unparsed")):
        table.add_row(label, "", str(counts[key]))
    console.print(table)
    console.print(f"repeats dropped: {len(counts['repeats'])}")
    for line in counts["repeats"][:10]:
        console.print(f"  {line}", highlight=False)
    broken = counts.get("broken_tars", [])
    if broken:
        console.print(f"[yellow]broken tars: {len(broken)}[/yellow] (intact members listed, the rest lost)")
        for b in broken[:10]:
            console.print(f"  {b['tar']}: {b['listed']} listed, {b['damage']}", highlight=False)
            for line in b["lost"][:5]:
                console.print(f"    lost {line}", highlight=False)
    for p in counts.get("header_problems", [])[:3]:
        console.print(f"[yellow]note:[/yellow] {p}", highlight=False)
    for path in outputs:
        console.print(f"wrote {path}", highlight=False)
