"""The detection file ``detect_MONTH.h5`` from Karl's ``.mc``, ``.list`` and ``.spec`` files and
the release file ``detect_RELEASE.h5`` merged from the months (h5tools create_detect_hdf5.py
``-m MONTH`` and ``--merge``; hetdex_formats.md §4.5, §5.1-5.3; detect_fullsky.md §2).

Per IFU of a shot (``DATEvOBS_SSS_III_UUU``): every ``.mc`` line (27 fields; 32-33 in HDR3+) is a
detection candidate; it is ingested when ``sn > sn_min`` (4.5), ``linewidth > linewidth_min``
(1.7 Å) and ``chi2fib < chi2fib_max`` (5), as h5tools HDR2.1. Its ``/Detections`` row takes the
``.mc`` values, ``inputid = DATEvOBS_SSS_III_UUU_NNN`` (NNN the source index), ``detectname``
(0.8.7: ``HETDEX Jhhmmss.ss+ddmmss.s``) and the fiber fields of its highest-weight ``.list`` row;
its ``/Spectra`` row (same row number) the ``.spec`` block of its source index (1036 lines:
``wave1d, spec1d_nc, spec1d_nc_err, counts1d, counts1d_err, apsum_counts, apsum_counts_err,
-, apcor, flag_pix, src_index [, spec1d_nc_ffsky]``) with ``spec1d = spec1d_nc / apcor``; its
``/Fibers`` rows every ``.list`` row of its source index. Detectids count up from the release
base (2,100,000,000 for HDR2.1) in the order IFU file, ``.mc`` line. ``--merge`` renumbers the
months' rows consecutively from the base (Fibers and Spectra with them): no collisions.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tables as tb

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.h5.schema import columns, description, dtype
from hetred.h5.settings import H5Settings
from hetred.io.atomic import atomic_path

MC_NAMES = ("wave", "wave_err", "flux", "flux_err", "linewidth", "linewidth_err", "continuum", "continuum_err",
            "sn", "sn_err", "chi2", "chi2_err", "ra", "dec", "datevshot", "noise_ratio", "linewidth_fix",
            "chi2_fix", "chi2fib", "src_index", "multiname", "exp", "xifu", "yifu", "xraw", "yraw", "weight",
            "apcor", "sn_cen", "flux_noise_1sigma", "sn_3fib", "sn_3fib_cen")
_MC_STR = {"datevshot", "multiname", "exp"}
_MC_COPY = ("wave", "wave_err", "flux", "flux_err", "linewidth", "linewidth_err", "continuum", "continuum_err",
            "sn", "sn_err", "chi2", "chi2_err", "ra", "dec", "noise_ratio", "chi2fib", "apcor", "sn_cen",
            "flux_noise_1sigma", "sn_3fib", "sn_3fib_cen")
TABLES = ("detections", "spectra", "det_fibers")


@dataclass
class IfuFiles:
    """The three files of one IFU of one shot; ``stem`` = DATEvOBS_SSS_III_UUU (24 chars)."""

    stem: str
    mc: Path
    list: Path
    spec: Path


@dataclass
class DetectResult:
    path: Path
    detections: int = 0
    fibers: int = 0
    candidates: int = 0
    ifustat: list[tuple[str, int, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def detectname(ra: float, dec: float) -> str:
    """IAU-style name ``HETDEX Jhhmmss.ss+ddmmss.s`` (h5tools get_detectname)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra * u.deg, dec * u.deg)
    ra = c.ra.to_string(unit=u.hourangle, sep="", precision=2, pad=True)
    dec = c.dec.to_string(sep="", precision=1, alwayssign=True, pad=True)
    return f"HETDEX J{ra}{dec}"


def read_mc(path: Path) -> list[dict]:
    """The detections of a ``.mc`` file, one dict per line (:data:`MC_NAMES`)."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 27 or "*" in line:
            raise HetredError(f"{path} line {n}: not a .mc line (27 or more fields, no overflow '*')")
        row: dict = {"mc_file_idx": n - 1}
        for name, v in zip(MC_NAMES, parts):
            try:
                row[name] = v if name in _MC_STR else (int(v) if name in ("src_index", "xraw", "yraw")
                                                       else float(v))
            except ValueError:
                raise HetredError(f"{path} line {n}: field {name} = {v!r} is not a number") from None
        out.append(row)
    return out


def read_table(path: Path, what: str, min_cols: int) -> list[list[str]]:
    rows = [r.split() for r in path.read_text().splitlines() if r.strip()]
    for n, r in enumerate(rows, 1):
        if len(r) < min_cols:
            raise HetredError(f"{what} {path} line {n}: expected at least {min_cols} columns")
    return rows


def _spec_block(spec: np.ndarray, src: int, path: Path) -> np.ndarray:
    sel = spec[spec[:, 10] == src]
    if len(sel) != 1036:
        raise HetredError(f"{path}: source {src} has {len(sel)} spectrum lines, expected 1036")
    return sel


class _Writer:
    """Appends detections to the three tables of an open detect file."""

    def __init__(self, f: tb.File, st: H5Settings) -> None:
        self.st = st
        self.cols = {k: columns(k, st.schema) for k in TABLES}
        self.tables = {}
        for k in TABLES:
            name, title = {"detections": ("Detections", "HETDEX Line Detection Catalog"),
                           "spectra": ("Spectra", "1D Spectra for each Line Detection"),
                           "det_fibers": ("Fibers", "Fiber info for each detection")}[k]
            self.tables[k] = f.create_table(f.root, name, description(self.cols[k]), title, filters=st.filters(name))

    def finish(self) -> None:
        for k in TABLES:
            t = self.tables[k]
            t.flush()
            t.cols.detectid.create_csindex()
            t.attrs["hetred_version"] = __version__
            t.flush()
            t.close()


def _fiber_rows(rows: list[list[str]], detectid: int, shotid: int, dt: np.dtype) -> np.ndarray:
    out = np.zeros(len(rows), dtype=dt)
    for i, r in enumerate(rows):
        mf, fib = r[4][:20], int(r[4][21:24])
        exp = int(r[5][3:5])
        out[i]["detectid"] = detectid
        out[i]["ra"], out[i]["dec"], out[i]["x_ifu"], out[i]["y_ifu"] = (float(r[k]) for k in range(4))
        out[i]["expnum"] = exp
        out[i]["fiber_id"] = f"{shotid}_{exp}_{mf}_{fib:03d}".encode()
        out[i]["multiframe"] = mf.encode()
        out[i]["specid"], out[i]["ifuslot"] = mf[6:9].encode(), mf[10:13].encode()
        out[i]["ifuid"], out[i]["amp"] = mf[14:17].encode(), mf[18:20].encode()
        out[i]["fibnum"] = fib
        out[i]["distance"], out[i]["wavein"] = float(r[6]), float(r[7])
        out[i]["timestamp"] = r[8].encode()[:17]
        out[i]["date"], out[i]["obsid"] = int(r[9]), int(r[10][:3])
        out[i]["x_raw"], out[i]["y_raw"] = int(r[11]), int(r[12])
        out[i]["weight"], out[i]["flag"] = float(r[13]), int(r[14])
    return out


def _per_apcor(a: np.ndarray, apcor: np.ndarray) -> np.ndarray:
    """``a / apcor`` (0 where apcor is not positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(apcor > 0, a / apcor, 0.0)


def ingest_ifu(w: _Writer, files: IfuFiles, next_id: int, res: DetectResult) -> int:
    """Append the detections of one IFU passing the cuts; returns the next free detectid."""
    st = w.st
    mc = read_mc(files.mc)
    keep = [d for d in mc if d["sn"] > st.sn_min and d["linewidth"] > st.linewidth_min
            and d["chi2fib"] < st.chi2fib_max]
    res.candidates += len(mc)
    res.ifustat.append((files.stem, len(mc), len(keep)))
    if not keep:
        return next_id
    lst = read_table(files.list, "fiber list", 16)
    try:
        spec = np.array([[float(v) for v in r[:12]] for r in read_table(files.spec, "spectra", 11)])
    except ValueError:
        raise HetredError(f"spectra {files.spec}: not a table of numbers") from None
    dv = files.stem[:12]
    shotid = int(dv[:8]) * 1000 + int(dv[9:12])
    det_dt, spec_dt, fib_dt = (dtype(w.cols[k]) for k in TABLES)
    for d in keep:
        src = d["src_index"]
        fl = [r for r in lst if int(r[15]) == src]
        if not fl:
            raise HetredError(f"fiber list {files.list}: no fibers of source {src} (of {files.mc})")
        fib = _fiber_rows(fl, next_id, shotid, fib_dt)
        block = _spec_block(spec, src, files.spec)
        row = np.zeros(1, dtype=det_dt)
        row["detectid"], row["shotid"], row["date"], row["obsid"] = next_id, shotid, int(dv[:8]), int(dv[9:12])
        for name in _MC_COPY:
            if name in d and name in det_dt.names:
                row[name] = d[name]
        row["inputid"] = f"{files.stem}_{src:03d}".encode()
        if "detectname" in det_dt.names:
            row["detectname"] = detectname(d["ra"], d["dec"]).encode()
        if "mc_file" in det_dt.names:
            row["mc_file"] = files.mc.name.encode()[:32]
            row["mc_file_idx"] = d["mc_file_idx"]
        b = int(np.argmax(fib["weight"]))
        for name in ("fiber_id", "multiframe", "specid", "ifuslot", "ifuid", "amp", "fibnum", "expnum",
                     "x_raw", "y_raw", "x_ifu", "y_ifu", "weight"):
            row[name] = fib[name][b]
        sp = np.zeros(1, dtype=spec_dt)
        sp["detectid"] = next_id
        apcor = block[:, 8]
        sp["wave1d"], sp["spec1d_nc"], sp["spec1d_nc_err"] = block[:, 0], block[:, 1], block[:, 2]
        sp["spec1d"], sp["spec1d_err"] = _per_apcor(block[:, 1], apcor), _per_apcor(block[:, 2], apcor)
        sp["counts1d"], sp["counts1d_err"] = block[:, 3], block[:, 4]
        sp["apsum_counts"], sp["apsum_counts_err"] = block[:, 5], block[:, 6]
        sp["apcor"], sp["flag_pix"] = apcor, block[:, 9]
        if "spec1d_ffsky" in spec_dt.names and block.shape[1] > 11:
            sp["spec1d_ffsky"] = _per_apcor(block[:, 11], apcor)
        w.tables["detections"].append(row)
        w.tables["spectra"].append(sp)
        w.tables["det_fibers"].append(fib)
        res.detections += 1
        res.fibers += len(fib)
        next_id += 1
    return next_id


def write_detect(ifus: Iterable[IfuFiles], path: Path, settings: H5Settings | None = None,
                 title: str = "HDR2.1 Detections Database") -> DetectResult:
    """Ingest the IFU files (in the order given) into a detect file (module docstring)."""
    st = settings or H5Settings()
    res = DetectResult(Path(path))
    with atomic_path(res.path) as tmp, tb.open_file(str(tmp), "w", title=title) as f:
        w = _Writer(f, st)
        next_id = st.detectid_base
        for files in ifus:
            next_id = ingest_ifu(w, files, next_id, res)
        w.finish()
    return res


def merge_detect(files: list[Path], path: Path, settings: H5Settings | None = None,
                 title: str = "HDR2.1 Detections Database") -> DetectResult:
    """Merge detect files (in the order given) renumbering detectids from the base."""
    st = settings or H5Settings()
    res = DetectResult(Path(path))
    if not files:
        raise HetredError("no monthly detect files to merge (run hetred h5 detect MONTH first)")
    with atomic_path(res.path) as tmp, tb.open_file(str(tmp), "w", title=title) as f:
        w = _Writer(f, st)
        next_id = st.detectid_base
        for p in files:
            try:
                with tb.open_file(str(p), "r") as fi:
                    det = fi.root.Detections.read()
                    spec = fi.root.Spectra.read()
                    fib = fi.root.Fibers.read()
            except (OSError, tb.NoSuchNodeError, tb.HDF5ExtError) as err:
                raise HetredError(f"detect file {p}: cannot read ({err.__class__.__name__})") from None
            if det.dtype != w.tables["detections"].dtype:
                raise HetredError(f"detect file {p}: its columns are not those of schema {st.schema}")
            if len(det) != len(spec) or np.any(det["detectid"] != spec["detectid"]):
                raise HetredError(f"detect file {p}: Detections and Spectra rows are not in step")
            if len(det) == 0:
                res.warnings.append(f"{p.name}: no detections")
                continue
            new = next_id + np.arange(len(det), dtype=np.int64)
            mapping = dict(zip(det["detectid"].tolist(), new.tolist()))
            if len(mapping) != len(det):
                raise HetredError(f"detect file {p}: repeated detectids")
            det["detectid"] = new
            spec["detectid"] = new
            fib["detectid"] = [mapping[int(i)] for i in fib["detectid"]]
            w.tables["detections"].append(det)
            w.tables["spectra"].append(spec)
            w.tables["det_fibers"].append(fib)
            res.detections += len(det)
            res.fibers += len(fib)
            next_id += len(det)
        w.finish()
    return res
