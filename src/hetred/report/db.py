"""The sqlite databases of detection reports, in the spirit of ELiXer's report image databases
(HETDEX/elixer make_report_db.py, image_db_create.sh; hetdex_api sqlite_utils.py).

ELiXer keeps one table ``report (detectid BIGINT PRIMARY KEY, image BLOB NOT NULL)`` per file,
one report type per file, the PNG bytes as they are (``fetch_elixer_report_image(conn,
detectid)`` reads them back). hetred's files keep that table unchanged, so hetdex_api's reader
works on them, and add:

* ``report_pdf (detectid BIGINT PRIMARY KEY, pdf BLOB NOT NULL)``: the PDF reports, when made;
* ``detections``: one row per report: detectid, shotid, datevobs, inputid, wave, flux, sn,
  linewidth, chi2, ra, dec (to choose what to look at without opening the detect file);
* ``meta (key TEXT PRIMARY KEY, value TEXT)``: hetred version, what the file holds.

A shot's file is ``reports_DATEvOBS.db`` beside its PNGs; ``--merge`` stacks a month's shot
files into ``reports_MONTH.db``. Files are written whole under a temporary name and renamed
(an interrupted write leaves the previous file).

Reading one back (docs/stages/report.md)::

    import io, sqlite3
    from PIL import Image
    con = sqlite3.connect("reports_20180110v007.db")
    png, = con.execute("SELECT image FROM report WHERE detectid = ?", (2100000000,)).fetchone()
    Image.open(io.BytesIO(png)).show()
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.io.atomic import atomic_path

SCHEMA = (
    "CREATE TABLE report (detectid BIGINT PRIMARY KEY, image BLOB NOT NULL)",
    "CREATE TABLE report_pdf (detectid BIGINT PRIMARY KEY, pdf BLOB NOT NULL)",
    ("CREATE TABLE detections (detectid BIGINT PRIMARY KEY, shotid BIGINT, datevobs TEXT, inputid TEXT, "
     "wave REAL, flux REAL, sn REAL, linewidth REAL, chi2 REAL, ra REAL, dec REAL)"),
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
)
DET_COLUMNS = ("detectid", "shotid", "datevobs", "inputid", "wave", "flux", "sn", "linewidth", "chi2", "ra", "dec")


@dataclass(frozen=True)
class Entry:
    """One report to store: its row of ``detections`` and its files."""

    row: tuple
    png: Path
    pdf: Path | None = None


def write_db(path: Path, entries: Iterable[Entry], meta: dict[str, str]) -> int:
    """Write a database of ``entries`` (the PNG/PDF bytes read from their files) atomically;
    returns the number of reports."""
    n = 0
    with atomic_path(path) as tmp:
        con = sqlite3.connect(str(tmp))
        try:
            for stmt in SCHEMA:
                con.execute(stmt)
            for e in entries:
                did = int(e.row[0])
                con.execute("INSERT INTO report (detectid, image) VALUES (?, ?)", (did, _read(e.png)))
                if e.pdf is not None and e.pdf.exists():
                    con.execute("INSERT INTO report_pdf (detectid, pdf) VALUES (?, ?)", (did, _read(e.pdf)))
                con.execute(f"INSERT INTO detections VALUES ({','.join('?' * len(DET_COLUMNS))})", e.row)
                n += 1
            con.executemany("INSERT INTO meta VALUES (?, ?)",
                            sorted({"hetred_version": __version__, "reports": str(n), **meta}.items()))
            con.commit()
        finally:
            con.close()
    return n


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise HetredError(f"report {path}: cannot read ({err.strerror})") from None


def merge_dbs(files: list[Path], path: Path, meta: dict[str, str]) -> int:
    """Stack shot databases (in the order given) into one; a detectid twice is an error naming
    both files. Returns the number of reports."""
    if not files:
        raise HetredError("no shot report databases to merge (run hetred report detections first)")
    seen: dict[int, Path] = {}
    n = 0
    with atomic_path(path) as tmp:
        con = sqlite3.connect(str(tmp))
        try:
            for stmt in SCHEMA:
                con.execute(stmt)
            for k, f in enumerate(files):
                con.execute(f"ATTACH DATABASE ? AS s{k}", (str(f),))
                try:
                    ids = [int(r[0]) for r in con.execute(f"SELECT detectid FROM s{k}.report")]
                except sqlite3.DatabaseError as err:
                    raise HetredError(f"report database {f}: cannot read ({err})") from None
                dup = next((i for i in ids if i in seen), None)
                if dup is not None:
                    raise HetredError(f"detectid {dup} is in both {seen[dup]} and {f}")
                seen.update((i, f) for i in ids)
                for table in ("report", "report_pdf", "detections"):
                    con.execute(f"INSERT INTO {table} SELECT * FROM s{k}.{table}")
                con.commit()
                con.execute(f"DETACH DATABASE s{k}")
                n += len(ids)
            con.executemany("INSERT INTO meta VALUES (?, ?)",
                            sorted({"hetred_version": __version__, "reports": str(n), "shots": str(len(files)),
                                    **meta}.items()))
            con.commit()
        finally:
            con.close()
    return n


def read_report(path: Path, detectid: int, kind: str = "png") -> bytes | None:
    """The PNG (``kind`` png) or PDF bytes of one report, None when the database has none."""
    table, col = ("report", "image") if kind == "png" else ("report_pdf", "pdf")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = con.execute(f"SELECT {col} FROM {table} WHERE detectid = ?", (int(detectid),)).fetchone()
    finally:
        con.close()
    return None if row is None else bytes(row[0])


def detectids(path: Path) -> list[int]:
    """The detectids of a database's reports, ascending."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [int(r[0]) for r in con.execute("SELECT detectid FROM report ORDER BY detectid")]
    finally:
        con.close()
