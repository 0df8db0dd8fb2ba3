"""The sky differing between IFUs and amps in a science exposure: what ``hetred fullsky``
(karlspipe vred3.f) measures against the exposure's master sky.

With a :class:`SkyVariation` every amp of every science exposure gets its own draw
(:func:`draw`, from the stream ``seeds.SKYVAR`` of (night, obs, exp, ifuslot, amp)):

* **level**: the night sky times a factor uniform in ``level`` (0.9-1.1): what vred3 calls the
  amp's Factor (relative to the exposure's master sky);
* **wavelength**: the amp's wavelength-calibration error. The pixel whose calibration wavelength
  (the multi file's ``wavelength``) is lambda sees the light of lambda' = lambda + W0 + W1 (4500 -
  lambda) (:func:`moved`), W0 uniform within +-``w0`` Å, W1 within +-``w1`` per Å. *All* the light
  of the amp moves: the sky, and every source (stars, emission lines, the continuum fibers) --
  the frame simulator evaluates the sources at lambda' too (``hetred.sim.frame.AmpModel``). This
  is Karl's convention: vred3 measures W0/W1 on the sky, relative to the exposure's master sky,
  and fitradecsp (``hetred detect``, ``hetred continuum``) adds them to every fiber's
  wavelengths, lambda += W0 + W1/1000 (4500 - lambda) (FR:1733-1738; shared/reference/
  detect_fullsky.md §1.2), correcting the sources with them. The source truths keep their true
  (sky-frame) wavelengths; the multi files' wavelengths stay the calibration's;
* **continuum fibers**: ``continuum`` (0-10) live fibers of the amp, each with a flat f_lambda
  continuum of ``continuum_level`` (0.2-0.6) x the dark-sky continuum at 4540 Å in a fiber,
  entering only that fiber (a test of vred3's continuum-fiber count, not a star: it has no PSF),
  at the moved wavelengths as every source.
  They are sources: the frame adds them with the scene's, so the shot truth's ``injected`` list
  has them (the sci checks leave them out of the source-free fibers).

:func:`sky_rate` is the frame simulator's night sky (continuum + emission lines through the
throughput, the LSF and the pixels) on the moved wavelengths; :func:`truth_record` what the shot
truth records per exposure and amp (``sky_variation``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hetred.sim import seeds, spectra

PIVOT = 4500.0      #: Å, vred3's W1 pivot


@dataclass(frozen=True)
class SkyVariation:
    """Ranges of the per-amp sky differences (module docstring)."""

    level: tuple[float, float] = (0.9, 1.1)
    w0: float = 0.5                       #: Å, W0 uniform in [-w0, w0]
    w1: float = 0.3e-3                    #: per Å, W1 uniform in [-w1, w1]
    continuum: tuple[int, int] = (0, 10)  #: continuum fibers per amp, uniform integer (inclusive)
    continuum_level: tuple[float, float] = (0.2, 0.6)   #: x the fiber's dark-sky continuum at 4540 Å

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class AmpSky:
    """One amp's draw in one exposure."""

    factor: float
    w0: float                       #: Å
    w1: float                       #: per Å
    fibers: tuple[int, ...]         #: 0-based rows (multi-file order) of the continuum fibers
    flux: tuple[float, ...]         #: their f_lambda, erg/s/cm^2/Å (flat)


def draw(seed: int, var: SkyVariation, night: str, obs: int, exp: int, ifuslot: int, amp: str,
         dead: list[int] | tuple[int, ...] = ()) -> AmpSky:
    """The draw of one amp in one exposure; continuum fibers among the live ones (``dead``: 1-based)."""
    r = seeds.rng(seed, seeds.SKYVAR, night=night, obs=obs, exp=exp, ifuslot=ifuslot, amp=amp)
    factor = float(r.uniform(*var.level))
    w0 = float(r.uniform(-var.w0, var.w0))
    w1 = float(r.uniform(-var.w1, var.w1))
    n = int(r.integers(var.continuum[0], var.continuum[1] + 1))
    live = np.array([f for f in range(112) if f + 1 not in set(dead)])
    fibers = np.sort(r.choice(live, size=min(n, live.size), replace=False)) if n else np.zeros(0, int)
    unit = spectra.SKY_CONT_4540 * spectra.FIBER_AREA_ARCSEC2
    flux = r.uniform(*var.continuum_level, size=fibers.size) * unit
    return AmpSky(factor, w0, w1, tuple(int(f) for f in fibers), tuple(float(f) for f in flux))


def moved(wave: np.ndarray, w0: float, w1: float) -> np.ndarray:
    """lambda' = lambda + W0 + W1 (4500 - lambda): the true wavelength of the light (sky and
    sources) that reaches the pixel of calibration wavelength lambda (Å, any shape)."""
    return wave + w0 + w1 * (PIVOT - wave)


def line_position(lam: float, w0: float, w1: float) -> float:
    """The calibration wavelength where a line (sky or source) of true wavelength ``lam`` lands
    (inverse of :func:`moved`)."""
    return (lam - w0 - w1 * PIVOT) / (1.0 - w1)


def sky_rate(optics, w0: float = 0.0, w1: float = 0.0) -> np.ndarray:
    """Night-sky electrons per second per fiber and column before fiber throughput (the frame
    simulator's ``AmpModel._sky_rate``), the sky moved by (W0, W1): the continuum at lambda' over the
    pixel's width in true wavelength, (1 - W1) dlambda; each line at its calibration position."""
    o = optics
    wv = moved(o.wave, w0, w1)
    cont = spectra.on_pixels(spectra.sky_continuum_fine(), wv) * spectra.FIBER_AREA_ARCSEC2
    rate = spectra.electrons(cont, wv, o.dwave * (1.0 - w1), 1.0)
    for lam, flux in spectra.sky_line_fluxes():
        frac = spectra.lines_per_pixel(o.coeffs, o.fwhm, [(line_position(lam, w0, w1), 1.0)])
        rate += frac * (flux * spectra.FIBER_AREA_ARCSEC2 * spectra.AREA_CM2 / spectra.HC_ERG_A
                        * lam * float(spectra.throughput(lam)))
    return rate


def continuum_electrons(optics, a: AmpSky, exptime: float, transparency: float = 1.0) -> np.ndarray | None:
    """Electrons per column (112, 1032) of the continuum fibers, before fiber throughput (None
    without any), their light at the amp's moved wavelengths (throughput and photon energy of
    lambda'; the pixel's width in true wavelength (1 - W1) dlambda)."""
    if not a.fibers:
        return None
    o = optics
    out = np.zeros(o.wave.shape)
    for f, flux in zip(a.fibers, a.flux):
        out[f] = spectra.electrons(np.full(o.wave.shape[1], flux * transparency), moved(o.wave[f], a.w0, a.w1),
                                   o.dwave[f] * (1.0 - a.w1), exptime)
    return out


def truth_record(a: AmpSky, exp: int, slot, amp: str) -> dict:
    """The shot truth's entry of one amp in one exposure."""
    from hetred.virus.ids import multiframe

    return {"exp": int(exp), "ifuslot": int(slot.ifuslot), "specid": int(slot.specid), "ifuid": str(slot.ifuid),
            "amp": amp, "multiframe": multiframe(slot.specid, slot.ifuslot, slot.ifuid, amp),
            "factor": a.factor, "w0": a.w0, "w1": a.w1, "continuum_fibers": [f + 1 for f in a.fibers],
            "continuum_flux": list(a.flux)}


TRUTH_MEANING = ("per science exposure and amp: factor = the amp's sky level factor; all the light (sky and "
                 "sources) seen at calibration wavelength lambda is the light of lambda + w0 + w1 (4500 - lambda) "
                 "(Å, per Å: the amp's wavelength-calibration error, Karl's W0/W1 that detect adds to the fibers' "
                 "wavelengths; source truths keep their true wavelengths); "
                 "continuum_fibers (1-based multi-file rows) carry a flat continuum of continuum_flux "
                 "erg/s/cm^2/Å each (before throughput and transparency). vred3's Factor, W0, W1 are these "
                 "relative to the exposure's master sky (one common scale and offset per exposure).")
