"""Where every stage stands for a night, from the markers the units leave (hetred.jobs.units):
done, empty (nothing to do, with the reason), failed (with its one-line reason), stale (done once,
its inputs changed since) or missing (expected and never run, or killed).

The units come from two places: ``expected`` (the units the stage registry enumerates for the
night, as ``hetred run`` would run them; given by the caller, since a stage package does not read
the registry) and the markers themselves: every marker of the stage whose unit names the night
(``20180110v007_exp01_053``), the night's month (``201801_053_LL``), or, when nothing is expected,
any other unit (a camera's pixel flat ``cam320_LL``, a release ``hdr2.1``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hetred.jobs.units import UnitState, read_json, unit_state
from hetred.layout import Layout, parse

STATES = ("done", "empty", "failed", "stale", "missing")


@dataclass
class UnitRow:
    uid: str
    status: str
    why: str = ""
    seconds: float = 0.0


@dataclass
class StageStatus:
    """One stage of the night: its units by state (``rows`` lists those not done)."""

    stage: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    rows: list[UnitRow] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return self.counts["failed"] == self.counts["stale"] == self.counts["missing"] == 0


def _marker_units(layout: Layout, stage: str) -> dict[str, Path]:
    """uid -> a marker file of the stage (done, empty or failed)."""
    out: dict[str, Path] = {}
    for key in ("marker_done", "marker_empty", "marker_failed"):
        for p in layout.glob(key, stage=stage):
            f = parse(key, p.relative_to(layout.red).as_posix())
            if f is not None:
                out.setdefault(f["unit"], p)
    return out


def _belongs(uid: str, night: str, month: str) -> bool:
    return night in uid or uid == month or uid.startswith(month + "_")


def _read(path: Path) -> dict:
    return read_json(path) or {}


def _why(layout: Layout, stage: str, uid: str, state: UnitState) -> tuple[str, float]:
    """The reason to show (failed marker's reason, empty reason, staleness) and the unit's seconds."""
    seconds = 0.0
    why = state.why
    if state.status == "failed":
        m = _read(layout.path("marker_failed", stage=stage, unit=uid))
        why, seconds = str(m.get("reason", "")), float(m.get("seconds", 0.0) or 0.0)
    elif state.status in ("done", "stale"):
        m = _read(layout.path("marker_done", stage=stage, unit=uid))
        seconds = float(m.get("seconds", 0.0) or 0.0)
    elif state.status == "empty":
        m = _read(layout.path("marker_empty", stage=stage, unit=uid))
        seconds = float(m.get("seconds", 0.0) or 0.0)
    elif state.status == "missing":
        why = "never run, or killed" + (" (a lock file is left)" if layout.path(
            "marker_lock", stage=stage, unit=uid).exists() else "")
    return why, seconds


def stage_status(layout: Layout, night: str, order: list[str] | None = None,
                 expected: dict[str, list[str]] | None = None, skip: tuple[str, ...] = ()) -> list[StageStatus]:
    """Every stage's units for ``night`` (YYYYMMDD) in ``order`` (stages with markers but not in
    ``order`` follow, by name), but those in ``skip`` (the page's own). ``expected``: stage -> the
    units it should have."""
    month = night[:6]
    expected = expected or {}
    names = [p.name for p in marker_dirs(layout)]
    ordered = [n for n in dict.fromkeys(list(order or []) + [n for n in expected] + sorted(names)) if n not in skip]
    out = []
    for stage in ordered:
        found = _marker_units(layout, stage)
        want = list(expected.get(stage, []))
        if want:
            uids = list(dict.fromkeys(want + [u for u in found if night in u or u in want]))
        else:
            uids = [u for u in found if _belongs(u, night, month)] or list(found)
        if not uids:
            continue
        st = StageStatus(stage)
        for uid in sorted(uids):
            state = unit_state(layout, stage, uid)
            why, seconds = _why(layout, stage, uid, state)
            st.counts[state.status] = st.counts.get(state.status, 0) + 1
            st.seconds += seconds
            if state.status != "done":
                st.rows.append(UnitRow(uid, state.status, why, seconds))
        out.append(st)
    return out


def marker_dirs(layout: Layout) -> list[Path]:
    """The markers' folders (a page depends on them: one changes when a unit ends)."""
    root = layout.path("marker_done", stage="x", unit="x").parent.parent
    return sorted(p for p in root.glob("*") if p.is_dir())
