"""What one detection unit reads, each input through the layout, each missing input falling back as
Karl's fitradecsp does (``getspec``, ``getmulti``, ``getfwhm``; shared/reference/detect_fullsky.md
§1.2) with the fallback logged.

| input | layout key | missing |
|---|---|---|
| fiber RA/Dec | ``dithall`` (hetred astrom) | the unit fails |
| exposure norms | ``astrom_norm`` | fails (Karl stops), unless ``allow_no_norm``: 1, 1, 1 |
| shot PA (ADR along the IFU x axis) | ``radec_final`` | PARANGLE of the multi header + 1.45 deg |
| seeing FWHM | ``tp_fwhm`` (hetred throughput's fwhm.out) | ``fwhm_default`` (1.55", Karl's) |
| throughput | ``throughput`` (``DATEvOBSsedtp_f.dat``, first two columns) | the packaged average |
| amp-to-amp | ``callib`` of the multi header's CALMONTH (header A2A) | 1 |
| residual, error-ratio maps | ``resmap_res``, ``resmap_rres`` | 0, ``rres_default`` |
| full-sky wavelength shift | ``fullsky_amp`` (W0, W1 of the amp's row) | 0, 0 |

Keys that the layout does not define yet (stages still being written) count as missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from hetred.detect.settings import DetectSettings
from hetred.errors import HetredError
from hetred.io.ampdat import parse_amp_dat
from hetred.io.resmaps import map_path, read_map
from hetred.layout import Layout, LayoutError
from hetred.stats import biweight

#: what each kind of fallback note says (``[kind] text`` notes; the done marker's ``notes``)
FALLBACKS = {
    "norm": "no norm.dat: exposures normalised by 1, 1, 1",
    "fwhm": "no seeing FWHM of hetred throughput: fwhm_default (Karl's 1.55\")",
    "tp": "no response curve of hetred throughput: the packaged average (Karl's tpavg.dat role)",
    "pa": "no shot PA (radec2_final.dat): ADR direction from PARANGLE + 1.45 deg",
    "a2a": "no amp-to-amp factor (calibration library): 1 (Karl's fallback)",
    "res": "no residual map: 0 (Karl's fallback)",
    "rres": "no error-ratio map: rres_default (Karl's fallback 1.04 inflates every error by 1.235)",
    "w01": "no full-sky wavelength shift (amp.dat): W0 = W1 = 0 (Karl's fallback)",
}

#: packaged average throughput (Karl's tpavg.dat role): hetred/data/throughput/tpavg.dat
TPAVG = ("hetred", "data/throughput/tpavg.dat")


@dataclass
class Dithall:
    """Rows of ``dithall.use`` in file order: (n,) arrays."""

    ra: np.ndarray
    dec: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    multifits: list[str]      #: ``multi_SSS_III_UUU_AA_FFF.ixy``
    timestamp: list[str]
    exposure: list[str]       #: ``expNN``

    def __len__(self) -> int:
        return len(self.ra)


def read_dithall(path: str | Path) -> Dithall:
    """``dithall.use`` (with or without the header line); a bad row fails naming file and line."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise HetredError(f"no fiber coordinates {p} (run hetred astrom for the shot first)") from None
    except OSError as err:
        raise HetredError(f"fiber coordinates {p}: cannot read ({err.strerror})") from None
    ra, dec, xs, ys, mf, ts, ex = [], [], [], [], [], [], []
    for n, line in enumerate(text.splitlines(), 1):
        t = line.split()
        if not t or t[0] == "ra":
            continue
        if len(t) < 10 or not t[7].startswith("multi_") or not t[9].startswith("exp"):
            raise HetredError(f"{p} line {n}: not a dithall.use row (ra dec ifuslot XS YS xfplane yfplane "
                              "multifits timestamp exposure)")
        try:
            ra.append(float(t[0]))
            dec.append(float(t[1]))
            xs.append(float(t[3]))
            ys.append(float(t[4]))
        except ValueError:
            raise HetredError(f"{p} line {n}: not a number in {line.strip()!r}") from None
        mf.append(t[7])
        ts.append(t[8])
        ex.append(t[9])
    if not ra:
        raise HetredError(f"fiber coordinates {p} list no fibers")
    return Dithall(np.array(ra), np.array(dec), np.array(xs), np.array(ys), mf, ts, ex)


def ifu_centre(d: Dithall, ifuslot: int, radius: float) -> tuple[float, float, str, str]:
    """Karl's rfindcen: biweight RA and Dec of the IFU's fibers (all exposures) within ``radius``
    arcsec of IFU (0, 0); returns (ra, dec, specid, ifuid)."""
    tag = f"_{ifuslot:03d}_"
    rows = [i for i, m in enumerate(d.multifits) if m[9:14] == tag]
    if not rows:
        raise HetredError(f"IFU slot {ifuslot:03d} has no fibers in dithall.use")
    specid, ifuid = d.multifits[rows[0]][6:9], d.multifits[rows[0]][14:17]
    idx = np.array(rows)
    sel = idx[np.hypot(d.xs[idx], d.ys[idx]) < radius]
    if sel.size == 0:
        raise HetredError(f"IFU slot {ifuslot:03d}: no fiber within {radius}\" of the IFU centre in dithall.use "
                          "(Karl's rfindcen gives -666 and drops the IFU)")
    ra0, dec0 = np.median(d.ra[sel]), np.median(d.dec[sel])
    # float32 biweight of offsets (the absolute RA would lose 0.05" to float32)
    ra = ra0 + biweight((d.ra[sel] - ra0) * 3600.0)[0] / 3600.0
    dec = dec0 + biweight((d.dec[sel] - dec0) * 3600.0)[0] / 3600.0
    return float(ra), float(dec), specid, ifuid


@dataclass
class ShotInputs:
    """The shot-level inputs of a unit and the fallbacks taken (one line each)."""

    norm: np.ndarray                       #: (3,) exposure normalisation
    fwhm: float                            #: arcsec at 4550 Å
    tp_wave: np.ndarray                    #: throughput curve
    tp: np.ndarray
    pa: float | None                       #: shot PA (deg) from radec2_final.dat
    notes: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    looked: list[str] = field(default_factory=list)     #: every later-stage file looked for (depends)


def _path(layout: Layout, key: str, **fields) -> Path | None:
    try:
        return layout.path(key, **fields)
    except LayoutError:
        return None


def read_columns(path: Path, ncol: int) -> np.ndarray:
    """The first ``ncol`` numbers of every row of a text table (rows (n, ncol), float64)."""
    rows = []
    for line in path.read_text().splitlines():
        t = line.split()
        if len(t) < ncol or t[0].startswith("#"):
            continue
        try:
            rows.append([float(v) for v in t[:ncol]])
        except ValueError:
            continue
    return np.array(rows, dtype=float).reshape(-1, ncol)


@lru_cache(maxsize=1)
def packaged_throughput() -> tuple[np.ndarray, np.ndarray]:
    """The packaged average throughput (wavelength Å, throughput)."""
    pkg, name = TPAVG
    text = resources.files(pkg).joinpath(name).read_text()
    a = np.array([[float(v) for v in ln.split()[:2]] for ln in text.splitlines()
                  if ln.strip() and not ln.startswith("#")])
    return a[:, 0], a[:, 1]


def shot_inputs(layout: Layout, datevobs: str, settings: DetectSettings) -> ShotInputs:
    """norm.dat, FWHM, throughput and PA of a shot (module docstring for the fallbacks)."""
    month = datevobs[:6]
    notes: list[str] = []
    used: list[str] = []
    looked: list[str] = []
    p = layout.path("astrom_norm", datevobs=datevobs)
    looked.append(str(p))
    try:
        norm = np.array([float(v) for v in p.read_text().split()[:3]])
        if norm.size != 3 or not np.all(np.isfinite(norm)) or np.any(norm <= 0):
            raise HetredError(f"exposure normalisation {p}: expected three positive numbers")
        used.append(str(p))
    except (OSError, ValueError):
        if not settings.allow_no_norm:
            raise HetredError(f"no exposure normalisation {p} (Karl's fitradecsp stops without norm.dat; run "
                              "hetred astrom, or set allow_no_norm)") from None
        norm = np.ones(3)
        notes.append(f"[norm] no norm.dat ({p}): exposures normalised by 1, 1, 1")
    if settings.fwhm > 0:
        fwhm = settings.fwhm
    else:
        fp = _path(layout, "tp_fwhm", month=month, datevobs=datevobs)
        if fp is not None:
            looked.append(str(fp))
        fwhm = 0.0
        if fp is not None and fp.is_file():
            try:
                fwhm = float(fp.read_text().split()[0])
                used.append(str(fp))
            except (ValueError, IndexError):
                fwhm = 0.0
        if fwhm <= 0:
            fwhm = settings.fwhm_default
            notes.append(f"[fwhm] no seeing FWHM from the throughput stage ({fp or 'tp_fwhm'}): "
                         f"FWHM {fwhm}\" (Karl's default)")
    tpp = _path(layout, "throughput", month=month, datevobs=datevobs)
    if tpp is not None:
        looked.append(str(tpp))
    tp_wave = tp = None
    if tpp is not None and tpp.is_file():
        a = read_columns(tpp, 2)
        if len(a) > 1:
            tp_wave, tp = a[:, 0], a[:, 1]
            used.append(str(tpp))
    if tp is None:
        tp_wave, tp = packaged_throughput()
        notes.append(f"[tp] no throughput curve ({tpp}): the packaged average (Karl's tpavg.dat role)")
    rp = layout.path("radec_final", datevobs=datevobs)
    looked.append(str(rp))
    pa = None
    try:
        pa = float(rp.read_text().split()[2])
        used.append(str(rp))
    except (OSError, ValueError, IndexError):
        if settings.adr_direction == "parangle":
            notes.append(f"[pa] no shot PA ({rp}): ADR direction from PARANGLE + 1.45 deg")
    return ShotInputs(norm, float(fwhm), np.asarray(tp_wave, float), np.asarray(tp, float), pa, notes, used, looked)


@dataclass
class AmpCalib:
    """Per-amp calibration inputs: amp-to-amp curve, residual and error-ratio maps, W0/W1."""

    a2a_wave: np.ndarray
    a2a: np.ndarray
    res: np.ndarray | float
    rres: np.ndarray | float
    w0: float
    w1: float


def amp_calib(layout: Layout, header, datevobs: str, exp: int, specid: int, ifuslot: int, ifuid: str,
              amp: str, settings: DetectSettings, notes: list[str], used: list[str],
              looked: list[str] | None = None) -> AmpCalib:
    """The amp's calibration inputs (module docstring); missing ones fall back, one note each kind."""
    from astropy.io import fits

    looked = looked if looked is not None else []
    night, obs = datevobs[:8], int(datevobs[9:])
    a2a = None
    calmonth = str(header.get("CALMONTH", "") or "")
    cp = None
    if calmonth:
        cp = layout.path("callib", month=calmonth, specid=specid, ifuslot=ifuslot, ifuid=ifuid, amp=amp)
        looked.append(str(cp))
        try:
            with fits.open(cp) as h:
                a2a = float(h["amp_to_amp"].header["A2A"])
            used.append(str(cp))
        except (OSError, KeyError, ValueError):
            a2a = None
    if a2a is None or not np.isfinite(a2a) or a2a <= 0:
        _note(notes, "a2a", f"no amp-to-amp factor (calibration library {cp or 'unknown: no CALMONTH'}): 1")
        a2a = 1.0
    res: np.ndarray | float = 0.0
    rres: np.ndarray | float = settings.rres_default
    for what in ("res", "rres"):
        arr, mp = read_map(layout, what, datevobs[:6], specid, amp)
        looked.append(str(map_path(layout, what, datevobs[:6], specid, amp)))
        if mp is not None:
            used.append(str(mp))
            if what == "res":
                res = arr
            else:
                rres = arr
        else:
            default = "0" if what == "res" else f"{settings.rres_default}"
            _note(notes, what, f"no {what} map ({looked[-1]}): {default} (Karl's fallback)")
    w0 = w1 = 0.0
    ap = layout.path("fullsky_amp", month=datevobs[:6], night=night, obs3=f"{obs:03d}", exp=exp)
    looked.append(str(ap))
    found = False
    if ap.is_file():
        key = f"{specid:03d}_{ifuslot:03d}_{ifuid}_{amp}"
        row = next((r for r in parse_amp_dat(ap.read_text()) if r.name == key), None)
        if row is not None and np.isfinite(row.w0) and np.isfinite(row.w1):      # a field of *: not usable
            w0, w1 = row.w0, row.w1
            found = True
        used.append(str(ap))
    if not found:
        _note(notes, "w01", f"no full-sky wavelength shift ({ap}): W0 = W1 = 0")
    return AmpCalib(np.array([3500.0, 4500.0, 5500.0]), np.full(3, a2a), res, rres, w0, w1)


def _note(notes: list[str], kind: str, text: str) -> None:
    """One note per kind of fallback (the first occurrence's text)."""
    tag = f"[{kind}] "
    if not any(n.startswith(tag) for n in notes):
        notes.append(tag + text)
