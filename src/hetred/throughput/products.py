"""The files of ``hetred throughput`` (formats: docs/stages/throughput.md, hetred.io.shotfiles).

Per shot (``throughput/{month}/{datevobs}/``): ``fwhm.out``, ``stars.dat``, ``stars.fits``,
``summary.json``, ``res/{datevobs}sedtpa.png``; per month (``throughput/{month}/``):
``tp/{datevobs}sedtp.dat``, ``tp/{datevobs}sedtp_f.dat`` and the tables ``fwhm.all`` and
``response_4540.all``, rebuilt from every shot's summary under a lock so that units finishing
together keep every line.
"""
from __future__ import annotations

import fcntl
import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred._version import __version__
from hetred.errors import HetredError
from hetred.io import shotfiles
from hetred.io.atomic import write_fits_atomic, write_json_atomic, write_text_atomic
from hetred.layout import Layout
from hetred.throughput.sedfit import SED_WAVE
from hetred.throughput.shot import ShotResult
from hetred.throughput.starfit import WAVE
from hetred.virus.ids import month_of, parse_datevobs

STAR_COLUMNS = ("id", "ra", "dec", "g", "ra_fit", "dec_fit", "dx", "dy", "pos_err", "nfib", "fwhm", "fwhm_used",
                "amp", "snr", "sed_chi2", "nmodels", "tp_g", "offset", "scale", "rms", "flag", "reason")


def format_stars(res: ShotResult, datevobs: str, source: str) -> str:
    """``stars.dat``: ``#`` header (shot, FWHM, source of the response curve, columns), then one
    line per catalogue star with g < the limit; ``reason`` is ``-`` for stars in the curve."""
    head = [f"# hetred {__version__} throughput of {datevobs}: stars of the catalogue with g below the limit",
            f"# fwhm {res.fwhm:.4f} scale {res.fwhm_scale:.4f} nstars {res.fwhm_n} (used {res.fwhm_used:.4f})",
            f"# response curve from: {source}",
            ("# dx, dy: fitted - catalogue position, arcsec east, north (pos_err: its 1-sigma); amp: counts "
             "per 2 A at 4500-4600 A"),
            "# " + " ".join(STAR_COLUMNS)]
    rows = []
    for s in res.stars:
        rows.append(f"{s.id} {s.ra:.6f} {s.dec:.6f} {s.mags[1]:.3f} {s.ra_fit:.6f} {s.dec_fit:.6f} {s.dx:+.3f} "
                    f"{s.dy:+.3f} {s.pos_err:.3f} {s.nfib:d} {s.fwhm:.3f} {int(s.fwhm_used)} {s.amp:.2f} {s.snr:.1f} "
                    f"{s.sed_chi2:.3f} {s.nmodels:d} {s.tp_g:.4f} {s.offset:.4f} {s.scale:.4f} {s.rms:.4f} "
                    f"{s.flag:d} {s.reason.replace(' ', '_') if s.reason else '-'}")
    return "\n".join(head + rows) + "\n"


def read_stars(path: str | Path) -> list[dict]:
    """The rows of a ``stars.dat`` as dicts (numbers converted, reason with spaces restored)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        v = line.split()
        d = dict(zip(STAR_COLUMNS, v))
        for k in STAR_COLUMNS[1:-1]:
            d[k] = float(d[k])
        d["reason"] = "" if d["reason"] == "-" else d["reason"].replace("_", " ")
        out.append(d)
    return out


def starspec_hdul(res: ShotResult, datevobs: str) -> fits.HDUList:
    """``stars.fits``: HDU ``counts``/``error`` (n, 1036) counts per 2 Å in one exposure on
    3470 + 2 i Å; ``c100`` (n, 21) counts per 100 Å; ``sed`` (n, 21) erg/s/cm^2/Å; ``tp``
    (n, 21); ``stars`` table (id, reason); rows = stars of ``stars.dat`` in order."""
    n = len(res.stars)
    counts = np.zeros((n, WAVE.size), np.float32)
    error = np.zeros((n, WAVE.size), np.float32)
    for k, s in enumerate(res.stars):
        if s.spectrum is not None:
            counts[k], error[k] = s.spectrum.counts, s.spectrum.error
    h0 = fits.PrimaryHDU()
    h0.header["HETRED"] = __version__
    h0.header["DATEVOBS"] = datevobs
    h0.header["FWHM"] = (res.fwhm_used, "arcsec at 4550 A, used for the spectra")
    hd = [h0]
    for name, data, unit in (("counts", counts, "electron per 2 A, one exposure"), ("error", error, "electron"),
                             ("c100", np.array([s.c100 for s in res.stars], np.float32).reshape(n, SED_WAVE.size),
                              "electron per 100 A"),
                             ("sed", np.array([s.sed for s in res.stars], np.float32).reshape(n, SED_WAVE.size),
                              "erg/s/cm2/A"),
                             ("tp", np.array([s.tp for s in res.stars], np.float32).reshape(n, SED_WAVE.size), "")):
        e = fits.ImageHDU(data, name=name)
        e.header["BUNIT"] = unit
        e.header["CRVAL1"] = float(WAVE[0] if name in ("counts", "error") else SED_WAVE[0])
        e.header["CDELT1"] = 2.0 if name in ("counts", "error") else 100.0
        e.header["CRPIX1"] = 1.0
        hd.append(e)
    hd.append(fits.BinTableHDU.from_columns([
        fits.Column(name="ID", format="24A", array=np.array([s.id for s in res.stars], dtype="U24")),
        fits.Column(name="REASON", format="80A", array=np.array([s.reason[:80] for s in res.stars], dtype="U80"))],
        name="stars"))
    return fits.HDUList(hd)


def write_shot_files(layout: Layout, month: str, datevobs: str, res: ShotResult, tp: dict, source: str,
                     settings_dict: dict) -> list[Path]:
    """Every per-shot file; ``tp``: the rows of the response curve (keys of
    :data:`hetred.io.shotfiles.SEDTP_F_COLUMNS`) and ``c1``, ``c2``, ``response_4540``."""
    k = dict(month=month, datevobs=datevobs)
    out = []
    p = layout.path("tp_fwhm", **k)
    write_text_atomic(p, shotfiles.format_fwhm_out(res.fwhm, res.fwhm_scale, res.fwhm_n))
    out.append(p)
    p = layout.path("tp_stars", **k)
    write_text_atomic(p, format_stars(res, datevobs, source))
    out.append(p)
    p = layout.path("tp_starspec", **k)
    write_fits_atomic(p, starspec_hdul(res, datevobs))
    out.append(p)
    if res.combined is not None and res.combined.n > 0:
        c = res.combined
        p = layout.path("tp_sedtp", **k)
        write_text_atomic(p, shotfiles.format_sedtp(SED_WAVE, c.tp, c.tp_low, c.tp_high, c.tp_flag2))
        out.append(p)
    p = layout.path("throughput", **k)
    write_text_atomic(p, shotfiles.format_sedtp_f(tp["wavelength"], tp["throughput"], tp["rat_poly"],
                                                  tp["tp_gband"]))
    out.append(p)
    used = [s for s in res.stars if not s.reason]
    summary = {"datevobs": datevobs, "hetred_version": __version__, "source": source,
               "response_4540": tp["response_4540"], "c1": tp.get("c1"), "c2": tp.get("c2"),
               "fwhm": res.fwhm, "fwhm_scale": res.fwhm_scale, "fwhm_nstars": res.fwhm_n, "fwhm_used": res.fwhm_used,
               "nstars_catalog": len(res.stars), "nstars_used": len(used),
               "tp_g": {"n": res.tp_g[0], "biweight": res.tp_g[1], "scale": res.tp_g[2]},
               "rejected": {s.id: s.reason for s in res.stars if s.reason}, "settings": settings_dict}
    p = layout.path("tp_summary", **k)
    write_json_atomic(p, summary)
    out.append(p)
    return out


def month_summaries(layout: Layout, month: str) -> list[dict]:
    """The summaries of the month's shots, sorted by DATEvOBS (unreadable ones skipped)."""
    out = []
    for p in layout.glob("tp_summary", month=month):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda d: d.get("datevobs", ""))


def rebuild_month_tables(layout: Layout, month: str) -> tuple[Path, Path]:
    """Rewrite ``fwhm.all`` and ``response_4540.all`` of the month from every shot's summary,
    holding the month's lock (units finishing together keep every line)."""
    lock = layout.path("tp_lock", month=month)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            rows = month_summaries(layout, month)
            fpath = layout.path("tp_fwhm_all", month=month)
            write_text_atomic(fpath, shotfiles.format_fwhm_all(
                [(d["datevobs"], d["fwhm"], d["fwhm_scale"], d["fwhm_nstars"]) for d in rows]))
            rpath = layout.path("tp_response_all", month=month)
            write_text_atomic(rpath, "".join(f"{d['datevobs']} {d['response_4540']:.4f} {d['nstars_used']} "
                                             f"{d['source'].split(':')[0].replace(' ', '-')}\n" for d in rows))
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return fpath, rpath


def month_median_curve(layout: Layout, month: str, exclude: str) -> tuple[dict, list[str]]:
    """The month's median response curve over the shots whose curve came from their own stars
    (``source`` 'stars'), ``exclude`` left out: (curve rows, the shots used). Raises
    :class:`HetredError` when the month has none."""
    curves, used = [], []
    for d in month_summaries(layout, month):
        if d.get("datevobs") == exclude or not str(d.get("source", "")).startswith("stars"):
            continue
        p = layout.path("throughput", month=month, datevobs=d["datevobs"])
        try:
            curves.append(shotfiles.read_sedtp_f(p))
            used.append(d["datevobs"])
        except HetredError:
            continue
    if not curves:
        raise HetredError(f"{exclude}: no star in the response curve and no other shot of {month} with its own "
                          f"curve for the fallback (run the month's other shots first, then rerun this one)")
    wave = curves[0]["wavelength"]
    tp = np.median(np.array([np.interp(wave, c["wavelength"], c["throughput"]) for c in curves]), axis=0)
    return {"wavelength": wave, "throughput": tp, "rat_poly": np.zeros_like(wave),
            "tp_gband": np.zeros_like(wave)}, used


def unit_month(datevobs: str) -> str:
    """YYYYMM of a DATEvOBS (the month folder of its throughput products)."""
    try:
        night, _ = parse_datevobs(datevobs)
    except ValueError as err:
        raise HetredError(str(err)) from None
    return month_of(night)
