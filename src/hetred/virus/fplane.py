"""The focal-plane file: which IFU sits in which slot, where, and on which spectrograph.

Format (pyhetdex/vdrp): whitespace separated, '#' lines ignored, columns
``IFUSLOT X_FP Y_FP SPECID SPECSLOT IFUID IFUROT PLATESC``; X_FP/Y_FP in arcsec, IFUROT in deg.
hetred may add a ninth column CONTID (controller number, e.g. 0059); readers accept 8 or 9.
Slot 000 (SPECID 900) is the focal-plane centre placeholder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HEADER = "# IFUSLOT X_FP   Y_FP   SPECID SPECSLOT IFUID IFUROT PLATESC"


@dataclass(frozen=True)
class FplaneEntry:
    """One IFU slot of the focal plane."""

    ifuslot: int
    x_fp: float       #: arcsec
    y_fp: float       #: arcsec
    specid: int
    specslot: int
    ifuid: str        #: 3-character string, e.g. '043'
    ifurot: float = 0.0
    platesc: float = 1.0
    contid: str | None = None  #: controller number, e.g. '0059' (hetred extension)

    @property
    def is_ifu(self) -> bool:
        """A real VIRUS IFU (not the centre placeholder nor an LRS2/other device)."""
        return self.ifuslot != 0 and self.specid < 900


def parse_fplane(text: str) -> dict[int, FplaneEntry]:
    """Parse fplane text into {ifuslot: entry}."""
    out: dict[int, FplaneEntry] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) not in (8, 9):
            raise ValueError(f"fplane line {n}: expected 8 or 9 columns, got {len(parts)}")
        e = FplaneEntry(
            ifuslot=int(parts[0]), x_fp=float(parts[1]), y_fp=float(parts[2]),
            specid=int(parts[3]), specslot=int(parts[4]), ifuid=parts[5],
            ifurot=float(parts[6]), platesc=float(parts[7]),
            contid=parts[8] if len(parts) == 9 else None,
        )
        out[e.ifuslot] = e
    return out


def read_fplane(path: str | Path) -> dict[int, FplaneEntry]:
    """Read an fplane file into {ifuslot: entry}."""
    return parse_fplane(Path(path).read_text())


def format_fplane(entries: dict[int, FplaneEntry] | list[FplaneEntry]) -> str:
    """fplane text, one line per slot in slot order (CONTID column when every entry has one)."""
    rows = sorted(entries.values() if isinstance(entries, dict) else entries, key=lambda e: e.ifuslot)
    with_contid = bool(rows) and all(e.contid is not None for e in rows)
    lines = [HEADER + (" CONTID" if with_contid else "")]
    for e in rows:
        line = (f"{e.ifuslot:03d} {e.x_fp:9.3f} {e.y_fp:9.3f} {e.specid:03d} {e.specslot:03d} "
                f"{e.ifuid} {e.ifurot:6.3f} {e.platesc:6.3f}")
        if with_contid:
            line += f" {e.contid}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_fplane(path: str | Path, entries: dict[int, FplaneEntry] | list[FplaneEntry]) -> None:
    """Write an fplane file atomically."""
    from hetred.io.atomic import write_text_atomic

    write_text_atomic(Path(path), format_fplane(entries))
