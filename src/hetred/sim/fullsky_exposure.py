"""One science exposure at the level of the extracted fibers (what ``hetred sci`` writes into
the multi files' ``spectrum``/``wavelength``/``error1d``), for the tests, demo and benchmark of
``hetred fullsky`` at the scale of the full focal plane (78 IFUs, 312 amps) without raw frames.

Per amp: the optics of the raw-frame simulator (:func:`hetred.sim.optics.build_optics` without the
pixel weights: each fiber's wavelengths, LSF and throughput), the night sky of
:func:`hetred.sim.skyvar.sky_rate` moved and scaled by the amp's draw of the
:class:`~hetred.sim.skyvar.SkyVariation` (level, W0, W1), the continuum fibers, all through the
fiber-to-fiber; then the noise of an extracted spectrum: Poisson on the electrons and the read
noise of ``npix`` pixels per column (sigma^2 = counts + npix rn^2, the ``error1d`` returned), and a
few masked columns (0, as the cosmic-ray mask of sci leaves them: ``masked`` fraction).
The calibration library's fiber-to-fiber is the truth's per amp (the optics' ftf / amp2amp) and
its amp-to-amp factor the truth amp2amp. No sources but the continuum fibers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetred.sim import seeds
from hetred.sim.optics import build_optics
from hetred.sim.skyvar import AmpSky, SkyVariation, continuum_electrons, draw, sky_rate
from hetred.virus.fplane import FplaneEntry

AMPS = ("LL", "LU", "RL", "RU")


@dataclass
class FiberAmp:
    """One amp of the exposure: the multi file's arrays, the library's and the truth."""

    slot: FplaneEntry
    amp: str
    spectrum: np.ndarray       #: (112, 1032) float32 e- per column (0 = masked)
    wave: np.ndarray           #: (112, 1032) float32 Å (the calibration's = truth)
    error: np.ndarray          #: (112, 1032) float32 1-sigma e- (0 = masked)
    ftf: np.ndarray            #: (112, 1032) float32 library fiber-to-fiber (per Å, amp factor apart)
    a2a: float                 #: library amp-to-amp
    sky: np.ndarray            #: (112, 1032) float32 noiseless sky e- per column (truth)
    truth: AmpSky
    dead: list[int] = field(default_factory=list)   #: 1-based dead fibers

    @property
    def name(self) -> str:
        """vred3's ``SSS_III_UUU_AA``."""
        return f"{self.slot.specid:03d}_{self.slot.ifuslot:03d}_{self.slot.ifuid}_{self.amp}"


@dataclass
class FiberExposure:
    seed: int
    night: str
    obs: int
    exp: int
    variation: SkyVariation
    amps: list[FiberAmp]


def simulate_amp(seed: int, night: str, obs: int, exp: int, slot: FplaneEntry, amp: str, var: SkyVariation,
                 sky_level: float = 1.0, exptime: float = 360.0, read_noise: float = 3.0, npix: int = 5,
                 masked: float = 3e-4, family: str = "classic") -> FiberAmp:
    """One amp (module docstring)."""
    o = build_optics(seed, night, slot.ifuslot, amp, family, pixels=False)
    a = draw(seed, var, night, obs, exp, slot.ifuslot, amp, o.dead)
    sky = sky_rate(o, a.w0, a.w1) * (a.factor * sky_level * exptime) * o.ftf
    total = sky.copy()
    cont = continuum_electrons(o, a, exptime)
    if cont is not None:
        total += cont * o.ftf
    r = seeds.rng(seed, seeds.SKYVAR_NOISE, night=night, obs=obs, exp=exp, ifuslot=slot.ifuslot, amp=amp)
    counts = r.poisson(np.maximum(total, 0.0)) + r.normal(0.0, np.sqrt(npix) * read_noise, total.shape)
    err = np.sqrt(np.maximum(total, 0.0) + npix * read_noise ** 2)
    bad = r.random(total.shape) < masked
    counts[bad] = 0.0
    err[bad] = 0.0
    return FiberAmp(slot, amp, counts.astype(np.float32), o.wave.astype(np.float32), err.astype(np.float32),
                    (o.ftf / o.amp2amp).astype(np.float32), float(o.amp2amp), sky.astype(np.float32), a,
                    list(o.dead))


def simulate_fiber_exposure(slots: list[FplaneEntry], seed: int = 0, night: str = "20180110", obs: int = 7,
                            exp: int = 1, variation: SkyVariation | None = None, **kw) -> FiberExposure:
    """Every amp of the IFU ``slots`` in one exposure (:func:`simulate_amp`'s keywords pass on)."""
    var = variation or SkyVariation()
    amps = [simulate_amp(seed, night, obs, exp, s, amp, var, **kw) for s in slots if s.is_ifu for amp in AMPS]
    return FiberExposure(seed, night, obs, exp, var, amps)


def write_exposure(layout, ex: FiberExposure, month: str | None = None) -> list[str]:
    """Write the exposure where ``hetred sci`` and ``hetred twical`` would have: per amp a multi
    file with the HDUs the full-field sky reads (``spectrum``, ``wavelength``, ``error1d`` and the
    header's SPECID, IFUSLOT, IFUID, CALMONTH) and, when missing, the month's calibration library
    (``fiber_to_fiber``; ``amp_to_amp`` the truth's, status measured). Returns the multi paths."""
    from astropy.io import fits

    from hetred.fibers.library import amp_to_amp_hdu
    from hetred.io.atomic import write_fits_atomic
    from hetred.io.fastfits import write_images

    month = month or ex.night[:6]
    out = []
    for a in ex.amps:
        s = a.slot
        keys = {"specid": s.specid, "ifuslot": s.ifuslot, "ifuid": s.ifuid, "amp": a.amp}
        head = [("SPECID", f"{s.specid:03d}", ""), ("IFUSLOT", f"{s.ifuslot:03d}", ""), ("IFUID", s.ifuid, ""),
                ("AMP", a.amp, ""), ("CALMONTH", month, "calibration month"), ("EXTNAME", "processed", "")]
        p = layout.path("multi", night=ex.night, obs=ex.obs, exp=ex.exp, **keys)
        write_images(p, [(np.zeros((1, 1), np.float32), head),
                         (a.spectrum, [("EXTNAME", "spectrum", "")]), (a.wave, [("EXTNAME", "wavelength", "")]),
                         (a.error, [("EXTNAME", "error1d", "")])])
        out.append(str(p))
        lib = layout.path("callib", month=month, **keys)
        if not lib.exists():
            ph = fits.PrimaryHDU()
            for k, v in (("SPECID", f"{s.specid:03d}"), ("IFUSLOT", f"{s.ifuslot:03d}"), ("IFUID", s.ifuid),
                         ("AMP", a.amp), ("MONTH", month)):
                ph.header[k] = v
            write_fits_atomic(lib, fits.HDUList([ph, fits.ImageHDU(a.ftf, name="fiber_to_fiber"),
                                                 amp_to_amp_hdu(a.a2a, 0.0, 1, "measured")]))
    return out


def write_tarlist(layout, exposures: list[FiberExposure], month: str | None = None) -> str:
    """The month's tarlist of these exposures (one sci line per amp), as ``hetred tarlist`` would
    list their raw frames; returns its path."""
    from hetred.io.atomic import write_text_atomic
    from hetred.layout import format_relative

    month = month or exposures[0].night[:6]
    lines = []
    for ex in exposures:
        stamp = f"{ex.night}T{5 + ex.obs % 10:02d}{(7 * ex.exp) % 60:02d}00.0"
        for a in ex.amps:
            lines.append(format_relative("tarlist_line", night=ex.night, obs=ex.obs, exp=ex.exp, stamp=stamp,
                                         ifuslot=a.slot.ifuslot, amp=a.amp, kind="sci"))
    path = layout.path("tarlist", month=month)
    write_text_atomic(path, "\n".join(lines) + "\n")
    return str(path)
