"""Steps 1-2 of the process: the month's tarlist, science list and calibration inventory.

Replaces karlspipe hdr2.1/dbase ``rstep1`` (``tar tvf`` of every tar of the month, shuffle and
gc entries dropped), ``rgetrep`` (repeated files removed) and ``run1``/``rtar``/``rgetsci1``
(header values of one amp file per science exposure).

Products (through the layout table):

* ``{month}tarlist``: one raw member per line, as Karl writes them:
  ``20170101/virus/virus0000001/exp01/virus/20170101T012654.3_095LL_cmp.fits``
* ``{month}repeats``: lines dropped because a file with the same stamp, IFU slot, amp and type
  was listed before.
* ``{month}broken``: the raw tars that could be read only in part (truncated or damaged, or not
  at all) and the members known lost; their intact members are in the tarlist, so one broken
  tar costs only its lost frames, never the month.
* ``{month}sci``: one line per science exposure: the first LL member (lowest IFU slot) followed by
  ``OBJECT EXPTIME DARKTIME MJD TRAJCRA TRAJCDEC PARANGLE STRUCTAZ DETTEMP AMBTEMP``.
* ``{month}cal``: calibration inventory: night, type, IFU slot, files, exposures.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from hetred.errors import HetredError, RawReadError
from hetred.io.atomic import write_text_atomic
from hetred.io.raw import open_tar, read_member_header
from hetred.jobs.units import UnitOutcome, run_unit
from hetred.layout import Layout, format_relative, parse

KINDS = ("cmp", "drk", "flt", "sci", "twi", "zro")
CAL_KINDS = ("zro", "drk", "flt", "cmp", "twi")
SCI_KEYS = ("OBJECT", "EXPTIME", "DARKTIME", "MJD", "TRAJCRA", "TRAJCDEC", "PARANGLE",
            "STRUCTAZ", "DETTEMP", "AMBTEMP")


@dataclass(frozen=True)
class TarEntry:
    """One raw amp file of the archive."""

    night: str
    obs: int
    exp: int
    stamp: str
    ifuslot: int
    amp: str
    kind: str

    @property
    def line(self) -> str:
        """The tarlist line."""
        return format_relative("tarlist_line", **self.__dict__)

    @property
    def member(self) -> str:
        """The member name inside the observation's tar."""
        return format_relative("raw_member", **self.__dict__)

    @property
    def repeat_key(self) -> tuple[str, int, str, str]:
        return (self.stamp, self.ifuslot, self.amp, self.kind)


def parse_line(line: str) -> TarEntry | None:
    """A tarlist line -> :class:`TarEntry`, or None when it is not a VIRUS amp file."""
    f = parse("tarlist_line", line.strip())
    return None if f is None else TarEntry(**f)


@dataclass
class Inventory:
    """A month's raw files, parsed and with repeats separated."""

    month: str
    as_read: list[TarEntry]
    kept: list[TarEntry]
    repeats: list[TarEntry]
    unparsed: list[str] = field(default_factory=list)

    def counts(self, entries: Iterable[TarEntry]) -> dict[str, int]:
        c = Counter(e.kind for e in entries)
        return {k: c.get(k, 0) for k in sorted(set(KINDS) | set(c))}

    @property
    def nights(self) -> list[str]:
        return sorted({e.night for e in self.kept})

    @property
    def sci_shots(self) -> list[tuple[str, int]]:
        return sorted({(e.night, e.obs) for e in self.kept if e.kind == "sci"})

    @property
    def sci_exposures(self) -> list[tuple[str, int, int]]:
        return sorted({(e.night, e.obs, e.exp) for e in self.kept if e.kind == "sci"})

    def ifuslots(self, kind: str | None = None) -> list[int]:
        return sorted({e.ifuslot for e in self.kept if kind is None or e.kind == kind})


def build_inventory(month: str, lines: Iterable[str]) -> Inventory:
    """Parse lines, keep the first of each (stamp, ifuslot, amp, type), report the rest."""
    as_read, unparsed = [], []
    for line in lines:
        if not line.strip():
            continue
        e = parse_line(line)
        if e is None:
            unparsed.append(line.strip())
        else:
            as_read.append(e)
    seen: set[tuple[str, int, str, str]] = set()
    kept, repeats = [], []
    for e in as_read:
        if e.repeat_key in seen:
            repeats.append(e)
        else:
            seen.add(e.repeat_key)
            kept.append(e)
    return Inventory(month, as_read, kept, repeats, unparsed)


@dataclass
class BrokenTar:
    """A raw tar read only in part: its members listed, those known lost, and why."""

    tar: str
    listed: int
    lost: list[str]          #: tarlist lines of the members whose data the tar cuts short
    damage: str              #: one line (RawTar.damage, or why it cannot be opened at all)

    @property
    def line(self) -> str:
        return f"{self.tar}: {self.listed} members listed; {self.damage}"


@dataclass
class MonthScan:
    """Tarlist lines of a month's tars and the tars that could be read only in part."""

    lines: list[str]
    broken: list[BrokenTar] = field(default_factory=list)


def scan_month(layout: Layout, month: str) -> MonthScan:
    """Tarlist lines of every tar of the month (nights YYYYMM01-31), in night, obs, tar order.

    A tar that is truncated or damaged gives its intact members and a :class:`BrokenTar`; one
    that cannot be opened at all gives only the latter."""
    if not layout.raw.is_dir():
        raise HetredError(f"raw archive root {layout.raw} does not exist (set --raw or HETRED_RAW)")
    nights = layout.nights_of_month(month)
    tars = [t for n in nights for t in layout.glob("raw_tar", night=n)]
    if not tars:
        raise HetredError(f"no raw data for month {month} under {layout.raw} "
                          f"(looked for {layout.raw}/{month}??/virus/virus*.tar)")
    scan = MonthScan([])
    for tar in tars:
        night = tar.parent.parent.name
        try:
            with open_tar(tar) as tf:
                names, lost, damage = tf.names, list(tf.lost), tf.damage
        except RawReadError as err:
            scan.broken.append(BrokenTar(str(tar), 0, [], err.reason))
            continue
        scan.lines += [f"{night}/virus/{name}" for name in names]
        if damage:
            scan.broken.append(BrokenTar(str(tar), len(names), [f"{night}/virus/{n}" for n in lost], damage))
    return scan


def format_broken(month: str, broken: list[BrokenTar]) -> str:
    """The ``{month}broken`` text: one line per tar, then its lost members (``lost LINE``)."""
    out = [(f"# {month}: raw tars read only in part (their intact members are in the tarlist); "
            f"{len(broken)} tar(s)")]
    for b in broken:
        out.append(b.line)
        out += [f"lost {m}" for m in b.lost]
    return "\n".join(out) + "\n"


def format_cal(inv: Inventory) -> str:
    """The calibration inventory text: files and exposures per night, type and IFU slot."""
    files: Counter[tuple[str, str, int]] = Counter()
    exps: dict[tuple[str, str, int], set[tuple[int, int]]] = defaultdict(set)
    for e in inv.kept:
        if e.kind in CAL_KINDS:
            key = (e.night, e.kind, e.ifuslot)
            files[key] += 1
            exps[key].add((e.obs, e.exp))
    out = ["# night type ifuslot nfiles nexposures"]
    for key in sorted(files):
        out.append(f"{key[0]} {key[1]} {key[2]:03d} {files[key]} {len(exps[key])}")
    return "\n".join(out) + "\n"


def sci_members(inv: Inventory) -> list[TarEntry]:
    """One amp file per science exposure: the LL file of the lowest IFU slot (else any amp)."""
    best: dict[tuple[str, int, int], TarEntry] = {}
    for e in inv.kept:
        if e.kind != "sci":
            continue
        key = (e.night, e.obs, e.exp)
        cur = best.get(key)
        rank = (e.amp != "LL", e.ifuslot)
        if cur is None or rank < (cur.amp != "LL", cur.ifuslot):
            best[key] = e
    return [best[k] for k in sorted(best)]


def _value(v: object) -> str:
    s = str(v).strip()
    return s.replace(" ", "_") if s else "-"


def format_sci(layout: Layout, inv: Inventory) -> tuple[str, list[str]]:
    """The science list text and the problems met reading headers (one line each)."""
    out = ["# member " + " ".join(SCI_KEYS)]
    problems: list[str] = []
    missing = 0
    for e in sci_members(inv):
        tar = layout.path("raw_tar", night=e.night, obs=e.obs)
        values = ["-"] * len(SCI_KEYS)
        if tar.exists():
            try:
                with open_tar(tar) as tf:
                    hdr = read_member_header(tf, tar, e.member)
                values = [_value(hdr.get(k, "-")) for k in SCI_KEYS]
            except RawReadError as err:
                problems.append(str(err))
        else:
            missing += 1
        out.append(" ".join([e.line, *values]))
    if missing:
        problems.append(f"{missing} science exposures have no tar under {layout.raw}: "
                        "their header values are written as '-'")
    return "\n".join(out) + "\n", problems


def run_tarlist(layout: Layout, month: str, from_list: Path | None = None) -> UnitOutcome:
    """Unit = month: write the tarlist, repeats report, science list and calibration inventory."""
    if from_list is not None:
        try:
            lines = Path(from_list).read_text().splitlines()
        except OSError as err:
            raise HetredError(f"cannot read tarlist {from_list}: {err.strerror or err}") from None
        inputs = [str(from_list)]
        broken: list[BrokenTar] = []
    else:
        scan = scan_month(layout, month)
        lines, broken = scan.lines, scan.broken
        inputs = [str(layout.raw)]
    inv = build_inventory(month, lines)
    if not inv.as_read:
        why = "".join(f"; {b.line}" for b in broken[:3])
        raise HetredError(f"no VIRUS amp files for month {month} in {inputs[0]}{why}")
    paths = {k: layout.path(k, month=month)
             for k in ("tarlist", "tarlist_repeats", "tarlist_broken", "scilist", "callist")}
    write_text_atomic(paths["tarlist"], "".join(e.line + "\n" for e in inv.kept))
    rep = ["# repeated files dropped from the tarlist (same stamp, ifuslot, amp and type)"]
    rep += [e.line for e in inv.repeats]
    rep += [f"# unparsed: {u}" for u in inv.unparsed]
    write_text_atomic(paths["tarlist_repeats"], "\n".join(rep) + "\n")
    write_text_atomic(paths["tarlist_broken"], format_broken(month, broken))
    sci_text, problems = format_sci(layout, inv)
    write_text_atomic(paths["scilist"], sci_text)
    write_text_atomic(paths["callist"], format_cal(inv))
    counts = {
        "as_read": inv.counts(inv.as_read), "written": inv.counts(inv.kept),
        "repeats": [e.line for e in inv.repeats], "unparsed": len(inv.unparsed),
        "nights": len(inv.nights), "sci_shots": len(inv.sci_shots),
        "sci_exposures": len(inv.sci_exposures), "ifuslots": len(inv.ifuslots()),
        "ifuslots_zro": len(inv.ifuslots("zro")), "header_problems": problems[:20],
        "broken_tars": [{"tar": b.tar, "listed": b.listed, "lost": b.lost, "damage": b.damage}
                        for b in broken],
    }
    return UnitOutcome(outputs=[str(p) for p in paths.values()], inputs=inputs, counts=counts)


# ------------------------------------------------------------------------------------------------
# the month's entries, as the later stages read them

_ENTRIES: dict[tuple[str, int, int], list[TarEntry]] = {}   #: by tarlist (path, mtime, size)


def parse_lines(lines: Iterable[str]) -> list[TarEntry]:
    """The VIRUS amp files of tarlist lines, in line order (other lines are skipped)."""
    return [e for e in map(parse_line, lines) if e is not None]


def ensure_tarlist(layout: Layout, month: str) -> Path:
    """The month's tarlist, made with :func:`run_tarlist` (as a unit) when it is missing."""
    path = layout.path("tarlist", month=month)
    if not path.exists():
        result = run_unit(layout, "tarlist", month, lambda: run_tarlist(layout, month))
        if result.status == "failed":
            raise HetredError(f"no tarlist for {month} and it could not be made: {result.message}")
    return path


def month_entries(layout: Layout, month: str) -> list[TarEntry]:
    """Every entry of the month's tarlist (made first when missing); parsed once per process
    and file version."""
    path = ensure_tarlist(layout, month)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _ENTRIES:
        _ENTRIES.clear()
        _ENTRIES[key] = parse_lines(path.read_text().splitlines())
    return _ENTRIES[key]


def planned_entries(layout: Layout, month: str) -> tuple[list[TarEntry], bool]:
    """For a dry run: the entries of the existing tarlist, else of a scan of the raw tars (nothing
    written); the flag says whether the tarlist would have to be written."""
    path = layout.path("tarlist", month=month)
    if path.exists():
        return parse_lines(path.read_text().splitlines()), False
    return parse_lines(scan_month(layout, month).lines), True
