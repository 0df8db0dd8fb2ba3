"""Every fiber's RA/Dec: ``dith_expNN.all`` and ``dithall.use`` (vdrp ``fibcoords``).

HETDEX/vdrp src/vdrp/astrometry.py ``mk_fibermap_files``, ``get_fiber_coords``, ``mk_dithall``,
``comp_multifits`` (shared/reference/astrom_throughput.md §1.12): for exposure k with nominal dither
(dx_k, dy_k) and the SHOT solution (ra0, dec0, pa0) of ``radec2_final.dat``, a fiber at IFU
(XS, YS) of slot s is at ``xfp = XS + Y_FP + dx_k``, ``yfp = YS + X_FP + dy_k`` and
(ra, dec) = TangentPlane(ra0, dec0, 360 - (pa0 + 90)).xy2raDec(xfp, yfp). The fiber positions
(XS, YS) per amp in multi-file order are the multi files' ``ifupos`` (Karl's fibermaps).

Files: astropy ``ascii.fixed_width`` with ``delimiter=""`` (each cell a space, the value right
justified to the column width, a space), a header line ``ra dec ifuslot XS YS xfplane yfplane
multifits timestamp exposure`` and the formats ``%10.7f %10.7f %6s %8.3f %8.3f %8.3f %8.3f %28s
%17s %5s``; ``multifits`` = ``multi_SSS_III_UUU_AA_FFF.ixy`` (FFF the 1-based fiber of the amp),
``timestamp`` the 17 characters of the CoFeS name (``20180611T054545.2``), ``exposure`` ``expNN``.
Karl's scripts drop the header with ``grep -v dec``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hetred.virus.coords import rotation_angle, tangent_to_radec
from hetred.virus.fplane import FplaneEntry
from hetred.virus.ids import format_ifuid

COLUMNS = ("ra", "dec", "ifuslot", "XS", "YS", "xfplane", "yfplane", "multifits", "timestamp", "exposure")
AMP_ORDER = ("LL", "LU", "RL", "RU")


@dataclass
class FiberTable:
    """The fibers of one exposure: (n,) columns of ``dith_expNN.all``."""

    ra: np.ndarray
    dec: np.ndarray
    ifuslot: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    xfp: np.ndarray
    yfp: np.ndarray
    multifits: list[str]
    timestamp: str
    exposure: str

    def __len__(self) -> int:
        return len(self.ra)


@lru_cache(maxsize=1024)
def _names(specid: int, slot: int, ifuid: str, amp: str, n: int) -> tuple[str, ...]:
    head = f"multi_{specid:03d}_{slot:03d}_{format_ifuid(ifuid)}_{amp}_"
    return tuple(f"{head}{i:03d}.ixy" for i in range(1, n + 1))


def multifits_names(specid: int, slot: int, ifuid: str, amp: str, n: int) -> list[str]:
    """``multi_SSS_III_UUU_AA_FFF.ixy`` of fibers 1..n of an amp (vdrp comp_multifits)."""
    return list(_names(int(specid), int(slot), str(ifuid), amp, int(n)))


def fiber_coords(fibermaps: Mapping[int, Mapping[str, np.ndarray]], fplane: Mapping[int, FplaneEntry],
                 ra0: float, dec0: float, pa0: float, dither: tuple[float, float], timestamp: str,
                 exposure: str) -> FiberTable:
    """Fiber RA/Dec of one exposure (module docstring).

    fibermaps: {ifuslot: {amp: (112, 2) IFU x, y arcsec in multi-file order}}; slots not in
    ``fplane`` are left out (the caller reports them). Rows: slots ascending, amps LL LU RL RU,
    fibers 1..112.
    """
    dx, dy = dither
    cols: dict[str, list] = {k: [] for k in ("slot", "xs", "ys", "mf")}
    xfp_l, yfp_l = [], []
    for slot in sorted(fibermaps):
        if slot not in fplane:
            continue
        e = fplane[slot]
        for amp in sorted(fibermaps[slot], key=lambda a: AMP_ORDER.index(a) if a in AMP_ORDER else 9):
            xy = np.asarray(fibermaps[slot][amp], dtype=float)
            n = len(xy)
            cols["slot"] += [slot] * n
            cols["xs"].append(xy[:, 0])
            cols["ys"].append(xy[:, 1])
            xfp_l.append(xy[:, 0] + e.y_fp + dx)
            yfp_l.append(xy[:, 1] + e.x_fp + dy)
            cols["mf"] += multifits_names(e.specid, slot, e.ifuid, amp, n)
    if not xfp_l:
        z = np.zeros(0)
        return FiberTable(z, z, np.zeros(0, int), z, z, z, z, [], timestamp, exposure)
    xfp, yfp = np.concatenate(xfp_l), np.concatenate(yfp_l)
    ra, dec = tangent_to_radec(xfp, yfp, ra0, dec0, rotation_angle(pa0))
    return FiberTable(ra, dec, np.array(cols["slot"]), np.concatenate(cols["xs"]), np.concatenate(cols["ys"]),
                      xfp, yfp, cols["mf"], timestamp, exposure)


#: (column, attribute, format) of the dith files: astropy's %10.7f, %6s, %8.3f, %28s, %17s, %5s
_SPEC = (("ra", "ra", ".7f", 10), ("dec", "dec", ".7f", 10), ("ifuslot", "slotname", "s", 6),
         ("XS", "xs", ".3f", 8), ("YS", "ys", ".3f", 8), ("xfplane", "xfp", ".3f", 8),
         ("yfplane", "yfp", ".3f", 8), ("multifits", "multifits", "s", 28),
         ("timestamp", "timestamps", "s", 17), ("exposure", "exposures", "s", 5))


def format_fixed_width(names: Sequence[str], columns: Sequence[Sequence[str]]) -> str:
    """astropy ``ascii.fixed_width`` with ``delimiter=""``: a header line, then the rows; every
    cell is a space, the value right-justified to the column width, a space."""
    widths = [max([len(n)] + [len(v) for v in col]) for n, col in zip(names, columns)]
    lines = ["".join(f" {n:>{w}s} " for n, w in zip(names, widths))]
    nrow = len(columns[0]) if columns else 0
    for i in range(nrow):
        lines.append("".join(f" {col[i]:>{w}s} " for col, w in zip(columns, widths)))
    return "\n".join(lines) + "\n"


def format_dith(tables: Sequence[FiberTable]) -> str:
    """``dith_expNN.all`` (one table) or ``dithall.use`` (all exposures, stacked), formatted as
    :func:`format_fixed_width` does, one format string per row (a shot has ~10^5 fibers)."""
    cols: dict[str, list] = {a: [] for _, a, _, _ in _SPEC}
    for t in tables:
        cols["ra"] += t.ra.tolist()
        cols["dec"] += t.dec.tolist()
        cols["slotname"] += [f"ifu{int(s):03d}" for s in t.ifuslot]
        cols["xs"] += t.xs.tolist()
        cols["ys"] += t.ys.tolist()
        cols["xfp"] += t.xfp.tolist()
        cols["yfp"] += t.yfp.tolist()
        cols["multifits"] += list(t.multifits)
        cols["timestamps"] += [t.timestamp] * len(t)
        cols["exposures"] += [t.exposure] * len(t)
    widths, cells = [], []
    for name, attr, fmt, minw in _SPEC:
        vals = cols[attr]
        if fmt == "s":
            w = max([len(name), minw] + [len(v) for v in set(vals)])
        else:   # the width of a fixed-point number grows with |v|: its extremes decide
            ext = [min(vals), max(vals)] if vals else []
            w = max([len(name), minw] + [len(f"{v:{minw}{fmt}}") for v in ext])
        widths.append(w)
        cells.append(f" {{:>{w}{fmt}}} ")
    head = "".join(f" {name:>{w}s} " for (name, _, _, _), w in zip(_SPEC, widths))
    row = "".join(cells)
    body = [row.format(*r) for r in zip(*(cols[a] for _, a, _, _ in _SPEC))]
    return "\n".join([head] + body) + "\n"


def read_dith(path) -> dict[str, np.ndarray]:
    """The columns of a ``dith_expNN.all`` / ``dithall.use`` (header line first)."""
    from pathlib import Path

    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not lines:
        return {c: np.zeros(0) for c in COLUMNS}
    head, rows = lines[0], lines[1:]
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(head):
        vals = [r[k] for r in rows]
        out[name] = np.array(vals, dtype=float) if name in ("ra", "dec", "XS", "YS", "xfplane", "yfplane") \
            else np.array(vals)
    return out
