"""``hetred run (MONTH | --night N)``: every implemented stage in order on this machine."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import click
from rich.table import Table

from hetred.cli.common import check_stage_settings, console, get_config, parse_slot, track

EXAMPLES = """
\b
Examples:
  hetred run 201801 --jobs 2                      # bias, bgmodel, flat, twical, sci, astrom
  hetred run --night 20180110 --stages bias,bgmodel
  hetred run 201801 --stages twical --overwrite   # redo the twilight calibration
  hetred run 201801 --dry-run                     # the stages and their units; run nothing
\b
Each unit runs as its job-file line would (hetred slurm-gen), through the
stage's own command, in one of --jobs worker processes; finished units are
skipped, unless --overwrite or their inputs changed since (e.g. twical done
before the pixel flat existed: then it is redone). Stages run in the order
their needs declare (hetred.jobs.registry): bias, bgmodel, flat, twical,
sci, astrom; stage k+1 starts when stage k has ended. A unit with nothing to do in the data (a bri
background model of a dark month) is empty, not failed. The exit status is
1 when any unit failed, 0 when every unit is done or empty.
"""


@click.command("run", epilog=EXAMPLES)
@click.argument("month", required=False)
@click.option("--night", metavar="YYYYMMDD", help="Only this night (per-exposure stages); month = its month.")
@click.option("--stages", "stages", default="all", show_default=True,
              help="Comma list of stages (bias, bgmodel, twical, twical-reduce, ..., flat, sci) or all.")
@click.option("--ifuslot", "ifuslots", multiple=True, metavar="SLOT", help="Only these IFU slots (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(1, None), default=1, show_default=True,
              help="Worker processes (units run at once).")
@click.option("--overwrite", is_flag=True, help="Redo units that are already done.")
@click.option("--dry-run", is_flag=True, help="List the stages and their units; run and write nothing.")
@click.pass_context
def command(ctx: click.Context, month: str | None, night: str | None, stages: str, ifuslots: tuple[str, ...],
            jobs: int, overwrite: bool, dry_run: bool) -> None:
    """Run the implemented stages of MONTH (YYYYMM) or one night, in the order of the process.

    The month's tarlist is made first when missing. Then bias, bgmodel, flat, twical (reduce,
    combine, a2a) and sci (when installed) run unit by unit; a final table gives the units
    done, skipped, empty and failed per stage with the first failure reasons.
    """
    from hetred.jobs import registry, runner

    cfg = get_config(ctx)
    layout = cfg.layout
    quiet = cfg.verbosity < 0
    specs = registry.resolve(stages)
    check_stage_settings(cfg, specs)
    slots = tuple(sorted({parse_slot(s) for s in ifuslots}))
    month, entries, note = runner.scope_entries(layout, month, night, None, None, dry_run)
    if note and not quiet:
        console.print(note, highlight=False)
    scope = registry.Scope(layout, month, entries, night=night, ifuslots=slots, stage_settings=cfg.stages)

    if dry_run:
        table = Table(title=f"hetred run {scope.label} --dry-run")
        for col in ("stage", "units", "done", "empty", "to run", "note"):
            table.add_column(col)
        for spec in specs:
            units = registry.enumerate_units(spec, scope)
            states = [runner.unit_state(layout, u).status for u in units]
            ndone, nempty = states.count("done"), states.count("empty")
            table.add_row(spec.name, str(len(units)), str(ndone), str(nempty),
                          str(len(units) if overwrite else len(units) - ndone - nempty),
                          scope.notes.get(spec.name, ""))
        console.print(table)
        click.echo("dry run: nothing run, nothing written")
        return

    root = ctx.find_root()
    config_file = root.params.get("config_file")
    global_args = ["-q", "--raw", str(layout.raw.resolve()), "--red", str(layout.red.resolve())]
    if config_file:
        global_args += ["--config", str(Path(config_file).resolve())]

    def progress(items: Iterable, description: str, total: int) -> Iterator:
        return track(items, f"{description} {scope.label}", total=total, quiet=quiet)

    def on_stage(spec, n: int) -> None:
        if not quiet:
            console.print(f"[bold]{spec.name}[/bold]: {n} units", highlight=False)

    reports = runner.run_chain(layout, global_args, specs, scope, jobs=jobs, overwrite=overwrite,
                               progress=progress, on_stage=on_stage)
    table = Table(title=f"hetred run {scope.label}",
                  caption="empty: nothing to do in the data (not a failure, docs/operations.md)")
    for col, just in (("stage", "left"), ("units", "right"), ("done", "right"), ("skipped", "right"),
                      ("empty", "right"), ("failed", "right"), ("time s", "right"), ("first failure", "left")):
        table.add_column(col, justify=just)
    for r in reports:
        first = f"{r.failed[0][0]}: {r.failed[0][1]}" if r.failed else r.note
        style = "red" if r.failed else "green"
        table.add_row(r.stage, str(r.units), str(r.done), str(r.skipped), str(len(r.empty)),
                      f"[{style}]{len(r.failed)}[/{style}]", f"{r.seconds:.1f}", first)
    if not quiet:
        console.print(table)
        for r in reports:
            if r.empty:
                uid, why = r.empty[0]
                more = f" (and {len(r.empty) - 1} more)" if len(r.empty) > 1 else ""
                console.print(f"{r.stage}: {len(r.empty)} empty: {uid}: {why}{more}", highlight=False,
                              soft_wrap=True)
            if r.waited:
                console.print(f"{r.stage}: {r.waited} unit(s) were running elsewhere: waited for them",
                              highlight=False)
            for line in r.notes:
                console.print(line, highlight=False, soft_wrap=True)
    failed = [(r.stage, u, m) for r in reports for u, m in r.failed]
    for stage, uid, msg in failed[:10]:
        click.echo(f"hetred: error: {stage} {uid}: {msg}", err=True)
    if len(failed) > 10:
        click.echo(f"hetred: error: ... {len(failed) - 10} more failed units (markers/STAGE/*.failed.json)",
                   err=True)
    if failed:
        ctx.exit(1)
