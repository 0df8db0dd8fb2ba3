"""The text files of vdrp's astrometry, read and written in their exact formats.

Formats from the real shot 20180611 v017 (HETDEX/vdrp ``utest/testdata/test_fiducial``) and the
writers that made them (shared/reference/astrom_throughput.md §1.2, §1.5, §1.6, §1.13):

* DAOPHOT ``.als`` (ALLSTAR): two header lines (``NL NX NY LOWBAD HIGHBAD THRESH AP1 PH/ADU
  RNOISE FRAD``), a blank line, then rows ``ID X Y MAG MERR SKY NITER CHI SHARP`` in Fortran
  ``(I6, 8F9.n)``; X, Y are 1-based pixel coordinates (the centre of the first pixel is 1.0). An IFU
  without stars has an empty (0-byte) file.
* shuffle's ``shout.ifustars``: 10 ``#`` lines (date, ``#col  1: SHOTID`` ... ``#col  9: z``), then
  ``000001 ID RA DEC u g r i z``.
* ``radec.orig`` (RA in hours), ``radec*_expNN.dat``, ``radec2_final.dat``: ``%.6f %.6f %.6f``.
* ``getoff.out``: Fortran ``6(1x,f10.6),1x,i4``; ``getoff2.out``: ``4(1x,f8.5),1x,i5``.
* ``*tot.als``, ``all.mch``, ``all.raw`` (DAOMASTER), ``norm.dat`` (``%10.8f`` x 3).

Every writer returns text; :func:`hetred.io.atomic.write_text_atomic` puts it on disk.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hetred.errors import HetredError

#: one detection of DAOPHOT ALLSTAR (``.als``); x, y 1-based pixels, mag = 25 - 2.5 log10(flux)
ALS_DTYPE = np.dtype([("id", "i8"), ("x", "f8"), ("y", "f8"), ("mag", "f8"), ("merr", "f8"),
                      ("sky", "f8"), ("niter", "f8"), ("chi", "f8"), ("sharp", "f8")])
#: one star of shuffle's ``shout.ifustars``
CAT_DTYPE = np.dtype([("shotid", "U12"), ("id", "U24"), ("ra", "f8"), ("dec", "f8"), ("u", "f8"),
                      ("g", "f8"), ("r", "f8"), ("i", "f8"), ("z", "f8")])
ALS_HEADER = " NL   NX   NY  LOWBAD HIGHBAD  THRESH     AP1  PH/ADU  RNOISE    FRAD"
#: vdrp mktot's fixed header line of ``*tot.als``
TOT_HEADER2 = "  1   49   49  -113.6 84000.0    7.93    1.00    1.27    1.06    3.00"
MISSING_MAG, MISSING_ERR = 99.9999, 9.9999        #: DAOMASTER's "not measured in this frame"


# ------------------------------------------------------------------------------------------------
# DAOPHOT .als

def read_als(path: str | Path) -> np.ndarray:
    """An ``.als`` file as a structured array (:data:`ALS_DTYPE`); empty for a 0-byte file."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as err:
        raise HetredError(f"{p}: cannot read ({err.strerror})") from None
    rows = []
    for n, line in enumerate(lines[3:], 4):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 9:
            raise HetredError(f"{p} line {n}: expected 9 columns (ID X Y MAG MERR SKY NITER CHI SHARP)")
        try:
            rows.append((int(parts[0]), *(float(v) for v in parts[1:9])))
        except ValueError:
            raise HetredError(f"{p} line {n}: not a number in {line.strip()!r}") from None
    return np.array(rows, dtype=ALS_DTYPE)


def format_als(table: np.ndarray, nx: int = 51, ny: int = 51, lowbad: float = -10.0,
               thresh: float = 0.0, gain: float = 1.27, rnoise: float = 1.06) -> str:
    """``.als`` text of ``table`` (:data:`ALS_DTYPE`): DAOPHOT's header and ``(I6, 8F9)`` rows.

    An empty table gives an empty text (the real files of IFUs without stars are 0 bytes).
    """
    if len(table) == 0:
        return ""
    head = (f"{ALS_HEADER}\n{1:3d}{nx:5d}{ny:5d}{lowbad:8.1f}{84000.0:8.1f}{thresh:8.2f}{0.5:8.2f}"
            f"{gain:8.2f}{rnoise:8.2f}{3.0:8.2f}\n\n")
    rows = [f"{int(r['id']):6d}{r['x']:9.3f}{r['y']:9.3f}{r['mag']:9.3f}{r['merr']:9.4f}{r['sky']:9.3f}"
            f"{r['niter']:8.0f}.{r['chi']:9.2f}{r['sharp']:9.3f}" for r in table]
    return head + "\n".join(rows) + "\n"


# ------------------------------------------------------------------------------------------------
# shuffle's shout.ifustars

def read_ifustars(path: str | Path) -> np.ndarray:
    """The stars of a ``shout.ifustars`` file (:data:`CAT_DTYPE`), in file order.

    Lines starting with ``#`` are skipped; every other non-blank line needs the 9 columns
    ``SHOTID ID RA DEC u g r i z``. A missing file, a bad line or no star at all raise
    :class:`HetredError` naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise HetredError(f"star catalogue {p} does not exist")
    rows = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 9:
            raise HetredError(f"star catalogue {p} line {n}: expected 9 columns "
                              "(SHOTID ID RA DEC u g r i z), got {len(parts)}")
        try:
            rows.append((parts[0], parts[1], *(float(v) for v in parts[2:])))
        except ValueError:
            raise HetredError(f"star catalogue {p} line {n}: not a number in {line.strip()!r}") from None
    if not rows:
        raise HetredError(f"star catalogue {p} has no stars")
    return np.array(rows, dtype=CAT_DTYPE)


def format_ifustars(ra: Sequence[float], dec: Sequence[float], mags: np.ndarray,
                    ids: Sequence[str] | None = None, shotid: str = "000001",
                    stamp: datetime | None = None) -> str:
    """``shout.ifustars`` text: shuffle's 10 ``#`` lines, then ``SHOTID ID RA DEC u g r i z``.

    ra, dec: (n,) degrees; mags: (n, 5) u g r i z (AB); ids: object IDs (default 1..n as
    19-digit strings like SDSS's). Columns as the real file: ``%s %s %11.6f %11.6f`` and
    ``%7.2f`` magnitudes.
    """
    mags = np.asarray(mags, dtype=float).reshape(len(ra), 5)
    ids = [f"{k + 1:019d}" for k in range(len(ra))] if ids is None else [str(i) for i in ids]
    when = (stamp or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S.%f")
    head = [f"# {when}"] + [f"#col {k:2d}: {name} " for k, name in
                            enumerate(("SHOTID", "ID", "RA", "DEC", "u", "g", "r", "i", "z"), 1)]
    rows = [f"{shotid} {i} {a:11.6f} {d:11.6f} " + " ".join(f"{m:7.2f}" for m in mm)
            for i, a, d, mm in zip(ids, ra, dec, mags)]
    return "\n".join(head + rows) + "\n"


def format_shout_ifu(cat: np.ndarray) -> str:
    """``shout.ifu`` (getoff2's catalogue input): ``ra dec u g ID`` per star."""
    return "".join(f"{r['ra']:.6f} {r['dec']:.6f} {r['u']:.2f} {r['g']:.2f} {r['id']}\n" for r in cat)


# ------------------------------------------------------------------------------------------------
# pointing files

def format_radec(ra: float, dec: float, pa: float) -> str:
    """``radec*.dat`` / ``radec.orig`` text: ``%.6f %.6f %.6f``."""
    return f"{ra:.6f} {dec:.6f} {pa:.6f}\n"


def read_radec(path: str | Path) -> tuple[float, float, float]:
    """(ra, dec, pa) of a ``radec*`` file (radec.orig: RA in hours)."""
    p = Path(path)
    try:
        parts = p.read_text().split()
        return float(parts[0]), float(parts[1]), float(parts[2])
    except OSError:
        raise HetredError(f"pointing file {p} does not exist") from None
    except (IndexError, ValueError):
        raise HetredError(f"pointing file {p}: expected three numbers 'ra dec pa'") from None


# ------------------------------------------------------------------------------------------------
# getoff2

def format_getoff(dra: np.ndarray, ddec: np.ndarray, ra_det: np.ndarray, dec_det: np.ndarray,
                  ra_cat: np.ndarray, dec_cat: np.ndarray, ifuslot: np.ndarray) -> str:
    """``getoff.out``: one pair per line, Fortran ``6(1x,f10.6),1x,i4`` (offsets in arcsec)."""
    return "".join(f" {a:10.6f} {b:10.6f} {c:10.6f} {d:10.6f} {e:10.6f} {f:10.6f} {int(s):4d}\n"
                   for a, b, c, d, e, f, s in zip(dra, ddec, ra_det, dec_det, ra_cat, dec_cat, ifuslot))


def format_getoff2(inc_ra: float, inc_dec: float, s_ra: float, s_dec: float, n: int) -> str:
    """``getoff2.out``: ``4(1x,f8.5),1x,i5`` -- increments (deg), biweight scales (arcsec), pairs."""
    return f" {inc_ra:8.5f} {inc_dec:8.5f} {s_ra:8.5f} {s_dec:8.5f} {int(n):5d}\n"


def read_getoff2(path: str | Path) -> tuple[float, float, float, float, int]:
    """(inc_ra, inc_dec, s_ra, s_dec, n) of a ``getoff2*.out`` file."""
    p = Path(path)
    parts = p.read_text().split()
    if len(parts) < 5:
        raise HetredError(f"{p}: expected 5 numbers (increments, scales, pairs)")
    return float(parts[0]), float(parts[1]), float(parts[2]), float(parts[3]), int(parts[4])


def count_lines(path: str | Path) -> int:
    """Lines of a file (vdrp counts the pairs of a trial this way)."""
    with open(path) as fh:
        return sum(1 for _ in fh)


# ------------------------------------------------------------------------------------------------
# registration and normalisation

def format_tot_als(rows: Iterable[tuple[int, float, float, float]]) -> str:
    """``<stamp>tot.als`` of vdrp mktot: fixed header, then ``{ID:d} {X:8.3f} {Y:8.3f} {MAG:8.3f}``."""
    body = "".join(f"{int(i):d} {x:8.3f} {y:8.3f} {m:8.3f}\n" for i, x, y, m in rows)
    return f"{ALS_HEADER}\n{TOT_HEADER2}\n\n" + body


def format_mch(names: Sequence[str], dx: Sequence[float], dy: Sequence[float],
               dmag: Sequence[float] | None = None, sigma: Sequence[float] | None = None) -> str:
    """``all.mch``: per exposure ``'name' dx dy 1 0 0 1 dmag sigma`` (vdrp mktot / DAOMASTER),
    ``(1x, 'A30', 2F10.3, 4F10.5, F10.3, F10.4)``; dx, dy are added to the frame's x, y."""
    n = len(names)
    dmag = [0.0] * n if dmag is None else dmag
    sigma = [0.0] * n if sigma is None else sigma
    return "".join(f" '{nm:30s}'{a:10.3f}{b:10.3f}   1.00000   0.00000   0.00000   1.00000{m:10.3f}{s:10.4f}\n"
                   for nm, a, b, m, s in zip(names, dx, dy, dmag, sigma))


def read_mch(path: str | Path) -> list[tuple[str, float, float]]:
    """(name, dx, dy) per line of an ``all.mch``."""
    out = []
    for line in Path(path).read_text().splitlines():
        if "'" not in line:
            continue
        name = line.split("'")[1].strip()
        parts = line.split("'")[2].split()
        out.append((name, float(parts[0]), float(parts[1])))
    return out


def format_all_raw(ids: Sequence[int], x: Sequence[float], y: Sequence[float], mags: np.ndarray,
                   errs: np.ndarray) -> str:
    """``all.raw`` (DAOMASTER): 3 header lines, then ``ID x y m1 e1 .. mN eN chi sharp``
    (``99.9999 9.9999`` where a star was not measured)."""
    mags, errs = np.atleast_2d(mags), np.atleast_2d(errs)
    rows = []
    for k in range(len(ids)):
        cols = "".join(f"{m:9.4f}{e:9.4f}" for m, e in zip(mags[k], errs[k]))
        rows.append(f"{int(ids[k]):6d}{x[k]:9.3f}{y[k]:9.3f}{cols}{0.0:9.4f}{0.0:9.4f}\n")
    return f"{ALS_HEADER}\n{TOT_HEADER2}\n\n" + "".join(rows)


def read_all_raw(path: str | Path) -> np.ndarray:
    """The rows of an ``all.raw`` as a float array (vdrp ``loadtxt(skiprows=3)``): columns
    ID x y m1 e1 m2 e2 m3 e3 chi sharp."""
    p = Path(path)
    rows = [line.split() for line in p.read_text().splitlines()[3:] if line.strip()]
    if not rows:
        return np.zeros((0, 11))
    return np.array(rows, dtype=float)


def format_norm(norm: Sequence[float]) -> str:
    """``norm.dat``: relative flux of exposures 1..3, ``%10.8f`` each, one line."""
    return " ".join(f"{v:10.8f}" for v in norm) + "\n"


def read_norm(path: str | Path) -> list[float]:
    """The values of a ``norm.dat``."""
    return [float(v) for v in Path(path).read_text().split()]
