"""Shared pieces of the subcommands: the config in the click context, consoles, progress."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hetred.config import Config
from hetred.errors import HetredError
from hetred.jobs.units import UnitResult, describe_failure

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


def get_config(ctx: click.Context) -> Config:
    """The :class:`Config` the group built."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Config)
    return obj


def track(items: Iterable[T], description: str, total: int | None = None,
          quiet: bool = False) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr (none when quiet or not a terminal)."""
    if quiet or not err_console.is_terminal:
        yield from items
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


#: the colour of each unit status in the summary tables
STATUS_STYLE = {"done": "green", "skipped": "dim", "empty": "yellow", "failed": "red", "running": "cyan"}


def status_cell(status: str) -> str:
    """A unit's status, coloured for a rich table."""
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/{style}]" if style else status


def report_unit(result: UnitResult, quiet: bool = False) -> None:
    """One line about a unit that did not simply finish: skipped, empty (nothing to do), or
    running elsewhere (the last always: ``hetred run`` reads it). A failed unit gets its one
    ``hetred: error:`` line from :func:`exit_on_failures`, after the summary table, and no other."""
    if result.status == "skipped" and not quiet:
        err_console.print(f"[dim]{result.stage} {result.unit}: {result.message}[/dim]")
    elif result.status == "empty" and not quiet:
        err_console.print(f"[yellow]{result.stage} {result.unit} empty:[/yellow] {result.message}",
                          highlight=False)
    elif result.status == "running":
        err_console.print(f"{result.stage} {result.unit}: {result.message}", highlight=False, soft_wrap=True)


def report_notes(stage: str, results: Iterable[UnitResult], layout=None, quiet: bool = False) -> None:
    """The units' notes (e.g. background models missing for some amps), once for the stage run:
    of the units done now and, with ``layout``, of those skipped (from their done markers)."""
    from hetred.jobs.units import format_notes, merge_notes, read_marker

    if quiet:
        return
    notes = []
    for r in results:
        if r.outcome is not None:
            notes.append(r.outcome.notes)
        elif r.status == "skipped" and layout is not None:
            notes.append((read_marker(layout, r.stage, r.unit) or {}).get("notes"))
    for line in format_notes(stage, merge_notes(notes)):
        console.print(line, highlight=False, soft_wrap=True)


def check_stage_settings(cfg: Config, specs) -> None:
    """Parse the settings of every selected stage before any unit runs or job is written:
    a bad ``[stages.X]`` value is one line naming the config file and the table."""
    from hetred.jobs.registry import check_settings

    try:
        check_settings(specs, cfg.stages)
    except HetredError as err:
        raise HetredError(f"{cfg.file}: {err}" if cfg.file else str(err)) from None


def dry_run_state(layout, stage: str, unit: str, overwrite: bool) -> str:
    """What a run would do with a unit, for ``--dry-run`` listings: skip it (done) or do it."""
    from hetred.jobs.units import is_done

    return "done (would skip)" if is_done(layout, stage, unit) and not overwrite else "to do"


def check_month(month: str, what: str = "MONTH") -> str:
    """MONTH as YYYYMM (month 01-12), or a one-line error."""
    from hetred.virus.ids import check_month as _check

    try:
        return _check(month, what)
    except ValueError as err:
        raise HetredError(str(err)) from None


def check_night(night: str, what: str = "--night") -> str:
    """A night as YYYYMMDD (a calendar date), or a one-line error."""
    from hetred.virus.ids import check_night as _check

    try:
        return _check(night, what)
    except ValueError as err:
        raise HetredError(str(err)) from None


def parse_slot(value: str) -> int:
    """An --ifuslot value ('053' or '53') as an int 0-999, or a one-line error."""
    try:
        slot = int(value)
    except ValueError:
        raise HetredError(f"--ifuslot must be a number like 053, got {value!r}") from None
    if not 0 <= slot <= 999:
        raise HetredError(f"--ifuslot must be 0-999, got {value!r}")
    return slot


def exit_on_failures(ctx: click.Context, results: Iterable[UnitResult]) -> None:
    """One ``hetred: error: STAGE UNIT: reason`` line per failed unit on stderr; exit 1 if any
    (done, skipped, empty and running-elsewhere units are not failures)."""
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        click.echo(f"hetred: error: {r.stage} {r.unit}: {r.message}", err=True)
    if failed:
        ctx.exit(1)


def unit_counts(layout, result: UnitResult) -> tuple[dict | None, float]:
    """(counts, seconds) of a unit for a summary table: from its outcome, or for a skipped or
    empty unit from its done or empty marker."""
    from hetred.jobs.units import read_empty, read_marker

    if result.outcome is not None:
        return result.outcome.counts, result.seconds
    marker = None
    if result.status == "skipped":
        marker = read_marker(layout, result.stage, result.unit)
    elif result.status == "empty":
        marker = read_empty(layout, result.stage, result.unit)
    if marker is not None:
        return marker.get("counts"), (result.seconds or marker.get("seconds", 0.0))
    return None, result.seconds


def stage_entries(layout, month: str, dry_run: bool) -> list:
    """The month's tarlist entries for a stage CLI: read (the tarlist made first when missing),
    or in a dry run planned without writing it (and said so)."""
    from hetred.lists.tarlist import month_entries, planned_entries

    if not dry_run:
        return month_entries(layout, month)
    entries, planned = planned_entries(layout, month)
    if planned:
        console.print(f"would write the tarlist {layout.path('tarlist', month=month)} (not there yet)",
                      highlight=False)
    return entries


def after_units(stage: str, what: str, fn: Callable[[], T]) -> tuple[T | None, UnitResult | None]:
    """Run a step that follows the units (a month-wide table, QA plots): (its value, None), or
    when it fails on a HetredError or OSError (read-only tree, full disk) (None, a failed result
    named ``what``), so that the summary is still printed and the failure reported as a unit's."""
    try:
        return fn(), None
    except HetredError as err:
        msg = str(err)
    except OSError as err:
        msg = describe_failure(err)
    return None, UnitResult(stage, what, "failed", message=msg)


def run_parallel(layout, stage: str, job: Callable[[T], UnitResult], items: list[T],
                 unit_of: Callable[[T], str], jobs: int, description: str,
                 quiet: bool = False) -> list[UnitResult]:
    """``job(item)`` for every item in ``jobs`` worker processes (:mod:`hetred.jobs.pool`), the
    results in the order of ``items``; a unit whose worker dies fails alone (failed marker
    written) and the others go on. With ``jobs`` <= 1 or a single item: in this process, in
    order, with the same progress bar (every stage's ``--jobs N``)."""
    if jobs <= 1 or len(items) <= 1:
        return [job(it) for it in track(items, description, total=len(items), quiet=quiet)]
    from hetred.jobs.pool import WorkerDied, WorkerPool, died_result

    got: dict[int, UnitResult] = {}
    index = {id(it): k for k, it in enumerate(items)}
    with WorkerPool(jobs) as pool:
        for item, r in track(pool.imap(job, items), description, total=len(items), quiet=quiet):
            k = index[id(item)]
            got[k] = died_result(layout, stage, unit_of(item), r) if isinstance(r, WorkerDied) else r
    return [got[k] for k in range(len(items))]
