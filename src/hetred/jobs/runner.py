"""``hetred run``: the implemented stages in order on this machine, N worker processes.

Each unit is the same command a job-file line would run (:class:`hetred.jobs.registry.Unit`
arguments after the global ``-q --raw --red [--config]``), executed in a worker process through
the click group, i.e. through the stage's own CLI, ``run_*`` function and
:func:`~hetred.jobs.units.run_unit`. Its outcome is read back from the unit's markers: a done
marker started by this call is *done*, an older one *skipped*, an empty marker *empty* (nothing
to do in the data, not a failure), a failed marker started by this call *failed* with its
one-line reason; a unit whose lock another process holds is waited for (see :func:`run_stage`).
Workers die with this process (:func:`hetred.jobs.workers.die_with_parent`), and a dead worker
fails only its unit (:class:`hetred.jobs.pool.WorkerPool`). Stages run one after the other in
the order the registry declares (stage k+1 starts when every unit of stage k has
ended), as the ``afterok`` chain of ``hetred slurm-gen`` does.

Also here: :func:`scope_entries`, how ``slurm-gen`` and ``run`` find a month's tarlist entries
for MONTH / ``--night`` / ``--shot`` / ``--from-list``.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from hetred.errors import HetredError
from hetred.jobs.pool import WorkerDied, WorkerPool
from hetred.jobs.registry import Scope, StageSpec, Unit, enumerate_units
from hetred.jobs.units import (
    RUNNING_ELSEWHERE,
    UnitState,
    describe_failure,
    format_notes,
    is_done,
    mark_failed,
    merge_notes,
    read_empty,
    read_marker,
    run_unit,
    wait_for,
)
from hetred.jobs.units import (
    unit_state as _unit_state,
)
from hetred.layout import Layout
from hetred.lists.tarlist import TarEntry, build_inventory, month_entries, planned_entries, run_tarlist

_SHOT = re.compile(r"\d{8}v\d{3}")


# ------------------------------------------------------------------------------------------------
# what to plan from

def scope_month(month: str | None, night: str | None, shot: str | None) -> str | None:
    """MONTH from the arguments (checked for agreement), or None when only a list can tell."""
    from hetred.virus.ids import check_month, check_night

    try:
        if night is not None:
            check_night(night)
        if shot is not None:
            if not _SHOT.fullmatch(shot):
                raise ValueError(f"--shot must be DATEvOBS like 20180110v013, got {shot!r}")
            check_night(shot[:8], "--shot")
        if month is not None:
            check_month(month)
    except ValueError as err:
        raise HetredError(str(err)) from None
    found = {m for m in (month, night and night[:6], shot and shot[:6]) if m}
    if len(found) > 1:
        raise HetredError(f"MONTH, --night and --shot disagree: {', '.join(sorted(found))}")
    if night and shot and not shot.startswith(night):
        raise HetredError(f"--shot {shot} is not of --night {night}")
    return found.pop() if found else None


def scope_entries(layout: Layout, month: str | None, night: str | None, shot: str | None,
                  from_list: Path | None, dry_run: bool) -> tuple[str, list[TarEntry], str]:
    """(month, its tarlist entries, a note) for slurm-gen / run.

    ``from_list``: the list's entries (repeats dropped, as ``hetred tarlist --from-list``); unless
    ``dry_run`` the list is written as the month's tarlist first (the tarlist unit, skipped when
    done), since every job-file line reads it. Otherwise the month's tarlist, made from the raw
    tars when missing (a dry run scans the tars and writes nothing).
    """
    month = scope_month(month, night, shot)
    note = ""
    if from_list is not None:
        try:
            lines = Path(from_list).read_text().splitlines()
        except OSError as err:
            raise HetredError(f"cannot read tarlist {from_list}: {err.strerror or err}") from None
        kept = build_inventory(month or "", lines).kept
        if month is None:
            months = sorted({e.night[:6] for e in kept})
            if len(months) != 1:
                raise HetredError(f"{from_list} holds months {', '.join(months) or 'none'}: give MONTH")
            month = months[0]
        if dry_run:
            return month, kept, f"planned from {from_list} (the month's tarlist is not written in a dry run)"
        r = run_unit(layout, "tarlist", month, lambda: run_tarlist(layout, month, Path(from_list)))
        if r.status == "failed":
            raise HetredError(f"tarlist {month} from {from_list}: {r.message}")
        note = (f"wrote the tarlist {layout.path('tarlist', month=month)} from {from_list}"
                if r.status == "done" else f"the {month} tarlist is already done: using it")
        return month, list(month_entries(layout, month)), note
    if month is None:
        raise HetredError("give MONTH, --night, --shot or --from-list")
    if dry_run:
        entries, planned = planned_entries(layout, month)
        if planned:
            note = f"planned from a scan of the raw tars (would write {layout.path('tarlist', month=month)})"
        return month, entries, note
    had = layout.path("tarlist", month=month).exists()
    entries = list(month_entries(layout, month))
    if not had:
        note = f"wrote the tarlist {layout.path('tarlist', month=month)} from the raw tars"
    return month, entries, note


def unit_done(layout: Layout, unit: Unit) -> bool:
    """Whether a unit has a done marker, all its outputs and unchanged inputs."""
    return is_done(layout, unit.stage, unit.uid)


def unit_state(layout: Layout, unit: Unit) -> UnitState:
    """Where a unit stands (:func:`hetred.jobs.units.unit_state`)."""
    return _unit_state(layout, unit.stage, unit.uid)


@dataclass
class Reruns:
    """What the units chosen for a rerun so far will (re)write, for ``slurm-gen --rerun-failed``:
    a settled unit of a later stage is rerun too when it depends on one of those files."""

    stages: set[str] = field(default_factory=set)     #: stages with units to rerun
    touched: set[str] = field(default_factory=set)    #: outputs of the rerun units' last done markers
    #: layout keys that rerun units of unknown outputs (failed, never done) may write
    unknown_keys: set[str] = field(default_factory=set)

    def add(self, layout: Layout, spec: StageSpec, unit: Unit) -> None:
        self.stages.add(unit.stage)
        marker = read_marker(layout, unit.stage, unit.uid)
        if marker is None:              # failed or never done: its outputs are not known
            self.unknown_keys.update(spec.writes)
        else:
            self.touched.update(os.path.abspath(p) for p in marker.get("outputs", []))

    def affects(self, layout: Layout, unit: Unit) -> bool:
        """Whether a settled ``unit`` may become stale through the reruns: it depends on a file
        they rewrite, or on a file that does not exist yet of a kind (layout key) that a rerun
        unit of unknown outputs writes."""
        if not self.stages:
            return False
        marker = read_marker(layout, unit.stage, unit.uid) or read_empty(layout, unit.stage, unit.uid) or {}
        deps = marker.get("depends") or {}
        if not isinstance(deps, dict):
            return False
        for p, s in deps.items():
            if p in self.touched:
                return True
            if s is None and self.unknown_keys and _key_of(layout, p) & self.unknown_keys:
                return True
        return False


def _key_of(layout: Layout, path: str) -> set[str]:
    """The layout keys (of the reduction tree) whose template matches ``path``."""
    from hetred.layout import TABLE, parse

    try:
        rel = Path(path).relative_to(os.path.abspath(layout.red)).as_posix()
    except ValueError:
        return set()
    return {e.key for e in TABLE if e.root == "red" and parse(e.key, rel) is not None}


# ------------------------------------------------------------------------------------------------
# running units

def execute(argv: Sequence[str]) -> tuple[float, int, str]:
    """Run one ``hetred`` command in this process: (start time, exit code, its stderr text)."""
    import click

    from hetred.cli import cli

    t0 = time.time()
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rv = cli.main(args=list(argv), prog_name="hetred", standalone_mode=False)
            rc = rv if isinstance(rv, int) else 0
        except HetredError as e:
            err.write(f"hetred: error: {e}\n")
            rc = 1
        except click.exceptions.Abort:
            rc = 130
        except click.ClickException as e:
            err.write(f"hetred: error: {e.format_message()}\n")
            rc = e.exit_code
        except OSError as e:     # the tree, the disk: outside any unit (units report their own)
            err.write(f"hetred: error: {describe_failure(e)}\n")
            rc = 1
        except Exception as e:  # noqa: BLE001 - a unit's bug must not end the others
            err.write(f"hetred: {describe_failure(e)}\n")
            rc = 2
    return t0, rc, err.getvalue()


def _started(path: Path) -> float | None:
    try:
        return datetime.fromisoformat(json.loads(path.read_text())["started"]).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def classify(layout: Layout, unit: Unit, t0: float, rc: int, err: str) -> tuple[str, str]:
    """(status, message) of a unit after :func:`execute` started it at ``t0``: done, skipped,
    empty, failed or running (elsewhere)."""
    failed = layout.path("marker_failed", stage=unit.stage, unit=unit.uid)
    done = layout.path("marker_done", stage=unit.stage, unit=unit.uid)
    empty = layout.path("marker_empty", stage=unit.stage, unit=unit.uid)
    fs, ds, es = _started(failed), _started(done), _started(empty)
    if fs is not None and fs >= t0 and (ds is None or fs >= ds) and (es is None or fs >= es):
        try:
            return "failed", str(json.loads(failed.read_text()).get("reason", ""))
        except (OSError, ValueError):
            return "failed", "failed marker unreadable"
    if ds is not None and ds >= t0:
        return "done", ""
    if es is not None:
        if es >= t0 or rc == 0:
            try:
                return "empty", str(json.loads(empty.read_text()).get("reason", ""))
            except (OSError, ValueError):
                return "empty", ""
    if RUNNING_ELSEWHERE in err and rc == 0:
        return "running", RUNNING_ELSEWHERE
    if ds is not None and rc == 0:
        return "skipped", ""
    lines = [x.strip() for x in err.splitlines() if x.strip()]
    errs = [x for x in lines if x.startswith("hetred:")]
    last = (errs or lines or [f"exit status {rc}, no marker"])[-1]
    for prefix in ("hetred: error: ", f"{unit.stage} {unit.uid}: ", "hetred: "):
        last = last.removeprefix(prefix)
    return "failed", last


@dataclass
class StageReport:
    """What one stage of ``hetred run`` did."""

    stage: str
    units: int = 0
    done: int = 0
    skipped: int = 0
    empty: list[tuple[str, str]] = field(default_factory=list)     #: (unit, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)    #: (unit, reason)
    waited: int = 0             #: units found running elsewhere, waited for
    seconds: float = 0.0
    note: str = ""
    notes: list[str] = field(default_factory=list)   #: the units' notes, once per stage


Progress = Callable[[Iterable[Any], str, int], Iterator[Any]]


def _plain(items: Iterable[Any], description: str, total: int) -> Iterator[Any]:
    yield from items


def _execute_unit(job: tuple[Unit, list[str]]) -> tuple[float, int, str]:
    return execute(job[1])


def run_stage(layout: Layout, global_args: Sequence[str], spec: StageSpec, units: Sequence[Unit],
              jobs: int = 1, overwrite: Sequence[bool] | bool = False, progress: Progress = _plain,
              pool: WorkerPool | None = None) -> StageReport:
    """Run a stage's units (``jobs`` at a time in ``pool``; in this process when ``jobs`` = 1).

    A unit whose worker process dies (SIGKILL, the OOM killer) fails alone, with a failed marker
    saying so; its worker is replaced and the other units go on (:mod:`hetred.jobs.pool`).
    A unit another process is running (its lock held: a second ``hetred run`` of the month) is
    left to it; when every other unit has ended, the stage waits for it and runs it again (a
    skip once the other process has finished it), so the next stage finds its products."""
    rep = StageReport(spec.name, units=len(units))
    flags = [overwrite] * len(units) if isinstance(overwrite, bool) else list(overwrite)
    argvs = {u: [*global_args, *u.args, *(["--overwrite"] if f else [])] for u, f in zip(units, flags)}
    jobs_ = [(u, argvs[u]) for u in units]
    t = time.perf_counter()
    results: Iterable[tuple[tuple[Unit, list[str]], Any]]
    if jobs > 1 and pool is not None and len(units) > 1:
        results = progress(pool.imap(_execute_unit, jobs_), spec.name, len(jobs_))
    else:
        results = ((j, _execute_unit(j)) for j in jobs_)
    elsewhere: list[Unit] = []
    for (unit, _), got in results:
        if isinstance(got, WorkerDied):
            _count(rep, unit, "failed", got.reason + mark_failed(layout, unit.stage, unit.uid, got.reason))
            continue
        t0, rc, err = got
        status, msg = classify(layout, unit, t0, rc, err)
        if status == "running":
            elsewhere.append(unit)
        else:
            _count(rep, unit, status, msg)
    for unit in elsewhere:
        wait_for(layout, unit.stage, unit.uid)
        rep.waited += 1
        t0, rc, err = execute(argvs[unit])
        status, msg = classify(layout, unit, t0, rc, err)
        _count(rep, unit, status if status != "running" else "failed", msg)
    order = {u.uid: k for k, u in enumerate(units)}
    rep.failed.sort(key=lambda f: order.get(f[0], len(order)))      # units end in any order
    rep.seconds = time.perf_counter() - t
    notes = merge_notes((read_marker(layout, u.stage, u.uid) or {}).get("notes") for u in units)
    rep.notes = format_notes(spec.name, notes)
    return rep


def _count(rep: StageReport, unit: Unit, status: str, msg: str) -> None:
    if status == "done":
        rep.done += 1
    elif status == "skipped":
        rep.skipped += 1
    elif status == "empty":
        rep.empty.append((unit.uid, msg))
    else:
        rep.failed.append((unit.uid, msg))


def run_chain(layout: Layout, global_args: Sequence[str], specs: Sequence[StageSpec], scope: Scope,
              jobs: int = 1, overwrite: bool = False, progress: Progress = _plain,
              on_stage: Callable[[StageSpec, int], None] | None = None) -> list[StageReport]:
    """Every stage in order; an aggregate stage (twical a2a) is redone when a unit of its group
    was done in this call."""
    reports: list[StageReport] = []
    ran_groups: set[str] = set()
    pool = WorkerPool(jobs) if jobs > 1 else None
    try:
        for spec in specs:
            try:
                units = enumerate_units(spec, scope)
            except HetredError as err:
                reports.append(StageReport(spec.name, failed=[("(units)", str(err))]))
                continue
            except OSError as err:
                reports.append(StageReport(spec.name, failed=[("(units)", describe_failure(err))]))
                continue
            if spec.missing:
                reports.append(StageReport(spec.name, units=len(units), note=f"{spec.missing}: not run"))
                continue
            if on_stage is not None:
                on_stage(spec, len(units))
            redo = overwrite or (spec.aggregate and spec.group in ran_groups)
            rep = run_stage(layout, global_args, spec, units, jobs, redo, progress, pool)
            rep.note = scope.notes.get(spec.name, "")
            if rep.done:
                ran_groups.add(spec.group)
                if spec.finalize is not None:
                    try:
                        spec.finalize(layout)
                    except HetredError as err:
                        rep.failed.append(("(after the units)", str(err)))
                    except OSError as err:
                        rep.failed.append(("(after the units)", describe_failure(err)))
            reports.append(rep)
    finally:
        if pool is not None:
            pool.shutdown()
    return reports
