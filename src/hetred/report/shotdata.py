"""What a shot page shows, read from the products of the stages (each optional: a page says what
is missing and which command makes it):

* focal-plane images: ``sci_fplane_png`` of each exposure (Karl's 1de.png);
* astrometry: header pointing (``astrom_radec_orig``: TRAJRA in hours, TRAJDEC, PARANGLE) and the
  fitted one (``radec_final``), their difference in arcsec; per exposure the rms of the star
  offsets, matched stars, registration and norm.dat from the astrom marker; its QA plots;
* throughput: ``tp_summary`` (FWHM, response_4540, stars used, source) and the response curve
  (``throughput``: sedtp_f.dat), the QA plot ``tp_png``;
* full-field sky: per exposure ``fullsky_amp`` (amp.dat) with the amps flagged red in
  ``fullsky_ds9`` (vred3's own flag), ``fullsky_png``;
* detections: per IFU the detect markers' counts, the continuum sources (``continuum_rcs``
  lines), the reports of ``hetred report detections`` (their database's ``detections`` table).
"""
from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hetred.io.ampdat import AmpRow, parse_amp_row
from hetred.jobs.units import read_json, read_marker
from hetred.layout import Layout

_DS9_RED = re.compile(r"text=\{([^}]*)\}.*color=red")


@dataclass(frozen=True)
class AmpSky(AmpRow):
    """One amp.dat row (:class:`hetred.io.ampdat.AmpRow`) and whether vred3 flagged it red."""

    red: bool = False


@dataclass
class Exposure:
    exp: int
    fplane_png: Path | None = None
    match_png: Path | None = None
    rms: tuple[float, float] | None = None          #: astrometry rms x, y (arcsec)
    stars: int | None = None
    norm: float | None = None
    amps: list[AmpSky] = field(default_factory=list)
    fullsky_png: Path | None = None


@dataclass
class ShotData:
    datevobs: str
    month: str
    exposures: list[Exposure] = field(default_factory=list)
    header: tuple[float, float, float] | None = None     #: ra (deg), dec, pa of the header
    final: tuple[float, float, float] | None = None      #: fitted ra, dec, pa
    angoff: float | None = None
    astrom_pngs: list[Path] = field(default_factory=list)
    tp: dict = field(default_factory=dict)                #: summary.json
    curve: np.ndarray | None = None                       #: (n, 2) wavelength, throughput
    tp_png: Path | None = None
    detect: dict[str, dict] = field(default_factory=dict)    #: IFU unit -> counts
    continuum: int | None = None
    reports: list[dict] = field(default_factory=list)     #: the report database's detections rows
    report_db: Path | None = None
    report_min_sn: float = 0.0                            #: the S/N cut of the reports
    missing: list[str] = field(default_factory=list)

    @property
    def offset_arcsec(self) -> tuple[float, float] | None:
        """Fitted minus header pointing, (east, north) arcsec."""
        if self.header is None or self.final is None:
            return None
        dra = (self.final[0] - self.header[0]) * math.cos(math.radians(self.final[1])) * 3600.0
        return dra, (self.final[1] - self.header[1]) * 3600.0

    @property
    def n_red(self) -> int:
        return sum(a.red for e in self.exposures for a in e.amps)


def _json(path: Path) -> dict:
    return read_json(path) or {}


def _floats(path: Path, n: int) -> tuple[float, ...] | None:
    try:
        v = tuple(float(x) for x in path.read_text().split()[:n])
    except (OSError, ValueError):
        return None
    return v if len(v) == n else None


def read_amp_dat(path: Path, ds9: Path | None) -> list[AmpSky]:
    """amp.dat rows (:func:`hetred.io.ampdat.parse_amp_row`: a field of ``*`` as NaN, an
    integer as -1; a row that does not parse is left out) with the red flags of ds9.reg."""
    red: set[str] = set()
    if ds9 is not None and ds9.exists():
        red = {m.group(1) for m in _DS9_RED.finditer(ds9.read_text())}
    out = []
    for line in path.read_text().splitlines()[1:]:
        if not line.strip():
            continue
        try:
            row = parse_amp_row(line)
        except ValueError:
            continue
        out.append(AmpSky(**asdict(row), red=row.name in red))
    return out


def _marker(layout: Layout, stage: str, uid: str) -> dict:
    return read_marker(layout, stage, uid) or {}


def shot_exposures(layout: Layout, datevobs: str) -> list[int]:
    """The exposures of a shot: from its astrometry (radec_expNN) or science markers."""
    exps = set()
    for p in layout.glob("astrom_radec_exp", datevobs=datevobs):
        m = re.search(r"radec_exp(\d+)\.dat$", p.name)
        if m:
            exps.add(int(m.group(1)))
    for p in layout.glob("marker_done", stage="sci"):
        m = re.match(rf"{datevobs}_exp(\d+)_", p.name)
        if m:
            exps.add(int(m.group(1)))
    return sorted(exps) or [1, 2, 3]


def read_reports(db: Path) -> tuple[list[dict], dict[str, str]]:
    """The ``detections`` rows of a report database (dicts, by S/N descending) and its ``meta``."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = con.execute("SELECT * FROM detections ORDER BY sn DESC")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        meta = {str(k): str(v) for k, v in con.execute("SELECT key, value FROM meta")}
        return rows, meta
    finally:
        con.close()


def _month_tables(layout: Layout, s: ShotData) -> None:
    """FWHM and response_4540 from the month's fwhm.all and response_4540.all where the shot's
    summary.json has none (``DATEvOBS value ...`` lines)."""
    for key, name, col in (("tp_fwhm_all", "fwhm", 1), ("tp_fwhm_all", "fwhm_nstars", 3),
                           ("tp_response_all", "response_4540", 1), ("tp_response_all", "nstars_used", 2)):
        if name in s.tp:
            continue
        try:
            lines = layout.path(key, month=s.month).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            p = line.split()
            if len(p) > col and p[0] == s.datevobs:
                try:
                    s.tp[name] = float(p[col])
                except ValueError:
                    pass


def shot_data(layout: Layout, datevobs: str) -> ShotData:
    """Everything a shot page shows (module docstring)."""
    night, obs = datevobs[:8], int(datevobs[9:12])
    month = night[:6]
    s = ShotData(datevobs, month)
    # astrometry
    a = _marker(layout, "astrom", datevobs)
    cnt = a.get("counts", {})
    s.header = _floats(layout.path("astrom_radec_orig", datevobs=datevobs), 3)
    if s.header is not None:
        s.header = (s.header[0] * 15.0, s.header[1], s.header[2])
    s.final = _floats(layout.path("radec_final", datevobs=datevobs), 3)
    if s.final is None:
        s.missing.append("astrometry (hetred astrom)")
    s.angoff = cnt.get("angoff")
    p = layout.path("astrom_angoff_png", datevobs=datevobs)
    s.astrom_pngs = [p] if p.exists() else []
    for k, exp in enumerate(shot_exposures(layout, datevobs)):
        e = Exposure(exp)
        p = layout.path("sci_fplane_png", night=night, obs=obs, obs3=f"{obs:03d}", exp=exp)
        e.fplane_png = p if p.exists() else None
        p = layout.path("astrom_match_png", datevobs=datevobs, exp=exp)
        e.match_png = p if p.exists() else None
        rms, stars, norm = cnt.get("rms") or [], cnt.get("stars") or [], cnt.get("norm") or []
        if k < len(rms) and rms[k] is not None:
            e.rms = (float(rms[k][0]), float(rms[k][1]))
        if k < len(stars):
            e.stars = int(stars[k])
        if k < len(norm):
            e.norm = float(norm[k])
        keys = {"month": month, "night": night, "obs3": f"{obs:03d}", "exp": exp}
        amp = layout.path("fullsky_amp", **keys)
        if amp.exists():
            e.amps = read_amp_dat(amp, layout.path("fullsky_ds9", **keys))
        p = layout.path("fullsky_png", **keys)
        e.fullsky_png = p if p.exists() else None
        s.exposures.append(e)
    if not any(e.amps for e in s.exposures):
        s.missing.append("full-field sky amp.dat (hetred fullsky)")
    # throughput
    s.tp = _json(layout.path("tp_summary", month=month, datevobs=datevobs))
    _month_tables(layout, s)
    curve = layout.path("throughput", month=month, datevobs=datevobs)
    if curve.exists():
        try:
            arr = np.loadtxt(curve, ndmin=2)
            s.curve = arr[:, :2] if arr.shape[1] >= 2 else None
        except ValueError:
            s.curve = None
    if s.curve is not None and "response_4540" not in s.tp:
        s.tp["response_4540"] = float(np.interp(4540.0, s.curve[:, 0], s.curve[:, 1]))
        s.tp.setdefault("source", "the response curve at 4540 A (no summary.json)")
    if not s.tp:
        s.missing.append("throughput (hetred throughput)")
    p = layout.path("tp_png", month=month, datevobs=datevobs)
    s.tp_png = p if p.exists() else None
    # detections
    for p in layout.glob("marker_done", stage="detect"):
        if p.name.startswith(datevobs + "_"):
            m = _json(p)
            s.detect[str(m.get("unit", p.name.split(".")[0]))] = m.get("counts", {})
    rcs = layout.path("continuum_rcs", month=month, datevobs=datevobs)
    if rcs.exists():
        s.continuum = sum(1 for line in rcs.read_text().splitlines() if line.strip())
    db = layout.path("report_db", month=month, datevobs=datevobs)
    if db.exists():
        try:
            s.reports, meta = read_reports(db)
            s.report_db = db
            s.report_min_sn = float(meta.get("min_sn", "0") or 0)
        except sqlite3.DatabaseError:
            s.missing.append(f"report database {db} unreadable (rerun hetred report detections --overwrite)")
    return s
