"""What a shot's detection reports read: the release's detect file, the shot's im2D file
(``hetred spec2d``) and the shot file's calibrated fibers (``hetred h5 shot``), all through the
layout. Each reader opens its file once per shot; the shot file is read one IFU at a time, only
the columns a report needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetred.errors import HetredError
from hetred.layout import Layout
from hetred.report.detplot import DetectionData, IfuFibers, line_flux_per_fiber

#: the .mc values a report shows (names of the detect file's /Detections columns)
VALUES = ("wave", "wave_err", "flux", "flux_err", "linewidth", "linewidth_err", "continuum", "continuum_err",
          "sn", "sn_err", "chi2", "chi2_err", "ra", "dec", "chi2fib")


def month_of(datevobs: str) -> str:
    return datevobs[:6]


def shotid_of(datevobs: str) -> int:
    return int(datevobs[:8]) * 1000 + int(datevobs[9:12])


def detect_file(layout: Layout, datevobs: str, release: str) -> Path:
    """The release's merged detect file, else the shot's month's (as hetred spec2d reads)."""
    merged = layout.path("h5_detect", name=release)
    if merged.exists():
        return merged
    month = layout.path("h5_detect_month", name=release, month=month_of(datevobs))
    if month.exists():
        return month
    raise HetredError(f"no detect file for {datevobs}: neither {merged} nor {month} (run hetred h5 detect)")


def _s(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


@dataclass
class ShotDetections:
    """The detections of one shot above the S/N cut, their spectra and fibers (structured arrays)."""

    path: Path
    rows: np.ndarray          #: /Detections rows, S/N >= min_sn, by detectid
    spectra: dict[int, np.ndarray]
    fibers: dict[int, np.ndarray]
    total: int                #: detections of the shot (any S/N)


def read_detections(path: Path, shotid: int, min_sn: float) -> ShotDetections:
    """The shot's detections with S/N >= ``min_sn`` from a detect file (one read per table)."""
    import tables as tb

    try:
        f = tb.open_file(str(path), "r")
    except (OSError, tb.HDF5ExtError) as err:
        raise HetredError(f"detect file {path}: cannot open ({err.__class__.__name__})") from None
    try:
        det = f.root.Detections.read_where("shotid == sid", condvars={"sid": np.int64(shotid)})
        keep = det[det["sn"] >= min_sn]
        keep = keep[np.argsort(keep["detectid"], kind="stable")]
        ids = keep["detectid"]
        spectra, fibers = {}, {}
        if len(ids):
            lo, hi = int(ids.min()), int(ids.max())
            cond = "(detectid >= lo) & (detectid <= hi)"
            sp = f.root.Spectra.read_where(cond, condvars={"lo": np.int64(lo), "hi": np.int64(hi)})
            fb = f.root.Fibers.read_where(cond, condvars={"lo": np.int64(lo), "hi": np.int64(hi)})
            want = set(ids.tolist())
            spectra = {int(r["detectid"]): r for r in sp if int(r["detectid"]) in want}
            order = np.argsort(fb["detectid"], kind="stable")
            fb = fb[order]
            starts = np.searchsorted(fb["detectid"], ids, "left")
            ends = np.searchsorted(fb["detectid"], ids, "right")
            fibers = {int(i): fb[a:b] for i, a, b in zip(ids, starts, ends)}
    except (tb.NoSuchNodeError, tb.HDF5ExtError, KeyError, ValueError) as err:
        raise HetredError(f"detect file {path}: cannot read its tables ({err.__class__.__name__}: {err})") from None
    finally:
        f.close()
    return ShotDetections(Path(path), keep, spectra, fibers, len(det))


class Cutouts:
    """The im2D file of a shot (``hetred spec2d``): cut-outs by detectid, or none."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: dict[int, np.ndarray] = {}
        if path is None or not path.exists():
            return
        import tables as tb

        try:
            with tb.open_file(str(path), "r") as f:
                t = f.root.FiberImages.read()
        except (OSError, tb.HDF5ExtError, tb.NoSuchNodeError) as err:
            raise HetredError(f"im2D file {path}: cannot read FiberImages ({err.__class__.__name__})") from None
        self.rows = {int(r["detectid"]): r for r in t}

    def get(self, detectid: int) -> np.ndarray | None:
        return self.rows.get(int(detectid))


class ShotFibers:
    """The calibrated fibers of a shot file, one IFU at a time (RA, Dec, calfib of every exposure).

    ``None`` path (no shot file): every IFU is None, and the reports say so."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = {}
        self.rows_of: dict[str, np.ndarray] = {}
        self.f = None
        if path is None or not path.exists():
            return
        import tables as tb

        try:
            self.f = tb.open_file(str(path), "r")
            t = self.f.root.Data.Fibers
            slots = t.col("ifuslot")
        except (OSError, tb.HDF5ExtError, tb.NoSuchNodeError, KeyError) as err:
            self.close()
            raise HetredError(f"shot file {path}: cannot read /Data/Fibers ({err.__class__.__name__})") from None
        for s in np.unique(slots):
            self.rows_of[_s(s)] = np.nonzero(slots == s)[0]

    def ifu(self, ifuslot: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(ra (n,), dec (n,), calfib (n, 1036)) of an IFU slot's fibers, None when absent."""
        if ifuslot in self.cache:
            return self.cache[ifuslot]
        rows = self.rows_of.get(ifuslot)
        out = None
        if self.f is not None and rows is not None and len(rows):
            t = self.f.root.Data.Fibers
            a, b = int(rows[0]), int(rows[-1]) + 1
            if b - a == len(rows):               # one contiguous block: slices, no coordinates
                out = (t.read(a, b, field="ra"), t.read(a, b, field="dec"), t.read(a, b, field="calfib"))
            else:
                out = (t.read_coordinates(rows, field="ra"), t.read_coordinates(rows, field="dec"),
                       t.read_coordinates(rows, field="calfib"))
        self.cache.clear()                       # reports go IFU by IFU: keep one
        self.cache[ifuslot] = out
        return out

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


WAVE = 3470.0 + 2.0 * np.arange(1036)


def offsets(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (arcsec) of RA/Dec (deg) from (ra0, dec0): east positive, north positive."""
    dx = (np.asarray(ra, dtype=np.float64) - ra0) * np.cos(np.radians(dec0)) * 3600.0
    dy = (np.asarray(dec, dtype=np.float64) - dec0) * 3600.0
    return dx.astype(np.float32), dy.astype(np.float32)


def detection_data(det: np.ndarray, spec: np.ndarray | None, fib: np.ndarray, cut: np.ndarray | None,
                   ifu: tuple[np.ndarray, np.ndarray, np.ndarray] | None, datevobs: str) -> DetectionData:
    """A report's data from one /Detections row, its /Spectra row, /Fibers rows, im2D row and
    the IFU's fibers (any of the last three may be missing: the report says what is)."""
    v = {k: float(det[k]) for k in VALUES if k in det.dtype.names}
    notes = []
    if spec is not None:
        wave, s, e = spec["wave1d"].astype(np.float64), spec["spec1d"], spec["spec1d_err"]
    else:
        wave, s, e = WAVE, np.zeros(1036, np.float32), np.zeros(1036, np.float32)
        notes.append("no spectrum in the detect file")
    fib = fib[np.argsort(-fib["weight"], kind="stable")] if len(fib) else fib
    dx, dy = offsets(fib["ra"], fib["dec"], v["ra"], v["dec"]) if len(fib) else (np.zeros(0), np.zeros(0))
    labels = [f"{_s(r['multiframe'])[6:]} fib {int(r['fibnum']):03d} exp{int(r['expnum'])} w {float(r['weight']):.2f}"
              for r in fib[:4]]
    d = DetectionData(int(det["detectid"]), _s(det["inputid"]), _s(det["detectname"]) if "detectname" in
                      det.dtype.names else "", datevobs, v, wave, s, e, dx, dy,
                      np.asarray(fib["weight"], dtype=np.float32) if len(fib) else np.zeros(0, np.float32), labels)
    if cut is not None:
        d.cut_array, d.cut_sum, d.cut_wave = cut["im_array"], cut["im_sum"], cut["im_wave"]
    else:
        notes.append("no 2-D cut-outs (hetred spec2d)")
    if ifu is not None:
        ra, dec, calfib = ifu
        fx, fy = offsets(ra, dec, v["ra"], v["dec"])
        d.ifu = IfuFibers(fx, fy, line_flux_per_fiber(WAVE, calfib, v["wave"], v.get("linewidth", 2.0)))
    else:
        notes.append("no IFU fibers (hetred h5 shot)")
    d.notes = notes
    return d
