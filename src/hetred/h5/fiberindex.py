"""The survey's fiber index ``fiber_index_RELEASE.h5`` and its fiber mask (h5tools
create_fiber_index_hdf5.py; hetdex_formats.md §4.4, hetdex_api_client.md §4.3).

``/FiberIndex`` (title "Survey Fiber Coord Info") holds every row of every shot file's
``/Data/FiberIndex`` (shots in the order given, rows in file order) with ``shotid``, ``date``,
``datevobs``, ``healpix = healpy.ang2pix(2**15, ra, dec, lonlat=True)`` (RING, Nside 32768,
pixels of ~6.4"; 0 where ra/dec are NaN, as h5tools' exception path) and ``specid, ifuslot,
ifuid, amp`` sliced from ``fiber_id``; completely sorted indexes on ``healpix`` and ``ra`` (HEAD
also ``shotid``).

The fiber mask follows ``/FiberIndex`` row for row (FiberIndex.query_region hstacks the two and
checks ``fiber_id``): 0.8.7 reads ``/Flags`` (``fiber_id, flag, amp_flag, gal_flag,
meteor_flag``, True = good); HEAD reads the mask file's ``/FiberIndex`` (every fiber column plus
``flag`` and seven ``flag_*`` columns, 1 = good). hetred has no bad-amp, meteor or galaxy lists
yet: every fiber is good, every fiber without RA/Dec (missing astrometry) is not (``flag`` false).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tables as tb

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.h5.indexing import create_csindex
from hetred.h5.schema import columns, description, dtype
from hetred.h5.settings import H5Settings
from hetred.io.atomic import atomic_path

NSIDE = 2 ** 15


@dataclass
class FiberIndexResult:
    path: Path
    mask_path: Path
    rows: int = 0
    shots: list[str] = field(default_factory=list)
    no_radec: int = 0


def healpix(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """RING healpix of Nside 2**15 (int64); 0 where ra or dec is not finite."""
    import healpy as hp

    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    out = np.zeros(ra.shape, dtype=np.int64)
    if np.any(ok):
        out[ok] = hp.ang2pix(NSIDE, ra[ok], dec[ok], lonlat=True)
    return out


def _shot_rows(path: Path, out_dtype: np.dtype) -> tuple[np.ndarray, str]:
    try:
        with tb.open_file(str(path), "r") as f:
            src = f.root.Data.FiberIndex.read()
            shot = f.root.Shot.read()
    except (OSError, tb.NoSuchNodeError, tb.HDF5ExtError) as err:
        raise HetredError(f"shot file {path}: cannot read /Data/FiberIndex and /Shot ({err.__class__.__name__})") \
            from None
    dv = shot["datevobs"][0].decode()
    out = np.zeros(len(src), dtype=out_dtype)
    for name in src.dtype.names:
        if name in out_dtype.names:
            out[name] = src[name]
    out["shotid"], out["date"], out["datevobs"] = int(shot["shotid"][0]), int(shot["date"][0]), dv.encode()
    out["healpix"] = healpix(src["ra"], src["dec"])
    fid = src["fiber_id"].astype("S38")
    v = fid.view("S1").reshape(len(fid), 38)
    out["specid"] = v[:, 20:23].copy().view("S3").ravel()
    out["ifuslot"] = v[:, 24:27].copy().view("S3").ravel()
    out["ifuid"] = v[:, 28:31].copy().view("S3").ravel()
    out["amp"] = v[:, 32:34].copy().view("S2").ravel()
    return out, dv


def _mask_rows(rows: np.ndarray, schema: str) -> np.ndarray:
    cols = columns("mask", schema)
    m = np.zeros(len(rows), dtype=dtype(cols))
    good = np.isfinite(rows["ra"]) & np.isfinite(rows["dec"])
    if schema == "0.8.7":
        m["fiber_id"] = rows["fiber_id"]
        m["flag"] = good
        m["amp_flag"] = m["gal_flag"] = m["meteor_flag"] = True
    else:
        for name in rows.dtype.names:
            if name in m.dtype.names:
                m[name] = rows[name]
        m["flag"] = good.astype(np.int32)
        for name in m.dtype.names:
            if name.startswith("flag_"):
                m[name] = 1
    return m


def write_fiber_index(shot_files: list[Path], path: Path, mask_path: Path,
                      settings: H5Settings | None = None) -> FiberIndexResult:
    """Write the fiber index and the fiber mask of ``shot_files`` (module docstring)."""
    st = settings or H5Settings()
    if not shot_files:
        raise HetredError("no shot files to index (run hetred h5 shot first)")
    cols = columns("survey_fiberindex", st.schema)
    out_dtype = dtype(cols)
    mcols = columns("mask", st.schema)
    res = FiberIndexResult(Path(path), Path(mask_path))
    title = f"{st.release.upper()} Fiber Index file "
    with atomic_path(res.path) as tmp, atomic_path(res.mask_path) as mtmp, \
            tb.open_file(str(tmp), "w", title=title) as f, tb.open_file(str(mtmp), "w") as fm:
        t = f.create_table(f.root, "FiberIndex", description(cols), "Survey Fiber Coord Info",
                           filters=st.filters("FiberIndex"), expectedrows=max(1, len(shot_files)) * 104832)
        node = "Flags" if st.schema == "0.8.7" else "FiberIndex"
        mt = fm.create_table(fm.root, node, description(mcols), "Fiber Flags" if node == "Flags" else
                             "Survey Fiber Coord Info", filters=st.filters(node),
                             expectedrows=max(1, len(shot_files)) * 104832)
        hpx, ras, sids = [], [], []
        for p in shot_files:
            rows, dv = _shot_rows(p, out_dtype)
            t.append(rows)
            hpx.append(rows["healpix"].copy())
            ras.append(rows["ra"].copy())
            sids.append(rows["shotid"].copy())
            mt.append(_mask_rows(rows, st.schema))
            res.rows += len(rows)
            res.no_radec += int(np.sum(~np.isfinite(rows["ra"])))
            res.shots.append(dv)
        t.flush()
        mt.flush()
        create_csindex(t, "healpix", np.concatenate(hpx))
        create_csindex(t, "ra", np.concatenate(ras))
        if st.schema == "head":
            create_csindex(t, "shotid", np.concatenate(sids))
        for x in (t, mt):
            x.attrs["hetred_version"] = __version__
            x.flush()
            x.close()
    return res
