"""The unit of ``hetred calfib``: one IFU of one shot (karlspipe hdr2.1 mkscripts/rcal_all
``RA DEC 35 4505 50 SSS_III_UUU DATEvOBS ... 106``: fitradecsp mode 106 for one IFU, its three
exposures; docs/stages/calfib.md).

Reads, through the layout: the shot's response curve ``DATEvOBSsedtp_f.dat`` (``hetred
throughput``), ``norm.dat`` (``hetred astrom``; missing: 1 1 1 as Karl's scripts), and per
exposure and amp the rectified spectra, the multi file's fiber-to-fiber and the library's
amp-to-amp factor (:mod:`hetred.io.fiberspec`). Writes ``calfib/{month}/DATEvOBS_SSS_III_UUU_cal.fits``:

    HDU 0 calib    (primary)  1e-17 erg/s/cm^2 per 2 Å
    HDU 1 calibe              its 1-sigma error
    HDU 2 calib_c             electrons per 2 Å / (ftf x amp-to-amp x norm)
    HDU 3 calibe_c            its error

each (1344, 1036) float32 on 3470 + 2 i Å; row = 448 (exposure - 1) + 112 amp + fiber - 1 with
amp LL 0, LU 1, RL 2, RU 3 (fitradecsp; hetdex_api append_calfib maps the HDUs to calfib,
calfibe, calfib_counts, calfibe_counts). A missing amp or exposure leaves its rows 0. The
full-field-sky HDU 4 (``imaddsky``) belongs to a later stage.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from hetred._version import __version__
from hetred.calfib.calibrate import GRID, calibrate, flux_factor, karl_error
from hetred.calfib.settings import STAGE, CalfibSettings
from hetred.errors import HetredError
from hetred.io import shotfiles
from hetred.io.fastfits import write_images
from hetred.io.fiberspec import read_amp_spectra
from hetred.jobs.units import ShotUnit, UnitOutcome
from hetred.layout import Layout, parse
from hetred.virus.ids import month_of, parse_datevobs

AMPS = ("LL", "LU", "RL", "RU")
NFIB = 112
HDU_NAMES = ("calib", "calibe", "calib_c", "calibe_c")

__all__ = ["STAGE", "CalfibUnit", "calfib_units", "run_calfib"]


@dataclass(frozen=True)
class CalfibUnit(ShotUnit):
    """One IFU slot of one shot; unit id ``DATEvOBS_SSS`` (night, obs, month: :class:`ShotUnit`)."""

    ifuslot: int

    @property
    def unit(self) -> str:
        return f"{self.datevobs}_{self.ifuslot:03d}"


def calfib_units(layout: Layout, month: str | None = None, shot: str | None = None,
                 ifuslots: list[int] | tuple[int, ...] | None = None) -> list[CalfibUnit]:
    """Shot x IFU slot of the month's science exposures (tarlist, made when missing), or of one shot."""
    from hetred.lists.tarlist import month_entries

    night = obs = None
    if shot is not None:
        try:
            night, obs = parse_datevobs(shot)
        except ValueError as err:
            raise HetredError(str(err)) from None
        month = month_of(night)
    if month is None:
        raise HetredError("give a MONTH or --shot DATEvOBS")
    keys = {(e.night, e.obs, e.ifuslot) for e in month_entries(layout, month) if e.kind == "sci"
            and (night is None or (e.night, e.obs) == (night, obs)) and (not ifuslots or e.ifuslot in ifuslots)}
    return [CalfibUnit(f"{n}v{o:03d}", s) for n, o, s in sorted(keys)]


def _ifu_ids(layout: Layout, u: CalfibUnit, nexp: int) -> tuple[int, str]:
    """(specid, ifuid) of the IFU from the names of its rectified spectra."""
    for exp in range(1, nexp + 1):
        for p in layout.glob("rectified", night=u.night, obs=u.obs, exp=exp, ifuslot=u.ifuslot):
            f = parse("rectified", str(p.relative_to(layout.red)))
            if f is not None:
                return int(f["specid"]), str(f["ifuid"])
    raise HetredError(f"no rectified spectra of IFU slot {u.ifuslot:03d} in {u.datevobs} "
                      f"(run hetred sci --shot {u.datevobs} --ifuslot {u.ifuslot:03d})")


def _karl_errors(layout: Layout, keys: dict, st: CalfibSettings) -> np.ndarray:
    """fitradecsp's ad-hoc errors of an amp on the grid, electrons per 2 Å (n_fib, 1036)."""
    with fits.open(layout.path("multi", **keys), memmap=True) as h:
        ss = np.array(h["sky_subtracted"].data, dtype=np.float64)
        sky = np.array(h["sky_spectrum"].data, dtype=np.float64)
        wave = np.array(h["wavelength"].data, dtype=np.float64)
    sig = karl_error(ss, sky, st.read_noise, 3, st.error_frac)
    out = np.zeros((ss.shape[0], GRID.size))
    for i in range(ss.shape[0]):
        w = wave[i]
        if np.all(np.diff(w) > 0):
            per_aa = sig[i] / np.gradient(w)                       # electrons per Å at each pixel
            out[i] = np.interp(GRID, w, per_aa, left=0.0, right=0.0) * 2.0
    return out


def run_calfib(layout: Layout, u: CalfibUnit, settings: CalfibSettings | None = None) -> UnitOutcome:
    """Calibrated fibers of one IFU of one shot (module docstring)."""
    st = settings or CalfibSettings()
    tp_path = layout.path("throughput", month=u.month, datevobs=u.datevobs)
    if not tp_path.exists():
        raise HetredError(f"no response curve {tp_path} (run hetred throughput --shot {u.datevobs})")
    tp = shotfiles.read_sedtp_f(tp_path)
    factor = flux_factor(tp["wavelength"], tp["throughput"])
    norm_path = layout.path("astrom_norm", datevobs=u.datevobs)
    norm = shotfiles.read_norm(norm_path) if norm_path.exists() else np.ones(st.n_exposures)
    specid, ifuid = _ifu_ids(layout, u, st.n_exposures)
    block = NFIB * len(AMPS)
    arrays = [np.zeros((block * st.n_exposures, GRID.size), np.float32) for _ in HDU_NAMES]
    inputs, found, missing = [str(tp_path)], [], []
    if norm_path.exists():
        inputs.append(str(norm_path))
    for exp in range(1, st.n_exposures + 1):
        for k, amp in enumerate(AMPS):
            keys = dict(night=u.night, obs=u.obs, exp=exp, specid=specid, ifuslot=u.ifuslot, ifuid=ifuid, amp=amp)
            if not layout.path("rectified", **keys).exists():
                missing.append(f"exp{exp:02d}_{amp}")
                continue
            if exp > norm.size:
                raise HetredError(f"{norm_path} has {norm.size} values; exposure {exp} has spectra")
            a = read_amp_spectra(layout, **keys)
            err = np.where(a.error > 0, _karl_errors(layout, keys, st), 0.0) if st.error_model == "karl" else a.error
            out = calibrate(a.counts, err, a.ftf, a.a2a, float(norm[exp - 1]), factor)
            r0 = block * (exp - 1) + NFIB * k
            n = min(NFIB, a.counts.shape[0])
            for arr, v in zip(arrays, out):
                arr[r0:r0 + n] = v[:n]
            found.append(f"exp{exp:02d}_{amp}")
            inputs.append(str(layout.path("rectified", **keys)))
    if not found:
        raise HetredError(f"{u.unit}: no rectified spectra of any exposure and amp")
    path = layout.path("calfib", month=u.month, datevobs=u.datevobs, specid=specid, ifuslot=u.ifuslot, ifuid=ifuid)
    write_images(path, _hdus(arrays, u, specid, ifuid, norm, tp_path, st, found, missing))
    return UnitOutcome(outputs=[str(path)], inputs=inputs,
                       counts={"amps": len(found), "missing": missing, "error_model": st.error_model})


def _hdus(arrays, u: CalfibUnit, specid: int, ifuid: str, norm, tp_path, st: CalfibSettings, found, missing):
    """(data, cards) of the four HDUs (written by :func:`hetred.io.fastfits.write_images`)."""
    units = ("1e-17 erg/s/cm2 per 2 A", "1e-17 erg/s/cm2 per 2 A", "electron per 2 A", "electron per 2 A")
    wcs = [("CRVAL1", float(GRID[0]), "Angstrom"), ("CDELT1", 2.0, "Angstrom"), ("CRPIX1", 1.0, ""),
           ("CTYPE1", "WAVE", "")]
    prov = [("PRODUCT", "calfib", "calibrated fibers (fitradecsp 106)"),
            ("HETRED", __version__, "hetred version"), ("DATEVOBS", u.datevobs, "shot"),
            ("SPECID", f"{specid:03d}", ""), ("IFUSLOT", f"{u.ifuslot:03d}", ""), ("IFUID", ifuid, ""),
            ("ROWS", "448(exp-1)+112amp+fiber-1", "amp LL 0 LU 1 RL 2 RU 3, fiber 1-112"),
            ("TPFILE", tp_path.name, "response curve (sedtp_f)"), ("EXPTIME", 360.0, "s, Karl's fixed value"),
            ("AREA", 5e5, "cm2, Karl's fixed value"), ("ERRMODEL", st.error_model, "calibe: propagated or karl"),
            ("NAMPS", len(found), "amp-exposures present"),
            ("MISSING", " ".join(missing)[:58] or "none", "rows 0")]
    prov += [(f"NORM{k}", float(v), f"norm.dat value of exposure {k}") for k, v in enumerate(norm[:st.n_exposures], 1)]
    out = []
    for k, (a, name, unit) in enumerate(zip(arrays, HDU_NAMES, units)):
        cards = [("EXTNAME", name, ""), ("BUNIT", unit, "")] + wcs + (prov if k == 0 else [])
        out.append((a, cards))
    return out
