"""The calibration of one amp for a science exposure: the monthly library, with overrides.

Karl's science runs take, per exposure and IFU, the calibration month from column 7 of his
``runs{month}`` file, and he edits those files with awk when an IFU moved or its month's
calibration is bad (``dbase/readme.hist``), e.g.::

    awk '{if($5=="092"&&$2<20190913) print ...,201908,...; else if($5=="092"&&$2>20190913) print ...,201910,...}'

hetred keeps those edits as a table in the config file, evaluated in file order (the first rule
that applies wins; no rule: the night's own month)::

    [stages.sci.calibration_overrides]
    "092" = [{last = "20190912", month = "201908"}, {first = "20190914", month = "201910"}]
    "022 023 024 026" = {first = "20180727", month = "201808"}
    "*" = {first = "20190328", last = "20190331", month = "201904"}

Keys: one or more IFU slots (separated by spaces or commas) or ``*`` for every slot; values: a
table or a list of tables with ``month`` (YYYYMM, required) and ``first`` / ``last`` (nights
YYYYMMDD, inclusive, each optional). The array-of-tables form
``[[stages.sci.calibration_overrides]]`` with a key ``ifuslots`` (list or string) is read too.
The calibration month is used for everything of the month (master bias, background models,
library), as vred's single month argument is.

The library file is ``callib`` (docs/formats.md): trace, wavelength, fiber_to_fiber,
amp_to_amp, profile, dead_fibers (what :func:`hetred.fibers.library.read_library` reads, plus the
profile); it is read once per process and file version.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hetred.errors import HetredError
from hetred.layout import Layout

_NIGHT = re.compile(r"^\d{8}$")
_MONTH = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class Override:
    """One rule: nights ``first``..``last`` (inclusive, None = open) of ``ifuslots`` (None = all)
    use the calibration of ``month``."""

    ifuslots: frozenset[int] | None
    month: str
    first: str | None = None
    last: str | None = None

    def applies(self, ifuslot: int, night: str) -> bool:
        if self.ifuslots is not None and int(ifuslot) not in self.ifuslots:
            return False
        if self.first is not None and night < self.first:
            return False
        return self.last is None or night <= self.last

    def describe(self) -> str:
        slots = "*" if self.ifuslots is None else ",".join(f"{s:03d}" for s in sorted(self.ifuslots))
        return f"{slots} {self.first or '...'}-{self.last or '...'} -> {self.month}"


def _slots(key: Any) -> frozenset[int] | None:
    if isinstance(key, (list, tuple)):
        parts = [str(k) for k in key]
    else:
        parts = [p for p in re.split(r"[\s,]+", str(key).strip()) if p]
    if parts == ["*"]:
        return None
    try:
        slots = frozenset(int(p) for p in parts)
    except ValueError:
        raise HetredError(f"calibration_overrides: {key!r} is not a list of IFU slots (or '*')") from None
    if not slots or any(not 0 <= s <= 999 for s in slots):
        raise HetredError(f"calibration_overrides: bad IFU slots {key!r}")
    return slots


def _rule(slots: frozenset[int] | None, value: Any, where: str) -> Override:
    if not isinstance(value, dict):
        raise HetredError(f"calibration_overrides {where}: expected a table with month/first/last, got {value!r}")
    unknown = set(value) - {"month", "first", "last", "ifuslots"}
    if unknown:
        raise HetredError(f"calibration_overrides {where}: unknown key(s) {', '.join(sorted(unknown))}")
    month = str(value.get("month", ""))
    if not _MONTH.match(month):
        raise HetredError(f"calibration_overrides {where}: month must be YYYYMM, got {value.get('month')!r}")
    lims = {}
    for k in ("first", "last"):
        v = value.get(k)
        if v is not None:
            v = str(v)
            if not _NIGHT.match(v):
                raise HetredError(f"calibration_overrides {where}: {k} must be a night YYYYMMDD, got {v!r}")
        lims[k] = v
    if lims["first"] and lims["last"] and lims["first"] > lims["last"]:
        raise HetredError(f"calibration_overrides {where}: first {lims['first']} is after last {lims['last']}")
    return Override(slots, month, lims["first"], lims["last"])


def parse_overrides(value: Any) -> list[Override]:
    """The rules of a ``calibration_overrides`` value (see the module docstring), in order."""
    if value is None:
        return []
    rules: list[Override] = []
    if isinstance(value, dict):
        for key, v in value.items():
            for i, item in enumerate(v if isinstance(v, list) else [v]):
                rules.append(_rule(_slots(key), item, f"[{key!r}][{i}]"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict) or "ifuslots" not in item:
                raise HetredError(f"calibration_overrides[{i}]: needs ifuslots, month (first, last)")
            rules.append(_rule(_slots(item["ifuslots"]), item, f"[{i}]"))
    else:
        raise HetredError(f"calibration_overrides must be a table, got {type(value).__name__}")
    return rules


def calibration_month(night: str, ifuslot: int, rules: list[Override]) -> tuple[str, Override | None]:
    """The calibration month of an IFU slot on a night, and the rule that chose it (or None)."""
    for r in rules:
        if r.applies(ifuslot, night):
            return r.month, r
    return night[:6], None


@dataclass
class AmpCalibration:
    """The monthly library of one amp (arrays read only; shared between exposures).

    trace, wavelength, fiber_to_fiber: (112, 1032) float32 (rows px, Å, relative throughput per
    Å at each fiber's own wavelengths); dead: (112,) bool; amp_to_amp: float; profile:
    :class:`hetred.fibers.profile.FiberProfile`.
    """

    month: str
    path: Path
    trace: np.ndarray
    wavelength: np.ndarray
    fiber_to_fiber: np.ndarray
    dead: np.ndarray
    amp_to_amp: float
    profile: Any
    nexp: int
    rule: str = ""


@lru_cache(maxsize=32)
def _load(path: str, mtime_ns: int) -> tuple:
    from hetred.fibers.profile import FiberProfile

    try:       # what hetred.fibers.library.read_library reads, and the profile, in one pass
        with fits.open(path, memmap=False) as h:
            lib = {k: np.asarray(h[k].data) for k in ("trace", "wavelength", "fiber_to_fiber")}
            dead = np.asarray(h["dead_fibers"].data["DEAD"], bool)
            a2a = float(h["amp_to_amp"].header["A2A"])
            nexp = int(h[0].header.get("NEXP", 0))
            prof = FiberProfile.from_hdus(h, "profile")
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise HetredError(f"calibration {path} is unreadable ({err.__class__.__name__}: {err})") from None
    arrays = []
    for k in ("trace", "wavelength", "fiber_to_fiber"):
        a = np.ascontiguousarray(lib[k], dtype=np.float32)
        if a.shape != (112, 1032):
            raise HetredError(f"calibration {path}: {k} has shape {a.shape}, expected (112, 1032)")
        a.setflags(write=False)
        arrays.append(a)
    dead.setflags(write=False)
    return (*arrays, dead, a2a, prof, nexp)


def library_path(layout: Layout, month: str, specid: int, ifuslot: int, ifuid: str, amp: str) -> Path:
    return layout.path("callib", month=month, specid=specid, ifuslot=ifuslot, ifuid=ifuid, amp=amp)


def find_calibration(layout: Layout, night: str, specid: int, ifuslot: int, ifuid: str, amp: str,
                     rules: list[Override] | None = None) -> AmpCalibration:
    """The library of an amp for a night (override rules applied). A missing or unreadable
    file raises :class:`HetredError` with one line naming it and what to run."""
    month, rule = calibration_month(night, ifuslot, rules or [])
    path = library_path(layout, month, specid, ifuslot, ifuid, amp)
    if not path.exists():
        why = f" (override {rule.describe()})" if rule else ""
        others = [p.name for p in layout.glob("callib", month=month, ifuslot=ifuslot, amp=amp)]
        hint = f"; the month has {', '.join(others)} (IFU or spectrograph swapped?)" if others else \
            f" (run hetred twical {month})"
        raise HetredError(f"no calibration {path.relative_to(layout.red)} for IFU slot {ifuslot:03d} "
                          f"amp {amp} on {night}{why}{hint}")
    tr, wv, ff, dead, a2a, prof, nexp = _load(str(path), path.stat().st_mtime_ns)
    return AmpCalibration(month, path, tr, wv, ff, dead, a2a, prof, nexp, rule.describe() if rule else "")
