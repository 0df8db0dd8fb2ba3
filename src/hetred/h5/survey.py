"""The survey file ``survey_RELEASE.h5`` and ``flux_limits_all.txt`` (h5tools
create_survey_hdf5.py; hetdex_formats.md §4.3, hetdex_api_client.md §4.2).

``/Survey`` (no title) is the vstack of every shot file's ``/Shot`` row, with ``field``
recomputed from ``objid`` by the survey's own ``define_field``: the same dtype as ``/Shot``.
``flux_limits_all.txt`` has one line per shot, ``DATEvOBS SHOTID FLUXLIMIT_4540`` (erg s^-1
cm^-2; hetdex_api's Survey('hdr2.1') reads it as ``datevobs col2 fluxlimit_4540``), from the
``fluxlimit_4540`` attribute ``hetred h5 shot`` leaves on ``/Shot``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tables as tb

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.h5.settings import H5Settings
from hetred.h5.shotmeta import define_field
from hetred.io.atomic import atomic_path, write_text_atomic


@dataclass
class SurveyResult:
    path: Path
    flim_path: Path
    shots: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_shot_row(path: Path) -> tuple[np.ndarray, float]:
    """(the /Shot row, its fluxlimit_4540 attribute or NaN) of a shot file."""
    try:
        with tb.open_file(str(path), "r") as f:
            row = f.root.Shot.read()
            attrs = f.root.Shot.attrs
            flim = float(attrs["fluxlimit_4540"]) if "fluxlimit_4540" in attrs._v_attrnames else float("nan")
    except (OSError, tb.NoSuchNodeError, tb.HDF5ExtError) as err:
        raise HetredError(f"shot file {path}: cannot read /Shot ({err.__class__.__name__})") from None
    if len(row) != 1:
        raise HetredError(f"shot file {path}: /Shot has {len(row)} rows, expected 1")
    return row, flim


def write_survey(shot_files: list[Path], path: Path, flim_path: Path, settings: H5Settings | None = None
                 ) -> SurveyResult:
    """Stack the ``/Shot`` rows of ``shot_files`` (in the order given) into ``path`` and write
    ``flim_path``."""
    st = settings or H5Settings()
    if not shot_files:
        raise HetredError("no shot files to make the survey from (run hetred h5 shot first)")
    res = SurveyResult(Path(path), Path(flim_path))
    rows, lines = [], []
    for p in shot_files:
        row, flim = read_shot_row(p)
        if rows and row.dtype != rows[0].dtype:
            raise HetredError(f"shot file {p}: its /Shot columns differ from {shot_files[0]} "
                              "(mixed --schema?)")
        row = row.copy()
        row["field"] = define_field(row["objid"][0].decode(errors="replace"), "survey", st.schema).encode()
        rows.append(row)
        dv = row["datevobs"][0].decode()
        res.shots.append(dv)
        if not np.isfinite(flim):
            res.warnings.append(f"{dv}: no flux limit (no calibrated fibers): NaN in flux_limits_all.txt")
        lines.append(f"{dv} {int(row['shotid'][0])} {flim:.6e}\n")
    table = np.concatenate(rows)
    order = np.argsort(table["shotid"], kind="stable")
    if np.any(np.diff(table["shotid"][order]) == 0):
        raise HetredError("two shot files hold the same shotid")
    with atomic_path(res.path) as tmp, tb.open_file(str(tmp), "w", title=f"{st.release.upper()}Survey file ") as f:
        t = f.create_table(f.root, "Survey", obj=table, filters=st.filters("Survey"))
        t.attrs["hetred_version"] = __version__
        t.flush()
        t.close()
    write_text_atomic(res.flim_path, "".join(lines))
    return res
