"""The ``/Astrometry`` and ``/Calibration`` groups of a shot file (h5tools
create_astrometry_hdf5.py and create_cal_hdf5.py at d35b01a, or HEAD; hetdex_formats.md §4.1).

``/Astrometry`` (from ``hetred astrom``'s folder of the shot): ``fplane`` (the focal plane it
used), ``StarCatalog`` (its star list; 0.8.7: the whole file as astropy reads it, HEAD: its own
class, g <= 22), ``CoaddImages/png_expNN`` (the reconstructed focal plane of ``hetred sci``) and
``match_expNN`` (the match QA), ``NominalVals`` (per exposure: radec2_expNN.dat, norm.dat,
all.mch), ``PositionOffsets/expNN`` (getoff_expNN.out), ``Dithall/expNN`` (dith_expNN.all),
``QA`` (getoff2_expNN.out), ``CatalogMatches/expNN`` (xy_expNN.dat). ``/Calibration/Throughput``:
``throughput`` (DATEvOBSsedtp_f.dat) and ``tp_png``. Each missing file is left out with a note,
as h5tools does.

:func:`shot_products` gathers the values the ``/Shot`` row takes from these files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tables as tb

from hetred.h5 import inputs
from hetred.h5.schema import STARCATALOG_HEAD, columns, description, dtype
from hetred.h5.settings import H5Settings
from hetred.layout import Layout
from hetred.virus.ids import month_of, parse_datevobs

EXPOSURES = (1, 2, 3)
TP_NAMES = ["wavelength", "throughput", "tp_low", "tp_high", "rat_poly", "tp_gband"]
FPLANE_NAMES = ["ifuslot", "fpx", "fpy", "specid", "specslot", "ifuid", "ifurot", "platesc"]
STAR_NAMES = ["ignore", "star_ID", "ra_cat", "dec_cat", "u", "g", "r", "i", "z"]
GETOFF_NAMES = ["xoffset", "yoffset", "ra_dex", "dec_dex", "ra_cat", "dec_cat", "ifuslot"]


class Notes(list):
    """What was left out (one line each), reported as the unit's warnings; ``seen``: every
    product looked for (the unit's depends)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def missing(self, what: str, path: Path | str | None) -> None:
        self.append(f"no {what}" + (f" ({path})" if path else " (its stage has not run)"))


def _table(f: tb.File, where: Any, name: str, obj: np.ndarray | dict, title: str, settings: H5Settings,
           attrs: dict[str, Any] | None = None) -> tb.Table:
    t = f.create_table(where, name, obj, title, filters=settings.filters(name))
    for k, v in (attrs or {}).items():
        t.set_attr(k, v)
    t.flush()
    return t


def _array(f: tb.File, where: Any, name: str, data: np.ndarray, attrs: dict[str, Any], settings: H5Settings) -> None:
    filt = settings.filters(name)
    if filt is None:
        a = f.create_array(where, name, data)
    else:
        a = f.create_carray(where, name, obj=data, filters=filt)
    for k, v in attrs.items():
        a.attrs[k] = v


def write_astrometry(f: tb.File, layout: Layout, datevobs: str, settings: H5Settings, notes: Notes) -> dict[str, Any]:
    """Write ``/Astrometry``; returns the Shot values it found (xoffset ..., xditherpos ...)."""
    night, obs = parse_datevobs(datevobs)
    schema = settings.schema
    g = f.create_group(f.root, "Astrometry", "Astrometry Info")
    coadd = f.create_group(g, "CoaddImages", "Coadd Images")
    dith_g = f.create_group(g, "Dithall", "Fiber Astrometry Info")
    offs_g = f.create_group(g, "PositionOffsets", "Offset in star matches")
    match_g = f.create_group(g, "CatalogMatches", "Match Catalog Info")
    qa_cols, nv_cols = columns("qa", schema), columns("nominal", schema)
    qa = f.create_table(g, "QA", description(qa_cols), "Quality Assessment", filters=settings.filters("QA"))
    nv = f.create_table(g, "NominalVals", description(nv_cols), "Nominal Values", filters=settings.filters("NV"))

    p = inputs.optional(layout, "astrom_fplane", notes.seen, datevobs=datevobs)
    if p is None:
        notes.missing("fplane of the astrometry", None)
    else:
        _table(f, g, "fplane", inputs.ascii_table(p, FPLANE_NAMES, first=len(FPLANE_NAMES)), "", settings, {"filename": "fplane.txt"})
    _star_catalog(f, g, layout, datevobs, settings, notes)

    k = 1
    for exp in EXPOSURES:
        png = inputs.optional(layout, "sci_fplane_png", notes.seen, night=night, obs=obs, obs3=f"{obs:03d}", exp=exp)
        if png is not None:
            _array(f, coadd, f"png_exp{k:02d}", inputs.image_png(png), {"CLASS": "IMAGE", "filename": str(png)},
                   settings)
            k += 1

    mch_p = inputs.optional(layout, "astrom_mch", notes.seen, datevobs=datevobs)
    mch = inputs.read_mch(mch_p) if mch_p is not None else []
    if mch_p is None:
        notes.missing("all.mch", None)
    norm_p = inputs.optional(layout, "astrom_norm", notes.seen, datevobs=datevobs)
    norm = inputs.read_numbers(norm_p, "exposure normalisation") if norm_p is not None else []
    if norm_p is None:
        notes.missing("norm.dat", None)
    out: dict[str, Any] = {}
    qa_rows, nv_rows = [], []
    for idx, exp in enumerate(EXPOSURES):
        ex = f"exp{exp:02d}"
        nvr = np.zeros(1, dtype=dtype(nv_cols))
        nvr["expnum"] = exp
        rp = inputs.optional(layout, "astrom_radec2_exp", notes.seen, datevobs=datevobs, exp=exp)
        if rp is not None:
            nvr["ra"], nvr["dec"], nvr["parangle"] = inputs.read_numbers(rp, "exposure pointing", 3)[:3]
        if idx < len(norm):
            nvr["relflux_virus"] = norm[idx]
        if idx < len(mch):
            nvr["als_filename"] = mch[idx][0].encode()[:23]
            nvr["x_dither_pos"], nvr["y_dither_pos"] = mch[idx][1], mch[idx][2]
        nv_rows.append(nvr)
        mp = inputs.optional(layout, "astrom_match_png", notes.seen, datevobs=datevobs, exp=exp)
        if mp is not None:
            _array(f, coadd, f"match_{ex}", inputs.image_png(mp), {"CLASS": "IMAGE", "filename": str(mp)}, settings)
        gp = inputs.optional(layout, "astrom_getoff", notes.seen, datevobs=datevobs, exp=exp)
        if gp is not None and gp.stat().st_size > 0:
            _table(f, offs_g, ex, inputs.ascii_table(gp, GETOFF_NAMES), "", settings,
                   {"filename": "getoff_exp??.out"})
        dp = inputs.optional(layout, "astrom_dith", notes.seen, datevobs=datevobs, exp=exp)
        if dp is not None:
            _dithall(f, dith_g, ex, dp, settings)
        g2 = inputs.optional(layout, "astrom_getoff2", notes.seen, datevobs=datevobs, exp=exp)
        if g2 is not None:
            v = inputs.read_numbers(g2, "offset fit", 5)
            qar = np.zeros(1, dtype=qa.dtype)
            qar["expnum"] = exp
            qar["xoffset"], qar["yoffset"], qar["xrms"], qar["yrms"], qar["nstars"] = v[:5]
            qa_rows.append(qar)
        xy = inputs.optional(layout, "astrom_xy", notes.seen, datevobs=datevobs, exp=exp)
        if xy is not None and xy.stat().st_size > 0:
            _table(f, match_g, ex, inputs.ascii_table(xy), "", settings, {"filename": "xy_exp??.dat"})
    if qa_rows:
        qa.append(np.concatenate(qa_rows))
    nv.append(np.concatenate(nv_rows))
    qa.set_attr("filename", "getoff2_exp??.out")
    nv.set_attr("dither_file", "all.mch")
    nv.set_attr("norm_file", "norm.dat")
    nv.set_attr("radec_file", "radec2_exp??.dat")
    qa.flush()
    nv.flush()
    if len(qa_rows) == len(EXPOSURES):
        q = np.concatenate(qa_rows)
        out.update(xoffset=q["xoffset"], yoffset=q["yoffset"], xrms=q["xrms"], yrms=q["yrms"],
                   nstars_fit=q["nstars"].astype(np.int32))
    if len(mch) >= len(EXPOSURES):
        out.update(xditherpos=[m[1] for m in mch[:3]], yditherpos=[m[2] for m in mch[:3]])
    if len(norm) >= len(EXPOSURES):
        out["relflux_virus"] = norm[:3]
    return out


def _star_catalog(f: tb.File, g: Any, layout: Layout, datevobs: str, settings: H5Settings, notes: Notes) -> None:
    p = inputs.optional(layout, "astrom_catalog", notes.seen, datevobs=datevobs)
    if p is None:
        notes.missing("star catalogue of the astrometry", None)
        return
    rows = [r.split() for r in p.read_text().splitlines() if r.strip() and not r.lstrip().startswith("#")]
    if not rows:
        notes.append(f"star catalogue {p} lists no stars: StarCatalog left out")
        return
    if settings.schema == "0.8.7":
        t = _table(f, g, "StarCatalog", inputs.ascii_table(p, STAR_NAMES), "", settings)
        z = t.cols.z[:]
    else:
        cols = STARCATALOG_HEAD
        arr = np.zeros(len(rows), dtype=dtype(cols))
        keep = np.ones(len(rows), bool)
        for i, r in enumerate(rows):
            arr["ignore"][i] = int(float(r[0]))
            arr["star_ID"][i] = r[1].encode()[:28]
            for k, name in enumerate(STAR_NAMES[2:], 2):
                arr[name][i] = float(r[k])
            keep[i] = arr["g"][i] <= 22
        t = _table(f, g, "StarCatalog", description(cols), "StarCatalog", settings)
        t.append(arr[keep])
        t.flush()
        z = arr["z"]
    t.set_attr("filename", "DATEvOBS.ifu")
    t.set_attr("catalog", "SDSS" if np.any(np.asarray(z) > 0) else "GAIA")


def _dithall(f: tb.File, where: Any, name: str, path: Path, settings: H5Settings) -> None:
    cols = columns("dithall", settings.schema)
    lines = [r.split() for r in path.read_text().splitlines()]
    lines = [r for r in lines if len(r) >= 10 and r[0] != "ra"]
    arr = np.zeros(len(lines), dtype=dtype(cols))
    if lines:
        a = np.array(lines)
        arr["ra"], arr["dec"] = a[:, 0].astype(float), a[:, 1].astype(float)
        arr["ifuslot"] = np.char.encode(np.char.replace(a[:, 2], "ifu", ""))
        for k, c in ((3, "XS"), (4, "YS"), (5, "xfplane"), (6, "yfplane")):
            arr[c] = a[:, k].astype(float)
        arr["multifits"] = np.char.encode(a[:, 7])
        arr["timestamp"] = np.char.encode(a[:, 8])
        arr["exposure"] = np.char.encode(a[:, 9])
    t = _table(f, where, name, description(cols), "", settings, {"filename": str(path)})
    t.append(arr)
    t.flush()


def write_calibration(f: tb.File, layout: Layout, datevobs: str, settings: H5Settings, notes: Notes) -> dict[str, Any]:
    """Write ``/Calibration/Throughput``; returns the Shot values found (fwhm_virus ...,
    response_4540)."""
    night, _ = parse_datevobs(datevobs)
    month = month_of(night)
    g = f.create_group(f.root, "Calibration", "HETDEX Calibration Info")
    gt = f.create_group(g, "Throughput", "Throughput Curve")
    out: dict[str, Any] = {}
    tp = inputs.optional(layout, "throughput", notes.seen, month=month, datevobs=datevobs)
    if tp is None:
        notes.missing("response curve (sedtp_f.dat)", None)
    else:
        arr = inputs.ascii_table(tp, TP_NAMES)
        _table(f, gt, "throughput", arr, "", settings, {"filename": str(tp)})
        at = np.isclose(arr["wavelength"], 4540.0)
        if np.any(at):
            out["response_4540"] = float(arr["throughput"][at][0])
        else:
            notes.append(f"response curve {tp} has no 4540 A row: response_4540 NaN")
    png = inputs.optional(layout, "tp_png", notes.seen, month=month, datevobs=datevobs)
    if png is not None:
        _array(f, gt, "tp_png", inputs.image_png(png), {"CLASS": "IMAGE"}, settings)
    fw = inputs.optional(layout, "tp_fwhm_all", notes.seen, month=month)
    row = inputs.read_fwhm_all(fw, datevobs) if fw is not None else None
    if row is None:
        one = inputs.optional(layout, "tp_fwhm", notes.seen, month=month, datevobs=datevobs)
        if one is not None:
            v = inputs.read_numbers(one, "FWHM file", 3)
            row = (v[0], v[1], int(v[2]))
    if row is None:
        notes.missing("FWHM (fwhm.all)", fw)
    else:
        out.update(fwhm_virus=row[0], fwhm_virus_err=row[1], nstars_fit_fwhm=row[2])
    return out
