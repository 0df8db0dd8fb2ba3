"""The fibers of one detection unit (one IFU of one shot): fitradecsp ``getspec`` and ``getfl2d``
(karlspipe hdr2.1/progs/fitradecsp.f; detect_fullsky.md §1.1-1.3, §1.5).

Every ``dithall.use`` row within ``radius`` (35") of the IFU centre (Karl's rfindcen) is loaded
in file order, all exposures pooled; its multi file (``multi``) gives the spectrum through
:func:`hetred.detect.fibers.amp_spectra` (norm.dat of its exposure, the throughput, the amp's
calibration). A missing multi file or an amp without data leaves its fibers empty (flagged) with
a note; non-finite values are masked with a note.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetred.detect import inputs as I
from hetred.detect.fibers import AmpSpectra, amp_spectra, empty_amp
from hetred.detect.psf import adr_directions, tangent
from hetred.detect.settings import DetectSettings
from hetred.errors import HetredError
from hetred.layout import Layout
from hetred.stats import biweight

MULTI_HDUS = ("wavelength", "sky_subtracted", "fiber_to_fiber", "sky_spectrum", "trace", "chi2", "error", "error1d")


@dataclass
class FiberSet:
    """The loaded fibers (n,) in dithall order and their grid spectra (n, 1036)."""

    datevobs: str
    ifuslot: int
    specid: str
    ifuid: str
    ra0: float
    dec0: float
    ra: np.ndarray
    dec: np.ndarray
    x: np.ndarray                  #: arcsec east of the IFU centre (tangent plane)
    y: np.ndarray                  #: arcsec north
    xs: np.ndarray                 #: IFU x, y (dithall XS, YS)
    ys: np.ndarray
    multifits: list[str]           #: multi_SSS_III_UUU_AA_FFF.ixy
    expname: list[str]             #: expNN
    timestamp: list[str]
    exp: np.ndarray                #: 1-based exposure
    fiber: np.ndarray              #: 1-based fiber of the amp
    amp_index: np.ndarray          #: index into ``amps``
    az: np.ndarray                 #: STRUCTAZ of the fiber's multi file (deg)
    ux: np.ndarray                 #: ADR shift direction of the fiber (east, north)
    uy: np.ndarray
    counts: np.ndarray
    counts_err: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    good: np.ndarray
    chi2: np.ndarray
    rvar: np.ndarray
    amps: list[tuple[str, int]]    #: (multi_SSS_III_UUU_AA, exposure)
    amp_wave: list[np.ndarray]     #: per amp (112, 1032) corrected wavelengths
    amp_trace: list[np.ndarray]    #: per amp (112, 1032) 1-based trace rows
    ratzero: float
    shot: I.ShotInputs
    notes: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    looked: list[str] = field(default_factory=list)     #: every input file looked for (the unit's depends)

    def __len__(self) -> int:
        return len(self.ra)

    @property
    def stem(self) -> str:
        """``DATEvOBS_SSS_III_UUU`` (Karl's output name)."""
        return f"{self.datevobs}_{self.specid}_{self.ifuslot:03d}_{self.ifuid}"


def read_multi_arrays(path) -> tuple[dict[str, np.ndarray], dict]:
    """The HDUs fitradecsp reads from a multi file and its primary header values."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as h:
        names = {(x.name or "").lower(): x for x in h}
        missing = [n for n in MULTI_HDUS if n not in names]
        if missing:
            raise HetredError(f"{path}: not a multi file (no HDU {', '.join(missing)})")
        arrays = {n: np.asarray(names[n].data, dtype=np.float32) for n in MULTI_HDUS}
        head = {k: h[0].header.get(k) for k in ("STRUCTAZ", "CALMONTH", "PARANGLE", "EXPTIME")}
    return arrays, head


def load_fibers(layout: Layout, datevobs: str, ifuslot: int, settings: DetectSettings) -> FiberSet:
    """The unit's fibers and spectra (module docstring)."""
    night, obs = datevobs[:8], int(datevobs[9:])
    dpath = layout.path("dithall", datevobs=datevobs)
    d = I.read_dithall(dpath)
    ra0, dec0, specid, ifuid = I.ifu_centre(d, ifuslot, settings.center_radius)
    shot = I.shot_inputs(layout, datevobs, settings)
    notes = list(shot.notes)
    used = [str(dpath)] + shot.inputs
    looked = [str(dpath)] + shot.looked
    x_all, y_all = tangent(d.ra, d.dec, ra0, dec0)
    sel = np.nonzero(np.hypot(x_all, y_all) < settings.radius)[0]
    if sel.size == 0:
        raise HetredError(f"{datevobs} IFU {ifuslot:03d}: no fiber within {settings.radius}\" of the IFU centre")
    amps: list[tuple[str, int]] = []
    amp_of: dict[tuple[str, int], int] = {}
    idx = np.empty(sel.size, dtype=np.int64)
    exps = np.empty(sel.size, dtype=np.int64)
    fib = np.empty(sel.size, dtype=np.int64)
    for k, r in enumerate(sel):
        mf, ex = d.multifits[r], d.exposure[r]
        try:
            e = int(ex[3:])
            fib[k] = int(mf[21:24])
        except ValueError:
            raise HetredError(f"{dpath}: bad multifits/exposure {mf} {ex}") from None
        key = (mf[:20], e)
        if key not in amp_of:
            amp_of[key] = len(amps)
            amps.append(key)
        idx[k] = amp_of[key]
        exps[k] = e
    spectra: list[AmpSpectra] = []
    az_amp = np.full(len(amps), settings.structaz_default)
    pa_header = None
    for a, (name, e) in enumerate(amps):
        sp, ifs, ifu, amp = int(name[6:9]), int(name[10:13]), name[14:17], name[18:20]
        path = layout.path("multi", night=night, obs=obs, exp=e, specid=sp, ifuslot=ifs, ifuid=ifu, amp=amp)
        if not 1 <= e <= shot.norm.size:
            raise HetredError(f"{dpath}: exposure exp{e:02d} has no norm.dat value")
        label = f"{name} exp{e:02d}"
        looked.append(str(path))
        try:
            arrays, head = read_multi_arrays(path)
        except FileNotFoundError:
            notes.append(f"{label}: no multi file {path}: its fibers are empty")
            spectra.append(empty_amp(settings))
            continue
        except OSError as err:
            notes.append(f"{label}: unreadable multi file {path} ({err}): its fibers are empty")
            spectra.append(empty_amp(settings))
            continue
        used.append(str(path))
        az = head.get("STRUCTAZ")
        if az is None or not np.isfinite(float(az)) or float(az) < -1000:
            az = settings.structaz_default
        az_amp[a] = float(az)
        if pa_header is None and head.get("PARANGLE") is not None:
            pa_header = float(head["PARANGLE"]) + 1.45
        cal = I.amp_calib(layout, head, datevobs, e, sp, ifs, ifu, amp, settings, notes, used, looked)
        s = amp_spectra(arrays, norm=float(shot.norm[e - 1]), tp_wave=shot.tp_wave, tp=shot.tp,
                        a2a_wave=cal.a2a_wave, a2a=cal.a2a, res=cal.res, rres=cal.rres, w0=cal.w0, w1=cal.w1,
                        settings=settings, notes=notes, label=label)
        if not np.any(s.counts != 0):
            notes.append(f"{label}: no usable pixel (dead amp): its fibers are flagged")
        spectra.append(s)
    rows = fib - 1

    def gather(attr: str) -> np.ndarray:
        return np.stack([getattr(spectra[a], attr)[r] for a, r in zip(idx, rows)])

    counts = gather("counts")
    good = gather("good")
    zero = int(np.count_nonzero(~good))
    total = good.size
    pa = shot.pa if shot.pa is not None else pa_header
    az = az_amp[idx]
    ux, uy = adr_directions(az, pa, settings)
    return FiberSet(datevobs, ifuslot, specid, ifuid, ra0, dec0, d.ra[sel], d.dec[sel], x_all[sel], y_all[sel],
                    d.xs[sel], d.ys[sel], [d.multifits[r] for r in sel], [d.exposure[r] for r in sel],
                    [d.timestamp[r] for r in sel], exps, fib, idx, az, ux, uy, counts, gather("counts_err"),
                    gather("flux"), gather("flux_err"), good, gather("chi2"), gather("rvar"), amps,
                    [s.wave for s in spectra], [s.trace for s in spectra],
                    100.0 * zero / total if total else 0.0, shot, notes, used, sorted(set(looked)))


def fiber_flags(fs: FiberSet, window: float, settings: DetectSettings
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """getfl2d: per fiber the biweights of its non-zero counts (sflux), their squared errors
    (sfluxe = sqrt) and pixel weights (xw: 1 real, 0 filled) within ``flag_wave +- window`` Å
    (strictly); a fiber with no such pixel has 0s (Karl's biweight of nothing) and flag 1.
    Returns (iflag int8, sflux, sfluxe, xw), each (n,)."""
    grid = 3470.0 + 2.0 * np.arange(fs.counts.shape[1])
    cols = np.nonzero((grid > settings.flag_wave - window) & (grid < settings.flag_wave + window))[0]
    c = fs.counts[:, cols].astype(np.float32)
    has = c != 0
    n = len(fs)
    sflux, sfluxe, xw = np.zeros(n), np.zeros(n), np.zeros(n)
    any_ = has.any(axis=1)
    if any_.any():
        sflux[any_] = biweight(np.where(has, c, np.nan)[any_], axis=1)[0]
        e2 = np.where(has, fs.counts_err[:, cols].astype(np.float32) ** 2, np.nan)
        b2 = biweight(e2[any_], axis=1)[0]
        sfluxe[any_] = np.sqrt(np.maximum(b2, 0.0))
        xw[any_] = biweight(np.where(has, fs.good[:, cols].astype(np.float32), np.nan)[any_], axis=1)[0]
    return (sflux == 0).astype(np.int8), sflux, sfluxe, xw
