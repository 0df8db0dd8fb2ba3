"""Units of work: the thing one job-file line does.

:func:`run_unit` wraps a stage's ``run_*`` call and leaves exactly one marker per unit
(``markers/{stage}/{unit}.{done,empty,failed}.json``):

* **done**: the unit wrote its products. JSON: stage, unit, inputs, outputs, counts, timings,
  hetred version, host, and ``depends``: the products of earlier stages the unit used or looked
  for (master bias, pixel flat, background models, library, ...), each with its ``[size,
  mtime_ns]`` then, or ``null`` when it did not exist.
* **empty**: nothing to do in the data (the stage raised :class:`~hetred.errors.EmptyUnit`, e.g. a
  ``bri`` background unit of a dark month): the reason, the counts it saw and its ``depends``
  (e.g. the tarlist). Not a failure: the exit status is 0 when every unit is done or empty, and
  ``slurm-gen --rerun-failed`` does not rerun it.
* **failed**: a one-line reason, returned, so the other units go on, whatever the failure:
  a :class:`~hetred.errors.HetredError` (its message names the file, the key, the setting); an
  ``OSError`` (read-only tree, full disk, unreadable file: the system's reason and the file it
  names); any other ``Exception`` (a bug, ``MemoryError``: ``internal error: Class: message``,
  the traceback kept in the marker). An interruption (Ctrl-C, the SIGTERM of a Slurm time limit
  turned into SystemExit by ``hetred.cli.main``) writes a failed marker and is re-raised. When
  even the failed marker cannot be written (read-only tree, full disk) the result still carries
  the reason and says that no marker was written.

A done or empty unit is skipped unless ``overwrite`` -- and unless it is **stale**: a file of its
``depends`` changed since (appeared, went, or has another size or mtime: e.g. twical reduced
before the pixel flat existed), or a recorded output went missing. A stale unit is redone by
the next run, so a calibration made in the wrong order mends itself.

A unit being (re)done loses its done and empty markers when it starts, so a unit killed outright
(SIGKILL, a lost node) has no marker: never a done one (``hetred run`` and ``--jobs`` then write
the failed one, :mod:`hetred.jobs.pool`).

**Lock.** A unit runs under an exclusive ``fcntl`` lock on ``markers/{stage}/{unit}.lock``: a
second process (two ``hetred run`` of one month, a job file submitted twice) finds it held and
reports the unit as ``running`` elsewhere instead of doing the work twice. The lock file also
journals the temporary files the unit opens (:func:`hetred.io.atomic.journal_temporaries`); the
holder removes it when the unit ends, so a lock file left behind belongs to a killed unit, and
the next run of the unit removes the temporaries it lists before starting.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from hetred._version import __version__
from hetred.errors import EmptyUnit, HetredError, WriteError
from hetred.io.atomic import journal_temporaries, write_json_atomic
from hetred.layout import Layout
from hetred.virus.ids import parse_datevobs

#: the message of a unit whose lock another process holds
RUNNING_ELSEWHERE = "running elsewhere"


@dataclass(frozen=True)
class ShotUnit:
    """The unit of a per-shot stage (throughput, h5 shot, report detections): one science shot,
    unit id ``DATEvOBS``."""

    datevobs: str

    @property
    def unit(self) -> str:
        return self.datevobs

    @property
    def night(self) -> str:
        return parse_datevobs(self.datevobs)[0]

    @property
    def obs(self) -> int:
        return parse_datevobs(self.datevobs)[1]

    @property
    def month(self) -> str:
        return self.night[:6]


def science_shots(entries: Iterable) -> list[ShotUnit]:
    """The science shots of tarlist ``entries``, sorted by DATEvOBS."""
    return [ShotUnit(s) for s in sorted({f"{e.night}v{e.obs:03d}" for e in entries if e.kind == "sci"})]


@dataclass
class UnitOutcome:
    """What a stage's run function reports about one unit.

    ``depends``: products of earlier stages the unit used or looked for (absent ones too: a
    missing pixel flat that appears later makes the unit stale). ``notes``: things a user
    should hear once per stage run, ``{what: [items]}``, e.g. ``{"background models missing
    (blended from the others)": ["053LL: bri"]}``.
    """

    outputs: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class UnitResult:
    """The result of one unit: status is 'done', 'skipped' (already done), 'empty' (nothing to
    do), 'failed' or 'running' (elsewhere)."""

    stage: str
    unit: str
    status: str
    seconds: float = 0.0
    message: str = ""
    outcome: UnitOutcome | None = None


# ------------------------------------------------------------------------------------------------
# markers and their freshness

def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file (a marker, a summary), or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_marker(layout: Layout, stage: str, unit: str) -> dict[str, Any] | None:
    """The done marker of a unit, or None."""
    return read_json(layout.path("marker_done", stage=stage, unit=unit))


def read_empty(layout: Layout, stage: str, unit: str) -> dict[str, Any] | None:
    """The empty marker of a unit, or None."""
    return read_json(layout.path("marker_empty", stage=stage, unit=unit))


def stamp(path: str | Path) -> list[int] | None:
    """``[size, mtime_ns]`` of a file, None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def record_depends(paths: Iterable[str | Path]) -> dict[str, list[int] | None]:
    """``{absolute path: stamp}`` of the files a unit depends on (the marker's ``depends``)."""
    return {os.path.abspath(p): stamp(p) for p in dict.fromkeys(str(p) for p in paths)}


def changed_depends(marker: dict[str, Any]) -> list[str]:
    """The files of a marker's ``depends`` that differ now (appeared, went, rewritten)."""
    deps = marker.get("depends") or {}
    if not isinstance(deps, dict):
        return []
    return [p for p, s in deps.items() if stamp(p) != s]


@dataclass(frozen=True)
class UnitState:
    """Where a unit stands: ``done``, ``empty``, ``failed``, ``stale`` (done or empty once, its
    inputs changed or outputs gone since: to redo) or ``missing`` (never run, or killed)."""

    status: str
    why: str = ""


def unit_state(layout: Layout, stage: str, unit: str) -> UnitState:
    """The state of one unit from its markers (see :class:`UnitState`)."""
    marker = read_marker(layout, stage, unit)
    if marker is not None:
        gone = [p for p in marker.get("outputs", []) if not Path(p).exists()]
        changed = changed_depends(marker)
        if gone:
            return UnitState("stale", f"output {Path(gone[0]).name} is gone")
        if changed:
            return UnitState("stale", "input changed since: " + _names(changed))
        return UnitState("done")
    empty = read_empty(layout, stage, unit)
    if empty is not None:
        changed = changed_depends(empty)
        if changed:
            return UnitState("stale", "was empty; input changed since: " + _names(changed))
        return UnitState("empty", str(empty.get("reason", "")))
    if layout.path("marker_failed", stage=stage, unit=unit).exists():
        return UnitState("failed")
    return UnitState("missing")


def _names(paths: list[str]) -> str:
    text = ", ".join(Path(p).name for p in paths[:3])
    return text + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")


def is_done(layout: Layout, stage: str, unit: str) -> bool:
    """True when the unit has a done marker, all its recorded outputs and unchanged depends."""
    return unit_state(layout, stage, unit).status == "done"


def is_settled(layout: Layout, stage: str, unit: str) -> bool:
    """True when the unit needs no (re)run: done or empty, and not stale."""
    return unit_state(layout, stage, unit).status in ("done", "empty")


# ------------------------------------------------------------------------------------------------
# the per-unit lock (and journal of temporary files)

class UnitLock:
    """An exclusive, non-blocking ``flock`` on ``marker_lock``; see the module docstring.

    ``acquire()`` returns False when another process holds it (:attr:`holder` then says who).
    The file is unlinked while still locked on release, and an acquirer checks that the file it
    locked is still the one at the path, so two processes never both hold a unit.
    """

    def __init__(self, layout: Layout, stage: str, unit: str) -> None:
        self.path = layout.path("marker_lock", stage=stage, unit=unit)
        self.fd: int | None = None
        self.holder = ""
        self.leftovers: list[str] = []

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.holder = _holder(fd)
                os.close(fd)
                return False
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)              # the holder removed it between our open and lock: again
        self.fd = fd
        self.leftovers = _journal_lines(fd)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
                      + "\n").encode())
        return True

    def remove_leftovers(self) -> list[str]:
        """Remove the temporary files a killed earlier run of the unit journalled."""
        removed = []
        for p in self.leftovers:
            try:
                os.unlink(p)
                removed.append(p)
            except FileNotFoundError:
                pass
        return removed

    def journal(self, tmp: Path) -> None:
        if self.fd is not None:
            os.write(self.fd, f"tmp {tmp}\n".encode())

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _journal_lines(fd: int) -> list[str]:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    text = b"".join(chunks).decode(errors="replace")
    return [ln[4:] for ln in text.splitlines() if ln.startswith("tmp ")]


def _holder(fd: int) -> str:
    try:
        first = os.pread(fd, 4096, 0).decode(errors="replace").splitlines()[0]
        h = json.loads(first)
        return f"pid {h['pid']} on {h['host']} since {h['started']}"
    except (OSError, IndexError, ValueError, KeyError, TypeError):
        return "another process"


def lock_held(layout: Layout, stage: str, unit: str) -> bool:
    """Whether another process holds the unit's lock now (looks only: changes nothing)."""
    path = layout.path("marker_lock", stage=stage, unit=unit)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)          # closing drops a lock we took
    return False


def wait_for(layout: Layout, stage: str, unit: str, poll: float = 1.0) -> None:
    """Block until no other process holds the unit's lock."""
    while lock_held(layout, stage, unit):
        time.sleep(poll)


# ------------------------------------------------------------------------------------------------
# running a unit

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
    """Run one unit idempotently, leaving a done, empty or failed marker (module docstring)."""
    state = unit_state(layout, stage, unit)
    if not overwrite and state.status == "done":
        return UnitResult(stage, unit, "skipped", message="already done (use --overwrite to redo)")
    if not overwrite and state.status == "empty":
        return UnitResult(stage, unit, "empty", message=state.why)
    lock = UnitLock(layout, stage, unit)
    try:
        got = lock.acquire()
    except OSError as err:        # a read-only or full tree: the unit cannot even be locked
        with contextlib.suppress(OSError):
            lock.release()
        return _failed_outside(layout, stage, unit, str(WriteError(lock.path, err)))
    if not got:
        return UnitResult(stage, unit, "running", message=f"{RUNNING_ELSEWHERE} ({lock.holder})")
    try:
        lock.remove_leftovers()
        if not overwrite:          # the other process may have finished it while we looked
            state = unit_state(layout, stage, unit)
            if state.status == "done":
                return UnitResult(stage, unit, "skipped", message="already done (use --overwrite to redo)")
            if state.status == "empty":
                return UnitResult(stage, unit, "empty", message=state.why)
        with journal_temporaries(lock.journal):
            return _run_locked(layout, stage, unit, fn, state)
    finally:
        lock.release()


def _run_locked(layout: Layout, stage: str, unit: str, fn: Callable[[], UnitOutcome],
                state: UnitState) -> UnitResult:
    done = layout.path("marker_done", stage=stage, unit=unit)
    empty = layout.path("marker_empty", stage=stage, unit=unit)
    failed = layout.path("marker_failed", stage=stage, unit=unit)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    base = {"stage": stage, "unit": unit, "started": started.isoformat(),
            "hetred_version": __version__, "host": socket.gethostname()}

    def fail(reason: str, trace: str = "") -> UnitResult:
        seconds = time.perf_counter() - t0
        note = _write_failed(failed, base, reason, seconds, trace)
        if trace and not note:
            reason += f" (traceback in {failed})"
        return UnitResult(stage, unit, "failed", seconds, reason + note)

    try:
        # a unit being (re)done is not done until it finishes again: a kill (SIGKILL, node loss)
        # mid-way leaves no done marker, so --rerun-failed picks it up
        try:
            done.unlink(missing_ok=True)
            empty.unlink(missing_ok=True)
        except OSError as err:      # a read-only tree: fail before any work
            raise WriteError(done.parent, err) from None
        outcome = fn()
    except EmptyUnit as err:
        seconds = time.perf_counter() - t0
        try:
            write_json_atomic(empty, {**base, "status": "empty", "reason": str(err), "counts": err.counts,
                                      "depends": record_depends(err.depends), "seconds": round(seconds, 3)})
            failed.unlink(missing_ok=True)
        except (HetredError, OSError) as werr:
            return fail(str(werr) if isinstance(werr, HetredError) else describe_failure(werr))
        return UnitResult(stage, unit, "empty", seconds, str(err))
    except HetredError as err:
        return fail(str(err))
    except OSError as err:
        return fail(describe_failure(err))
    except Exception as err:  # noqa: BLE001 - a bug in one unit must not stop the others
        return fail(describe_failure(err), traceback.format_exc())
    except BaseException as err:  # Ctrl-C, SIGTERM (hetred.cli.main): failed marker, re-raise
        text = f"{err.__class__.__name__}: {err}" if str(err) else err.__class__.__name__
        _write_failed(failed, base, f"interrupted: {text}", time.perf_counter() - t0)
        raise
    seconds = time.perf_counter() - t0
    try:
        write_json_atomic(done, {
            **base, "status": "done",
            "inputs": outcome.inputs, "outputs": outcome.outputs, "counts": outcome.counts,
            "depends": record_depends(outcome.depends), "notes": outcome.notes,
            "seconds": round(seconds, 3),
        })
        failed.unlink(missing_ok=True)
    except (HetredError, OSError) as err:
        return fail(str(err) if isinstance(err, HetredError) else describe_failure(err))
    return UnitResult(stage, unit, "done", seconds, state.why if state.status == "stale" else "",
                      outcome=outcome)


def _write_failed(path: Path, base: dict[str, Any], reason: str, seconds: float, trace: str = "") -> str:
    """Write the failed marker; '' or, when the tree will not take it, a note for the message."""
    data = {**base, "status": "failed", "reason": reason, "seconds": round(seconds, 3)}
    if trace:
        data["traceback"] = trace
    try:
        write_json_atomic(path, data)
    except WriteError as err:
        return f" [no failed marker written: {err.reason}]"
    return ""


def _failed_outside(layout: Layout, stage: str, unit: str, reason: str, seconds: float = 0.0) -> UnitResult:
    note = mark_failed(layout, stage, unit, reason, seconds)
    return UnitResult(stage, unit, "failed", seconds, reason + note)


def mark_failed(layout: Layout, stage: str, unit: str, reason: str, seconds: float = 0.0) -> str:
    """Write a unit's failed marker from outside the unit (e.g. its worker process died);
    returns '' or a note that it could not be written."""
    base = {"stage": stage, "unit": unit, "started": datetime.now(timezone.utc).isoformat(),
            "hetred_version": __version__, "host": socket.gethostname()}
    return _write_failed(layout.path("marker_failed", stage=stage, unit=unit), base, reason, seconds)


def merge_notes(notes: Iterable[dict[str, list[str]] | None]) -> dict[str, list[str]]:
    """The notes of many units, each item once, sorted (what a stage run says once)."""
    out: dict[str, set[str]] = {}
    for n in notes:
        for what, items in (n or {}).items():
            out.setdefault(what, set()).update(items)
    return {k: sorted(v) for k, v in sorted(out.items())}


def format_notes(stage: str, notes: dict[str, list[str]], limit: int = 12) -> list[str]:
    """One line per kind of note: ``STAGE: what: item, item, ... (+N more)``."""
    lines = []
    for what, items in notes.items():
        shown = ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")
        lines.append(f"{stage}: {what}: {shown}")
    return lines
