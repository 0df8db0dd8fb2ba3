"""Units of work: the thing one job-file line does.

:func:`run_unit` wraps a stage's ``run_*`` call: it skips a unit whose done marker exists (and
whose listed outputs all exist) unless ``overwrite``; it times the call; on success it writes a
done marker (JSON: stage, unit, inputs, outputs, counts, timings, hetred version, host); on a
:class:`~hetred.errors.HetredError` it writes a failed marker with the one-line reason and returns
instead of raising, so the other units go on.
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
    try:
        outcome = fn()
    except HetredError as err:
        seconds = time.perf_counter() - t0
        write_json_atomic(failed, {
            "stage": stage, "unit": unit, "status": "failed", "reason": str(err),
            "started": started.isoformat(), "seconds": round(seconds, 3),
            "hetred_version": __version__, "host": socket.gethostname(),
        })
        done.unlink(missing_ok=True)
        return UnitResult(stage, unit, "failed", seconds, str(err))
    seconds = time.perf_counter() - t0
    write_json_atomic(done, {
        "stage": stage, "unit": unit, "status": "done",
        "inputs": outcome.inputs, "outputs": outcome.outputs, "counts": outcome.counts,
        "started": started.isoformat(), "seconds": round(seconds, 3),
        "hetred_version": __version__, "host": socket.gethostname(),
    })
    failed.unlink(missing_ok=True)
    return UnitResult(stage, unit, "done", seconds, outcome=outcome)
