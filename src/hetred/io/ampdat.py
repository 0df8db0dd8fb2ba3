"""The reader of ``amp.dat``, vred3's per-amp table of the full-field sky (karlspipe hdr2.1
progs/vred3.f ``amp.out``, FORMAT 1201 ``(a14,1x,f6.3,1x,i3,4(1x,f7.2),1x,i4)``; written by
:mod:`hetred.fullsky.formats`, read by hetred fullsky's addsky step and by hetred report).

The header line ``Spc_slt_iid_am Factor N_c Avg Scale W0 W1 Nlo``, then one row per amp: name,
Factor, N_c, Avg, Scale, W0, W1 x 1000, Nlow. A field that did not fit its width is written as
``*`` (Fortran) and reads as NaN (an integer as -1).
"""
from __future__ import annotations

from dataclasses import dataclass

#: vred3's header line, written (a45)
AMP_HEADER = "Spc_slt_iid_am Factor N_c Avg Scale W0 W1 Nlo"
#: the fields of a FORMAT 1201 row: (name, start, end) of each, 0-based, end exclusive
AMP_FIELDS = (("name", 0, 14), ("factor", 15, 21), ("ncont", 22, 25), ("avg", 26, 33), ("scale", 34, 41),
              ("w0", 42, 49), ("w1", 50, 57), ("nlow", 58, 62))


@dataclass(frozen=True)
class AmpRow:
    """One amp.dat row read back (w1 in vred3's units, x 1000 per Å)."""

    name: str
    factor: float
    ncont: int
    avg: float
    scale: float
    w0: float
    w1: float
    nlow: int

    @property
    def ifu(self) -> str:
        """``SSS_III_UUU``: what imaddsky matches (its ``a1(1:11)``)."""
        return self.name[:11]

    @property
    def amp(self) -> str:
        return self.name[12:14]


def _num(text: str) -> float:
    t = text.strip()
    return float("nan") if (not t or set(t) == {"*"}) else float(t)


def parse_amp_row(line: str) -> AmpRow:
    """A FORMAT 1201 row by its columns (a field of ``*`` reads as NaN, an integer as -1)."""
    f = {n: line[a:b] for n, a, b in AMP_FIELDS}

    def _int(t: str) -> int:
        t = t.strip()
        return -1 if (not t or set(t) == {"*"}) else int(t)

    return AmpRow(f["name"].strip(), _num(f["factor"]), _int(f["ncont"]), _num(f["avg"]), _num(f["scale"]),
                  _num(f["w0"]), _num(f["w1"]), _int(f["nlow"]))


def parse_amp_dat(text: str) -> list[AmpRow]:
    """Every row of an amp.dat (the header line skipped, as imaddsky's ``read(1,*)``)."""
    lines = text.splitlines()
    return [parse_amp_row(line) for line in lines[1:] if line.strip()]
