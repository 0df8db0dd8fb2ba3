"""The ``/Shot`` row of a shot file (h5tools create_shot_hdf5.py ``append_shot_to_table``,
create_astrometry_hdf5.py, create_cal_hdf5.py; hetdex_formats.md §4.1).

From the primary header of one multi file per exposure: ``date``, ``obsid``, ``objid``
(OBJECT), ``field`` (from OBJECT), ``time`` (the first 7 digits of UT), ``trajcra`` (TRAJCRA
hours x 15), ``trajcdec``, ``trajcpa`` (PARANGLE), ``structaz``, ``ambtemp``, ``humidity``,
``dewpoint``, ``pressure`` (BAROMPRE), per exposure ``expnum``, ``exptime``, ``darktime``, ``mjd``.
From the other stages: ``ra, dec, pa`` (radec2_final.dat), ``relflux_virus`` (norm.dat),
``xditherpos, yditherpos`` (all.mch), ``xoffset, yoffset, xrms, yrms, nstars_fit``
(getoff2_expNN.out), ``fwhm_virus, fwhm_virus_err, nstars_fit_fwhm`` (fwhm.all) and
``response_4540`` (the response curve at 4540 Å). What is missing stays NaN (floats) or 0.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from hetred.h5.schema import columns, dtype
from hetred.virus.ids import parse_datevobs, shotid

#: create_shot_hdf5.py (0.8.7) and create_survey_hdf5.py (HEAD) define_field: (regex, field) in order
_FIELDS_087 = (("par", "parallel"), ("COS|cos|DEXcos", "cosmos"), ("EGS", "egs"), ("GN", "goods-n"),
               ("DEX0|DEXfl|HF", "dex-fall"), ("HS|DEXsp", "dex-spring"), ("NEP", "nep"), ("SSA22", "ssa22"))
_FIELDS_SURVEY_087 = (("par", "parallel"), ("COS|cos|DEXcos", "cosmos"), ("EGS|DEXeg", "egs"),
                      ("GN|DEXgn", "goods-n"), ("DEX0|DEXfl|HF", "dex-fall"), ("HS|DEXsp", "dex-spring"),
                      ("NEP", "nep"), ("SSA22", "ssa22"))
_FIELDS_SURVEY_HEAD = (("par", "parallel"), ("COS|cos|DEXcos|DEXcs", "cosmos"), ("EGS|DEXeg", "egs"),
                       ("GN|DEXgn", "goods-n"), ("DEX0|DEXfl|HF|DEXsh", "dex-fall"), ("HS|DEXsp", "dex-spring"),
                       ("NEP", "nep"), ("SSA22", "ssa22"))

#: Shot column <- header keyword (float columns)
_HEADER_FLOATS = (("trajcdec", "TRAJCDEC"), ("trajcpa", "PARANGLE"), ("structaz", "STRUCTAZ"),
                  ("ambtemp", "AMBTEMP"), ("humidity", "HUMIDITY"), ("dewpoint", "DEWPOINT"),
                  ("pressure", "BAROMPRE"))


def define_field(objid: str, kind: str = "shot", schema: str = "0.8.7") -> str:
    """The survey field of an OBJECT name (h5tools ``define_field``; ``kind`` "shot" is the
    shot file's, "survey" the survey file's, which knows more names)."""
    table = _FIELDS_087 if kind == "shot" else (_FIELDS_SURVEY_HEAD if schema == "head" else _FIELDS_SURVEY_087)
    for pattern, name in table:
        if re.match(pattern, str(objid)):
            return name
    return "other"


def _float(header: Mapping[str, Any] | None, key: str, missing: list[str]) -> float:
    if header is None or key not in header:
        missing.append(key)
        return float("nan")
    try:
        return float(header[key])
    except (TypeError, ValueError):
        missing.append(key)
        return float("nan")


def shot_row(datevobs: str, headers: Mapping[int, Any], n_ifu: int, schema: str = "0.8.7",
             products: Mapping[str, Any] | None = None) -> tuple[np.ndarray, list[str]]:
    """The one-row ``/Shot`` table and the header keywords that were missing.

    headers: exposure (1..3) -> primary header of one of its multi files; products: the values
    of the other stages by Shot column name (e.g. ``ra``, ``relflux_virus``), absent = missing.
    """
    cols = columns("shot", schema)
    row = np.zeros(1, dtype=dtype(cols))
    for name, code, _, _ in cols:
        if code.startswith("f"):
            row[name] = np.nan
    night, obs = parse_datevobs(datevobs)
    row["shotid"], row["date"], row["obsid"] = shotid(night, obs), int(night), obs
    row["datevobs"] = datevobs.encode()
    row["obsind"] = 1
    row["n_ifu"] = n_ifu
    missing: list[str] = []
    h1 = headers.get(1) or (headers[min(headers)] if headers else None)
    objid = str(h1.get("OBJECT", "")) if h1 is not None else ""
    if h1 is None or "OBJECT" not in h1:
        missing.append("OBJECT")
    row["objid"] = objid.encode("ascii", "replace")[:18]
    row["field"] = define_field(objid).encode()
    ut = str(h1.get("UT", "")) if h1 is not None else ""
    if not ut:
        missing.append("UT")
    row["time"] = "".join(re.split("[:,.]", ut))[:7].encode()
    row["trajcra"] = _float(h1, "TRAJCRA", missing) * 15.0
    for col, key in _HEADER_FLOATS:
        row[col] = _float(h1, key, missing)
    for exp in (1, 2, 3):
        h = headers.get(exp)
        if h is None:
            row["exptime"][0, exp - 1] = row["darktime"][0, exp - 1] = row["mjd"][0, exp - 1] = 0.0
            continue
        row["expnum"][0, exp - 1] = exp
        row["exptime"][0, exp - 1] = _float(h, "EXPTIME", missing)
        row["darktime"][0, exp - 1] = _float(h, "DARKTIME", missing)
        row["mjd"][0, exp - 1] = _float(h, "MJD", missing)
    for name, value in (products or {}).items():
        row[name] = value
    return row, sorted(set(missing))
