"""Units of work: the thing one job-file line does.

:func:`run_unit` wraps a stage's ``run_*`` call: it skips a unit whose done marker exists (and
whose listed outputs all exist) unless ``overwrite``; it times the call; on success it writes a
done marker (JSON: stage, unit, inputs, outputs, counts, timings, hetred version, host). A unit
that fails returns a *failed* result with one line and writes a failed marker, so the other units
go on, whatever the failure:

* :class:`~hetred.errors.HetredError`: its message (names the file, the key, the setting);
* ``OSError`` (the tree is read-only, the disk is full, a file cannot be read): the system's
  reason and the file it names;
* any other ``Exception`` (a bug, ``MemoryError``): ``internal error: Class: message``, the
  traceback kept in the failed marker.

A unit being (re)done loses its done marker when it starts. An interruption (Ctrl-C, the SIGTERM
of a Slurm time limit or scancel, turned into SystemExit by ``hetred.cli.main``) writes a failed
marker and is re-raised. A unit killed outright (SIGKILL, the OOM killer) has no marker: never a
done one (``hetred run`` then writes the failed one, :mod:`hetred.jobs.pool`). When even the
failed marker cannot be written (read-only tree, full disk) the result still carries the reason
and says that no marker was written.
"""
from __future__ import annotations

import json
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from hetred._version import __version__
from hetred.errors import HetredError, WriteError
from hetred.io.atomic import write_json_atomic
from hetred.layout import Layout


@dataclass
class UnitOutcome:
    """What a stage's run function reports about one unit."""

    outputs: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnitResult:
    """The result of one unit: status is 'done', 'skipped' or 'failed'."""

    stage: str
    unit: str
    status: str
    seconds: float = 0.0
    message: str = ""
    outcome: UnitOutcome | None = None


def read_marker(layout: Layout, stage: str, unit: str) -> dict[str, Any] | None:
    """The done marker of a unit, or None."""
    p = layout.path("marker_done", stage=stage, unit=unit)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def is_done(layout: Layout, stage: str, unit: str) -> bool:
    """True when the unit has a done marker and all its recorded outputs exist."""
    marker = read_marker(layout, stage, unit)
    if marker is None:
        return False
    return all(Path(p).exists() for p in marker.get("outputs", []))


def describe_failure(err: BaseException) -> str:
    """The one line a failed unit reports for an exception that is not a HetredError."""
    if isinstance(err, OSError):
        reason = err.strerror or str(err) or err.__class__.__name__
        if err.filename is not None:
            other = f" -> {err.filename2}" if err.filename2 is not None else ""
            return f"{reason}: {err.filename}{other}"
        return f"{reason} (errno {err.errno}; the system named no file)"
    text = f"{err.__class__.__name__}: {err}" if str(err) else err.__class__.__name__
    if isinstance(err, MemoryError):
        return f"out of memory ({text})"
    return f"internal error: {text}"


def run_unit(layout: Layout, stage: str, unit: str, fn: Callable[[], UnitOutcome],
             overwrite: bool = False) -> UnitResult:
    """Run one unit idempotently, leaving a done or failed marker (module docstring)."""
    done = layout.path("marker_done", stage=stage, unit=unit)
    failed = layout.path("marker_failed", stage=stage, unit=unit)
    if not overwrite and is_done(layout, stage, unit):
        return UnitResult(stage, unit, "skipped", message="already done (use --overwrite to redo)")
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()

    def fail(reason: str, trace: str = "") -> UnitResult:
        seconds = time.perf_counter() - t0
        note = _write_failed(failed, stage, unit, reason, started, seconds, trace)
        if trace and not note:
            reason += f" (traceback in {failed})"
        return UnitResult(stage, unit, "failed", seconds, reason + note)

    try:
        # a unit being (re)done is not done until it finishes again: a kill (SIGKILL, node loss)
        # mid-way leaves no done marker, so --rerun-failed picks it up
        try:
            done.unlink(missing_ok=True)
        except OSError as err:      # a read-only tree: fail before any work
            raise WriteError(done.parent, err) from None
        outcome = fn()
    except HetredError as err:
        return fail(str(err))
    except OSError as err:
        return fail(describe_failure(err))
    except Exception as err:  # noqa: BLE001 - a bug in one unit must not stop the others
        return fail(describe_failure(err), traceback.format_exc())
    except BaseException as err:  # Ctrl-C, SIGTERM (hetred.cli.main): failed marker, re-raise
        text = f"{err.__class__.__name__}: {err}" if str(err) else err.__class__.__name__
        _write_failed(failed, stage, unit, f"interrupted: {text}", started, time.perf_counter() - t0)
        raise
    seconds = time.perf_counter() - t0
    try:
        write_json_atomic(done, {
            "stage": stage, "unit": unit, "status": "done",
            "inputs": outcome.inputs, "outputs": outcome.outputs, "counts": outcome.counts,
            "started": started.isoformat(), "seconds": round(seconds, 3),
            "hetred_version": __version__, "host": socket.gethostname(),
        })
        failed.unlink(missing_ok=True)
    except (HetredError, OSError) as err:
        return fail(str(err) if isinstance(err, HetredError) else describe_failure(err))
    return UnitResult(stage, unit, "done", seconds, outcome=outcome)


def mark_failed(layout: Layout, stage: str, unit: str, reason: str, seconds: float = 0.0) -> str:
    """Write a unit's failed marker from outside the unit (e.g. its worker process died);
    returns '' or a note that it could not be written."""
    started = datetime.now(timezone.utc)
    return _write_failed(layout.path("marker_failed", stage=stage, unit=unit), stage, unit, reason,
                         started, seconds)


def _write_failed(path: Path, stage: str, unit: str, reason: str, started: datetime, seconds: float,
                  trace: str = "") -> str:
    """Write the failed marker; '' or, when the tree will not take it, a note for the message."""
    data = {
        "stage": stage, "unit": unit, "status": "failed", "reason": reason,
        "started": started.isoformat(), "seconds": round(seconds, 3),
        "hetred_version": __version__, "host": socket.gethostname(),
    }
    if trace:
        data["traceback"] = trace
    try:
        write_json_atomic(path, data)
    except WriteError as err:
        return f" [no failed marker written: {err.reason}]"
    return ""
