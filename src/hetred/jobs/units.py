"""Units of work: the thing one job-file line does.

:func:`run_unit` wraps a stage's ``run_*`` call: it skips a unit whose done marker exists (and
whose listed outputs all exist) unless ``overwrite``; it times the call; on success it writes a
done marker (JSON: stage, unit, inputs, outputs, counts, timings, hetred version, host); on a
:class:`~hetred.errors.HetredError` it writes a failed marker with the one-line reason and returns
instead of raising, so the other units go on. A unit being (re)done loses its done marker when it
starts; any other exception (a bug, Ctrl-C, the SIGTERM of a Slurm time limit or scancel, turned
into SystemExit by ``hetred.cli.main``) writes a failed marker and is re-raised. A unit killed
outright (SIGKILL) therefore has no marker: never a done one.
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from hetred._version import __version__
from hetred.errors import HetredError
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


def run_unit(layout: Layout, stage: str, unit: str, fn: Callable[[], UnitOutcome],
             overwrite: bool = False) -> UnitResult:
    """Run one unit idempotently, leaving a done or failed marker."""
    done = layout.path("marker_done", stage=stage, unit=unit)
    failed = layout.path("marker_failed", stage=stage, unit=unit)
    if not overwrite and is_done(layout, stage, unit):
        return UnitResult(stage, unit, "skipped", message="already done (use --overwrite to redo)")
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    # a unit being (re)done is not done until it finishes again: a kill (SIGKILL, node loss) mid-way
    # leaves no done marker, so --rerun-failed picks it up
    done.unlink(missing_ok=True)
    try:
        outcome = fn()
    except HetredError as err:
        seconds = time.perf_counter() - t0
        _write_failed(failed, stage, unit, str(err), started, seconds)
        return UnitResult(stage, unit, "failed", seconds, str(err))
    except BaseException as err:  # a bug, Ctrl-C, SIGTERM (hetred.cli.main): failed marker, re-raise
        text = f"{err.__class__.__name__}: {err}" if str(err) else err.__class__.__name__
        why = "unexpected error" if isinstance(err, Exception) else "interrupted"
        _write_failed(failed, stage, unit, f"{why}: {text}", started, time.perf_counter() - t0)
        raise
    seconds = time.perf_counter() - t0
    write_json_atomic(done, {
        "stage": stage, "unit": unit, "status": "done",
        "inputs": outcome.inputs, "outputs": outcome.outputs, "counts": outcome.counts,
        "started": started.isoformat(), "seconds": round(seconds, 3),
        "hetred_version": __version__, "host": socket.gethostname(),
    })
    failed.unlink(missing_ok=True)
    return UnitResult(stage, unit, "done", seconds, outcome=outcome)


def _write_failed(path: Path, stage: str, unit: str, reason: str, started: datetime, seconds: float) -> None:
    write_json_atomic(path, {
        "stage": stage, "unit": unit, "status": "failed", "reason": reason,
        "started": started.isoformat(), "seconds": round(seconds, 3),
        "hetred_version": __version__, "host": socket.gethostname(),
    })
